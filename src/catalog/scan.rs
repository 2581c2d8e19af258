//! Keeping the catalogue in line with the library folder, in two steps.
//!
//! `sync` walks the folder and compares each file's size and mtime with the
//! catalogue: new and changed files (and files analysed by an older
//! analysis version) become `pending`, vanished files are removed. It only
//! stats files, so it is quick and runs on every start and every change.
//!
//! `analyse_pending` decodes and analyses the pending files on a pool of
//! worker threads and records each result as soon as it is known: one short
//! write per file, so a kill mid-scan loses at most the files in flight
//! (they are still `pending` on the next start).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use rusqlite::params;

use super::{path_from_key, path_key, Catalog, CatalogError};
use crate::analysis::{self, AnalysisLimits, FileAnalysis, ANALYSIS_VERSION};
use crate::audio::{is_audio_path, AudioError};

/// What a sync found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScanReport {
    /// Audio files found in the library.
    pub files: usize,
    /// Files whose analysis is current.
    pub unchanged: usize,
    /// New, changed or outdated files queued for analysis.
    pub added: usize,
    /// Catalogue entries whose file is gone.
    pub removed: usize,
}

/// What an analysis run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AnalyseReport {
    pub analysed: usize,
    pub failed: usize,
    /// Files that failed for a transient reason and wait for a retry.
    pub retrying: usize,
    /// Seconds of audio analysed.
    pub audio_s: f64,
}

struct FileStamp {
    path: PathBuf,
    size: i64,
    mtime_ns: i64,
}

/// The audio files under `root`. Links are followed (a library made of
/// links is a library), but only to places inside `root`, and each file is
/// listed once however many links lead to it; loops end where they loop.
/// What is not scanned (a broken link, a folder without permission, a link
/// out of the library) goes to `unreadable`, saying why. Each file goes to
/// `found`, which may end the walk there.
fn walk(
    root: &Path,
    seen: &mut HashSet<(u64, u64)>,
    unreadable: &mut dyn FnMut(&Path, &dyn std::fmt::Display),
    found: &mut dyn FnMut(FileStamp) -> ControlFlow<()>,
) {
    let Ok(canonical_root) = root.canonicalize() else { return };
    // A library of links into a collection elsewhere would otherwise look
    // empty without a word (and the demo library would play).
    let outside = std::cell::RefCell::new(Vec::new());
    let walker = walkdir::WalkDir::new(root).follow_links(true).into_iter().filter_entry(|e| {
        if !e.path_is_symlink() {
            return true;
        }
        match e.path().canonicalize() {
            Ok(target) if target.starts_with(&canonical_root) => true,
            Ok(_) => {
                outside.borrow_mut().push(e.path().to_path_buf());
                false
            }
            // Broken: nothing to follow.
            Err(_) => false,
        }
    });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.loop_ancestor().is_some() => continue,
            Err(e) => {
                unreadable(e.path().unwrap_or(root), &e);
                continue;
            }
        };
        if !entry.file_type().is_file() || !is_audio_path(entry.path()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !seen.insert(file_identity(&meta)) {
            continue;
        }
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        if found(FileStamp { path: entry.into_path(), size: meta.len() as i64, mtime_ns }).is_break() {
            return;
        }
    }
    for path in outside.into_inner() {
        unreadable(&path, &"a link out of the library: not followed (links are followed inside the library only)");
    }
}

