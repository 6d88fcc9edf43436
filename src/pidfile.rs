//! The master's pidfile: refuse to start over a live master, remove it on exit
//! only if it still names this process (after a binary upgrade it names the
//! new master; see `ferricorn_upgrade::pidfile` for `.oldbin`).

use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
}

impl Pidfile {
    /// Write `pid` to `path`, unless a live process other than us already owns it.
    pub fn create(path: &Path, pid: u32) -> Result<Pidfile, String> {
        if let Some(other) = read_pid(path) {
            if other != pid && process_alive(other) {
                return Err(format!(
                    "Already running on PID {other} (or pid file '{}' is stale)",
                    path.display()
                ));
            }
        }
        write_pid(path, pid)?;
        Ok(Pidfile {
            path: path.to_path_buf(),
        })
    }

    /// A pidfile this process writes later: a master started by a binary
    /// upgrade writes it only once it is ready, since until then the old
    /// master may still take the path back.
    pub fn deferred(path: &Path) -> Pidfile {
        Pidfile {
            path: path.to_path_buf(),
        }
    }

    pub fn write(&self, pid: u32) -> Result<(), String> {
        write_pid(&self.path, pid)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the file if it still holds `pid` (a newer master may own it now).
    pub fn remove_if_ours(&self, pid: u32) {
        if read_pid(&self.path) == Some(pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub fn write_pid(path: &Path, pid: u32) -> Result<(), String> {
    // Write then rename, so a reader never sees an empty or half-written file.
    let tmp = path.with_extension(format!("tmp{pid}"));
    std::fs::write(&tmp, format!("{pid}\n"))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("Cannot write pid file {}: {e}", path.display())
        })
}

pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn process_alive(pid: u32) -> bool {
    // Signal 0 checks the pid only; EPERM means it is alive but not ours.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}
