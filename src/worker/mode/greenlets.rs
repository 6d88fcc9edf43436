//! The gevent mode (`-k gevent`): each request runs in its own greenlet on
//! gevent's hub, and everything that would block waits through the hub.
//!
//! The worker's event loop runs in the main greenlet, holding the GIL (one
//! OS thread does everything here). When it has nothing to do it waits for
//! its epoll fd to become readable through gevent (`wait_read`), which lets
//! the hub run the request greenlets meanwhile; a request's socket waits go
//! through `wait_read` / `wait_write` on the socket's fd in the same way
//! ([`HubWait`]). So the Rust core keeps doing the HTTP, and no syscall in
//! it ever blocks the hub.
//!
//! Greenlets are started in the order requests became complete (the hub
//! runs new greenlets first come, first served). Each takes a WSGI state
//! (environ template, `start_response`, `wsgi.input`) from a free list, so
//! concurrent requests never share one, and gives it back when done.

use super::{Overdue, Runner};
use crate::heartbeat::now_ms;
use crate::net::{Ready, Wait};
use crate::worker::job::{self, Done, Job, RequestCtx};
use crate::wsgi::{WsgiApp, WsgiOptions};
use nix::sys::eventfd::{EfdFlags, EventFd};
use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// gevent's `wait_read` / `wait_write`, looked up once per worker.
static WAIT_READ: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static WAIT_WRITE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn gevent_fn(
    py: Python<'_>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<Py<PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("gevent.socket")?.getattr(name)?.unbind())
    })
    .map(|f| f.clone_ref(py))
}

/// Wait for `fd` through the hub: other greenlets run meanwhile.
fn hub_wait(
    py: Python<'_>,
    fd: RawFd,
    ready: Ready,
    timeout: Option<Duration>,
) -> std::io::Result<()> {
    let f = match ready {
        Ready::Read => gevent_fn(py, &WAIT_READ, "wait_read"),
        Ready::Write => gevent_fn(py, &WAIT_WRITE, "wait_write"),
    }
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let secs = timeout.map(|t| t.as_secs_f64());
    match f.bind(py).call1((fd, secs)) {
        Ok(_) => Ok(()),
        Err(e) if e.is_instance_of::<PyTimeoutError>(py) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client timed out",
        )),
        // The greenlet is being killed (GreenletExit) or the fd went away.
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

/// A request's socket waits, through gevent's hub.
pub struct HubWait;

pub static HUB_WAIT: HubWait = HubWait;

impl Wait for HubWait {
    fn wait(&self, fd: RawFd, ready: Ready, timeout: Duration) -> std::io::Result<()> {
        Python::attach(|py| hub_wait(py, fd, ready, Some(timeout)))
    }
}

/// Patch the standard library for gevent, as gunicorn's gevent worker does
/// after `post_fork` and before the app is imported. The error says what
/// to install when gevent is missing.
pub fn patch(py: Python<'_>) -> Result<(), String> {
    let monkey = py.import("gevent.monkey").map_err(|e| {
        format!(
            "the gevent worker class needs the gevent package in the app's environment \
             (pip install gevent): {e}"
        )
    })?;
    let run = || -> PyResult<()> {
        monkey.getattr("patch_all")?.call0()?;
        // A hub inherited through fork (gevent imported by a preloaded app
        // or a config file) must start afresh in the child.
        py.import("gevent")?.getattr("reinit")?.call0()?;
        Ok(())
    };
    run().map_err(|e| format!("gevent could not patch the standard library: {e}"))
}

/// On SIGABRT (the master's timeout, when a greenlet blocks the hub): write
/// the stack of every greenlet to `fd`, then hand on to a handler installed
/// before (the worker_abort hook) and exit. faulthandler, enabled after
/// this, dumps the C-level thread stack first; this adds what it cannot see:
/// the requests suspended in other greenlets. Like any Python signal
/// handler it runs once the interpreter gets control (a Python loop that
/// never yields, not a C call that never returns).
pub fn dump_greenlets_on_abort(py: Python<'_>, fd: RawFd) -> PyResult<()> {
    let code = cr#"
import gc, os, signal, traceback

def install(fd):
    previous = signal.getsignal(signal.SIGABRT)

    def handle(signum, frame):
        try:
            from greenlet import greenlet
            out = ["Stacks of the greenlets of the worker (most recent call last):\n"]
            for g in gc.get_objects():
                if isinstance(g, greenlet) and g.gr_frame is not None:
                    out.append("Greenlet %s:\n" % hex(id(g)))
                    out.extend(traceback.format_stack(g.gr_frame))
            out.append("The running greenlet:\n")
            out.extend(traceback.format_stack(frame))
            os.write(fd, "".join(out).encode("utf-8", "replace"))
        except BaseException:
            pass
        if callable(previous):
            previous(signum, frame)
        os._exit(1)

    signal.signal(signal.SIGABRT, handle)
"#;
    let module = PyModule::from_code(
        py,
        code,
        c"ferricorn_greenlet_dump.py",
        c"ferricorn_greenlet_dump",
    )?;
    module.getattr("install")?.call1((fd,))?;
    Ok(())
}

