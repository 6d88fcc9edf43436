//! Syslog, sent from Rust in the layout gunicorn's `SysLogHandler` uses:
//! `<PRI>gunicorn.PREFIX.error: [PID] message\0` (`.access` for access
//! lines), PRI = facility * 8 + severity.
//!
//! The socket is opened by the master (at start and on HUP) and inherited by
//! workers. It is non-blocking and a message that cannot be sent at once is
//! dropped: a slow or absent syslog daemon never holds up a request.

use crate::log::Level;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// gunicorn's facility names (glogging.SYSLOG_FACILITIES).
pub const FACILITIES: &[(&str, u8)] = &[
    ("auth", 4),
    ("authpriv", 10),
    ("cron", 9),
    ("daemon", 3),
    ("ftp", 11),
    ("kern", 0),
    ("lpr", 6),
    ("mail", 2),
    ("news", 7),
    ("security", 4),
    ("syslog", 5),
    ("user", 1),
    ("uucp", 8),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

pub fn facility(name: &str) -> Option<u8> {
    let name = name.to_ascii_lowercase();
    FACILITIES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// Where syslog goes, as gunicorn's `parse_syslog_address` reads `syslog_addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Udp(String, u16),
    Tcp(String, u16),
    /// A unix socket; `dgram_only` for `#dgram`, else datagram then stream.
    Unix {
        path: String,
        dgram_only: bool,
    },
}

impl Target {
    pub fn parse(addr: &str) -> Result<Target, String> {
        if let Some(rest) = addr.strip_prefix("unix://") {
            let (path, kind) = match rest.split_once('#') {
                Some((p, k)) => (p, Some(k)),
                None => (rest, None),
            };
            return Ok(Target::Unix {
                path: path.to_string(),
                dgram_only: kind == Some("dgram"),
            });
        }
        let (rest, tcp) = if let Some(r) = addr.strip_prefix("udp://") {
            (r, false)
        } else if let Some(r) = addr.strip_prefix("tcp://") {
            (r, true)
        } else {
            return Err(format!(
                "invalid syslog address {addr:?}: expected udp://HOST:PORT, tcp://HOST:PORT or unix://PATH"
            ));
        };
        let (host, port_part) = if let Some(v6) = rest.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, p)) => (h.to_ascii_lowercase(), p.strip_prefix(':')),
                None => return Err(format!("invalid syslog address {addr:?}")),
            }
        } else if let Some((h, p)) = rest.split_once(':') {
            (h.to_ascii_lowercase(), Some(p))
        } else {
            (rest.to_ascii_lowercase(), None)
        };
        let host = if host.is_empty() {
            "localhost".to_string()
        } else {
            host
        };
        let port = match port_part {
            None => 514,
            Some(p) => p.parse::<u16>().map_err(|_| {
                format!("{p:?} is not a valid port number (syslog address {addr:?})")
            })?,
        };
        Ok(if tcp {
            Target::Tcp(host, port)
        } else {
            Target::Udp(host, port)
        })
    }
}

/// What the syslog settings ask for, validated when the config is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    pub target: Target,
    pub facility: u8,
    /// `syslog_prefix`, or proc_name with ':' as '.'.
    pub prefix: String,
    /// Access lines too (unless disable_redirect_access_to_syslog).
    pub access: bool,
}

enum Sock {
    Udp(UdpSocket),
    UnixDgram(UnixDatagram),
    UnixStream(UnixStream),
    Tcp(TcpStream),
}

pub struct Syslog {
    sock: Sock,
    facility: u8,
    error_tag: String,
    access_tag: Option<String>,
}

static ON: AtomicBool = AtomicBool::new(false);
static ACCESS_ON: AtomicBool = AtomicBool::new(false);
static CURRENT: RwLock<Option<Arc<Syslog>>> = RwLock::new(None);

fn resolve(host: &str, port: u16) -> Result<std::net::SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("syslog host {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("syslog host {host}: no address"))
}

