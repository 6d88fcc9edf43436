"""An app whose import fails: the master must print the traceback once and exit 4."""
import nonexistent_module_for_ferricorn_tests  # noqa: F401


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"unreachable"]
