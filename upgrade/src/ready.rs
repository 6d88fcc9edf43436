//! Readiness: the new master says "ready" once all its workers booted; the
//! old master watches the pipe and the child process.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// A new master started by [`crate::spawn_successor`].
#[derive(Debug)]
pub struct Successor {
    pub pid: u32,
    ready: OwnedFd,
    buf: Vec<u8>,
    pub deadline: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyState {
    Pending,
    Ready,
    Failed(String),
}

impl Successor {
    pub(crate) fn new(pid: u32, ready: OwnedFd, deadline: Instant) -> Successor {
        Successor { pid, ready, buf: Vec::new(), deadline }
    }

    /// Poll this fd for readability in the caller's loop.
    pub fn ready_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }

    /// Read what the new master said. Call when `ready_fd` is readable or on
    /// each tick (it never blocks). The caller reaps the child separately and
    /// reports its exit as a failure.
    pub fn poll(&mut self) -> ReadyState {
        let mut chunk = [0u8; 64];
        loop {
            let n = unsafe { libc::read(self.ready.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if n > 0 {
                self.buf.extend_from_slice(&chunk[..n as usize]);
                continue;
            }
            if n == 0 {
                if self.buf.starts_with(b"ready") {
                    return ReadyState::Ready;
                }
                return ReadyState::Failed("the new master exited or closed its readiness pipe before it was ready".into());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if self.buf.starts_with(b"ready") {
            return ReadyState::Ready;
        }
        if Instant::now() >= self.deadline {
            return ReadyState::Failed("the new master was not ready in time".into());
        }
        ReadyState::Pending
    }
}

/// Tell the old master this one serves. Consumes the pipe's write end.
pub fn notify_ready(fd: OwnedFd) {
    let msg = b"ready\n";
    unsafe { libc::write(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
    drop(fd);
}
