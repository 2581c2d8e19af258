//! The station never goes off the air: a corpus of broken and odd files
//! dropped into a running station, injected stage failures, a corrupt
//! catalogue, kills mid-synthesis and mid-analysis — with a listener
//! reading throughout.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nonstop::catalog::Catalog;
use nonstop::synth::faults as fault_corpus;

use crate::util::*;

/// Generous queues: the analysis of the corpus keeps both cores busy, and
/// the point is that the listener does not notice.
fn roomy(c: &mut nonstop::config::Config) {
    c.queues.pcm_s = 10.0;
    c.queues.frames_s = 5.0;
    c.stream.max_lag_s = 20.0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_files_dropped_into_a_running_station_never_stop_the_music() {
    let t = start_station(|_| {}, roomy).await;
    let listener = BackgroundListener::start(t.addr).await;
    let underruns_before = status(t.addr).await["broadcast"]["underruns"].as_u64().unwrap();

    // The corpus arrives while the station plays; one file vanishes and
    // one is renamed while the indexer is at work.
    let corpus = t.library().join("corpus");
    let entries = tokio::task::spawn_blocking({
        let (corpus, outside) = (corpus.clone(), t.dir.path().join("outside"));
        move || fault_corpus::write(&corpus, &outside, true).unwrap()
    })
    .await
    .unwrap();
    let vanishing = t.library().join("vanishing.mp3");
    std::fs::copy(corpus.join("odd-tags.mp3"), &vanishing).unwrap();
    std::fs::copy(corpus.join("odd-tags.mp3"), t.library().join("renamed-before.mp3")).unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    std::fs::remove_file(&vanishing).unwrap();
    std::fs::rename(t.library().join("renamed-before.mp3"), t.library().join("renamed-after.mp3")).unwrap();

    let catalog = Catalog::open(&t.dir.path().join("catalog.sqlite")).unwrap();
    let renamed_plays = || catalog.playable().unwrap().iter().any(|t| t.path.ends_with("renamed-after.mp3"));
    let s = wait_status(t.addr, Duration::from_secs(600), |s| {
        s["library"]["pending"] == 0 && s["library"]["tracks"].as_u64().unwrap_or(0) > 20 && renamed_plays()
    })
    .await;
    assert_eq!(s["library"]["pending"], 0, "corpus analysed: {}", s["library"]);

    // Every file either plays or is listed with a clear error.
    let playable: HashSet<PathBuf> = catalog.playable().unwrap().iter().map(|t| t.path.clone()).collect();
    let failed = catalog.failed().unwrap();
    let failed_paths: HashSet<String> = failed.iter().map(|f| f.path.clone()).collect();
    for f in &failed {
        assert!(f.error.len() > 8, "a clear error for {}: {:?}", f.path, f.error);
        println!("failed: {}: {}", f.path, f.error);
    }
    let lib = t.library().canonicalize().unwrap();
    let known = |p: &Path| {
        let p = lib.join(p.strip_prefix(t.library()).unwrap());
        playable.contains(&p) || failed_paths.contains(&p.to_string_lossy().into_owned())
    };
    for e in &entries {
        match e.kind {
            "symlink loop" => {}
            "symlink out of the library" => {
                assert!(!playable.iter().any(|p| p.to_string_lossy().contains("outside")), "followed a link out of the library");
            }
            "second link to a file already in the library" => {
                let original = corpus.join("odd-tags.mp3");
                assert!(known(&original) != known(&e.path), "the same file is listed exactly once");
            }
            _ => assert!(known(&e.path), "{} ({}) neither plays nor is listed as failed", e.path.display(), e.kind),
        }
    }
    // What should play, plays; what cannot, fails.
    for name in ["mono-8k.wav", "hires-96k-24bit.wav", "surround-6ch.wav", "surround-8ch.wav", "hour-long.wav", "float-nan.wav"] {
        assert!(playable.contains(&lib.join("corpus").join(name)), "{name} plays");
    }
    for name in ["rate-0.wav", "rate-1.wav", "rate-max.wav", "channels-0.wav", "garbage.mp3", "empty.mp3", "float-huge.wav"] {
        assert!(failed_paths.contains(&lib.join("corpus").join(name).to_string_lossy().into_owned()), "{name} failed");
    }
    let vanished = |name: &str| !playable.iter().any(|p| p.ends_with(name)) && !failed_paths.iter().any(|p| p.ends_with(name));
    assert!(vanished("vanishing.mp3") && vanished("renamed-before.mp3"), "files gone before analysis leave no trace");
    // Tags are clean wherever they are shown.
    let tracks = catalog.playable().unwrap();
    let nul = tracks.iter().find(|t| t.path.ends_with("nul-tags.wav")).expect("nul-tags plays");
    assert_eq!((nul.title.as_str(), nul.artist.as_str()), ("Nul Title", "Nul Artist"));
    assert!(tracks.iter().all(|t| !t.display().chars().any(|c| c.is_control())));

    // A good file added afterwards is analysed and scheduled.
    write_tone_library(&t.library(), &[ToneTrack { title: "Latecomer", artist: "Tones", hz: 660.0, seconds: 9.0 }]);
    let s = wait_status(t.addr, Duration::from_secs(60), |s| {
        s["library"]["pending"] == 0 && catalog.playable().unwrap().iter().any(|t| t.title == "Latecomer")
    })
    .await;
    assert_eq!(s["library"]["pending"], 0);

    // The listener never noticed; every stage is alive and never restarted.
    let s = status(t.addr).await;
    let heard = listener.stop().await;
    assert!(!heard.ended, "the listener was disconnected");
    assert!(heard.max_gap < Duration::from_secs(2), "longest wait for bytes: {:?}", heard.max_gap);
    let underruns = s["broadcast"]["underruns"].as_u64().unwrap() - underruns_before;
    println!("{} KB heard, longest gap {:?}, underruns {underruns}", heard.bytes.len() / 1000, heard.max_gap);
    assert_eq!(underruns, 0, "{}", s["broadcast"]);
    for (name, c) in s["components"].as_object().unwrap() {
        assert_eq!(c["restarts"], 0, "{name}: {c}");
    }
    let whole = frames(&heard.bytes).iter().map(|f| f.len()).sum::<usize>();
    assert_eq!(decode(&heard.bytes[..whole]).1, 0, "the stream decodes cleanly");
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixer_panic_and_an_encoder_error_are_survived() {
    let t = start_station(|_| {}, roomy).await;
    let listener = BackgroundListener::start(t.addr).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    for (switch, component) in [(&t.station.faults().mixer_panic, "mixer"), (&t.station.faults().encoder_error, "encoder")] {
        let flipped = Instant::now();
        switch.store(true, Ordering::Relaxed);
        let s = wait_status(t.addr, Duration::from_secs(10), |s| {
            s["components"][component]["restarts"] == 1 && s["components"][component]["alive"] == true
        })
        .await;
        let c = &s["components"][component];
        assert_eq!(c["restarts"], 1, "{component}: {c}");
        assert!(c["last_error"]["message"].as_str().unwrap().contains("injected"), "{c}");
        // Music again: a track on air, and the stream moving on.
        let s = wait_status(t.addr, Duration::from_secs(5), |s| !s["now_playing"].is_null()).await;
        assert!(!s["now_playing"].is_null(), "music back within 5 s after the {component} failed: {s}");
        println!("{component}: restarted, music on air {:.1} s after the fault", flipped.elapsed().as_secs_f64());
    }
    let before = listener.received.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(listener.received.load(Ordering::Relaxed) > before + 16_000, "the stream flows");
    let heard = listener.stop().await;
    assert!(!heard.ended, "the listener stayed connected");
    assert!(heard.max_gap < Duration::from_secs(2), "longest wait for bytes: {:?}", heard.max_gap);
    let whole = frames(&heard.bytes).iter().map(|f| f.len()).sum::<usize>();
    assert!(whole > 0);
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_catalogue_is_moved_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    write_tone_library(&dir.path().join("library"), &TONES);
    // Not a database at all, then one with a damaged page.
    std::fs::write(dir.path().join("catalog.sqlite"), vec![0x5a; 64 * 1024]).unwrap();
    let config = test_config(dir.path());
    let t = start_on(dir, config).await;
    assert_eq!(status(t.addr).await["library"]["playable"], 3);
    let TestStation { station, dir, .. } = t;
    station.shutdown().await;
    let db = dir.path().join("catalog.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    assert!(bytes.len() >= 2 * page, "{} bytes", bytes.len());
    for b in &mut bytes[page..2 * page] {
        *b = 0xa5;
    }
    std::fs::write(&db, bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("catalog.sqlite-wal"));
    let config = test_config(dir.path());
    let t = start_on(dir, config).await;
    assert_eq!(status(t.addr).await["library"]["playable"], 3);
    let aside = std::fs::read_dir(t.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("catalog.sqlite.corrupt-"))
        .count();
    assert!(aside >= 2, "both damaged catalogues kept aside ({aside})");
    t.station.shutdown().await;
}

/// Starts the real binary on a fresh port over `data`.
fn spawn_server(data: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nonstop"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The address the server prints.
fn address_of(child: &mut Child) -> std::net::SocketAddr {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().trim_end_matches('/');
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    addr.parse().unwrap()
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_demo_synthesis_and_analysis_then_the_next_start_completes_both() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let partial = data.join("demo.partial");
    // Killed while the demo library is being written.
    let mut server = spawn_server(&data);
    let caught = wait_for(Duration::from_secs(120), || {
        std::fs::read_dir(&partial).map(|d| d.count() >= 1).unwrap_or(false)
    });
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(caught, "the demo synthesis was under way");
    assert!(!data.join("demo").exists(), "no half-made demo library");
    assert!(!data.join("library").read_dir().unwrap().any(|_| true), "nothing written into the library");

    // Killed while the demo library is being analysed.
    let mut server = spawn_server(&data);
    let addr = address_of(&mut server);
    let mid_analysis = wait_for(Duration::from_secs(120), || {
        Catalog::open(&data.join("catalog.sqlite"))
            .and_then(|c| c.counts())
            .is_ok_and(|n| n.playable >= 1 && n.pending >= 1)
    });
    server.kill().unwrap();
    server.wait().unwrap();
    println!("server at {addr} killed {} analysis", if mid_analysis { "in the middle of" } else { "after" });

    // The next start completes both.
    let mut server = spawn_server(&data);
    let addr = address_of(&mut server);
    let s = wait_status(addr, Duration::from_secs(180), |s| s["library"]["pending"] == 0 && !s["now_playing"].is_null()).await;
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(s["library"]["playable"], 8, "{}", s["library"]);
    assert_eq!(std::fs::read_dir(data.join("demo")).unwrap().count(), 8);
    assert!(!partial.exists());
}

#[test]
fn analyze_prints_one_line_per_file_of_the_corpus_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    fault_corpus::write(&corpus, &dir.path().join("outside"), false).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nonstop")).arg("analyze").arg(&corpus).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let files = walkdir_audio(&corpus);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), files, "one line per file:\n{stdout}");
    for l in &lines {
        assert!(l.contains(" BPM ") || l.contains(": error: "), "{l}");
    }
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}

/// Audio files under `dir` as `nonstop analyze` expands it (links followed).
fn walkdir_audio(dir: &Path) -> usize {
    walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && nonstop::audio::is_audio_path(e.path()))
        .count()
}
