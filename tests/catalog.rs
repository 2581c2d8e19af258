//! The catalogue and analysis cache: rescans, changes, deletions, version
//! bumps, kills mid-scan, and live library changes while the station plays.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use nonstop::analysis::ANALYSIS_VERSION;
use nonstop::catalog::{analyse_pending, Catalog};

use crate::util::*;

fn analyse(c: &Catalog) -> nonstop::catalog::AnalyseReport {
    analyse_pending(c, 2, Default::default(), &AtomicBool::new(false), |_, _| {}).unwrap()
}

#[test]
fn rescan_skips_unchanged_and_reanalyses_changed_and_outdated() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    write_tone_library(&lib, &TONES);
    let db = dir.path().join("catalog.sqlite");
    let c = Catalog::open(&db).unwrap();
    let first = c.sync(&lib).unwrap();
    assert_eq!((first.files, first.added, first.unchanged), (3, 3, 0));
    assert_eq!(analyse(&c).analysed, 3);
    let again = c.sync(&lib).unwrap();
    assert_eq!((again.added, again.unchanged), (0, 3), "unchanged files are not queued again");
    assert!(c.pending().unwrap().is_empty());

    // A changed file (different length) is analysed again.
    write_tone_library(&lib, &[ToneTrack { title: "Mid", artist: "Tones", hz: 550.0, seconds: 5.0 }]);
    let changed = c.sync(&lib).unwrap();
    assert_eq!((changed.added, changed.unchanged), (1, 2));
    analyse(&c);
    let mid = c.playable().unwrap().into_iter().find(|t| t.title == "Mid").unwrap();
    assert!((mid.duration_s - 5.0).abs() < 0.1, "re-analysed: {}", mid.duration_s);

    // A file analysed by an older version is analysed again.
    drop(c);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE tracks SET analysis_version = ?1 WHERE title = 'Low'", [ANALYSIS_VERSION - 1]).unwrap();
    drop(conn);
    let c = Catalog::open(&db).unwrap();
    assert_eq!(c.sync(&lib).unwrap().added, 1);
    assert_eq!(analyse(&c).analysed, 1);

    // A deleted file leaves the catalogue and the playable set.
    std::fs::remove_file(lib.join("High.mp3")).unwrap();
    assert_eq!(c.sync(&lib).unwrap().removed, 1);
    let titles: Vec<String> = c.playable().unwrap().iter().map(|t| t.title.clone()).collect();
    assert_eq!(titles.len(), 2);
    assert!(!titles.contains(&"High".to_string()));
    let track = c.playable().unwrap()[0].clone();
    let a = c.analysis(track.id).unwrap().expect("stored analysis");
    assert!(!a.beats.is_empty());
    assert!(a.steady.is_some(), "the grid's steady sections are stored");
    assert_eq!(track.steadiness, a.steadiness(), "the ordering sees the analysis's steadiness");
}

#[test]
fn unanalysed_and_corrupt_files_are_not_playable() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    write_tone_library(&lib, &TONES[..1]);
    std::fs::write(lib.join("broken.ogg"), b"OggS but not really").unwrap();
    let c = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
    c.sync(&lib).unwrap();
    assert!(c.playable().unwrap().is_empty(), "nothing is playable before analysis");
    assert_eq!(c.counts().unwrap().pending, 2);
    let r = analyse(&c);
    assert_eq!((r.analysed, r.failed), (1, 1));
    assert_eq!(c.playable().unwrap().len(), 1);
    let failed = c.failed().unwrap();
    assert!(failed[0].path.ends_with("broken.ogg") && !failed[0].error.is_empty(), "{failed:?}");
}

fn integrity(db: &Path) -> (String, i64, i64, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    let ok: i64 = conn.query_row("SELECT COUNT(*) FROM tracks WHERE status = 'ok' AND analysis IS NOT NULL", [], |r| r.get(0)).unwrap();
    let pending: i64 = conn.query_row("SELECT COUNT(*) FROM tracks WHERE status = 'pending'", [], |r| r.get(0)).unwrap();
    let broken: i64 = conn
        .query_row("SELECT COUNT(*) FROM tracks WHERE status = 'ok' AND (analysis IS NULL OR bpm IS NULL)", [], |r| r.get(0))
        .unwrap();
    (check, ok, pending, broken)
}

#[test]
fn kill_during_scan_leaves_a_consistent_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    // Twelve longer tracks so the scan is still running when it is killed.
    let tracks: Vec<ToneTrack> = (0..12)
        .map(|i| ToneTrack { title: ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"][i], artist: "Tones", hz: 200.0 + 50.0 * i as f32, seconds: 40.0 })
        .collect();
    write_tone_library(&lib, &tracks);
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nonstop"))
        .args(["scan", "--data"])
        .arg(&data)
        .arg("--library")
        .arg(&lib)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let db = data.join("catalog.sqlite");
    // Kill as soon as some, but not all, files are recorded.
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if db.exists() {
            if let Ok(conn) = rusqlite::Connection::open(&db) {
                let done: i64 = conn.query_row("SELECT COUNT(*) FROM tracks WHERE status = 'ok'", [], |r| r.get(0)).unwrap_or(0);
                if done >= 1 {
                    break;
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "scan never recorded a file");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (check, ok, pending, broken) = integrity(&db);
    assert_eq!(check, "ok");
    assert_eq!(broken, 0, "no half-written rows");
    assert_eq!(ok + pending, 12, "every file is either analysed or still pending");
    println!("killed with {ok} analysed and {pending} pending");
    assert!(pending > 0, "killed before the end");

    // The next scan finishes the job without redoing the analysed files.
    let c = Catalog::open(&db).unwrap();
    let sync = c.sync(&lib).unwrap();
    assert_eq!(sync.unchanged as i64, ok);
    analyse(&c);
    assert_eq!(c.playable().unwrap().len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_changes_reach_the_schedule_while_playing() {
    let t = start_station(|_| {}, |_| {}).await;
    let lib = t.library();
    // Add a track: the watcher notices, it is analysed and becomes playable.
    write_tone_library(&lib, &[ToneTrack { title: "Added", artist: "Tones", hz: 440.0, seconds: 6.0 }]);
    let s = wait_status(t.addr, Duration::from_secs(20), |s| s["library"]["playable"] == 4).await;
    assert_eq!(s["library"]["playable"], 4, "added file analysed: {s}");
    // Remove one: it leaves the catalogue and the upcoming list.
    std::fs::remove_file(lib.join("Low.mp3")).unwrap();
    let s = wait_status(t.addr, Duration::from_secs(20), |s| s["library"]["playable"] == 3).await;
    assert_eq!(s["library"]["playable"], 3, "removed file gone: {s}");
    let upcoming: Vec<&str> = s["upcoming"].as_array().unwrap().iter().map(|u| u["title"].as_str().unwrap()).collect();
    assert!(!upcoming.contains(&"Low"), "{upcoming:?}");
    t.station.shutdown().await;
}
