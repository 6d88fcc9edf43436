//! The master's table of worker processes.

use crate::ipc::Decoder;
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Forked, app not loaded yet.
    Booting,
    /// Reported `Booted`; accepting requests.
    Serving,
    /// Sent SIGTERM; finishing in-flight requests until `deadline`.
    Retiring { deadline: Instant },
}

#[derive(Debug)]
pub struct WorkerProc {
    pub pid: Pid,
    /// Spawn order; the oldest worker has the smallest age (gunicorn's `age`).
    pub age: u64,
    pub generation: u64,
    pub slot: usize,
    pub status: OwnedFd,
    pub decoder: Decoder,
    pub state: WorkerState,
    /// Asked to be replaced (max_requests reached).
    pub wants_recycle: bool,
    /// When the master sent SIGABRT for a timeout.
    pub aborted_at: Option<Instant>,
    /// Serves the error page of an app that failed to import (reload mode).
    pub error_page: bool,
    /// A boot failure report already received from this worker.
    pub boot_failure: Option<(i32, String)>,
}

impl WorkerProc {
    pub fn is_retiring(&self) -> bool {
        matches!(self.state, WorkerState::Retiring { .. })
    }
    pub fn is_booted(&self) -> bool {
        matches!(self.state, WorkerState::Serving)
    }
}

/// Heartbeat slots not in use by a live worker.
pub struct Slots {
    free: Vec<usize>,
}

impl Slots {
    pub fn new(n: usize) -> Slots {
        Slots {
            free: (0..n).rev().collect(),
        }
    }
    pub fn take(&mut self) -> Option<usize> {
        self.free.pop()
    }
    pub fn give_back(&mut self, slot: usize) {
        self.free.push(slot);
    }
}
