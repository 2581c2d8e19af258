//! Symphonia decoding to interleaved stereo `f32` at the file's own rate.
//!
//! Error contract (after symphonia's): a packet that fails to decode is
//! dropped and decoding goes on; a file whose container cannot be read, or
//! that yields too many bad packets in a row, is an error for that file only.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL, CODEC_TYPE_OPUS};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTagKey};
use symphonia::core::probe::Hint;

use crate::units::SampleRate;

/// Consecutive undecodable packets after which a file is declared corrupt.
const MAX_BAD_PACKETS_IN_A_ROW: u32 = 64;
/// Sample rates a file may declare. Checked before anything is allocated
/// from them: a resampler's buffers grow with the rate, and a header can
/// claim anything (4,294,967,295 Hz has been seen).
pub const MIN_FILE_RATE: u32 = 4_000;
pub const MAX_FILE_RATE: u32 = 768_000;
/// Channels a file may declare.
pub const MAX_CHANNELS: usize = 32;
/// Frames in one decoded packet beyond which the file is not believed
/// (ten seconds at the highest rate).
const MAX_PACKET_FRAMES: usize = 10 * MAX_FILE_RATE as usize;
/// Largest sample magnitude that is audio (+60 dBFS): a float file's words
/// beyond it, NaN or infinite, are corrupt.
pub const MAX_SAMPLE: f32 = 1_000.0;

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
    #[error("longer than the limit of {limit_min:.0} minutes")]
    TooLong { limit_min: f64 },
}

impl AudioError {
    /// Whether trying again later may succeed: the file could not be read
    /// for a reason of the moment (too many open files, an interrupted or
    /// busy read), not because of what it holds.
    pub fn is_transient(&self) -> bool {
        use std::io::ErrorKind::*;
        match self {
            AudioError::Open(e) => {
                matches!(e.kind(), Interrupted | WouldBlock | TimedOut | ResourceBusy | OutOfMemory)
                    || matches!(e.raw_os_error(), Some(23 | 24))
            }
            _ => false,
        }
    }
}

