"""The app the binary-upgrade tests serve.

/        "v<APP_VERSION>" (which generation answers, when versions differ)
/server  SERVER_SOFTWARE (which binary answers)
/env     hand-off variables visible to the app ("clean" when none)
/master  the pid of the master of the worker that answers
/slow-master  the same after 0.3 s (concurrent requests then reach every worker)
"""
import os
import time

VERSION = os.environ.get("APP_VERSION", "1")
HANDOFF = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "GUNICORN_FD",
           "FERRICORN_READY_FD", "FERRICORN_UPGRADE_FROM", "FERRICORN_OWNED_FDS"]


def app(environ, start_response):
    path = environ.get("PATH_INFO")
    if path == "/server":
        body = environ["SERVER_SOFTWARE"]
    elif path == "/env":
        body = ",".join(k for k in HANDOFF if k in os.environ) or "clean"
    elif path == "/master":
        body = str(os.getppid())
    elif path == "/slow-master":
        time.sleep(0.3)
        body = str(os.getppid())
    else:
        body = "v" + VERSION
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
