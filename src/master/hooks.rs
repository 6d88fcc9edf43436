//! Server hooks from a Python config, called at gunicorn's moments with
//! objects shaped like gunicorn's (`hooks.py`).
//!
//! | hook | where | an exception |
//! |---|---|---|
//! | `on_starting(server)` | master, before the arbiter runs | stops the server (exit 1), as gunicorn |
//! | `when_ready(server)` | master, before the first fork | stops the server (exit 1) |
//! | `nworkers_changed(server, new, old)` | master, when the target changes (old None at start) | stops the server |
//! | `pre_fork(server, worker)` | master, before each fork | stops the server |
//! | `post_fork(server, worker)` | worker, just after fork | the worker fails to boot |
//! | `post_worker_init(worker)` | worker, app loaded, before serving | the worker fails to boot |
//! | `pre_request(worker, req)` | worker, before the app | 500 for that request |
//! | `post_request(worker, req, environ, resp)` | worker, after the response | logged |
//! | `worker_int(worker)` | worker, on INT/QUIT, between requests | logged, the worker exits |
//! | `worker_abort(worker)` | worker, on SIGABRT (timeout), when Python next runs | logged, the worker exits |
//! | `worker_exit(server, worker)` | worker, before it exits | logged |
//! | `child_exit(server, worker)` | master, a worker was reaped | stops the server |
//! | `on_reload(server)` | master, SIGHUP | stops the server |
//! | `pre_exec(server)` | master, USR2, before the new master starts | logged, the upgrade is abandoned |
//! | `on_exit(server)` | master, last thing | logged |
//!
//! "Stops the server" is what gunicorn does: those hooks run in its
//! arbiter's main loop, where an exception ends the master. Every traceback
//! is logged. Hooks exist only with a Python interpreter in the master (a
//! Python config, or a TOML one naming them), and without hooks nothing here
//! touches Python: request hooks cost one `Option` check per request.

use super::{Arbiter, Phase};
use crate::config::{Config, HookSet};
use crate::settings::Value;
use nix::sys::signal::Signal;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule, PyTuple};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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

fn helper(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    if let Some(m) = HELPER.get() {
        return Ok(m.bind(py).clone());
    }
    let code = CString::new(HELPER_SOURCE).expect("helper source has no NUL");
    let m = PyModule::from_code(py, &code, c"<ferricorn.hooks>", c"_ferricorn_hooks")?;
    m.setattr("_write", wrap_pyfunction!(_write, &m)?)?;
    let _ = HELPER.set(m.clone().unbind());
    Ok(m)
}

fn value_to_py<'py>(
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
fn cfg_object<'py>(py: Python<'py>, cfg: &Config) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    for (name, v) in cfg.values.iter() {
        d.set_item(*name, value_to_py(py, v, &cfg.hooks, name)?)?;
    }
    helper(py)?.getattr("Config")?.call1((d,))
}

fn new_logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    helper(py)?.getattr("Logger")?.call0()
}

/// Call one hook; the error is the formatted traceback.
fn call(
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
    hook.callable.bind(py).call1(args).map(|_| ()).map_err(|e| {
        if let Some(tb) = e.traceback(py) {
            let _ = e.value(py).setattr("__traceback__", tb);
        }
        crate::python::loader::format_traceback(py, &e)
    })
}

fn log_failure(name: &str, tb: &str) {
    crate::error!("Exception in {name} hook\n{}", tb.trim_end());
}

/// The master's hook state: the `server` object, and a `worker` object per
/// live worker (the same one pre_fork, post_fork and child_exit see).
#[derive(Default)]
pub struct MasterHooks {
    server: Option<Py<PyAny>>,
    workers: HashMap<i32, Py<PyAny>>,
    num_workers: Option<u32>,
}

/// What a forked worker keeps: its hooks and the objects they are called with.
struct WorkerSide {
    hooks: Arc<HookSet>,
    server: Py<PyAny>,
    worker: Py<PyAny>,
}

static WORKER_SIDE: OnceLock<WorkerSide> = OnceLock::new();

impl Arbiter {
    fn hooks_active(&self) -> bool {
        !self.cfg.hooks.is_empty() && crate::python::is_initialized()
    }

    /// Stop the master because a hook raised where gunicorn's arbiter
    /// would die of it.
    fn hook_fatal(&mut self, name: &str, tb: &str) {
        crate::error!(
            "Unhandled exception in {name} hook, stopping\n{}",
            tb.trim_end()
        );
        if self.phase == Phase::Running {
            self.notify_stopping();
            self.phase = Phase::Halting {
                code: 1,
                reason: "Exception in a server hook.",
                deadline: Instant::now() + Duration::from_secs(2),
            };
            self.signal_workers(Signal::SIGQUIT);
        }
    }

