#!/usr/bin/env python3
"""Hot reload: save -> served latency, ferricorn vs gunicorn vs granian, in one run.

Each server runs examples/hello.py (copied into a temporary directory, with a
version string added to its body) with 2 workers and its reloader on:

  ferricorn            --reload (inotify)
  gunicorn-inotify     --reload --reload-engine inotify   (needs the `inotify` package)
  gunicorn-poll        --reload --reload-engine poll      (gunicorn polls once a second)
  granian              --reload                           (needs granian[reload], watchfiles)

For every edit the version string in app.py is rewritten in place, and the
clock runs from just before the write until a GET / first returns the new
version (polled every millisecond on fresh connections). Meanwhile a client
thread sends requests without pause and counts every failed one (connection
error, reset, timeout, non-200). Edits are spaced a little more than a second
apart, so that whole-second mtimes never hide an edit from a poller, and the
servers are interleaved edit by edit (the order rotates), so a noisy neighbour
hits all of them alike. Bytecode writing is off for every server: Python's
__pycache__ check has one-second resolution, and a reloader that does not
account for it would serve stale code — a different bug from latency.

Usage: bench/reload_latency.py [--edits N] [--servers a,b,...] [--ferricorn PATH]
Writes bench/results/reload.{md,json}.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
RESULTS = REPO / "bench" / "results"
HELLO = REPO / "examples" / "hello.py"

SERVERS = ["ferricorn", "gunicorn-inotify", "gunicorn-poll", "granian"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_source(version):
    """examples/hello.py with a version string in its body."""
    text = HELLO.read_text()
    text = text.replace('BODY = b"Hello, World!\\n"', f'VERSION = "{version}"\nBODY = ("Hello, World! " + VERSION + "\\n").encode()')
    assert "VERSION" in text, "examples/hello.py changed shape"
    return text


def command(server, port, ferricorn):
    bind = f"127.0.0.1:{port}"
    if server == "ferricorn":
        return [str(ferricorn), "-w", "2", "-b", bind, "--reload", "--log-level", "info", "hello:app"]
    if server.startswith("gunicorn-"):
        engine = server.split("-", 1)[1]
        return [str(VENV / "bin" / "gunicorn"), "-w", "2", "-k", "sync", "-b", bind, "--reload",
                "--reload-engine", engine, "--log-level", "info", "hello:app"]
    if server == "granian":
        return [str(VENV / "bin" / "granian"), "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1",
                "--port", str(port), "--reload", "--no-ws", "--log-level", "info", "hello:app"]
    raise ValueError(server)


def get(port, timeout=2.0):
    """(status, body) of GET /, or (0, error) on failure."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.\d (\d{3})", head)
        return (int(m.group(1)) if m else 0), body.decode("latin-1")
    except OSError as e:
        return 0, f"{type(e).__name__}: {e}"


