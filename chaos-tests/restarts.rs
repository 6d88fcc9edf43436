//! Worker generations under load: HUP, max_requests, TTIN/TTOU, a killed
//! worker. The guarantee: the master replaces workers without a failed
//! request, with sync workers, threaded ones (`--threads 4`) and gevent ones.

use crate::harness::*;
use crate::load::{Load, Target};
use std::time::Duration;

fn server(extra: &[&str]) -> Server {
    Server::builder("chaos:app")
        .args(["-w", "2", "--graceful-timeout", "10"])
        .args(extra.iter().copied())
        // gevent comes from the test venv.
        .with_venv()
        .start()
}

/// Threaded workers: every scenario holds for them too.
pub const THREADS: &[&str] = &["--threads", "4"];
/// gevent workers (gevent comes from the test venv): and for them.
pub const GEVENT: &[&str] = &["-k", "gevent"];

fn booted(s: &Server) -> usize {
    s.count_log("Booting worker with pid")
}

#[test]
fn ten_hups_under_load_fail_no_request() {
    hups_under_load(&[], "/");
}

/// Slow requests, so that every retiring worker has several in flight on
/// its threads.
#[test]
fn ten_hups_under_load_fail_no_request_with_threads() {
    hups_under_load(THREADS, "/slow");
}

#[test]
fn ten_hups_under_load_fail_no_request_with_gevent() {
    hups_under_load(GEVENT, "/slow");
}

fn hups_under_load(extra: &[&str], path: &str) {
    let s = server(extra);
    for keepalive in [true, false] {
        let load = Load::start(Target::Tcp(s.addr()), path, 8, keepalive);
        assert!(
            load.wait_progress(50, Duration::from_secs(10)),
            "no traffic; log:\n{}",
            s.log()
        );
        for _ in 0..5 {
            let before = booted(&s);
            s.signal(libc::SIGHUP);
            // Each HUP replaces both workers: wait for two new boots and the traffic to go on.
            assert!(
                s.wait_log_n(
                    "Booting worker with pid",
                    before + 2,
                    Duration::from_secs(20)
                ),
                "{}",
                s.log()
            );
            assert!(load.wait_progress(50, Duration::from_secs(10)));
        }
        let stats = load.stop();
        println!("HUP x5, keepalive={keepalive} {extra:?}: {stats}");
        assert_eq!(stats.failed(), 0, "{stats}\nlog:\n{}", s.log());
    }
}

#[test]
fn max_requests_recycling_under_load_fails_no_request() {
    max_requests_recycling(&[]);
}

#[test]
fn max_requests_recycling_under_load_fails_no_request_with_threads() {
    max_requests_recycling(THREADS);
}

#[test]
fn max_requests_recycling_under_load_fails_no_request_with_gevent() {
    max_requests_recycling(GEVENT);
}

fn max_requests_recycling(extra: &[&str]) {
    let mut args = vec!["--max-requests", "200", "--max-requests-jitter", "50"];
    args.extend_from_slice(extra);
    let s = server(&args);
    let load = Load::start(Target::Tcp(s.addr()), "/", 8, true);
    let start = booted(&s);
    assert!(
        s.wait_log_n(
            "Booting worker with pid",
            start + 6,
            Duration::from_secs(60)
        ),
        "{}",
        s.log()
    );
    let stats = load.stop();
    println!("max_requests recycling {extra:?}: {stats}");
    assert_eq!(stats.failed(), 0, "{stats}\nlog:\n{}", s.log());
}

#[test]
fn ttin_ttou_under_load_fail_no_request() {
    ttin_ttou(&[]);
}

#[test]
fn ttin_ttou_under_load_fail_no_request_with_threads() {
    ttin_ttou(THREADS);
}

#[test]
fn ttin_ttou_under_load_fail_no_request_with_gevent() {
    ttin_ttou(GEVENT);
}

fn ttin_ttou(extra: &[&str]) {
    let s = server(extra);
    let load = Load::start(Target::Tcp(s.addr()), "/slow", 6, true);
    assert!(load.wait_progress(20, Duration::from_secs(10)));
    for _ in 0..3 {
        s.signal(libc::SIGTTIN);
        assert_eq!(
            s.wait_workers(3, Duration::from_secs(10)).len(),
            3,
            "{}",
            s.log()
        );
        assert!(load.wait_progress(10, Duration::from_secs(10)));
        s.signal(libc::SIGTTOU);
        assert_eq!(
            s.wait_workers(2, Duration::from_secs(15)).len(),
            2,
            "{}",
            s.log()
        );
        assert!(load.wait_progress(10, Duration::from_secs(10)));
    }
    let stats = load.stop();
    println!("TTIN/TTOU x3 {extra:?}: {stats}");
    assert_eq!(stats.failed(), 0, "{stats}\nlog:\n{}", s.log());
}

#[test]
fn a_killed_worker_is_replaced_and_serving_goes_on() {
    let s = server(&[]);
    let load = Load::start(Target::Tcp(s.addr()), "/", 4, false);
    assert!(load.wait_progress(20, Duration::from_secs(10)));
    let victim = s.worker_pids()[0];
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    assert!(eventually(Duration::from_secs(10), || {
        let w = s.worker_pids();
        w.len() == 2 && !w.contains(&victim)
    }));
    assert!(load.wait_progress(50, Duration::from_secs(10)));
    let stats = load.stop();
    println!("worker SIGKILL: {stats}");
    // Only a request the killed worker held at that instant may fail.
    assert!(stats.failed() <= 4, "{stats}");
    assert!(
        s.log()
            .contains(&format!("Worker (pid:{victim}) was sent SIGKILL!")),
        "{}",
        s.log()
    );
}
