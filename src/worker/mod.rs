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
use crate::signals::SignalPipe;
use crate::sock::Listener;
use pyo3::prelude::*;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

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
    Message::BootFailed { code, report }.send(ctx.status.as_raw_fd());
    // As gunicorn's arbiter does for a worker whatever its end.
    crate::hooks::worker_exit();
    crate::process::exit_immediately(code)
}

/// Run the worker; never returns.
pub fn run(ctx: WorkerCtx<'_>) -> ! {
    let signals = prepare_process(&ctx);
    if ctx.cfg.reference_responder {
        serve_reference(&ctx, signals);
    }
    start_python(&ctx);
    let (app, watch_extra) = load_app(&ctx);
    let runner = start_runner(&ctx, app);
    announce_booted(&ctx, watch_extra);
    serve_app(&ctx, runner, signals)
}

/// The process before any Python: signal handlers, title, privileges and
/// the parent-death signal. Returns the loop's signal pipe.
fn prepare_process(ctx: &WorkerCtx<'_>) -> SignalPipe {
    let signals = match serve::install_worker_signals() {
        Ok(s) => s,
        Err(e) => fail(
            ctx,
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
    crate::proctitle::set(&format!("ferricorn: worker [{}]", ctx.cfg.proc_name));
    if let Err(e) = drop_privileges(ctx.cfg) {
        fail(ctx, EXIT_BOOT_ERROR, format!("{e}\n"));
    }
    // The master-alive pipe is only watched once the worker serves; until
    // then (a long import) a dead master must still take the worker with
    // it. Armed after the privilege drop, which clears it.
    die_with_master_while_booting(ctx.master_pid, true);
    crate::info!("Booting worker with pid: {}", std::process::id());
    signals
}

/// The no-Python reference responder: booted at once, serves until stopped.
fn serve_reference(ctx: &WorkerCtx<'_>, signals: SignalPipe) -> ! {
    ctx.beat.beat();
    Message::Booted.send(ctx.status.as_raw_fd());
    die_with_master_while_booting(ctx.master_pid, false);
    let requests = Arc::new(job::RequestCtx::new(
        ctx.cfg,
        ctx.listeners,
        ctx.beat.counters,
    ));
    let runner = Box::new(mode::inline::Inline::new(None, requests, ctx.beat));
    let exit = serve::Server::new(ctx, runner, signals).run();
    crate::process::exit_immediately(exit.code)
}

fn is_gevent(cfg: &Config) -> bool {
    cfg.worker_mode == mode::WorkerMode::Gevent
}

/// The interpreter, up to just before the app: initialized (unless the
/// master preloaded it), post_fork run, gevent's patch applied, and stacks
/// dumped on the master's SIGABRT.
fn start_python(ctx: &WorkerCtx<'_>) {
    if !crate::python::is_initialized() {
        let setup = crate::python::PythonSetup::for_config(ctx.cfg);
        if let Err(e) = crate::python::initialize(&setup) {
            fail(ctx, EXIT_BOOT_ERROR, format!("{e}\n"));
        }
    }
    if let Err(report) = crate::hooks::post_fork(ctx.beat) {
        fail(ctx, EXIT_BOOT_ERROR, report);
    }
    let gevent = is_gevent(ctx.cfg);
    if gevent {
        // gunicorn's order: post_fork, then the patch, then the app, so
        // post_fork hooks that patch database drivers keep working.
        if let Err(e) = Python::attach(mode::greenlets::patch) {
            fail(ctx, EXIT_BOOT_ERROR, format!("{e}\n"));
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
}

/// The app (or, in reload mode with no working code yet, the error page
/// standing in for it), and the files to watch besides its modules.
fn load_app(ctx: &WorkerCtx<'_>) -> (Py<PyAny>, Vec<String>) {
    if let Some(app) = &ctx.preloaded {
        return (Python::attach(|py| app.clone_ref(py)), Vec::new());
    }
    let e = match Python::attach(|py| crate::python::load_app(py, &ctx.cfg.wsgi_app)) {
        Ok(app) => return (app, Vec::new()),
        Err(e) => e,
    };
    if !ctx.load_error_page {
        if ctx.cfg.reload {
            // So that saving a fix to any file involved retries.
            let mut files = e.files.clone();
            files.extend(Python::attach(crate::python::loader::module_files));
            Message::Watch(files).send(ctx.status.as_raw_fd());
        }
        fail(ctx, EXIT_APP_LOAD_ERROR, e.report)
    }
    // The master prints the report once for all workers.
    Message::ErrorPage(e.report.clone()).send(ctx.status.as_raw_fd());
    match Python::attach(|py| crate::python::loader::error_app(py, &e.report)) {
        Ok(app) => (app, e.files),
        Err(err) => fail(
            ctx,
            EXIT_BOOT_ERROR,
            format!("cannot build the error page: {err}\n"),
        ),
    }
}

fn thread_count(cfg: &Config) -> Option<usize> {
    match cfg.worker_mode {
        mode::WorkerMode::Threads(n) => Some(n),
        _ => None,
    }
}

/// How the app is called, as the worker's mode and settings ask.
fn wsgi_options(cfg: &Config) -> crate::wsgi::WsgiOptions {
    let gevent = is_gevent(cfg);
    crate::wsgi::WsgiOptions {
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
        multithread: thread_count(cfg).is_some() || gevent,
        // The access log and post_request's `resp.headers` read them.
        record_headers: crate::log::access_enabled() || crate::hooks::worker_has("post_request"),
    }
}

/// The mode that runs the app's requests (inline, a thread pool or
/// greenlets), then the post_worker_init hook.
fn start_runner<'a>(ctx: &WorkerCtx<'a>, app: Py<PyAny>) -> Box<dyn mode::Runner + 'a> {
    let opts = wsgi_options(ctx.cfg);
    let app_for_hooks = Python::attach(|py| app.clone_ref(py));
    let requests = Arc::new(job::RequestCtx::new(
        ctx.cfg,
        ctx.listeners,
        ctx.beat.counters,
    ));
    let runner: Box<dyn mode::Runner> = match thread_count(ctx.cfg) {
        None if is_gevent(ctx.cfg) => match Python::attach(|py| {
            mode::greenlets::Greenlets::new(py, app.clone_ref(py), opts, requests)
        }) {
            Ok(g) => Box::new(g),
            Err(e) => fail(ctx, EXIT_BOOT_ERROR, format!("{e}\n")),
        },
        None => match Python::attach(|py| crate::wsgi::WsgiApp::new(py, app, opts)) {
            Ok(w) => Box::new(mode::inline::Inline::new(Some(w), requests, ctx.beat)),
            Err(e) => fail(
                ctx,
                EXIT_BOOT_ERROR,
                format!("cannot prepare the WSGI environment: {e}\n"),
            ),
        },
        Some(n) => match mode::pool::Pool::start(n, &app, &opts, requests) {
            Ok(pool) => Box::new(pool),
            Err(e) => fail(ctx, EXIT_BOOT_ERROR, format!("{e}\n")),
        },
    };
    if let Err(report) = crate::hooks::post_worker_init(&app_for_hooks) {
        fail(ctx, EXIT_BOOT_ERROR, report);
    }
    runner
}

/// Tell the master the worker is ready (and, in reload mode, what to
/// watch), and stop dying with it: it is now heard of through its pipe.
fn announce_booted(ctx: &WorkerCtx<'_>, watch_extra: Vec<String>) {
    ctx.beat.beat();
    Message::Booted.send(ctx.status.as_raw_fd());
    if ctx.cfg.reload {
        // After `Booted`: the new code serves first, the list follows.
        let mut files = Python::attach(crate::python::loader::module_files);
        files.extend(watch_extra);
        Message::Watch(files).send(ctx.status.as_raw_fd());
    }
    // Serving: a dead master now means a graceful exit through the pipe, so
    // in-flight requests finish instead of being killed.
    die_with_master_while_booting(ctx.master_pid, false);
}

/// Serve the app until stopped, then leave: the worker_exit hook, then
/// Python finalized when no request thread is left inside it.
fn serve_app(ctx: &WorkerCtx<'_>, runner: Box<dyn mode::Runner + '_>, signals: SignalPipe) -> ! {
    let exit = if is_gevent(ctx.cfg) {
        // One OS thread runs the loop and every greenlet: it holds the GIL
        // throughout, and lets go of it only through the hub.
        Python::attach(|_| serve::Server::new(ctx, runner, signals).run())
    } else {
        serve::Server::new(ctx, runner, signals).run()
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
    crate::process::exit_immediately(exit.code)
}

/// Arm (SIGKILL) or disarm the parent-death signal.
fn die_with_master_while_booting(master_pid: u32, arm: bool) {
    let _ = nix::sys::prctl::set_pdeathsig(arm.then_some(nix::sys::signal::Signal::SIGKILL));
    if arm && nix::unistd::getppid().as_raw() as u32 != master_pid {
        // The master died before the signal was armed.
        crate::process::exit_immediately(0);
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
