//! Beatmatched transitions on generated tracks whose beats are known
//! exactly: A at 120 BPM with clicks at 2.5 kHz, B at 126 BPM with clicks
//! at 6 kHz (9 kHz on its downbeats) and a sustained 1234 Hz tone.

use nonstop::analysis::analyze_pcm;
use nonstop::synth::{render as synth, Style, TrackSpec};
use nonstop::transition::{plan, render, Mode, TransitionSettings};
use nonstop::units::SampleRate;

const RATE: SampleRate = SampleRate::CD;
const TONE_HZ: f32 = 1234.0;

fn spec(bpm: f64, key: u8, seed: u64) -> TrackSpec {
    TrackSpec {
        title: format!("{bpm}"),
        artist: "test".into(),
        bpm,
        key_root: key,
        minor: true,
        seconds: 100.0,
        seed,
        // No breakdown: the loudness check is about the transition, not the arrangement.
        style: Style { target_lufs: Some(-16.0), breakdown: false, ..Style::default() },
    }
}

/// Adds a 6 ms Hann-windowed sine burst at `hz` on each of `times`.
fn add_clicks(pcm: &mut [f32], times: &[f64], hz: f32, amp: f32) {
    let n = (0.006 * RATE.0 as f64) as usize;
    for &t in times {
        let start = (t * RATE.0 as f64).round() as usize;
        for i in 0..n {
            let w = 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n as f32).cos();
            let v = amp * w * (std::f32::consts::TAU * hz * i as f32 / RATE.0 as f32).sin();
            if let Some(s) = pcm.get_mut((start + i) * 2..(start + i) * 2 + 2) {
                s[0] += v;
                s[1] += v;
            }
        }
    }
}

/// Narrow-band envelope at `hz` (demodulated, 1 ms smoothing), left channel.
fn band_envelope(pcm: &[f32], hz: f32) -> Vec<f32> {
    let w = std::f32::consts::TAU * hz / RATE.0 as f32;
    let (mut re, mut im) = (0.0f32, 0.0f32);
    let a = 1.0 - (-1.0f32 / (0.0005 * RATE.0 as f32)).exp();
    pcm.iter()
        .step_by(2)
        .enumerate()
        .map(|(i, x)| {
            re += a * (x * (w * i as f32).cos() - re);
            im += a * (x * (w * i as f32).sin() - im);
            (re * re + im * im).sqrt()
        })
        .collect()
}

