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
    let t = start_station(|_| {}, |c| c.server.admin_token = None).await;
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
    })
    .await;
    let s = public_status(t.addr).await;
    assert_eq!(s["library"]["too_short"], 3, "{s}");

    assert_eq!(get(t.addr, "/admin/status", &[]).await.status, 401);
    assert_eq!(get(t.addr, "/admin/status", &[("Authorization", "Bearer wrong")]).await.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("Authorization", bearer.as_str());
    let mut full = get(t.addr, "/admin/status", &[auth, ("Connection", "close")]).await;
    assert_eq!(full.status, 200);
    assert!(full.header("access-control-allow-origin").is_none(), "no CORS on admin routes");
    let body: serde_json::Value = serde_json::from_slice(&full.read_to_end(Duration::from_secs(5)).await).unwrap();
    assert!(body["connections"].is_array() && body["now_playing"].is_object(), "{body}");

    // Ten seconds in (the mixer is queues ahead of the air), skip.
    let s = wait_status(t.addr, Duration::from_secs(30), |s| s["broadcast"]["media_time_s"].as_f64().unwrap() > 10.0).await;
    let skipped_at = s["broadcast"]["media_time_s"].as_f64().unwrap();
    let ahead = s["queues"]["pcm"]["capacity_s"].as_f64().unwrap() + s["queues"]["frames"]["capacity_s"].as_f64().unwrap();
    let skip = request(t.addr, "POST", "/admin/skip", &[auth, ("Content-Length", "0")], None).await;
    assert_eq!(skip.status, 202);
    // Without the skip the first track would play to about 90 s.
    let cond = |s: &serde_json::Value| s["mixer"]["recent_transitions"].as_array().is_some_and(|a| !a.is_empty());
    let s = loop {
        let (_, body) = call(t.addr, "GET", "/admin/status", &[auth], "").await;
        let s: serde_json::Value = serde_json::from_str(&body).unwrap();
        if cond(&s) || s["broadcast"]["media_time_s"].as_f64().unwrap() > skipped_at + 60.0 {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let tr = &s["mixer"]["recent_transitions"][0];
    let at = tr["at_s"].as_f64().expect("a transition after the skip");
    // On the next downbeat the mixer reaches: within the queues plus a bar
    // (2 s at 120 BPM), and on the beat.
    println!("skip at {skipped_at:.1} s (media), transition at {at:.1} s: {:.1} s later, queues {ahead:.1} s", at - skipped_at);
    assert!(at - skipped_at <= ahead + 2.0 + 0.5, "transition {:.1} s after the skip: {tr}", at - skipped_at);
    assert_eq!(tr["mode"], "beatmatched", "{tr}");
    t.station.shutdown().await;
}

/// The public status holds no file path or error text; the admin one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_status_holds_no_paths() {
    let t = start_station(|lib| std::fs::write(lib.join("broken.mp3"), vec![0x55u8; 20_000]).unwrap(), |_| {}).await;
    let dir = t.dir.path().to_str().unwrap().to_string();
    let mut c = get(t.addr, "/status", &[("Connection", "close")]).await;
    let public = String::from_utf8(c.read_to_end(Duration::from_secs(5)).await).unwrap();
    let s: serde_json::Value = serde_json::from_str(&public).unwrap();
    assert_eq!(s["library"]["failed"], 1, "{s}");
    assert!(!public.contains(&dir) && !public.contains("broken.mp3"), "paths on the public status: {public}");
    assert!(s["library"]["failed_files"].is_null() && s["outputs"].is_null());
    let full = status(t.addr).await;
    assert!(full["library"]["failed_files"][0]["path"].as_str().unwrap().ends_with("broken.mp3"), "{full}");
    t.station.shutdown().await;
}

/// A listener searches, requests, and the track is planned within the next
/// three; a second request inside the cooldown is refused; admins reorder
/// and drop requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_planned_and_limited() {
    let t = start_station(
        |_| {},
        |c| {
            c.requests.enabled = true;
            c.requests.cooldown_s = 600.0;
        },
    )
    .await;
    let (code, body) = call(t.addr, "GET", "/api/tracks?q=hig", &[], "").await;
    assert_eq!(code, 200, "{body}");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found["tracks"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["tracks"][0]["title"], "High", "{found}");
    // Request a track that is not on air.
    let on_air = status(t.addr).await["now_playing"]["id"].as_i64().unwrap();
    let (_, body) = call(t.addr, "GET", "/api/tracks?q=tones", &[], "").await;
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<i64> = all["tracks"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{all}");
    let high = *ids.iter().find(|id| **id != on_air).unwrap();
    assert_eq!(call(t.addr, "GET", "/api/tracks?q=", &[], "").await.0, 400);
    assert_eq!(call(t.addr, "POST", "/api/requests", &[], "{\"track_id\": 999999}").await.0, 404);
    assert_eq!(call(t.addr, "POST", "/api/requests", &[], "not json").await.0, 400);

    let (code, body) = call(t.addr, "POST", "/api/requests", &[], &format!("{{\"track_id\": {high}}}")).await;
    assert_eq!(code, 201, "{body}");
    let entry: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(entry["request"]["position"].as_u64().is_some_and(|p| p <= 2), "{entry}");
    // The same client again, for another track: inside its cooldown.
    let other = *ids.iter().find(|id| **id != high).unwrap();
    let (code, body) = call(t.addr, "POST", "/api/requests", &[], &format!("{{\"track_id\": {other}}}")).await;
    assert_eq!(code, 429, "{body}");

    // Admins: a second request, reorder, list, drop.
    let (code, body) = admin(t.addr, "POST", "/admin/requests", &format!("{{\"track_id\": {other}}}")).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = admin(t.addr, "POST", "/admin/requests/order", &format!("{{\"ids\": [{other}, {high}]}}")).await;
    assert_eq!(code, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["requests"][0]["id"], other, "{listed}");
    assert_eq!(admin(t.addr, "DELETE", &format!("/admin/requests/{other}"), "").await.0, 200);
    assert_eq!(admin(t.addr, "DELETE", &format!("/admin/requests/{other}"), "").await.0, 404);

    // The request plays within three tracks.
    let first = status(t.addr).await["mixer"]["tracks_started"].as_u64().unwrap();
    let s = wait_status(t.addr, Duration::from_secs(60), |s| {
        (s["now_playing"]["id"] == high && s["ordering"]["requests_played"] == 1)
            || s["mixer"]["tracks_started"].as_u64().unwrap() > first + 3
    })
    .await;
    assert_eq!(s["now_playing"]["id"], high, "the request did not play within 3 tracks: {s}");
    assert_eq!(s["ordering"]["requests_played"], 1, "{s}");
    t.station.shutdown().await;
}

/// The admin switches the plugin: a good one after its dry run, a broken
/// one refused with its line while the active one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_switches_the_plugin_after_a_dry_run() {
    let t = start_station(|_| {}, |_| {}).await;
    let (code, body) = admin(t.addr, "GET", "/admin/plugin", "").await;
    assert_eq!(code, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(listed["available"].as_array().unwrap().iter().any(|p| p == "harmonic"), "{listed}");

    let (code, body) = admin(t.addr, "POST", "/admin/plugin", "{\"name\": \"harmonic\"}").await;
    assert_eq!(code, 200, "{body}");
    wait_status(t.addr, Duration::from_secs(5), |s| s["ordering"]["plugin"] == "harmonic").await;

    let plugins = t.dir.path().join("plugins");
    std::fs::write(plugins.join("broken.rhai"), "fn pick(ctx) {\n  let x = ;\n}\n").unwrap();
    let (code, body) = admin(t.addr, "POST", "/admin/plugin", "{\"name\": \"broken\"}").await;
    assert_eq!(code, 422, "{body}");
    let refused: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refused["line"], 2, "{refused}");
    assert_eq!(admin(t.addr, "POST", "/admin/plugin", "{\"name\": \"../etc\"}").await.0, 422);
    assert_eq!(call(t.addr, "POST", "/admin/plugin", &[], "{\"name\": \"tour\"}").await.0, 401);
    let s = status(t.addr).await;
    assert_eq!(s["ordering"]["plugin"], "harmonic", "the active plugin stays: {s}");
    t.station.shutdown().await;
}

