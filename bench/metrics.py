#!/usr/bin/env python3
"""What metrics cost: hello world, keep-alive, ferricorn -w 2, with metrics
off against StatsD and Prometheus on, in one run (interleaved per round,
medians over rounds).

"off" has no StatsD, no --metrics-bind and no control socket. "on" sends StatsD to a bound UDP socket on loopback (an agent that is up:
every datagram is really sent) and serves --metrics-bind, scraped once a
second during the run, as Prometheus would, and has its control socket.

Usage: bench/metrics.py [--rounds N] [--duration S] [--connections C]
Writes bench/results/metrics.{md,json}.
"""
import argparse
import os
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402  (the shared helpers of bench/run.py)

CONTROL = Path(tempfile.gettempdir()) / f"ferricorn-bench-{os.getpid()}.ctl"


def command(on, agent_port, metrics_port):
    def build(port):
        argv = [str(common.FERRICORN), "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
        if on:
            argv += ["--statsd-host", f"127.0.0.1:{agent_port}", "--metrics-bind", f"127.0.0.1:{metrics_port}",
                     "--control-socket", str(CONTROL)]
        else:
            argv += ["--no-control-socket"]
        return argv + ["hello:app"], common.EXAMPLES
    return build


def scraper(port, stop, count):
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                r.read()
            count[0] += 1
        except OSError:
            pass
        stop.wait(1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    if not common.FERRICORN.exists():
        sys.exit("build first: cargo build --release")
    # The agent: bound, never read; the kernel drops what overflows its buffer.
    agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    agent.bind(("127.0.0.1", 0))
    agent_port = agent.getsockname()[1]
    results = []
    for rnd in range(args.rounds):
        order = [False, True] if rnd % 2 == 0 else [True, False]
        for on in order:
            metrics_port = common.free_port()
            s = common.Server("ferricorn", "hello", command=command(on, agent_port, metrics_port))
            stop, scrapes = threading.Event(), [0]
            t = threading.Thread(target=scraper, args=(metrics_port, stop, scrapes)) if on else None
            try:
                time.sleep(1)
                common.run_wrk(s.port, "/", "keepalive", 1, args.connections)  # warm-up
                if t:
                    t.start()
                r = common.run_wrk(s.port, "/", "keepalive", args.duration, args.connections)
            finally:
                stop.set()
                if t:
                    t.join()
                s.stop()
            label = "StatsD + Prometheus on" if on else "metrics off"
            r.update(server=label, round=rnd, scrapes=scrapes[0])
            results.append(r)
            print(f"round {rnd} {label:24} {r['rps']:9.0f} req/s  p99 {r['p99_ms'] or 0:6.2f} ms  "
                  f"errors {r['errors']}  scrapes {scrapes[0]}", flush=True)
    med = {lab: statistics.median(r["rps"] for r in results if r["server"] == lab)
           for lab in ("metrics off", "StatsD + Prometheus on")}
    ratio = med["StatsD + Prometheus on"] / med["metrics off"]
    table = (f"hello world, ferricorn -w 2, wrk -t1 keep-alive -c{args.connections}, {args.duration} s per run, "
             f"{args.rounds} rounds interleaved; medians. Command: `bench/metrics.py --rounds {args.rounds} "
             f"--duration {args.duration}`\n\n| metrics | req/s |\n|---|---:|\n"
             + "".join(f"| {k} | {v:,.0f} |\n" for k, v in med.items())
             + f"\non ÷ off: {ratio:.3f}×\n")
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "metrics.md").write_text(table)
    (common.RESULTS / "metrics.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(table)


if __name__ == "__main__":
    main()
