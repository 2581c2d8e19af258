//! The built-in demo library: when the library folder holds no audio, eight
//! synthesised tracks (drums, bass, chords; 100–140 BPM; different keys) are
//! rendered as tagged MP3 into their own folder in the data folder (never
//! into the user's library), so a fresh clone plays at once. Its tracks play
//! only while the library has nothing playable (see `Catalog::playable`).
//!
//! Written atomically: the files go to `<demo>.partial`, which is renamed
//! to `<demo>` when complete; a kill mid-way leaves only the partial folder,
//! which the next start throws away and makes again.

use std::path::Path;

use super::{demo_specs, render_planar};
use crate::catalog::{has_audio, CatalogError};
use crate::encoder::{encode_file_planar, FileTags, LameSettings};
use crate::units::SampleRate;

/// LAME quality for the demo files: fast, since they are made on first start.
const DEMO_QUALITY: u8 = 7;

/// Makes the demo library in `demo` if `library` holds no audio (links
/// followed) and there is no complete demo library yet. Returns whether a
/// demo library exists afterwards. `seconds` is each track's nominal length
/// (the shipped demo uses 150 s).
pub fn ensure_demo_library(library: &Path, demo: &Path, seconds: f64, on_start: impl FnOnce()) -> Result<bool, CatalogError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CatalogError::Io { path, source }
    };
    std::fs::create_dir_all(library).map_err(io(library))?;
    if demo.is_dir() {
        return Ok(true);
    }
    if has_audio(library) {
        return Ok(false);
    }
    on_start();
    let partial = demo.with_file_name(format!(
        "{}.partial",
        demo.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "demo".into())
    ));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    let library = partial.as_path();
    let specs = demo_specs(seconds);
    let rate = SampleRate::CD;
    let settings = LameSettings { sample_rate: rate.0, bitrate_kbps: 128, quality: DEMO_QUALITY };
    // Each track is synthesised whole, as two planar channels (about 55 MB
    // for 150 s) that the next track reuses and the encoder reads as they
    // are: one track at a time, so a first start stays within the
    // station's memory.
    let mut channels = Default::default();
    for spec in &specs {
        render_planar(spec, rate, &mut channels);
        let tags = FileTags { title: &spec.title, artist: &spec.artist, album: "nonstop demo" };
        let [l, r] = &channels;
        let mp3 = encode_file_planar(settings, tags, l, r)
            .map_err(|e| CatalogError::Io { path: library.to_owned(), source: std::io::Error::other(e.to_string()) })?;
        let path = library.join(format!("{} - {}.mp3", spec.artist, spec.title));
        std::fs::write(&path, &mp3).map_err(|source| CatalogError::Io { path: path.clone(), source })?;
    }
    std::fs::rename(&partial, demo).map_err(io(demo))?;
    Ok(true)
}
