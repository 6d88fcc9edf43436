//! The master's side of the server hooks: the `server` object it keeps and
//! the hooks its loop calls (on_starting, when_ready, nworkers_changed,
//! pre_fork, child_exit, on_reload, pre_exec, on_exit). The hooks
//! themselves, and the objects they are called with, are in `crate::hooks`.

use super::{Arbiter, Phase};
use crate::config::HookSet;
use crate::hooks::{
    call, cfg_object, helper, listener_objects, log_failure, new_logger, traceback_of,
};
use crate::settings::Value;
use nix::sys::signal::Signal;
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The master's hook state: the `server` object, and a `worker` object per
/// live worker (the same one pre_fork, post_fork and child_exit see).
#[derive(Default)]
pub struct MasterHooks {
    server: Option<Py<PyAny>>,
    workers: HashMap<i32, Py<PyAny>>,
    /// The worker count the server object (and so nworkers_changed) last saw.
    num_workers: Option<u32>,
}

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
        let (values, hooks) = read_hook_changes(&changes);
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
        crate::hooks::install_worker_side(self.cfg.hooks.clone(), server, worker);
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

/// What hooks set with `server.cfg.set(...)`, read back: values (each with
/// the notice a config file setting it gets) and hooks (None: removed).
#[allow(clippy::type_complexity)]
fn read_hook_changes(
    changes: &[(String, Py<PyAny>)],
) -> (
    Vec<(&'static str, Value)>,
    Vec<(&'static str, Option<Py<PyAny>>)>,
) {
    let mut values = Vec::new();
    let mut hooks = Vec::new();
    Python::attach(|py| {
        for (name, obj) in changes {
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
    (values, hooks)
}
