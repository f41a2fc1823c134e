use std::collections::HashMap;

use serde_json::json;

use super::*;

fn good() -> Value {
    json!({
        "api_url": "https://glpi.example.com/apirest.php",
        "app_token": "app-secret-1",
        "user_token": "user-secret-2",
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

#[test]
fn defaults_apply_when_only_the_required_keys_are_set() {
    let minimal = json!({"api_url": "https://glpi.example.com/apirest.php", "user_token": "u"});
    let s = GlpiSettings::from_hook(7, 3, &minimal).unwrap();
    assert!(s.app_token.is_empty(), "the app token is optional");

    let s = GlpiSettings::from_hook(7, 3, &good()).unwrap();
    assert_eq!(s.api_url, "https://glpi.example.com/apirest.php");
    assert_eq!(s.app_token.expose(), "app-secret-1");
    assert_eq!(s.user_token.expose(), "user-secret-2");
    assert_eq!(s.entity_id, 0);
    assert_eq!(s.sync_type, SyncType::User);
    assert_eq!(s.ticket_type, 1);
    assert_eq!(s.category_id, None);
    assert_eq!(s.default_user_id, None);
    assert!(!s.include_activity_messages);
}

#[test]
fn values_may_be_strings_or_numbers_and_empty_strings_mean_unset() {
    let strings = json!({
        "api_url": "http://127.0.0.1:8080/apirest.php/",
        "app_token": "a", "user_token": "u",
        "entity_id": "4", "sync_type": "Contact", "ticket_type": "2",
        "category_id": "", "default_user_id": "", "include_activity_messages": "true",
    });
    let s = GlpiSettings::from_hook(1, 1, &strings).unwrap();
    assert_eq!(s.api_url, "http://127.0.0.1:8080/apirest.php");
    assert_eq!(s.entity_id, 4);
    assert_eq!(s.sync_type, SyncType::Contact);
    assert_eq!(s.ticket_type, 2);
    assert_eq!(
        s.category_id, None,
        "empty category_id sends no itilcategories_id"
    );
    assert_eq!(s.default_user_id, None);
    assert!(s.include_activity_messages);

    let numbers = json!({
        "api_url": "https://glpi.example.com/apirest.php",
        "app_token": "a", "user_token": "u",
        "entity_id": 4, "ticket_type": 2, "category_id": 5, "default_user_id": 2,
        "include_activity_messages": false, "sync_type": null,
    });
    let s = GlpiSettings::from_hook(1, 1, &numbers).unwrap();
    assert_eq!((s.entity_id, s.ticket_type), (4, 2));
    assert_eq!((s.category_id, s.default_user_id), (Some(5), Some(2)));
    assert_eq!(s.sync_type, SyncType::User);
    // The guide's "0 (system user)" is no particular user.
    let zero = with(good(), "default_user_id", json!("0"));
    assert_eq!(
        GlpiSettings::from_hook(1, 1, &zero)
            .unwrap()
            .default_user_id,
        None
    );
}

#[test]
fn errors_say_exactly_what_is_wrong_and_where() {
    let bad = with(good(), "sync_type", json!("users"));
    let err = GlpiSettings::from_hook(7, 3, &bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"integrations_hooks row 7 (account 3): sync_type must be "user" or "contact", got "users""#
    );

    let bad = json!({
        "api_url": "https://glpi.example.com/",
        "app_token": "super-secret-token", "user_token": "",
        "entity_id": "root", "ticket_type": 3, "category_id": "-2",
        "include_activity_messages": "maybe",
    });
    let err = GlpiSettings::from_hook(9, 2, &bad).unwrap_err();
    let text = err.to_string();
    for expected in [
        "api_url must be the GLPI API address ending in /apirest.php",
        r#"got "https://glpi.example.com/""#,
        "user_token is missing: copy the API token",
        r#"entity_id must be a GLPI entity id (a whole number), got "root""#,
        "ticket_type must be 1 (Incident) or 2 (Request), got 3",
        "category_id must be a GLPI ticket category id (0 or more), got -2",
        r#"include_activity_messages must be true or false, got "maybe""#,
    ] {
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
    assert_eq!(err.problems.len(), 6, "{text}");
    assert!(!text.contains("super-secret-token"));
    assert!(!format!("{err:?}").contains("super-secret-token"));

    let err = GlpiSettings::from_hook(9, 2, &json!("oops")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "integrations_hooks row 9 (account 2): settings must be a JSON object with api_url and user_token, got a string"
    );
    let err =
        GlpiSettings::from_hook(9, 2, &json!({"app_token": 5, "user_token": "u"})).unwrap_err();
    assert!(err.to_string().contains("api_url is missing"), "{err}");
    assert!(
        err.to_string().contains("app_token must be a string"),
        "{err}"
    );
}

#[test]
fn tokens_never_show_in_debug_output() {
    let s = GlpiSettings::from_hook(1, 1, &good()).unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("app-secret-1") && !shown.contains("user-secret-2"));
}

fn env(vars: &[(&str, &str)]) -> Result<ConfiguredAccounts, SettingsError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ConfiguredAccounts::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn environment_names_accounts_with_one_set_of_settings() {
    let c = env(&[
        ("GLPI_ACCOUNT_IDS", " 3, 1 ,"),
        ("GLPI_API_URL", "https://glpi.example.com/apirest.php"),
        ("GLPI_APP_TOKEN", "a"),
        ("GLPI_USER_TOKEN", "u"),
        ("GLPI_SYNC_TYPE", "contact"),
        ("GLPI_CATEGORY_ID", ""),
        ("GLPI_ENTITY_ID", "2"),
    ])
    .unwrap();
    assert_eq!(
        c.account_ids.iter().copied().collect::<Vec<_>>(),
        vec![1, 3]
    );
    let s = c.settings.unwrap();
    assert_eq!(s.sync_type, SyncType::Contact);
    assert_eq!((s.entity_id, s.category_id), (2, None));

    assert_eq!(env(&[]).unwrap(), ConfiguredAccounts::default());

    let err = env(&[("GLPI_ACCOUNT_IDS", "1"), ("GLPI_SYNC_TYPE", "users")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("environment: GLPI_API_URL is missing"),
        "{text}"
    );
    assert!(
        text.contains(r#"GLPI_SYNC_TYPE must be "user" or "contact", got "users""#),
        "{text}"
    );

    let err = env(&[("GLPI_ACCOUNT_IDS", "1,two")]).unwrap_err();
    assert!(err.to_string().contains(r#"got "two""#), "{err}");
    let err = env(&[("GLPI_API_URL", "https://glpi.example.com/apirest.php")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("GLPI_API_URL is set but GLPI_ACCOUNT_IDS is empty"),
        "{err}"
    );
}

fn hook(id: i64, enabled: bool, settings: Value) -> GlpiHook {
    GlpiHook {
        id,
        account_id: 3,
        enabled,
        settings,
    }
}

#[test]
fn an_account_syncs_with_an_enabled_hook_and_the_feature_flag() {
    let none = ConfiguredAccounts::default();
    let on = Some(CRM_INTEGRATION_FLAG | 1);
    assert_eq!(CRM_INTEGRATION_FLAG, 8_796_093_022_208);

    let state = resolve_account(3, on, &[hook(7, true, good())], &none);
    let settings = state.settings().unwrap();
    assert_eq!(settings.source, SettingsSource::Hook { hook_id: 7 });

    // Flag off: a visible problem telling how to enable it.
    match resolve_account(3, Some(1 << 42), &[hook(7, true, good())], &none) {
        AccountState::Problem(p) => {
            assert!(p.contains("crm_integration"), "{p}");
            assert!(p.contains("row 7 (account 3)"), "{p}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        resolve_account(3, on, &[hook(7, false, good())], &none),
        AccountState::Disabled { hook_id: 7 }
    );
    assert_eq!(
        resolve_account(3, on, &[], &none),
        AccountState::NotConfigured
    );

    let bad = with(good(), "ticket_type", json!("9"));
    match resolve_account(3, on, &[hook(7, true, bad)], &none) {
        AccountState::Problem(p) => assert!(p.contains("ticket_type"), "{p}"),
        other => panic!("{other:?}"),
    }
    // With several rows, the oldest enabled one is used.
    let state = resolve_account(
        3,
        on,
        &[
            hook(9, true, good()),
            hook(4, false, good()),
            hook(8, true, good()),
        ],
        &none,
    );
    assert_eq!(
        state.settings().unwrap().source,
        SettingsSource::Hook { hook_id: 8 }
    );
}

#[test]
fn configured_accounts_sync_without_flag_unless_a_hook_decides() {
    let configured = env(&[
        ("GLPI_ACCOUNT_IDS", "3"),
        ("GLPI_API_URL", "https://glpi.example.com/apirest.php"),
        ("GLPI_APP_TOKEN", "a"),
        ("GLPI_USER_TOKEN", "u"),
    ])
    .unwrap();
    let state = resolve_account(3, None, &[], &configured);
    assert_eq!(
        state.settings().unwrap().source,
        SettingsSource::Environment
    );
    assert_eq!(
        resolve_account(4, None, &[], &configured),
        AccountState::NotConfigured
    );
    // A glpi hook row, even disabled, is the account's own decision.
    assert_eq!(
        resolve_account(3, None, &[hook(7, false, good())], &configured),
        AccountState::Disabled { hook_id: 7 }
    );
}
