"""An app for gevent workers: requests that wait cooperatively, a view of
what gevent patched, and a request that calls back into its own server
(which only a cooperative worker can answer while it waits)."""
import os
import socket
import threading
import time
import urllib.request
from urllib.parse import parse_qs

_lock = threading.Lock()
_running = 0
_peak = 0


def _reply(start_response, body, status="200 OK"):
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def app(environ, start_response):
    global _running, _peak
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    with _lock:
        _running += 1
        _peak = max(_peak, _running)
    try:
        if path == "/sleep":
            time.sleep(int(q.get("ms", "100")) / 1000.0)
            return _reply(start_response, "slept %s pid=%d\n" % (q.get("ms", "100"), os.getpid()))
        if path == "/hang":
            time.sleep(float(q.get("s", "60")))
            return _reply(start_response, "woke\n")
        if path == "/spin":
            # Blocks the hub: a Python loop that never yields.
            end = time.monotonic() + float(q.get("s", "30"))
            while time.monotonic() < end:
                pass
            return _reply(start_response, "spun\n")
        if path == "/peak":
            with _lock:
                peak, _peak = _peak, 0
            return _reply(start_response, "peak=%d\n" % peak)
        if path == "/running":
            with _lock:
                n = _running - 1
            return _reply(start_response, "running=%d\n" % n)
        if path == "/patched":
            from gevent import monkey

            return _reply(
                start_response,
                "socket=%s time=%s threading=%s multithread=%s\n"
                % (
                    monkey.is_module_patched("socket"),
                    monkey.is_module_patched("time"),
                    monkey.is_module_patched("threading"),
                    environ["wsgi.multithread"],
                ),
            )
        if path == "/selfcall":
            # Ask this very server for /sleep while serving this request.
            host = environ["SERVER_NAME"] if environ.get("HTTP_HOST") is None else environ["HTTP_HOST"]
            with urllib.request.urlopen("http://%s/sleep?ms=50" % host, timeout=10) as r:
                inner = r.read().decode()
            return _reply(start_response, "outer got: " + inner)
        if path == "/echo":
            body = environ["wsgi.input"].read()
            return _reply(start_response, "%d %s\n" % (len(body), body[:16].decode("latin-1")))
        if path == "/big":
            # A response larger than the socket buffers: writes wait on the hub.
            n = int(q.get("n", "4000000"))
            data = b"x" * n
            start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
            return [data]
        return _reply(start_response, "ok %s\n" % path)
    finally:
        with _lock:
            _running -= 1
