use std::collections::HashMap;
use std::io::Write;

use super::*;
use crate::planner::settings::SyncType;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(
    file: Option<&str>,
    env_vars: &[(&str, &str)],
    flags: &[(Key, &str)],
) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = ConfigArgs::default();
    if let Some(text) = file {
        let path = dir.path().join("bridge.toml");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        args.config_file = Some(path);
    }
    for (key, value) in flags {
        args = args.with_flag(*key, *value);
    }
    let vars = env(env_vars);
    Config::load_with_env(&args, &|name| vars.get(name).cloned())
}

#[test]
fn defaults_apply_with_nothing_set() {
    let config = load(None, &[], &[]).unwrap();
    assert_eq!(
        config.state_file,
        PathBuf::from("./chatwoot-glpi-bridge.sqlite3")
    );
    assert_eq!(config.slot_name, "chatwoot_glpi_bridge");
    assert_eq!(config.publication_name, "chatwoot_glpi_bridge");
    assert_eq!(config.backfill, BackfillPolicy::All);
    assert_eq!(
        config.metrics_addr,
        MetricsAddr::Listen("127.0.0.1:9187".parse().unwrap())
    );
    assert_eq!(config.log_format, LogFormat::Human);
    assert_eq!(config.glpi_rate_limit, None);
    assert_eq!(config.glpi_max_in_flight, 8);
    assert!(config.database_url.is_none());
    assert!(config.glpi_account.settings.is_none());
    let err = config.database_url().unwrap_err().to_string();
    assert!(
        err.contains("DATABASE_URL") && err.contains("--database-url"),
        "{err}"
    );
}

#[test]
fn flag_overrides_environment_overrides_file() {
    let file =
        "slot_name = \"from_file\"\npublication_name = \"pub_file\"\nstate_file = \"/file.db\"\n\
                [glpi]\nrate_limit = 5\n";
    let env_vars = [("BRIDGE_SLOT_NAME", "from_env"), ("GLPI_RATE_LIMIT", "7")];
    let flags = [(Key::SlotName, "from_flag")];

    let only_file = load(Some(file), &[], &[]).unwrap();
    assert_eq!(only_file.slot_name, "from_file");
    assert_eq!(only_file.glpi_rate_limit, NonZeroU32::new(5));

    let file_env = load(Some(file), &env_vars, &[]).unwrap();
    assert_eq!(file_env.slot_name, "from_env");
    assert_eq!(file_env.glpi_rate_limit, NonZeroU32::new(7));
    assert_eq!(file_env.publication_name, "pub_file", "file value kept");

    let all = load(Some(file), &env_vars, &flags).unwrap();
    assert_eq!(all.slot_name, "from_flag");
    assert_eq!(all.glpi_rate_limit, NonZeroU32::new(7));
    assert_eq!(all.state_file, PathBuf::from("/file.db"));
}

#[test]
fn empty_environment_variable_does_not_override_the_file() {
    let config = load(
        Some("slot_name = \"kept\""),
        &[("BRIDGE_SLOT_NAME", "")],
        &[],
    )
    .unwrap();
    assert_eq!(config.slot_name, "kept");
}

