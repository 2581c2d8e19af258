#!/usr/bin/env bash
# nonstop against a real Icecast, side by side in one run, with
# `nonstop loadtest` (the same listeners, ramp and window for both).
#
#   bash tests/loadtest.sh [SIZES...]        default: 1000 10000
#
# Installs icecast2, ffmpeg and python3 with apt-get when missing, starts
# nonstop (release build) on a fresh data folder, starts icecast2 on a free
# port fed with nonstop's own stream by ffmpeg (same bitrate, same frames),
# then for each size runs the load against both and prints the figures and
# the ratios. Then the largest count the open-files limit allows (20,000
# where it can) against nonstop alone, and 2,000 connect/disconnect cycles.
# Exits non-zero when a target of issue #7 is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-1000}")
[ $# -gt 0 ] || sizes=(1000 10000)
ramp=${RAMP:-1000}
seconds=${SECONDS_MEASURED:-30}

source tests/lib.sh
need icecast2 ffmpeg python3 curl

bin=target/release/nonstop
[ -x "$bin" ] || cargo build --release --quiet
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)

work=$(mktemp -d)
chmod 777 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
check() { if python3 -c "import sys; sys.exit(0 if ($2) else 1)"; then pass "$1"; else fail "$1"; fi; }

free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
# A stream never ends: wait for its status line, not its body.
wait_http() {
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.2
  done
  echo "no answer from $1"; exit 1
}

# nonstop, room for everyone the open-files limit allows.
cat >"$work/nonstop.toml" <<EOF
[server]
max_listeners = 25000
[ordering]
plugins_dir = "$work/plugins"
EOF
"$bin" --config "$work/nonstop.toml" --listen 127.0.0.1:0 --data "$work/data" >"$work/nonstop.out" 2>"$work/nonstop.err" &
pids+=($!); nonstop_pid=$!
listening "$nonstop_pid" "$work/nonstop.out" "$work/nonstop.err" || { echo "nonstop did not start"; exit 1; }
nonstop_url="http://$addr/stream.mp3"
wait_http "$nonstop_url"

# Icecast 2.4, as its package ships it but with room for the listeners;
# it refuses to run as root, so it changes to nobody.
ice_port=$(free_port)
cat >"$work/icecast.xml" <<EOF
<icecast>
  <limits><clients>25000</clients><sources>2</sources><burst-size>49152</burst-size></limits>
  <authentication><source-password>loadtest</source-password><admin-user>admin</admin-user><admin-password>loadtest</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>$ice_port</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <fileserve>0</fileserve>
  <paths><logdir>$work</logdir><webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot></paths>
  <logging><errorlog>icecast.err</errorlog><accesslog>-</accesslog><loglevel>2</loglevel></logging>
  <security><chroot>0</chroot><changeowner><user>nobody</user><group>nogroup</group></changeowner></security>
</icecast>
EOF
icecast2 -c "$work/icecast.xml" >"$work/icecast.out" 2>&1 &
pids+=($!); ice_pid=$!
sleep 1
ffmpeg -nostdin -v error -i "$nonstop_url" -c:a copy -f mp3 -content_type audio/mpeg \
  "icecast://source:loadtest@127.0.0.1:$ice_port/live.mp3" 2>"$work/ffmpeg.err" &
pids+=($!)
ice_url="http://127.0.0.1:$ice_port/live.mp3"
wait_http "$ice_url"
sleep 5 # its burst buffer fills
echo "nonstop $nonstop_url (pid $nonstop_pid), icecast2 $ice_url (pid $ice_pid), open-files limit $limit"

run() { # name url pid listeners
  echo "--- $1, $4 listeners, $ramp/s, ${seconds} s measured"
  "$bin" loadtest --url "$2" --pid "$3" --listeners "$4" --ramp "$ramp" --seconds "$seconds" --json >"$work/$1-$4.json"
  python3 - "$work/$1-$4.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  connected {r['connected']}/{r['listeners']}, failed {r['failed']}, dropped {r['dropped']}"
      + (f" ({r['failure'][0]}: {r['failure'][1]})" if r['failure'] else ""))
