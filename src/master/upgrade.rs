//! Binary upgrades (USR2) from the master's side, both roles:
//!
//! - **Old master.** USR2 renames the pidfile to `.oldbin` and starts the
//!   new master (crate `ferricorn_upgrade`), which stays this process's
//!   child. Its readiness pipe sits in the poll set. `Ready`: with
//!   `--upgrade-mode auto` this master retires its workers and exits;
//!   in manual mode both serve until the operator sends WINCH then QUIT.
//!   The new master exiting or failing its deadline before it is ready
//!   makes the upgrade a no-op: `.oldbin` is renamed back, the reason is
//!   logged (and written to `<pidfile>.upgrade`), serving goes on. If it
//!   exits *after* it was ready (a rollback, nginx-style), the pidfile is
//!   taken back too, and workers retired by WINCH are started again.
//! - **New master.** Started with the old master's listeners; once all its
//!   workers have booted it writes the pidfile, says `ready` on the pipe
//!   and tells systemd `MAINPID=<pid>` + `READY=1`. While the old master is
//!   still its parent it ignores USR2 (one upgrade at a time) and leaves
//!   unix socket files alone at exit (the old master serves on them).
//!
//! The same readiness point tells systemd `READY=1` at a first start and at
//! the end of a HUP (`RELOADING=1` at its start).

use super::{Arbiter, Phase};
use ferricorn_upgrade::pidfile::{self as upf, Status};
use ferricorn_upgrade::{sd_notify, Handoff, ReadyState, StartContext, Successor};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::os::fd::OwnedFd;

/// What start-up hands the arbiter for upgrades.
pub struct UpgradeSetup {
    /// How this process was started; USR2 starts the next master from it.
    pub start: StartContext,
    /// As a new master: the old master's readiness pipe.
    pub ready_fd: Option<OwnedFd>,
    /// As a new master: the pid of the old master that started this one.
    pub upgraded_from: Option<u32>,
}

/// The new master this one started, as an old master sees it.
#[derive(Debug)]
pub(super) enum Child {
    None,
    /// Booting; not ready yet.
    Pending {
        successor: Successor,
        pidfile_rotated: bool,
    },
    /// Ready and serving alongside this master.
    Ready {
        pid: u32,
    },
}

impl Child {
    fn pid(&self) -> Option<u32> {
        match self {
            Child::None => None,
            Child::Pending { successor, .. } => Some(successor.pid),
            Child::Ready { pid } => Some(*pid),
        }
    }
}

pub(super) struct Upgrades {
    start: Option<StartContext>,
    ready_fd: Option<OwnedFd>,
    /// The old master, while it is still this master's parent.
    parent: Option<u32>,
    /// Started by an upgrade (so the pidfile is written at readiness).
    upgraded: bool,
    /// Readiness announced (pidfile, pipe, systemd): once per process.
    announced: bool,
    /// A HUP's RELOADING=1 awaits its READY=1.
    reloading: bool,
    pub(super) child: Child,
    /// The old master handed over to its successor and is on its way out.
    pub(super) handed_over: bool,
}

impl Upgrades {
    /// The old master that started this one (`server.master_pid`).
    pub(super) fn parent(&self) -> Option<u32> {
        self.parent
    }

    pub(super) fn new() -> Upgrades {
        Upgrades {
            start: None,
            ready_fd: None,
            parent: None,
            upgraded: false,
            announced: false,
            reloading: false,
            child: Child::None,
            handed_over: false,
        }
    }

    /// Another master serves on the same sockets: the successor this master
    /// started, or the old master that is still this one's parent.
    pub(super) fn other_master_alive(&self) -> bool {
        let parent_alive = self
            .parent
            .is_some_and(|p| nix::unistd::getppid().as_raw() as u32 == p);
        parent_alive || !matches!(self.child, Child::None)
    }

    /// Fds a forked worker must not keep: a worker holding the readiness
    /// pipe would hide the new master's death from the old one.
    pub(super) fn drop_in_worker(&mut self) {
        self.ready_fd.take();
        self.child = Child::None;
    }

    pub(super) fn poll_fd(&self) -> Option<i32> {
        match &self.child {
            Child::Pending { successor, .. } => successor.ready_fd(),
            _ => None,
        }
    }
}

