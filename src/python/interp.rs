//! Starting the interpreter the way a server must (see PYTHON-EMBEDDING facts):
//! through `PyConfig`, with CPython's own signal handlers off, argv not parsed
//! as Python options, `sys.executable` set, and a virtualenv honoured by
//! pointing `executable` at the venv's python *before* initialisation, so
//! its site-packages come first on `sys.path`.

use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

const PY_MAJOR: &str = env!("FERRICORN_PY_MAJOR");
const PY_MINOR: &str = env!("FERRICORN_PY_MINOR");
const PY_EXECUTABLE: &str = env!("FERRICORN_PY_EXECUTABLE");

static INITIALIZED: AtomicBool = AtomicBool::new(false);

pub struct PythonSetup {
    /// `sys.argv` (the server's own command line, as gunicorn leaves it).
    pub argv: Vec<CString>,
    /// Prepended to `sys.path`, first entry first.
    pub path_prepend: Vec<PathBuf>,
}

impl PythonSetup {
    /// sys.argv and sys.path for the embedded interpreter (master or worker):
    /// the server's own command line, and `chdir` then `pythonpath` first on
    /// the path, as gunicorn puts them.
    pub fn for_config(cfg: &crate::config::Config) -> PythonSetup {
        let mut path_prepend = cfg.pythonpath.clone();
        path_prepend.insert(0, cfg.chdir.clone());
        PythonSetup {
            argv: crate::proctitle::original_args().to_vec(),
            path_prepend,
        }
    }
}

pub fn is_initialized() -> bool {
    INITIALIZED.load(Ordering::Relaxed)
}

/// The interpreter that `sys.executable` should name: the one the launcher
/// of an installed wheel runs under (`$FERRICORN_PYTHON`, which it sets),
/// else the active virtualenv's python, else the one this binary was built
/// against.
pub fn choose_executable() -> Result<PathBuf, String> {
    if let Some(exe) = std::env::var_os("FERRICORN_PYTHON").filter(|v| !v.is_empty()) {
        let exe = PathBuf::from(exe);
        // A venv's python is <venv>/bin/python: the venv must be of our
        // minor version (the launcher checked the interpreter itself).
        if let Some(venv) = exe.parent().and_then(Path::parent) {
            if venv.join("pyvenv.cfg").is_file() {
                check_venv_version(venv)?;
            }
        }
        return Ok(exe);
    }
    let Ok(venv) = std::env::var("VIRTUAL_ENV") else {
        return Ok(PathBuf::from(PY_EXECUTABLE));
    };
    if venv.is_empty() {
        return Ok(PathBuf::from(PY_EXECUTABLE));
    }
    let venv = PathBuf::from(venv);
    check_venv_version(&venv)?;
    let exe = venv.join("bin").join("python");
    if !exe.exists() {
        return Err(format!(
            "The virtualenv {} has no bin/python; recreate it.",
            venv.display()
        ));
    }
    Ok(exe)
}

/// Refuse a virtualenv of another minor version: its packages cannot load.
fn check_venv_version(venv: &Path) -> Result<(), String> {
    let cfg = venv.join("pyvenv.cfg");
    let text = std::fs::read_to_string(&cfg).map_err(|e| {
        format!("VIRTUAL_ENV={} is not a virtualenv ({}: {e}); activate a valid one or unset VIRTUAL_ENV.", venv.display(), cfg.display())
    })?;
    let want = format!("{PY_MAJOR}.{PY_MINOR}");
    let version = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| matches!(k.trim(), "version" | "version_info"))
        .map(|(_, v)| v.trim().to_string());
    if let Some(v) = &version {
        let minor: String = v.split('.').take(2).collect::<Vec<_>>().join(".");
        if minor != want {
            return Err(format!(
                "The virtualenv {} is Python {v}, but this ferricorn embeds Python {want}: its packages cannot load. \
                 Create the venv with python{want}, or build ferricorn against Python {minor}.",
                venv.display()
            ));
        }
    }
    Ok(())
}

