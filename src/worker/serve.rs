//! The worker's event loop: Rust holds every connection, Python sees only
//! complete requests, handed to the worker's mode (see `mode/`) in the
//! order they became complete.
//!
//! Idle keep-alive clients and clients still trickling in their request head
//! sit in epoll here, each with a deadline, so they cost a file descriptor,
//! not a worker. Every waiting worker is woken for a new connection and one
//! connection is accepted per wake-up; a worker that holds two or more
//! connections more than a peer able to take one leaves it to that peer
//! (loads are published in the shared heartbeat memory), so keep-alive
//! connections spread across workers.

use super::conn::{peer_of, Conn};
use super::job::{Done, Job};
use super::mode::Runner;
use super::WorkerCtx;
use crate::heartbeat::now_ms;
use crate::http::{parse_head, HttpError};
use crate::ipc::Message;
use crate::signals::SignalPipe;
use crate::sock::ListenerKind;
use nix::sys::epoll::{EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::Signal;
use pyo3::prelude::*;
use rustix::net::SocketFlags;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

const TOKEN_SIGNALS: u64 = 0;
const TOKEN_MASTER: u64 = 1;
/// The runner's wake-up fd: requests finished on other threads.
const TOKEN_WAKE: u64 = 2;
const TOKEN_LISTENER: u64 = 3;
const TOKEN_CONN: u64 = 1 << 32;
/// How often deadlines are checked; also bounds how stale a heartbeat gets.
const SWEEP_MS: u64 = 100;
/// How many connections more than a busy peer a worker still accepts.
const BUSY_PEER_SLACK: u64 = 4;
/// How soon a worker that left a connection to a less loaded peer looks again.
const DEFER_RECHECK_MS: i32 = 5;
/// How long a lingering close waits for the client to stop sending.
const LINGER_MS: u64 = 2000;

pub fn install_worker_signals() -> std::io::Result<SignalPipe> {
    // Quick stop: the master sends QUIT/INT and expects the worker gone now,
    // even in the middle of a request.
    // With a worker_int hook the loop runs it first, between requests; the
    // alarm (default action: terminate) still ends a worker busy for 1 s.
    let worker_int = crate::hooks::worker_has("worker_int");
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        if worker_int {
            on_signal(sig, || {
                nix::unistd::alarm::set(1);
            })?;
        } else {
            on_signal(sig, || crate::process::exit_immediately(0))?;
        }
    }
    // Graceful stop: responses still being produced must close their
    // connection.
    on_signal(Signal::SIGTERM, || {
        crate::wsgi::STOPPING.store(true, std::sync::atomic::Ordering::Relaxed)
    })?;
    let mut watched = vec![
        Signal::SIGTERM as i32,
        Signal::SIGUSR1 as i32,
        Signal::SIGHUP as i32,
        Signal::SIGWINCH as i32,
    ];
    if worker_int {
        watched.extend([Signal::SIGINT as i32, Signal::SIGQUIT as i32]);
    }
    SignalPipe::install(&watched)
}

/// Run `action` in the handler of `sig`.
///
/// Only for the few actions above, each async-signal-safe: alarm(2),
/// _exit(2), a relaxed atomic store.
fn on_signal(sig: Signal, action: fn()) -> std::io::Result<()> {
    // SAFETY: every `action` passed here is async-signal-safe (see above):
    // it takes no lock, allocates nothing and touches no state a handler
    // could find half-updated.
    unsafe { signal_hook::low_level::register(sig as i32, action) }.map(drop)
}

/// The loop's epoll set; each fd is registered with a token saying what it is.
struct Epoll(nix::sys::epoll::Epoll);

