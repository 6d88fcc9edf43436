//! File watching for hot reload, built for a master that keeps no threads.
//!
//! The caller owns the loop: [`Watcher::fd`] is a descriptor to add to its
//! poll set (inotify), or None for the polling engine, which is driven by
//! calling [`Watcher::scan`] on the loop's tick. Both engines watch the
//! *directories* of the files of interest, so an editor's save-by-rename,
//! a new module and a deleted-then-recreated file are all seen; events are
//! filtered by [`is_ignored`] (editor swap and backup files, `__pycache__`,
//! compiled files) and by the set of watched paths.
//!
//! [`Debounce`] turns a burst of events into one reload.

mod debounce;
pub mod glob;
mod inotify;
mod poll;

pub use debounce::Debounce;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("inotify is not available: {0} (use --reload-engine poll)")]
    InotifyUnavailable(std::io::Error),
    #[error("cannot watch {path}: {err}")]
    Watch { path: String, err: std::io::Error },
}

/// Which engine watches the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Inotify,
    Poll { interval: Duration },
}

/// Names editors and tools write next to real files; never a reason to reload.
pub fn is_ignored(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if path.components().any(|c| c.as_os_str() == "__pycache__") {
        return true;
    }
    name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.ends_with(".pyc")
        || name.ends_with(".pyo")
        || name.ends_with(".tmp")
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
        || name == "4913" // vim's write-permission probe
}

/// Watches a set of files through their directories.
pub struct Watcher {
    files: BTreeSet<PathBuf>,
    /// Glob patterns: files created later that match are watched too.
    patterns: Vec<glob::Pattern>,
    engine: Box<dyn EngineImpl>,
}

trait EngineImpl {
    fn fd(&self) -> Option<i32>;
    fn watch_dir(&mut self, dir: &Path) -> Result<(), WatchError>;
    /// A file joined the watched set: what it is now is not a change.
    fn track(&mut self, _file: &Path) {}
    /// Paths that changed since the last call (directory entries).
    fn changes(&mut self, files: &BTreeSet<PathBuf>) -> Vec<PathBuf>;
}

impl Watcher {
    pub fn new(engine: Engine) -> Result<Watcher, WatchError> {
        let engine: Box<dyn EngineImpl> = match engine {
            Engine::Inotify => Box::new(inotify::Inotify::new()?),
            Engine::Poll { .. } => Box::new(poll::Poll::default()),
        };
        Ok(Watcher {
            files: BTreeSet::new(),
            patterns: Vec::new(),
            engine,
        })
    }

