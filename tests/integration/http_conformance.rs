//! HTTP/1.x connection handling and strict parsing, through the real binary:
//! keep-alive, pipelining, graceful shutdown, limits, malformed requests and
//! the invalid parser corpus replayed against a live server.

use crate::harness::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn server() -> Server {
    Server::builder("conformance:app").args(["-w", "1"]).start()
}

pub(crate) fn is_close(r: &Response) -> bool {
    r.header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

#[test]
fn http11_connection_is_kept_alive_across_requests() {
    let s = server();
    let mut c = connect(&s.addr());
    for i in 0..3 {
        c.write_all(format!("GET /ok/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut c).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(r.text(), format!("ok /ok/{i}\n"));
        assert!(!is_close(&r));
    }
    c.write_all(b"GET /ok/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c).unwrap();
    assert!(is_close(&r));
    assert!(
        read_until_close(&mut c, Duration::from_secs(5)).1,
        "server must close after Connection: close"
    );
}

#[test]
fn http10_keeps_alive_only_when_asked() {
    let s = server();
    let mut c = connect(&s.addr());
    for _ in 0..2 {
        c.write_all(b"GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_response(&mut c).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.version, "HTTP/1.0");
        assert!(
            r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
            "{:?}",
            r.headers
        );
    }
    // Without the header, a 1.0 connection ends with the response.
    c.write_all(b"GET /ok HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 200);
    assert!(is_close(&r));
    assert!(read_until_close(&mut c, Duration::from_secs(5)).1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(
        b"GET /ok/1 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /read?mode=read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          POST /read?mode=read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /ok/4 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let r1 = read_response(&mut c).unwrap();
    assert_eq!(r1.text(), "ok /ok/1\n");
    let r2 = read_response(&mut c).unwrap();
    assert_eq!(kv(&r2.text())["body"], hex(b"hello"));
    let r3 = read_response(&mut c).unwrap();
    assert_eq!(kv(&r3.text())["body"], hex(b"abc"));
    let r4 = read_response(&mut c).unwrap();
    assert_eq!(r4.text(), "ok /ok/4\n");
}

#[test]
fn pipelined_requests_in_one_write_get_three_responses() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /ok/a HTTP/1.1\r\nHost: x\r\n\r\nGET /ok/b HTTP/1.1\r\nHost: x\r\n\r\nGET /ok/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let rs = read_responses_until_close(&mut c);
    let bodies: Vec<String> = rs.iter().map(|r| r.text()).collect();
    assert_eq!(bodies, ["ok /ok/a\n", "ok /ok/b\n", "ok /ok/c\n"]);
}

#[test]
fn idle_keep_alive_connection_is_closed_after_keep_alive_seconds() {
    let s = Server::builder("conformance:app")
        .args(["-w", "1", "--keep-alive", "1"])
        .start();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 200);
    let t = Instant::now();
    let (rest, closed) = read_until_close(&mut c, Duration::from_secs(5));
    let waited = t.elapsed();
    assert!(
        closed && rest.is_empty(),
        "idle connection must be closed silently, got {rest:?}"
    );
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_millis(2500),
        "closed after {waited:?}, expected ~1s"
    );
}

#[test]
fn keep_alive_zero_closes_after_each_response() {
    let s = Server::builder("conformance:app")
        .args(["-w", "1", "--keep-alive", "0"])
        .start();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut c).unwrap();
    assert!(is_close(&r));
    assert!(read_until_close(&mut c, Duration::from_secs(5)).1);
}

#[test]
fn graceful_shutdown_answers_in_flight_request_with_connection_close() {
    let dir = TempDir::new("graceful");
    let marker = dir.join("started");
    let s = Server::builder("conformance:app")
        .args(["-w", "1", "--graceful-timeout", "10"])
        .start();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(!is_close(&read_response(&mut c).unwrap()));
    // Second request on the same keep-alive connection; TERM arrives while it runs.
    c.write_all(
        format!(
            "GET /sleep?s=1&marker={} HTTP/1.1\r\nHost: x\r\n\r\n",
            marker.display()
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || marker.exists()),
        "the app never started"
    );
    s.signal(libc::SIGTERM);
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slept\n");
    assert!(
        is_close(&r),
        "response during shutdown must carry Connection: close: {:?}",
        r.headers
    );
    assert!(read_until_close(&mut c, Duration::from_secs(5)).1);
}

#[test]
fn graceful_shutdown_finishes_request_whose_head_is_still_arriving() {
    let s = Server::builder("conformance:app")
        .args([
            "-w",
            "1",
            "--graceful-timeout",
            "10",
            "--log-level",
            "debug",
        ])
        .start();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(!is_close(&read_response(&mut c).unwrap()));
    c.write_all(b"GET /ok/late HTTP/1.1\r\nHo").unwrap();
    let worker = s.wait_workers(1, Duration::from_secs(5))[0];
    s.signal(libc::SIGTERM);
    // Finish the head only once the worker has begun its graceful stop.
    assert!(
        s.wait_log("Graceful stop:", Duration::from_secs(5)),
        "worker never began stopping; log:\n{}",
        s.log()
    );
    c.write_all(b"st: x\r\n\r\n").unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.text(), "ok /ok/late\n");
    assert!(is_close(&r), "{:?}", r.headers);
    assert!(wait_gone(worker, Duration::from_secs(10)));
}

// ---- strict parsing ----

/// Send `raw`, expect one response with `status`, then the connection closed;
/// then check the same worker still serves.
pub(crate) fn expect_rejected(s: &Server, raw: &[u8], status: u16) {
    let mut c = connect(&s.addr());
    c.write_all(raw).unwrap();
    let r = read_response(&mut c)
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(raw)));
    assert_eq!(
        r.status,
        status,
        "for {:?}: {}",
        String::from_utf8_lossy(raw),
        r.text()
    );
    assert!(is_close(&r), "error responses close the connection");
    assert!(
        read_until_close(&mut c, Duration::from_secs(5)).1,
        "connection must close after an error"
    );
    assert_eq!(
        s.get("/ok").status,
        200,
        "worker must still serve after {:?}",
        String::from_utf8_lossy(raw)
    );
}

#[test]
fn malformed_requests_get_their_status_then_close_and_the_worker_survives() {
    let s = server();
    let pid_before = s.get("/pid").text();
    let cases: &[(&[u8], u16)] = &[
        (b"get / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400),
        (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET noslash HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        (b"POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
        (b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", 400),
        (b"POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n", 400),
    ];
    for (raw, status) in cases {
        expect_rejected(&s, raw, *status);
    }
    assert_eq!(
        s.get("/pid").text(),
        pid_before,
        "the same worker serves on"
    );
}

#[test]
fn request_limits_answer_414_and_431() {
    let s = Server::builder("conformance:app")
        .args([
            "-w",
            "1",
            "--limit-request-line",
            "100",
            "--limit-request-fields",
            "5",
            "--limit-request-field_size",
            "60",
        ])
        .start();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200));
    expect_rejected(&s, long_target.as_bytes(), 414);
    let many: String = (0..10).map(|i| format!("X-H{i}: v\r\n")).collect();
    expect_rejected(&s, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(), 431);
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(100));
    expect_rejected(&s, big.as_bytes(), 431);
    // Just inside the limits is fine.
    let r = s.request(
        format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "a".repeat(80)
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn over_long_request_line_is_rejected_without_waiting_for_its_end() {
    let s = Server::builder("conformance:app")
        .args(["-w", "1", "--limit-request-line", "100"])
        .start();
    let mut c = connect(&s.addr());
    c.write_all(format!("GET /{}", "a".repeat(300)).as_bytes())
        .unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 414);
}

// ---- the invalid parser corpus, replayed live ----

struct CorpusCase {
    name: String,
    bytes: Vec<u8>,
    status: u16,
    valid_before: usize,
    limits: Option<String>,
    /// gunicorn parser switches the case turns on (setting names).
    rules: Vec<String>,
}

fn corpus_cases() -> Vec<CorpusCase> {
    let dir = repo().join("tests/corpus/invalid");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "http"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let expect = std::fs::read_to_string(p.with_extension("expect")).unwrap();
            let mut status = 0;
            let mut valid_before = 0;
            let mut limits = None;
            let mut rules = Vec::new();
            for line in expect.lines() {
                let line = line.trim();
                if line == "request" {
                    valid_before += 1;
                } else if let Some(v) = line.strip_prefix("status ") {
                    status = v.trim().parse().unwrap();
                } else if let Some(v) = line.strip_prefix("limits ") {
                    limits = Some(v.split('#').next().unwrap().trim().to_string());
                } else if let Some(v) = line.strip_prefix("rules ") {
                    rules = v.split_whitespace().map(String::from).collect();
                }
            }
            CorpusCase {
                name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                bytes: std::fs::read(&p).unwrap(),
                status,
                valid_before,
                limits,
                rules,
            }
        })
        .collect()
}

#[test]
fn invalid_corpus_requests_are_rejected_by_the_live_server() {
    let cases = corpus_cases();
    assert!(cases.len() > 50, "corpus missing?");
    type Key = (Option<String>, Vec<String>);
    let mut by_limits: std::collections::BTreeMap<Key, Vec<&CorpusCase>> = Default::default();
    for c in &cases {
        by_limits
            .entry((c.limits.clone(), c.rules.clone()))
            .or_default()
            .push(c);
    }
    let mut failures = Vec::new();
    for ((limits, rules), group) in by_limits {
        let mut b = Server::builder("conformance:ignore_body").args(["-w", "1"]);
        for rule in &rules {
            b = b.arg(format!("--{}", rule.replace('_', "-")));
        }
        if let Some(l) = &limits {
            let v: Vec<&str> = l.split_whitespace().collect();
            b = b.args([
                "--limit-request-line",
                v[0],
                "--limit-request-fields",
                v[1],
                "--limit-request-field_size",
                v[2],
            ]);
        }
        let s = b.start();
        let pid = s.get("/").status;
        assert_eq!(pid, 200);
        for case in group {
            let mut c = connect(&s.addr());
            // A client may still be sending when the server rejects; a reset
            // on write is fine, the response is what counts.
            let _ = c.write_all(&case.bytes);
            let rs = read_responses_until_close(&mut c);
            let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
            let mut want = vec![200; case.valid_before];
            want.push(case.status);
            if statuses != want {
                failures.push(format!("{}: got {statuses:?}, want {want:?}", case.name));
            }
            if s.get("/").status != 200 {
                failures.push(format!("{}: worker stopped serving", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "corpus cases failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn error_response_survives_a_client_still_sending() {
    // The server answers before it has read everything; closing a socket
    // with unread input sends a reset, which can destroy the response on its
    // way to the client. The error must still arrive.
    let s = server();
    for (head, status) in [
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
                "h".repeat(2_000_000)
            ),
            431,
        ),
        (
            format!(
                "POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}",
                "j".repeat(2_000_000)
            ),
            400,
        ),
    ] {
        for _ in 0..5 {
            let mut c = connect(&s.addr());
            let mut w = c.try_clone().unwrap();
            let data = head.clone().into_bytes();
            let writer = std::thread::spawn(move || {
                let _ = w.write_all(&data);
            });
            // Read only once the writer is done (or failed): by then any
            // reset has arrived.
            writer.join().unwrap();
            let r = read_response(&mut c).unwrap_or_else(|e| panic!("no {status} response: {e}"));
            assert_eq!(r.status, status);
        }
    }
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn later_http_1_minor_versions_are_answered_as_1_1() {
    let s = server();
    let r = s.request(b"GET /ok HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.version, "HTTP/1.1");
    expect_rejected(&s, b"GET /ok HTTP/3.0\r\nHost: x\r\n\r\n", 505);
    expect_rejected(&s, b"GET /ok HTTP/0.9\r\nHost: x\r\n\r\n", 505);
}

#[test]
fn large_response_arrives_whole_when_the_request_body_is_left_unread() {
    // The app answers without reading a large upload, so the connection
    // must close with request bytes still unread. Closing such a socket at
    // once resets it and discards response bytes not yet transmitted; the
    // server has to stop reading politely instead.
    let s = server();
    for _ in 0..3 {
        let mut c = connect(&s.addr());
        c.write_all(b"POST /big?n=4000000 HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n")
            .unwrap();
        c.write_all(&vec![b'u'; 300_000]).unwrap();
        let r = read_response(&mut c).unwrap_or_else(|e| panic!("response cut short: {e}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 4_000_000);
        assert!(is_close(&r));
    }
    assert_eq!(s.get("/ok").status, 200);
}
