//! The receiving side: listeners handed over by a previous master, systemd,
//! or a supervisor speaking gunicorn's `GUNICORN_FD`.

use crate::env::{decode_name, vars, FIRST_FD};
use crate::UpgradeError;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

#[derive(Debug)]
pub struct InheritedSocket {
    pub fd: OwnedFd,
    /// The bind address the sender used, when it said (LISTEN_FDNAMES).
    pub name: Option<String>,
}

#[derive(Debug, Default)]
pub struct Inherited {
    pub sockets: Vec<InheritedSocket>,
    /// Write end of the readiness pipe, when started by an upgrading master.
    pub ready_fd: Option<OwnedFd>,
    /// The pid of the master that started this one by an upgrade.
    pub upgraded_from: Option<u32>,
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn bad(var: &'static str, value: &str, why: &str) -> UpgradeError {
    UpgradeError::BadVariable { var, value: value.to_string(), why: why.to_string() }
}

/// Check that `fd` is open and a listening stream socket.
pub fn check_listener(fd: RawFd) -> Result<(), String> {
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err("not an open file descriptor".into());
    }
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, (&mut val as *mut libc::c_int).cast(), &mut len) };
    if r < 0 {
        return Err("not a socket".into());
    }
    if val == 0 {
        return Err("a socket, but not listening".into());
    }
    Ok(())
}

fn set_cloexec(fd: RawFd) {
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags >= 0 {
        unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    }
}

/// Read, validate and remove the hand-off variables. Call once, first thing,
/// while the process is single-threaded (it edits the environment).
pub fn take_inherited() -> Result<Inherited, UpgradeError> {
    let listen_fds = var(vars::LISTEN_FDS);
    let listen_pid = var(vars::LISTEN_PID);
    let names = var(vars::LISTEN_FDNAMES);
    let gunicorn_fd = var(vars::GUNICORN_FD);
    let ready = var(vars::READY_FD);
    let from = var(vars::UPGRADE_FROM);
    for v in vars::ALL {
        // SAFETY: called single-threaded at start-up, before any other thread exists.
        unsafe { std::env::remove_var(v) };
    }
    let me = std::process::id();
    let mut fds: Vec<RawFd> = Vec::new();
    if let Some(n) = &listen_fds {
        let count: i32 = n.parse().map_err(|_| bad(vars::LISTEN_FDS, n, "expected a number"))?;
        if let Some(pid) = &listen_pid {
            let pid: u32 = pid.parse().map_err(|_| bad(vars::LISTEN_PID, pid, "expected a pid"))?;
            if pid != me {
                return Err(UpgradeError::NotForUs { expected: pid, actual: me });
            }
        }
        fds.extend(FIRST_FD..FIRST_FD + count);
    } else if let Some(list) = &gunicorn_fd {
        for part in list.split(',') {
            fds.push(part.trim().parse().map_err(|_| bad(vars::GUNICORN_FD, list, "expected fd numbers like 3,4"))?);
        }
    }
    let names: Vec<Option<String>> = match &names {
        Some(n) => n.split(':').map(|s| Some(decode_name(s)).filter(|s| !s.is_empty())).collect(),
        None => vec![],
    };
    let mut sockets = Vec::new();
    for (i, fd) in fds.iter().enumerate() {
        check_listener(*fd).map_err(|why| UpgradeError::NotAListener { fd: *fd, why })?;
        set_cloexec(*fd);
        // SAFETY: checked open above; ownership passes to the caller.
        let owned = unsafe { OwnedFd::from_raw_fd(*fd) };
        sockets.push(InheritedSocket { fd: owned, name: names.get(i).cloned().flatten() });
    }
    let ready_fd = match ready {
        Some(r) => {
            let fd: RawFd = r.parse().map_err(|_| bad(vars::READY_FD, &r, "expected an fd number"))?;
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                None
            } else {
                set_cloexec(fd);
                Some(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        }
        None => None,
    };
    Ok(Inherited { sockets, ready_fd, upgraded_from: from.and_then(|p| p.parse().ok()) })
}
