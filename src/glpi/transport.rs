//! One HTTP exchange with GLPI: URL and query building, headers (tokens only
//! in headers, marked sensitive), TLS (rustls, certificate verification,
//! optional extra CA bundle), and the mapping of every failure to a classed
//! [`GlpiError`]. Pacing, retries and sessions are the caller's
//! (`mod.rs`); this file never retries.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use url::Url;

use crate::secret::Secret;

use super::config::{GlpiConfig, GlpiConfigError};
use super::error::{GlpiError, RequestLine};
use super::pacing::parse_retry_after;

/// HTTP methods the client uses. Only `Post` is not idempotent (a repeated
/// `Delete` finds the item gone, which the client takes as done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }
}

/// A request below `apirest.php`, without credentials.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) verb: Verb,
    /// Starts with `/`, e.g. `/Ticket/5/ITILFollowup`.
    pub(crate) path: String,
    /// Key/value pairs; keys are our own ASCII (`criteria[0][field]`), values
    /// are percent-encoded when the URL is built.
    pub(crate) query: Vec<(String, String)>,
    /// Sent as the JSON body (`{"input": …}` is the caller's job).
    pub(crate) body: Option<serde_json::Value>,
}

impl Request {
    pub(crate) fn get(path: impl Into<String>) -> Self {
        Request {
            verb: Verb::Get,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn with_body(verb: Verb, path: impl Into<String>, body: serde_json::Value) -> Self {
        Request {
            verb,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
        }
    }

    pub(crate) fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    pub(crate) fn line(&self) -> RequestLine {
        RequestLine {
            method: self.verb.as_str(),
            path: self.path.clone(),
        }
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub(crate) enum Credentials<'a> {
    /// `initSession`: `Authorization: user_token …`.
    UserToken(&'a Secret),
    /// Every other call: `Session-Token: …`.
    Session(&'a Secret),
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The body as JSON; a non-JSON success body is an error.
    pub(crate) fn json(&self, request: &Request) -> Result<serde_json::Value, GlpiError> {
        serde_json::from_slice(&self.body).map_err(|e| GlpiError::InvalidResponse {
            request: request.line(),
            status: self.status,
            detail: format!("not JSON ({e})"),
        })
    }

    /// `Content-Range: start-end/total` → total.
    pub(crate) fn content_range_total(&self) -> Option<u64> {
        let value = self.headers.get("content-range")?.to_str().ok()?;
        value.rsplit_once('/')?.1.trim().parse().ok()
    }
}

/// The HTTP side of one GLPI instance.
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    app_token: Option<Secret>,
    timeout: Duration,
    /// Secrets scrubbed from any server text quoted in an error.
    scrub: Vec<Secret>,
}

impl Transport {
    pub(crate) fn new(config: &GlpiConfig) -> Result<Self, GlpiConfigError> {
        let base = config.validated_base_url()?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            // GLPI never redirects API calls; following one would re-send the
            // tokens elsewhere and turn a POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            // Every retry is ours, so it is paced and counted.
            .retry(reqwest::retry::never())
            .pool_max_idle_per_host(config.max_in_flight)
            .user_agent(concat!("chatwoot-glpi-bridge/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path).map_err(|e| GlpiConfigError::CaCertUnreadable {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                GlpiConfigError::CaCertUnreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
            if certs.is_empty() {
                return Err(GlpiConfigError::CaCertEmpty { path: path.clone() });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| GlpiConfigError::HttpClient(e.to_string()))?;
        let mut scrub = vec![config.user_token.clone()];
        scrub.extend(config.app_token.clone());
        Ok(Transport {
            http,
            base,
            app_token: config.app_token.clone(),
            timeout: config.timeout,
            scrub,
        })
    }

    pub(crate) fn base_url(&self) -> &Url {
        &self.base
    }

    /// `<base><path>?<query>`; values percent-encoded so that e.g. a literal
    /// `+` arrives as `+` (sent as `%2B`), brackets in keys left as PHP
    /// expects them.
    pub(crate) fn url_for(&self, request: &Request) -> Url {
        let mut text = format!("{}{}", self.base.as_str(), request.path);
        if !request.query.is_empty() {
            text.push('?');
            text.push_str(&encode_query(&request.query));
        }
        Url::parse(&text).expect("base URL plus a validated path is a URL")
    }

    /// Sends one request and reads the whole answer. Any non-2xx answer, and
    /// a 2xx answer carrying GLPI's error array (207 partial failures),
    /// becomes an error.
    pub(crate) async fn send(
        &self,
        request: &Request,
        credentials: Credentials<'_>,
    ) -> Result<Answer, GlpiError> {
        let url = self.url_for(request);
        let method = match request.verb {
            Verb::Get => reqwest::Method::GET,
            Verb::Post => reqwest::Method::POST,
            Verb::Put => reqwest::Method::PUT,
            Verb::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(app_token) = &self.app_token {
            builder = builder.header("App-Token", sensitive(app_token.expose())?);
        }
        builder = match credentials {
            Credentials::UserToken(token) => builder.header(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("user_token {}", token.expose()))?,
            ),
            Credentials::Session(token) => {
                builder.header("Session-Token", sensitive(token.expose())?)
            }
        };
        if request.verb == Verb::Get {
            // GLPI 10 returns stored text HTML-encoded unless told otherwise
            // (ignored by GLPI 11, which stores raw text).
            builder = builder.header("X-GLPI-Sanitized-Content", "false");
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body).expect("JSON values serialise"));
        }

        let started = Instant::now();
        let response = builder
            .send()
            .await
            .map_err(|e| self.transport_error(request, &e, false))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(request, &e, (200..300).contains(&status)))?;
        tracing::debug!(
            method = request.verb.as_str(),
            path = %request.path,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "GLPI request"
        );
        let answer = Answer {
            status,
            headers,
            body,
        };
        if (200..300).contains(&status) {
            if let Some((constant, message)) = parse_glpi_error(&answer.body) {
                return Err(GlpiError::Api {
                    request: request.line(),
                    status,
                    constant,
                    message: self.scrubbed(message),
                });
            }
            return Ok(answer);
        }
        Err(self.status_error(request, &answer))
    }

    /// Maps an error status to a [`GlpiError`]. A create answered with a
    /// gateway or server error (other than 503 "not processed") may still
    /// have been applied behind the proxy or before PHP failed: unknown
    /// outcome, never a blind retry.
    fn status_error(&self, request: &Request, answer: &Answer) -> GlpiError {
        let status = answer.status;
        let line = request.line();
        let error = if status == 429 {
            GlpiError::RateLimited {
                request: line,
                retry_after: answer
                    .headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after),
            }
        } else if let Some((constant, message)) = parse_glpi_error(&answer.body) {
            GlpiError::Api {
                request: line,
                status,
                constant,
                message: self.scrubbed(message),
            }
        } else {
            let mut excerpt = body_excerpt(&answer.body);
            if (300..400).contains(&status) {
                if let Some(location) = answer.headers.get(reqwest::header::LOCATION) {
                    excerpt = format!(
                        "redirect to {} (set the API URL to the final address)",
                        String::from_utf8_lossy(location.as_bytes())
                    );
                }
            }
            GlpiError::Http {
                request: line,
                status,
                excerpt: self.scrubbed(excerpt),
            }
        };
        if request.verb == Verb::Post && status >= 500 && status != 503 {
            return GlpiError::UnknownOutcome {
                request: request.line(),
                cause: error.to_string(),
            };
        }
        error
    }

    /// Maps a reqwest failure. `answered_ok`: a 2xx status came back but the
    /// body was lost — for a create, the item exists.
    fn transport_error(
        &self,
        request: &Request,
        error: &reqwest::Error,
        answered_ok: bool,
    ) -> GlpiError {
        let detail = self.scrubbed(error_chain(error));
        let line = request.line();
        if error.is_connect() && !answered_ok {
            // Nothing reached GLPI: safe to retry, even a create.
            return GlpiError::Connection {
                request: line,
                detail,
            };
        }
        if request.verb == Verb::Post {
            let cause = if error.is_timeout() {
                format!("no answer within {} s", self.timeout.as_secs_f32())
            } else {
                format!("the connection broke before the answer was complete ({detail})")
            };
            return GlpiError::UnknownOutcome {
                request: line,
                cause,
            };
        }
        if error.is_timeout() {
            GlpiError::Timeout {
                request: line,
                after: self.timeout,
            }
        } else {
            GlpiError::Connection {
                request: line,
                detail,
            }
        }
    }

    fn scrubbed(&self, mut text: String) -> String {
        for secret in &self.scrub {
            if !secret.is_empty() && text.contains(secret.expose()) {
                text = text.replace(secret.expose(), "[redacted]");
            }
        }
        text
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, GlpiError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| GlpiError::InvalidInput {
        detail: "a GLPI token contains characters not allowed in an HTTP header \
                 (check for a stray newline or quote in the token setting)"
            .into(),
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// `reqwest::Error` and its sources, without the URL (the URL holds no
/// token, but the path alone is already in the error).
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = e.source();
    }
    if let Some(url) = error.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    text
}

/// Query string with PHP-style keys and strictly encoded values.
pub(crate) fn encode_query(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        debug_assert!(key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"[]_-".contains(&b)));
        out.push_str(key);
        out.push('=');
        out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
    }
    out
}

/// GLPI's error body: `["ERROR_…", message]`, message a string, `null`
/// (PUT on a missing id) or a per-item list (bulk calls).
pub(crate) fn parse_glpi_error(body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let array = value.as_array()?;
    let constant = array.first()?.as_str()?;
    if !constant.starts_with("ERROR") {
        return None;
    }
    let message = match array.get(1) {
        Some(serde_json::Value::String(s)) => s.clone(),
        None | Some(serde_json::Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    Some((constant.to_owned(), message))
}

/// The start of a non-GLPI error body, tags removed, on one line.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            _ if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let mut excerpt = words.join(" ");
    if excerpt.chars().count() > 200 {
        excerpt = excerpt.chars().take(200).collect::<String>() + "…";
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        let pairs = vec![
            ("criteria[0][value]".to_owned(), "^a+b_c@x.org$".to_owned()),
            ("range".to_owned(), "0-999".to_owned()),
            ("x".to_owned(), "é &=%/?#".to_owned()),
        ];
        assert_eq!(
            encode_query(&pairs),
            "criteria[0][value]=%5Ea%2Bb_c%40x.org%24&range=0-999&x=%C3%A9+%26%3D%25%2F%3F%23"
        );
    }

    #[test]
    fn url_keeps_brackets_and_encoding() {
        let mut config = GlpiConfig::new("http://127.0.0.1:1/glpi/apirest.php", Secret::new("u"));
        config.max_in_flight = 1;
        let transport = Transport::new(&config).unwrap();
        let request = Request::get("/search/User").param("criteria[0][value]", "^a+b$");
        assert_eq!(
            transport.url_for(&request).as_str(),
            "http://127.0.0.1:1/glpi/apirest.php/search/User?criteria[0][value]=%5Ea%2Bb%24"
        );
    }

    #[test]
    fn glpi_error_bodies() {
        assert_eq!(
            parse_glpi_error(br#"["ERROR_GLPI_ADD","Unable to add. The user already exists."]"#),
            Some((
                "ERROR_GLPI_ADD".into(),
                "Unable to add. The user already exists.".into()
            ))
        );
        assert_eq!(
            parse_glpi_error(br#"["ERROR_GLPI_UPDATE",null]"#),
            Some(("ERROR_GLPI_UPDATE".into(), String::new()))
        );
        let (c, m) =
            parse_glpi_error(br#"["ERROR_GLPI_PARTIAL_UPDATE",[{"3":true,"message":""}]]"#)
                .unwrap();
        assert_eq!(c, "ERROR_GLPI_PARTIAL_UPDATE");
        assert!(m.contains("\"3\":true"));
        assert_eq!(parse_glpi_error(br#"[{"1":true,"message":""}]"#), None);
        assert_eq!(parse_glpi_error(b"<html>502</html>"), None);
    }

    #[test]
    fn excerpt_strips_tags() {
        assert_eq!(
            body_excerpt(b"<html><body><h1>502 Bad Gateway</h1>\n<hr>nginx</body></html>"),
            "502 Bad Gateway nginx"
        );
    }

    #[test]
    fn ca_bundle_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let mut config = GlpiConfig::new("https://glpi.example.com/apirest.php", Secret::new("u"));
        config.ca_cert = Some(path.clone());
        let err = Transport::new(&config)
            .err()
            .expect("an empty bundle is refused");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        config.ca_cert = Some(dir.path().join("missing.pem"));
        let err = Transport::new(&config).err().unwrap();
        assert!(
            matches!(err, GlpiConfigError::CaCertUnreadable { .. }),
            "{err}"
        );
    }
}
