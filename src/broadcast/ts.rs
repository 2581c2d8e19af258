//! MPEG-TS for the HLS segments: the station's MP3 frames as an MPEG-1
//! audio stream, and the titles as timed ID3 (the format Apple's HLS spec,
//! ffmpeg, hls.js and ExoPlayer read), each tag stamped with the media time
//! of the frame where the track becomes audible.
//!
//! A segment starts with the PAT and PMT, then the title on air (so a
//! player joining there has it), then the audio in PES packets of a few
//! frames; a title change inside the segment is a further ID3 PES at its
//! frame. Timestamps are the frames' media times on the 90 kHz clock, so
//! consecutive segments continue each other; continuity counters run on
//! across segments.

use crc::{Crc, CRC_32_MPEG_2};

use crate::units::MP3_FRAME_SAMPLES;

const PACKET: usize = 188;
const PAT_PID: u16 = 0;
const PMT_PID: u16 = 0x1000;
const AUDIO_PID: u16 = 0x100;
const ID3_PID: u16 = 0x101;
/// MP3 frames per audio PES packet.
const FRAMES_PER_PES: usize = 6;
const CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_MPEG_2);

/// The 90 kHz timestamp of media sample `samples` at `rate`.
fn pts(samples: u64, rate: u32) -> u64 {
    ((samples as u128 * 90_000 + rate as u128 / 2) / rate as u128) as u64 & ((1 << 33) - 1)
}

/// Continuity counters, kept from segment to segment.
#[derive(Debug, Default)]
pub struct Muxer {
    cc: [u8; 4],
}

/// One frame for a segment: its number (media time) and bytes, and the
/// title if it changes here.
pub struct TsFrame<'a> {
    pub seq: u64,
    pub data: &'a [u8],
    pub title: Option<(&'a str, &'a str)>,
}

impl Muxer {
    fn counter(&mut self, pid: u16) -> &mut u8 {
        let i = match pid {
            PAT_PID => 0,
            PMT_PID => 1,
            AUDIO_PID => 2,
            _ => 3,
        };
        &mut self.cc[i]
    }

    /// `payload` in TS packets on `pid`; the first starts a unit (PES or
    /// section); `pcr` goes into the first packet's adaptation field.
    fn packets(&mut self, out: &mut Vec<u8>, pid: u16, payload: &[u8], pcr: Option<u64>) {
        let mut rest = payload;
        let mut first = true;
        while first || !rest.is_empty() {
            let cc = self.counter(pid);
            let counter = *cc;
            *cc = (*cc + 1) & 0x0F;
            let start = out.len();
            out.push(0x47);
            out.push(((first as u8) << 6) | ((pid >> 8) as u8 & 0x1F));
            out.push(pid as u8);
            // Adaptation field: the PCR, and/or stuffing to fill the packet.
            let pcr_here = if first { pcr } else { None };
            let field_min = if pcr_here.is_some() { 8 } else { 0 };
            let room = PACKET - 4 - field_min;
            let take = rest.len().min(room);
            let field_len = PACKET - 4 - take; // bytes of the adaptation field incl. its length byte
            if field_len > 0 {
                out.push(0x30 | counter);
                out.push((field_len - 1) as u8);
                if field_len > 1 {
                    out.push(if pcr_here.is_some() { 0x10 } else { 0x00 });
                    let mut used = 2;
                    if let Some(base) = pcr_here {
                        out.extend_from_slice(&[
                            (base >> 25) as u8,
                            (base >> 17) as u8,
                            (base >> 9) as u8,
                            (base >> 1) as u8,
                            ((base & 1) << 7) as u8 | 0x7E,
                            0,
                        ]);
                        used += 6;
                    }
                    out.resize(out.len() + field_len - used, 0xFF);
                }
            } else {
                out.push(0x10 | counter);
            }
            out.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            debug_assert_eq!(out.len() - start, PACKET);
            first = false;
        }
    }

    /// A PSI section (PAT or PMT) with its CRC, as one packet.
    fn section(&mut self, out: &mut Vec<u8>, pid: u16, table_id: u8, id: u16, body: &[u8]) {
        let mut s = vec![table_id, 0, 0, (id >> 8) as u8, id as u8, 0xC1, 0, 0];
        s.extend_from_slice(body);
        let len = s.len() - 3 + 4;
        s[1] = 0xB0 | ((len >> 8) as u8 & 0x0F);
        s[2] = len as u8;
        s.extend_from_slice(&CRC.checksum(&s).to_be_bytes());
        let mut payload = vec![0u8]; // pointer field
        payload.extend(s);
        self.packets(out, pid, &payload, None);
    }

    fn tables(&mut self, out: &mut Vec<u8>) {
        // PAT: program 1 → the PMT.
        self.section(out, PAT_PID, 0x00, 1, &[0x00, 0x01, 0xE0 | (PMT_PID >> 8) as u8, PMT_PID as u8]);
        // PMT: PCR on the audio; program info: the ID3 metadata pointer;
        // streams: MPEG-1 audio, and ID3 in PES with its metadata descriptor.
        let id3 = |v: &mut Vec<u8>| {
            v.extend_from_slice(&[0xFF, 0xFF]);
            v.extend_from_slice(b"ID3 ");
            v.push(0xFF);
            v.extend_from_slice(b"ID3 ");
        };
        let mut pointer = vec![0x25, 15];
        id3(&mut pointer);
        pointer.extend_from_slice(&[0x00, 0x1F, 0x00, 0x01]);
        let mut descriptor = vec![0x26, 13];
        id3(&mut descriptor);
        descriptor.extend_from_slice(&[0x00, 0x0F]);
        let mut body = vec![0xE0 | (AUDIO_PID >> 8) as u8, AUDIO_PID as u8, 0xF0, pointer.len() as u8];
        body.extend(pointer);
        body.extend_from_slice(&[0x03, 0xE0 | (AUDIO_PID >> 8) as u8, AUDIO_PID as u8, 0xF0, 0x00]);
        body.extend_from_slice(&[0x15, 0xE0 | (ID3_PID >> 8) as u8, ID3_PID as u8, 0xF0, descriptor.len() as u8]);
        body.extend(descriptor);
        self.section(out, PMT_PID, 0x02, 1, &body);
    }

