//! HTTP front. Every connection's request head is read by [`front`]: a
//! `GET /stream.mp3` (with ICY metadata on request) becomes a listener,
//! served by the hub's delivery shards; everything else — `/listen.m3u`,
//! `/listen.pls`, `/status` (JSON), `/metrics` (Prometheus), `/events`
//! (Server-Sent Events), the player page at `/` — is served by
//! hyper 1 over HTTP/1.x, one tokio task per connection.
//!
//! The stream response is sent as HTTP/1.0, close-delimited (no chunked
//! encoding), exactly like Icecast, so every player reads plain MP3 bytes.

mod admin;
mod api;
mod events;
pub mod front;
mod icy;
mod metrics;
mod pages;
pub mod status;

pub use icy::{metadata_block, IcyWriter};
pub use status::{Status, StatusSource};

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broadcast::Hub;
use crate::config::Config;

type Body = BoxBody<Bytes, Infallible>;

/// Kernel send buffer per socket (Linux doubles it). Small, so a stalled
/// listener's backlog shows up as lag (and gets it dropped) within seconds
/// instead of hiding megabytes in the kernel: 32 KiB is 2 s at 128 kbps.
/// Room for the burst: it goes out in one go.
const LISTENER_SNDBUF: usize = 32 * 1024;

/// hyper's per-connection buffer (its minimum). Body chunks queue here
/// before the socket; kept small for the same reason as the send buffer.
const CONN_BUF: usize = 8192;

/// How long shutdown waits for connections to finish cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What request handlers need.
pub struct HttpState {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub status: StatusSource,
    /// The latest status snapshot (see [`status`]).
    pub published: watch::Receiver<Arc<status::Published>>,
    /// Asks the publisher for a new snapshot now (after a change).
    pub republish: Arc<tokio::sync::Notify>,
    /// The dashboard's plots.
    pub history: status::History,
    /// Further mounts, by path.
    pub mounts: Vec<Arc<crate::broadcast::mount::Mount>>,
    /// Asks the indexer for a rescan (the admin API).
    pub rescan: Option<crossbeam_channel::Sender<()>>,
    /// Switches the active plugin (the admin API).
    pub plugins: Option<crate::ordering::PluginSwitch>,
    /// When each client last had a request accepted (the cooldown).
    pub request_times: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, std::time::Instant>>,
    pub hls: Arc<crate::broadcast::hls::Hls>,
}

impl HttpState {
    /// The latest published status.
    pub fn published(&self) -> Arc<status::Published> {
        self.published.borrow().clone()
    }

    /// After a change (a request, a plugin switch): waits for a snapshot
    /// that shows it, so the next read does.
    pub async fn refreshed(&self) {
        let mut next = self.published.clone();
        next.mark_unchanged();
        self.republish.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(1), next.changed()).await;
    }
}

/// Binds `addr` with a listen backlog of `backlog` connections (a flash
/// crowd waits in the kernel's queue rather than being refused).
pub fn bind(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until `shutdown` turns true, then lets open
/// connections finish (streams end when the hub closes).
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::supervise::stopped(&mut shutdown) => break,
        };
        while conns.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(LISTENER_SNDBUF);
        let state = state.clone();
        let shutdown = shutdown.clone();
        conns.spawn(connection(stream, peer, state, shutdown));
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

