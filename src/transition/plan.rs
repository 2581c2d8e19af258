//! Where and how A hands over to B. Pure: two analyses and the settings in,
//! a plan out.
//!
//! A beatmatched plan overlaps `overlap_bars` bars: A's overlap starts on a
//! downbeat at a phrase boundary (a multiple of 8 bars from A's first
//! downbeat, 16 or 32 where A allows) and ends on the last full bar before
//! A's cue-out (fewer bars where A is short, down to 7.5 s worth); B
//! enters on its first downbeat at or after its cue-in. B is
//! played at A's tempo, beat for beat, through the overlap (B's tempo may
//! be taken at half or double), then glides to its own tempo (shorter
//! where B is short: B keeps a few bars to be mixed out of in its turn).
//! When the beats cannot be trusted or the tempos are too far apart, the
//! plan is a crossfade that trims silence, and says why.

use serde::Serialize;

use crate::analysis::structure::PHRASE_BARS;
use crate::analysis::Analysis;

/// Settings of a transition. Default values are those of `[mixer]` in the
/// shipped config.
#[derive(Debug, Clone, Copy)]
pub struct TransitionSettings {
    /// Bars A and B play together. Default: `16`.
    pub overlap_bars: u32,
    /// Largest tempo change B may be stretched by (after half/double). Default: `0.08`.
    pub max_tempo_change: f64,
    /// Beat confidence below which a track is mixed by plain crossfade. Default: `0.1`:
    /// only music with next to no pulse (a pad, a drone); whether a
    /// pulse is good enough to mix on is the steadiness gate's call and the
    /// rendered check's, which measure it (steady real recordings score
    /// from 0.18 up).
    pub min_beat_confidence: f64,
    /// Share of each track's overlap beats that must be on a steady
    /// section of its grid (`Analysis::steady`) to beatmatch; 0 lets a
    /// pulse that wanders beatmatch too. Default: `0.5`.
    pub min_steady_share: f64,
    /// Bars over which B glides from A's tempo to its own. Default: `8`.
    pub glide_bars: u32,
    /// Fallback crossfade length, seconds. Default: `6.0`.
    pub crossfade_s: f64,
    /// Loudness every track is brought to, LUFS. Default: `-14.0`.
    pub target_lufs: f64,
    /// Largest loudness correction, dB. Default: `12.0`.
    pub max_gain_db: f64,
    /// Output ceiling, dBFS (sample peak). Default: `-1.0`.
    pub ceiling_db: f64,
}

