//! The threaded mode (`--threads N`, `-k gthread`): N Python threads per
//! worker, fed by the event loop in the order requests became complete.
//!
//! Jobs travel through one crossbeam channel; answered requests come back
//! through another, and an eventfd wakes the loop if it sleeps in epoll.
//!
//! Only a thread that holds the GIL takes a job from the queue. A thread
//! with nothing to do waits on a doorbell with the GIL released and, when
//! rung, first takes the GIL, then the job. So a job never sits in a thread
//! that is itself waiting for the GIL while the thread running Python could
//! take it next.
//!
//! The doorbell rings sparingly, because every ring is a wake-up and, with
//! a CPU-bound app, a thread queueing on the GIL. A job queued while no
//! thread runs a request rings at once. A job queued while threads run is
//! left to them (each takes the next job when it finishes, GIL in hand)
//! unless the queue makes no progress for [`STALL_MS`]: then the running
//! threads are waiting (a database, `time.sleep`) with the GIL free, and
//! the loop rings one more thread, and again each time the queue stalls.
//! So a CPU-bound app runs request after request on the thread that holds
//! the GIL, as the sync worker does, and an app that waits spreads its
//! requests over the threads within a millisecond or two.
//!
//! Each thread keeps one Python thread state for its whole life (it only
//! releases the GIL while it waits), so `threading.local` data, such as a
//! framework's per-thread database connection, lasts across requests.

use super::{Overdue, Runner};
use crate::heartbeat::now_ms;
use crate::worker::job::{self, Done, Job, RequestCtx};
use crate::wsgi::{WsgiApp, WsgiOptions};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use nix::sys::eventfd::{EfdFlags, EventFd};
use pyo3::prelude::*;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The C stack of a pool thread: the default of a thread Python's own
/// `threading` module starts (glibc's 8 MiB), not Rust's 2 MiB, so deep
/// template recursion behaves as under gunicorn. Only touched pages cost memory.
const THREAD_STACK: usize = 8 << 20;

/// How long queued jobs may sit untaken while threads run before the loop
/// rings another thread.
pub const STALL_MS: i32 = 1;

/// What one pool thread is doing, for the loop's timeout check.
struct ThreadSlot {
    name: String,
    /// Python's thread identifier, set when the thread starts.
    ident: AtomicU64,
    /// When the running request started (monotonic ms); 0 when idle.
    started_ms: AtomicU64,
    /// The running request was already reported as overdue.
    reported: AtomicBool,
    /// "METHOD target" of the running request (its buffer is reused, and
    /// only the loop's rare timeout check contends for the lock).
    request_line: Mutex<Vec<u8>>,
}

#[derive(Default)]
struct Doorbell {
    /// Rings not yet answered: each sends one waiting thread to the queue.
    rings: usize,
    /// Threads woken to take a job that have not taken one yet.
    seekers: usize,
}

/// Shared by the loop and every pool thread.
struct Shared {
    jobs: Receiver<Job>,
    done: Sender<Done>,
    /// Rung when a job arrives, some thread is idle, and no seeker is out.
    doorbell: Mutex<Doorbell>,
    rung: Condvar,
    /// Threads waiting at the doorbell.
    idle: AtomicUsize,
    /// Threads running a request.
    running: AtomicUsize,
    /// Jobs taken so far: the loop's measure of the queue's progress.
    taken: AtomicU64,
    closed: AtomicBool,
    /// Written when a request finishes, the loop sleeps in epoll, and the
    /// loop must hear of it now (see `finish`).
    wake: EventFd,
    loop_sleeping: AtomicBool,
    /// The loop wants every finished request at once: it is stopping, or
    /// it took a busy connection out of epoll and waits for it.
    urgent: AtomicBool,
    slots: Vec<ThreadSlot>,
    /// Threads that have not ended yet.
    live: AtomicUsize,
}

pub struct Pool {
    shared: Arc<Shared>,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
    /// `taken` when the loop last saw the queue move, and since when it
    /// has not (None: the queue was empty).
    progress: (u64, Option<Instant>),
}

