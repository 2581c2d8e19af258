//! One short-time Fourier pass over the mono signal at the analysis rate,
//! producing every frame-level feature the other analyses need: onset
//! strength (full band and per band), frame energies, the fine attack
//! envelope, and the pitch histogram for the key ([`super::pitch`]).
//!
//! Onset strength is a log-compressed, band-wise spectral flux
//! (Böck & Widmer's "log filtered spectral flux"): magnitudes are summed
//! into third-octave bands, compressed with ln(1 + λ·x), and the positive
//! frame-to-frame differences are summed over bands. λ scales inversely
//! with the track's level, so the onsets of a track mastered 12 dB quieter
//! are the same; the band magnitudes are therefore kept (16-bit logs) and
//! the onsets computed once the whole track has been seen. Frames are
//! centred (frame n is centred on sample n·HOP).

use realfft::RealFftPlanner;

use super::pitch::{self, PitchHistogram};

/// Analysis sample rate.
pub const RATE: u32 = 22_050;
pub const N_FFT: usize = 2048;
pub const HOP: usize = 256;
/// Feature frames per second.
pub const FPS: f64 = RATE as f64 / HOP as f64;

/// Compression of the band magnitudes, ln(1 + λ·x), with λ this over the
/// track's level (`Features::level`).
const LAMBDA: f32 = 70.0;
/// Low band for kick/bass onsets and bass energy.
const LOW_HZ: f32 = 150.0;
/// The mid band of the band-wise onsets.
const MID_HZ: (f32, f32) = (200.0, 3_000.0);
/// The high band: above this.
const HIGH_HZ: f32 = 5_000.0;
/// The chroma (the downbeats' harmonic cue, `super::downbeats`): its own
/// STFT with a window twice the onsets' (4096 samples, 0.19 s; bins 5.4 Hz
/// apart, so the semitones are told apart from 110 Hz up, where chord
/// roots and bass lines are), every `CHROMA_HOP` samples, power summed by
/// pitch class over `CHROMA_HZ`. It replaced the harmonic part (Fitzgerald's
/// median filtering) of a 2048-sample window's tonal peaks from 60 Hz:
/// `nonstop eval --cuts` downbeat F on evaldev 0.605 → 0.662 as the clips
/// are, 0.620 → 0.628 over seven starts; over evaldev and eight copies of
/// it (bass +6 dB, low-passed, compressed, 12 dB quieter; MP3, AAC,
/// Vorbis, Opus) 0.601 → 0.649 and 0.615 → 0.626, the Vorbis copies
/// 0.546 → 0.671: the bar no longer moves with the codec. (Offline, over
/// the first six of those sets: from 60 Hz 0.561, from 110 Hz 0.631; with
/// a 2048-sample window 0.566.)
pub const CHROMA_N: usize = 4096;
pub const CHROMA_HOP: usize = 512;
/// Chroma frames per second.
pub const CHROMA_FPS: f64 = RATE as f64 / CHROMA_HOP as f64;
const CHROMA_HZ: (f32, f32) = (110.0, 2_000.0);

#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Full-band onset strength per frame.
    pub onset: Vec<f32>,
    /// Onset strength below `LOW_HZ` (kick drum, bass notes).
    pub low_onset: Vec<f32>,
    /// Onset strength between `MID_HZ` (snare, claps, chords, voice).
    pub mid_onset: Vec<f32>,
    /// Onset strength above `HIGH_HZ` (hi-hats, cymbals, the snare's noise).
    pub high_onset: Vec<f32>,
    /// Frame energy (mean square of the windowed frame).
    pub energy: Vec<f32>,
    /// Energy below `LOW_HZ`.
    pub low_energy: Vec<f32>,
    /// Energy above 2 kHz share of the total (brightness), per frame.
    pub brightness: Vec<f32>,
    /// The track's tonal peaks by pitch class, 10 cents per bin (see
    /// `pitch`): for the key.
    pub pitch: Vec<f64>,
    /// Log energy per `FINE_HOP` samples (0.5 ms), never more than 8 dB
    /// under the previous 10 ms: where exactly a beat's attack is. Stored
    /// as ln energy × `FINE_SCALE` in 16 bits (steps of 0.004 dB): the
    /// largest feature, at 2,000 values a second.
    pub fine: Vec<i16>,
    /// Chroma per `CHROMA_HOP` frame (frame n centred on sample
    /// n·`CHROMA_HOP`): spectral power from `CHROMA_HZ` folded onto the 12
    /// pitch classes (C = 0): where the harmony changes.
    pub chroma: Vec<[f32; 12]>,
    /// The track's level: the 90th percentile over frames of the summed
    /// band magnitudes. Log compressions scale with it, so the features
    /// of a track do not depend on how loud it was mastered.
    pub level: f32,
}

