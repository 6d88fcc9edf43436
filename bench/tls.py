#!/usr/bin/env python3
"""https side by side: ferricorn --certfile, gunicorn --certfile and granian
--ssl-certificate, one RSA-2048 certificate made here with openssl, 2 workers,
hello world, wrk -c16 on loopback: keep-alive, and `Connection: close` (one
full handshake per request). ferricorn over plain HTTP is measured too, for
the TLS/plain ratio.

Usage: bench/tls.py [--duration S] [--connections N]
Needs `scripts/setup --bench` and a release build (cargo build --release).
Writes bench/results/tls.{md,json}.
"""
import argparse
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

SERVERS = ["ferricorn", "gunicorn", "granian", "ferricorn-plain"]


def make_cert(dir_):
    cert, key = Path(dir_) / "cert.pem", Path(dir_) / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def command(server, port, cert, key):
    cwd, spec, _ = common.APPS["hello"]
    bind = f"127.0.0.1:{port}"
    if server == "ferricorn":
        return [str(common.FERRICORN), "-w", "2", "-b", bind, "--log-level", "warning",
                "--certfile", str(cert), "--keyfile", str(key), spec], cwd
    if server == "ferricorn-plain":
        return [str(common.FERRICORN), "-w", "2", "-b", bind, "--log-level", "warning", spec], cwd
    if server == "gunicorn":
        return [str(common.VENV / "bin" / "gunicorn"), "-w", "2", "-k", "sync", "-b", bind,
                "--log-level", "warning", "--certfile", str(cert), "--keyfile", str(key), spec], cwd
    if server == "granian":
        return [str(common.VENV / "bin" / "granian"), "--interface", "wsgi", "--workers", "2",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-ws",
                "--ssl-certificate", str(cert), "--ssl-keyfile", str(key), spec], cwd
    raise ValueError(server)


def ready(port, tls):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s)
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1")
    except OSError:
        return False


def measure(server, cert, key, duration, connections):
    port = common.free_port()
    cmd, cwd = command(server, port, cert, key)
    proc = subprocess.Popen(cmd, cwd=cwd, env=common.env_for_servers(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    srv = common.Server.__new__(common.Server)
    srv.proc, srv.name = proc, server
    tls = server != "ferricorn-plain"
    try:
        end = time.monotonic() + 30
        while not ready(port, tls):
            if time.monotonic() > end or proc.poll() is not None:
                raise RuntimeError(f"{server} did not start")
            time.sleep(0.05)
        scheme = "https" if tls else "http"
        out = {}
        for mode in ("keepalive", "close"):
            cmd = ["nice", "-n", "19", "wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency"]
            if mode == "close":
                cmd += ["-H", "Connection: close"]
            cmd.append(f"{scheme}://127.0.0.1:{port}/")
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
            out[mode] = common.parse_wrk(res)
        return out
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        for server in SERVERS:
            results[server] = measure(server, cert, key, args.duration, args.connections)
            print(server, json.dumps(results[server]), flush=True)
    common.RESULTS.mkdir(exist_ok=True)
    (common.RESULTS / "tls.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# https, hello world, 2 workers, wrk -c{args.connections} -d{args.duration}s, RSA-2048", "",
             "| server | keep-alive req/s | p99 ms | close req/s (handshakes/s) | p99 ms | errors |",
             "|---|---|---|---|---|---|"]
    for s, r in results.items():
        k, c = r["keepalive"], r["close"]
        lines.append(f"| {s} | {k['rps']:.0f} | {k['p99_ms']} | {c['rps']:.0f} | {c['p99_ms']} | "
                     f"{k['errors'] + c['errors']} |")
    (common.RESULTS / "tls.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