fn notify(state: &str) {
    if let Err(e) = sd_notify::notify(state) {
        crate::warning!("Cannot notify systemd ({state:?}): {e}");
    }
}

fn monotonic_usec() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux.
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1000
}

/// How a child process ended, for a log line.
fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, 1) => {
            "exited with code 1 (bad configuration, or its sockets could not be set up)".into()
        }
        WaitStatus::Exited(_, 3) => "exited with code 3 (a worker failed to boot)".into(),
        WaitStatus::Exited(_, 4) => "exited with code 4 (the app failed to load)".into(),
        WaitStatus::Exited(_, 127) => {
            "exited with code 127 (the binary could not be executed)".into()
        }
        WaitStatus::Exited(_, c) => format!("exited with code {c}"),
        WaitStatus::Signaled(_, sig, _) => format!("was killed by {}", sig.as_str()),
        other => format!("ended ({other:?})"),
    }
}

impl Arbiter {
    pub fn set_upgrade(&mut self, setup: UpgradeSetup) {
        self.upgrade.start = Some(setup.start);
        self.upgrade.ready_fd = setup.ready_fd;
        self.upgrade.parent = setup.upgraded_from;
        self.upgrade.upgraded = setup.upgraded_from.is_some();
    }

    fn write_status(&self, status: Status) {
        if let Some(p) = &self.pidfile {
            if let Err(e) = upf::write_status(p.path(), &status) {
                crate::warning!(
                    "Cannot record the upgrade outcome in {}: {e}",
                    upf::status_path(p.path()).display()
                );
            }
        }
    }

    /// A new master started by this one is booting.
    pub(super) fn upgrade_in_progress(&self) -> bool {
        matches!(self.upgrade.child, Child::Pending { .. })
    }

    fn ignore_usr2(&mut self, why: String) {
        crate::warning!("USR2 ignored: {why}");
        self.observe.usr2_refusal = Some(why.clone());
        self.write_status(Status::Ignored(why));
    }

    /// USR2: start the new master.
    pub(super) fn on_usr2(&mut self) {
        if self.phase != Phase::Running {
            return self.ignore_usr2("this master is shutting down".into());
        }
        if let Some(parent) = self.upgrade.parent {
            if nix::unistd::getppid().as_raw() as u32 == parent {
                return self.ignore_usr2(format!(
                    "this master was started by an upgrade and the old master (pid {parent}) still runs; finish that upgrade first (WINCH, then QUIT to pid {parent})"
                ));
            }
        }
        match &self.upgrade.child {
            Child::None => {}
            Child::Pending { successor, .. } => {
                return self.ignore_usr2(format!("an upgrade is already in progress (new master pid {} is booting)", successor.pid))
            }
            Child::Ready { pid } => {
                return self.ignore_usr2(format!(
                    "an upgrade is in progress: new master pid {pid} serves alongside this one; finish it (WINCH, then QUIT to pid {}) or roll back (TERM to pid {pid})",
                    self.pid
                ))
            }
        }
        let Some(start) = self.upgrade.start.clone() else {
            return self.ignore_usr2("no start context recorded".into());
        };
        if !self.hook_pre_exec() {
            return self.ignore_usr2("the pre_exec hook raised (see the traceback above)".into());
        }
        crate::info!(
            "Upgrading: starting a new master from {}",
            start.exe.display()
        );
        let mut pidfile_rotated = false;
        if let Some(p) = &self.pidfile {
            let _ = std::fs::remove_file(upf::status_path(p.path()));
            match upf::rotate_to_oldbin(p.path()) {
                Ok(old) => {
                    pidfile_rotated = true;
                    crate::info!("Pidfile moved to {}", old.display());
                }
                Err(e) => crate::warning!("{e}; going on without"),
            }
        }
        let handoffs: Vec<Handoff> = self
            .listeners
            .iter()
            .map(|l| Handoff {
                fd: std::os::fd::AsRawFd::as_raw_fd(&l.fd),
                name: l.addr.name(),
                owns_path: l.owns_path,
            })
            .collect();
        match ferricorn_upgrade::spawn_successor(&start, &handoffs, self.cfg.upgrade_timeout) {
            Ok(successor) => {
                self.hook_reexec_pid(successor.pid);
                crate::info!(
                    "New master started (pid {}); waiting until all its workers have booted",
                    successor.pid
                );
                notify(&format!(
                    "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=upgrading: new master pid {}",
                    monotonic_usec(),
                    successor.pid
                ));
                self.upgrade.child = Child::Pending {
                    successor,
                    pidfile_rotated,
                };
            }
            Err(e) => {
                self.upgrade.child = Child::None;
                self.upgrade_failed(pidfile_rotated, &e.to_string());
            }
        }
    }

