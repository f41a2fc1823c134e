//! Where setting values come from: the TOML file, the environment, the command
//! line. Each source yields raw text per [`Key`]; [`merge`] keeps the winner
//! (flag over environment over file over default) and remembers where it came
//! from, so a bad value's error can say which source to fix.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::settings::Key;
use super::ConfigError;

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env,
    Flag,
}

/// One setting's text and origin.
#[derive(Clone, PartialEq, Eq)]
pub struct RawValue {
    pub text: String,
    pub source: Source,
}

impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Raw values may hold secrets; the typed Config prints them redacted.
        write!(f, "RawValue({:?})", self.source)
    }
}

/// Describes a value's origin in the words an operator would use to fix it.
pub fn describe(key: Key, source: &Source) -> String {
    let def = key.def();
    match source {
        Source::Default => format!("`{}` (default)", def.toml_key),
        Source::File(path) => format!("`{}` in {}", def.toml_key, path.display()),
        Source::Env => format!("environment variable {}", def.env),
        Source::Flag => format!("flag --{}", def.flag.unwrap_or(def.toml_key)),
    }
}

/// Reads and flattens a TOML file into raw values. Unknown keys are errors.
pub fn from_file(path: &Path) -> Result<BTreeMap<Key, RawValue>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::FileUnreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    from_toml_text(&text, path)
}

/// Parses TOML text (the file named `path`).
pub fn from_toml_text(text: &str, path: &Path) -> Result<BTreeMap<Key, RawValue>, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::FileSyntax {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut out = BTreeMap::new();
    flatten(&table, "", path, &mut out)?;
    Ok(out)
}

fn flatten(
    table: &toml::Table,
    prefix: &str,
    path: &Path,
    out: &mut BTreeMap<Key, RawValue>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let dotted = format!("{prefix}{name}");
        if let toml::Value::Table(inner) = value {
            let is_section = Key::ALL
                .iter()
                .any(|k| k.def().toml_key.starts_with(&format!("{dotted}.")));
            if is_section {
                flatten(inner, &format!("{dotted}."), path, out)?;
                continue;
            }
        }
        let key = Key::from_toml_key(&dotted).ok_or_else(|| ConfigError::UnknownKey {
            key: dotted.clone(),
            path: path.to_owned(),
        })?;
        let text = scalar_text(value).ok_or_else(|| ConfigError::Invalid {
            origin: describe(key, &Source::File(path.to_owned())),
            reason: "expected a string, number, boolean or list of numbers".into(),
        })?;
        out.insert(
            key,
            RawValue {
                text,
                source: Source::File(path.to_owned()),
            },
        );
    }
    Ok(())
}

/// TOML scalars become the text the environment would carry; a list becomes
/// a comma list (`account_ids = [1, 2]` is `GLPI_ACCOUNT_IDS=1,2`).
fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::Array(_) | toml::Value::Table(_) => None,
                other => scalar_text(other),
            })
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join(",")),
        toml::Value::Table(_) => None,
    }
}

/// Raw values from the environment. An empty variable counts as unset, so
/// `FOO: ${FOO:-}` in a compose file does not override the file.
pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> BTreeMap<Key, RawValue> {
    Key::ALL
        .into_iter()
        .filter_map(|key| {
            let text = lookup(key.def().env)?;
            (!text.trim().is_empty()).then_some((
                key,
                RawValue {
                    text,
                    source: Source::Env,
                },
            ))
        })
        .collect()
}

/// Defaults from the settings table.
pub fn defaults() -> BTreeMap<Key, RawValue> {
    Key::ALL
        .into_iter()
        .filter_map(|key| {
            key.def().default.map(|text| {
                (
                    key,
                    RawValue {
                        text: text.to_owned(),
                        source: Source::Default,
                    },
                )
            })
        })
        .collect()
}

/// Later layers override earlier ones.
pub fn merge(layers: Vec<BTreeMap<Key, RawValue>>) -> BTreeMap<Key, RawValue> {
    let mut out = BTreeMap::new();
    for layer in layers {
        out.extend(layer);
    }
    out
}

/// The configuration flags of a subcommand: `--config PATH` and one flag per
/// setting that has one. Flatten it into a subcommand's arguments with
/// `#[command(flatten)] pub config: ConfigArgs`.
#[derive(Clone, Default)]
pub struct ConfigArgs {
    /// The TOML file given with `--config`.
    pub config_file: Option<PathBuf>,
    /// Values given as flags.
    pub flags: BTreeMap<Key, String>,
}

impl fmt::Debug for ConfigArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags: Vec<_> = self.flags.keys().map(|k| k.def().toml_key).collect();
        f.debug_struct("ConfigArgs")
            .field("config_file", &self.config_file)
            .field("flags_given", &flags)
            .finish()
    }
}

impl ConfigArgs {
    /// Sets a flag value, as if given on the command line (for tests and the
    /// demo, which build their configuration in code).
    pub fn with_flag(mut self, key: Key, value: impl Into<String>) -> Self {
        self.flags.insert(key, value.into());
        self
    }

    pub(crate) fn flag_values(&self) -> BTreeMap<Key, RawValue> {
        self.flags
            .iter()
            .map(|(key, text)| {
                (
                    *key,
                    RawValue {
                        text: text.clone(),
                        source: Source::Flag,
                    },
                )
            })
            .collect()
    }
}

const CONFIG_ARG: &str = "config";
const HELP_HEADING: &str = "Configuration (flag > environment > --config file > default)";

impl clap::FromArgMatches for ConfigArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ConfigArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        if let Some(path) = matches.get_one::<PathBuf>(CONFIG_ARG) {
            self.config_file = Some(path.clone());
        }
        for key in Key::ALL {
            if let Some(flag) = key.def().flag {
                if let Some(value) = matches.get_one::<String>(flag) {
                    self.flags.insert(key, value.clone());
                }
            }
        }
        Ok(())
    }
}

impl clap::Args for ConfigArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let mut cmd = cmd.next_help_heading(HELP_HEADING).arg(
            clap::Arg::new(CONFIG_ARG)
                .long(CONFIG_ARG)
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .global(true)
                .help("TOML file with settings (keys as in the README's configuration reference)"),
        );
        for key in Key::ALL {
            let def = key.def();
            let Some(flag) = def.flag else { continue };
            let default = def
                .default
                .map(|d| format!(" [default: {d}]"))
                .unwrap_or_default();
            cmd = cmd.arg(
                clap::Arg::new(flag)
                    .long(flag)
                    .aliases(short_aliases(key))
                    .value_name(def.value_name)
                    .global(true)
                    .help(format!(
                        "{} [env: {}]{default}",
                        first_sentence(def.meaning),
                        def.env
                    ))
                    .long_help(format!(
                        "{}\n\nEnvironment: {}; file key: {}{default}",
                        def.meaning, def.env, def.toml_key
                    )),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Shorter spellings accepted (hidden) for a few flags.
fn short_aliases(key: Key) -> &'static [&'static str] {
    match key {
        Key::StateFile => &["state"],
        Key::SlotName => &["slot"],
        Key::PublicationName => &["publication"],
        _ => &[],
    }
}

/// The first sentence of a meaning, for the short `-h` help.
fn first_sentence(text: &str) -> String {
    let squeezed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match squeezed.find(". ") {
        Some(end) => squeezed[..end + 1].to_owned(),
        None => squeezed,
    }
}