impl Syslog {
    /// Open the socket. Connecting is the only step that may wait (a TCP
    /// connect, at most a second); sending never does.
    pub fn open(cfg: &SyslogConfig) -> Result<Syslog, String> {
        let sock = match &cfg.target {
            Target::Udp(host, port) => {
                let addr = resolve(host, *port)?;
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(local).map_err(|e| format!("syslog socket: {e}"))?;
                s.connect(addr)
                    .map_err(|e| format!("syslog udp://{addr}: {e}"))?;
                s.set_nonblocking(true)
                    .map_err(|e| format!("syslog socket: {e}"))?;
                Sock::Udp(s)
            }
            Target::Tcp(host, port) => {
                let addr = resolve(host, *port)?;
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    .map_err(|e| format!("cannot connect to syslog at tcp://{addr}: {e}"))?;
                s.set_nonblocking(true)
                    .map_err(|e| format!("syslog socket: {e}"))?;
                Sock::Tcp(s)
            }
            Target::Unix { path, dgram_only } => {
                let dgram = UnixDatagram::unbound().and_then(|s| s.connect(path).map(|()| s));
                match dgram {
                    Ok(s) => {
                        s.set_nonblocking(true)
                            .map_err(|e| format!("syslog socket: {e}"))?;
                        Sock::UnixDgram(s)
                    }
                    Err(e)
                        if !dgram_only
                            && e.raw_os_error() == Some(nix::errno::Errno::EPROTOTYPE as i32) =>
                    {
                        let s = UnixStream::connect(path).map_err(|e| {
                            format!("cannot connect to syslog at unix://{path}: {e}")
                        })?;
                        s.set_nonblocking(true)
                            .map_err(|e| format!("syslog socket: {e}"))?;
                        Sock::UnixStream(s)
                    }
                    Err(e) => {
                        return Err(format!("cannot connect to syslog at unix://{path}: {e}"))
                    }
                }
            }
        };
        Ok(Syslog {
            sock,
            facility: cfg.facility,
            error_tag: format!("gunicorn.{}.error", cfg.prefix),
            access_tag: cfg
                .access
                .then(|| format!("gunicorn.{}.access", cfg.prefix)),
        })
    }

    fn send(&self, severity: u8, tag: &str, msg: &str) {
        let mut out = Vec::with_capacity(msg.len() + tag.len() + 24);
        let _ = write!(
            out,
            "<{}>{tag}: [{}] {msg}\0",
            u32::from(self.facility) * 8 + u32::from(severity),
            std::process::id()
        );
        // Errors (EAGAIN: the daemon is behind; ECONNREFUSED: none listens)
        // drop the message: logging must never stall or fail a request.
        let _ = match &self.sock {
            Sock::Udp(s) => s.send(&out).map(drop),
            Sock::UnixDgram(s) => s.send(&out).map(drop),
            Sock::UnixStream(s) => send_stream(s, &out),
            Sock::Tcp(s) => send_stream(s, &out),
        };
    }
}

fn send_stream(s: &impl std::os::fd::AsFd, bytes: &[u8]) -> std::io::Result<()> {
    use nix::sys::socket::{send, MsgFlags};
    use std::os::fd::AsRawFd;
    // MSG_NOSIGNAL: a daemon that went away is not worth a SIGPIPE.
    send(
        s.as_fd().as_raw_fd(),
        bytes,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    )
    .map(drop)
    .map_err(std::io::Error::from)
}

/// syslog's severity for a Python logging level (SysLogHandler.mapPriority).
fn severity(level: Level) -> u8 {
    match level {
        Level::Debug => 7,
        Level::Info => 6,
        Level::Warning => 4,
        Level::Error => 3,
        Level::Critical => 2,
    }
}

/// Start (or stop, with None) sending to syslog.
pub fn install(s: Option<Syslog>) {
    let access = s.as_ref().is_some_and(|s| s.access_tag.is_some());
    let on = s.is_some();
    if let Ok(mut g) = CURRENT.write() {
        *g = s.map(Arc::new);
    }
    ACCESS_ON.store(access, Ordering::Relaxed);
    ON.store(on, Ordering::Relaxed);
}

fn current() -> Option<Arc<Syslog>> {
    if !ON.load(Ordering::Relaxed) {
        return None;
    }
    CURRENT.read().ok()?.clone()
}

pub fn access_on() -> bool {
    ACCESS_ON.load(Ordering::Relaxed)
}

/// An error-log line.
pub fn error(level: Level, msg: &str) {
    if let Some(s) = current() {
        s.send(severity(level), &s.error_tag, msg.trim_end_matches('\n'));
    }
}

/// An access line (formatted with access_log_format).
pub fn access(line: &str) {
    if let Some(s) = current() {
        if let Some(tag) = &s.access_tag {
            s.send(severity(Level::Info), tag, line.trim_end_matches('\n'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_gunicorn_parses_them() {
        assert_eq!(
            Target::parse("udp://localhost:514").unwrap(),
            Target::Udp("localhost".into(), 514)
        );
        assert_eq!(
            Target::parse("udp://").unwrap(),
            Target::Udp("localhost".into(), 514)
        );
        assert_eq!(
            Target::parse("tcp://[::1]:5140").unwrap(),
            Target::Tcp("::1".into(), 5140)
        );
        assert_eq!(
            Target::parse("unix:///dev/log#dgram").unwrap(),
            Target::Unix {
                path: "/dev/log".into(),
                dgram_only: true
            }
        );
        assert!(Target::parse("udp://h:x").is_err());
        assert!(Target::parse("http://h").is_err());
        assert_eq!(facility("LOCAL7"), Some(23));
        assert_eq!(facility("nope"), None);
    }
}
