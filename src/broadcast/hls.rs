//! HLS: the stream cut into segments of about 2 s for HTTP caches and CDNs,
//! made once for everyone.
//!
//! Segments are MPEG-TS ([`super::ts`]): the MPEG audio frames as they are
//! on air, cut on frame boundaries and stamped with their media time, so
//! consecutive segments join without a gap, and the titles as timed ID3 at
//! the frame where each becomes audible. The playlist is a sliding window
//! with `EXT-X-PROGRAM-DATE-TIME` from the station's clock (the wall time
//! each segment's first frame went on air).

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::watch;

use super::ts::{Muxer, TsFrame};
use super::Hub;
use crate::encoder::Frame;
use crate::mixer::OnAir;
use crate::units::MP3_FRAME_SAMPLES;

/// Frames per segment: 77 × 1152 samples is 2.01 s at 44.1 kHz.
const SEGMENT_FRAMES: u64 = 77;
/// Segments in the playlist.
const WINDOW: usize = 6;
/// Segments kept for players still fetching older ones.
const KEEP: usize = 12;

/// One segment: its number, length, start on the wall clock, bytes.
#[derive(Debug, Clone)]
pub struct Segment {
    pub seq: u64,
    pub duration_s: f64,
    pub program_date_time: chrono::DateTime<chrono::Utc>,
    pub data: Bytes,
}

/// The segments made so far.
#[derive(Debug, Default)]
pub struct Hls {
    segments: RwLock<VecDeque<Segment>>,
}

impl Hls {
    pub fn new() -> Arc<Hls> {
        Arc::new(Hls::default())
    }

    pub fn segment(&self, seq: u64) -> Option<Bytes> {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segments.iter().find(|s| s.seq == seq).map(|s| s.data.clone())
    }

    /// The playlist (`None` before the first segment).
    pub fn playlist(&self) -> Option<String> {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        let window: Vec<&Segment> = segments.iter().rev().take(WINDOW).rev().collect();
        let first = window.first()?;
        let target = window.iter().map(|s| s.duration_s).fold(0.0, f64::max).ceil() as u64;
        let mut m = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            first.seq
        );
        for s in window {
            m.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.3},\n{}.ts\n",
                s.program_date_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                s.duration_s,
                s.seq
            ));
        }
        Some(m)
    }

    fn push(&self, segment: Segment) {
        let mut segments = self.segments.write().unwrap_or_else(|p| p.into_inner());
        segments.push_back(segment);
        while segments.len() > KEEP {
            segments.pop_front();
        }
    }
}

/// The title an ID3 tag carries for a label: (title, artist), or the note.
fn title_of(on_air: &OnAir) -> (&str, &str) {
    match (&on_air.track, on_air.note) {
        (_, Some(note)) => (note, ""),
        (Some(t), None) => (t.title.as_str(), t.artist.as_str()),
        (None, None) => ("", ""),
    }
}

/// Muxes one segment's frames (titles where the label changes).
fn mux(muxer: &mut Muxer, frames: &[Arc<Frame>], rate: u32) -> Bytes {
    let ts: Vec<TsFrame> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| TsFrame {
            seq: f.seq,
            data: &f.data,
            title: (i > 0 && !Arc::ptr_eq(&frames[i - 1].on_air, &f.on_air)).then(|| title_of(&f.on_air)),
        })
        .collect();
    Bytes::from(muxer.segment(&ts, title_of(&frames[0].on_air), rate))
}

/// Cuts the hub's frames into segments until the station stops.
pub async fn run(hub: Arc<Hub>, hls: Arc<Hls>, mut shutdown: watch::Receiver<bool>) {
    let rate = hub.rate.0 as f64;
    let frame_s = MP3_FRAME_SAMPLES as f64 / rate;
    let mut head_rx = hub.head();
    let mut next = *head_rx.borrow_and_update();
    let mut seq = 0u64;
    let mut muxer = Muxer::default();
    let mut current: Option<(Vec<Arc<Frame>>, chrono::DateTime<chrono::Utc>)> = None;
    loop {
        tokio::select! {
            _ = crate::supervise::stopped(&mut shutdown) => return,
            changed = head_rx.changed() => if changed.is_err() || hub.is_closed() { return },
        }
        let head = *head_rx.borrow_and_update();
        let (frames, first) = hub.frames_since(next);
        if first > next {
            current = None; // a gap (cannot happen while it keeps up): start afresh
        }
        for frame in frames.iter().take_while(|f| f.seq < head) {
            let (held, _) = current.get_or_insert_with(|| {
                // This frame went on air (head − seq) frames ago.
                let age = chrono::Duration::microseconds(((head - frame.seq) as f64 * frame_s * 1e6) as i64);
                (Vec::with_capacity(SEGMENT_FRAMES as usize), chrono::Utc::now() - age)
            });
            held.push(frame.clone());
            if held.len() as u64 == SEGMENT_FRAMES {
                let (held, pdt) = current.take().expect("a segment in progress");
                let data = mux(&mut muxer, &held, hub.rate.0);
                hls.push(Segment { seq, duration_s: held.len() as f64 * frame_s, program_date_time: pdt, data });
                seq += 1;
            }
            next = frame.seq + 1;
        }
    }
}