print(f"  first byte p50 {r['ttfb_p50_ms']:.1f} ms, p99 {r['ttfb_p99_ms']:.1f} ms")
print(f"  rate min {r['rate_min']:.4f}x, p1 {r['rate_p1']:.4f}x; longest pause p99 {r['longest_pause_p99_ms']:.0f} ms")
print(f"  server CPU {r['server_cpu_pct']:.1f}% of a core ({r['server_cpu_pct_per_1k']:.2f}% per 1,000), "
      f"{r['server_idle_cpu_pct']:.1f}% before the listeners came: theirs {r['server_listener_cpu_pct_per_1k']:.2f}% per 1,000")
per = r['server_rss_per_listener_kib']
print(f"  server RSS {r['server_rss_before_mib']:.1f} -> {r['server_rss_after_mib']:.1f} MiB (least seen); "
      + (f"{per:.2f} KiB per arriving listener" if per is not None else "too few steps for the growth per listener"))
EOF
  sleep 5 # the listeners' sockets close
}
field() { python3 -c "import json; print(json.load(open('$work/$1.json'))['$2'])"; }

for n in "${sizes[@]}"; do
  run nonstop "$nonstop_url" "$nonstop_pid" "$n"
  run icecast "$ice_url" "$ice_pid" "$n"
  # What listeners cost: CPU above what each server used alone (nonstop
  # also mixes and encodes; Icecast only relays).
  a=$(field "nonstop-$n" server_listener_cpu_pct_per_1k); b=$(field "icecast-$n" server_listener_cpu_pct_per_1k)
  ta=$(field "nonstop-$n" server_cpu_pct_per_1k); tb=$(field "icecast-$n" server_cpu_pct_per_1k)
  ra=$(field "nonstop-$n" server_rss_per_listener_kib); rb=$(field "icecast-$n" server_rss_per_listener_kib)
  echo "=== $n listeners: CPU per listener nonstop/icecast $(python3 -c "print(f'{$a/$b:.2f}')") (whole process: $(python3 -c "print(f'{$ta/$tb:.2f}')")), memory per listener nonstop $ra KiB, icecast $rb KiB"
  check "$n: every listener connected to nonstop" "$(field "nonstop-$n" connected) == $n"
  check "$n: CPU per listener at most Icecast's ($a vs $b % per 1,000)" "$a <= $b"
  check "$n: no listener below 0.99x real time (min $(field "nonstop-$n" rate_min))" "$(field "nonstop-$n" below_0_99) == 0 and $(field "nonstop-$n" measured) == $n"
  # Below ten thousand, 4 KiB a listener is less than a transition's buffers.
  [ "$n" -lt 10000 ] || check "$n: RSS growth at most 4 KiB per listener ($ra)" "$ra <= 4"
  [ "$n" -lt 10000 ] || check "$n: first byte p99 at most 100 ms ($(field "nonstop-$n" ttfb_p99_ms))" "$(field "nonstop-$n" ttfb_p99_ms) <= 100"
done

# The most listeners this machine allows: a socket each, in the server
# and in the load generator, under the same open-files limit.
big=$((limit >= 20100 ? 20000 : limit - 100))
run nonstop "$nonstop_url" "$nonstop_pid" "$big"
check "$big: every listener connected" "$(field "nonstop-$big" connected) == $big"
check "$big: every listener at 0.99x real time or better (min $(field "nonstop-$big" rate_min))" "$(field "nonstop-$big" below_0_99) == 0 and $(field "nonstop-$big" measured) == $big"

listeners_now() { curl -sf "http://$addr/status" | python3 -c "import json,sys; print(json.load(sys.stdin)['listeners']['count'])"; }
echo "--- 2,000 connect/disconnect cycles"
before=$(listeners_now)
"$bin" loadtest --url "$nonstop_url" --pid "$nonstop_pid" --churn 2000 --json >"$work/churn.json"
sleep 2
after=$(listeners_now)
check "churn: $(field churn failed) of 2,000 cycles failed" "$(field churn failed) == 0"
check "churn: listeners back where they started ($before -> $after)" "$before == $after"
check "churn: RSS where it started ($(field churn server_rss_before_mib) -> $(field churn server_rss_after_mib) MiB)" \
  "$(field churn server_rss_after_mib) <= $(field churn server_rss_before_mib) * 1.05 + 1"

[ "$failures" -eq 0 ] && echo "all load checks passed" || { echo "$failures load check(s) failed"; exit 1; }
