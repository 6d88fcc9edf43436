# The objects gunicorn's server hooks receive, shaped after gunicorn's own
# (arbiter.Arbiter, workers.base.Worker, config.Config, sock.BaseSocket,
# http.message.Request, http.wsgi.Response): the attributes and methods hook
# code reads and calls. Values are filled in by the server (Rust); the
# underscore functions are the server's, injected before use. Where ferricorn
# works differently on purpose, the attribute says so in its error.
#
# Nothing here is per process state about "the current request": requests
# may be served on several threads of one worker, each with its own objects.
import http
import os
import socket
import sys
import time
import traceback

_write = None  # (level, text): the server's error log
_validate = None  # (name, value) -> (True, normal form) | (False, message)
_notify = None  # () -> None: the worker's heartbeat
_load_app = None  # (uri) -> the WSGI callable
_LEVELS = (10, 20, 30, 40, 50)


class FerricornDifference(AttributeError):
    """An attribute gunicorn has that ferricorn has on purpose not: an
    AttributeError (so getattr(obj, name, default) still works) that says why."""


class SettingError(TypeError, ValueError):
    """A value cfg.set() refused. gunicorn's validators raise TypeError or
    ValueError; this is both, so hook code catching either catches it."""


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
    """cfg.settings[name]: gunicorn's Setting, as far as hooks use it."""

    def __init__(self, cfg, name):
        self._cfg = cfg
        self.name = name

    @property
    def value(self):
        return self._cfg._values[self.name]

    def get(self):
        return self.value

    def set(self, value):
        self._cfg.set(self.name, value)

    def __repr__(self):
        return "<Setting %s=%r>" % (self.name, self.value)


def _parse_address(bind):
    """gunicorn's util.parse_address, for the addresses ferricorn accepts."""
    if bind.startswith("unix:"):
        return bind[5:]
    if bind.startswith("fd://"):
        return int(bind[5:])
    if bind.startswith("["):
        host, _, port = bind[1:].partition("]")
        port = port.lstrip(":")
        return (host, int(port) if port else 8000)
    host, sep, port = bind.rpartition(":")
    if not sep:
        return (bind, 8000)
    return (host, int(port) if port else 8000)


class Config:
    """server.cfg / worker.cfg: every setting as an attribute, as gunicorn's
    Config; cfg.set(name, value) validates as the config file does."""

    def __init__(self, values):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_changed", [])

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError("No configuration setting for: %s" % name) from None

    def __setattr__(self, name, value):
        if name in self._values:
            raise AttributeError("Invalid access!")
        object.__setattr__(self, name, value)

    def set(self, name, value):
        if name not in self._values:
            raise AttributeError("No configuration setting for: %s" % name)
        ok, result = _validate(name, value)
        if not ok:
            raise SettingError(result)
        self._values[name] = result
        if name not in self._changed:
            self._changed.append(name)

    @property
    def settings(self):
        return {k: Setting(self, k) for k in self._values}

    @property
    def address(self):
        return [_parse_address(b) for b in self._values.get("bind") or []]

    @property
    def uid(self):
        return self._values.get("user")

    @property
    def gid(self):
        return self._values.get("group")

    @property
    def proc_name(self):
        pn = self._values.get("proc_name")
        return pn if pn is not None else self._values.get("default_proc_name")

    @property
    def worker_class_str(self):
        uri = self._values.get("worker_class") or "sync"
        if isinstance(uri, str) and (uri == "sync" or uri.endswith("SyncWorker")):
            if (self._values.get("threads") or 1) > 1:
                return "gthread"
            return "sync"
        return str(uri)

    @property
    def worker_class(self):
        raise FerricornDifference(
            "cfg.worker_class: ferricorn's workers are written in Rust, there is no "
            "Python worker class to load; cfg.worker_class_str names the kind (%r)"
            % self.worker_class_str
        )

    @property
    def logger_class(self):
        raise FerricornDifference(
            "cfg.logger_class: ferricorn creates its server log itself, there is no "
            "logger class for a hook to load; use server.log / worker.log"
        )

    @property
    def is_ssl(self):
        return self._values.get("certfile") or self._values.get("keyfile")

    @property
    def ssl_options(self):
        names = ("certfile", "keyfile", "ssl_version", "cert_reqs", "ca_certs",
                 "suppress_ragged_eofs", "do_handshake_on_connect", "ciphers")
        return {n: self._values.get(n) for n in names if n in self._values}

    @property
    def env(self):
        env = {}
        for kv in self._values.get("raw_env") or []:
            k, _, v = kv.partition("=")
            env[k] = v
        return env

    @property
    def sendfile(self):
        if self._values.get("sendfile") is not None:
            return False
        if "SENDFILE" in os.environ:
            return os.environ["SENDFILE"].lower() in ("y", "1", "yes", "true")
        return True

    @property
    def reuse_port(self):
        return self._values.get("reuse_port")

    @property
    def env_orig(self):
        return dict(os.environ)

    def __str__(self):
        width = max(len(k) for k in self._values)
        lines = []
        for k in sorted(self._values):
            v = self._values[k]
            if callable(v):
                v = "<{}()>".format(getattr(v, "__qualname__", v))
            lines.append("{k:{w}} = {v}".format(k=k, v=v, w=width))
        return "\n".join(lines)

    def __repr__(self):
        return "<ferricorn Config %d settings>" % len(self._values)


