//! The pidfile dance of an upgrade, as nginx and gunicorn do it: the old
//! master's pidfile moves to `<pidfile>.oldbin` while the new one starts, and
//! moves back if the upgrade fails.

use crate::UpgradeError;
use std::path::{Path, PathBuf};

pub fn oldbin_path(pidfile: &Path) -> PathBuf {
    let mut s = pidfile.as_os_str().to_owned();
    s.push(".oldbin");
    PathBuf::from(s)
}

pub fn rotate_to_oldbin(pidfile: &Path) -> Result<PathBuf, UpgradeError> {
    let old = oldbin_path(pidfile);
    std::fs::rename(pidfile, &old).map_err(|err| UpgradeError::Pidfile { path: pidfile.display().to_string(), err })?;
    Ok(old)
}

/// Put the old master's pidfile back (the upgrade failed or was rolled back).
pub fn restore_from_oldbin(pidfile: &Path) -> Result<(), UpgradeError> {
    let old = oldbin_path(pidfile);
    std::fs::rename(&old, pidfile).map_err(|err| UpgradeError::Pidfile { path: old.display().to_string(), err })
}
