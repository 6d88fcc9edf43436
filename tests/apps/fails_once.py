"""The first worker to import this fails; the others hang in a slow import.
FAILS_ONCE_MARKER names a file that does not exist yet."""
import os
import time

try:
    os.close(os.open(os.environ["FAILS_ONCE_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    first = True
except FileExistsError:
    first = False
if first:
    raise RuntimeError("the first worker fails to import on purpose")
time.sleep(30)


def app(environ, start_response):
    start_response("200 OK", [])
    return [b""]
