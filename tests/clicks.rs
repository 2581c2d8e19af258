//! Click tracks through a transition: pure clicks of different shapes, at
//! different tempos and file sample rates, analysed, planned and rendered
//! as the station would; then B's clicks are found in the rendered audio
//! and compared with A's. Beatmatching must put them on top of each other
//! to a millisecond, and the render's own measurement must agree.

use nonstop::analysis::analyze_pcm;
use nonstop::audio::Resampler;
use nonstop::transition::{plan, render, Mode, TransitionSettings};
use nonstop::units::SampleRate;

const RATE: SampleRate = SampleRate::CD;

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// A 12 ms decaying sine at the given frequency.
    Sine(f32),
    /// 8 ms of decaying noise.
    Noise,
    /// A kick: a sine sweeping down from 150 to 50 Hz, with a beater click.
    Kick,
    /// A metronome: `Sine` at the first frequency, the one of every four
    /// at the second.
    Accented(f32, f32),
}

#[derive(Clone, Copy, Debug)]
struct Clicks {
    bpm: f64,
    shape: Shape,
    /// The file's sample rate.
    rate: u32,
    /// The track's length.
    seconds: f64,
}

const SECONDS: f64 = 90.0;

impl Clicks {
    /// Clicks of `SECONDS`.
    const fn new(bpm: f64, shape: Shape, rate: u32) -> Clicks {
        Clicks { bpm, shape, rate, seconds: SECONDS }
    }
}
const LEAD_IN: f64 = 0.37;

/// The click times and the track as interleaved stereo at its own rate.
fn click_track(c: Clicks) -> (Vec<f64>, Vec<f32>) {
    let rate = c.rate as f64;
    let times: Vec<f64> = (0..).map(|k| LEAD_IN + k as f64 * 60.0 / c.bpm).take_while(|t| *t < c.seconds - 1.0).collect();
    let mut x = vec![0.0f32; (c.seconds * rate) as usize * 2];
    let mut seed = 12345u32;
    for (k, &t) in times.iter().enumerate() {
        // Sub-sample start: the click begins exactly at t.
        let s = (t * rate).ceil() as usize;
        let frac = (s as f64 - t * rate) as f32;
        let len = (0.012 * rate) as usize;
        for i in 0..len {
            let ti = (i as f32 + frac) / rate as f32;
            let v = match c.shape {
                Shape::Sine(hz) => (std::f32::consts::TAU * hz * ti).sin() * (-ti / 0.003).exp(),
                Shape::Accented(hz, one) => (std::f32::consts::TAU * if k % 4 == 0 { one } else { hz } * ti).sin() * (-ti / 0.003).exp(),
                Shape::Noise => {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0) * (-ti / 0.002).exp()
                }
                Shape::Kick => {
                    let phase = std::f32::consts::TAU * (50.0 * ti + 100.0 * 0.01 * (1.0 - (-ti / 0.01).exp()));
                    let body = phase.sin() * (-ti / 0.004).exp();
                    let beater = 0.4 * (std::f32::consts::TAU * 2500.0 * ti).sin() * (-ti / 0.0007).exp();
                    body + beater
                }
            };
            x[(s + i) * 2] += 0.5 * v;
            x[(s + i) * 2 + 1] += 0.5 * v;
        }
    }
    (times, x)
}

/// To the station rate.
fn to_station_rate(x: &[f32], rate: u32) -> Vec<f32> {
    if rate == RATE.0 {
        return x.to_vec();
    }
    let mut r = Resampler::new(SampleRate(rate), RATE).unwrap();
    let mut out = Vec::new();
    r.push(x, &mut out).unwrap();
    r.finish(&mut out).unwrap();
    out
}

/// Envelope of the left channel above about 700 Hz (0.25 ms smoothing):
/// the attacks, whatever the bass swap does to the low band.
fn envelope(pcm: &[f32]) -> Vec<f32> {
    let a = 1.0 - (-1.0f32 / (0.00025 * RATE.0 as f32)).exp();
    // One-pole high-pass at about 700 Hz.
    let c = (-std::f32::consts::TAU * 700.0 / RATE.0 as f32).exp();
    let (mut e, mut prev_x, mut hp) = (0.0f32, 0.0f32, 0.0f32);
    pcm.iter().step_by(2).map(|&x| {
        hp = c * (hp + x - prev_x);
        prev_x = x;
        e += a * (hp.abs() - e);
        e
    }).collect()
}

/// The onset of the click nearest frame `f` within `radius`: where the
/// envelope first reaches a fifth of the click's peak.
fn onset_near(env: &[f32], f: usize, radius: usize) -> Option<f64> {
    let (lo, hi) = (f.saturating_sub(radius), (f + radius).min(env.len()));
    let (peak_at, peak) = (lo..hi).map(|i| (i, env[i])).max_by(|a, b| a.1.total_cmp(&b.1))?;
    if peak < 0.01 {
        return None;
    }
    let mut i = peak_at;
    while i > lo && env[i - 1] >= 0.2 * peak {
        i -= 1;
    }
    Some(i as f64)
}

struct Measured {
    median_ms: f64,
    p95_ms: f64,
    measured: usize,
    self_median_ms: f64,
}

