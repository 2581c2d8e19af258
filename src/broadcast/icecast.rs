//! Icecast source output: the station's MP3 frames pushed to an Icecast
//! server as its source, so its relays, directories and listeners carry
//! the station.
//!
//! The protocol of Icecast 2.4/2.5: `PUT /mount` with `Expect:
//! 100-continue`, content type and `ice-*` headers; older servers that
//! refuse PUT get the legacy `SOURCE /mount`. Titles go to Icecast's
//! metadata update (`/admin/metadata?mode=updinfo`) when the first frame
//! of the new track is sent — where it becomes audible in the stream.
//!
//! The output follows the hub's frame log like a listener, from its own
//! position: a slow Icecast falls behind on its own (frames that leave the
//! log are counted as dropped and skipped), a dead one is reconnected with
//! backoff and jitter. Neither ever holds up the station or another output.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Hub;
use crate::config::IcecastOutput;

/// Longest wait for a connection, a response head or one frame's write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnection backoff: from 1 s, doubling, at most 30 s, ±20% jitter.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One output's state, for `/status`.
#[derive(Debug, Default)]
pub struct OutputState {
    pub url: String,
    connected: AtomicBool,
    bytes: AtomicU64,
    connects: AtomicU64,
    dropped_frames: AtomicU64,
    protocol: Mutex<&'static str>,
    last_error: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputReport {
    pub kind: &'static str,
    pub url: String,
    pub connected: bool,
    /// `PUT` or `SOURCE`, once connected.
    pub protocol: &'static str,
    pub bytes: u64,
    /// Successful connections (1 + reconnections).
    pub connects: u64,
    /// Frames it fell too far behind to send.
    pub dropped_frames: u64,
    pub last_error: Option<String>,
}

impl OutputState {
    pub fn new(url: &str) -> Arc<OutputState> {
        Arc::new(OutputState { url: url.to_string(), protocol: Mutex::new(""), ..Default::default() })
    }