    /// The upgrade did not happen: put the pidfile back and go on serving.
    fn upgrade_failed(&mut self, pidfile_rotated: bool, why: &str) {
        self.observe.upgrades.failed += 1;
        self.control_upgrade_done(Err(format!("Upgrade failed: {why}")));
        crate::error!("Upgrade failed: {why}. This master (pid {}) keeps serving; fix the cause and send USR2 again.", self.pid);
        if pidfile_rotated {
            self.take_pidfile_back();
        }
        self.write_status(Status::Failed(why.to_string()));
        notify(&format!(
            "MAINPID={}\nREADY=1\nSTATUS=upgrade failed: {why}",
            self.pid
        ));
    }

    /// `.oldbin` back to the pidfile, if it still names this master.
    fn take_pidfile_back(&self) {
        let Some(p) = &self.pidfile else { return };
        let old = upf::oldbin_path(p.path());
        if crate::pidfile::read_pid(&old) == Some(self.pid) {
            if let Err(e) = upf::restore_from_oldbin(p.path()) {
                crate::error!("{e}");
            }
        }
    }

    /// Reaped a child that is not a worker: the successor, perhaps.
    /// Returns whether it was.
    pub(super) fn on_child_exit(&mut self, pid: Pid, status: &WaitStatus) -> bool {
        let raw = pid.as_raw() as u32;
        if self.upgrade.child.pid() == Some(raw) {
            self.hook_reexec_pid(0);
        }
        match std::mem::replace(&mut self.upgrade.child, Child::None) {
            Child::Pending {
                mut successor,
                pidfile_rotated,
            } if successor.pid == raw => {
                // The pipe may say why (an exec failure) or, in a race, that it was ready.
                let why = match successor.poll() {
                    ReadyState::Failed(why) if why.starts_with("cannot start") => why,
                    _ => format!(
                        "the new master (pid {raw}) {} before it was ready",
                        describe(status)
                    ),
                };
                self.upgrade_failed(pidfile_rotated, &why);
                true
            }
            Child::Ready { pid: p } if p == raw => {
                self.successor_gone_after_ready(raw, status);
                true
            }
            other => {
                self.upgrade.child = other;
                false
            }
        }
    }

    /// Rollback (or a crash) of a new master that had been serving.
    fn successor_gone_after_ready(&mut self, pid: u32, status: &WaitStatus) {
        if self.phase != Phase::Running {
            crate::info!("The new master (pid {pid}) {}", describe(status));
            return;
        }
        crate::warning!(
            "The new master (pid {pid}) {}; this master (pid {}) serves alone again",
            describe(status),
            self.pid
        );
        self.take_pidfile_back();
        if self.num_workers == 0 {
            // Retired by WINCH for the handover: nobody would serve now.
            crate::info!("Starting {} worker(s) again", self.cfg.workers);
            self.num_workers = self.cfg.workers;
            self.generation += 1;
            self.blocked_generation = None;
        }
        notify(&format!("MAINPID={}\nREADY=1", self.pid));
    }