impl Pool {
    /// Start `n` threads, each with its own WSGI state around `app`; returns
    /// once every thread is ready, or the first thread's error.
    pub fn start(
        n: usize,
        app: &Py<PyAny>,
        opts: &WsgiOptions,
        ctx: Arc<RequestCtx>,
    ) -> Result<Pool, String> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| format!("cannot create the thread pool's eventfd: {}", e.desc()))?;
        let shared = Arc::new(Shared {
            jobs: jobs_rx,
            done: done_tx,
            doorbell: Mutex::new(Doorbell::default()),
            rung: Condvar::new(),
            idle: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            taken: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            wake,
            loop_sleeping: AtomicBool::new(false),
            urgent: AtomicBool::new(false),
            slots: (0..n)
                .map(|i| ThreadSlot {
                    name: format!("ferricorn-thread-{}", i + 1),
                    ident: AtomicU64::new(0),
                    started_ms: AtomicU64::new(0),
                    reported: AtomicBool::new(false),
                    request_line: Mutex::new(Vec::new()),
                })
                .collect(),
            live: AtomicUsize::new(0),
        });
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(), String>>(n);
        let mut pool = Pool {
            shared: shared.clone(),
            jobs: Some(jobs_tx),
            done: done_rx,
            threads: Vec::with_capacity(n),
            progress: (0, None),
        };
        for index in 0..n {
            let app = Python::attach(|py| app.clone_ref(py));
            let (opts, ctx, thread_shared, ready) =
                (opts.clone(), ctx.clone(), shared.clone(), ready_tx.clone());
            shared.live.fetch_add(1, Ordering::SeqCst);
            let spawned = std::thread::Builder::new()
                .name(format!("thread-{}", index + 1))
                .stack_size(THREAD_STACK)
                .spawn(move || {
                    thread_main(&thread_shared, index, app, opts, &ctx, ready);
                    thread_shared.live.fetch_sub(1, Ordering::SeqCst);
                });
            match spawned {
                Ok(handle) => pool.threads.push(handle),
                Err(e) => {
                    shared.live.fetch_sub(1, Ordering::SeqCst);
                    pool.shutdown(Duration::from_secs(1));
                    return Err(format!("cannot start request thread {}: {e}", index + 1));
                }
            }
        }
        drop(ready_tx);
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    pool.shutdown(Duration::from_secs(1));
                    return Err(e);
                }
                Err(_) => {
                    pool.shutdown(Duration::from_secs(1));
                    return Err("a request thread ended while starting".into());
                }
            }
        }
        Ok(pool)
    }
}

fn thread_main(
    shared: &Shared,
    index: usize,
    app: Py<PyAny>,
    opts: WsgiOptions,
    ctx: &RequestCtx,
    ready: Sender<Result<(), String>>,
) {
    let slot = &shared.slots[index];
    Python::attach(|py| {
        let mut wsgi = match WsgiApp::new(py, app, opts) {
            Ok(w) => w,
            Err(e) => {
                let _ = ready.send(Err(format!(
                    "cannot prepare the WSGI environment on {}: {e}",
                    slot.name
                )));
                return;
            }
        };
        slot.ident.store(python_thread_ident(py), Ordering::Relaxed);
        let _ = ready.send(Ok(()));
        drop(ready);
        // Woken to take a job and not holding one yet.
        let mut seeking = false;
        loop {
            match shared.jobs.try_recv() {
                Ok(job) => {
                    shared.running.fetch_add(1, Ordering::SeqCst);
                    shared.taken.fetch_add(1, Ordering::Relaxed);
                    if std::mem::take(&mut seeking) {
                        shared.found_job();
                    }
                    slot.reported.store(false, Ordering::Relaxed);
                    slot.started_ms.store(now_ms().max(1), Ordering::Relaxed);
                    let done = job::run(job, ctx, |req| {
                        let mut line = slot.request_line.lock().unwrap_or_else(|e| e.into_inner());
                        line.clear();
                        line.extend_from_slice(req.head.method(req.buf));
                        line.push(b' ');
                        line.extend_from_slice(req.head.target(req.buf));
                        drop(line);
                        wsgi.handle(py, req)
                    });
                    slot.started_ms.store(0, Ordering::Relaxed);
                    shared.running.fetch_sub(1, Ordering::SeqCst);
                    shared.finish(done);
                }
                Err(TryRecvError::Empty) => {
                    let was_seeking = std::mem::take(&mut seeking);
                    if !py.detach(|| shared.wait_for_job(was_seeking)) {
                        break;
                    }
                    seeking = true;
                }
                Err(TryRecvError::Disconnected) => break,
            }
        }
    });
}

/// `threading.get_ident()` of the calling thread: the key of its frame in
/// `sys._current_frames()`.
fn python_thread_ident(py: Python<'_>) -> u64 {
    py.import("threading")
        .and_then(|t| t.getattr("get_ident")?.call0())
        .and_then(|i| i.extract::<u64>())
        .unwrap_or(0)
}

