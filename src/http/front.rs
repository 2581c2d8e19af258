//! The front door: every connection's request head is read here first. A
//! `GET /stream.mp3` becomes a listener — its response headers written by
//! hand (HTTP/1.0, close-delimited, like Icecast) and its socket handed to
//! a delivery shard, with nothing of hyper's per-connection state left
//! behind. Anything else is passed to hyper with the bytes already read
//! put back in front of the socket.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::{header_safe, HttpState, IcyWriter};
use crate::broadcast::mount::Mount;
use crate::broadcast::{Conn, SubscribeError};

/// The longest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Headers parsed at most.
const MAX_HEADERS: usize = 32;
/// How long a client may take to send its request head (slowloris).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long writing a listener's response headers may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A listener's request, as the stream needs it.
pub struct StreamRequest {
    /// Which further mount (index), or `None` for the main stream.
    pub mount: Option<usize>,
    /// The frame to start from (`?at=SEQ`), instead of the burst.
    pub at: Option<u64>,
    pub head_only: bool,
    pub icy: bool,
    pub user_agent: String,
}

/// What the request head says to do.
pub enum Route {
    Stream(StreamRequest),
    /// Everything else: hyper, with these bytes read already.
    Hyper(Bytes),
}

/// Reads the request head; `None` when the client sent nothing usable in
/// time (the connection is simply closed) or too much.
pub async fn read_head(stream: &mut TcpStream, mounts: &[Arc<Mount>]) -> Option<Route> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => return Some(classify(&req, mounts)),
                Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => continue,
                // Malformed, too many headers or too long: hyper answers it.
                _ => return Some(None),
            }
        }
    };
    match tokio::time::timeout(HEAD_TIMEOUT, read).await {
        Ok(Some(Some(stream))) => Some(Route::Stream(stream)),
        Ok(Some(None)) => Some(Route::Hyper(Bytes::from(buf))),
        Ok(None) | Err(_) => None,
    }
}

/// A stream request, or `None` for hyper to handle.
fn classify(req: &httparse::Request<'_, '_>, mounts: &[Arc<Mount>]) -> Option<StreamRequest> {
    let head_only = match req.method? {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    let (path, query) = req.path?.split_once('?').unwrap_or((req.path?, ""));
    let at = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "at").and_then(|(_, v)| v.parse().ok());
    let mount = match mounts.iter().position(|m| m.path == path) {
        Some(i) => Some(i),
        None if path == "/stream.mp3" || path == "/stream" => None,
        None => return None,
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    Some(StreamRequest {
        mount,
        at,
        head_only,
        icy: header("icy-metadata") == Some("1"),
        user_agent: header("user-agent").unwrap_or("").chars().take(200).collect(),
    })
}

/// The stream's response headers (`bitrate_kbps`: the mount's).
pub fn stream_headers(state: &HttpState, icy: bool, bitrate_kbps: u32) -> String {
    let cfg = &state.config;
    let mut h = String::with_capacity(320);
    h.push_str("HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nCache-Control: no-cache, no-store\r\nPragma: no-cache\r\n");
    h.push_str("Access-Control-Allow-Origin: *\r\n");
    h.push_str(&format!("icy-name: {}\r\n", header_safe(&cfg.server.station_name)));
    h.push_str(&format!("icy-br: {}\r\nicy-sr: {}\r\nicy-pub: 0\r\n", bitrate_kbps, cfg.stream.sample_rate));
    if icy {
        h.push_str(&format!("icy-metaint: {}\r\n", cfg.stream.icy_metaint));
    }
    h.push_str("\r\n");
    h
}

fn plain(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Serves a stream request: headers, then the socket goes to a shard.
pub async fn stream(state: &Arc<HttpState>, mut socket: TcpStream, peer: SocketAddr, req: StreamRequest) {
    let (hub, bitrate_kbps) = match req.mount.and_then(|i| state.mounts.get(i)) {
        Some(m) => (&m.hub, m.bitrate_kbps),
        None => (&state.hub, state.config.stream.bitrate_kbps),
    };
    if req.head_only {
        let headers = stream_headers(state, req.icy, bitrate_kbps);
        let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.write_all(headers.as_bytes())).await;
        let _ = socket.shutdown().await;
        return;
    }
    let sub = match hub.subscribe(state.config.server.max_listeners, req.at) {
        Ok(s) => s,
        Err(e) => {
            let body = match e {
                SubscribeError::Full => plain("503 Service Unavailable", "listener limit reached\n"),
                SubscribeError::Closed => plain("503 Service Unavailable", "station is shutting down\n"),
            };
            let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.write_all(body.as_bytes())).await;
            let _ = socket.shutdown().await;
            return;
        }
    };
    let headers = stream_headers(state, req.icy, bitrate_kbps);
    if !matches!(tokio::time::timeout(WRITE_TIMEOUT, socket.write_all(headers.as_bytes())).await, Ok(Ok(()))) {
        return;
    }
    let icy = req.icy.then(|| IcyWriter::new(state.config.stream.icy_metaint));
    hub.attach(Conn::new(socket, sub, icy, peer.to_string(), req.user_agent));
}

/// A socket with bytes already read put back in front of it.
pub struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl Rewind {
    pub fn new(prefix: Bytes, inner: TcpStream) -> Rewind {
        Rewind { prefix, inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
