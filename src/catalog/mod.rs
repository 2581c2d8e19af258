//! The catalogue: every file in the library with its tags, length and
//! status, in SQLite (WAL) under the data folder, so a restart reuses what a
//! scan learnt. One connection behind a mutex: writes are rare (scans,
//! failures on air) and short. Callers on the async runtime go through
//! `spawn_blocking`.

mod indexer;
mod scan;

pub use indexer::{Indexer, IndexerSettings};
pub use scan::{analyse_pending, has_audio, AnalyseReport, Outcome, ScanReport, MAX_ATTEMPTS};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::{params, Connection, OptionalExtension};

/// Bumped when the schema changes; older databases are migrated by dropping
/// and rescanning (the catalogue is a cache of the library, not the truth).
const SCHEMA_VERSION: i64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalogue {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("catalogue: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A playable (analysed) track as the scheduler and mixer see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub id: i64,
    pub path: PathBuf,
    pub title: String,
    pub artist: String,
    pub album: String,
    /// From the file's tags; empty when unknown.
    pub genre: String,
    pub duration_s: f64,
    pub bpm: f64,
    pub key: String,
    pub camelot: String,
    pub energy: f64,
    pub loudness_lufs: f64,
    /// Share of its beats on a steady tempo, 0..1 (1 where not known): a
    /// beatmatched transition needs a steady pulse on both sides.
    pub steadiness: f64,
}

impl Track {
    /// `Artist - Title`, or just the title when the artist is unknown.
    pub fn display(&self) -> String {
        if self.artist.is_empty() {
            self.title.clone()
        } else {
            format!("{} - {}", self.artist, self.title)
        }
    }
}

/// A file the station cannot play, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedFile {
    pub path: String,
    pub error: String,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Counts {
    pub tracks: u64,
    /// Analysed and schedulable.
    pub playable: u64,
    pub failed: u64,
    /// Waiting for analysis.
    pub pending: u64,
    /// Analysed, but shorter than `library.min_track_s`: not scheduled.
    pub short: u64,
}

pub struct Catalog {
    conn: Mutex<Connection>,
    /// The demo library's folder, once there is one: its tracks play only
    /// while the library itself has nothing playable.
    demo: OnceLock<PathBuf>,
    /// Tracks shorter than this (seconds) are clips, not songs: analysed
    /// and kept, never scheduled (`library.min_track_s`).
    min_track_s: OnceLock<f64>,
    /// Paths the library walk could not read, already reported: each is
    /// logged once, not at every rescan.
    walk_warned: Mutex<std::collections::HashSet<PathBuf>>,
}

/// A path as the catalogue stores it: the file system's own bytes, so a
/// name that is not UTF-8 still opens.
pub(crate) fn path_key(path: &Path) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        path.to_string_lossy().into_owned().into_bytes()
    }
}

