//! Forking a worker.
//!
//! The child drops every master-only resource (the signal handlers and their
//! pipe, other workers' report pipes, the write end of the liveness pipe)
//! before it becomes a worker, so the master remains the only holder of each.

use super::workers::{WorkerProc, WorkerState};
use super::Arbiter;
use crate::heartbeat::Beat;
use crate::ipc::Decoder;
use crate::worker::{self, WorkerCtx};
use nix::fcntl::OFlag;
use nix::unistd::ForkResult;
use pyo3::prelude::*;

impl Arbiter {
    pub(super) fn spawn_worker(&mut self) -> Result<(), String> {
        let slot = self
            .slots
            .take()
            .ok_or("no heartbeat slot left (more than 1024 workers?)")?;
        self.heartbeats.beat(slot);
        let (status_read, status_write) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => {
                self.slots.give_back(slot);
                return Err(format!("pipe: {e}"));
            }
        };
        let _ = crate::sock::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&status_read), true);
        let age = self.next_age;
        self.next_age += 1;
        let hook_worker = match self.hook_pre_fork(age) {
            Ok(w) => w,
            Err(e) => {
                self.slots.give_back(slot);
                return Err(e);
            }
        };
        // Signals stay blocked across fork: until the child has replaced
        // the master's handlers with its own, a signal for it (a TERM sent
        // right after the fork) would run the master's handler in the child
        // and be lost. The child unblocks once its handlers are in place.
        let mut previous = nix::sys::signal::SigSet::empty();
        let _ = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_BLOCK,
            Some(&nix::sys::signal::SigSet::all()),
            Some(&mut previous),
        );
        // The worker's Server header and SERVER_SOFTWARE: this configuration's.
        crate::server_name::set(&self.cfg.server_names);
        let forked = crate::python::fork_with_python();
        if !matches!(forked, Ok(ForkResult::Child)) {
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&previous),
                None,
            );
        }
        match forked {
            Err(e) => {
                self.slots.give_back(slot);
                Err(format!("fork: {e}"))
            }
            Ok(ForkResult::Parent { child }) => {
                drop(status_write);
                self.observe.spawned += 1;
                self.workers.push(WorkerProc {
                    pid: child,
                    age,
                    generation: self.generation,
                    slot,
                    status: status_read,
                    decoder: Decoder::default(),
                    state: WorkerState::Booting,
                    wants_recycle: false,
                    aborted_at: None,
                    error_page: false,
                    boot_failure: None,
                });
                self.hook_forked(child, hook_worker);
                Ok(())
            }
            Ok(ForkResult::Child) => {
                drop(status_read);
                self.hook_in_child(hook_worker);
                self.become_worker(slot, status_write, age)
            }
        }
    }

    fn become_worker(&mut self, slot: usize, status: std::os::fd::OwnedFd, age: u64) -> ! {
        // Decided before the worker table is dropped below: only while no
        // worker runs real code does a broken app get an error page (then
        // showing the latest error); once good code runs, broken code must
        // not replace it.
        let load_error_page = self.cfg.reload
            && !self
                .workers
                .iter()
                .any(|w| w.is_booted() && !w.error_page && !w.is_retiring());
        if let Some(sig) = self.signals.take() {
            sig.uninstall();
        }
        self.alive_write.take();
        self.upgrade.drop_in_worker();
        self.observe.exporter.take();
        self.control.take();
        for w in self.workers.drain(..) {
            drop(w.status);
        }
        let preloaded = self
            .preloaded
            .as_ref()
            .map(|app| Python::attach(|py| app.clone_ref(py)));
        let ctx = WorkerCtx {
            cfg: &self.cfg,
            listeners: &self.listeners,
            beat: Beat::new(&self.heartbeats, slot),
            status,
            master_alive: std::os::fd::AsRawFd::as_raw_fd(&self.alive_read),
            master_pid: self.pid,
            preloaded,
            age,
            load_error_page,
        };
        worker::run(ctx)
    }
}
