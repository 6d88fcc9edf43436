//! The master (arbiter): owns the listeners and the workers, never runs a
//! request.
//!
//! One loop, in a fixed order every turn (after Unicorn's `join` and
//! gunicorn's `Arbiter.run`): reap children → act on queued signals → read
//! worker reports → kill workers past their heartbeat → bring the workers to
//! target → sleep in poll(). Signal handlers only write to a self-pipe.
//!
//! Every change of workers (start, HUP, TTIN/TTOU, max_requests) goes
//! through one routine, [`Arbiter::manage_workers`]: workers of the current
//! generation are started (one at a time once the server has served), and an
//! old or recycled worker is retired only when a new one has booted to take
//! its place. If a new generation fails to boot, the old one keeps serving.

mod control;
pub mod hooks;
mod observe;
mod reconfig;
mod reload;
mod spawn;
mod upgrade;
mod workers;

pub use upgrade::UpgradeSetup;

use crate::config::Config;
use crate::heartbeat::Heartbeats;
use crate::ipc::Message;
use crate::pidfile::Pidfile;
use crate::signals::{self, SignalPipe};
use crate::sock::Listener;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use pyo3::prelude::*;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};
use workers::{Slots, WorkerProc, WorkerState};

/// The exit codes gunicorn's master uses, so supervisors read them alike.
pub const EXIT_WORKER_BOOT_ERROR: i32 = 3;
pub const EXIT_APP_LOAD_ERROR: i32 = 4;

/// Grace between SIGABRT (stack dump) and SIGKILL for a timed-out worker.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// Where the master is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Running,
    /// TERM: workers finish in-flight requests until the deadline.
    Draining {
        deadline: Instant,
    },
    /// INT/QUIT: workers are told to exit now.
    Quitting {
        deadline: Instant,
    },
    /// A boot failure at start-up: stop everything, exit with this code.
    Halting {
        code: i32,
        reason: &'static str,
        deadline: Instant,
    },
}

pub struct Arbiter {
    cfg: Config,
    listeners: Vec<Listener>,
    signals: Option<SignalPipe>,
    heartbeats: Heartbeats,
    slots: Slots,
    workers: Vec<WorkerProc>,
    /// Write end held only by the master; workers see EOF when it dies.
    alive_write: Option<OwnedFd>,
    alive_read: OwnedFd,
    pidfile: Option<Pidfile>,
    preloaded: Option<Py<PyAny>>,
    phase: Phase,
    num_workers: u32,
    generation: u64,
    next_age: u64,
    /// Some worker of this master has booted: start-up is over.
    ever_booted: bool,
    /// A generation whose workers failed to boot: no more spawning for it.
    blocked_generation: Option<u64>,
    pid: u32,
    /// Binary upgrades: the successor this master started, or the old
    /// master that started this one; readiness announcements.
    upgrade: upgrade::Upgrades,
    /// The generation whose error page report was printed (printed once).
    error_page_reported: Option<u64>,
    /// The file watcher, with --reload (set up when the loop starts).
    reload: Option<reload::Reload>,
    /// The configuration file, watched too with --reload.
    config_file: Option<std::path::PathBuf>,
    /// Server hooks: the Python objects they are called with.
    hooks: hooks::MasterHooks,
    /// Where the configuration came from, to read it again on HUP.
    source: Option<crate::config::ConfigSource>,
    /// Metrics: totals of gone workers, restarts, StatsD and Prometheus.
    observe: observe::Observe,
    /// The control socket (gunicornc), unless disabled.
    control: Option<crate::control::ControlSocket>,
}