class Server:
    def __init__(self, name, ferricorn):
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"reload-bench-{name}-"))
        (self.dir / "hello.py").write_text(app_source("v0000"))
        self.port = free_port()
        env = dict(os.environ)
        env["VIRTUAL_ENV"] = str(VENV)
        env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '')}"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("WEB_CONCURRENCY", None)
        # Beside the app's directory, not in it: granian watches the whole
        # working directory, and a log written there would reload it.
        self.log_path = self.dir.parent / f"{self.dir.name}.log"
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(command(name, self.port, ferricorn), cwd=self.dir, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.version = "v0000"
        self.wait_for(self.version, 30.0)
        # Let the reloader settle (workers report their modules, watchers start).
        time.sleep(1.5)

    def wait_for(self, version, timeout):
        want = f"Hello, World! {version}"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_text()[-3000:]}")
            status, body = get(self.port, timeout=1.0)
            if status == 200 and body.strip() == want:
                return time.monotonic()
            time.sleep(0.001)
        return None

    def edit(self, version, timeout=15.0):
        """Rewrite the version in place; seconds until it is served, or None."""
        self.version = version
        t0 = time.monotonic()
        with open(self.dir / "hello.py", "w") as f:
            f.write(app_source(version))
        t1 = self.wait_for(version, timeout)
        return None if t1 is None else t1 - t0

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

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
        self.log.close()
        self.log_path.unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Client(threading.Thread):
    """Requests without pause; every non-200 or error is a failure."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop_flag = port, threading.Event()
        self.ok, self.failed, self.errors = 0, 0, []

    def run(self):
        while not self.stop_flag.is_set():
            status, body = get(self.port, timeout=10.0)
            if status == 200:
                self.ok += 1
            else:
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(f"{status} {body[:80]}")
                time.sleep(0.001)

    def stop(self):
        self.stop_flag.set()
        self.join()


def check_prerequisites(servers, ferricorn):
    if "ferricorn" in servers and not Path(ferricorn).exists():
        sys.exit(f"{ferricorn} missing: cargo build --release")
    py = str(VENV / "bin" / "python")
    checks = {"gunicorn-inotify": "import gunicorn, inotify.adapters", "gunicorn-poll": "import gunicorn",
              "granian": "import granian, watchfiles"}
    for s in servers:
        if s in checks and subprocess.run([py, "-c", checks[s]], capture_output=True).returncode:
            sys.exit(f"{s}: missing packages in .venv: scripts/setup --bench (bench/requirements.txt)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edits", type=int, default=12, help="edits per server (median of these)")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--spacing", type=float, default=1.2, help="seconds between two edits of one server")
    ap.add_argument("--ferricorn", default=str(REPO / "target" / "release" / "ferricorn"))
    args = ap.parse_args()
    servers = args.servers.split(",")
    check_prerequisites(servers, args.ferricorn)

    running, clients = {}, {}
    try:
        for name in servers:
            running[name] = Server(name, args.ferricorn)
            clients[name] = Client(running[name].port)
            clients[name].start()
        latencies = {name: [] for name in servers}
        last_edit = {name: 0.0 for name in servers}
        for i in range(1, args.edits + 1):
            order = servers[i % len(servers):] + servers[:i % len(servers)]
            for name in order:
                time.sleep(max(0.0, last_edit[name] + args.spacing - time.monotonic()))
                last_edit[name] = time.monotonic()
                lat = running[name].edit(f"v{i:04d}")
                latencies[name].append(lat)
                shown = f"{lat * 1000:8.1f} ms" if lat is not None else "   never"
                print(f"edit {i:2} {name:17} {shown}  failed so far {clients[name].failed}", flush=True)
        # A last look: requests in flight after the final edit count too.
        time.sleep(0.5)
    finally:
        for name, c in clients.items():
            c.stop()
        logs = {}
        for name, s in running.items():
            logs[name] = s.log_text()
            s.stop()

    results = {}
    for name in servers:
        lats = [x for x in latencies[name] if x is not None]
        results[name] = {
            "latencies_ms": [None if x is None else round(x * 1000, 2) for x in latencies[name]],
            "median_ms": round(statistics.median(lats) * 1000, 1) if lats else None,
            "min_ms": round(min(lats) * 1000, 1) if lats else None,
            "max_ms": round(max(lats) * 1000, 1) if lats else None,
            "missed": len(latencies[name]) - len(lats),
            "requests_ok": clients[name].ok,
            "requests_failed": clients[name].failed,
            "first_errors": clients[name].errors,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = render(results, servers, args)
    (RESULTS / "reload.md").write_text(table)
    recorded = dict(vars(args))
    try:
        # A path inside the repository is recorded relative to it.
        recorded["ferricorn"] = str(Path(args.ferricorn).resolve().relative_to(REPO))
    except ValueError:
        recorded["ferricorn"] = Path(args.ferricorn).name
    (RESULTS / "reload.json").write_text(json.dumps({"args": recorded, "results": results}, indent=1))
    print(table)
    for name in servers:
        if results[name]["requests_failed"] or results[name]["missed"]:
            print(f"--- {name} log (tail) ---\n{logs[name][-2500:]}")


def render(results, servers, args):
    lines = [
        f"Machine: {os.cpu_count()} cores. examples/hello.py with a version string, 2 workers, "
        f"{args.edits} in-place edits per server spaced {args.spacing} s apart, servers interleaved; "
        "latency = write → first GET / serving the new version (1 ms polling); a concurrent client "
        "counts failed requests. Command: `bench/reload_latency.py"
        + (f" --edits {args.edits}" if args.edits != 12 else "") + "`",
        "",
        "| server | reloader | median ms | min ms | max ms | edits never served | requests ok | requests failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    how = {"ferricorn": "--reload (inotify)", "gunicorn-inotify": "--reload --reload-engine inotify",
           "gunicorn-poll": "--reload --reload-engine poll", "granian": "--reload (watchfiles)"}
    for name in servers:
        r = results[name]
        f = lambda v: "-" if v is None else f"{v:.1f}"
        lines.append(f"| {name.split('-')[0]} | {how.get(name, name)} | {f(r['median_ms'])} | {f(r['min_ms'])} | "
                     f"{f(r['max_ms'])} | {r['missed']} | {r['requests_ok']:,} | {r['requests_failed']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
