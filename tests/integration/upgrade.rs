//! Binary upgrade (USR2), end to end: the manual dance, automatic handover,
//! rollback, failed upgrades, symlinked releases, unix sockets, systemd
//! notify and socket activation, the `ferricorn upgrade` command.

use crate::harness::*;
use crate::upgrade_util::*;
use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::time::Duration;

const APP: &str = "upgrade_app:app";

fn tcp_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["-b", "127.0.0.1:0", "-w", "2", "--graceful-timeout", "5"];
    a.extend_from_slice(extra);
    a
}

#[test]
fn usr2_then_winch_and_quit_hands_over_to_the_new_master() {
    let d = Deploy::new("up-manual");
    let s = d.start(&apps_dir(), &tcp_args(&[APP]));
    let old = s.pid;
    let new = usr2_and_wait_ready(&s, &d.pidfile, old);
    assert_eq!(read_pid(&oldbin(&d.pidfile)), Some(old));
    assert_eq!(status(&d.pidfile).trim(), format!("ready {new}"));
    assert_eq!(
        ppid(new),
        Some(old),
        "the new master is the old one's child"
    );
    // Both generations serve off the same sockets.
    let addr = s.addr();
    let masters: HashSet<String> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                try_request(&addr, b"GET /slow-master HTTP/1.0\r\n\r\n", T)
                    .map(|r| r.text())
                    .unwrap_or_default()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        masters,
        [old.to_string(), new.to_string()].into_iter().collect(),
        "log:\n{}",
        s.log()
    );
    // The hand-off variables never reach the app.
    assert_eq!(s.get_text("/env"), "clean");
    // Same command line, same working directory.
    assert_eq!(
        std::fs::read_link(format!("/proc/{new}/cwd")).unwrap(),
        apps_dir().canonicalize().unwrap()
    );

    phase_out(&s, old);
    assert_eq!(d.master(), Some(new));
    assert!(
        !oldbin(&d.pidfile).exists(),
        "the old master removes .oldbin naming it"
    );
    assert!(s.wait_log("The old master (pid", T), "{}", s.log());
    for _ in 0..20 {
        assert_eq!(s.get_text("/master"), new.to_string());
    }
}

#[test]
fn fd_count_of_the_master_is_the_same_after_three_upgrades() {
    let d = Deploy::new("up-fds");
    let s = d.start(&apps_dir(), &tcp_args(&["--upgrade-mode", "auto", APP]));
    let before = fd_count(s.pid);
    let mut cur = s.pid;
    for _ in 0..3 {
        let new = usr2_and_wait_ready(&s, &d.pidfile, cur);
        wait_alone(new, cur);
        assert_eq!(s.get_text("/master"), new.to_string());
        cur = new;
    }
    assert!(eventually(T, || children_of(cur).len() == 2));
    let after = fd_count(cur);
    assert_eq!(
        after,
        before,
        "fds of the first master vs the fourth: {:?}",
        std::fs::read_dir(format!("/proc/{cur}/fd")).map(|d| d
            .flatten()
            .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
            .collect::<Vec<_>>())
    );
}

#[test]
fn usr2_is_ignored_during_an_upgrade_and_by_a_new_master_still_a_child() {
    let d = Deploy::new("up-ignored");
    let s = d.start(&apps_dir(), &tcp_args(&[APP]));
    let old = s.pid;
    let new = usr2_and_wait_ready(&s, &d.pidfile, old);
    s.signal(libc::SIGUSR2);
    assert!(
        s.wait_log("USR2 ignored: an upgrade is in progress", T),
        "{}",
        s.log()
    );
    unsafe { libc::kill(new as i32, libc::SIGUSR2) };
    assert!(
        s.wait_log("USR2 ignored: this master was started by an upgrade", T),
        "{}",
        s.log()
    );
    assert!(
        status(&d.pidfile).starts_with("ignored "),
        "{}",
        status(&d.pidfile)
    );
    assert_eq!(
        s.count_log("Upgrading: starting a new master"),
        1,
        "{}",
        s.log()
    );
    assert_eq!(
        (d.master(), read_pid(&oldbin(&d.pidfile))),
        (Some(new), Some(old))
    );
    // Once the old master is gone, the new one upgrades as any master.
    phase_out(&s, old);
    wait_alone(new, old);
    let third = usr2_and_wait_ready(&s, &d.pidfile, new);
    assert_eq!(ppid(third), Some(new));
}