fn transition(a: Clicks, b: Clicks) -> Measured {
    let (a_times, a_raw) = click_track(a);
    let (_, b_raw) = click_track(b);
    let aa = analyze_pcm(&a_raw, SampleRate(a.rate)).unwrap();
    let ab = analyze_pcm(&b_raw, SampleRate(b.rate)).unwrap();
    let (a_pcm, b_pcm) = (to_station_rate(&a_raw, a.rate), to_station_rate(&b_raw, b.rate));
    let settings = TransitionSettings::default();
    let p = plan(&aa, &ab, &settings);
    assert_eq!(p.mode, Mode::Beatmatched, "{a:?} -> {b:?}: {:?}", p.reason);
    let r = render(&a_pcm, &b_pcm, &p, &settings, RATE, 5.0, 5.0, true);
    let (env_a, env_b) = (envelope(&r.a_part), envelope(&r.b_part));
    let beat = 60.0 / a.bpm * RATE.0 as f64;
    let mut errors = Vec::new();
    for t in &a_times {
        let f = ((t - r.a_offset_s) * RATE.0 as f64).round();
        if f < (r.overlap_start as f64 + beat) || f > r.overlap_end as f64 - beat {
            continue;
        }
        let f = f as usize;
        // B's click nearest A's (a half-time B has one every other beat).
        let (Some(oa), Some(ob)) = (onset_near(&env_a, f, (beat / 4.0) as usize), onset_near(&env_b, f, (beat / 4.0) as usize)) else {
            continue;
        };
        errors.push((ob - oa).abs() / RATE.0 as f64 * 1000.0);
    }
    assert!(errors.len() >= 8, "{a:?} -> {b:?}: only {} clicks measured", errors.len());
    errors.sort_by(f64::total_cmp);
    let q = |p: f64| errors[((errors.len() - 1) as f64 * p).round() as usize];
    let alignment = r.alignment.expect("a beatmatched render measures itself");
    Measured { median_ms: q(0.5), p95_ms: q(0.95), measured: errors.len(), self_median_ms: alignment.lag_ms.abs() }
}

#[test]
fn clicks_of_b_land_on_clicks_of_a_to_a_millisecond() {
    let pairs = [
        (Clicks::new(120.0, Shape::Sine(1000.0), 44_100), Clicks::new(126.0, Shape::Sine(5000.0), 44_100)),
        (Clicks::new(90.0, Shape::Noise, 48_000), Clicks::new(94.0, Shape::Kick, 44_100)),
        (Clicks::new(174.0, Shape::Sine(3000.0), 44_100), Clicks::new(87.0, Shape::Sine(1500.0), 48_000)),
        (Clicks::new(128.0, Shape::Kick, 32_000), Clicks::new(124.0, Shape::Noise, 44_100)),
        // A metronome accented on the one (read at half once).
        (Clicks::new(120.0, Shape::Accented(1000.0, 1500.0), 44_100), Clicks::new(126.0, Shape::Sine(5000.0), 48_000)),
        // A 30-second A at 64 BPM has 8 bars: a 3-bar overlap (12 s).
        (Clicks { seconds: 30.0, ..Clicks::new(64.0, Shape::Sine(2000.0), 44_100) }, Clicks::new(66.0, Shape::Kick, 48_000)),
    ];
    let mut failures = Vec::new();
    for (a, b) in pairs {
        let m = transition(a, b);
        println!(
            "{:.0} BPM {:?} @ {} Hz -> {:.0} BPM {:?} @ {} Hz: {} clicks, median {:.2} ms, p95 {:.2} ms; self-measured lag {:.2} ms",
            a.bpm, a.shape, a.rate, b.bpm, b.shape, b.rate, m.measured, m.median_ms, m.p95_ms, m.self_median_ms
        );
        if m.median_ms > 1.0 || m.p95_ms > 3.0 || (m.self_median_ms - m.median_ms).abs() > 1.5 {
            failures.push(format!("{a:?} -> {b:?}: median {:.2} ms, p95 {:.2} ms, self {:.2} ms", m.median_ms, m.p95_ms, m.self_median_ms));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_grid_sits_on_clicks_of_every_shape_and_rate() {
    for c in [
        Clicks::new(120.0, Shape::Sine(1000.0), 44_100),
        Clicks::new(126.0, Shape::Sine(5000.0), 44_100),
        Clicks::new(93.0, Shape::Noise, 48_000),
        Clicks::new(128.0, Shape::Kick, 32_000),
        // Their accents ripple with where each click falls between the
        // analysis frames, every few beats: not a pattern of 64 BPM or 3/4.
        Clicks::new(128.0, Shape::Sine(3000.0), 44_100),
        Clicks::new(96.0, Shape::Sine(4000.0), 44_100),
        Clicks::new(140.0, Shape::Accented(1000.0, 1500.0), 48_000),
    ] {
        let (times, x) = click_track(c);
        let a = analyze_pcm(&x, SampleRate(c.rate)).unwrap();
        let d: Vec<f64> = a
            .beats
            .iter()
            .filter_map(|b| times.iter().map(|t| (b - t) * 1000.0).min_by(|x, y| x.abs().total_cmp(&y.abs())))
            .collect();
        let (lo, hi) = d.iter().fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        println!("{c:?}: {:.3} BPM, {} beats, {lo:.2} to {hi:.2} ms from the clicks", a.bpm, a.beats.len());
        assert!((a.bpm / c.bpm - 1.0).abs() < 1e-4, "{c:?}: {} BPM", a.bpm);
        assert_eq!(a.meter, 4, "{c:?}: nothing but clicks is 4/4");
        assert!(a.beats.len() + 2 >= times.len(), "{c:?}: {} of {} beats", a.beats.len(), times.len());
        assert!(lo > -0.3 && hi < 0.3, "{c:?}: beats {lo:.2} to {hi:.2} ms from the clicks");
    }
}