/// Runs `f`, turning a panic inside it (a decoder's bug on an odd file)
/// into an error for this file only.
pub fn contain<T>(what: &str, f: impl FnOnce() -> Result<T, AudioError>) -> Result<T, AudioError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(AudioError::Corrupt(format!("{what} failed: {}", panic_message(&*payload)))),
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Text from a tag, as a title or an artist: trimmed, NULs (C strings'
/// padding) and control characters removed. Empty becomes `None`.
pub fn clean_tag(raw: &str) -> Option<String> {
    let text: String = raw.split('\0').next().unwrap_or("").chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
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
            // Symphonia's Matroska reader gives its tags by name only.
            let key = tag.std_key.or_else(|| match tag.key.to_ascii_uppercase().as_str() {
                "TITLE" => Some(StandardTagKey::TrackTitle),
                "ARTIST" => Some(StandardTagKey::Artist),
                "ALBUM_ARTIST" | "ALBUMARTIST" => Some(StandardTagKey::AlbumArtist),
                "ALBUM" => Some(StandardTagKey::Album),
                "GENRE" => Some(StandardTagKey::Genre),
                _ => None,
            });
            let slot = match key {
                Some(StandardTagKey::TrackTitle) => &mut self.title,
                Some(StandardTagKey::Artist) => &mut self.artist,
                Some(StandardTagKey::AlbumArtist) if self.artist.is_none() => &mut self.artist,
                Some(StandardTagKey::Album) => &mut self.album,
                Some(StandardTagKey::Genre) => &mut self.genre,
                _ => continue,
            };
            if slot.is_none() {
                *slot = clean_tag(&tag.value.to_string());
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
    /// Frames the container declares, if it does (a claim, not a bound).
    declared_frames: Option<u64>,
    /// Packets dropped because they failed to decode.
    pub bad_packets: u64,
    /// Samples that were not audio (NaN, infinite, beyond `MAX_SAMPLE`),
    /// given out as silence.
    pub invalid_samples: u64,
    /// Set once decoding failed: the error, repeated on every later call.
    failed: Option<String>,
    /// Decoded frames still to leave out at the start (an MP4's edit list).
    skip: u64,
    /// Frames still to give out after those, where the container says
    /// where the track ends (an MP4's edit list); `None`: to the end.
    left: Option<u64>,
}

/// Where an MP4 (M4A) file's edit list says its audio starts and how long
/// it plays, in frames at `rate`: (frames to leave out, frames to play).
/// An AAC encoder puts some 1,024–2,112 frames of its own ahead of the
/// music and says so only there, and symphonia does not read it: left in,
/// every beat of an M4A sits 23–48 ms late against its source. `None` for
/// any other file, or an MP4 without an edit list.
fn mp4_edit(path: &Path, rate: u32) -> Option<(u64, Option<u64>)> {
    let movie = mp4parse::read_mp4(&mut std::io::Cursor::new(mp4_header_boxes(path)?)).ok()?;
    let track = movie.tracks.iter().find(|t| t.track_type == mp4parse::TrackType::Audio)?;
    let frames = |t: u64, scale: u64| (scale > 0).then(|| (t as u128 * rate as u128 / scale as u128) as u64);
    let skip = frames(track.media_time?.0, track.timescale?.0)?;
    let play = track.edited_duration.zip(movie.timescale).and_then(|(d, s)| frames(d.0, s.0)).filter(|n| *n > 0);
    Some((skip, play))
}

/// A `moov` box larger than this is not read (a long track's sample
/// tables take a few MB).
const MAX_MOOV_BYTES: u64 = 64 << 20;

/// An MP4's `ftyp` and `moov` boxes, read by seeking past the others: all
/// mp4parse needs, where reading the file through it would read the whole
/// `mdat` (the audio) too, at every open. `None` unless the file starts
/// with an `ftyp` box and has a `moov`.
fn mp4_header_boxes(path: &Path) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).ok()?;
    let end = file.metadata().ok()?.len();
    let (mut at, mut out) = (0u64, Vec::new());
    while at + 8 <= end {
        file.seek(SeekFrom::Start(at)).ok()?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..8]).ok()?;
        let kind = [head[4], head[5], head[6], head[7]];
        let size = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
            // To the end of the file.
            0 => end - at,
            // A 64-bit size after the type.
            1 => {
                file.read_exact(&mut head[8..16]).ok()?;
                u64::from_be_bytes(head[8..16].try_into().ok()?)
            }
            n => n as u64,
        };
        if size < 8 || at.checked_add(size)? > end || (at == 0 && &kind != b"ftyp") {
            return None;
        }
        if &kind == b"ftyp" || &kind == b"moov" {
            if size > MAX_MOOV_BYTES {
                return None;
            }
            file.seek(SeekFrom::Start(at)).ok()?;
            (&mut file).take(size).read_to_end(&mut out).ok()?;
            if &kind == b"moov" {
                return Some(out);
            }
        }
        at += size;
    }
    None
}

/// What symphonia's AIFF and WAV readers get wrong or leave out.
struct ChunkInfo {
    /// An AIFF's COMM chunk's frame count. Symphonia counts the SSND
    /// chunk's 8-byte header as sound and so reads the first 8 bytes of the
    /// chunk after it (an ID3 tag's "ID3 " and size) as a few loud samples.
    frames: Option<u64>,
    /// The ID3 tag of an `ID3 ` chunk (where iTunes, Rekordbox, Mp3tag and
    /// ffmpeg write title, artist and cover), which symphonia passes over.
    id3: Option<MetadataRevision>,
}