impl Arbiter {
    /// Set up before binding (the listeners come with [`Arbiter::set_listeners`]);
    /// signals are installed before Python can start.
    pub fn new(cfg: Config, signals: SignalPipe) -> Result<Arbiter, String> {
        let heartbeats =
            Heartbeats::new().map_err(|e| format!("cannot map heartbeat memory: {e}"))?;
        let (alive_read, alive_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        Ok(Arbiter {
            num_workers: cfg.workers,
            cfg,
            listeners: Vec::new(),
            signals: Some(signals),
            heartbeats,
            slots: Slots::new(crate::heartbeat::SLOTS),
            workers: Vec::new(),
            alive_write: Some(alive_write),
            alive_read,
            pidfile: None,
            preloaded: None,
            phase: Phase::Running,
            generation: 1,
            next_age: 1,
            ever_booted: false,
            blocked_generation: None,
            pid: std::process::id(),
            upgrade: upgrade::Upgrades::new(),
            reload: None,
            error_page_reported: None,
            config_file: None,
            hooks: hooks::MasterHooks::default(),
            source: None,
            observe: observe::Observe::default(),
            control: None,
        })
    }

    /// The configuration in force (server hooks may have changed it).
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The listeners, once bound (or adopted) and the process daemonized.
    pub fn set_listeners(&mut self, listeners: Vec<Listener>) {
        self.listeners = listeners;
        // Daemonizing changed the pid since the arbiter was made.
        self.pid = std::process::id();
    }

    /// The configuration file in use (watched with --reload).
    pub fn set_config_file(&mut self, path: Option<std::path::PathBuf>) {
        self.config_file = path;
    }

    pub fn set_pidfile(&mut self, pidfile: Option<Pidfile>) {
        self.pidfile = pidfile;
    }

    /// Give up before running (preload failed): remove what start-up created.
    pub fn abandon(&mut self) {
        self.release_files();
    }

    /// Import the app in the master (--preload). Exits 4 with the report on failure.
    pub fn preload(&mut self) -> Result<(), (i32, String)> {
        let setup = crate::python::PythonSetup::for_config(&self.cfg);
        crate::python::initialize(&setup)
            .map_err(|e| (EXIT_WORKER_BOOT_ERROR, format!("{e}\n")))?;
        let app = Python::attach(|py| crate::python::load_app(py, &self.cfg.wsgi_app))
            .map_err(|e| (EXIT_APP_LOAD_ERROR, e.report))?;
        self.preloaded = Some(app);
        Ok(())
    }

    /// Run until stopped; returns the process exit code.
    pub fn run(mut self) -> i32 {
        crate::proctitle::set(&format!("ferricorn: master [{}]", self.cfg.proc_name));
        if self.cfg.reload {
            if self.cfg.preload {
                // The master holds the app's code, so a change re-executes
                // the master (a self-upgrade), which must hand over by itself.
                self.cfg.upgrade_auto = true;
            }
            if !crate::python::is_initialized() {
                // Workers forked from a master whose interpreter is already
                // up only import the app: a reload then costs milliseconds,
                // not an interpreter start. The app itself is never imported here.
                if let Err(e) =
                    crate::python::initialize(&crate::python::PythonSetup::for_config(&self.cfg))
                {
                    crate::warning!("Reload mode without a warm interpreter: {e}");
                } else {
                    // Also compile the loader and import what listing module
                    // files needs, once, before any fork.
                    Python::attach(|py| drop(crate::python::loader::module_files(py)));
                }
            }
            match reload::Reload::new(&self.cfg, self.config_file.clone()) {
                Ok(r) => self.reload = Some(r),
                Err(e) => crate::error!("Reloading is off: {e}"),
            }
        }
        self.configure_statsd();
        self.open_metrics();
        self.open_control();
        let code = loop {
            self.reap();
            self.handle_signals();
            self.hook_nworkers_changed();
            self.upgrade_tick();
            if self.phase == Phase::Running {
                self.reload_tick();
            }
            if let Some(code) = self.check_phase() {
                break code;
            }
            self.murder_timed_out();
            if self.phase == Phase::Running {
                self.manage_workers();
            }
            self.observe_tick();
            self.control_tick();
            self.sleep();
        };
        self.shutdown();
        code
    }

    fn shutdown(&mut self) {
        crate::info!("Shutting down: Master");
        if let Phase::Halting { reason, .. } = self.phase {
            crate::info!("Reason: {reason}");
        }
        self.release_files();
        self.hook_on_exit();
    }

    /// Decide whether the master is done, and force the stragglers.
    fn check_phase(&mut self) -> Option<i32> {
        let now = Instant::now();
        let (deadline, code) = match self.phase {
            Phase::Running => return None,
            Phase::Draining { deadline } | Phase::Quitting { deadline } => (deadline, 0),
            Phase::Halting { deadline, code, .. } => (deadline, code),
        };
        if self.workers.is_empty() {
            return Some(code);
        }
        if now >= deadline {
            for w in &self.workers {
                let _ = kill(w.pid, Signal::SIGKILL);
            }
            // Wait for them so none outlives the master.
            while !self.workers.is_empty() {
                match waitpid(None, None) {
                    Ok(status) => self.forget(status),
                    Err(_) => break,
                }
            }
            return Some(code);
        }
        None
    }

    fn handle_signals(&mut self) {
        let Some(pipe) = &self.signals else { return };
        for (sig, count) in pipe.drain() {
            if sig != Signal::SIGCHLD as i32 {
                crate::info!(
                    "Handling signal: {}",
                    signals::name(sig).trim_start_matches("SIG").to_lowercase()
                );
            }
            let Ok(sig) = Signal::try_from(sig) else {
                continue;
            };
            match sig {
                Signal::SIGHUP => self.on_hup(),
                Signal::SIGTERM => self.stop(true),
                Signal::SIGINT | Signal::SIGQUIT => self.stop(false),
                Signal::SIGTTIN => {
                    self.num_workers = self.num_workers.saturating_add(count);
                    crate::info!("Number of workers: {}", self.num_workers);
                }
                Signal::SIGTTOU => {
                    self.num_workers = self.num_workers.saturating_sub(count).max(1);
                    crate::info!("Number of workers: {}", self.num_workers);
                }
                Signal::SIGUSR1 => {
                    if let Err(e) = crate::log::reopen() {
                        crate::error!("Cannot reopen log files: {e}");
                    }
                    self.signal_workers(Signal::SIGUSR1);
                }
                Signal::SIGWINCH => {
                    crate::info!("graceful stop of workers");
                    self.num_workers = 0;
                }
                Signal::SIGUSR2 => self.on_usr2(),
                _ => {}
            }
        }
    }

    fn on_hup(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        crate::info!("Hang up: Master");
        self.notify_reloading();
        self.reload_config();
        self.generation += 1;
        self.blocked_generation = None;
        self.reload_started();
    }

    fn stop(&mut self, graceful: bool) {
        let now = Instant::now();
        if self.phase == Phase::Running {
            self.notify_stopping();
        }
        match (self.phase, graceful) {
            (Phase::Running, true) => {
                self.phase = Phase::Draining {
                    deadline: now + self.cfg.graceful_timeout,
                };
                self.signal_workers(Signal::SIGTERM);
            }
            (Phase::Running | Phase::Draining { .. }, false) => {
                self.phase = Phase::Quitting {
                    deadline: now
                        + Duration::from_secs(2)
                            .min(self.cfg.graceful_timeout.max(Duration::from_millis(500))),
                };
                self.signal_workers(Signal::SIGQUIT);
            }
            _ => {}
        }
    }

    fn signal_workers(&self, sig: Signal) {
        for w in &self.workers {
            let _ = kill(w.pid, sig);
        }
    }

    /// Collect every exited child (no zombies, ever).
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => self.forget(status),
            }
        }
    }

    fn forget(&mut self, status: WaitStatus) {
        let Some(pid) = status.pid() else { return };
        let Some(pos) = self.workers.iter().position(|w| w.pid == pid) else {
            self.on_child_exit(pid, &status);
            return;
        };
        let mut w = self.workers.swap_remove(pos);
        self.drain_reports(&mut w);
        self.hook_child_exit(pid);
        self.heartbeats.release(w.slot);
        self.heartbeats
            .counters
            .fold(w.slot, &mut self.observe.folded);
        self.slots.give_back(w.slot);
        let expected = w.is_retiring() || self.phase != Phase::Running;
        let (code, sig) = match status {
            WaitStatus::Exited(_, code) => (Some(code), None),
            WaitStatus::Signaled(_, sig, _) => (None, Some(sig)),
            _ => (None, None),
        };
        let crashed = matches!(code, Some(c) if c != 0) || sig.is_some();
        if !expected && crashed && w.is_booted() && w.aborted_at.is_none() {
            self.observe.restarts.crash += 1;
        }
        if !expected {
            match (code, sig) {
                (Some(0), _) => {}
                (Some(c), _) => crate::error!("Worker (pid:{pid}) exited with code {c}"),
                (_, Some(Signal::SIGKILL)) => {
                    crate::error!("Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?")
                }
                (_, Some(s)) => crate::error!("Worker (pid:{pid}) was sent {}!", s.as_str()),
                _ => {}
            }
        }
        if !w.is_booted() && !w.is_retiring() && self.phase == Phase::Running {
            // Killed from outside while importing (OOM killer, an operator's
            // kill): not the app's fault, so it is replaced like any dead worker
            // (as gunicorn does) instead of stopping the server or blocking the
            // generation. A worker that exits by itself, crashes, or is aborted
            // by us for booting past --timeout has failed to boot.
            let external_kill = w.boot_failure.is_none()
                && w.aborted_at.is_none()
                && matches!(
                    sig,
                    Some(
                        Signal::SIGKILL
                            | Signal::SIGTERM
                            | Signal::SIGINT
                            | Signal::SIGQUIT
                            | Signal::SIGHUP
                    )
                );
            if external_kill {
                return;
            }
            let timeout = self.cfg.timeout.map(|t| t.as_secs()).unwrap_or(0);
            let failure = w.boot_failure.clone().or_else(|| {
                let why = match (code, sig) {
                    _ if w.aborted_at.is_some() => {
                        format!("did not finish booting within --timeout {timeout} s\n")
                    }
                    (Some(c), _) => format!("exited with code {c} before it booted\n"),
                    (_, Some(s)) => format!("was killed by {} before it booted\n", s.as_str()),
                    _ => "stopped before it booted\n".into(),
                };
                Some((code.unwrap_or(EXIT_WORKER_BOOT_ERROR), why))
            });
            if let Some((code, report)) = failure {
                self.on_boot_failure(w.generation, pid, code, &report);
            }
        }
    }

    fn on_boot_failure(&mut self, generation: u64, pid: Pid, code: i32, report: &str) {
        self.reload_outcome(generation, false);
        if self.blocked_generation == Some(generation) {
            return; // reported once already
        }
        if !self.ever_booted {
            // At start-up there is nothing to fall back on: stop, as gunicorn does.
            crate::error!(
                "Exception in worker process (pid:{pid}):\n{}",
                report.trim_end()
            );
            let (code, reason) = if code == EXIT_APP_LOAD_ERROR {
                (EXIT_APP_LOAD_ERROR, "App failed to load.")
            } else {
                (EXIT_WORKER_BOOT_ERROR, "Worker failed to boot.")
            };
            self.blocked_generation = Some(generation);
            self.notify_stopping();
            self.phase = Phase::Halting {
                code,
                reason,
                deadline: Instant::now() + self.cfg.graceful_timeout.min(Duration::from_secs(5)),
            };
            self.signal_workers(Signal::SIGTERM);
            return;
        }
        self.blocked_generation = Some(generation);
        let serving = self
            .workers
            .iter()
            .filter(|w| w.is_booted() && !w.is_retiring())
            .count();
        crate::error!(
            "New worker (pid:{pid}) failed to boot; {serving} running worker(s) keep serving the previous code. {}\n{}",
            if self.cfg.reload { "Save a fix to retry." } else { "Fix the error and send HUP to retry." },
            report.trim_end()
        );
        // Workers of the failed generation that are still booting will fail alike.
        for w in self
            .workers
            .iter_mut()
            .filter(|w| w.generation == generation && !w.is_booted() && !w.is_retiring())
        {
            let _ = kill(w.pid, Signal::SIGTERM);
            w.state = WorkerState::Retiring {
                deadline: Instant::now() + Duration::from_secs(2),
            };
        }
    }

    /// Read what workers reported since the last turn.
    fn read_reports(&mut self) {
        let mut boot_failures = Vec::new();
        for i in 0..self.workers.len() {
            let w = &mut self.workers[i];
            read_pipe(&w.status, &mut w.decoder);
            while let Some(msg) = self.workers[i].decoder.next_message() {
                let w = &mut self.workers[i];
                match msg {
                    Message::Booted => {
                        if w.state == WorkerState::Booting {
                            w.state = WorkerState::Serving;
                            self.ever_booted = true;
                            let generation = w.generation;
                            self.reload_outcome(generation, true);
                        }
                    }
                    Message::BootFailed { code, report } => {
                        w.boot_failure = Some((code, report.clone()));
                        boot_failures.push((w.generation, w.pid, code, report));
                    }
                    Message::Recycle => {
                        if !w.wants_recycle {
                            w.wants_recycle = true;
                            self.observe.restarts.max_requests += 1;
                        }
                    }
                    Message::Watch(files) => {
                        if let Some(r) = self.reload.as_mut() {
                            r.add_files(files);
                        }
                    }
                    Message::ErrorPage(report) => {
                        w.error_page = true;
                        if self.error_page_reported != Some(w.generation) {
                            self.error_page_reported = Some(w.generation);
                            crate::error!(
                                "The app failed to load; workers answer with an error page until a fix is saved:\n{}",
                                report.trim_end()
                            );
                        }
                    }
                }
            }
        }
        for (generation, pid, code, report) in boot_failures {
            self.on_boot_failure(generation, pid, code, &report);
        }
    }

    fn drain_reports(&mut self, w: &mut WorkerProc) {
        read_pipe(&w.status, &mut w.decoder);
        while let Some(msg) = w.decoder.next_message() {
            match msg {
                Message::BootFailed { code, report } => w.boot_failure = Some((code, report)),
                // A failing worker's files, read only after it exited: still
                // watched, so saving the fix retries.
                Message::Watch(files) => {
                    if let Some(r) = self.reload.as_mut() {
                        r.add_files(files);
                    }
                }
                _ => {}
            }
        }
    }

    /// SIGABRT to a worker silent past --timeout (it logs its Python stack),
    /// SIGKILL if it is still there after a grace.
    fn murder_timed_out(&mut self) {
        let Some(timeout) = self.cfg.timeout else {
            return;
        };
        let now = Instant::now();
        for w in self.workers.iter_mut() {
            if let WorkerState::Retiring { deadline } = w.state {
                if now >= deadline {
                    let _ = kill(w.pid, Signal::SIGKILL);
                }
                continue;
            }
            if let Some(at) = w.aborted_at {
                if now.duration_since(at) >= ABORT_GRACE {
                    let _ = kill(w.pid, Signal::SIGKILL);
                }
                continue;
            }
            if self.heartbeats.silence(w.slot) > timeout {
                crate::critical!("WORKER TIMEOUT (pid:{})", w.pid);
                let _ = kill(w.pid, Signal::SIGABRT);
                w.aborted_at = Some(now);
                self.observe.restarts.timeout += 1;
            }
        }
    }

    /// Bring the workers to the target count and generation.
    fn manage_workers(&mut self) {
        let gen = self.generation;
        let num = self.num_workers as usize;
        let is_current =
            |w: &WorkerProc| w.generation == gen && !w.wants_recycle && !w.is_retiring();
        let booted_current = self
            .workers
            .iter()
            .filter(|w| is_current(w) && w.is_booted())
            .count();
        let booting_current = self
            .workers
            .iter()
            .filter(|w| is_current(w) && !w.is_booted())
            .count();

        // Old-generation and recycled workers, oldest first: each retires once
        // a booted current worker can take its place.
        let mut replaceable: Vec<(u64, Pid)> = self
            .workers
            .iter()
            .filter(|w| !w.is_retiring() && (w.generation != gen || w.wants_recycle))
            .map(|w| (w.age, w.pid))
            .collect();
        replaceable.sort();
        let excess = (booted_current + replaceable.len()).saturating_sub(num);
        for (_, pid) in replaceable.iter().take(excess) {
            self.retire(*pid);
        }

        // Too many current workers (TTOU, WINCH): retire the oldest.
        if booted_current + booting_current > num {
            let mut current: Vec<(bool, u64, Pid)> = self
                .workers
                .iter()
                .filter(|w| is_current(w))
                .map(|w| (w.is_booted(), w.age, w.pid))
                .collect();
            // Booting ones first (they serve nothing yet), then the oldest.
            current.sort();
            for (_, _, pid) in current.iter().take(booted_current + booting_current - num) {
                self.retire(*pid);
            }
            return;
        }

        if self.blocked_generation == Some(gen) {
            return;
        }
        let window = if self.ever_booted { 1 } else { num.max(1) };
        let needed = num.saturating_sub(booted_current + booting_current);
        let room = window.saturating_sub(booting_current);
        for _ in 0..needed.min(room) {
            if let Err(e) = self.spawn_worker() {
                crate::error!("Cannot start a worker: {e}");
                break;
            }
        }
    }

    fn retire(&mut self, pid: Pid) {
        let deadline = Instant::now() + self.cfg.graceful_timeout;
        if let Some(w) = self.workers.iter_mut().find(|w| w.pid == pid) {
            if !w.is_retiring() {
                let _ = kill(pid, Signal::SIGTERM);
                w.state = WorkerState::Retiring { deadline };
            }
        }
    }

    /// Sleep until a signal, a worker report, or the next tick.
    fn sleep(&mut self) {
        let readable = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.workers.len() + 2);
        fds.extend(self.signals.as_ref().map(|p| readable(p.fd())));
        fds.extend(self.upgrade.poll_fd().map(readable));
        fds.extend(self.reload.as_ref().and_then(|r| r.fd()).map(readable));
        if let Some(e) = &self.observe.exporter {
            e.poll_fds(&mut fds);
        }
        if let Some(c) = &self.control {
            c.poll_fds(&mut fds);
        }
        fds.extend(self.workers.iter().map(|w| readable(w.status.as_raw_fd())));
        let mut timeout_ms = if self.phase == Phase::Running {
            1000
        } else {
            100
        };
        if let Some(r) = &self.reload {
            timeout_ms = timeout_ms.min(r.timeout(Instant::now()).as_millis() as i32);
        }
        // libc's poll rather than nix's: the reloader, the control socket
        // and the metrics endpoint hand over raw fds, not BorrowedFds, and
        // only the wake-up matters here (each source is then read on its own).
        // SAFETY: `fds` is a live array of `fds.len()` pollfds, of which
        // poll writes only `revents`. Every fd belongs to `self`, which
        // outlives the call; one closed meanwhile would only report POLLNVAL.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        self.read_reports();
    }
}

/// Feed `decoder` all a worker's report pipe holds now (it is
/// non-blocking: EAGAIN ends the loop, as do EOF and errors).
fn read_pipe(pipe: &OwnedFd, decoder: &mut crate::ipc::Decoder) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = nix::unistd::read(pipe, &mut buf) {
        decoder.feed(&buf[..n]);
    }
}
