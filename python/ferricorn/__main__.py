"""Start the ferricorn server for the Python running this: `python -m ferricorn`
and the `ferricorn` command of an installed wheel both come here.

The server (`ferricorn-server`, installed beside the `ferricorn` command)
embeds CPython, but names no libpython: a wheel cannot know where that
library is on the machine it is installed on (Debian keeps it on the loader's
default path; pyenv, python.org and uv builds in `<prefix>/lib`), and a soname
search could find another build of the same version. The interpreter running
this file knows exactly: `sysconfig` names its LIBDIR and the library's file.
So this launcher checks that the wheel was built for this Python's minor
version, then execs the dynamic loader with that file preloaded:

    ld.so --preload <LIBDIR>/libpython3.X.so.1.0 --argv0 <ferricorn> ferricorn-server ARGS

The server's references to CPython resolve to the preloaded library, and the
environment is left as it was (no LD_LIBRARY_PATH or LD_PRELOAD reaching the
app's subprocesses). `FERRICORN_PYTHON` tells the server which interpreter to
embed: this one, a venv's python, so the venv's site-packages come first.

The server's argv[0] is the installed `ferricorn` command, so a binary upgrade
(USR2) re-executes the command, not the old server binary: after
`pip install -U ferricorn` the new launcher starts the new server.
"""

import os
import sys
import sysconfig

SERVER = "ferricorn-server"
COMMAND = "ferricorn"


def fail(message):
    sys.stderr.write("Error: %s\n" % message)
    sys.exit(1)


def distribution():
    """The installed ferricorn distribution, or None (run from a source tree)."""
    from importlib import metadata

    try:
        return metadata.distribution("ferricorn")
    except metadata.PackageNotFoundError:
        return None


def built_for(dist):
    """(major, minor) of the CPython the wheel's server embeds, from its tag
    (`cp311-cp311-manylinux_…`), or None when the wheel says nothing."""
    text = dist.read_text("WHEEL") or ""
    for line in text.splitlines():
        key, _, tag = line.partition(":")
        interp = tag.strip().split("-")[0]
        if key.strip() == "Tag" and interp.startswith("cp3") and interp[3:].isdigit():
            return (3, int(interp[3:]))
    return None


def installed_file(dist, name):
    """Where pip put the wheel's script `name` (the scheme's scripts
    directory: `<venv>/bin`, `~/.local/bin`, …), or None."""
    for f in dist.files or ():
        if f.name == name and f.parent.name != "ferricorn":
            path = os.path.abspath(str(dist.locate_file(f)))
            if os.path.isfile(path):
                return path
    path = os.path.join(sysconfig.get_path("scripts"), name)
    return path if os.path.isfile(path) else None


def libpython():
    """The path of this interpreter's shared libpython."""
    where = "%s (Python %s, prefix %s)" % (
        sys.executable,
        sys.version.split()[0],
        sys.base_prefix,
    )
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        fail(
            "%s has no shared libpython, which ferricorn embeds. Use a Python "
            "built with --enable-shared (Debian's python3, python.org, uv and "
            "pyenv with PYTHON_CONFIGURE_OPTS=--enable-shared all are)." % where
        )
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    path = os.path.join(libdir, name or "libpython%d.%d.so" % sys.version_info[:2])
    if not os.path.isfile(path):
        fail("the shared libpython of %s is not at %s; is its installation complete?" % (where, path))
    if " " in path or ":" in path:
        # The loader splits its preload list at spaces and colons.
        fail("the shared libpython of %s is at %s, whose name has a space or colon, "
             "which the dynamic loader cannot preload." % (where, path))
    return path


def elf_interpreter(path):
    """The dynamic loader an ELF executable asks for (its PT_INTERP)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
            return None
        end = "<" if head[5] == 1 else ">"
        phoff, = struct.unpack(end + "Q", head[32:40])
        phentsize, phnum = struct.unpack(end + "HH", head[54:58])
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _, p_offset, _, _, p_filesz = struct.unpack(end + "IIQQQQ", f.read(40))
            if p_type == 3:  # PT_INTERP
                f.seek(p_offset)
                return f.read(p_filesz).rstrip(b"\0").decode()
    return None


def main(command=None):
    """Exec the server with the command line given to `ferricorn`.
    `command` is the path the `ferricorn` command was run as (its script
    passes it), kept unresolved so a `current -> releases/N` symlink in it
    is followed again at the next upgrade."""
    dist = distribution()
    if dist is None:
        fail(
            "the ferricorn package is not installed for %s; install the wheel "
            "(pip install ferricorn) or run target/release/ferricorn from a "
            "source build." % sys.executable
        )
    want = built_for(dist)
    have = sys.version_info[:2]
    if want is not None and want != have:
        fail(
            "this ferricorn wheel embeds CPython %d.%d, but it runs under Python "
            "%d.%d (%s). Install the ferricorn wheel built for Python %d.%d into "
            "this environment (pip install --force-reinstall ferricorn; from a "
            "checkout: scripts/build-wheel %s)."
            % (want + have + (sys.executable,) + have + (sys.executable,))
        )
    server = installed_file(dist, SERVER)
    if server is None:
        fail("ferricorn-server is missing from this installation; reinstall ferricorn.")

    lib = libpython()
    loader = elf_interpreter(server)
    if not loader or not os.path.isfile(loader):
        fail("%s asks for the dynamic loader %s, which this system lacks." % (server, loader))
    env = os.environ.copy()
    env["FERRICORN_PYTHON"] = sys.executable
    if command is None:
        command = installed_file(dist, COMMAND) or server
    argv = [loader, "--preload", lib, "--argv0", os.path.abspath(command), server]
    try:
        os.execve(loader, argv + sys.argv[1:], env)
    except OSError as e:
        fail("cannot start %s: %s" % (server, e.strerror))


if __name__ == "__main__":
    main()
