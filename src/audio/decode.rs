//! Symphonia decoding to interleaved stereo `f32` at the file's own rate.
//!
//! Error contract (after symphonia's): a packet that fails to decode is
//! dropped and decoding goes on; a file whose container cannot be read, or
//! that yields too many bad packets in a row, is an error for that file only.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTagKey};
use symphonia::core::probe::Hint;

use crate::units::SampleRate;

/// Consecutive undecodable packets after which a file is declared corrupt.
const MAX_BAD_PACKETS_IN_A_ROW: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot open: {0}")]
    Open(#[from] std::io::Error),
    #[error("unsupported or unrecognised format: {0}")]
    Unsupported(String),
    #[error("corrupt audio: {0}")]
    Corrupt(String),
    #[error("resampler: {0}")]
    Resample(String),
}

/// Title, artist, album and genre as found in the file's tags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tags {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub genre: Option<String>,
}

impl Tags {
    fn absorb(&mut self, rev: &MetadataRevision) {
        for tag in rev.tags() {
            let slot = match tag.std_key {
                Some(StandardTagKey::TrackTitle) => &mut self.title,
                Some(StandardTagKey::Artist) => &mut self.artist,
                Some(StandardTagKey::AlbumArtist) if self.artist.is_none() => &mut self.artist,
                Some(StandardTagKey::Album) => &mut self.album,
                Some(StandardTagKey::Genre) => &mut self.genre,
                _ => continue,
            };
            let value = tag.value.to_string().trim().to_string();
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value);
            }
        }
    }
}

/// A streaming decoder over one file.
pub struct Decoder {
    format: Box<dyn FormatReader>,
    codec: Box<dyn symphonia::core::codecs::Decoder>,
    track_id: u32,
    rate: SampleRate,
    tags: Tags,
    buffer: Option<SampleBuffer<f32>>,
    /// Packets dropped because they failed to decode.
    pub bad_packets: u64,
}

impl Decoder {
    pub fn open(path: &Path) -> Result<Decoder, AudioError> {
        let file = File::open(path)?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let mut probed = symphonia::default::get_probe()
            .format(&hint, mss, &FormatOptions::default(), &MetadataOptions::default())
            .map_err(|e| AudioError::Unsupported(e.to_string()))?;
        let mut tags = Tags::default();
        if let Some(rev) = probed.format.metadata().current() {
            tags.absorb(rev);
        }
        if let Some(rev) = probed.metadata.get().as_ref().and_then(|m| m.current()) {
            tags.absorb(rev);
        }
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| AudioError::Unsupported("no audio track".into()))?;
        let rate = track
            .codec_params
            .sample_rate
            .ok_or_else(|| AudioError::Unsupported("unknown sample rate".into()))?;
        let codec = symphonia::default::get_codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .map_err(|e| AudioError::Unsupported(e.to_string()))?;
        Ok(Decoder {
            track_id: track.id,
            format,
            codec,
            rate: SampleRate(rate),
            tags,
            buffer: None,
            bad_packets: 0,
        })
    }

    pub fn sample_rate(&self) -> SampleRate {
        self.rate
    }

    pub fn tags(&self) -> &Tags {
        &self.tags
    }

    /// The next decoded block as interleaved stereo, or `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<Vec<f32>>, AudioError> {
        let mut bad_in_a_row = 0;
        loop {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(SymError::ResetRequired) => return Ok(None),
                Err(e) => return Err(AudioError::Corrupt(e.to_string())),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoded = match self.codec.decode(&packet) {
                Ok(d) => d,
                Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                    self.bad_packets += 1;
                    bad_in_a_row += 1;
                    if bad_in_a_row >= MAX_BAD_PACKETS_IN_A_ROW {
                        return Err(AudioError::Corrupt(format!("{bad_in_a_row} undecodable packets in a row")));
                    }
                    continue;
                }
                Err(e) => return Err(AudioError::Corrupt(e.to_string())),
            };
            if decoded.frames() == 0 {
                continue;
            }
            let spec = *decoded.spec();
            let channels = spec.channels.count();
            if channels == 0 {
                return Err(AudioError::Unsupported("zero channels".into()));
            }
            let buffer = match &mut self.buffer {
                Some(b) if b.capacity() >= decoded.capacity() * channels => b,
                slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
            };
            buffer.copy_interleaved_ref(decoded);
            let samples = buffer.samples();
            let frames = samples.len() / channels;
            let mut out = Vec::with_capacity(frames * 2);
            for f in samples.chunks_exact(channels) {
                let (l, r) = if channels == 1 { (f[0], f[0]) } else { (f[0], f[1]) };
                out.push(l);
                out.push(r);
            }
            return Ok(Some(out));
        }
    }
}
