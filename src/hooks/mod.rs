//! Server hooks from a Python config, called at gunicorn's moments with
//! objects shaped like gunicorn's (`hooks.py`).
//!
//! | hook | where | an exception |
//! |---|---|---|
//! | `on_starting(server)` | master, before anything is bound | stops the server (exit 1), as gunicorn |
//! | `when_ready(server)` | master, listeners open, before the first fork | stops the server (exit 1) |
//! | `nworkers_changed(server, new, old)` | master: first (old None), on TTIN/TTOU, each HUP, `server.num_workers = n` | stops the server |
//! | `pre_fork(server, worker)` | master, before each fork | stops the server |
//! | `post_fork(server, worker)` | worker, just after fork | the worker fails to boot |
//! | `post_worker_init(worker)` | worker, app loaded, before serving | the worker fails to boot |
//! | `pre_request(worker, req)` | worker, before the app | 500 for that request |
//! | `post_request(worker, req, environ, resp)` | worker, after the response | logged |
//! | `worker_int(worker)` | worker, on INT/QUIT, between requests | logged, the worker exits |
//! | `worker_abort(worker)` | worker, on SIGABRT (timeout), when Python next runs | logged, the worker exits |
//! | `worker_exit(server, worker)` | worker, before it exits (also after a failed boot or worker_abort) | logged |
//! | `child_exit(server, worker)` | master, any worker was reaped | stops the server |
//! | `on_reload(server)` | master, SIGHUP | stops the server |
//! | `pre_exec(server)` | master, USR2, before the new master starts | logged, the upgrade is abandoned |
//! | `on_exit(server)` | master, last thing | logged |
//!
//! "Stops the server" is what gunicorn does: those hooks run in its
//! arbiter's main loop, where an exception ends the master. Every traceback
//! is logged. Hooks exist only with a Python interpreter in the master (a
//! Python config, or a TOML one naming them), and without hooks nothing here
//! touches Python: request hooks cost one `Option` check per request.
//!
//! What hooks change on the server object is taken in after each master
//! hook: settings set with `server.cfg.set(...)` (validated as the config
//! file's, applied as a SIGHUP applies a configuration; from on_starting,
//! before binding) and `server.num_workers`. docs/hooks.md lists the
//! objects' attributes and where ferricorn differs on purpose.
//!
//! This module is the hooks' own room: the master, the workers and the WSGI
//! layer all call in here, and it depends on none of them. The master's side
//! (the `server` object it keeps and the hooks its loop calls) is in
//! `master/hooks.rs`; the worker's in `worker.rs`; the request hooks in
//! `request.rs`; `ssl_context` in `tls.rs`.

mod request;
mod tls;
mod worker;

pub use request::RequestHooks;
pub use tls::ssl_context;
pub use worker::{
    install_abort_handler, install_worker_side, post_fork, post_worker_init, worker_exit,
    worker_has, worker_int,
};

use crate::config::{Config, HookSet};
use crate::settings::Value;
use crate::sock::{Listener, ListenerKind};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule, PyTuple};
use std::ffi::CString;
use std::sync::OnceLock;

const HELPER_SOURCE: &str = include_str!("hooks.py");

static HELPER: OnceLock<Py<PyModule>> = OnceLock::new();

#[pyfunction]
fn _write(level: u8, text: &str) {
    let level = match level {
        0..=14 => crate::log::Level::Debug,
        15..=24 => crate::log::Level::Info,
        25..=34 => crate::log::Level::Warning,
        35..=44 => crate::log::Level::Error,
        _ => crate::log::Level::Critical,
    };
    crate::log::log(level, text);
}

/// `cfg.set(name, value)`: the value checked by the setting's validator, as
/// a config file's would be. `(True, normal form)` or `(False, message)`.
#[pyfunction]
fn _validate<'py>(
    py: Python<'py>,
    name: &str,
    value: Bound<'py, PyAny>,
) -> PyResult<(bool, Bound<'py, PyAny>)> {
    let refuse = |m: String| Ok((false, m.into_pyobject(py)?.into_any()));
    let Some(setting) = crate::settings::table::find(name) else {
        return refuse(format!("No configuration setting for: {name}"));
    };
    if setting.kind.is_hook() {
        // As gunicorn's validate_callable: the normal form is the callable.
        if value.is_none() {
            return Ok((true, value));
        }
        return match crate::settings::hook_from_python(setting, &value) {
            Ok(h) => Ok((true, h.callable.into_bound(py))),
            Err(m) => refuse(m),
        };
    }
    let raw = match crate::settings::value_from_python(&value) {
        Ok(v) => v,
        Err(m) => return refuse(format!("{name}: {m}")),
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let ctx = crate::settings::value::Context { cwd: &cwd };
    match crate::settings::value::validate(setting, &raw, &ctx) {
        Ok(v) => Ok((true, value_to_py(py, &v, &HookSet::default(), "")?)),
        Err(m) => refuse(format!("{name}: {m}")),
    }
}

/// `server.app.wsgi()` where the app is not loaded: import it.
#[pyfunction]
fn _load_app(py: Python<'_>, uri: &str) -> PyResult<Py<PyAny>> {
    crate::python::load_app(py, uri)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.report))
}