class App:
    """server.app / worker.app: the part of gunicorn's WSGIApplication hooks use."""

    def __init__(self, cfg, callable=None):
        self.cfg = cfg
        self.callable = callable
        self.app_uri = cfg.wsgi_app
        self.usage = None
        self.prog = "ferricorn"

    def load(self):
        return _load_app(self.cfg.wsgi_app)

    load_wsgiapp = load

    def wsgi(self):
        if self.callable is None:
            self.callable = self.load()
        return self.callable

    def reload(self):
        raise FerricornDifference(
            "app.reload(): ferricorn re-reads the configuration on SIGHUP "
            "(os.kill(server.pid, signal.SIGHUP))"
        )

    def __repr__(self):
        return "<ferricorn App %s>" % self.app_uri


class Listener:
    """An entry of server.LISTENERS: gunicorn's sock.TCPSocket /
    TCP6Socket / UnixSocket. `sock` is a socket object on a duplicate of the
    listening fd; other attributes (getsockname, fileno, ...) are the socket's."""

    def __init__(self, fd, family, url, cfg_addr):
        self._fd = fd
        self.FAMILY = family
        self._url = url
        self.cfg_addr = cfg_addr
        self._sock = None
        self.conf = None
        self.log = None

    @property
    def sock(self):
        if self._sock is None:
            self._sock = socket.socket(fileno=os.dup(self._fd))
        return self._sock

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.sock, name)

    def fileno(self):
        return self._fd

    def close(self):
        # Closes this object's duplicate only: the server's socket stays open.
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __str__(self):
        return self._url

    def __repr__(self):
        return "<ferricorn listener %s>" % self._url


