//! A thin, safe handle over LAME (through mp3lame-encoder) for CBR MP3 at
//! the station's settings. The encoder is not `Send`-safe to share, so each
//! thread builds its own.

use mp3lame_encoder::{Bitrate, Builder, DualPcm, Encoder, FlushNoGap, Id3Tag, InterleavedPcm, Mode, Quality};

#[derive(Debug, thiserror::Error)]
pub enum LameError {
    #[error("LAME: cannot allocate encoder")]
    Alloc,
    #[error("LAME setting {setting}: {message}")]
    Setting { setting: &'static str, message: String },
    #[error("LAME encode: {0}")]
    Encode(String),
}

/// Encoder parameters.
#[derive(Debug, Clone, Copy)]
pub struct LameSettings {
    pub sample_rate: u32,
    pub bitrate_kbps: u32,
    /// 0 (best, slowest) ..= 9.
    pub quality: u8,
}

/// Tags written as an ID3v2 header (used for the demo library files only;
/// a live stream carries its titles as ICY metadata instead).
pub struct FileTags<'a> {
    pub title: &'a str,
    pub artist: &'a str,
    pub album: &'a str,
}

pub struct Lame {
    inner: Encoder,
}

fn bitrate(kbps: u32) -> Option<Bitrate> {
    Some(match kbps {
        32 => Bitrate::Kbps32,
        40 => Bitrate::Kbps40,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        80 => Bitrate::Kbps80,
        96 => Bitrate::Kbps96,
        112 => Bitrate::Kbps112,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        192 => Bitrate::Kbps192,
        224 => Bitrate::Kbps224,
        256 => Bitrate::Kbps256,
        320 => Bitrate::Kbps320,
        _ => return None,
    })
}

fn quality(q: u8) -> Quality {
    match q {
        0 => Quality::Best,
        1 => Quality::SecondBest,
        2 => Quality::NearBest,
        3 => Quality::VeryNice,
        4 => Quality::Nice,
        5 => Quality::Good,
        6 => Quality::Decent,
        7 => Quality::Ok,
        8 => Quality::SecondWorst,
        _ => Quality::Worst,
    }
}

impl Lame {
    pub fn new(settings: LameSettings, tags: Option<FileTags<'_>>) -> Result<Lame, LameError> {
        let set = |setting: &'static str| move |e: mp3lame_encoder::BuildError| LameError::Setting { setting, message: format!("{e:?}") };
        let mut b = Builder::new().ok_or(LameError::Alloc)?;
        b.set_num_channels(2).map_err(set("channels"))?;
        b.set_sample_rate(settings.sample_rate).map_err(set("sample rate"))?;
        // The station's rate out as well: LAME would pick a lower one for
        // low bitrates (24 kHz at 64 kbps), and every mount must have
        // frames of the same 1152 samples, released in step.
        b.set_output_sample_rate(std::num::NonZeroU32::new(settings.sample_rate)).map_err(set("output sample rate"))?;
        let br = bitrate(settings.bitrate_kbps).ok_or(LameError::Setting {
            setting: "bitrate",
            message: format!("{} kbps is not supported", settings.bitrate_kbps),
        })?;
        b.set_brate(br).map_err(set("bitrate"))?;
        b.set_mode(Mode::JointStereo).map_err(set("mode"))?;
        b.set_quality(quality(settings.quality)).map_err(set("quality"))?;
        b.set_vbr_mode(mp3lame_encoder::VbrMode::Off).map_err(set("vbr mode"))?;
        // A stream has no end to seek from: no Xing/Info frame.
        b.set_to_write_vbr_tag(false).map_err(set("vbr tag"))?;
        if let Some(t) = tags {
            b.set_id3_tag(Id3Tag {
                title: t.title.as_bytes(),
                artist: t.artist.as_bytes(),
                album: t.album.as_bytes(),
                album_art: &[],
                year: b"",
                comment: b"nonstop demo library",
            })
            .map_err(|e| LameError::Setting { setting: "id3", message: format!("{e:?}") })?;
        }
        let inner = b.build().map_err(set("init"))?;
        Ok(Lame { inner })
    }

    /// Encodes interleaved stereo in [-1, 1]; appends MP3 bytes to `out`.
    pub fn encode(&mut self, interleaved: &[f32], out: &mut Vec<u8>) -> Result<(), LameError> {
        out.reserve(interleaved.len() * 5 / 8 + 7200);
        self.inner
            .encode_to_vec(InterleavedPcm(interleaved), out)
            .map_err(|e| LameError::Encode(format!("{e:?}")))?;
        Ok(())
    }

    /// Encodes planar stereo (left and right of the same length) in
    /// [-1, 1]; appends MP3 bytes to `out`.
    pub fn encode_planar(&mut self, left: &[f32], right: &[f32], out: &mut Vec<u8>) -> Result<(), LameError> {
        out.reserve(left.len() * 5 / 4 + 7200);
        self.inner
            .encode_to_vec(DualPcm { left, right }, out)
            .map_err(|e| LameError::Encode(format!("{e:?}")))?;
        Ok(())
    }

    /// Flushes the remaining samples (end of a file).
    pub fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), LameError> {
        out.reserve(7200);
        self.inner.flush_to_vec::<FlushNoGap>(out).map_err(|e| LameError::Encode(format!("{e:?}")))?;
        Ok(())
    }
}

/// Encodes a whole interleaved stereo buffer to an MP3 file's bytes.
pub fn encode_file(settings: LameSettings, tags: FileTags<'_>, pcm: &[f32]) -> Result<Vec<u8>, LameError> {
    encode_whole(settings, tags, pcm.len() / 2, |lame, out| pcm.chunks(2 * CHUNK_FRAMES).try_for_each(|c| lame.encode(c, out)))
}

/// Encodes whole planar stereo (left and right of the same length) to an
/// MP3 file's bytes, without an interleaved copy.
pub fn encode_file_planar(settings: LameSettings, tags: FileTags<'_>, left: &[f32], right: &[f32]) -> Result<Vec<u8>, LameError> {
    encode_whole(settings, tags, left.len(), |lame, out| {
        left.chunks(CHUNK_FRAMES).zip(right.chunks(CHUNK_FRAMES)).try_for_each(|(l, r)| lame.encode_planar(l, r, out))
    })
}

/// Frames handed to LAME at a time by the whole-file encoders.
const CHUNK_FRAMES: usize = 1152 * 64;

/// A file's encoder, with room for `frames` frames of MP3, fed by `feed`
/// and flushed.
fn encode_whole(
    settings: LameSettings,
    tags: FileTags<'_>,
    frames: usize,
    feed: impl FnOnce(&mut Lame, &mut Vec<u8>) -> Result<(), LameError>,
) -> Result<Vec<u8>, LameError> {
    let mut lame = Lame::new(settings, Some(tags))?;
    let mut out = Vec::with_capacity(frames * settings.bitrate_kbps as usize / 8 * 1000 / settings.sample_rate as usize + 8192);
    feed(&mut lame, &mut out)?;
    lame.flush(&mut out)?;
    Ok(out)
}
