//! Helpers for the integration tests: a station on port 0 over a generated
//! library, and a raw HTTP client that reads the stream like a player.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nonstop::config::Config;
use nonstop::encoder::{encode_file, FileTags, LameSettings};
use nonstop::mp3::FrameHeader;
use nonstop::station::Station;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const RATE: u32 = 44_100;
/// Bytes per second of a 128 kbps stream.
pub const BYTES_PER_S: f64 = 16_000.0;

/// A track of the test library: a pure tone, so tests can tell by ear
/// (Goertzel) which track is audible.
pub struct ToneTrack {
    pub title: &'static str,
    pub artist: &'static str,
    pub hz: f32,
    pub seconds: f32,
}

pub const TONES: [ToneTrack; 3] = [
    ToneTrack { title: "Low", artist: "Tones", hz: 330.0, seconds: 9.0 },
    ToneTrack { title: "Mid", artist: "Tones", hz: 550.0, seconds: 9.0 },
    ToneTrack { title: "High", artist: "Tones", hz: 880.0, seconds: 9.0 },
];

pub fn write_tone_library(dir: &Path, tracks: &[ToneTrack]) {
    std::fs::create_dir_all(dir).unwrap();
    for t in tracks {
        let n = (t.seconds * RATE as f32) as usize;
        let pcm: Vec<f32> = (0..n)
            .flat_map(|i| {
                let v = (std::f32::consts::TAU * t.hz * i as f32 / RATE as f32).sin() * 0.5;
                [v, v]
            })
            .collect();
        let settings = LameSettings { sample_rate: RATE, bitrate_kbps: 128, quality: 7 };
        let mp3 = encode_file(settings, FileTags { title: t.title, artist: t.artist, album: "test" }, &pcm).unwrap();
        std::fs::write(dir.join(format!("{}.mp3", t.title)), mp3).unwrap();
    }
}

/// Test configuration: small queues and burst, short crossfade.
pub fn test_config(data: &Path) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.paths.data_dir = data.to_owned();
    c.stream.burst_s = 1.0;
    c.stream.max_lag_s = 3.0;
    c.stream.icy_metaint = 2048;
    c.queues.pcm_s = 2.0;
    c.queues.frames_s = 1.0;
    c.mixer.crossfade_s = 2.0;
    c.ordering.plugins_dir = data.join("plugins");
    c.ordering.seed = Some(1);
    // The tone tracks are 9 s long.
    c.library.min_track_s = 0.0;
    c.server.admin_token = Some(TOKEN.into());
    c.validate().unwrap();
    c
}

pub struct TestStation {
    pub station: Station,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestStation {
    pub fn library(&self) -> PathBuf {
        self.dir.path().join("library")
    }
}

/// Starts a station on 127.0.0.1:0 over the tone library (plus whatever
/// `prepare` adds), with `tweak` applied to the test config.
pub async fn start_station(prepare: impl FnOnce(&Path), tweak: impl FnOnce(&mut Config)) -> TestStation {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("library");
    write_tone_library(&library, &TONES);
    prepare(&library);
    let mut config = test_config(dir.path());
    tweak(&mut config);
    start_on(dir, config).await
}

/// Starts a station and waits until the library is analysed and the first
/// frame is on air.
pub async fn start_on(dir: tempfile::TempDir, config: Config) -> TestStation {
    let listener = tokio::net::TcpListener::bind(config.server.listen).await.unwrap();
    let station = Station::start(config, listener).await.unwrap();
    let addr = station.local_addr();
    let s = wait_status(addr, Duration::from_secs(60), |s| {
        s["library"]["pending"] == 0 && !s["now_playing"].is_null()
    })
    .await;
    assert_eq!(s["library"]["pending"], 0, "library analysed: {s}");
    TestStation { station, addr, dir }
}

/// A raw HTTP/1.1 client connection after the response headers.
pub struct Client {
    pub status: u16,
    pub headers: String,
    stream: TcpStream,
    /// Body bytes read along with the headers.
    leftover: Vec<u8>,
}

impl Client {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// Reads exactly `n` body bytes.
    pub async fn read_exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        let take = self.leftover.len().min(n);
        out.extend(self.leftover.drain(..take));
        let mut rest = vec![0u8; n - out.len()];
        self.stream.read_exact(&mut rest).await?;
        out.extend(rest);
        Ok(out)
    }

