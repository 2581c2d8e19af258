#!/usr/bin/env python3
"""1,000 dashboard-like clients at once against a running station — a third
holding /events open, a third polling /status and a third /metrics, each
once a second — while one listener reads the stream. The listener's pacing
(its byte rate against the bitrate, the gaps between arrivals) and the
station's underruns are measured without the clients, then with them.

usage: api_load.py HOST:PORT [CLIENTS] [SECONDS]
Prints the figures; exit status 1 if the stream was delayed (an underrun,
the rate below 0.99x, or the p99 arrival gap 100 ms worse than without).
"""
import asyncio, json, random, sys, time

host, port = sys.argv[1].rsplit(":", 1)
clients = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 15.0
BYTES_PER_S = 16000.0


async def get(path):
    r, w = await asyncio.open_connection(host, int(port))
    w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await w.drain()
    data = await r.read()
    w.close()
    return data


async def status():
    data = await get("/status")
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


class Listener:
    def __init__(self):
        self.arrivals = []  # (time, bytes)

    async def run(self, stop):
        r, w = await asyncio.open_connection(host, int(port))
        w.write(f"GET /stream.mp3 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await w.drain()
        await r.readuntil(b"\r\n\r\n")
        while not stop.is_set():
            chunk = await r.read(65536)
            if not chunk:
                break
            self.arrivals.append((time.monotonic(), len(chunk)))
        w.close()

    def figures(self, start, end):
        a = [(t, n) for t, n in self.arrivals if start <= t < end]
        if len(a) < 3:
            return 0.0, float("inf")
        rate = sum(n for _, n in a[1:]) / (a[-1][0] - a[0][0]) / BYTES_PER_S
        gaps = sorted(b[0] - x[0] for x, b in zip(a, a[1:]))
        return rate, gaps[int(0.99 * (len(gaps) - 1))] * 1000


async def poller(path, stop, latencies, errors):
    await asyncio.sleep(random.random())
    while not stop.is_set():
        t = time.monotonic()
        try:
            data = await get(path)
            if b" 200 " not in data[:16]:
                errors.append(data[:40])
            latencies.append(time.monotonic() - t)
        except OSError as e:
            errors.append(str(e))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t)))


async def events(stop, counts, errors):
    await asyncio.sleep(random.random())
    try:
        r, w = await asyncio.open_connection(host, int(port))
        w.write(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await w.drain()
        while not stop.is_set():
            line = await asyncio.wait_for(r.readline(), 5)
            if not line:
                break
            if line.startswith(b"event: tick"):
                counts.append(1)
        w.close()
    except (OSError, asyncio.TimeoutError) as e:
        errors.append(str(e))


async def main():
    stop_listener = asyncio.Event()
    listener = Listener()
    reading = asyncio.create_task(listener.run(stop_listener))
    await asyncio.sleep(4)  # past the burst
    u0 = (await status())["broadcast"]["underruns"]
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    t1 = time.monotonic()
    u1 = (await status())["broadcast"]["underruns"]

    stop = asyncio.Event()
    latencies, errors, ticks = [], [], []
    tasks = []
    for i in range(clients):
        kind = i % 3
        if kind == 0:
            tasks.append(asyncio.create_task(events(stop, ticks, errors)))
        else:
            tasks.append(asyncio.create_task(poller("/status" if kind == 1 else "/metrics", stop, latencies, errors)))
    await asyncio.sleep(2)  # all connected
    t2 = time.monotonic()
    await asyncio.sleep(seconds)
    t3 = time.monotonic()
    u2 = (await status())["broadcast"]["underruns"]
    stop.set()
    stop_listener.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    reading.cancel()

    base_rate, base_gap = listener.figures(t0, t1)
    rate, gap = listener.figures(t2, t3)
    latencies.sort()
    p = lambda q: latencies[int(q * (len(latencies) - 1))] * 1000 if latencies else float("nan")
    print(f"without the clients: listener at {base_rate:.4f}x real time, p99 arrival gap {base_gap:.0f} ms, underruns {u1 - u0}")
    print(f"with {clients} clients ({clients // 3 + (clients % 3 > 0)} on /events, the rest polling /status and /metrics once a second): "
          f"listener at {rate:.4f}x, p99 gap {gap:.0f} ms, underruns {u2 - u1}")
    print(f"the clients: {len(latencies)} responses (median {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms), "
          f"{len(ticks)} event ticks, {len(errors)} errors {errors[:3]}")
    delayed = (u2 - u1) > 0 or rate < 0.99 or gap > base_gap + 100 or errors
    sys.exit(1 if delayed else 0)


asyncio.run(main())