/// One connection: a listener for the shards, or hyper's.
async fn connection(mut stream: tokio::net::TcpStream, peer: std::net::SocketAddr, state: Arc<HttpState>, mut shutdown: watch::Receiver<bool>) {
    let prefix = match front::read_head(&mut stream, &state.mounts).await {
        None => return,
        Some(front::Route::Stream(req)) => return front::stream(&state, stream, peer, req).await,
        Some(front::Route::Hyper(prefix)) => prefix,
    };
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&state, req, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(front::HEAD_TIMEOUT)
        .max_buf_size(CONN_BUF)
        .serve_connection(TokioIo::new(front::Rewind::new(prefix, stream)), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = crate::supervise::stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

async fn route(state: &Arc<HttpState>, req: Request<Incoming>, peer: std::net::SocketAddr) -> Response<Body> {
    let path = req.uri().path();
    if path.starts_with("/admin/") {
        return admin::route(state, req).await;
    }
    if path == "/api/requests" && req.method() == Method::POST {
        return api::request(state, req, peer.ip()).await;
    }
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    let response = match path {
        // A stream asked for on a connection that served something else
        // first: once more, on a connection of its own.
        "/stream.mp3" | "/stream" => Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, path)
            .header(header::CONNECTION, "close")
            .body(Empty::new().boxed())
            .expect("valid response"),
        "/listen.m3u" => playlist_m3u(state, &req),
        "/listen.pls" => playlist_pls(state, &req),
        "/status" => {
            let mut r = json_bytes(state.published().public.clone());
            r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, header::HeaderValue::from_static("*"));
            r
        }
        "/api/tracks" => api::tracks(state, &req),
        p if p.starts_with("/api/artwork/") => api::artwork(state, &p["/api/artwork/".len()..]).await,
        "/admin" => html(pages::ADMIN),
        p if p.starts_with("/static/") => pages::asset(&p["/static/".len()..]).unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n")),
        "/hls/live.m3u8" => match state.hls.playlist() {
            Some(m) => {
                let mut r = with_type("application/vnd.apple.mpegurl", m);
                r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=1"));
                r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, header::HeaderValue::from_static("*"));
                r
            }
            None => text(StatusCode::SERVICE_UNAVAILABLE, "the first segment is not ready yet\n"),
        },
        p if p.starts_with("/hls/") => match p["/hls/".len()..].strip_suffix(".ts").and_then(|n| n.parse().ok()).and_then(|n| state.hls.segment(n)) {
            Some(data) => Response::builder()
                .header(header::CONTENT_TYPE, "video/mp2t")
                .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
                .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
                .body(Full::new(data).boxed())
                .expect("valid response"),
            None => text(StatusCode::NOT_FOUND, "no such segment (gone, or not made yet)\n"),
        },
        "/events" => Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .header("X-Accel-Buffering", "no")
            .body(events::body(state.clone()))
            .expect("valid response"),
        "/metrics" => {
            let text = metrics::render(&state.status.stats, &state.hub, state.config.stream.bitrate_kbps);
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            if accept.contains("application/openmetrics-text") {
                with_type("application/openmetrics-text; version=1.0.0; charset=utf-8", text)
            } else {
                with_type("text/plain; version=0.0.4; charset=utf-8", metrics::classic(&text))
            }
        }
        "/" | "/index.html" => html(&pages::player(&state.config.server.station_name)),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if head {
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Empty::new().boxed());
    }
    response
}

/// The stream URL as the client reached us (its Host header).
fn stream_url(req: &Request<Incoming>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)))
        .unwrap_or("localhost:8000");
    format!("http://{host}/stream.mp3")
}

fn playlist_m3u(state: &HttpState, req: &Request<Incoming>) -> Response<Body> {
    let body = format!("#EXTM3U\n#EXTINF:-1,{}\n{}\n", state.config.server.station_name, stream_url(req));
    with_type("audio/x-mpegurl", body)
}

fn playlist_pls(state: &HttpState, req: &Request<Incoming>) -> Response<Body> {
    let body = format!(
        "[playlist]\nNumberOfEntries=1\nFile1={}\nTitle1={}\nLength1=-1\nVersion=2\n",
        stream_url(req),
        state.config.server.station_name
    );
    with_type("audio/x-scpls", body)
}

pub(crate) fn header_safe(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).collect()
}

fn with_type(content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("valid response")
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = with_type("text/plain; charset=utf-8", body.to_string());
    *r.status_mut() = status;
    r
}

fn json<T: serde::Serialize>(value: &T) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(value).expect("serialisable");
    body.push(b'\n');
    json_bytes(Bytes::from(body))
}

fn json_bytes(body: Bytes) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Full::new(body).boxed())
        .expect("valid response")
}

/// `json` with a status code.
fn json_status<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut r = json(value);
    *r.status_mut() = status;
    r
}

fn html(body: &str) -> Response<Body> {
    with_type("text/html; charset=utf-8", body.to_string())
}

/// Reads a small request body (a JSON object or nothing).
async fn read_json(req: Request<Incoming>) -> Result<serde_json::Value, Response<Body>> {
    const LIMIT: usize = 16 * 1024;
    let bytes = match http_body_util::Limited::new(req.into_body(), LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(text(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body must be JSON of at most {LIMIT} bytes\n"))),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes).map_err(|e| text(StatusCode::BAD_REQUEST, &format!("the body is not JSON: {e}\n")))
}