    /// Reads whatever arrives for `d`.
    pub async fn read_for(&mut self, d: Duration) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.leftover);
        let deadline = tokio::time::Instant::now() + d;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return out,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// The next bytes to arrive: `Ok(None)` at the end of the stream, `Err`
    /// if nothing came within `limit`.
    pub async fn chunk(&mut self, limit: Duration) -> Result<Option<Vec<u8>>, tokio::time::error::Elapsed> {
        if !self.leftover.is_empty() {
            return Ok(Some(std::mem::take(&mut self.leftover)));
        }
        let mut buf = vec![0u8; 16 * 1024];
        match tokio::time::timeout(limit, self.stream.read(&mut buf)).await? {
            Ok(0) | Err(_) => Ok(None),
            Ok(n) => Ok(Some(buf[..n].to_vec())),
        }
    }

    /// Reads to end of stream (bounded by `limit`).
    pub async fn read_to_end(&mut self, limit: Duration) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.leftover);
        let _ = tokio::time::timeout(limit, self.stream.read_to_end(&mut out)).await;
        out
    }
}

/// Sends `GET path` with extra headers; returns the client after the headers.
pub async fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Client {
    request(addr, "GET", path, extra, None).await
}

pub async fn request(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)], rcvbuf: Option<u32>) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let mut stream = socket.connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: nonstop-test\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed before headers");
        head.push(byte[0]);
    }
    let headers = String::from_utf8(head).unwrap();
    let status = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    Client { status, headers, stream, leftover: Vec::new() }
}

/// The admin token of the test configuration.
pub const TOKEN: &str = "test-token";

/// Sends one request with a body on its own connection; returns the
/// status code and the body.
pub async fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// `call` as the admin, with the test token.
pub async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    call(addr, method, path, &[("Authorization", &format!("Bearer {TOKEN}"))], body).await
}

/// The whole status: `/admin/status` with the test token, or the public
/// `/status` where the admin API is off.
pub async fn status(addr: SocketAddr) -> serde_json::Value {
    let (code, body) = admin(addr, "GET", "/admin/status", "").await;
    if code == 403 {
        return public_status(addr).await;
    }
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// GETs the public `/status` and parses it.
pub async fn public_status(addr: SocketAddr) -> serde_json::Value {
    let mut c = get(addr, "/status", &[("Connection", "close")]).await;
    assert_eq!(c.status, 200);
    let body = c.read_to_end(Duration::from_secs(10)).await;
    serde_json::from_slice(&body).unwrap()
}

/// Splits a received byte stream into MP3 frames, asserting it is an
/// unbroken run of valid MPEG-1 Layer III headers from the first byte.
/// A partial frame at the end is ignored.
pub fn frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let h = FrameHeader::parse(&bytes[pos..])
            .unwrap_or_else(|| panic!("no valid frame header at byte {pos} (frame {})", out.len()));
        assert_eq!((h.version, h.layer, h.bitrate_kbps, h.sample_rate), (1, 3, 128, RATE), "frame {}", out.len());
        if pos + h.len() > bytes.len() {
            break;
        }
        out.push(&bytes[pos..pos + h.len()]);
        pos += h.len();
    }
    out
}

/// Decodes MP3 bytes with symphonia (through nonstop's decoder) and
/// returns the left channel and the number of packets that failed.
pub fn decode(bytes: &[u8]) -> (Vec<f32>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("received.mp3");
    std::fs::write(&path, bytes).unwrap();
    let mut d = nonstop::audio::Decoder::open(&path).unwrap();
    let mut left = Vec::new();
    while let Some(block) = d.next_block().unwrap() {
        left.extend(block.iter().step_by(2));
    }
    (left, d.bad_packets)
}

/// Power of frequency `hz` in `x` (Goertzel), normalised by length.
pub fn tone_power(x: &[f32], hz: f32) -> f32 {
    let w = std::f32::consts::TAU * hz / RATE as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f32 * x.len() as f32)
}

/// Polls `cond` on /status until it holds or `limit` passes.
pub async fn wait_status(addr: SocketAddr, limit: Duration, cond: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = status(addr).await;
        if cond(&s) || start.elapsed() > limit {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A listener reading in the background, noting the longest wait between
/// reads and whether the stream ended.
pub struct BackgroundListener {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Heard>,
    pub received: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// What a background listener heard.
pub struct Heard {
    pub bytes: Vec<u8>,
    pub max_gap: Duration,
    /// The stream ended (or stalled 10 s) before the listener was stopped.
    pub ended: bool,
}

impl BackgroundListener {
    pub async fn start(addr: SocketAddr) -> BackgroundListener {
        let mut client = get(addr, "/stream.mp3", &[]).await;
        assert_eq!(client.status, 200);
        let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = received.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let (mut last, mut max_gap, mut bytes) = (Instant::now(), Duration::ZERO, Vec::new());
            loop {
                tokio::select! {
                    _ = &mut stopped => return Heard { bytes, max_gap, ended: false },
                    r = client.chunk(Duration::from_secs(10)) => {
                        let Ok(Some(chunk)) = r else { return Heard { bytes, max_gap, ended: true } };
                        max_gap = max_gap.max(last.elapsed());
                        last = Instant::now();
                        bytes.extend_from_slice(&chunk);
                        count.store(bytes.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        });
        BackgroundListener { stop, task, received }
    }

    pub async fn stop(self) -> Heard {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}
