"""The app the hot-reload tests edit. Tests copy it (and reload_helper.py)
into a temporary directory, as app.py and helper.py, and edit the copies.

GET /          the version string below
GET /helper    helper.VALUE (a module imported at start)
GET /lazy      lazy.VALUE (a module imported only by this request)
GET /template  the text of templates/page.html, read per request
GET /log       appends a line to app.log next to this file (the app writing a file)
GET /slow      the version after 200 ms (a request in flight during a reload)
GET /ppid      the master's pid
"""
import os
import time

import helper

VERSION = "v1"
HERE = os.path.dirname(os.path.abspath(__file__))


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/helper":
        body = helper.VALUE
    elif path == "/lazy":
        import lazy

        body = lazy.VALUE
    elif path == "/template":
        with open(os.path.join(HERE, "templates", "page.html")) as f:
            body = f.read().strip()
    elif path == "/log":
        with open(os.path.join(HERE, "app.log"), "a") as f:
            f.write("a request\n")
        body = "logged"
    elif path == "/slow":
        time.sleep(0.2)
        body = VERSION
    elif path == "/ppid":
        body = str(os.getppid())
    else:
        body = VERSION
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def make_app():
    """An app factory (`app:make_app()`), for a factory that raises."""
    return app