impl Features {
    pub fn frames(&self) -> usize {
        self.onset.len()
    }

    pub fn time(frame: usize) -> f64 {
        frame as f64 / FPS
    }

    pub fn frame_at(t: f64) -> usize {
        (t * FPS).round().max(0.0) as usize
    }

    /// The chroma frame centred nearest to `t` seconds.
    pub fn chroma_frame_at(t: f64) -> usize {
        (t * CHROMA_FPS).round().max(0.0) as usize
    }

    /// A beat's accent in one band's onsets (`onset`, `low_onset`, ...):
    /// the strongest onset within two frames of the beat. Beats are attack
    /// times; the onset function peaks a little before them.
    pub fn accent(band: &[f32], beat: f64) -> f64 {
        let c = Self::frame_at((beat - super::beats::ONSET_LAG_S).max(0.0));
        (c.saturating_sub(2)..(c + 3).min(band.len())).map(|i| band[i] as f64).fold(0.0, f64::max)
    }

    /// The accent (`accent`) of each of `beats` in `band`.
    pub fn accents(band: &[f32], beats: &[f64]) -> Vec<f64> {
        beats.iter().map(|&t| Self::accent(band, t)).collect()
    }

    /// The mean accent (`accent`) of `beats` in `band` (0 for none).
    pub fn mean_accent(band: &[f32], beats: &[f64]) -> f64 {
        beats.iter().map(|&t| Self::accent(band, t)).sum::<f64>() / beats.len().max(1) as f64
    }

    /// The mean of the per-frame feature `v` from `from` to `to` seconds
    /// (0 over an empty span).
    pub fn mean_over(v: &[f32], from: f64, to: f64) -> f64 {
        let (a, b) = (Self::frame_at(from).min(v.len()), Self::frame_at(to).min(v.len()));
        if b <= a {
            return 0.0;
        }
        v[a..b].iter().map(|x| *x as f64).sum::<f64>() / (b - a) as f64
    }
}

/// Which onset band a third-octave band adds to.
#[derive(Debug, Clone, Copy)]
enum BandKind {
    Low,
    Mid,
    High,
    Other,
}

/// `Features::level` is this quantile of the frames' summed band
/// magnitudes: the level of the track's louder passages.
const LEVEL_QUANTILE: f64 = 0.9;
/// The level below which a track counts as silence (summed magnitudes of
/// a full-scale sine are about 0.5): the compression stops scaling there.
const MIN_LEVEL: f32 = 1e-5;

/// Band edges in FFT bins: third-octave bands from 30 Hz to 10 kHz.
fn bands() -> Vec<(usize, usize)> {
    let bin_hz = RATE as f32 / N_FFT as f32;
    let mut edges = Vec::new();
    let mut f = 30.0f32;
    while f < 10_000.0 {
        edges.push(((f / bin_hz).round() as usize).max(1));
        f *= 2f32.powf(1.0 / 3.0);
    }
    edges.dedup();
    edges.windows(2).map(|w| (w[0], w[1].max(w[0] + 1))).collect()
}

/// Resolution of the fine energy envelope, samples at `RATE` (0.5 ms).
pub const FINE_HOP: usize = 11;
/// `Features::fine` holds ln energy times this.
pub const FINE_SCALE: f32 = 1000.0;
/// One-pole smoothing of the fine envelope's floor: about 10 ms.
const FINE_SLOW_ALPHA: f32 = 0.05;

/// Computes all frame features of `mono` (at `RATE`).
pub fn compute(mono: &[f32]) -> Features {
    let mut x = Extractor::new();
    x.push(mono);
    x.finish()
}

