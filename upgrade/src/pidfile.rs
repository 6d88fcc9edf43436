//! The pidfile dance of an upgrade, as nginx and gunicorn do it: the old
//! master's pidfile moves to `<pidfile>.oldbin` while the new one starts, and
//! moves back if the upgrade fails.
//!
//! Next to them, `<pidfile>.upgrade` records the outcome of the latest
//! upgrade as one line, `<state> <detail>`: `ready <new pid>`,
//! `failed <reason>` or `ignored <reason>`. A tool that removes it, sends
//! USR2 and waits for it learns what happened and why, however quickly.

use crate::UpgradeError;
use std::path::{Path, PathBuf};

fn with_suffix(pidfile: &Path, suffix: &str) -> PathBuf {
    let mut s = pidfile.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn oldbin_path(pidfile: &Path) -> PathBuf {
    with_suffix(pidfile, ".oldbin")
}

pub fn status_path(pidfile: &Path) -> PathBuf {
    with_suffix(pidfile, ".upgrade")
}

pub fn rotate_to_oldbin(pidfile: &Path) -> Result<PathBuf, UpgradeError> {
    let old = oldbin_path(pidfile);
    std::fs::rename(pidfile, &old).map_err(|err| UpgradeError::Pidfile {
        path: pidfile.display().to_string(),
        err,
    })?;
    Ok(old)
}

/// Put the old master's pidfile back (the upgrade failed or was rolled back).
pub fn restore_from_oldbin(pidfile: &Path) -> Result<(), UpgradeError> {
    let old = oldbin_path(pidfile);
    std::fs::rename(&old, pidfile).map_err(|err| UpgradeError::Pidfile {
        path: old.display().to_string(),
        err,
    })
}

/// The outcome of the latest upgrade, as [`write_status`] recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ready(u32),
    Failed(String),
    Ignored(String),
}

/// Record an outcome (write then rename: readers never see half a line).
pub fn write_status(pidfile: &Path, status: &Status) -> std::io::Result<()> {
    let line = match status {
        Status::Ready(pid) => format!("ready {pid}\n"),
        Status::Failed(why) => format!("failed {}\n", why.replace('\n', " ")),
        Status::Ignored(why) => format!("ignored {}\n", why.replace('\n', " ")),
    };
    let path = status_path(pidfile);
    let tmp = with_suffix(&path, &format!(".tmp{}", std::process::id()));
    std::fs::write(&tmp, line)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

pub fn read_status(pidfile: &Path) -> Option<Status> {
    let text = std::fs::read_to_string(status_path(pidfile)).ok()?;
    let line = text.trim_end();
    let (state, detail) = line.split_once(' ').unwrap_or((line, ""));
    match state {
        "ready" => detail.trim().parse().ok().map(Status::Ready),
        "failed" => Some(Status::Failed(detail.to_string())),
        "ignored" => Some(Status::Ignored(detail.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_and_status_round_trip() {
        let dir = std::env::temp_dir().join(format!("upgrade-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pf = dir.join("app.pid");
        std::fs::write(&pf, "42\n").unwrap();
        rotate_to_oldbin(&pf).unwrap();
        assert!(!pf.exists());
        assert_eq!(std::fs::read_to_string(oldbin_path(&pf)).unwrap(), "42\n");
        restore_from_oldbin(&pf).unwrap();
        assert_eq!(std::fs::read_to_string(&pf).unwrap(), "42\n");
        for s in [
            Status::Ready(7),
            Status::Failed("the new master exited\nwith code 4".into()),
            Status::Ignored("busy".into()),
        ] {
            write_status(&pf, &s).unwrap();
            let back = read_status(&pf).unwrap();
            match (&s, &back) {
                (Status::Failed(a), Status::Failed(b)) => assert_eq!(a.replace('\n', " "), *b),
                _ => assert_eq!(s, back),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