/// Onset near `t` (frames): where the envelope first reaches half its peak
/// within ±40 ms, or `None` without a clear peak.
fn onset_near(env: &[f32], t: usize) -> Option<f64> {
    let r = (0.04 * RATE.0 as f64) as usize;
    let (lo, hi) = (t.saturating_sub(r), (t + r).min(env.len()));
    let peak = env[lo..hi].iter().copied().fold(0.0f32, f32::max);
    let floor = env[lo..hi].iter().copied().fold(f32::MAX, f32::min);
    if peak < 1e-4 || peak < 4.0 * floor.max(1e-7) {
        return None;
    }
    let i = (lo..hi).find(|&i| env[i] >= 0.5 * peak)?;
    Some(i as f64 / RATE.0 as f64)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct Pair {
    a_spec: TrackSpec,
    a: Vec<f32>,
    b: Vec<f32>,
}

fn pair() -> Pair {
    let a_spec = spec(120.0, 9, 1);
    let b_spec = spec(126.0, 2, 2);
    let mut a = synth(&a_spec, RATE);
    let mut b = synth(&b_spec, RATE);
    add_clicks(&mut a, &a_spec.beat_times(), 2500.0, 0.25);
    add_clicks(&mut b, &b_spec.beat_times(), 6000.0, 0.25);
    add_clicks(&mut b, &b_spec.downbeat_times(), 9000.0, 0.25);
    for (i, s) in b.chunks_exact_mut(2).enumerate() {
        let v = 0.08 * (std::f32::consts::TAU * TONE_HZ * i as f32 / RATE.0 as f32).sin();
        s[0] += v;
        s[1] += v;
    }
    Pair { a_spec, a, b }
}

#[test]
fn beats_lock_downbeats_coincide_pitch_holds_and_nothing_clips() {
    let p = pair();
    let (aa, ab) = (analyze_pcm(&p.a, RATE).unwrap(), analyze_pcm(&p.b, RATE).unwrap());
    let settings = TransitionSettings::default();
    let plan = plan(&aa, &ab, &settings);
    println!("{}", serde_json::to_string(&plan).unwrap());
    assert_eq!(plan.mode, Mode::Beatmatched, "{:?}", plan.reason);
    assert!((plan.stretch_ratio - 120.0 / 126.0).abs() < 0.01, "{}", plan.stretch_ratio);
    assert!(plan.overlap_bars >= 8, "{}", plan.overlap_bars);
    let r = render(&p.a, &p.b, &plan, &settings, RATE, 30.0, 30.0, true);

    // Beat alignment: B's clicks against A's, beat by beat, in the overlap.
    let env_a = band_envelope(&r.a_part, 2500.0);
    let env_b = band_envelope(&r.b_part, 6000.0);
    let a_beats: Vec<usize> = p
        .a_spec
        .beat_times()
        .iter()
        .map(|t| ((t - r.a_offset_s) * RATE.0 as f64).round())
        .filter(|f| *f >= (r.overlap_start + 4410) as f64 && *f + 4410.0 <= r.overlap_end as f64)
        .map(|f| f as usize)
        .collect();
    let mut errors: Vec<f64> = a_beats
        .iter()
        .filter_map(|&f| Some((onset_near(&env_b, f)? - onset_near(&env_a, f)?).abs() * 1000.0))
        .collect();
    assert!(errors.len() as f64 >= 0.9 * a_beats.len() as f64, "{} of {} beats measured", errors.len(), a_beats.len());
    let median = percentile(&mut errors, 0.5);
    let p95 = percentile(&mut errors, 0.95);
    println!("alignment over {} beats: median {median:.2} ms, p95 {p95:.2} ms", errors.len());
    assert!(median <= 5.0 && p95 <= 15.0, "median {median} ms, p95 {p95} ms");

    // Downbeats: B's downbeat clicks land on A's downbeats, none elsewhere.
    let env_db = band_envelope(&r.b_part, 9000.0);
    let a_downbeats: Vec<usize> = p
        .a_spec
        .downbeat_times()
        .iter()
        .map(|t| ((t - r.a_offset_s) * RATE.0 as f64).round() as usize)
        .filter(|&f| f >= r.overlap_start + 4410 && f + 4410 <= r.overlap_end)
        .collect();
    for &f in &a_downbeats {
        let b_down = onset_near(&env_db, f).expect("a B downbeat on every A downbeat");
        assert!((b_down - f as f64 / RATE.0 as f64).abs() < 0.015);
    }

    // Pitch: the sustained tone in stretched B, within 5 cents.
    let mid = (r.overlap_start + r.overlap_end) / 2;
    let hz = peak_frequency(&r.b_part[mid * 2..(mid + 65_536) * 2], TONE_HZ);
    let cents = 1200.0 * (hz / TONE_HZ as f64).log2();
    println!("tone after stretch: {hz:.2} Hz ({cents:+.2} cents)");
    assert!(cents.abs() <= 5.0, "{cents} cents");

    // Peaks: no sample above -1 dBFS, true peak at most -1 dBTP.
    let peak = r.pcm.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut meter = ebur128::EbuR128::new(2, RATE.0, ebur128::Mode::TRUE_PEAK).unwrap();
    meter.add_frames_f32(&r.pcm).unwrap();
    let tp = (0..2).map(|c| meter.true_peak(c).unwrap()).fold(0.0, f64::max);
    println!("sample peak {:.2} dBFS, true peak {:.2} dBTP", 20.0 * peak.log10(), 20.0 * tp.log10());
    assert!(20.0 * tp.log10() <= -1.0 + 0.05, "true peak {} dBTP", 20.0 * tp.log10());

    // Short-term loudness moves by at most 2 LU across the transition.
    let (lo, hi) = short_term_range(&r.pcm, r.overlap_start.saturating_sub(5 * 44_100), r.overlap_end + 5 * 44_100);
    println!("short-term loudness across the transition: {lo:.2} .. {hi:.2} LUFS");
    assert!(hi - lo <= 2.0, "short-term loudness moved {:.2} LU", hi - lo);
}

/// Peak frequency near `hz` of interleaved stereo (left), Hann window,
/// parabolic interpolation on the log magnitude.
fn peak_frequency(pcm: &[f32], hz: f32) -> f64 {
    let n = pcm.len() / 2;
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let mut input: Vec<f64> = pcm
        .iter()
        .step_by(2)
        .enumerate()
        .map(|(i, v)| *v as f64 * (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos()))
        .collect();
    let mut spec = fft.make_output_vec();
    fft.process(&mut input, &mut spec).unwrap();
    let bin_hz = RATE.0 as f64 / n as f64;
    let k0 = (hz as f64 / bin_hz) as usize;
    let k = (k0 - 20..k0 + 20).max_by(|&a, &b| spec[a].norm().total_cmp(&spec[b].norm())).unwrap();
    let (a, b, c) = (spec[k - 1].norm().ln(), spec[k].norm().ln(), spec[k + 1].norm().ln());
    (k as f64 + 0.5 * (a - c) / (a - 2.0 * b + c)) * bin_hz
}

/// Min and max EBU short-term loudness (3 s) every 0.5 s over [from, to) frames.
fn short_term_range(pcm: &[f32], from: usize, to: usize) -> (f64, f64) {
    let mut trace = Vec::new();
    let mut meter = ebur128::EbuR128::new(2, RATE.0, ebur128::Mode::S).unwrap();
    let step = RATE.0 as usize / 2;
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    let mut pos = from;
    while pos + step <= to.min(pcm.len() / 2) {
        meter.add_frames_f32(&pcm[pos * 2..(pos + step) * 2]).unwrap();
        pos += step;
        if pos - from >= 3 * RATE.0 as usize {
            let l = meter.loudness_shortterm().unwrap();
            trace.push(format!("{:.0}:{l:.1}", (pos - from) as f64 / RATE.0 as f64));
            lo = lo.min(l);
            hi = hi.max(l);
        }
    }
    println!("short-term trace (s from window start: LUFS): {}", trace.join(" "));
    (lo, hi)
}

#[test]
fn beatless_pair_crossfades_without_silence() {
    // Two drones: no beats to trust.
    let drone = |hz: f32, seconds: f32| -> Vec<f32> {
        let n = (seconds * RATE.0 as f32) as usize;
        (0..n)
            .flat_map(|i| {
                let t = i as f32 / RATE.0 as f32;
                let v = 0.2 * (std::f32::consts::TAU * hz * t).sin() * (0.8 + 0.2 * (0.3 * t).sin());
                [v, v]
            })
            .collect()
    };
    let mut a = vec![0.0f32; 2 * 44_100];
    a.extend(drone(220.0, 40.0));
    a.extend(vec![0.0f32; 3 * 2 * 44_100]); // trailing silence to trim
    let mut b = vec![0.0f32; 2 * 2 * 44_100]; // leading silence to trim
    b.extend(drone(330.0, 40.0));
    let (aa, ab) = (analyze_pcm(&a, RATE).unwrap(), analyze_pcm(&b, RATE).unwrap());
    let settings = TransitionSettings::default();
    let plan = plan(&aa, &ab, &settings);
    println!("{}", serde_json::to_string(&plan).unwrap());
    assert_eq!(plan.mode, Mode::Crossfade);
    assert!(plan.reason.as_deref().is_some_and(|r| !r.is_empty()));
    let r = render(&a, &b, &plan, &settings, RATE, 10.0, 10.0, true);
    // No 100 ms window quieter than -50 dBFS anywhere in the render.
    let win = 4410;
    let quietest = r
        .pcm
        .chunks(win * 2)
        .filter(|w| w.len() == win * 2)
        .map(|w| 10.0 * ((w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).max(1e-12)).log10())
        .fold(f32::MAX, f32::min);
    println!("quietest 100 ms: {quietest:.1} dBFS");
    assert!(quietest > -50.0, "a gap: {quietest} dBFS");
}

/// The live stream uses beatmatched transitions: two tempo-close tracks,
/// a station playing them, a listener reading through the hand-over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_beatmatches() {
    use crate::util::*;
    use std::time::Duration;
    let t = start_station(
        |lib| {
            for f in std::fs::read_dir(lib).unwrap() {
                std::fs::remove_file(f.unwrap().path()).unwrap();
            }
            for (i, bpm) in [120.0, 124.0].into_iter().enumerate() {
                let mut s = spec(bpm, 9 - i as u8 * 2, 10 + i as u64);
                s.seconds = 36.0;
                s.title = format!("Beat {bpm}");
                let pcm = synth(&s, SampleRate::CD);
                let settings = nonstop::encoder::LameSettings { sample_rate: 44_100, bitrate_kbps: 192, quality: 7 };
                let tags = nonstop::encoder::FileTags { title: &s.title, artist: "Test", album: "" };
                std::fs::write(lib.join(format!("{}.mp3", s.title)), nonstop::encoder::encode_file(settings, tags, &pcm).unwrap()).unwrap();
            }
        },
        |c| {
            c.mixer.overlap_bars = 4;
            c.mixer.glide_bars = 2;
        },
    )
    .await;
    let mut c = get(t.addr, "/stream.mp3", &[]).await;
    let reading = tokio::spawn(async move { c.read_for(Duration::from_secs(40)).await });
    let s = wait_status(t.addr, Duration::from_secs(45), |s| s["mixer"]["transitions_beatmatched"].as_u64() >= Some(1)).await;
    let tr = &s["mixer"]["transition"];
    println!("{tr}");
    println!("recent: {}", s["mixer"]["recent_transitions"]);
    assert_eq!(s["mixer"]["transitions_beatmatched"], 1, "{s}");
    assert_eq!(tr["mode"], "beatmatched");
    assert_eq!(tr["overlap_bars"], 4);
    assert!(tr["stretch_ratio"].as_f64().unwrap() != 1.0);
    assert_eq!(s["broadcast"]["underruns"], 0);
    let bytes = reading.await.unwrap();
    let frames = frames(&bytes);
    let whole: usize = frames.iter().map(|f| f.len()).sum();
    let (pcm, bad) = decode(&bytes[..whole]);
    assert_eq!(bad, 0);
    // No gap in what the listener heard past A's sparse intro (its first
    // bars are kick and hi-hat with true digital silence between them):
    // every 100 ms window above -50 dBFS, through the hand-over.
    let past_intro = &pcm[10 * 44_100..];
    let quietest = past_intro
        .chunks(4410)
        .filter(|w| w.len() == 4410)
        .map(|w| 10.0 * (w.iter().map(|v| v * v).sum::<f32>() / 4410.0).max(1e-12).log10())
        .fold(f32::MAX, f32::min);
    let silent: Vec<String> = past_intro
        .chunks(4410)
        .enumerate()
        .filter(|(_, w)| w.len() == 4410 && w.iter().map(|v| v * v).sum::<f32>() / 4410.0 < 1e-5)
        .map(|(i, _)| format!("{:.1}", 10.0 + i as f64 * 0.1))
        .collect();
    assert!(quietest > -50.0, "a gap: {quietest} dBFS at listener seconds {silent:?}");
    t.station.shutdown().await;
}

