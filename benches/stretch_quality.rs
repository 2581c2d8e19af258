//! Time-stretch quality and speed, Signalsmith Stretch (`ssstretch`, used by
//! nonstop) against `timestretch` (pure Rust), at the speeds a transition
//! uses: the pitch of a sustained tone (cents), the sharpness of clicks
//! (share of each click's energy within ±3 ms of its peak; the unstretched
//! clicks score about 1.0), pre-echo (energy in the 25 ms before a click,
//! dB under the click), and × real time per CPU second.
//!
//! Run: `cargo bench --bench stretch_quality`

use nonstop::cpu::thread_seconds;

const RATE: u32 = 44_100;
const TONE_HZ: f64 = 1234.0;

fn tone(seconds: f64) -> Vec<f32> {
    (0..(seconds * RATE as f64) as usize)
        .map(|i| (0.5 * (std::f64::consts::TAU * TONE_HZ * i as f64 / RATE as f64).sin()) as f32)
        .collect()
}

/// Clicks every 0.5 s: 2 ms of decaying noise.
fn clicks(seconds: f64) -> Vec<f32> {
    let mut x = vec![0.0f32; (seconds * RATE as f64) as usize];
    let mut seed = 12345u32;
    for k in 1..(seconds * 2.0) as usize - 1 {
        let at = k * RATE as usize / 2;
        for i in 0..88 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let n = (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
            x[at + i] = 0.8 * n * (-(i as f32) / 20.0).exp();
        }
    }
    x
}

fn peak_frequency(x: &[f32]) -> f64 {
    let n = x.len().next_power_of_two() / 2;
    let start = (x.len() - n) / 2;
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let mut input: Vec<f64> = (0..n)
        .map(|i| x[start + i] as f64 * (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos()))
        .collect();
    let mut spec = fft.make_output_vec();
    fft.process(&mut input, &mut spec).unwrap();
    let bin = RATE as f64 / n as f64;
    let k0 = (TONE_HZ / bin) as usize;
    let k = (k0 - 50..k0 + 50).max_by(|&a, &b| spec[a].norm().total_cmp(&spec[b].norm())).unwrap();
    let (a, b, c) = (spec[k - 1].norm().ln(), spec[k].norm().ln(), spec[k + 1].norm().ln());
    (k as f64 + 0.5 * (a - c) / (a - 2.0 * b + c)) * bin
}

/// (sharpness, pre-echo dB) averaged over the clicks of a stretched train.
fn transients(y: &[f32], speed: f64) -> (f64, f64) {
    let period = (RATE as f64 / 2.0 / speed) as usize;
    let w = |ms: f64| (ms * RATE as f64 / 1000.0) as usize;
    let (mut sharp, mut pre, mut n) = (0.0, 0.0, 0.0);
    for k in 2..(y.len() / period).saturating_sub(2) {
        let (lo, hi) = (k * period - period / 3, k * period + period / 3);
        let seg = &y[lo..hi.min(y.len())];
        let peak = (0..seg.len()).max_by(|&a, &b| seg[a].abs().total_cmp(&seg[b].abs())).unwrap();
        let energy = |a: usize, b: usize| seg[a.min(seg.len())..b.min(seg.len())].iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
        let near = energy(peak.saturating_sub(w(3.0)), peak + w(3.0));
        let wide = energy(peak.saturating_sub(w(25.0)), peak + w(25.0));
        let before = energy(peak.saturating_sub(w(25.0)), peak.saturating_sub(w(3.0)));
        sharp += near / wide.max(1e-12);
        pre += 10.0 * (before.max(1e-12) / near.max(1e-12)).log10();
        n += 1.0;
    }
    (sharp / n, pre / n)
}

fn signalsmith(x: &[f32], speed: f64) -> Vec<f32> {
    let mut st = ssstretch::Stretch::new();
    st.preset_default(1, RATE as f32);
    let chunk = 4096;
    let mut out = Vec::new();
    let mut buf = [Vec::new()];
    let mut pos = 0;
    while pos + chunk <= x.len() {
        let input = [x[pos..pos + chunk].to_vec()];
        let n_out = (chunk as f64 / speed).round() as usize;
        st.process_vec(&input, chunk as i32, &mut buf, n_out as i32);
        out.extend_from_slice(&buf[0][..n_out]);
        pos += chunk;
    }
    out
}

fn portable(x: &[f32], speed: f64) -> Vec<f32> {
    let config = timestretch::SessionConfig {
        channels: 1,
        parameters: timestretch::Parameters::keylock(timestretch::TempoRate::new(speed).unwrap()),
        ..timestretch::SessionConfig::default()
    };
    timestretch::render(x, config).unwrap().samples
}

fn main() {
    let seconds = 20.0;
    let (t, c) = (tone(seconds), clicks(seconds));
    let (orig_sharp, orig_pre) = transients(&c, 1.0);
    println!("unstretched clicks: sharpness {orig_sharp:.3}, pre-echo {orig_pre:.1} dB");
    println!("stretcher      speed  tone error  sharpness  pre-echo  x real time (CPU)");
    for speed in [0.93, 0.97, 1.03, 1.07] {
        for (name, f) in [("signalsmith", signalsmith as fn(&[f32], f64) -> Vec<f32>), ("timestretch", portable)] {
            let cpu0 = thread_seconds();
            let yt = f(&t, speed);
            let yc = f(&c, speed);
            let cpu = (thread_seconds() - cpu0).max(0.01);
            let cents = 1200.0 * (peak_frequency(&yt) / TONE_HZ).log2();
            let (sharp, pre) = transients(&yc, speed);
            println!("{name:12}  {speed:5.2}  {cents:+8.2} c  {sharp:9.3}  {pre:6.1} dB  {:8.0}", 2.0 * seconds / cpu);
        }
    }
}
