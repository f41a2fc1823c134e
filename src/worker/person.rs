//! How a Chatwoot contact looks in GLPI: the login, name parts, phone and
//! email of a GLPI User (user mode) or Contact (contact mode), derived from
//! the contact's snapshot. Pure functions, so the contact job and the
//! ticket job (contact details in the description) share one definition.

use serde::{Deserialize, Serialize};

/// The GLPI-visible fields of a contact. Serialized into
/// `contact_links.synced_fields`: a later sync computing the same value makes
/// no GLPI call (invariant 4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonFields {
    /// User mode only (never changed after creation).
    pub login: String,
    pub firstname: String,
    /// User `realname` / Contact `name`: the surname part.
    pub realname: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub entities_id: i64,
}

/// A contact is identifiable with a name, an email or a phone.
pub fn identifiable(name: Option<&str>, email: Option<&str>, phone: Option<&str>) -> bool {
    [name, email, phone]
        .into_iter()
        .any(|v| v.is_some_and(|s| !s.trim().is_empty()))
}

/// Splits a name at its first run of whitespace: ("Test", "User"),
/// ("Jean", "Pierre Dupont"). A single word is the surname.
pub fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.find(char::is_whitespace) {
        Some(at) => (name[..at].to_owned(), name[at..].trim_start().to_owned()),
        None => (String::new(), name.to_owned()),
    }
}

/// The phone as GLPI shows it: `+` and digits (E.164, as Chatwoot stores
/// it), separators removed. `None` when there are no digits.
pub fn format_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    Some(if raw.starts_with('+') {
        format!("+{digits}")
    } else if let Some(international) = digits.strip_prefix("00") {
        format!("+{international}")
    } else {
        digits
    })
}

/// GLPI accepts as login a valid email or `[letters digits ' @ . - _ space]+`.
fn is_plausible_email(email: &str) -> bool {
    let mut parts = email.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        _ => false,
    }
}

/// The email, trimmed and lowercased (Chatwoot lowercases too), if plausible.
pub fn normalize_email(email: Option<&str>) -> Option<String> {
    email
        .map(|e| e.trim().to_lowercase())
        .filter(|e| is_plausible_email(e))
}

/// Whether GLPI accepts `login` (`Auth::isValidLogin`): letters, digits and
/// `' @ . - _` or space, or an email PHP's `FILTER_VALIDATE_EMAIL` accepts.
/// An address like `a!b@exa_mple.com` is neither, and GLPI refuses the whole
/// user ("The login is not valid"), so such an email must not be the login.
fn glpi_accepts_login(login: &str) -> bool {
    let plain = |c: char| c.is_alphanumeric() || "'@.-_ ".contains(c);
    if !login.is_empty() && login.chars().all(plain) {
        return true;
    }
    // The ASCII dot-atom form FILTER_VALIDATE_EMAIL accepts (conservative).
    let Some((local, domain)) = login.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// Login of a GLPI User: the email (when GLPI accepts it as a login), else the phone's E.164 digits without
/// `+` (GLPI refuses `+` in logins), else `chatwoot-<account>-<contact>`.
pub fn login_for(
    account_id: i64,
    contact_id: i64,
    email: Option<&str>,
    phone: Option<&str>,
) -> String {
    if let Some(email) = email.filter(|e| glpi_accepts_login(e)) {
        return email.to_owned();
    }
    if let Some(phone) = phone {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            return digits;
        }
    }
    format!("chatwoot-{account_id}-{contact_id}")
}

/// The fields a contact gets in GLPI.
pub fn person_fields(
    account_id: i64,
    contact_id: i64,
    name: Option<&str>,
    email: Option<&str>,
    phone: Option<&str>,
    entities_id: i64,
) -> PersonFields {
    let email = normalize_email(email);
    let phone = phone.and_then(format_phone);
    let (firstname, realname) = split_name(name.unwrap_or(""));
    PersonFields {
        login: login_for(account_id, contact_id, email.as_deref(), phone.as_deref()),
        firstname,
        realname,
        email,
        phone,
        entities_id,
    }
}

impl PersonFields {
    /// `POST /User` input for a new user.
    pub fn user_create_input(&self) -> serde_json::Value {
        let mut input = serde_json::json!({
            "name": self.login,
            "firstname": self.firstname,
            "realname": self.realname,
            "phone": self.phone.clone().unwrap_or_default(),
            "entities_id": self.entities_id,
        });
        if let Some(email) = &self.email {
            input["_useremails"] = serde_json::json!([email]);
        }
        input
    }

