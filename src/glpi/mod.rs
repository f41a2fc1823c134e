//! The GLPI legacy REST API client (`…/apirest.php`), GLPI 10.0 and 11.
//!
//! One [`GlpiClient`] per GLPI instance, cloned into every worker. It owns:
//! * **one session** for all calls and clones, opened lazily with the user
//!   token, renewed once when GLPI answers `ERROR_SESSION_TOKEN_INVALID`,
//!   killed with [`GlpiClient::kill_session`] on shutdown;
//! * **pacing** (invariant 3): one rate limiter and one in-flight bound for
//!   the instance, applied to every attempt, retries and session calls
//!   included;
//! * **retries** of transient failures (connection errors, timeouts of
//!   idempotent requests, 5xx, 429 honouring `Retry-After`) with exponential
//!   backoff and jitter;
//! * **effects once** (invariant 2): a create whose answer was lost is never
//!   re-sent; it fails with [`GlpiError::is_unknown_outcome`] so the caller
//!   looks the record up first. Creates never carry an `id` (GLPI would
//!   clone that item).
//!
//! Requests always wrap data as `{"input": …}`, always send a `range` on
//! lists, and read text decoded (`X-GLPI-Sanitized-Content: false`; search
//! cells are decoded here). Tokens only travel in headers and never appear
//! in logs, errors or `Debug` output.
//!
//! Facts about GLPI's behaviour: `shared/reference/glpi-api.md`.

mod config;
mod error;
mod items;
mod pacing;
mod search;
mod session;
mod transport;

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::secret::Secret;

pub use config::{GlpiConfig, GlpiConfigError};
pub use error::{GlpiError, RequestLine, ERROR_ITEM_NOT_FOUND, ERROR_SESSION_TOKEN_INVALID};
pub use items::{
    ContactInput, Followup, FollowupInput, Requester, TicketInput, TicketUser, UserEmail,
    UserInput, ACTOR_REQUESTER,
};
pub use pacing::RetryPolicy;
pub use search::{
    decode_glpi_entities, Criterion, Link, SearchCell, SearchQuery, SearchResult, SearchRow,
    SearchType, FIELD_ID,
};

use pacing::Pacer;
use search::as_i64_lenient;
use session::{SessionLease, SessionSlot};
use transport::{Answer, Credentials, Request, Transport, Verb};

/// Rows asked for per page when listing sub-items.
const LIST_PAGE: u64 = 1000;

/// A client for one GLPI instance. Cheap to clone; clones share the session,
/// the rate limiter and the in-flight bound.
#[derive(Clone)]
pub struct GlpiClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    pacer: Pacer,
    session: SessionSlot,
    user_token: Secret,
    max_retries: u32,
    retry: RetryPolicy,
    metrics: Option<Arc<crate::observability::Metrics>>,
}

