//! StatsD datagrams, sent as gunicorn's `gunicorn.instrument.statsd` sends
//! them: the same names, types and suffixes (`|c|@1.0` on counters, `|ms`
//! timers in milliseconds, `|g` gauges, `|h` histograms), `statsd_prefix`
//! with one trailing dot, and `dogstatsd_tags` appended as `|#tags`.
//!
//! The socket is connected and non-blocking: a send that would block, or
//! fails because nothing listens, is dropped. A dead agent costs one failed
//! syscall per datagram and never holds a request.
//!
//! One difference in framing, for the cost: gunicorn sends each metric in a
//! datagram of its own (three per request). Here a worker gathers its
//! per-request lines and sends them newline-separated, StatsD's and
//! DogStatsD's multi-metric datagram, up to [`MAX_DATAGRAM`] bytes, at
//! least every [`BATCH_MS`] ms, and whenever its loop is about to wait
//! idle. The lines are gunicorn's, byte for byte; the master's metrics
//! (gauges, log counters) go out one per datagram as they happen.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

enum Sock {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// Most bytes in one datagram: fits an Ethernet MTU with IP and UDP headers.
pub const MAX_DATAGRAM: usize = 1400;
/// Longest a request's lines wait to be sent.
pub const BATCH_MS: u64 = 100;

pub struct Statsd {
    sock: Sock,
    prefix: String,
    /// `|#tags`, or empty.
    suffix: String,
    batch: Mutex<Batch>,
}

/// Lines not sent yet, and since when (ms on the monotonic clock).
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    since_ms: u64,
}

/// Where to send: `unix:PATH`, `unix://PATH`, `HOST:PORT` or `HOST`
/// (port 8125), as gunicorn's `validate_statsd_address` reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Unix(String),
    Host(String, u16),
}

pub fn parse_target(s: &str) -> Result<Target, String> {
    let s = s.trim();
    if let Some(path) = s
        .strip_prefix("unix://")
        .or_else(|| s.strip_prefix("unix:"))
    {
        if path.is_empty() {
            return Err(format!("{s:?}: a unix address needs a path"));
        }
        return Ok(Target::Unix(path.to_string()));
    }
    let bad = || format!("{s:?}: value must be one of ('host:port', 'unix://PATH')");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, p),
            None if after.is_empty() => (h, "8125"),
            None => return Err(bad()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p),
            Some(_) => return Err(bad()),
            None => (s, "8125"),
        }
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = if host.is_empty() { "localhost" } else { host };
    Ok(Target::Host(host.to_string(), port))
}

/// gunicorn's `sub(r"^(.+[^.]+)\.*$", "\g<1>.", prefix)`: trailing dots
/// become one; a prefix of a single character or of dots only is kept as is.
fn normalize_prefix(p: &str) -> String {
    let trimmed = p.trim_end_matches('.');
    if trimmed.len() >= 2 {
        format!("{trimmed}.")
    } else {
        p.to_string()
    }
}