/// ID3v2.3 frame: id, size, no flags, body.
fn id3_frame(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut f = id.to_vec();
    f.extend((body.len() as u32).to_be_bytes());
    f.extend([0, 0]);
    f.extend(body);
    f
}

/// A cover picture in a track's tags is served for the player page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artwork_from_the_tags() {
    let picture: Vec<u8> = b"\x89PNG\r\n\x1a\n-not-really-a-png-".iter().copied().chain(0..200u8).collect();
    let prepare = |lib: &std::path::Path| {
        let mp3 = std::fs::read(lib.join("Low.mp3")).unwrap();
        // Past the encoder's own tag, if any.
        let audio = if mp3.starts_with(b"ID3") {
            let size = mp3[6..10].iter().fold(0usize, |n, b| (n << 7) | (*b as usize & 0x7f));
            &mp3[10 + size..]
        } else {
            &mp3[..]
        };
        let mut apic = b"\0image/png\0\x03\0".to_vec();
        apic.extend(&picture);
        let frames: Vec<u8> = [id3_frame(b"TIT2", b"\0Low"), id3_frame(b"TPE1", b"\0Tones"), id3_frame(b"APIC", &apic)].concat();
        let n = frames.len();
        let mut file = b"ID3\x03\0\0".to_vec();
        file.extend([(n >> 21) as u8 & 0x7f, (n >> 14) as u8 & 0x7f, (n >> 7) as u8 & 0x7f, n as u8 & 0x7f]);
        file.extend(frames);
        file.extend(audio);
        std::fs::write(lib.join("Low.mp3"), file).unwrap();
    };
    let t = start_station(prepare, |_| {}).await;
    let (_, body) = call(t.addr, "GET", "/api/tracks?q=tones", &[], "").await;
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id_of = |title: &str| found["tracks"].as_array().unwrap().iter().find(|t| t["title"] == title).unwrap()["id"].as_i64().unwrap();
    let mut c = get(t.addr, &format!("/api/artwork/{}", id_of("Low")), &[("Connection", "close")]).await;
    assert_eq!(c.status, 200);
    assert_eq!(c.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(c.read_to_end(Duration::from_secs(5)).await, picture);
    assert_eq!(get(t.addr, &format!("/api/artwork/{}", id_of("High")), &[]).await.status, 404);
    assert_eq!(get(t.addr, "/api/artwork/nope", &[]).await.status, 404);
    t.station.shutdown().await;
}

