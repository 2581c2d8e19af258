#!/usr/bin/env python3
"""Reads the station's HLS as a player would, for up to LIMIT seconds, and
checks the MPEG-TS segments: the timed ID3 stream is declared in the PMT,
every segment opens with the title on air, segment timestamps continue each
other exactly, and a title change is stamped at the frame where /status
says the new track became audible.

usage: hls_id3.py BASE_URL [LIMIT_S]
"""
import datetime, json, sys, time, urllib.request

base = sys.argv[1]
limit = float(sys.argv[2]) if len(sys.argv) > 2 else 150
get = lambda p: urllib.request.urlopen(base + p, timeout=10).read()


def parse(ts):
    """(audio PTS of the first PES, [(pts, title)] of the ID3 PES, id3 stream declared)"""
    pes, pmt_pid, audio_pid, id3_pid = {}, None, None, None
    for i in range(0, len(ts), 188):
        p = ts[i:i + 188]
        assert p[0] == 0x47, "sync byte"
        pid, start, afc = ((p[1] & 0x1F) << 8) | p[2], p[1] & 0x40, (p[3] >> 4) & 3
        off = 4 + (1 + p[4] if afc == 3 else 0)
        data = p[off:]
        if pid == 0 and start:
            pmt_pid = ((data[1 + 10] & 0x1F) << 8) | data[1 + 11]
        elif pid == pmt_pid and start:
            s = data[1:]
            length = ((s[1] & 0x0F) << 8) | s[2]
            info = ((s[10] & 0x0F) << 8) | s[11]
            j = 12 + info
            while j < 3 + length - 4:
                kind, epid, es = s[j], ((s[j + 1] & 0x1F) << 8) | s[j + 2], ((s[j + 3] & 0x0F) << 8) | s[j + 4]
                if kind in (0x03, 0x04):
                    audio_pid = epid
                if kind == 0x15:
                    id3_pid = epid
                j += 5 + es
        elif pid in (audio_pid, id3_pid):
            if start:
                pes.setdefault(pid, []).append(bytearray())
            if pes.get(pid):
                pes[pid][-1] += data
    def pts(b):
        return ((b[9] >> 1) & 7) << 30 | b[10] << 22 | (b[11] >> 1) << 15 | b[12] << 7 | b[13] >> 1
    def title(b):
        tag = b[9 + b[8]:]
        assert tag[:3] == b"ID3", tag[:10]
        out, j = {}, 10
        while j + 10 <= len(tag):
            fid, n = tag[j:j + 4].decode(), (tag[j + 4] << 21) | (tag[j + 5] << 14) | (tag[j + 6] << 7) | tag[j + 7]
            out[fid] = tag[j + 11:j + 10 + n].decode()
            j += 10 + n
        return out.get("TIT2", "")
    audio = pes.get(audio_pid, [])
    return (pts(audio[0]) if audio else None), [(pts(b), title(b)) for b in pes.get(id3_pid, [])], id3_pid is not None


def station_clock():
    """One `tick` from /events: media time `media_time_s` on air at `unix_ms`."""
    with urllib.request.urlopen(base + "/events", timeout=10) as r:
        for raw in r:
            if raw.startswith(b"event: tick"):
                return json.loads(r.readline().decode()[len("data: "):])


clock = station_clock()
pdt_errors = []
seen, changes, status, prev_end, problems = set(), [], [], None, []
step = 77 * 1152 * 90000 / 44100
end = time.time() + limit
checked = 0
while time.time() < end and not (changes and checked >= 5):
    s = json.loads(get("/status"))
    if s["now_playing"]:
        status.append((s["now_playing"]["started_at_s"], s["now_playing"]["title"]))
    try:
        playlist = get("/hls/live.m3u8").decode()
    except OSError:  # 503 before the first segment
        playlist = ""
    pdt = None
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = datetime.datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp() * 1000
        if line.endswith(".ts") and line not in seen:
            seen.add(line)
            first, id3, declared = parse(get("/hls/" + line))
            # When this segment's first frame went on air, by the station clock.
            on_air_ms = clock["unix_ms"] + (first / 90000 - clock["media_time_s"]) * 1000
            pdt_errors.append(pdt - on_air_ms)
            checked += 1
            if not declared or not id3 or id3[0][0] != first:
                problems.append(f"{line}: id3 declared {declared}, tags {id3}, first audio pts {first}")
            if prev_end is not None and abs(first - prev_end) > 1:
                problems.append(f"{line}: starts at {first}, the previous ended at {prev_end:.0f}")
            prev_end = first + step
            changes += [(p / 90000, t) for p, t in id3[1:]]
    time.sleep(0.5)

if problems:
    print("FAIL - HLS MPEG-TS:", "; ".join(problems[:3]))
    sys.exit(1)
matched = []
for at, title in changes:
    starts = [a for a, t in status if t == title]
    if starts:
        matched.append((title, at - min(starts, key=lambda a: abs(a - at))))
worst_pdt = max(abs(e) for e in pdt_errors)
print(f"     program date-times vs the station clock: at most {worst_pdt:.0f} ms apart over {len(pdt_errors)} segments")
if worst_pdt > 50:
    print("FAIL - HLS program date-times more than 50 ms off the station clock")
    sys.exit(1)
print(f"     {checked} segments; title changes in-band: {[(t, f'{d * 1000:.0f} ms after /status') for t, d in matched] or changes}")
ok = matched and all(0 <= d <= 0.05 for _, d in matched)
print(("ok   - " if ok else "FAIL - ") + f"HLS MPEG-TS: timed ID3 titles, every segment opening with the title on air, timestamps continuous over {checked} segments, "
      "each title change stamped at the frame where the track becomes audible")
sys.exit(0 if ok else 1)