/// What the request greenlets and the loop share (one OS thread).
struct Shared {
    app: Py<PyAny>,
    opts: WsgiOptions,
    ctx: std::sync::Arc<RequestCtx>,
    /// WSGI states not in use.
    free: Vec<WsgiApp>,
    done: VecDeque<Done>,
    /// Running requests by greenlet id: when each started, its request line
    /// and its greenlet (for its stack when overdue).
    running: HashMap<u64, Running>,
    next_id: u64,
    /// The loop must hear of every finished request at once.
    urgent: bool,
    wake: EventFd,
}

struct Running {
    started_ms: u64,
    request: String,
    greenlet: Option<Py<PyAny>>,
    reported: bool,
}

/// A job that could not run: its connection goes back to be closed.
fn closed(job: Job) -> Done {
    Done {
        slot: job.slot,
        conn: job.conn,
        head: job.head,
        outcome: crate::wsgi::Outcome {
            keep_alive: false,
            leftover: None,
            status: 500,
            sent: 0,
            response_headers: Vec::new(),
            linger: false,
        },
    }
}

/// The callable a request greenlet runs.
#[pyclass(unsendable)]
struct RequestGreenlet {
    shared: Rc<RefCell<Shared>>,
    job: RefCell<Option<Job>>,
    id: u64,
}

#[pymethods]
impl RequestGreenlet {
    fn __call__(&self, py: Python<'_>) {
        let Some(job) = self.job.borrow_mut().take() else {
            return;
        };
        let mut wsgi = {
            let mut s = self.shared.borrow_mut();
            match s.free.pop() {
                Some(w) => w,
                None => {
                    let (app, opts) = (s.app.clone_ref(py), s.opts.clone());
                    drop(s);
                    match WsgiApp::new(py, app, opts) {
                        Ok(w) => w,
                        Err(e) => {
                            crate::error!("Cannot prepare the WSGI environment: {e}");
                            self.give_back(closed(job));
                            return;
                        }
                    }
                }
            }
        };
        let ctx = self.shared.borrow().ctx.clone();
        let done = job::run(job, &ctx, |req| wsgi.handle(py, req));
        self.shared.borrow_mut().free.push(wsgi);
        self.give_back(done);
    }
}

impl RequestGreenlet {
    /// Hand the connection back to the loop, waking it if it must act.
    fn give_back(&self, done: Done) {
        let mut s = self.shared.borrow_mut();
        s.running.remove(&self.id);
        let out = &done.outcome;
        let leftover = out.leftover.as_ref().is_some_and(|b| !b.is_empty());
        // As the thread pool: a kept-alive connection with nothing
        // buffered needs the loop only when its client sends again.
        let must_act = !out.keep_alive || out.linger || leftover || s.urgent;
        s.done.push_back(done);
        if must_act {
            let _ = s.wake.write(1);
        }
    }
}

pub struct Greenlets {
    shared: Rc<RefCell<Shared>>,
    spawn: Py<PyAny>,
    /// `gevent.sleep`: yields to the hub without waiting for anything.
    sleep: Py<PyAny>,
}

impl Greenlets {
    /// The caller holds the GIL for the life of the worker's loop.
    pub fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        opts: WsgiOptions,
        ctx: std::sync::Arc<RequestCtx>,
    ) -> Result<Greenlets, String> {
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| format!("cannot create the gevent worker's eventfd: {}", e.desc()))?;
        let gevent = py
            .import("gevent")
            .map_err(|e| format!("gevent is not available: {e}"))?;
        let function = |name: &str| {
            gevent
                .getattr(name)
                .map(Bound::unbind)
                .map_err(|e| format!("gevent.{name} is not available: {e}"))
        };
        let (spawn, sleep) = (function("spawn")?, function("sleep")?);
        Ok(Greenlets {
            shared: Rc::new(RefCell::new(Shared {
                app,
                opts,
                ctx,
                free: Vec::new(),
                done: VecDeque::new(),
                running: HashMap::new(),
                next_id: 0,
                urgent: false,
                wake,
            })),
            spawn,
            sleep,
        })
    }

    fn running(&self) -> usize {
        self.shared.borrow().running.len()
    }
}