/// `None` for a file that is neither an AIFF nor a WAV.
fn chunk_info(path: &Path) -> Option<ChunkInfo> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).ok()?;
    let mut head = [0u8; 12];
    file.read_exact(&mut head).ok()?;
    let big_endian = match (&head[0..4], &head[8..12]) {
        (b"FORM", b"AIFF" | b"AIFC") => true,
        (b"RIFF", b"WAVE") => false,
        _ => return None,
    };
    let mut info = ChunkInfo { frames: None, id3: None };
    let mut chunk = [0u8; 8];
    while file.read_exact(&mut chunk).is_ok() {
        let size = [chunk[4], chunk[5], chunk[6], chunk[7]];
        let size = if big_endian { u32::from_be_bytes(size) } else { u32::from_le_bytes(size) } as u64;
        let mut body = Vec::new();
        let wanted = matches!(&chunk[0..4], b"COMM" | b"ID3 " | b"id3 ");
        if wanted && (&mut file).take(size.min(MAX_ARTWORK_BYTES as u64 * 2)).read_to_end(&mut body).is_err() {
            break;
        }
        match &chunk[0..4] {
            // Channels (2 bytes), then the frames (4).
            b"COMM" if big_endian && body.len() >= 6 => {
                info.frames = Some(u32::from_be_bytes([body[2], body[3], body[4], body[5]]) as u64)
            }
            b"ID3 " | b"id3 " => {
                let mut builder = symphonia::core::meta::MetadataBuilder::new();
                let read = symphonia_metadata::id3v2::read_id3v2(&mut symphonia::core::io::BufReader::new(&body), &mut builder);
                info.id3 = read.ok().map(|_| builder.metadata());
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        let rest = size.saturating_sub(body.len() as u64) + (size & 1);
        if file.seek(SeekFrom::Current(rest as i64)).is_err() {
            break;
        }
    }
    Some(info)
}

/// The ID3v1 tag at the end of an MP3 (the last 128 bytes, from "TAG"),
/// which older libraries carry alone and symphonia does not read.
fn id3v1(path: &Path) -> Option<MetadataRevision> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::End(-128)).ok()?;
    let mut tag = Vec::with_capacity(128);
    file.take(128).read_to_end(&mut tag).ok()?;
    let mut builder = symphonia::core::meta::MetadataBuilder::new();
    symphonia_metadata::id3v1::read_id3v1(&mut symphonia::core::io::BufReader::new(&tag), &mut builder).ok()?;
    Some(builder.metadata())
}

/// An EBML variable-length integer (Matroska): the leading zeros of the
/// first byte say how many bytes follow. An element ID keeps its length
/// marker, a size does not; a size of all ones is "unknown" (`true`).
fn ebml_vint(r: &mut impl std::io::Read, keep_marker: bool) -> Option<(u64, bool)> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).ok()?;
    let len = b[0].leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let mask = 0xFFu64 >> len;
    let first = if keep_marker { b[0] as u64 } else { b[0] as u64 & mask };
    let (mut v, mut all_ones) = (first, first == mask);
    for _ in 1..len {
        r.read_exact(&mut b).ok()?;
        v = v << 8 | b[0] as u64;
        all_ones &= b[0] == 0xFF;
    }
    Some((v, all_ones && !keep_marker))
}

/// A Matroska (MKA, WebM) file's title: the Segment's Info `Title`, where
/// ffmpeg (and so yt-dlp) writes it. Symphonia reads the file's tags but
/// not that element. `None` for any other file.
fn matroska_title(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const EBML: u64 = 0x1A45_DFA3;
    const SEGMENT: u64 = 0x1853_8067;
    const INFO: u64 = 0x1549_A966;
    const TITLE: u64 = 0x7BA9;
    const CLUSTER: u64 = 0x1F43_B675;
    let mut file = std::io::BufReader::new(File::open(path).ok()?);
    if ebml_vint(&mut file, true)?.0 != EBML {
        return None;
    }
    let (size, _) = ebml_vint(&mut file, false)?;
    file.seek_relative(size as i64).ok()?;
    // Into the Segment, then its Info, then the Title, skipping what comes
    // between; the first Cluster (the audio) ends the search.
    let mut want = [SEGMENT, INFO, TITLE].into_iter().peekable();
    for _ in 0..4096 {
        let &target = want.peek()?;
        let (id, _) = ebml_vint(&mut file, true)?;
        let (size, unknown) = ebml_vint(&mut file, false)?;
        if id == CLUSTER {
            return None;
        }
        if id == target {
            want.next();
            if target == TITLE {
                let mut text = Vec::new();
                (&mut file).take(size.min(4096)).read_to_end(&mut text).ok()?;
                return Some(String::from_utf8_lossy(&text).into_owned());
            }
        } else if unknown {
            return None;
        } else {
            file.seek(SeekFrom::Current(size as i64)).ok()?;
        }
    }
    None
}

