#!/usr/bin/env python3
"""Memory soaks of the release binary: what the exporter keeps when the PBX misbehaves.

  ages      2,000 churning calls, extension/query_call answering 10003 (older firmware), scraped
            every 0.2 s for 4 minutes: RSS every 10 s; then the same with that collector off.
  oversize  a PBX answering 17 MiB without Content-Length (chunked), then an endless chunked
            stream, against --pbx.max-response-bytes 16 MiB: peak RSS with 1 and 10 answers at
            once, and RSS a minute later.

Usage: scripts/soak.py [ages|oversize|all] [--seconds N]
Needs `cargo build --release` first. Not part of `cargo test`: it runs for minutes.
"""

import argparse
import http.server
import os
import re
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "yeastar-exporter")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start(args):
    proc = subprocess.Popen(
        [BINARY, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    for line in proc.stderr:
        m = re.search(r"metrics=(http://[0-9.:]+/metrics)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1)
    raise SystemExit("exporter exited before listening: " + " ".join(args))


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except Exception as e:  # a scrape that fails is data here, not an error
        return str(e)


def ages(seconds):
    sim_port = free_port()
    sim = subprocess.Popen(
        [BINARY, "simulate", "--listen", f"127.0.0.1:{sim_port}", "--calls", "2000",
         "--fault.unsupported", "extension/query_call"],
        stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        for label, extra in [("internal_calls on (10003)", []),
                             ("internal_calls off", ["--no-collector.internal_calls"])]:
            proc, url = start(["--pbx.url", f"http://127.0.0.1:{sim_port}", "--pbx.username", "api",
                               "--web.listen-address", "127.0.0.1:0", *extra])
            start_t = time.monotonic()
            next_report = 0
            lat = []
            print(f"ages soak, {label}: t(s) RSS(MiB) scrape(ms)")
            while time.monotonic() - start_t < seconds:
                t0 = time.monotonic()
                text = scrape(url)
                lat.append((time.monotonic() - t0) * 1000)
                if "yeastar_up 1" not in text:
                    print("  scrape not up:", text[:200])
                el = time.monotonic() - start_t
                if el >= next_report:
                    print(f"  {el:5.0f} {rss_mib(proc.pid):7.1f} {lat[-1]:7.1f}")
                    next_report += 10
                time.sleep(max(0, 0.2 - (time.monotonic() - t0)))
            print(f"  end   {rss_mib(proc.pid):7.1f}  p50 scrape {sorted(lat)[len(lat)//2]:.1f} ms")
            proc.terminate()
            proc.wait()
    finally:
        sim.terminate()
        sim.wait()


class Huge(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    endless = False

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        if self.path.endswith("/login"):
            body = b'{"status":"Success","token":"0123456789abcdef0123456789abcdef"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = b'{"status":"Success","Calls":[' + b" " * (64 * 1024 - 30)
        sent = 0
        try:
            while Huge.endless or sent < 17 * 1024 * 1024:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                chunk = b" " * (64 * 1024)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def oversize(_seconds):
    servers = [Server(("127.0.0.1", 0), Huge) for _ in range(10)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    ports = [srv.server_address[1] for srv in servers]
    for endless in (False, True):
        if os.environ.get("QUICK") and endless:
            break
        if os.environ.get("ENDLESS_ONLY") and not endless:
            continue
        Huge.endless = endless
        kind = "endless chunked stream" if endless else "17 MiB chunked, no Content-Length"
        for parallel in (1, 10):
            targets = {f"pbx{i}": f"http://127.0.0.1:{ports[i]}" for i in range(parallel)}
            cfg = os.path.join("/tmp", f"soak-oversize-{os.getpid()}.yml")
            with open(cfg, "w") as f:
                f.write("auth_modules:\n  a: {username: api, password: x}\n")
                f.write("defaults: {auth: a, collectors: [calls], timeout: 20s}\ntargets:\n")
                for name, url in targets.items():
                    f.write(f"  {name}: {{url: '{url}'}}\n")
            proc, url = start(["--config.file", cfg, "--web.listen-address", "127.0.0.1:0"])
            base = url.rsplit("/", 1)[0]
            idle = rss_mib(proc.pid)
            peak = idle
            stop = threading.Event()

            def watch():
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, rss_mib(proc.pid))
                    time.sleep(0.01)

            w = threading.Thread(target=watch)
            w.start()
            threads = [threading.Thread(target=scrape, args=(f"{base}/probe?target={n}", 30))
                       for n in targets]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            time.sleep(0.5)
            stop.set()
            w.join()
            time.sleep(60)
            later = rss_mib(proc.pid)
            print(f"oversize ({kind}), {parallel} at once: idle {idle:.1f} MiB, peak {peak:.1f} MiB "
                  f"(+{peak - idle:.1f}), a minute later {later:.1f} MiB (+{later - idle:.1f})")
            proc.terminate()
            proc.wait()
    for srv in servers:
        srv.shutdown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", nargs="?", default="all")
    ap.add_argument("--seconds", type=int, default=240)
    a = ap.parse_args()
    os.environ["YEASTAR_EXPORTER_PBX_PASSWORD"] = "demo-password"
    if a.kind in ("ages", "all"):
        ages(a.seconds)
    if a.kind in ("oversize", "all"):
        oversize(a.seconds)


if __name__ == "__main__":
    sys.exit(main())