#[test]
fn unknown_file_key_is_named_with_the_valid_ones() {
    let err = load(Some("slot = \"x\""), &[], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `slot`"), "{err}");
    assert!(
        err.contains("slot_name") && err.contains("glpi.rate_limit"),
        "{err}"
    );

    let err = load(Some("[glpi]\nrate = 3"), &[], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `glpi.rate`"), "{err}");

    let err = load(Some("[nonsense]\nx = 1"), &[], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `nonsense`"), "{err}");
}

#[test]
fn bad_values_name_the_setting_and_its_source() {
    let err = load(None, &[("GLPI_MAX_IN_FLIGHT", "many")], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("GLPI_MAX_IN_FLIGHT"), "{err}");
    assert!(err.contains("\"many\" is not a whole number"), "{err}");

    let err = load(Some("backfill = \"since:2024-13-01\""), &[], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`backfill` in"), "{err}");
    assert!(err.contains("since:YYYY-MM-DD"), "{err}");

    let err = load(None, &[], &[(Key::LogFormat, "xml")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("flag --log-format"), "{err}");
    assert!(err.contains("`human` or `json`"), "{err}");

    let err = load(None, &[], &[(Key::SlotName, "My-Slot")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("lowercase letters"), "{err}");

    let err = load(None, &[("BRIDGE_METRICS_ADDR", "localhost")], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("IP:PORT"), "{err}");

    let err = load(Some("slot_name = "), &[], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid TOML"), "{err}");
}

#[test]
fn backfill_policies_parse() {
    assert_eq!("all".parse::<BackfillPolicy>(), Ok(BackfillPolicy::All));
    assert_eq!("none".parse::<BackfillPolicy>(), Ok(BackfillPolicy::None));
    let since = "since:2024-02-29".parse::<BackfillPolicy>().unwrap();
    assert_eq!(
        since,
        BackfillPolicy::Since(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
    );
    assert_eq!(since.to_string(), "since:2024-02-29");
    assert!("yesterday".parse::<BackfillPolicy>().is_err());
    assert_eq!(
        load(None, &[], &[(Key::MetricsAddr, "off")])
            .unwrap()
            .metrics_addr,
        MetricsAddr::Off
    );
}

#[test]
fn database_url_password_is_never_printed() {
    let config = load(
        None,
        &[(
            "DATABASE_URL",
            "postgres://bridge:s3cr%40t@db.internal:6432/chatwoot?sslmode=require",
        )],
        &[],
    )
    .unwrap();
    let url = config.database_url().unwrap();
    assert_eq!(url.password().unwrap().expose(), "s3cr@t");
    assert_eq!(
        url.redacted(),
        "postgres://bridge:****@db.internal:6432/chatwoot?sslmode=require"
    );
    assert_eq!(url.host(), Some("db.internal"));
    assert_eq!(url.port(), 6432);
    assert_eq!(url.user(), "bridge");
    assert_eq!(url.database(), "chatwoot");
    assert_eq!(url.param("sslmode").as_deref(), Some("require"));
    assert!(url.expose().contains("s3cr%40t"));
    let pg = url.pg_config().unwrap();
    assert_eq!(pg.get_password(), Some(&b"s3cr@t"[..]));
    let debug = format!("{config:?} {url}");
    assert!(!debug.contains("s3cr"), "{debug}");

    let err = load(
        None,
        &[("DATABASE_URL", "mysql://x:hunter2@db/chatwoot")],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("postgres://") && !err.contains("hunter2"),
        "{err}"
    );
    let err = load(None, &[("DATABASE_URL", "postgres://x:hunter2@db")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("names no database") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn glpi_account_from_file_env_and_flags_goes_through_the_planner_parser() {
    let config = load(
        Some("[glpi_account]\naccount_ids = [3, 1]\napi_url = \"https://glpi.example.com/apirest.php\"\n"),
        &[
            ("GLPI_USER_TOKEN", "user-tok"),
            ("GLPI_APP_TOKEN", "app-tok"),
            ("GLPI_SYNC_TYPE", "contact"),
            ("GLPI_TICKET_TYPE", "2"),
            ("GLPI_CATEGORY_ID", ""),
        ],
        &[(Key::AccountEntityId, "4")],
    )
    .unwrap();
    let accounts = &config.glpi_account;
    assert_eq!(
        accounts.account_ids.iter().copied().collect::<Vec<_>>(),
        vec![1, 3]
    );
    let glpi = accounts.settings.as_ref().unwrap();
    assert_eq!(glpi.sync_type, SyncType::Contact);
    assert_eq!(glpi.ticket_type, 2);
    assert_eq!(glpi.entity_id, 4, "the flag wins");
    assert_eq!(glpi.category_id, None, "empty means unset");
    assert_eq!(glpi.user_token.expose(), "user-tok");
    assert!(!format!("{config:?}").contains("user-tok"));

    let client = config.glpi_client_config(glpi);
    assert_eq!(client.api_url, "https://glpi.example.com/apirest.php");
    assert_eq!(
        client.app_token.as_ref().map(|t| t.expose()),
        Some("app-tok")
    );
    assert_eq!(client.max_in_flight, 8);

    assert!(load(None, &[], &[])
        .unwrap()
        .glpi_account
        .settings
        .is_none());

    for (vars, expected) in [
        (vec![("GLPI_ACCOUNT_IDS", "1")], "GLPI_API_URL"),
        (
            vec![
                ("GLPI_ACCOUNT_IDS", "1"),
                ("GLPI_API_URL", "https://g/apirest.php"),
            ],
            "GLPI_USER_TOKEN",
        ),
        (
            vec![("GLPI_API_URL", "https://g/apirest.php")],
            "GLPI_ACCOUNT_IDS",
        ),
        (vec![("GLPI_ACCOUNT_IDS", "1,two")], "GLPI_ACCOUNT_IDS"),
        (
            vec![
                ("GLPI_ACCOUNT_IDS", "1"),
                ("GLPI_API_URL", "https://g/apirest.php"),
                ("GLPI_USER_TOKEN", "t"),
                ("GLPI_TICKET_TYPE", "3"),
            ],
            "GLPI_TICKET_TYPE",
        ),
    ] {
        let err = load(None, &vars, &[]).unwrap_err().to_string();
        assert!(err.contains(expected), "{vars:?}: {err}");
        assert!(err.contains("glpi_account.*"), "{err}");
    }
}

#[test]
fn flags_parse_through_clap() {
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        config: ConfigArgs,
    }
    let cli = Cli::try_parse_from([
        "bridge",
        "--config",
        "/etc/bridge.toml",
        "--slot-name",
        "s1",
        "--glpi-rate-limit",
        "3",
    ])
    .unwrap();
    assert_eq!(
        cli.config.config_file,
        Some(PathBuf::from("/etc/bridge.toml"))
    );
    assert_eq!(cli.config.flags.get(&Key::SlotName).unwrap(), "s1");
    assert_eq!(cli.config.flags.get(&Key::GlpiRateLimit).unwrap(), "3");
    assert!(
        Cli::try_parse_from(["bridge", "--glpi-user-token", "x"]).is_err(),
        "secrets are not flags"
    );
    let debug = format!(
        "{:?}",
        Cli::try_parse_from(["bridge", "--database-url", "postgres://u:pw@h/d"]).unwrap()
    );
    assert!(!debug.contains("pw@"), "{debug}");
}

#[test]
fn message_cache_days_defaults_to_30_and_0_keeps_forever() {
    let day = std::time::Duration::from_secs(24 * 3600);
    assert_eq!(load(None, &[], &[]).unwrap().message_cache, Some(30 * day));
    let from_env = load(None, &[("BRIDGE_MESSAGE_CACHE_DAYS", "7")], &[]).unwrap();
    assert_eq!(from_env.message_cache, Some(7 * day));
    let from_file = load(Some("message_cache_days = 90\n"), &[], &[]).unwrap();
    assert_eq!(from_file.message_cache, Some(90 * day));
    let forever = load(None, &[], &[(Key::MessageCacheDays, "0")]).unwrap();
    assert_eq!(forever.message_cache, None);

    for (bad, says) in [
        ("-1", "whole number"),
        ("ten", "whole number"),
        ("40000", "0 to keep forever"),
    ] {
        let err = load(None, &[("BRIDGE_MESSAGE_CACHE_DAYS", bad)], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BRIDGE_MESSAGE_CACHE_DAYS") && err.contains(says),
            "{bad}: {err}"
        );
    }
}
