//! Threaded workers (`--threads N`, `-k gthread`): real threads, real
//! sleeps, real sockets. Requests that wait overlap on one worker, the event
//! loop keeps slow and idle clients to itself, requests are served in the
//! order they became complete, and every stop path finishes what runs.

use crate::harness::*;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn threaded(extra: &[&str]) -> Server {
    Server::builder("threaded:app")
        .args(["-w", "1"])
        .args(extra.iter().copied())
        .start()
}

fn running(s: &Server) -> usize {
    app_count(s, "/running", "running")
}

#[test]
fn slow_requests_run_in_parallel_on_one_worker() {
    let s = threaded(&["--threads", "4"]);
    s.get_text("/peak"); // reset
    let pending: Vec<_> = (0..4)
        .map(|_| get_in_background(&s.addr(), "/sleep?ms=600"))
        .collect();
    let mut pids = std::collections::HashSet::new();
    let mut threads = std::collections::HashSet::new();
    for rx in pending {
        let (r, _) = rx.recv_timeout(T).expect("a slow request was not answered");
        assert_eq!(r.status, 200);
        let text = r.text();
        let field = |k: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(k).map(String::from))
                .unwrap()
        };
        pids.insert(field("pid="));
        threads.insert(field("thread="));
    }
    assert_eq!(pids.len(), 1, "one worker served them all");
    assert_eq!(threads.len(), 4, "each ran on its own thread");
    assert_eq!(
        s.get_text("/peak"),
        "peak=4\n",
        "all four were in the app at once"
    );
}

#[test]
fn one_thread_is_the_sync_worker_and_more_set_wsgi_multithread() {
    let s = threaded(&["--threads", "1"]);
    assert_eq!(
        s.get_text("/env"),
        "multithread=False multiprocess=False main=True\n"
    );
    let s = threaded(&["--threads", "4"]);
    assert_eq!(
        s.get_text("/env"),
        "multithread=True multiprocess=False main=False\n"
    );
    // gunicorn's thread worker under each of its names, whatever the count.
    for class in [
        "gthread",
        "egg:gunicorn#gthread",
        "gunicorn.workers.gthread.ThreadWorker",
    ] {
        let s = threaded(&["-k", class]);
        assert_eq!(
            s.get_text("/env"),
            "multithread=True multiprocess=False main=False\n",
            "-k {class}"
        );
    }
}

#[test]
fn threads_come_from_config_files_and_the_environment() {
    let tmp = TempDir::new("threads-config");
    std::fs::write(tmp.join("gunicorn.conf.py"), "threads = 4\n").unwrap();
    let s = Server::builder("threaded:app")
        .args(["-c", tmp.join("gunicorn.conf.py").to_str().unwrap()])
        .start();
    assert!(s.get_text("/env").starts_with("multithread=True"));
    std::fs::write(tmp.join("ferricorn.toml"), "worker_class = \"gthread\"\n").unwrap();
    let s = Server::builder("threaded:app")
        .args(["-c", tmp.join("ferricorn.toml").to_str().unwrap()])
        .start();
    assert!(s.get_text("/env").starts_with("multithread=True"));
    let s = Server::builder("threaded:app")
        .env("GUNICORN_CMD_ARGS", "--threads 3")
        .start();
    assert!(s.get_text("/env").starts_with("multithread=True"));
}

