#!/usr/bin/env python3
"""What routing access logs through Python's logging costs, in one run:
hello world (examples/hello.py), 2 workers, wrk -t1 -c16 keep-alive, every
request written to an access log file:

  ferricorn, no access log         the baseline
  ferricorn --access-logfile       the Rust path (a line formatted in Rust, one write)
  ferricorn logconfig_dict         Python's logging: gunicorn.access.info(format, atoms)
                                   to a logging.FileHandler, on the request's thread
  ferricorn logconfig_dict -t4     the same with 4 request threads per worker
  gunicorn --access-logfile        gunicorn's own Python logging path (sync worker)
  gunicorn logconfig_dict          gunicorn with the same logging config

Servers are interleaved within each round (the order rotates); figures are
medians over rounds. Besides req/s (which other load on a shared machine
skews), the workers' CPU time per request (utime + stime over the run).
Each run's log file is counted against the requests
wrk made, so a path that silently drops lines shows.

With --baseline BINARY, that binary's no-log and Rust access log runs are
added (is the default path as fast as before?).

Usage: nice -n 19 bench/logging.py [--rounds N] [--duration S] [--baseline BINARY]
Writes bench/results/logging.{md,json}.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402  (the shared helpers of bench/run.py)

FERRICORN = common.FERRICORN
VENV = common.VENV
CONNECTIONS = 16

LOG_CONFIG = '''
logconfig_dict = {
    "root": {"level": "INFO", "handlers": ["error_console"]},
    "formatters": {"plain": {"format": "%%(message)s"},
                   "generic": {"format": "%%(asctime)s [%%(process)d] [%%(levelname)s] %%(message)s"}},
    "handlers": {
        "access_file": {"class": "logging.FileHandler", "filename": %(path)r, "formatter": "plain"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "gunicorn.access": {"handlers": ["access_file"], "level": "INFO", "propagate": False},
        "gunicorn.error": {"handlers": ["error_console"], "level": "WARNING", "propagate": False},
    },
}
'''

# label: (server, extra arguments; {log} is the access log, {conf} the config file)
SCENARIOS = {
    "ferricorn, no access log": ("ferricorn", []),
    "ferricorn, Rust access log": ("ferricorn", ["--access-logfile", "{log}"]),
    "ferricorn, Python logging": ("ferricorn", ["-c", "{conf}"]),
    "ferricorn, Python logging, 4 threads": ("ferricorn", ["-c", "{conf}", "--threads", "4"]),
    "gunicorn, access log": ("gunicorn", ["--access-logfile", "{log}"]),
    "gunicorn, Python logging": ("gunicorn", ["-c", "{conf}"]),
}


class Server(common.Server):
    def __init__(self, kind, extra, tmp):
        self.name, self.app = kind, "hello"
        self.port = common.free_port()
        self.log = Path(tmp) / "access.log"
        conf = Path(tmp) / "logconf.py"
        conf.write_text(LOG_CONFIG % {"path": str(self.log)})
        args = [a.format(log=self.log, conf=conf) for a in extra]
        exe = {"ferricorn": str(FERRICORN), "gunicorn": str(VENV / "bin" / "gunicorn")}.get(kind, kind)
        cmd = [exe, "-w", "2", "-b", f"127.0.0.1:{self.port}", "--log-level", "warning", *args, "hello:app"]
        self.proc = subprocess.Popen(cmd, cwd=common.EXAMPLES, env=common.env_for_servers(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        end = time.monotonic() + 30
        while common.get_status(self.port, "/") != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} {args} exited: {self.proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > end:
                raise RuntimeError(f"{kind} not ready")
            time.sleep(0.005)


def cpu_seconds(pids):
    """utime + stime of these processes (all their threads), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / ticks


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    ap.add_argument("--baseline", help="another ferricorn binary (e.g. a build of the previous release) "
                                       "to run the no-log and Rust access log scenarios with too")
    args = ap.parse_args()
    if args.baseline:
        SCENARIOS["baseline binary, no access log"] = (args.baseline, [])
        SCENARIOS["baseline binary, Rust access log"] = (args.baseline, ["--access-logfile", "{log}"])
    if not FERRICORN.exists():
        sys.exit("build first: cargo build --release")
    labels = list(SCENARIOS)
    results = []
    for rnd in range(args.rounds):
        shift = rnd % len(labels)
        for label in labels[shift:] + labels[:shift]:
            kind, extra = SCENARIOS[label]
            with tempfile.TemporaryDirectory(prefix="bench-logging-") as tmp:
                s = Server(kind, extra, tmp)
                try:
                    time.sleep(1)  # every worker booted
                    common.run_wrk(s.port, "/", "keepalive", 1, CONNECTIONS)  # warm-up
                    before = count_lines(s.log)
                    _, workers = s.pids()
                    cpu0 = cpu_seconds(workers)
                    r = common.run_wrk(s.port, "/", "keepalive", args.duration, CONNECTIONS)
                    time.sleep(0.2)
                    cpu = cpu_seconds(workers) - cpu0
                    logged = count_lines(s.log) - before
                finally:
                    s.stop()
            expected = r["rps"] * args.duration
            r.update(server=label, round=rnd, logged=logged,
                     cpu_us=(cpu * 1e6 / expected) if expected else None,
                     logged_share=(logged / expected) if expected and "no access log" not in label else None)
            results.append(r)
            share = f"{r['logged_share']:.2f}" if r["logged_share"] is not None else "-"
            print(f"round {rnd} {label:38} {r['rps']:9.0f} req/s  p50 {r['p50_ms'] or 0:6.2f} ms  "
                  f"p99 {r['p99_ms'] or 0:6.2f} ms  worker CPU {r['cpu_us'] or 0:6.1f} µs/req  logged/requests {share}", flush=True)
    table = render(results, labels, args)
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "logging.md").write_text(table)
    (common.RESULTS / "logging.json").write_text(json.dumps({"args": {**vars(args), "baseline": args.baseline and Path(args.baseline).name},
                    "results": results}, indent=1))
    print(table)


