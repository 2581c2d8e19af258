//! The MP3 stream itself: validity, real-time rate, fan-out, slow listeners.

use std::time::{Duration, Instant};

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_is_valid_mp3_at_real_time_rate() {
    let t = start_station(|_| {}, |_| {}).await;
    let mut c = get(t.addr, "/stream.mp3", &[]).await;
    assert_eq!(c.status, 200);
    assert_eq!(c.header("content-type").as_deref(), Some("audio/mpeg"));
    assert!(c.headers.starts_with("HTTP/1.0 200"), "{}", c.headers);
    assert!(c.header("transfer-encoding").is_none(), "plain bytes, not chunked");
    assert_eq!(c.header("icy-br").as_deref(), Some("128"));
    assert!(c.header("icy-metaint").is_none(), "no metadata unless asked");

    // The burst (1 s) arrives at once, then real time.
    let burst = c.read_for(Duration::from_millis(1500)).await;
    assert!(burst.len() as f64 >= 0.9 * BYTES_PER_S, "burst of {} bytes", burst.len());
    let start = Instant::now();
    let live = c.read_for(Duration::from_secs(6)).await;
    let rate = live.len() as f64 / start.elapsed().as_secs_f64();
    let ratio = rate / BYTES_PER_S;
    println!("real-time rate: {rate:.0} B/s = {ratio:.4} x 16000 B/s over 6 s");
    assert!((0.97..=1.03).contains(&ratio), "rate ratio {ratio}");

    let mut all = burst;
    all.extend_from_slice(&live);
    let frames = frames(&all);
    assert!(frames.len() > 250, "{} frames", frames.len());
    let whole: usize = frames.iter().map(|f| f.len()).sum();
    let (pcm, bad) = decode(&all[..whole]);
    assert_eq!(bad, 0, "symphonia rejected {bad} packets");
    assert_eq!(pcm.len(), frames.len() * 1152);
    assert!(pcm.iter().any(|v| v.abs() > 0.1), "the stream carries audio, not silence");
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_listeners_get_identical_bytes() {
    let t = start_station(|_| {}, |_| {}).await;
    let mut a = get(t.addr, "/stream.mp3", &[]).await;
    let first = tokio::spawn(async move { a.read_for(Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut b = get(t.addr, "/stream.mp3", &[]).await;
    let second = b.read_for(Duration::from_secs(4)).await;
    let first = first.await.unwrap();
    let (fa, fb) = (frames(&first), frames(&second));
    // Find B's first three frames in A's stream, then compare the overlap.
    let offset = (0..fa.len().saturating_sub(3))
        .find(|&i| fa[i..i + 3] == fb[..3])
        .expect("listener B's stream starts inside listener A's");
    let overlap = (fa.len() - offset).min(fb.len());
    assert!(overlap > 100, "overlap of {overlap} frames");
    for k in 0..overlap {
        assert_eq!(fa[offset + k], fb[k], "frame {k} of the overlap differs");
    }
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_listener_is_dropped_while_another_keeps_real_time() {
    let t = start_station(|_| {}, |_| {}).await;
    // A listener that reads the headers and then nothing, with a tiny
    // receive window so the backlog stays on the server.
    let mut stalled = request(t.addr, "GET", "/stream.mp3", &[], Some(4096)).await;
    assert_eq!(stalled.status, 200);
    let mut reader = get(t.addr, "/stream.mp3", &[]).await;
    let reading = tokio::spawn(async move {
        let _burst = reader.read_for(Duration::from_millis(1500)).await;
        let start = Instant::now();
        let live = reader.read_for(Duration::from_secs(12)).await;
        (live, start.elapsed())
    });
    let s = wait_status(t.addr, Duration::from_secs(15), |s| s["listeners"]["dropped_slow"].as_u64() >= Some(1)).await;
    assert_eq!(s["listeners"]["dropped_slow"], 1, "the stalled listener was dropped: {s}");
    let s = wait_status(t.addr, Duration::from_secs(5), |s| s["listeners"]["count"] == 1).await;
    assert_eq!(s["listeners"]["count"], 1, "the reading listener stays: {s}");

    let (live, elapsed) = reading.await.unwrap();
    let ratio = live.len() as f64 / elapsed.as_secs_f64() / BYTES_PER_S;
    println!("other listener while one stalled: {ratio:.4} x real time over {elapsed:?}");
    assert!((0.97..=1.03).contains(&ratio), "rate ratio {ratio}");
    frames(&live[live.iter().position(|&b| b == 0xFF).unwrap()..]);
    // The stalled connection was closed by the server: draining it ends.
    let started = Instant::now();
    let drained = stalled.read_to_end(Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(10), "stalled connection still open");
    // It never got more than the burst, the lag allowance and the buffers.
    assert!(drained.len() < 16_000 * 12, "stalled listener received {} bytes", drained.len());
    t.station.shutdown().await;
}

/// A second mount at 64 kbps plays at once with the main stream, at real
/// time, the same track audible on both at the same frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_mount_plays_in_step_with_the_main_stream() {
    let t = start_station(
        |_| {},
        |c| c.mounts = vec![nonstop::config::MountConfig { path: "/low.mp3".into(), bitrate_kbps: 64 }],
    )
    .await;
    let (mut main, mut low) = tokio::join!(get(t.addr, "/stream.mp3", &[]), get(t.addr, "/low.mp3", &[]));
    assert_eq!((main.status, low.status), (200, 200));
    assert_eq!(low.header("icy-br").as_deref(), Some("64"));
    let _ = tokio::join!(main.read_for(Duration::from_millis(1500)), low.read_for(Duration::from_millis(1500)));
    let start = Instant::now();
    let (main_bytes, low_bytes) = tokio::join!(main.read_for(Duration::from_secs(6)), low.read_for(Duration::from_secs(6)));
    let secs = start.elapsed().as_secs_f64();
    let (main_ratio, low_ratio) = (main_bytes.len() as f64 / secs / BYTES_PER_S, low_bytes.len() as f64 / secs / 8000.0);
    println!("main {main_ratio:.4}x, /low.mp3 {low_ratio:.4}x real time over {secs:.1} s ({} and {} bytes)", main_bytes.len(), low_bytes.len());
    assert!((0.95..=1.05).contains(&main_ratio) && (0.95..=1.05).contains(&low_ratio), "{main_ratio} {low_ratio}");
    // Whole 64 kbps frames from a frame boundary, decoding cleanly.
    let start = low_bytes.windows(4).position(|w| {
        nonstop::mp3::FrameHeader::parse(w).is_some_and(|h| h.bitrate_kbps == 64 && h.sample_rate == RATE)
    });
    let at = start.expect("a 64 kbps frame header");
    let mut pos = at;
    while let Some(h) = low_bytes.get(pos..).and_then(nonstop::mp3::FrameHeader::parse) {
        assert_eq!(h.bitrate_kbps, 64);
        if pos + h.len() > low_bytes.len() {
            break;
        }
        pos += h.len();
    }
    let (pcm, bad) = decode(&low_bytes[at..pos]);
    assert_eq!(bad, 0);
    assert!(pcm.iter().any(|v| v.abs() > 0.1), "the mount carries audio");
    let s = status(t.addr).await;
    let m = &s["mounts"][0];
    assert_eq!(m["path"], "/low.mp3", "{s}");
    assert_eq!(m["listeners"], 1, "{m}");
    assert_eq!(m["pcm_dropped"], 0, "{m}");
    // Released frame for frame with the main stream; its own encoder in time.
    let (sent, main_sent) = (m["frames_sent"].as_u64().unwrap(), s["broadcast"]["frames_sent"].as_u64().unwrap());
    assert!(sent + 20 >= main_sent, "mount {sent} frames, main {main_sent}");
    assert!(m["underruns"].as_u64().unwrap() <= s["broadcast"]["underruns"].as_u64().unwrap() + 2, "{m}");
    t.station.shutdown().await;
}
