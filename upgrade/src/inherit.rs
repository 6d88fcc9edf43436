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

/// Check that `fd` is open and a listening stream socket.
pub fn check_listener(fd: RawFd) -> Result<(), String> {
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err("not an open file descriptor".into());
    }
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    };
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
///
/// `LISTEN_FDS` counts only when `LISTEN_PID` names this process, as in
/// systemd's `sd_listen_fds`: the variables leak into children (a shell a
/// unit starts, say), which must not take the fds as theirs. Then
/// `GUNICORN_FD` is used if present. An fd that is not a listening socket
/// is an error: the caller refuses to start rather than serve on it.
pub fn take_inherited() -> Result<Inherited, UpgradeError> {
    let listen_fds = var(vars::LISTEN_FDS);
    let listen_pid = var(vars::LISTEN_PID);
    let names = var(vars::LISTEN_FDNAMES);
    let gunicorn_fd = var(vars::GUNICORN_FD);
    let ready = var(vars::READY_FD);
    let from = var(vars::UPGRADE_FROM);
    let owned = var(vars::OWNED_FDS);
    for v in vars::ALL {
        // SAFETY: called single-threaded at start-up, before any other thread exists.
        unsafe { std::env::remove_var(v) };
    }
    let me = std::process::id();
    let mut out = Inherited::default();
    let mut fds: Vec<RawFd> = Vec::new();
    let mut use_names = false;
    let ours = listen_pid
        .as_deref()
        .map(|p| p.trim().parse::<u32>().ok() == Some(me))
        .unwrap_or(false);
    if let Some(n) = listen_fds.as_ref().filter(|_| ours) {
        let count: i32 = n
            .parse()
            .ok()
            .filter(|c| (0..=1024).contains(c))
            .ok_or_else(|| bad(vars::LISTEN_FDS, n, "expected a number of fds"))?;
        fds.extend(FIRST_FD..FIRST_FD + count);
        use_names = true;
    } else {
        if let Some(n) = &listen_fds {
            out.ignored = Some(format!(
                "{}={n} ignored: {}={} is not this process ({me}); the sockets were meant for another process",
                vars::LISTEN_FDS,
                vars::LISTEN_PID,
                listen_pid.as_deref().unwrap_or("(unset)")
            ));
        }
        if let Some(list) = &gunicorn_fd {
            for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                fds.push(
                    part.parse().map_err(|_| {
                        bad(vars::GUNICORN_FD, list, "expected fd numbers like 3,4")
                    })?,
                );
            }
        }
    }
    let names: Vec<Option<String>> = match (&names, use_names) {
        (Some(n), true) => n
            .split(':')
            .map(|s| Some(decode_name(s)).filter(|s| !s.is_empty()))
            .collect(),
        _ => vec![],
    };
    let owned: Vec<RawFd> = owned
        .iter()
        .flat_map(|o| o.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let mut seen = Vec::new();
    for (i, fd) in fds.iter().enumerate() {
        if seen.contains(fd) {
            continue;
        }
        seen.push(*fd);
        check_listener(*fd).map_err(|why| UpgradeError::NotAListener { fd: *fd, why })?;
        set_cloexec(*fd);
        // SAFETY: checked open above; ownership passes to the caller.
        let owned_fd = unsafe { OwnedFd::from_raw_fd(*fd) };
        out.sockets.push(InheritedSocket {
            fd: owned_fd,
            name: names.get(i).cloned().flatten(),
            owns_path: owned.contains(fd),
        });
    }
    // The readiness pipe and the old master's pid only mean something
    // together with sockets handed over for this very process.
    if ours || listen_fds.is_none() {
        if let Some(r) = ready {
            let fd: RawFd = r
                .parse()
                .map_err(|_| bad(vars::READY_FD, &r, "expected an fd number"))?;
            if fd > 2 && !seen.contains(&fd) && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
                set_cloexec(fd);
                // SAFETY: open (checked) and not one of the sockets taken above.
                out.ready_fd = Some(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        out.upgraded_from = from.and_then(|p| p.parse().ok());
    }
    Ok(out)
}