/// Tracks whose sections start a few bars after their first downbeat (a
/// count-in of hi-hats): the analysis finds where their phrases start, the
/// mix out of A starts on one of A's, and B comes in on its first.
#[test]
fn the_overlap_starts_where_a_phrase_does() {
    let settings = TransitionSettings::default();
    let bar_s = 4.0 * 60.0 / 124.0;
    let with_count_in = |pickup_bars: usize, key: u8, seed: u64| {
        let spec = TrackSpec {
            seconds: (64 + pickup_bars) as f64 * bar_s,
            style: Style { target_lufs: Some(-16.0), pickup_bars, ..Style::default() },
            ..spec(124.0, key, seed)
        };
        let analysis = analyze_pcm(&synth(&spec, RATE), RATE).unwrap();
        // Where the first section starts.
        (analysis, spec.beat_times()[4 * pickup_bars])
    };
    for pickup_bars in [0, 4, 3] {
        let ((a, a_sections), (b, b_sections)) = (with_count_in(pickup_bars, 9, 1), with_count_in(pickup_bars, 2, 2));
        // Phrases from the first section's start: a whole number of them.
        let phrases_from_it = |t: f64| (t - a_sections) / bar_s / 8.0;
        let on_a_phrase = |t: f64| (phrases_from_it(t) - phrases_from_it(t).round()).abs() < 0.01;
        let offset = a.phrase_offset.unwrap_or_else(|| panic!("count-in {pickup_bars}: no phrases found"));
        let phrase_start = a.downbeats[offset as usize];
        assert!(on_a_phrase(phrase_start), "count-in {pickup_bars}: phrases from {phrase_start:.2} s (offset {offset}), sections from {a_sections:.2} s");
        let p = plan(&a, &b, &settings);
        assert_eq!(p.mode, Mode::Beatmatched, "count-in {pickup_bars}: {:?}", p.reason);
        assert!(on_a_phrase(p.a_out_s), "count-in {pickup_bars}: overlap from {:.2} s, {:.2} phrases after the sections start", p.a_out_s, phrases_from_it(p.a_out_s));
        assert!((p.b_in_s - b_sections).abs() < 0.02, "count-in {pickup_bars}: B enters at {:.2} s, its first section at {b_sections:.2} s", p.b_in_s);
    }
}
