"""An app that takes BOOT_DELAY seconds to import and says when it is ready,
so tests can see when each worker finished booting."""
import os
import sys
import time

time.sleep(float(os.environ.get("BOOT_DELAY", "0")))
print("app-ready pid=%d" % os.getpid(), file=sys.stderr, flush=True)


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
