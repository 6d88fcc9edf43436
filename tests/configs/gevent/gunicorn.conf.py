# A gevent configuration as real files write it: the worker class, many
# connections, and a post_fork hook that sees the process before gevent
# patches it (where psycogreen-style driver patches go).
import os

worker_class = "gevent"
worker_connections = 500
workers = 1


def post_fork(server, worker):
    from gevent import monkey

    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write("post_fork socket patched=%s\n" % monkey.is_module_patched("socket"))
