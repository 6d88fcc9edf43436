"""Apps for the chaos scenarios: a version marker, with a little work per request."""
import os
import time

VERSION = os.environ.get("APP_VERSION", "1")


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(0.05)
    body = ("v" + VERSION).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