impl Epoll {
    fn new() -> nix::Result<Epoll> {
        nix::sys::epoll::Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map(Epoll)
    }
    fn add(&self, fd: impl AsFd, events: EpollFlags, token: u64) -> nix::Result<()> {
        self.0.add(fd, EpollEvent::new(events, token))
    }
    /// For the fds the loop gets as numbers (the signal pipe, the master's
    /// pipe, the runner's wake-up fd), open as long as the worker runs.
    fn add_raw(&self, fd: RawFd, events: EpollFlags, token: u64) -> nix::Result<()> {
        crate::net::with_fd(fd, |fd| self.add(fd, events, token))
    }
    fn modify(&self, fd: impl AsFd, events: EpollFlags, token: u64) -> nix::Result<()> {
        self.0.modify(fd, &mut EpollEvent::new(events, token))
    }
    fn delete(&self, fd: impl AsFd) {
        let _ = self.0.delete(fd);
    }
    /// As [`delete`](Self::delete), for an fd the loop knows as a number: a
    /// connection a job holds (open until the job comes back to this thread),
    /// or the master's pipe.
    fn delete_raw(&self, fd: RawFd) {
        let _ = crate::net::with_fd(fd, |fd| self.0.delete(fd));
    }
    fn wait(&self, events: &mut [EpollEvent], timeout_ms: i32) -> usize {
        let timeout = EpollTimeout::try_from(timeout_ms).unwrap_or(EpollTimeout::NONE);
        self.0.wait(events, timeout).unwrap_or(0)
    }
    fn raw(&self) -> RawFd {
        let nix::sys::epoll::Epoll(fd) = &self.0;
        fd.as_raw_fd()
    }
}

/// A place in the loop's connection table.
enum Slot {
    Free,
    /// Held by the loop: arriving, idle between requests, or lingering.
    Open(Conn),
    /// Moved into a job: a request on it is being answered. `fd` stays
    /// in epoll until an event shows up for it (a client sending ahead, or
    /// closing), which takes it out until the job comes back.
    Busy {
        fd: RawFd,
        deregistered: bool,
    },
}

impl Slot {
    fn conn_mut(&mut self) -> Option<&mut Conn> {
        match self {
            Slot::Open(c) => Some(c),
            _ => None,
        }
    }
}

pub struct Server<'a> {
    ctx: &'a WorkerCtx<'a>,
    runner: Box<dyn Runner + 'a>,
    signals: SignalPipe,
    epoll: Epoll,
    conns: Vec<Slot>,
    free: Vec<usize>,
    /// Connections held, busy ones included (bounded by worker_connections).
    open: usize,
    /// Requests handed to the runner and not yet back.
    busy: usize,
    /// Busy connections taken out of epoll (their client sent or closed
    /// while the request ran).
    deregistered_busy: usize,
    accepting: bool,
    stopping: bool,
    served: u64,
    max_requests: u64,
    recycle_requested: bool,
    /// StatsD lines of requests answered wait here to be sent in batches.
    statsd: Option<std::sync::Arc<crate::metrics::statsd::Statsd>>,
    /// Stopped accepting because other workers hold fewer connections.
    deferring: bool,
    /// len(sys.modules) when the app's files were last reported (reload mode):
    /// modules imported lazily by a request are watched too.
    modules_seen: Option<usize>,
    head_cap: usize,
    /// Answered requests taken from the runner, reused every turn.
    done: Vec<Done>,
    /// Kept-alive connections with bytes already buffered (pipelining),
    /// looked at after the next poll: requests that arrived elsewhere while
    /// the previous one ran are queued first.
    pipelined: Vec<usize>,
}

/// How the worker's loop ended.
pub struct Exit {
    pub code: i32,
    /// Every request thread has ended: the interpreter can be finalized.
    pub threads_stopped: bool,
}

