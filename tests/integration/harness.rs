//! Runs the real ferricorn binary on a random loopback port and talks to it
//! with raw HTTP. Readiness is the "Listening at:" log line plus a polled
//! request, never a fixed sleep. Every process started is killed on drop
//! (the master runs in its own process group, workers included).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ferricorn");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory of the small WSGI apps the tests serve.
pub fn apps_dir() -> PathBuf {
    repo().join("tests").join("apps")
}

pub fn examples_dir() -> PathBuf {
    repo().join("examples")
}

/// The project's virtualenv (with Flask and Django), if scripts/setup made it.
pub fn venv() -> Option<PathBuf> {
    std::env::var_os("FERRICORN_TEST_VENV")
        .map(PathBuf::from)
        .or_else(|| Some(repo().join(".venv")))
        .filter(|p| p.join("pyvenv.cfg").exists())
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "ferricorn-test-{}-{}-{}",
            tag,
            std::process::id(),
            n
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Server {
    pub child: Child,
    pub pid: u32,
    pub port: u16,
    log: Arc<Mutex<String>>,
    exited: Option<ExitStatus>,
    /// The threads copying stdout/stderr into `log`.
    readers: Vec<std::thread::JoinHandle<()>>,
}

pub struct Builder {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    env_remove: Vec<String>,
    chdir: PathBuf,
    bind: Option<String>,
    wait_ready: bool,
}

impl Builder {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }
    pub fn env_remove(mut self, k: &str) -> Self {
        self.env_remove.push(k.into());
        self
    }
    /// Working directory of the process (default: tests/apps).
    pub fn cwd(mut self, p: impl Into<PathBuf>) -> Self {
        self.chdir = p.into();
        self
    }
    /// Use this bind instead of 127.0.0.1:0.
    pub fn bind(mut self, b: impl Into<String>) -> Self {
        self.bind = Some(b.into());
        self
    }
    /// Don't wait for a first successful request (e.g. broken apps).
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }
    pub fn with_venv(self) -> Self {
        match venv() {
            Some(v) => self.env("VIRTUAL_ENV", v.to_string_lossy().to_string()),
            None => panic!("the test venv is missing: run scripts/setup (scripts/test does it)"),
        }
    }

    /// Spawn and return without waiting for anything.
    pub fn spawn(self) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&self.chdir);
        let bind = self.bind.clone().unwrap_or_else(|| "127.0.0.1:0".into());
        if !bind.is_empty() {
            cmd.arg("-b").arg(&bind);
        }
        cmd.args(&self.args);
        cmd.env_remove("VIRTUAL_ENV")
            .env_remove("PORT")
            .env_remove("WEB_CONCURRENCY");
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        Server::spawn_command(cmd)
    }

    pub fn start(self) -> Server {
        let wait = self.wait_ready;
        let tcp = self
            .bind
            .as_deref()
            .map(|b| !b.starts_with("unix:") && !b.is_empty())
            .unwrap_or(true);
        let mut s = self.spawn();
        if tcp {
            let port = s.wait_port(Duration::from_secs(20));
            s.port = port.unwrap_or_else(|| panic!("no 'Listening at' line; log:\n{}", s.log()));
        }
        if wait && tcp {
            s.wait_ready(Duration::from_secs(30));
        }
        s
    }
}

impl Server {
    /// A server for `app` (a module:attr in tests/apps unless cwd changes).
    pub fn builder(app: &str) -> Builder {
        let mut args = vec![];
        if !app.is_empty() {
            args.push(app.to_string());
        }
        Builder {
            args,
            envs: vec![],
            env_remove: vec![],
            chdir: apps_dir(),
            bind: None,
            wait_ready: true,
        }
    }

