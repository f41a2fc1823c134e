//! Errors of GLPI calls, classed so the caller knows what to do next
//! (invariant 2 and 6): retry later (transient), look the record up before
//! creating again (unknown outcome), or park the job with the reason
//! (permanent). Messages name the request and GLPI's own error constant; they
//! never contain a token (tokens only travel in headers, which are never
//! quoted here).

use std::fmt;
use std::time::Duration;

/// GLPI's constant for an unknown, expired or killed session.
pub const ERROR_SESSION_TOKEN_INVALID: &str = "ERROR_SESSION_TOKEN_INVALID";
/// GLPI's constant for a missing item (GET 404).
pub const ERROR_ITEM_NOT_FOUND: &str = "ERROR_ITEM_NOT_FOUND";

/// Which request failed: method and path below `apirest.php`, e.g.
/// `POST /User`. Query strings (which may hold personal data) and headers
/// (which hold tokens) are never part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    pub method: &'static str,
    pub path: String,
}

impl fmt::Display for RequestLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A failed GLPI call.
///
/// Exactly one of [`is_transient`](Self::is_transient),
/// [`is_unknown_outcome`](Self::is_unknown_outcome) and
/// [`is_permanent`](Self::is_permanent) is true:
/// * transient: nothing was applied (or the request is idempotent); retry later;
/// * unknown outcome: a create may or may not have been applied; look the
///   record up in GLPI before creating it again;
/// * permanent: GLPI refused the request; retrying the same input fails the
///   same way. Park it with [`Display`](fmt::Display) as the reason.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum GlpiError {
    /// GLPI answered with its error array `["CONSTANT", "message"]`.
    Api {
        request: RequestLine,
        status: u16,
        constant: String,
        message: String,
    },
    /// An error status whose body is not GLPI's error array (a reverse proxy,
    /// the web server, PHP crashing). `excerpt` is the start of the body.
    Http {
        request: RequestLine,
        status: u16,
        excerpt: String,
    },
    /// HTTP 429; `retry_after` is the server's `Retry-After`, if it gave one.
    RateLimited {
        request: RequestLine,
        retry_after: Option<Duration>,
    },
    /// No complete answer within the configured timeout (idempotent request).
    Timeout {
        request: RequestLine,
        after: Duration,
    },
    /// The connection could not be made, or broke (idempotent request, or a
    /// create that was certainly not sent).
    Connection {
        request: RequestLine,
        detail: String,
    },
    /// A create (POST) was sent but its answer was lost: the item may exist.
    UnknownOutcome { request: RequestLine, cause: String },
    /// GLPI answered success with a body the client cannot read.
    InvalidResponse {
        request: RequestLine,
        status: u16,
        detail: String,
    },
    /// The client refused to send the request (e.g. an `id` in a create input).
    InvalidInput { detail: String },
}

impl GlpiError {
    /// Safe to retry the same call later: nothing was applied, or the
    /// request is idempotent.
    pub fn is_transient(&self) -> bool {
        match self {
            GlpiError::Api {
                status, constant, ..
            } => transient_status(*status) || constant == ERROR_SESSION_TOKEN_INVALID,
            GlpiError::Http { status, .. } => transient_status(*status),
            GlpiError::RateLimited { .. }
            | GlpiError::Timeout { .. }
            | GlpiError::Connection { .. } => true,
            GlpiError::UnknownOutcome { .. }
            | GlpiError::InvalidResponse { .. }
            | GlpiError::InvalidInput { .. } => false,
        }
    }

    /// A create may have been applied although no answer came back (timeout
    /// or connection dropped after sending, or a gateway error): search for
    /// the record before creating it again.
    pub fn is_unknown_outcome(&self) -> bool {
        matches!(self, GlpiError::UnknownOutcome { .. })
    }

