//! The operator's HTTP endpoint: `/metrics` (Prometheus text), `/healthz`
//! (the process is alive and serving) and `/readyz` (replication connected and
//! backfill done). Bound to loopback by default: the metrics name accounts and
//! volumes, not secrets, but nothing outside the host needs them unasked.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::metrics::Metrics;

/// The content type Prometheus expects for the text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The router, for tests and for embedding.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz_handler))
        .with_state(metrics)
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        metrics.render(),
    )
}

async fn readyz_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// A bound, running endpoint. Dropping it does not stop the server; call
/// [`MetricsServer::shutdown`].
pub struct MetricsServer {
    pub local_addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves in a background task. A busy port is an error
    /// that says which setting moves it.
    pub async fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<MetricsServer> {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} for /metrics: set another address with {} (or `off`)",
                crate::config::how_to_set(crate::config::Key::MetricsAddr)
            )
        })?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(metrics);
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                tracing::warn!(error = %err, "metrics endpoint stopped");
            }
        });
        tracing::info!(address = %local_addr, "serving /metrics, /healthz and /readyz");
        Ok(MetricsServer {
            local_addr,
            stop,
            task,
        })
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_metrics_health_and_readiness_on_loopback() {
        let metrics = Arc::new(Metrics::new());
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics.clone())
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr);
        let http = reqwest::Client::new();

        let health = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);

        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        assert!(ready
            .text()
            .await
            .unwrap()
            .contains("replication is not connected"));

        metrics.set_replication_connected(true);
        metrics.set_backfill_complete(true);
        metrics.set_parked_jobs(2);
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);

        let scrape = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(
            scrape.headers()[header::CONTENT_TYPE],
            PROMETHEUS_CONTENT_TYPE
        );
        let text = scrape.text().await.unwrap();
        assert!(
            text.contains("\nchatwoot_glpi_bridge_parked_jobs 2\n"),
            "{text}"
        );

        // A second server on the same port explains how to move it.
        let err = MetricsServer::start(server.local_addr, metrics)
            .await
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("BRIDGE_METRICS_ADDR"),
            "{err:#}"
        );
        server.shutdown().await;
    }
}
