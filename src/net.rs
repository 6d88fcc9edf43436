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

use std::io;
use std::os::fd::RawFd;
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

/// Wait for one fd with poll(2).
pub fn poll_one(fd: RawFd, ready: Ready, timeout: Duration) -> io::Result<()> {
    let events = match ready {
        Ready::Read => libc::POLLIN,
        Ready::Write => libc::POLLOUT,
    };
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            return Ok(());
        }
        if r == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "client timed out"));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One non-blocking read. Ok(0) is EOF; WouldBlock is returned as an error.
pub fn read_some(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Append what the socket has now (up to `max` bytes) to `buf`.
/// Returns bytes read; Ok(0) with `eof = true` means the peer closed.
pub fn read_into(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<(usize, bool)> {
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
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().add(buf.len()).cast(), want) };
        if n > 0 {
            unsafe { buf.set_len(buf.len() + n as usize) };
            total += n as usize;
            if (n as usize) < want {
                return Ok((total, false));
            }
            continue;
        }
        if n == 0 {
            return Ok((total, true));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok((total, false)),
            _ => return Err(e),
        }
    }
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
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 64];
        let mut count = 0;
        for (i, p) in parts[idx..].iter().enumerate() {
            if count == iov.len() {
                break;
            }
            let p = if i == 0 { &p[off..] } else { p };
            if p.is_empty() {
                continue;
            }
            iov[count] = libc::iovec {
                iov_base: p.as_ptr() as *mut _,
                iov_len: p.len(),
            };
            count += 1;
        }
        let n = unsafe { libc::writev(fd, iov.as_ptr(), count as i32) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    waiter.wait(fd, Ready::Write, timeout)?;
                    continue;
                }
                _ => return Err(e),
            }
        }
        let mut n = n as usize;
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
        let n = unsafe { libc::sendfile(sock, file_fd, &mut offset, want) };
        if n > 0 {
            sent += n as u64;
            continue;
        }
        if n == 0 {
            return Ok(sent);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => waiter.wait(sock, Ready::Write, timeout)?,
            _ => return Err(e),
        }
    }
}

pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
}

/// Append at least one byte from the socket to `buf` (Ok(0) = EOF), waiting
/// up to `timeout` for the client.
pub fn read_into_wait(
    fd: RawFd,
    buf: &mut Vec<u8>,
    max: usize,
    timeout: Duration,
    waiter: &dyn Wait,
) -> io::Result<usize> {
    loop {
        let (n, eof) = read_into(fd, buf, max)?;
        if n > 0 || eof {
            return Ok(n);
        }
        waiter.wait(fd, Ready::Read, timeout)?;
    }
}
