# A threaded-worker configuration as real files write it, with request hooks
# that record the thread they run on.
import os
import threading

worker_class = "gthread"
threads = 3
workers = 1


def _note(line):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(line + "\n")


def pre_request(worker, req):
    _note("pre %s %d" % (req.path, threading.get_ident()))


def post_request(worker, req, environ, resp):
    _note("post %s %d" % (req.path, threading.get_ident()))


def worker_int(worker):
    # The thread dump real configurations do: every thread's stack.
    import sys
    import traceback

    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame))
        _note("thread %d\n%s" % (ident, stack))