impl Statsd {
    pub fn new(target: &Target, prefix: &str, tags: &str) -> std::io::Result<Statsd> {
        let sock = match target {
            Target::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                s.set_nonblocking(true)?;
                Sock::Unix(s)
            }
            Target::Host(host, port) => {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))?
                    .next()
                    .ok_or_else(|| std::io::Error::other(format!("{host}: no address")))?;
                let bind: std::net::SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(bind)?;
                s.connect(addr)?;
                s.set_nonblocking(true)?;
                Sock::Udp(s)
            }
        };
        Ok(Statsd {
            sock,
            prefix: normalize_prefix(prefix),
            suffix: if tags.is_empty() {
                String::new()
            } else {
                format!("|#{tags}")
            },
            batch: Mutex::new(Batch::default()),
        })
    }

    fn line(&self, out: &mut String, body: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        out.push_str(&self.prefix);
        let _ = out.write_fmt(body);
        out.push_str(&self.suffix);
    }

    fn send(&self, body: std::fmt::Arguments<'_>) {
        let mut msg = String::with_capacity(96);
        self.line(&mut msg, body);
        self.send_raw(msg.as_bytes());
    }

    fn send_raw(&self, datagram: &[u8]) {
        // Errors (EAGAIN, ECONNREFUSED from a dead agent) drop the datagram.
        let _ = match &self.sock {
            Sock::Udp(s) => s.send(datagram),
            Sock::Unix(s) => s.send(datagram),
        };
    }

    /// Queue lines (newline-separated) for the next datagram.
    fn queue(&self, lines: &str) {
        let now = crate::heartbeat::now_ms();
        let Ok(mut b) = self.batch.lock() else { return };
        if !b.buf.is_empty() && b.buf.len() + 1 + lines.len() > MAX_DATAGRAM {
            self.send_raw(&b.buf);
            b.buf.clear();
        }
        if b.buf.is_empty() {
            b.since_ms = now;
        } else {
            b.buf.push(b'\n');
        }
        b.buf.extend_from_slice(lines.as_bytes());
        if now.saturating_sub(b.since_ms) >= BATCH_MS {
            self.send_raw(&b.buf);
            b.buf.clear();
        }
    }

    /// Send queued lines now if `idle` (the worker is about to wait), or
    /// if they have waited long enough.
    pub fn flush(&self, idle: bool) {
        let Ok(mut b) = self.batch.lock() else { return };
        if b.buf.is_empty() {
            return;
        }
        if idle || crate::heartbeat::now_ms().saturating_sub(b.since_ms) >= BATCH_MS {
            self.send_raw(&b.buf);
            b.buf.clear();
        }
    }

    pub fn increment(&self, name: &str, value: u64) {
        self.send(format_args!("{name}:{value}|c|@1.0"));
    }

    pub fn gauge(&self, name: &str, value: u64) {
        self.send(format_args!("{name}:{value}|g"));
    }

    pub fn histogram(&self, name: &str, value: u64) {
        self.send(format_args!("{name}:{value}|h"));
    }

    /// What gunicorn's `access()` sends for every request: the duration
    /// in milliseconds (printed as Python prints a float), the request,
    /// its status.
    pub fn request(&self, status: u16, took: Duration) {
        let ms = took.as_secs() as f64 * 1000.0 + took.subsec_micros() as f64 / 1000.0;
        let mut lines = String::with_capacity(192);
        self.line(
            &mut lines,
            format_args!("gunicorn.request.duration:{ms:?}|ms"),
        );
        lines.push('\n');
        self.line(&mut lines, format_args!("gunicorn.requests:1|c|@1.0"));
        lines.push('\n');
        self.line(
            &mut lines,
            format_args!("gunicorn.request.status.{status}:1|c|@1.0"),
        );
        self.queue(&lines);
    }
}

/// The process's client, set by the master from the configuration (and
/// again on HUP); workers inherit it through fork.
static CLIENT: RwLock<Option<Arc<Statsd>>> = RwLock::new(None);

/// Use the statsd_* settings from now on (None: statsd_host unset).
pub fn configure(host: Option<&str>, prefix: &str, tags: &str) {
    let client = host.and_then(|h| {
        let made = parse_target(h)
            .and_then(|t| Statsd::new(&t, prefix, tags).map_err(|e| format!("{h}: {e}")));
        match made {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                crate::warning!("StatsD is off: {e}");
                None
            }
        }
    });
    if let Ok(mut g) = CLIENT.write() {
        *g = client;
    }
}

/// The client in use, if any.
pub fn client() -> Option<Arc<Statsd>> {
    CLIENT.read().ok().and_then(|g| g.clone())
}

/// `gunicorn.log.<level>` for warnings, errors and critical lines.
pub fn count_log(level: &str) {
    let Ok(g) = CLIENT.try_read() else { return };
    if let Some(c) = g.as_ref() {
        c.increment(&format!("gunicorn.log.{level}"), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_gunicorn_reads_them() {
        assert_eq!(
            parse_target("unix:/tmp/s").unwrap(),
            Target::Unix("/tmp/s".into())
        );
        assert_eq!(
            parse_target("unix:///tmp/s").unwrap(),
            Target::Unix("/tmp/s".into())
        );
        assert_eq!(
            parse_target("127.0.0.1:9125").unwrap(),
            Target::Host("127.0.0.1".into(), 9125)
        );
        assert_eq!(
            parse_target("agent").unwrap(),
            Target::Host("agent".into(), 8125)
        );
        assert_eq!(
            parse_target("[::1]:9").unwrap(),
            Target::Host("::1".into(), 9)
        );
        assert!(parse_target("host:port").is_err());
    }

    #[test]
    fn prefix_gets_one_trailing_dot() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("app"), "app.");
        assert_eq!(normalize_prefix("app..."), "app.");
        assert_eq!(normalize_prefix("a.b"), "a.b.");
    }
}
