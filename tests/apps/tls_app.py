"""What a TLS test needs to see of the environ."""


def app(environ, start_response):
    if environ["PATH_INFO"] == "/cert":
        body = environ.get("SSL_CLIENT_CERT", "none").encode()
    elif environ["PATH_INFO"] == "/echo":
        body = environ["wsgi.input"].read()
    elif environ["PATH_INFO"] == "/file":
        f = open(__file__, "rb")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](f)
    else:
        body = ("%s %s" % (environ["wsgi.url_scheme"], environ.get("HTTPS"))).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
