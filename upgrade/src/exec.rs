//! Starting the new master: fork, arrange the fds, exec the binary that is
//! on disk *now* at the path resolved when the server first started.

use crate::env::{encode_name, vars, write_decimal, FIRST_FD};
use crate::ready::Successor;
use crate::UpgradeError;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{chdir, fork, getpid, pipe2, ForkResult};
use std::ffi::{c_char, CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
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
    if !ctx.exe.exists() {
        return Err(UpgradeError::Spawn(format!(
            "{} does not exist (was the new binary installed?)",
            ctx.exe.display()
        )));
    }
    let (ready_read, ready_write) = readiness_pipe()?;
    let mut plan = ExecPlan::new(ctx, listeners, ready_write.as_raw_fd())?;
    // SAFETY: the child only makes async-signal-safe calls until it execs
    // or exits (`ExecPlan::exec_in_child`), which is what fork asks of a
    // process that may have other threads; the master has none anyway.
    let pid = match unsafe { fork() } {
        Err(e) => return Err(spawn_err("fork", e)),
        Ok(ForkResult::Child) => plan.exec_in_child(),
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(ready_write);
    Ok(Successor::new(
        pid.as_raw() as u32,
        ready_read,
        Instant::now() + ready_timeout,
    ))
}

fn spawn_err(what: &str, e: Errno) -> UpgradeError {
    UpgradeError::Spawn(format!("{what}: {}", std::io::Error::from(e)))
}

/// Both ends close-on-exec (the child hands a copy of the write end over);
/// the old master's read end is non-blocking: it is polled in its loop.
fn readiness_pipe() -> Result<(OwnedFd, OwnedFd), UpgradeError> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| spawn_err("pipe", e))?;
    let _ = fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    Ok((read, write))
}

/// Listeners plus the readiness pipe: the fds that can cross the exec.
const MAX_HANDED_FDS: usize = 256;

/// Room for a pid's digits (a u64 has at most 20) and the NUL after them.
const PID_ROOM: usize = 21;

/// The environment of the new master: this one's, less the hand-off
/// variables and `PWD`, plus the hand-off variables for `listeners` at fds
/// 3.. and the readiness pipe at `ready_target`. All but `LISTEN_PID`,
/// which only the child knows.
fn handoff_env(
    ctx: &StartContext,
    listeners: &[Handoff],
    ready_target: RawFd,
) -> Result<Vec<CString>, UpgradeError> {
    let n = listeners.len() as i32;
    let names: Vec<String> = listeners.iter().map(|l| encode_name(&l.name)).collect();
    let gunicorn_fds: Vec<String> = (0..n).map(|i| (FIRST_FD + i).to_string()).collect();
    let owned: Vec<String> = (0..n)
        .filter(|i| listeners[*i as usize].owns_path)
        .map(|i| (FIRST_FD + i).to_string())
        .collect();
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
    Ok(env)
}

/// Everything the forked child needs, allocated before fork: between fork
/// and exec the child may only make async-signal-safe calls, and allocating
/// is not one (the heap's lock may be held by a thread the child lacks).
struct ExecPlan<'a> {
    exe: CString,
    cwd: CString,
    /// Points into `StartContext::argv`, borrowed for `'a`; null-terminated.
    argv: Vec<*const c_char>,
    _args: &'a [CString],
    /// What `envp` points into.
    _env: Vec<CString>,
    /// `env`, a slot for `LISTEN_PID` (filled in the child), then null.
    envp: Vec<*const c_char>,
    /// `LISTEN_PID=` and room for the child's pid and a NUL.
    listen_pid: Vec<u8>,
    /// The listeners, then the readiness pipe's write end: placed at 3..
    sources: Vec<RawFd>,
    /// Where the readiness pipe's write end lands, right after the listeners.
    ready_target: RawFd,
}