impl Runner for Greenlets {
    fn submit(&mut self, job: Job) {
        Python::attach(|py| {
            let request = {
                let (h, b) = (&job.head, &job.conn.buf);
                let mut line = String::from_utf8_lossy(h.method(b)).into_owned();
                line.push(' ');
                line.push_str(&String::from_utf8_lossy(h.target(b)));
                line
            };
            let id = {
                let mut s = self.shared.borrow_mut();
                s.next_id += 1;
                let id = s.next_id;
                s.running.insert(
                    id,
                    Running {
                        started_ms: now_ms(),
                        request,
                        greenlet: None,
                        reported: false,
                    },
                );
                id
            };
            let callable = RequestGreenlet {
                shared: self.shared.clone(),
                job: RefCell::new(Some(job)),
                id,
            };
            let callable = match Py::new(py, callable) {
                Ok(c) => c,
                Err(e) => {
                    crate::error!("Cannot start a greenlet for a request: {e}");
                    return;
                }
            };
            match self.spawn.bind(py).call1((&callable,)) {
                Ok(g) => {
                    if let Some(r) = self.shared.borrow_mut().running.get_mut(&id) {
                        r.greenlet = Some(g.unbind());
                    }
                }
                Err(e) => {
                    crate::error!("Cannot start a greenlet for a request: {e}");
                    let c = callable.borrow(py);
                    let job = c.job.borrow_mut().take();
                    if let Some(job) = job {
                        c.give_back(closed(job));
                    }
                }
            }
        });
    }

    fn take_finished(&mut self, done: &mut Vec<Done>) {
        done.extend(self.shared.borrow_mut().done.drain(..));
    }

    fn collect(&mut self, done: &mut Vec<Done>) {
        self.take_finished(done);
    }

    fn prepare_sleep(&self) -> Option<i32> {
        (!self.shared.borrow().done.is_empty()).then_some(0)
    }

    fn wait_for_events(&mut self, epoll_fd: RawFd, timeout_ms: i32) -> bool {
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        if timeout == Some(Duration::ZERO) {
            // Nothing to wait for, but let the greenlets started this turn run.
            Python::attach(|py| {
                let _ = self.sleep.bind(py).call1((0,));
            });
            return true;
        }
        let _ = Python::attach(|py| hub_wait(py, epoll_fd, Ready::Read, timeout));
        true
    }

    fn woke(&self) {
        let _ = self.shared.borrow().wake.read();
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.shared.borrow().wake.as_raw_fd())
    }

    fn set_urgent(&self, urgent: bool) {
        self.shared.borrow_mut().urgent = urgent;
    }

    fn overdue(&mut self, limit: Duration) -> Vec<Overdue> {
        let now = now_ms();
        let limit_ms = limit.as_millis() as u64;
        let mut out = Vec::new();
        Python::attach(|py| {
            let mut s = self.shared.borrow_mut();
            for r in s.running.values_mut() {
                if r.reported || now.saturating_sub(r.started_ms) <= limit_ms {
                    continue;
                }
                r.reported = true;
                let stack = r
                    .greenlet
                    .as_ref()
                    .map(|g| greenlet_stack(py, g.bind(py)))
                    .unwrap_or_default();
                out.push(Overdue {
                    place: "a greenlet".into(),
                    running: Duration::from_millis(now.saturating_sub(r.started_ms)),
                    request: r.request.clone(),
                    stack,
                });
            }
        });
        out
    }

    fn shutdown(&mut self, grace: Duration) -> bool {
        // Greenlets still running finish within the grace (the hub runs
        // them while this one sleeps), or are left behind.
        let deadline = Instant::now() + grace;
        while self.running() > 0 && Instant::now() < deadline {
            Python::attach(|py| {
                let _ = self.sleep.bind(py).call1((0.01,));
            });
        }
        let stopped = self.running() == 0;
        self.shared.borrow_mut().free.clear();
        stopped
    }
}

/// The Python stack a suspended greenlet is in.
fn greenlet_stack(py: Python<'_>, greenlet: &Bound<'_, PyAny>) -> String {
    match greenlet.getattr("gr_frame") {
        Ok(frame) => crate::python::interp::frame_stack(py, "the request's greenlet", &frame),
        Err(e) => format!("(its stack could not be read: {e})"),
    }
}
