//! What the operator sees of a running bridge: metrics (a small registry and
//! its Prometheus text encoding), the `/metrics` `/healthz` `/readyz`
//! endpoint, log setup, and backfill progress.
//!
//! Stages report through a shared `Arc<Metrics>`; nothing here changes what
//! is synced.

pub mod counters;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod progress;
pub mod sampler;

pub use counters::RetryReason;
pub use http::MetricsServer;
pub use metrics::{endpoint_label, GlpiOutcome, Metrics};
pub use progress::{BackfillProgress, ProgressStyle};