    pub fn start(app: &str) -> Server {
        Server::builder(app).start()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Wait until the log contains `needle` `n` times.
    pub fn wait_log_n(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.count_log(needle) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_log_n(needle, 1, timeout)
    }

    fn wait_port(&self, timeout: Duration) -> Option<u16> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let log = self.log();
            if let Some(port) = listening_port(&log) {
                return Some(port);
            }
            if log.contains("Shutting down: Master") {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Poll until a GET / gets any HTTP response.
    pub fn wait_ready(&self, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(r) = try_request(
                &self.addr(),
                b"GET / HTTP/1.0\r\n\r\n",
                Duration::from_secs(5),
            ) {
                if r.status > 0 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server not ready in {timeout:?}; log:\n{}", self.log());
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid as i32, sig) };
    }

    pub fn get(&self, path: &str) -> Response {
        self.request(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    }

    pub fn request(&self, raw: &[u8]) -> Response {
        try_request(&self.addr(), raw, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("request failed: {e}; log:\n{}", self.log()))
    }

    /// Wait for the master to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited {
            return Some(s);
        }
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
                // Let the log readers reach the end of the output (bounded:
                // a surviving worker could hold the pipe open).
                let end = Instant::now() + Duration::from_secs(2);
                while Instant::now() < end && !self.readers.iter().all(|r| r.is_finished()) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Worker pids: children of the master whose title says worker.
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid)
    }

    /// Wait until the master has exactly `n` children.
    pub fn wait_workers(&self, n: usize, timeout: Duration) -> Vec<u32> {
        let end = Instant::now() + timeout;
        loop {
            let w = self.worker_pids();
            if w.len() == n || Instant::now() >= end {
                return w;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.pid as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copy the child's stderr and stdout, line by line, into one shared log
/// (echoed when FERRICORN_TEST_ECHO is set).
fn collect_output(child: &mut Child) -> (Arc<Mutex<String>>, Vec<std::thread::JoinHandle<()>>) {
    let log = Arc::new(Mutex::new(String::new()));
    let streams = [
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    let readers = streams
        .into_iter()
        .flatten()
        .map(|stream| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stream);
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if std::env::var_os("FERRICORN_TEST_ECHO").is_some() {
                        eprint!("{line}");
                    }
                    log.lock().unwrap().push_str(&line);
                    line.clear();
                }
            })
        })
        .collect();
    (log, readers)
}

/// The port of the first "Listening at: http(s)://HOST:PORT" line in a log.
pub fn listening_port(log: &str) -> Option<u16> {
    let at = log.find("Listening at: http")? + "Listening at: http".len();
    let rest = log[at..].trim_start_matches('s').strip_prefix("://")?;
    rest.split_whitespace()
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

pub fn children_of(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub fn process_alive(pid: u32) -> bool {
    // A zombie still answers kill(0); read its state instead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if !process_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send `raw` on a new connection and read one response (the server closes
/// or frames it with Content-Length / chunked).
pub fn try_request(addr: &str, raw: &[u8], timeout: Duration) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(raw)?;
    read_response(&mut s)
}

/// Read one response from a stream (keep-alive aware).
pub fn read_response(s: &mut impl Read) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "closed after {} bytes of head: {:?}",
                    buf.len(),
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_string();
    let status: u16 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut resp = Response {
        status,
        version,
        headers,
        body: vec![],
    };
    if (100..200).contains(&status) {
        return Ok(resp);
    }
    if let Some(cl) = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0u8; cl];
        s.read_exact(&mut body)?;
        resp.body = body;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        resp.body = read_chunked(s)?;
    } else if status == 204 || status == 304 {
    } else {
        s.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

fn read_line(s: &mut impl Read) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "eof in chunked body",
            ));
        }
        line.push(b[0]);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn read_chunked(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(s)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).map_err(
            |_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad chunk size {line:?}"),
                )
            },
        )?;
        if size == 0 {
            while !read_line(s)?.is_empty() {}
            return Ok(body);
        }
        let mut chunk = vec![0u8; size];
        s.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk);
        read_line(s)?;
    }
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Live (non-zombie) processes whose process group is `pgid`: the harness
/// starts each master as a group leader, so after it exits this lists orphans.
pub fn process_group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the ")" of the command name: state ppid pgrp ...
        let rest: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if rest.len() > 2 && rest[0] != "Z" && rest[2].parse::<u32>().ok() == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