impl<'a> ExecPlan<'a> {
    fn new(
        ctx: &'a StartContext,
        listeners: &[Handoff],
        ready_write: RawFd,
    ) -> Result<ExecPlan<'a>, UpgradeError> {
        let ready_target = FIRST_FD + listeners.len() as i32;
        let exe = CString::new(ctx.exe.as_os_str().as_bytes())
            .map_err(|_| UpgradeError::Spawn("executable path contains NUL".into()))?;
        let cwd = CString::new(ctx.cwd.as_os_str().as_bytes())
            .map_err(|_| UpgradeError::Spawn("working directory contains NUL".into()))?;
        let argv = ctx
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let env = handoff_env(ctx, listeners, ready_target)?;
        let envp = env
            .iter()
            .map(|e| e.as_ptr())
            .chain([std::ptr::null(), std::ptr::null()])
            .collect();
        let mut listen_pid = format!("{}=", vars::LISTEN_PID).into_bytes();
        listen_pid.extend_from_slice(&[0u8; PID_ROOM]);
        let sources: Vec<RawFd> = listeners
            .iter()
            .map(|l| l.fd)
            .chain(std::iter::once(ready_write))
            .collect();
        if sources.len() > MAX_HANDED_FDS {
            return Err(UpgradeError::Spawn(format!(
                "{} listeners: at most {} can be handed over",
                listeners.len(),
                MAX_HANDED_FDS - 1
            )));
        }
        Ok(ExecPlan {
            exe,
            cwd,
            argv,
            _args: &ctx.argv,
            _env: env,
            envp,
            listen_pid,
            sources,
            ready_target,
        })
    }

    /// In the forked child: place the fds, fill in `LISTEN_PID`, chdir and
    /// exec. Nothing here allocates (see [`ExecPlan`]).
    fn exec_in_child(&mut self) -> ! {
        place_fds_or_exit(&self.sources);
        self.fill_in_listen_pid();
        if let Err(e) = chdir(self.cwd.as_c_str()) {
            report_exec_failure(self.ready_target, e as i32);
        }
        // SAFETY: `exe` is a NUL-terminated path; `argv` and `envp` are
        // null-terminated arrays of NUL-terminated strings, all built before
        // fork and owned by `self` or borrowed from the `StartContext` for
        // `'a`, so alive for this call.
        unsafe { libc::execve(self.exe.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        report_exec_failure(self.ready_target, Errno::last_raw())
    }

    /// `LISTEN_PID` is the child's pid, known only after fork: write the
    /// digits into the room reserved for them.
    fn fill_in_listen_pid(&mut self) {
        let at = self.listen_pid.len() - PID_ROOM;
        let mut digits = [0u8; 20];
        let len = write_decimal(getpid().as_raw() as u64, &mut digits);
        self.listen_pid[at..at + len].copy_from_slice(&digits[..len]);
        self.listen_pid[at + len] = 0;
        let slot = self.envp.len() - 2;
        self.envp[slot] = self.listen_pid.as_ptr().cast();
    }
}

/// In the forked child: put `sources` at fds 3, 4, … or exit 127. First
/// lift every source above the target range so no dup2 overwrites a source
/// not yet moved, then place them (dup2 leaves the new fd without
/// `FD_CLOEXEC`: exactly these cross exec). Async-signal-safe only.
fn place_fds_or_exit(sources: &[RawFd]) {
    let mut lifted = [0 as RawFd; MAX_HANDED_FDS];
    let count = sources.len().min(lifted.len());
    // SAFETY: fcntl, dup2 and _exit are async-signal-safe and touch no
    // memory of this process. They work on raw fd numbers, as rearranging
    // the fd table must: a target number may be held by an `OwnedFd`
    // copied from the parent, but the child never uses nor drops one, as
    // it leaves only by execve or _exit.
    unsafe {
        for (slot, &fd) in lifted.iter_mut().zip(&sources[..count]) {
            *slot = libc::fcntl(
                fd,
                libc::F_DUPFD_CLOEXEC,
                FIRST_FD + MAX_HANDED_FDS as RawFd,
            );
            if *slot < 0 {
                libc::_exit(127);
            }
        }
        for (target, &fd) in (FIRST_FD..).zip(&lifted[..count]) {
            if libc::dup2(fd, target) < 0 {
                libc::_exit(127);
            }
        }
    }
}

/// In the forked child after a failed chdir/execve: tell the old master the
/// errno through the readiness pipe, then exit 127. Async-signal-safe only.
fn report_exec_failure(ready_fd: RawFd, errno: i32) -> ! {
    let mut msg = [0u8; 32];
    msg[..5].copy_from_slice(b"exec ");
    let mut digits = [0u8; 20];
    let len = write_decimal(errno.max(0) as u64, &mut digits);
    msg[5..5 + len].copy_from_slice(&digits[..len]);
    msg[5 + len] = b'\n';
    // SAFETY: write only reads `msg`, into the pipe's write end that
    // `place_fds_or_exit` put at `ready_fd`. _exit leaves at once, running
    // none of the parent's atexit handlers or output flushes in this copy.
    unsafe {
        libc::write(ready_fd, msg.as_ptr().cast(), 6 + len);
        libc::_exit(127)
    }
}
