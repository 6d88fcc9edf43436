//! Helpers for binary-upgrade tests (integration and chaos): a master
//! started from a copy of the binary, release directories behind a
//! `current` symlink, the pidfile dance, and a systemd notify receiver.

#![allow(dead_code)]

use crate::harness::*;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const T: Duration = Duration::from_secs(20);

pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn oldbin(pidfile: &Path) -> PathBuf {
    PathBuf::from(format!("{}.oldbin", pidfile.display()))
}

pub fn status(pidfile: &Path) -> String {
    std::fs::read_to_string(format!("{}.upgrade", pidfile.display())).unwrap_or_default()
}

/// Put `src` at `dst` the way a deploy does: write beside it, then rename
/// (overwriting a running executable in place fails with ETXTBSY).
pub fn install_binary(src: &Path, dst: &Path) {
    let tmp = dst.with_extension("new");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

/// A deployment directory: a copy of the binary, the pidfile, releases.
pub struct Deploy {
    pub dir: TempDir,
    pub bin: PathBuf,
    pub pidfile: PathBuf,
}

impl Deploy {
    pub fn new(tag: &str) -> Deploy {
        let dir = TempDir::new(tag);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let bin = dir.join("bin/ferricorn");
        install_binary(Path::new(BIN), &bin);
        let pidfile = dir.join("app.pid");
        Deploy { dir, bin, pidfile }
    }

    /// `releases/<name>/app.py` serving `body`; `prelude` runs at import
    /// (e.g. `raise ImportError(...)` for a broken release).
    pub fn release(&self, name: &str, body: &str, prelude: &str) {
        let d = self.dir.join(&format!("releases/{name}"));
        std::fs::create_dir_all(&d).unwrap();
        let mut src = format!("{prelude}\n");
        src.push_str(&format!(
            "def app(environ, start_response):\n    body = b'{body}'\n    start_response('200 OK', [('Content-Length', str(len(body)))])\n    return [body]\n"
        ));
        std::fs::write(d.join("app.py"), src).unwrap();
    }

    /// Point `current` at `releases/<name>` (atomically, as deploy tools do).
    pub fn switch(&self, name: &str) {
        let tmp = self.dir.join("current.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("releases/{name}"), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("current")).unwrap();
    }

    pub fn current(&self) -> PathBuf {
        self.dir.join("current")
    }

    /// A command running the copied binary with the pidfile, in `cwd`
    /// (with `$PWD` set to it, as a shell does, symlinks unresolved).
    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(cwd).env("PWD", cwd);
        cmd.args(["-p", self.pidfile.to_str().unwrap()]).args(args);
        cmd.env_remove("VIRTUAL_ENV")
            .env_remove("PORT")
            .env_remove("WEB_CONCURRENCY")
            .env_remove("NOTIFY_SOCKET");
        cmd
    }

    /// Start and wait until it serves on a TCP bind (the args must bind one).
    pub fn start(&self, cwd: &Path, args: &[&str]) -> Server {
        self.start_command(self.command(cwd, args))
    }

    /// As `start`, with the test venv as the app's environment.
    #[allow(dead_code)]
    pub fn start_in_venv(&self, cwd: &Path, args: &[&str]) -> Server {
        let mut cmd = self.command(cwd, args);
        let venv = crate::harness::venv().expect("the test venv is missing: run scripts/setup");
        cmd.env("VIRTUAL_ENV", venv);
        self.start_command(cmd)
    }

    fn start_command(&self, cmd: Command) -> Server {
        let mut s = Server::spawn_command(cmd);
        s.await_port(T);
        s.wait_ready(T);
        assert!(
            eventually(T, || read_pid(&self.pidfile) == Some(s.pid)),
            "no pidfile; log:\n{}",
            s.log()
        );
        s
    }

    pub fn master(&self) -> Option<u32> {
        read_pid(&self.pidfile)
    }
}

/// USR2 to `old`; wait until a new master says it is ready (the pidfile
/// names it, the old master logged it). Returns the new master's pid.
pub fn usr2_and_wait_ready(s: &Server, pidfile: &Path, old: u32) -> u32 {
    let before = s.count_log("is ready: all its workers have booted");
    unsafe { libc::kill(old as i32, libc::SIGUSR2) };
    assert!(
        s.wait_log_n("is ready: all its workers have booted", before + 1, T),
        "no new master became ready; log:\n{}",
        s.log()
    );
    let new = read_pid(pidfile).expect("pidfile");
    assert_ne!(new, old, "{}", s.log());
    new
}

/// USR2 to `old` expecting it to fail; returns the failure log line.
pub fn usr2_and_wait_failure(s: &Server, pidfile: &Path, old: u32) -> String {
    let before = s.count_log("Upgrade failed:");
    unsafe { libc::kill(old as i32, libc::SIGUSR2) };
    assert!(
        s.wait_log_n("Upgrade failed:", before + 1, Duration::from_secs(30)),
        "no failure logged; log:\n{}",
        s.log()
    );
    // The pidfile names the old master again, and nothing is left at .oldbin.
    assert!(
        eventually(T, || read_pid(pidfile) == Some(old)
            && !oldbin(pidfile).exists()),
        "{}",
        s.log()
    );
    let log = s.log();
    log.lines()
        .filter(|l| l.contains("Upgrade failed:"))
        .nth(before)
        .unwrap_or_default()
        .to_string()
}

/// The manual dance's end: WINCH (workers retire), then QUIT; waits until
/// the old master is gone.
pub fn phase_out(s: &Server, old: u32) {
    unsafe { libc::kill(old as i32, libc::SIGWINCH) };
    assert!(
        eventually(T, || children_of(old)
            .iter()
            .all(|c| cmdline(*c).contains("master") || !process_alive(*c))),
        "{}",
        s.log()
    );
    unsafe { libc::kill(old as i32, libc::SIGQUIT) };
    assert!(
        wait_gone(old, T),
        "old master {old} still there; log:\n{}",
        s.log()
    );
}

/// Wait until `new` no longer has `old` as its parent (the old master exited).
pub fn wait_alone(new: u32, old: u32) {
    assert!(wait_gone(old, T), "old master {old} did not exit");
    assert!(
        eventually(T, || ppid(new) != Some(old)),
        "master {new} still a child of {old}"
    );
}

pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A datagram socket standing in for systemd's notify socket.
pub struct Notify {
    pub sock: UnixDatagram,
    pub path: PathBuf,
    seen: Vec<String>,
}

impl Notify {
    pub fn new(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Notify {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    /// Wait for a message containing every one of `parts`; returns it.
    pub fn expect(&mut self, parts: &[&str]) -> String {
        let end = Instant::now() + T;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(m) = self
                .seen
                .iter()
                .position(|m| parts.iter().all(|p| m.lines().any(|l| l == *p)))
            {
                return self.seen.remove(m);
            }
            assert!(
                Instant::now() < end,
                "no notify message with {parts:?}; got {:?}",
                self.seen
            );
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// Everything received so far, drained.
    pub fn drain(&mut self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        std::mem::take(&mut self.seen)
    }
}

/// Passes `fd` to the child as fd 3 (socket activation, GUNICORN_FD).
pub fn pass_as_fd3(cmd: &mut Command, fd: i32) {
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(move || {
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
