//! Server hooks from a config file, through the real binary: every hook at
//! its moment with the objects real hook code uses, the same calls from
//! gunicorn.conf.py and from its TOML equivalent, exceptions handled where
//! gunicorn handles them, and SIGHUP re-reading the configuration.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

fn hooked() -> PathBuf {
    repo().join("tests").join("configs").join("hooked")
}

fn start_in(dir: &Path, hook_log: &Path, extra: &[&str]) -> Server {
    Server::builder("")
        .cwd(dir)
        .args(["--pythonpath", apps_dir().to_str().unwrap()])
        .args(extra.iter().copied())
        .env("HOOK_LOG", hook_log.to_string_lossy().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("GUNICORN_CMD_ARGS")
        .start()
}

fn hook_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// Serve two requests, stop with TERM: the hook calls, sorted (master and
/// workers write concurrently).
fn one_session(extra: &[&str]) -> (Vec<String>, String) {
    let tmp = TempDir::new("hooks");
    let log = tmp.join("hooks.log");
    let mut s = start_in(&hooked(), &log, extra);
    let r = s.request(
        b"GET /env/APP_GREETING HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.text(), "hello from raw_env", "raw_env reaches the app");
    assert_eq!(
        s.get_text("/env/WORKER_STATE"),
        "forked-True",
        "post_fork set process state in the worker"
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
    (hook_lines(&log), s.log())
}

#[test]
fn every_hook_is_called_at_its_moment_and_toml_calls_the_same() {
    let (py, log) = one_session(&[]);
    for want in [
        "nworkers_changed 2 None",
        "on_starting 2 hooked",
        "when_ready True",
        "pre_fork 1",
        "pre_fork 2",
        "post_fork 1 True",
        "post_fork 2 True",
        "post_worker_init 1 hello from raw_env",
        "pre_request GET /env/APP_GREETING yes",
        "post_request GET /env/APP_GREETING /env/APP_GREETING 200 OK",
        "post_request GET /env/WORKER_STATE /env/WORKER_STATE 200 OK",
        "worker_exit 1",
        "child_exit 2",
        "on_exit",
    ] {
        assert!(
            py.iter().any(|l| l == want),
            "no {want:?} in {py:#?}\nlog:\n{log}"
        );
    }
    assert!(
        log.contains("Server is ready. Spawning workers"),
        "server.log reaches the error log: {log}"
    );
    assert!(
        log.contains("access GET /env/APP_GREETING 200"),
        "the config's access log format: {log}"
    );
    let (toml, _) = one_session(&["-c", "ferricorn.toml"]);
    assert_eq!(py, toml);
}

fn write_conf(dir: &TempDir, text: &str) {
    std::fs::write(dir.join("gunicorn.conf.py"), text).unwrap();
}

const BASE: &str = "import os\nwsgi_app = 'basic:app'\nworkers = 1\n\ndef record(*a):\n    with open(os.environ['HOOK_LOG'], 'a') as f:\n        f.write(' '.join(map(str, a)) + '\\n')\n\ndef on_reload(server):\n    record('on_reload', server.cfg.timeout, server.cfg.workers)\n";

#[test]
fn hup_rereads_the_config_and_a_broken_one_keeps_the_running_one() {
    let dir = TempDir::new("hup-conf");
    let log = dir.join("hooks.log");
    write_conf(&dir, &format!("{BASE}timeout = 30\n"));
    let mut s = start_in(dir.path(), &log, &[]);
    assert_eq!(s.wait_workers(1, T).len(), 1);

    write_conf(&dir, &format!("{BASE}timeout = 31\nworkers = 2\n"));
    s.signal(libc::SIGHUP);
    assert!(
        eventually(T, || hook_lines(&log)
            .contains(&"on_reload 31 2".to_string())),
        "{:?}\n{}",
        hook_lines(&log),
        s.log()
    );
    assert!(s.wait_log("Configuration reloaded", T), "{}", s.log());
    assert_eq!(
        s.wait_workers(2, T).len(),
        2,
        "the new workers count applies: {}",
        s.log()
    );

    write_conf(&dir, &format!("{BASE}timeout = (\n"));
    s.signal(libc::SIGHUP);
    assert!(
        s.wait_log(
            "Cannot reload the configuration; the running configuration stays in force",
            T
        ),
        "{}",
        s.log()
    );
    assert!(
        s.log().contains("gunicorn.conf.py:11: SyntaxError"),
        "names file and line: {}",
        s.log()
    );
    assert!(eventually(T, || hook_lines(&log)
        .iter()
        .filter(|l| l.starts_with("on_reload 31 2"))
        .count()
        == 2));
    assert_eq!(s.get("/").status, 200);
    assert_eq!(s.wait_workers(2, T).len(), 2);
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
}

#[test]
fn hook_exceptions_are_logged_and_stop_only_where_gunicorn_stops() {
    // post_request and worker_exit raising: logged with the traceback, serving goes on.
    let dir = TempDir::new("hook-raise");
    let log = dir.join("hooks.log");
    write_conf(&dir, &format!("{BASE}\ndef post_request(worker, req):\n    raise ValueError('post ' + req.path)\n\ndef worker_exit(server, worker):\n    1 / 0\n"));
    let mut s = start_in(dir.path(), &log, &[]);
    assert_eq!(s.get("/a").status, 200);
    assert_eq!(s.get("/b").status, 200);
    assert!(s.wait_log("ValueError: post /b", T), "{}", s.log());
    assert!(
        s.log()
            .contains("Exception in post_request hook\nTraceback"),
        "{}",
        s.log()
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
    assert!(s.log().contains("ZeroDivisionError"), "{}", s.log());

    // pre_request raising: that request is a 500, the next one too, the worker lives.
    write_conf(&dir, &format!("{BASE}\ndef pre_request(worker, req):\n    if req.path == '/bad':\n        raise RuntimeError('refused')\n"));
    let mut s = start_in(dir.path(), &log, &[]);
    assert_eq!(s.get("/bad").status, 500);
    assert_eq!(s.get("/good").status, 200);
    assert!(s.log().contains("RuntimeError: refused"), "{}", s.log());
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0);

    // when_ready raising stops the start, as in gunicorn.
    write_conf(
        &dir,
        &format!("{BASE}\ndef when_ready(server):\n    raise RuntimeError('not ready')\n"),
    );
    let mut s = Server::builder("")
        .cwd(dir.path())
        .args(["--pythonpath", apps_dir().to_str().unwrap()])
        .env("HOOK_LOG", log.to_string_lossy().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .spawn();
    assert_eq!(s.exit_code(T), 1, "{}", s.log());
    assert!(s.log().contains("RuntimeError: not ready"), "{}", s.log());

    // post_worker_init raising: the worker fails to boot.
    write_conf(
        &dir,
        &format!("{BASE}\ndef post_worker_init(worker):\n    raise RuntimeError('no init')\n"),
    );
    let mut s = Server::builder("")
        .cwd(dir.path())
        .args(["--pythonpath", apps_dir().to_str().unwrap()])
        .env("HOOK_LOG", log.to_string_lossy().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .spawn();
    assert_eq!(s.exit_code(T), 3, "{}", s.log());
    assert!(s.log().contains("RuntimeError: no init"), "{}", s.log());
}

#[test]
fn worker_int_runs_on_quit_and_worker_abort_on_timeout() {
    let dir = TempDir::new("hook-int");
    let log = dir.join("hooks.log");
    write_conf(
        &dir,
        &format!("{BASE}wsgi_app = 'conformance:sleep'\ntimeout = 2\n\ndef worker_int(worker):\n    record('worker_int', worker.pid == os.getpid())\n\ndef worker_abort(worker):\n    record('worker_abort', worker.age, worker.aborted, worker.alive)\n\ndef worker_exit(server, worker):\n    record('worker_exit', worker.aborted)\n"),
    );
    let mut s = start_in(dir.path(), &log, &[]);
    assert_eq!(s.wait_workers(1, T).len(), 1);
    // A request stuck in Python past --timeout: SIGABRT, the hook, exit.
    let addr = s.addr();
    std::thread::spawn(move || {
        try_request(
            &addr,
            b"GET /?s=30 HTTP/1.0\r\n\r\n",
            Duration::from_secs(20),
        )
    });
    assert!(
        eventually(T, || hook_lines(&log)
            .iter()
            .any(|l| l.starts_with("worker_abort "))),
        "{:?}\n{}",
        hook_lines(&log),
        s.log()
    );
    assert!(s.wait_log("WORKER TIMEOUT", T));
    s.wait_ready(T);
    s.signal(libc::SIGQUIT);
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
    assert!(
        hook_lines(&log).contains(&"worker_int True".to_string()),
        "{:?}\n{}",
        hook_lines(&log),
        s.log()
    );
    // As in gunicorn, worker_exit follows worker_abort and worker_int.
    let lines = hook_lines(&log);
    assert!(
        lines.contains(&"worker_abort 1 True False".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"worker_exit True".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"worker_exit False".to_string()),
        "{lines:?}"
    );
}