/// The sample at absolute index `j` of `buf` (which starts at `buf_start`),
/// 0 outside it (before the track, past its end, or no longer kept).
fn sample_at(buf: &[f32], buf_start: usize, j: isize) -> f32 {
    let i = j - buf_start as isize;
    if i >= 0 && (i as usize) < buf.len() {
        buf[i as usize]
    } else {
        0.0
    }
}

/// A Hann-windowed real FFT and its buffers.
pub(crate) struct Fft {
    plan: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
    window: Vec<f32>,
    input: Vec<f32>,
    spectrum: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
}

impl Fft {
    pub(crate) fn new(n: usize) -> Fft {
        let plan = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        Fft {
            window: (0..n).map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n as f32).cos()).collect(),
            input: plan.make_input_vec(),
            spectrum: plan.make_output_vec(),
            scratch: plan.make_scratch_vec(),
            plan,
        }
    }

    /// The spectrum of `sample(i)`, i in 0..n, windowed.
    pub(crate) fn run(&mut self, mut sample: impl FnMut(usize) -> f32) -> &[realfft::num_complex::Complex<f32>] {
        for (i, x) in self.input.iter_mut().enumerate() {
            *x = sample(i) * self.window[i];
        }
        self.plan.process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch).expect("fft sizes match");
        &self.spectrum
    }
}

/// The feature pass as a stream: mono samples at `RATE` in, any block
/// size, features out at the end. Only the last FFT window of audio is kept,
/// so memory grows with the features (about 12.5 KB per second of audio:
/// 4 KB of fine envelope, 4 KB of band magnitudes, 2.5 KB of frame
/// features, 2 KB of chroma), not with the audio (88 KB per second). Sized up
/// front where the length is known (`reserve_seconds`).
pub struct Extractor {
    /// The onsets' and energies' STFT (`N_FFT`).
    fft: Fft,
    bands: Vec<(usize, usize)>,
    low_bin: usize,
    bright_bin: usize,
    /// The chroma's STFT (`CHROMA_N`), and the pitch class of each of its
    /// bins in `CHROMA_HZ`, from `chroma_from`.
    chroma_fft: Fft,
    chroma_bins: Vec<u8>,
    chroma_from: usize,
    /// The next chroma frame to compute.
    next_chroma: usize,
    /// Samples from absolute index `buf_start` on.
    buf: Vec<f32>,
    buf_start: usize,
    /// Samples pushed so far.
    total: usize,
    /// The next frame to compute.
    next_frame: usize,
    mag: Vec<f32>,
    /// Which of the onset bands each band counts in.
    band_kinds: Vec<BandKind>,
    /// ln of each band's magnitude per frame (× `FINE_SCALE`), band by
    /// band within a frame: the onsets are computed from them at the end,
    /// once the track's level is known.
    band_ln: Vec<i16>,
    /// Sum of squares of the fine envelope's current chunk, and its length.
    fine_acc: (f32, usize),
    /// Energy averaged over the last ~10 ms (one-pole), per fine frame.
    fine_slow: f32,
    pitch: PitchHistogram,
    /// The next pitch frame to compute.
    next_pitch: usize,
    f: Features,
}

impl Default for Extractor {
    fn default() -> Self {
        Extractor::new()
    }
}

impl Extractor {
    pub fn new() -> Extractor {
        let bands = bands();
        let bin_hz = RATE as f32 / N_FFT as f32;
        let low_bin = (LOW_HZ / bin_hz).ceil() as usize;
        let chroma_hz = RATE as f32 / CHROMA_N as f32;
        let chroma_from = (CHROMA_HZ.0 / chroma_hz).ceil() as usize;
        let chroma_bins: Vec<u8> = (chroma_from..(CHROMA_HZ.1 / chroma_hz).ceil() as usize)
            .map(|b| ((12.0 * (b as f32 * chroma_hz / 440.0).log2()).round() as i32 + 9).rem_euclid(12) as u8)
            .collect();
        Extractor {
            chroma_fft: Fft::new(CHROMA_N),
            chroma_bins,
            chroma_from,
            next_chroma: 0,
            fft: Fft::new(N_FFT),
            low_bin,
            bright_bin: (2_000.0 / bin_hz) as usize,
            band_kinds: bands
                .iter()
                .map(|&(lo, hi)| {
                    let centre = 0.5 * (lo + hi) as f32 * bin_hz;
                    if hi <= low_bin + 1 {
                        BandKind::Low
                    } else if (MID_HZ.0..MID_HZ.1).contains(&centre) {
                        BandKind::Mid
                    } else if centre >= HIGH_HZ {
                        BandKind::High
                    } else {
                        BandKind::Other
                    }
                })
                .collect(),
            band_ln: Vec::new(),
            bands,
            buf: Vec::with_capacity(N_FFT * 4),
            buf_start: 0,
            total: 0,
            next_frame: 0,
            mag: vec![0.0; N_FFT / 2 + 1],
            fine_acc: (0.0, 0),
            fine_slow: 0.0,
            pitch: PitchHistogram::new(),
            next_pitch: 0,
            f: Features::default(),
        }
    }

