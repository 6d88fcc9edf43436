//! Starting the new master: fork, arrange the fds, exec the binary that is
//! on disk *now* at the path resolved when the server first started.

use crate::env::{encode_name, vars, write_decimal, FIRST_FD};
use crate::ready::Successor;
use crate::UpgradeError;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How the server was started, saved at first start (Unicorn's START_CTX).
/// `/proc/self/exe` would name the old, possibly deleted, inode after a
/// deploy replaced the binary; the path resolved at start names the new one.
#[derive(Debug, Clone)]
pub struct StartContext {
    pub exe: PathBuf,
    pub argv: Vec<CString>,
    /// The directory to start in: `$PWD` when it names the same directory
    /// as the real cwd (so a symlinked release path is kept unresolved).
    pub cwd: PathBuf,
}

impl StartContext {
    /// Capture from this process's argv (pass the original, untitled one).
    pub fn capture(argv: Vec<CString>) -> StartContext {
        let argv0 = argv
            .first()
            .map(|a| PathBuf::from(OsStr::from_bytes(a.as_bytes())))
            .unwrap_or_default();
        let real_cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let cwd = match std::env::var_os("PWD").map(PathBuf::from) {
            Some(pwd) if same_dir(&pwd, &real_cwd) => pwd,
            _ => real_cwd.clone(),
        };
        let exe =
            resolve_exe(&argv0, &cwd).unwrap_or_else(|| std::env::current_exe().unwrap_or(argv0));
        StartContext { exe, argv, cwd }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// argv[0] as the shell would have found it: a path with a slash is taken
/// relative to the start directory (not resolved through symlinks, so a
/// `current/bin/ferricorn` path follows the symlink's next target), a bare
/// name is looked up on PATH.
fn resolve_exe(argv0: &Path, cwd: &Path) -> Option<PathBuf> {
    if argv0.as_os_str().is_empty() {
        return None;
    }
    if argv0.as_os_str().as_bytes().contains(&b'/') {
        let p = if argv0.is_absolute() {
            argv0.to_path_buf()
        } else {
            cwd.join(argv0)
        };
        return p.exists().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(argv0))
        .find(|p| p.is_file())
}

/// One listener to hand over.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub fd: RawFd,
    /// The bind address as configured (`127.0.0.1:8000`, `unix:/run/a.sock`),
    /// so the new master can match it to its own binds.
    pub name: String,
    /// This master created the unix socket file: the receiver inherits the
    /// duty to remove it when it is the last master to exit.
    pub owns_path: bool,
}

/// Fork and exec the new master with `listeners` at fds 3.. and a readiness
/// pipe right after them. Returns at once in the old master.
///
/// If `execve` fails, the child writes `exec <errno>` to the readiness pipe
/// before it exits 127, so [`Successor::poll`] can say why.
pub fn spawn_successor(
    ctx: &StartContext,
    listeners: &[Handoff],
    ready_timeout: std::time::Duration,
) -> Result<Successor, UpgradeError> {
    let spawn_err =
        |what: &str| UpgradeError::Spawn(format!("{what}: {}", std::io::Error::last_os_error()));
    if !ctx.exe.exists() {
        return Err(UpgradeError::Spawn(format!(
            "{} does not exist (was the new binary installed?)",
            ctx.exe.display()
        )));
    }
    let mut pipe = [0 as RawFd; 2];
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(spawn_err("pipe"));
    }
    let (ready_read, ready_write) =
        unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    unsafe { libc::fcntl(ready_read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };

    // Everything the child needs is allocated here, before fork: between
    // fork and exec the child only makes async-signal-safe calls.
    let n = listeners.len() as i32;
    let ready_target = FIRST_FD + n;
    let exe = CString::new(ctx.exe.as_os_str().as_bytes())
        .map_err(|_| UpgradeError::Spawn("executable path contains NUL".into()))?;
    let cwd = CString::new(ctx.cwd.as_os_str().as_bytes())
        .map_err(|_| UpgradeError::Spawn("working directory contains NUL".into()))?;
    let mut argv: Vec<*const libc::c_char> = ctx.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let names: Vec<String> = listeners.iter().map(|l| encode_name(&l.name)).collect();
    let gunicorn_fds: Vec<String> = (0..n).map(|i| (FIRST_FD + i).to_string()).collect();
    let owned: Vec<String> = (0..n)
        .filter(|i| listeners[*i as usize].owns_path)
        .map(|i| (FIRST_FD + i).to_string())
        .collect();
    // LISTEN_PID must be the child's pid, known only after fork: reserve room
    // and write the digits in the child without allocating.
    let mut pid_var: Vec<u8> = format!("{}=", vars::LISTEN_PID).into_bytes();
    let pid_digits_at = pid_var.len();
    pid_var.extend_from_slice(&[0u8; 21]);
    // SAFETY: within the buffer just sized; written only in the child.
    let pid_dst: *mut u8 = unsafe { pid_var.as_mut_ptr().add(pid_digits_at) };
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !vars::ALL.iter().any(|v| OsStr::new(v) == k) && k != "PWD")
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    for (k, v) in [
        (vars::LISTEN_FDS, n.to_string()),
        (vars::LISTEN_FDNAMES, names.join(":")),
        (vars::GUNICORN_FD, gunicorn_fds.join(",")),
        (vars::READY_FD, ready_target.to_string()),
        (vars::UPGRADE_FROM, std::process::id().to_string()),
        (vars::OWNED_FDS, owned.join(",")),
        ("PWD", ctx.cwd.display().to_string()),
    ] {
        env.push(
            CString::new(format!("{k}={v}"))
                .map_err(|_| UpgradeError::Spawn("bad environment".into()))?,
        );
    }
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(pid_var.as_ptr().cast());
    envp.push(std::ptr::null());
    let sources: Vec<RawFd> = listeners
        .iter()
        .map(|l| l.fd)
        .chain(std::iter::once(ready_write.as_raw_fd()))
        .collect();

    if sources.len() > 256 {
        return Err(UpgradeError::Spawn(format!(
            "{} listeners: at most 255 can be handed over",
            listeners.len()
        )));
    }
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(spawn_err("fork"));
    }
    if pid == 0 {
        // Child. First lift every source above the target range so no dup2
        // overwrites a source not yet moved, then place them at 3.. (dup2
        // leaves the new fd without FD_CLOEXEC: exactly these cross exec).
        unsafe {
            let mut lifted = [0 as RawFd; 256];
            let count = sources.len().min(lifted.len());
            for i in 0..count {
                lifted[i] = libc::fcntl(sources[i], libc::F_DUPFD_CLOEXEC, FIRST_FD + 256);
                if lifted[i] < 0 {
                    libc::_exit(127);
                }
            }
            for (target, fd) in (FIRST_FD..).zip(&lifted[..count]) {
                if libc::dup2(*fd, target) < 0 {
                    libc::_exit(127);
                }
            }
            let mut digits = [0u8; 20];
            let len = write_decimal(libc::getpid() as u64, &mut digits);
            std::ptr::copy_nonoverlapping(digits.as_ptr(), pid_dst, len);
            *pid_dst.add(len) = 0;
            if libc::chdir(cwd.as_ptr()) < 0 {
                report_exec_failure(ready_target);
            }
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            report_exec_failure(ready_target);
        }
    }
    drop(ready_write);
    Ok(Successor::new(
        pid as u32,
        ready_read,
        Instant::now() + ready_timeout,
    ))
}

/// In the forked child after a failed chdir/execve: tell the old master the
/// errno through the readiness pipe, then exit. Async-signal-safe only.
unsafe fn report_exec_failure(ready_fd: RawFd) -> ! {
    let errno = *libc::__errno_location();
    let mut msg = [0u8; 32];
    msg[..5].copy_from_slice(b"exec ");
    let mut digits = [0u8; 20];
    let len = write_decimal(errno.max(0) as u64, &mut digits);
    msg[5..5 + len].copy_from_slice(&digits[..len]);
    msg[5 + len] = b'\n';
    libc::write(ready_fd, msg.as_ptr().cast(), 6 + len);
    libc::_exit(127)
}
