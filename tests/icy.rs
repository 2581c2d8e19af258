//! ICY metadata: exact offsets, and titles that change when the audio does.

use std::time::{Duration, Instant};

use crate::util::*;

/// Reads an ICY stream: returns the audio bytes and each non-empty metadata
/// block's title with the audio offset it was found at.
async fn read_icy(c: &mut Client, metaint: usize, until: impl Fn(&[(usize, String)]) -> bool, limit: Duration) -> (Vec<u8>, Vec<(usize, String)>) {
    let mut audio = Vec::new();
    let mut titles: Vec<(usize, String)> = Vec::new();
    let start = Instant::now();
    while !until(&titles) && start.elapsed() < limit {
        audio.extend(c.read_exact(metaint).await.unwrap());
        let len = c.read_exact(1).await.unwrap()[0] as usize * 16;
        if len == 0 {
            continue;
        }
        let meta = c.read_exact(len).await.unwrap();
        let text = String::from_utf8(meta).unwrap();
        let text = text.trim_end_matches('\0');
        let title = text
            .strip_prefix("StreamTitle='")
            .and_then(|t| t.strip_suffix("';"))
            .unwrap_or_else(|| panic!("malformed metadata block {text:?} at audio byte {}", audio.len()));
        titles.push((audio.len(), title.to_string()));
    }
    (audio, titles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_blocks_sit_at_metaint_and_title_follows_the_audio() {
    let t = start_station(|_| {}, |_| {}).await;
    let mut c = get(t.addr, "/stream.mp3", &[("Icy-MetaData", "1")]).await;
    let metaint: usize = c.header("icy-metaint").expect("icy-metaint header").parse().unwrap();
    assert_eq!(metaint, 2048);
    assert_eq!(c.header("icy-name").as_deref(), Some("nonstop"));

    // Read until the title has changed twice, plus some audio after that.
    let (audio, titles) = read_icy(&mut c, metaint, |t| t.len() >= 3, Duration::from_secs(40)).await;
    assert!(titles.len() >= 3, "titles seen: {titles:?}");
    // Every block landed exactly at a metaint boundary of the audio, and the
    // audio between blocks is an unbroken run of MP3 frames.
    assert!(titles.iter().all(|(offset, _)| offset % metaint == 0));
    let frames = frames(&audio);
    let whole: usize = frames.iter().map(|f| f.len()).sum();
    let (pcm, bad) = decode(&audio[..whole]);
    assert_eq!(bad, 0);

    // Each title change is heard: the new track's tone becomes audible
    // within a few frames of the block that announces it.
    let frame_at = |byte: usize| {
        let mut pos = 0;
        frames.iter().position(|f| {
            pos += f.len();
            pos > byte
        })
    };
    for pair in titles.windows(2) {
        let (offset, title) = &pair[1];
        let track = TONES.iter().find(|x| title == &format!("{} - {}", x.artist, x.title)).expect("a library title");
        let Some(k_title) = frame_at(*offset) else { continue };
        let frame_pcm = |k: usize| &pcm[k * 1152..(k + 1) * 1152];
        let audible = |k: usize| hann_tone_power(frame_pcm(k), track.hz) > 1.6e-4;
        // The first frame around the announcement where the new tone is audible.
        let window = k_title.saturating_sub(40)..frames.len().min(k_title + 40);
        let k_heard = window.clone().find(|&k| audible(k)).unwrap_or_else(|| panic!("{title:?} never audible near frame {k_title}"));
        assert!(k_heard > window.start, "{title:?} was already audible 40 frames before its announcement");
        // The label flips where the fade-in starts; the tone passes the
        // threshold (-26 dB) a few frames into the fade (up to 0.2 s, as
        // the fade and the frame grid fall).
        assert!(k_title + 8 >= k_heard, "title {title:?} announced at frame {k_title}, {} frames before its tone", k_heard - k_title);
        let late = k_title.saturating_sub(k_heard);
        println!("{title}: tone audible from frame {k_heard}, announced in frame {k_title}");
        assert!(late <= 8, "title {title:?} announced {late} frames after the tone became audible");
    }
    t.station.shutdown().await;
}

/// Goertzel power of `hz` under a Hann window (no leakage from the other
/// tone, which is several bins away).
fn hann_tone_power(x: &[f32], hz: f32) -> f32 {
    let n = x.len() as f32;
    let windowed: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v * (0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n).cos()) * 2.0)
        .collect();
    tone_power(&windowed, hz)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_block_names_what_is_playing() {
    let t = start_station(|_| {}, |_| {}).await;
    let mut c = get(t.addr, "/stream.mp3", &[("Icy-MetaData", "1")]).await;
    let (_, titles) = read_icy(&mut c, 2048, |t| !t.is_empty(), Duration::from_secs(10)).await;
    assert_eq!(titles[0].0, 2048, "the first block carries the title");
    let s = status(t.addr).await;
    let now = format!("{} - {}", s["now_playing"]["artist"].as_str().unwrap(), s["now_playing"]["title"].as_str().unwrap());
    assert!(TONES.iter().any(|x| titles[0].1 == format!("{} - {}", x.artist, x.title)), "{titles:?}");
    // The listener is a burst (1 s) behind live, so it may still hear the
    // previous track; the title must be one of the library's either way.
    assert!(TONES.iter().any(|x| now == format!("{} - {}", x.artist, x.title)), "{now}");
    t.station.shutdown().await;
}
