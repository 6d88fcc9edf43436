# The objects gunicorn's server hooks receive, with the attributes real hook
# code reads: server.log / .cfg / .pid / .num_workers / .proc_name,
# worker.pid / .age / .ppid / .log / .cfg / .alive, req.method / .path /
# .headers, resp.status / .status_code / .headers. Values are filled in by
# the server (Rust); `_write` is its error log, injected before use.
import http
import os
import sys
import traceback

_write = None
_LEVELS = (10, 20, 30, 40, 50)


class Logger:
    """The part of gunicorn's glogging.Logger hook code uses."""

    def _log(self, level, msg, args, exc_info=None):
        text = str(msg)
        if args:
            try:
                text = text % args
            except Exception:
                text = "%s %r" % (text, args)
        if exc_info:
            info = sys.exc_info() if exc_info is True else exc_info
            if isinstance(info, BaseException):
                info = (type(info), info, info.__traceback__)
            if info and info[0] is not None:
                text += "\n" + "".join(traceback.format_exception(*info)).rstrip("\n")
        _write(level, text)

    def debug(self, msg, *args, **kw):
        self._log(10, msg, args, kw.get("exc_info"))

    def info(self, msg, *args, **kw):
        self._log(20, msg, args, kw.get("exc_info"))

    def warning(self, msg, *args, **kw):
        self._log(30, msg, args, kw.get("exc_info"))

    warn = warning

    def error(self, msg, *args, **kw):
        self._log(40, msg, args, kw.get("exc_info"))

    def critical(self, msg, *args, **kw):
        self._log(50, msg, args, kw.get("exc_info"))

    def exception(self, msg, *args, **kw):
        self._log(40, msg, args, kw.get("exc_info", True))

    def log(self, lvl, msg, *args, **kw):
        level = min(_LEVELS, key=lambda l: abs(l - int(lvl)))
        self._log(level, msg, args, kw.get("exc_info"))

    def reopen_files(self):
        pass

    def close_on_exec(self):
        pass


class Setting:
    def __init__(self, name, value):
        self.name = name
        self.value = value

    def get(self):
        return self.value


class Config:
    """server.cfg: every setting as an attribute, as gunicorn's Config."""

    def __init__(self, values):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError("no setting named %r" % name) from None

    def __setattr__(self, name, value):
        raise AttributeError("settings cannot be changed from a hook; edit the config file and send HUP")

    @property
    def settings(self):
        return {k: Setting(k, v) for k, v in self._values.items()}

    @property
    def address(self):
        return list(self._values.get("bind") or [])

    @property
    def uid(self):
        return self._values.get("user")

    @property
    def gid(self):
        return self._values.get("group")

    @property
    def worker_class_str(self):
        return "sync"

    @property
    def env(self):
        return dict(kv.split("=", 1) for kv in self._values.get("raw_env") or [])

    def __repr__(self):
        return "<ferricorn Config %d settings>" % len(self._values)


class Server:
    """The arbiter as hooks see it."""

    master_name = "Master"

    def __init__(self, log, cfg, pid):
        self.log = log
        self.cfg = cfg
        self.pid = pid
        self.num_workers = cfg.workers
        self.proc_name = cfg.proc_name or cfg.default_proc_name
        self.timeout = cfg.timeout
        self.app = None
        self.WORKERS = {}
        self.LISTENERS = []
        self.reexec_pid = 0
        self.master_pid = 0

    def __repr__(self):
        return "<ferricorn Server pid %s>" % self.pid


class Worker:
    def __init__(self, age, ppid, log, cfg):
        self.age = age
        self.pid = "[booting]"
        self.ppid = ppid
        self.log = log
        self.cfg = cfg
        self.timeout = cfg.timeout
        self.booted = False
        self.aborted = False
        self.alive = True
        self.nr = 0
        self.max_requests = cfg.max_requests or sys.maxsize
        self.wsgi = None

    def __str__(self):
        return "<Worker %s>" % self.pid

    __repr__ = __str__


class Request:
    scheme = "http"
    fragment = ""
    body = None
    trailers = None

    def __init__(self, method, uri, path, query, version, headers, peer_addr):
        self.method = method
        self.uri = uri
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.peer_addr = peer_addr
        self.remote_addr = peer_addr


class Response:
    def __init__(self, code, headers, sent):
        try:
            reason = http.HTTPStatus(code).phrase
        except ValueError:
            reason = ""
        self.status = ("%d %s" % (code, reason)).strip()
        self.status_code = code
        self.headers = headers
        self.sent = sent
        self.response_length = sent
        self.version = (1, 1)


def abort_handler(hook, worker):
    """worker_abort, called as gunicorn calls it: from a Python SIGABRT
    handler, which runs once the interpreter gets control back."""

    def handle(signum, frame):
        worker.alive = False
        worker.aborted = True
        try:
            hook(worker)
        except BaseException:
            _write(40, "Exception in worker_abort hook\n" + traceback.format_exc().rstrip("\n"))
        finally:
            for f in (sys.stdout, sys.stderr):
                try:
                    f.flush()
                except Exception:
                    pass
            os._exit(1)

    return handle
