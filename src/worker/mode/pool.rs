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
//! take it next; with a CPU-bound app the thread that has the GIL runs
//! request after request without handing the GIL around, and with an app
//! that waits (a database, `time.sleep`) the GIL is free and idle threads
//! take the queued requests at once.
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

/// Shared by the loop and every pool thread.
struct Shared {
    jobs: Receiver<Job>,
    done: Sender<Done>,
    /// Rung when a job arrives and some thread is idle.
    doorbell: Mutex<()>,
    rung: Condvar,
    idle: AtomicUsize,
    closed: AtomicBool,
    /// Written when a request finishes and the loop sleeps in epoll.
    wake: EventFd,
    loop_sleeping: AtomicBool,
    slots: Vec<ThreadSlot>,
    /// Threads that have not ended yet.
    live: AtomicUsize,
}

pub struct Pool {
    shared: Arc<Shared>,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
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
            doorbell: Mutex::new(()),
            rung: Condvar::new(),
            idle: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            wake,
            loop_sleeping: AtomicBool::new(false),
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
        loop {
            match shared.jobs.try_recv() {
                Ok(job) => {
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
                    shared.finish(done);
                }
                Err(TryRecvError::Empty) => {
                    if !py.detach(|| shared.wait_for_job()) {
                        break;
                    }
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
    /// Block (without the GIL) until a job may be queued; false once the
    /// pool is closed and nothing is left.
    fn wait_for_job(&self) -> bool {
        let mut guard = self.doorbell.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // Count ourselves idle before looking at the queue, and the
            // submitter looks at the count after queueing: one of the two
            // sees the other (both sides fence), so no ring is lost.
            self.idle.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !self.jobs.is_empty() {
                self.idle.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
            if self.closed.load(Ordering::SeqCst) {
                self.idle.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
            guard = self.rung.wait(guard).unwrap_or_else(|e| e.into_inner());
            self.idle.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Hand an answered request back and wake the loop if it sleeps.
    fn finish(&self, done: Done) {
        if self.done.send(done).is_err() {
            return;
        }
        fence(Ordering::SeqCst);
        if self.loop_sleeping.load(Ordering::SeqCst) {
            let _ = self.wake.write(1);
        }
    }

    fn ring(&self, all: bool) {
        let _guard = self.doorbell.lock().unwrap_or_else(|e| e.into_inner());
        if all {
            self.rung.notify_all();
        } else {
            self.rung.notify_one();
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
        fence(Ordering::SeqCst);
        if self.shared.idle.load(Ordering::SeqCst) > 0 {
            self.shared.ring(false);
        }
    }

    fn collect(&mut self, done: &mut Vec<Done>) {
        done.extend(self.done.try_iter());
    }

    fn prepare_sleep(&self) -> bool {
        self.shared.loop_sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // A thread that finished before it could see the flag: no wait.
        self.done.is_empty()
    }

    fn woke(&self) {
        self.shared.loop_sleeping.store(false, Ordering::SeqCst);
        // Reset the eventfd (non-blocking; nothing to read is fine).
        let _ = self.shared.wake.read();
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.shared.wake.as_raw_fd())
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
            out.push(Overdue {
                thread_ident: slot.ident.load(Ordering::Relaxed),
                thread_name: slot.name.clone(),
                running: Duration::from_millis(now.saturating_sub(started)),
                request: String::from_utf8_lossy(&line).into_owned(),
            });
        }
        out
    }

    fn shutdown(&mut self, grace: Duration) -> bool {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.jobs = None;
        self.shared.ring(true);
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