impl fmt::Debug for GlpiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlpiClient")
            .field("api_url", &self.inner.transport.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl GlpiClient {
    /// Validates `config` (URL form, https, CA bundle) and builds the
    /// client. No request is sent until the first call.
    pub fn new(config: GlpiConfig) -> Result<Self, GlpiConfigError> {
        Self::with_retry_policy(config, RetryPolicy::default())
    }

    /// Like [`new`](Self::new) with custom retry delays (tests use short ones).
    pub fn with_retry_policy(
        config: GlpiConfig,
        retry: RetryPolicy,
    ) -> Result<Self, GlpiConfigError> {
        let transport = Transport::new(&config)?;
        Ok(GlpiClient {
            inner: Arc::new(Inner {
                transport,
                pacer: Pacer::new(config.requests_per_second, config.max_in_flight),
                session: SessionSlot::new(),
                user_token: config.user_token,
                max_retries: config.max_retries,
                retry,
                metrics: config.metrics,
            }),
        })
    }

    /// The validated API base URL, ending in `/apirest.php`.
    pub fn api_url(&self) -> &str {
        self.inner.transport.base_url().as_str()
    }

    /// Creates one item; returns its id. `input` must be a JSON object
    /// without `id`.
    pub async fn create(&self, itemtype: &str, input: &Value) -> Result<i64, GlpiError> {
        check_itemtype(itemtype)?;
        let object = input.as_object().ok_or_else(|| GlpiError::InvalidInput {
            detail: format!(
                "a {itemtype} create needs a JSON object, got {}",
                kind(input)
            ),
        })?;
        if let Some(key) = ["id", "_oldID"]
            .into_iter()
            .find(|k| object.contains_key(*k))
        {
            return Err(GlpiError::InvalidInput {
                detail: format!(
                    "a {itemtype} create must not carry `{key}`: GLPI would clone the item \
                     with that id instead of creating one from the input"
                ),
            });
        }
        let request = Request::with_body(
            Verb::Post,
            format!("/{itemtype}"),
            serde_json::json!({ "input": input }),
        );
        let answer = self.call(&request).await?;
        // The item exists now; if its id cannot be read, only a lookup can
        // tell which it is.
        let unknown = |detail: String| GlpiError::UnknownOutcome {
            request: request.line(),
            cause: format!("GLPI answered {} but {detail}", answer.status),
        };
        let body = answer
            .json(&request)
            .map_err(|e| unknown(format!("the body is unreadable ({e})")))?;
        body.get("id")
            .and_then(as_i64_lenient)
            .ok_or_else(|| unknown(format!("without an id: {body}")))
    }

    /// Updates item `id` with the fields of `input` (a JSON object; an `id`
    /// in it must equal `id`).
    pub async fn update(&self, itemtype: &str, id: i64, input: &Value) -> Result<(), GlpiError> {
        check_itemtype(itemtype)?;
        let object = input.as_object().ok_or_else(|| GlpiError::InvalidInput {
            detail: format!(
                "a {itemtype} update needs a JSON object, got {}",
                kind(input)
            ),
        })?;
        if let Some(other) = object.get("id").filter(|v| as_i64_lenient(v) != Some(id)) {
            return Err(GlpiError::InvalidInput {
                detail: format!("update of {itemtype} {id} carries a different id {other}"),
            });
        }
        let request = Request::with_body(
            Verb::Put,
            format!("/{itemtype}/{id}"),
            serde_json::json!({ "input": input }),
        );
        let answer = self.call(&request).await?;
        // 200 [{"<id>": true, "message": ""}]; a false entry is a refusal.
        let body = answer.json(&request)?;
        let refused = body.as_array().and_then(|entries| {
            entries
                .iter()
                .find(|e| e.get(id.to_string()) == Some(&Value::Bool(false)))
        });
        if let Some(entry) = refused {
            return Err(GlpiError::Api {
                request: request.line(),
                status: answer.status,
                constant: "ERROR_GLPI_UPDATE".into(),
                message: entry
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// Purges item `id` (`force_purge`: types with a trash bin are removed,
    /// not trashed). Returns `false` when GLPI says the item does not exist
    /// (already deleted: a repeated delete is not an error).
    pub async fn delete(&self, itemtype: &str, id: i64) -> Result<bool, GlpiError> {
        check_itemtype(itemtype)?;
        let request = Request {
            verb: Verb::Delete,
            path: format!("/{itemtype}/{id}"),
            query: vec![("force_purge".into(), "true".into())],
            body: None,
        };
        match self.call(&request).await {
            Ok(_) => Ok(true),
            // 400 ["ERROR_GLPI_DELETE","Item not found"]
            Err(e)
                if e.constant() == Some("ERROR_GLPI_DELETE")
                    && e.message() == Some("Item not found") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads item `id` (all columns, text decoded); `None` if GLPI says it
    /// does not exist.
    pub async fn get(&self, itemtype: &str, id: i64) -> Result<Option<Value>, GlpiError> {
        check_itemtype(itemtype)?;
        let request = Request::get(format!("/{itemtype}/{id}"))
            .param("expand_dropdowns", "false")
            .param("get_hateoas", "false");
        match self.call(&request).await {
            Ok(answer) => answer.json(&request).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists the `itemtype` children of `parent` `parent_id` (e.g. a ticket's
    /// `ITILFollowup`s), all pages. A missing parent is an
    /// `ERROR_ITEM_NOT_FOUND` error, not an empty list.
    pub async fn list_sub_items(
        &self,
        parent: &str,
        parent_id: i64,
        itemtype: &str,
    ) -> Result<Vec<Value>, GlpiError> {
        check_itemtype(parent)?;
        check_itemtype(itemtype)?;
        let mut items = Vec::new();
        loop {
            let start = items.len() as u64;
            let request = Request::get(format!("/{parent}/{parent_id}/{itemtype}"))
                .param("range", format!("{}-{}", start, start + LIST_PAGE - 1))
                .param("expand_dropdowns", "false")
                .param("get_hateoas", "false");
            let answer = self.call(&request).await?;
            let page = match answer.json(&request)? {
                Value::Array(page) => page,
                other => {
                    return Err(GlpiError::InvalidResponse {
                        request: request.line(),
                        status: answer.status,
                        detail: format!("expected a list, got {}", kind(&other)),
                    })
                }
            };
            let page_len = page.len() as u64;
            items.extend(page);
            let total = answer.content_range_total();
            let more = match total {
                Some(total) => (items.len() as u64) < total,
                None => page_len == LIST_PAGE,
            };
            if !more || page_len == 0 {
                return Ok(items);
            }
        }
    }

    /// Runs a search; see [`SearchQuery`].
    pub async fn search(
        &self,
        itemtype: &str,
        query: &SearchQuery,
    ) -> Result<SearchResult, GlpiError> {
        check_itemtype(itemtype)?;
        let mut request = Request::get(format!("/search/{itemtype}"));
        request.query = query.to_query_pairs();
        let answer = self.call(&request).await?;
        let body = answer.json(&request)?;
        SearchResult::from_json(&body).map_err(|detail| GlpiError::InvalidResponse {
            request: request.line(),
            status: answer.status,
            detail,
        })
    }

    /// Opens the shared session now instead of at the first call (`check`
    /// uses it to prove the URL and tokens work; killSession ends it).
    pub async fn open_session_now(&self) -> Result<(), GlpiError> {
        self.session().await.map(|_| ())
    }

    /// Ends the shared session (call on shutdown, after the workers
    /// stopped). A later call would open a new one.
    pub async fn kill_session(&self) -> Result<(), GlpiError> {
        let Some(token) = self.inner.session.take().await else {
            return Ok(());
        };
        let request = Request::get("/killSession");
        match self.attempt(&request, Credentials::Session(&token)).await {
            Ok(_) => {
                tracing::debug!("GLPI session killed");
                Ok(())
            }
            // Already expired: nothing left to kill.
            Err(e) if e.is_session_invalid() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends `request` with the shared session, renewing it once if GLPI
    /// says it is invalid.
    async fn call(&self, request: &Request) -> Result<Answer, GlpiError> {
        let mut lease = self.session().await?;
        let mut renewed = false;
        loop {
            match self
                .attempt(request, Credentials::Session(&lease.token))
                .await
            {
                Err(e) if e.is_session_invalid() && !renewed => {
                    tracing::info!(request = %request.line(), "GLPI session no longer valid; opening a new one");
                    lease = self
                        .inner
                        .session
                        .renew(lease.generation, || self.open_session())
                        .await?;
                    renewed = true;
                }
                other => return other,
            }
        }
    }

    async fn session(&self) -> Result<SessionLease, GlpiError> {
        self.inner
            .session
            .current_or_open(|| self.open_session())
            .await
    }

    async fn open_session(&self) -> Result<Secret, GlpiError> {
        let request = Request::get("/initSession");
        let answer = self
            .attempt(&request, Credentials::UserToken(&self.inner.user_token))
            .await?;
        let body = answer.json(&request)?;
        let token = body
            .get("session_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| GlpiError::InvalidResponse {
                request: request.line(),
                status: answer.status,
                detail: "no session_token in the initSession answer".into(),
            })?;
        tracing::info!("GLPI session opened");
        Ok(Secret::new(token))
    }

    /// One request with transient retries, each attempt paced.
    async fn attempt(
        &self,
        request: &Request,
        credentials: Credentials<'_>,
    ) -> Result<Answer, GlpiError> {
        let inner = &self.inner;
        let mut retry = 0;
        loop {
            let result = {
                let _slot = inner.pacer.admit().await;
                let started = std::time::Instant::now();
                let result = inner.transport.send(request, credentials).await;
                if let Some(metrics) = &inner.metrics {
                    metrics.glpi_request(
                        &crate::observability::endpoint_label(request.line().method, &request.path),
                        attempt_outcome(&result),
                        started.elapsed(),
                    );
                }
                result
            };
            let error = match result {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            if !error.is_transient() || error.is_session_invalid() || retry >= inner.max_retries {
                if error.is_transient() && retry > 0 {
                    tracing::warn!(error = %error, attempts = retry + 1, "GLPI request failed; giving up for now");
                }
                return Err(error);
            }
            let wait = inner.retry.delay(retry, error.retry_after());
            if error.retry_after().is_some() {
                inner.pacer.pause_for(wait);
            }
            tracing::warn!(error = %error, retry = retry + 1, wait_ms = wait.as_millis() as u64, "GLPI request failed; retrying");
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }
}

/// How one attempt ended, for the request metrics.
fn attempt_outcome(result: &Result<Answer, GlpiError>) -> crate::observability::GlpiOutcome {
    use crate::observability::GlpiOutcome;
    match result {
        Ok(answer) => GlpiOutcome::from_status(answer.status),
        Err(GlpiError::RateLimited { .. }) => GlpiOutcome::RateLimited,
        Err(e) => match e.status() {
            Some(status) => GlpiOutcome::from_status(status),
            None => GlpiOutcome::TransportError,
        },
    }
}

/// Itemtypes go into the URL path: class names only.
fn check_itemtype(itemtype: &str) -> Result<(), GlpiError> {
    let valid = !itemtype.is_empty()
        && itemtype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(GlpiError::InvalidInput {
            detail: format!("`{itemtype}` is not a GLPI itemtype name"),
        })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> GlpiClient {
        GlpiClient::new(GlpiConfig::new(
            "http://127.0.0.1:9/apirest.php",
            Secret::new("user-secret"),
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn refuses_id_on_create_before_sending() {
        let c = client();
        for input in [
            serde_json::json!({"id": 5, "name": "x"}),
            serde_json::json!({"_oldID": 5}),
            serde_json::json!([{"name": "x"}]),
        ] {
            let err = c.create("Ticket", &input).await.unwrap_err();
            assert!(matches!(err, GlpiError::InvalidInput { .. }), "{err}");
            assert!(err.is_permanent());
        }
        let err = c
            .update("Ticket", 3, &serde_json::json!({"id": 4}))
            .await
            .unwrap_err();
        assert!(matches!(err, GlpiError::InvalidInput { .. }));
        let err = c.get("../initSession", 1).await.unwrap_err();
        assert!(matches!(err, GlpiError::InvalidInput { .. }));
    }

    #[test]
    fn debug_shows_no_token() {
        let text = format!("{:?}", client());
        assert!(text.contains("127.0.0.1:9"), "{text}");
        assert!(!text.contains("user-secret"), "{text}");
    }
}