/// Behind a trusted proxy each listener (by `X-Forwarded-For`) has its own
/// request cooldown; from anyone else the header is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_cooldown_per_listener_behind_a_trusted_proxy() {
    let open = |trusted: Vec<std::net::IpAddr>| {
        move |c: &mut nonstop::config::Config| {
            c.requests.enabled = true;
            c.server.trusted_proxies = trusted;
        }
    };
    for (trusted, second) in [(vec!["127.0.0.1".parse().unwrap()], 201), (vec![], 429)] {
        let t = start_station(|_| {}, open(trusted.clone())).await;
        let (_, body) = call(t.addr, "GET", "/api/tracks?q=tones", &[], "").await;
        let found: serde_json::Value = serde_json::from_str(&body).unwrap();
        let ids: Vec<i64> = found["tracks"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
        let on_air = status(t.addr).await["now_playing"]["id"].as_i64().unwrap();
        let free: Vec<i64> = ids.into_iter().filter(|id| *id != on_air).collect();
        let ask = |id: i64, who: &'static str| {
            let body = format!("{{\"track_id\": {id}}}");
            async move { call(t.addr, "POST", "/api/requests", &[("X-Forwarded-For", who)], &body).await }
        };
        assert_eq!(ask(free[0], "203.0.113.7").await.0, 201);
        let (code, body) = ask(free[1], "203.0.113.8").await;
        assert_eq!(code, second, "trusted {trusted:?}: {body}");
        // The first listener again: inside its cooldown either way.
        let (code, _) = ask(free[1], "203.0.113.7, 127.0.0.1").await;
        assert_eq!(code, 429, "trusted {trusted:?}");
        t.station.shutdown().await;
    }
}
