//! Scores the analysis on the synthesised test set (`synth::analysis_test_set`):
//! shared by the unit test, `nonstop eval-testset` and the benchmark.

use serde::Serialize;

use super::{analysis_test_set, render, TrackSpec};
use crate::analysis::{analyze_pcm, eval, Analysis};
use crate::units::SampleRate;

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub title: String,
    pub true_bpm: f64,
    pub bpm: f64,
    pub tempo_ok: bool,
    pub f_measure: f64,
    pub downbeat_f: f64,
    pub meter_ok: bool,
    pub true_key: String,
    pub key: String,
    pub key_ok: bool,
    pub true_lufs: f64,
    pub lufs: f64,
    pub cue_in_error_beats: f64,
    pub cue_out_error_beats: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub tracks: usize,
    pub tempo_accuracy: f64,
    pub mean_f_measure: f64,
    pub mean_downbeat_f: f64,
    pub key_accuracy: f64,
    pub max_loudness_error_lu: f64,
    pub max_cue_error_beats: f64,
    pub cases: Vec<CaseResult>,
}

/// Analyses one rendered case and compares it with the generator's truth.
///
/// A half-time feel (kick on 1, snare on 3) is counted at either level —
/// drum and bass at 174 or 87 — so it is scored at the level the analysis
/// chose: the true beats taken every other one at half tempo.
pub fn score(spec: &TrackSpec, a: &Analysis, true_lufs: f64) -> CaseResult {
    let beats = spec.beat_times();
    let all = &beats[..beats.len() - 1];
    let halved = spec.style.half_time && (a.bpm / (spec.bpm / 2.0) - 1.0).abs() <= 0.02;
    let (truth, true_bpm): (Vec<f64>, f64) =
        if halved { (all.iter().step_by(2).copied().collect(), spec.bpm / 2.0) } else { (all.to_vec(), spec.bpm) };
    let period = 60.0 / true_bpm;
    let last = *truth.last().expect("beats");
    CaseResult {
        title: spec.title.clone(),
        true_bpm,
        bpm: a.bpm,
        tempo_ok: (a.bpm / true_bpm - 1.0).abs() <= 0.02,
        f_measure: eval::f_measure(&truth, &a.beats),
        downbeat_f: eval::f_measure(&spec.downbeat_times(), &a.downbeats),
        meter_ok: a.meter == spec.style.meter,
        true_key: spec.key_name(),
        key: a.key.clone(),
        key_ok: a.key == spec.key_name(),
        true_lufs,
        lufs: a.loudness_lufs,
        cue_in_error_beats: (a.cue_in_s - truth[0]).abs() / period,
        cue_out_error_beats: (a.cue_out_s - last).abs() / period,
    }
}

/// Renders, analyses and scores the whole test set (tracks of `seconds`).
pub fn run(seconds: f64) -> Summary {
    let rate = SampleRate::CD;
    let specs = analysis_test_set(seconds);
    let cases: Vec<CaseResult> = specs
        .iter()
        .map(|spec| {
            let pcm = render(spec, rate);
            let true_lufs = crate::synth::loudness_lufs(&pcm, rate);
            let a = analyze_pcm(&pcm, rate).expect("synthesised audio analyses");
            score(spec, &a, true_lufs)
        })
        .collect();
    summarise(cases)
}

pub fn summarise(cases: Vec<CaseResult>) -> Summary {
    let n = cases.len().max(1) as f64;
    Summary {
        tracks: cases.len(),
        tempo_accuracy: cases.iter().filter(|c| c.tempo_ok).count() as f64 / n,
        mean_f_measure: cases.iter().map(|c| c.f_measure).sum::<f64>() / n,
        mean_downbeat_f: cases.iter().map(|c| c.downbeat_f).sum::<f64>() / n,
        key_accuracy: cases.iter().filter(|c| c.key_ok).count() as f64 / n,
        max_loudness_error_lu: cases.iter().map(|c| (c.lufs - c.true_lufs).abs()).fold(0.0, f64::max),
        max_cue_error_beats: cases.iter().map(|c| c.cue_in_error_beats.max(c.cue_out_error_beats)).fold(0.0, f64::max),
        cases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor from the issue, on the synthesised set with known answers.
    #[test]
    fn synthetic_test_set_meets_the_floor() {
        let s = run(30.0);
        for c in &s.cases {
            println!(
                "{:34} bpm {:6.1}/{:6.1} F {:.3} downbeat F {:.2} key {}/{} lufs {:.2}/{:.2} cue {:.2}/{:.2} beats",
                c.title, c.bpm, c.true_bpm, c.f_measure, c.downbeat_f, c.key, c.true_key, c.lufs, c.true_lufs,
                c.cue_in_error_beats, c.cue_out_error_beats
            );
        }
        println!(
            "tempo {:.3}, mean F {:.3}, downbeat F {:.3}, key {:.3}, loudness error {:.3} LU",
            s.tempo_accuracy, s.mean_f_measure, s.mean_downbeat_f, s.key_accuracy, s.max_loudness_error_lu
        );
        assert!(s.mean_f_measure >= 0.95, "mean beat F-measure {:.3}", s.mean_f_measure);
        assert!(s.tempo_accuracy >= 0.9, "tempo accuracy {:.3}", s.tempo_accuracy);
        assert!(s.key_accuracy >= 0.9, "key accuracy {:.3}", s.key_accuracy);
        assert!(s.max_loudness_error_lu <= 0.5, "loudness error {:.3} LU", s.max_loudness_error_lu);
        // Cue points within one beat wherever the tempo is right.
        for c in s.cases.iter().filter(|c| c.tempo_ok) {
            assert!(c.cue_in_error_beats <= 1.0 && c.cue_out_error_beats <= 1.0, "{}: cue error", c.title);
        }
    }

    /// A band that speeds up and slows down by 5 % (one slow cycle over a
    /// minute) is followed beat for beat: the tracker's period follows the
    /// local tempo. Against the global period alone, these cases scored
    /// F 0.75–0.91 at 5 %.
    #[test]
    fn a_drifting_tempo_is_followed() {
        let specs = analysis_test_set(60.0);
        for (i, mut spec) in [14, 15, 17, 20, 21].map(|i| (i, specs[i].clone())) {
            spec.style.drift = if i % 2 == 0 { 0.05 } else { -0.05 };
            let pcm = render(&spec, SampleRate::CD);
            let a = analyze_pcm(&pcm, SampleRate::CD).expect("synthesised audio analyses");
            let c = score(&spec, &a, -14.0);
            assert!(c.f_measure >= 0.95, "{}: beat F {:.3}", c.title, c.f_measure);
        }
    }
}