#[test]
fn rollback_hup_to_the_old_and_term_to_the_new_gives_the_pidfile_back() {
    let d = Deploy::new("up-rollback");
    let s = d.start(&apps_dir(), &tcp_args(&[APP]));
    let old = s.pid;
    let new = usr2_and_wait_ready(&s, &d.pidfile, old);
    s.signal(libc::SIGWINCH);
    assert!(
        eventually(T, || children_of(old) == vec![new]),
        "{}",
        s.log()
    );
    s.signal(libc::SIGHUP);
    assert!(eventually(T, || children_of(old).len() == 3), "{}", s.log());
    unsafe { libc::kill(new as i32, libc::SIGTERM) };
    assert!(s.wait_log("serves alone again", T), "{}", s.log());
    assert_eq!(d.master(), Some(old));
    assert!(!oldbin(&d.pidfile).exists());
    for _ in 0..20 {
        assert_eq!(s.get_text("/master"), old.to_string());
    }
    // A later upgrade works.
    usr2_and_wait_ready(&s, &d.pidfile, old);
}

#[test]
fn a_new_master_that_dies_after_winch_gives_the_old_one_its_workers_back() {
    let d = Deploy::new("up-crash");
    let s = d.start(&apps_dir(), &tcp_args(&[APP]));
    let old = s.pid;
    let new = usr2_and_wait_ready(&s, &d.pidfile, old);
    s.signal(libc::SIGWINCH);
    assert!(
        eventually(T, || children_of(old) == vec![new]),
        "{}",
        s.log()
    );
    unsafe { libc::kill(new as i32, libc::SIGKILL) };
    assert!(s.wait_log("Starting 2 worker(s) again", T), "{}", s.log());
    assert!(eventually(T, || children_of(old).len() == 2), "{}", s.log());
    assert_eq!(d.master(), Some(old));
    s.wait_ready(T);
    assert_eq!(s.get_text("/master"), old.to_string());
}

