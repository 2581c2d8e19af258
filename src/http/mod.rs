//! HTTP front: hyper 1 over HTTP/1.x. `/stream.mp3` (with ICY metadata on
//! request), `/listen.m3u`, `/listen.pls`, `/status` (JSON) and a minimal
//! player page at `/`. Each connection is its own tokio task; a listener
//! kicked by the broadcaster has its connection dropped at once.
//!
//! The stream response is sent as HTTP/1.0, close-delimited (no chunked
//! encoding), exactly like Icecast, so every player reads plain MP3 bytes.

mod icy;
mod status;

pub use icy::{metadata_block, IcyWriter};
pub use status::{Status, StatusSource};

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::broadcast::{Hub, Listener, SubscribeError};
use crate::config::Config;

type Body = BoxBody<Bytes, Infallible>;

/// Kernel send buffer per socket (Linux doubles it). Small, so a stalled
/// listener's backlog shows up as lag (and gets it dropped) within seconds
/// instead of hiding megabytes in the kernel: 32 KiB is 2 s at 128 kbps.
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
}

/// Accepts connections until `shutdown` turns true, then lets open
/// connections finish (streams end when the broadcaster closes the feed).
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::supervise::stopped(&mut shutdown) => break,
        };
        while conns.try_join_next().is_some() {}
        let (stream, _peer) = match accepted {
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
        let mut shutdown = shutdown.clone();
        conns.spawn(async move {
            // Notified when this connection's listener is too far behind.
            let kick = Arc::new(Notify::new());
            let svc_kick = kick.clone();
            let svc = service_fn(move |req| {
                let (state, kick) = (state.clone(), svc_kick.clone());
                async move { Ok::<_, Infallible>(route(&state, kick, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(CONN_BUF)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = kick.notified() => {}
                _ = crate::supervise::stopped(&mut shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

async fn route(state: &HttpState, kick: Arc<Notify>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    let response = match path {
        "/stream.mp3" | "/stream" => return stream(state, kick, &req, head),
        "/listen.m3u" => playlist_m3u(state, &req),
        "/listen.pls" => playlist_pls(state, &req),
        "/status" => match state.status.snapshot().await {
            Ok(s) => json(&s),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        },
        "/" | "/index.html" => html(&player_page(&state.config.server.station_name)),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if head {
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Empty::new().boxed());
    }
    response
}

fn stream(state: &HttpState, kick: Arc<Notify>, req: &Request<Incoming>, head: bool) -> Response<Body> {
    let cfg = &state.config;
    let icy = req
        .headers()
        .get("icy-metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1");
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .version(Version::HTTP_10)
        .header(header::CONTENT_TYPE, "audio/mpeg")
        .header(header::CACHE_CONTROL, "no-cache, no-store")
        .header(header::PRAGMA, "no-cache")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header("icy-name", header_safe(&cfg.server.station_name))
        .header("icy-br", cfg.stream.bitrate_kbps.to_string())
        .header("icy-sr", cfg.stream.sample_rate.to_string())
        .header("icy-pub", "0");
    if icy {
        builder = builder.header("icy-metaint", cfg.stream.icy_metaint.to_string());
    }
    if head {
        return builder.body(Empty::new().boxed()).expect("valid response");
    }
    let listener = match state.hub.subscribe(cfg.server.max_listeners, kick) {
        Ok(l) => l,
        Err(SubscribeError::Full) => return text(StatusCode::SERVICE_UNAVAILABLE, "listener limit reached\n"),
        Err(SubscribeError::Closed) => return text(StatusCode::SERVICE_UNAVAILABLE, "station is shutting down\n"),
    };
    let icy = icy.then(|| IcyWriter::new(cfg.stream.icy_metaint));
    builder.body(listener_body(listener, icy)).expect("valid response")
}

/// The listener's byte stream: whole frames, or frames cut around ICY
/// metadata blocks. Ends when the feed ends or the listener is kicked.
fn listener_body(listener: Listener, icy: Option<IcyWriter>) -> Body {
    struct State {
        listener: Listener,
        icy: Option<IcyWriter>,
        pending: std::collections::VecDeque<Bytes>,
        scratch: Vec<Bytes>,
    }
    let state = State { listener, icy, pending: Default::default(), scratch: Vec::new() };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(chunk) = s.pending.pop_front() {
                return Some((Ok(hyper::body::Frame::data(chunk)), s));
            }
            if s.listener.kicked() {
                return None;
            }
            let frame = s.listener.next_frame().await?;
            match &mut s.icy {
                None => return Some((Ok(hyper::body::Frame::data(frame.data.clone())), s)),
                Some(w) => {
                    w.push(&frame, &mut s.scratch);
                    s.pending.extend(s.scratch.drain(..));
                }
            }
        }
    });
    StreamBody::new(stream).boxed()
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

fn header_safe(s: &str) -> String {
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
    let mut body = serde_json::to_string_pretty(value).expect("status serialises");
    body.push('\n');
    let mut r = with_type("application/json", body);
    r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, header::HeaderValue::from_static("*"));
    r
}

fn html(body: &str) -> Response<Body> {
    with_type("text/html; charset=utf-8", body.to_string())
}

fn player_page(station: &str) -> String {
    let name: String = station.chars().filter(|c| !"<>&\"'".contains(*c)).collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto">
<h1>{name}</h1>
<p id="now">…</p>
<audio controls preload="none" src="/stream.mp3"></audio>
<p><a href="/listen.m3u">listen.m3u</a> · <a href="/listen.pls">listen.pls</a> · <a href="/status">status</a></p>
<script>
async function poll() {{
  try {{
    const s = await (await fetch('/status')).json();
    const n = s.now_playing;
    document.getElementById('now').textContent = n ? (n.artist ? n.artist + ' - ' : '') + n.title : 'silence';
  }} catch (e) {{}}
  setTimeout(poll, 5000);
}}
poll();
</script></body></html>
"#
    )
}
