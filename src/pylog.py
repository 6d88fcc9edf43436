# Python's logging configured as gunicorn's glogging.Logger.setup configures
# it: the gunicorn.error and gunicorn.access loggers with handlers for
# errorlog/accesslog, then logconfig_dict, logconfig_json or logconfig
# (fileConfig) merged over gunicorn's CONFIG_DEFAULTS. The Rust side then
# hands every error and access line to those two loggers.
#
# Syslog is not configured here: ferricorn sends it from Rust.
import configparser
import io
import json
import logging
import logging.config
import os
import sys
import traceback

logging.Logger.manager.emittedNoHandlerWarning = 1

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

ERROR_FMT = r"%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
DATEFMT = r"[%Y-%m-%d %H:%M:%S %z]"
ACCESS_FMT = "%(message)s"

# gunicorn's glogging.CONFIG_DEFAULTS, which every logging configuration
# is merged over (a shallow update, as gunicorn does it).
CONFIG_DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": "INFO",
            "handlers": ["error_console"],
            "propagate": True,
            "qualname": "gunicorn.error",
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["console"],
            "propagate": True,
            "qualname": "gunicorn.access",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
            "class": "logging.Formatter",
        }
    },
}


class SafeAtoms(dict):
    """gunicorn's SafeAtoms: missing atoms read as '-', header atoms case-insensitively.
    The Rust side fills it already escaped (as SafeAtoms.__init__ escapes)."""

    def __getitem__(self, k):
        if k.startswith("{"):
            kl = k.lower()
            if kl in self:
                return super().__getitem__(kl)
            return "-"
        if k in self:
            return super().__getitem__(k)
        return "-"


class ConfigError(Exception):
    pass


# What was last applied successfully: re-applied when a new configuration
# fails half-way (dictConfig and fileConfig leave loggers half-configured).
_last_good = None
_logger = None


def _loggers():
    root = logging.root
    return [logging.getLogger(name) for name in list(root.manager.loggerDict)] + [root]


def _set_handler(log, output, fmt, stream):
    for h in list(log.handlers):
        if getattr(h, "_gunicorn", False):
            log.removeHandler(h)
            h.close()
    if output is None:
        return
    if output == "-":
        h = logging.StreamHandler(stream)
    else:
        h = logging.FileHandler(output)
    h.setFormatter(fmt)
    h._gunicorn = True
    log.addHandler(h)


def _where(exc):
    """The message of a logging-config exception and of its causes."""
    parts = [str(exc) or type(exc).__name__]
    cause = exc.__cause__ or exc.__context__
    seen = 0
    while cause is not None and seen < 4:
        text = "%s: %s" % (type(cause).__name__, cause)
        if text not in parts[-1]:
            parts.append(text)
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return ": ".join(parts)


def _copy(obj):
    """Dicts and lists copied, other objects shared: dictConfig consumes the
    dicts it is given (it pops "()"), and a configuration may be applied
    again (to restore it); streams and classes are not copyable."""
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy(v) for v in obj]
    return obj


def _read(cfg):
    """The configuration to apply, as (kind, payload), or None. Raises
    ConfigError with a message naming the file (and line) when it is broken."""
    if cfg.logconfig_dict:
        config = dict(CONFIG_DEFAULTS)
        config.update(_copy(cfg.logconfig_dict))
        where = getattr(cfg, "config", None)
        return ("dict", config, "logconfig_dict in %s" % where if where else "logconfig_dict")
    if cfg.logconfig_json:
        path = cfg.logconfig_json
        try:
            with open(path) as f:
                loaded = json.load(f)
        except OSError as e:
            raise ConfigError("logconfig_json %s: %s" % (path, e.strerror or e))
        except json.JSONDecodeError as e:
            raise ConfigError("logconfig_json %s, line %d: %s" % (path, e.lineno, e.msg))
        if not isinstance(loaded, dict):
            raise ConfigError("logconfig_json %s: the file must hold a JSON object" % path)
        config = dict(CONFIG_DEFAULTS)
        config.update(loaded)
        return ("dict", config, "logconfig_json %s" % path)
    if cfg.logconfig:
        path = cfg.logconfig
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            raise ConfigError("logconfig %s: %s" % (path, e.strerror or e))
        return ("ini", (text, path), "logconfig %s" % path)
    return None


