//! The metrics registry: a fixed set of typed counters, gauges and one
//! histogram, rendered in Prometheus' text format (version 0.0.4) by a small
//! encoder of our own (no metrics crate: the set is small and known).
//!
//! Stages report through an `Arc<Metrics>` with typed methods; reporting is a
//! few atomic operations or one short mutex, cheap enough for every request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::counters::{RetryReason, Throughput};
use crate::chatwoot::Change;
use crate::lsn::Lsn;

/// Prefix of every metric name.
pub const PREFIX: &str = "chatwoot_glpi_bridge";

/// Upper bounds (seconds) of the GLPI latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How a GLPI request ended, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GlpiOutcome {
    /// 2xx.
    Ok,
    /// 4xx other than 401/429: GLPI refused the request (permanent).
    ClientError,
    /// 401 with an invalid or expired session (renewed and retried).
    SessionInvalid,
    /// 429.
    RateLimited,
    /// 5xx.
    ServerError,
    /// No HTTP answer: connection refused or dropped, timeout.
    TransportError,
}

impl GlpiOutcome {
    pub fn label(self) -> &'static str {
        match self {
            GlpiOutcome::Ok => "ok",
            GlpiOutcome::ClientError => "client_error",
            GlpiOutcome::SessionInvalid => "session_invalid",
            GlpiOutcome::RateLimited => "rate_limited",
            GlpiOutcome::ServerError => "server_error",
            GlpiOutcome::TransportError => "transport_error",
        }
    }

    /// The outcome of an HTTP status (401 is counted as an invalid session:
    /// the only 401 the bridge expects from GLPI).
    pub fn from_status(status: u16) -> GlpiOutcome {
        match status {
            200..=299 => GlpiOutcome::Ok,
            401 => GlpiOutcome::SessionInvalid,
            429 => GlpiOutcome::RateLimited,
            500..=599 => GlpiOutcome::ServerError,
            _ => GlpiOutcome::ClientError,
        }
    }
}

/// The endpoint label of a request: the method and the path with ids
/// replaced by `:id` and the query dropped (`GET /Ticket/:id/ITILFollowup`),
/// so the label set stays small whatever the ids.
pub fn endpoint_label(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let path = path
        .rsplit_once("/apirest.php")
        .map(|(_, rest)| rest)
        .unwrap_or(path);
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.bytes().all(|b| b.is_ascii_digit()) {
                ":id"
            } else {
                s
            }
        })
        .collect();
    format!("{} /{}", method.to_ascii_uppercase(), segments.join("/"))
}

#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Count per bucket (not cumulative; summed when rendered).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

/// Rows copied so far and the planner's estimate, for one backfilled table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableProgress {
    pub copied: u64,
    pub estimated: u64,
}

