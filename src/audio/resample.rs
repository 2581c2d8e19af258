//! Sample-rate conversion to the station rate with rubato's FFT resampler
//! (fixed input chunks). Output is trimmed of the resampler's delay so a
//! track's first sample stays its first sample.

use rubato::{FftFixedIn, Resampler as _};

use super::AudioError;
use crate::units::SampleRate;

/// Input frames per resampler call.
const CHUNK: usize = 1024;

pub struct Resampler {
    inner: FftFixedIn<f32>,
    /// Planar input waiting for a full chunk.
    input: [Vec<f32>; 2],
    /// Output frames still to discard (the resampler's delay).
    skip: usize,
    ratio: f64,
    frames_in: u64,
    frames_out: u64,
}

impl Resampler {
    pub fn new(from: SampleRate, to: SampleRate) -> Result<Resampler, AudioError> {
        let inner = FftFixedIn::new(from.0 as usize, to.0 as usize, CHUNK, 2, 2)
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        let skip = inner.output_delay();
        Ok(Resampler {
            inner,
            input: [Vec::with_capacity(CHUNK * 2), Vec::with_capacity(CHUNK * 2)],
            skip,
            ratio: to.0 as f64 / from.0 as f64,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Feeds interleaved stereo; appends whatever output is ready to `out`.
    pub fn push(&mut self, interleaved: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        for f in interleaved.chunks_exact(2) {
            self.input[0].push(f[0]);
            self.input[1].push(f[1]);
        }
        self.frames_in += interleaved.len() as u64 / 2;
        // Whole chunks by offset, then one drain: large pushes stay linear.
        let mut used = 0;
        while self.input[0].len() - used >= CHUNK {
            let chunk = [&self.input[0][used..used + CHUNK], &self.input[1][used..used + CHUNK]];
            let res = self.inner.process(&chunk, None).map_err(|e| AudioError::Resample(e.to_string()))?;
            self.emit(&res, out);
            used += CHUNK;
        }
        self.input[0].drain(..used);
        self.input[1].drain(..used);
        Ok(())
    }

    /// Flushes the tail: the remaining input and the resampler's delay line,
    /// so the output length matches the input length times the ratio.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let expected = (self.frames_in as f64 * self.ratio).round() as u64;
        if !self.input[0].is_empty() {
            let rest = [&self.input[0][..], &self.input[1][..]];
            let res = self.inner.process_partial(Some(&rest), None).map_err(|e| AudioError::Resample(e.to_string()))?;
            self.emit(&res, out);
        }
        self.input[0].clear();
        self.input[1].clear();
        while self.frames_out < expected {
            let res = self
                .inner
                .process_partial::<&[f32]>(None, None)
                .map_err(|e| AudioError::Resample(e.to_string()))?;
            if res[0].is_empty() {
                break;
            }
            self.emit(&res, out);
        }
        // Drop anything beyond the expected length (zero padding from the flush).
        let excess = self.frames_out.saturating_sub(expected) as usize;
        out.truncate(out.len() - excess.min(out.len() / 2) * 2);
        self.frames_out -= excess as u64;
        Ok(())
    }

    fn emit(&mut self, planar: &[Vec<f32>], out: &mut Vec<f32>) {
        let n = planar[0].len();
        let start = self.skip.min(n);
        self.skip -= start;
        out.reserve((n - start) * 2);
        for (l, r) in planar[0][start..n].iter().zip(&planar[1][start..n]) {
            out.push(*l);
            out.push(*r);
        }
        self.frames_out += (n - start) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_of_whole_chunks_flushes_cleanly() {
        let mut r = Resampler::new(SampleRate(44_100), SampleRate(22_050)).unwrap();
        let mut out = Vec::new();
        r.push(&vec![0.1; CHUNK * 2 * 4], &mut out).unwrap();
        r.finish(&mut out).unwrap();
        assert_eq!(out.len() / 2, CHUNK * 2);
    }

    #[test]
    fn resampled_tone_keeps_length_and_frequency() {
        let from = SampleRate(48_000);
        let to = SampleRate(44_100);
        let mut r = Resampler::new(from, to).unwrap();
        let n = 48_000;
        let input: Vec<f32> = (0..n)
            .flat_map(|i| {
                let v = (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 48_000.0).sin() * 0.5;
                [v, v]
            })
            .collect();
        let mut out = Vec::new();
        for block in input.chunks(2 * 777) {
            r.push(block, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        assert_eq!(out.len() / 2, 44_100);
        // Zero crossings of a 1 kHz tone over the middle half second.
        let left: Vec<f32> = out.iter().step_by(2).copied().collect();
        let mid = &left[11_025..33_075];
        let crossings = mid.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        assert!((499..=501).contains(&crossings), "{crossings}");
        // Delay trimmed: the tone starts at once (second 1 ms non-silent).
        assert!(left[44..88].iter().any(|v| v.abs() > 0.1));
    }
}