    /// The `server` object, made on first use.
    fn server_object(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(s) = &self.hooks.server {
            return Ok(s.clone_ref(py));
        }
        let server = helper(py)?.getattr("Server")?.call1((
            new_logger(py)?,
            cfg_object(py, &self.cfg)?,
            self.pid,
        ))?;
        self.hooks.server = Some(server.clone().unbind());
        Ok(server.unbind())
    }

    fn call_server_hook(
        &mut self,
        name: &str,
        extra: impl FnOnce(Python<'_>) -> Vec<Bound<'_, PyAny>>,
    ) -> Result<(), String> {
        if !self.hooks_active() || self.cfg.hooks.get(name).is_none() {
            return Ok(());
        }
        let hooks = self.cfg.hooks.clone();
        Python::attach(|py| {
            let server = self.server_object(py).map_err(|e| e.to_string())?;
            let s = server.bind(py);
            let _ = s.setattr("num_workers", self.num_workers);
            let mut args = vec![s.clone()];
            args.extend(extra(py));
            call(py, &hooks, name, args)
        })
    }

    /// on_starting, nworkers_changed (old None) and when_ready, in
    /// gunicorn's order. An exception stops the start (exit 1).
    pub fn start_hooks(&mut self) -> Result<(), i32> {
        if !self.hooks_active() {
            return Ok(());
        }
        // Daemonizing changed the pid since the arbiter was made.
        self.pid = std::process::id();
        self.hooks.num_workers = Some(self.num_workers);
        let n = self.num_workers;
        let changed = self.call_server_hook("nworkers_changed", |py| {
            vec![
                n.into_pyobject(py).unwrap().into_any(),
                py.None().into_bound(py),
            ]
        });
        if let Err(tb) = changed {
            log_failure("nworkers_changed", &tb);
            return Err(1);
        }
        for name in ["on_starting", "when_ready"] {
            if let Err(tb) = self.call_server_hook(name, |_| vec![]) {
                log_failure(name, &tb);
                return Err(1);
            }
        }
        Ok(())
    }

    /// Each loop turn: nworkers_changed when the target count moved.
    pub(super) fn hook_nworkers_changed(&mut self) {
        if !self.hooks_active() {
            return;
        }
        let (new, old) = (self.num_workers, self.hooks.num_workers);
        if old == Some(new) {
            return;
        }
        self.hooks.num_workers = Some(new);
        let r = self.call_server_hook("nworkers_changed", |py| {
            vec![
                new.into_pyobject(py).unwrap().into_any(),
                old.into_pyobject(py).unwrap().into_any(),
            ]
        });
        if let Err(tb) = r {
            self.hook_fatal("nworkers_changed", &tb);
        }
    }

    /// Before a fork: the worker object, and pre_fork with it. Err stops the
    /// server (pre_fork raised).
    pub(super) fn hook_pre_fork(&mut self, age: u64) -> Result<Option<Py<PyAny>>, String> {
        if !self.hooks_active() {
            return Ok(None);
        }
        let hooks = self.cfg.hooks.clone();
        let r = Python::attach(|py| -> Result<Py<PyAny>, String> {
            let server = self.server_object(py).map_err(|e| e.to_string())?;
            let server = server.bind(py);
            let cfg = server.getattr("cfg").map_err(|e| e.to_string())?;
            let worker = helper(py)
                .and_then(|h| {
                    h.getattr("Worker")?
                        .call1((age, self.pid, new_logger(py)?, cfg))
                })
                .map_err(|e| e.to_string())?;
            call(py, &hooks, "pre_fork", vec![server.clone(), worker.clone()])?;
            Ok(worker.unbind())
        });
        match r {
            Ok(w) => Ok(Some(w)),
            Err(tb) => {
                self.hook_fatal("pre_fork", &tb);
                Err("the pre_fork hook raised".into())
            }
        }
    }

    /// In the master after a fork: the worker object learns its pid.
    pub(super) fn hook_forked(&mut self, pid: nix::unistd::Pid, worker: Option<Py<PyAny>>) {
        let Some(worker) = worker else { return };
        Python::attach(|py| {
            let _ = worker.bind(py).setattr("pid", pid.as_raw());
            if let Some(server) = &self.hooks.server {
                if let Ok(w) = server.bind(py).getattr("WORKERS") {
                    let _ = w.set_item(pid.as_raw(), worker.bind(py));
                }
            }
        });
        self.hooks.workers.insert(pid.as_raw(), worker);
    }

    /// In the new worker, right after fork: keep what its hooks need.
    pub(super) fn hook_in_child(&mut self, worker: Option<Py<PyAny>>) {
        let (Some(worker), Some(server)) = (worker, self.hooks.server.take()) else {
            return;
        };
        Python::attach(|py| {
            let _ = worker.bind(py).setattr("pid", std::process::id());
        });
        let _ = WORKER_SIDE.set(WorkerSide {
            hooks: self.cfg.hooks.clone(),
            server,
            worker,
        });
    }

    /// A worker was reaped.
    pub(super) fn hook_child_exit(&mut self, pid: nix::unistd::Pid) {
        let Some(worker) = self.hooks.workers.remove(&pid.as_raw()) else {
            return;
        };
        if !self.hooks_active() {
            return;
        }
        Python::attach(|py| {
            let _ = worker.bind(py).setattr("alive", false);
            if let Some(server) = &self.hooks.server {
                if let Ok(w) = server.bind(py).getattr("WORKERS") {
                    let _ = w.del_item(pid.as_raw());
                }
            }
        });
        if let Err(tb) = self.call_server_hook("child_exit", |py| vec![worker.bind(py).clone()]) {
            self.hook_fatal("child_exit", &tb);
        }
    }

    /// SIGHUP, after the configuration was (re)loaded.
    pub(super) fn hook_on_reload(&mut self) {
        if !self.hooks_active() {
            return;
        }
        // The server object sees the configuration now in force.
        let cfg = self.cfg.clone();
        Python::attach(|py| {
            if let (Some(server), Ok(c)) = (&self.hooks.server, cfg_object(py, &cfg)) {
                let _ = server.bind(py).setattr("cfg", c);
                let _ = server.bind(py).setattr("proc_name", cfg.proc_name.as_str());
                let _ = server
                    .bind(py)
                    .setattr("timeout", cfg.timeout.map(|t| t.as_secs()).unwrap_or(0));
            }
        });
        if let Err(tb) = self.call_server_hook("on_reload", |_| vec![]) {
            self.hook_fatal("on_reload", &tb);
        }
    }

    /// USR2, before the new master starts. False: the hook raised, do not upgrade.
    pub(super) fn hook_pre_exec(&mut self) -> bool {
        match self.call_server_hook("pre_exec", |_| vec![]) {
            Ok(()) => true,
            Err(tb) => {
                log_failure("pre_exec", &tb);
                false
            }
        }
    }

    /// The master's last act.
    pub(super) fn hook_on_exit(&mut self) {
        if let Err(tb) = self.call_server_hook("on_exit", |_| vec![]) {
            log_failure("on_exit", &tb);
        }
    }
}

// ---- In the worker process --------------------------------------------

fn worker_side() -> Option<&'static WorkerSide> {
    WORKER_SIDE.get()
}

