//! Worker liveness and load through shared memory.
//!
//! The master maps one anonymous shared region before forking; each worker
//! owns a slot and stores the monotonic time there every turn of its loop
//! (an atomic store, no syscall: clock_gettime is served by the vDSO). The
//! master compares slots against --timeout without talking to anyone.
//!
//! Beside each heartbeat a worker publishes its load: how many connections
//! it holds, whether it serves, and whether it is waiting in epoll right
//! now. Workers read each other's loads to share connections fairly (see
//! the accept decision in the worker's event loop).
//!
//! Layout: `SLOTS` heartbeats, then `SLOTS` loads, then `SLOTS` times a
//! worker was last in epoll, then one word holding the number of slots ever
//! handed out (so readers scan only those).

use crate::metrics::counters::{Counters, SlotCounters};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const SLOTS: usize = 1024;

const WORDS: usize = 3 * SLOTS + 1;
const POLLED: usize = 2 * SLOTS;
const HIGH_WATER: usize = 3 * SLOTS;

/// Load word flags; the low 32 bits count open connections.
const SERVING: u64 = 1 << 62;
const WAITING: u64 = 1 << 61;
const COUNT: u64 = 0xffff_ffff;

/// A worker counts as able to take a connection now if it waits in epoll,
/// or if it beat this recently (between two requests).
const FRESH_MS: u64 = 100;

/// A worker last in epoll this recently will look at the listener again
/// soon (it is in a short request, or its turn has just begun).
const SOON_MS: u64 = 5;

/// The region's words, shared with every worker (see `shm`).
type Words = &'static [AtomicU64; WORDS];

pub struct Heartbeats {
    words: Words,
    /// Request counters, one block per slot (see `metrics::counters`).
    pub counters: Counters,
}

/// Milliseconds on CLOCK_MONOTONIC, the same clock in every process.
pub fn now_ms() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; 0 would only make every worker
    // look silent since boot, never hide a hung one.
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    ts.tv_sec() as u64 * 1000 + ts.tv_nsec() as u64 / 1_000_000
}

impl Heartbeats {
    pub fn new() -> std::io::Result<Heartbeats> {
        let words = crate::shm::map_atomics(WORDS)?
            .try_into()
            .expect("a mapping of WORDS words");
        Ok(Heartbeats {
            words,
            counters: Counters::new(SLOTS)?,
        })
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        &self.words[i]
    }

    /// Start a slot for a new worker: beating now, serving nothing yet.
    pub fn beat(&self, slot: usize) {
        self.word(slot).store(now_ms(), Ordering::Relaxed);
        self.word(SLOTS + slot).store(0, Ordering::Relaxed);
        self.word(HIGH_WATER)
            .fetch_max(slot as u64 + 1, Ordering::Relaxed);
    }

    /// The worker in `slot` is gone: others stop counting it.
    pub fn release(&self, slot: usize) {
        self.word(SLOTS + slot).store(0, Ordering::Relaxed);
    }

    /// The connections the worker in `slot` holds, as it last published.
    pub fn open(&self, slot: usize) -> u64 {
        self.word(SLOTS + slot).load(Ordering::Relaxed) & COUNT
    }

    /// How long since the worker in `slot` last beat.
    pub fn silence(&self, slot: usize) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.word(slot).load(Ordering::Relaxed)))
    }
}

/// Handle a worker keeps to its own slot (and to read its peers').
#[derive(Clone, Copy)]
pub struct Beat {
    words: Words,
    slot: usize,
    /// This worker's request counters.
    pub counters: SlotCounters,
}

// Workers hand their Beat to other threads (hooks, the thread pool): it
// is only a shared reference to atomics, so it must stay Send and Sync.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Beat>();
    shareable::<Heartbeats>();
};

impl Beat {
    pub fn new(hb: &Heartbeats, slot: usize) -> Beat {
        assert!(slot < SLOTS);
        Beat {
            words: hb.words,
            slot,
            counters: hb.counters.slot(slot),
        }
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        &self.words[i]
    }

    #[inline]
    pub fn beat(&self) {
        self.word(self.slot).store(now_ms(), Ordering::Relaxed);
    }

    /// Publish this worker's load. `serving` false (booting or stopping)
    /// takes it out of the others' reckoning.
    #[inline]
    pub fn publish(&self, open: usize, serving: bool, waiting: bool) {
        let mut v = (open as u64).min(COUNT);
        if serving {
            v |= SERVING;
        }
        if waiting {
            v |= WAITING;
        }
        self.word(SLOTS + self.slot).store(v, Ordering::Relaxed);
    }

    /// Record that this worker is in, or has just left, its epoll wait.
    #[inline]
    pub fn mark_polled(&self) {
        self.word(POLLED + self.slot)
            .store(now_ms(), Ordering::Relaxed);
    }

    /// The fewest connections any other worker that could take one now
    /// holds, and whether that worker (or one as lightly loaded) will take
    /// it soon: it waits in epoll, or was there a moment ago. None when no
    /// other worker could take one.
    pub fn least_loaded_peer(&self, now: u64) -> Option<(u64, bool)> {
        let high = (self.word(HIGH_WATER).load(Ordering::Relaxed) as usize).min(SLOTS);
        let mut least: Option<(u64, bool)> = None;
        for slot in (0..high).filter(|s| *s != self.slot) {
            let load = self.word(SLOTS + slot).load(Ordering::Relaxed);
            if load & SERVING == 0 {
                continue;
            }
            let fresh = now.saturating_sub(self.word(slot).load(Ordering::Relaxed)) <= FRESH_MS;
            let polled = self.word(POLLED + slot).load(Ordering::Relaxed);
            let soon = load & WAITING != 0 || now.saturating_sub(polled) <= SOON_MS;
            if !soon && !fresh {
                continue; // busy in a long request, or hung
            }
            let open = load & COUNT;
            least = Some(match least {
                Some((l, s)) if l < open => (l, s),
                Some((l, s)) if l == open => (l, s || soon),
                _ => (open, soon),
            });
        }
        least
    }
}
