//! What the master tells about the server: the StatsD gauges gunicorn's
//! arbiter sends, the Prometheus endpoint, and the counts of restarts,
//! upgrades and reloads both read.

use super::workers::WorkerState;
use super::Arbiter;
use crate::metrics::counters::Totals;
use crate::metrics::prometheus::{self, Exporter, Outcomes, Restarts, Snapshot};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The master's own side of the metrics (the workers' is in shared memory).
#[derive(Default)]
pub(super) struct Observe {
    /// Counts of workers that are gone (folded from their slots).
    pub folded: Totals,
    pub restarts: Restarts,
    pub upgrades: Outcomes,
    pub reloads: Outcomes,
    /// The generation a HUP or reload started and whose outcome is not known yet.
    pub pending_reload: Option<u64>,
    pub exporter: Option<Exporter>,
    /// `gunicorn.workers` as last sent (sent again only when it changes).
    last_workers: Option<usize>,
    last_backlog: Option<Instant>,
    /// Workers forked by this master.
    pub spawned: u64,
    pub started: StartTime,
    /// Why the last USR2 was ignored (for the control socket's `upgrade`).
    pub usr2_refusal: Option<String>,
    /// Control clients waiting for an upgrade's outcome: (client, request id).
    pub upgrade_waiters: Vec<(u64, serde_json::Value)>,
}

/// When the master started (Default: now).
pub(super) struct StartTime(Instant);

impl Default for StartTime {
    fn default() -> StartTime {
        StartTime(Instant::now())
    }
}

impl StartTime {
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

impl Arbiter {
    /// StatsD from the configuration in force (at start and after HUP).
    pub(super) fn configure_statsd(&mut self) {
        crate::metrics::statsd::configure(
            self.cfg.statsd_host.as_deref(),
            &self.cfg.statsd_prefix,
            &self.cfg.dogstatsd_tags,
        );
        self.observe.last_workers = None;
    }

    /// Open --metrics-bind (once, at start). SO_REUSEPORT lets the new
    /// master of a binary upgrade bind it while the old one still serves.
    pub(super) fn open_metrics(&mut self) {
        let Some(addr) = self.cfg.metrics_bind.clone() else {
            return;
        };
        match bind_reuseport(&addr).and_then(Exporter::from_listener) {
            Ok(e) => {
                if let Ok(a) = e.local_addr() {
                    crate::info!("Serving metrics at: http://{a}/metrics");
                }
                self.observe.exporter = Some(e);
            }
            Err(e) => crate::error!("Cannot serve metrics at {addr}: {e}; going on without"),
        }
    }

    /// Every loop turn: StatsD gauges, then any scrape that is ready.
    pub(super) fn observe_tick(&mut self) {
        if let Some(s) = crate::metrics::statsd::client() {
            let n = self.workers.len();
            if self.observe.last_workers != Some(n) {
                self.observe.last_workers = Some(n);
                s.gauge("gunicorn.workers", n as u64);
            }
            let due = self
                .observe
                .last_backlog
                .map_or(true, |t| t.elapsed() >= Duration::from_secs(1));
            if self.cfg.enable_backlog_metric && due {
                self.observe.last_backlog = Some(Instant::now());
                let backlog: u64 = self.listeners.iter().map(|l| backlog(&l.fd)).sum();
                s.histogram("gunicorn.backlog", backlog);
            }
        }
        if let Some(mut e) = self.observe.exporter.take() {
            e.serve(|| self.render_metrics());
            self.observe.exporter = Some(e);
        }
    }

    /// Counts of every request answered since this master started.
    pub(super) fn request_totals(&self) -> Totals {
        let mut t = self.observe.folded.clone();
        for w in &self.workers {
            self.heartbeats.counters.add_into(w.slot, &mut t);
        }
        t
    }

    fn render_metrics(&self) -> String {
        let totals = self.request_totals();
        let mut workers: Vec<(u64, &'static str, u64)> = Vec::new();
        for w in &self.workers {
            let state = match w.state {
                WorkerState::Booting => "booting",
                WorkerState::Serving => "serving",
                WorkerState::Retiring { .. } => "retiring",
            };
            match workers
                .iter_mut()
                .find(|(g, s, _)| *g == w.generation && *s == state)
            {
                Some(e) => e.2 += 1,
                None => workers.push((w.generation, state, 1)),
            }
        }
        workers.sort();
        let connections_open = self
            .workers
            .iter()
            .map(|w| self.heartbeats.open(w.slot))
            .sum();
        prometheus::render(&Snapshot {
            totals: &totals,
            workers: &workers,
            connections_open,
            restarts: &self.observe.restarts,
            upgrades: &self.observe.upgrades,
            reloads: &self.observe.reloads,
        })
    }

    /// A new generation was started by HUP or a reload.
    pub(super) fn reload_started(&mut self) {
        self.observe.pending_reload = Some(self.generation);
    }

    /// A worker of `generation` booted, or failed to.
    pub(super) fn reload_outcome(&mut self, generation: u64, booted: bool) {
        if self.observe.pending_reload == Some(generation) {
            self.observe.pending_reload = None;
            if booted {
                self.observe.reloads.succeeded += 1;
            } else {
                self.observe.reloads.failed += 1;
            }
        }
    }
}

fn bind_reuseport(addr: &str) -> std::io::Result<std::net::TcpListener> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrStorage,
    };
    let sa = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let family = if sa.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(sa))?;
    listen(&fd, Backlog::new(64).unwrap_or(Backlog::MAXCONN))?;
    Ok(std::net::TcpListener::from(fd))
}

/// Connections waiting in a TCP listener's accept queue (Linux reports it
/// as `tcpi_unacked` for a listening socket, which is what gunicorn reads);
/// 0 for other sockets.
fn backlog(fd: &OwnedFd) -> u64 {
    let mut info = [0u32; 26];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes; the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < 28 {
        return 0;
    }
    // Eight u8 fields, then u32 rto, ato, snd_mss, rcv_mss, unacked.
    info[6] as u64
}
