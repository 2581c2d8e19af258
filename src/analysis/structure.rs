//! Where the phrases start. Dance and pop music is built of 8-bar phrases,
//! and a DJ lines up the mix with them: A's overlap starts where one of
//! A's sections does. Most tracks start on a phrase, but not all: a bar of
//! count-in, a 4-bar drum intro before the first 8, a pickup. So the bar
//! at which phrases start is read from the music: where the arrangement
//! changes (instruments enter or drop out, the energy steps up or down),
//! bar by bar, and at which of the 8 positions those changes fall.
//!
//! Per bar: the mean of log energy, log bass energy, brightness and onset
//! strength, each standardised over the track. The change at a bar line is
//! how far the 4 bars after it differ from the 4 before (2 or 3 near the
//! ends; summed over the four cues, in standard deviations); a section
//! boundary is a bar where that change is the largest within two bars
//! either side and clearly above the track's usual change. The phrase offset is the position (bar index mod
//! 8) that gathers most of the boundaries' change, where it gathers
//! clearly more than any other; otherwise none is claimed (and the mix
//! counts A's phrases from its first downbeat, B's from where it enters).

use super::features::Features;
use super::standardise;

/// Bars in a phrase.
pub const PHRASE_BARS: usize = 8;
/// Bars either side of a bar line compared (fewer, down to `MIN_SPAN`,
/// near the ends).
const SPAN: usize = 4;
const MIN_SPAN: usize = 2;
/// A boundary's change above the track's median change, in (robust)
/// standard deviations of the change: 1.4826 median absolute deviations.
const MIN_PROMINENCE: f64 = 1.0;
/// The chosen position must gather this many times the change of the
/// next best.
const MIN_MARGIN: f64 = 1.5;
/// Boundaries the chosen position needs.
const MIN_BOUNDARIES: usize = 2;

/// The change of arrangement at each bar line of `downbeats` (index: the
/// bar that starts there); `None` within `MIN_SPAN` bars of either end.
pub fn changes(f: &Features, downbeats: &[f64]) -> Vec<Option<f64>> {
    let bars = downbeats.len().saturating_sub(1);
    let per_bar = |v: &[f32], log: bool| -> Vec<f64> {
        downbeats
            .windows(2)
            .map(|w| {
                let mean = Features::mean_over(v, w[0], w[1]);
                if log {
                    10.0 * (mean + 1e-10).log10()
                } else {
                    mean
                }
            })
            .collect()
    };
    let mut cues = [per_bar(&f.energy, true), per_bar(&f.low_energy, true), per_bar(&f.brightness, false), per_bar(&f.onset, false)];
    cues.iter_mut().for_each(|c| standardise(c));
    (0..=bars)
        .map(|i| {
            // Fewer bars either side near the ends, two at least.
            let span = SPAN.min(i).min(bars - i);
            (span >= MIN_SPAN).then(|| {
                cues.iter()
                    .map(|c| {
                        let before = c[i - span..i].iter().sum::<f64>() / span as f64;
                        let after = c[i..i + span].iter().sum::<f64>() / span as f64;
                        (after - before).abs()
                    })
                    .sum()
            })
        })
        .collect()
}

/// The bar (index into `downbeats`, 0..8) at which the track's 8-bar
/// phrases start, from where its arrangement changes; `None` where that is
/// not clear.
pub fn phrase_offset(f: &Features, downbeats: &[f64]) -> Option<u8> {
    offset_of(&changes(f, downbeats))
}

fn offset_of(change: &[Option<f64>]) -> Option<u8> {
    let known: Vec<f64> = change.iter().flatten().copied().collect();
    if known.len() < PHRASE_BARS {
        return None;
    }
    let mut sorted = known.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mut deviations: Vec<f64> = known.iter().map(|x| (x - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let sd = 1.4826 * deviations[deviations.len() / 2];
    let at = |i: usize| change.get(i).copied().flatten();
    // Per position: the boundaries' change above the median, and how many.
    let mut gathered = [(0.0f64, 0usize); PHRASE_BARS];
    for (i, c) in change.iter().enumerate() {
        let Some(c) = *c else { continue };
        let peak = (i.saturating_sub(2)..=i + 2).filter(|&j| j != i).all(|j| at(j).is_none_or(|o| o < c || (o == c && j > i)));
        if peak && c - median >= MIN_PROMINENCE * sd {
            let g = &mut gathered[i % PHRASE_BARS];
            *g = (g.0 + c - median, g.1 + 1);
        }
    }
    let mut order: Vec<usize> = (0..PHRASE_BARS).collect();
    order.sort_by(|&x, &y| gathered[y].0.total_cmp(&gathered[x].0));
    let (best, next) = (gathered[order[0]], gathered[order[1]]);
    // One boundary is no pattern (a fade-in looks like one at the start).
    (best.1 >= MIN_BOUNDARIES && best.0 >= MIN_MARGIN * next.0).then_some(order[0] as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flat change with steps at `boundaries`.
    fn steps(bars: usize, boundaries: &[usize]) -> Vec<Option<f64>> {
        (0..=bars)
            .map(|i| (i >= MIN_SPAN && i + MIN_SPAN <= bars).then(|| if boundaries.contains(&i) { 3.0 } else { 0.2 + 0.01 * (i % 3) as f64 }))
            .collect()
    }

    #[test]
    fn the_offset_is_where_the_sections_change() {
        assert_eq!(offset_of(&steps(64, &[12, 28, 44])), Some(4));
        assert_eq!(offset_of(&steps(64, &[8, 24, 40, 56])), Some(0));
        assert_eq!(offset_of(&steps(64, &[9, 17, 33, 49])), Some(1));
    }

    #[test]
    fn no_clear_sections_no_offset() {
        // Nothing stands out.
        assert_eq!(offset_of(&steps(64, &[])), None);
        // Changes at every position alike.
        assert_eq!(offset_of(&steps(64, &[10, 19, 28, 37, 46, 55])), None);
        // One boundary is no pattern; too short to tell.
        assert_eq!(offset_of(&steps(64, &[12])), None);
        assert_eq!(offset_of(&steps(12, &[6])), None);
    }
}
