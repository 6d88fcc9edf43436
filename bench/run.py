#!/usr/bin/env python3
"""ferricorn vs gunicorn (sync) vs granian (WSGI), side by side in one run.

Every server runs with 2 workers on loopback and is driven by wrk. Servers are
interleaved within each round (the order rotates every round), so a noisy
neighbour on this shared machine hits all of them alike; figures are medians
over rounds and ratios between servers of the same round set.

Also measured here: a no-Python reference (ferricorn's own HTTP path answering
a fixed response, the ceiling for the Python path), memory (RSS/PSS of master
and workers after 10k requests) and start-up time (launch -> first 200).

Usage: bench/run.py [--rounds N] [--duration S] [--connections C] [--quick]
                    [--baseline BIN [--output NAME]]
Writes bench/results/latest.{md,json,svg} (NAME.{md,json,svg} with --output).

--baseline BIN adds the server `baseline`: another ferricorn binary (an
earlier commit's release build), run exactly as `ferricorn` is, so a change
is measured against the code before it in the same run.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
EXAMPLES = REPO / "examples"
RESULTS = REPO / "bench" / "results"
FERRICORN = REPO / "target" / "release" / "ferricorn"
BASELINE = None  # --baseline: an earlier ferricorn build, run as `baseline`

APPS = {
    # name: (working dir, module:attr, path)
    "hello": (EXAMPLES, "hello:app", "/"),
    "flask": (EXAMPLES / "flaskapp", "app:app", "/"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(server, app, port):
    cwd, spec, _ = APPS[app]
    bind = f"127.0.0.1:{port}"
    if server in ("ferricorn", "baseline"):
        binary = FERRICORN if server == "ferricorn" else BASELINE
        return [str(binary), "-w", "2", "-b", bind, "--log-level", "warning", spec], cwd
    if server == "reference":
        return [str(FERRICORN), "-w", "2", "-b", bind, "--log-level", "warning", "--reference-responder", spec], cwd
    if server == "gunicorn":
        return [str(VENV / "bin" / "gunicorn"), "-w", "2", "-k", "sync", "-b", bind, "--log-level", "warning", spec], cwd
    if server == "granian":
        return [str(VENV / "bin" / "granian"), "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning", "--no-ws", spec], cwd
    raise ValueError(server)


def env_for_servers():
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '')}"
    env.pop("WEB_CONCURRENCY", None)
    return env


def get_status(port, path="/", timeout=1.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = s.recv(64)
            m = re.match(rb"HTTP/1\.\d (\d{3})", data)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


class Server:
    """A server process on a free port, ready once `ready_path` answers 200.
    `command(port) -> (argv, cwd)` builds other command lines (the other
    benchmarks' servers); by default it is this file's `server_command`."""

    def __init__(self, server, app, command=None, ready_path=None):
        self.name, self.app = server, app
        self.port = free_port()
        if command is None:
            cmd, cwd = server_command(server, app, self.port)
        else:
            cmd, cwd = command(self.port)
        self.ready_path = ready_path or APPS[app][2]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env_for_servers(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.startup = self.wait_ready()

    def wait_ready(self, timeout=30.0):
        path = self.ready_path
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read().decode()[-2000:]}")
            if get_status(self.port, path) == 200:
                return time.monotonic() - self.t0
            time.sleep(0.002)
        raise RuntimeError(f"{self.name} not ready in {timeout}s")

    def pids(self):
        master = self.proc.pid
        kids = []
        try:
            kids = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
        except OSError:
            pass
        return master, kids

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


def parse_wrk(out):
    def dur(text):
        m = re.match(r"([\d.]+)(us|ms|s|m)", text)
        if not m:
            return None
        v, u = float(m.group(1)), m.group(2)
        return v * {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        lat[pct] = dur(m.group(1)) if m else None
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"], "errors": errors}


def run_wrk(port, path, mode, duration, connections):
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency"]
    if mode == "close":
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    return parse_wrk(out)


def memory_of(pid):
    """(RSS, PSS) in KiB from smaps_rollup."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None, None
    rss = int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1))
    pss = int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1))
    return rss, pss


