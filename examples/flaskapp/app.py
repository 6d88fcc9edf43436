"""A small but real Flask app exercising what a WSGI server has to get right.

Serve it with either of:
    ferricorn --chdir examples/flaskapp app:app
    ferricorn --chdir examples flaskapp.app:app

Routes:
    GET  /                 HTML page rendered from templates/index.html
    GET  /json             JSON document
    GET  /form             HTML form carrying a CSRF token
    POST /form             checks the token (403 on mismatch), echoes `message`
    POST /upload           multipart upload of field `file`: size and sha256 as JSON
    GET  /stream           streamed body, 10 chunks "chunk 0\\n" .. "chunk 9\\n"
    GET  /static/hello.txt file from static/, served by Flask
    GET  /error            raises, to exercise 500 handling
    GET  /version          the VERSION constant below, as text
"""

import hashlib
import hmac
import os
import platform
import secrets

from flask import Flask, Response, abort, jsonify, render_template, request, session

# Served by /version: edit it (a plain one-line string literal) to see whether
# the workers have picked up new code after a reload.
VERSION = "1"

# Flask(__name__) finds templates/ and static/ next to this file whichever way
# the module was imported (`app` or `flaskapp.app`).
app = Flask(__name__)

# The session (and with it the CSRF token) lives in a cookie signed with this
# key. It has to be the same in every worker process, or a form rendered by one
# worker would be rejected by another; a fixed key gives that. Development key
# only: a real deployment reads its key from the environment.
app.config["SECRET_KEY"] = "ferricorn-example-dev-key-not-secret"

# Uploads beyond this get a 413 from Flask instead of filling the disk.
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

CHUNK_SIZE = 64 * 1024


def csrf_token():
    """The session's CSRF token, created on first use."""
    token = session.get("csrf_token")
    if token is None:
        token = secrets.token_urlsafe(32)
        session["csrf_token"] = token
    return token


@app.get("/")
def index():
    return render_template(
        "index.html",
        server=request.environ.get("SERVER_SOFTWARE", "unknown"),
        pid=os.getpid(),
    )


@app.get("/json")
def json_view():
    return jsonify(
        message="Hello, World!",
        version=VERSION,
        pid=os.getpid(),
        python=platform.python_version(),
    )


@app.get("/form")
def form_get():
    return render_template("form.html", csrf_token=csrf_token())


@app.post("/form")
def form_post():
    expected = session.get("csrf_token")
    submitted = request.form.get("csrf_token", "")
    # compare_digest: don't leak how much of the token matched through timing.
    if not expected or not hmac.compare_digest(expected, submitted):
        abort(403, description="CSRF token missing or invalid.")
    message = request.form.get("message", "")
    return Response(f"message: {message}\n", mimetype="text/plain")


@app.post("/upload")
def upload():
    f = request.files.get("file")
    if f is None:
        abort(400, description="Expected a multipart field named 'file'.")
    digest = hashlib.sha256()
    size = 0
    # Read in chunks: large uploads are spooled to a temporary file by Werkzeug
    # and must not be loaded into memory at once here either.
    while chunk := f.stream.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return jsonify(filename=f.filename, size=size, sha256=digest.hexdigest())


@app.get("/stream")
def stream():
    def generate():
        for n in range(10):
            yield f"chunk {n}\n"

    # No Content-Length: the server has to stream (chunked on HTTP/1.1).
    return Response(generate(), mimetype="text/plain")


@app.get("/error")
def error():
    raise RuntimeError("intentional error from /error")


@app.get("/version")
def version():
    return Response(VERSION, mimetype="text/plain")
