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
medians over rounds. Each run's log file is counted against the requests
wrk made, so a path that silently drops lines shows.

Usage: nice -n 19 bench/logging.py [--rounds N] [--duration S]
Writes bench/results/logging.{md,json}.
"""
import argparse
import json
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
        exe = str(FERRICORN) if kind == "ferricorn" else str(VENV / "bin" / "gunicorn")
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
    args = ap.parse_args()
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
                    r = common.run_wrk(s.port, "/", "keepalive", args.duration, CONNECTIONS)
                    time.sleep(0.2)
                    logged = count_lines(s.log) - before
                finally:
                    s.stop()
            expected = r["rps"] * args.duration
            r.update(server=label, round=rnd, logged=logged,
                     logged_share=(logged / expected) if expected and "no access log" not in label else None)
            results.append(r)
            share = f"{r['logged_share']:.2f}" if r["logged_share"] is not None else "-"
            print(f"round {rnd} {label:38} {r['rps']:9.0f} req/s  p50 {r['p50_ms'] or 0:6.2f} ms  "
                  f"p99 {r['p99_ms'] or 0:6.2f} ms  logged/requests {share}", flush=True)
    table = render(results, labels, args)
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "logging.md").write_text(table)
    (common.RESULTS / "logging.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(table)


def render(results, labels, args):
    def med(label, key):
        vals = [r[key] for r in results if r["server"] == label and r[key] is not None]
        return statistics.median(vals) if vals else None

    base = med(labels[0], "rps")
    rust = med("ferricorn, Rust access log", "rps")
    lines = [f"hello world, 2 workers, wrk -t1 -c{CONNECTIONS} keep-alive, {args.duration} s per run, "
             f"{args.rounds} rounds, servers interleaved; medians. Command: "
             f"`nice -n 19 bench/logging.py --rounds {args.rounds} --duration {args.duration}`", "",
             "| server | req/s | p50 ms | p99 ms | µs/request/worker | vs. no access log | lines/requests |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label in labels:
        rps = med(label, "rps")
        if rps is None:
            continue
        share = med(label, "logged_share")
        lines.append(f"| {label} | {rps:,.0f} | {med(label, 'p50_ms') or 0:.2f} | {med(label, 'p99_ms') or 0:.2f} | "
                     f"{2e6 / rps:.1f} | {rps / base:.2f}× | {'-' if share is None else f'{share:.2f}'} |")
    py = med("ferricorn, Python logging", "rps")
    if base and rust and py:
        # Two workers share the machine's two cores with wrk: CPU time per
        # request per worker is about 2 / rps seconds.
        lines += ["", f"Cost per request (2 workers ÷ req/s): Rust access log "
                      f"{2e6 / rust - 2e6 / base:+.1f} µs, Python logging {2e6 / py - 2e6 / base:+.1f} µs "
                      f"over no access log."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
