# A gunicorn.conf.py in the style of gunicorn's documentation: bind,
# workers, timeouts, an access log format, raw_env, and server hooks that
# log and set process state. ferricorn.toml beside it is the same in TOML.
import os

wsgi_app = "hooked:app"
bind = "127.0.0.1:8000"
workers = int(os.environ.get("HOOKED_WORKERS", "2"))
timeout = 30
graceful_timeout = 5
keepalive = 2
accesslog = "-"
access_log_format = "access %(m)s %(U)s %(s)s"
loglevel = "info"
raw_env = ["APP_GREETING=hello from raw_env"]
proc_name = "hooked"

HOOK_LOG = os.environ.get("HOOK_LOG")


def record(*parts):
    if HOOK_LOG:
        with open(HOOK_LOG, "a") as f:
            f.write(" ".join(str(p) for p in parts) + "\n")


def on_starting(server):
    server.log.info("hook: on_starting, %s workers", server.cfg.workers)
    record("on_starting", server.cfg.workers, server.cfg.proc_name)


def when_ready(server):
    server.log.info("Server is ready. Spawning workers")
    record("when_ready", server.pid == os.getpid())


def nworkers_changed(server, new_value, old_value):
    record("nworkers_changed", new_value, old_value)


def on_reload(server):
    record("on_reload", server.cfg.timeout)


def pre_fork(server, worker):
    record("pre_fork", worker.age)


def post_fork(server, worker):
    server.log.info("Worker spawned (pid: %s)", worker.pid)
    os.environ["WORKER_STATE"] = "forked-%s" % (worker.pid == os.getpid())
    record("post_fork", worker.age, worker.pid == os.getpid())


def post_worker_init(worker):
    record("post_worker_init", worker.age, os.environ["APP_GREETING"])


def pre_request(worker, req):
    worker.log.debug("%s %s", req.method, req.path)
    record("pre_request", req.method, req.path, dict(req.headers).get("X-TEST", "-"))


def post_request(worker, req, environ, resp):
    record("post_request", req.method, req.path, environ["PATH_INFO"], resp.status)


def worker_int(worker):
    record("worker_int", worker.age)


def worker_abort(worker):
    record("worker_abort", worker.age)


def worker_exit(server, worker):
    record("worker_exit", worker.age)


def child_exit(server, worker):
    record("child_exit", worker.age)


def on_exit(server):
    record("on_exit")