#[test]
fn a_missing_or_corrupt_binary_leaves_the_old_master_serving_and_a_later_usr2_succeeds() {
    let d = Deploy::new("up-badbin");
    let s = d.start(&apps_dir(), &tcp_args(&[APP]));
    std::fs::remove_file(&d.bin).unwrap();
    let line = usr2_and_wait_failure(&s, &d.pidfile, s.pid);
    assert!(line.contains("does not exist"), "{line}");
    assert!(
        status(&d.pidfile).starts_with("failed "),
        "{}",
        status(&d.pidfile)
    );
    assert_eq!(s.get_text("/"), "v1");

    std::fs::write(&d.bin, b"\x7fELF garbage, not a program").unwrap();
    std::fs::set_permissions(&d.bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let line = usr2_and_wait_failure(&s, &d.pidfile, s.pid);
    assert!(line.contains("Exec format error"), "{line}");
    assert_eq!(s.get_text("/"), "v1");

    install_binary(std::path::Path::new(BIN), &d.bin);
    usr2_and_wait_ready(&s, &d.pidfile, s.pid);
}

#[test]
fn a_release_whose_app_fails_to_import_is_rolled_back_and_the_fixed_one_goes_live() {
    let d = Deploy::new("up-release");
    d.release("1", "release 1", "");
    d.release(
        "2",
        "release 2",
        "raise ImportError('release 2 is broken on purpose')",
    );
    d.release("3", "release 3", "");
    d.switch("1");
    let s = d.start(&d.current(), &tcp_args(&["app:app"]));
    assert_eq!(s.get_text("/"), "release 1");
    d.switch("2");
    let line = usr2_and_wait_failure(&s, &d.pidfile, s.pid);
    assert!(line.contains("exited with code 4"), "{line}");
    assert!(
        s.log().contains("release 2 is broken on purpose"),
        "the traceback is logged:\n{}",
        s.log()
    );
    assert_eq!(s.get_text("/"), "release 1");
    d.switch("3");
    let new = usr2_and_wait_ready(&s, &d.pidfile, s.pid);
    phase_out(&s, s.pid);
    assert_eq!(s.get_text("/"), "release 3");
    assert_eq!(
        std::fs::read_link(format!("/proc/{new}/cwd")).unwrap(),
        d.dir.join("releases/3").canonicalize().unwrap()
    );
}

#[test]
fn chdir_current_follows_the_symlink_on_upgrade() {
    let d = Deploy::new("up-chdir");
    d.release("1", "release 1", "");
    d.release("2", "release 2", "");
    d.switch("1");
    let s = d.start(
        d.dir.path(),
        &tcp_args(&["--chdir", "current", "--upgrade-mode", "auto", "app:app"]),
    );
    assert_eq!(s.get_text("/"), "release 1");
    d.switch("2");
    let new = usr2_and_wait_ready(&s, &d.pidfile, s.pid);
    wait_alone(new, s.pid);
    assert_eq!(s.get_text("/"), "release 2");
}

#[test]
fn a_new_master_not_ready_in_time_is_stopped_and_the_old_one_serves() {
    let d = Deploy::new("up-timeout");
    d.release("1", "release 1", "");
    d.release("2", "release 2", "import time; time.sleep(60)");
    d.switch("1");
    let s = d.start(
        &d.current(),
        &tcp_args(&["--upgrade-timeout", "2", "app:app"]),
    );
    d.switch("2");
    let line = usr2_and_wait_failure(&s, &d.pidfile, s.pid);
    assert!(line.contains("not ready in time"), "{line}");
    // The stopped new master is gone, reaped by the old one.
    assert!(
        eventually(T, || children_of(s.pid).len() == 2),
        "{:?}; log:\n{}",
        children_of(s.pid),
        s.log()
    );
    assert_eq!(s.get_text("/"), "release 1");
}

#[test]
fn a_unix_socket_is_handed_over_and_removed_only_by_the_last_master() {
    let d = Deploy::new("up-unix");
    let sock = d.dir.join("app.sock");
    let bind = format!("unix:{}", sock.display());
    let s = d.start(
        &apps_dir(),
        &tcp_args(&["-b", &bind, "--upgrade-mode", "auto", APP]),
    );
    let get = |p: &str| {
        unix_request(&sock, format!("GET {p} HTTP/1.0\r\n\r\n").as_bytes(), T)
            .map(|r| r.text())
            .unwrap_or_default()
    };
    assert_eq!(get("/master"), s.pid.to_string());
    let new = usr2_and_wait_ready(&s, &d.pidfile, s.pid);
    wait_alone(new, s.pid);
    assert!(
        sock.exists(),
        "the old master must not remove the socket the new one serves on"
    );
    assert_eq!(get("/master"), new.to_string());
    unsafe { libc::kill(new as i32, libc::SIGTERM) };
    assert!(wait_gone(new, T));
    assert!(
        eventually(T, || !sock.exists()),
        "the last master removes its socket file"
    );
    assert!(!d.pidfile.exists());
}

#[test]
fn systemd_hears_ready_reloading_mainpid_and_stopping() {
    let d = Deploy::new("up-notify");
    let mut n = Notify::new(d.dir.path());
    let mut cmd = d.command(&apps_dir(), &tcp_args(&["--upgrade-mode", "auto", APP]));
    cmd.env("NOTIFY_SOCKET", &n.path);
    let mut s = Server::spawn_command(cmd);
    s.await_port(T);
    let first = n.expect(&["READY=1"]);
    assert!(
        first.lines().any(|l| l == format!("MAINPID={}", s.pid)),
        "{first}"
    );
    s.signal(libc::SIGHUP);
    let reloading = n.expect(&["RELOADING=1"]);
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    n.expect(&["READY=1"]);
    let old = s.pid;
    s.signal(libc::SIGUSR2);
    n.expect(&["RELOADING=1"]);
    let new = {
        let m = n.expect(&["READY=1"]);
        let pid: u32 = m
            .lines()
            .find_map(|l| l.strip_prefix("MAINPID="))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{m}"));
        pid
    };
    assert_ne!(new, old);
    wait_alone(new, old);
    let before_stop = n.drain();
    assert!(
        !before_stop.iter().any(|m| m.contains("STOPPING=1")),
        "the old master must not say STOPPING: {before_stop:?}"
    );
    unsafe { libc::kill(new as i32, libc::SIGTERM) };
    n.expect(&["STOPPING=1"]);
    assert!(wait_gone(new, T));
}

/// `sh -c 'LISTEN_PID=$$ exec …'`: systemd's variables with the pid the
/// server will have, and the socket at fd 3.
fn activated(listener: &std::net::TcpListener, listen_pid_ok: bool, args: &[&str]) -> Server {
    let mut cmd = std::process::Command::new("/bin/sh");
    let pid = if listen_pid_ok { "$$" } else { "1" };
    cmd.arg("-c")
        .arg(format!("LISTEN_PID={pid} exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args);
    cmd.current_dir(apps_dir())
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "ferricorn.socket");
    cmd.env_remove("VIRTUAL_ENV")
        .env_remove("PORT")
        .env_remove("WEB_CONCURRENCY");
    pass_as_fd3(&mut cmd, listener.as_raw_fd());
    Server::spawn_command(cmd)
}

#[test]
fn socket_activation_serves_the_sockets_passed_in_listen_fds() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // No -b: the passed socket is served as it is.
    let mut s = activated(&listener, true, &[APP]);
    assert_eq!(s.await_port(T), port, "{}", s.log());
    s.wait_ready(T);
    assert_eq!(s.get_text("/env"), "clean");
    drop(s);
    // With -b naming the same address: adopted, not bound again.
    let mut s = activated(&listener, true, &["-b", &format!("127.0.0.1:{port}"), APP]);
    assert_eq!(s.await_port(T), port, "{}", s.log());
    s.wait_ready(T);
    assert!(!s.log().contains("Closing inherited"), "{}", s.log());
    drop(s);
    // LISTEN_PID of another process: the variables are not for us.
    let other = free_port();
    let mut s = activated(
        &listener,
        false,
        &["-b", &format!("127.0.0.1:{other}"), APP],
    );
    assert_eq!(s.await_port(T), other, "{}", s.log());
    assert!(s.log().contains("LISTEN_FDS=1 ignored"), "{}", s.log());
}

#[test]
fn gunicorn_fd_is_honoured_at_first_start() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(apps_dir()).arg(APP).env("GUNICORN_FD", "3");
    cmd.env_remove("VIRTUAL_ENV")
        .env_remove("PORT")
        .env_remove("WEB_CONCURRENCY");
    pass_as_fd3(&mut cmd, listener.as_raw_fd());
    let mut s = Server::spawn_command(cmd);
    assert_eq!(s.await_port(T), port, "{}", s.log());
    s.wait_ready(T);
    assert_eq!(s.get_text("/env"), "clean");
}