    pub fn report(&self) -> OutputReport {
        OutputReport {
            kind: "icecast",
            url: self.url.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            protocol: *self.protocol.lock().unwrap_or_else(|p| p.into_inner()),
            bytes: self.bytes.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            dropped_frames: self.dropped_frames.load(Ordering::Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// What the source headers say about the stream.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub station_name: String,
    pub bitrate_kbps: u32,
    pub sample_rate: u32,
}

struct Source<'a> {
    out: &'a IcecastOutput,
    addr: String,
    mount: String,
    info: &'a StreamInfo,
    auth: String,
}

impl Source<'_> {
    fn head(&self, legacy: bool) -> String {
        let o = self.out;
        let mut h = if legacy {
            format!("SOURCE {} HTTP/1.0\r\n", self.mount)
        } else {
            format!("PUT {} HTTP/1.1\r\nHost: {}\r\nExpect: 100-continue\r\n", self.mount, self.addr)
        };
        let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
        h.push_str(&format!("Authorization: Basic {}\r\n", self.auth));
        h.push_str(&format!("User-Agent: nonstop/{}\r\n", env!("CARGO_PKG_VERSION")));
        h.push_str("Content-Type: audio/mpeg\r\n");
        h.push_str(&format!("Ice-Name: {}\r\n", clean(o.name.as_deref().unwrap_or(&self.info.station_name))));
        if let Some(g) = &o.genre {
            h.push_str(&format!("Ice-Genre: {}\r\n", clean(g)));
        }
        if let Some(d) = &o.description {
            h.push_str(&format!("Ice-Description: {}\r\n", clean(d)));
        }
        h.push_str(&format!("Ice-Public: {}\r\n", o.public as u8));
        h.push_str(&format!(
            "Ice-Audio-Info: ice-bitrate={};ice-samplerate={};ice-channels=2\r\n\r\n",
            self.info.bitrate_kbps, self.info.sample_rate
        ));
        h
    }

    /// Connects and is accepted as the mount's source.
    async fn connect(&self, legacy: bool) -> Result<TcpStream, Refusal> {
        let io = |e: std::io::Error| Refusal::Other(e.to_string());
        let mut s = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| Refusal::Other("connect timed out".into()))?
            .map_err(io)?;
        s.write_all(self.head(legacy).as_bytes()).await.map_err(io)?;
        let mut buf = Vec::new();
        let code = loop {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(IO_TIMEOUT, s.read(&mut chunk))
                .await
                .map_err(|_| Refusal::Other("no answer".into()))?
                .map_err(io)?;
            if n == 0 {
                return Err(Refusal::Other("closed without an answer".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => break response.code.unwrap_or(0),
                Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => continue,
                _ => return Err(Refusal::Other("not an HTTP answer".into())),
            }
        };
        match code {
            100 | 200 => Ok(s),
            // The method is not understood: an older server.
            400 | 405 | 501 if !legacy => Err(Refusal::Method(code)),
            401 | 403 => Err(Refusal::Other(format!("HTTP {code}: wrong user or password, or the mount is taken"))),
            _ => Err(Refusal::Other(format!("HTTP {code}"))),
        }
    }

    /// Tells Icecast the title now on the stream (best effort, in the background).
    fn update_title(&self, title: String) {
        let (addr, mount, auth) = (self.addr.clone(), self.mount.clone(), self.auth.clone());
        tokio::spawn(async move {
            use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
            let request = format!(
                "GET /admin/metadata?mode=updinfo&mount={}&song={} HTTP/1.0\r\nAuthorization: Basic {auth}\r\nUser-Agent: nonstop/{}\r\n\r\n",
                utf8_percent_encode(&mount, NON_ALPHANUMERIC),
                utf8_percent_encode(&title, NON_ALPHANUMERIC),
                env!("CARGO_PKG_VERSION")
            );
            let send = async {
                let mut s = TcpStream::connect(&addr).await?;
                s.write_all(request.as_bytes()).await?;
                let mut sink = Vec::new();
                s.read_to_end(&mut sink).await
            };
            if let Err(e) = tokio::time::timeout(IO_TIMEOUT, send).await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                tracing::debug!("icecast {addr}{mount}: title update failed: {e}");
            }
        });
    }
}

enum Refusal {
    /// The request method was refused (try the legacy one).
    Method(u16),
    Other(String),
}

/// Pushes the stream to one Icecast mount until `shutdown`.
pub async fn run(hub: Arc<Hub>, out: IcecastOutput, info: StreamInfo, state: Arc<OutputState>, mut shutdown: watch::Receiver<bool>) {
    let Ok((addr, mount)) = out.target() else { return };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", out.user, out.password));
    let source = Source { out: &out, addr, mount, info: &info, auth };
    let mut legacy = false;
    let mut backoff = BACKOFF_MIN;
    loop {
        let connects = state.connects.load(Ordering::Relaxed);
        let error = tokio::select! {
            _ = crate::supervise::stopped(&mut shutdown) => return,
            e = session(&hub, &source, &state, &mut legacy) => e,
        };
        if state.connects.load(Ordering::Relaxed) > connects {
            // It was up: start the backoff again from the beginning.
            backoff = BACKOFF_MIN;
        }
        state.connected.store(false, Ordering::Relaxed);
        if hub.is_closed() {
            return;
        }
        tracing::warn!("icecast {}: {error}; reconnecting in {:.1} s", out.url, backoff.as_secs_f64());
        *state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        tokio::select! {
            _ = crate::supervise::stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection: accepted as source, then frames from the live edge
/// until something fails. Returns why it ended.
async fn session(hub: &Hub, source: &Source<'_>, state: &OutputState, legacy: &mut bool) -> String {
    let mut stream = match source.connect(*legacy).await {
        Ok(s) => s,
        Err(Refusal::Method(code)) => {
            *legacy = true;
            return format!("HTTP {code} to PUT: trying SOURCE");
        }
        Err(Refusal::Other(e)) => return e,
    };
    state.connected.store(true, Ordering::Relaxed);
    state.connects.fetch_add(1, Ordering::Relaxed);
    *state.protocol.lock().unwrap_or_else(|p| p.into_inner()) = if *legacy { "SOURCE" } else { "PUT" };
    tracing::info!("icecast {}: connected as source ({})", source.out.url, if *legacy { "SOURCE" } else { "PUT" });
    let mut head_rx = hub.head();
    let mut next = *head_rx.borrow_and_update();
    let mut title: Option<String> = None;
    loop {
        if head_rx.changed().await.is_err() || hub.is_closed() {
            return "the station is stopping".into();
        }
        let head = *head_rx.borrow_and_update();
        let (frames, first) = hub.frames_since(next);
        if first > next {
            state.dropped_frames.fetch_add(first - next, Ordering::Relaxed);
        }
        next = first;
        for frame in frames.iter().take_while(|f| f.seq < head) {
            let now = frame.on_air.stream_title();
            if title.as_deref() != Some(now.as_str()) {
                source.update_title(now.clone());
                title = Some(now);
            }
            match tokio::time::timeout(IO_TIMEOUT, stream.write_all(&frame.data)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return format!("write: {e}"),
                Err(_) => return "write timed out: the server is not reading".into(),
            }
            state.bytes.fetch_add(frame.data.len() as u64, Ordering::Relaxed);
            next = frame.seq + 1;
        }
    }
}
