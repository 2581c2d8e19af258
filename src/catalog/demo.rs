//! The built-in demo library: when the library folder holds no audio, eight
//! synthesised tracks (drums, bass, chords; 100–140 BPM; different keys) are
//! rendered and written there as tagged MP3, so a fresh clone plays at once.

use std::path::Path;

use super::CatalogError;
use crate::audio::is_audio_path;
use crate::encoder::{encode_file, FileTags, LameSettings};
use crate::synth::{demo_specs, render};
use crate::units::SampleRate;

/// LAME quality for the demo files: fast, since they are made on first start.
const DEMO_QUALITY: u8 = 7;

/// Writes the demo library into `library` unless it already holds audio.
/// Returns how many files were written. `seconds` is the nominal length of
/// each track (the shipped demo uses 150 s).
pub fn ensure_demo_library(library: &Path, seconds: f64, on_start: impl FnOnce()) -> Result<usize, CatalogError> {
    let io = |source| CatalogError::Io { path: library.to_owned(), source };
    std::fs::create_dir_all(library).map_err(io)?;
    let has_audio = walkdir::WalkDir::new(library)
        .into_iter()
        .filter_map(Result::ok)
        .any(|e| e.file_type().is_file() && is_audio_path(e.path()));
    if has_audio {
        return Ok(0);
    }
    on_start();
    let specs = demo_specs(seconds);
    let rate = SampleRate::CD;
    let settings = LameSettings { sample_rate: rate.0, bitrate_kbps: 128, quality: DEMO_QUALITY };
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let results: Vec<Result<(), CatalogError>> = std::thread::scope(|s| {
        let chunks: Vec<_> = specs.chunks(specs.len().div_ceil(workers)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || -> Result<(), CatalogError> {
                    for spec in chunk {
                        let pcm = render(spec, rate);
                        let tags = FileTags { title: &spec.title, artist: &spec.artist, album: "nonstop demo" };
                        let mp3 = encode_file(settings, tags, &pcm).map_err(|e| CatalogError::Io {
                            path: library.to_owned(),
                            source: std::io::Error::other(e.to_string()),
                        })?;
                        let name = format!("{} - {}.mp3", spec.artist, spec.title);
                        let path = library.join(&name);
                        let tmp = library.join(format!(".{name}.part"));
                        let wrap = |source| CatalogError::Io { path: path.clone(), source };
                        std::fs::write(&tmp, &mp3).map_err(wrap)?;
                        std::fs::rename(&tmp, &path).map_err(wrap)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("demo writer panicked")).collect()
    });
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(specs.len())
}
