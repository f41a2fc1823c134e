//! The HTTP side: a listener whose connections can be cut mid-request (for
//! `DropConnections`/`CommitThenDrop`), request recording, the in-flight
//! counter, latency and counted faults, then hand-off to [`super::api`].
//! Latency is awaited outside every lock, so slow requests still overlap.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::Response;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::faults::Interception;
use super::reply::Reply;
use super::{api, lock, Shared};

/// One request as the emulator received it. Its `Debug` output hides the
/// tokens (App-Token, Session-Token, Authorization, `*token*` query values).
#[derive(Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// The path after `/apirest.php`, e.g. `/Ticket/3`.
    pub path: String,
    /// The raw query string (without `?`), `""` when none.
    pub query: String,
    /// Header names in lower case, values as sent.
    pub headers: Vec<(String, String)>,
    /// The body as JSON, or as a JSON string when it is not JSON; `None` when empty.
    pub body: Option<serde_json::Value>,
    /// The status answered; 0 while in progress or when the connection was dropped.
    pub status: u16,
    pub at: Instant,
    /// The injected fault that hit this request, e.g. `"DropConnections"`.
    pub fault: Option<String>,
}

impl std::fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = matches!(k.as_str(), "app-token" | "session-token" | "authorization");
                (k.as_str(), if secret { "[redacted]" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &redact_query(&self.query))
            .field("headers", &headers)
            .field("body", &self.body)
            .field("status", &self.status)
            .field("at", &self.at)
            .field("fault", &self.fault)
            .finish()
    }
}

/// Hides the value of any query parameter whose name mentions a token.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.to_ascii_lowercase().contains("token") => {
                format!("{name}=[redacted]")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Lets a handler cut its own connection: once killed, reads see EOF and
/// writes fail, so hyper closes the socket without sending the response.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnKill(Arc<AtomicBool>);

impl ConnKill {
    fn kill(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn is_killed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

pub(crate) struct KillableListener(TcpListener);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = ConnKill;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let kill = ConnKill::default();
                    return (
                        KillableStream {
                            inner: stream,
                            kill: kill.clone(),
                        },
                        kill,
                    );
                }
                // e.g. too many open files: wait instead of spinning
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ConnKill::default())
    }
}

pub(crate) struct KillableStream {
    inner: TcpStream,
    kill: ConnKill,
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.kill.is_killed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.is_killed() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub(crate) struct ServerHandle {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ServerHandle {
    pub(crate) async fn shutdown(&self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
        let task = lock(&self.task).take();
        if let Some(mut task) = task {
            // Graceful first (idle keep-alive connections close at once);
            // a request stuck in injected latency must not hang a test.
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

pub(crate) fn serve(listener: TcpListener, shared: Arc<Shared>) -> ServerHandle {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let app = Router::new().fallback(handle).with_state(shared);
    let service = app.into_make_service_with_connect_info::<ConnKill>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(KillableListener(listener), service)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
    });
    ServerHandle {
        stop: Mutex::new(Some(stop_tx)),
        task: Mutex::new(Some(task)),
    }
}

/// Counts a request as in flight for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnKill>,
    request: Request,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let full_path = parts.uri.path().to_owned();
    let path = full_path
        .strip_prefix("/apirest.php")
        .unwrap_or(&full_path)
        .to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let method = parts.method.as_str().to_owned();
    let recorded_body = if body.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned().into()),
        )
    };
    let index = {
        let mut requests = lock(&shared.requests);
        requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            headers: headers.clone(),
            body: recorded_body,
            status: 0,
            at: Instant::now(),
            fault: None,
        });
        requests.len() - 1
    };
    let finish = |status: u16, fault: Option<&str>| {
        if let Some(r) = lock(&shared.requests).get_mut(index) {
            r.status = status;
            r.fault = fault.map(str::to_owned);
        }
    };

    let _in_flight = InFlight::enter(&shared);
    let latency = lock(&shared.faults).latency();
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    let cors = headers.iter().any(|(k, _)| k == "origin");
    let interception = lock(&shared.faults).intercept();
    match interception {
        Some(Interception::Drop) => {
            conn.kill();
            finish(0, Some("DropConnections"));
            return Reply::html(500, String::new()).into_response(false);
        }
        Some(Interception::Status(status)) => {
            finish(status, Some("ServerErrors"));
            return Reply::html(status, server_error_page(status)).into_response(false);
        }
        Some(Interception::TooMany { retry_after_secs }) => {
            finish(429, Some("TooManyRequests"));
            return Reply::html(429, server_error_page(429))
                .with_header("Retry-After", retry_after_secs.to_string())
                .into_response(false);
        }
        None => {}
    }

    if !full_path.starts_with("/apirest.php") {
        finish(404, None);
        return Reply::html(404, server_error_page(404)).into_response(false);
    }
    let request = api::ApiRequest {
        method: &method,
        path: &path,
        query: &query,
        headers: &headers,
        body: &body,
    };
    let outcome = api::handle(&shared, &request);
    if let Some(created) = outcome.created {
        if lock(&shared.faults).take_commit_then_drop(created.name()) {
            conn.kill();
            finish(0, Some("CommitThenDrop"));
            return Reply::html(500, String::new()).into_response(false);
        }
    }
    finish(outcome.reply.status, None);
    outcome.reply.into_response(cors)
}

fn server_error_page(status: u16) -> String {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!("<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>\n")
}
