#!/usr/bin/env python3
"""Slow and idle clients against a running exporter: do normal scrapes still get through?

Starts the release binary in demo mode (embedded simulated PBX), then runs one attack at a time
while a normal client scrapes /metrics 20 times (one every 0.5 s, 10 s timeout) and reports how
many answered within 2 s and the latencies:

  slowloris  N connections that trickle a request head one byte per second and reconnect as soon
             as they are cut (default 2,000)
  idle       N connections that connect and send nothing (default 10,000)
  idle_flood the same, each reconnecting as soon as it is cut: a connection flood (not in "all";
             no server-side policy helps once the kernel's accept queue is full)
  pipeline   4 connections that pipeline GET /metrics and never read (run with
             --web.max-connections 4 to hold every slot)

Usage: scripts/attack.py [slowloris|idle|pipeline|all] [--conns N] [-- extra exporter flags]
The issue's target: at least 19 of 20 normal scrapes within 2 s under slowloris (2,000) and idle
(10,000). Needs `cargo build --release` first. Not part of `cargo test`: it takes minutes and
wants a quiet machine.
"""

import argparse
import asyncio
import os
import re
import resource
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "yeastar-exporter")


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def start_exporter(extra):
    proc = subprocess.Popen(
        [BINARY, "--demo", "--web.listen-address", "127.0.0.1:0", *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    for line in proc.stderr:
        m = re.search(r"metrics=http://([0-9.]+):(\d+)", line)
        if m:
            # Keep draining its log so it never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1), int(m.group(2))
    raise SystemExit("exporter exited before listening")


async def scrape(host, port, timeout=10.0):
    start = time.monotonic()
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await w.drain()
        data = await asyncio.wait_for(r.read(), timeout - (time.monotonic() - start))
        w.close()
        ok = data.startswith(b"HTTP/1.1 200") and b"yeastar_up 1" in data
    except (asyncio.TimeoutError, OSError):
        ok = False
    return ok, time.monotonic() - start


async def slowloris(host, port, stop):
    while not stop.is_set():
        try:
            r, w = await asyncio.open_connection(host, port)
            w.write(b"GET /metrics HTTP/1.1\r\n")
            while not stop.is_set():
                await asyncio.sleep(1.0)
                w.write(b"X")
                await w.drain()
                if r.at_eof():
                    break
        except (OSError, ConnectionError):
            await asyncio.sleep(0.05)


async def idle(host, port, stop):
    """Connects, sends nothing, holds the connection until the server cuts it."""
    try:
        r, w = await asyncio.open_connection(host, port)
        await r.read(1)
    except (OSError, ConnectionError):
        pass


async def idle_flood(host, port, stop):
    """Like idle, but reconnects at once when cut: a connection flood, not a slow client."""
    while not stop.is_set():
        await idle(host, port, stop)


async def pipeline(host, port, stop):
    r, w = await asyncio.open_connection(host, port)
    w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 5000)
    try:
        await asyncio.wait_for(w.drain(), 5)
    except (asyncio.TimeoutError, OSError):
        pass
    await stop.wait()


async def run(kind, conns, host, port):
    stop = asyncio.Event()
    attack = {
        "slowloris": slowloris,
        "idle": idle,
        "idle_flood": idle_flood,
        "pipeline": pipeline,
    }[kind]
    tasks = []
    for i in range(conns):
        tasks.append(asyncio.create_task(attack(host, port, stop)))
        if i % 200 == 199:
            await asyncio.sleep(0.01)
    await asyncio.sleep(3.0)  # let the attack settle in
    results = []
    for _ in range(20):
        results.append(await scrape(host, port))
        await asyncio.sleep(0.5)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(l for _, l in results)
    fast = sum(1 for ok, l in results if ok and l <= 2.0)
    print(
        f"{kind:9} conns={conns:6}  within 2 s: {fast}/20  "
        f"p50={lat[9]*1000:.0f} ms  max={lat[-1]*1000:.0f} ms  failed={sum(1 for ok, _ in results if not ok)}"
    )
    return fast


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", nargs="?", default="all")
    ap.add_argument("--conns", type=int, default=0)
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    limit = raise_fd_limit()
    kinds = ["slowloris", "idle", "pipeline"] if a.kind == "all" else [a.kind]
    for kind in kinds:
        conns = a.conns or {"slowloris": 2000, "idle": 10000, "idle_flood": 10000, "pipeline": 4}[kind]
        conns = min(conns, limit - 100)
        extra = list(a.extra)
        if kind == "pipeline" and "--web.max-connections" not in extra:
            extra += ["--web.max-connections", "4"]
        proc, host, port = start_exporter(extra)
        try:
            asyncio.run(run(kind, conns, host, port))
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
