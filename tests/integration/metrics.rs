//! Metrics as operators read them: StatsD datagrams caught by a real UDP
//! (and unix datagram) receiver, and Prometheus scrapes of the master whose
//! counters equal the requests sent, across worker recycling and HUP.

use crate::harness::*;
use std::collections::HashMap;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

/// Metric lines received until `done` holds for them all, or the timeout.
fn collect(
    recv: impl Fn(&mut [u8]) -> Option<usize>,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let end = Instant::now() + T;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < end && !done(&got) {
        if let Some(n) = recv(&mut buf) {
            // Per-request lines come several to a datagram (StatsD's
            // multi-metric form), each datagram within an MTU.
            assert!(n <= 1400, "a datagram of {n} bytes");
            let d = String::from_utf8_lossy(&buf[..n]).into_owned();
            got.extend(d.split('\n').map(String::from));
        }
    }
    got
}

fn has(got: &[String], d: &str) -> bool {
    got.iter().any(|g| g == d)
}

#[test]
fn statsd_datagrams_are_those_gunicorn_sends() {
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    agent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let target = agent.local_addr().unwrap().to_string();
    let s = Server::builder("basic:boom")
        .args([
            "--statsd-host",
            &target,
            "--statsd-prefix",
            "shop",
            "--dogstatsd-tags",
            "env:test,team:web",
        ])
        .start();
    assert_eq!(s.get("/").status, 200);
    assert_eq!(s.get("/boom").status, 500);
    let want = [
        "shop.gunicorn.requests:1|c|@1.0|#env:test,team:web",
        "shop.gunicorn.request.status.200:1|c|@1.0|#env:test,team:web",
        "shop.gunicorn.request.status.500:1|c|@1.0|#env:test,team:web",
        "shop.gunicorn.workers:1|g|#env:test,team:web",
        "shop.gunicorn.log.error:1|c|@1.0|#env:test,team:web",
    ];
    let got = collect(|b| agent.recv(b).ok(), |g| want.iter().all(|w| has(g, w)));
    for w in want {
        assert!(
            has(&got, w),
            "{w:?} not received; got {got:?}; log:\n{}",
            s.log()
        );
    }
    let durations: Vec<&String> = got
        .iter()
        .filter(|g| g.starts_with("shop.gunicorn.request.duration:"))
        .collect();
    assert!(!durations.is_empty(), "no duration timer in {got:?}");
    for d in durations {
        let v = d
            .strip_prefix("shop.gunicorn.request.duration:")
            .and_then(|r| r.strip_suffix("|ms|#env:test,team:web"))
            .unwrap_or_else(|| panic!("timer format: {d:?}"));
        let ms: f64 = v.parse().unwrap_or_else(|_| panic!("timer value: {d:?}"));
        assert!(v.contains('.') && (0.0..10_000.0).contains(&ms), "{d:?}");
    }
}

#[test]
fn statsd_over_a_unix_socket_with_the_backlog_metric() {
    let dir = TempDir::new("statsd-unix");
    let path = dir.join("agent.sock");
    let agent = UnixDatagram::bind(&path).unwrap();
    agent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let s = Server::builder("basic:app")
        .args([
            "--statsd-host",
            &format!("unix:{}", path.display()),
            "--enable-backlog-metric",
        ])
        .start();
    assert_eq!(s.get("/").status, 200);
    let want = [
        "gunicorn.requests:1|c|@1.0",
        "gunicorn.backlog:0|h",
        "gunicorn.workers:1|g",
    ];
    let got = collect(|b| agent.recv(b).ok(), |g| want.iter().all(|w| has(g, w)));
    for w in want {
        assert!(
            has(&got, w),
            "{w:?} not received; got {got:?}; log:\n{}",
            s.log()
        );
    }
}

