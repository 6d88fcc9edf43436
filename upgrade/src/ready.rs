//! Readiness: the new master says "ready" once all its workers booted; the
//! old master watches the pipe and the child process.
//!
//! Messages on the pipe are lines: `ready` from the new master, or
//! `exec <errno>` from the forked child when `chdir`/`execve` failed.

use nix::errno::Errno;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// A new master started by [`crate::spawn_successor`].
#[derive(Debug)]
pub struct Successor {
    pub pid: u32,
    ready: OwnedFd,
    buf: Vec<u8>,
    closed: bool,
    pub deadline: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyState {
    Pending,
    Ready,
    /// The pipe closed without `ready`: the new master is exiting. The
    /// caller learns why when it reaps the process (its exit code says
    /// more than the pipe can) and stops polling the fd, which stays
    /// readable at EOF.
    Closed,
    Failed(String),
}

impl Successor {
    pub(crate) fn new(pid: u32, ready: OwnedFd, deadline: Instant) -> Successor {
        Successor {
            pid,
            ready,
            buf: Vec::new(),
            closed: false,
            deadline,
        }
    }

    /// Poll this fd for readability in the caller's loop; None once it
    /// reached EOF (it would be readable forever).
    pub fn ready_fd(&self) -> Option<RawFd> {
        (!self.closed).then(|| self.ready.as_raw_fd())
    }

    /// What the pipe said so far, if it settles the outcome.
    fn verdict(&self) -> Option<ReadyState> {
        for line in self.buf.split(|b| *b == b'\n') {
            if line == b"ready" {
                return Some(ReadyState::Ready);
            }
            if let Some(errno) = line
                .strip_prefix(b"exec ")
                .and_then(|e| std::str::from_utf8(e).ok()?.parse::<i32>().ok())
            {
                let why = std::io::Error::from_raw_os_error(errno);
                return Some(ReadyState::Failed(format!(
                    "cannot start the new binary: {why}"
                )));
            }
        }
        None
    }

    /// Read what the new master said. Call when `ready_fd` is readable or on
    /// each tick (it never blocks). The caller reaps the child separately and
    /// reports its exit as a failure.
    pub fn poll(&mut self) -> ReadyState {
        let mut chunk = [0u8; 64];
        while !self.closed {
            match nix::unistd::read(&self.ready, &mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(Errno::EINTR) => {}
                // EAGAIN: nothing more for now (the fd is non-blocking).
                Err(_) => break,
            }
        }
        if let Some(v) = self.verdict() {
            return v;
        }
        if Instant::now() >= self.deadline {
            return ReadyState::Failed(
                "the new master was not ready in time (see --upgrade-timeout)".into(),
            );
        }
        if self.closed {
            return ReadyState::Closed;
        }
        ReadyState::Pending
    }
}

/// Tell the old master this one serves. Consumes the pipe's write end.
pub fn notify_ready(fd: OwnedFd) {
    let _ = nix::unistd::write(&fd, b"ready\n");
    drop(fd);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;
    use std::time::Duration;

    fn pair(deadline: Duration) -> (Successor, OwnedFd) {
        let mut p = [0; 2];
        assert_eq!(
            unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
            0
        );
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        (Successor::new(1, r, Instant::now() + deadline), w)
    }

    #[test]
    fn ready_then_closed_is_ready() {
        let (mut s, w) = pair(Duration::from_secs(5));
        assert_eq!(s.poll(), ReadyState::Pending);
        notify_ready(w);
        assert_eq!(s.poll(), ReadyState::Ready);
    }

    #[test]
    fn closed_without_ready_is_reported_once_and_not_polled_again() {
        let (mut s, w) = pair(Duration::from_secs(5));
        drop(w);
        assert_eq!(s.poll(), ReadyState::Closed);
        assert_eq!(s.ready_fd(), None);
        assert_eq!(s.poll(), ReadyState::Closed);
    }

    #[test]
    fn an_exec_failure_names_the_errno() {
        let (mut s, w) = pair(Duration::from_secs(5));
        let msg = format!("exec {}\n", libc::ENOEXEC);
        unsafe { libc::write(w.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
        match s.poll() {
            ReadyState::Failed(why) => assert!(why.contains("Exec format error"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn silence_past_the_deadline_fails() {
        let (mut s, _w) = pair(Duration::ZERO);
        assert!(matches!(s.poll(), ReadyState::Failed(why) if why.contains("in time")));
    }
}