pub(crate) fn helper(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    if let Some(m) = HELPER.get() {
        return Ok(m.bind(py).clone());
    }
    let code = CString::new(HELPER_SOURCE).expect("helper source has no NUL");
    let m = PyModule::from_code(py, &code, c"<ferricorn.hooks>", c"_ferricorn_hooks")?;
    m.setattr("_write", wrap_pyfunction!(_write, &m)?)?;
    m.setattr("_validate", wrap_pyfunction!(_validate, &m)?)?;
    m.setattr("_load_app", wrap_pyfunction!(_load_app, &m)?)?;
    m.setattr("_notify", wrap_pyfunction!(worker::_notify, &m)?)?;
    let _ = HELPER.set(m.clone().unbind());
    Ok(m)
}

pub(crate) fn value_to_py<'py>(
    py: Python<'py>,
    v: &Value,
    hooks: &HookSet,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::None => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Int(n) => n.into_pyobject(py)?.into_any(),
        Value::Float(x) => x.into_pyobject(py)?.into_any(),
        Value::Str(s) => s.into_pyobject(py)?.into_any(),
        Value::List(items) => {
            let l = PyList::empty(py);
            for i in items {
                l.append(value_to_py(py, i, hooks, "")?)?;
            }
            l.into_any()
        }
        Value::Dict(items) => {
            let d = PyDict::new(py);
            for (k, i) in items {
                d.set_item(k, value_to_py(py, i, hooks, "")?)?;
            }
            d.into_any()
        }
        Value::Hook(q) => match hooks.get(name) {
            Some(h) => h.callable.bind(py).clone(),
            None => q.into_pyobject(py)?.into_any(),
        },
    })
}

/// `server.cfg`: every setting of `cfg` as an attribute.
pub fn cfg_object<'py>(py: Python<'py>, cfg: &Config) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    for (name, v) in cfg.values.iter() {
        d.set_item(*name, value_to_py(py, v, &cfg.hooks, name)?)?;
    }
    helper(py)?.getattr("Config")?.call1((d,))
}

/// `server.LISTENERS`: gunicorn's socket objects for the listeners.
pub(crate) fn listener_objects<'py>(
    py: Python<'py>,
    listeners: &[Listener],
) -> PyResult<Bound<'py, PyList>> {
    let class = helper(py)?.getattr("Listener")?;
    let out = PyList::empty(py);
    for l in listeners {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&l.fd);
        let (family, addr) = match &l.kind {
            ListenerKind::Tcp(a) => (
                if a.is_ipv4() {
                    libc::AF_INET
                } else {
                    libc::AF_INET6
                },
                (a.ip().to_string(), a.port()).into_pyobject(py)?.into_any(),
            ),
            ListenerKind::Unix(p) => (
                libc::AF_UNIX,
                p.to_string_lossy().into_pyobject(py)?.into_any(),
            ),
        };
        out.append(class.call1((fd, family, l.url(), addr))?)?;
    }
    Ok(out)
}

pub(crate) fn new_logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    helper(py)?.getattr("Logger")?.call0()
}

pub(crate) fn traceback_of(py: Python<'_>, e: &PyErr) -> String {
    if let Some(tb) = e.traceback(py) {
        let _ = e.value(py).setattr("__traceback__", tb);
    }
    crate::python::loader::format_traceback(py, e)
}

/// Call one hook; the error is the formatted traceback.
pub(crate) fn call(
    py: Python<'_>,
    hooks: &HookSet,
    name: &str,
    args: Vec<Bound<'_, PyAny>>,
) -> Result<(), String> {
    let Some(hook) = hooks.get(name) else {
        return Ok(());
    };
    let n = hook.arity.min(args.len());
    let args = PyTuple::new(py, &args[..n]).map_err(|e| e.to_string())?;
    hook.callable
        .bind(py)
        .call1(args)
        .map(|_| ())
        .map_err(|e| traceback_of(py, &e))
}

pub(crate) fn log_failure(name: &str, tb: &str) {
    crate::error!("Exception in {name} hook\n{}", tb.trim_end());
}