def render(results, labels, args):
    def med(label, key):
        vals = [r[key] for r in results if r["server"] == label and r[key] is not None]
        return statistics.median(vals) if vals else None

    base = med(labels[0], "rps")
    rust = med("ferricorn, Rust access log", "rps")
    lines = [f"hello world, 2 workers, wrk -t1 -c{CONNECTIONS} keep-alive, {args.duration} s per run, "
             f"{args.rounds} rounds, servers interleaved; medians. Command: "
             f"`nice -n 19 bench/logging.py --rounds {args.rounds} --duration {args.duration}"
             f"{' --baseline BINARY' if args.baseline else ''}`", "",
             "| server | req/s | p50 ms | p99 ms | worker CPU µs/request | vs. no access log | lines/requests |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label in labels:
        rps = med(label, "rps")
        if rps is None:
            continue
        share = med(label, "logged_share")
        lines.append(f"| {label} | {rps:,.0f} | {med(label, 'p50_ms') or 0:.2f} | {med(label, 'p99_ms') or 0:.2f} | "
                     f"{med(label, 'cpu_us') or 0:.1f} | {rps / base:.2f}× | {'-' if share is None else f'{share:.2f}'} |")
    cpu = {label: med(label, "cpu_us") for label in labels}
    b, ru, py = cpu[labels[0]], cpu["ferricorn, Rust access log"], cpu["ferricorn, Python logging"]
    if b and ru and py:
        # CPU time the workers spent per request (utime + stime over the wrk
        # run): unlike req/s, not skewed by other load on a shared machine.
        lines += ["", f"Worker CPU per request over no access log: Rust access log {ru - b:+.1f} µs, "
                      f"Python logging {py - b:+.1f} µs."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