/// Whether this worker has `name` set.
pub fn worker_has(name: &str) -> bool {
    worker_side().is_some_and(|w| w.hooks.get(name).is_some())
}

fn call_worker_hook(name: &str, with_server: bool) -> Result<(), String> {
    let Some(w) = worker_side() else {
        return Ok(());
    };
    if w.hooks.get(name).is_none() {
        return Ok(());
    }
    Python::attach(|py| {
        let mut args = Vec::new();
        if with_server {
            args.push(w.server.bind(py).clone());
        }
        args.push(w.worker.bind(py).clone());
        call(py, &w.hooks, name, args)
    })
}

/// post_fork(server, worker), in the new worker. The error is a boot-failure report.
pub fn post_fork() -> Result<(), String> {
    call_worker_hook("post_fork", true).map_err(|tb| format!("Exception in post_fork hook\n{tb}"))
}

/// post_worker_init(worker), once the app is loaded. The error is a boot-failure report.
pub fn post_worker_init() -> Result<(), String> {
    if let Some(w) = worker_side() {
        Python::attach(|py| {
            let _ = w.worker.bind(py).setattr("booted", true);
        });
    }
    call_worker_hook("post_worker_init", false)
        .map_err(|tb| format!("Exception in post_worker_init hook\n{tb}"))
}

/// worker_int(worker), on INT/QUIT: logged on failure; the worker exits anyway.
pub fn worker_int() {
    if let Some(w) = worker_side() {
        Python::attach(|py| {
            let _ = w.worker.bind(py).setattr("alive", false);
        });
    }
    if let Err(tb) = call_worker_hook("worker_int", false) {
        log_failure("worker_int", &tb);
    }
}

