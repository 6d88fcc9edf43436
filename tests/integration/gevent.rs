//! gevent workers (`-k gevent`) with real gevent from the test venv: many
//! requests waiting at once on one worker, the app seeing a patched
//! standard library, cooperative I/O all the way (a request may call its
//! own server), post_fork before the patch, and the usual stop paths.

use crate::harness::*;
use std::io::Write;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn green(extra: &[&str]) -> Server {
    Server::builder("green:app")
        .args(["-w", "1", "-k", "gevent"])
        .args(extra.iter().copied())
        .with_venv()
        .start()
}

fn running(s: &Server) -> usize {
    app_count(s, "/running", "running")
}

#[test]
fn two_hundred_waiting_requests_run_at_once_on_one_worker() {
    let s = green(&["--worker-connections", "1000"]);
    s.get_text("/peak");
    let pending: Vec<_> = (0..200)
        .map(|_| get_in_background(&s.addr(), "/sleep?ms=500"))
        .collect();
    for rx in pending {
        let (r, _) = rx
            .recv_timeout(T)
            .expect("a waiting request was not answered");
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        s.get_text("/peak"),
        "peak=200\n",
        "all 200 were in the app at once"
    );
}

#[test]
fn the_app_sees_a_patched_standard_library_and_wsgi_multithread() {
    for class in [
        "gevent",
        "egg:gunicorn#gevent",
        "gunicorn.workers.ggevent.GeventWorker",
    ] {
        let s = Server::builder("green:app")
            .args(["-w", "1", "-k", class])
            .with_venv()
            .start();
        assert_eq!(
            s.get_text("/patched"),
            "socket=True time=True threading=True multithread=True\n",
            "-k {class}"
        );
        assert!(s.log().contains("Using worker: gevent"), "{}", s.log());
    }
}