/// A client pipelining many slow requests on one connection does not make
/// a request that became complete after its first one wait for all of them.
fn later_request_overtakes_a_pipelined_burst(threads: &str) {
    let s = threaded(&["--threads", threads, "--keep-alive", "30"]);
    let mut burst = connect(&s.addr());
    let mut raw = Vec::new();
    for _ in 0..8 {
        raw.extend_from_slice(b"GET /sleep?ms=150 HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    burst.write_all(&raw).unwrap();
    // Once the burst's first answer is out, another client asks.
    burst.set_read_timeout(Some(T)).unwrap();
    assert_eq!(read_response(&mut burst).unwrap().status, 200);
    let late = get_in_background(&s.addr(), "/sleep?ms=1");
    let mut arrivals = Vec::new();
    for _ in 1..8 {
        let r = read_response(&mut burst).unwrap();
        assert_eq!(r.status, 200);
        arrivals.push(Instant::now());
    }
    let (r, late_at) = late
        .recv_timeout(T)
        .expect("the later request was not answered");
    assert_eq!(r.status, 200);
    let overtaken = arrivals.iter().filter(|t| **t > late_at).count();
    assert!(
        overtaken >= 5,
        "--threads {threads}: the later request was answered after {} of the 8 pipelined ones",
        8 - overtaken
    );
}

#[test]
fn requests_are_served_in_arrival_order_not_per_connection_sync() {
    later_request_overtakes_a_pipelined_burst("1");
}

#[test]
fn requests_are_served_in_arrival_order_not_per_connection_threaded() {
    later_request_overtakes_a_pipelined_burst("2");
}

#[test]
fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let s = threaded(&["--threads", "4"]);
    let mut c = connect(&s.addr());
    let mut raw = Vec::new();
    for i in 0..6 {
        let ms = if i % 2 == 0 { 80 } else { 1 };
        raw.extend_from_slice(format!("GET /sleep?ms={ms} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    raw.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.write_all(&raw).unwrap();
    let responses = read_responses_until_close(&mut c);
    let texts: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(texts.len(), 7, "{texts:?}");
    for (i, t) in texts.iter().take(6).enumerate() {
        let ms = if i % 2 == 0 { "80" } else { "1" };
        assert!(t.starts_with(&format!("slept {ms} ")), "{i}: {t}");
    }
    assert_eq!(texts[6], "ok /last\n");
}

#[test]
fn thread_local_state_lasts_across_requests() {
    let s = threaded(&["--threads", "2"]);
    let mut seen: std::collections::HashMap<String, Vec<u32>> = Default::default();
    for _ in 0..12 {
        let text = s.get_text("/local");
        let mut parts = text.split_whitespace();
        let thread = parts.next().unwrap().to_string();
        let n: u32 = parts
            .next()
            .unwrap()
            .trim_start_matches("n=")
            .parse()
            .unwrap();
        seen.entry(thread).or_default().push(n);
    }
    assert!(seen.len() <= 2, "{seen:?}");
    for (thread, counts) in &seen {
        let want: Vec<u32> = (1..=counts.len() as u32).collect();
        assert_eq!(
            counts, &want,
            "{thread}: a thread's threading.local was reset"
        );
    }
}

#[test]
fn bodies_stream_to_threads_with_content_length_and_chunked() {
    let s = threaded(&["--threads", "3"]);
    let body = "x".repeat(300_000);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(
        s.request(raw.as_bytes()).text(),
        "300000 xxxxxxxxxxxxxxxx\n"
    );
    let raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    assert_eq!(s.request(raw).text(), "11 hello world\n");
    // A malformed chunked body is the client's fault: 400, the worker lives.
    let raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    assert_eq!(s.request(raw).status, 400);
    assert_eq!(s.get_text("/ok"), "ok /ok\n");
}

#[test]
fn slow_and_idle_clients_hold_no_thread() {
    let s = threaded(&[
        "--threads",
        "2",
        "--keep-alive",
        "60",
        "--header-timeout",
        "60",
    ]);
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..10 {
        let mut c = connect(&s.addr());
        c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut c).unwrap().status, 200);
        held.push(c); // idle keep-alive from now on
    }
    for _ in 0..10 {
        let mut c = connect(&s.addr());
        c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Half: sta")
            .unwrap();
        held.push(c); // stalled halfway through its head
    }
    // Both threads stay free: two slow requests run side by side.
    s.get_text("/peak");
    let a = get_in_background(&s.addr(), "/sleep?ms=300");
    let b = get_in_background(&s.addr(), "/sleep?ms=300");
    assert_eq!(a.recv_timeout(T).unwrap().0.status, 200);
    assert_eq!(b.recv_timeout(T).unwrap().0.status, 200);
    assert_eq!(s.get_text("/peak"), "peak=2\n");
    let mut half = held.pop().unwrap();
    half.write_all(b"lled\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut half).unwrap().text(), "ok /ok\n");
}

#[test]
fn worker_connections_bounds_a_threaded_worker_too() {
    crate::slow_clients::worker_connections_bound("threaded:app", &["--threads", "2"], 3);
}

#[test]
fn term_finishes_the_request_on_every_thread() {
    // Five threads: four busy, one left to answer /running.
    let mut s = threaded(&["--threads", "5", "--graceful-timeout", "20"]);
    let pending: Vec<_> = (0..4)
        .map(|_| get_in_background(&s.addr(), "/sleep?ms=1500"))
        .collect();
    assert!(eventually(T, || running(&s) == 4), "{}", s.log());
    s.signal(libc::SIGTERM);
    for rx in pending {
        let (r, _) = rx
            .recv_timeout(T)
            .expect("an in-flight request was dropped");
        assert_eq!(r.status, 200);
        assert!(r.text().starts_with("slept 1500"));
    }
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
}

#[test]
fn max_requests_counts_requests_on_all_threads() {
    let s = threaded(&["--threads", "4", "--max-requests", "10"]);
    for round in 1..=3 {
        // Ten concurrent requests: together they reach max_requests.
        let pending: Vec<_> = (0..10)
            .map(|i| get_in_background(&s.addr(), &format!("/sleep?ms={}", 20 + i)))
            .collect();
        for rx in pending {
            assert_eq!(rx.recv_timeout(T).unwrap().0.status, 200);
        }
        assert!(
            s.wait_log_n("Autorestarting worker after current request.", round, T),
            "{}",
            s.log()
        );
        assert!(
            s.wait_log_n("Booting worker with pid", round + 1, T),
            "{}",
            s.log()
        );
        assert!(eventually(T, || s.worker_pids().len() == 1), "{}", s.log());
    }
}

#[test]
fn a_request_past_the_timeout_is_logged_with_its_stack_and_the_worker_replaced() {
    let s = threaded(&[
        "--threads",
        "2",
        "--timeout",
        "2",
        "--graceful-timeout",
        "2",
    ]);
    let first = s.wait_workers(1, T);
    let hung = get_in_background(&s.addr(), "/hang?s=60");
    assert!(s.wait_log("WORKER TIMEOUT", T), "{}", s.log());
    // Other requests go on being answered throughout.
    assert_eq!(s.get_text("/ok/meanwhile"), "ok /ok/meanwhile\n");
    assert!(s.wait_log_n("Booting worker with pid", 2, T), "{}", s.log());
    assert!(
        wait_gone(first[0], T),
        "the old worker did not go\n{}",
        s.log()
    );
    let log = s.log();
    assert!(log.contains("request \"GET /hang?s=60\""), "{log}");
    assert!(
        log.contains("threaded.py"),
        "the stuck thread's stack:\n{log}"
    );
    assert!(
        log.contains("time.sleep(float(q.get(\"s\", \"60\")))"),
        "{log}"
    );
    assert_eq!(s.get_text("/ok/after"), "ok /ok/after\n");
    drop(hung);
}

fn hook_config() -> PathBuf {
    repo().join("tests").join("configs").join("threaded")
}

#[test]
fn request_hooks_run_on_the_requests_thread_and_worker_int_sees_every_thread() {
    let tmp = TempDir::new("thread-hooks");
    let log = tmp.join("hooks.log");
    let mut s = Server::builder("threaded:app")
        .cwd(hook_config())
        .args(["--pythonpath", apps_dir().to_str().unwrap()])
        .env("HOOK_LOG", log.to_string_lossy().to_string())
        .env_remove("GUNICORN_CMD_ARGS")
        .start();
    let pending: Vec<_> = (0..3)
        .map(|i| get_in_background(&s.addr(), &format!("/sleep?ms={}", 200 + i)))
        .collect();
    let mut idents = std::collections::HashMap::new();
    for rx in pending {
        let (r, _) = rx.recv_timeout(T).unwrap();
        let text = r.text();
        let ms = text.split_whitespace().nth(1).unwrap().to_string();
        let thread = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("thread="))
            .unwrap()
            .to_string();
        idents.insert(ms, thread);
    }
    // post_request runs once the response is out: give it a moment.
    let all_noted = || {
        let notes = std::fs::read_to_string(&log).unwrap_or_default();
        idents.values().all(|t| {
            notes.contains(&format!("pre /sleep {t}"))
                && notes.contains(&format!("post /sleep {t}"))
        })
    };
    assert!(
        eventually(T, all_noted),
        "{idents:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // A request stuck in the app while QUIT arrives: the dump shows it.
    let _hung = get_in_background(&s.addr(), "/hang?s=30");
    assert!(eventually(T, || running(&s) >= 1), "{}", s.log());
    s.signal(libc::SIGQUIT);
    let _ = s.wait_exit(T);
    let notes = std::fs::read_to_string(&log).unwrap_or_default();
    // sys._current_frames() lists the threads running Python: the loop's
    // (running the hook) and the stuck request's.
    assert!(
        notes.matches("\nthread ").count() + usize::from(notes.starts_with("thread ")) >= 2,
        "one stack per thread running Python:\n{notes}"
    );
    assert!(notes.contains("time.sleep(float(q.get"), "{notes}");
}

#[test]
fn flask_serves_concurrently_on_threads() {
    let Some(_) = venv() else {
        eprintln!("skipped: no test venv");
        return;
    };
    let s = Server::builder("app:app")
        .cwd(examples_dir().join("flaskapp"))
        .args(["-w", "1", "--threads", "4"])
        .with_venv()
        .start();
    let pending: Vec<_> = (0..16).map(|_| get_in_background(&s.addr(), "/")).collect();
    for rx in pending {
        assert_eq!(rx.recv_timeout(T).unwrap().0.status, 200);
    }
}
