//! Slow and idle clients are held by the worker's poller, not by a worker:
//! idle keep-alive connections and half-sent heads cost a file descriptor,
//! the request head has an absolute deadline (408), and the number of
//! connections a worker holds is bounded.

use crate::harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn fresh_requests_stay_fast_while_idle_and_half_sent_connections_are_held() {
    let s = Server::builder("conformance:app")
        .args(["-w", "2", "--keep-alive", "60", "--header-timeout", "60"])
        .start();
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..20 {
        let mut c = connect(&s.addr());
        c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut c).unwrap().status, 200);
        held.push(c); // idle keep-alive from now on
    }
    for _ in 0..20 {
        let mut c = connect(&s.addr());
        c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Half: sta")
            .unwrap();
        held.push(c); // stalled halfway through its headers
    }
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        let r = s.get(&format!("/ok/{i}"));
        let took = t.elapsed();
        assert_eq!(r.status, 200);
        worst = worst.max(took);
    }
    println!("slowest of 20 fresh requests beside 20 idle + 20 half-sent connections: {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "a fresh request took {worst:?}"
    );
    // The held connections are still alive and usable.
    let mut idle = held.swap_remove(0);
    idle.write_all(b"GET /ok/again HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).unwrap().text(), "ok /ok/again\n");
    let mut half = held.pop().unwrap();
    half.write_all(b"lled\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut half).unwrap().text(), "ok /ok\n");
}

#[test]
fn a_head_not_complete_by_the_header_timeout_gets_408() {
    let s = Server::builder("conformance:app")
        .args(["-w", "1", "--header-timeout", "1"])
        .start();
    let mut c = connect(&s.addr());
    let t = Instant::now();
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").unwrap();
    let r = read_response(&mut c).unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 408);
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "408 after {took:?}"
    );
    assert!(read_until_close(&mut c, Duration::from_secs(5)).1);
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn the_header_deadline_is_absolute_not_reset_by_trickling_bytes() {
    let s = Server::builder("conformance:app")
        .args(["-w", "1", "--header-timeout", "1"])
        .start();
    let mut c = connect(&s.addr());
    let mut reader = c.try_clone().unwrap();
    let t = Instant::now();
    let trickle = std::thread::spawn(move || {
        c.write_all(b"GET /ok HTTP/1.1\r\n").unwrap();
        // One byte every 50 ms: never idle long, never finished.
        for _ in 0..100 {
            if c.write_all(b"X").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let r = read_response(&mut reader).unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 408);
    assert!(
        took < Duration::from_secs(3),
        "the slowloris was held for {took:?}"
    );
    drop(reader);
    trickle.join().unwrap();
}

#[test]
fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let s = Server::builder("conformance:app")
        .args(["-w", "1", "--header-timeout", "1"])
        .start();
    let mut c = connect(&s.addr());
    let t = Instant::now();
    let (out, closed) = read_until_close(&mut c, Duration::from_secs(5));
    assert!(closed && out.is_empty(), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn worker_connections_bounds_the_connections_a_worker_holds() {
    worker_connections_bound("conformance:app", &[], 4);
}

/// With `--worker-connections n` (and `extra`), n idle keep-alive
/// connections are held, the next one waits in the listen queue, and
/// freeing one slot lets it in. The app answers `/ok/X` with "ok /ok/X".
pub fn worker_connections_bound(app: &str, extra: &[&str], n: usize) {
    let s = Server::builder(app)
        .args(["-w", "1", "--keep-alive", "60"])
        .args(["--worker-connections", &n.to_string()])
        .args(extra.iter().copied())
        .start();
    let mut held = Vec::new();
    for _ in 0..n {
        let mut c = connect(&s.addr());
        c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut c).unwrap().status, 200);
        held.push(c);
    }
    // One more connection waits in the listen queue while n are held.
    let mut extra = connect(&s.addr());
    extra
        .write_all(b"GET /ok/next HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    extra
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(
        extra.read(&mut b).is_err(),
        "the worker accepted beyond --worker-connections"
    );
    // Freeing one slot lets it in.
    drop(held.pop());
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let r = read_response(&mut extra).unwrap();
    assert_eq!(r.text(), "ok /ok/next\n");
}
