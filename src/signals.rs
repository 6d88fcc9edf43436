//! Signals as events in a poll loop (the self-pipe trick, after djb).
//!
//! A handler only counts the signal and writes one byte to a non-blocking
//! pipe; the loop polls the pipe's read end and acts on the counts. Nothing
//! is logged or allocated inside a handler.

use signal_hook::SigId;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

const MAX_SIG: usize = 65;
static COUNTS: [AtomicU32; MAX_SIG] = [const { AtomicU32::new(0) }; MAX_SIG];

pub struct SignalPipe {
    read: OwnedFd,
    /// Written to by the handlers, so closed only once they are gone
    /// (`uninstall`); a pipe dropped without that keeps it open.
    write: ManuallyDrop<OwnedFd>,
    ids: Vec<SigId>,
    watched: Vec<i32>,
}

impl SignalPipe {
    /// Route `signals` to a fresh pipe. Call before Python starts, so CPython
    /// sees our SIGINT handler and leaves it alone.
    pub fn install(signals: &[i32]) -> std::io::Result<SignalPipe> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        let wfd = write.as_raw_fd();
        let mut ids = Vec::new();
        for &sig in signals {
            COUNTS[sig as usize].store(0, Ordering::Relaxed);
            let idx = sig as usize;
            // signal-hook's safe pipe registration would do, but it writes
            // the same byte for every signal and so cannot count them: three
            // quick TTINs must add three workers.
            // SAFETY: the action only does an atomic add and a write(2) of a
            // byte on the stack, both async-signal-safe; signal-hook saves
            // and restores errno around it. `wfd` stays open while the
            // action can run: the write end is closed only by `uninstall`,
            // after `unregister`, which returns once no handler still runs
            // the action.
            let id = unsafe {
                signal_hook::low_level::register(sig, move || {
                    COUNTS[idx].fetch_add(1, Ordering::Relaxed);
                    let b = [idx as u8];
                    libc::write(wfd, b.as_ptr().cast(), 1);
                })
            }?;
            ids.push(id);
        }
        Ok(SignalPipe {
            read,
            write: ManuallyDrop::new(write),
            ids,
            watched: signals.to_vec(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Empty the pipe and return each watched signal that arrived, with how many times.
    pub fn drain(&self) -> Vec<(i32, u32)> {
        let mut buf = [0u8; 64];
        // Until EOF, EAGAIN (empty) or any error: the counts are the news.
        while let Ok(1..) = nix::unistd::read(&self.read, &mut buf) {}
        self.watched
            .iter()
            .filter_map(|&s| {
                let n = COUNTS[s as usize].swap(0, Ordering::Relaxed);
                (n > 0).then_some((s, n))
            })
            .collect()
    }

    /// Remove the handlers (a forked worker installs its own set).
    pub fn uninstall(self) {
        for id in &self.ids {
            signal_hook::low_level::unregister(*id);
        }
        drop(ManuallyDrop::into_inner(self.write));
        drop(self.read);
    }
}

pub fn name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}
