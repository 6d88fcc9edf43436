//! Binary upgrades under load. The guarantee: with clients hammering the
//! server (keep-alive and connection-per-request), no request fails —
//! across repeated upgrades by the manual dance and automatically, to a
//! binary of another version, into a broken release or a missing binary
//! (both rolled back), with either master killed -9 at the worst moment,
//! and over a unix socket.

use crate::harness::*;
use crate::load::{Load, Stats, Target};
use crate::upgrade_util::*;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

const APP: &str = "upgrade_app:app";
const ALT_SUFFIX: &str = "+upgrade-alt";

/// Keep-alive and connection-per-request clients at once.
struct Mixed {
    keepalive: Load,
    close: Load,
}

impl Mixed {
    fn start(t: Target, path: &str) -> Mixed {
        Mixed {
            keepalive: Load::start(t.clone(), path, 6, true),
            close: Load::start(t, path, 4, false),
        }
    }
    fn progress(&self, s: &Server) {
        assert!(
            self.keepalive.wait_progress(30, T) && self.close.wait_progress(10, T),
            "traffic stalled; log:\n{}",
            s.log()
        );
    }
    /// Stop, print the counts under `label`, assert none failed.
    fn finish(self, label: &str, s: &Server) -> (Stats, Stats) {
        let (k, c) = (self.keepalive.stop(), self.close.stop());
        println!("{label}: keep-alive: {k}");
        println!("{label}: per-request: {c}");
        assert_eq!(
            k.failed() + c.failed(),
            0,
            "{label}\nkeep-alive: {k}\nper-request: {c}\nlog:\n{}",
            s.log()
        );
        (k, c)
    }
}

fn tcp<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["-b", "127.0.0.1:0", "-w", "2", "--graceful-timeout", "10"];
    a.extend_from_slice(extra);
    a
}

#[test]
fn ten_upgrades_by_the_manual_dance_fail_no_request() {
    let d = Deploy::new("chaos-manual");
    let s = d.start(&apps_dir(), &tcp(&[APP]));
    let load = Mixed::start(Target::Tcp(s.addr()), "/");
    load.progress(&s);
    let mut cur = s.pid;
    for _ in 0..10 {
        let new = usr2_and_wait_ready(&s, &d.pidfile, cur);
        load.progress(&s);
        phase_out(&s, cur);
        wait_alone(new, cur);
        load.progress(&s);
        cur = new;
    }
    load.finish("10 manual upgrades (USR2, WINCH, QUIT)", &s);
}

#[test]
fn ten_automatic_upgrades_fail_no_request() {
    automatic_upgrades("chaos-auto", &[]);
}

#[test]
fn ten_automatic_upgrades_fail_no_request_with_threads() {
    automatic_upgrades("chaos-auto-threads", crate::restarts::THREADS);
}

#[test]
fn ten_automatic_upgrades_fail_no_request_with_gevent() {
    automatic_upgrades("chaos-auto-gevent", crate::restarts::GEVENT);
}

fn automatic_upgrades(tag: &str, extra: &[&str]) {
    let d = Deploy::new(tag);
    let mut args = tcp(&["--upgrade-mode", "auto"]);
    args.extend_from_slice(extra);
    args.push(APP);
    // gevent comes from the test venv.
    let s = d.start_in_venv(&apps_dir(), &args);
    let load = Mixed::start(Target::Tcp(s.addr()), "/");
    load.progress(&s);
    let mut cur = s.pid;
    for _ in 0..10 {
        let new = usr2_and_wait_ready(&s, &d.pidfile, cur);
        wait_alone(new, cur);
        load.progress(&s);
        cur = new;
    }
    load.finish(&format!("10 automatic upgrades (USR2 only) {extra:?}"), &s);
}

/// The same sources built with another version string, once per test run
/// (its own target directory; cargo's lock serialises concurrent builds).
fn alt_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = repo().join("target").join("upgrade-alt");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .current_dir(repo())
                .args(["build", "--quiet", "--bin", "ferricorn"])
                .env("CARGO_TARGET_DIR", &target)
                .env("FERRICORN_VERSION_SUFFIX", ALT_SUFFIX)
                .status()
                .expect("run cargo");
            assert!(status.success(), "building the alternative binary failed");
            target.join("debug").join("ferricorn")
        })
        .clone()
}

#[test]
fn an_upgrade_to_a_binary_with_another_version_switches_every_response() {
    let alt = alt_binary();
    let d = Deploy::new("chaos-version");
    let s = d.start(&apps_dir(), &tcp(&["--upgrade-mode", "auto", APP]));
    let old_software = s.get_text("/server");
    assert!(!old_software.ends_with(ALT_SUFFIX), "{old_software}");
    let load = Mixed::start(Target::Tcp(s.addr()), "/server");
    load.progress(&s);
    install_binary(&alt, &d.bin);
    let new = usr2_and_wait_ready(&s, &d.pidfile, s.pid);
    wait_alone(new, s.pid);
    load.progress(&s);
    let (k, c) = load.finish("upgrade to another binary", &s);
    let new_software = format!("{old_software}{ALT_SUFFIX}");
    for stats in [&k, &c] {
        assert!(
            stats.bodies.contains_key(&old_software) && stats.bodies.contains_key(&new_software),
            "{stats}"
        );
    }
    for _ in 0..20 {
        assert_eq!(s.get_text("/server"), new_software);
    }
    assert!(
        s.log().contains(&format!(
            "Starting ferricorn {}",
            new_software.trim_start_matches("ferricorn/")
        )),
        "{}",
        s.log()
    );
}