    /// Add files (e.g. the app's modules); their directories get watched.
    pub fn add_files<I: IntoIterator<Item = PathBuf>>(
        &mut self,
        files: I,
    ) -> Result<(), WatchError> {
        let mut dirs = BTreeSet::new();
        for f in files {
            if is_ignored(&f) {
                continue;
            }
            if let Some(d) = f.parent() {
                dirs.insert(d.to_path_buf());
            }
            if !self.files.contains(&f) {
                self.engine.track(&f);
                self.files.insert(f);
            }
        }
        // One directory that cannot be watched (permissions, the inotify
        // watch limit) must not leave the others unwatched.
        let mut first_err = None;
        for d in dirs {
            if let Err(e) = self.engine.watch_dir(&d) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Watch what `pattern` (a path or a glob, relative to `base`) matches,
    /// now and later.
    pub fn add_pattern(&mut self, pattern: &str, base: &Path) -> Result<(), WatchError> {
        let p = glob::Pattern::new(pattern, base);
        for d in p.dirs() {
            if d.is_dir() {
                self.engine.watch_dir(&d)?;
            }
        }
        if glob::is_pattern(pattern) {
            self.add_files(p.expand())?;
            self.patterns.push(p);
        } else {
            // A plain path is watched even if it does not exist yet: its
            // creation is a change like any other.
            self.add_files([p.root.clone()])?;
        }
        Ok(())
    }

    /// Files matching a pattern that are not watched yet.
    fn new_pattern_matches(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = self
            .patterns
            .iter()
            .flat_map(|p| p.expand())
            .filter(|f| !self.files.contains(f) && !is_ignored(f))
            .collect();
        found.sort();
        found.dedup();
        found
    }

    pub fn watched(&self) -> &BTreeSet<PathBuf> {
        &self.files
    }

    /// Poll this in the caller's loop (inotify); None for the poll engine.
    pub fn fd(&self) -> Option<i32> {
        self.engine.fd()
    }

    /// Watched files that changed since the last call.
    pub fn scan(&mut self) -> Vec<PathBuf> {
        let polling = self.engine.fd().is_none();
        if polling && !self.patterns.is_empty() {
            // A new file matching a pattern is a change; the poll engine
            // only compares files it already knows, so expand again here.
            let new = self.new_pattern_matches();
            if !new.is_empty() {
                let _ = self.add_files(new.clone());
                // Let the engine record the new files' stamps.
                let _ = self.engine.changes(&self.files);
                return new;
            }
        }
        let mut seen = BTreeMap::new();
        let mut new_dirs = false;
        for p in self.engine.changes(&self.files) {
            if is_ignored(&p) {
                continue;
            }
            if self.files.contains(&p) {
                seen.insert(p, ());
            } else if self.patterns.iter().any(|pat| pat.matches(&p)) {
                self.files.insert(p.clone());
                seen.insert(p, ());
            } else if p.is_dir() && self.patterns.iter().any(|pat| pat.may_hold(&p)) {
                // A new directory where "**" or a wildcard directory could
                // match: watch it (and what is already inside, created before
                // the watch was in place).
                let mut dirs = vec![p.clone()];
                glob::collect_dirs(&p, &mut dirs, 0);
                for d in dirs {
                    let _ = self.engine.watch_dir(&d);
                }
                new_dirs = true;
            }
        }
        if new_dirs {
            for f in self.new_pattern_matches() {
                self.files.insert(f.clone());
                seen.insert(f, ());
            }
        }
        seen.into_keys().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_droppings_are_ignored() {
        for p in [
            "a/.app.py.swp",
            "a/app.py~",
            "a/__pycache__/app.cpython-311.pyc",
            "a/#app.py#",
            "a/.#app.py",
            "a/4913",
        ] {
            assert!(is_ignored(Path::new(p)), "{p}");
        }
        assert!(!is_ignored(Path::new("a/app.py")));
        assert!(!is_ignored(Path::new("templates/index.html")));
    }

    fn roundtrip(engine: Engine) {
        let dir = std::env::temp_dir().join(
            format!("reload-test-{}-{:?}", std::process::id(), engine)
                .replace([' ', '{', '}', ':'], ""),
        );
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("app.py");
        std::fs::write(&file, "v = 1\n").unwrap();
        let mut w = Watcher::new(engine).unwrap();
        w.add_files([file.clone()]).unwrap();
        assert!(w.scan().is_empty());
        std::thread::sleep(Duration::from_millis(20));
        // Save by rename, as editors do.
        let tmp = dir.join(".app.py.tmp");
        std::fs::write(&tmp, "v = 2\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let mut changed = vec![];
        for _ in 0..100 {
            changed = w.scan();
            if !changed.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(changed, vec![file]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("reload-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn scan_until_change(w: &mut Watcher) -> Vec<PathBuf> {
        for _ in 0..100 {
            let changed = w.scan();
            if !changed.is_empty() {
                return changed;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        vec![]
    }

    #[test]
    fn polling_sees_a_save_made_right_after_the_file_was_added() {
        let dir = temp_dir("poll-baseline");
        let file = dir.join("app.py");
        std::fs::write(&file, "v = 1\n").unwrap();
        let mut w = Watcher::new(Engine::Poll {
            interval: Duration::from_millis(10),
        })
        .unwrap();
        w.add_files([file.clone()]).unwrap();
        // Saved before the first scan: still a change.
        std::fs::write(&file, "v = 22\n").unwrap();
        assert_eq!(w.scan(), vec![file]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn inotify_sees_matches_in_a_directory_created_later() {
        let dir = temp_dir("inotify-newdir");
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        let mut w = Watcher::new(Engine::Inotify).unwrap();
        w.add_pattern("templates/**/*.html", &dir).unwrap();
        assert!(w.scan().is_empty());
        std::fs::create_dir_all(dir.join("templates/admin/deep")).unwrap();
        std::fs::write(dir.join("templates/admin/deep/list.html"), "x").unwrap();
        assert_eq!(
            scan_until_change(&mut w),
            vec![dir.join("templates/admin/deep/list.html")]
        );
        // Now an edit inside the new directory is seen too.
        std::fs::write(dir.join("templates/admin/deep/list.html"), "y").unwrap();
        assert_eq!(
            scan_until_change(&mut w),
            vec![dir.join("templates/admin/deep/list.html")]
        );
        // Deleted and recreated, the directory is watched again.
        std::fs::remove_dir_all(dir.join("templates/admin")).unwrap();
        let _ = scan_until_change(&mut w);
        std::fs::create_dir_all(dir.join("templates/admin")).unwrap();
        std::fs::write(dir.join("templates/admin/new.html"), "z").unwrap();
        assert!(scan_until_change(&mut w).contains(&dir.join("templates/admin/new.html")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn inotify_sees_a_save_by_rename() {
        roundtrip(Engine::Inotify);
    }

    #[test]
    fn polling_sees_a_save_by_rename() {
        roundtrip(Engine::Poll {
            interval: Duration::from_millis(10),
        });
    }
}
