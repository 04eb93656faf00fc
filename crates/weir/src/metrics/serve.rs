//! A minimal HTTP endpoint for scrapes and health checks.
//!
//! Hand-written HTTP/1.1 over tokio's `TcpListener` rather than hyper or
//! axum: two read-only routes, one request per connection, do not justify
//! an HTTP stack in the dependency tree of every weir user.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use super::prometheus::{render, CONTENT_TYPE};
use super::{Outcome, Report};
use crate::error::guard;

/// The most a request's line and headers may take; the routes need no more.
const MAX_HEAD: usize = 8 * 1024;
/// How long one connection may take, so that idle or slow clients cannot
/// pile up.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;

/// A running metrics endpoint, made by [`serve`] or [`serve_on`]. Dropping
/// it stops the server and closes its open connections.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let handle = weir::PipelineBuilder::new().name("ingest").intake::<u32>().start();
/// handle.push_batch(0..5).await.unwrap();
/// let server: weir::metrics::MetricsServer = weir::metrics::serve(0, move || handle.metrics()).await.unwrap();
/// let mut conn = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
/// conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
/// let mut response = String::new();
/// conn.read_to_string(&mut response).await.unwrap();
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.contains(r#"weir_pipeline_items_total{pipeline="ingest",outcome="pulled"} "#));
/// drop(server); // stops serving
/// # });
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: AbortHandle,
}

impl MetricsServer {
    /// The address the server listens on (with the port the system chose
    /// when asked for port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let handle = weir::Pipeline::intake::<u32>().start();
    /// let server = weir::metrics::serve(0, move || handle.metrics()).await.unwrap();
    /// assert!(server.local_addr().ip().is_loopback());
    /// assert_ne!(server.local_addr().port(), 0);
    /// # });
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `GET /metrics` (the [`render`]ed report) and `GET /health` on
/// `127.0.0.1:port` (port 0 picks a free one: see
/// [`MetricsServer::local_addr`]). Use [`serve_on`] for another address.
///
/// `source` is called once per request for a fresh report, for example
/// `move || handle.metrics()` for a [`Handle`](crate::Handle) the server
/// may own. `/health` answers 200 `ok` unless the report's outcome is
/// [`Outcome::Failed`] (503 `failed`); other paths get 404, other methods
/// 405, malformed requests 400. The server runs on the current tokio
/// runtime until the returned [`MetricsServer`] is dropped.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let handle = weir::Pipeline::intake::<u32>().start();
/// handle.push(7).await.unwrap();
/// let server = weir::metrics::serve(0, move || handle.metrics()).await.unwrap();
///
/// let mut conn = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
/// conn.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
/// let mut response = String::new();
/// conn.read_to_string(&mut response).await.unwrap();
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.ends_with("\r\n\r\nok\n"));
/// # });
/// ```
pub async fn serve<F>(port: u16, source: F) -> io::Result<MetricsServer>
where
    F: Fn() -> Report + Send + Sync + 'static,
{
    serve_on(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), source).await
}

/// [`serve`] on any address, e.g. `0.0.0.0:9000` to be scraped from other
/// hosts.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
/// let handle = weir::Pipeline::intake::<u32>().start();
/// let server = weir::metrics::serve_on(addr, move || handle.metrics()).await.unwrap();
/// assert_eq!(server.local_addr().ip(), addr.ip());
/// # });
/// ```
pub async fn serve_on<F>(addr: SocketAddr, source: F) -> io::Result<MetricsServer>
where
    F: Fn() -> Report + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(accept(listener, Arc::new(source))).abort_handle();
    Ok(MetricsServer { addr, task })
}

async fn accept<F>(listener: TcpListener, source: Arc<F>)
where
    F: Fn() -> Report + Send + Sync + 'static,
{
    // Owned by this task, so aborting it closes every connection too.
    let mut connections = JoinSet::new();
    loop {
        if connections.len() >= MAX_CONNECTIONS {
            connections.join_next().await;
            continue;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let source = source.clone();
                    connections.spawn(async move {
                        let _ = tokio::time::timeout(CONNECTION_TIMEOUT, answer(stream, &*source)).await;
                    });
                }
                // Out of file descriptors or a connection reset before it
                // was accepted: back off rather than spin, and keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads one request and answers it; the connection closes after.
async fn answer(mut stream: TcpStream, source: &(dyn Fn() -> Report + Send + Sync)) {
    let response = match read_head(&mut stream).await {
        Ok(Some(head)) => respond(&head, source),
        Ok(None) => Response::text(400, "bad request\n"),
        Err(_) => return,
    };
    let _ = stream.write_all(&response.into_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The request line and headers, or `None` when they are too long or the
/// client closed before the blank line that ends them.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn respond(head: &[u8], source: &(dyn Fn() -> Report + Send + Sync)) -> Response {
    let Some((method, path)) = request_line(head) else {
        return Response::text(400, "bad request\n");
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Response::text(405, "method not allowed\n").header("Allow", "GET, HEAD"),
    };
    let response = match path {
        "/metrics" | "/health" => match guard(source) {
            Ok(report) if path == "/metrics" => Response {
                content_type: CONTENT_TYPE,
                ..Response::text(200, &render(&report))
            },
            Ok(report) if report.outcome == Outcome::Failed => Response::text(503, "failed\n"),
            Ok(_) => Response::text(200, "ok\n"),
            Err(_) => Response::text(500, "the metrics source panicked\n"),
        },
        _ => Response::text(404, "not found\n"),
    };
    Response {
        head_only,
        ..response
    }
}

/// The method and path (without the query) of a well-formed HTTP/1.x
/// request line.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let head = std::str::from_utf8(head).ok()?;
    let line = head.split("\r\n").next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
        || !version.starts_with("HTTP/1.")
    {
        return None;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Some((method, path))
}

struct Response {
    status: u16,
    content_type: &'static str,
    extra: Option<(&'static str, &'static str)>,
    body: String,
    /// A HEAD request: the GET response's headers without its body.
    head_only: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            extra: None,
            body: body.to_owned(),
            head_only: false,
        }
    }

    fn header(self, name: &'static str, value: &'static str) -> Response {
        Response {
            extra: Some((name, value)),
            ..self
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if let Some((name, value)) = self.extra {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}