    /// GLPI (or the client) refused the request; retrying won't help.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient() && !self.is_unknown_outcome()
    }

    /// GLPI's error constant, e.g. `ERROR_GLPI_ADD`.
    pub fn constant(&self) -> Option<&str> {
        match self {
            GlpiError::Api { constant, .. } => Some(constant),
            _ => None,
        }
    }

    /// GLPI's error message as sent (possibly empty: GLPI refuses some
    /// creates silently).
    pub fn message(&self) -> Option<&str> {
        match self {
            GlpiError::Api { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The HTTP status, when an answer came back.
    pub fn status(&self) -> Option<u16> {
        match self {
            GlpiError::Api { status, .. }
            | GlpiError::Http { status, .. }
            | GlpiError::InvalidResponse { status, .. } => Some(*status),
            GlpiError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// The request that failed, if one was sent.
    pub fn request(&self) -> Option<&RequestLine> {
        match self {
            GlpiError::Api { request, .. }
            | GlpiError::Http { request, .. }
            | GlpiError::RateLimited { request, .. }
            | GlpiError::Timeout { request, .. }
            | GlpiError::Connection { request, .. }
            | GlpiError::UnknownOutcome { request, .. }
            | GlpiError::InvalidResponse { request, .. } => Some(request),
            GlpiError::InvalidInput { .. } => None,
        }
    }

    /// The wait the server asked for (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GlpiError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// GLPI said the item (or the parent of a sub-item list) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.constant() == Some(ERROR_ITEM_NOT_FOUND)
    }

    pub(crate) fn is_session_invalid(&self) -> bool {
        matches!(self, GlpiError::Api { status: 401, constant, .. } if constant == ERROR_SESSION_TOKEN_INVALID)
    }
}

fn transient_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// GLPI appends "; view documentation in your browser at <url>/#CONSTANT" to
/// most 400 messages; the operator needs the first part only.
fn without_doc_suffix(message: &str) -> &str {
    match message.find("; view documentation in your browser") {
        Some(at) => &message[..at],
        None => message,
    }
}

/// What the operator should check for the errors that mean misconfiguration.
fn hint(constant: &str, message: &str) -> Option<&'static str> {
    let hint = match constant {
        "ERROR_GLPI_LOGIN_USER_TOKEN" => {
            "check the user token: it is the API token in GLPI's My settings > Remote access keys"
        }
        "ERROR_WRONG_APP_TOKEN_PARAMETER" => {
            "check the app token: it must be the one of the API client that matches the bridge's \
             IP address (Setup > General > API); leave it unset if that client has none"
        }
        "ERROR_APP_TOKEN_PARAMETERS_MISSING" => {
            "the API client that matches the bridge's IP address requires an app token: set it"
        }
        "ERROR_NOT_ALLOWED_IP" => {
            "add an active API client for the bridge's IP address in Setup > General > API"
        }
        "ERROR_LOGIN_PARAMETERS_MISSING" => {
            "enable \"Enable login with external token\" in Setup > General > API"
        }
        "ERROR_RIGHT_MISSING" => {
            "the GLPI user's profile lacks the read right on this item type or entity"
        }
        "ERROR" if message.contains("API disabled") => {
            "enable the REST API in Setup > General > API"
        }
        "ERROR_GLPI_ADD" | "ERROR_GLPI_UPDATE" if message.contains("permission") => {
            "the GLPI user's profile lacks the right for this item type, or the entity is not \
             among its profile's entities"
        }
        "ERROR_GLPI_UPDATE" if message.is_empty() => {
            "the item may not exist (GLPI gives no reason)"
        }
        _ => return None,
    };
    Some(hint)
}

impl fmt::Display for GlpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlpiError::Api {
                request,
                status,
                constant,
                message,
            } => {
                write!(f, "GLPI refused {request} (HTTP {status} {constant})")?;
                let shown = without_doc_suffix(message);
                if shown.is_empty() {
                    f.write_str(" without a message")?;
                } else {
                    write!(f, ": {shown}")?;
                }
                if let Some(hint) = hint(constant, message) {
                    write!(f, " — {hint}")?;
                }
                Ok(())
            }
            GlpiError::Http {
                request,
                status,
                excerpt,
            } => {
                write!(f, "HTTP {status} from the GLPI server for {request}")?;
                if *status == 404 {
                    f.write_str(" — is the API URL right (it must end with /apirest.php)?")?;
                }
                if !excerpt.is_empty() {
                    write!(f, "; body starts with: {excerpt}")?;
                }
                Ok(())
            }
            GlpiError::RateLimited {
                request,
                retry_after,
            } => {
                write!(f, "GLPI asked to slow down (HTTP 429) for {request}")?;
                if let Some(wait) = retry_after {
                    write!(f, ", retry after {} s", wait.as_secs())?;
                }
                Ok(())
            }
            GlpiError::Timeout { request, after } => write!(
                f,
                "no answer from GLPI to {request} within {} s",
                after.as_secs_f32()
            ),
            GlpiError::Connection { request, detail } => {
                write!(f, "cannot reach GLPI for {request}: {detail}")?;
                if detail.contains("certificate") {
                    write!(
                        f,
                        " — GLPI's TLS certificate is not trusted: if it comes from a private CA, \
                         give that CA's PEM file with {}",
                        crate::config::how_to_set(crate::config::Key::GlpiCaCert)
                    )?;
                }
                Ok(())
            }
            GlpiError::UnknownOutcome { request, cause } => write!(
                f,
                "outcome unknown for {request}: {cause}; the item may have been created, \
                 look it up before creating it again"
            ),
            GlpiError::InvalidResponse {
                request,
                status,
                detail,
            } => write!(
                f,
                "unreadable answer from GLPI to {request} (HTTP {status}): {detail}"
            ),
            GlpiError::InvalidInput { detail } => {
                write!(f, "request not sent to GLPI: {detail}")
            }
        }
    }
}

