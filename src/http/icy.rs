//! ICY (SHOUTcast) in-band metadata: after every `metaint` audio bytes, one
//! length byte (in units of 16) and that many bytes of
//! `StreamTitle='Artist - Title';`, NUL-padded. As Icecast does, the full
//! block is sent when the title changes (and first), an empty block (a lone
//! zero byte) otherwise. Audio is cut with `Bytes::slice`: no copy.

use std::sync::Arc;

use bytes::Bytes;

use crate::encoder::Frame;
use crate::mixer::OnAir;

/// Longest metadata block: the length byte counts 16-byte units.
const MAX_META: usize = 255 * 16;

/// Builds one metadata block for `title`.
pub fn metadata_block(title: &str) -> Bytes {
    // Quotes and newlines would end the value early in many players.
    let clean = title.chars().map(|c| if c == '\'' { '’' } else if c.is_control() { ' ' } else { c });
    let mut text = String::from("StreamTitle='");
    let room = MAX_META - "StreamTitle='';".len();
    for c in clean {
        if text.len() + c.len_utf8() > room + "StreamTitle='".len() {
            break;
        }
        text.push(c);
    }
    text.push_str("';");
    let text = text.into_bytes();
    let units = text.len().div_ceil(16);
    let mut block = Vec::with_capacity(1 + units * 16);
    block.push(units as u8);
    block.extend_from_slice(&text);
    block.resize(1 + units * 16, 0);
    Bytes::from(block)
}

/// Interleaves metadata into one listener's byte stream.
pub struct IcyWriter {
    metaint: usize,
    /// Audio bytes still to send before the next metadata block.
    until_meta: usize,
    /// The label whose title was last sent (compared by pointer).
    sent: Option<Arc<OnAir>>,
    sent_title: String,
}

impl IcyWriter {
    pub fn new(metaint: usize) -> IcyWriter {
        IcyWriter { metaint, until_meta: metaint, sent: None, sent_title: String::new() }
    }

    /// Appends the chunks that carry `frame` (and any metadata block that
    /// falls inside it) to `out`.
    pub fn push(&mut self, frame: &Frame, out: &mut Vec<Bytes>) {
        let mut data = frame.data.clone();
        while data.len() >= self.until_meta {
            let head = data.split_to(self.until_meta);
            if !head.is_empty() {
                out.push(head);
            }
            out.push(self.block_for(&frame.on_air));
            self.until_meta = self.metaint;
        }
        if !data.is_empty() {
            self.until_meta -= data.len();
            out.push(data);
        }
    }

    fn block_for(&mut self, on_air: &Arc<OnAir>) -> Bytes {
        if self.sent.as_ref().is_some_and(|s| Arc::ptr_eq(s, on_air)) {
            return Bytes::from_static(&[0]);
        }
        let title = on_air.stream_title();
        self.sent = Some(on_air.clone());
        if self.sent_title == title && !title.is_empty() {
            return Bytes::from_static(&[0]);
        }
        self.sent_title = title;
        metadata_block(&self.sent_title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MediaTime;

    #[test]
    fn block_is_padded_to_sixteen() {
        let b = metadata_block("A - B");
        assert_eq!(b[0] as usize * 16 + 1, b.len());
        assert!(b[1..].starts_with(b"StreamTitle='A - B';"));
        assert_eq!(metadata_block(&"x".repeat(10_000)).len(), 1 + MAX_META);
    }

    #[test]
    fn metadata_lands_every_metaint_bytes() {
        let on_air = Arc::new(OnAir::silence(MediaTime(0)));
        let mut w = IcyWriter::new(1000);
        let mut out = Vec::new();
        for seq in 0..10 {
            let frame = Frame { seq, media_time: MediaTime(0), on_air: on_air.clone(), data: Bytes::from(vec![0xAA; 417]), source: None };
            w.push(&frame, &mut out);
        }
        let stream: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        // 4170 audio bytes: blocks after 1000, 2000, 3000 and 4000 bytes.
        let mut pos = 0;
        let mut audio = 0;
        let mut blocks = 0;
        while pos < stream.len() {
            let take = (1000 - audio % 1000).min(stream.len() - pos);
            assert!(stream[pos..pos + take].iter().all(|&b| b == 0xAA));
            pos += take;
            audio += take;
            if audio % 1000 == 0 && pos < stream.len() {
                let len = stream[pos] as usize * 16;
                pos += 1 + len;
                blocks += 1;
            }
        }
        assert_eq!(audio, 4170);
        assert_eq!(blocks, 4);
    }
}
