"""An app for threaded workers: which thread served, how many ran at once,
per-thread state, and requests that wait (as on a database) or hang."""
import os
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
_running = 0
_peak = 0
_local = threading.local()


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
            # A request that waits, as on a database: the GIL is free meanwhile.
            time.sleep(int(q.get("ms", "100")) / 1000.0)
            return _reply(
                start_response,
                "slept %s pid=%d thread=%d\n" % (q.get("ms", "100"), os.getpid(), threading.get_ident()),
            )
        if path == "/hang":
            time.sleep(float(q.get("s", "60")))
            return _reply(start_response, "woke\n")
        if path == "/peak":
            with _lock:
                peak, _peak = _peak, 0
            return _reply(start_response, "peak=%d\n" % peak)
        if path == "/running":
            # Requests in the app right now, this one not counted.
            with _lock:
                n = _running - 1
            return _reply(start_response, "running=%d\n" % n)
        if path == "/local":
            # threading.local lasts across requests on one thread.
            _local.n = getattr(_local, "n", 0) + 1
            return _reply(start_response, "thread=%d n=%d\n" % (threading.get_ident(), _local.n))
        if path == "/env":
            return _reply(
                start_response,
                "multithread=%s multiprocess=%s main=%s\n"
                % (
                    environ["wsgi.multithread"],
                    environ["wsgi.multiprocess"],
                    threading.current_thread() is threading.main_thread(),
                ),
            )
        if path == "/echo":
            body = environ["wsgi.input"].read()
            return _reply(start_response, "%d %s\n" % (len(body), body[:16].decode("latin-1")))
        return _reply(start_response, "ok %s\n" % path)
    finally:
        with _lock:
            _running -= 1