impl Default for TransitionSettings {
    fn default() -> Self {
        TransitionSettings {
            overlap_bars: 16,
            max_tempo_change: 0.08,
            min_beat_confidence: 0.1,
            min_steady_share: 0.5,
            glide_bars: 8,
            crossfade_s: 6.0,
            target_lufs: -14.0,
            max_gain_db: 12.0,
            ceiling_db: -1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Beatmatched,
    Crossfade,
}

/// Why a transition fell back to a crossfade, as counted on /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    BeatsUnreliable,
    MetersDiffer,
    TemposApart,
    NoDownbeat,
    TooShort,
    /// Rendered, measured, and B's beats were not on A's.
    Misaligned,
    /// The track's planned mix-out had already passed (a late pick).
    Late,
    /// No steady pulse where the two tracks meet.
    Unsteady,
}

impl Fallback {
    pub const ALL: [Fallback; 8] = [
        Fallback::BeatsUnreliable,
        Fallback::MetersDiffer,
        Fallback::TemposApart,
        Fallback::NoDownbeat,
        Fallback::TooShort,
        Fallback::Misaligned,
        Fallback::Late,
        Fallback::Unsteady,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fallback::BeatsUnreliable => "beats_unreliable",
            Fallback::MetersDiffer => "meters_differ",
            Fallback::TemposApart => "tempos_apart",
            Fallback::NoDownbeat => "no_downbeat",
            Fallback::TooShort => "too_short",
            Fallback::Misaligned => "misaligned",
            Fallback::Late => "late",
            Fallback::Unsteady => "unsteady",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub mode: Mode,
    /// Why a crossfade was chosen (None for beatmatched).
    pub reason: Option<String>,
    /// The kind of reason, for counting.
    pub fallback: Option<Fallback>,
    /// The tempos (BPM) where the tracks meet, which the plan matched: A's
    /// towards its cue-out, B's from its cue-in (`meeting_tempos`).
    pub tempo_a: f64,
    pub tempo_b: f64,
    /// B's playback speed in the overlap (A's tempo over B's effective tempo).
    pub stretch_ratio: f64,
    /// B's tempo was taken at this multiple (1, 2 or 0.5) to match A.
    pub b_tempo_multiple: f64,
    pub overlap_bars: u32,
    /// A's time where the overlap starts and ends, seconds.
    pub a_out_s: f64,
    pub a_end_s: f64,
    /// B's time at the start of the overlap, seconds.
    pub b_in_s: f64,
    /// A's beats through the overlap (seconds in A), and B's beats (seconds
    /// in B) that are placed on them, one for one.
    #[serde(skip)]
    pub a_beats: Vec<f64>,
    #[serde(skip)]
    pub b_beats: Vec<f64>,
    /// B's beats after the overlap (for the tempo glide), seconds in B.
    #[serde(skip)]
    pub b_glide_beats: Vec<f64>,
    /// A's downbeat (seconds in A) where the basses swap: the first of the
    /// overlap's second half of bars. None for a crossfade.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bass_swap_s: Option<f64>,
    pub a_gain_db: f64,
    pub b_gain_db: f64,
}

/// Tracks' beats whose median interval decides the tempo between two
/// times: fewer and the track's tempo stands.
const MIN_TEMPO_BEATS: usize = 8;

/// `x`'s tempo (BPM) from the median interval of its beats between
/// `from_s` and `to_s`; its overall tempo where fewer than
/// `MIN_TEMPO_BEATS` lie there.
fn tempo_within(x: &Analysis, from_s: f64, to_s: f64) -> f64 {
    let beats: Vec<f64> = x.beats.iter().copied().filter(|t| *t >= from_s && *t <= to_s).collect();
    match crate::analysis::median_interval(&beats) {
        Some(period) if beats.len() >= MIN_TEMPO_BEATS => 60.0 / period,
        _ => x.bpm,
    }
}

/// The tempos (BPM) where A and B meet: A's over the last bars before its
/// cue-out, B's over the first after its cue-in (a track that changes
/// tempo is mixed at the tempo it has there, not at its longest
/// stretch's). The overlap's length in bars is the setting's, at least 4.
fn meeting_tempos(a: &Analysis, b: &Analysis, s: &TransitionSettings) -> (f64, f64) {
    let reach = |x: &Analysis| s.overlap_bars.max(4) as f64 * x.meter.max(1) as f64 * 60.0 / x.bpm.max(1.0);
    (tempo_within(a, a.cue_out_s - reach(a), a.cue_out_s), tempo_within(b, b.cue_in_s, b.cue_in_s + reach(b)))
}

/// How B's own beats sit on A's beats with B's tempo taken at `multiple`:
/// (A's beats per beat of B's, B's beats per beat of A's) — (2, 1) where
/// B's beats are split in two, (1, 2) where every other one is taken.
fn beat_ratio(multiple: f64) -> (usize, usize) {
    if multiple > 1.5 {
        (2, 1)
    } else if multiple < 0.75 {
        (1, 2)
    } else {
        (1, 1)
    }
}

/// B's beat grid at `multiple` times its tempo: midpoints inserted (×2) or
/// every other beat (×½), keeping the beat at `keep` (B's first downbeat).
fn regrid(beats: &[f64], multiple: f64, keep: f64) -> Vec<f64> {
    let (a_per_b, b_per_a) = beat_ratio(multiple);
    if a_per_b == 2 {
        let mut out = Vec::with_capacity(beats.len() * 2);
        for w in beats.windows(2) {
            out.push(w[0]);
            out.push(0.5 * (w[0] + w[1]));
        }
        out.extend(beats.last());
        out
    } else if b_per_a == 2 {
        let parity = index_of(beats, keep).unwrap_or(0) % 2;
        beats.iter().skip(parity).step_by(2).copied().collect()
    } else {
        beats.to_vec()
    }
}

/// Whether `x`'s bars from `from_s` to `to_s` are whole: each downbeat
/// there `meter` beats after the one before (no 2/4 bar, no beat the
/// analysis counted out of a bar).
fn whole_bars(x: &Analysis, from_s: f64, to_s: f64) -> bool {
    let meter = x.meter.max(1) as usize;
    let bars: Vec<Option<usize>> =
        x.downbeats.iter().filter(|d| **d >= from_s - 1e-3 && **d <= to_s + 1e-3).map(|d| index_of(&x.beats, *d)).collect();
    bars.windows(2).all(|w| matches!((w[0], w[1]), (Some(a), Some(b)) if b == a + meter))
}

/// The beat at `t` (within 5 ms: downbeats are beats, rounded alike).
fn index_of(beats: &[f64], t: f64) -> Option<usize> {
    beats.iter().position(|b| (b - t).abs() < 0.005)
}

/// The gain (dB) that brings a track to the target loudness, within the
/// correction limit and never lifting its true peak above the ceiling.
pub fn track_gain_db(a: &Analysis, s: &TransitionSettings) -> f64 {
    let db = (s.target_lufs - a.loudness_lufs).clamp(-s.max_gain_db, s.max_gain_db);
    db.min(s.ceiling_db - 0.1 - a.true_peak_dbtp)
}

/// Plans the transition from A to B on its own (`nonstop mix`): A heard
/// from its start, nothing to follow B.
pub fn plan(a: &Analysis, b: &Analysis, s: &TransitionSettings) -> Plan {
    plan_with(a, b, s, 0.0, 0)
}

/// How far (bars) A's overlap may move back from A's end to find a steady
/// pulse.
const MAX_EARLIER_BARS: usize = 16;

/// How far (bars) B's entry may move on from its first downbeat to find a
/// steady pulse.
const MAX_LATER_BARS: usize = 8;

/// The shortest beatmatched overlap, seconds: 4 bars at 128 BPM. It is
/// held to 4 bars at most and 2 at least, so a slow track (at 64 BPM a
/// bar lasts 3.75 s) is blended over 2 or 3 bars where 4 do not fit,
/// as a DJ would: what makes a blend too short is how long it lasts.
const MIN_OVERLAP_S: f64 = 7.5;

/// The fewest bars of `meter` beats at `bpm` a beatmatched overlap may
/// have (see `MIN_OVERLAP_S`).
fn min_overlap_bars(bpm: f64, meter: usize) -> usize {
    let bar_s = meter as f64 * 60.0 / bpm.max(1.0);
    // A thousandth of a bar of slack: 4 bars at 128 BPM are 7.5 s.
    ((MIN_OVERLAP_S / bar_s - 1e-3).ceil() as usize).clamp(2, 4)
}

/// `a` arranged for a skip at `now_s`: the overlap starts at the next
/// downbeat. The plan starts overlaps on phrases counted from the first
/// downbeat it is given, as late as A's bars allow, keeping half of A's
/// bars before the overlap; so A is given the downbeats from `pre` bars
/// before that downbeat (a whole number of phrases, at least the overlap)
/// to `bars` after it, which is where its cue-out goes. The longest
/// overlap that fits is used: the setting, else 8 or 4 bars, else as few
/// as the shortest overlap allows (2 or 3 bars of a slow track). `None`
/// where none fits (too near the end, too few bars played).
pub fn skip_cut(a: &Analysis, now_s: f64, s: &TransitionSettings) -> Option<Analysis> {
    let next = a.downbeats.iter().position(|d| *d >= now_s)?;
    let setting = s.overlap_bars as usize;
    let fewest = min_overlap_bars(a.bpm, a.meter.max(1) as usize);
    let (pre, bars) = [setting, 8, 4, 3, 2].into_iter().filter(|&bars| bars >= fewest && bars <= setting).find_map(|bars| {
        let phrase = if bars >= PHRASE_BARS { PHRASE_BARS } else { 4 };
        let pre = bars.div_ceil(phrase) * phrase;
        let fits = next >= pre && next + bars < a.downbeats.len() && a.downbeats[next + bars] <= a.cue_out_s + 1e-3;
        fits.then_some((pre, bars))
    })?;
    Some(Analysis {
        cue_out_s: a.downbeats[next + bars],
        downbeats: a.downbeats[next - pre..=next + bars].to_vec(),
        // Phrases are counted from the first downbeat given.
        phrase_offset: None,
        ..a.clone()
    })
}

/// Bars B keeps after the transition into it (overlap and glide), so that
/// B in its turn can be mixed out beat for beat: a 4-bar overlap, and the
/// bar under way when the hand-over to B's own audio ends.
const B_KEEPS_BARS: usize = 5;

/// Plans the transition from A to B as the station plays it: A's overlap
/// starts no earlier than `a_from_s` (where A is when the hand-over is
/// planned: a short A may still have been gliding out of the transition
/// into it), and B keeps `B_KEEPS_BARS` to be mixed out of in its turn.
/// Binds only on short tracks (under a minute or so).
pub fn plan_after(a: &Analysis, b: &Analysis, s: &TransitionSettings, a_from_s: f64) -> Plan {
    plan_with(a, b, s, a_from_s, B_KEEPS_BARS)
}

fn plan_with(a: &Analysis, b: &Analysis, s: &TransitionSettings, a_from_s: f64, b_keeps: usize) -> Plan {
    let crossfade = |kind: Fallback, reason: String| {
        // Trim silence: A ends at its cue-out, B starts at its cue-in.
        let len = s.crossfade_s.min(a.cue_out_s.max(0.0) * 0.5).min((b.duration_s - b.cue_in_s).max(0.0) * 0.5);
        Plan::crossfade(a, b, s, (a.cue_out_s - len).max(0.0), a.cue_out_s, kind, reason)
    };
    if a.beat_confidence < s.min_beat_confidence || b.beat_confidence < s.min_beat_confidence {
        return crossfade(Fallback::BeatsUnreliable, format!(
            "beats unreliable (confidence {:.3} and {:.3}, need {:.2})",
            a.beat_confidence, b.beat_confidence, s.min_beat_confidence
        ));
    }
    if a.meter != b.meter {
        return crossfade(Fallback::MetersDiffer, format!("meters differ ({}/4 and {}/4)", a.meter, b.meter));
    }
    let (a_bpm, b_bpm) = meeting_tempos(a, b, s);
    let multiple = [1.0, 2.0, 0.5]
        .into_iter()
        .min_by(|x, y| (a_bpm / (b_bpm * x)).ln().abs().total_cmp(&(a_bpm / (b_bpm * y)).ln().abs()))
        .expect("three candidates");
    let ratio = a_bpm / (b_bpm * multiple);
    if (ratio - 1.0).abs() > s.max_tempo_change {
        return crossfade(Fallback::TemposApart, format!(
            "tempos too far apart ({:.1} and {:.1} BPM: {:+.1}% > {:.0}%)",
            a_bpm,
            b_bpm,
            (ratio - 1.0) * 100.0,
            s.max_tempo_change * 100.0
        ));
    }
    let meter = a.meter.max(1) as usize;
    let min_bars = min_overlap_bars(a_bpm, meter);
    // A: full bars that end by the cue-out.
    let a_bars: Vec<f64> = a.downbeats.iter().copied().filter(|d| *d <= a.cue_out_s + 1e-3).collect();
    let b_bar_starts: Vec<f64> = b.downbeats.iter().copied().filter(|d| *d >= b.cue_in_s - 0.05).collect();
    if b_bar_starts.is_empty() {
        return crossfade(Fallback::NoDownbeat, "B has no downbeat after its cue-in".into());
    }
    let a_last = a_bars.len().saturating_sub(1);
    let earliest = a_bars.iter().position(|d| *d >= a_from_s - 1e-3).unwrap_or(a_bars.len());
    // B entering on its `k`th downbeat after the cue-in: B's grid (at A's
    // tempo multiple, anchored there), where the downbeat is on it, B's
    // bars after it, and the longest overlap both tracks allow — at most
    // the setting, at most half of A's bars, starting no earlier than
    // `a_from_s`; B keeps `b_keeps` after the overlap and the glide, and a
    // third at least of its room for the glide.
    // B keeps `b_keeps` of its own bars: on B's grid at A's tempo a bar of
    // B's is two bars where B is counted at twice its tempo, half a bar
    // where at half.
    let keeps = {
        let (a_per_b, b_per_a) = beat_ratio(multiple);
        (b_keeps * a_per_b).div_ceil(b_per_a)
    };
    let entry = |k: usize| {
        let b_in = b_bar_starts[k];
        let b_grid = regrid(&b.beats, multiple, b_in);
        let b_start = index_of(&b_grid, b_in);
        let b_bars = b_start.map_or(0, |i| b_grid.len().saturating_sub(i + 1) / meter);
        let b_room = b_bars.saturating_sub(keeps);
        let glide_min = if keeps > 0 { (s.glide_bars as usize).min(b_room / 3) } else { 0 };
        let max_bars = (s.overlap_bars as usize).min(a_last / 2).min(a_last.saturating_sub(earliest)).min(b_room - glide_min);
        (b_in, b_grid, b_start, b_bars, max_bars)
    };
    // On B's first downbeat — or on its first phrase where the analysis
    // saw where B's phrases start (after a count-in, a pickup), or, where
    // B's pulse wanders there (a free intro) but is steady from a downbeat
    // up to `MAX_LATER_BARS` on, there: a DJ drops a track in where its
    // groove starts, on a phrase.
    let later = MAX_LATER_BARS.min(b_bar_starts.len() - 1);
    let first_phrase = b.phrase_offset.map(|o| {
        let skipped = b.downbeats.len() - b_bar_starts.len();
        (o as usize + PHRASE_BARS - skipped % PHRASE_BARS) % PHRASE_BARS
    });
    let entries = first_phrase.filter(|k| *k <= later).into_iter().chain((0..=later).filter(|k| Some(*k) != first_phrase));
    // Where B's bars through the overlap are whole (no 2/4 bar there, so
    // its downbeats stay on A's), else where they are not.
    let candidates: Vec<_> = entries.map(entry).collect();
    let steady_entry = |whole: bool| {
        candidates.iter().find(|(b_in, grid, start, _, bars)| {
            start.is_some_and(|i| {
                let beats = &grid[i..(i + bars * meter + 1).min(grid.len())];
                *bars >= min_bars
                    && b.steady_share(beats) >= s.min_steady_share
                    && (!whole || whole_bars(b, *b_in, beats.last().copied().unwrap_or(*b_in)))
            })
        })
    };
    let (b_in, b_grid, b_start, b_bars, max_bars) = steady_entry(true).or_else(|| steady_entry(false)).cloned().unwrap_or_else(|| entry(0));
    let Some(b_start) = b_start else {
        return crossfade(Fallback::NoDownbeat, "B's downbeat is not on its beat grid".into());
    };
    if max_bars < min_bars {
        return crossfade(Fallback::TooShort, format!("too short for a beatmatched overlap ({max_bars} bars fit, {min_bars} needed)"));
    }
    // Phrase alignment: the overlap starts a multiple of 8 bars after the
    // start of A's phrases (its first downbeat, or where the analysis saw
    // its sections start), as late as possible — else on 4 bars, else on
    // the bar, never before `a_from_s`. Where A's pulse is not steady there
    // (a ritardando, a free ending) but is up to `MAX_EARLIER_BARS`
    // before, the overlap moves there: A is mixed out before its ending,
    // as a DJ would.
    let latest = a_last - max_bars;
    // A's overlap from bar `start`: where it starts and ends, and its beats.
    let overlap = |start: usize| (a_bars[start], a_bars[start + max_bars.min(a_last - start)]);
    let overlap_beats = |start: usize| -> Vec<f64> {
        let (from, to) = overlap(start);
        a.beats.iter().copied().filter(|t| *t >= from - 1e-3 && *t <= to + 1e-3).collect()
    };
    let phrases = [if max_bars >= PHRASE_BARS { PHRASE_BARS } else { 4 }, 4, 1];
    // The latest bar at most `latest` that starts a phrase of `phrase` bars.
    let aligned = |phrase: usize| {
        let first = a.phrase_offset.unwrap_or(0) as usize % phrase;
        latest.checked_sub(first).map(|d| latest - d % phrase)
    };
    let lowest = earliest.max(latest.saturating_sub(MAX_EARLIER_BARS));
    let starts = || {
        phrases
            .into_iter()
            .filter_map(|phrase| aligned(phrase).map(|top| (phrase, top)))
            .flat_map(move |(phrase, top)| (lowest..=top).rev().step_by(phrase))
    };
    let steady = |start: usize| a.steady_share(&overlap_beats(start)) >= s.min_steady_share;
    // Whole bars through the overlap first: across A's 2/4 bar, B's
    // downbeats would fall mid-bar in A for the rest of it.
    let start = starts()
        .find(|&start| steady(start) && whole_bars(a, overlap(start).0, overlap(start).1))
        .or_else(|| starts().find(|&start| steady(start)))
        .or_else(|| phrases.into_iter().filter_map(aligned).find(|s| *s >= earliest))
        .unwrap_or(latest);
    let bars = max_bars.min(a_last - start);
    let (a_out, a_end) = overlap(start);
    let a_beats = overlap_beats(start);
    let n = a_beats.len();
    if n < 2 || b_start + n > b_grid.len() {
        return crossfade(Fallback::TooShort, "beat grids too short for the overlap".into());
    }
    let b_beats = b_grid[b_start..b_start + n].to_vec();
    // Beat for beat only where both keep a steady pulse through the
    // overlap: where the beats wander (a live band drifting, rubato, a
    // swing the grid follows loosely) each of them is placed to within
    // some 10 ms at best and the tracker's phase is less sure, and on real
    // pairs B then lands on A's beats about half as often within 20 ms as
    // between two steady tracks (`nonstop eval-mix`). A DJ would not
    // beatmatch those either.
    let (a_steady, b_steady) = (a.steady_share(&a_beats), b.steady_share(&b_beats));
    if a_steady.min(b_steady) < s.min_steady_share {
        return crossfade(Fallback::Unsteady, format!(
            "no steady pulse where they meet (beats on a steady tempo in the overlap: A {:.0}%, B {:.0}%, need {:.0}%)",
            a_steady * 100.0,
            b_steady * 100.0,
            s.min_steady_share * 100.0
        ));
    }
    // B's speed as the overlap ends, over its last bar: the glide to B's
    // own tempo starts from it, so B's tempo runs on without a step.
    let k = meter.min(n - 1);
    let b_speed = (b_beats[n - 1] - b_beats[n - 1 - k]) / (a_beats[n - 1] - a_beats[n - 1 - k]).max(1e-9);
    let glide_bars = (s.glide_bars as usize).min(b_bars.saturating_sub(bars + keeps));
    let glide_end = (b_start + n - 1 + glide_bars * meter).min(b_grid.len() - 1);
    let b_glide_beats = b_grid[b_start + n - 1..=glide_end].to_vec();
    Plan {
        mode: Mode::Beatmatched,
        reason: None,
        fallback: None,
        tempo_a: a_bpm,
        tempo_b: b_bpm,
        stretch_ratio: b_speed,
        b_tempo_multiple: multiple,
        overlap_bars: bars as u32,
        a_out_s: a_out,
        a_end_s: a_end,
        b_in_s: b_in,
        a_beats,
        b_beats,
        b_glide_beats,
        // The bar count's middle downbeat: where a 2/4 bar is in the
        // overlap (the last resort above), counting beats would land mid-bar.
        bass_swap_s: Some(a_bars[start + bars / 2]),
        a_gain_db: track_gain_db(a, s),
        b_gain_db: track_gain_db(b, s),
    }
}

impl Plan {
    /// The same plan with A's times moved `by` seconds earlier (A's buffer
    /// starts `by` seconds into the track).
    pub fn shift_a(&self, by: f64) -> Plan {
        let mut p = self.clone();
        p.a_out_s -= by;
        p.a_end_s -= by;
        p.a_beats.iter_mut().for_each(|t| *t -= by);
        p.bass_swap_s = p.bass_swap_s.map(|t| t - by);
        p
    }

