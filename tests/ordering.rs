//! Plugins swapped while a listener is connected: the upcoming list and then
//! the audio follow a new plugin; five broken plugins are rejected with
//! their line while the previous one keeps playing, without a gap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::*;

const TARGET_HZ: f32 = 1250.0;

/// The plugin at start: never the target.
const AVOID: &str = "// avoids Target
fn next_track(ctx) {
    for c in ctx.candidates {
        if c.title != \"Target\" { return c.id; }
    }
    ctx.candidates[0].id
}
";

/// The plugin saved while playing: the target whenever the rules allow.
const PREFER: &str = "// prefers Target
fn next_track(ctx) {
    for c in ctx.candidates {
        if c.title == \"Target\" { return c.id; }
    }
    ctx.candidates[0].id
}
";

/// Broken plugins: source, what the error says, the lines it may name.
const BROKEN: [(&str, &str, &[usize]); 5] = [
    ("fn next_track(ctx) {\n    let x = ;\n    x\n}\n", "syntax error", &[2]),
    ("fn next_track(ctx) {\n    let n = ctx.candidates.len();\n    n / 0\n}\n", "runtime error", &[3]),
    ("fn next_track(ctx) {\n    let i = 0;\n    while true {\n        i += 1;\n    }\n    i\n}\n", "operations limit", &[3, 4]),
    ("fn next_track(ctx) {\n    \"Target\"\n}\n", "must return a track id", &[2]),
    ("fn next_track(ctx) {\n    123456789\n}\n", "not among the candidates", &[2]),
];

