"""An app served with the hooked configs (tests/configs/hooked): it shows
the environment the config and its hooks set up."""
import os


def app(environ, start_response):
    name = environ["PATH_INFO"].strip("/").split("/")[-1]
    body = os.environ.get(name, "-").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
