//! The inotify engine: one non-blocking inotify fd watching directories.

use inotify::{EventMask, WatchDescriptor, WatchMask};
use std::collections::{BTreeSet, HashMap};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What in a watched directory counts as a change: a file written and
/// closed, renamed in or out, created, deleted, or its metadata changed.
const MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::ATTRIB);

pub struct Inotify {
    /// Opened close-on-exec and non-blocking: the caller polls its fd, and
    /// reading it never blocks.
    inotify: inotify::Inotify,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    watched: BTreeSet<PathBuf>,
}

impl Inotify {
    pub fn new() -> Result<Inotify, super::WatchError> {
        let inotify = inotify::Inotify::init().map_err(super::WatchError::InotifyUnavailable)?;
        Ok(Inotify {
            inotify,
            dirs: HashMap::new(),
            watched: BTreeSet::new(),
        })
    }
}

impl super::EngineImpl for Inotify {
    fn fd(&self) -> Option<i32> {
        Some(self.inotify.as_raw_fd())
    }

    fn watch_dir(&mut self, dir: &Path) -> Result<(), super::WatchError> {
        if self.watched.contains(dir) {
            return Ok(());
        }
        let watch_err = |err| super::WatchError::Watch {
            path: dir.display().to_string(),
            err,
        };
        if dir.as_os_str().as_bytes().contains(&0) {
            return Err(watch_err(std::io::Error::other("path contains NUL")));
        }
        let wd = self.inotify.watches().add(dir, MASK).map_err(watch_err)?;
        self.dirs.insert(wd, dir.to_path_buf());
        self.watched.insert(dir.to_path_buf());
        Ok(())
    }

    fn changes(&mut self, files: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        // Until the queue is empty (EAGAIN: the fd is non-blocking) or the
        // read fails.
        while let Ok(events) = self.inotify.read_events(&mut buf) {
            for ev in events {
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    // Events were lost: any watched file may have changed.
                    out.extend(files.iter().cloned());
                } else if ev.mask.contains(EventMask::IGNORED) {
                    // The directory is gone (deleted, or its file system
                    // unmounted): forget it, so that a directory recreated
                    // under the same name can be watched again.
                    if let Some(dir) = self.dirs.remove(&ev.wd) {
                        self.watched.remove(&dir);
                    }
                } else if let (Some(dir), Some(name)) = (self.dirs.get(&ev.wd), ev.name) {
                    out.push(dir.join(name));
                }
            }
        }
        out
    }
}