fn titles(s: &serde_json::Value) -> Vec<String> {
    s["ordering"]["upcoming"].as_array().unwrap().iter().map(|u| u["title"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_swap_live_and_broken_ones_are_rejected() {
    let t = start_station(
        |lib| {
            write_tone_library(lib, &[ToneTrack { title: "Target", artist: "Tones", hz: TARGET_HZ, seconds: 9.0 }]);
            let plugins = lib.parent().unwrap().join("plugins");
            std::fs::create_dir_all(&plugins).unwrap();
            std::fs::write(plugins.join("live.rhai"), AVOID).unwrap();
        },
        |c| {
            c.ordering.plugin = "live".into();
            c.ordering.no_repeat_tracks = 1;
            c.ordering.no_repeat_minutes = 0.0;
            c.ordering.artist_separation = 0;
            c.ordering.limits.max_operations = 300_000;
            c.ordering.limits.timeout_ms = 300;
        },
    )
    .await;
    let file = t.dir.path().join("plugins/live.rhai");
    let s = status(t.addr).await;
    let o = &s["ordering"];
    assert_eq!(o["plugin"], "live", "{o}");
    assert_eq!((o["reloads"].as_u64(), o["errors"].as_u64()), (Some(0), Some(0)), "{o}");
    assert!(o["error"].is_null(), "{o}");
    assert!(o["upcoming"].as_array().unwrap().iter().all(|u| u["by"] == "live"), "{o}");
    assert!(!titles(&s).contains(&"Target".to_string()), "{o}");
    let v1 = o["version"].as_str().unwrap().to_string();

    // A listener reads throughout, noting the longest wait between reads.
    let mut client = get(t.addr, "/stream.mp3", &[]).await;
    assert_eq!(client.status, 200);
    let received = Arc::new(AtomicUsize::new(0));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let count = received.clone();
    let reader = tokio::spawn(async move {
        let (start, mut last, mut max_gap, mut bytes) = (Instant::now(), Instant::now(), Duration::ZERO, Vec::new());
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                r = client.chunk(Duration::from_secs(5)) => {
                    let chunk = r.expect("no bytes for 5 s").expect("the stream ended");
                    max_gap = max_gap.max(last.elapsed());
                    last = Instant::now();
                    bytes.extend_from_slice(&chunk);
                    count.store(bytes.len(), Ordering::Relaxed);
                }
            }
        }
        (bytes, max_gap, start.elapsed())
    });
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Save the new plugin: within one pick it plans the target first...
    let swapped_at_byte = received.load(Ordering::Relaxed);
    let saved = Instant::now();
    std::fs::write(&file, PREFER).unwrap();
    // The planner thread makes the new picks just after the swap.
    let planned = |s: &serde_json::Value| s["ordering"]["upcoming"].as_array().map_or(0, |u| u.len());
    let s = wait_status(t.addr, Duration::from_secs(10), |s| {
        s["ordering"]["reloads"] == 1 && planned(s) == nonstop::ordering::UPCOMING
    })
    .await;
    let o = &s["ordering"];
    assert_eq!(o["reloads"], 1, "{o}");
    assert_eq!(titles(&s)[0], "Target", "{o}");
    assert!(o["upcoming"].as_array().unwrap().iter().all(|u| u["by"] == "live"), "{o}");
    let v2 = o["version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    println!("plugin swapped in {:.2} s after saving", saved.elapsed().as_secs_f64());

    // ...and then it is on air.
    let s = wait_status(t.addr, Duration::from_secs(40), |s| s["now_playing"]["title"] == "Target").await;
    assert_eq!(s["now_playing"]["title"], "Target", "{s}");
    println!("target on air {:.1} s after saving", saved.elapsed().as_secs_f64());
    let on_air_at_byte = received.load(Ordering::Relaxed);

    // Five broken versions: each rejected, named with its line, counted.
    for (i, (source, says, lines)) in BROKEN.iter().enumerate() {
        std::fs::write(&file, source).unwrap();
        let want = i as u64 + 1;
        let s = wait_status(t.addr, Duration::from_secs(20), |s| s["ordering"]["errors"] == want).await;
        let o = &s["ordering"];
        assert_eq!(o["errors"], want, "broken plugin {want} was not rejected: {o}");
        assert_eq!(o["reloads"], 1, "{o}");
        assert_eq!(o["version"], v2.as_str(), "the previous plugin stays: {o}");
        let e = &o["error"];
        assert_eq!(e["during"], "reload", "{e}");
        assert!(e["message"].as_str().unwrap().contains(says), "plugin {want}: {e}");
        let line = e["line"].as_u64().unwrap_or(0) as usize;
        assert!(lines.contains(&line), "plugin {want}: line {line}, want {lines:?}: {e}");
        assert!(o["upcoming"].as_array().unwrap().iter().all(|u| u["by"] == "live"), "{o}");
        println!("broken plugin {want}: {}", e);
    }
    // The previous plugin still chooses: the target is planned again.
    let s = wait_status(t.addr, Duration::from_secs(30), |s| titles(s).contains(&"Target".to_string())).await;
    assert!(titles(&s).contains(&"Target".to_string()), "{s}");
    assert_eq!(s["ordering"]["fallbacks"], 0);

    // Hear 6 s of the target's time on air.
    while received.load(Ordering::Relaxed) < on_air_at_byte + 6 * BYTES_PER_S as usize {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    let (bytes, max_gap, elapsed) = reader.await.unwrap();
    let rate = bytes.len() as f64 / elapsed.as_secs_f64();
    println!(
        "listener: {} bytes in {:.1} s ({rate:.0} B/s incl. the 1 s burst), longest wait between reads {} ms",
        bytes.len(),
        elapsed.as_secs_f64(),
        max_gap.as_millis()
    );
    assert!(max_gap < Duration::from_millis(1500), "a gap of {max_gap:?}");
    assert!(rate > 0.95 * BYTES_PER_S && rate < 1.3 * BYTES_PER_S, "{rate} B/s");
    // An unbroken run of frames, decoding without an error.
    let starts: Vec<usize> = frames(&bytes).iter().scan(0, |at, f| Some(std::mem::replace(at, *at + f.len()))).collect();
    let (pcm, bad) = decode(&bytes);
    assert_eq!(bad, 0);

    // The audio followed: no target tone before the swap, then the target.
    let sample_at = |byte: usize| starts.partition_point(|s| *s < byte) * 1152;
    let window = |from: usize, to: usize| {
        let x = &pcm[sample_at(from).min(pcm.len())..sample_at(to).min(pcm.len())];
        let target = tone_power(x, TARGET_HZ);
        let others = TONES.iter().map(|t| tone_power(x, t.hz)).fold(0.0f32, f32::max);
        (target, others)
    };
    let (before, others) = window(0, swapped_at_byte);
    assert!(before < 0.01 * others, "target audible before the swap: {before} vs {others}");
    let (after, others) = window(on_air_at_byte, on_air_at_byte + 5 * BYTES_PER_S as usize);
    assert!(after > others, "target not dominant once on air: {after} vs {others}");
    t.station.shutdown().await;
}
