//! A GLPI emulator: an in-process HTTP server that answers like GLPI 10.0.19
//! (or 11 with [`GlpiVersion::V11`]) for the subset of the legacy REST API
//! (`apirest.php`) the bridge uses — see `shared/reference/glpi-api.md`.
//!
//! It is a product feature (the `glpi-sandbox` subcommand) as well as the GLPI
//! every test talks to, so it keeps one rule: **refuse what GLPI refuses, and
//! answer byte-for-byte what GLPI answers** (error constants, doc suffixes,
//! status codes, the clone-on-`id` trap, HTML encoding on 10). Faults
//! ([`Fault`]) let tests exercise retries, lost responses and expired sessions.
//!
//! Layout: `server` (listener, connection drops, recording, faults), `api`
//! (GLPI's dispatcher and check order), `params` (query/body parsing like PHP),
//! `reply` (envelopes and headers), `session`, `store` + `schema` (rows),
//! `create`/`prepare`/`actors`/`update`/`read` (item CRUD), `search` +
//! `search_options` + `text_match`, `sanitize` (GLPI 10's `&#60;` encoding),
//! `summary` (what `glpi-sandbox` prints).
//!
//! Traps it reproduces on purpose, because GLPI has them:
//! - an `id` in a POST clones that row (User, Contact, Ticket, ITILFollowup;
//!   without a new `name` the copy is "<name> (copy)"); a free id is used as is;
//! - `_useremails` keys > 0 name UserEmail rows: in a JSON *list*, index 1
//!   can overwrite the user's own first address — send an object with
//!   negative keys (`{"-1": …}`) for several addresses;
//! - a rights failure on create is a 400 `ERROR_GLPI_ADD`, not a 403;
//! - `equals` on a joined search field (User email, option 5) compares ids;
//! - users without a profile in the active entities are hidden (list, search,
//!   403 on read) unless the session sees every entity.
//!
//! Simplifications: one API profile (Super-Admin) with every right except
//! creating outside `writable_entities`; entities are the root and its direct
//! children; no groups, suppliers, categories, locations, documents or
//! business rules; sessions never expire on their own (use
//! [`Fault::InvalidateSessions`]); search display preferences (columns shown
//! without `forcedisplay`) are approximations.

mod actors;
mod api;
mod create;
mod faults;
mod params;
mod prepare;
mod read;
mod reply;
mod sanitize;
mod schema;
mod search;
mod search_options;
mod server;
mod session;
mod store;
mod summary;
mod text_match;
mod update;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use faults::Fault;
pub use server::{redact_query, RecordedRequest};

/// Which GLPI major version to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GlpiVersion {
    /// GLPI 10.0.x: input strings are stored with `<`, `>`, `&` as `&#60;`,
    /// `&#62;`, `&#38;` and returned encoded unless
    /// `X-GLPI-Sanitized-Content: false` is sent; no Ticket `externalid`.
    #[default]
    V10,
    /// GLPI 11.x: stored and returned raw; Ticket has `externalid` (option 87).
    V11,
}

/// How the emulated GLPI is set up.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// `None` = the API client has no app token (then sending one is an error,
    /// as in GLPI).
    pub app_token: Option<String>,
    /// Users that can `initSession` with their user_token.
    pub users: Vec<ApiUser>,
    pub version: GlpiVersion,
    /// Entities the API user may create in; others answer 400
    /// `ERROR_GLPI_ADD` "You don't have permission to perform this action.".
    pub writable_entities: Vec<i64>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            app_token: Some("emulator-app-token".to_owned()),
            users: vec![ApiUser {
                id: 2,
                login: "glpi".to_owned(),
                user_token: "emulator-user-token".to_owned(),
            }],
            version: GlpiVersion::V10,
            writable_entities: vec![0],
        }
    }
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("app_token", &self.app_token.as_ref().map(|_| "[redacted]"))
            .field("users", &self.users)
            .field("version", &self.version)
            .field("writable_entities", &self.writable_entities)
            .finish()
    }
}

/// A GLPI user that can open API sessions (it also exists as a User row).
#[derive(Clone)]
pub struct ApiUser {
    pub id: i64,
    pub login: String,
    pub user_token: String,
}

impl fmt::Debug for ApiUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiUser")
            .field("id", &self.id)
            .field("login", &self.login)
            .field("user_token", &"[redacted]")
            .finish()
    }
}

/// State shared by the HTTP handlers and the test-facing handle.
pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    pub(crate) api_url: String,
    pub(crate) glpi: Mutex<store::Glpi>,
    pub(crate) faults: Mutex<faults::FaultQueue>,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) max_in_flight: AtomicUsize,
}

/// A running emulator. Cheap to clone; every clone sees the same GLPI.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
    server: Arc<server::ServerHandle>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("api_url", &self.shared.api_url)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the GLPI emulator: {e}"))?;
        let local = listener.local_addr()?;
        let api_url = format!("http://{local}/apirest.php");
        let glpi = store::Glpi::new(&config);
        let shared = Arc::new(Shared {
            config,
            api_url,
            glpi: Mutex::new(glpi),
            faults: Mutex::new(faults::FaultQueue::default()),
            requests: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let server = server::serve(listener, shared.clone());
        Ok(Emulator {
            shared,
            server: Arc::new(server),
        })
    }

    /// `http://127.0.0.1:PORT/apirest.php`
    pub fn api_url(&self) -> String {
        self.shared.api_url.clone()
    }

    /// Every request, in arrival order (a request still being answered, or
    /// whose connection was dropped, has `status` 0).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Queues a fault; see [`Fault`] for how each one applies.
    pub fn inject(&self, fault: Fault) {
        let mut faults = lock(&self.shared.faults);
        if matches!(fault, Fault::InvalidateSessions) {
            drop(faults);
            lock(&self.shared.glpi).sessions.invalidate_all();
        } else {
            faults.push(fault);
        }
    }

    pub fn clear_faults(&self) {
        *lock(&self.shared.faults) = faults::FaultQueue::default();
    }

    /// Rows as stored (all columns, GLPI 10 encoding included), ordered by id.
    /// `itemtype` is case-insensitive; an unknown one gives an empty list.
    pub fn items(&self, itemtype: &str) -> Vec<serde_json::Value> {
        let glpi = lock(&self.shared.glpi);
        match schema::ItemType::from_name(itemtype) {
            Some(t) => glpi
                .table(t)
                .values()
                .map(|r| serde_json::Value::Object(r.clone()))
                .collect(),
            None => Vec::new(),
        }
    }

    pub fn item(&self, itemtype: &str, id: i64) -> Option<serde_json::Value> {
        let glpi = lock(&self.shared.glpi);
        let t = schema::ItemType::from_name(itemtype)?;
        glpi.table(t)
            .get(&id)
            .map(|r| serde_json::Value::Object(r.clone()))
    }

    pub fn active_sessions(&self) -> usize {
        lock(&self.shared.glpi).sessions.len()
    }

    /// Highest number of requests seen inside the handler at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// What clients created so far: counts per item type, then one line per
    /// item (what `glpi-sandbox` prints on Ctrl-C).
    pub fn created_summary(&self) -> String {
        summary::created_summary(&lock(&self.shared.glpi))
    }

    /// Stops accepting connections and closes open ones.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not make
/// the emulator unusable for the assertions that follow.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
