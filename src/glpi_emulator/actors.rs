//! The inputs that create rows of *other* tables: ticket actors
//! (`_users_id_requester[_notif]`, `_users_id_assign`, `_users_id_observer`,
//! `_actors`) become Ticket_User rows, and a user's `_useremails` become
//! UserEmail rows. Also the validators GLPI applies to them (emails like
//! PHP's `FILTER_VALIDATE_EMAIL`, logins like `Auth::isValidLogin`).

use serde_json::{Map, Value};

use super::params::{as_int, as_text, php_values};

/// Actor roles (`CommonITILActor::REQUESTER/ASSIGN/OBSERVER`).
pub(crate) const ROLES: [(&str, i64); 3] = [("requester", 1), ("assign", 2), ("observer", 3)];

/// A ticket actor to store as a Ticket_User row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Actor {
    pub(crate) role: i64,
    pub(crate) users_id: i64,
    pub(crate) use_notification: i64,
    pub(crate) alternative_email: String,
}

/// Reads every user actor of a ticket input, both the historical keys and
/// `_actors`; duplicates are dropped (the unique key would refuse them).
/// Group and Supplier actors are ignored: the emulator has none of them, and
/// GLPI silently skips actors it cannot add.
pub(crate) fn ticket_actors(input: &Map<String, Value>) -> Vec<Actor> {
    let mut actors: Vec<Actor> = Vec::new();
    let mut push = |actor: Actor| {
        if (actor.users_id > 0 || !actor.alternative_email.is_empty()) && !actors.contains(&actor) {
            actors.push(actor);
        }
    };
    for (role_name, role) in ROLES {
        if let Some(users) = input.get(&format!("_users_id_{role_name}")) {
            let notif = input.get(&format!("_users_id_{role_name}_notif"));
            let pick = |key: &str, i: usize| -> Option<Value> {
                let v = notif?.get(key)?;
                match v {
                    Value::Array(_) | Value::Object(_) => {
                        php_values(v).get(i).map(|x| (*x).clone())
                    }
                    scalar => Some(scalar.clone()),
                }
            };
            for (i, user) in php_values(users).into_iter().enumerate() {
                push(Actor {
                    role,
                    users_id: as_int(user).unwrap_or(0),
                    use_notification: pick("use_notification", i)
                        .and_then(|v| as_int(&v))
                        .unwrap_or(1),
                    alternative_email: pick("alternative_email", i)
                        .and_then(|v| as_text(&v))
                        .unwrap_or_default(),
                });
            }
        }
        let listed = input.get("_actors").and_then(|a| a.get(role_name));
        for entry in listed.map(php_values).unwrap_or_default() {
            let itemtype = entry.get("itemtype").and_then(as_text).unwrap_or_default();
            if !itemtype.eq_ignore_ascii_case("User") {
                continue;
            }
            push(Actor {
                role,
                users_id: entry.get("items_id").and_then(as_int).unwrap_or(0),
                use_notification: entry.get("use_notification").and_then(as_int).unwrap_or(1),
                alternative_email: entry
                    .get("alternative_email")
                    .and_then(as_text)
                    .unwrap_or_default(),
            });
        }
    }
    actors
}

/// The roles an `_actors` input lists (on update, those roles are replaced).
pub(crate) fn listed_roles(input: &Map<String, Value>) -> Vec<i64> {
    let Some(Value::Object(listed)) = input.get("_actors") else {
        return Vec::new();
    };
    ROLES
        .iter()
        .filter(|(name, _)| listed.contains_key(*name))
        .map(|(_, role)| *role)
        .collect()
}

/// `_useremails` entries as (key, email): a JSON list gives keys 0, 1, …
pub(crate) fn user_emails(input: &Map<String, Value>) -> Vec<(String, String)> {
    match input.get("_useremails") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| as_text(v).map(|e| (i.to_string(), e.trim().to_owned())))
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| as_text(v).map(|e| (k.clone(), e.trim().to_owned())))
            .collect(),
        _ => Vec::new(),
    }
}

/// PHP `FILTER_VALIDATE_EMAIL` (what `GLPIMailer::validateAddress` uses):
/// dot-atom local part, a domain of at least two labels, TLD starting with a
/// letter. `user@localhost` is refused, as in PHP.
pub(crate) fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || email.len() > 254 {
        return false;
    }
    const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-.";
    if local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c))
    {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    labels.iter().all(label_ok)
        && labels
            .last()
            .and_then(|tld| tld.chars().next())
            .is_some_and(|c| c.is_ascii_alphabetic())
}

/// `Auth::isValidLogin`: letters, digits, `' @ . - _` and space (Unicode
/// letters included), or a valid email address.
pub(crate) fn is_valid_login(login: &str) -> bool {
    (!login.is_empty()
        && login
            .chars()
            .all(|c| c.is_alphanumeric() || "'@.-_ ".contains(c)))
        || is_valid_email(login)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_like_php() {
        assert!(is_valid_email("john.doe@example.com"));
        assert!(is_valid_email("a+b@sub.example.org"));
        assert!(!is_valid_email("user@localhost"));
        assert!(!is_valid_email("not-an-email"));
        assert!(!is_valid_email("a@b@c.com"));
        assert!(!is_valid_email(".a@example.com"));
        assert!(!is_valid_email("a@example.123"));
    }

    #[test]
    fn logins() {
        assert!(is_valid_login("jdoe"));
        assert!(is_valid_login("John O'Neil"));
        assert!(is_valid_login("élodie_2"));
        assert!(is_valid_login("x+y@example.com"));
        assert!(!is_valid_login("x+y"));
        assert!(!is_valid_login(""));
        assert!(!is_valid_login("a/b"));
    }

    #[test]
    fn reads_both_actor_forms() {
        let input = json!({
            "_users_id_requester": 0,
            "_users_id_requester_notif": {"use_notification": 1, "alternative_email": ["anon@example.org"]},
            "_actors": {"observer": [{"itemtype": "User", "items_id": 7, "use_notification": 0, "alternative_email": ""}],
                        "assign": [{"itemtype": "Group", "items_id": 3}]}
        });
        let actors = ticket_actors(input.as_object().unwrap());
        assert_eq!(
            actors,
            vec![
                Actor {
                    role: 1,
                    users_id: 0,
                    use_notification: 1,
                    alternative_email: "anon@example.org".into()
                },
                Actor {
                    role: 3,
                    users_id: 7,
                    use_notification: 0,
                    alternative_email: String::new()
                },
            ]
        );
    }
}
