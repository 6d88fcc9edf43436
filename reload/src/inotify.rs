//! The inotify engine: one non-blocking inotify fd watching directories.

use std::collections::{BTreeSet, HashMap};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct Inotify {
    fd: i32,
    dirs: HashMap<i32, PathBuf>,
    watched: BTreeSet<PathBuf>,
}

impl Inotify {
    pub fn new() -> Result<Inotify, super::WatchError> {
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(super::WatchError::InotifyUnavailable(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Inotify {
            fd,
            dirs: HashMap::new(),
            watched: BTreeSet::new(),
        })
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        unsafe { libc::close(self.fd) };
    }
}

impl super::EngineImpl for Inotify {
    fn fd(&self) -> Option<i32> {
        Some(self.fd)
    }

    fn watch_dir(&mut self, dir: &Path) -> Result<(), super::WatchError> {
        if self.watched.contains(dir) {
            return Ok(());
        }
        let c = CString::new(dir.as_os_str().as_bytes()).map_err(|_| super::WatchError::Watch {
            path: dir.display().to_string(),
            err: std::io::Error::other("path contains NUL"),
        })?;
        let mask = libc::IN_CLOSE_WRITE
            | libc::IN_MOVED_TO
            | libc::IN_CREATE
            | libc::IN_DELETE
            | libc::IN_MOVED_FROM
            | libc::IN_ATTRIB;
        let wd = unsafe { libc::inotify_add_watch(self.fd, c.as_ptr(), mask) };
        if wd < 0 {
            return Err(super::WatchError::Watch {
                path: dir.display().to_string(),
                err: std::io::Error::last_os_error(),
            });
        }
        self.dirs.insert(wd, dir.to_path_buf());
        self.watched.insert(dir.to_path_buf());
        Ok(())
    }

    fn changes(&mut self, files: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            let header = std::mem::size_of::<libc::inotify_event>();
            while off + header <= n as usize {
                // SAFETY: the kernel writes whole events; read_unaligned copes with alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                let name_bytes = &buf[off + header..off + header + ev.len as usize];
                let name_end = name_bytes
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(name_bytes.len());
                if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                    // Events were lost: any watched file may have changed.
                    out.extend(files.iter().cloned());
                } else if ev.mask & libc::IN_IGNORED != 0 {
                    // The directory is gone (deleted, or its file system
                    // unmounted): forget it, so that a directory recreated
                    // under the same name can be watched again.
                    if let Some(dir) = self.dirs.remove(&ev.wd) {
                        self.watched.remove(&dir);
                    }
                } else if let Some(dir) = self.dirs.get(&ev.wd) {
                    if name_end > 0 {
                        out.push(dir.join(std::ffi::OsStr::from_bytes(&name_bytes[..name_end])));
                    }
                }
                off += header + ev.len as usize;
            }
        }
        out
    }
}
