#!/usr/bin/env python3
"""Threaded workers, side by side in one run: ferricorn --threads N against
gunicorn's gthread worker and granian's blocking threads.

Scenarios (2 workers each, wrk on loopback, servers interleaved per round,
medians over rounds):

  wait10   an app that waits 10 ms per request (a database call), -c64:
           ferricorn -w2 --threads 8 / gunicorn gthread 8 / granian
           --blocking-threads 8, and the sync workers (ferricorn --threads 1,
           gunicorn sync) for the fairness of one thread. Ideal for 16
           threads: 1,600 req/s, 40 ms per request.
  hello    hello world, keep-alive -c16: ferricorn --threads 8 against
           ferricorn --threads 1 (what handing requests to threads costs).
  flask    the Flask example, keep-alive -c16: ferricorn --threads 4 against
           gunicorn gthread 4.

Also: worker RSS with 1, 8 and 32 threads after the same traffic, for the
memory one more thread costs.

Usage: bench/threads.py [--rounds N] [--duration S] [--quick]
Writes bench/results/threads.{md,json}.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402  (the shared helpers of bench/run.py)

REPO = common.REPO
VENV = common.VENV
FERRICORN = common.FERRICORN
BENCH_APPS = REPO / "bench" / "apps"

APPS = {
    "wait10": (BENCH_APPS, "wait10:app"),
    "hello": (common.EXAMPLES, "hello:app"),
    "flask": (common.EXAMPLES / "flaskapp", "app:app"),
}

# (label, server kind, threads)
SCENARIOS = {
    "wait10": [("ferricorn --threads 8", "ferricorn", 8), ("gunicorn gthread 8", "gunicorn", 8),
               ("granian blocking 8", "granian", 8), ("ferricorn --threads 1", "ferricorn", 1),
               ("gunicorn sync", "gunicorn", 1)],
    "hello": [("ferricorn --threads 8", "ferricorn", 8), ("ferricorn --threads 1", "ferricorn", 1)],
    "flask": [("ferricorn --threads 4", "ferricorn", 4), ("gunicorn gthread 4", "gunicorn", 4)],
}
CONNECTIONS = {"wait10": 64, "hello": 16, "flask": 16}
IDEAL_RPS = 1600.0  # 2 workers x 8 threads, 10 ms each
IDEAL_WAIT_MS = 40.0  # 64 connections over 16 threads, 10 ms each


def command(kind, threads, app, port):
    cwd, spec = APPS[app]
    bind = f"127.0.0.1:{port}"
    if kind == "ferricorn":
        return [str(FERRICORN), "-w", "2", "--threads", str(threads), "-b", bind, "--log-level", "warning",
                spec], cwd
    if kind == "gunicorn":
        worker = ["-k", "gthread", "--threads", str(threads)] if threads > 1 else ["-k", "sync"]
        return [str(VENV / "bin" / "gunicorn"), "-w", "2", *worker, "-b", bind, "--log-level", "warning",
                spec], cwd
    if kind == "granian":
        return [str(VENV / "bin" / "granian"), "--interface", "wsgi", "--workers", "2", "--blocking-threads",
                str(threads), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-ws",
                spec], cwd
    raise ValueError(kind)


def Server(kind, threads, app):
    return common.Server(kind, app, command=lambda port: command(kind, threads, app, port), ready_path="/")


def worker_rss_mib(threads):
    """Mean worker RSS after 3 s of wait10 traffic at -c64."""
    s = Server("ferricorn", threads, "wait10")
    try:
        time.sleep(2)
        common.run_wrk(s.port, "/", "keepalive", 3, 64)
        _, kids = s.pids()
        rss = [common.memory_of(k)[0] for k in kids]
        return statistics.mean(rss) / 1024 if rss else None
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--apps", default="wait10,hello,flask")
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s, for trying the script")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    if not FERRICORN.exists():
        sys.exit("build first: cargo build --release")
    results = []
    for rnd in range(args.rounds):
        for app in args.apps.split(","):
            entries = SCENARIOS[app]
            shift = rnd % len(entries)
            for label, kind, threads in entries[shift:] + entries[:shift]:
                s = Server(kind, threads, app)
                try:
                    time.sleep(2)  # every worker booted
                    common.run_wrk(s.port, "/", "keepalive", 1, CONNECTIONS[app])  # warm-up
                    # The warm-up's last requests, whose clients are gone, are
                    # still answered (as every server here does): let them
                    # drain so the measured run does not queue behind them.
                    time.sleep(1)
                    r = common.run_wrk(s.port, "/", "keepalive", args.duration, CONNECTIONS[app])
                finally:
                    s.stop()
                r.update(app=app, server=label, round=rnd)
                results.append(r)
                print(f"round {rnd} {app:6} {label:24} {r['rps']:9.0f} req/s  p50 {r['p50_ms'] or 0:7.2f} ms  "
                      f"p99 {r['p99_ms'] or 0:7.2f} ms  errors {r['errors']}", flush=True)
    memory = {n: worker_rss_mib(n) for n in (1, 8, 32)}
    print(f"worker RSS MiB by threads: {memory}", flush=True)
    table = render(results, memory, args)
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "threads.md").write_text(table)
    (common.RESULTS / "threads.json").write_text(
        json.dumps({"args": vars(args), "results": results, "worker_rss_mib": memory}, indent=1))
    print(table)


def render(results, memory, args):
    def med(app, label, key):
        vals = [r[key] for r in results if r["app"] == app and r["server"] == label and r[key] is not None]
        return statistics.median(vals) if vals else None

    lines = [f"2 workers each, wrk -t1 keep-alive, {args.duration} s per run, {args.rounds} rounds, servers "
             f"interleaved; medians. Command: `bench/threads.py"
             + (f" --rounds {args.rounds} --duration {args.duration}" if not args.quick else " --quick")
             + (f" --apps {args.apps}" if args.apps != "wait10,hello,flask" else "") + "`", ""]
    lines.append("| app | connections | server | req/s | p50 ms | p99 ms | errors | first row ÷ this |")
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|")
    for app in args.apps.split(","):
        first = med(app, SCENARIOS[app][0][0], "rps")
        for label, _, _ in SCENARIOS[app]:
            rps = med(app, label, "rps")
            if rps is None:
                continue
            errs = sum(r["errors"] for r in results if r["app"] == app and r["server"] == label)
            lines.append(f"| {app} | {CONNECTIONS[app]} | {label} | {rps:,.0f} | {med(app, label, 'p50_ms') or 0:.1f} | "
                         f"{med(app, label, 'p99_ms') or 0:.1f} | {errs} | {first / rps:.2f}× |")
    if "wait10" in args.apps:
        fr, p99 = med("wait10", "ferricorn --threads 8", "rps"), med("wait10", "ferricorn --threads 8", "p99_ms")
        sync_p99 = med("wait10", "ferricorn --threads 1", "p99_ms")
        lines += ["", f"wait10, ferricorn --threads 8: {fr / IDEAL_RPS:.2f}× the ideal {IDEAL_RPS:,.0f} req/s; "
                      f"p99 {p99 / IDEAL_WAIT_MS:.2f}× the ideal wait of {IDEAL_WAIT_MS:.0f} ms. "
                      f"ferricorn --threads 1: p99 {sync_p99 / 320:.2f}× the fair wait of 320 ms (32 × 10 ms)."]
    if memory.get(1) and memory.get(8) and memory.get(32):
        per = (memory[32] - memory[1]) / 31
        lines += ["", "| threads per worker | 1 | 8 | 32 |", "|---|---:|---:|---:|",
                  f"| worker RSS MiB (wait10 app) | {memory[1]:.1f} | {memory[8]:.1f} | {memory[32]:.1f} |", "",
                  f"One more thread: {per * 1024:.0f} KiB of worker RSS."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
