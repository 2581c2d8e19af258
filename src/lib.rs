//! nonstop — an endless, beatmatched internet radio station.
//!
//! # Layout
//! In the order audio flows through the station:
//! - [`config`]: `config/nonstop.toml` into typed, validated settings.
//! - [`catalog`]: the library scan and the SQLite catalogue (and the demo library).
//! - [`ordering`]: which track plays next (the seam for curator plugins).
//! - [`audio`]: decoding (symphonia) and resampling (rubato) to the station rate.
//! - [`mixer`]: the mixer thread — crossfades tracks into one PCM stream.
//! - [`encoder`]: the encoder thread — LAME, split into tagged MP3 frames.
//! - [`broadcast`]: the paced broadcaster and the listener hub.
//! - [`http`]: hyper front: stream, ICY metadata, playlists, status.
//! - [`station`]: wires the stages together; [`stats`] is what they report;
//!   [`supervise`] restarts a stage that fails and keeps its health.
//!
//! Supporting: [`units`] (media time in samples), [`mp3`] (frame headers),
//! [`cpu`] (CPU time and memory from /proc), [`synth`] (music with known
//! tempo, beats and key for the demo library and tests, and the corpus of
//! broken files for the fault tests), [`loadtest`] (many timed listeners
//! against any stream server).

#![forbid(unsafe_code)]

pub mod analysis;
pub mod audio;
pub mod broadcast;
pub mod catalog;
pub mod config;
pub mod cpu;
pub mod encoder;
pub mod http;
pub mod loadtest;
pub mod mixer;
pub mod mp3;
pub mod ordering;
pub mod station;
pub mod stats;
pub mod supervise;
pub mod synth;
pub mod transition;
pub mod units;

/// The `q` quantile (0..1) of ascending `sorted`, by the nearest rank;
/// NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Raises this process's open-files limit to the hard limit (every
/// listener is a socket; distributions start processes at 1,024).
/// Returns the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("cannot raise the open-files limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft)
        }
    }
}
