//! Hot reload, the master's side: watch the app's files, and on a change
//! start a new worker generation (the same rolling restart as HUP: each old
//! worker retires only once a new one has booted, and new code that fails
//! to import leaves the old workers serving).
//!
//! The watcher is polled from the master loop (an inotify fd in its poll
//! set, or a scan on its tick), so the master keeps no threads. Workers
//! report the files behind `sys.modules` (`Message::Watch`); the
//! `--reload-extra-file` patterns are watched from the start.

use super::Arbiter;
use crate::config::Config;
use ferricorn_reload::{Debounce, Engine, Watcher};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A burst of writes (an editor's temp file and rename, a formatter) within
/// this much time is one change.
const QUIET: Duration = Duration::from_millis(8);
/// A file written continuously still reloads this often.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// Reloads start at most this often, so a storm of saves costs a few
/// generations, not one per save.
const MIN_SPACING: Duration = Duration::from_millis(150);

pub(super) struct Reload {
    watcher: Watcher,
    debounce: Debounce,
    poll_interval: Option<Duration>,
    next_scan: Instant,
    last_start: Option<Instant>,
    /// Changes are waiting for the last reload's workers to boot; their
    /// reports wake the master, so no timer is needed meanwhile.
    held_for_boot: bool,
    /// A config file whose change means a configuration reload (HUP).
    config_file: Option<PathBuf>,
}

impl Reload {
    pub(super) fn new(cfg: &Config, config_file: Option<PathBuf>) -> Result<Reload, String> {
        let poll = Engine::Poll {
            interval: cfg.reload_poll_interval,
        };
        let mut poll_interval = None;
        let watcher = match cfg.reload_engine.as_str() {
            "poll" => {
                poll_interval = Some(cfg.reload_poll_interval);
                Watcher::new(poll)
            }
            "inotify" => Watcher::new(Engine::Inotify),
            _ => Watcher::new(Engine::Inotify).or_else(|e| {
                crate::warning!(
                    "{e}; falling back to polling every {:?}",
                    cfg.reload_poll_interval
                );
                poll_interval = Some(cfg.reload_poll_interval);
                Watcher::new(poll)
            }),
        }
        .map_err(|e| e.to_string())?;
        let mut r = Reload {
            watcher,
            debounce: Debounce::new(QUIET, MAX_WAIT),
            poll_interval,
            next_scan: Instant::now(),
            last_start: None,
            held_for_boot: false,
            config_file,
        };
        for pattern in &cfg.reload_extra_files {
            r.watcher
                .add_pattern(pattern, &cfg.chdir)
                .map_err(|e| format!("--reload-extra-file {pattern}: {e}"))?;
        }
        if let Some(f) = r.config_file.clone() {
            let _ = r.watcher.add_files([f]);
        }
        crate::info!(
            "Reloading on code changes ({} engine)",
            if r.poll_interval.is_some() {
                "poll"
            } else {
                "inotify"
            }
        );
        Ok(r)
    }

    pub(super) fn fd(&self) -> Option<i32> {
        self.watcher.fd()
    }

    pub(super) fn add_files(&mut self, files: Vec<String>) {
        // Events already queued (inotify) belong to the files watched so
        // far: take them first, or the creation of a module the worker has
        // just imported would look like a change to it.
        if self.poll_interval.is_none() {
            let pending = self.watcher.scan();
            self.debounce.push(pending, Instant::now());
        }
        let before = self.watcher.watched().len();
        if let Err(e) = self.watcher.add_files(files.into_iter().map(PathBuf::from)) {
            crate::warning!("Reloader: {e}");
        }
        let added = self.watcher.watched().len() - before;
        if added > 0 {
            crate::debug!("Reloader: watching {} files", self.watcher.watched().len());
        }
    }

    /// How long the master may sleep before the reloader needs a turn.
    pub(super) fn timeout(&self, now: Instant) -> Duration {
        let mut t = Duration::from_secs(1);
        if let Some(due) = self.debounce.due().filter(|_| !self.held_for_boot) {
            // Not before the spacing allows: a due burst held back by it
            // would otherwise make the master spin.
            let due = self.last_start.map_or(due, |t| due.max(t + MIN_SPACING));
            t = t.min(due.saturating_duration_since(now));
        }
        if self.poll_interval.is_some() {
            t = t.min(self.next_scan.saturating_duration_since(now));
        }
        t
    }

    /// Collect changes; when a burst is over and no reload is still
    /// booting, return what changed.
    pub(super) fn tick(&mut self, now: Instant, booting: bool) -> Option<Vec<PathBuf>> {
        let scan = match self.poll_interval {
            Some(every) if now >= self.next_scan => {
                self.next_scan = now + every;
                true
            }
            Some(_) => false,
            None => true,
        };
        if scan {
            let changed = self.watcher.scan();
            self.debounce.push(changed, now);
        }
        self.held_for_boot = booting;
        if booting || self.last_start.is_some_and(|t| now < t + MIN_SPACING) {
            return None;
        }
        let changed = self.debounce.fire(now)?;
        self.last_start = Some(now);
        Some(changed)
    }

    pub(super) fn is_config_file(&self, changed: &[PathBuf]) -> bool {
        self.config_file
            .as_ref()
            .is_some_and(|c| changed.contains(c))
    }
}

/// Python trusts a module's cached bytecode while the source's mtime, in
/// whole seconds, and size match the ones recorded in it; an edit of the
/// same size within the second of the last compile (a version bump, two
/// quick saves) would make the new workers import the old code. Dropping
/// the changed modules' caches makes them compile the source.
fn forget_bytecode(changed: &[PathBuf]) {
    for f in changed {
        if f.extension() != Some(std::ffi::OsStr::new("py")) {
            continue;
        }
        let (Some(dir), Some(stem)) = (f.parent(), f.file_stem()) else {
            continue;
        };
        // `<module>.<tag>[.opt-N].pyc`; module names hold no dot.
        let prefix = format!("{}.", stem.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(dir.join("__pycache__")) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".pyc") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Arbiter {
    /// One turn of the reloader in the master loop.
    pub(super) fn reload_tick(&mut self) {
        let generation = self.generation;
        let booting = self
            .workers
            .iter()
            .any(|w| w.generation == generation && !w.is_booted() && !w.is_retiring());
        let Some(reload) = self.reload.as_mut() else {
            return;
        };
        let Some(changed) = reload.tick(Instant::now(), booting) else {
            return;
        };
        let config_changed = reload.is_config_file(&changed);
        let names: Vec<String> = changed.iter().map(|p| p.display().to_string()).collect();
        crate::info!("Reloading: {} modified", names.join(", "));
        forget_bytecode(&changed);
        if config_changed {
            // The configuration itself changed: what HUP does.
            self.on_hup();
        } else if self.preloaded.is_some() {
            // The master holds the app's code: only a new master loads the
            // new code. A self-upgrade in auto mode hands over seamlessly.
            self.on_usr2();
        } else {
            self.start_generation();
        }
    }

    /// A new worker generation with the current configuration.
    pub(super) fn start_generation(&mut self) {
        self.generation += 1;
        self.blocked_generation = None;
        self.reload_started();
    }
}