#[test]
fn a_request_can_call_its_own_worker_while_it_waits() {
    // One worker, one process: only cooperative I/O answers the inner call.
    let s = green(&[]);
    let r = s.request(
        format!(
            "GET /selfcall HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", s.log());
    assert!(r.text().starts_with("outer got: slept 50"), "{}", r.text());
}

#[test]
fn post_fork_runs_before_the_patch_and_the_app_after_it() {
    let tmp = TempDir::new("gevent-hooks");
    let log = tmp.join("hooks.log");
    let s = Server::builder("green:app")
        .cwd(repo().join("tests").join("configs").join("gevent"))
        .args(["--pythonpath", apps_dir().to_str().unwrap()])
        .env("HOOK_LOG", log.to_string_lossy().to_string())
        .env_remove("GUNICORN_CMD_ARGS")
        .with_venv()
        .start();
    assert!(s.get_text("/patched").starts_with("socket=True"));
    let notes = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(notes, "post_fork socket patched=False\n");
}

#[test]
fn bodies_large_responses_keep_alive_and_pipelining_hold() {
    let s = green(&[]);
    // A response far larger than the socket buffers, read slowly.
    let mut c = connect(&s.addr());
    c.write_all(b"GET /big?n=4000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile the worker answers others.
    assert_eq!(s.get_text("/ok/meanwhile"), "ok /ok/meanwhile\n");
    let (data, closed) = read_until_close(&mut c, T);
    assert!(closed);
    assert!(data.len() > 4_000_000, "{}", data.len());
    // Bodies, Content-Length and chunked.
    let body = "y".repeat(200_000);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(
        s.request(raw.as_bytes()).text(),
        "200000 yyyyyyyyyyyyyyyy\n"
    );
    let raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    assert_eq!(s.request(raw).text(), "5 hello\n");
    // Pipelined requests on one keep-alive connection, answered in order.
    let mut c = connect(&s.addr());
    c.write_all(
        b"GET /sleep?ms=60 HTTP/1.1\r\nHost: x\r\n\r\nGET /ok/2 HTTP/1.1\r\nHost: x\r\n\r\nGET /ok/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let texts: Vec<String> = read_responses_until_close(&mut c)
        .iter()
        .map(|r| r.text())
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[0].starts_with("slept 60"));
    assert_eq!(texts[1], "ok /ok/2\n");
    assert_eq!(texts[2], "ok /ok/3\n");
    // Malformed input: 400 and the worker lives.
    assert_eq!(
        s.request(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
            .status,
        400
    );
    assert_eq!(s.get_text("/ok"), "ok /ok\n");
}

#[test]
fn term_finishes_the_greenlets_in_flight() {
    let mut s = green(&["--graceful-timeout", "20"]);
    let pending: Vec<_> = (0..20)
        .map(|_| get_in_background(&s.addr(), "/sleep?ms=1500"))
        .collect();
    assert!(eventually(T, || running(&s) == 20), "{}", s.log());
    s.signal(libc::SIGTERM);
    for rx in pending {
        let (r, _) = rx
            .recv_timeout(T)
            .expect("an in-flight request was dropped");
        assert_eq!(r.status, 200);
    }
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
}

#[test]
fn a_greenlet_past_the_timeout_is_logged_with_its_stack_and_the_worker_replaced() {
    let s = green(&["--timeout", "2", "--graceful-timeout", "2"]);
    let first = s.wait_workers(1, T);
    let _hung = get_in_background(&s.addr(), "/hang?s=60");
    assert!(s.wait_log("WORKER TIMEOUT", T), "{}", s.log());
    assert_eq!(s.get_text("/ok/meanwhile"), "ok /ok/meanwhile\n");
    assert!(s.wait_log_n("Booting worker with pid", 2, T), "{}", s.log());
    assert!(
        wait_gone(first[0], T),
        "the old worker did not go\n{}",
        s.log()
    );
    let log = s.log();
    assert!(
        log.contains("request \"GET /hang?s=60\" on a greenlet"),
        "{log}"
    );
    assert!(log.contains("green.py"), "the greenlet's stack:\n{log}");
    assert_eq!(s.get_text("/ok/after"), "ok /ok/after\n");
}

#[test]
fn a_worker_whose_hub_is_blocked_logs_every_greenlets_stack_and_is_replaced() {
    let s = green(&["--timeout", "2"]);
    let first = s.wait_workers(1, T);
    let _waiting = get_in_background(&s.addr(), "/sleep?ms=60000");
    assert!(eventually(T, || running(&s) == 1), "{}", s.log());
    let _spinning = get_in_background(&s.addr(), "/spin?s=30");
    assert!(s.wait_log("WORKER TIMEOUT", T), "{}", s.log());
    assert!(wait_gone(first[0], T), "{}", s.log());
    assert!(s.wait_log_n("Booting worker with pid", 2, T), "{}", s.log());
    let log = s.log();
    assert!(
        log.contains("Stacks of the greenlets of the worker"),
        "{log}"
    );
    // The suspended request and the one blocking the hub.
    assert!(
        log.contains("time.sleep(int(q.get(\"ms\", \"100\")) / 1000.0)"),
        "{log}"
    );
    assert!(log.contains("while time.monotonic() < end:"), "{log}");
    assert_eq!(s.get_text("/ok/after"), "ok /ok/after\n");
}

#[test]
fn without_gevent_installed_the_worker_class_is_one_clear_error() {
    // The base interpreter, not the test venv: no gevent there.
    let mut s = Server::builder("green:app")
        .args(["-w", "1", "-k", "gevent"])
        .env_remove("VIRTUAL_ENV")
        .no_wait()
        .spawn();
    let code = s.exit_code(T);
    assert_ne!(code, 0);
    let log = s.log();
    assert!(
        log.contains("the gevent worker class needs the gevent package in the app's environment (pip install gevent)"),
        "{log}"
    );
}

#[test]
fn eventlet_and_asgi_worker_classes_are_refused_with_what_to_use() {
    let started = Instant::now();
    for (class, want) in [
        ("eventlet", "gunicorn 27 removed its eventlet worker"),
        (
            "uvicorn.workers.UvicornWorker",
            "ferricorn is a WSGI server",
        ),
    ] {
        let mut s = Server::builder("basic:app")
            .args(["-k", class])
            .no_wait()
            .spawn();
        assert_ne!(s.exit_code(T), 0);
        assert!(s.log().contains(want), "{class}: {}", s.log());
    }
    assert!(started.elapsed() < T);
}
