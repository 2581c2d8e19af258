//! The library and catalogue: bad files, restarts.

use std::time::Duration;

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_files_are_reported_and_skipped() {
    let t = start_station(
        |lib| {
            let noise: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            std::fs::write(lib.join("broken.mp3"), noise).unwrap();
            std::fs::write(lib.join("empty.flac"), b"").unwrap();
            std::fs::write(lib.join("notes.txt"), b"not audio").unwrap();
            // A format the decoder does not read is listed, not passed over.
            std::fs::write(lib.join("voice.wma"), b"\x30\x26\xb2\x75\x8e\x66\xcf\x11 an ASF header, then nothing").unwrap();
        },
        |_| {},
    )
    .await;
    let s = status(t.addr).await;
    assert_eq!(s["library"]["tracks"], 6, "{s}");
    assert_eq!(s["library"]["playable"], 3);
    assert_eq!(s["library"]["failed"], 3);
    let failed = s["library"]["failed_files"].as_array().unwrap();
    for name in ["broken.mp3", "empty.flac", "voice.wma"] {
        let f = failed.iter().find(|f| f["path"].as_str().unwrap().ends_with(name)).expect(name);
        assert!(!f["error"].as_str().unwrap().is_empty(), "{f}");
    }
    // The station plays the good tracks.
    let mut c = get(t.addr, "/stream.mp3", &[]).await;
    let bytes = c.read_for(Duration::from_secs(2)).await;
    let frames = frames(&bytes);
    let whole: usize = frames.iter().map(|f| f.len()).sum();
    assert_eq!(decode(&bytes[..whole]).1, 0);
    t.station.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reuses_the_catalogue() {
    let t = start_station(|_| {}, |_| {}).await;
    assert_eq!((t.station.scan.added, t.station.scan.unchanged), (3, 0));
    let s = status(t.addr).await;
    assert_eq!(s["library"]["analysed"], 3, "{s}");
    let TestStation { station, dir, .. } = t;
    station.shutdown().await;
    let config = test_config(dir.path());
    let again = start_on(dir, config).await;
    assert_eq!((again.station.scan.added, again.station.scan.unchanged), (0, 3));
    // A changed file is decoded again; a removed one leaves the catalogue.
    let lib = again.library();
    let TestStation { station, dir, .. } = again;
    station.shutdown().await;
    std::fs::remove_file(lib.join("Low.mp3")).unwrap();
    write_tone_library(&lib, &[ToneTrack { title: "Mid", artist: "Tones", hz: 600.0, seconds: 5.0 }]);
    let config = test_config(dir.path());
    let third = start_on(dir, config).await;
    let scan = &third.station.scan;
    assert_eq!((scan.added, scan.unchanged, scan.removed), (1, 1, 1), "{scan:?}");
    assert_eq!(status(third.addr).await["library"]["playable"], 2);
    third.station.shutdown().await;
}
