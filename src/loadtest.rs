//! `nonstop loadtest`: many listeners against any MP3 stream server
//! (nonstop, Icecast), every byte timed. Prints who connected, how fast
//! the first audio byte came, each listener's delivery rate against the
//! stream's bitrate, the longest pause, and the server's CPU and memory
//! when given its pid.
//!
//! A listener is a plain TCP connection that sends one HTTP/1.0 request
//! and reads the body until the end of the run. Sockets wait for
//! readiness without holding a buffer: one scratch buffer per worker
//! thread serves every read, so tens of thousands of listeners cost the
//! load generator little more than their sockets.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::quantile;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `http://host:port/path` of the stream.
    pub url: String,
    pub listeners: usize,
    /// New listeners per second.
    pub ramp_per_s: f64,
    /// How long every listener is measured once all have arrived.
    pub seconds: f64,
    /// The server's process, for CPU and memory figures.
    pub pid: Option<u32>,
    /// The stream's bitrate; read from the first MP3 frame header when unset.
    pub kbps: Option<u32>,
}

/// Time a listener needs after its first byte before its rate is
/// measured: the burst on connect is delivered faster than real time.
const BURST_GUARD: Duration = Duration::from_secs(5);
/// Longest wait for a status line and headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// One listener's run.
#[derive(Debug, Default, Clone)]
struct Outcome {
    /// Refused or failed before the first audio byte: the reason.
    failed: Option<String>,
    /// The stream ended or broke during the run.
    dropped: bool,
    ttfb: Duration,
    /// Bytes and seconds over the listener's measured window.
    window_bytes: u64,
    window_s: f64,
    longest_pause: Duration,
    /// The first audio bytes (for the bitrate).
    head: Vec<u8>,
}

struct Target {
    addr: SocketAddr,
    request: Vec<u8>,
}

