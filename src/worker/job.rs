//! One complete request on its way from the event loop to the app and back.
//!
//! The event loop moves the connection itself into a [`Job`]: whichever
//! thread runs the request owns the socket until the response is written,
//! then hands the connection back in a [`Done`]. What every request needs
//! besides its connection (listener names, proxy trust, the access log
//! format) is built once per worker in a [`RequestCtx`] shared by all.

use super::conn::Conn;
use crate::access_log::{AccessFormat, AccessRecord};
use crate::config::Config;
use crate::http::RequestHead;
use crate::metrics::counters::SlotCounters;
use crate::metrics::statsd::Statsd;
use crate::sock::{Listener, ListenerKind};
use crate::wsgi::environ::ConnInfo;
use crate::wsgi::{Outcome, Request};
use std::sync::Arc;
use std::time::Instant;

/// A complete request head, its connection, and what the loop knew then.
pub struct Job {
    /// The connection's place in the event loop's table.
    pub slot: usize,
    pub conn: Conn,
    pub head: RequestHead,
    /// The worker was stopping when the request became complete.
    pub stopping: bool,
}

/// A request answered (or failed): the connection goes back to the loop.
pub struct Done {
    pub slot: usize,
    pub conn: Conn,
    pub head: RequestHead,
    pub outcome: Outcome,
}

/// Per-worker facts every request reads.
pub struct RequestCtx {
    /// SERVER_NAME / SERVER_PORT for requests without Host, per listener.
    server_names: Vec<(String, String)>,
    forwarded_allow_ips: Vec<String>,
    header_policy: crate::wsgi::environ::HeaderPolicy,
    keep_alive_enabled: bool,
    access: Option<AccessFormat>,
    /// This worker's counters in shared memory (Prometheus, control socket).
    counters: SlotCounters,
    statsd: Option<Arc<Statsd>>,
}

impl RequestCtx {
    pub fn new(cfg: &Config, listeners: &[Listener], counters: SlotCounters) -> RequestCtx {
        RequestCtx {
            server_names: listeners
                .iter()
                .map(|l| match &l.kind {
                    ListenerKind::Tcp(a) => (a.ip().to_string(), a.port().to_string()),
                    ListenerKind::Unix(p) => (p.display().to_string(), String::new()),
                })
                .collect(),
            forwarded_allow_ips: cfg.forwarded_allow_ips.clone(),
            header_policy: cfg.header_policy.clone(),
            keep_alive_enabled: !cfg.keep_alive.is_zero(),
            access: crate::log::access_enabled()
                .then(|| AccessFormat::compile(&cfg.access_logformat)),
            counters,
            statsd: crate::metrics::statsd::client(),
        }
    }
}

/// Run one job on the calling thread: `respond` answers the request (the
/// app, or the no-Python reference); the access line is written here, on
/// the request's own thread, while the head's bytes are still intact.
pub fn run(job: Job, ctx: &RequestCtx, respond: impl FnOnce(&Request<'_>) -> Outcome) -> Done {
    let started = Instant::now();
    let Job {
        slot,
        conn,
        head,
        stopping,
    } = job;
    let (server_name, server_port) = &ctx.server_names[conn.listener];
    let info = ConnInfo {
        remote_addr: &conn.remote_addr,
        remote_port: conn.remote_port,
        server_name,
        server_port,
        trusted_proxy: trusted_proxy(
            &ctx.forwarded_allow_ips,
            &conn.remote_addr,
            conn.remote_port.is_none(),
        ),
        headers: &ctx.header_policy,
        tls: conn.io.is_tls(),
        client_cert: conn.client_cert.as_deref(),
    };
    let req = Request {
        io: &conn.io,
        buf: &conn.buf,
        head: &head,
        conn: &info,
        stopping,
        keep_alive_enabled: ctx.keep_alive_enabled,
    };
    ctx.counters.enter();
    let outcome = respond(&req);
    let took = started.elapsed();
    ctx.counters.answered(outcome.status, took);
    if let Some(s) = &ctx.statsd {
        s.request(outcome.status, took);
    }
    if let Some(fmt) = &ctx.access {
        log_access(fmt, &conn, &head, &outcome, started);
    }
    Done {
        slot,
        conn,
        head,
        outcome,
    }
}

/// Whether a peer may set X-Forwarded-* headers (gunicorn's forwarded_allow_ips).
fn trusted_proxy(allow: &[String], remote: &str, unix: bool) -> bool {
    if unix {
        // A unix socket peer is a local front end (nginx on the same host).
        return true;
    }
    allow.iter().any(|a| a == "*" || a == remote)
}

fn log_access(
    fmt: &AccessFormat,
    conn: &Conn,
    head: &RequestHead,
    outcome: &Outcome,
    started: Instant,
) {
    let buf = &conn.buf;
    let method = String::from_utf8_lossy(head.method(buf));
    let raw_target = head.target(buf);
    let target = String::from_utf8_lossy(raw_target);
    let (path, query) = crate::wsgi::environ::split_target(raw_target);
    let headers: Vec<(&[u8], &[u8])> = head.headers(buf).collect();
    let rec = AccessRecord {
        remote_addr: &conn.remote_addr,
        method: &method,
        target: &target,
        path: &String::from_utf8_lossy(path),
        query: &String::from_utf8_lossy(query),
        version: if head.minor_version == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        },
        status: outcome.status,
        response_length: Some(outcome.sent),
        request_headers: &headers,
        response_headers: &outcome.response_headers,
        duration: started.elapsed(),
    };
    crate::access_log::emit(fmt, &rec);
}
