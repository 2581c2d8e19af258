//! Library scan: walk the folder, decode every new or changed file on a few
//! worker threads, and record each result as soon as it is known (one short
//! write per file, so a kill mid-scan loses at most the files in flight).
//! Files that vanished are removed. Unchanged files (same size and mtime)
//! are not opened at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use rusqlite::params;

use super::{Catalog, CatalogError};
use crate::audio::{self, is_audio_path};

/// What a scan did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScanReport {
    /// Audio files found in the library.
    pub files: usize,
    pub unchanged: usize,
    /// New or changed files decoded successfully.
    pub added: usize,
    /// New or changed files that cannot be played (recorded with their error).
    pub failed: usize,
    /// Catalogue entries whose file is gone.
    pub removed: usize,
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

impl Catalog {
    /// Brings the catalogue in line with the library folder.
    pub fn scan(&self, library: &Path, workers: usize) -> Result<ScanReport, CatalogError> {
        let library = library
            .canonicalize()
            .map_err(|source| CatalogError::Io { path: library.to_owned(), source })?;
        let files = walk(&library);
        let known: HashMap<String, (i64, i64)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT path, size, mtime_ns FROM tracks")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut report = ScanReport { files: files.len(), ..Default::default() };
        let todo: Vec<&FileStamp> = files
            .iter()
            .filter(|f| known.get(&*f.path.to_string_lossy()) != Some(&(f.size, f.mtime_ns)))
            .collect();
        report.unchanged = files.len() - todo.len();

        let next = AtomicUsize::new(0);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut write_result = Ok(());
        std::thread::scope(|s| {
            for _ in 0..workers.max(1).min(todo.len().max(1)) {
                let tx = tx.clone();
                let (todo, next) = (&todo, &next);
                s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = todo.get(i) else { break };
                    if tx.send((*file, audio::probe(&file.path))).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for (file, result) in rx {
                if write_result.is_err() {
                    continue;
                }
                match &result {
                    Ok(_) => report.added += 1,
                    Err(e) => {
                        tracing::warn!("{}: {e}", file.path.display());
                        report.failed += 1;
                    }
                }
                write_result = self.record(file, result);
            }
        });
        write_result?;

        let present: std::collections::HashSet<String> =
            files.iter().map(|f| f.path.to_string_lossy().into_owned()).collect();
        let conn = self.conn();
        for path in known.keys().filter(|p| !present.contains(*p)) {
            conn.execute("DELETE FROM tracks WHERE path = ?1", [path])?;
            report.removed += 1;
        }
        Ok(report)
    }

    fn record(&self, file: &FileStamp, result: Result<audio::Probe, audio::AudioError>) -> Result<(), CatalogError> {
        let path = file.path.to_string_lossy();
        let stem = file.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (title, artist, album, duration_s, rate, status, error) = match result {
            Ok(p) => (
                p.tags.title.unwrap_or(stem),
                p.tags.artist.unwrap_or_default(),
                p.tags.album.unwrap_or_default(),
                p.duration_s,
                p.sample_rate.0 as i64,
                "ok",
                None,
            ),
            Err(e) => (stem, String::new(), String::new(), 0.0, 0, "failed", Some(e.to_string())),
        };
        let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        self.conn().execute(
            "INSERT INTO tracks (path, size, mtime_ns, title, artist, album, duration_s, sample_rate, status, error, scanned_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(path) DO UPDATE SET size = ?2, mtime_ns = ?3, title = ?4, artist = ?5, album = ?6,
                 duration_s = ?7, sample_rate = ?8, status = ?9, error = ?10, scanned_at = ?11",
            params![path, file.size, file.mtime_ns, title, artist, album, duration_s, rate, status, error, now],
        )?;
        Ok(())
    }
}