/// The registry. Create one per process with [`Metrics::new`] and share it as
/// `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    replication_connected: AtomicBool,
    slot_lag_bytes: AtomicU64,
    confirmed_lsn: AtomicU64,
    outbox_depth: AtomicU64,
    /// f64 bits.
    oldest_pending_age_seconds: AtomicU64,
    parked_jobs: AtomicU64,
    state_file_bytes: AtomicU64,
    backfill_complete: AtomicBool,
    backfill: Mutex<BTreeMap<String, TableProgress>>,
    glpi_requests: Mutex<BTreeMap<(String, GlpiOutcome), u64>>,
    glpi_latency: Mutex<BTreeMap<String, Histogram>>,
    throughput: Throughput,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a metrics lock leaves plain numbers behind: keep
    // serving them rather than poisoning every later report.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    // ---- replication -------------------------------------------------------

    /// The replication stream is connected (or not).
    pub fn set_replication_connected(&self, connected: bool) {
        self.replication_connected
            .store(connected, Ordering::Relaxed);
    }

    pub fn replication_connected(&self) -> bool {
        self.replication_connected.load(Ordering::Relaxed)
    }

    /// The LSN last confirmed to PostgreSQL. Confirmed positions only move
    /// forward, so an older report (e.g. the state file's, read just before
    /// the server's) never lowers it.
    pub fn set_confirmed_lsn(&self, lsn: Lsn) {
        self.confirmed_lsn.fetch_max(lsn.0, Ordering::Relaxed);
    }

    pub fn confirmed_lsn(&self) -> Lsn {
        Lsn(self.confirmed_lsn.load(Ordering::Relaxed))
    }

    /// WAL the server keeps for the slot: current WAL position minus the
    /// slot's confirmed position.
    pub fn set_slot_lag_bytes(&self, bytes: u64) {
        self.slot_lag_bytes.store(bytes, Ordering::Relaxed);
    }

    // ---- backfill ----------------------------------------------------------

    /// Sets one table's backfill progress.
    pub fn set_backfill_progress(&self, table: &str, progress: TableProgress) {
        lock(&self.backfill).insert(table.to_owned(), progress);
    }

    /// Adds copied rows to one table's progress.
    pub fn add_backfill_rows(&self, table: &str, rows: u64) {
        lock(&self.backfill)
            .entry(table.to_owned())
            .or_default()
            .copied += rows;
    }

    pub fn backfill_progress(&self) -> BTreeMap<String, TableProgress> {
        lock(&self.backfill).clone()
    }

    /// The first start's backfill is done (or was never needed).
    pub fn set_backfill_complete(&self, complete: bool) {
        self.backfill_complete.store(complete, Ordering::Relaxed);
    }

    pub fn backfill_complete(&self) -> bool {
        self.backfill_complete.load(Ordering::Relaxed)
    }

    // ---- outbox ------------------------------------------------------------

    /// Jobs waiting in the outbox (parked ones included).
    pub fn set_outbox_depth(&self, jobs: u64) {
        self.outbox_depth.store(jobs, Ordering::Relaxed);
    }

    /// Age of the oldest runnable job; zero when the outbox is empty.
    pub fn set_oldest_pending_age(&self, age: Duration) {
        self.oldest_pending_age_seconds
            .store(age.as_secs_f64().to_bits(), Ordering::Relaxed);
    }

    pub fn set_parked_jobs(&self, jobs: u64) {
        self.parked_jobs.store(jobs, Ordering::Relaxed);
    }

    // ---- state file --------------------------------------------------------

    /// Bytes the state file takes on disk (its `-wal` file included).
    pub fn set_state_file_bytes(&self, bytes: u64) {
        self.state_file_bytes.store(bytes, Ordering::Relaxed);
    }

    // ---- GLPI --------------------------------------------------------------

    /// One GLPI HTTP request (each retry is a request). `endpoint` should come
    /// from [`endpoint_label`].
    pub fn glpi_request(&self, endpoint: &str, outcome: GlpiOutcome, latency: Duration) {
        *lock(&self.glpi_requests)
            .entry((endpoint.to_owned(), outcome))
            .or_default() += 1;
        lock(&self.glpi_latency)
            .entry(endpoint.to_owned())
            .or_default()
            .observe(latency.as_secs_f64());
    }

    /// Requests counted for one endpoint and outcome.
    pub fn glpi_requests(&self, endpoint: &str, outcome: GlpiOutcome) -> u64 {
        lock(&self.glpi_requests)
            .get(&(endpoint.to_owned(), outcome))
            .copied()
            .unwrap_or(0)
    }

    // ---- throughput (see `counters`) ---------------------------------------

    /// Changes streamed from the slot, once committed to the change log.
    pub fn changes_received<'a>(&self, changes: impl IntoIterator<Item = &'a Change>) {
        self.throughput.changes_received(changes);
    }

    /// Changes of `table` the planner consumed, once its batch committed.
    pub fn changes_planned(&self, table: &'static str, n: u64) {
        self.throughput.changes_planned(table, n);
    }

    /// Planned changes that made no GLPI job, by reason class.
    pub fn changes_skipped(&self, reason: &'static str, n: u64) {
        self.throughput.changes_skipped(reason, n);
    }

    /// Jobs of `kind` (`JobKind::name`) the planner added to the outbox.
    pub fn jobs_enqueued(&self, kind: &'static str, n: u64) {
        self.throughput.jobs_enqueued(kind, n);
    }

    /// A job done, its result committed.
    pub fn job_completed(&self, kind: &'static str, account_id: i64) {
        self.throughput.job_completed(kind, account_id);
    }

    /// A job put back in the queue for later.
    pub fn job_retried(&self, kind: &'static str, account_id: i64, reason: RetryReason) {
        self.throughput.job_retried(kind, account_id, reason);
    }

    /// A job parked for the operator.
    pub fn job_parked(&self, kind: &'static str, account_id: i64) {
        self.throughput.job_parked(kind, account_id);
    }

    /// One write-back into `table` (`contacts`, `conversations`); `changed`
    /// is false when Chatwoot already held the ids.
    pub fn write_back(&self, table: &'static str, changed: bool) {
        self.throughput.write_back(table, changed);
    }

    /// The value of a throughput counter, by its name without the prefix
    /// (`jobs_completed_total`) and its label values in order.
    pub fn counter(&self, name: &str, label_values: &[&str]) -> u64 {
        self.throughput.get(name, label_values)
    }

    // ---- readiness ---------------------------------------------------------

    /// `Ok` when ready to serve (replication connected and backfill done),
    /// else why not.
    pub fn readiness(&self) -> Result<(), String> {
        let mut why = Vec::new();
        if !self.replication_connected() {
            why.push("replication is not connected".to_owned());
        }
        if !self.backfill_complete() {
            let (copied, estimated) = self
                .backfill_progress()
                .values()
                .fold((0, 0), |(c, e), p| (c + p.copied, e + p.estimated));
            why.push(format!(
                "backfill in progress ({copied} of about {estimated} rows copied)"
            ));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }

    // ---- encoding ----------------------------------------------------------

    /// The registry in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            header(out, name, help, "gauge");
            sample(out, name, &[], value);
        };
        let as_f = |b: bool| if b { 1.0 } else { 0.0 };

        gauge(
            &mut out,
            "replication_connected",
            "1 while the logical replication stream is connected.",
            as_f(self.replication_connected()),
        );
        gauge(
            &mut out,
            "slot_lag_bytes",
            "WAL bytes PostgreSQL keeps for the slot (current WAL position minus confirmed position).",
            self.slot_lag_bytes.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "confirmed_lsn",
            "Last LSN confirmed to PostgreSQL, as a number (PostgreSQL shows it as X/Y hex).",
            self.confirmed_lsn.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "backfill_complete",
            "1 once the first start's backfill is done.",
            as_f(self.backfill_complete()),
        );
        let backfill = self.backfill_progress();
        header(
            &mut out,
            "backfill_rows_copied",
            "Rows copied by the backfill, per table.",
            "gauge",
        );
        for (table, p) in &backfill {
            sample(
                &mut out,
                "backfill_rows_copied",
                &[("table", table)],
                p.copied as f64,
            );
        }
        header(
            &mut out,
            "backfill_rows_estimated",
            "Rows the backfill expects to copy, per table (PostgreSQL's estimate).",
            "gauge",
        );
        for (table, p) in &backfill {
            sample(
                &mut out,
                "backfill_rows_estimated",
                &[("table", table)],
                p.estimated as f64,
            );
        }
        gauge(
            &mut out,
            "outbox_depth",
            "GLPI jobs waiting in the outbox, parked ones included.",
            self.outbox_depth.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "oldest_pending_age_seconds",
            "Age of the oldest job not yet done (0 when the outbox is empty).",
            f64::from_bits(self.oldest_pending_age_seconds.load(Ordering::Relaxed)),
        );
        gauge(
            &mut out,
            "parked_jobs",
            "Jobs that failed permanently and wait for the operator (see `parked list`).",
            self.parked_jobs.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "state_file_bytes",
            "Bytes the SQLite state file takes on disk, its -wal file included.",
            self.state_file_bytes.load(Ordering::Relaxed) as f64,
        );

        header(
            &mut out,
            "glpi_requests_total",
            "GLPI HTTP requests, by endpoint and outcome (each retry counts).",
            "counter",
        );
        for ((endpoint, outcome), n) in lock(&self.glpi_requests).iter() {
            sample(
                &mut out,
                "glpi_requests_total",
                &[("endpoint", endpoint), ("outcome", outcome.label())],
                *n as f64,
            );
        }
        header(
            &mut out,
            "glpi_request_duration_seconds",
            "GLPI request latency, by endpoint.",
            "histogram",
        );
        for (endpoint, h) in lock(&self.glpi_latency).iter() {
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                sample(
                    &mut out,
                    "glpi_request_duration_seconds_bucket",
                    &[("endpoint", endpoint), ("le", &format_value(*bound))],
                    cumulative as f64,
                );
            }
            sample(
                &mut out,
                "glpi_request_duration_seconds_bucket",
                &[("endpoint", endpoint), ("le", "+Inf")],
                h.count as f64,
            );
            sample(
                &mut out,
                "glpi_request_duration_seconds_sum",
                &[("endpoint", endpoint)],
                h.sum_seconds,
            );
            sample(
                &mut out,
                "glpi_request_duration_seconds_count",
                &[("endpoint", endpoint)],
                h.count as f64,
            );
        }
        self.throughput.render(&mut out);
        out
    }
}

