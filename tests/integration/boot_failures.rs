//! Start-up failures are clear and final: one report, a gunicorn exit code,
//! no respawn loop, no pidfile or socket file left, no process left behind.

use crate::harness::*;
use std::time::Duration;

const EXIT: Duration = Duration::from_secs(15);

/// Run to exit and check that nothing of the server remains.
fn run_failing(b: Builder) -> (i32, String) {
    let mut s = b.no_wait().spawn();
    let code = s.exit_code(EXIT);
    let log = s.log();
    assert!(
        eventually(Duration::from_secs(5), || process_group_members(s.pid)
            .is_empty()),
        "processes left behind: {:?}; log:\n{log}",
        process_group_members(s.pid)
    );
    (code, log)
}

#[test]
fn app_import_error_prints_the_traceback_once_and_exits_4_without_respawning() {
    let dir = TempDir::new("bootfail");
    let pidfile = dir.join("app.pid");
    let (code, log) = run_failing(
        Server::builder("broken_import:app")
            .args(["-w", "3", "-p"])
            .arg(pidfile.to_string_lossy()),
    );
    assert_eq!(code, 4, "log:\n{log}");
    assert_eq!(
        log.matches("Traceback (most recent call last)").count(),
        1,
        "log:\n{log}"
    );
    assert_eq!(
        log.matches("No module named 'nonexistent_module_for_ferricorn_tests'")
            .count(),
        1,
        "log:\n{log}"
    );
    // Three workers at most: the first failure stops the master from spawning more.
    assert!(
        log.matches("Booting worker with pid").count() <= 3,
        "respawned:\n{log}"
    );
    assert!(log.contains("Reason: App failed to load."), "log:\n{log}");
    assert!(log.contains("Shutting down: Master"), "log:\n{log}");
    assert!(!pidfile.exists(), "stale pidfile left");
}

#[test]
fn app_import_error_with_preload_exits_4_before_forking() {
    let (code, log) =
        run_failing(Server::builder("broken_import:app").args(["-w", "2", "--preload"]));
    assert_eq!(code, 4, "log:\n{log}");
    assert_eq!(
        log.matches("Traceback (most recent call last)").count(),
        1,
        "log:\n{log}"
    );
    assert!(!log.contains("Booting worker"), "forked anyway:\n{log}");
}

#[test]
fn attribute_not_callable_is_one_line_and_exit_4() {
    let (code, log) = run_failing(Server::builder("basic:not_callable").args(["-w", "2"]));
    assert_eq!(code, 4, "log:\n{log}");
    assert_eq!(
        log.matches("Application object must be callable").count(),
        1,
        "log:\n{log}"
    );
    assert!(log.contains("basic:not_callable"), "names the app: {log}");
    assert!(
        !log.contains("Traceback"),
        "a wrong spec needs no traceback:\n{log}"
    );
}

#[test]
fn missing_attribute_names_the_module() {
    let (code, log) = run_failing(Server::builder("basic:no_such_attr"));
    assert_eq!(code, 4, "log:\n{log}");
    assert!(
        log.contains("Failed to find attribute 'no_such_attr' in 'basic'"),
        "log:\n{log}"
    );
    assert!(!log.contains("Traceback"), "log:\n{log}");
}

#[test]
fn missing_module_is_one_clear_line_and_exit_4() {
    let (code, log) = run_failing(Server::builder("no_such_module_here:app"));
    assert_eq!(code, 4, "log:\n{log}");
    assert_eq!(
        log.matches("No module named 'no_such_module_here'").count(),
        1,
        "log:\n{log}"
    );
    assert!(!log.contains("Traceback"), "log:\n{log}");
}

#[test]
fn worker_dying_during_boot_exits_3_without_respawning() {
    let (code, log) = run_failing(Server::builder("exits_at_import:app").args(["-w", "2"]));
    assert_eq!(code, 3, "log:\n{log}");
    assert!(
        log.contains("Reason: Worker failed to boot."),
        "log:\n{log}"
    );
    assert!(
        log.matches("Booting worker with pid").count() <= 2,
        "respawned:\n{log}"
    );
}

