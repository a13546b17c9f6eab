#!/usr/bin/env python3
"""Series on the exporter's own /metrics for 1, 500 and 5,000 targets (multi-target mode), after
every target has been probed once: the figure that shows /metrics does not grow with the fleet.

Usage: scripts/metrics_series.py [N ...]   (default: 1 500 5000)
Needs `cargo build --release` first. The targets are simulated PBXes on loopback (8 simulators,
each named by many targets); the exporter is the release binary.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "yeastar-exporter")
SIMS = 8


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def wait(url):
    for _ in range(200):
        try:
            return get(url)
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


def series(text):
    return [l for l in text.splitlines() if l and not l.startswith("#")]


def main():
    counts = [int(a) for a in sys.argv[1:]] or [1, 500, 5000]
    sims = []
    ports = []
    for i in range(SIMS):
        port = free_port()
        sims.append(subprocess.Popen(
            [BINARY, "simulate", "--listen", f"127.0.0.1:{port}", "--seed", str(i), "--calls", "20",
             "--username", "api", "--password", "demo-password"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports.append(port)
    try:
        import socket

        for p in ports:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
        with tempfile.TemporaryDirectory() as d:
            pw = os.path.join(d, "password")
            open(pw, "w").write("demo-password")
            print("targets  /metrics series  families  probe failures")
            for n in counts:
                cfg = os.path.join(d, f"config-{n}.yml")
                with open(cfg, "w") as f:
                    f.write(f"auth_modules:\n  main:\n    username: api\n    password_file: {pw}\n"
                            "defaults:\n  auth: main\ntargets:\n")
                    for i in range(n):
                        f.write(f"  pbx-{i}:\n    url: http://127.0.0.1:{ports[i % SIMS]}\n")
                port = free_port()
                exp = subprocess.Popen(
                    [BINARY, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}",
                     "--log.level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait(f"http://127.0.0.1:{port}/-/ready")
                    failed = 0
                    for i in range(n):
                        # Logins to one address are settled two at a time: retry a refused one.
                        for _ in range(100):
                            body = get(f"http://127.0.0.1:{port}/probe?target=pbx-{i}")
                            if "\nyeastar_up 1\n" in body:
                                break
                            time.sleep(0.02)
                        else:
                            failed += 1
                    text = get(f"http://127.0.0.1:{port}/metrics")
                    fams = len(re.findall(r"^# TYPE ", text, re.M))
                    print(f"{n:>7}  {len(series(text)):>15}  {fams:>8}  {failed:>14}")
                finally:
                    exp.terminate()
                    exp.wait()
    finally:
        for s in sims:
            s.terminate()


if __name__ == "__main__":
    main()