/// One line of /proc/PID/status, e.g. `Uid:` → "65534 65534 65534 65534".
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
}

/// Send `raw` over a unix socket and read one response.
pub fn unix_request(path: &Path, raw: &[u8], timeout: Duration) -> std::io::Result<Response> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(raw)?;
    read_response(&mut s)
}

impl Server {
    /// Wait for the master to exit; panics with the log if it does not.
    pub fn exit_code(&mut self, timeout: Duration) -> i32 {
        match self.wait_exit(timeout) {
            Some(s) => s
                .code()
                .unwrap_or_else(|| panic!("master died of a signal: {s:?}; log:\n{}", self.log())),
            None => panic!(
                "master still running after {timeout:?}; log:\n{}",
                self.log()
            ),
        }
    }

    /// GET `path` and return the body text; panics (with the log) on a non-200.
    pub fn get_text(&self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {r:?}; log:\n{}", self.log());
        r.text()
    }
}

// ---- Raw-connection helpers for protocol tests ----

/// A client connection with a read timeout, so no test can hang on a read.
pub fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Read until the server closes (EOF or reset) or `timeout` passes.
/// Returns the bytes and whether the connection was closed.
pub fn read_until_close(s: &mut TcpStream, timeout: Duration) -> (Vec<u8>, bool) {
    let end = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return (out, true),
        }
    }
}

/// Every response on the connection until the server closes it.
pub fn read_responses_until_close(s: &mut TcpStream) -> Vec<Response> {
    let mut out = Vec::new();
    while let Ok(r) = read_response(s) {
        let close = r
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        out.push(r);
        if close {
            break;
        }
    }
    out
}

/// `key=value` lines (the conformance app's output) as a map.
pub fn kv(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (FIPS 180-4), for checking uploads without a crypto crate.
pub fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

impl Server {
    /// Run a prepared command (e.g. one that passes an inherited fd) as a
    /// server: own process group, output collected, killed on drop. The
    /// command must not have spawned yet; stdio is set here.
    pub fn spawn_command(mut cmd: Command) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.process_group(0);
        let mut child = cmd.spawn().expect("spawn ferricorn");
        let (log, readers) = collect_output(&mut child);
        let pid = child.id();
        Server {
            child,
            pid,
            port: 0,
            log,
            exited: None,
            readers,
        }
    }

    /// Wait for "Listening at: http://HOST:PORT" and remember the port.
    pub fn await_port(&mut self, timeout: Duration) -> u16 {
        let port = self
            .wait_port(timeout)
            .unwrap_or_else(|| panic!("no 'Listening at' line; log:\n{}", self.log()));
        self.port = port;
        port
    }
}

/// Kills a process on drop (a daemon outside the harness's process group).
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0 > 1 {
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
}

/// GET `path` on a new connection from another thread; the response comes
/// back through the channel with the moment it arrived.
#[allow(dead_code)]
pub fn get_in_background(
    addr: &str,
    path: &str,
) -> std::sync::mpsc::Receiver<(Response, std::time::Instant)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (addr, path) = (addr.to_string(), path.to_string());
    std::thread::spawn(move || {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        if let Ok(r) = try_request(&addr, raw.as_bytes(), Duration::from_secs(60)) {
            let _ = tx.send((r, std::time::Instant::now()));
        }
    });
    rx
}

/// The number an app prints as `name=N` at `path` (0 if it does not).
#[allow(dead_code)]
pub fn app_count(s: &Server, path: &str, name: &str) -> usize {
    s.get_text(path)
        .trim()
        .strip_prefix(&format!("{name}="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
