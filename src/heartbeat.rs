//! Worker liveness through shared memory.
//!
//! The master maps one anonymous shared region before forking; each worker
//! owns a slot and stores the monotonic time there every turn of its loop
//! (an atomic store, no syscall: clock_gettime is served by the vDSO). The
//! master compares slots against --timeout without talking to anyone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const SLOTS: usize = 1024;

pub struct Heartbeats {
    base: *mut AtomicU64,
}

// The region is shared memory of atomics; handing the pointer between
// threads is as safe as handing the atomics.
unsafe impl Send for Heartbeats {}
unsafe impl Sync for Heartbeats {}

/// Milliseconds on CLOCK_MONOTONIC, the same clock in every process.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

impl Heartbeats {
    pub fn new() -> std::io::Result<Heartbeats> {
        let len = SLOTS * std::mem::size_of::<AtomicU64>();
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Heartbeats { base: p.cast() })
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < SLOTS);
        unsafe { &*self.base.add(i) }
    }

    pub fn beat(&self, slot: usize) {
        self.slot(slot).store(now_ms(), Ordering::Relaxed);
    }

    /// How long since the worker in `slot` last beat.
    pub fn silence(&self, slot: usize) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.slot(slot).load(Ordering::Relaxed)))
    }
}

/// Handle a worker keeps to its own slot.
#[derive(Clone, Copy)]
pub struct Beat {
    ptr: *const AtomicU64,
}

impl Beat {
    pub fn new(hb: &Heartbeats, slot: usize) -> Beat {
        Beat { ptr: hb.slot(slot) }
    }
    #[inline]
    pub fn beat(&self) {
        unsafe { &*self.ptr }.store(now_ms(), Ordering::Relaxed);
    }
}