def measure_memory(server, app, min_requests=10000):
    """RSS/PSS of master and workers once the server has served >= 10k requests."""
    s = Server(server, app)
    try:
        served = 0
        while served < min_requests:
            out = subprocess.run(["wrk", "-t", "1", "-c", "4", "-d", "3s", f"http://127.0.0.1:{s.port}{APPS[app][2]}"],
                                 capture_output=True, text=True, timeout=40).stdout
            m = re.search(r"(\d+) requests in", out)
            served += int(m.group(1)) if m else 0
        master, kids = s.pids()
        m = memory_of(master)
        w = [memory_of(k) for k in kids]
        return {"master_rss_kib": m[0], "master_pss_kib": m[1],
                "worker_rss_kib": statistics.mean(x[0] for x in w) if w else None,
                "worker_pss_kib": statistics.mean(x[1] for x in w) if w else None,
                "workers": len(w), "requests": served, "startup_s": s.startup}
    finally:
        s.stop()


def svg_plot(results, servers, path):
    """A grouped bar chart of median req/s per (app, mode), no dependencies."""
    groups = sorted({(r["app"], r["mode"]) for r in results})
    colors = {"reference": "#999999", "ferricorn": "#d9480f", "baseline": "#f59f00", "gunicorn": "#2b8a3e", "granian": "#1c7ed6"}
    med = {}
    for g in groups:
        for s in servers:
            vals = [r["rps"] for r in results if (r["app"], r["mode"]) == g and r["server"] == s]
            if vals:
                med[(g, s)] = statistics.median(vals)
    top = max(med.values()) if med else 1
    w, h, pad, bar = 860, 420, 60, 22
    gw = (w - 2 * pad) / max(1, len(groups))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w/2}" y="20" text-anchor="middle" font-size="15">Requests/s, median of rounds (2 workers, wrk)</text>']
    for gi, g in enumerate(groups):
        x0 = pad + gi * gw + (gw - bar * len(servers)) / 2
        for si, s in enumerate(servers):
            v = med.get((g, s))
            if v is None:
                continue
            bh = (h - 2 * pad - 20) * v / top
            x = x0 + si * bar
            y = h - pad - bh
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar-3}" height="{bh:.1f}" fill="{colors.get(s, "#555")}"/>')
            out.append(f'<text x="{x + bar/2 - 1:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="9">{v/1000:.1f}k</text>')
        out.append(f'<text x="{pad + gi * gw + gw/2:.1f}" y="{h - pad + 16}" text-anchor="middle">{g[0]} / {g[1]}</text>')
    for si, s in enumerate(servers):
        out.append(f'<rect x="{pad + si*130}" y="{h - 22}" width="12" height="12" fill="{colors.get(s, "#555")}"/>')
        out.append(f'<text x="{pad + si*130 + 16}" y="{h - 12}">{s}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--apps", default="hello,flask")
    ap.add_argument("--servers", default="reference,ferricorn,gunicorn,granian")
    ap.add_argument("--modes", default="keepalive,close")
    ap.add_argument("--quick", action="store_true", help="1 round of 2 s, for trying the script")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--baseline", type=Path, help="an earlier ferricorn binary, measured as the server `baseline`")
    ap.add_argument("--baseline-label", help="what the baseline is, for the table (e.g. a commit)")
    ap.add_argument("--output", default="latest", help="results file name in bench/results (no extension)")
    args = ap.parse_args()
    global BASELINE
    if args.baseline:
        if not args.baseline.exists():
            sys.exit(f"--baseline {args.baseline}: no such file")
        BASELINE = args.baseline.resolve()
        if "baseline" not in args.servers.split(","):
            args.servers += ",baseline"
    if args.quick:
        args.rounds, args.duration = 1, 2
    if not FERRICORN.exists():
        sys.exit("build first: cargo build --release")
    for tool in ("wrk",):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            sys.exit(f"{tool} missing: run scripts/setup --bench")
    servers = args.servers.split(",")
    apps = args.apps.split(",")
    modes = args.modes.split(",")
    results = []
    for rnd in range(args.rounds):
        order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
        for app in apps:
            for server in order:
                if server == "reference" and app != "hello":
                    continue
                s = Server(server, app)
                try:
                    # The first 200 means one worker serves; give every server's
                    # other workers time to finish booting before measuring.
                    time.sleep(2)
                    run_wrk(s.port, APPS[app][2], "keepalive", 1, args.connections)  # warm-up
                    for mode in modes:
                        r = run_wrk(s.port, APPS[app][2], mode, args.duration, args.connections)
                        r.update(server=server, app=app, mode=mode, round=rnd)
                        results.append(r)
                        print(f"round {rnd} {app:5} {mode:9} {server:10} {r['rps']:9.0f} req/s  "
                              f"p50 {r['p50_ms'] or 0:7.2f} ms  p99 {r['p99_ms'] or 0:7.2f} ms  errors {r['errors']}",
                              flush=True)
                finally:
                    s.stop()

    memory = {}
    if not args.no_memory:
        for server in [s for s in servers if s != "reference"]:
            memory[server] = measure_memory(server, "hello")
            print(f"memory/startup {server}: {memory[server]}", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    table = render(results, servers, apps, modes, memory, args)
    (RESULTS / f"{args.output}.md").write_text(table)
    (RESULTS / f"{args.output}.json").write_text(
        json.dumps({"args": {**vars(args), "baseline": args.baseline and args.baseline.name},
                    "results": results, "memory": memory}, indent=1))
    svg_plot(results, servers, RESULTS / f"{args.output}.svg")
    print(table)


def shown_options(args):
    """The options of this run that differ from the defaults, for the table."""
    defaults = {"apps": "hello,flask", "modes": "keepalive,close",
                "servers": "reference,ferricorn,gunicorn,granian"}
    servers = args.servers.removesuffix(",baseline") if args.baseline else args.servers
    given = {"apps": args.apps, "modes": args.modes, "servers": servers}
    out = [(k, v) for k, v in given.items() if v != defaults[k]]
    if args.baseline:
        out.append(("baseline", "BIN"))
    return out


def render(results, servers, apps, modes, memory, args):
    def med(server, app, mode, key):
        vals = [r[key] for r in results if r["server"] == server and r["app"] == app and r["mode"] == mode and r[key] is not None]
        return statistics.median(vals) if vals else None

    lines = [f"Machine: {os.cpu_count()} cores; wrk -t1 -c{args.connections}, {args.duration} s per run, "
             f"{args.rounds} rounds, servers interleaved; medians. Command: `bench/run.py"
             + (f" --rounds {args.rounds} --duration {args.duration}" if not args.quick else " --quick")
             + "".join(f" --{k} {v}" for k, v in shown_options(args)) + "`", ""]
    if args.baseline:
        lines += [f"`baseline`: {args.baseline_label or args.baseline.name}, run exactly as `ferricorn`.", ""]
    lines.append("| app | connection | server | req/s | p50 ms | p99 ms | errors | ferricorn ÷ this |")
    lines.append("|---|---|---|---:|---:|---:|---:|---:|")
    for app in apps:
        for mode in modes:
            fr = med("ferricorn", app, mode, "rps")
            for server in servers:
                rps = med(server, app, mode, "rps")
                if rps is None:
                    continue
                errs = sum(r["errors"] for r in results if r["server"] == server and r["app"] == app and r["mode"] == mode)
                ratio = f"{fr / rps:.2f}×" if fr else "-"
                p50, p99 = med(server, app, mode, "p50_ms"), med(server, app, mode, "p99_ms")
                lines.append(f"| {app} | {mode} | {server} | {rps:,.0f} | {p50 or 0:.2f} | {p99 or 0:.2f} | {errs} | {ratio} |")
    if memory:
        lines += ["", "| server | master RSS MiB | master PSS MiB | worker RSS MiB (mean) | worker PSS MiB (mean) | launch → first 200 ms |",
                  "|---|---:|---:|---:|---:|---:|"]
        for server, m in memory.items():
            f = lambda k: f"{m[k] / 1024:.1f}" if m.get(k) is not None else "-"
            lines.append(f"| {server} | {f('master_rss_kib')} | {f('master_pss_kib')} | {f('worker_rss_kib')} | "
                         f"{f('worker_pss_kib')} | {m['startup_s'] * 1000:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