    /// A silence-trimming crossfade over A's [a_out_s, a_end_s], B from its cue-in.
    pub fn crossfade(
        a: &Analysis,
        b: &Analysis,
        s: &TransitionSettings,
        a_out_s: f64,
        a_end_s: f64,
        kind: Fallback,
        reason: String,
    ) -> Plan {
        let (tempo_a, tempo_b) = meeting_tempos(a, b, s);
        Plan {
            mode: Mode::Crossfade,
            reason: Some(reason),
            fallback: Some(kind),
            tempo_a,
            tempo_b,
            stretch_ratio: 1.0,
            b_tempo_multiple: 1.0,
            overlap_bars: 0,
            a_out_s,
            a_end_s,
            b_in_s: b.cue_in_s,
            a_beats: Vec::new(),
            b_beats: Vec::new(),
            b_glide_beats: Vec::new(),
            bass_swap_s: None,
            a_gain_db: track_gain_db(a, s),
            b_gain_db: track_gain_db(b, s),
        }
    }

    /// A crossfade starting at A's time `at`, for when the planned mix-out
    /// has already passed.
    pub fn crossfade_now(at: f64, a: &Analysis, b: &Analysis, s: &TransitionSettings, kind: Fallback, reason: String) -> Plan {
        let len = s.crossfade_s.min((a.duration_s - at).max(0.0));
        Plan::crossfade(a, b, s, at, at + len, kind, reason)
    }

