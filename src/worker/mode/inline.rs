//! The sync mode: requests run on the event loop's own thread.
//!
//! Complete requests are queued, not run the moment they are parsed: the
//! loop first takes every event epoll has (new connections included), then
//! runs what is queued in arrival order, for a couple of milliseconds a
//! turn. So a request waits for the ones that became complete before it,
//! never for a neighbour's pipelined or keep-alive follow-ups, and
//! connections waiting to be accepted are not starved by slow requests.

use super::{Overdue, Runner};
use crate::heartbeat::Beat;
use crate::worker::job::{self, Done, Job, RequestCtx};
use crate::wsgi::WsgiApp;
use pyo3::prelude::*;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one turn of the loop runs queued requests before it polls again.
const TURN_BUDGET: Duration = Duration::from_millis(2);

pub struct Inline {
    /// The app; None for the no-Python benchmark reference.
    wsgi: Option<WsgiApp>,
    /// Beaten after every request: a long queue must not look like a hang
    /// to the master, nor like a busy worker to its peers.
    beat: Beat,
    queue: VecDeque<Job>,
    ctx: Arc<RequestCtx>,
    scratch: Vec<u8>,
}

impl Inline {
    pub fn new(wsgi: Option<WsgiApp>, ctx: Arc<RequestCtx>, beat: Beat) -> Inline {
        Inline {
            wsgi,
            beat,
            queue: VecDeque::new(),
            ctx,
            scratch: Vec::with_capacity(256),
        }
    }
}

impl Runner for Inline {
    fn submit(&mut self, job: Job) {
        self.queue.push_back(job);
    }

    fn take_finished(&mut self, _done: &mut Vec<Done>) {
        // Nothing finishes here unless `collect` runs it.
    }

    fn collect(&mut self, done: &mut Vec<Done>) {
        // Only what was queued before this call (follow-up requests the
        // answers make complete go after the next poll), and only for
        // TURN_BUDGET: then the loop looks for events again, so new
        // connections are accepted, and the load it publishes to its
        // peers is fresh, every few milliseconds even when requests are slow.
        let started = Instant::now();
        for _ in 0..self.queue.len() {
            if !done.is_empty() && started.elapsed() >= TURN_BUDGET {
                break;
            }
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            let (wsgi, scratch) = (&mut self.wsgi, &mut self.scratch);
            done.push(job::run(job, &self.ctx, |req| match wsgi {
                Some(w) => Python::attach(|py| w.handle(py, req)),
                None => crate::worker::reference::respond(req, scratch),
            }));
            self.beat.beat();
        }
    }

    fn prepare_sleep(&self) -> Option<i32> {
        (!self.queue.is_empty()).then_some(0)
    }

    fn woke(&self) {}

    fn wake_fd(&self) -> Option<RawFd> {
        None
    }

    fn set_urgent(&self, _urgent: bool) {}

    fn overdue(&mut self, _limit: Duration) -> Vec<Overdue> {
        // A request running on the loop's thread stops the heartbeat: the
        // master's timeout (SIGABRT, stack dump) covers it.
        Vec::new()
    }

    fn shutdown(&mut self, _grace: Duration) -> bool {
        self.queue.clear();
        true
    }
}