/// The same from iTunes' gapless tag, which its encoder writes instead of
/// an edit list: `iTunSMPB`, hexadecimal fields of which the second is the
/// encoder's delay and the fourth the music's length, in frames.
fn itunes_gapless(value: &str) -> Option<(u64, Option<u64>)> {
    let fields: Vec<u64> = value.split_whitespace().map(|f| u64::from_str_radix(f, 16)).collect::<Result<_, _>>().ok()?;
    let (delay, length) = (*fields.get(1)?, *fields.get(3)?);
    (delay > 0).then_some((delay, (length > 0).then_some(length)))
}

/// Left and right weights of each channel for a stereo downmix (ITU-R
/// BS.775: centre and surrounds at -3 dB, LFE left out), normalised so a
/// signal on every channel keeps its level. Channels without a known
/// position are shared equally.
fn downmix_weights(layout: symphonia::core::audio::Channels, n: usize) -> Vec<(f32, f32)> {
    use symphonia::core::audio::Channels as C;
    const H: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let positions: Vec<C> = layout.iter().collect();
    let mut w: Vec<(f32, f32)> = (0..n)
        .map(|i| match positions.get(i) {
            Some(&c) if c == C::FRONT_LEFT || c == C::FRONT_LEFT_WIDE || c == C::FRONT_LEFT_CENTRE => (1.0, 0.0),
            Some(&c) if c == C::FRONT_RIGHT || c == C::FRONT_RIGHT_WIDE || c == C::FRONT_RIGHT_CENTRE => (0.0, 1.0),
            Some(&c) if c == C::FRONT_CENTRE || c == C::REAR_CENTRE || c == C::TOP_CENTRE => (H, H),
            Some(&c) if c == C::LFE1 || c == C::LFE2 => (0.0, 0.0),
            Some(&c) if c == C::REAR_LEFT || c == C::SIDE_LEFT || c == C::REAR_LEFT_CENTRE || c == C::TOP_FRONT_LEFT || c == C::TOP_REAR_LEFT => (H, 0.0),
            Some(&c) if c == C::REAR_RIGHT || c == C::SIDE_RIGHT || c == C::REAR_RIGHT_CENTRE || c == C::TOP_FRONT_RIGHT || c == C::TOP_REAR_RIGHT => (0.0, H),
            _ => (H, H),
        })
        .collect();
    let (sl, sr): (f32, f32) = w.iter().fold((0.0, 0.0), |(a, b), (l, r)| (a + l, b + r));
    for (l, r) in w.iter_mut() {
        *l /= sl.max(1.0);
        *r /= sr.max(1.0);
    }
    w
}

/// Opens `path` and lets symphonia find its format (by content, the
/// extension as a hint) and read the tags before the audio.
fn probe(path: &Path) -> Result<symphonia::core::probe::ProbeResult, AudioError> {
    let file = File::open(path)?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    // Gapless: the encoder's delay and padding (an MP3's LAME header) are
    // not audio. Left in, an MP3's every beat sits some 50 ms late against
    // its source, and the track leads in and ends on silence of its own.
    let options = FormatOptions { enable_gapless: true, ..Default::default() };
    symphonia::default::get_probe().format(&hint, mss, &options, &MetadataOptions::default()).map_err(|e| match e {
        // The probe read to the end without finding a container it knows
        // (WavPack, MP2, a text file): say that, not "end of stream".
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::Unsupported("no container or stream this decoder knows".into())
        }
        e => AudioError::Unsupported(e.to_string()),
    })
}

/// Cover art larger than this is not served.
const MAX_ARTWORK_BYTES: usize = 4 << 20;

/// The cover picture in `path`'s tags (the front cover if marked, else the
/// first picture): its media type and bytes; `None` when there is none.
pub fn artwork(path: &Path) -> Result<Option<(String, Vec<u8>)>, AudioError> {
    contain("reading the tags", || {
        let mut probed = probe(path)?;
        let mut visuals: Vec<symphonia::core::meta::Visual> = Vec::new();
        if let Some(rev) = probed.metadata.get().as_ref().and_then(|m| m.current()) {
            visuals.extend(rev.visuals().iter().cloned());
        }
        if let Some(rev) = probed.format.metadata().current() {
            visuals.extend(rev.visuals().iter().cloned());
        }
        if let Some(rev) = chunk_info(path).and_then(|a| a.id3) {
            visuals.extend(rev.visuals().iter().cloned());
        }
        let front = visuals.iter().position(|v| v.usage == Some(symphonia::core::meta::StandardVisualKey::FrontCover));
        let Some(v) = front.or((!visuals.is_empty()).then_some(0)).map(|i| visuals.swap_remove(i)) else { return Ok(None) };
        if v.data.len() > MAX_ARTWORK_BYTES || !v.media_type.starts_with("image/") {
            return Ok(None);
        }
        Ok(Some((v.media_type, v.data.into_vec())))
    })
}