fn upgrade_command(pidfile: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .args([
            "upgrade",
            "--pid",
            pidfile.to_str().unwrap(),
            "--timeout",
            "20",
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_upgrade_command_completes_an_upgrade_or_says_why_not() {
    let d = Deploy::new("up-cmd");
    let s = d.start(&apps_dir(), &tcp_args(&[APP]));
    let old = s.pid;
    let (code, out) = upgrade_command(&d.pidfile);
    assert_eq!(code, 0, "{out}\nlog:\n{}", s.log());
    let new = d.master().unwrap();
    assert_ne!(new, old);
    assert!(!process_alive(old), "{out}");
    assert!(out.contains(&format!("done: master {new} serves")), "{out}");
    assert_eq!(s.get_text("/master"), new.to_string());

    std::fs::remove_file(&d.bin).unwrap();
    let (code, out) = upgrade_command(&d.pidfile);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("does not exist") && out.contains(&format!("master {new} keeps serving")),
        "{out}"
    );
    assert_eq!(d.master(), Some(new));
    assert_eq!(s.get_text("/master"), new.to_string());
}

#[test]
fn upgrade_flags_are_documented_in_help() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--upgrade-mode") && help.contains("--upgrade-timeout"),
        "{help}"
    );
    let _ = Duration::ZERO;
}

#[test]
fn a_daemonized_master_upgrades_without_detaching_again() {
    let d = Deploy::new("up-daemon");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let log = d.dir.join("error.log");
    let mut cmd = d.command(
        &apps_dir(),
        &[
            "-D",
            "-b",
            &bind,
            "--upgrade-mode",
            "auto",
            "--error-logfile",
            log.to_str().unwrap(),
            APP,
        ],
    );
    assert!(cmd.status().unwrap().success());
    assert!(eventually(T, || d.master().is_some()), "no pidfile");
    let old = d.master().unwrap();
    let _kill_old = KillOnDrop(old);
    assert!(eventually(T, || try_request(
        &bind,
        b"GET / HTTP/1.0\r\n\r\n",
        T
    )
    .is_ok()));
    unsafe { libc::kill(old as i32, libc::SIGUSR2) };
    assert!(
        eventually(T, || status(&d.pidfile).starts_with("ready ")),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let new: u32 = status(&d.pidfile)[6..].trim().parse().unwrap();
    let _kill_new = KillOnDrop(new);
    // The pid the old master watched is the one serving: no second fork.
    assert_eq!(d.master(), Some(new));
    assert!(wait_gone(old, T));
    let r = try_request(&bind, b"GET /master HTTP/1.0\r\n\r\n", T).unwrap();
    assert_eq!(r.text(), new.to_string());
    unsafe { libc::kill(new as i32, libc::SIGTERM) };
    assert!(wait_gone(new, T));
}
