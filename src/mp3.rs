//! MPEG audio frame headers: enough of the format to split LAME's output into
//! whole frames and to check a received stream frame by frame.

/// A parsed MPEG audio frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// 1 for MPEG-1, 2 for MPEG-2, 25 for MPEG-2.5.
    pub version: u8,
    /// 1, 2 or 3.
    pub layer: u8,
    pub bitrate_kbps: u32,
    pub sample_rate: u32,
    pub padding: bool,
    pub channels: u8,
}

impl FrameHeader {
    /// Parses the four header bytes at the start of `b`; `None` if they are
    /// not a valid header.
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
            return None;
        }
        let version = match (b[1] >> 3) & 0b11 {
            0b11 => 1,
            0b10 => 2,
            0b00 => 25,
            _ => return None,
        };
        let layer = match (b[1] >> 1) & 0b11 {
            0b01 => 3,
            0b10 => 2,
            0b11 => 1,
            _ => return None,
        };
        let bitrate_index = (b[2] >> 4) as usize;
        let rate_index = ((b[2] >> 2) & 0b11) as usize;
        if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
            return None;
        }
        const V1_L3: [u32; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
        const V1_L2: [u32; 15] = [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384];
        const V1_L1: [u32; 15] = [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448];
        const V2_L1: [u32; 15] = [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256];
        const V2_L23: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
        let bitrate_kbps = match (version, layer) {
            (1, 3) => V1_L3[bitrate_index],
            (1, 2) => V1_L2[bitrate_index],
            (1, _) => V1_L1[bitrate_index],
            (_, 1) => V2_L1[bitrate_index],
            _ => V2_L23[bitrate_index],
        };
        let base = [44_100, 48_000, 32_000][rate_index];
        let sample_rate = match version {
            1 => base,
            2 => base / 2,
            _ => base / 4,
        };
        let channels = if b[3] >> 6 == 0b11 { 1 } else { 2 };
        Some(FrameHeader { version, layer, bitrate_kbps, sample_rate, padding: b[2] & 0b10 != 0, channels })
    }

    /// Samples per channel in this frame.
    pub fn samples(&self) -> u32 {
        match (self.version, self.layer) {
            (_, 1) => 384,
            (1, _) | (_, 2) => 1152,
            _ => 576,
        }
    }

    /// Frame length in bytes, header included (never 0: no `is_empty`).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        let pad = self.padding as u32;
        let n = match self.layer {
            1 => (12 * self.bitrate_kbps * 1000 / self.sample_rate + pad) * 4,
            _ => self.samples() / 8 * self.bitrate_kbps * 1000 / self.sample_rate + pad,
        };
        n as usize
    }
}

/// Splits a byte stream into whole MPEG frames. Bytes before the first valid
/// header (an ID3 tag, garbage) are skipped and counted.
#[derive(Debug, Default)]
pub struct FrameSplitter {
    buf: Vec<u8>,
    pub skipped: u64,
}

impl FrameSplitter {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> Option<(FrameHeader, Vec<u8>)> {
        loop {
            if self.buf.len() < 4 {
                return None;
            }
            match FrameHeader::parse(&self.buf) {
                Some(h) => {
                    let len = h.len();
                    if self.buf.len() < len {
                        return None;
                    }
                    let rest = self.buf.split_off(len);
                    let frame = std::mem::replace(&mut self.buf, rest);
                    return Some((h, frame));
                }
                None => {
                    // Resynchronise on the next 0xFF.
                    let next = self.buf[1..].iter().position(|&b| b == 0xFF).map(|p| p + 1).unwrap_or(self.buf.len());
                    self.skipped += next as u64;
                    self.buf.drain(..next);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_128k_44k1_stereo() {
        let h = FrameHeader::parse(&[0xFF, 0xFB, 0x90, 0x64]).unwrap();
        assert_eq!((h.version, h.layer, h.bitrate_kbps, h.sample_rate), (1, 3, 128, 44_100));
        assert_eq!(h.len(), 417);
        assert_eq!(h.samples(), 1152);
        let padded = FrameHeader::parse(&[0xFF, 0xFB, 0x92, 0x64]).unwrap();
        assert_eq!(padded.len(), 418);
    }

    #[test]
    fn rejects_garbage() {
        assert!(FrameHeader::parse(&[0xFF, 0xFB, 0xF0, 0x64]).is_none());
        assert!(FrameHeader::parse(b"ID3\x04").is_none());
    }

    #[test]
    fn splitter_skips_junk_and_waits_for_whole_frames() {
        let mut frame = vec![0u8; 417];
        frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        let mut s = FrameSplitter::default();
        s.push(b"junk");
        s.push(&frame[..200]);
        assert!(s.next_frame().is_none());
        s.push(&frame[200..]);
        s.push(&frame);
        assert_eq!(s.next_frame().unwrap().1.len(), 417);
        assert_eq!(s.next_frame().unwrap().1, frame);
        assert!(s.next_frame().is_none());
        assert_eq!(s.skipped, 4);
    }
}
