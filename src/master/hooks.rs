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

use super::{Arbiter, Phase};
use crate::config::{Config, HookSet};
use crate::heartbeat::Beat;
use crate::settings::Value;
use crate::sock::{Listener, ListenerKind};
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

/// The worker's heartbeat, for `worker.notify()`.
struct SharedBeat(Beat);
// SAFETY: a Beat points into the heartbeat mapping, which stays mapped for
// the whole life of the process, and it only does atomic loads and stores.
unsafe impl Send for SharedBeat {}
// SAFETY: as above; every access is an atomic operation.
unsafe impl Sync for SharedBeat {}

static WORKER_BEAT: OnceLock<SharedBeat> = OnceLock::new();

#[pyfunction]
fn _notify() {
    if let Some(b) = WORKER_BEAT.get() {
        b.0.beat();
    }
}

fn helper(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    if let Some(m) = HELPER.get() {
        return Ok(m.bind(py).clone());
    }
    let code = CString::new(HELPER_SOURCE).expect("helper source has no NUL");
    let m = PyModule::from_code(py, &code, c"<ferricorn.hooks>", c"_ferricorn_hooks")?;
    m.setattr("_write", wrap_pyfunction!(_write, &m)?)?;
    m.setattr("_validate", wrap_pyfunction!(_validate, &m)?)?;
    m.setattr("_load_app", wrap_pyfunction!(_load_app, &m)?)?;
    m.setattr("_notify", wrap_pyfunction!(_notify, &m)?)?;
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
pub(crate) fn cfg_object<'py>(py: Python<'py>, cfg: &Config) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    for (name, v) in cfg.values.iter() {
        d.set_item(*name, value_to_py(py, v, &cfg.hooks, name)?)?;
    }
    helper(py)?.getattr("Config")?.call1((d,))
}

/// `server.LISTENERS`: gunicorn's socket objects for the listeners.
fn listener_objects<'py>(py: Python<'py>, listeners: &[Listener]) -> PyResult<Bound<'py, PyList>> {
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

fn new_logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    helper(py)?.getattr("Logger")?.call0()
}

