# Runs a gunicorn-style Python config file the way gunicorn does (a fresh
# module named __config__, __file__ set, registered in sys.modules), and
# answers the questions the Rust side needs for good error messages: on
# which line a name was bound, where in the config file an exception
# happened, how many positional arguments a hook takes.
import ast
import importlib
import inspect
import sys
import traceback
import types

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _binding_lines(source, filename):
    """Line of the last module-level binding of each name."""
    found = {}
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return found

    def target(node, line):
        if isinstance(node, ast.Name):
            found[node.id] = line
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                target(elt, line)
        elif isinstance(node, ast.Starred):
            target(node.value, line)

    def visit(stmts):
        for node in stmts:
            if isinstance(node, _SCOPES):
                found[node.name] = node.lineno
                continue
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    target(t, node.lineno)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                target(node.target, node.lineno)
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                target(node.target, node.lineno)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    found[(alias.asname or alias.name).split(".")[0]] = node.lineno
            # Bodies of if/for/while/with/try still run at module level.
            for field in ("body", "orelse", "finalbody", "handlers"):
                sub = getattr(node, field, None)
                if isinstance(sub, list):
                    visit(sub)

    visit(tree.body)
    return found


def exec_file(path):
    with open(path, "rb") as f:
        source = f.read()
    code = compile(source, path, "exec")
    mod = types.ModuleType("__config__")
    mod.__file__ = path
    sys.modules["__config__"] = mod
    exec(code, mod.__dict__)
    return mod.__dict__, _binding_lines(source, path)


def import_module(name):
    if name in sys.modules:
        # A re-read (HUP) must see the file as it is now.
        mod = importlib.reload(sys.modules[name])
    else:
        mod = importlib.import_module(name)
    path = getattr(mod, "__file__", None)
    lines = {}
    if path and path.endswith(".py"):
        try:
            with open(path, "rb") as f:
                lines = _binding_lines(f.read(), path)
        except OSError:
            pass
    return vars(mod), lines, path


def locate(exc, tb, path):
    """(line in `path` or None, one-line summary, full traceback)."""
    if tb is None:
        tb = exc.__traceback__
    line = None
    if isinstance(exc, SyntaxError) and exc.filename == path:
        line = exc.lineno
        summary = "%s: %s" % (type(exc).__name__, exc.msg)
    else:
        frame = tb
        while frame is not None:
            if frame.tb_frame.f_code.co_filename == path:
                line = frame.tb_lineno
            frame = frame.tb_next
        summary = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    full = "".join(traceback.format_exception(type(exc), exc, tb))
    return line, summary, full


def positional_arity(obj):
    """Positional parameters, as gunicorn's util.get_arity counts them;
    None when the signature cannot be read (some builtins)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in sig.parameters.values() if p.kind in kinds)


def qualname(obj):
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__qualname__


def class_path(obj):
    return "%s.%s" % (obj.__module__, obj.__qualname__)


def resolve(spec):
    """gunicorn's validate_callable for a "module.attr" string."""
    try:
        mod_name, obj_name = spec.rsplit(".", 1)
    except ValueError:
        raise TypeError("%r is not an import string: expected module[.submodules...].object" % spec)
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise TypeError("cannot import %r: %s" % (mod_name, e))
    try:
        return getattr(mod, obj_name)
    except AttributeError:
        raise TypeError("cannot load %r from %r" % (obj_name, mod_name))


# ---- `import gunicorn` in a config file, to change gunicorn.SERVER or
# gunicorn.SERVER_SOFTWARE (the Server header, SERVER_SOFTWARE).
_names_at_import = None


def prepare_gunicorn(version, server, software):
    """Make `import gunicorn` work in the config (a minimal module when
    gunicorn is not installed) and reset the two names before each read."""
    global _names_at_import
    mod = sys.modules.get("gunicorn")
    if mod is None:
        try:
            import gunicorn as mod
        except ImportError:
            mod = types.ModuleType("gunicorn")
            mod.__doc__ = "ferricorn's stand-in for gunicorn: SERVER and SERVER_SOFTWARE only."
            mod.version_info = tuple(int(p) if p.isdigit() else p for p in version.split("."))
            mod.__version__ = version
            mod.SERVER = server
            mod.SERVER_SOFTWARE = software
            sys.modules["gunicorn"] = mod
    if _names_at_import is None:
        _names_at_import = (getattr(mod, "SERVER", None), getattr(mod, "SERVER_SOFTWARE", None))
    mod.SERVER, mod.SERVER_SOFTWARE = _names_at_import


def gunicorn_names():
    """(SERVER, SERVER_SOFTWARE), each None unless the config changed it."""
    mod = sys.modules.get("gunicorn")
    if mod is None or _names_at_import is None:
        return None, None
    server = getattr(mod, "SERVER", None)
    software = getattr(mod, "SERVER_SOFTWARE", None)
    return (
        str(server) if server != _names_at_import[0] else None,
        str(software) if software != _names_at_import[1] else None,
    )