#[test]
fn port_in_use_is_one_line_naming_the_address_and_leaves_no_pidfile() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = TempDir::new("inuse");
    let pidfile = dir.join("app.pid");
    let (code, log) = run_failing(
        Server::builder("basic:app")
            .bind(addr.clone())
            .arg("-p")
            .arg(pidfile.to_string_lossy()),
    );
    assert_ne!(code, 0, "log:\n{log}");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&addr)).collect();
    assert_eq!(lines.len(), 1, "one line naming {addr}:\n{log}");
    assert!(lines[0].contains("in use"), "says what: {}", lines[0]);
    assert!(!log.contains("Booting worker"), "log:\n{log}");
    assert!(!pidfile.exists(), "stale pidfile left");
}

#[test]
fn a_second_bind_failing_releases_the_first() {
    let dir = TempDir::new("bind2");
    let sock = dir.join("first.sock");
    let (code, log) = run_failing(
        Server::builder("basic:app")
            .bind(format!("unix:{}", sock.display()))
            .args(["-b", "127.0.0.1:99999"]),
    );
    assert_ne!(code, 0);
    assert!(log.contains("127.0.0.1:99999"), "log:\n{log}");
    assert!(!sock.exists(), "socket file of the first bind left behind");
}

#[test]
fn invalid_bind_address_is_one_clear_line() {
    for bad in ["127.0.0.1:http", "::1:80", "unix:", "fd://x"] {
        let (code, log) = run_failing(Server::builder("basic:app").bind(bad));
        assert_ne!(code, 0, "{bad}: log:\n{log}");
        assert!(log.contains("Invalid bind address"), "{bad}: log:\n{log}");
        assert_eq!(log.trim().lines().count(), 1, "{bad}: one line:\n{log}");
    }
}

#[test]
fn missing_chdir_is_one_line_and_non_zero() {
    let (code, log) =
        run_failing(Server::builder("basic:app").args(["--chdir", "/nonexistent/ferricorn-dir"]));
    assert_ne!(code, 0);
    assert_eq!(log.trim().lines().count(), 1, "log:\n{log}");
    assert!(
        log.contains("--chdir") && log.contains("/nonexistent/ferricorn-dir"),
        "log:\n{log}"
    );
}

#[test]
fn venv_of_another_python_minor_is_refused_by_the_master_before_binding() {
    let dir = TempDir::new("venv312");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::os::unix::fs::symlink("/bin/true", dir.join("bin/python")).unwrap();
    std::fs::write(
        dir.join("pyvenv.cfg"),
        "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12.1\n",
    )
    .unwrap();
    for extra in [&[][..], &["--preload"][..]] {
        let (code, log) = run_failing(
            Server::builder("basic:app")
                .args(["-w", "2"])
                .args(extra.iter().copied())
                .env("VIRTUAL_ENV", dir.path().to_string_lossy()),
        );
        assert_ne!(code, 0, "log:\n{log}");
        assert!(
            log.contains("3.12.1") && log.contains(&*dir.path().to_string_lossy()),
            "names venv and version:\n{log}"
        );
        assert_eq!(log.matches("3.12.1").count(), 1, "said once:\n{log}");
        assert!(
            !log.contains("Listening at"),
            "bound before refusing:\n{log}"
        );
        assert!(
            !log.contains("Booting worker"),
            "forked before refusing:\n{log}"
        );
    }
}

#[test]
fn unknown_worker_class_is_a_clear_error() {
    let (code, log) = run_failing(Server::builder("basic:app").args(["-k", "myapp.MyWorker"]));
    assert_ne!(code, 0);
    assert!(
        log.contains("myapp.MyWorker") && log.contains("sync, gthread and gevent"),
        "log:\n{log}"
    );
    assert!(!log.contains("Listening at"), "log:\n{log}");
}

#[test]
fn boot_failure_stops_workers_still_booting_and_leaves_none_behind() {
    let dir = TempDir::new("failsonce");
    let (code, log) = run_failing(
        Server::builder("fails_once:app")
            .args(["-w", "3", "--graceful-timeout", "1"])
            .env("FAILS_ONCE_MARKER", dir.join("marker").to_string_lossy()),
    );
    assert_eq!(code, 4, "log:\n{log}");
    assert_eq!(
        log.matches("RuntimeError: the first worker fails to import on purpose")
            .count(),
        1,
        "log:\n{log}"
    );
}
