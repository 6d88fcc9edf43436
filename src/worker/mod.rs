//! A worker process: boots the app, then serves requests until told to stop.
//!
//! Life: fork → signals → title → privileges → Python → app → `Booted` to
//! the master → event loop → `Worker exiting` → exit. Boot failures are
//! reported to the master (which prints them once) with the exit code that
//! says what failed: 4 when the app cannot be loaded, 3 for anything else.

mod conn;
mod job;
pub mod mode;
mod reference;
mod serve;

use crate::config::Config;
use crate::heartbeat::Beat;
use crate::ipc::Message;
use crate::sock::Listener;
use pyo3::prelude::*;
use std::os::fd::{OwnedFd, RawFd};

pub const EXIT_BOOT_ERROR: i32 = 3;
pub const EXIT_APP_LOAD_ERROR: i32 = 4;

/// Everything a freshly forked worker needs from its master.
pub struct WorkerCtx<'a> {
    pub cfg: &'a Config,
    pub listeners: &'a [Listener],
    pub beat: Beat,
    /// Write end of this worker's status pipe to the master.
    pub status: OwnedFd,
    /// Read end of the pipe only the master writes to: EOF = master died.
    pub master_alive: RawFd,
    /// The master's pid, to notice a master that died before the worker
    /// could arm its parent-death signal.
    pub master_pid: u32,
    /// The app, when the master preloaded it.
    pub preloaded: Option<Py<PyAny>>,
    pub age: u64,
    /// Reload mode with no working code yet: an app that fails to import
    /// is replaced by an error page showing its traceback (development
    /// server behaviour) instead of stopping the server.
    pub load_error_page: bool,
}

fn fail(ctx: &WorkerCtx<'_>, code: i32, report: String) -> ! {
    Message::BootFailed { code, report }.send(std::os::fd::AsRawFd::as_raw_fd(&ctx.status));
    // As gunicorn's arbiter does for a worker whatever its end.
    crate::hooks::worker_exit();
    unsafe { libc::_exit(code) }
}

