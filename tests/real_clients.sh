#!/usr/bin/env bash
# Checks nonstop against real players from Debian: ffmpeg/ffprobe and mpg123.
# Installs them with apt-get, starts the server built by `cargo test --release` on a
# fresh data folder (so the demo library is synthesised), and checks:
#   - ffmpeg decodes a full minute of the stream with zero errors, while
#     the active ordering plugin is replaced (hot reload) halfway;
#   - ffprobe sees MP3, 44.1 kHz, stereo, 128 kbps;
#   - mpg123 plays it and shows the ICY StreamTitle;
#   - RSS stays flat while streaming (printed);
#   - a restart reuses the catalogue; SIGTERM shuts down cleanly;
#   - promtool accepts /metrics; `nonstop loadtest` with 300 listeners.
set -euo pipefail
cd "$(dirname "$0")/.."

source tests/lib.sh
need ffmpeg ffprobe=ffmpeg mpg123 curl python3 promtool=prometheus

bin=target/release/nonstop
[ -x "$bin" ] || cargo build --release --quiet
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Plugins in the work folder (written there by the server at first start),
# so the hot-reload check does not touch the repository's plugins/.
printf '[ordering]\nplugins_dir = "%s/plugins"\n\n[[mounts]]\npath = "/low.mp3"\nbitrate_kbps = 64\n' "$work" >"$work/nonstop.toml"

start() {
  "$bin" --config "$work/nonstop.toml" --listen 127.0.0.1:0 --data "$work/data" >"$work/out" 2>"$work/err" &
  pid=$!
  listening "$pid" "$work/out" "$work/err"
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

start || { echo "server did not start"; exit 1; }
url="http://$addr/stream.mp3"
echo "server on $addr (demo library: $(ls "$work/data/demo" | wc -l) files)"

probe=$(ffprobe -v error -show_entries stream=codec_name,sample_rate,channels,bit_rate -of default=nw=1 -read_intervals "%+3" "$url" </dev/null || true)
if grep -q codec_name=mp3 <<<"$probe" && grep -q sample_rate=44100 <<<"$probe" && grep -q channels=2 <<<"$probe" && grep -q bit_rate=128000 <<<"$probe"; then
  pass "ffprobe: mp3, 44100 Hz, stereo, 128 kbps"
else
  fail "ffprobe: $probe"
fi

rss_start=$(rss_kb)
start_s=$(date +%s.%N)
version_before=$(curl -sf "http://$addr/status" | python3 -c "import json,sys; print(json.load(sys.stdin)['ordering']['version'])")
# Halfway through the minute a curator saves a new version of the active plugin.
(sleep 30; cp "$work/plugins/harmonic.rhai" "$work/plugins/tour.rhai") &
ffmpeg -nostdin -v error -i "$url" -t 60 -f null - 2>"$work/ffmpeg.err" || true
elapsed=$(python3 -c "import time; print(f'{time.time() - $start_s:.1f}')")
rss_end=$(rss_kb)
if [ ! -s "$work/ffmpeg.err" ]; then
  pass "ffmpeg decoded 60 s of stream with zero errors (took ${elapsed} s wall)"
else
  fail "ffmpeg errors: $(head -5 "$work/ffmpeg.err")"
fi
ordering=$(curl -sf "http://$addr/status")
if python3 -c "
import json,sys
o = json.loads(sys.argv[1])['ordering']
assert o['reloads'] == 1 and o['errors'] == 0 and o['version'] != sys.argv[2], o
assert all(u['by'] == 'tour' for u in o['upcoming']), o
" "$ordering" "$version_before"; then
  pass "plugin saved mid-stream: swapped in (reloads=1, errors=0, new version) while ffmpeg read on"
else
  fail "plugin hot reload: $ordering"
fi
echo "     RSS while streaming: ${rss_start} kB at start, ${rss_end} kB after 60 s"
if [ "$rss_end" -lt $((rss_start + rss_start / 2 + 20000)) ]; then
  pass "memory flat: RSS $rss_start kB -> $rss_end kB"
else
  fail "RSS grew from $rss_start kB to $rss_end kB in 60 s"
fi
# DESIGN.md: peak under 128 MiB with the demo library. The high-water mark
# since start covers the first start's demo synthesis and analysis too.
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
if [ "$hwm" -lt $((128 * 1024)) ]; then
  pass "peak memory since the first start (demo made, analysed, 60 s streamed): $((hwm / 1024)) MiB, under 128"
else
  fail "peak memory since the first start: $((hwm / 1024)) MiB, over 128"
fi

timeout 20 mpg123 -v -t -n 300 "$url" >"$work/mpg123.out" 2>&1 || true
if grep -q "StreamTitle=" "$work/mpg123.out" || grep -qi "ICY-META" "$work/mpg123.out"; then
  title=$(grep -o "StreamTitle='[^;]*'" "$work/mpg123.out" | head -n1)
  pass "mpg123 played 300 frames and saw ICY metadata: $title"
else
  fail "mpg123: $(tail -5 "$work/mpg123.out")"
fi

status=$(curl -sf "http://$addr/status")
if python3 -c "import json,sys; s=json.loads(sys.argv[1]); assert s['library']['playable'] == 8 and s['broadcast']['frames_sent'] > 0, s" "$status"; then
  underruns=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['broadcast']['underruns'])" "$status")
  pass "/status: 8 playable demo tracks, underruns=$underruns"
