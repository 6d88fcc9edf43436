//! The receiving side: listeners handed over by a previous master, systemd,
//! or a supervisor speaking gunicorn's `GUNICORN_FD`.

use crate::env::{decode_name, vars, FIRST_FD};
use crate::UpgradeError;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{getsockopt, sockopt};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

#[derive(Debug)]
pub struct InheritedSocket {
    pub fd: OwnedFd,
    /// The bind address the sender used, when it said (LISTEN_FDNAMES).
    pub name: Option<String>,
    /// The sender created this unix socket's file (see `FERRICORN_OWNED_FDS`).
    pub owns_path: bool,
}

#[derive(Debug, Default)]
pub struct Inherited {
    pub sockets: Vec<InheritedSocket>,
    /// Write end of the readiness pipe, when started by an upgrading master.
    pub ready_fd: Option<OwnedFd>,
    /// The pid of the master that started this one by an upgrade.
    pub upgraded_from: Option<u32>,
    /// Variables that were present but not for this process, to log.
    pub ignored: Option<String>,
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn bad(var: &'static str, value: &str, why: &str) -> UpgradeError {
    UpgradeError::BadVariable {
        var,
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// Take ownership of `fd`, a descriptor number inherited across exec, if it
/// is open.
fn adopt(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags, and fails on a
    // number that is not open, so only an open fd is adopted. Nothing else
    // owns it: the variables name fds this process was started with, for it
    // to take; `take_inherited` runs first thing, before anything opens a
    // file, and adopts each number at most once (callers skip repeats).
    unsafe { (libc::fcntl(fd, libc::F_GETFD) >= 0).then(|| OwnedFd::from_raw_fd(fd)) }
}

/// Check that `fd` is a listening stream socket.
fn check_listener(fd: BorrowedFd) -> Result<(), String> {
    match getsockopt(&fd, sockopt::AcceptConn) {
        Err(_) => Err("not a socket".into()),
        Ok(false) => Err("a socket, but not listening".into()),
        Ok(true) => Ok(()),
    }
}

/// Inherited fds stay out of the next exec unless handed over again
/// (`FD_CLOEXEC` is the only descriptor flag).
fn set_cloexec(fd: BorrowedFd) {
    let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
}

/// Adopt `fd` if it is an open listening socket.
fn adopt_listener(fd: RawFd) -> Result<OwnedFd, UpgradeError> {
    let not_a_listener = |why: String| UpgradeError::NotAListener { fd, why };
    let owned = adopt(fd).ok_or_else(|| not_a_listener("not an open file descriptor".into()))?;
    if let Err(why) = check_listener(owned.as_fd()) {
        // Refused, not taken: leave it open, as it was found.
        let _ = owned.into_raw_fd();
        return Err(not_a_listener(why));
    }
    set_cloexec(owned.as_fd());
    Ok(owned)
}

/// The hand-off variables as found (empty ones count as unset).
struct HandoffVars {
    listen_fds: Option<String>,
    listen_pid: Option<String>,
    names: Option<String>,
    gunicorn_fd: Option<String>,
    ready: Option<String>,
    from: Option<String>,
    owned: Option<String>,
}

impl HandoffVars {
    /// Read the variables, then remove them all from the environment, so
    /// that nothing later (least of all app code) sees or inherits them.
    fn take() -> HandoffVars {
        let found = HandoffVars {
            listen_fds: var(vars::LISTEN_FDS),
            listen_pid: var(vars::LISTEN_PID),
            names: var(vars::LISTEN_FDNAMES),
            gunicorn_fd: var(vars::GUNICORN_FD),
            ready: var(vars::READY_FD),
            from: var(vars::UPGRADE_FROM),
            owned: var(vars::OWNED_FDS),
        };
        for v in vars::ALL {
            // Editing the environment races with any other thread reading
            // it; there is none yet: `take_inherited` runs single-threaded,
            // first thing at start-up.
            std::env::remove_var(v);
        }
        found
    }

    /// `LISTEN_PID` names process `me`: the `LISTEN_FDS` sockets are its own.
    fn listen_pid_is(&self, me: u32) -> bool {
        self.listen_pid
            .as_deref()
            .map(|p| p.trim().parse::<u32>().ok() == Some(me))
            .unwrap_or(false)
    }

    /// Why `LISTEN_FDS` was not taken, when it was set for another process.
    fn ignored_listen_fds(&self, me: u32) -> Option<String> {
        let n = self.listen_fds.as_ref()?;
        Some(format!(
            "{}={n} ignored: {}={} is not this process ({me}); the sockets were meant for another process",
            vars::LISTEN_FDS,
            vars::LISTEN_PID,
            self.listen_pid.as_deref().unwrap_or("(unset)")
        ))
    }
}

/// systemd's numbering: `LISTEN_FDS=n` means fds 3, 4, … 3+n-1.
fn listen_fds(n: &str) -> Result<Vec<RawFd>, UpgradeError> {
    let count: i32 = n
        .parse()
        .ok()
        .filter(|c| (0..=1024).contains(c))
        .ok_or_else(|| bad(vars::LISTEN_FDS, n, "expected a number of fds"))?;
    Ok((FIRST_FD..FIRST_FD + count).collect())
}

/// `LISTEN_FDNAMES`: one name per fd, `:`-separated; empty means unnamed.
fn listen_fd_names(names: Option<&str>) -> Vec<Option<String>> {
    names
        .map(|n| {
            n.split(':')
                .map(|s| Some(decode_name(s)).filter(|s| !s.is_empty()))
                .collect()
        })
        .unwrap_or_default()
}

/// gunicorn's `GUNICORN_FD=3,4`.
fn gunicorn_fds(list: Option<&str>) -> Result<Vec<RawFd>, UpgradeError> {
    let Some(list) = list else {
        return Ok(vec![]);
    };
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            part.parse()
                .map_err(|_| bad(vars::GUNICORN_FD, list, "expected fd numbers like 3,4"))
        })
        .collect()
}

/// Adopt each listed fd once, with its name and whether its socket file is
/// ours to remove.
fn adopt_sockets(
    fds: &[RawFd],
    names: &[Option<String>],
    owned: Option<&str>,
) -> Result<Vec<InheritedSocket>, UpgradeError> {
    let owned: Vec<RawFd> = owned
        .iter()
        .flat_map(|o| o.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let mut sockets = Vec::new();
    let mut seen = Vec::new();
    for (i, fd) in fds.iter().enumerate() {
        if seen.contains(fd) {
            continue;
        }
        seen.push(*fd);
        sockets.push(InheritedSocket {
            fd: adopt_listener(*fd)?,
            name: names.get(i).cloned().flatten(),
            owns_path: owned.contains(fd),
        });
    }
    Ok(sockets)
}

/// The readiness pipe's write end, if `value` names an open fd that is not
/// a standard stream nor one of the `sockets` fds.
fn adopt_ready_pipe(value: &str, sockets: &[RawFd]) -> Result<Option<OwnedFd>, UpgradeError> {
    let fd: RawFd = value
        .parse()
        .map_err(|_| bad(vars::READY_FD, value, "expected an fd number"))?;
    if fd <= 2 || sockets.contains(&fd) {
        return Ok(None);
    }
    let ready = adopt(fd);
    if let Some(r) = &ready {
        set_cloexec(r.as_fd());
    }
    Ok(ready)
}

/// Read, validate and remove the hand-off variables. Call once, first thing,
/// while the process is single-threaded (it edits the environment).
///
/// `LISTEN_FDS` counts only when `LISTEN_PID` names this process, as in
/// systemd's `sd_listen_fds`: the variables leak into children (a shell a
/// unit starts, say), which must not take the fds as theirs. Then
/// `GUNICORN_FD` is used if present. An fd that is not a listening socket
/// is an error: the caller refuses to start rather than serve on it.
pub fn take_inherited() -> Result<Inherited, UpgradeError> {
    let found = HandoffVars::take();
    let me = std::process::id();
    let ours = found.listen_pid_is(me);
    let mut out = Inherited::default();
    let (fds, names) = match found.listen_fds.as_deref().filter(|_| ours) {
        Some(n) => (listen_fds(n)?, listen_fd_names(found.names.as_deref())),
        None => {
            out.ignored = found.ignored_listen_fds(me);
            (gunicorn_fds(found.gunicorn_fd.as_deref())?, vec![])
        }
    };
    out.sockets = adopt_sockets(&fds, &names, found.owned.as_deref())?;
    // The readiness pipe and the old master's pid only mean something
    // together with sockets handed over for this very process.
    if ours || found.listen_fds.is_none() {
        if let Some(r) = &found.ready {
            out.ready_fd = adopt_ready_pipe(r, &fds)?;
        }
        out.upgraded_from = found.from.and_then(|p| p.parse().ok());
    }
    Ok(out)
}
