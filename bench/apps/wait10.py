"""An app that spends its request time waiting, as on a database call:
10 ms of sleep (the GIL is free meanwhile), then a small response."""
import time

BODY = b"ok\n"


def app(environ, start_response):
    time.sleep(0.010)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]
