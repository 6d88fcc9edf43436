//! Blocking-with-deadline I/O on non-blocking sockets.
//!
//! Worker sockets stay non-blocking for the event loop; when the request
//! path must wait (a client slow to read the response, or to send its body)
//! it asks a [`Wait`] to wait for that one fd with a deadline instead of
//! flipping O_NONBLOCK. Which `Wait` is the worker's concurrency mode's
//! answer: a plain poll() on the event loop's thread, poll() with the GIL
//! released on a thread running Python, or a cooperative scheduler's wait.
//! Every function here tries the operation first and waits only when the
//! socket is not ready, so a fast client costs no wait at all.

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::time::Duration;

/// What a socket operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    Read,
    Write,
}

/// How a socket operation waits until its fd is ready (or `timeout`
/// passes: then `ErrorKind::TimedOut`).
pub trait Wait: Sync {
    fn wait(&self, fd: RawFd, ready: Ready, timeout: Duration) -> io::Result<()>;
}

/// How a request's socket operations may wait: for how long each time the
/// client is not ready, and through which [`Wait`].
#[derive(Clone, Copy)]
pub struct Patience {
    pub timeout: Duration,
    pub waiter: &'static dyn Wait,
}

/// poll(2) on the calling thread, holding whatever it holds: for code that
/// runs no Python (the event loop itself, the no-Python reference).
pub struct Poll;

pub static POLL: Poll = Poll;

impl Wait for Poll {
    fn wait(&self, fd: RawFd, ready: Ready, timeout: Duration) -> io::Result<()> {
        poll_one(fd, ready, timeout)
    }
}

/// Lend `fd` to `f`, for the nix and rustix calls that take a borrowed fd.
///
/// The request path hands its descriptors around as numbers: a
/// [`Stream`](crate::stream::Stream) is copied into the WSGI objects, a
/// [`Wait`] may be Python's hub, and a sent file's fd comes from Python.
/// Each has an owner that keeps it open while a call with it runs (the
/// connection's `OwnedFd` while its request is answered, the worker's pipes
/// for the worker's life, the response's file object while it is sent).
/// A negative number (a `Stream` with no socket) fails with EBADF, as the
/// system call itself would.
pub(crate) fn with_fd<T, E: From<Errno>>(
    fd: RawFd,
    f: impl FnOnce(BorrowedFd<'_>) -> Result<T, E>,
) -> Result<T, E> {
    if fd < 0 {
        return Err(Errno::EBADF.into());
    }
    // SAFETY: `fd` is not -1 (checked above), its owner keeps it open while
    // `f` runs (see above), and the borrow cannot outlive `f`. Were a caller
    // to pass a stale number anyway, the kernel would answer EBADF (or act on
    // whatever file took the number): no memory is at stake.
    f(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Wait for one fd with poll(2).
pub fn poll_one(fd: RawFd, ready: Ready, timeout: Duration) -> io::Result<()> {
    let events = match ready {
        Ready::Read => PollFlags::POLLIN,
        Ready::Write => PollFlags::POLLOUT,
    };
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    with_fd(fd, |fd| {
        let mut pfd = [PollFd::new(fd, events)];
        loop {
            match nix::poll::poll(&mut pfd, timeout) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "client timed out")),
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    })
}

/// One non-blocking read. Ok(0) is EOF; WouldBlock is returned as an error.
pub fn read_some(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    with_fd(fd, |fd| loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => {}
            r => return r.map_err(io::Error::from),
        }
    })
}

/// One non-blocking writev, as much as the socket takes now.
pub fn write_some_vectored(fd: RawFd, parts: &[IoSlice<'_>]) -> io::Result<usize> {
    with_fd(fd, |fd| loop {
        match nix::sys::uio::writev(fd, parts) {
            Err(Errno::EINTR) => {}
            r => return r.map_err(io::Error::from),
        }
    })
}

/// Append what the socket has now (up to `max` bytes) to `buf`.
/// Returns bytes read; Ok(0) with `eof = true` means the peer closed.
pub fn read_into(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<(usize, bool)> {
    with_fd(fd, |fd| {
        let mut total = 0;
        loop {
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(8192);
            }
            let spare = buf.capacity() - buf.len();
            let want = spare.min(max - total);
            if want == 0 {
                return Ok((total, false));
            }
            match append_read(fd, buf, want) {
                Ok(0) => return Ok((total, true)),
                Ok(n) => {
                    total += n;
                    if n < want {
                        return Ok((total, false));
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Ok((total, false)),
                Err(e) => return Err(e.into()),
            }
        }
    })
}

/// One read(2) of up to `want` bytes straight into `buf`'s spare capacity
/// (no zeroing first: the buffer grows by what arrives), appended to it.
fn append_read(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, want: usize) -> rustix::io::Result<usize> {
    let (filled, _) = rustix::io::read(fd, &mut buf.spare_capacity_mut()[..want])?;
    let n = filled.len();
    // SAFETY: rustix returns as `filled` the first `n` bytes of the spare
    // capacity, which the kernel has just written: they are initialized.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Write all of `parts` (gathered with writev), waiting up to `timeout` for
/// the client to make room each time its buffer is full.
pub fn write_all_vectored(
    fd: RawFd,
    parts: &[&[u8]],
    timeout: Duration,
    waiter: &dyn Wait,
) -> io::Result<()> {
    // Progress through the parts as (index, offset); iovecs live on the stack.
    let (mut idx, mut off) = (0usize, 0usize);
    loop {
        while idx < parts.len() && off >= parts[idx].len() {
            idx += 1;
            off = 0;
        }
        if idx >= parts.len() {
            return Ok(());
        }
        let mut iov = [IoSlice::new(&[]); 64];
        let mut count = 0;
        for (i, p) in parts[idx..].iter().enumerate() {
            if count == iov.len() {
                break;
            }
            let p = if i == 0 { &p[off..] } else { p };
            if p.is_empty() {
                continue;
            }
            iov[count] = IoSlice::new(p);
            count += 1;
        }
        let mut n = match write_some_vectored(fd, &iov[..count]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                waiter.wait(fd, Ready::Write, timeout)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        while n > 0 && idx < parts.len() {
            let left = parts[idx].len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
}

pub fn write_all(fd: RawFd, data: &[u8], timeout: Duration, waiter: &dyn Wait) -> io::Result<()> {
    write_all_vectored(fd, &[data], timeout, waiter)
}

/// sendfile(2) `count` bytes (or to EOF when None) from `file_fd` at `offset`.
/// Returns the bytes sent.
pub fn sendfile_all(
    sock: RawFd,
    file_fd: RawFd,
    mut offset: i64,
    count: Option<u64>,
    timeout: Duration,
    waiter: &dyn Wait,
) -> io::Result<u64> {
    let mut sent = 0u64;
    loop {
        let want = match count {
            Some(c) if sent >= c => return Ok(sent),
            Some(c) => (c - sent).min(1 << 30) as usize,
            None => 1 << 30,
        };
        let r = with_fd(sock, |s| {
            with_fd(file_fd, |f| {
                nix::sys::sendfile::sendfile(s, f, Some(&mut offset), want)
            })
        });
        match r {
            Ok(0) => return Ok(sent),
            Ok(n) => sent += n as u64,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => waiter.wait(sock, Ready::Write, timeout)?,
            Err(e) => return Err(e.into()),
        }
    }
}

pub fn set_nodelay(fd: impl AsFd) {
    let _ = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::TcpNoDelay, &true);
}
