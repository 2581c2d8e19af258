//! Units of media time. The whole pipeline counts time in sample frames at
//! the station rate (one frame = one sample per channel); wall-clock seconds
//! appear only at the edges (config, status, pacing).

use std::fmt;
use std::time::Duration;

/// Samples per MPEG-1 Layer III frame (per channel).
pub const MP3_FRAME_SAMPLES: u64 = 1152;

/// A sample rate in Hz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleRate(pub u32);

impl SampleRate {
    pub const CD: SampleRate = SampleRate(44_100);

    /// Number of sample frames in `seconds`, rounded to the nearest frame.
    pub fn frames_in(self, seconds: f64) -> u64 {
        (seconds * self.0 as f64).round().max(0.0) as u64
    }

    /// Wall-clock length of `frames` sample frames.
    pub fn duration_of(self, frames: u64) -> Duration {
        Duration::from_nanos(frames_to_nanos(frames, self.0))
    }

    /// Number of whole MP3 frames covering `seconds` (at least one).
    pub fn mp3_frames_in(self, seconds: f64) -> usize {
        (self.frames_in(seconds).div_ceil(MP3_FRAME_SAMPLES)).max(1) as usize
    }
}

impl fmt::Display for SampleRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz", self.0)
    }
}

/// A position on the station's media timeline: sample frames since the
/// stream started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MediaTime(pub u64);

impl MediaTime {
    pub fn seconds(self, rate: SampleRate) -> f64 {
        self.0 as f64 / rate.0 as f64
    }
}

impl std::ops::Add<u64> for MediaTime {
    type Output = MediaTime;
    fn add(self, frames: u64) -> MediaTime {
        MediaTime(self.0 + frames)
    }
}

/// Exact integer conversion without overflow for any realistic stream length
/// (u128 intermediate), so pacing deadlines never accumulate rounding error.
fn frames_to_nanos(frames: u64, rate: u32) -> u64 {
    (frames as u128 * 1_000_000_000u128 / rate as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_exact_over_long_runs() {
        let rate = SampleRate::CD;
        // 24 hours of MP3 frames: the deadline of frame k is computed from k,
        // never by adding per-frame durations, so it stays exact.
        let frames = 24 * 3600 * 44_100u64;
        assert_eq!(rate.duration_of(frames), Duration::from_secs(24 * 3600));
        assert_eq!(rate.duration_of(1152).as_nanos(), 26_122_448);
    }

    #[test]
    fn mp3_frames_round_up() {
        assert_eq!(SampleRate::CD.mp3_frames_in(1.0), 39);
        assert_eq!(SampleRate::CD.mp3_frames_in(0.0), 1);
    }
}