pub(crate) fn path_from_key(bytes: Vec<u8>) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Whether an error says the database file itself is damaged.
fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl Catalog {
    /// Opens (or creates) the catalogue. A damaged database is moved aside
    /// (`catalog.sqlite.corrupt-<unix time>`, named in the log) and a new
    /// one is made: the catalogue is a cache of the library, so a rescan
    /// rebuilds it.
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        match Catalog::open_checked(path) {
            Err(CatalogError::Open { source, .. }) if is_corruption(&source) => {
                let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let aside = (0..)
                    .map(|n| path.with_file_name(if n == 0 { format!("{name}.corrupt-{stamp}") } else { format!("{name}.corrupt-{stamp}-{n}") }))
                    .find(|p| !p.exists())
                    .expect("a free name");
                tracing::warn!(
                    "catalogue {} is damaged ({source}): moved to {} and rebuilt from the library",
                    path.display(),
                    aside.display()
                );
                std::fs::rename(path, &aside).map_err(|source| CatalogError::Io { path: path.to_owned(), source })?;
                for suffix in ["-wal", "-shm"] {
                    let side = PathBuf::from(format!("{}{suffix}", path.display()));
                    if side.exists() {
                        let _ = std::fs::rename(&side, PathBuf::from(format!("{}{suffix}", aside.display())));
                    }
                }
                Catalog::open_checked(path)
            }
            other => other,
        }
    }

    fn open_checked(path: &Path) -> Result<Catalog, CatalogError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| CatalogError::Io { path: dir.to_owned(), source })?;
        }
        let open_err = |source| CatalogError::Open { path: path.to_owned(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        // A damaged file often opens; reading it tells.
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(open_err)?;
        if check != "ok" {
            return Err(open_err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("integrity check: {check}")),
            )));
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_err)?;
        if version != SCHEMA_VERSION {
            conn.execute_batch(&format!(
                "DROP TABLE IF EXISTS tracks;
                 CREATE TABLE tracks (
                     id INTEGER PRIMARY KEY,
                     -- The file system's bytes (not always UTF-8).
                     path BLOB NOT NULL UNIQUE,
                     size INTEGER NOT NULL,
                     mtime_ns INTEGER NOT NULL,
                     title TEXT NOT NULL,
                     artist TEXT NOT NULL,
                     album TEXT NOT NULL,
                     genre TEXT NOT NULL DEFAULT '',
                     duration_s REAL NOT NULL,
                     -- 'pending': new, changed or analysed by an older version.
                     status TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'failed')),
                     error TEXT,
                     analysis_version INTEGER NOT NULL DEFAULT 0,
                     bpm REAL,
                     key TEXT,
                     camelot TEXT,
                     energy REAL,
                     loudness_lufs REAL,
                     -- Share of the beats on a steady tempo, 0..1.
                     steadiness REAL,
                     -- The whole analysis (beats, downbeats, cues) as JSON.
                     analysis TEXT,
                     scanned_at INTEGER NOT NULL,
                     -- Transient read failures so far, and when to try again (unix s).
                     attempts INTEGER NOT NULL DEFAULT 0,
                     retry_at INTEGER NOT NULL DEFAULT 0
                 );
                 CREATE INDEX tracks_status ON tracks (status);
                 PRAGMA user_version = {SCHEMA_VERSION};"
            ))
            .map_err(open_err)?;
        }
        Ok(Catalog { conn: Mutex::new(conn), demo: OnceLock::new(), min_track_s: OnceLock::new(), walk_warned: Mutex::default() })
    }

    /// Names the demo library's folder (see `playable`).
    pub fn set_demo(&self, dir: PathBuf) {
        let _ = self.demo.set(dir);
    }

    pub fn set_min_track_s(&self, seconds: f64) {
        let _ = self.min_track_s.set(seconds);
    }

    fn min_track_s(&self) -> f64 {
        self.min_track_s.get().copied().unwrap_or(0.0)
    }

    pub fn demo(&self) -> Option<&Path> {
        self.demo.get().map(|p| p.as_path())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent
        // (every write is one statement or one transaction).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Playable tracks, in id order: the library's, or the demo library's
    /// while the library has none.
    pub fn playable(&self) -> Result<Vec<Arc<Track>>, CatalogError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {TRACK_COLUMNS} FROM tracks WHERE status = 'ok' AND duration_s >= ?1 ORDER BY id"))?;
        let rows = stmt.query_map([self.min_track_s()], |r| track_from_row(r).map(Arc::new))?;
        let all: Vec<Arc<Track>> = rows.collect::<Result<_, _>>()?;
        let Some(demo) = self.demo() else { return Ok(all) };
        let (demo_tracks, own): (Vec<_>, Vec<_>) = all.into_iter().partition(|t| t.path.starts_with(demo));
        Ok(if own.is_empty() { demo_tracks } else { own })
    }

    pub fn failed(&self) -> Result<Vec<FailedFile>, CatalogError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT path, COALESCE(error, '') FROM tracks WHERE status = 'failed' ORDER BY path")?;
        let rows = stmt.query_map([], |r| {
            Ok(FailedFile { path: path_from_key(r.get(0)?).to_string_lossy().into_owned(), error: r.get(1)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The library's counts; the demo library's tracks are left out once
    /// the library has a playable track of its own (they no longer play).
    pub fn counts(&self) -> Result<Counts, CatalogError> {
        let all = self.counts_where("1", &[])?;
        let Some(demo) = self.demo() else { return Ok(all) };
        let mut prefix = path_key(demo);
        prefix.push(b'/');
        let own = self.counts_where("substr(path, 1, ?3) != ?2", &[&prefix, &(prefix.len() as i64)])?;
        Ok(if own.playable > 0 { own } else { all })
    }

    fn counts_where(&self, filter: &str, extra: &[&dyn rusqlite::ToSql]) -> Result<Counts, CatalogError> {
        let conn = self.conn();
        let min = self.min_track_s();
        let mut args: Vec<&dyn rusqlite::ToSql> = vec![&min];
        args.extend_from_slice(extra);
        let (tracks, analysed, failed, short): (i64, i64, i64, i64) = conn.query_row(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(status = 'failed'), 0),
                        COALESCE(SUM(status = 'ok' AND duration_s < ?1), 0) FROM tracks WHERE {filter}"
            ),
            args.as_slice(),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        Ok(Counts {
            tracks: tracks as u64,
            playable: (analysed - short) as u64,
            failed: failed as u64,
            pending: (tracks - analysed - failed) as u64,
            short: short as u64,
        })
    }

    /// Records that a track failed on air, so it is not scheduled again until
    /// the file changes.
    pub fn mark_failed(&self, id: i64, error: &str) -> Result<(), CatalogError> {
        self.conn().execute("UPDATE tracks SET status = 'failed', error = ?2 WHERE id = ?1", params![id, error])?;
        Ok(())
    }

    /// The stored analysis of a track (beats, downbeats, cues).
    pub fn analysis(&self, id: i64) -> Result<Option<crate::analysis::Analysis>, CatalogError> {
        let json: Option<Option<String>> =
            self.conn().query_row("SELECT analysis FROM tracks WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        Ok(json.flatten().and_then(|j| serde_json::from_str(&j).ok()))
    }

}

const TRACK_COLUMNS: &str =
    "id, path, title, artist, album, genre, duration_s, COALESCE(bpm, 0), COALESCE(key, ''), COALESCE(camelot, ''), COALESCE(energy, 0), COALESCE(loudness_lufs, -70), COALESCE(steadiness, 1)";

fn track_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Track> {
    Ok(Track {
        id: r.get(0)?,
        path: path_from_key(r.get(1)?),
        title: r.get(2)?,
        artist: r.get(3)?,
        album: r.get(4)?,
        genre: r.get(5)?,
        duration_s: r.get(6)?,
        bpm: r.get(7)?,
        key: r.get(8)?,
        camelot: r.get(9)?,
        energy: r.get(10)?,
        loudness_lufs: r.get(11)?,
        steadiness: r.get(12)?,
    })
}
