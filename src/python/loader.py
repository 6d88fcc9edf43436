# Loads the WSGI application named on the command line, the way gunicorn's
# util.import_app does: "module", "module:attr", "module:factory()" or
# "module:factory('arg', n=1)" with literal arguments only.
import ast
import importlib
import sys
import traceback


class AppImportError(Exception):
    """The app spec is wrong in a way one line explains (no traceback)."""


def _parse(spec):
    module, sep, obj = spec.partition(":")
    if not sep or not obj:
        obj = "application"
    if not module:
        raise AppImportError(f"Failed to parse {spec!r}: expected MODULE or MODULE:ATTR.")
    try:
        expression = ast.parse(obj, mode="eval").body
    except SyntaxError:
        raise AppImportError(f"Failed to parse {obj!r} as an attribute name or function call.")
    if isinstance(expression, ast.Name):
        return module, expression.id, None, None
    if isinstance(expression, ast.Call):
        if not isinstance(expression.func, ast.Name):
            raise AppImportError(f"Function reference must be a simple name: {obj!r}")
        try:
            args = [ast.literal_eval(arg) for arg in expression.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in expression.keywords}
        except ValueError:
            raise AppImportError(f"Failed to parse arguments as literal values: {obj!r}")
        return module, expression.func.id, args, kwargs
    raise AppImportError(f"Failed to parse {obj!r} as an attribute name or function call.")


def load(spec):
    module, name, args, kwargs = _parse(spec)
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module or (e.name and module.startswith(e.name + ".")):
            hint = ""
            if module.endswith(".py"):
                hint = f" Did you mean '{module[:-3]}:{name}'?"
            raise AppImportError(
                f"No module named {e.name!r} (importing {module!r}; sys.path[0] is {sys.path[0]!r}).{hint}"
            ) from None
        raise
    try:
        app = getattr(mod, name)
    except AttributeError:
        raise AppImportError(f"Failed to find attribute {name!r} in {module!r} ({mod.__file__}).") from None
    if args is not None:
        app = app(*args, **kwargs)
        if app is None:
            raise AppImportError(f"The factory {name!r} in {module!r} returned None.")
    if not callable(app):
        raise AppImportError(
            f"Application object must be callable: {module}:{name} is {type(app).__name__} ({mod.__file__})."
        )
    return app


def describe(exc):
    """One line for our own errors, the full traceback for everything else."""
    if isinstance(exc, AppImportError):
        return str(exc) + "\n"
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def module_files():
    """Source files behind sys.modules, for the reloader to watch.

    The standard library is left out (it does not change under a running
    app, and watching it would cost hundreds of watches); site-packages is
    kept, so an edited dependency reloads too."""
    import os
    import sysconfig

    paths = sysconfig.get_paths()
    stdlib = tuple(
        os.path.join(os.path.realpath(paths[k]), "") for k in ("stdlib", "platstdlib") if paths.get(k)
    )
    files = set()
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not isinstance(f, str) or not f:
            continue
        f = os.path.abspath(f)
        if f.endswith((".pyc", ".pyo")):
            try:
                import importlib.util

                f = importlib.util.source_from_cache(f)
            except ValueError:
                pass
        real = os.path.realpath(f)
        if real.startswith(stdlib) and "site-packages" not in real:
            continue
        files.add(f)
    return sorted(files)


def error_files(exc):
    """Files a failed import involved: the SyntaxError's file and every
    frame of the traceback, so fixing any of them triggers a retry."""
    import os

    files = set()
    if isinstance(exc, SyntaxError) and exc.filename:
        files.add(exc.filename)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        # The module does not exist yet: watch where it would appear in the
        # app's own directories, so creating it retries.
        rel = exc.name.replace(".", os.sep)
        cwd = os.getcwd()
        for entry in sys.path:
            base = os.path.abspath(entry or cwd)
            if os.path.isdir(base) and (base == cwd or base.startswith(cwd + os.sep)):
                files.add(os.path.join(base, rel + ".py"))
                files.add(os.path.join(base, rel, "__init__.py"))
    tb = exc.__traceback__
    while tb is not None:
        files.add(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return sorted(f for f in files if f and not f.startswith("<"))


def error_app(report):
    """The app served when the code is broken and nothing better exists
    (reload mode only): a 500 page with the traceback, as a dev server shows."""
    import html

    body = (
        "<!doctype html><html><head><title>Application failed to load</title></head><body>"
        "<h1>Application failed to load</h1><p>ferricorn is watching the code and will reload "
        "it as soon as it is saved.</p><pre>%s</pre></body></html>" % html.escape(report)
    ).encode("utf-8")

    def app(environ, start_response):
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app