class Server:
    """The arbiter as hooks see it (gunicorn's Arbiter)."""

    def __init__(self, log, cfg, pid, nworkers_hook):
        self.log = log
        self.cfg = cfg
        self.pid = pid
        self._num_workers = None
        self._nworkers_hook = nworkers_hook
        self.proc_name = cfg.proc_name
        self.timeout = cfg.timeout
        self.address = cfg.address
        self.app = App(cfg)
        self.WORKERS = {}
        self.LISTENERS = []
        self.PIPE = []
        self.reexec_pid = 0
        self.master_pid = 0
        self.master_name = "Master"
        self.pidfile = None
        self.systemd = False
        self.worker_age = 0

    # As in gunicorn, setting num_workers calls nworkers_changed(server,
    # new, old); the master then brings the workers to that number.
    @property
    def num_workers(self):
        return self._num_workers

    @num_workers.setter
    def num_workers(self, value):
        old = self._num_workers
        self._num_workers = value
        if self._nworkers_hook is not None:
            self._nworkers_hook(self, value, old)

    def kill_worker(self, pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def kill_workers(self, sig):
        for pid in list(self.WORKERS):
            self.kill_worker(pid, sig)

    @property
    def worker_class(self):
        return self.cfg.worker_class

    def __repr__(self):
        return "<ferricorn Server pid %s>" % self.pid


class WorkerTmp:
    """worker.tmp: in gunicorn a temporary file whose mtime is the
    heartbeat. ferricorn's heartbeat is a word in memory shared with the
    master, so notify() and last_update() work, and there is no file."""

    def __init__(self):
        self._last = time.monotonic()

    def notify(self):
        self._last = time.monotonic()
        if _notify is not None:
            _notify()

    def last_update(self):
        return self._last

    def fileno(self):
        raise FerricornDifference(
            "worker.tmp.fileno(): ferricorn's worker heartbeat is a slot in memory shared "
            "with the master, not a file; call worker.notify() to beat it"
        )

    def close(self):
        pass


class Worker:
    """gunicorn's workers.base.Worker, as hooks see it."""

    def __init__(self, age, ppid, log, cfg, sockets):
        self.age = age
        self.pid = "[booting]"
        self.ppid = ppid
        self.log = log
        self.cfg = cfg
        self.sockets = sockets
        self.timeout = cfg.timeout
        self.booted = False
        self.aborted = False
        self.alive = True
        self.nr = 0
        self.max_requests = cfg.max_requests or sys.maxsize
        self.app = App(cfg)
        self.wsgi = None
        self.tmp = WorkerTmp()
        self.reloader = None
        self.PIPE = []

    def notify(self):
        self.tmp.notify()

    def __str__(self):
        return "<Worker %s>" % self.pid

    __repr__ = __str__


def _split_uri(uri, path, query):
    fragment = ""
    if "#" in uri:
        fragment = uri.split("#", 1)[1]
        path = path.split("#", 1)[0]
        query = query.split("#", 1)[0]
    return path, query, fragment


class Request:
    """gunicorn's http.message.Request, as pre_request / post_request see it."""

    body = None
    trailers = ()
    proxy_protocol_info = None

    def __init__(self, method, uri, path, query, version, headers, peer_addr, scheme):
        self.method = method
        self.uri = uri
        self.path, self.query, self.fragment = _split_uri(uri, path, query)
        self.version = version
        self.headers = headers
        self.peer_addr = peer_addr
        self.remote_addr = peer_addr
        self.scheme = scheme
        self.must_close = False
        self.trailers = []

    def should_close(self):
        if self.must_close:
            return True
        for name, value in self.headers:
            if name == "CONNECTION":
                v = value.lower().strip(" \t")
                if v == "close":
                    return True
                if v == "keep-alive":
                    return False
                break
        return self.version <= (1, 0)

    def __repr__(self):
        return "<ferricorn Request %s %s>" % (self.method, self.uri)


class Response:
    """gunicorn's http.wsgi.Response, as post_request sees it (sent)."""

    def __init__(self, req, code, headers, sent):
        try:
            reason = http.HTTPStatus(code).phrase
        except ValueError:
            reason = ""
        self.req = req
        self.status = ("%d %s" % (code, reason)).strip()
        self.status_code = code
        self.headers = headers
        self.headers_sent = True
        self.sent = sent
        self.response_length = None
        self.chunked = False
        for name, value in headers:
            lname = name.lower()
            if lname == "content-length":
                try:
                    self.response_length = int(value)
                except ValueError:
                    pass
            elif lname == "transfer-encoding" and "chunked" in value.lower():
                self.chunked = True
        self.must_close = False
        self.upgrade = False
        self.version = "ferricorn"

    def __repr__(self):
        return "<ferricorn Response %s>" % self.status


def abort_handler(hook, worker, on_exit):
    """worker_abort, called as gunicorn calls it: from a Python SIGABRT
    handler, which runs once the interpreter gets control back; then, as in
    gunicorn, worker_exit (`on_exit`) before the worker exits."""

    def handle(signum, frame):
        worker.alive = False
        worker.aborted = True
        try:
            if hook is not None:
                hook(worker)
        except BaseException:
            _write(40, "Exception in worker_abort hook\n" + traceback.format_exc().rstrip("\n"))
        finally:
            try:
                on_exit()
            except BaseException:
                pass
            for f in (sys.stdout, sys.stderr):
                try:
                    f.flush()
                except Exception:
                    pass
            os._exit(1)

    return handle


class TLSContext:
    """What ssl_context(config, default_ssl_context_factory) hooks get and
    return in place of an ssl.SSLContext: the calls and attributes real hooks
    use, recorded and then applied by the server to its rustls
    configuration. Anything rustls cannot do (an SNI callback, DH
    parameters, a key passphrase) is recorded and refused at start-up with
    its name, rather than silently ignored."""

    _OWN = frozenset(
        ("_certfile", "_keyfile", "_cafile", "_verify_mode", "_ciphers", "_min", "_max",
         "_alpn", "_unsupported")
    )

    def __init__(self, certfile, keyfile, ca_certs, cert_reqs, ciphers):
        import ssl

        object.__setattr__(self, "_certfile", certfile)
        object.__setattr__(self, "_keyfile", keyfile)
        object.__setattr__(self, "_cafile", ca_certs)
        object.__setattr__(self, "_verify_mode", ssl.VerifyMode(cert_reqs))
        object.__setattr__(self, "_ciphers", ciphers)
        object.__setattr__(self, "_min", ssl.TLSVersion.TLSv1_2)
        object.__setattr__(self, "_max", ssl.TLSVersion.MAXIMUM_SUPPORTED)
        object.__setattr__(self, "_alpn", ["http/1.1"])
        object.__setattr__(self, "_unsupported", [])
        object.__setattr__(self, "options", ssl.OP_ALL | ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3)
        object.__setattr__(self, "check_hostname", False)
        object.__setattr__(self, "protocol", ssl.PROTOCOL_TLS_SERVER)

    def __setattr__(self, name, value):
        if name in ("options", "check_hostname", "post_handshake_auth"):
            # OP_* flags (OP_NO_COMPRESSION, OP_CIPHER_SERVER_PREFERENCE, ...)
            # describe what rustls already does or never does.
            object.__setattr__(self, name, value)
        elif isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
        else:
            self._unsupported.append(name)

    def __getattr__(self, name):
        raise FerricornDifference(
            f"ssl_context: ferricorn's TLS context has no {name!r} (it serves with rustls, "
            "not OpenSSL: see docs/tls.md for what a hook may set)"
        )

    @property
    def verify_mode(self):
        return self._verify_mode

    @verify_mode.setter
    def verify_mode(self, mode):
        import ssl

        object.__setattr__(self, "_verify_mode", ssl.VerifyMode(int(mode)))

    @property
    def minimum_version(self):
        return self._min

    @minimum_version.setter
    def minimum_version(self, v):
        import ssl

        object.__setattr__(self, "_min", ssl.TLSVersion(v))

    @property
    def maximum_version(self):
        return self._max

    @maximum_version.setter
    def maximum_version(self, v):
        import ssl

        object.__setattr__(self, "_max", ssl.TLSVersion(v))

    @property
    def sni_callback(self):
        return None

    @sni_callback.setter
    def sni_callback(self, cb):
        if cb is not None:
            self._unsupported.append("sni_callback")

    def set_servername_callback(self, cb):
        if cb is not None:
            self._unsupported.append("set_servername_callback")

    def load_cert_chain(self, certfile, keyfile=None, password=None):
        if password is not None:
            self._unsupported.append("load_cert_chain(password=...) (use an unencrypted key)")
        object.__setattr__(self, "_certfile", os.fspath(certfile))
        object.__setattr__(self, "_keyfile", None if keyfile is None else os.fspath(keyfile))

    def load_verify_locations(self, cafile=None, capath=None, cadata=None):
        if capath is not None:
            self._unsupported.append("load_verify_locations(capath=...) (give cafile)")
        if cadata is not None:
            self._unsupported.append("load_verify_locations(cadata=...) (give cafile)")
        if cafile is not None:
            object.__setattr__(self, "_cafile", os.fspath(cafile))

    def load_default_certs(self, purpose=None):
        self._unsupported.append("load_default_certs")

    def set_ciphers(self, ciphers):
        object.__setattr__(self, "_ciphers", ciphers)

    def set_alpn_protocols(self, protocols):
        object.__setattr__(self, "_alpn", [str(p) for p in protocols])

    def set_ecdh_curve(self, name):
        self._unsupported.append("set_ecdh_curve")

    def load_dh_params(self, path):
        self._unsupported.append("load_dh_params")

    def _export(self):
        return (
            self._certfile,
            self._keyfile,
            self._cafile,
            int(self._verify_mode),
            self._ciphers,
            int(self._min),
            int(self._max),
            list(self._alpn),
            list(self._unsupported),
        )


def default_ssl_context_factory(certfile, keyfile, ca_certs, cert_reqs, ciphers):
    """gunicorn's default_ssl_context_factory: the context the settings alone make."""

    def factory():
        return TLSContext(certfile, keyfile, ca_certs, cert_reqs, ciphers)

    return factory