fn check(status: ffi::PyStatus, what: &str) -> Result<(), String> {
    // SAFETY: `status` is a PyStatus as CPython returned it; when it is an
    // exception, `err_msg` is NULL or a static C string CPython set.
    let failure = unsafe {
        (ffi::PyStatus_Exception(status) != 0).then(|| {
            if status.err_msg.is_null() {
                String::from("unknown error")
            } else {
                std::ffi::CStr::from_ptr(status.err_msg)
                    .to_string_lossy()
                    .into_owned()
            }
        })
    };
    match failure {
        Some(msg) => Err(format!("Python initialisation failed ({what}): {msg}")),
        None => Ok(()),
    }
}

/// Initialise CPython in this process. Signal handlers must already be
/// installed (CPython then leaves SIGINT alone). Leaves the GIL released.
pub fn initialize(setup: &PythonSetup) -> Result<(), String> {
    if is_initialized() {
        return Ok(());
    }
    let exe = choose_executable()?;
    let exe_c = CString::new(exe.as_os_str().as_encoded_bytes())
        .map_err(|_| "bad executable path".to_string())?;
    // SAFETY: the interpreter is not running yet (checked above, and only the
    // main thread starts it); a zeroed PyConfig is what
    // PyConfig_InitPythonConfig expects to fill in; every string handed over
    // (`exe_c`, `argv`'s pointers into `setup.argv`) outlives the calls,
    // which copy them; PyConfig_Clear frees what they allocated; and the
    // thread holds the GIL after Py_InitializeFromConfig, which
    // PyEval_SaveThread releases.
    unsafe {
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        let result = (|| {
            check(
                ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, exe_c.as_ptr()),
                "executable",
            )?;
            check(
                ffi::PyConfig_SetBytesString(&mut config, &mut config.program_name, exe_c.as_ptr()),
                "program name",
            )?;
            let mut argv: Vec<*const std::ffi::c_char> =
                setup.argv.iter().map(|a| a.as_ptr()).collect();
            check(
                ffi::PyConfig_SetBytesArgv(
                    &mut config,
                    argv.len() as ffi::Py_ssize_t,
                    argv.as_mut_ptr(),
                ),
                "argv",
            )?;
            check(ffi::Py_InitializeFromConfig(&config), "start")
        })();
        ffi::PyConfig_Clear(&mut config);
        result?;
        // The GIL is taken again, briefly, by every Python::attach.
        ffi::PyEval_SaveThread();
    }
    INITIALIZED.store(true, Ordering::Relaxed);
    Python::attach(|py| -> PyResult<()> {
        let sys = py.import("sys")?;
        let path = sys.getattr("path")?;
        for (i, dir) in setup.path_prepend.iter().enumerate() {
            let s = dir.to_string_lossy();
            // Avoid duplicates but keep our order at the front.
            while path
                .call_method1("__contains__", (s.as_ref(),))?
                .is_truthy()?
            {
                path.call_method1("remove", (s.as_ref(),))?;
            }
            path.call_method1("insert", (i, s.as_ref()))?;
        }
        Ok(())
    })
    .map_err(|e| format!("cannot set sys.path: {e}"))
}

/// Fork with the interpreter's cooperation (PyOS_BeforeFork / AfterFork_*),
/// so the child gets a consistent interpreter even if other Python threads
/// hold locks. Without an interpreter it is a plain fork.
pub fn fork_with_python() -> nix::Result<nix::unistd::ForkResult> {
    use nix::unistd::ForkResult;
    let with_python = is_initialized();
    let fork = || {
        // SAFETY: every caller (spawning a worker, daemonizing) forks from
        // the master's only thread, so no other thread holds a lock the
        // child could need.
        // With an interpreter, this thread holds the GIL (Python::attach
        // below), which is what PyOS_BeforeFork and PyOS_AfterFork_* need.
        unsafe {
            if with_python {
                ffi::PyOS_BeforeFork();
            }
            let r = nix::unistd::fork();
            if with_python {
                match r {
                    Ok(ForkResult::Child) => ffi::PyOS_AfterFork_Child(),
                    _ => ffi::PyOS_AfterFork_Parent(),
                }
            }
            r
        }
    };
    if with_python {
        Python::attach(|_py| fork())
    } else {
        fork()
    }
}

