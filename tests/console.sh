#!/usr/bin/env bash
# The operators' console against real programs: a station on a fresh data
# folder (demo library) with an admin token and requests open, then
#   - every admin route answers 401 without the token, the public /status
#     holds no file path;
#   - `nonstop ctl` (status, plugin, request, skip) with the token;
#   - a real headless Chromium (Debian's, driven over the DevTools protocol
#     by tests/cdp.py) on the player page and the dashboard: the stream
#     plays, the plots update, a skip from the dashboard mixes out on the
#     next downbeat, the title changes within 1 s of the audio; screenshots
#     in target/console-artefacts/;
#   - 1,000 /status + /metrics + /events clients at once do not delay the
#     stream (tests/api_load.py: underruns, rate, arrival gaps; figures).
set -euo pipefail
cd "$(dirname "$0")/.."

source tests/lib.sh
need chromium curl python3

bin=target/release/nonstop
[ -x "$bin" ] || cargo build --release --quiet
work=$(mktemp -d)
artefacts=target/console-artefacts
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

token=console-test-token
cat >"$work/nonstop.toml" <<TOML
[server]
admin_token = "$token"
[requests]
enabled = true
cooldown_s = 60
[queues]
pcm_s = 4.0
frames_s = 2.0
[ordering]
plugins_dir = "$work/plugins"
TOML
"$bin" --config "$work/nonstop.toml" --listen 127.0.0.1:0 --data "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
listening "$pid" "$work/out" "$work/err" || { echo "server did not start"; exit 1; }
base="http://$addr"
# Until the demo library is analysed and a track is on air.
for _ in $(seq 1 600); do
  curl -sf "$base/status" | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(not (s['now_playing'] and s['library']['pending'] == 0 and s['library']['playable'] > 0))" && break
  sleep 0.2
done
echo "station on $addr"

# Without the token: 401 everywhere; the public status has no paths.
bad=""
for route in "GET /admin/status" "GET /admin/history" "GET /admin/plugin" "GET /admin/requests" \
             "POST /admin/skip" "POST /admin/rescan" "POST /admin/plugin" "POST /admin/requests" \
             "POST /admin/requests/order" "DELETE /admin/requests/1"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X "${route% *}" "$base${route#* }")
  [ "$code" = 401 ] || bad="$bad $route=$code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -X "${route% *}" -H "Authorization: Bearer wrong" "$base${route#* }")
  [ "$code" = 401 ] || bad="$bad $route(wrong token)=$code"
done
[ -z "$bad" ] && pass "every admin route answers 401 without the token or with a wrong one" || fail "admin routes:$bad"
if curl -sf "$base/status" | grep -q -e "$work" -e '"path"'; then
  fail "the public /status holds file paths"
else
  pass "the public /status holds no file path"
fi

# The CLI, with the token from the config; each action is logged.
ctl() { "$bin" ctl --config "$work/nonstop.toml" --url "$base" "$@"; }
if ctl status | python3 -c "import json,sys; s=json.load(sys.stdin); assert s['connections'] is not None and s['library']['failed_files'] is not None"; then
  pass "nonstop ctl status: the full status with the listeners table"
else
  fail "nonstop ctl status"
fi
# (Output kept in variables: `tee /dev/stderr` would reopen, and truncate,
# a log file that stderr is redirected to.)
switched=$(ctl plugin harmonic 2>&1 || true)
listed=$(ctl plugin 2>&1 || true)
if grep -q '"active": "harmonic"' <<<"$switched" && grep -q '"active": "harmonic"' <<<"$listed" && ! ctl plugin no-such-plugin 2>/dev/null; then
  pass "nonstop ctl plugin: switched to harmonic after its dry run; an unknown plugin is refused"
else
  fail "nonstop ctl plugin: $switched / $listed"
fi
# A track that is neither on air, nor planned, nor just played (the rules
# would refuse it): the demo library is small.
candidates=$(python3 - "$base" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
get = lambda p: json.load(urllib.request.urlopen(base + p))
s = get("/status")
busy = {t["title"] for t in s["upcoming"]} | {s["now_playing"]["title"]}
busy |= {t["to"].split(" - ", 1)[-1] for t in s["mixer"]["recent_transitions"]}
titles = sorted({t["title"] for v in "aeiou" for t in get("/api/tracks?q=" + v)["tracks"]} - busy)
print("\n".join(titles))
PY
)
queued=""
while IFS= read -r title; do
  [ -n "$title" ] || continue
  if ctl request "$title" | grep -q '"position"'; then queued="$title"; break; fi
done <<<"$candidates"
[ -n "$queued" ] && pass "nonstop ctl request '$queued': queued" || fail "nonstop ctl request: none of $(echo $candidates | tr '\n' ',') queued"
sleep 1
for what in "plugin harmonic" "request from admin" ; do
  grep -q "$what" "$work/err" || fail "the log does not show: $what"
done

# Real Chromium on both pages.
rm -rf "$artefacts"
if python3 tests/cdp.py "$(command -v chromium)" "$base" "$token" "$artefacts"; then
  pass "Chromium: player page and dashboard (screenshots in $artefacts)"
else
  fail "Chromium: player page and dashboard (see above; screenshots in $artefacts)"
fi
grep -q "admin: skip requested" "$work/err" || fail "the log does not show the dashboard's skip"

# A thousand console clients at once.
if python3 tests/api_load.py "$addr" 1000 15; then
  pass "1000 /status + /metrics + /events clients: the stream is not delayed"
else
  fail "1000 /status + /metrics + /events clients delayed the stream (figures above)"
fi
kill -0 "$pid" 2>/dev/null || fail "the station died"

echo "$failures failure(s)"
[ "$failures" = 0 ]