impl Shared {
    /// Block (without the GIL) until rung, or until a job is queued that
    /// no seeker is after; the caller then seeks a job. False once the pool
    /// is closed. `was_seeking`: the caller was a seeker that found nothing.
    fn wait_for_job(&self, was_seeking: bool) -> bool {
        let mut bell = self.doorbell.lock().unwrap_or_else(|e| e.into_inner());
        if was_seeking {
            bell.seekers -= 1;
        }
        loop {
            if bell.rings > 0 {
                bell.rings -= 1;
                return true;
            }
            if self.closed.load(Ordering::SeqCst) {
                return false;
            }
            // Count ourselves idle before looking at the queue; the
            // submitter looks at the count after queueing: one of the two
            // sees the other (both fence), so no job is left unattended.
            self.idle.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if bell.seekers == 0 && !self.jobs.is_empty() {
                self.idle.fetch_sub(1, Ordering::SeqCst);
                bell.seekers += 1;
                return true;
            }
            bell = self.rung.wait(bell).unwrap_or_else(|e| e.into_inner());
            self.idle.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A seeker took its job.
    fn found_job(&self) {
        let mut bell = self.doorbell.lock().unwrap_or_else(|e| e.into_inner());
        bell.seekers -= 1;
    }

    /// Send one idle thread to the queue, unless one is on its way.
    fn ring_one(&self) {
        fence(Ordering::SeqCst);
        if self.idle.load(Ordering::SeqCst) == 0 {
            return; // every thread is busy; each looks at the queue when done
        }
        let mut bell = self.doorbell.lock().unwrap_or_else(|e| e.into_inner());
        self.ring_locked(&mut bell);
    }

    fn ring_locked(&self, bell: &mut Doorbell) {
        if bell.seekers == 0
            && bell.rings == 0
            && !self.jobs.is_empty()
            && self.idle.load(Ordering::SeqCst) > 0
        {
            bell.seekers += 1;
            bell.rings += 1;
            self.rung.notify_one();
        }
    }

    /// Hand an answered request back, waking the loop only if it sleeps
    /// and must act now. A connection kept alive with nothing buffered
    /// needs nothing until its client sends again, and that wakes the loop
    /// through epoll anyway (it takes finished requests before it looks at
    /// events): so the usual keep-alive request costs no wake-up here.
    fn finish(&self, done: Done) {
        let out = &done.outcome;
        let leftover = out.leftover.as_ref().is_some_and(|b| !b.is_empty());
        let must_act = !out.keep_alive || out.linger || leftover;
        if self.done.send(done).is_err() {
            return;
        }
        fence(Ordering::SeqCst);
        if (must_act || self.urgent.load(Ordering::SeqCst))
            && self.loop_sleeping.load(Ordering::SeqCst)
        {
            let _ = self.wake.write(1);
        }
    }

    /// Wake every waiting thread (the pool is closing).
    fn ring_all(&self) {
        let _bell = self.doorbell.lock().unwrap_or_else(|e| e.into_inner());
        self.rung.notify_all();
    }
}

impl Pool {
    /// Ring one more thread when queued jobs have not moved for STALL_MS:
    /// the threads running requests are waiting, not computing.
    fn ring_if_stalled(&mut self) {
        if self.shared.jobs.is_empty() {
            self.progress.1 = None;
            return;
        }
        let taken = self.shared.taken.load(Ordering::Relaxed);
        let now = Instant::now();
        match self.progress {
            (t, Some(since)) if t == taken => {
                if now.duration_since(since) >= Duration::from_millis(STALL_MS as u64) {
                    self.shared.ring_one();
                    self.progress.1 = Some(now);
                }
            }
            _ => self.progress = (taken, Some(now)),
        }
    }
}

impl Runner for Pool {
    fn submit(&mut self, job: Job) {
        let Some(tx) = &self.jobs else {
            return;
        };
        if tx.send(job).is_err() {
            return;
        }
        // With no request running nobody would take it: ring now. Else the
        // running threads take it, or the stall check rings (`collect`).
        if self.shared.running.load(Ordering::SeqCst) == 0 {
            self.shared.ring_one();
        }
    }

    fn take_finished(&mut self, done: &mut Vec<Done>) {
        done.extend(self.done.try_iter());
    }

    fn collect(&mut self, done: &mut Vec<Done>) {
        done.extend(self.done.try_iter());
        self.ring_if_stalled();
    }

    fn prepare_sleep(&self) -> Option<i32> {
        self.shared.loop_sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.done.is_empty() {
            // A thread finished before it could see the flag: no wait.
            return Some(0);
        }
        // Queued jobs with a thread free to take them: look again soon.
        (!self.shared.jobs.is_empty() && self.shared.idle.load(Ordering::SeqCst) > 0)
            .then_some(STALL_MS)
    }

    fn woke(&self) {
        self.shared.loop_sleeping.store(false, Ordering::SeqCst);
        // Reset the eventfd (non-blocking; nothing to read is fine).
        let _ = self.shared.wake.read();
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.shared.wake.as_raw_fd())
    }

    fn set_urgent(&self, urgent: bool) {
        self.shared.urgent.store(urgent, Ordering::SeqCst);
    }

    fn overdue(&mut self, limit: Duration) -> Vec<Overdue> {
        let now = now_ms();
        let limit_ms = limit.as_millis() as u64;
        let mut out = Vec::new();
        for slot in &self.shared.slots {
            let started = slot.started_ms.load(Ordering::Relaxed);
            if started == 0
                || now.saturating_sub(started) <= limit_ms
                || slot.reported.swap(true, Ordering::Relaxed)
            {
                continue;
            }
            let line = slot
                .request_line
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let ident = slot.ident.load(Ordering::Relaxed);
            out.push(Overdue {
                place: slot.name.clone(),
                running: Duration::from_millis(now.saturating_sub(started)),
                request: String::from_utf8_lossy(&line).into_owned(),
                stack: Python::attach(|py| crate::python::interp::thread_stack(py, ident)),
            });
        }
        out
    }

    fn shutdown(&mut self, grace: Duration) -> bool {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.jobs = None;
        self.shared.ring_all();
        let deadline = Instant::now() + grace;
        while self.shared.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if self.shared.live.load(Ordering::SeqCst) > 0 {
            return false;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        true
    }
}
