#!/usr/bin/env python3
"""gevent workers, side by side in one run: ferricorn -k gevent against
gunicorn -k gevent (2 workers, --worker-connections 1000, wrk on loopback,
servers interleaved per round, medians over rounds).

  hello     hello world, keep-alive, -c64
  sleep10   a request that waits 10 ms on the hub (patched time.sleep), -c256

Also: 200 concurrent 0.5 s requests on one worker (-w 1), the time until the
last one is answered, for each server.

Usage: bench/gevent.py [--rounds N] [--duration S] [--quick]
Writes bench/results/gevent.{md,json}.
"""
import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

APPS = {
    "hello": (common.EXAMPLES, "hello:app", 64),
    "sleep10": (common.REPO / "bench" / "apps", "gsleep10:app", 256),
}
SERVERS = ["ferricorn", "gunicorn"]


def command(server, app, port, workers=2):
    cwd, spec, _ = APPS[app] if app in APPS else (common.REPO / "tests" / "apps", app, 0)
    common_args = ["-w", str(workers), "-k", "gevent", "--worker-connections", "1000",
                   "-b", f"127.0.0.1:{port}", "--log-level", "warning", spec]
    exe = common.FERRICORN if server == "ferricorn" else common.VENV / "bin" / "gunicorn"
    return [str(exe), *common_args], cwd


def Server(server, app, workers=2, path="/"):
    return common.Server(server, app, command=lambda port: command(server, app, port, workers), ready_path=path)


def burst_seconds(server, n=200):
    """One worker; n concurrent requests that each wait 0.5 s: seconds until
    the last is answered."""
    s = Server(server, "green:app", workers=1, path="/ok")
    try:
        time.sleep(1)
        done = []

        def one():
            with socket.create_connection(("127.0.0.1", s.port), timeout=30) as c:
                c.sendall(b"GET /sleep?ms=500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"HTTP/1.1 200"):
                    done.append(1)

        t0 = time.monotonic()
        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.monotonic() - t0, len(done)
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    results = []
    for rnd in range(args.rounds):
        for app in APPS:
            order = SERVERS[rnd % 2:] + SERVERS[:rnd % 2]
            for server in order:
                s = Server(server, app)
                try:
                    time.sleep(2)
                    common.run_wrk(s.port, "/", "keepalive", 1, APPS[app][2])
                    r = common.run_wrk(s.port, "/", "keepalive", args.duration, APPS[app][2])
                finally:
                    s.stop()
                r.update(app=app, server=server, round=rnd)
                results.append(r)
                print(f"round {rnd} {app:8} {server:10} {r['rps']:9.0f} req/s  p50 {r['p50_ms'] or 0:7.2f} ms  "
                      f"p99 {r['p99_ms'] or 0:7.2f} ms  errors {r['errors']}", flush=True)
    bursts = {srv: burst_seconds(srv) for srv in SERVERS}
    print(f"200 x 0.5 s on one worker: {bursts}", flush=True)

    def med(app, server, key):
        vals = [r[key] for r in results if r["app"] == app and r["server"] == server and r[key] is not None]
        return statistics.median(vals) if vals else None

    lines = [f"2 workers, -k gevent --worker-connections 1000, wrk -t1 keep-alive, {args.duration} s per run, "
             f"{args.rounds} rounds, servers interleaved; medians. Command: `bench/gevent.py"
             + (f" --rounds {args.rounds} --duration {args.duration}`" if not args.quick else " --quick`"), "",
             "| app | connections | server | req/s | p50 ms | p99 ms | errors | ferricorn ÷ this |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for app in APPS:
        fr = med(app, "ferricorn", "rps")
        for server in SERVERS:
            rps = med(app, server, "rps")
            errs = sum(r["errors"] for r in results if r["app"] == app and r["server"] == server)
            lines.append(f"| {app} | {APPS[app][2]} | {server} | {rps:,.0f} | {med(app, server, 'p50_ms') or 0:.1f} | "
                         f"{med(app, server, 'p99_ms') or 0:.1f} | {errs} | {fr / rps:.2f}× |")
    lines += ["", "| 200 concurrent 0.5 s requests, one worker | last answered after s | answered |", "|---|---:|---:|"]
    for server, (secs, ok) in bursts.items():
        lines.append(f"| {server} | {secs:.2f} | {ok} |")
    table = "\n".join(lines) + "\n"
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "gevent.md").write_text(table)
    (common.RESULTS / "gevent.json").write_text(json.dumps({"args": vars(args), "results": results,
                                                          "burst": bursts}, indent=1))
    print(table)


if __name__ == "__main__":
    main()
