"""WSGI apps for the HTTP/WSGI conformance tests. `app` dispatches on the
first path segment; the query string carries parameters."""
import hashlib
import os
import sys
import time
from urllib.parse import parse_qs


def _params(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _reply(start_response, body, status="200 OK", ctype="text/plain", extra=()):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def _lines(d):
    """One `key=repr(value)` line per item: unambiguous and easy to parse."""
    return "".join("%s=%r\n" % (k, v) for k, v in sorted(d.items()))


def environ_dump(environ, start_response):
    """Every str/int/bool/tuple environ value, plus facts about the wsgi.* objects."""
    out = {}
    for k, v in environ.items():
        if isinstance(v, (str, int, bool, tuple)):
            out[k] = v
    for k in ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper"):
        out["has " + k] = k in environ
    out["errors_has_write"] = hasattr(environ["wsgi.errors"], "write")
    out["input_has_readline"] = hasattr(environ["wsgi.input"], "readline")
    return _reply(start_response, _lines(out))


def read_body(environ, start_response):
    """Read the body the way `mode` says; answer with a JSON summary."""
    p = _params(environ)
    mode = p.get("mode", "read")
    inp = environ["wsgi.input"]
    n = int(p.get("n", "7"))
    pieces = []
    if mode == "read":
        pieces.append(inp.read())
    elif mode == "read_n":
        while True:
            chunk = inp.read(n)
            if not chunk:
                break
            pieces.append(chunk)
    elif mode == "readline":
        while True:
            line = inp.readline()
            if not line:
                break
            pieces.append(line)
    elif mode == "readline_n":
        while True:
            line = inp.readline(n)
            if not line:
                break
            pieces.append(line)
    elif mode == "readlines":
        pieces.extend(inp.readlines())
    elif mode == "iter":
        pieces.extend(iter(inp))
    elif mode == "cl":
        pieces.append(inp.read(int(environ.get("CONTENT_LENGTH") or 0)))
    body = b"".join(pieces)
    # Reads past the end must keep returning b"" (never the next request).
    after = inp.read() + inp.read(10) + inp.readline()
    out = {
        "mode": mode,
        "len": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "pieces": ",".join(str(len(x)) for x in pieces),
        "body": body.hex() if len(body) <= 4096 else "",
        "after": after.hex(),
        "terminated": environ.get("wsgi.input_terminated"),
    }
    return _reply(start_response, "".join("%s=%s\n" % (k, v) for k, v in out.items()))


def ignore_body(environ, start_response):
    """Never touches wsgi.input."""
    return _reply(start_response, "ignored %s\n" % environ["PATH_INFO"])


def sleep(environ, start_response):
    p = _params(environ)
    if "marker" in p:
        open(p["marker"], "w").close()
    time.sleep(float(p.get("s", "0.5")))
    return _reply(start_response, "slept\n")


def ok(environ, start_response):
    return _reply(start_response, "ok %s\n" % environ["PATH_INFO"])


class _Closing:
    """An iterable with close(): writes a marker file when closed."""

    def __init__(self, marker, n, delay, size):
        self.marker, self.n, self.delay, self.size = marker, n, delay, size

    def __iter__(self):
        for i in range(self.n):
            if self.delay:
                time.sleep(self.delay)
            yield (b"%06d" % i) * (self.size // 6)

    def close(self):
        with open(self.marker, "w") as f:
            f.write("closed")


def stream_close(environ, start_response):
    p = _params(environ)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _Closing(p["marker"], int(p.get("n", "200")), float(p.get("delay", "0.01")), int(p.get("size", "65536")))


def short_body(environ, start_response):
    """Promises more bytes than it sends."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return [b"only ten!\n"]


def long_body(environ, start_response):
    """Sends more bytes than it promises: the extra must be dropped."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello", b" and more that must not be sent"]


def bad_header(environ, start_response):
    kind = _params(environ).get("kind", "name")
    if kind == "name":
        headers = [("Bad Header", "x")]
    elif kind == "crlf":
        headers = [("X-Injected", "a\r\nSet-Cookie: evil=1")]
    elif kind == "lf":
        headers = [("X-Injected", "a\nX-Evil: 1")]
    elif kind == "colon":
        headers = [("X-Bad:Name", "x")]
    elif kind == "status":
        start_response("200 OK\r\nX-Evil: 1", [("Content-Length", "2")])
        return [b"no"]
    else:
        headers = []
    start_response("200 OK", headers + [("Content-Length", "2")])
    return [b"no"]


def boom(environ, start_response):
    raise RuntimeError("conformance boom before headers")


def boom_after_headers(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first part\n"
        raise RuntimeError("conformance boom after headers")

    return gen()


def exc_info_before(environ, start_response):
    """start_response, then an error caught and reported with exc_info before any body byte."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("replaced")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Content-Length", "9")], sys.exc_info())
    return [b"replaced\n"]


def exc_info_after(environ, start_response):
    """exc_info after the head went out: start_response re-raises."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"head is out\n")
    try:
        raise ValueError("too late")
    except ValueError:
        start_response("500 Internal Server Error", [], sys.exc_info())
    return [b"unreachable\n"]


def start_twice(environ, start_response):
    start_response("200 OK", [])
    start_response("200 OK", [])
    return [b""]


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    write(b"by write() ")
    return [b"then iterated\n"]


def generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        for i in range(5):
            yield b"part %d\n" % i

    return gen()


def no_content(environ, start_response):
    start_response("204 No Content", [])
    return [b""]


def file_wrapper(environ, start_response):
    """Serve the file named by ?path= through wsgi.file_wrapper."""
    p = _params(environ)
    f = open(p["path"], "rb")
    if "seek" in p:
        f.seek(int(p["seek"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "cl" in p:
        headers.append(("Content-Length", p["cl"]))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 4096)


class _NoFileno:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def read(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


def file_wrapper_nofileno(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](_NoFileno(b"x" * 10000 + b"end\n"), 1000)


def str_body(environ, start_response):
    """Yields str, not bytes: an app error."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]


def big(environ, start_response):
    """A large response that ignores the request body."""
    n = int(_params(environ).get("n", "4000000"))
    return _reply(start_response, b"x" * n)


def pid(environ, start_response):
    return _reply(start_response, str(os.getpid()))


ROUTES = {
    "environ": environ_dump,
    "read": read_body,
    "ignore": ignore_body,
    "sleep": sleep,
    "ok": ok,
    "stream_close": stream_close,
    "short": short_body,
    "long": long_body,
    "bad_header": bad_header,
    "boom": boom,
    "boom_after": boom_after_headers,
    "exc_before": exc_info_before,
    "exc_after": exc_info_after,
    "start_twice": start_twice,
    "write": write_callable,
    "gen": generator,
    "nocontent": no_content,
    "file": file_wrapper,
    "file_nofileno": file_wrapper_nofileno,
    "pid": pid,
    "big": big,
    "str_body": str_body,
}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    name = path.strip("/").split("/", 1)[0]
    handler = ROUTES.get(name, ok)
    return handler(environ, start_response)


application = app
