#!/usr/bin/env python3
"""Drives a real headless Chromium over the DevTools protocol (through
--remote-debugging-pipe: the standard library is enough) against a running
station: the player page and the admin dashboard.

Checks, printing one ok/FAIL line each and the figures:
  - the player page plays the stream (the <audio> element's time advances);
  - the dashboard opens with the token, its plots update from /events;
  - a skip clicked on the dashboard starts the next transition within the
    mixer's lead (its queues) plus one bar: on the next downbeat;
  - the player page's title changes within 1 s of the frame where the
    audio changes (the station clock from /events maps media time to wall
    time; the page notes when its title changed);
  - two player pages in sync mode, sampled for a minute, play within
    100 ms of each other and of the station clock;
Screenshots of both pages go to the artefacts folder.

usage: cdp.py CHROMIUM BASE_URL TOKEN ARTEFACTS_DIR
"""
import base64, fcntl, json, os, queue, subprocess, sys, tempfile, threading, time, urllib.request

chromium, base, token, artefacts = sys.argv[1:5]
os.makedirs(artefacts, exist_ok=True)
failures = 0


def ok(msg):
    print(f"ok   - {msg}", flush=True)


def fail(msg):
    global failures
    failures += 1
    print(f"FAIL - {msg}", flush=True)


class Browser:
    def __init__(self):
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Out of the way of 3 and 4, which the child needs.
        hi_cmd, hi_res = (fcntl.fcntl(fd, fcntl.F_DUPFD, 20) for fd in (cmd_r, res_w))

        def child():
            os.dup2(hi_cmd, 3)
            os.dup2(hi_res, 4)

        self.profile = tempfile.mkdtemp()
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
             f"--user-data-dir={self.profile}", "--window-size=1200,1400", "about:blank"],
            preexec_fn=child, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (cmd_r, res_w, hi_cmd, hi_res):
            os.close(fd)
        self.out = os.fdopen(cmd_w, "wb", buffering=0)
        self.inp = os.fdopen(res_r, "rb", buffering=0)
        self.next_id = 0
        self.replies = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            chunk = self.inp.read(65536)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                m = json.loads(msg)
                if "id" in m:
                    with self.cond:
                        self.replies[m["id"]] = m
                        self.cond.notify_all()

    def send(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        i = self.next_id
        m = {"id": i, "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        self.out.write(json.dumps(m).encode() + b"\0")
        with self.cond:
            if not self.cond.wait_for(lambda: i in self.replies, timeout):
                raise TimeoutError(method)
            r = self.replies.pop(i)
        if "error" in r:
            raise RuntimeError(f"{method}: {r['error']}")
        return r["result"]

    def open(self, url, window=False):
        target = self.send("Target.createTarget", {"url": url, "newWindow": window})["targetId"]
        return Page(self, self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        self.proc.kill()


class Page:
    def __init__(self, browser, session):
        self.b, self.s = browser, session
        self.b.send("Page.enable", session=session)
        self.b.send("Runtime.enable", session=session)

    def eval(self, expr):
        r = self.b.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True}, self.s)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, limit):
        end = time.time() + limit
        while time.time() < end:
            try:
                v = self.eval(expr)
                if v:
                    return v
            except RuntimeError:
                pass
            time.sleep(0.2)
        return None

    def screenshot(self, name):
        data = self.b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, self.s)["data"]
        path = os.path.join(artefacts, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path


def admin_status():
    req = urllib.request.Request(base + "/admin/status", headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


b = Browser()
try:
    # The player first: Chromium defers loading media in background tabs.
    player = b.open(base + "/")
    # The player page: a title from /events, and the stream playing.
    title = player.wait("document.getElementById('now').textContent.length > 1 && document.getElementById('now').textContent", 15)
    player.eval("document.getElementById('play').click()")
    played = player.wait("document.getElementById('audio').currentTime > 3 && document.getElementById('audio').currentTime", 20)
    if title and played:
        ok(f"player page: title {title!r}, the stream plays ({played:.1f} s of audio in Chromium)")
    else:
        at = player.eval("document.getElementById('audio').currentTime")
        fail(f"player page: title {title!r}, audio time {at}")

    # The dashboard: token, live plots.
    dash = b.open(base + "/admin")
    dash.wait("document.readyState === 'complete'", 10)
    dash.eval(f"sessionStorage.setItem('nonstop-token', {json.dumps(token)}); location.reload(); true")
    time.sleep(1)
    opened = dash.wait("!document.getElementById('console').hidden && window.nonstop.ticks >= 2", 20)
    plot0 = dash.eval("document.getElementById('plot-queues').toDataURL()")
    n0 = dash.eval("window.nonstop.samples()")
    time.sleep(4)
    plot1 = dash.eval("document.getElementById('plot-queues').toDataURL()")
    n1 = dash.eval("window.nonstop.samples()")
    rows = dash.eval("document.getElementById('listeners').rows.length")
    if opened and n1 > n0 and plot0 != plot1 and rows >= 1:
        ok(f"dashboard: opened with the token, plots updated live ({n0} -> {n1} samples), {rows} listener(s) in the table")
    else:
        fail(f"dashboard: opened {opened}, samples {n0} -> {n1}, plot changed {plot0 != plot1}, listener rows {rows}")
    print("screenshots:", player.screenshot("player-before.png"), dash.screenshot("dashboard-before.png"))

    # Skip from the dashboard.
    before = admin_status()
    last_at = before["mixer"]["recent_transitions"][0]["at_s"] if before["mixer"]["recent_transitions"] else -1
    lead = before["queues"]["pcm"]["capacity_s"] + before["queues"]["frames"]["capacity_s"]
    clicked = dash.eval("""(() => { const c = window.nonstop.clock;
        document.getElementById('skip').click();
        return c.media_time_s + (Date.now() - c.unix_ms) / 1000; })()""")
    transition = None
    end = time.time() + lead + 60
    while time.time() < end and transition is None:
        s = admin_status()
        t = s["mixer"]["recent_transitions"]
        if t and t[0]["at_s"] > last_at and t[0]["at_s"] > clicked:
            transition = t[0]
        time.sleep(0.25)
    if transition is None:
        fail("skip from the dashboard: no transition within the lead plus a minute")
    else:
        bar = 60.0 / transition["tempo_a"] * 4 if transition["tempo_a"] > 0 else 2.0
        late = transition["at_s"] - clicked
        bound = lead + bar + 0.5
        msg = (f"skip from the dashboard: the transition ({transition['mode']}) starts {late:.1f} s after the click "
               f"(mixer lead {lead:.1f} s + one bar {bar:.1f} s = {lead + bar:.1f} s)")
        (ok if late <= bound else fail)(msg)
        note = dash.wait("document.getElementById('action-note').textContent", 5)
        print(f"   dashboard said: {note!r}")

        # The title follows the audio: wait for the change that goes with it.
        change = player.wait(f"window.nonstop.titleChanges.slice(1).find(c => c.started_at_s >= {transition['at_s'] - 1})", lead + 90)
        clocks = player.eval("window.nonstop.clocks")
        if change and clocks:
            c = min(clocks, key=lambda c: abs(c["media_time_s"] - change["started_at_s"]))
            audible_ms = c["unix_ms"] + (change["started_at_s"] - c["media_time_s"]) * 1000
            delay = change["at_ms"] - audible_ms
            msg = f"player page: title changed to {change['title']!r} {delay:.0f} ms after the frame where the audio changes went on air"
            (ok if -100 <= delay <= 1000 else fail)(msg)
        else:
            fail(f"player page: no title change after the transition ({change}, {len(clocks or [])} clock ticks)")
    print("screenshots:", player.screenshot("player-after.png"), dash.screenshot("dashboard-after.png"))
    player.eval("document.getElementById('play').click(); true")  # stop

    # Two pages in sync mode, each in its own window (so neither is a
    # background tab, whose media Chromium would not load).
    pages = [b.open(base + "/", window=True) for _ in range(2)]
    for p in pages:
        p.wait("window.nonstop.clocks.length > 0", 10)
        p.eval("document.getElementById('sync').checked = true; document.getElementById('play').click(); true")
    started = all(p.wait("window.nonstop.sync() && window.nonstop.sync().started && !document.getElementById('audio').paused", 20) for p in pages)
    time.sleep(3)  # the start-up pause and the first nudges
    station_err, pair_err = [], []
    end = time.time() + 60
    while time.time() < end:
        a, c = (p.eval("window.nonstop.sync()") for p in pages)
        if a and c:
            station_err += [a["position_s"] - a["target_s"], c["position_s"] - c["target_s"]]
            # c was sampled a moment after a: bring it back to a's moment.
            pair_err.append(a["position_s"] - (c["position_s"] - (c["at_ms"] - a["at_ms"]) / 1000 * c["rate"]))
        time.sleep(0.5)
    worst = lambda xs: max((abs(x) for x in xs), default=float("inf")) * 1000
    p95 = lambda xs: sorted(abs(x) for x in xs)[int(0.95 * (len(xs) - 1))] * 1000 if xs else float("inf")
    msg = (f"sync mode, two pages for 60 s ({len(pair_err)} samples): apart by at most {worst(pair_err):.0f} ms "
           f"(p95 {p95(pair_err):.0f}), off the station clock by at most {worst(station_err):.0f} ms (p95 {p95(station_err):.0f})")
    (ok if started and worst(pair_err) <= 100 and worst(station_err) <= 100 else fail)(msg)
    print("screenshots:", pages[0].screenshot("player-sync.png"))
finally:
    b.close()
sys.exit(1 if failures else 0)
