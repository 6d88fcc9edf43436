//! A load generator that counts every failure.
//!
//! Each client thread sends GET requests in a loop until stopped, over a
//! keep-alive connection or a new connection per request, and classifies
//! every outcome: ok, refused, reset, timeout, 5xx, other. Like real HTTP
//! clients (RFC 9112 §9.3.1), a request on a *reused* keep-alive connection
//! that gets no byte of response — the server closed the idle connection
//! as the request was sent — is retried once on a new connection; a
//! connection refused, a reset after the request was accepted, a timeout
//! or a 5xx is a failure.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub ok: u64,
    pub refused: u64,
    pub reset: u64,
    pub timeout: u64,
    pub server_error: u64,
    pub other: u64,
    pub retried_stale: u64,
    /// How many responses carried each distinct body (e.g. a version string).
    pub bodies: BTreeMap<String, u64>,
    pub errors: Vec<String>,
}

impl Stats {
    pub fn failed(&self) -> u64 {
        self.refused + self.reset + self.timeout + self.server_error + self.other
    }
    fn merge(&mut self, o: Stats) {
        self.ok += o.ok;
        self.refused += o.refused;
        self.reset += o.reset;
        self.timeout += o.timeout;
        self.server_error += o.server_error;
        self.other += o.other;
        self.retried_stale += o.retried_stale;
        for (k, v) in o.bodies {
            *self.bodies.entry(k).or_default() += v;
        }
        self.errors.extend(o.errors.into_iter().take(10));
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok {} failed {} (refused {}, reset {}, timeout {}, 5xx {}, other {}), stale keep-alive retries {}, bodies {:?}, first errors {:?}",
            self.ok, self.failed(), self.refused, self.reset, self.timeout, self.server_error, self.other, self.retried_stale, self.bodies, self.errors
        )
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Stats>>,
    live: Arc<Mutex<u64>>,
}

#[derive(Clone)]
pub enum Target {
    Tcp(String),
    Unix(std::path::PathBuf),
}

enum Conn {
    Tcp(TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Conn {
    fn open(t: &Target, timeout: Duration) -> std::io::Result<Conn> {
        let c = match t {
            Target::Tcp(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(timeout))?;
                Conn::Tcp(s)
            }
            Target::Unix(p) => {
                let s = std::os::unix::net::UnixStream::connect(p)?;
                s.set_read_timeout(Some(timeout))?;
                Conn::Unix(s)
            }
        };
        Ok(c)
    }
}

impl Read for Conn {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(b),
            Conn::Unix(s) => s.read(b),
        }
    }
}
impl Write for Conn {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(b),
            Conn::Unix(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One response: (status, body, server wants close).
fn exchange(c: &mut Conn, req: &[u8]) -> Result<(u16, String, bool), (std::io::Error, bool)> {
    c.write_all(req).map_err(|e| (e, false))?;
    let mut buf = Vec::with_capacity(512);
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = c.read(&mut tmp).map_err(|e| (e, !buf.is_empty()))?;
        if n == 0 {
            let got_any = !buf.is_empty();
            return Err((
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"),
                got_any,
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let close = lower.contains("\r\nconnection: close");
    let len: usize = lower
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = c.read(&mut tmp).map_err(|e| (e, true))?;
        if n == 0 {
            return Err((
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "body cut short"),
                true,
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len])
        .trim()
        .to_string();
    Ok((status, body, close))
}

fn classify(stats: &mut Stats, e: &std::io::Error) {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => stats.refused += 1,
        ConnectionReset | BrokenPipe | UnexpectedEof | ConnectionAborted => stats.reset += 1,
        WouldBlock | TimedOut => stats.timeout += 1,
        _ => stats.other += 1,
    }
    if stats.errors.len() < 10 {
        stats.errors.push(e.to_string());
    }
}

impl Load {
    /// Start `clients` threads; `keepalive` clients reuse their connection.
    pub fn start(target: Target, path: &str, clients: usize, keepalive: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(0));
        let req = if keepalive {
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
        } else {
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        };
        let threads = (0..clients)
            .map(|_| {
                let stop = stop.clone();
                let live = live.clone();
                let target = target.clone();
                let req = req.clone().into_bytes();
                std::thread::spawn(move || {
                    let mut stats = Stats::default();
                    let mut conn: Option<Conn> = None;
                    let timeout = Duration::from_secs(10);
                    while !stop.load(Ordering::Relaxed) {
                        let reused = conn.is_some();
                        if conn.is_none() {
                            match Conn::open(&target, timeout) {
                                Ok(c) => conn = Some(c),
                                Err(e) => {
                                    classify(&mut stats, &e);
                                    std::thread::sleep(Duration::from_millis(5));
                                    continue;
                                }
                            }
                        }
                        let c = conn.as_mut().unwrap();
                        let mut result = exchange(c, &req);
                        if let Err((_, false)) = &result {
                            if reused {
                                // Stale keep-alive connection: retry once on a fresh one.
                                stats.retried_stale += 1;
                                result = match Conn::open(&target, timeout) {
                                    Ok(mut fresh) => {
                                        let r = exchange(&mut fresh, &req);
                                        conn = Some(fresh);
                                        r
                                    }
                                    Err(e) => Err((e, false)),
                                };
                            }
                        }
                        match result {
                            Ok((status, body, close)) => {
                                if status >= 500 || status == 0 {
                                    stats.server_error += 1;
                                    if stats.errors.len() < 10 {
                                        stats.errors.push(format!("status {status}"));
                                    }
                                } else {
                                    stats.ok += 1;
                                    *stats.bodies.entry(body).or_default() += 1;
                                    *live.lock().unwrap() += 1;
                                }
                                if close || !keepalive {
                                    conn = None;
                                }
                            }
                            Err((e, _)) => {
                                classify(&mut stats, &e);
                                conn = None;
                            }
                        }
                    }
                    stats
                })
            })
            .collect();
        Load {
            stop,
            threads,
            live,
        }
    }

    /// Successful responses so far (to wait for traffic to flow).
    pub fn ok_so_far(&self) -> u64 {
        *self.live.lock().unwrap()
    }

    /// Wait until at least `n` more requests succeeded.
    pub fn wait_progress(&self, n: u64, timeout: Duration) -> bool {
        let start = self.ok_so_far();
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if self.ok_so_far() >= start + n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    pub fn stop(self) -> Stats {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Stats::default();
        for t in self.threads {
            if let Ok(s) = t.join() {
                total.merge(s);
            }
        }
        total
    }
}