    /// `PUT /User/:id` input: names and phone; the email only when it changed
    /// (a new `_useremails` entry adds a row, and re-adding one GLPI already
    /// has fails silently). The login is never renamed.
    pub fn user_update_input(&self, previous: Option<&PersonFields>) -> serde_json::Value {
        let mut input = serde_json::json!({
            "firstname": self.firstname,
            "realname": self.realname,
            "phone": self.phone.clone().unwrap_or_default(),
        });
        let email_changed = previous.is_none_or(|p| p.email != self.email);
        if let (Some(email), true) = (&self.email, email_changed) {
            input["_useremails"] = serde_json::json!([email]);
        }
        input
    }

    /// `POST /Contact` and `PUT /Contact/:id` input. A contact without a
    /// name gets its email or phone as surname, so GLPI's lists show
    /// something.
    pub fn contact_input(&self) -> serde_json::Value {
        let name = if self.realname.is_empty() && self.firstname.is_empty() {
            self.email
                .clone()
                .or_else(|| self.phone.clone())
                .unwrap_or_default()
        } else {
            self.realname.clone()
        };
        serde_json::json!({
            "name": name,
            "firstname": self.firstname,
            "email": self.email.clone().unwrap_or_default(),
            "phone": self.phone.clone().unwrap_or_default(),
            "entities_id": self.entities_id,
        })
    }

    /// Label/value pairs for the ticket description in contact mode.
    pub fn details(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let full = [self.firstname.as_str(), self.realname.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !full.is_empty() {
            out.push(("Name".to_owned(), full));
        }
        if let Some(email) = &self.email {
            out.push(("Email".to_owned(), email.clone()));
        }
        if let Some(phone) = &self.phone {
            out.push(("Phone".to_owned(), phone.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_first_whitespace_run() {
        assert_eq!(split_name("Test User"), ("Test".into(), "User".into()));
        assert_eq!(
            split_name("  Jean \t Pierre Dupont "),
            ("Jean".into(), "Pierre Dupont".into())
        );
        assert_eq!(split_name("Madonna"), (String::new(), "Madonna".into()));
        assert_eq!(split_name(""), (String::new(), String::new()));
    }

    #[test]
    fn phones_are_formatted() {
        assert_eq!(format_phone("+1234567890").as_deref(), Some("+1234567890"));
        assert_eq!(
            format_phone("+33 6 12-34.56 (78)").as_deref(),
            Some("+33612345678")
        );
        assert_eq!(
            format_phone("0033612345678").as_deref(),
            Some("+33612345678")
        );
        assert_eq!(format_phone("0612345678").as_deref(), Some("0612345678"));
        assert_eq!(format_phone(" - "), None);
    }

    #[test]
    fn login_prefers_email_then_phone_digits_then_stable_name() {
        let f = person_fields(
            1,
            9,
            Some("Test User"),
            Some("Test@Example.com"),
            Some("+1234567890"),
            0,
        );
        assert_eq!(f.login, "test@example.com");
        let f = person_fields(1, 9, Some("Test User"), None, Some("+1234567890"), 0);
        assert_eq!(f.login, "1234567890");
        let f = person_fields(1, 9, Some("Test User"), Some("not an email"), None, 0);
        assert_eq!(f.login, "chatwoot-1-9");
        assert_eq!(f.email, None);
    }

    #[test]
    fn email_is_the_login_only_when_glpi_accepts_it() {
        for ok in [
            "first+tag@example.com",
            "o'neil@example.com",
            "zoé@exämple.com",
        ] {
            assert_eq!(person_fields(1, 9, None, Some(ok), None, 0).login, ok);
        }
        // Neither a plain login nor an email FILTER_VALIDATE_EMAIL accepts:
        // GLPI would refuse the user, so the phone digits serve instead.
        let f = person_fields(1, 9, None, Some("a!b@exa_mple.com"), Some("+331"), 0);
        assert_eq!(f.login, "331");
    }

    #[test]
    fn identifiable_needs_one_of_three() {
        assert!(identifiable(Some("A"), None, None));
        assert!(identifiable(None, None, Some("+1")));
        assert!(!identifiable(Some("  "), Some(""), None));
    }

    #[test]
    fn inputs_carry_every_field() {
        let f = person_fields(
            1,
            9,
            Some("Test User"),
            Some("test@example.com"),
            Some("+1234567890"),
            3,
        );
        assert_eq!(
            f.user_create_input(),
            serde_json::json!({"name":"test@example.com","firstname":"Test","realname":"User",
                "phone":"+1234567890","entities_id":3,"_useremails":["test@example.com"]})
        );
        assert_eq!(
            f.contact_input(),
            serde_json::json!({"name":"User","firstname":"Test","email":"test@example.com",
                "phone":"+1234567890","entities_id":3})
        );
        let same = f.user_update_input(Some(&f));
        assert!(same.get("_useremails").is_none());
    }
}