else
  fail "/status: $status"
fi

kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then fail "SIGTERM: still running after 10 s"; else
  wait "$pid" && pass "SIGTERM: clean exit" || fail "SIGTERM: exit code $?"
fi
pid=""

start || { echo "server did not restart"; exit 1; }
if grep -q "8 files, 8 unchanged, 0 new or changed" "$work/err"; then
  pass "restart reused the catalogue (8 unchanged files, none decoded again)"
else
  fail "restart rescanned: $(grep library: "$work/err")"
fi

# HLS: ffmpeg plays 30 s from the playlist with no error; the playlist holds
# together (durations within the target, the media sequence moving on,
# program dates on the station's clock).
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://$addr/hls/live.m3u8" && break; sleep 0.2; done # the first segment: 2 s
ffmpeg -nostdin -v error -i "http://$addr/hls/live.m3u8" -t 60 -f null - 2>"$work/hls.err" || true
[ ! -s "$work/hls.err" ] && pass "ffmpeg decoded 60 s of /hls/live.m3u8 (MPEG-TS with timed ID3) with zero errors" || fail "HLS: $(head -3 "$work/hls.err")"

# Two mounts at once: /stream.mp3 (128 kbps) and /low.mp3 (64 kbps), 30 s
# each from two ffmpeg processes side by side, at real time, no errors.
t0=$(date +%s.%N)
ffmpeg -nostdin -v error -i "http://$addr/stream.mp3" -t 30 -f null - 2>"$work/m1.err" &
m1=$!
ffmpeg -nostdin -v error -i "http://$addr/low.mp3" -t 30 -f null - 2>"$work/m2.err" || true
wait "$m1" || true
wall=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
low_probe=$(ffprobe -v error -show_entries stream=sample_rate,bit_rate -of csv=p=0 -read_intervals "%+2" "http://$addr/low.mp3" </dev/null || true)
mounts=$(curl -sf "http://$addr/status" | python3 -c "
import json, sys
s = json.load(sys.stdin)
m = s['mounts'][0]
print(f\"main encoder {s['broadcast']['encoder_cpu_percent']:.1f}% of a core, /low.mp3 encoder {m['encoder_cpu_percent']:.1f}%; /low.mp3 underruns {m['underruns']}, PCM dropped {m['pcm_dropped']}\")")
echo "     $mounts"
if [ ! -s "$work/m1.err" ] && [ ! -s "$work/m2.err" ] && [ "$low_probe" = "44100,64000" ] && python3 -c "import sys; sys.exit(not 26 <= $wall <= 31)"; then
  pass "two mounts at once: ffmpeg decoded 30 s of /stream.mp3 and of /low.mp3 ($low_probe) with zero errors in $wall s wall (3 s of it the burst)"
else
  fail "two mounts: wall $wall s, /low.mp3 '$low_probe', errors: $(head -2 "$work/m1.err" "$work/m2.err")"
fi
m1=$(curl -sf "http://$addr/hls/live.m3u8" || true); sleep 3; m2=$(curl -sf "http://$addr/hls/live.m3u8" || true)
if python3 - "$m1" "$m2" <<'PY'
import sys, datetime
def parse(m):
    lines = m.splitlines()
    assert lines[0] == "#EXTM3U", m
    target = int(next(l for l in lines if l.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
    seq = int(next(l for l in lines if l.startswith("#EXT-X-MEDIA-SEQUENCE:")).split(":")[1])
    durs = [float(l[8:].rstrip(",")) for l in lines if l.startswith("#EXTINF:")]
    pdts = [datetime.datetime.fromisoformat(l.split(":", 1)[1].replace("Z", "+00:00")) for l in lines if l.startswith("#EXT-X-PROGRAM-DATE-TIME:")]
    assert durs and all(d <= target for d in durs), (target, durs)
    for a, b, d in zip(pdts, pdts[1:], durs):
        assert abs((b - a).total_seconds() - d) < 0.05, (a, b, d)
    return seq, pdts[-1] + datetime.timedelta(seconds=durs[-1])
s1, _ = parse(sys.argv[1]); s2, end = parse(sys.argv[2])
assert s2 > s1, (s1, s2)
lag = (datetime.datetime.now(datetime.timezone.utc) - end).total_seconds()
assert -0.2 <= lag <= 2.5, lag
print(f"     media sequence {s1} -> {s2} in 3 s; newest segment ended {lag:.2f} s ago by its program date")
PY
then pass "HLS playlist: segments within the target duration, sequence moving on, program dates consecutive and on the clock"; else fail "HLS playlist: $m2"; fi

# In-band titles: the segments' timed ID3, read while a transition airs.
if python3 tests/hls_id3.py "http://$addr" 150; then
  pass "HLS titles in-band (timed ID3) where the audio changes"
else
  fail "HLS timed ID3 (see above)"
fi

# Prometheus's own checker on the scrape.
if curl -sf "http://$addr/metrics" | promtool check metrics >"$work/promtool.out" 2>&1; then
  pass "promtool check metrics: /metrics is valid ($(curl -sf "http://$addr/metrics" | grep -c '^nonstop_') samples)"
else
  fail "promtool: $(head -5 "$work/promtool.out")"
fi

# The load tool against the live station: a small crowd, every byte timed.
if "$bin" loadtest --url "http://$addr/stream.mp3" --pid "$pid" --listeners 300 --ramp 300 --seconds 5 --json >"$work/load.json"; then
  if python3 -c "
import json,sys; r=json.load(open(sys.argv[1]))
assert r['connected'] == 300 and r['dropped'] == 0 and r['below_0_99'] == 0, r
print(f\"     300 listeners: first byte p99 {r['ttfb_p99_ms']:.1f} ms, rate min {r['rate_min']:.4f}x, server {r['server_cpu_pct']:.1f}% of a core\")
" "$work/load.json"; then pass "nonstop loadtest: 300 listeners connected, none below 0.99x real time"; else fail "loadtest: $(cat "$work/load.json")"; fi
else
  fail "nonstop loadtest failed to run"
fi

kill -TERM "$pid"; wait "$pid" || true; pid=""

# Transitions, rendered unpaced through the same mixer and encoder: ffmpeg
# must decode every frame of six minutes (several hand-overs) without error.
if "$bin" render --minutes 6 --out "$work/render.mp3" --data "$work/data" >"$work/render.out" 2>"$work/render.err"; then
  sed 's/^/     /' "$work/render.out"
  ffmpeg -nostdin -v error -i "$work/render.mp3" -f null - 2>"$work/render.ff" || true
  dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$work/render.mp3")
  if [ ! -s "$work/render.ff" ] && python3 -c "import sys; sys.exit(0 if abs(float('$dur') - 360) < 2 else 1)"; then
    pass "ffmpeg decoded a 6-minute render with transitions (${dur} s) with zero errors"
  else
    fail "render: duration $dur, ffmpeg: $(head -3 "$work/render.ff")"
  fi
  peak=$(sed -n 's/^peak memory (RSS): \([0-9.]*\) MiB$/\1/p' "$work/render.out")
  if [ -n "$peak" ] && python3 -c "import sys; sys.exit(0 if float('$peak') < 128 else 1)"; then
    pass "render's peak memory ${peak} MiB, under 128"
  else
    fail "render's peak memory '${peak}' MiB, not under 128"
  fi
else
  fail "render: $(tail -3 "$work/render.err")"
fi

echo "$failures failed"
[ "$failures" = 0 ]
