//! `GET /metrics` in Prometheus' text exposition format (version 0.0.4),
//! served by the master itself: no Python, no thread. The listener and its
//! few clients are non-blocking fds in the master's poll set; a client gets
//! a short deadline to send its request head, and is dropped past it.

use super::counters::{Totals, BUCKETS};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// What the master knows at the time of a scrape.
pub struct Snapshot<'a> {
    pub totals: &'a Totals,
    /// (generation, state, count), one per pair present.
    pub workers: &'a [(u64, &'static str, u64)],
    pub connections_open: u64,
    pub restarts: &'a Restarts,
    pub upgrades: &'a Outcomes,
    pub reloads: &'a Outcomes,
}

/// Workers replaced, by why.
#[derive(Debug, Default, Clone)]
pub struct Restarts {
    pub timeout: u64,
    pub max_requests: u64,
    pub crash: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Outcomes {
    pub succeeded: u64,
    pub failed: u64,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

pub fn render(s: &Snapshot<'_>) -> String {
    let mut o = String::with_capacity(4096);
    requests(&mut o, s.totals);
    request_durations(&mut o, s.totals);
    workers(&mut o, s.workers);
    load(&mut o, s.connections_open, s.totals);
    restarts(&mut o, s.restarts);
    generations(&mut o, s.upgrades, s.reloads);
    o
}

fn requests(o: &mut String, totals: &Totals) {
    family(
        o,
        "ferricorn_requests_total",
        "counter",
        "Requests answered by the app, by response status.",
    );
    for (status, n) in totals.by_status() {
        let _ = writeln!(o, "ferricorn_requests_total{{status=\"{status}\"}} {n}");
    }
}

fn request_durations(o: &mut String, totals: &Totals) {
    family(
        o,
        "ferricorn_request_duration_seconds",
        "histogram",
        "Time from a complete request head to the response written.",
    );
    let cumulative = totals.cumulative_buckets();
    for (bound, n) in BUCKETS.iter().zip(&cumulative) {
        let _ = writeln!(
            o,
            "ferricorn_request_duration_seconds_bucket{{le=\"{bound}\"}} {n}"
        );
    }
    let count = cumulative.last().copied().unwrap_or(0);
    let _ = writeln!(
        o,
        "ferricorn_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(
        o,
        "ferricorn_request_duration_seconds_sum {}",
        totals.sum_seconds()
    );
    let _ = writeln!(o, "ferricorn_request_duration_seconds_count {count}");
}

fn workers(o: &mut String, workers: &[(u64, &'static str, u64)]) {
    family(
        o,
        "ferricorn_workers",
        "gauge",
        "Worker processes, by generation and state (booting, serving, retiring).",
    );
    for (g, state, n) in workers {
        let _ = writeln!(
            o,
            "ferricorn_workers{{generation=\"{g}\",state=\"{state}\"}} {n}"
        );
    }
}

/// Open connections and requests in flight: what the workers hold now.
fn load(o: &mut String, connections_open: u64, totals: &Totals) {
    family(
        o,
        "ferricorn_connections_open",
        "gauge",
        "Client connections the workers hold (idle keep-alive included).",
    );
    let _ = writeln!(o, "ferricorn_connections_open {connections_open}");
    family(
        o,
        "ferricorn_requests_in_flight",
        "gauge",
        "Requests the app is running now.",
    );
    let _ = writeln!(o, "ferricorn_requests_in_flight {}", totals.in_flight);
}

fn restarts(o: &mut String, restarts: &Restarts) {
    family(
        o,
        "ferricorn_worker_restarts_total",
        "counter",
        "Workers replaced, by reason.",
    );
    for (reason, n) in [
        ("timeout", restarts.timeout),
        ("max_requests", restarts.max_requests),
        ("crash", restarts.crash),
    ] {
        let _ = writeln!(
            o,
            "ferricorn_worker_restarts_total{{reason=\"{reason}\"}} {n}"
        );
    }
}

/// Binary upgrades and reloads, by outcome.
fn generations(o: &mut String, upgrades: &Outcomes, reloads: &Outcomes) {
    for (name, help, c) in [
        (
            "ferricorn_upgrades_total",
            "Binary upgrades (USR2) this master started, by outcome.",
            upgrades,
        ),
        (
            "ferricorn_reloads_total",
            "New generations (HUP, code reloads), by outcome.",
            reloads,
        ),
    ] {
        family(o, name, "counter", help);
        let _ = writeln!(o, "{name}{{outcome=\"succeeded\"}} {}", c.succeeded);
        let _ = writeln!(o, "{name}{{outcome=\"failed\"}} {}", c.failed);
    }
}

/// A scrape's client: reading its request head, then writing the answer.
struct Client {
    stream: TcpStream,
    deadline: Instant,
    read: Vec<u8>,
    /// The response once the head is in; `sent` bytes of it are written.
    out: Option<Vec<u8>>,
    sent: usize,
}

const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
const MAX_CLIENTS: usize = 16;
const MAX_HEAD: usize = 8192;

pub struct Exporter {
    listener: TcpListener,
    clients: Vec<Client>,
}

impl Exporter {
    /// Serve on a bound, listening socket (made non-blocking here).
    pub fn from_listener(listener: TcpListener) -> std::io::Result<Exporter> {
        listener.set_nonblocking(true)?;
        Ok(Exporter {
            listener,
            clients: Vec::new(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Fds to poll, with the events wanted.
    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        let clients = self
            .clients
            .iter()
            .map(|c| (c.stream.as_raw_fd(), c.out.is_some()));
        crate::pollset::push_server(out, self.listener.as_raw_fd(), clients);
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Accept, read and write what can be without blocking; `render` is
    /// called once per complete request.
    pub fn serve(&mut self, mut render: impl FnMut() -> String) {
        while self.clients.len() < MAX_CLIENTS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            stream,
                            deadline: Instant::now() + CLIENT_DEADLINE,
                            read: Vec::new(),
                            out: None,
                            sent: 0,
                        });
                    }
                }
                Err(_) => break,
            }
        }
        let now = Instant::now();
        self.clients
            .retain_mut(|c| now < c.deadline && c.step(&mut render));
    }
}

impl Client {
    /// Make progress; false once the client is done with (or gone).
    fn step(&mut self, render: &mut impl FnMut() -> String) -> bool {
        if self.out.is_none() {
            let mut buf = [0u8; 2048];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => self.read.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
                if self.read.len() > MAX_HEAD {
                    return false;
                }
            }
            let Some(end) = self.read.windows(4).position(|w| w == b"\r\n\r\n") else {
                return true;
            };
            self.out = Some(answer(&self.read[..end], render));
        }
        let out = self.out.as_deref().unwrap_or_default();
        while self.sent < out.len() {
            match self.stream.write(&out[self.sent..]) {
                Ok(0) => return false,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        false
    }
}

/// The whole response to one request head (the connection then closes).
fn answer(head: &[u8], render: &mut impl FnMut() -> String) -> Vec<u8> {
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    let (status, ctype, body) = match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        (b"GET" | b"HEAD", _) => ("404 Not Found", "text/plain", "Not Found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "Method Not Allowed\n".to_string(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != b"HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}
