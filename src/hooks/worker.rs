//! The hooks a worker calls on itself: post_fork, post_worker_init,
//! worker_int, worker_abort and worker_exit.

use super::{call, helper, log_failure};
use crate::config::HookSet;
use crate::heartbeat::Beat;
use pyo3::prelude::*;
use std::sync::{Arc, OnceLock};

/// What a forked worker keeps: its hooks and the objects they are called with.
pub(super) struct WorkerSide {
    pub(super) hooks: Arc<HookSet>,
    server: Py<PyAny>,
    pub(super) worker: Py<PyAny>,
}

/// The worker's heartbeat, for `worker.notify()`.
static WORKER_BEAT: OnceLock<Beat> = OnceLock::new();

#[pyfunction]
pub(super) fn _notify() {
    if let Some(b) = WORKER_BEAT.get() {
        b.beat();
    }
}

static WORKER_SIDE: OnceLock<WorkerSide> = OnceLock::new();

/// In the new worker, right after fork: keep the hooks and the `server` and
/// `worker` objects the master made for it.
pub fn install_worker_side(hooks: Arc<HookSet>, server: Py<PyAny>, worker: Py<PyAny>) {
    let _ = WORKER_SIDE.set(WorkerSide {
        hooks,
        server,
        worker,
    });
}

pub(super) fn worker_side() -> Option<&'static WorkerSide> {
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
    let _ = WORKER_BEAT.set(beat);
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