impl Decoder {
    /// Opens `path` and checks what it declares (rate, channels) before
    /// anything is sized from it. A decoder panic is this file's error.
    pub fn open(path: &Path) -> Result<Decoder, AudioError> {
        contain("opening the decoder", || Decoder::open_unchecked(path))
    }

    fn open_unchecked(path: &Path) -> Result<Decoder, AudioError> {
        let mut probed = probe(path)?;
        let mut tags = Tags::default();
        let mut itunes = None;
        let mut absorb = |rev: &MetadataRevision| {
            tags.absorb(rev);
            itunes = itunes.take().or_else(|| rev.tags().iter().find(|t| t.key.ends_with("iTunSMPB")).and_then(|t| itunes_gapless(&t.value.to_string())));
        };
        if let Some(rev) = probed.format.metadata().current() {
            absorb(rev);
        }
        if let Some(rev) = probed.metadata.get().as_ref().and_then(|m| m.current()) {
            absorb(rev);
        }
        let chunks = chunk_info(path);
        if let Some(rev) = chunks.as_ref().and_then(|a| a.id3.as_ref()) {
            absorb(rev);
        }
        let format = probed.format;
        let mp3 = format.tracks().iter().any(|t| t.codec_params.codec == symphonia::core::codecs::CODEC_TYPE_MP3);
        if let Some(rev) = mp3.then(|| id3v1(path)).flatten() {
            absorb(&rev);
        }
        if tags.title.is_none() {
            tags.title = matroska_title(path).as_deref().and_then(clean_tag);
        }
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| AudioError::Unsupported("no audio track".into()))?;
        let rate = track
            .codec_params
            .sample_rate
            .ok_or_else(|| AudioError::Unsupported("unknown sample rate".into()))?;
        if !(MIN_FILE_RATE..=MAX_FILE_RATE).contains(&rate) {
            return Err(AudioError::Unsupported(format!(
                "sample rate {rate} Hz (supported: {MIN_FILE_RATE}-{MAX_FILE_RATE} Hz)"
            )));
        }
        if let Some(channels) = track.codec_params.channels {
            let n = channels.count();
            if n == 0 || n > MAX_CHANNELS {
                return Err(AudioError::Unsupported(format!("{n} channels (supported: 1-{MAX_CHANNELS})")));
            }
        }
        let codec = super::opus::codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .map_err(|e| AudioError::Unsupported(e.to_string()))?;
        let declared_frames = track.codec_params.n_frames;
        // Where symphonia knows the encoder's delay (an MP3's LAME header)
        // it leaves it out itself; an MP4's edit list it does not read.
        // Opus says it in its own header (the pre-skip), which symphonia
        // leaves to the decoder: leaving it in put every beat 6.5 ms late.
        let (skip, mut left) = match track.codec_params.delay {
            _ if track.codec_params.codec == CODEC_TYPE_OPUS => {
                (track.codec_params.extra_data.as_deref().and_then(super::opus::Head::parse).map_or(0, |h| h.pre_skip), None)
            }
            Some(d) if d > 0 => (0, None),
            _ => mp4_edit(path, rate).filter(|e| e.0 > 0).or(itunes).unwrap_or((0, None)),
        };
        if let Some(frames) = chunks.and_then(|a| a.frames) {
            left = Some(left.map_or(frames, |l| l.min(frames)));
        }
        Ok(Decoder {
            declared_frames,
            track_id: track.id,
            format,
            codec,
            rate: SampleRate(rate),
            tags,
            buffer: None,
            bad_packets: 0,
            invalid_samples: 0,
            failed: None,
            skip,
            left,
        })
    }

    pub fn sample_rate(&self) -> SampleRate {
        self.rate
    }

    /// The length the container declares, seconds: a header's claim, for
    /// sizing buffers up to a limit, never for trusting.
    pub fn declared_seconds(&self) -> Option<f64> {
        self.declared_frames.map(|n| n as f64 / self.rate.0 as f64)
    }

    pub fn tags(&self) -> &Tags {
        &self.tags
    }

    /// The next decoded block as interleaved stereo, or `None` at the end.
    /// After an error (or a contained decoder panic) the decoder is spent:
    /// every later call repeats the error.
    pub fn next_block(&mut self) -> Result<Option<Vec<f32>>, AudioError> {
        if let Some(e) = &self.failed {
            return Err(AudioError::Corrupt(e.clone()));
        }
        let result = contain("decoding", || self.next_block_unchecked());
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    fn next_block_unchecked(&mut self) -> Result<Option<Vec<f32>>, AudioError> {
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
            if channels == 0 || channels > MAX_CHANNELS {
                return Err(AudioError::Unsupported(format!("{channels} channels")));
            }
            if decoded.capacity() > MAX_PACKET_FRAMES || spec.rate != self.rate.0 {
                return Err(AudioError::Corrupt(format!(
                    "implausible packet ({} frames at {} Hz)",
                    decoded.capacity(),
                    spec.rate
                )));
            }
            let buffer = match &mut self.buffer {
                Some(b) if b.capacity() >= decoded.capacity() * channels => b,
                slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
            };
            buffer.copy_interleaved_ref(decoded);
            let samples = buffer.samples();
            let frames = samples.len() / channels;
            let mut out = Vec::with_capacity(frames * 2);
            match channels {
                1 => samples.iter().for_each(|v| out.extend([*v, *v])),
                2 => out.extend_from_slice(samples),
                _ => {
                    let mix = downmix_weights(spec.channels, channels);
                    for f in samples.chunks_exact(channels) {
                        let (mut l, mut r) = (0.0, 0.0);
                        for (v, (wl, wr)) in f.iter().zip(&mix) {
                            l += v * wl;
                            r += v * wr;
                        }
                        out.extend([l, r]);
                    }
                }
            }
            // A NaN or an infinity would poison every filter it passes
            // through for good (the resampler's, the limiter's envelope,
            // the encoder's): a float file's corrupt words play as silence.
            for v in out.iter_mut().filter(|v| !v.is_finite() || v.abs() > MAX_SAMPLE) {
                *v = 0.0;
                self.invalid_samples += 1;
            }
            // The edit list's start and end.
            let drop = (self.skip as usize).min(out.len() / 2);
            self.skip -= drop as u64;
            out.drain(..drop * 2);
            if let Some(left) = &mut self.left {
                let keep = (*left as usize).min(out.len() / 2);
                *left -= keep as u64;
                out.truncate(keep * 2);
            }
            if out.is_empty() {
                if self.left == Some(0) {
                    return Ok(None);
                }
                continue;
            }
            return Ok(Some(out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The left channel of everything `d` decodes.
    fn left_channel(d: &mut Decoder) -> Vec<f32> {
        let mut left = Vec::new();
        while let Some(block) = d.next_block().unwrap() {
            left.extend(block.iter().step_by(2).copied());
        }
        left
    }

    /// Checks that the click fixture `path` (clicks at 0.5, 1.0 and 1.5 s,
    /// 2 s long) starts and ends where its source did: the first click's
    /// first loud sample within its first cycle, and 2 s long to within an
    /// MP3 frame's worth of rounding in a header. Returns the decoder.
    fn assert_the_clicks_keep_their_time(path: &Path) -> Decoder {
        let (d, seconds) = assert_the_first_click_on_time(path);
        assert!((seconds - 2.0).abs() < 0.002, "{}: {seconds:.4} s decoded of 2", path.display());
        d
    }

    /// The start half of `assert_the_clicks_keep_their_time`: decodes the
    /// click fixture `path`, checks its first click, and returns the
    /// decoder and the seconds decoded.
    fn assert_the_first_click_on_time(path: &Path) -> (Decoder, f64) {
        let mut d = Decoder::open(path).unwrap();
        let rate = d.sample_rate().0 as f64;
        let left = left_channel(&mut d);
        let first = left.iter().position(|v| v.abs() > 0.1).unwrap() as f64 / rate;
        // (libopus's own decoder puts the rise two samples at 48 kHz
        // ahead of the source's: within 0.1 ms before is on time.)
        assert!((0.4999..0.5015).contains(&first), "{}: the first click starts at {first:.5} s, not 0.5", path.display());
        (d, left.len() as f64 / rate)
    }

    /// `tests/data/clicks_lame.mp3`: LAME (through ffmpeg) at 64 kbit/s of
    /// 1 kHz clicks at 0.5, 1.0 and 1.5 s, 44.1 kHz mono, 2 s long. Its
    /// header says how much of the start is the encoder's delay.
    #[test]
    fn an_mp3s_encoder_delay_is_not_part_of_the_track() {
        assert_the_clicks_keep_their_time(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/clicks_lame.mp3"));
    }

    /// An AIFF (big-endian PCM, as Apple's tools and many DJ libraries keep
    /// their music) and a WAV are found by the scan and decoded to their
    /// last frame and no further, with the title, artist and cover of an
    /// ID3 chunk after the sound (as ffmpeg, iTunes and Mp3tag put it).
    #[test]
    fn aiff_and_wav_with_an_id3_chunk() {
        let rate = 44_100u32;
        let samples: Vec<i16> = (0..rate as usize)
            .map(|i| if (i % 22_050) < 40 { (10_000.0 * (i as f32 * 0.3).sin()) as i16 } else { 0 })
            .collect();
        let mut id3 = crate::synth::faults::id3v24(&[(b"TIT2", "Clicks"), (b"TPE1", "The Metronomes")]);
        // And a front cover (an APIC frame; under 128 bytes, its size is
        // the same synchsafe or plain).
        let mut apic = b"\0image/png\0\x03\0".to_vec();
        apic.extend(b"\x89PNG not really");
        let mut frame = b"APIC".to_vec();
        frame.extend((apic.len() as u32).to_be_bytes());
        frame.extend([0, 0]);
        frame.extend(apic);
        let size = (id3.len() - 10 + frame.len()) as u32;
        id3[6..10].copy_from_slice(&crate::synth::faults::synchsafe(size));
        id3.extend(frame);
        // Chunks of a FORM (big-endian) or RIFF (little-endian) file.
        let container = |outer: &[u8; 4], kind: &[u8; 4], big: bool, chunks: Vec<(&[u8; 4], Vec<u8>)>| {
            let size = |n: usize| if big { (n as u32).to_be_bytes() } else { (n as u32).to_le_bytes() };
            let mut form = kind.to_vec();
            for (id, body) in chunks {
                form.extend(id);
                form.extend(size(body.len()));
                form.extend(body);
            }
            let mut file = outer.to_vec();
            file.extend(size(form.len()));
            file.extend(form);
            file
        };
        let mut comm = Vec::new();
        comm.extend(1u16.to_be_bytes());
        comm.extend((samples.len() as u32).to_be_bytes());
        comm.extend(16u16.to_be_bytes());
        // 44,100 as an 80-bit extended float.
        comm.extend([0x40, 0x0E, 0xAC, 0x44, 0, 0, 0, 0, 0, 0]);
        let mut ssnd = vec![0u8; 8];
        samples.iter().for_each(|v| ssnd.extend(v.to_be_bytes()));
        // After the sound, the ID3 chunk's first 8 bytes ("ID3 " and the
        // size) must not be read as 4 loud samples.
        let aiff = container(b"FORM", b"AIFF", true, vec![(b"COMM", comm), (b"SSND", ssnd), (b"ID3 ", id3.clone())]);
        let mut fmt = Vec::new();
        for v in [1u16, 1] {
            fmt.extend(v.to_le_bytes());
        }
        fmt.extend(rate.to_le_bytes());
        fmt.extend((rate * 2).to_le_bytes());
        fmt.extend([2, 0, 16, 0]);
        let data: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        let wav = container(b"RIFF", b"WAVE", false, vec![(b"fmt ", fmt), (b"data", data), (b"id3 ", id3)]);
        let dir = std::env::temp_dir().join(format!("nonstop-chunks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in [("Clicks.AIFF", aiff), ("clicks.wav", wav)] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            assert!(crate::audio::is_audio_path(&path));
            let mut d = Decoder::open(&path).unwrap();
            assert_eq!(d.sample_rate().0, rate);
            assert_eq!((d.tags().title.as_deref(), d.tags().artist.as_deref()), (Some("Clicks"), Some("The Metronomes")), "{name}");
            let (media, bytes) = artwork(&path).unwrap().expect("the cover");
            assert_eq!((media.as_str(), &bytes[..4]), ("image/png", &b"\x89PNG"[..]), "{name}");
            let left = left_channel(&mut d);
            assert_eq!(left.len(), rate as usize, "{name}");
            let loud: Vec<usize> = (0..left.len()).filter(|&i| left[i].abs() > 0.1 && (i == 0 || left[i - 1].abs() <= 0.1)).collect();
            assert_eq!(loud.first().map(|i| i / 22_050), Some(0), "{name}");
            assert!(loud.iter().any(|&i| (22_050..22_100).contains(&i)), "{name}: {loud:?}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// An MP3 tagged with ID3v1 alone (the 128 bytes at its end) has its
    /// title and artist, and the tag is not played.
    #[test]
    fn an_mp3s_id3v1_tag_is_read() {
        let mut mp3 = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/clicks_lame.mp3")).unwrap();
        let field = |text: &str, len: usize| {
            let mut f = text.as_bytes().to_vec();
            f.resize(len, 0);
            f
        };
        mp3.extend(b"TAG");
        for (text, len) in [("Old Clicks", 30), ("Tagged in 1999", 30), ("", 30), ("1999", 4), ("", 30)] {
            mp3.extend(field(text, len));
        }
        mp3.push(255);
        let dir = std::env::temp_dir().join(format!("nonstop-id3v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v1.mp3");
        std::fs::write(&path, mp3).unwrap();
        let d = assert_the_clicks_keep_their_time(&path);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!((d.tags().title.as_deref(), d.tags().artist.as_deref()), (Some("Old Clicks"), Some("Tagged in 1999")));
    }

    /// `tests/data/clicks_aac.m4a`: the same clicks (0.5, 1.0, 1.5 s; 2 s,
    /// 44.1 kHz mono) through ffmpeg's AAC encoder at 64 kbit/s, whose
    /// 1,024 frames of delay only the MP4 edit list tells.
    /// `clicks_aac_itunes.m4a` is that file with the edit list renamed to
    /// a `free` box and the delay and length in an `iTunSMPB` tag instead,
    /// as iTunes writes them.
    #[test]
    fn an_m4as_encoder_delay_is_not_part_of_the_track() {
        for file in ["clicks_aac.m4a", "clicks_aac_itunes.m4a"] {
            assert_the_clicks_keep_their_time(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file));
        }
    }

    /// `tests/data/clicks_opus.opus` and `.webm`: the same clicks through
    /// libopus (ffmpeg) at 24 kbit/s, in Ogg and in WebM, decoded at 48 kHz
    /// without the encoder's pre-skip (312 frames, 6.5 ms). Ogg's last page
    /// says where the music ends; WebM's end padding (`DiscardPadding`) is
    /// not read, so its last packet's padding, under 20 ms, stays on. Title
    /// and artist as ffmpeg writes them: Vorbis comments in Ogg; in WebM the
    /// Segment's `Title` and an `ARTIST` tag.
    #[test]
    fn opus_in_ogg_and_webm_is_decoded_from_its_first_frame() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let d = assert_the_clicks_keep_their_time(&data.join("clicks_opus.opus"));
        assert_eq!(d.sample_rate().0, 48_000);
        assert_eq!((d.tags().title.as_deref(), d.tags().artist.as_deref()), (Some("Clicks in Ogg"), Some("The Metronomes")));
        let (d, seconds) = assert_the_first_click_on_time(&data.join("clicks_opus.webm"));
        assert_eq!((d.tags().title.as_deref(), d.tags().artist.as_deref()), (Some("Clicks in WebM"), Some("The Metronomes")));
        assert!((2.0..2.02).contains(&seconds), "WebM: {seconds:.4} s long");
    }
}
