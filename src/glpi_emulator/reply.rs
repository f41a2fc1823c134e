//! What GLPI's `APIRest::returnResponse`/`returnError` put on the wire: the
//! JSON body, the status, the no-cache and CORS headers, and the error
//! envelope `["ERROR_CONSTANT","message"]` with the documentation suffix on
//! exactly the constants that get it on a live GLPI 10.0.19.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    Json(Value),
    Html(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: ReplyBody,
    pub(crate) headers: Vec<(String, String)>,
}

/// The constants whose message gets "; view documentation in your browser at
/// <api_url>/#CONSTANT". 401s, ERROR_GLPI_*, ERROR_ITEM_NOT_FOUND,
/// ERROR_RIGHT_MISSING and ERROR_JSON_PAYLOAD_INVALID do not.
fn has_doc_suffix(code: &str) -> bool {
    matches!(
        code,
        "ERROR"
            | "ERROR_BAD_ARRAY"
            | "ERROR_METHOD_NOT_ALLOWED"
            | "ERROR_SESSION_TOKEN_MISSING"
            | "ERROR_LOGIN_PARAMETERS_MISSING"
            | "ERROR_LOGIN_WITH_CREDENTIALS_DISABLED"
            | "ERROR_APP_TOKEN_PARAMETERS_MISSING"
            | "ERROR_WRONG_APP_TOKEN_PARAMETER"
            | "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM"
            | "ERROR_RESOURCE_MISSING"
            | "ERROR_ITEMTYPE_NOT_FOUND_NOR_COMMONDBTM"
            | "ERROR_FIELD_NOT_FOUND"
            | "ERROR_RANGE_EXCEED_TOTAL"
            | "ERROR_JSON_PAYLOAD_FORBIDDEN"
            | "ERROR_NOT_ALLOWED_IP"
    )
}

impl Reply {
    pub(crate) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: ReplyBody::Json(body),
            headers: Vec::new(),
        }
    }

    /// A GLPI error with a text message (suffix added where GLPI adds it).
    pub(crate) fn error(api_url: &str, status: u16, code: &str, message: &str) -> Reply {
        let message = if has_doc_suffix(code) {
            format!("{message}; view documentation in your browser at {api_url}/#{code}")
        } else {
            message.to_owned()
        };
        Reply::json(status, Value::Array(vec![code.into(), message.into()]))
    }

    /// A GLPI error whose second element is not a string (bulk results, null).
    pub(crate) fn error_value(status: u16, code: &str, value: Value) -> Reply {
        Reply::json(status, Value::Array(vec![code.into(), value]))
    }

    /// What a crashed PHP or a failing reverse proxy answers.
    pub(crate) fn html(status: u16, text: String) -> Reply {
        Reply {
            status,
            body: ReplyBody::Html(text),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub(crate) fn into_response(self, cors_origin: bool) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (content_type, body) = match &self.body {
            ReplyBody::Json(v) => (
                "application/json; charset=UTF-8",
                serde_json::to_string(v).unwrap_or_default(),
            ),
            ReplyBody::Html(t) => ("text/html; charset=UTF-8", t.clone()),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        let mut put = |name: &str, value: &str| {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        };
        if matches!(self.body, ReplyBody::Json(_)) {
            if cors_origin {
                put("Access-Control-Allow-Origin", "*");
            }
            put(
                "Access-Control-Expose-Headers",
                "content-type, content-range, accept-range",
            );
        }
        for (name, value) in &self.headers {
            put(name, value);
        }
        put("Content-Type", content_type);
        if matches!(self.body, ReplyBody::Json(_)) {
            put("Cache-Control", "no-store, no-cache, must-revalidate");
            put("Expires", "Mon, 26 Jul 1997 05:00:00 GMT");
        }
        response
    }
}
