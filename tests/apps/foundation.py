"""Apps for the foundation tests: slow views, environment and identity probes."""
import os
import sys
import time
from urllib.parse import parse_qs


def _reply(start_response, body, status="200 OK"):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def sleeping_view_for_timeout(seconds):
    # The name is what the timeout test looks for in the dumped Python stack.
    time.sleep(seconds)


def app(environ, start_response):
    """/sleep?s=N sleeps N seconds, /hang sleeps 60 s, anything else answers at once."""
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/sleep":
        # Tests wait for this line to know the request is in flight.
        print("request-in-flight pid=%d" % os.getpid(), file=sys.stderr, flush=True)
        time.sleep(float(query.get("s", ["1"])[0]))
        return _reply(start_response, "slept")
    if path == "/hang":
        sleeping_view_for_timeout(60)
        return _reply(start_response, "woke up")
    if path == "/hang-ignoring-abort":
        # SIGABRT stays pending: only the master's SIGKILL can end this.
        import signal

        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGABRT})
        sleeping_view_for_timeout(60)
        return _reply(start_response, "woke up")
    if path == "/env":
        name = query.get("name", [""])[0]
        return _reply(start_response, os.environ.get(name, "<unset>"))
    if path == "/boom":
        raise RuntimeError("foundation app failed on purpose")
    if path == "/pid":
        return _reply(start_response, str(os.getpid()))
    if path == "/uid":
        return _reply(start_response, "%d %d" % (os.getuid(), os.getgid()))
    if path == "/prefix":
        return _reply(start_response, sys.prefix)
    if path == "/print":
        print("printed-by-the-app", flush=True)
        return _reply(start_response, "printed")
    return _reply(start_response, "foundation %d" % os.getpid())


# Set only when the master imported this module (--preload) before forking.
IMPORTED_IN_PID = os.getpid()


def import_pid(environ, start_response):
    return _reply(start_response, "%d %d" % (IMPORTED_IN_PID, os.getpid()))


def signal_handlers(environ, start_response):
    """Which Python-level handlers are installed for SIGINT and SIGTERM."""
    import signal

    def show(sig):
        h = signal.getsignal(sig)
        return getattr(h, "__name__", str(h))

    return _reply(start_response, "INT=%s TERM=%s" % (show(signal.SIGINT), show(signal.SIGTERM)))
