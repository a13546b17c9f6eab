#!/usr/bin/env python3
"""Attacks on the event receiver (issue 24), with the figures printed.

Starts the release binary's simulator (`yeastar-exporter simulate --seed 1`) and the exporter
against it with HTTP events on, the receiver on 127.0.0.1. The PBX is 127.0.0.1; attackers
connect from other loopback addresses (all of 127/8 is local on Linux).

  hold    N idle connections (default 10,000; 16 per address from 127.1.x.y) and M trickling
          ones (default 400; 127.2.x.y, a byte every 200 ms, reconnecting whenever cut), then
          20 reports posted as the PBX posts them (from 127.0.0.1, one connection each, one every
          0.5 s): how long each took to be answered 200. The issue's target: every one within 1 s.
  labels  256 NewCdr posted as the PBX posts them, each with a 60,000-character srctrunkname
          (15 MiB): the exporter's RSS before and after, the size of /metrics afterwards and the
          longest trunk label value. The issue's target: /metrics under 1 MiB, RSS under 40 MiB.

Usage: scripts/attack_events.py [hold|labels|all] [--idle N] [--trickle M]
Needs `cargo build --release` first. Not part of `cargo test`: it wants a quiet machine.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "yeastar-exporter")
SEED = 1
# The simulator's serial number in its reports for SEED (src/sim/model.rs `sn`).
SN = "3694%08d" % (SEED % 100_000_000)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def drain(stream):
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()


def start():
    """The simulator and the exporter: (processes, web port, event port)."""
    sim_port, web_port, ev_port = free_port(), free_port(), free_port()
    sim = subprocess.Popen(
        [BINARY, "simulate", "--listen", f"127.0.0.1:{sim_port}", "--seed", str(SEED)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = dict(os.environ, YEASTAR_EXPORTER_PBX_PASSWORD="demo-password")
    exp = subprocess.Popen(
        [
            BINARY,
            "--pbx.url", f"http://127.0.0.1:{sim_port}",
            "--pbx.username", "api",
            "--pbx.events",
            "--events.listen-address", f"127.0.0.1:{ev_port}",
            "--web.listen-address", f"127.0.0.1:{web_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for line in exp.stderr:
        if "event receiver listening" in line:
            drain(exp.stderr)
            break
    else:
        raise SystemExit("exporter exited before listening")
    # The first scrape logs in, and the login registers the receiver.
    for _ in range(50):
        try:
            if b"yeastar_up 1" in scrape(web_port):
                break
        except OSError:
            pass
        time.sleep(0.2)
    return [sim, exp], web_port, ev_port, exp.pid


def scrape(web_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=30) as r:
        return r.read()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def attacker(net, i):
    """The i-th attacker address in 127.<net>.x.y, 16 connections per address."""
    a = i // 16
    return f"127.{net}.{a // 250}.{a % 250 + 1}"


async def connect(src, port):
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))


async def report(port, body, timeout=10.0):
    """One report posted as the PBX posts it: (answered 200, seconds)."""
    start = time.monotonic()
    try:
        r, w = await asyncio.wait_for(connect("127.0.0.1", port), timeout)
        head = (
            f"POST /events/default HTTP/1.1\r\nHost: 127.0.0.1: {port}\r\n"
            f"Content-Type: application/json\r\nContent-Length:{len(body)}\r\n\r\n"
        )
        w.write(head.encode() + body)
        await w.drain()
        data = await asyncio.wait_for(r.read(), timeout - (time.monotonic() - start))
        w.close()
        ok = data.startswith(b"HTTP/1.1 200")
    except (asyncio.TimeoutError, OSError):
        ok = False
    return ok, time.monotonic() - start


def cdr(callid, trunk=""):
    return json.dumps(
        {
            "event": "NewCdr", "callid": callid, "callduraction": "20", "talkduraction": "10",
            "srctrunkname": trunk, "dsttrcunkname": "", "status": "ANSWERED", "type": "Inbound",
            "sn": SN,
        }
    ).encode()


async def hold(port, idle_n, trickle_n):
    stop = asyncio.Event()
    held, cuts = [], [0]

    async def trickler(src):
        while not stop.is_set():
            try:
                r, w = await connect(src, port)
                w.write(b"POST /events/default HTTP/1.1\r\n")
                while not stop.is_set():
                    await asyncio.sleep(0.2)
                    if r.at_eof():
                        break
                    w.write(b"X")
                    await w.drain()
                cuts[0] += 1
                w.close()
            except (OSError, ConnectionError):
                pass
            await asyncio.sleep(0.25)

    t0 = time.monotonic()
    for i in range(idle_n):
        try:
            held.append(await connect(attacker(1, i), port))
        except OSError:
            pass
    opened = time.monotonic() - t0
    tasks = [asyncio.create_task(trickler(attacker(2, i))) for i in range(trickle_n)]
    await asyncio.sleep(3.0)  # let the tricklers settle in
    results = []
    for i in range(20):
        results.append(await report(port, cdr(f"1700000000.{i}")))
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    still = sum(1 for r, _ in held if not r.at_eof())
    for _, w in held:
        w.close()
    lat = sorted(l for _, l in results)
    within = sum(1 for ok, l in results if ok and l <= 1.0)
    print(
        f"hold: idle={len(held)} (opened in {opened:.1f} s, {still} still open at the end) "
        f"trickling={trickle_n} (cut {cuts[0]} times)\n"
        f"      PBX reports answered 200 within 1 s: {within}/20  "
        f"p50={lat[9]*1000:.1f} ms  max={lat[-1]*1000:.1f} ms  "
        f"failed={sum(1 for ok, _ in results if not ok)}"
    )


async def labels(port, web_port, pid):
    before = rss_mib(pid)
    t0 = time.monotonic()
    answered = 0
    for i in range(256):
        trunk = f"{i:03d}" + "x" * 59_997
        ok, _ = await report(port, cdr(f"1700000100.{i}", trunk))
        answered += ok
    took = time.monotonic() - t0
    time.sleep(1.0)
    text = scrape(web_port)
    after = rss_mib(pid)
    sizes = []
    for _ in range(3):
        sizes.append(len(scrape(web_port)))
    peak = rss_mib(pid)
    trunks = set(re.findall(rb'trunk="([^"]*)"', text))
    longest = max((len(t.decode()) for t in trunks), default=0)
    print(
        f"labels: 256 NewCdr x 60,000-char srctrunkname (15 MiB) posted in {took:.1f} s, "
        f"{answered} answered 200\n"
        f"      /metrics {len(text) / 1024:.1f} KiB (then {', '.join(f'{s / 1024:.1f}' for s in sizes)} KiB); "
        f"{len(trunks)} trunk label values, longest {longest} characters\n"
        f"      RSS {before:.1f} MiB before, {after:.1f} MiB after, {peak:.1f} MiB after 3 more scrapes"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", nargs="?", default="all")
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--trickle", type=int, default=400)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle_n = min(a.idle, hard - a.trickle - 200)
    kinds = ["hold", "labels"] if a.kind == "all" else [a.kind]
    for kind in kinds:
        procs, web_port, ev_port, pid = start()
        try:
            if kind == "hold":
                asyncio.run(hold(ev_port, idle_n, a.trickle))
            else:
                asyncio.run(labels(ev_port, web_port, pid))
        finally:
            for p in procs:
                p.terminate()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
