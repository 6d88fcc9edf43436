//! Request counters in shared memory, one block per worker slot.
//!
//! The master maps this region before forking (beside the heartbeats).
//! Every request a worker answers adds to its slot with relaxed atomics, on
//! whichever thread or greenlet ran it: one word for its status, one for
//! its duration bucket, one for the duration sum. Nothing but the worker in
//! a slot writes to it, and words only grow while it lives.
//!
//! The master reads live slots when asked (Prometheus, the control socket)
//! and, when it reaps a worker, folds its slot into totals of its own and
//! clears the slot for the next worker: a worker's exit, a HUP or a
//! recycling loses no count, and no counter goes backwards while the master
//! lives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the duration histogram, in seconds (Prometheus' default buckets).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BUCKETS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Status codes 100..=599 each have a word; anything else counts under 0.
const STATUS_WORDS: usize = 501;
const STATUS_OTHER: usize = 500;
/// Word offsets inside a slot's block.
const BUCKET_AT: usize = STATUS_WORDS;
/// One word per bucket plus one for +Inf.
const BUCKET_WORDS: usize = BUCKETS.len() + 1;
const SUM_US_AT: usize = BUCKET_AT + BUCKET_WORDS;
const IN_FLIGHT_AT: usize = SUM_US_AT + 1;
const STRIDE: usize = IN_FLIGHT_AT + 1;

fn status_index(status: u16) -> usize {
    match status {
        100..=599 => status as usize - 100,
        _ => STATUS_OTHER,
    }
}

/// The status code a status word counts (0 for codes outside 100..=599).
fn index_status(i: usize) -> u16 {
    if i == STATUS_OTHER {
        0
    } else {
        (i + 100) as u16
    }
}

/// The region: `slots` blocks of `STRIDE` words.
pub struct Counters {
    /// Shared with every worker (see `shm`).
    words: &'static [AtomicU64],
    slots: usize,
}

impl Counters {
    pub fn new(slots: usize) -> std::io::Result<Counters> {
        let words = crate::shm::map_atomics(slots * STRIDE)?;
        Ok(Counters { words, slots })
    }

    /// The handle a worker in `slot` counts through.
    pub fn slot(&self, slot: usize) -> SlotCounters {
        assert!(slot < self.slots);
        let block = &self.words[slot * STRIDE..][..STRIDE];
        SlotCounters {
            words: block.try_into().expect("a block of STRIDE words"),
        }
    }

    /// Add a live slot's counts to `into` (a scrape).
    pub fn add_into(&self, slot: usize, into: &mut Totals) {
        let s = self.slot(slot);
        for i in 0..STATUS_WORDS {
            into.status[i] += s.word(i).load(Ordering::Relaxed);
        }
        for i in 0..BUCKET_WORDS {
            into.buckets[i] += s.word(BUCKET_AT + i).load(Ordering::Relaxed);
        }
        into.sum_us += s.word(SUM_US_AT).load(Ordering::Relaxed);
        into.in_flight += s.word(IN_FLIGHT_AT).load(Ordering::Relaxed);
    }

    /// The worker in `slot` is gone: move its counts into `into` and clear
    /// the slot for the next worker. Requests it held in flight died with it.
    pub fn fold(&self, slot: usize, into: &mut Totals) {
        let s = self.slot(slot);
        for i in 0..STATUS_WORDS {
            into.status[i] += s.word(i).swap(0, Ordering::Relaxed);
        }
        for i in 0..BUCKET_WORDS {
            into.buckets[i] += s.word(BUCKET_AT + i).swap(0, Ordering::Relaxed);
        }
        into.sum_us += s.word(SUM_US_AT).swap(0, Ordering::Relaxed);
        s.word(IN_FLIGHT_AT).store(0, Ordering::Relaxed);
    }
}

/// A worker's own block: counted into from any of its threads.
#[derive(Clone, Copy)]
pub struct SlotCounters {
    words: &'static [AtomicU64; STRIDE],
}

impl SlotCounters {
    fn word(&self, i: usize) -> &AtomicU64 {
        &self.words[i]
    }

    /// A request starts running.
    #[inline]
    pub fn enter(&self) {
        self.word(IN_FLIGHT_AT).fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered with `status` after `took`.
    #[inline]
    pub fn answered(&self, status: u16, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        self.word(status_index(status))
            .fetch_add(1, Ordering::Relaxed);
        let b = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS.len());
        self.word(BUCKET_AT + b).fetch_add(1, Ordering::Relaxed);
        self.word(SUM_US_AT).fetch_add(us, Ordering::Relaxed);
        self.word(IN_FLIGHT_AT).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sums over slots (the master's own, or one scrape's).
#[derive(Clone)]
pub struct Totals {
    status: Vec<u64>,
    /// Per bucket, not cumulative; the last is above the largest bound.
    buckets: Vec<u64>,
    sum_us: u64,
    pub in_flight: u64,
}

impl Default for Totals {
    fn default() -> Totals {
        Totals {
            status: vec![0; STATUS_WORDS],
            buckets: vec![0; BUCKET_WORDS],
            sum_us: 0,
            in_flight: 0,
        }
    }
}

impl Totals {
    /// Requests answered, whatever their status.
    pub fn requests(&self) -> u64 {
        self.status.iter().sum()
    }

    /// (status, count) for every status seen, in order.
    pub fn by_status(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.status
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (index_status(i), *n))
    }

    /// Cumulative counts per bucket bound, then the +Inf count.
    pub fn cumulative_buckets(&self) -> Vec<u64> {
        let mut acc = 0;
        self.buckets
            .iter()
            .map(|n| {
                acc += n;
                acc
            })
            .collect()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_keeps_every_count_and_clears_the_slot() {
        let c = Counters::new(4).unwrap();
        let s = c.slot(2);
        for (status, ms) in [(200, 1), (200, 30), (404, 2000), (999, 20_000)] {
            s.enter();
            s.answered(status, Duration::from_millis(ms));
        }
        s.enter();
        let mut live = Totals::default();
        c.add_into(2, &mut live);
        assert_eq!(live.requests(), 4);
        assert_eq!(live.in_flight, 1);
        let mut totals = Totals::default();
        c.fold(2, &mut totals);
        assert_eq!(totals.requests(), 4);
        assert_eq!(
            totals.by_status().collect::<Vec<_>>(),
            vec![(200, 2), (404, 1), (0, 1)]
        );
        assert_eq!(*totals.cumulative_buckets().last().unwrap(), 4);
        assert_eq!(totals.cumulative_buckets()[0], 1);
        let mut after = Totals::default();
        c.add_into(2, &mut after);
        assert_eq!(after.requests(), 0);
        assert_eq!(after.in_flight, 0);
    }
}