    /// Each loop turn: the successor's readiness and deadline, our own
    /// readiness, and whether the old master that started us is gone.
    pub(super) fn upgrade_tick(&mut self) {
        if let Child::Pending {
            successor,
            pidfile_rotated,
        } = &mut self.upgrade.child
        {
            let (pid, rotated) = (successor.pid, *pidfile_rotated);
            match successor.poll() {
                // Closed: it is exiting; reaping it gives the reason.
                ReadyState::Pending | ReadyState::Closed => {}
                ReadyState::Ready => {
                    self.upgrade.child = Child::Ready { pid };
                    self.successor_ready(pid);
                }
                ReadyState::Failed(why) => {
                    self.upgrade.child = Child::None;
                    // Still running (deadline): stop it quickly; it is reaped as any child.
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGQUIT);
                    self.upgrade_failed(rotated, &format!("{why} (new master pid {pid}, stopped)"));
                }
            }
        }
        if let Some(parent) = self.upgrade.parent {
            if nix::unistd::getppid().as_raw() as u32 != parent {
                self.upgrade.parent = None;
                crate::info!("The old master (pid {parent}) has exited; this master serves alone");
                if let Some(p) = &self.pidfile {
                    let old = upf::oldbin_path(p.path());
                    if crate::pidfile::read_pid(&old) == Some(parent) {
                        let _ = std::fs::remove_file(old);
                    }
                }
            }
        }
        self.check_readiness();
    }

    fn successor_ready(&mut self, pid: u32) {
        crate::info!("New master (pid {pid}) is ready: all its workers have booted");
        self.observe.upgrades.succeeded += 1;
        self.control_upgrade_done(Ok(serde_json::json!({
            "status": "upgraded",
            "new_pid": pid,
            "old_pid": self.pid,
            "handover": if self.cfg.upgrade_auto { "auto" } else { "manual" },
        })));
        self.write_status(Status::Ready(pid));
        if self.cfg.upgrade_auto {
            crate::info!("Handing over to pid {pid}: retiring this master's workers gracefully, then exiting (--upgrade-mode auto)");
            self.upgrade.handed_over = true;
            self.stop(true);
        } else {
            crate::info!(
                "Both masters serve now. To finish: WINCH, then QUIT to this master (pid {}). To roll back: HUP to it, TERM to pid {pid}.",
                self.pid
            );
        }
    }

    /// Announce readiness once all workers booted for the first time (and
    /// the end of each HUP to systemd).
    fn check_readiness(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let gen = self.generation;
        let booted = self
            .workers
            .iter()
            .filter(|w| w.generation == gen && w.is_booted() && !w.is_retiring())
            .count();
        let done = booted >= self.num_workers as usize;
        if !self.upgrade.announced && done {
            self.upgrade.announced = true;
            self.upgrade.reloading = false;
            if self.upgrade.upgraded {
                if let Some(p) = &self.pidfile {
                    if let Err(e) = p.write(self.pid) {
                        crate::error!("{e}");
                    }
                }
                if let Some(fd) = self.upgrade.ready_fd.take() {
                    ferricorn_upgrade::notify_ready(fd);
                }
                match self.upgrade.parent {
                    Some(parent) => crate::info!(
                        "Ready: {booted} worker(s) booted; told the old master (pid {parent})"
                    ),
                    None => crate::info!("Ready: {booted} worker(s) booted"),
                }
            }
            notify(&format!("MAINPID={}\nREADY=1\nSTATUS=serving", self.pid));
            return;
        }
        if self.upgrade.reloading && (done || self.blocked_generation == Some(gen)) {
            self.upgrade.reloading = false;
            notify("READY=1\nSTATUS=serving");
        }
    }

    /// HUP: systemd learns a reload started; READY=1 follows when it ends.
    pub(super) fn notify_reloading(&mut self) {
        self.upgrade.reloading = true;
        notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// A stop begins. systemd hears STOPPING=1 only if no other master takes
    /// over; a new master stopped while its old master still runs (a
    /// rollback) hands the main pid back to it first.
    pub(super) fn notify_stopping(&self) {
        if let Some(parent) = self
            .upgrade
            .parent
            .filter(|p| nix::unistd::getppid().as_raw() as u32 == *p)
        {
            notify(&format!("MAINPID={parent}"));
        } else if !self.upgrade.other_master_alive() {
            notify("STOPPING=1");
        }
    }

    /// At exit: leave shared socket files and a pidfile naming another
    /// master alone; remove `.oldbin` if it names this one.
    pub(super) fn release_files(&self) {
        if let Some(c) = &self.control {
            c.unlink_if_ours();
        }
        if !self.upgrade.other_master_alive() {
            for l in &self.listeners {
                l.unlink();
            }
        }
        if let Some(p) = &self.pidfile {
            p.remove_if_ours(self.pid);
            let old = upf::oldbin_path(p.path());
            if crate::pidfile::read_pid(&old) == Some(self.pid) {
                let _ = std::fs::remove_file(old);
            }
        }
    }
}
