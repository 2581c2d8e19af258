//! Small DSP pieces of a transition: a Linkwitz–Riley band split for the
//! bass swap, per-track gain from loudness, and a look-ahead peak limiter.

/// A 2nd-order Butterworth low-pass (RBJ biquad), one channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Biquad {
    b0: f32,
    b1: f32,
    b2: f32,
    a1: f32,
    a2: f32,
    z1: f32,
    z2: f32,
}

impl Biquad {
    pub(crate) fn lowpass(rate: f32, hz: f32) -> Biquad {
        let w = std::f32::consts::TAU * hz / rate;
        let (s, c) = w.sin_cos();
        let alpha = s / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let a0 = 1.0 + alpha;
        Biquad {
            b0: (1.0 - c) / 2.0 / a0,
            b1: (1.0 - c) / a0,
            b2: (1.0 - c) / 2.0 / a0,
            a1: -2.0 * c / a0,
            a2: (1.0 - alpha) / a0,
            z1: 0.0,
            z2: 0.0,
        }
    }

    pub(crate) fn run(&mut self, x: f32) -> f32 {
        let y = self.b0 * x + self.z1;
        self.z1 = self.b1 * x - self.a1 * y + self.z2;
        self.z2 = self.b2 * x - self.a2 * y;
        y
    }
}

/// A band split of one channel at `hz`, sample by sample: the low band is
/// a 4th-order Linkwitz–Riley low-pass (two Butterworth stages), the high
/// band the remainder, so low + high is exactly the input.
#[derive(Debug, Clone, Copy)]
pub struct BandSplit {
    stages: [Biquad; 2],
}

impl BandSplit {
    pub fn new(rate: u32, hz: f32) -> BandSplit {
        BandSplit { stages: [Biquad::lowpass(rate as f32, hz); 2] }
    }

    /// (low, high) of the next sample.
    pub fn run(&mut self, x: f32) -> (f32, f32) {
        let first = self.stages[0].run(x);
        let low = self.stages[1].run(first);
        (low, x - low)
    }
}

/// Linear gain that brings `lufs` to `target`, at most `max_db` up or down.
pub fn loudness_gain(lufs: f64, target: f64, max_db: f64) -> f32 {
    let db = (target - lufs).clamp(-max_db, max_db);
    10f64.powf(db / 20.0) as f32
}

/// Taps each side of the 4× oversampling interpolator.
const TP_TAPS: usize = 8;

/// Per-frame true peak of interleaved stereo (both channels): the largest
/// magnitude among the samples and the three points between each sample
/// and the next, interpolated with a Hann-windowed sinc (4× oversampling,
/// as BS.1770 true-peak meters do).
pub fn true_peaks(stereo: &[f32]) -> Vec<f32> {
    let kernels = tp_kernels();
    (0..stereo.len() / 2).map(|i| true_peak_at(stereo, i, &kernels)).collect()
}

/// True peak of frame `i` of interleaved stereo (see `true_peaks`).
fn true_peak_at(stereo: &[f32], i: usize, kernels: &[[f32; 2 * TP_TAPS]; 3]) -> f32 {
    let n = stereo.len() / 2;
    let mut peak = stereo[2 * i].abs().max(stereo[2 * i + 1].abs());
    for c in 0..2 {
        for kern in kernels {
            let mut acc = 0.0f32;
            for (k, w) in kern.iter().enumerate() {
                let j = i as isize + k as isize - (TP_TAPS as isize - 1);
                if j >= 0 && (j as usize) < n {
                    acc += w * stereo[j as usize * 2 + c];
                }
            }
            peak = peak.max(acc.abs());
        }
    }
    peak
}

fn tp_kernels() -> [[f32; 2 * TP_TAPS]; 3] {
    [0.25f32, 0.5, 0.75].map(|frac| {
        std::array::from_fn(|k| {
            // Tap k sits at offset (k - TP_TAPS + 1) from frame i.
            let x = k as f32 - (TP_TAPS as f32 - 1.0) - frac;
            let sinc = if x.abs() < 1e-6 { 1.0 } else { (std::f32::consts::PI * x).sin() / (std::f32::consts::PI * x) };
            let w = 0.5 + 0.5 * (std::f32::consts::PI * x / TP_TAPS as f32).cos();
            sinc * w
        })
    })
}

