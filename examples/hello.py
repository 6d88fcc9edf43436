"""The smallest useful WSGI app: no framework, no dependencies.

Serve it with:  ferricorn --chdir examples hello:app
"""

BODY = b"Hello, World!\n"


def app(environ, start_response):
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            # An explicit length lets the server keep the connection alive
            # without falling back to chunked encoding or closing it.
            ("Content-Length", str(len(BODY))),
        ],
    )
    return [BODY]


# gunicorn (and so ferricorn) looks for `application` when no attribute is given.
application = app
