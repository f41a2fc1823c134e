//! The README's "Configuration reference" table, generated from
//! [`super::settings`] so the documentation cannot drift from the code.
//!
//! The README holds the table between two markers; the test below fails when
//! it is stale. Regenerate with
//! `UPDATE_README=1 cargo test --lib config::reference`.

use super::settings::Key;

pub const START_MARKER: &str =
    "<!-- configuration-reference:start (generated from src/config/settings.rs) -->";
pub const END_MARKER: &str = "<!-- configuration-reference:end -->";

/// The Markdown table, one row per setting.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| File key (`--config`) | Environment | Flag | Default | Meaning |\n|---|---|---|---|---|\n",
    );
    for key in Key::ALL {
        let def = key.def();
        let flag = def
            .flag
            .map(|f| format!("`--{f}`"))
            .unwrap_or_else(|| "(none: secret)".to_owned());
        let default = def
            .default
            .map(|d| format!("`{d}`"))
            .unwrap_or_else(|| "unset".to_owned());
        let meaning = def
            .meaning
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | `{}` | {flag} | {default} | {meaning} |\n",
            def.toml_key, def.env
        ));
    }
    out
}

/// `readme` with the text between the markers replaced by the current table;
/// `None` if the markers are missing.
pub fn refresh_readme(readme: &str) -> Option<String> {
    let start = readme.find(START_MARKER)? + START_MARKER.len();
    let end = readme[start..].find(END_MARKER)? + start;
    Some(format!(
        "{}\n{}{}",
        &readme[..start],
        markdown_table(),
        &readme[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_configuration_reference_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let fresh =
            refresh_readme(&readme).expect("README.md lacks the configuration-reference markers");
        if fresh != readme {
            if std::env::var_os("UPDATE_README").is_some() {
                std::fs::write(path, &fresh).unwrap();
            } else {
                panic!(
                    "README.md's configuration reference is stale: run \
                     `UPDATE_README=1 cargo test --lib config::reference`"
                );
            }
        }
        for key in Key::ALL {
            assert!(fresh.contains(key.def().env), "{} missing", key.def().env);
        }
    }
}