/// Run the worker; never returns.
pub fn run(ctx: WorkerCtx<'_>) -> ! {
    let cfg = ctx.cfg;
    let signals = match serve::install_worker_signals() {
        Ok(s) => s,
        Err(e) => fail(
            &ctx,
            EXIT_BOOT_ERROR,
            format!("cannot install signal handlers: {e}\n"),
        ),
    };
    // The master forked with every signal blocked (see spawn.rs); with the
    // worker's own handlers in place, what arrived meanwhile is delivered now.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    crate::proctitle::set(&format!("ferricorn: worker [{}]", cfg.proc_name));
    if let Err(e) = drop_privileges(cfg) {
        fail(&ctx, EXIT_BOOT_ERROR, format!("{e}\n"));
    }
    // The master-alive pipe is only watched once the worker serves; until
    // then (a long import) a dead master must still take the worker with
    // it. Armed after the privilege drop, which clears it.
    die_with_master_while_booting(ctx.master_pid, true);
    crate::info!("Booting worker with pid: {}", std::process::id());
    if cfg.reference_responder {
        ctx.beat.beat();
        Message::Booted.send(std::os::fd::AsRawFd::as_raw_fd(&ctx.status));
        die_with_master_while_booting(ctx.master_pid, false);
        let requests =
            std::sync::Arc::new(job::RequestCtx::new(cfg, ctx.listeners, ctx.beat.counters));
        let runner = Box::new(mode::inline::Inline::new(None, requests, ctx.beat));
        let exit = serve::Server::new(&ctx, runner, signals).run();
        // SAFETY: _exit ends the process at once; nothing runs after it.
        // (std::process::exit would run atexit handlers inherited from the
        // master across fork.)
        unsafe { libc::_exit(exit.code) }
    }

    if !crate::python::is_initialized() {
        let setup = crate::python::PythonSetup::for_config(cfg);
        if let Err(e) = crate::python::initialize(&setup) {
            fail(&ctx, EXIT_BOOT_ERROR, format!("{e}\n"));
        }
    }
    if let Err(report) = crate::hooks::post_fork(ctx.beat) {
        fail(&ctx, EXIT_BOOT_ERROR, report);
    }
    let gevent = cfg.worker_mode == mode::WorkerMode::Gevent;
    if gevent {
        // gunicorn's order: post_fork, then the patch, then the app, so
        // post_fork hooks that patch database drivers keep working.
        if let Err(e) = Python::attach(mode::greenlets::patch) {
            fail(&ctx, EXIT_BOOT_ERROR, format!("{e}\n"));
        }
    }
    // Before faulthandler, which hands SIGABRT on to it after the dump.
    crate::hooks::install_abort_handler();
    if gevent {
        let fd = crate::log::error_fd();
        if let Err(e) = Python::attach(|py| mode::greenlets::dump_greenlets_on_abort(py, fd)) {
            crate::warning!("greenlet stacks will not be logged on timeout: {e}");
        }
    }
    if let Err(e) = crate::python::interp::dump_stacks_on_abort(crate::log::error_fd()) {
        crate::warning!("Python stacks will not be logged on timeout: {e}");
    }
    let mut watch_extra: Vec<String> = Vec::new();
    let app = match &ctx.preloaded {
        Some(app) => Python::attach(|py| app.clone_ref(py)),
        None => match Python::attach(|py| crate::python::load_app(py, &cfg.wsgi_app)) {
            Ok(app) => app,
            Err(e) if ctx.load_error_page => {
                // The master prints the report once for all workers.
                Message::ErrorPage(e.report.clone())
                    .send(std::os::fd::AsRawFd::as_raw_fd(&ctx.status));
                watch_extra = e.files;
                match Python::attach(|py| crate::python::loader::error_app(py, &e.report)) {
                    Ok(app) => app,
                    Err(err) => fail(
                        &ctx,
                        EXIT_BOOT_ERROR,
                        format!("cannot build the error page: {err}\n"),
                    ),
                }
            }
            Err(e) => {
                if cfg.reload {
                    // So that saving a fix to any file involved retries.
                    let mut files = e.files.clone();
                    files.extend(Python::attach(crate::python::loader::module_files));
                    Message::Watch(files).send(std::os::fd::AsRawFd::as_raw_fd(&ctx.status));
                }
                fail(&ctx, EXIT_APP_LOAD_ERROR, e.report)
            }
        },
    };

    let threads = match cfg.worker_mode {
        mode::WorkerMode::Threads(n) => Some(n),
        _ => None,
    };
    let opts = crate::wsgi::WsgiOptions {
        limits: cfg.limits.clone(),
        patience: crate::net::Patience {
            timeout: cfg.timeout.unwrap_or(std::time::Duration::from_secs(3600)),
            waiter: if gevent {
                &mode::greenlets::HUB_WAIT
            } else {
                &mode::GIL_FREE_POLL
            },
        },
        sendfile: cfg.sendfile,
        script_name: std::env::var("SCRIPT_NAME")
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
        multiprocess: cfg.workers > 1,
        // As gunicorn's gthread and gevent workers, whatever the count.
        multithread: threads.is_some() || gevent,
        // The access log and post_request's `resp.headers` read them.
        record_headers: crate::log::access_enabled() || crate::hooks::worker_has("post_request"),
    };
    let app_for_hooks = Python::attach(|py| app.clone_ref(py));
    let requests = std::sync::Arc::new(job::RequestCtx::new(cfg, ctx.listeners, ctx.beat.counters));
    let runner: Box<dyn mode::Runner> = match threads {
        None if gevent => match Python::attach(|py| {
            mode::greenlets::Greenlets::new(py, app.clone_ref(py), opts, requests)
        }) {
            Ok(g) => Box::new(g),
            Err(e) => fail(&ctx, EXIT_BOOT_ERROR, format!("{e}\n")),
        },
        None => match Python::attach(|py| crate::wsgi::WsgiApp::new(py, app, opts)) {
            Ok(w) => Box::new(mode::inline::Inline::new(Some(w), requests, ctx.beat)),
            Err(e) => fail(
                &ctx,
                EXIT_BOOT_ERROR,
                format!("cannot prepare the WSGI environment: {e}\n"),
            ),
        },
        Some(n) => match mode::pool::Pool::start(n, &app, &opts, requests) {
            Ok(pool) => Box::new(pool),
            Err(e) => fail(&ctx, EXIT_BOOT_ERROR, format!("{e}\n")),
        },
    };
    if let Err(report) = crate::hooks::post_worker_init(&app_for_hooks) {
        fail(&ctx, EXIT_BOOT_ERROR, report);
    }
    ctx.beat.beat();
    Message::Booted.send(std::os::fd::AsRawFd::as_raw_fd(&ctx.status));
    if cfg.reload {
        // After `Booted`: the new code serves first, the list follows.
        let mut files = Python::attach(crate::python::loader::module_files);
        files.extend(watch_extra);
        Message::Watch(files).send(std::os::fd::AsRawFd::as_raw_fd(&ctx.status));
    }
    // Serving: a dead master now means a graceful exit through the pipe, so
    // in-flight requests finish instead of being killed.
    die_with_master_while_booting(ctx.master_pid, false);

    let exit = if gevent {
        // One OS thread runs the loop and every greenlet: it holds the GIL
        // throughout, and lets go of it only through the hub.
        Python::attach(|_| serve::Server::new(&ctx, runner, signals).run())
    } else {
        serve::Server::new(&ctx, runner, signals).run()
    };
    crate::info!("Worker exiting (pid: {})", std::process::id());
    crate::hooks::worker_exit();
    if exit.threads_stopped {
        crate::python::interp::finalize();
    } else {
        // A request thread is still inside the app (a quick stop, or one
        // stuck past the grace): finalizing would pull the interpreter out
        // from under it.
        crate::warning!("Request threads still running; exiting without finalizing Python");
        crate::python::interp::flush_stdio();
    }
    // SAFETY: as above: the worker's last act, stdio already flushed.
    unsafe { libc::_exit(exit.code) }
}

/// Arm (SIGKILL) or disarm the parent-death signal.
fn die_with_master_while_booting(master_pid: u32, arm: bool) {
    let sig = if arm { libc::SIGKILL } else { 0 };
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    if arm && nix::unistd::getppid().as_raw() as u32 != master_pid {
        // The master died before the signal was armed.
        unsafe { libc::_exit(0) };
    }
}

fn drop_privileges(cfg: &Config) -> Result<(), String> {
    if let Some(gid) = cfg.gid {
        nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))
            .map_err(|e| format!("cannot switch to group {gid}: {}", e.desc()))?;
    }
    if let Some(uid) = cfg.uid {
        if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            let gid = cfg.gid.map(nix::unistd::Gid::from_raw).unwrap_or(user.gid);
            if let Ok(name) = std::ffi::CString::new(user.name.clone()) {
                let _ = nix::unistd::initgroups(&name, gid);
            }
        }
        nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
            .map_err(|e| format!("cannot switch to user {uid}: {}", e.desc()))?;
    }
    Ok(())
}