/// worker_exit(server, worker), the worker's last act.
pub fn worker_exit() {
    if let Err(tb) = call_worker_hook("worker_exit", true) {
        log_failure("worker_exit", &tb);
    }
}

/// With worker_abort set: a Python SIGABRT handler that calls it, installed
/// before faulthandler so faulthandler dumps the stacks first and then
/// hands the signal on. As in gunicorn, the handler runs when the
/// interpreter next gets control (a stuck `time.sleep` or Python loop, not a
/// C extension that never returns); the master's SIGKILL follows 1 s after
/// SIGABRT either way.
pub fn install_abort_handler() {
    let Some(w) = worker_side() else { return };
    let Some(hook) = w.hooks.get("worker_abort") else {
        return;
    };
    let r = Python::attach(|py| -> PyResult<()> {
        let handler = helper(py)?
            .getattr("abort_handler")?
            .call1((hook.callable.bind(py), w.worker.bind(py)))?;
        py.import("signal")?
            .getattr("signal")?
            .call1((libc::SIGABRT, handler))?;
        Ok(())
    });
    if let Err(e) = r {
        crate::warning!("worker_abort will not be called: {e}");
    }
}

/// pre_request / post_request for one worker; None when neither is set, so
/// the request path pays nothing for them.
pub struct RequestHooks {
    hooks: Arc<HookSet>,
    worker: Py<PyAny>,
}

impl RequestHooks {
    pub fn for_this_worker() -> Option<RequestHooks> {
        let w = worker_side()?;
        if w.hooks.get("pre_request").is_none() && w.hooks.get("post_request").is_none() {
            return None;
        }
        Some(RequestHooks {
            hooks: w.hooks.clone(),
            worker: Python::attach(|py| w.worker.clone_ref(py)),
        })
    }

    /// Make the `req` object and call pre_request. Err: the hook raised
    /// (the request is answered 500, as gunicorn does).
    pub fn pre_request<'py>(
        &self,
        py: Python<'py>,
        head: &crate::http::RequestHead,
        buf: &[u8],
        peer: &str,
    ) -> Result<Bound<'py, PyAny>, (Bound<'py, PyAny>, PyErr)> {
        let target = head.target(buf);
        let (path, query) = crate::wsgi::environ::split_target(target);
        let headers = PyList::empty(py);
        for (n, v) in head.headers(buf) {
            let name = String::from_utf8_lossy(n).to_ascii_uppercase();
            let _ = headers.append((name, String::from_utf8_lossy(v).into_owned()));
        }
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let req = helper(py)
            .and_then(|h| {
                h.getattr("Request")?.call1((
                    lossy(head.method(buf)),
                    lossy(target),
                    lossy(path),
                    lossy(query),
                    (1, head.minor_version),
                    headers,
                    peer,
                ))
            })
            .unwrap_or_else(|_| py.None().into_bound(py));
        if let Some(w) = self
            .worker
            .bind(py)
            .getattr("nr")
            .ok()
            .and_then(|n| n.extract::<u64>().ok())
        {
            let _ = self.worker.bind(py).setattr("nr", w + 1);
        }
        let Some(hook) = self.hooks.get("pre_request") else {
            return Ok(req);
        };
        match hook.callable.bind(py).call1((self.worker.bind(py), &req)) {
            Ok(_) => Ok(req),
            Err(e) => Err((req, e)),
        }
    }

    /// post_request(worker, req, environ, resp); failures are logged.
    pub fn post_request(
        &self,
        py: Python<'_>,
        req: &Bound<'_, PyAny>,
        environ: Option<Py<PyDict>>,
        status: u16,
        headers: &[(String, String)],
        sent: u64,
    ) {
        let Some(hook) = self.hooks.get("post_request") else {
            return;
        };
        let environ = environ
            .map(|e| e.into_bound(py).into_any())
            .unwrap_or_else(|| PyDict::new(py).into_any());
        let resp = helper(py)
            .and_then(|h| {
                h.getattr("Response")?
                    .call1((status, headers.to_vec(), sent))
            })
            .unwrap_or_else(|_| py.None().into_bound(py));
        let args = [self.worker.bind(py).clone(), req.clone(), environ, resp];
        let n = hook.arity.clamp(2, 4);
        let r = PyTuple::new(py, &args[..n]).and_then(|a| hook.callable.bind(py).call1(a));
        if let Err(e) = r {
            if let Some(tb) = e.traceback(py) {
                let _ = e.value(py).setattr("__traceback__", tb);
            }
            log_failure(
                "post_request",
                &crate::python::loader::format_traceback(py, &e),
            );
        }
    }
}
