"""10 ms of waiting per request, for gevent workers: time.sleep is patched
by the worker, so it yields to the hub (as a patched database driver does)."""
import time

BODY = b"ok\n"


def app(environ, start_response):
    time.sleep(0.010)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]