def _apply(kind, payload, what):
    try:
        if kind == "dict":
            logging.config.dictConfig(_copy(payload))
        else:
            text, path = payload
            defaults = {"__file__": path, "here": os.path.dirname(path)}
            parser = configparser.ConfigParser(defaults)
            parser.read_file(io.StringIO(text), path)
            for section in ("loggers", "handlers", "formatters"):
                if not parser.has_section(section):
                    raise ConfigError("%s: no [%s] section" % (what, section))
            logging.config.fileConfig(parser, disable_existing_loggers=False)
    except ConfigError:
        raise
    except configparser.Error as e:
        raise ConfigError("%s: %s" % (what, str(e).replace("\n", " ")))
    except Exception as e:
        raise ConfigError("%s: %s" % (what, _where(e)))


def setup(cfg):
    """Configure logging for `cfg`; returns (error logger, access logger).
    Raises ConfigError (after restoring the last good configuration)."""
    global _last_good
    error_log = logging.getLogger("gunicorn.error")
    error_log.propagate = False
    access_log = logging.getLogger("gunicorn.access")
    access_log.propagate = False
    wanted = _read(cfg)
    error_log.setLevel(LOG_LEVELS.get(str(cfg.loglevel).lower(), logging.INFO))
    access_log.setLevel(logging.INFO)
    _set_handler(error_log, cfg.errorlog, logging.Formatter(ERROR_FMT, DATEFMT), sys.stderr)
    _set_handler(access_log, cfg.accesslog, logging.Formatter(ACCESS_FMT), sys.stdout)
    if wanted is not None:
        try:
            _apply(*wanted)
        except ConfigError:
            if _last_good is not None:
                try:
                    _apply(*_last_good)
                except ConfigError:
                    pass
            raise
        _last_good = wanted
    return error_log, access_log


def effective_level():
    return logging.getLogger("gunicorn.error").getEffectiveLevel()


def reopen_files():
    """USR1: as gunicorn's Logger.reopen_files, every FileHandler reopens."""
    for log in _loggers():
        for handler in log.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    if handler.stream:
                        handler.close()
                        handler.stream = handler._open()
                finally:
                    handler.release()


def format_exc():
    return traceback.format_exc()


# ---- logger_class: a subclass of gunicorn's glogging.Logger


class _Response:
    __slots__ = ("status", "status_code", "sent", "headers", "response_length")


class _Request:
    __slots__ = ("headers", "method", "uri", "path", "query", "version")


def setup_class(spec, cfg):
    """Create the logger_class instance with a gunicorn Config holding our
    settings. Returns the instance (its setup() configured logging)."""
    try:
        import gunicorn.config
        import gunicorn.glogging
    except ImportError as e:
        raise ConfigError(
            "logger_class %s needs gunicorn installed in the server's Python (%s)" % (spec, e)
        )
    if isinstance(spec, str):
        try:
            mod_name, _, obj_name = spec.rpartition(".")
            cls = getattr(__import__(mod_name, fromlist=[obj_name]), obj_name)
        except (ImportError, AttributeError, ValueError) as e:
            raise ConfigError("logger_class %s: cannot load it: %s" % (spec, e))
    else:
        cls = spec
    if not (isinstance(cls, type) and issubclass(cls, gunicorn.glogging.Logger)):
        raise ConfigError("logger_class %s is not a subclass of gunicorn.glogging.Logger" % spec)
    gcfg = gunicorn.config.Config()
    for name in gcfg.settings:
        if name in ("logger_class",) or not hasattr(cfg, name):
            continue
        try:
            gcfg.set(name, getattr(cfg, name))
        except Exception:
            pass
    try:
        return cls(gcfg)
    except Exception as e:
        raise ConfigError("logger_class %s: %s" % (spec, _where(e)))


def class_access(log, status, sent, resp_headers, req_headers, method, uri, path, query,
                 version, remote_addr, micros):
    """Logger.access(resp, req, environ, request_time) with gunicorn-shaped objects."""
    import datetime

    resp = _Response()
    resp.status = status
    resp.status_code = int(status.split(None, 1)[0])
    resp.sent = sent
    resp.response_length = sent
    resp.headers = resp_headers
    req = _Request()
    req.headers = req_headers
    req.method = method
    req.uri = uri
    req.path = path
    req.query = query
    req.version = version
    environ = {
        "REQUEST_METHOD": method,
        "RAW_URI": uri,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": version,
        "REMOTE_ADDR": remote_addr,
    }
    for name, value in req_headers:
        key = "HTTP_" + name.replace("-", "_")
        if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            environ[key] = value
    log.access(resp, req, environ, datetime.timedelta(microseconds=micros))