    /// Makes room for `seconds` of audio up front: every feature grows by
    /// a fixed amount per second, and grown by doubling they would hold up
    /// to twice what they need.
    pub fn reserve_seconds(&mut self, seconds: f64) {
        let samples = (seconds.max(0.0) * RATE as f64) as usize;
        let (frames, fine) = (samples / HOP + 2, samples / FINE_HOP + 2);
        let f = &mut self.f;
        for v in [&mut f.onset, &mut f.low_onset, &mut f.mid_onset, &mut f.high_onset, &mut f.energy, &mut f.low_energy, &mut f.brightness] {
            v.reserve_exact(frames.saturating_sub(v.len()));
        }
        let chroma_frames = samples / CHROMA_HOP + 2;
        f.chroma.reserve_exact(chroma_frames.saturating_sub(f.chroma.len()));
        let bands = frames * self.bands.len();
        self.band_ln.reserve_exact(bands.saturating_sub(self.band_ln.len()));
        f.fine.reserve_exact(fine.saturating_sub(f.fine.len()));
    }

    /// Samples pushed so far.
    pub fn samples(&self) -> usize {
        self.total
    }

    pub fn push(&mut self, mono: &[f32]) {
        for &v in mono {
            self.fine_acc.0 += v * v;
            self.fine_acc.1 += 1;
            if self.fine_acc.1 == FINE_HOP {
                self.push_fine();
            }
        }
        self.buf.extend_from_slice(mono);
        self.total += mono.len();
        // A frame is complete once its window's last sample has arrived.
        while self.next_frame * HOP + N_FFT / 2 <= self.total {
            self.frame();
        }
        while self.next_pitch * pitch::HOP + pitch::FRAME / 2 <= self.total {
            self.pitch_frame();
        }
        while self.next_chroma * CHROMA_HOP + CHROMA_N / 2 <= self.total {
            self.chroma_frame();
        }
        // Keep only what later frames still need.
        let keep_from = (self.next_frame * HOP)
            .saturating_sub(N_FFT / 2)
            .min((self.next_pitch * pitch::HOP).saturating_sub(pitch::FRAME / 2))
            .min((self.next_chroma * CHROMA_HOP).saturating_sub(CHROMA_N / 2));
        if keep_from > self.buf_start + N_FFT {
            self.buf.drain(..keep_from - self.buf_start);
            self.buf_start = keep_from;
        }
    }

    /// Adds chroma frame `next_chroma`, centred on sample
    /// `next_chroma * CHROMA_HOP`: power by pitch class.
    fn chroma_frame(&mut self) {
        let start = (self.next_chroma * CHROMA_HOP) as isize - (CHROMA_N / 2) as isize;
        self.next_chroma += 1;
        let (buf, buf_start) = (&self.buf, self.buf_start);
        let spectrum = self.chroma_fft.run(|i| sample_at(buf, buf_start, start + i as isize));
        let mut chroma = [0.0f32; 12];
        for (c, &pc) in spectrum[self.chroma_from..].iter().zip(&self.chroma_bins) {
            chroma[pc as usize] += c.norm_sqr();
        }
        self.f.chroma.push(chroma);
    }

    fn push_fine(&mut self) {
        let (sum, n) = self.fine_acc;
        let e = sum / n as f32;
        // Troughs of a sustained sound (a waveform's zero crossings, two
        // chord tones beating) are floored 8 dB under the last 10 ms's
        // level, so they do not look like the start of an attack.
        let floored = e.max(self.fine_slow * 0.16);
        let ln = (1e-9 + floored).ln() * FINE_SCALE;
        self.f.fine.push(ln.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16);
        self.fine_slow += FINE_SLOW_ALPHA * (e - self.fine_slow);
        self.fine_acc = (0.0, 0);
    }