/// Look-ahead true-peak limiter over a buffer of interleaved stereo, linked
/// across channels: nothing leaves above `ceiling` (linear), between
/// samples included. The gain drops ahead of each peak (within `lookahead`
/// frames), is smoothed by a moving average over the look-ahead, and
/// recovers with `release` frames' time constant. Runs in one pass with
/// state the size of the look-ahead: frame i is scaled when the peaks up to
/// i + 2·lookahead have been seen (they are read before anything near them
/// is scaled).
pub fn limit(stereo: &mut [f32], ceiling: f32, lookahead: usize, release: usize) {
    let n = stereo.len() / 2;
    if n == 0 {
        return;
    }
    let kernels = tp_kernels();
    let need = |stereo: &[f32], j: usize| {
        let p = true_peak_at(stereo, j, &kernels);
        if p > ceiling {
            ceiling / p
        } else {
            1.0
        }
    };
    let alpha = 1.0 - (-1.0 / release.max(1) as f32).exp();
    let w = lookahead + 1;
    // Needed gains of frames not yet past the window: (frame, need), with
    // a monotonic deque giving the minimum over [i, i + lookahead].
    let mut window: std::collections::VecDeque<(usize, f32)> = Default::default();
    // The release-smoothed gain of the last w frames (ring), and their sum.
    let mut smoothed = vec![1.0f32; w];
    let mut sum = w as f64;
    let mut g = 1.0f32;
    let mut next_need = 0usize;
    // Gains are applied `delay` frames after they are computed, so the
    // true-peak interpolator (which reads TP_TAPS frames either side)
    // never reads a frame that was already scaled.
    let delay = TP_TAPS;
    let mut pending: std::collections::VecDeque<f32> = Default::default();
    for i in 0..n + delay {
        // Bring the window up to frame i + lookahead.
        while next_need <= (i + lookahead).min(n - 1) && next_need < n {
            let v = need(stereo, next_need);
            while window.back().is_some_and(|&(_, b)| b >= v) {
                window.pop_back();
            }
            window.push_back((next_need, v));
            next_need += 1;
        }
        if i < n {
            while window.front().is_some_and(|&(k, _)| k < i) {
                window.pop_front();
            }
            let ahead = window.front().map_or(1.0, |&(_, v)| v);
            // Instant attack, exponential release.
            g = if ahead < g { ahead } else { g + (ahead - g) * alpha };
            sum += g as f64 - smoothed[i % w] as f64;
            smoothed[i % w] = g;
            // Moving average over the look-ahead (unity before the start):
            // every value averaged at a peak is at most the gain that peak
            // needs; the minimum with the unsmoothed gain covers the start.
            pending.push_back(((sum / w as f64) as f32).min(g));
        }
        if i >= delay {
            let k = i - delay;
            let gain = pending.pop_front().expect("one per frame");
            stereo[2 * k] *= gain;
            stereo[2 * k + 1] *= gain;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_sum_to_the_input() {
        let x: Vec<f32> = (0..4410).map(|i| ((i as f32) * 0.37).sin() * 0.5 + ((i as f32) * 0.01).sin() * 0.5).collect();
        let mut split = BandSplit::new(44_100, 200.0);
        for v in &x {
            let (l, h) = split.run(*v);
            assert!((l + h - v).abs() < 1e-6);
        }
    }

    /// The low band of interleaved stereo (left channel split, both out).
    fn low_band(stereo: &[f32]) -> Vec<f32> {
        let mut split = [BandSplit::new(44_100, 200.0); 2];
        stereo.iter().enumerate().map(|(i, v)| split[i % 2].run(*v).0).collect()
    }

    #[test]
    fn low_band_keeps_bass_and_drops_treble() {
        let tone = |hz: f32| -> Vec<f32> {
            (0..44_100).flat_map(|i| {
                let v = (std::f32::consts::TAU * hz * i as f32 / 44_100.0).sin();
                [v, v]
            }).collect()
        };
        let rms = |v: &[f32]| (v[20_000..].iter().map(|x| x * x).sum::<f32>() / (v.len() - 20_000) as f32).sqrt();
        let l = low_band(&tone(50.0));
        assert!(rms(&l) > 0.65, "{}", rms(&l));
        let l = low_band(&tone(2000.0));
        assert!(rms(&l) < 0.01, "{}", rms(&l));
    }

    #[test]
    fn true_peak_sees_between_samples() {
        // A quarter-rate sine sampled at ±45°: samples at 0.707, peak 1.0.
        let x: Vec<f32> = (0..400).flat_map(|i| {
            let v = (std::f32::consts::FRAC_PI_2 * i as f32 + std::f32::consts::FRAC_PI_4).sin();
            [v, v]
        }).collect();
        let tp = true_peaks(&x);
        assert!(x.iter().all(|v| v.abs() < 0.71));
        assert!(tp[200] > 0.97, "{}", tp[200]);
    }

    #[test]
    fn limiter_holds_the_ceiling_and_leaves_quiet_audio_alone() {
        let mut x: Vec<f32> = (0..44_100).flat_map(|i| {
            let v = (i as f32 * 0.05).sin() * if (20_000..20_500).contains(&i) { 1.8 } else { 0.5 };
            [v, -v]
        }).collect();
        let quiet_before = x[2000];
        limit(&mut x, 0.8, 220, 4410);
        assert!(x.iter().all(|v| v.abs() <= 0.8 + 1e-6));
        assert_eq!(x[2000], quiet_before);
    }
}