impl Target {
    async fn resolve(url: &str) -> anyhow::Result<Target> {
        let uri: http::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("only http:// URLs are supported: {url}");
        }
        let host = uri.host().context("URL without a host")?;
        let port = uri.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: nonstop-loadtest\r\nAccept: */*\r\n\r\n");
        Ok(Target { addr, request: request.into_bytes() })
    }
}

/// Connects, reads the head, then reads the body until `end`, measuring
/// from `measure_from` (or `BURST_GUARD` after its first byte, if later).
async fn listen(target: Arc<Target>, arrived: Arc<AtomicUsize>, measure_from: Instant, end: Instant) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome::default();
    let stream = match tokio::time::timeout(HEADER_TIMEOUT, TcpStream::connect(target.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Outcome { failed: Some(format!("connect: {e}")), ..out },
        Err(_) => return Outcome { failed: Some("connect: timed out".into()), ..out },
    };
    let mut stream = stream;
    if let Err(e) = stream.write_all(&target.request).await {
        return Outcome { failed: Some(format!("request: {e}")), ..out };
    }
    let mut head: Vec<u8> = Vec::new();
    let mut head_done = false;
    let mut body_started: Option<Instant> = None;
    let mut total: u64 = 0;
    // (time, bytes so far) when the measured window began.
    let mut window_start: Option<(Instant, u64)> = None;
    let mut last_read = started;
    loop {
        let deadline = if body_started.is_none() { started + HEADER_TIMEOUT } else { end };
        match tokio::time::timeout_at(deadline.min(end), stream.readable()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                out.failed = body_started.is_none().then(|| format!("read: {e}"));
                out.dropped = body_started.is_some();
                break;
            }
            Ok(Ok(())) => {}
        }
        let now = Instant::now();
        // Read into the thread's scratch buffer; nothing is held across awaits.
        let read: Result<usize, String> = SCRATCH.with_borrow_mut(|buf| {
            let n = match stream.try_read(buf) {
                Ok(0) => return Err("closed".to_string()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) => return Err(format!("read: {e}")),
            };
            let body = if head_done {
                &buf[..n]
            } else {
                head.extend_from_slice(&buf[..n]);
                match parse_head(&head) {
                    HeadState::Partial if head.len() < 16 * 1024 => return Ok(0),
                    HeadState::Partial => return Err("response head too long".to_string()),
                    HeadState::Status(code) => return Err(format!("HTTP {code}")),
                    HeadState::Ok(len) => {
                        head_done = true;
                        &head[len..]
                    }
                }
            };
            if out.head.len() < 4096 {
                let take = (4096 - out.head.len()).min(body.len());
                out.head.extend_from_slice(&body[..take]);
            }
            Ok(body.len())
        });
        let n = match read {
            Ok(n) => n,
            Err(reason) => {
                if body_started.is_some() {
                    out.dropped = true;
                } else {
                    out.failed = Some(if reason == "closed" { "closed before the first audio byte".into() } else { reason });
                }
                break;
            }
        };
        if n == 0 {
            continue;
        }
        let first = *body_started.get_or_insert(now);
        if first == now {
            out.ttfb = now - started;
            arrived.fetch_add(1, Ordering::Relaxed);
            last_read = now;
        }
        match window_start {
            None if now >= measure_from.max(first + BURST_GUARD) => window_start = Some((now, total + n as u64)),
            Some(_) => out.longest_pause = out.longest_pause.max(now - last_read),
            None => {}
        }
        total += n as u64;
        last_read = now;
        if let Some((t0, b0)) = window_start {
            out.window_bytes = total - b0;
            out.window_s = (now - t0).as_secs_f64();
        }
    }
    if body_started.is_none() && out.failed.is_none() {
        out.failed = Some("no audio byte before the end".into());
    }
    out
}

enum HeadState {
    Partial,
    /// 2xx; the head's length in bytes.
    Ok(usize),
    Status(u16),
}

fn parse_head(buf: &[u8]) -> HeadState {
    // Shoutcast-style servers answer "ICY 200 OK".
    if let Some(rest) = buf.strip_prefix(b"ICY ") {
        let owned = [b"HTTP/1.0 ".as_slice(), rest].concat();
        return match parse_head(&owned) {
            HeadState::Ok(len) => HeadState::Ok(len + 4 - 9),
            other => other,
        };
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => match response.code {
            Some(code) if (200..300).contains(&code) => HeadState::Ok(len),
            Some(code) => HeadState::Status(code),
            None => HeadState::Status(0),
        },
        Ok(httparse::Status::Partial) => HeadState::Partial,
        Err(_) => HeadState::Status(0),
    }
}

/// The bitrate of the first MPEG audio frame found in `bytes` (the next
/// frame's header must agree, so a stray sync word is not trusted), kbit/s.
pub fn mp3_kbps(bytes: &[u8]) -> Option<u32> {
    use crate::mp3::FrameHeader;
    (0..bytes.len()).find_map(|i| {
        let h = FrameHeader::parse(&bytes[i..])?;
        let next = FrameHeader::parse(bytes.get(i + h.len()..)?)?;
        (next.bitrate_kbps == h.bitrate_kbps && next.sample_rate == h.sample_rate).then_some(h.bitrate_kbps)
    })
}

/// How long the server is watched alone before the listeners come.
const BASELINE: Duration = Duration::from_secs(5);

/// A process watched over a while.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// Percent of one core.
    cpu_pct: f64,
    /// The least resident memory seen, bytes.
    rss_min: u64,
}

/// Watches `pid` until `until`, its memory twice a second.
async fn sample(pid: u32, until: Instant) -> Option<Usage> {
    let t0 = Instant::now();
    let (cpu0, mut rss_min) = crate::cpu::usage_of(pid)?;
    let mut cpu1 = cpu0;
    while Instant::now() + Duration::from_millis(500) <= until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (cpu, rss) = crate::cpu::usage_of(pid)?;
        rss_min = rss_min.min(rss);
        cpu1 = cpu;
    }
    let wall = t0.elapsed().as_secs_f64();
    Some(Usage { cpu_pct: (cpu1 - cpu0) / wall * 100.0, rss_min })
}

/// Bytes of `pid`'s RSS per listener arriving, until `until` (see
/// `Report::server_rss_per_listener_kib`); `None` with too few steps.
async fn memory_slope(pid: u32, arrived: Arc<AtomicUsize>, until: Instant) -> Option<f64> {
    let mut slopes = Vec::new();
    let mut last = (arrived.load(Ordering::Relaxed), crate::cpu::usage_of(pid)?.1);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = (arrived.load(Ordering::Relaxed), crate::cpu::usage_of(pid)?.1);
        if now.0 >= last.0 + 50 {
            slopes.push((now.1 as f64 - last.1 as f64) / (now.0 - last.0) as f64);
            last = now;
        }
    }
    (slopes.len() >= 3).then(|| quantile(&sorted(slopes), 0.5))
}

/// The figures of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub listeners: usize,
    pub connected: usize,
    pub failed: usize,
    /// The most common failure reason, with its count.
    pub failure: Option<(String, usize)>,
    pub dropped: usize,
    pub kbps: u32,
    pub ttfb_p50_ms: f64,
    pub ttfb_p99_ms: f64,
    pub ttfb_max_ms: f64,
    /// Bytes received over each listener's window ÷ the stream's bytes in that time.
    pub rate_min: f64,
    pub rate_p1: f64,
    pub rate_median: f64,
    /// Listeners measured for a rate (connected long enough).
    pub measured: usize,
    pub below_0_99: usize,
    pub longest_pause_p99_ms: f64,
    pub longest_pause_max_ms: f64,
    /// Server CPU over the measured window, percent of one core.
    pub server_cpu_pct: Option<f64>,
    pub server_cpu_pct_per_1k: Option<f64>,
    /// Server CPU before any listener came (a station's own mixing and encoding).
    pub server_idle_cpu_pct: Option<f64>,
    /// What the listeners cost: (loaded − idle CPU) per 1,000 listeners.
    pub server_listener_cpu_pct_per_1k: Option<f64>,
    /// The least RSS seen before the listeners came and while they were all
    /// connected (a station's transitions come and go on top).
    pub server_rss_before_mib: Option<f64>,
    pub server_rss_after_mib: Option<f64>,
    /// The server's memory growth per arriving listener: the median over
    /// the ramp's steps (a tenth of a second, 50 listeners or more) of ΔRSS ÷ Δlisteners, so a transition's
    /// buffers coming or going in one step do not count.
    pub server_rss_per_listener_kib: Option<f64>,
    /// The load generator's own CPU, percent of one core over the run.
    pub client_cpu_pct: f64,
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Runs the listeners and gathers the figures.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    if options.listeners == 0 || options.ramp_per_s <= 0.0 || options.seconds <= 0.0 {
        bail!("--listeners, --ramp and --seconds must be positive");
    }
    let target = Arc::new(Target::resolve(&options.url).await?);
    // The server alone first: its own CPU (a station mixes and encodes) and
    // its memory, the least seen over a few seconds (transitions come and go).
    let idle = match options.pid {
        Some(pid) => Some(sample(pid, Instant::now() + BASELINE).await.with_context(|| format!("cannot read /proc/{pid}"))?),
        None => None,
    };
    let client_cpu0 = crate::cpu::process_seconds();
    let start = Instant::now();
    let ramp = Duration::from_secs_f64(options.listeners as f64 / options.ramp_per_s);
    let measure_from = start + ramp + Duration::from_secs(1);
    let end = measure_from + BURST_GUARD + Duration::from_secs_f64(options.seconds);
    let arrived = Arc::new(AtomicUsize::new(0));
    // The server's memory against the listeners there, while they arrive.
    let growth = options.pid.map(|pid| tokio::spawn(memory_slope(pid, arrived.clone(), measure_from)));
    let mut tasks = Vec::with_capacity(options.listeners);
    for i in 0..options.listeners {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / options.ramp_per_s)).await;
        tasks.push(tokio::spawn(listen(target.clone(), arrived.clone(), measure_from, end)));
    }
    // The server over the window in which everyone is connected.
    tokio::time::sleep_until(measure_from + BURST_GUARD).await;
    let loaded = match options.pid {
        Some(pid) => sample(pid, end - Duration::from_millis(200)).await,
        None => None,
    };
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.unwrap_or_else(|e| Outcome { failed: Some(e.to_string()), ..Default::default() }));
    }
    let client_cpu = (crate::cpu::process_seconds() - client_cpu0) / start.elapsed().as_secs_f64() * 100.0;

    let ok: Vec<&Outcome> = outcomes.iter().filter(|o| o.failed.is_none()).collect();
    let kbps = options.kbps.or_else(|| ok.iter().find_map(|o| mp3_kbps(&o.head))).unwrap_or(128);
    let byte_rate = kbps as f64 * 1000.0 / 8.0;
    let mut reasons: std::collections::HashMap<&str, usize> = Default::default();
    for o in &outcomes {
        if let Some(r) = &o.failed {
            *reasons.entry(r.as_str()).or_default() += 1;
        }
    }
    let failure = reasons.into_iter().max_by_key(|(_, n)| *n).map(|(r, n)| (r.to_string(), n));
    let ttfb = sorted(ok.iter().map(|o| o.ttfb.as_secs_f64() * 1000.0).collect());
    // Rates over windows long enough to say something (half the requested time).
    let measured: Vec<&&Outcome> = ok.iter().filter(|o| o.window_s >= options.seconds * 0.5).collect();
    let rates = sorted(measured.iter().map(|o| o.window_bytes as f64 / (byte_rate * o.window_s)).collect());
    let pauses = sorted(measured.iter().map(|o| o.longest_pause.as_secs_f64() * 1000.0).collect());
    let connected = ok.len();
    let server_cpu_pct = loaded.map(|l| l.cpu_pct);
    let per_1k = |cpu: f64| (connected > 0).then(|| cpu / connected as f64 * 1000.0);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    Ok(Report {
        listeners: options.listeners,
        connected,
        failed: outcomes.len() - connected,
        failure,
        dropped: ok.iter().filter(|o| o.dropped).count(),
        kbps,
        ttfb_p50_ms: quantile(&ttfb, 0.5),
        ttfb_p99_ms: quantile(&ttfb, 0.99),
        ttfb_max_ms: ttfb.last().copied().unwrap_or(f64::NAN),
        rate_min: rates.first().copied().unwrap_or(f64::NAN),
        rate_p1: quantile(&rates, 0.01),
        rate_median: quantile(&rates, 0.5),
        measured: rates.len(),
        below_0_99: rates.iter().filter(|&&r| r < 0.99).count(),
        longest_pause_p99_ms: quantile(&pauses, 0.99),
        longest_pause_max_ms: pauses.last().copied().unwrap_or(f64::NAN),
        server_cpu_pct,
        server_cpu_pct_per_1k: server_cpu_pct.and_then(per_1k),
        server_idle_cpu_pct: idle.map(|i| i.cpu_pct),
        server_listener_cpu_pct_per_1k: match (idle, loaded) {
            (Some(i), Some(l)) => per_1k(l.cpu_pct - i.cpu_pct),
            _ => None,
        },
        server_rss_before_mib: idle.map(|i| mib(i.rss_min)),
        server_rss_after_mib: loaded.map(|l| mib(l.rss_min)),
        server_rss_per_listener_kib: match growth {
            Some(task) => task.await.ok().flatten().map(|b| b / 1024.0),
            None => None,
        },
        client_cpu_pct: client_cpu,
    })
}

/// Connect/disconnect churn: `cycles` listeners, `concurrency` at a time,
/// each reading its first audio bytes and hanging up. Returns the
/// server's RSS before and after (MiB) and the failures.
pub async fn churn(url: &str, cycles: usize, concurrency: usize, pid: Option<u32>) -> anyhow::Result<ChurnReport> {
    let target = Arc::new(Target::resolve(url).await?);
    let watch = |pid: Option<u32>| async move {
        match pid {
            Some(pid) => sample(pid, Instant::now() + Duration::from_secs(3)).await,
            None => None,
        }
    };
    let before = watch(pid).await;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (target, next, failed) = (target.clone(), next.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            while next.fetch_add(1, Relaxed) < cycles {
                let now = Instant::now();
                // Ends as soon as the first audio bytes are in.
                let o = listen(target.clone(), Arc::default(), now, now + Duration::from_millis(300)).await;
                if o.failed.is_some() {
                    failed.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    // Let the server notice the last hang-ups.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = watch(pid).await;
    let mib = |u: Usage| u.rss_min as f64 / (1024.0 * 1024.0);
    Ok(ChurnReport {
        cycles,
        failed: failed.load(std::sync::atomic::Ordering::Relaxed),
        server_rss_before_mib: before.map(mib),
        server_rss_after_mib: after.map(mib),
    })
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ChurnReport {
    pub cycles: usize,
    pub failed: usize,
    pub server_rss_before_mib: Option<f64>,
    pub server_rss_after_mib: Option<f64>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "listeners       {} asked, {} connected, {} failed, {} dropped", self.listeners, self.connected, self.failed, self.dropped)?;
        if let Some((reason, n)) = &self.failure {
            writeln!(f, "  most failures {reason} ({n})")?;
        }
        writeln!(f, "first byte      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", self.ttfb_p50_ms, self.ttfb_p99_ms, self.ttfb_max_ms)?;
        writeln!(
            f,
            "delivery rate   min {:.4}x, p1 {:.4}x, median {:.4}x real time at {} kbps ({} measured, {} below 0.99x)",
            self.rate_min, self.rate_p1, self.rate_median, self.kbps, self.measured, self.below_0_99
        )?;
        writeln!(f, "longest pause   p99 {:.0} ms, max {:.0} ms", self.longest_pause_p99_ms, self.longest_pause_max_ms)?;
        if let (Some(cpu), Some(per_1k)) = (self.server_cpu_pct, self.server_cpu_pct_per_1k) {
            writeln!(f, "server CPU      {cpu:.1}% of one core, {per_1k:.2}% per 1,000 listeners")?;
        }
        if let (Some(idle), Some(per_1k)) = (self.server_idle_cpu_pct, self.server_listener_cpu_pct_per_1k) {
            writeln!(f, "  listeners'    {per_1k:.2}% per 1,000 above the {idle:.1}% it used alone")?;
        }
        if let (Some(a), Some(b), Some(per)) = (self.server_rss_before_mib, self.server_rss_after_mib, self.server_rss_per_listener_kib) {
            writeln!(f, "server RSS      {a:.1} MiB before, {b:.1} MiB with the listeners (least seen); {per:.2} KiB per arriving listener")?;
        }
        write!(f, "load generator  {:.1}% of one core", self.client_cpu_pct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_from_two_agreeing_frame_headers() {
        // 128 kbps, 44.1 kHz, no padding: 417 bytes per frame.
        let mut bytes = vec![0u8; 3];
        for _ in 0..2 {
            let mut frame = vec![0u8; 417];
            frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
            bytes.extend(frame);
        }
        assert_eq!(mp3_kbps(&bytes), Some(128));
        assert_eq!(mp3_kbps(&bytes[..420]), None, "one header alone is not trusted");
    }

    #[test]
    fn heads_are_parsed_with_their_status() {
        assert!(matches!(parse_head(b"HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\n\r\nxx"), HeadState::Ok(45)));
        assert!(matches!(parse_head(b"ICY 200 OK\r\n\r\n"), HeadState::Ok(_)));
        assert!(matches!(parse_head(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"), HeadState::Status(503)));
        assert!(matches!(parse_head(b"HTTP/1.0 200 OK\r\nContent-"), HeadState::Partial));
    }
}