#[test]
fn an_upgrade_into_a_release_that_fails_to_import_is_rolled_back_under_load() {
    let d = Deploy::new("chaos-broken");
    d.release("1", "release 1", "");
    d.release("2", "release 2", "raise ImportError('broken on purpose')");
    d.switch("1");
    let s = d.start(&d.current(), &tcp(&["--upgrade-mode", "auto", "app:app"]));
    let load = Mixed::start(Target::Tcp(s.addr()), "/");
    load.progress(&s);
    d.switch("2");
    for _ in 0..3 {
        usr2_and_wait_failure(&s, &d.pidfile, s.pid);
        load.progress(&s);
    }
    let (k, _) = load.finish("3 upgrades into a broken release (rolled back)", &s);
    assert_eq!(k.bodies.keys().collect::<Vec<_>>(), vec!["release 1"]);
}

#[test]
fn an_upgrade_with_the_binary_missing_is_a_no_op_under_load() {
    let d = Deploy::new("chaos-nobin");
    let s = d.start(&apps_dir(), &tcp(&["--upgrade-mode", "auto", APP]));
    let load = Mixed::start(Target::Tcp(s.addr()), "/");
    load.progress(&s);
    std::fs::remove_file(&d.bin).unwrap();
    usr2_and_wait_failure(&s, &d.pidfile, s.pid);
    load.progress(&s);
    install_binary(std::path::Path::new(BIN), &d.bin);
    let new = usr2_and_wait_ready(&s, &d.pidfile, s.pid);
    wait_alone(new, s.pid);
    load.progress(&s);
    load.finish("missing binary, then the fixed upgrade", &s);
}

#[test]
fn killing_the_new_master_mid_upgrade_fails_no_request() {
    let d = Deploy::new("chaos-kill-new");
    d.release("1", "release 1", "");
    // Slow enough to kill the new master while its workers boot.
    d.release("2", "release 2", "import time; time.sleep(1)");
    d.switch("1");
    let s = d.start(&d.current(), &tcp(&["--upgrade-mode", "auto", "app:app"]));
    let load = Mixed::start(Target::Tcp(s.addr()), "/");
    load.progress(&s);
    d.switch("2");
    let boots = s.count_log("Booting worker with pid");
    s.signal(libc::SIGUSR2);
    assert!(s.wait_log("New master started (pid", T), "{}", s.log());
    // Its workers are importing (1 s) when it dies.
    assert!(
        s.wait_log_n("Booting worker with pid", boots + 2, T),
        "{}",
        s.log()
    );
    let line = s
        .log()
        .lines()
        .find(|l| l.contains("New master started (pid"))
        .unwrap()
        .to_string();
    let new: u32 = line
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(new as i32, libc::SIGKILL) };
    assert!(
        s.wait_log("Upgrade failed: the new master", T),
        "{}",
        s.log()
    );
    assert!(eventually(T, || d.master() == Some(s.pid)
        && !oldbin(&d.pidfile).exists()));
    load.progress(&s);
    let (k, _) = load.finish("kill -9 of the new master mid-upgrade", &s);
    assert_eq!(k.bodies.keys().collect::<Vec<_>>(), vec!["release 1"]);
}

#[test]
fn killing_the_old_master_once_the_new_one_is_ready_fails_no_request() {
    let d = Deploy::new("chaos-kill-old");
    let s = d.start(&apps_dir(), &tcp(&[APP]));
    let load = Mixed::start(Target::Tcp(s.addr()), "/");
    load.progress(&s);
    let new = usr2_and_wait_ready(&s, &d.pidfile, s.pid);
    load.progress(&s);
    s.signal(libc::SIGKILL);
    wait_alone(new, s.pid);
    assert!(
        s.wait_log("has exited; this master serves alone", T),
        "{}",
        s.log()
    );
    assert!(
        eventually(T, || !oldbin(&d.pidfile).exists()),
        "the new master removes the stale .oldbin"
    );
    load.progress(&s);
    load.finish("kill -9 of the old master after the new one is ready", &s);
    assert_eq!(s.get_text("/master"), new.to_string());
}

#[test]
fn upgrades_over_a_unix_socket_fail_no_request() {
    let d = Deploy::new("chaos-unix");
    let sock = d.dir.join("app.sock");
    let bind = format!("unix:{}", sock.display());
    let s = d.start(
        &apps_dir(),
        &tcp(&["-b", &bind, "--upgrade-mode", "auto", APP]),
    );
    let load = Mixed::start(Target::Unix(sock.clone()), "/");
    load.progress(&s);
    let mut cur = s.pid;
    for _ in 0..3 {
        let new = usr2_and_wait_ready(&s, &d.pidfile, cur);
        wait_alone(new, cur);
        load.progress(&s);
        cur = new;
    }
    load.finish("3 automatic upgrades over a unix socket", &s);
    assert!(sock.exists());
}