    /// A PES packet with a PTS.
    fn pes(stream_id: u8, pts: u64, data: &[u8]) -> Vec<u8> {
        let mut p = vec![0, 0, 1, stream_id, 0, 0, 0x84, 0x80, 5];
        p.extend_from_slice(&[
            0x21 | ((pts >> 29) as u8 & 0x0E),
            (pts >> 22) as u8,
            0x01 | ((pts >> 14) as u8 & 0xFE),
            (pts >> 7) as u8,
            0x01 | ((pts << 1) as u8 & 0xFE),
        ]);
        p.extend_from_slice(data);
        let len = p.len() - 6;
        if len <= 0xFFFF {
            p[4] = (len >> 8) as u8;
            p[5] = len as u8;
        }
        p
    }

    /// One segment: tables, the title on air at its start, the audio, and
    /// any title change at its frame.
    pub fn segment(&mut self, frames: &[TsFrame<'_>], title_at_start: (&str, &str), rate: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(frames.iter().map(|f| f.data.len()).sum::<usize>() * 11 / 10 + 4 * PACKET);
        self.tables(&mut out);
        let Some(first) = frames.first() else { return out };
        let at = |seq: u64| pts(seq * MP3_FRAME_SAMPLES, rate);
        let id3 = Self::pes(0xBD, at(first.seq), &id3_tag(title_at_start.0, title_at_start.1));
        self.packets(&mut out, ID3_PID, &id3, None);
        let mut pcr = Some(at(first.seq));
        let mut i = 0;
        while i < frames.len() {
            // Up to FRAMES_PER_PES frames, ending before the next title change.
            let mut end = i + 1;
            while end < frames.len() && end - i < FRAMES_PER_PES && frames[end].title.is_none() {
                end += 1;
            }
            if let (Some((title, artist)), true) = (frames[i].title, i > 0) {
                let id3 = Self::pes(0xBD, at(frames[i].seq), &id3_tag(title, artist));
                self.packets(&mut out, ID3_PID, &id3, None);
            }
            let data: Vec<u8> = frames[i..end].iter().flat_map(|f| f.data.iter().copied()).collect();
            let pes = Self::pes(0xC0, at(frames[i].seq), &data);
            self.packets(&mut out, AUDIO_PID, &pes, pcr.take());
            i = end;
        }
        out
    }
}

/// An ID3v2.4 tag with the title and the artist (UTF-8).
pub fn id3_tag(title: &str, artist: &str) -> Vec<u8> {
    let syncsafe = |n: usize| [(n >> 21) as u8 & 0x7F, (n >> 14) as u8 & 0x7F, (n >> 7) as u8 & 0x7F, n as u8 & 0x7F];
    let mut frames = Vec::new();
    for (id, text) in [(b"TIT2", title), (b"TPE1", artist)] {
        if text.is_empty() {
            continue;
        }
        frames.extend_from_slice(id);
        frames.extend_from_slice(&syncsafe(text.len() + 1));
        frames.extend_from_slice(&[0, 0, 0x03]);
        frames.extend_from_slice(text.as_bytes());
    }
    let mut tag = b"ID3\x04\x00\x00".to_vec();
    tag.extend_from_slice(&syncsafe(frames.len()));
    tag.extend(frames);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_whole_and_counted() {
        let mut m = Muxer::default();
        let frame = vec![0xAB; 418];
        let frames: Vec<TsFrame> = (0..77)
            .map(|i| TsFrame { seq: 1000 + i, data: &frame, title: (i == 40).then_some(("Next", "Artist")) })
            .collect();
        let seg = m.segment(&frames, ("Now", "Someone"), 44_100);
        assert_eq!(seg.len() % PACKET, 0);
        assert!(seg.chunks(PACKET).all(|p| p[0] == 0x47));
        // Every audio byte is there, and both titles.
        let audio: usize = seg.chunks(PACKET).filter(|p| ((p[1] as u16 & 0x1F) << 8 | p[2] as u16) == AUDIO_PID).count();
        assert!(audio * 184 >= 77 * 418);
        let text = String::from_utf8_lossy(&seg);
        assert!(text.contains("Now") && text.contains("Next"));
        // Continuity counters go on in the next segment.
        let next = m.segment(&frames, ("Now", "Someone"), 44_100);
        let cc = |s: &[u8], pid: u16| {
            s.chunks(PACKET).filter(|p| ((p[1] as u16 & 0x1F) << 8 | p[2] as u16) == pid).map(|p| p[3] & 0x0F).collect::<Vec<_>>()
        };
        let (a, b) = (cc(&seg, AUDIO_PID), cc(&next, AUDIO_PID));
        assert_eq!((a.last().unwrap() + 1) & 0x0F, b[0]);
    }

    #[test]
    fn timestamps_follow_media_time() {
        assert_eq!(pts(44_100, 44_100), 90_000);
        assert_eq!(pts(1152 * 77, 44_100), 181_029);
    }
}
