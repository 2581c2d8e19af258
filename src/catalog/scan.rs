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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use rusqlite::params;

use super::{Catalog, CatalogError};
use crate::analysis::{self, FileAnalysis, ANALYSIS_VERSION};
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
    /// Seconds of audio analysed.
    pub audio_s: f64,
}

struct FileStamp {
    path: PathBuf,
    size: i64,
    mtime_ns: i64,
}

fn walk(library: &Path) -> Vec<FileStamp> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(library).follow_links(true) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("{}: {e}", e.path().unwrap_or(library).display());
                continue;
            }
        };
        if !entry.file_type().is_file() || !is_audio_path(entry.path()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        files.push(FileStamp { path: entry.into_path(), size: meta.len() as i64, mtime_ns });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Catalog {
    /// Brings the catalogue's list of files in line with the library
    /// folder; new and changed files become pending.
    pub fn sync(&self, library: &Path) -> Result<ScanReport, CatalogError> {
        let library = library
            .canonicalize()
            .map_err(|source| CatalogError::Io { path: library.to_owned(), source })?;
        let files = walk(&library);
        let mut conn = self.conn();
        let known: HashMap<String, (i64, i64, i64, String)> = {
            let mut stmt = conn.prepare("SELECT path, size, mtime_ns, analysis_version, status FROM tracks")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut report = ScanReport { files: files.len(), ..Default::default() };
        let tx = conn.transaction()?;
        for f in &files {
            let path = f.path.to_string_lossy();
            let current = match known.get(&*path) {
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
                 ON CONFLICT(path) DO UPDATE SET size = ?2, mtime_ns = ?3, status = 'pending', error = NULL, scanned_at = ?5",
                params![path, f.size, f.mtime_ns, stem, now_s()],
            )?;
            report.added += 1;
        }
        let present: HashSet<String> = files.iter().map(|f| f.path.to_string_lossy().into_owned()).collect();
        for path in known.keys().filter(|p| !present.contains(*p)) {
            tx.execute("DELETE FROM tracks WHERE path = ?1", [path])?;
            report.removed += 1;
        }
        tx.commit()?;
        Ok(report)
    }

    /// Files waiting for analysis: (id, path).
    pub fn pending(&self) -> Result<Vec<(i64, PathBuf)>, CatalogError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, path FROM tracks WHERE status = 'pending' ORDER BY path")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, PathBuf::from(r.get::<_, String>(1)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records one file's analysis (or why it failed).
    pub fn record(&self, id: i64, path: &Path, result: &Result<FileAnalysis, AudioError>) -> Result<(), CatalogError> {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let conn = self.conn();
        match result {
            Ok(f) => {
                let a = &f.analysis;
                let json = serde_json::to_string(a).expect("analysis serialises");
                conn.execute(
                    "UPDATE tracks SET title = ?2, artist = ?3, album = ?4, duration_s = ?5, status = 'ok', error = NULL,
                         analysis_version = ?6, bpm = ?7, key = ?8, camelot = ?9, energy = ?10, loudness_lufs = ?11,
                         analysis = ?12, scanned_at = ?13, genre = ?14
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
                        f.tags.genre.clone().unwrap_or_default()
                    ],
                )?;
            }
            Err(e) => {
                conn.execute(
                    "UPDATE tracks SET status = 'failed', error = ?2, analysis_version = ?3, scanned_at = ?4 WHERE id = ?1",
                    params![id, e.to_string(), ANALYSIS_VERSION, now_s()],
                )?;
            }
        }
        Ok(())
    }
}

/// Analyses every pending file on `workers` threads. `on_result` is called
/// after each file is recorded (from the recording thread). Stops early,
/// leaving files pending, when `stop` is set.
pub fn analyse_pending(
    catalog: &Catalog,
    workers: usize,
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
                    let result = analysis::analyze_file_with_tags(path);
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
            match &result {
                Ok(f) => {
                    report.analysed += 1;
                    report.audio_s += f.analysis.duration_s;
                }
                Err(e) => {
                    tracing::warn!("{}: {e}", path.display());
                    report.failed += 1;
                }
            }
            write_result = catalog.record(id, path, &result);
            on_result(path, &result);
        }
    });
    write_result?;
    Ok(report)
}
