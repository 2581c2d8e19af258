//! Audio in: decoding any supported file (symphonia) and resampling it to the
//! station rate (rubato), as a stream of interleaved stereo `f32` blocks.
//! Used by the library scan and by the mixer thread; never on the async
//! runtime, since decoding is CPU-bound.

mod decode;
mod opus;
mod resample;

pub use decode::{artwork, clean_tag, contain, panic_message, AudioError, Decoder, Tags, MAX_FILE_RATE, MAX_SAMPLE, MIN_FILE_RATE};
pub use resample::Resampler;

use std::path::Path;

use crate::units::SampleRate;

/// File extensions the library scan considers audio: what the decoder
/// reads (MP3, MP2, FLAC, Ogg Vorbis and Opus, WAV, AIFF, CAF, AAC/ALAC in
/// MP4, Matroska/WebM), and the common formats it does not (WMA, APE,
/// WavPack, Musepack), so that those are listed as failed with the reason
/// rather than passed over in silence.
pub const AUDIO_EXTENSIONS: [&str; 22] = [
    "mp3", "mp2", "flac", "ogg", "oga", "wav", "m4a", "aac", "mp4", "alac", "aiff", "aif", "aifc", "caf", "mka", "webm",
    "m4b", "opus", "wma", "ape", "wv", "mpc",
];

pub fn is_audio_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// A decoded track as a pull stream of interleaved stereo frames at the
/// station rate: decoder plus resampler.
pub struct TrackReader {
    decoder: Decoder,
    resampler: Option<Resampler>,
    /// Interleaved stereo output not yet handed out; `pos` is the read index.
    pending: Vec<f32>,
    pos: usize,
    finished: bool,
}

impl TrackReader {
    pub fn open(path: &Path, rate: SampleRate) -> Result<TrackReader, AudioError> {
        let decoder = Decoder::open(path)?;
        let resampler = if decoder.sample_rate() == rate {
            None
        } else {
            Some(Resampler::new(decoder.sample_rate(), rate)?)
        };
        Ok(TrackReader { decoder, resampler, pending: Vec::new(), pos: 0, finished: false })
    }

    /// Appends up to `frames` stereo frames to `out`; returns how many were
    /// appended. Zero means the track has ended. Decoded blocks go straight
    /// on to `out`: only one block is held here, however much is asked for.
    pub fn read(&mut self, out: &mut Vec<f32>, frames: usize) -> Result<usize, AudioError> {
        let mut got = 0;
        while got < frames {
            if self.pos < self.pending.len() {
                let n = ((self.pending.len() - self.pos) / 2).min(frames - got);
                out.extend_from_slice(&self.pending[self.pos..self.pos + n * 2]);
                self.pos += n * 2;
                got += n;
                continue;
            }
            if self.finished {
                break;
            }
            self.pending.clear();
            self.pos = 0;
            match self.decoder.next_block()? {
                Some(block) => match &mut self.resampler {
                    Some(r) => r.push(&block, &mut self.pending)?,
                    None => self.pending.extend_from_slice(&block),
                },
                None => {
                    if let Some(r) = &mut self.resampler {
                        r.finish(&mut self.pending)?;
                    }
                    self.finished = true;
                }
            }
        }
        Ok(got)
    }
}
