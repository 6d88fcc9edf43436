//! A burst of saves becomes one reload: fire once no event arrived for
//! `quiet`, or when the burst has lasted `max_wait` (so a file written
//! continuously cannot postpone a reload forever).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Debounce {
    quiet: Duration,
    max_wait: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
    pending: BTreeSet<PathBuf>,
}

impl Debounce {
    pub fn new(quiet: Duration, max_wait: Duration) -> Debounce {
        Debounce {
            quiet,
            max_wait,
            first: None,
            last: None,
            pending: BTreeSet::new(),
        }
    }

    pub fn push(&mut self, paths: Vec<PathBuf>, now: Instant) {
        if paths.is_empty() {
            return;
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.pending.extend(paths);
    }

    /// The time at which [`Debounce::fire`] would return the burst.
    pub fn due(&self) -> Option<Instant> {
        Some((self.last? + self.quiet).min(self.first? + self.max_wait))
    }

    /// The changed paths, once the burst is over.
    pub fn fire(&mut self, now: Instant) -> Option<Vec<PathBuf>> {
        if now >= self.due()? {
            self.first = None;
            self.last = None;
            return Some(std::mem::take(&mut self.pending).into_iter().collect());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_fires_once_after_it_goes_quiet() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Debounce::new(ms(20), ms(500));
        for i in 0..10 {
            d.push(vec![PathBuf::from(format!("f{}", i % 3))], t0 + ms(i * 5));
            assert!(d.fire(t0 + ms(i * 5)).is_none());
        }
        assert!(d.fire(t0 + ms(60)).is_none());
        assert_eq!(d.fire(t0 + ms(70)).unwrap().len(), 3);
        assert!(d.fire(t0 + ms(200)).is_none());
    }

    #[test]
    fn an_endless_burst_still_fires_at_max_wait() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Debounce::new(ms(20), ms(100));
        for i in 0..20 {
            d.push(vec![PathBuf::from("f")], t0 + ms(i * 10));
        }
        assert!(d.fire(t0 + ms(100)).is_some());
    }
}