    /// The remaining frames (their windows run past the end, zero-padded).
    pub fn finish(mut self) -> Features {
        if self.fine_acc.1 > 0 {
            self.push_fine();
        }
        let frames = self.total / HOP + 1;
        while self.next_frame < frames {
            self.frame();
        }
        while self.next_chroma * CHROMA_HOP <= self.total {
            self.chroma_frame();
        }
        while self.next_pitch * pitch::HOP < self.total {
            self.pitch_frame();
        }
        self.f.pitch = self.pitch.histogram.to_vec();
        self.onsets();
        self.f
    }

    /// The onset strengths from the stored band magnitudes, compressed
    /// relative to the track's level.
    fn onsets(&mut self) {
        let n = self.bands.len();
        let magnitude = |q: i16| (q as f32 / FINE_SCALE).exp();
        let mut totals: Vec<f32> = self.band_ln.chunks_exact(n).map(|b| b.iter().map(|q| magnitude(*q)).sum()).collect();
        let level = if totals.is_empty() {
            0.0
        } else {
            let k = ((totals.len() as f64 * LEVEL_QUANTILE) as usize).min(totals.len() - 1);
            *totals.select_nth_unstable_by(k, f32::total_cmp).1
        };
        let f = &mut self.f;
        f.level = level;
        let lambda = LAMBDA / level.max(MIN_LEVEL);
        let mut prev = vec![0.0f32; n];
        for frame in self.band_ln.chunks_exact(n) {
            let (mut flux, mut low, mut mid, mut high) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
            for ((q, p), kind) in frame.iter().zip(prev.iter_mut()).zip(&self.band_kinds) {
                let c = (1.0 + lambda * magnitude(*q)).ln();
                let d = (c - *p).max(0.0);
                *p = c;
                flux += d;
                match kind {
                    BandKind::Low => low += d,
                    BandKind::Mid => mid += d,
                    BandKind::High => high += d,
                    BandKind::Other => {}
                }
            }
            f.onset.push(flux);
            f.low_onset.push(low);
            f.mid_onset.push(mid);
            f.high_onset.push(high);
        }
        self.band_ln = Vec::new();
    }

    /// Adds pitch frame `next_pitch`, centred on sample `next_pitch * pitch::HOP`.
    fn pitch_frame(&mut self) {
        let start = (self.next_pitch * pitch::HOP) as isize - (pitch::FRAME / 2) as isize;
        self.next_pitch += 1;
        let (buf, buf_start) = (&self.buf, self.buf_start);
        self.pitch.add_frame(|i| sample_at(buf, buf_start, start + i as isize));
    }