/// Device and inode: the same file, whatever the path to it.
#[cfg(unix)]
fn file_identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_identity(meta: &std::fs::Metadata) -> (u64, u64) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let _ = meta;
    (0, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Whether `root` (links followed, as the scan follows them) holds any
/// audio file: the walk stops at the first. What cannot be read is left
/// to the scan to report.
pub fn has_audio(root: &Path) -> bool {
    let mut any = false;
    walk(root, &mut HashSet::new(), &mut |_, _| {}, &mut |_| {
        any = true;
        ControlFlow::Break(())
    });
    any
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Wait before retry `attempt` (1-based) of a file that failed for a
/// transient reason: 10 s, doubling, at most 10 minutes.
fn retry_delay_s(attempt: u32) -> i64 {
    (10i64 << attempt.saturating_sub(1).min(6)).min(600)
}

/// Transient failures after which a file is called failed.
pub const MAX_ATTEMPTS: u32 = 5;

impl Catalog {
    /// Brings the catalogue's list of files in line with the library
    /// folder; new and changed files become pending.
    pub fn sync(&self, library: &Path) -> Result<ScanReport, CatalogError> {
        self.sync_roots(&[library])
    }

    /// `sync` over several folders (the library and the demo library).
    /// Folders that do not exist hold nothing; the first must exist.
    pub fn sync_roots(&self, roots: &[&Path]) -> Result<ScanReport, CatalogError> {
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        for (i, root) in roots.iter().enumerate() {
            let root = match root.canonicalize() {
                Ok(r) => r,
                Err(source) if i == 0 => return Err(CatalogError::Io { path: root.to_path_buf(), source }),
                Err(_) => continue,
            };
            let mut unreadable = |path: &Path, e: &dyn std::fmt::Display| {
                if self.walk_warned.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_path_buf()) {
                    tracing::warn!("{}: {e}", path.display());
                }
            };
            walk(&root, &mut seen, &mut unreadable, &mut |f| {
                files.push(f);
                ControlFlow::Continue(())
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut conn = self.conn();
        let known: HashMap<Vec<u8>, (i64, i64, i64, String)> = {
            let mut stmt = conn.prepare("SELECT path, size, mtime_ns, analysis_version, status FROM tracks")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut report = ScanReport { files: files.len(), ..Default::default() };
        let tx = conn.transaction()?;
        for f in &files {
            let key = path_key(&f.path);
            let current = match known.get(&key) {
                Some((size, mtime, version, status)) => {
                    *size == f.size && *mtime == f.mtime_ns && (*version == ANALYSIS_VERSION || status == "failed")
                }
                None => false,
            };
            if current {
                report.unchanged += 1;
                continue;
            }
            let stem = f.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            tx.execute(
                "INSERT INTO tracks (path, size, mtime_ns, title, artist, album, duration_s, status, scanned_at)
                 VALUES (?1, ?2, ?3, ?4, '', '', 0, 'pending', ?5)
                 ON CONFLICT(path) DO UPDATE SET size = ?2, mtime_ns = ?3, status = 'pending', error = NULL,
                     scanned_at = ?5, attempts = 0, retry_at = 0",
                params![key, f.size, f.mtime_ns, stem, now_s()],
            )?;
            report.added += 1;
        }
        let present: HashSet<Vec<u8>> = files.iter().map(|f| path_key(&f.path)).collect();
        for key in known.keys().filter(|p| !present.contains(*p)) {
            tx.execute("DELETE FROM tracks WHERE path = ?1", [key])?;
            report.removed += 1;
        }
        tx.commit()?;
        Ok(report)
    }

    /// Files waiting for analysis and due (not waiting out a retry delay): (id, path).
    pub fn pending(&self) -> Result<Vec<(i64, PathBuf)>, CatalogError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, path FROM tracks WHERE status = 'pending' AND retry_at <= ?1 ORDER BY path")?;
        let rows = stmt.query_map([now_s()], |r| Ok((r.get(0)?, path_from_key(r.get(1)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Seconds until the next file waiting out a retry delay is due.
    pub fn next_retry_in(&self) -> Result<Option<u64>, CatalogError> {
        let at: Option<i64> = self.conn().query_row(
            "SELECT MIN(retry_at) FROM tracks WHERE status = 'pending' AND retry_at > 0",
            [],
            |r| r.get(0),
        )?;
        Ok(at.map(|t| (t - now_s()).max(0) as u64))
    }

    /// Records one file's analysis, or why it failed. A transient failure
    /// (too many open files, a busy read) leaves the file pending for a
    /// retry with backoff; after `MAX_ATTEMPTS` it is failed. A file that
    /// vanished leaves the catalogue.
    pub fn record(&self, id: i64, path: &Path, result: &Result<FileAnalysis, AudioError>) -> Result<Outcome, CatalogError> {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let conn = self.conn();
        match result {
            Ok(f) => {
                let a = &f.analysis;
                let json = serde_json::to_string(a).expect("analysis serialises");
                conn.execute(
                    "UPDATE tracks SET title = ?2, artist = ?3, album = ?4, duration_s = ?5, status = 'ok', error = NULL,
                         analysis_version = ?6, bpm = ?7, key = ?8, camelot = ?9, energy = ?10, loudness_lufs = ?11,
                         analysis = ?12, scanned_at = ?13, genre = ?14, steadiness = ?15, attempts = 0, retry_at = 0
                     WHERE id = ?1",
                    params![
                        id,
                        f.tags.title.clone().unwrap_or(stem),
                        f.tags.artist.clone().unwrap_or_default(),
                        f.tags.album.clone().unwrap_or_default(),
                        a.duration_s,
                        ANALYSIS_VERSION,
                        a.bpm,
                        a.key,
                        a.camelot,
                        a.energy,
                        a.loudness_lufs,
                        json,
                        now_s(),
                        f.tags.genre.clone().unwrap_or_default(),
                        a.steadiness()
                    ],
                )?;
                Ok(Outcome::Analysed)
            }
            Err(AudioError::Open(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                conn.execute("DELETE FROM tracks WHERE id = ?1", [id])?;
                Ok(Outcome::Gone)
            }
            Err(e) => {
                let attempts: u32 = conn.query_row("SELECT attempts FROM tracks WHERE id = ?1", [id], |r| r.get(0)).unwrap_or(0);
                if e.is_transient() && attempts + 1 < MAX_ATTEMPTS {
                    conn.execute(
                        "UPDATE tracks SET attempts = ?2, retry_at = ?3, error = ?4 WHERE id = ?1",
                        params![id, attempts + 1, now_s() + retry_delay_s(attempts + 1), e.to_string()],
                    )?;
                    return Ok(Outcome::Retry);
                }
                let message = if e.is_transient() { format!("{e} (after {} attempts)", attempts + 1) } else { e.to_string() };
                conn.execute(
                    "UPDATE tracks SET status = 'failed', error = ?2, analysis_version = ?3, scanned_at = ?4 WHERE id = ?1",
                    params![id, message, ANALYSIS_VERSION, now_s()],
                )?;
                Ok(Outcome::Failed)
            }
        }
    }
}

/// What became of an analysed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Analysed,
    Failed,
    /// A transient failure: pending again after a delay.
    Retry,
    /// The file is gone.
    Gone,
}

/// Analyses every pending file on `workers` threads. `on_result` is called
/// after each file is recorded (from the recording thread). Stops early,
/// leaving files pending, when `stop` is set.
pub fn analyse_pending(
    catalog: &Catalog,
    workers: usize,
    limits: AnalysisLimits,
    stop: &AtomicBool,
    mut on_result: impl FnMut(&Path, &Result<FileAnalysis, AudioError>),
) -> Result<AnalyseReport, CatalogError> {
    let todo = catalog.pending()?;
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut report = AnalyseReport::default();
    let mut write_result = Ok(());
    std::thread::scope(|s| {
        for i in 0..workers.max(1).min(todo.len().max(1)) {
            let tx = tx.clone();
            let (todo, next) = (&todo, &next);
            std::thread::Builder::new()
                .name(format!("analysis-{i}"))
                .spawn_scoped(s, move || loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, path)) = todo.get(k) else { break };
                    // Panics inside are this file's error (see `analyze_file_with_tags`).
                    let result = analysis::analyze_file_with_tags(path, limits);
                    if tx.send((*id, path, result)).is_err() {
                        break;
                    }
                })
                .expect("spawn analysis worker");
        }
        drop(tx);
        for (id, path, result) in rx {
            if write_result.is_err() {
                continue;
            }
            let outcome = match catalog.record(id, path, &result) {
                Ok(o) => o,
                Err(e) => {
                    write_result = Err(e);
                    continue;
                }
            };
            match (&result, outcome) {
                (Ok(f), _) => {
                    report.analysed += 1;
                    report.audio_s += f.analysis.duration_s;
                }
                (Err(e), Outcome::Retry) => {
                    tracing::info!("{}: {e}; will try again", path.display());
                    report.retrying += 1;
                }
                (Err(_), Outcome::Gone) => tracing::info!("{}: gone before it was analysed", path.display()),
                (Err(e), _) => {
                    tracing::warn!("{}: {e}", path.display());
                    report.failed += 1;
                }
            }
            on_result(path, &result);
        }
    });
    write_result?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn links_out_of_the_library_are_named_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (library, elsewhere) = (dir.path().join("library"), dir.path().join("elsewhere"));
        std::fs::create_dir_all(&library).unwrap();
        std::fs::create_dir_all(elsewhere.join("album")).unwrap();
        for path in [library.join("in.mp3"), elsewhere.join("out.mp3"), elsewhere.join("album/track.flac")] {
            std::fs::write(path, b"x").unwrap();
        }
        std::os::unix::fs::symlink(library.join("in.mp3"), library.join("in-link.mp3")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("out.mp3"), library.join("out.mp3")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("album"), library.join("album")).unwrap();
        let (mut found, mut named) = (Vec::new(), Vec::new());
        walk(&library, &mut HashSet::new(), &mut |p, why| named.push((p.to_path_buf(), why.to_string())), &mut |f| {
            found.push(f.path);
            ControlFlow::Continue(())
        });
        // The file inside, once (the link inside leads to the same file).
        assert_eq!(found.len(), 1, "{found:?}");
        named.sort();
        let paths: Vec<&Path> = named.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(paths, [library.join("album"), library.join("out.mp3")], "{named:?}");
        assert!(named.iter().all(|(_, why)| why.contains("link out of the library")), "{named:?}");
        // And a library of nothing but such links holds no audio.
        std::fs::remove_file(library.join("in.mp3")).unwrap();
        assert!(!has_audio(&library));
    }
}
