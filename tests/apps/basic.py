"""Small WSGI apps the integration tests serve (one module, many entry points)."""
import os


def app(environ, start_response):
    body = b"Hello, World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = app


def echo(environ, start_response):
    """Echo method, path and the request body."""
    body = environ["wsgi.input"].read()
    out = b"%s %s %d\n" % (environ["REQUEST_METHOD"].encode(), environ["PATH_INFO"].encode("latin-1"), len(body)) + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


def boom(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("the app failed on purpose")
    return app(environ, start_response)


def pid(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def make_app(greeting="Hello", n=1):
    def factory_app(environ, start_response):
        body = ("%s %d" % (greeting, n)).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    return factory_app


not_callable = 42
