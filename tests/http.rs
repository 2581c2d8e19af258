//! The HTTP surface: status document, playlists, errors, limits, shutdown.

use std::time::Duration;

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_has_every_field_and_queues_stay_within_capacity() {
    let t = start_station(|_| {}, |_| {}).await;
    // Until the first frame is on air nothing is "now playing".
    let s = wait_status(t.addr, Duration::from_secs(10), |s| !s["now_playing"].is_null()).await;
    assert!(!s["now_playing"].is_null(), "something plays within seconds: {s}");
    let mut listener = get(t.addr, "/stream.mp3", &[]).await;
    let reading = tokio::spawn(async move { listener.read_for(Duration::from_secs(4)).await });
    let mut last_sent = 0;
    for _ in 0..12 {
        let s = status(t.addr).await;
        for key in ["name", "uptime_s", "bitrate_kbps", "sample_rate"] {
            assert!(!s["station"][key].is_null(), "station.{key}: {s}");
        }
        for key in ["id", "title", "artist", "started_at"] {
            assert!(!s["now_playing"][key].is_null(), "now_playing.{key}: {s}");
        }
        assert!(s["upcoming"].as_array().is_some_and(|u| !u.is_empty()), "upcoming: {s}");
        for q in ["pcm", "frames"] {
            let depth = s["queues"][q]["depth_s"].as_f64().unwrap();
            let capacity = s["queues"][q]["capacity_s"].as_f64().unwrap();
            assert!((0.0..=capacity).contains(&depth), "queues.{q}: depth {depth} > capacity {capacity}");
        }
        for key in ["frames_sent", "underruns", "drift_ms", "burst_s"] {
            assert!(s["broadcast"][key].is_number(), "broadcast.{key}: {s}");
        }
        let sent = s["broadcast"]["frames_sent"].as_u64().unwrap();
        assert!(sent >= last_sent);
        last_sent = sent;
        assert!(s["listeners"]["count"].is_number() && s["listeners"]["max"].is_number());
        for key in ["tracks", "playable", "failed"] {
            assert!(s["library"][key].is_number(), "library.{key}: {s}");
        }
        assert!(s["library"]["failed_files"].is_array());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let s = status(t.addr).await;
    assert_eq!(s["listeners"]["count"], 1);
    assert_eq!(s["library"]["playable"], 3);
    reading.await.unwrap();
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_head_and_errors() {
    let t = start_station(|_| {}, |_| {}).await;
    let url = format!("http://{}/stream.mp3", t.addr);

    let mut m3u = get(t.addr, "/listen.m3u", &[("Connection", "close")]).await;
    assert_eq!(m3u.status, 200);
    assert_eq!(m3u.header("content-type").as_deref(), Some("audio/x-mpegurl"));
    let body = String::from_utf8(m3u.read_to_end(Duration::from_secs(5)).await).unwrap();
    assert!(body.starts_with("#EXTM3U") && body.lines().any(|l| l == url), "{body}");

    let mut pls = get(t.addr, "/listen.pls", &[("Connection", "close")]).await;
    let body = String::from_utf8(pls.read_to_end(Duration::from_secs(5)).await).unwrap();
    assert!(body.starts_with("[playlist]") && body.contains(&format!("File1={url}")), "{body}");

    let mut head = request(t.addr, "HEAD", "/stream.mp3", &[("Icy-MetaData", "1")], None).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type").as_deref(), Some("audio/mpeg"));
    assert_eq!(head.header("icy-metaint").as_deref(), Some("2048"));
    assert!(head.read_to_end(Duration::from_secs(5)).await.is_empty(), "HEAD has no body");

    assert_eq!(get(t.addr, "/nope", &[]).await.status, 404);
    assert_eq!(request(t.addr, "POST", "/status", &[("Content-Length", "0")], None).await.status, 405);
    assert_eq!(status(t.addr).await["listeners"]["total"], 0, "HEAD is not a listener");
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_status_counts() {
    let t = start_station(|_| {}, |_| {}).await;
    let mut listener = get(t.addr, "/stream.mp3", &[]).await;
    let _ = listener.chunk(Duration::from_secs(10)).await;
    wait_status(t.addr, Duration::from_secs(10), |s| s["listeners"]["count"] == 1).await;
    let accept = ("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");
    let mut m = get(t.addr, "/metrics", &[("Connection", "close"), accept]).await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap_or_default().starts_with("application/openmetrics-text"));
    let body = String::from_utf8(m.read_to_end(Duration::from_secs(5)).await).unwrap();
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("nonstop_listeners"), 1.0);
    assert_eq!(value("nonstop_listeners_connected_total"), 1.0);
    assert!(value("nonstop_frames_sent_total") > 0.0);
    assert!((value("nonstop_queue_capacity_seconds{queue=\"pcm\"}") - 2.0).abs() < 0.1, "{body}");
    assert_eq!(value("nonstop_component_up{component=\"mixer\"}"), 1.0);
    assert!(body.contains("nonstop_transition_fallbacks_total{reason=\"misaligned\"}"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    // Without OpenMetrics in Accept: the classic text format.
    let mut m = get(t.addr, "/metrics", &[("Connection", "close")]).await;
    assert!(m.header("content-type").unwrap_or_default().starts_with("text/plain; version=0.0.4"));
    let body = String::from_utf8(m.read_to_end(Duration::from_secs(5)).await).unwrap();
    assert!(body.contains("# TYPE nonstop_underruns_total counter\n") && !body.contains("# EOF"), "{body}");
    drop(listener);
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_push_what_is_on_air_and_a_tick() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = start_station(|_| {}, |_| {}).await;
    wait_status(t.addr, Duration::from_secs(10), |s| !s["now_playing"].is_null()).await;
    let mut c = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    c.write_all(b"GET /events HTTP/1.0\r\n\r\n").await.unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(text.contains("event: now_playing") && text.contains("event: tick")) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, c.read(&mut buf)).await.expect("events in time").unwrap();
        assert!(n > 0, "the event stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    let now: serde_json::Value = text
        .split("event: now_playing\ndata: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .map(|line| serde_json::from_str(line).unwrap())
        .unwrap();
    // The tone library's titles (a 9 s track may have ended since).
    assert!(["Low", "Mid", "High"].contains(&now["track"]["title"].as_str().unwrap_or("")), "{text}");
    assert!(now["started_at_s"].as_f64().is_some(), "{text}");
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_listeners_is_enforced() {
    let t = start_station(|_| {}, |c| c.server.max_listeners = 2).await;
    let a = get(t.addr, "/stream.mp3", &[]).await;
    let _b = get(t.addr, "/stream.mp3", &[]).await;
    assert_eq!(a.status, 200);
    let refused = get(t.addr, "/stream.mp3", &[]).await;
    assert_eq!(refused.status, 503);
    drop(a);
    let s = wait_status(t.addr, Duration::from_secs(5), |s| s["listeners"]["count"] == 1).await;
    assert_eq!(s["listeners"]["count"], 1, "{s}");
    assert_eq!(s["listeners"]["refused_full"], 1);
    assert_eq!(get(t.addr, "/stream.mp3", &[]).await.status, 200);
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_clients_get_a_plain_stream() {
    let t = start_station(|_| {}, |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET /stream.mp3 HTTP/1.0\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    while got.len() < 4096 {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..split]).to_lowercase();
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    frames(&got[split..]);
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_listeners_cleanly() {
    let t = start_station(|_| {}, |_| {}).await;
    let mut c = get(t.addr, "/stream.mp3", &[]).await;
    let _ = c.read_for(Duration::from_millis(1200)).await;
    let addr = t.addr;
    let done = tokio::time::timeout(Duration::from_secs(15), t.station.shutdown()).await;
    assert!(done.is_ok(), "shutdown finished");
    let rest = c.read_to_end(Duration::from_secs(5)).await;
    // The stream ended on a whole frame: the client got an EOF, not a cut.
    frames(&rest[rest.iter().position(|&b| b == 0xFF).unwrap_or(0)..]);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_are_closed_without_a_token() {
    let t = start_station(|_| {}, |_| {}).await;
    assert_eq!(get(t.addr, "/admin/status", &[]).await.status, 403);
    let auth = ("Authorization", "Bearer anything");
    assert_eq!(request(t.addr, "POST", "/admin/skip", &[auth, ("Content-Length", "0")], None).await.status, 403);
    t.station.shutdown().await;
}

/// Two 100-second beat tracks (the 9-second tones are clips here): a skip
/// mixes out of the first long before its end, and the admin routes want
/// the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_skip_mixes_out_early_behind_the_token() {
    use nonstop::synth::{render as synth, TrackSpec};
    let prepare = |library: &std::path::Path| {
        for (i, bpm) in [120.0, 122.0].into_iter().enumerate() {
            let spec = TrackSpec { title: format!("Long {i}"), bpm, seconds: 100.0, seed: i as u64, ..nonstop::synth::demo_specs(100.0)[0].clone() };
            let pcm = synth(&spec, nonstop::units::SampleRate::CD);
            let settings = nonstop::encoder::LameSettings { sample_rate: 44_100, bitrate_kbps: 128, quality: 7 };
            let tags = nonstop::encoder::FileTags { title: &spec.title, artist: &format!("Artist {i}"), album: "test" };
            std::fs::write(library.join(format!("long{i}.mp3")), nonstop::encoder::encode_file(settings, tags, &pcm).unwrap()).unwrap();
        }
    };
    let t = start_station(prepare, |c| {
        c.library.min_track_s = 30.0;
        c.mixer.overlap_bars = 4;
        c.server.admin_token = Some("s3cret".into());
    })
    .await;
    let s = status(t.addr).await;
    assert_eq!(s["library"]["too_short"], 3, "{s}");
    let started = s["now_playing"]["started_at_s"].as_f64().unwrap();

    assert_eq!(get(t.addr, "/admin/status", &[]).await.status, 401);
    assert_eq!(get(t.addr, "/admin/status", &[("Authorization", "Bearer wrong")]).await.status, 401);
    let auth = ("Authorization", "Bearer s3cret");
    let mut full = get(t.addr, "/admin/status", &[auth, ("Connection", "close")]).await;
    assert_eq!(full.status, 200);
    assert!(full.header("access-control-allow-origin").is_none(), "no CORS on admin routes");
    let body: serde_json::Value = serde_json::from_slice(&full.read_to_end(Duration::from_secs(5)).await).unwrap();
    assert!(body["listeners"].is_array() && body["status"]["now_playing"].is_object(), "{body}");

    let skip = request(t.addr, "POST", "/admin/skip", &[auth, ("Content-Length", "0")], None).await;
    assert_eq!(skip.status, 202);
    // Without the skip the first track would play to about 90 s.
    let s = wait_status(t.addr, Duration::from_secs(60), |s| s["mixer"]["recent_transitions"].as_array().is_some_and(|a| !a.is_empty())).await;
    let at = s["mixer"]["recent_transitions"][0]["at_s"].as_f64().expect("a transition after the skip");
    assert!(at - started < 50.0, "mixed out {:.1} s into the track: {s}", at - started);
    t.station.shutdown().await;
}
