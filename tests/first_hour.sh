#!/usr/bin/env bash
# A new user's first hour, following the README: a clean clone in a scratch
# folder, the command built as the README says, the station started on the
# demo library and played with ffmpeg, a folder of one's own music added
# (generated here), seen on /status, stopped. Then the mistakes a user
# makes: a wrong key, a wrong value, a missing plugin, a missing config
# file — each one clear message, exit status 1, no backtrace even with
# RUST_BACKTRACE=1. Also: logs written to a file carry no escape codes, two
# starts do not open with the same track, a 5-second clip is not scheduled.
#
# The build reuses this checkout's target folder (CARGO_TARGET_DIR), so only
# nonstop itself is compiled again for the clone.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

source "$repo/tests/lib.sh"
need ffmpeg curl python3 git

scratch=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$scratch"; }
trap cleanup EXIT

# 1. Clone and build, as the README says (cargo build --release; the
#    command is target/release/nonstop).
git clone -q "$repo" "$scratch/nonstop"
cd "$scratch/nonstop"
export CARGO_TARGET_DIR="$repo/target"
cargo build --release --quiet
export PATH="$CARGO_TARGET_DIR/release:$PATH"
command -v nonstop >/dev/null && pass "the nonstop command: $(nonstop --version)" || fail "no nonstop command after the build"

start() { # extra args...; the station on a free local port, logs to a file
  nonstop --listen 127.0.0.1:0 "$@" >"$scratch/out" 2>"$scratch/log" &
  pid=$!
  listening "$pid" "$scratch/out" "$scratch/log" 1200
}
stop() {
  kill -INT "$pid"
  wait "$pid" && code=0 || code=$?
  pid=""
  return "$code"
}
status() { curl -sf "http://$addr/status"; }
jq_py() { python3 -c "import json,sys; s=json.loads(sys.argv[1]); print($2)" "$1"; }
now_playing() { # waits for the first title on air
  for _ in $(seq 1 300); do
    t=$(jq_py "$(status)" "(s.get('now_playing') or {}).get('title', '')")
    [ -n "$t" ] && { echo "$t"; return; }
    sleep 0.2
  done
}

# 2. The station on the demo library, played with ffmpeg.
start || { echo "the station did not start"; exit 1; }
first=$(now_playing)
ffmpeg -nostdin -v error -i "http://$addr/stream.mp3" -t 10 -f null - 2>"$scratch/ffmpeg.err" || true
[ ! -s "$scratch/ffmpeg.err" ] && pass "ffmpeg played 10 s of the demo station ($first) with no error" || fail "ffmpeg: $(head -3 "$scratch/ffmpeg.err")"
if grep -q $'\e\[' "$scratch/log"; then fail "the log file has escape codes"; else pass "the log file has no escape codes ($(wc -l <"$scratch/log") lines)"; fi
stop && grep -q "^stopped" "$scratch/log" && pass "Ctrl-C: exit status 0, last line '$(tail -n1 "$scratch/log")'" || fail "Ctrl-C: $(tail -n2 "$scratch/log")"

# 3. Two starts in a row: the second does not open with the same track.
start || { echo "the station did not restart"; exit 1; }
second=$(now_playing)
[ "$second" != "$first" ] && pass "the second start opened with '$second', not '$first' again" || fail "both starts opened with '$first'"

# 4. Own music: three songs and a 5-second clip, made with ffmpeg.
mkdir -p data/library/own
song() { # file, title, pitch Hz, beat period s
  ffmpeg -nostdin -v error -f lavfi -i "aevalsrc=0.4*sin(2*PI*$3*t)*exp(-12*mod(t\,$4))+0.3*sin(2*PI*55*t)*exp(-30*mod(t\,$4)):s=44100:d=$5" \
    -ac 2 -b:a 160k -metadata title="$2" -metadata artist="Own Band" "$1"
}
song "$scratch/a.mp3" "First Song" 440 0.5 70
song "$scratch/b.mp3" "Second Song" 330 0.48 70
song "$scratch/c.mp3" "Third Song" 392 0.5 70
song "$scratch/jingle.mp3" "Station Jingle" 880 0.5 5
mv "$scratch"/{a,b,c,jingle}.mp3 data/library/own/
for _ in $(seq 1 600); do
  s=$(status)
  [ "$(jq_py "$s" "s['library']['playable'] == 3 and s['library']['too_short'] == 1")" = True ] && break
  sleep 0.2
done
s=$(status)
if [ "$(jq_py "$s" "s['library']['playable'] == 3 and s['library']['too_short'] == 1")" = True ]; then
  pass "own music on /status: 3 playable, the 5-second clip counted as too short"
else
  fail "own music not seen: $(jq_py "$s" "s['library']")"
fi
own_only="all(u['artist'] == 'Own Band' and 'Jingle' not in u['title'] for u in s['upcoming']) and len(s['upcoming']) > 0"
for _ in $(seq 1 100); do
  [ "$(jq_py "$(status)" "$own_only")" = True ] && break
  sleep 0.2
done
up=$(jq_py "$(status)" "', '.join(u['title'] for u in s['upcoming'])")
if [ "$(jq_py "$(status)" "$own_only")" = True ]; then pass "upcoming only from the own library, no clip: $up"; else fail "upcoming: $up"; fi
stop || fail "second stop: exit status $?"

# 5. Mistakes: one clear message each, exit status 1, no backtrace.
mistake() { # what, expected text, args...
  local what=$1 want=$2; shift 2
  if RUST_BACKTRACE=1 nonstop "$@" >"$scratch/m.out" 2>"$scratch/m.err"; then
    fail "$what: exit status 0"
    return
  else
    code=$?
  fi
  msg=$(head -n1 "$scratch/m.err")
  if [ "$code" = 1 ] && [[ "$msg" == error:* ]] && grep -q -- "$want" "$scratch/m.err" \
    && ! grep -qiE "backtrace|panicked|^ +[0-9]+: " "$scratch/m.err"; then
    pass "$what: '$msg'"
  else
    fail "$what (status $code): $(head -n5 "$scratch/m.err")"
  fi
}
printf '[server]\nlisten_address = "0.0.0.0:8000"\n' >"$scratch/wrong-key.toml"
mistake "a wrong key" "listen_address" --config "$scratch/wrong-key.toml"
printf '[stream]\nbitrate_kbps = 100\n' >"$scratch/wrong-value.toml"
mistake "a wrong value" "stream.bitrate_kbps = 100" --config "$scratch/wrong-value.toml"
printf '[ordering]\nplugin = "nosuch"\n' >"$scratch/no-plugin.toml"
mistake "a missing plugin" "nosuch" --config "$scratch/no-plugin.toml"
mistake "a missing config file" "missing.toml" --config "$scratch/missing.toml"

echo "$failures failed"
[ "$failures" = 0 ]
