//! The polling engine: compare (mtime, size, inode) of each watched file on
//! every scan. The caller decides how often to scan (the master's tick).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime_ns: i128,
    size: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        size: m.size(),
        ino: m.ino(),
    })
}

#[derive(Default)]
pub struct Poll {
    known: BTreeMap<PathBuf, Option<Stamp>>,
}

impl super::EngineImpl for Poll {
    fn fd(&self) -> Option<i32> {
        None
    }

    fn watch_dir(&mut self, _dir: &Path) -> Result<(), super::WatchError> {
        Ok(())
    }

    fn track(&mut self, file: &Path) {
        // Stamp it now, not at the next scan: a save in between would
        // otherwise become the baseline and never reload.
        self.known
            .entry(file.to_path_buf())
            .or_insert_with(|| stamp(file));
    }

    fn changes(&mut self, files: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
        let mut changed = Vec::new();
        for f in files {
            let now = stamp(f);
            match self.known.insert(f.clone(), now) {
                Some(before) if before != now => changed.push(f.clone()),
                _ => {}
            }
        }
        changed
    }
}