fn traceback_of(py: Python<'_>, e: &PyErr) -> String {
    if let Some(tb) = e.traceback(py) {
        let _ = e.value(py).setattr("__traceback__", tb);
    }
    crate::python::loader::format_traceback(py, e)
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
    hook.callable
        .bind(py)
        .call1(args)
        .map(|_| ())
        .map_err(|e| traceback_of(py, &e))
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
    /// The worker count the server object (and so nworkers_changed) last saw.
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
        let nworkers = match self.cfg.hooks.get("nworkers_changed") {
            Some(h) => h.callable.bind(py).clone(),
            None => py.None().into_bound(py),
        };
        let server = helper(py)?.getattr("Server")?.call1((
            new_logger(py)?,
            cfg_object(py, &self.cfg)?,
            self.pid,
            nworkers,
        ))?;
        if let Some(parent) = self.upgrade.parent() {
            server.setattr("master_pid", parent)?;
            server.setattr("master_name", "Master.2")?;
        }
        if let Some(app) = &self.preloaded {
            server.getattr("app")?.setattr("callable", app.bind(py))?;
        }
        self.hooks.server = Some(server.clone().unbind());
        Ok(server.unbind())
    }

    /// Run `f` with the server object, then take in what the hook changed
    /// on it: settings (`cfg.set`) and `num_workers`.
    fn with_server<T>(
        &mut self,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> Result<T, String>,
    ) -> Result<T, String> {
        let (r, changes) = Python::attach(|py| {
            let server = self.server_object(py).map_err(|e| e.to_string())?;
            let s = server.bind(py);
            let r = f(py, s);
            let changes = self.take_server_changes(s);
            Ok::<_, String>((r, changes))
        })?;
        if !changes.is_empty() {
            self.apply_hook_settings(changes);
        }
        r
    }

    /// What hooks changed on the server object since last asked.
    fn take_server_changes(&mut self, server: &Bound<'_, PyAny>) -> Vec<(String, Py<PyAny>)> {
        if let Ok(Some(n)) = server
            .getattr("_num_workers")
            .and_then(|n| n.extract::<Option<i64>>())
        {
            let n = n.clamp(0, u32::MAX as i64) as u32;
            if self.hooks.num_workers != Some(n) {
                // Set by a hook (which already called nworkers_changed).
                self.hooks.num_workers = Some(n);
                self.num_workers = n;
            }
        }
        let mut out = Vec::new();
        let Ok(cfg) = server.getattr("cfg") else {
            return out;
        };
        let Ok(changed) = cfg.getattr("_changed") else {
            return out;
        };
        let names: Vec<String> = changed.extract().unwrap_or_default();
        if names.is_empty() {
            return out;
        }
        let _ = changed.call_method0("clear");
        if let Ok(values) = cfg.getattr("_values") {
            for name in names {
                if let Ok(v) = values.get_item(&name) {
                    out.push((name, v.unbind()));
                }
            }
        }
        out
    }

    /// Settings a master hook changed with `cfg.set`: applied as a SIGHUP
    /// applies a new configuration (before binding when from on_starting).
    fn apply_hook_settings(&mut self, changes: Vec<(String, Py<PyAny>)>) {
        let mut values: Vec<(&'static str, Value)> = Vec::new();
        let mut hooks: Vec<(&'static str, Option<Py<PyAny>>)> = Vec::new();
        Python::attach(|py| {
            for (name, obj) in &changes {
                let Some(setting) = crate::settings::table::find(name) else {
                    continue;
                };
                let obj = obj.bind(py);
                if setting.kind.is_hook() {
                    hooks.push((setting.name, (!obj.is_none()).then(|| obj.clone().unbind())));
                    continue;
                }
                match crate::settings::value_from_python(obj) {
                    Ok(v) => values.push((setting.name, v)),
                    Err(m) => crate::error!("cfg.set({name:?}) from a hook: {m}"),
                }
                // The notice a config file setting it gets.
                match setting.applies {
                    crate::settings::Applies::Yes => {}
                    crate::settings::Applies::NoEffect(why) => crate::warning!(
                        "{name} is set (by a hook) but has no effect in ferricorn: {why}."
                    ),
                    crate::settings::Applies::NotYet(why) => {
                        crate::warning!("{name} is set (by a hook) but not acted on yet: {why}.")
                    }
                }
            }
        });
        let hookset = if hooks.is_empty() {
            None
        } else {
            Some(self.hookset_with(hooks))
        };
        let env = match &self.source {
            Some(s) => s.env.clone(),
            None => match crate::settings::Env::from_process() {
                Ok(e) => e,
                Err(_) => return,
            },
        };
        let mut new = match self.cfg.with_changes(&values, &env) {
            Ok(c) => c,
            Err(e) => {
                crate::error!("A setting changed by a hook cannot be used: {e}");
                return;
            }
        };
        if let Some(h) = hookset {
            let (vals, h) = h;
            let mut all: Vec<(&'static str, Value)> = new.values.as_ref().clone();
            for (k, v) in vals {
                if let Some(slot) = all.iter_mut().find(|(n, _)| *n == k) {
                    slot.1 = v;
                }
            }
            new.values = Arc::new(all);
            new.hooks = Arc::new(h);
            if let Some(server) = &self.hooks.server {
                // Setting server.num_workers calls the nworkers_changed now set.
                Python::attach(|py| {
                    let hook = match new.hooks.get("nworkers_changed") {
                        Some(h) => h.callable.bind(py).clone(),
                        None => py.None().into_bound(py),
                    };
                    let _ = server.bind(py).setattr("_nworkers_hook", hook);
                });
            }
        }
        let started = !self.listeners.is_empty();
        if started && new.binds != self.cfg.binds {
            if let Err(e) = self.rebind(&new) {
                crate::error!("A bind changed by a hook cannot be used, keeping the old one: {e}");
                new.binds = self.cfg.binds.clone();
            }
        }
        self.apply_config(new, started);
        if started {
            self.refresh_listeners();
        }
    }

    /// The running hooks with some replaced (None: removed), and the values
    /// that show them.
    fn hookset_with(
        &self,
        changed: Vec<(&'static str, Option<Py<PyAny>>)>,
    ) -> (Vec<(&'static str, Value)>, HookSet) {
        Python::attach(|py| {
            let mut map: std::collections::BTreeMap<&'static str, crate::settings::Hook> = self
                .cfg
                .hooks
                .0
                .iter()
                .map(|(k, h)| {
                    (
                        *k,
                        crate::settings::Hook {
                            callable: h.callable.clone_ref(py),
                            arity: h.arity,
                            qualname: h.qualname.clone(),
                        },
                    )
                })
                .collect();
            let mut shown = Vec::new();
            for (name, obj) in changed {
                let setting = crate::settings::table::find(name).expect("a known setting");
                match obj.map(|o| crate::settings::hook_from_python(setting, o.bind(py))) {
                    Some(Ok(h)) => {
                        shown.push((name, Value::Hook(h.qualname.clone())));
                        map.insert(name, h);
                    }
                    Some(Err(m)) => crate::error!("cfg.set({name:?}) from a hook: {m}"),
                    None => {
                        shown.push((name, Value::None));
                        map.remove(name);
                    }
                }
            }
            (shown, HookSet(map))
        })
    }

    /// `server.LISTENERS` (and the workers' `sockets`) as they are now.
    fn refresh_listeners(&mut self) {
        if !self.hooks_active() {
            return;
        }
        let listeners = &self.listeners;
        if let Some(server) = &self.hooks.server {
            Python::attach(|py| {
                if let Ok(l) = listener_objects(py, listeners) {
                    let _ = server.bind(py).setattr("LISTENERS", l);
                }
            });
        }
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
        self.with_server(|py, s| {
            let mut args = vec![s.clone()];
            args.extend(extra(py));
            call(py, &hooks, name, args)
        })
    }

    /// Tell the server object the worker count: as in gunicorn, setting
    /// `num_workers` calls nworkers_changed(server, new, old).
    fn set_server_num_workers(&mut self, n: u32) -> Result<(), String> {
        self.hooks.num_workers = Some(n);
        self.with_server(|py, s| {
            s.setattr("num_workers", n)
                .map_err(|e| traceback_of(py, &e))
        })
    }

    /// Before binding, in gunicorn's order: nworkers_changed (old None),
    /// then on_starting. Settings on_starting changes with `cfg.set` (the
    /// bind too) are the ones the server starts with. An exception stops
    /// the start (exit 1).
    pub fn starting_hooks(&mut self) -> Result<(), i32> {
        if !self.hooks_active() {
            return Ok(());
        }
        self.pid = std::process::id();
        if let Err(tb) = self.set_server_num_workers(self.num_workers) {
            log_failure("nworkers_changed", &tb);
            return Err(1);
        }
        if let Err(tb) = self.call_server_hook("on_starting", |_| vec![]) {
            log_failure("on_starting", &tb);
            return Err(1);
        }
        Ok(())
    }

    /// Once the listeners are open ("Listening at"), before the first
    /// fork: when_ready, with `server.LISTENERS` filled.
    pub fn ready_hooks(&mut self) -> Result<(), i32> {
        // Daemonizing changed the pid since the arbiter was made.
        self.pid = std::process::id();
        if !self.hooks_active() {
            return Ok(());
        }
        let pid = self.pid;
        let preloaded = self
            .preloaded
            .as_ref()
            .map(|a| Python::attach(|py| a.clone_ref(py)));
        let _ = self.with_server(|py, s| {
            let _ = s.setattr("pid", pid);
            if let (Some(app), Ok(a)) = (preloaded, s.getattr("app")) {
                let _ = a.setattr("callable", app.bind(py));
            }
            Ok(())
        });
        self.refresh_listeners();
        if let Err(tb) = self.call_server_hook("when_ready", |_| vec![]) {
            log_failure("when_ready", &tb);
            return Err(1);
        }
        Ok(())
    }

    /// Each loop turn: nworkers_changed when the target count moved.
    pub(super) fn hook_nworkers_changed(&mut self) {
        if !self.hooks_active() {
            return;
        }
        let new = self.num_workers;
        if self.hooks.num_workers == Some(new) {
            return;
        }
        if let Err(tb) = self.set_server_num_workers(new) {
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
        let ppid = self.pid;
        let r = self.with_server(|py, server| -> Result<Py<PyAny>, String> {
            let cfg = server.getattr("cfg").map_err(|e| e.to_string())?;
            let sockets = server.getattr("LISTENERS").map_err(|e| e.to_string())?;
            let worker = helper(py)
                .and_then(|h| {
                    h.getattr("Worker")?
                        .call1((age, ppid, new_logger(py)?, cfg, sockets))
                })
                .map_err(|e| e.to_string())?;
            let _ = server.setattr("worker_age", age);
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

    /// A worker was reaped (however it ended): child_exit(server, worker).
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

    /// SIGHUP, after the configuration was (re)loaded: as gunicorn's
    /// reload(), nworkers_changed(server, new, old) (even when equal), then
    /// on_reload.
    pub(super) fn hook_on_reload(&mut self) {
        if !self.hooks_active() {
            return;
        }
        // The server object sees the configuration now in force.
        let cfg = self.cfg.clone();
        let nworkers = self
            .cfg
            .hooks
            .get("nworkers_changed")
            .map(|h| Python::attach(|py| h.callable.clone_ref(py)));
        Python::attach(|py| {
            if let (Some(server), Ok(c)) = (&self.hooks.server, cfg_object(py, &cfg)) {
                let s = server.bind(py);
                let _ = s.setattr("cfg", c);
                let _ = s.setattr("proc_name", cfg.proc_name.as_str());
                let _ = s.setattr("timeout", cfg.timeout.map(|t| t.as_secs()).unwrap_or(0));
                let _ = s.setattr(
                    "_nworkers_hook",
                    nworkers
                        .map(|n| n.into_bound(py))
                        .unwrap_or_else(|| py.None().into_bound(py)),
                );
                if let Ok(app) = s.getattr("app") {
                    let _ = app.setattr("cfg", s.getattr("cfg").ok());
                }
            }
        });
        self.refresh_listeners();
        if let Err(tb) = self.set_server_num_workers(self.num_workers) {
            self.hook_fatal("nworkers_changed", &tb);
            return;
        }
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

    /// `server.reexec_pid`: the new master this one started (0: none).
    pub(super) fn hook_reexec_pid(&mut self, pid: u32) {
        if let Some(server) = &self.hooks.server {
            Python::attach(|py| {
                let _ = server.bind(py).setattr("reexec_pid", pid);
            });
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
pub fn post_fork(beat: Beat) -> Result<(), String> {
    let _ = WORKER_BEAT.set(SharedBeat(beat));
    call_worker_hook("post_fork", true).map_err(|tb| format!("Exception in post_fork hook\n{tb}"))
}

/// post_worker_init(worker), once the app is loaded: `worker.wsgi` is the
/// app, `worker.app.callable` too. The error is a boot-failure report.
pub fn post_worker_init(app: &Py<PyAny>) -> Result<(), String> {
    if let Some(w) = worker_side() {
        Python::attach(|py| {
            let worker = w.worker.bind(py);
            let _ = worker.setattr("wsgi", app.bind(py));
            if let Ok(a) = worker.getattr("app") {
                let _ = a.setattr("callable", app.bind(py));
            }
            let _ = worker.setattr("booted", true);
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

/// worker_exit(server, worker), the worker's last act, however it ends
/// (served, failed to boot, aborted), as gunicorn calls it.
pub fn worker_exit() {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    if let Some(w) = worker_side() {
        Python::attach(|py| {
            let _ = w.worker.bind(py).setattr("alive", false);
        });
    }
    if let Err(tb) = call_worker_hook("worker_exit", true) {
        log_failure("worker_exit", &tb);
    }
}

#[pyfunction]
fn _worker_exit() {
    worker_exit();
}

/// With worker_abort (or worker_exit) set: a Python SIGABRT handler that
/// calls it and then worker_exit, installed
/// before faulthandler so faulthandler dumps the stacks first and then
/// hands the signal on. As in gunicorn, the handler runs when the
/// interpreter next gets control (a stuck `time.sleep` or Python loop, not a
/// C extension that never returns); the master's SIGKILL follows 1 s after
/// SIGABRT either way.
pub fn install_abort_handler() {
    let Some(w) = worker_side() else { return };
    let abort = w.hooks.get("worker_abort");
    if abort.is_none() && w.hooks.get("worker_exit").is_none() {
        return;
    }
    let r = Python::attach(|py| -> PyResult<()> {
        let helper = helper(py)?;
        let hook = match abort {
            Some(h) => h.callable.bind(py).clone(),
            None => py.None().into_bound(py),
        };
        let on_exit = wrap_pyfunction!(_worker_exit, &helper)?;
        let handler = helper
            .getattr("abort_handler")?
            .call1((hook, w.worker.bind(py), on_exit))?;
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
        conn: &crate::wsgi::environ::ConnInfo<'_>,
    ) -> Result<Bound<'py, PyAny>, (Bound<'py, PyAny>, PyErr)> {
        let target = head.target(buf);
        let (path, query) = crate::wsgi::environ::split_target(target);
        let headers = PyList::empty(py);
        for (n, v) in head.headers(buf) {
            let name = String::from_utf8_lossy(n).to_ascii_uppercase();
            let _ = headers.append((name, String::from_utf8_lossy(v).into_owned()));
        }
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        // gunicorn's peer_addr is what accept() returned: (host, port) on
        // TCP, an empty string on a unix socket.
        let peer: PyResult<Bound<'py, PyAny>> = match conn.remote_port {
            Some(port) => (conn.remote_addr, port)
                .into_pyobject(py)
                .map(|t| t.into_any()),
            None => Ok(pyo3::types::PyString::new(py, "").into_any()),
        };
        let req = peer
            .and_then(|peer| {
                helper(py)?.getattr("Request")?.call1((
                    lossy(head.method(buf)),
                    lossy(target),
                    lossy(path),
                    lossy(query),
                    (1, head.minor_version),
                    headers,
                    peer,
                    if conn.tls { "https" } else { "http" },
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
                    .call1((req, status, headers.to_vec(), sent))
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

/// gunicorn's `ssl_context(config, default_ssl_context_factory)`: the hook
/// gets a factory for the context the settings make (`hooks.py`
/// `TLSContext`), adjusts it or makes its own, and returns it; what it
/// returns is read back into the settings rustls is configured from. Called
/// by the master at start and on each HUP; without the hook, `t` as it is.
pub fn ssl_context(
    cfg: &Config,
    t: &crate::tls::TlsSettings,
) -> Result<crate::tls::TlsSettings, String> {
    use crate::tls::Version;
    let Some(hook) = cfg.hooks.get("ssl_context") else {
        return Ok(t.clone());
    };
    if !crate::python::is_initialized() {
        return Ok(t.clone());
    }
    Python::attach(|py| {
        let h = helper(py).map_err(|e| e.to_string())?;
        let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let factory = h
            .getattr("default_ssl_context_factory")
            .and_then(|f| {
                f.call1((
                    t.certfile.display().to_string(),
                    path(&t.keyfile),
                    path(&t.ca_certs),
                    t.cert_reqs,
                    t.ciphers.clone(),
                ))
            })
            .map_err(|e| e.to_string())?;
        let c = cfg_object(py, cfg).map_err(|e| e.to_string())?;
        let args = PyTuple::new(py, [c, factory]).map_err(|e| e.to_string())?;
        let args =
            PyTuple::new(py, &args.as_slice()[..hook.arity.min(2)]).map_err(|e| e.to_string())?;
        let ctx = hook.callable.bind(py).call1(args).map_err(|e| {
            format!(
                "Exception in ssl_context hook\n{}",
                traceback_of(py, &e).trim_end()
            )
        })?;
        let class = h.getattr("TLSContext").map_err(|e| e.to_string())?;
        if !ctx.is_instance(&class).unwrap_or(false) {
            return Err(format!(
                "ssl_context hook returned {}, not the context default_ssl_context_factory() made: ferricorn serves TLS with rustls and can only apply that context's settings",
                ctx.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ));
        }
        type Export = (
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<String>,
            i64,
            i64,
            Vec<String>,
            Vec<String>,
        );
        let (certfile, keyfile, cafile, verify, ciphers, min, max, alpn, unsupported): Export = ctx
            .call_method0("_export")
            .and_then(|e| e.extract())
            .map_err(|e| format!("ssl_context hook: {e}"))?;
        if let Some(first) = unsupported.first() {
            return Err(format!(
                "ssl_context hook uses {first}, which ferricorn cannot apply to rustls{}",
                if unsupported.len() > 1 {
                    format!(" (also: {})", unsupported[1..].join(", "))
                } else {
                    String::new()
                }
            ));
        }
        // ssl.TLSVersion: MINIMUM_SUPPORTED -2, MAXIMUM_SUPPORTED -1,
        // TLSv1 0x301 .. TLSv1_3 0x304.
        let min_version = match min {
            -2 | 0..=0x303 => Version::Tls12,
            _ => Version::Tls13,
        };
        let max_version = match max {
            -1 | 0x304.. => Version::Tls13,
            0x303 => Version::Tls12,
            _ => return Err(
                "ssl_context hook sets maximum_version below TLS 1.2, which rustls does not speak"
                    .into(),
            ),
        };
        Ok(crate::tls::TlsSettings {
            certfile: certfile.into(),
            keyfile: keyfile.map(Into::into),
            ca_certs: cafile.map(Into::into),
            cert_reqs: verify,
            ciphers,
            min_version,
            max_version,
            alpn: alpn.into_iter().map(String::into_bytes).collect(),
        })
    })
}