/// Run `f` with the GIL released (for blocking socket I/O while Python waits).
/// `f` must not touch Python objects.
pub fn without_gil<T: Send>(f: impl Send + FnOnce() -> T) -> T {
    // SAFETY: this is only called by a thread that holds the GIL (a pool
    // thread inside a request, which is why it has no `Python` token to
    // hand); `detach` releases it for `f` and takes it back after.
    let py = unsafe { Python::assume_attached() };
    py.detach(f)
}

/// Write the Python stack of every thread to `fd` when SIGABRT arrives
/// (the master sends it to a worker past --timeout), then die of the signal.
/// faulthandler's fatal-signal handler covers SIGABRT and works even while
/// the interpreter is stuck in C code or a busy loop.
pub fn dump_stacks_on_abort(fd: i32) -> PyResult<()> {
    Python::attach(|py| {
        let fh = py.import("faulthandler")?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("file", fd)?;
        kwargs.set_item("all_threads", true)?;
        fh.call_method("enable", (), Some(&kwargs))?;
        Ok(())
    })
}

/// Write the Python stack of every thread to `fd` now (faulthandler's
/// format, as on SIGABRT).
pub fn dump_all_stacks(fd: i32) {
    Python::attach(|py| {
        let dump = || -> PyResult<()> {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("file", fd)?;
            kwargs.set_item("all_threads", true)?;
            py.import("faulthandler")?
                .call_method("dump_traceback", (), Some(&kwargs))?;
            Ok(())
        };
        let _ = dump();
    });
}

/// Finalise the interpreter (runs atexit handlers) before a clean worker exit.
pub fn finalize() {
    if !is_initialized() {
        return;
    }
    // Lines logged from here on (and by atexit handlers) go the Rust way.
    crate::pylog::deactivate();
    // SAFETY: the interpreter is running (checked above); PyGILState_Ensure
    // attaches this thread, as Py_FinalizeEx needs, and nothing touches
    // Python after it (the worker exits next).
    unsafe {
        ffi::PyGILState_Ensure();
        ffi::Py_FinalizeEx();
    }
}

pub fn dir_exists(p: &Path) -> bool {
    p.is_dir()
}

/// The Python stack of the thread with `threading.get_ident()` == `ident`,
/// formatted as a traceback ("" if that thread runs no Python now).
pub fn thread_stack(py: Python<'_>, ident: u64) -> String {
    let frame = py
        .import("sys")
        .and_then(|sys| sys.getattr("_current_frames")?.call0())
        .map(|frames| frames.get_item(ident).ok());
    match frame {
        Ok(Some(frame)) => frame_stack(py, "the request's thread", &frame),
        Ok(None) => String::new(),
        Err(e) => format!("(its stack could not be read: {e})"),
    }
}

/// `frame`'s stack formatted as a traceback under a title naming `whose`
/// ("" for `None`, a thread or greenlet not running Python).
pub fn frame_stack(py: Python<'_>, whose: &str, frame: &Bound<'_, PyAny>) -> String {
    if frame.is_none() {
        return String::new();
    }
    let format = || -> PyResult<String> {
        let lines = py
            .import("traceback")?
            .getattr("format_stack")?
            .call1((frame,))?;
        let mut out = format!("Stack of {whose} (most recent call last):\n");
        for line in lines.try_iter()? {
            out.push_str(&line?.extract::<String>()?);
        }
        Ok(out)
    };
    format().unwrap_or_else(|e| format!("(its stack could not be read: {e})"))
}

/// Flush Python's sys.stdout and sys.stderr (for an exit without finalizing).
pub fn flush_stdio() {
    if !is_initialized() {
        return;
    }
    Python::attach(|py| {
        if let Ok(sys) = py.import("sys") {
            for name in ["stdout", "stderr"] {
                if let Ok(stream) = sys.getattr(name) {
                    let _ = stream.call_method0("flush");
                }
            }
        }
    });
}
