//! The worker's concurrency mode: the one seam between connection work and
//! running Python.
//!
//! The event loop (`serve.rs`) accepts, reads, parses heads and keeps
//! deadlines, never holding the GIL. Each complete request goes to the mode
//! as a [`Job`], in the order requests became complete, and comes back as a
//! [`Done`]. A mode answers two questions and nothing else:
//!
//! - *run this request*: [`Runner::submit`] and [`Runner::collect`];
//! - *wait until this socket is ready*: the [`Wait`] it gives the WSGI layer
//!   for a request's blocking reads and writes ([`Runner`]'s creator picks it).
//!
//! | mode | runs the app | a blocked socket waits in |
//! |---|---|---|
//! | [`inline`] (sync, `--threads 1`) | the loop's own thread, between two polls | poll() with the GIL released |
//! | [`pool`] (`--threads N`, `-k gthread`) | N Python threads fed through a channel | poll() with the GIL released |
//! | [`greenlets`] (`-k gevent`) | one greenlet per request on gevent's hub | the hub (`wait_read` / `wait_write`) |
//!
//! The cooperative mode also waits for the loop's own events through its
//! hub ([`Runner::wait_for_events`]); `http/` and `wsgi/` know none of this.

pub mod greenlets;
pub mod inline;
pub mod pool;

pub use crate::config::WorkerMode;

use super::job::{Done, Job};
use crate::net::{Ready, Wait};
use std::os::fd::RawFd;
use std::time::Duration;

/// A request that has run longer than `--timeout` while the loop goes on.
pub struct Overdue {
    /// Where it runs ("thread-3", "a greenlet").
    pub place: String,
    pub running: Duration,
    /// "METHOD target", for the log line.
    pub request: String,
    /// The Python stack it is in.
    pub stack: String,
}

/// What the event loop asks of a mode.
pub trait Runner {
    /// Take a complete request. Requests are run in the order submitted.
    fn submit(&mut self, job: Job);
    /// Add the requests finished on other threads since the last call to
    /// `done`, running nothing.
    fn take_finished(&mut self, done: &mut Vec<Done>);
    /// Add the requests finished since the last call to `done`. The inline
    /// mode runs everything queued before this call, here and now.
    fn collect(&mut self, done: &mut Vec<Done>);
    /// Called before the loop sleeps in epoll: the longest it may sleep
    /// (ms), if the mode needs it back sooner; `Some(0)` when `collect` has
    /// work to do now, so the loop must only look for events, not wait.
    fn prepare_sleep(&self) -> Option<i32>;
    /// Wait up to `timeout_ms` (-1: no limit) for the loop's epoll fd to
    /// become readable, in the mode's own way; false when the mode has no
    /// way of its own (the loop then blocks in epoll_wait). A cooperative
    /// mode runs its other tasks meanwhile.
    fn wait_for_events(&mut self, _epoll_fd: RawFd, _timeout_ms: i32) -> bool {
        false
    }
    /// Called after the loop's epoll wait returned.
    fn woke(&self);
    /// An fd that becomes readable when requests finish on other threads.
    fn wake_fd(&self) -> Option<RawFd>;
    /// Whether the loop must hear of every finished request at once (it is
    /// stopping, or waits for a connection it took out of epoll). Otherwise
    /// a finished keep-alive request may wait for the loop's next wake-up.
    fn set_urgent(&self, urgent: bool);
    /// Requests past `limit` not reported before (each is reported once).
    fn overdue(&mut self, limit: Duration) -> Vec<Overdue>;
    /// Stop taking requests and let the mode's threads end, waiting up to
    /// `grace` for requests still running. True when nothing runs any more,
    /// so the interpreter can be finalized.
    fn shutdown(&mut self, grace: Duration) -> bool;
}

/// poll(2) for a thread that holds the GIL while it runs a request: the
/// GIL is released only while the socket is not ready, so other Python
/// threads (the pool's, or the app's own) run meanwhile.
pub struct GilFreePoll;

pub static GIL_FREE_POLL: GilFreePoll = GilFreePoll;

impl Wait for GilFreePoll {
    fn wait(&self, fd: RawFd, ready: Ready, timeout: Duration) -> std::io::Result<()> {
        crate::python::interp::without_gil(|| crate::net::poll_one(fd, ready, timeout))
    }
}