impl std::error::Error for GlpiError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> RequestLine {
        RequestLine {
            method: "POST",
            path: "/User".into(),
        }
    }

    fn api(status: u16, constant: &str, message: &str) -> GlpiError {
        GlpiError::Api {
            request: line(),
            status,
            constant: constant.into(),
            message: message.into(),
        }
    }

    #[test]
    fn classes_are_exclusive() {
        let all = [
            api(
                400,
                "ERROR_GLPI_ADD",
                "Unable to add. The user already exists.",
            ),
            api(500, "ERROR_SQL", "Unexpected SQL Error"),
            api(
                401,
                ERROR_SESSION_TOKEN_INVALID,
                "session_token seems invalid",
            ),
            GlpiError::Http {
                request: line(),
                status: 503,
                excerpt: String::new(),
            },
            GlpiError::Http {
                request: line(),
                status: 404,
                excerpt: "<html>".into(),
            },
            GlpiError::RateLimited {
                request: line(),
                retry_after: Some(Duration::from_secs(2)),
            },
            GlpiError::Timeout {
                request: line(),
                after: Duration::from_secs(30),
            },
            GlpiError::UnknownOutcome {
                request: line(),
                cause: "connection closed".into(),
            },
            GlpiError::InvalidInput { detail: "x".into() },
        ];
        for e in &all {
            let classes = [e.is_transient(), e.is_unknown_outcome(), e.is_permanent()];
            assert_eq!(classes.iter().filter(|c| **c).count(), 1, "{e}");
        }
        assert!(all[0].is_permanent());
        assert!(all[1].is_transient());
        assert!(all[2].is_transient() && all[2].is_session_invalid());
        assert!(all[3].is_transient());
        assert!(all[4].is_permanent());
        assert_eq!(all[5].retry_after(), Some(Duration::from_secs(2)));
        assert!(all[7].is_unknown_outcome());
    }

    #[test]
    fn display_names_request_constant_message_and_hint() {
        let e = api(
            400,
            "ERROR_GLPI_ADD",
            "You don't have permission to perform this action.",
        );
        let text = e.to_string();
        assert!(text.contains("POST /User"), "{text}");
        assert!(text.contains("ERROR_GLPI_ADD"), "{text}");
        assert!(text.contains("permission to perform"), "{text}");
        assert!(text.contains("profile"), "{text}");
        let e = api(
            400,
            "ERROR_BAD_ARRAY",
            "input parameter must be an array of objects; view documentation in your browser at http://x/apirest.php/#ERROR_BAD_ARRAY",
        );
        assert!(!e.to_string().contains("view documentation"), "{e}");
        assert_eq!(e.constant(), Some("ERROR_BAD_ARRAY"));
        assert!(e.message().unwrap().contains("view documentation"));
        let e = api(
            401,
            "ERROR_GLPI_LOGIN_USER_TOKEN",
            "parameter user_token seems invalid",
        );
        assert!(e.to_string().contains("Remote access keys"), "{e}");
        assert!(api(404, ERROR_ITEM_NOT_FOUND, "Item not found").is_not_found());
    }
}