    /// How B's own beats sit on A's through the overlap: (A's beats per
    /// beat of B's, B's beats per beat of A's); see `beat_ratio`.
    pub fn beat_ratio(&self) -> (usize, usize) {
        beat_ratio(self.b_tempo_multiple)
    }

    /// Output seconds of the tempo glide after the overlap.
    pub fn glide_out_s(&self) -> f64 {
        let g = self.b_glide_beats.len().saturating_sub(1);
        self.b_glide_beats
            .windows(2)
            .enumerate()
            .map(|(k, w)| (w[1] - w[0]) / (self.stretch_ratio + (1.0 - self.stretch_ratio) * (k as f64 + 0.5) / g as f64))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A steady 4/4 track of `seconds` at `bpm`, beats from 0.5 s.
    fn steady(bpm: f64, seconds: f64) -> Analysis {
        let beat = 60.0 / bpm;
        let beats: Vec<f64> = (0..).map(|k| 0.5 + k as f64 * beat).take_while(|t| *t < seconds - 0.5).collect();
        Analysis {
            duration_s: seconds,
            bpm,
            downbeats: beats.iter().step_by(4).copied().collect(),
            cue_in_s: beats[0],
            cue_out_s: *beats.last().unwrap(),
            beats,
            beat_confidence: 0.9,
            meter: 4,
            loudness_lufs: -14.0,
            true_peak_dbtp: -1.0,
            key: "A minor".into(),
            camelot: "8A".into(),
            energy: 0.5,
            intro_bars: 0,
            outro_bars: 0,
            phrase_offset: None,
            steady: Some(vec![(0.5, seconds)]),
        }
    }

    /// Where B is when the transition into it has ended (overlap and
    /// glide), seconds in B.
    fn b_after(p: &Plan) -> f64 {
        *p.b_glide_beats.last().unwrap_or(p.b_beats.last().unwrap())
    }

    /// A 4-minute track at `bpm` whose beats keep one tempo only over `spans`.
    fn steady_over(bpm: f64, spans: &[(f64, f64)]) -> Analysis {
        Analysis { steady: Some(spans.to_vec()), ..steady(bpm, 240.0) }
    }

    /// A 4-minute track at `first` BPM until `at_s`, then at `then`, each
    /// part steady; its tempo is the longer part's.
    fn changing(first: f64, at_s: f64, then: f64) -> Analysis {
        let mut beats = vec![0.5];
        while *beats.last().unwrap() < 239.5 {
            let t = *beats.last().unwrap();
            beats.push(t + 60.0 / if t < at_s { first } else { then });
        }
        beats.pop();
        let bpm = if at_s > 120.0 { first } else { then };
        Analysis {
            downbeats: beats.iter().step_by(4).copied().collect(),
            cue_out_s: *beats.last().unwrap(),
            steady: Some(vec![(0.5, at_s), (at_s, 240.0)]),
            beats,
            ..steady(bpm, 240.0)
        }
    }

    #[test]
    fn a_track_that_changes_tempo_is_mixed_at_the_tempo_it_has_where_they_meet() {
        let s = TransitionSettings::default();
        // A at 120 for most of it, 132 over its last 70 s; B at 132. By
        // A's overall tempo they are 9% apart; where they meet, level.
        let p = plan(&changing(120.0, 170.0, 132.0), &steady(132.0, 240.0), &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert!((p.stretch_ratio - 1.0).abs() < 1e-6, "{}", p.stretch_ratio);
        // What /status shows is the tempos the plan matched.
        assert!((p.tempo_a - 132.0).abs() < 0.01 && (p.tempo_b - 132.0).abs() < 0.01, "{} {}", p.tempo_a, p.tempo_b);
        // A at 120, then 126; B at 126: B is at its own speed through the
        // overlap, and the glide starts there (at 120 ÷ 126 it would
        // start with a 5% step).
        let p = plan(&changing(120.0, 170.0, 126.0), &steady(126.0, 240.0), &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert!((p.stretch_ratio - 1.0).abs() < 1e-6, "{}", p.stretch_ratio);
        // B at 126 for its first minute, then 120; A at 126.
        let p = plan(&steady(126.0, 240.0), &changing(126.0, 60.0, 120.0), &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert!((p.stretch_ratio - 1.0).abs() < 1e-6, "{}", p.stretch_ratio);
        // Still too far apart where they meet: 120 ending at 140 against 126.
        let p = plan(&changing(120.0, 170.0, 140.0), &steady(126.0, 240.0), &s);
        assert_eq!(p.fallback, Some(Fallback::TemposApart), "{:?}", p.reason);
        assert!(p.reason.as_deref().is_some_and(|r| r.contains("140.0 and 126.0 BPM")), "{:?}", p.reason);
        assert!((p.tempo_a - 140.0).abs() < 0.01 && (p.tempo_b - 126.0).abs() < 0.01, "{} {}", p.tempo_a, p.tempo_b);
    }

    /// `x` with a 2/4 bar at its downbeat nearest `at_s`: the downbeats
    /// from there on two beats later.
    fn two_four_bar_at(mut x: Analysis, at_s: f64) -> Analysis {
        let k = x.downbeats.iter().position(|d| *d >= at_s).unwrap();
        let from = x.beats.iter().position(|b| *b == x.downbeats[k]).unwrap() + 2;
        x.downbeats.truncate(k + 1);
        x.downbeats.extend(x.beats[from..].iter().step_by(4));
        x
    }

    #[test]
    fn the_overlap_keeps_clear_of_a_two_four_bar() {
        let s = TransitionSettings::default();
        // A's 2/4 bar sits in the last 16 bars, where the overlap would go.
        let a = two_four_bar_at(steady(124.0, 240.0), 220.0);
        let p = plan(&a, &steady(124.0, 240.0), &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert_eq!(p.a_beats.len(), p.overlap_bars as usize * 4 + 1, "A's overlap across its 2/4 bar");
        assert!(p.a_end_s <= 220.0, "{} to {}", p.a_out_s, p.a_end_s);
        assert!(a.downbeats.iter().any(|d| (d - p.a_out_s).abs() < 1e-9), "A leaves on a downbeat");
        // B's 2/4 bar in its fourth bar: B comes in after it.
        let b = two_four_bar_at(steady(124.0, 240.0), 6.0);
        let p = plan(&steady(124.0, 240.0), &b, &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert!(p.b_in_s > 6.0, "B enters at {}", p.b_in_s);
        assert!(b.downbeats.iter().any(|d| (d - p.b_in_s).abs() < 1e-9), "B enters on a downbeat");
    }

    #[test]
    fn the_basses_swap_on_a_downbeat_of_a() {
        let s = TransitionSettings::default();
        // Whole bars: the downbeat that starts the overlap's middle bar.
        let a = steady(124.0, 240.0);
        let p = plan(&a, &steady(124.0, 240.0), &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert_eq!(p.bass_swap_s, Some(p.a_beats[p.overlap_bars as usize / 2 * 4]));
        // A 2/4 bar every 11 s through A's last 90 s: no overlap keeps clear
        // of one, and counting 4 beats to the bar from the overlap's start
        // lands mid-bar. The swap stays on A's downbeat, near the middle.
        let a = (0..8).fold(steady(124.0, 240.0), |a, k| two_four_bar_at(a, 150.0 + 11.0 * k as f64));
        let p = plan(&a, &steady(124.0, 240.0), &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert_ne!(p.a_beats.len(), p.overlap_bars as usize * 4 + 1, "the overlap crosses a 2/4 bar");
        let on_a_downbeat = p.bass_swap_s.is_some_and(|t| a.downbeats.iter().any(|d| (d - t).abs() < 1e-9));
        assert!(on_a_downbeat, "swap at {:?} s, not on a downbeat of A", p.bass_swap_s);
        let (middle, swap) = ((p.a_out_s + p.a_end_s) / 2.0, p.bass_swap_s.unwrap_or_default());
        assert!((swap - middle).abs() <= 4.0 * 60.0 / 124.0, "swap at {swap} s, overlap {} to {}", p.a_out_s, p.a_end_s);
    }

    #[test]
    fn no_steady_pulse_where_they_meet_is_a_crossfade() {
        let s = TransitionSettings::default();
        let a = steady(124.0, 240.0);
        // B steady only from 60 s on: its first bars, where it meets A, wander.
        let mut b = steady_over(120.0, &[(60.0, 239.0)]);
        let p = plan(&a, &b, &s);
        assert_eq!(p.fallback, Some(Fallback::Unsteady), "{:?}", p.reason);
        assert!(p.reason.as_deref().is_some_and(|r| r.contains("B 0%")), "{:?}", p.reason);
        // Steady from the start: beat for beat.
        b.steady = Some(vec![(0.5, 239.0)]);
        assert_eq!(plan(&a, &b, &s).mode, Mode::Beatmatched);
        // A catalogue from before the sections were kept: not held against it.
        b.steady = None;
        assert_eq!(plan(&a, &b, &s).mode, Mode::Beatmatched);
        // A station that wants a wandering pulse beatmatched too.
        let loose = TransitionSettings { min_steady_share: 0.0, ..s };
        assert_eq!(plan(&a, &steady_over(120.0, &[]), &loose).mode, Mode::Beatmatched);
        // A steady only at its start: the overlap at its end wanders.
        assert_eq!(plan(&steady_over(124.0, &[(0.5, 60.0)]), &b, &s).fallback, Some(Fallback::Unsteady));
    }

    #[test]
    fn an_unsteady_ending_is_mixed_out_of_before_it() {
        let s = TransitionSettings::default();
        let b = steady(120.0, 240.0);
        // A's last 25 s (13 bars) wander: the overlap moves back by a
        // phrase, to where most of it is steady, and A ends there.
        let a = steady_over(124.0, &[(0.5, 215.0)]);
        let p = plan(&a, &b, &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert!(a.steady_share(&p.a_beats) >= s.min_steady_share, "{:?}", p.a_beats);
        let with_steady_end = plan(&steady(124.0, 240.0), &b, &s);
        let bar = 4.0 * 60.0 / 124.0;
        assert!((with_steady_end.a_out_s - p.a_out_s - 8.0 * bar).abs() < 1e-6, "{} {}", with_steady_end.a_out_s, p.a_out_s);
        // More than MAX_EARLIER_BARS of wandering: no beatmatch at the end.
        assert_eq!(plan(&steady_over(124.0, &[(0.5, 170.0)]), &b, &s).fallback, Some(Fallback::Unsteady));
    }

    #[test]
    fn a_free_intro_is_skipped_to_where_the_groove_starts() {
        let s = TransitionSettings::default();
        let a = steady(124.0, 240.0);
        // B's first 30 s (15 bars) wander: B enters a few bars on, where
        // most of the overlap is on its steady pulse.
        let b = steady_over(120.0, &[(30.0, 239.0)]);
        let p = plan(&a, &b, &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert!(p.b_in_s > 10.0 && p.b_in_s <= 0.5 + 8.0 * 2.0 + 1e-6, "B enters at {} s", p.b_in_s);
        assert!(b.steady_share(&p.b_beats) >= s.min_steady_share, "{:?}", p.b_beats);
        assert!(b.downbeats.iter().any(|d| (d - p.b_in_s).abs() < 1e-9), "B enters on a downbeat");
    }

    #[test]
    fn a_short_slow_track_is_blended_over_fewer_bars_not_crossfaded() {
        let s = TransitionSettings::default();
        // 30 s at 64 BPM: 8 bars, so half of them (the most A gives up)
        // is 3 — 11 s of overlap, longer than 4 bars at 128 BPM.
        let p = plan(&steady(64.0, 30.0), &steady(65.0, 240.0), &s);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert_eq!(p.overlap_bars, 3);
        assert_eq!(p.a_beats.len(), 3 * 4 + 1);
        // 3 bars at 120 BPM last 6 s: too short to blend beat for beat.
        let p = plan(&steady(120.0, 15.0), &steady(118.0, 240.0), &s);
        assert_eq!(p.fallback, Some(Fallback::TooShort), "{:?}", p.reason);
        assert!(p.reason.as_deref().is_some_and(|r| r.contains("3 bars fit, 4 needed")), "{:?}", p.reason);
        assert_eq!([min_overlap_bars(128.0, 4), min_overlap_bars(90.0, 4), min_overlap_bars(60.0, 4), min_overlap_bars(40.0, 4)], [4, 3, 2, 2]);
    }

    #[test]
    fn a_skip_mixes_out_from_the_next_downbeat_over_as_few_bars_as_the_tempo_allows() {
        let s = TransitionSettings::default();
        let b = steady(66.0, 240.0);
        // 64 BPM: bars of 3.75 s, so 2 make a blend. Skipped just before
        // the fourth last downbeat: 3 bars fit after it, not 4.
        let a = Analysis { phrase_offset: Some(3), ..steady(64.0, 240.0) };
        let next = a.downbeats[a.downbeats.len() - 4];
        let now = next - 0.5;
        let cut = skip_cut(&a, now, &s).expect("a slow track's last bars make a blend");
        let p = plan_after(&cut, &b, &s, now);
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert!((p.a_out_s - next).abs() < 1e-9, "overlap from {:.2} s, next downbeat {next:.2} s", p.a_out_s);
        assert_eq!(p.overlap_bars, 3);
        // Well before the end, the setting; at 128 BPM, 3 bars (5.6 s) are
        // too short, so a skip that late crossfades.
        let p = plan_after(&skip_cut(&a, 100.0, &s).unwrap(), &b, &s, 100.0);
        assert_eq!((p.mode, p.overlap_bars), (Mode::Beatmatched, s.overlap_bars), "{:?}", p.reason);
        let fast = steady(128.0, 240.0);
        assert!(skip_cut(&fast, fast.cue_out_s - 7.0, &s).is_none());
        let p = plan_after(&skip_cut(&fast, 100.0, &s).unwrap(), &steady(126.0, 240.0), &s, 100.0);
        let next = *fast.downbeats.iter().find(|d| **d >= 100.0).unwrap();
        assert_eq!(p.mode, Mode::Beatmatched, "{:?}", p.reason);
        assert!((p.a_out_s - next).abs() < 1e-9, "overlap from {:.2} s, next downbeat {next:.2} s", p.a_out_s);
    }

    #[test]
    fn a_short_track_counted_at_twice_its_tempo_keeps_its_own_bars_for_the_mix_out() {
        // 30 s at 66 BPM into a 133 BPM A: B is counted at 132, so each of
        // its bars is two on A's grid; B kept 5 of those (2.5 of its own)
        // and had 1 bar left to mix out of, 3 needed.
        let s = TransitionSettings::default();
        let (a, b, c) = (steady(133.0, 240.0), steady(66.0, 33.0), steady(65.0, 240.0));
        let into = plan_after(&a, &b, &s, 0.0);
        assert_eq!((into.mode, into.b_tempo_multiple), (Mode::Beatmatched, 2.0), "{:?}", into.reason);
        let out = plan_after(&b, &c, &s, b_after(&into) + 0.05);
        assert_eq!(out.mode, Mode::Beatmatched, "{:?}", out.reason);
        assert!(out.a_out_s >= b_after(&into));
    }

    #[test]
    fn a_short_track_can_be_mixed_in_and_then_out_beat_for_beat() {
        let s = TransitionSettings::default();
        for (seconds, bpm) in [(30.0, 120.0), (45.0, 96.0), (60.0, 128.0)] {
            let (a, b, c) = (steady(bpm * 1.03, 240.0), steady(bpm, seconds), steady(bpm * 0.98, 240.0));
            let into = plan_after(&a, &b, &s, 0.0);
            assert_eq!(into.mode, Mode::Beatmatched, "{seconds} s: {:?}", into.reason);
            // The mixer hands over to B's own audio a little after the
            // glide's last beat.
            let out = plan_after(&b, &c, &s, b_after(&into) + 0.05);
            assert_eq!(out.mode, Mode::Beatmatched, "{seconds} s: {:?}", out.reason);
            assert!(out.a_out_s >= b_after(&into), "{seconds} s: into B ends at {:.1} s, out of B starts at {:.1} s", b_after(&into), out.a_out_s);
            assert!(into.b_glide_beats.len() > 1, "{seconds} s: no glide");
        }
        // Long tracks keep the configured overlap and glide.
        let (a, b) = (steady(124.0, 240.0), steady(126.0, 240.0));
        let p = plan(&a, &b, &s);
        assert_eq!(p.overlap_bars, s.overlap_bars);
        assert_eq!(p.b_glide_beats.len() - 1, s.glide_bars as usize * 4);
    }
}