#[test]
fn a_dead_statsd_agent_costs_no_request() {
    // Nothing listens there: every datagram is refused.
    let port = free_port();
    let s = Server::builder("basic:app")
        .args(["--statsd-host", &format!("127.0.0.1:{port}")])
        .start();
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(s.get("/").status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    s.signal(libc::SIGHUP);
    assert!(s.wait_log("Hang up: Master", T));
    for _ in 0..200 {
        assert_eq!(s.get("/").status, 200);
    }
    assert!(!s.log().contains("StatsD is off"), "{}", s.log());
}

/// Samples of one scrape: `name{labels}` → value.
fn scrape(addr: &str) -> HashMap<String, f64> {
    let r = try_request(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("scrape {addr}: {e}"));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    r.text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A scrape once no request is in flight: a response reaches its client
/// just before its worker counts it.
fn settled(addr: &str) -> HashMap<String, f64> {
    let mut m = scrape(addr);
    let end = Instant::now() + T;
    while sample(&m, "ferricorn_requests_in_flight") > 0.0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
        m = scrape(addr);
    }
    m
}

fn sample(m: &HashMap<String, f64>, k: &str) -> f64 {
    m.get(k).copied().unwrap_or(0.0)
}

fn serving(m: &HashMap<String, f64>) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with("ferricorn_workers{") && k.contains("state=\"serving\""))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn prometheus_counts_exactly_the_requests_sent_across_recycling_and_hup() {
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let s = Server::builder("basic:boom")
        .args(["-w", "2", "--max-requests", "7", "--graceful-timeout", "5"])
        .args(["--metrics-bind", &maddr])
        .no_wait()
        .start();
    assert!(
        eventually(T, || try_request(
            &maddr,
            b"GET /metrics HTTP/1.0\r\n\r\n",
            Duration::from_secs(2)
        )
        .is_ok_and(|r| r.status == 200)
            && serving(&scrape(&maddr)) == 2.0),
        "metrics not served; log:\n{}",
        s.log()
    );
    let m = scrape(&maddr);
    assert_eq!(sample(&m, "ferricorn_request_duration_seconds_count"), 0.0);
    let send = |n: usize| {
        for i in 0..n {
            let path = if i % 4 == 3 { "/boom" } else { "/" };
            let r = s.get(path);
            assert!(r.status == 200 || r.status == 500);
        }
    };
    send(20);
    let m = settled(&maddr);
    assert_eq!(
        sample(&m, "ferricorn_requests_total{status=\"200\"}"),
        15.0,
        "{m:?}"
    );
    assert_eq!(
        sample(&m, "ferricorn_requests_total{status=\"500\"}"),
        5.0,
        "{m:?}"
    );
    assert_eq!(sample(&m, "ferricorn_request_duration_seconds_count"), 20.0);
    assert_eq!(
        sample(&m, "ferricorn_request_duration_seconds_bucket{le=\"+Inf\"}"),
        20.0
    );
    // 20 requests over 2 workers recycled every 7: some were replaced.
    assert!(eventually(T, || sample(
        &scrape(&maddr),
        "ferricorn_worker_restarts_total{reason=\"max_requests\"}"
    ) >= 1.0));
    s.signal(libc::SIGHUP);
    assert!(
        eventually(T, || {
            let m = scrape(&maddr);
            sample(&m, "ferricorn_reloads_total{outcome=\"succeeded\"}") == 1.0
                && serving(&m) == 2.0
        }),
        "HUP did not complete; log:\n{}",
        s.log()
    );
    send(20);
    let m = settled(&maddr);
    assert_eq!(
        sample(&m, "ferricorn_requests_total{status=\"200\"}"),
        30.0,
        "{m:?}"
    );
    assert_eq!(
        sample(&m, "ferricorn_requests_total{status=\"500\"}"),
        10.0,
        "{m:?}"
    );
    assert_eq!(sample(&m, "ferricorn_request_duration_seconds_count"), 40.0);
    assert_eq!(sample(&m, "ferricorn_requests_in_flight"), 0.0);
    assert_eq!(
        sample(&m, "ferricorn_worker_restarts_total{reason=\"crash\"}"),
        0.0
    );
    assert_eq!(
        sample(&m, "ferricorn_upgrades_total{outcome=\"failed\"}"),
        0.0
    );
    // Anything but GET /metrics is refused.
    let r = try_request(&maddr, b"GET / HTTP/1.0\r\n\r\n", Duration::from_secs(2)).unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn prometheus_counts_a_crashed_worker_and_keeps_its_requests() {
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let s = Server::builder("basic:app")
        .args(["--metrics-bind", &maddr])
        .start();
    let before = sample(&settled(&maddr), "ferricorn_request_duration_seconds_count");
    for _ in 0..5 {
        assert_eq!(s.get("/").status, 200);
    }
    let counted = sample(&settled(&maddr), "ferricorn_request_duration_seconds_count");
    assert_eq!(counted, before + 5.0);
    let pid = s.wait_workers(1, T)[0];
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert!(
        eventually(T, || {
            let m = scrape(&maddr);
            sample(&m, "ferricorn_worker_restarts_total{reason=\"crash\"}") == 1.0
                && serving(&m) == 1.0
        }),
        "log:\n{}",
        s.log()
    );
    let m = scrape(&maddr);
    assert_eq!(
        sample(&m, "ferricorn_request_duration_seconds_count"),
        before + 5.0
    );
}