    /// Computes frame `next_frame`, centred on sample `next_frame * HOP`.
    fn frame(&mut self) {
        let n = self.next_frame;
        self.next_frame += 1;
        let start = (n * HOP) as isize - (N_FFT / 2) as isize;
        let mut sum_sq = 0.0f32;
        let (buf, buf_start) = (&self.buf, self.buf_start);
        let spectrum = self.fft.run(|i| {
            let v = sample_at(buf, buf_start, start + i as isize);
            sum_sq += v * v;
            v
        });
        let norm = 2.0 / N_FFT as f32;
        let (low_bin, bright_bin) = (self.low_bin, self.bright_bin);
        let mag = &mut self.mag;
        let mut total = 0.0f32;
        let mut low = 0.0f32;
        let mut bright = 0.0f32;
        for (b, c) in spectrum.iter().enumerate() {
            let m = c.norm() * norm;
            mag[b] = m;
            let p = m * m;
            total += p;
            if b < low_bin {
                low += p;
            } else if b >= bright_bin {
                bright += p;
            }
        }
        for &(lo, hi) in &self.bands {
            let s: f32 = mag[lo..hi.min(mag.len())].iter().sum();
            // Floored far under any level that counts (digital silence).
            let ln = (MIN_LEVEL * 1e-6 + s).ln() * FINE_SCALE;
            self.band_ln.push(ln.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16);
        }
        let f = &mut self.f;
        f.energy.push(sum_sq / N_FFT as f32);
        f.low_energy.push(low);
        f.brightness.push(if total > 1e-12 { bright / total } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_make_onset_peaks_at_their_frames() {
        let mut x = vec![0.0f32; RATE as usize * 3];
        for k in 0..6 {
            let at = (0.25 + 0.5 * k as f64) * RATE as f64;
            for i in 0..200 {
                x[at as usize + i] = (1.0 - i as f32 / 200.0) * if i % 2 == 0 { 0.8 } else { -0.8 };
            }
        }
        let f = compute(&x);
        for k in 0..6 {
            let expect = Features::frame_at(0.25 + 0.5 * k as f64);
            let window = expect.saturating_sub(6)..expect + 6;
            let peak = window.clone().max_by(|&a, &b| f.onset[a].total_cmp(&f.onset[b])).unwrap();
            assert!(peak.abs_diff(expect) <= 4, "click {k}: peak at {peak}, expected {expect}");
        }
    }

    #[test]
    fn streaming_in_odd_blocks_matches_one_pass() {
        let x: Vec<f32> = (0..RATE as usize * 2).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let whole = compute(&x);
        let mut e = Extractor::new();
        for block in x.chunks(777) {
            e.push(block);
        }
        let parts = e.finish();
        assert_eq!(whole.onset, parts.onset);
        assert_eq!(whole.pitch, parts.pitch);
        assert_eq!(whole.fine, parts.fine);
        assert_eq!(whole.chroma, parts.chroma);
        assert_eq!(whole.frames(), x.len() / HOP + 1);
    }

    #[test]
    fn a_kick_drum_under_a_held_chord_is_damped_in_the_chroma() {
        // A held C major chord, and a kick (a 150 → 45 Hz sweep, 120 ms)
        // on every beat at 120 BPM.
        let rate = RATE as f32;
        let mut x: Vec<f32> = (0..RATE as usize * 4)
            .map(|i| [261.63f32, 329.63, 392.0].iter().map(|f| 0.1 * (std::f32::consts::TAU * f * i as f32 / rate).sin()).sum())
            .collect();
        for beat in 0..8 {
            let (mut phase, start) = (0.0f32, beat * RATE as usize / 2);
            for i in 0..(0.12 * rate) as usize {
                let t = i as f32 / rate;
                phase += std::f32::consts::TAU * (45.0 + 105.0 * (-t / 0.03).exp()) / rate;
                x[start + i] += 0.9 * (-t / 0.05).exp() * phase.sin();
            }
        }
        let f = compute(&x);
        let unit = |c: &[f32; 12]| {
            let n = c.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            c.map(|v| v / n)
        };
        // Between the kicks (a quarter beat after one) against on them: the
        // kick's body is under the chroma's range (`CHROMA_HZ`).
        let between = unit(&f.chroma[Features::chroma_frame_at(1.125)]);
        for beat in 1..7 {
            let on = unit(&f.chroma[Features::chroma_frame_at(beat as f64 * 0.5 + 0.01)]);
            let distance = 1.0 - on.iter().zip(&between).map(|(a, b)| a * b).sum::<f32>();
            assert!(distance < 0.45, "beat {beat}: chroma {distance:.3} from the chord's ({on:?} against {between:?})");
        }
    }

    #[test]
    fn bass_notes_a_semitone_apart_have_their_own_pitch_classes() {
        // B2 (123.5 Hz) for a second, then C3 (130.8 Hz). A 2048-sample
        // window's bins (10.8 Hz apart) fall at 118.4 and 129.2 Hz, A♯ and
        // C, so B2 has no bin of its own there; the chroma's (5.4 Hz) have.
        let rate = RATE as f32;
        let x: Vec<f32> = (0..RATE as usize * 2)
            .map(|i| {
                let hz = if i < RATE as usize { 123.47 } else { 130.81 };
                0.5 * (std::f32::consts::TAU * hz * i as f32 / rate).sin()
            })
            .collect();
        let f = compute(&x);
        let strongest = |t: f64| {
            let c = &f.chroma[Features::chroma_frame_at(t)];
            (0..12).max_by(|&a, &b| c[a].total_cmp(&c[b])).unwrap()
        };
        // C = 0, B = 11.
        assert_eq!((strongest(0.5), strongest(1.5)), (11, 0));
    }
}