impl<'a> Server<'a> {
    pub fn new(
        ctx: &'a WorkerCtx<'a>,
        runner: Box<dyn Runner + 'a>,
        signals: SignalPipe,
    ) -> Server<'a> {
        let cfg = ctx.cfg;
        let max_requests = if cfg.max_requests == 0 {
            0
        } else {
            let jitter = if cfg.max_requests_jitter > 0 {
                random_u64() % (cfg.max_requests_jitter + 1)
            } else {
                0
            };
            cfg.max_requests + jitter
        };
        let l = &cfg.limits;
        let head_cap = (if l.request_line == 0 {
            8192
        } else {
            l.request_line + 2
        }) + l.fields.max(1)
            * (if l.field_size == 0 {
                8192
            } else {
                l.field_size + 2
            })
            + 4;
        Server {
            ctx,
            runner,
            signals,
            epoll: Epoll::new().expect("epoll_create1"),
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            busy: 0,
            deregistered_busy: 0,
            accepting: false,
            stopping: false,
            served: 0,
            max_requests,
            recycle_requested: false,
            statsd: crate::metrics::statsd::client(),
            deferring: false,
            modules_seen: ctx.cfg.reload.then(|| Python::attach(sys_modules_len)),
            head_cap: head_cap.min(1 << 22),
            done: Vec::new(),
            pipelined: Vec::new(),
        }
    }

    /// Serve until stopped, then stop the runner.
    pub fn run(mut self) -> Exit {
        let code = self.serve();
        // Requests still running here were cut short by a quick stop (or
        // the master's death): give them a moment, not the whole timeout.
        let grace = if self.stopping {
            self.ctx.cfg.graceful_timeout
        } else {
            Duration::from_millis(500)
        };
        let threads_stopped = self.runner.shutdown(grace);
        if let Some(s) = &self.statsd {
            s.flush(true);
        }
        Exit {
            code,
            threads_stopped,
        }
    }

    fn serve(&mut self) -> i32 {
        if self.watch_worker_fds().is_err() {
            return 1;
        }
        self.set_accepting(true);
        let mut events = vec![EpollEvent::empty(); 64];
        let mut next_sweep = now_ms() + SWEEP_MS;
        loop {
            self.ctx.beat.beat();
            if self.stopping && self.open == 0 {
                return 0;
            }
            let n = self.wait_for_events(&mut events);
            if self.dispatch(&events[..n]) {
                return 0;
            }
            for idx in std::mem::take(&mut self.pipelined) {
                self.process(idx);
            }
            self.finish_requests();
            if self.deferring && (self.stopping || self.fair_to_accept()) {
                self.deferring = false;
                if !self.stopping {
                    self.set_accepting(true);
                }
            }
            let now = now_ms();
            if now >= next_sweep {
                self.sweep(now);
                self.report_overdue();
                next_sweep = now + SWEEP_MS;
            }
        }
    }

    /// Put the worker's own fds into epoll: signals, the master's pipe and
    /// the runner's wake-up fd.
    fn watch_worker_fds(&self) -> nix::Result<()> {
        let epoll = &self.epoll;
        epoll.add_raw(self.signals.fd(), EpollFlags::EPOLLIN, TOKEN_SIGNALS)?;
        let readable = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        epoll.add_raw(self.ctx.master_alive, readable, TOKEN_MASTER)?;
        if let Some(fd) = self.runner.wake_fd() {
            epoll.add_raw(fd, EpollFlags::EPOLLIN, TOKEN_WAKE)?;
        }
        Ok(())
    }

    /// How long this turn may sleep in epoll (ms; 0: only look).
    fn sleep_ms(&self) -> i32 {
        let cap = self.runner.prepare_sleep();
        if cap == Some(0) || !self.pipelined.is_empty() {
            0
        } else if let Some(ms) = cap {
            ms
        } else if self.deferring {
            // Look again soon: the less loaded worker may have become busy.
            DEFER_RECHECK_MS
        } else if self.open > 0 {
            SWEEP_MS as i32
        } else {
            1000
        }
    }

    /// Sleep until something happens (or the turn's timeout), then take
    /// back the requests other threads finished meanwhile. Returns how many
    /// of `events` are filled.
    fn wait_for_events(&mut self, events: &mut [EpollEvent]) -> usize {
        let timeout = self.sleep_ms();
        if let Some(s) = &self.statsd {
            s.flush(timeout > 0);
        }
        self.ctx
            .beat
            .publish(self.open, !self.stopping, timeout > 0);
        self.ctx.beat.mark_polled();
        let n = if self.runner.wait_for_events(self.epoll.raw(), timeout) {
            self.epoll.wait(events, 0)
        } else {
            self.epoll.wait(events, timeout)
        };
        self.runner.woke();
        // Requests finished on other threads first: a client's next
        // request on a connection finished meanwhile is then read as usual.
        self.take_finished();
        // Beat on waking too: after a long idle wait the last beat is
        // old, and peers would take this worker for one stuck in a
        // long request while it serves its first one.
        self.ctx.beat.beat();
        self.ctx.beat.mark_polled();
        self.ctx.beat.publish(self.open, !self.stopping, false);
        n
    }

    /// Act on each event of the turn. True when the worker must exit now.
    fn dispatch(&mut self, events: &[EpollEvent]) -> bool {
        for ev in events {
            match ev.data() {
                TOKEN_SIGNALS => {
                    if self.handle_signals() {
                        return true;
                    }
                }
                TOKEN_MASTER => self.on_master_gone(),
                TOKEN_WAKE => {}
                t if t >= TOKEN_CONN => self.on_conn_event((t - TOKEN_CONN) as usize),
                t => self.on_listener_ready((t - TOKEN_LISTENER) as usize),
            }
        }
        false
    }

    fn on_master_gone(&mut self) {
        crate::info!(
            "Parent changed, shutting down: worker {}",
            std::process::id()
        );
        // Finish what this worker holds (requests running, queued or still
        // arriving) and take nothing more: the listeners are the new
        // master's workers' now.
        self.epoll.delete_raw(self.ctx.master_alive);
        self.set_accepting(false);
        self.begin_stop();
    }

    fn update_urgency(&self) {
        self.runner
            .set_urgent(self.stopping || self.deregistered_busy > 0);
    }

    /// Take back requests the runner finished without being asked to run
    /// anything now.
    fn take_finished(&mut self) {
        let mut done = std::mem::take(&mut self.done);
        self.runner.take_finished(&mut done);
        for d in done.drain(..) {
            self.complete(d);
        }
        self.done = done;
    }

    /// Let the runner run what is queued, and take back what it answered.
    fn finish_requests(&mut self) {
        let mut done = std::mem::take(&mut self.done);
        self.runner.collect(&mut done);
        for d in done.drain(..) {
            self.complete(d);
        }
        self.done = done;
    }

    /// Accept what is waiting, as long as this worker should take it.
    /// All of it, not one per wake-up: connections queued behind a busy
    /// worker's turn would otherwise wait a whole turn each.
    fn on_listener_ready(&mut self, i: usize) {
        loop {
            if !self.fair_to_accept() {
                self.deferring = true;
                self.set_accepting(false);
                return;
            }
            if !self.accept_one(i) {
                return;
            }
        }
    }

    /// Whether this worker should take the next connection: not while
    /// another worker that could take it now holds two or more fewer.
    /// Keep-alive connections stay with the worker that accepted them, so
    /// this is what spreads them (and their requests) across workers.
    fn fair_to_accept(&self) -> bool {
        match self.ctx.beat.least_loaded_peer(now_ms()) {
            // A peer in epoll (or there a moment ago) takes the connection
            // soon; one busy for longer only at its next turn, which may be
            // a slow request away: meanwhile a burst of connections (a
            // client pool opening) would wait in the listen queue, so take
            // a few more before leaving them to it.
            Some((least, soon)) => {
                let slack = if soon { 1 } else { BUSY_PEER_SLACK };
                (self.open as u64) <= least + slack
            }
            None => true,
        }
    }

    /// Returns true when the worker must exit at once.
    fn handle_signals(&mut self) -> bool {
        for (sig, _) in self.signals.drain() {
            match Signal::try_from(sig) {
                Ok(Signal::SIGTERM) => self.begin_stop(),
                Ok(Signal::SIGINT | Signal::SIGQUIT) => {
                    crate::hooks::worker_int();
                    return true;
                }
                Ok(Signal::SIGUSR1) => {
                    if let Err(e) = crate::log::reopen() {
                        crate::error!("Cannot reopen log files: {e}");
                    }
                }
                _ => {}
            }
        }
        false
    }

    fn set_accepting(&mut self, on: bool) {
        if on == self.accepting {
            return;
        }
        for (i, l) in self.ctx.listeners.iter().enumerate() {
            if on {
                // Not EPOLLEXCLUSIVE: it wakes only the first waiting worker,
                // and a burst of connections (a client pool opening all at
                // once) would then all stay with it. Every waiting worker
                // is woken; the load check decides who accepts.
                let ev = EpollFlags::EPOLLIN;
                let _ = self.epoll.add(&l.fd, ev, TOKEN_LISTENER + i as u64);
            } else {
                self.epoll.delete(&l.fd);
            }
        }
        self.accepting = on;
    }

    /// Graceful stop: accept what is already queued, drop idle connections,
    /// let in-progress ones finish (each answered with Connection: close).
    fn begin_stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.update_urgency();
        crate::debug!("Graceful stop: finishing {} open connection(s)", self.open);
        if self.accepting {
            for i in 0..self.ctx.listeners.len() {
                while self.open < self.ctx.cfg.worker_connections && self.accept_one(i) {}
            }
        }
        self.set_accepting(false);
        for idx in 0..self.conns.len() {
            let idle = match self.conns[idx].conn_mut() {
                Some(c) if c.is_idle() => {
                    // A request may have just arrived on an idle keep-alive connection.
                    let _ = c.io.read_into(&mut c.buf, 65536);
                    c.buf.is_empty()
                }
                _ => false,
            };
            if idle {
                self.close(idx);
            } else if matches!(self.conns[idx], Slot::Open(_)) {
                self.process(idx);
            }
        }
    }

    /// Accept one connection from listener `i` and look for its request.
    fn accept_one(&mut self, i: usize) -> bool {
        if self.open >= self.ctx.cfg.worker_connections {
            self.set_accepting(false);
            return false;
        }
        let listener = &self.ctx.listeners[i];
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let Ok((fd, peer)) = rustix::net::acceptfrom_with(&listener.fd, flags) else {
            return false;
        };
        let is_tcp = matches!(listener.kind, ListenerKind::Tcp(_));
        if is_tcp {
            crate::net::set_nodelay(&fd);
        }
        let (remote_addr, remote_port) = if is_tcp {
            peer_of(peer.and_then(|a| SocketAddr::try_from(a).ok()))
        } else {
            (String::new(), None)
        };
        let session = match &self.ctx.cfg.tls {
            Some(tls) => match rustls::ServerConnection::new(tls.clone()) {
                Ok(s) => Some(std::sync::Arc::new(std::sync::Mutex::new(s))),
                Err(e) => {
                    crate::error!("Cannot start a TLS session: {e}");
                    return true;
                }
            },
            None => None,
        };
        let io =
            crate::stream::Stream::new(fd.as_raw_fd(), session, self.ctx.cfg.suppress_ragged_eofs);
        let conn = Conn {
            io,
            client_cert: None,
            fd,
            remote_addr,
            remote_port,
            listener: i,
            buf: Vec::with_capacity(4096),
            deadline_ms: now_ms() + self.ctx.cfg.header_timeout.as_millis() as u64,
            served: 0,
            eof: false,
            lingering: false,
            registered: false,
            wants_out: false,
        };
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.conns.push(Slot::Free);
                self.conns.len() - 1
            }
        };
        self.conns[idx] = Slot::Open(conn);
        self.open += 1;
        // Peers accepting from the same burst decide on this count: keep
        // it current, not as of the last turn.
        self.ctx.beat.publish(self.open, !self.stopping, false);
        // The request usually arrives with the connection: look for it
        // before registering, and register only a connection that stays
        // with the loop (a busy one is registered when its job is done).
        self.on_conn_event(idx);
        self.register(idx);
        true
    }

    /// Put a connection the loop holds into epoll, if it is not there yet.
    fn register(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Slot::conn_mut) else {
            return;
        };
        if conn.registered {
            return;
        }
        conn.wants_out = conn.io.wants_write();
        let events = conn_events(conn.wants_out);
        if self
            .epoll
            .add(&conn.fd, events, TOKEN_CONN + idx as u64)
            .is_err()
        {
            self.close(idx);
        } else {
            conn.registered = true;
        }
    }

    fn on_conn_event(&mut self, idx: usize) {
        let cap = self.head_cap;
        let conn = match self.conns.get_mut(idx) {
            Some(Slot::Open(conn)) => conn,
            Some(Slot::Busy { fd, deregistered }) => {
                // The job's thread owns the socket now; quiet the fd until
                // the connection comes back, which must then be heard of.
                if !*deregistered {
                    self.epoll.delete_raw(*fd);
                    *deregistered = true;
                    self.deregistered_busy += 1;
                    self.update_urgency();
                }
                return;
            }
            _ => return,
        };
        if conn.lingering {
            if discard_input(conn.raw()) {
                self.close(idx);
            }
            return;
        }
        let room = cap.saturating_sub(conn.buf.len()).max(1);
        // Over TLS this also drives the handshake, in this loop: a client
        // stalled mid-handshake holds a file descriptor until its deadline,
        // never a request thread.
        match conn.io.read_into(&mut conn.buf, room) {
            Ok((_, eof)) => conn.eof |= eof,
            Err(e) => {
                if conn.io.is_tls() {
                    crate::debug!("TLS connection from {} closed: {e}", conn.remote_addr);
                }
                self.close(idx);
                return;
            }
        }
        if conn.io.is_tls() && conn.registered {
            // A handshake flight the socket did not take whole: hear when
            // it can take the rest (level-triggered: off again once sent).
            let out = conn.io.wants_write();
            if out != conn.wants_out {
                conn.wants_out = out;
                let ev = conn_events(out);
                let _ = self.epoll.modify(&conn.fd, ev, TOKEN_CONN + idx as u64);
            }
        }
        self.process(idx);
    }

    /// Hand the next complete request in the connection's buffer to the
    /// runner, answer a malformed one, or wait for more bytes.
    fn process(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Slot::conn_mut) else {
            return;
        };
        if conn.lingering {
            return;
        }
        if conn.buf.is_empty() {
            if conn.eof || (self.stopping && conn.served > 0) {
                self.close(idx);
            }
            return;
        }
        let head = match parse_head(&conn.buf, &self.ctx.cfg.limits) {
            Ok(Some(head)) => {
                if self.ctx.cfg.casefold_http_method {
                    // gunicorn's casefold_http_method: the app, the hooks
                    // and the access log all see the upper case.
                    conn.buf[head.method.clone()].make_ascii_uppercase();
                }
                head
            }
            Ok(None) => {
                if conn.eof {
                    self.close(idx);
                }
                return;
            }
            Err(err) => {
                self.reject(idx, &err);
                return;
            }
        };
        if conn.served == 0 && conn.io.is_tls() {
            conn.client_cert = conn.io.peer_cert_pem();
        }
        let fd = conn.raw();
        let Slot::Open(conn) = std::mem::replace(
            &mut self.conns[idx],
            Slot::Busy {
                fd,
                deregistered: false,
            },
        ) else {
            unreachable!("the slot held an open connection a moment ago");
        };
        self.busy += 1;
        self.runner.submit(Job {
            slot: idx,
            conn,
            head,
            stopping: self.stopping,
        });
    }

    /// A request was answered: the connection comes back to the loop,
    /// which closes it, keeps it for the next request, or hands on the
    /// next pipelined one.
    fn complete(&mut self, done: Done) {
        let Done {
            slot: idx,
            mut conn,
            head,
            outcome,
        } = done;
        self.busy -= 1;
        if let Slot::Busy { deregistered, .. } = self.conns[idx] {
            if deregistered {
                conn.registered = false;
                self.deregistered_busy -= 1;
                self.update_urgency();
            }
        }
        self.served += 1;
        conn.served += 1;
        let keep = outcome.keep_alive;
        match outcome.leftover {
            Some(rest) => conn.buf = rest,
            None => {
                conn.buf.drain(..head.head_len);
            }
        }
        if conn.io.is_tls() && keep {
            // Records of the next request may have been read (and
            // decrypted) with this one's body: epoll would not report them.
            let room = self.head_cap.saturating_sub(conn.buf.len()).max(1);
            match conn.io.read_into(&mut conn.buf, room) {
                Ok((_, eof)) => conn.eof |= eof,
                Err(_) => conn.eof = true,
            }
        }
        let now = now_ms();
        conn.deadline_ms = now
            + if conn.buf.is_empty() {
                self.ctx.cfg.keep_alive.as_millis() as u64
            } else {
                self.ctx.cfg.header_timeout.as_millis() as u64
            };
        self.conns[idx] = Slot::Open(conn);
        self.ctx.beat.beat();
        self.check_max_requests();
        if self.modules_seen.is_some() {
            self.report_new_modules();
        }
        if !keep {
            if outcome.linger {
                self.linger(idx);
            } else {
                self.close(idx);
            }
            return;
        }
        // Bytes that arrived while the request ran are read on the next
        // event; what is already buffered (pipelining) waits for the next
        // poll, behind requests that became complete meanwhile.
        if conn_buf_empty(&self.conns[idx]) {
            // Closes it when the client or the worker is done with it.
            self.process(idx);
        } else {
            self.pipelined.push(idx);
        }
        self.register(idx);
    }

    fn report_new_modules(&mut self) {
        let now = Python::attach(sys_modules_len);
        if Some(now) != self.modules_seen {
            self.modules_seen = Some(now);
            let files = Python::attach(crate::python::loader::module_files);
            Message::Watch(files).send(self.ctx.status.as_raw_fd());
        }
    }

    fn check_max_requests(&mut self) {
        if self.max_requests > 0 && self.served >= self.max_requests && !self.recycle_requested {
            self.recycle_requested = true;
            crate::info!("Autorestarting worker after current request.");
            Message::Recycle.send(self.ctx.status.as_raw_fd());
        }
    }

    /// Requests past --timeout on a request thread or greenlet: the loop
    /// still beats, so the master's SIGABRT would never come. Log the stuck
    /// request's Python stack and ask for a replacement: a new worker boots first,
    /// then this one stops gracefully (its other requests finish; the stuck
    /// one has until graceful_timeout).
    fn report_overdue(&mut self) {
        let Some(limit) = self.ctx.cfg.timeout else {
            return;
        };
        for o in self.runner.overdue(limit) {
            crate::critical!(
                "WORKER TIMEOUT (pid:{}): request \"{}\" on {} has run for {:.1} s (--timeout {} s); replacing this worker\n{}",
                std::process::id(),
                o.request,
                o.place,
                o.running.as_secs_f64(),
                limit.as_secs(),
                o.stack.trim_end()
            );
            // And every thread's, as the master's timeout would show them.
            crate::python::interp::dump_all_stacks(crate::log::error_fd());
            if !self.recycle_requested {
                self.recycle_requested = true;
                Message::Recycle.send(self.ctx.status.as_raw_fd());
            }
        }
    }

    /// Answer a malformed request with its status, then close.
    fn reject(&mut self, idx: usize, err: &HttpError) {
        if let Some(conn) = self.conns[idx].conn_mut() {
            crate::debug!("Invalid request from {}: {}", conn.remote_addr, err.detail);
            let page = crate::wsgi::error_page(err.reason, &html_escape(&err.detail));
            let bytes = crate::wsgi::simple_response(1, err.status, err.reason, &page);
            let _ = conn
                .io
                .write_all(&bytes, Duration::from_secs(1), &crate::net::POLL);
        }
        self.linger(idx);
    }

    /// Close a connection whose client may still be sending (an error
    /// answered before the request was read, an unread body). close() with
    /// unread input sends a reset, which discards response bytes not yet
    /// transmitted; instead shut our side down (the client sees the response,
    /// then EOF) and discard its input until it closes or LINGER_MS pass.
    fn linger(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Slot::conn_mut) else {
            return;
        };
        if conn.io.shutdown_write().is_err() || discard_input(conn.raw()) {
            self.close(idx);
            return;
        }
        conn.lingering = true;
        conn.buf = Vec::new();
        conn.deadline_ms = now_ms() + LINGER_MS;
        self.register(idx);
    }

    /// Drop connections past their deadline: 408 to a client stuck mid-head,
    /// a silent close for an idle keep-alive one. Busy connections have no
    /// deadline here: their request's own socket waits are bounded.
    fn sweep(&mut self, now: u64) {
        for idx in 0..self.conns.len() {
            let expired = matches!(&self.conns[idx], Slot::Open(c) if c.deadline_ms <= now);
            if !expired {
                continue;
            }
            let partial = self.conns[idx]
                .conn_mut()
                .is_some_and(|c| !c.buf.is_empty() && !c.lingering);
            if partial {
                let err = HttpError {
                    status: 408,
                    reason: "Request Timeout",
                    detail: "the request head did not arrive in time".into(),
                };
                self.reject(idx, &err);
            } else {
                self.close(idx);
            }
        }
    }

    fn close(&mut self, idx: usize) {
        if !matches!(self.conns.get(idx), Some(Slot::Open(_))) {
            return;
        }
        // Closing the fd removes it from the epoll set (no other fd shares
        // its open file description), so no EPOLL_CTL_DEL.
        self.conns[idx] = Slot::Free;
        self.open -= 1;
        self.free.push(idx);
        if !self.stopping
            && !self.accepting
            && !self.deferring
            && self.open < self.ctx.cfg.worker_connections
        {
            self.set_accepting(true);
        }
    }
}

/// What the loop listens for on a connection it holds.
fn conn_events(writable: bool) -> EpollFlags {
    let mut ev = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
    if writable {
        ev |= EpollFlags::EPOLLOUT;
    }
    ev
}

fn conn_buf_empty(slot: &Slot) -> bool {
    match slot {
        Slot::Open(c) => c.buf.is_empty(),
        _ => true,
    }
}

/// Read and drop what the socket holds. True when the peer closed (or the
/// socket failed): the connection can be closed now.
fn discard_input(fd: RawFd) -> bool {
    let mut scratch = [0u8; 16384];
    // Bounded per wake-up so one fast sender cannot monopolise the loop.
    for _ in 0..64 {
        match crate::net::read_some(fd, &mut scratch) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    false
}

fn sys_modules_len(py: Python<'_>) -> usize {
    py.import("sys")
        .and_then(|s| s.getattr("modules"))
        .and_then(|m| m.len())
        .unwrap_or(0)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    u64::from_ne_bytes(b)
}
