//! `ferricorn upgrade --pid PIDFILE [--timeout S]`: one command for a
//! complete zero-downtime binary upgrade of a running master.
//!
//! It sends USR2 and waits for the outcome the old master records in
//! `<pidfile>.upgrade` (see `ferricorn_upgrade::pidfile`): once the new
//! master is ready (it has written the pidfile by then) it retires the old
//! generation gracefully (TERM: in-flight requests finish) and waits for it
//! to exit. If the new master fails, the old one renames `<pidfile>.oldbin`
//! back and keeps serving; this command then exits 1 with the reason.

use crate::pidfile::{process_alive, read_pid};
use ferricorn_upgrade::pidfile::{read_status, Status};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct UpgradeArgs {
    pub pidfile: PathBuf,
    pub timeout: Duration,
}

const USAGE: &str = "usage: ferricorn upgrade --pid PIDFILE [--timeout SECONDS]";
const HELP: &str =
    "Zero-downtime binary upgrade of the master named in PIDFILE: sends it USR2, waits
until the new master has booted all its workers, then stops the old master
gracefully (TERM). Exits 0 when the new master serves alone; 1 with the reason
when the upgrade failed (the old master then keeps serving).

  -p, --pid PIDFILE      the running master's pidfile (its --pid)
  -t, --timeout SECONDS  how long to wait for the new master [default: 60]";

pub fn parse(args: &[String]) -> Result<UpgradeArgs, String> {
    let mut pidfile = None;
    let mut timeout = Duration::from_secs(60);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag {
            "-p" | "--pid" => pidfile = Some(PathBuf::from(value()?)),
            "-t" | "--timeout" => {
                let v = value()?;
                timeout = Duration::from_secs_f64(
                    v.parse()
                        .map_err(|_| format!("--timeout {v:?}: expected seconds"))?,
                );
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(UpgradeArgs {
        pidfile: pidfile.ok_or_else(|| format!("--pid PIDFILE is required\n{USAGE}"))?,
        timeout,
    })
}

fn say(msg: &str) {
    eprintln!("ferricorn upgrade: {msg}");
}

/// Alive and not a zombie (an exited master whose parent has not reaped it
/// yet still answers kill(pid, 0)).
fn running(pid: u32) -> bool {
    if !process_alive(pid) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => true,
    }
}

/// Returns the process exit code.
pub fn run(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}\n\n{HELP}");
        return 0;
    }
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let Some(old) = read_pid(&a.pidfile) else {
        say(&format!("cannot read a pid from {}", a.pidfile.display()));
        return 1;
    };
    if !running(old) {
        say(&format!(
            "no master is running as pid {old} (stale pidfile {})",
            a.pidfile.display()
        ));
        return 1;
    }
    // The old master records the outcome there; a stale one must not be read as ours.
    let status_file = ferricorn_upgrade::pidfile::status_path(&a.pidfile);
    let _ = std::fs::remove_file(&status_file);
    say(&format!("sending USR2 to master {old}"));
    if let Err(e) = kill(Pid::from_raw(old as i32), Signal::SIGUSR2) {
        say(&format!("cannot signal {old}: {}", std::io::Error::from(e)));
        return 1;
    }
    let deadline = Instant::now() + a.timeout;
    let new = loop {
        match read_status(&a.pidfile) {
            Some(Status::Ready(pid)) => break pid,
            Some(Status::Failed(why)) => {
                say(&format!(
                    "the upgrade failed: {why}; master {old} keeps serving"
                ));
                return 1;
            }
            Some(Status::Ignored(why)) => {
                say(&format!("master {old} did not start an upgrade: {why}"));
                return 1;
            }
            None => {}
        }
        if !running(old) {
            say(&format!("the old master {old} exited during the upgrade"));
            return 1;
        }
        if Instant::now() >= deadline {
            say(&format!(
                "the new master was not ready within {}s; master {old} keeps serving (it gives up on the new master after its own --upgrade-timeout)",
                a.timeout.as_secs_f64()
            ));
            return 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    say(&format!(
        "new master {new} is ready; retiring the old master {old} gracefully"
    ));
    // TERM: its workers finish their requests. With --upgrade-mode auto it
    // is already on its way out and this changes nothing.
    let _ = kill(Pid::from_raw(old as i32), Signal::SIGTERM);
    while running(old) {
        if Instant::now() >= deadline {
            say(&format!("master {new} serves; the old master {old} is still finishing requests and exits within its graceful timeout"));
            return 0;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&status_file);
    say(&format!("done: master {new} serves"));
    0
}