pub(super) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {PREFIX}_{name} {help}");
    let _ = writeln!(out, "# TYPE {PREFIX}_{name} {kind}");
}

pub(super) fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    let _ = write!(out, "{PREFIX}_{name}");
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_value(value));
}

/// Label values escape backslash, double quote and newline.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_hide_ids_and_queries() {
        assert_eq!(
            endpoint_label("get", "/apirest.php/Ticket/42/ITILFollowup/"),
            "GET /Ticket/:id/ITILFollowup"
        );
        assert_eq!(endpoint_label("POST", "/Ticket"), "POST /Ticket");
        assert_eq!(
            endpoint_label("GET", "/glpi/apirest.php/search/User?criteria[0][field]=5"),
            "GET /search/User"
        );
        assert_eq!(endpoint_label("GET", "/initSession"), "GET /initSession");
    }

    #[test]
    fn renders_prometheus_text_with_histogram() {
        let m = Metrics::new();
        m.set_confirmed_lsn(Lsn(0x1_0000_0010));
        m.set_outbox_depth(3);
        m.set_oldest_pending_age(Duration::from_millis(1500));
        m.set_backfill_progress(
            "contacts",
            TableProgress {
                copied: 0,
                estimated: 10,
            },
        );
        m.add_backfill_rows("contacts", 4);
        m.glpi_request("POST /Ticket", GlpiOutcome::Ok, Duration::from_millis(20));
        m.glpi_request("POST /Ticket", GlpiOutcome::Ok, Duration::from_millis(300));
        m.glpi_request(
            "POST /Ticket",
            GlpiOutcome::ServerError,
            Duration::from_secs(60),
        );
        m.glpi_request("a\"b", GlpiOutcome::Ok, Duration::ZERO);
        let text = m.render();
        for line in [
            "chatwoot_glpi_bridge_confirmed_lsn 4294967312",
            "chatwoot_glpi_bridge_outbox_depth 3",
            "chatwoot_glpi_bridge_oldest_pending_age_seconds 1.5",
            "chatwoot_glpi_bridge_backfill_rows_copied{table=\"contacts\"} 4",
            "chatwoot_glpi_bridge_backfill_rows_estimated{table=\"contacts\"} 10",
            "chatwoot_glpi_bridge_glpi_requests_total{endpoint=\"POST /Ticket\",outcome=\"ok\"} 2",
            "chatwoot_glpi_bridge_glpi_requests_total{endpoint=\"POST /Ticket\",outcome=\"server_error\"} 1",
            "chatwoot_glpi_bridge_glpi_request_duration_seconds_bucket{endpoint=\"POST /Ticket\",le=\"0.025\"} 1",
            "chatwoot_glpi_bridge_glpi_request_duration_seconds_bucket{endpoint=\"POST /Ticket\",le=\"0.5\"} 2",
            "chatwoot_glpi_bridge_glpi_request_duration_seconds_bucket{endpoint=\"POST /Ticket\",le=\"30\"} 2",
            "chatwoot_glpi_bridge_glpi_request_duration_seconds_bucket{endpoint=\"POST /Ticket\",le=\"+Inf\"} 3",
            "chatwoot_glpi_bridge_glpi_request_duration_seconds_count{endpoint=\"POST /Ticket\"} 3",
            "chatwoot_glpi_bridge_glpi_requests_total{endpoint=\"a\\\"b\",outcome=\"ok\"} 1",
            "# TYPE chatwoot_glpi_bridge_glpi_request_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert_eq!(m.glpi_requests("POST /Ticket", GlpiOutcome::Ok), 2);
    }

    #[test]
    fn readiness_explains_what_is_missing() {
        let m = Metrics::new();
        let why = m.readiness().unwrap_err();
        assert!(why.contains("replication is not connected"), "{why}");
        assert!(why.contains("backfill in progress"), "{why}");
        m.set_replication_connected(true);
        m.set_backfill_complete(true);
        assert!(m.readiness().is_ok());
    }
}
