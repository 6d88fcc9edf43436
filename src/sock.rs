//! Listening sockets: parsing gunicorn's bind syntax and creating the
//! listeners the master owns and every worker accepts on.
//!
//! Every fd created here is close-on-exec; only a binary upgrade clears the
//! flag on purpose, right before it hands the listeners to the new master.

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::socket::{
    bind, getsockname, getsockopt, listen, setsockopt, socket, sockopt, AddressFamily, Backlog,
    SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage, UnixAddr,
};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    /// Host as written (resolved when bound) and port.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
    /// A listening socket already open in this process, e.g. from a supervisor.
    Fd(RawFd),
}

impl BindAddr {
    /// Parse `HOST`, `HOST:PORT`, `[IPv6]:PORT`, `unix:PATH`, `fd://FD`.
    pub fn parse(spec: &str) -> Result<BindAddr, String> {
        let bad = |why: &str| format!("Invalid bind address {spec:?}: {why}");
        if let Some(path) = spec.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("unix: needs a path, e.g. unix:/run/app.sock"));
            }
            return Ok(BindAddr::Unix(PathBuf::from(path)));
        }
        if let Some(fd) = spec.strip_prefix("fd://") {
            return fd
                .parse::<RawFd>()
                .ok()
                .filter(|fd| *fd >= 0)
                .map(BindAddr::Fd)
                .ok_or_else(|| bad("fd:// needs a file descriptor number, e.g. fd://3"));
        }
        let rest = spec.strip_prefix("tcp://").unwrap_or(spec);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside [ ]"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected :PORT after ']'"))?,
                ),
            };
            (host.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(bad(
                        "IPv6 addresses must be written in brackets, e.g. [::1]:8000",
                    ))
                }
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let port = match port {
            None => 8000,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port must be a number from 0 to 65535"))?,
        };
        let host = if host.is_empty() {
            "0.0.0.0".to_string()
        } else {
            host.to_ascii_lowercase()
        };
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(bad("not a host name or IP address"));
        }
        Ok(BindAddr::Tcp { host, port })
    }
}

impl BindAddr {
    /// The address in one canonical spelling: two processes parsing the same
    /// bind arrive at the same name, so it travels with a handed-over
    /// listener (`LISTEN_FDNAMES`) and the new master matches it to its binds.
    pub fn name(&self) -> String {
        match self {
            BindAddr::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            BindAddr::Tcp { host, port } => format!("{host}:{port}"),
            BindAddr::Unix(path) => format!("unix:{}", path.display()),
            BindAddr::Fd(fd) => format!("fd://{fd}"),
        }
    }

    /// Whether a listening socket bound at `kind` is what this address asks
    /// for. Port 0 ("any port") matches any port of the same IP.
    pub fn is_served_by(&self, kind: &ListenerKind) -> bool {
        match (self, kind) {
            (BindAddr::Tcp { host, port }, ListenerKind::Tcp(bound)) => {
                if *port != 0 && *port != bound.port() {
                    return false;
                }
                match host.parse::<IpAddr>() {
                    Ok(ip) => ip == bound.ip(),
                    Err(_) => (host.as_str(), *port)
                        .to_socket_addrs()
                        .map(|mut it| it.any(|a| a.ip() == bound.ip()))
                        .unwrap_or(false),
                }
            }
            (BindAddr::Unix(path), ListenerKind::Unix(bound)) => path == bound,
            _ => false,
        }
    }

    /// The address an inherited socket was bound to, for one that came
    /// without a usable name (systemd socket activation, GUNICORN_FD).
    pub fn of_kind(kind: &ListenerKind) -> BindAddr {
        match kind {
            ListenerKind::Tcp(a) => BindAddr::Tcp {
                host: a.ip().to_string(),
                port: a.port(),
            },
            ListenerKind::Unix(p) => BindAddr::Unix(p.clone()),
        }
    }
}

/// A bound, listening socket.
#[derive(Debug)]
pub struct Listener {
    pub fd: OwnedFd,
    pub kind: ListenerKind,
    /// What was asked for (kept so an upgraded master can match inherited fds).
    pub addr: BindAddr,
    /// Whether this process created the unix socket file (and so removes it).
    /// After an upgrade the new master takes this duty over from the old one.
    pub owns_path: bool,
    /// Handed over at start (upgrade, systemd, GUNICORN_FD) rather than bound here.
    pub inherited: bool,
}

#[derive(Debug, Clone)]
pub enum ListenerKind {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Listener {
    /// gunicorn's "Listening at:" form: `http://127.0.0.1:8000`, `unix:/path`.
    pub fn url(&self) -> String {
        match &self.kind {
            ListenerKind::Tcp(SocketAddr::V4(a)) => format!("http://{}:{}", a.ip(), a.port()),
            ListenerKind::Tcp(SocketAddr::V6(a)) => format!("http://[{}]:{}", a.ip(), a.port()),
            ListenerKind::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    /// As [`url`](Self::url), `https://` when the server terminates TLS.
    pub fn url_with(&self, tls: bool) -> String {
        let u = self.url();
        match (tls, u.strip_prefix("http://")) {
            (true, Some(rest)) => format!("https://{rest}"),
            _ => u,
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self.kind, ListenerKind::Unix(_))
    }

    /// Remove the socket file of a unix listener this process created.
    pub fn unlink(&self) {
        if let (ListenerKind::Unix(path), true) = (&self.kind, self.owns_path) {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub struct BindOptions {
    pub backlog: i32,
    pub reuse_port: bool,
}

/// Bind one address; the error says which address and why.
pub fn bind_listener(addr: &BindAddr, opts: &BindOptions) -> Result<Listener, String> {
    match addr {
        BindAddr::Tcp { host, port } => bind_tcp(addr, host, *port, opts),
        BindAddr::Unix(path) => bind_unix(addr, path, opts),
        BindAddr::Fd(fd) => adopt_fd(addr, *fd),
    }
}

fn bind_tcp(
    addr: &BindAddr,
    host: &str,
    port: u16,
    opts: &BindOptions,
) -> Result<Listener, String> {
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let sockaddr: SocketAddr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("Invalid bind address {shown}: cannot resolve {host:?} ({e})"))?
            .next()
            .ok_or_else(|| format!("Invalid bind address {shown}: {host:?} resolves to nothing"))?,
    };
    let family = if sockaddr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fail = |what: &str, e: nix::Error| format!("Cannot {what} {shown}: {}", e.desc());
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| fail("create a socket for", e))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| fail("set SO_REUSEADDR on", e))?;
    if opts.reuse_port {
        setsockopt(&fd, sockopt::ReusePort, &true).map_err(|e| fail("set SO_REUSEPORT on", e))?;
    }
    if sockaddr.is_ipv6() {
        // [::] should mean IPv6 only, as it does for gunicorn; bind 0.0.0.0 as well for both.
        let _ = setsockopt(&fd, sockopt::Ipv6V6Only, &true);
    }
    let result = match sockaddr {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    };
    result.map_err(|e| match e {
        nix::Error::EADDRINUSE => format!("Connection in use: {shown} (another server is listening there; stop it or pick another port)"),
        nix::Error::EADDRNOTAVAIL => format!("Invalid bind address {shown}: no such address on this machine"),
        nix::Error::EACCES => format!("Cannot bind {shown}: permission denied (ports below 1024 need privileges)"),
        e => fail("bind", e),
    })?;
    listen(&fd, Backlog::new(opts.backlog).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| fail("listen on", e))?;
    let bound = local_tcp_addr(fd.as_raw_fd()).unwrap_or(sockaddr);
    Ok(Listener {
        fd,
        kind: ListenerKind::Tcp(bound),
        addr: addr.clone(),
        owns_path: false,
        inherited: false,
    })
}

fn bind_unix(
    addr: &BindAddr,
    path: &std::path::Path,
    opts: &BindOptions,
) -> Result<Listener, String> {
    let shown = format!("unix:{}", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            // A socket file left by a previous run; gunicorn removes it too.
            let _ = std::fs::remove_file(path);
        } else {
            return Err(format!(
                "Cannot bind {shown}: the path exists and is not a socket"
            ));
        }
    }
    let fail = |what: &str, e: nix::Error| format!("Cannot {what} {shown}: {}", e.desc());
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| fail("create a socket for", e))?;
    let ua = UnixAddr::new(path).map_err(|e| fail("use", e))?;
    bind(fd.as_raw_fd(), &ua).map_err(|e| fail("bind", e))?;
    listen(&fd, Backlog::new(opts.backlog).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| fail("listen on", e))?;
    Ok(Listener {
        fd,
        kind: ListenerKind::Unix(path.to_path_buf()),
        addr: addr.clone(),
        owns_path: true,
        inherited: false,
    })
}

/// Take over an fd the process was started with. It must be a listening stream socket.
fn adopt_fd(addr: &BindAddr, raw: RawFd) -> Result<Listener, String> {
    let shown = format!("fd://{raw}");
    // Checked while still borrowed: an fd that is not a listener stays
    // whatever it was, open.
    let checked = crate::net::with_fd(raw, |fd| {
        fcntl(fd, FcntlArg::F_GETFD)?;
        Ok::<_, nix::Error>(listening_kind(fd))
    });
    let kind = match checked {
        Ok(kind) => kind.map_err(|why| format!("Cannot use {shown}: {why}"))?,
        Err(_) => return Err(format!("Cannot use {shown}: no such open file descriptor")),
    };
    // SAFETY: `raw` is open and a listening socket (checked above), and an
    // fd:// bind names a socket this process was started with, which no
    // other part of it takes: from now on this listener owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_cloexec(&fd, true).map_err(|e| format!("Cannot use {shown}: {e}"))?;
    Ok(Listener {
        fd,
        kind,
        addr: addr.clone(),
        owns_path: false,
        inherited: true,
    })
}

/// A listener from a socket handed over at start (checked to be listening).
/// `owns_path`: this process is to remove the unix socket file when it is
/// the last master to exit.
pub fn adopt_inherited(addr: &BindAddr, fd: OwnedFd, owns_path: bool) -> Result<Listener, String> {
    let raw = fd.as_raw_fd();
    let kind =
        listening_kind(&fd).map_err(|why| format!("Cannot use inherited fd {raw}: {why}"))?;
    set_cloexec(&fd, true).map_err(|e| format!("Cannot use inherited fd {raw}: {e}"))?;
    let owns_path = owns_path && matches!(kind, ListenerKind::Unix(_));
    Ok(Listener {
        fd,
        kind,
        addr: addr.clone(),
        owns_path,
        inherited: true,
    })
}

/// What kind of listener an inherited fd is, or why it is not one.
pub fn listening_kind(fd: impl AsFd) -> Result<ListenerKind, String> {
    match getsockopt(&fd, sockopt::AcceptConn) {
        Ok(true) => {}
        Ok(false) => return Err("it is a socket but not listening".into()),
        Err(_) => return Err("it is not a socket".into()),
    }
    let ss: SockaddrStorage =
        getsockname(fd.as_fd().as_raw_fd()).map_err(|e| format!("getsockname: {}", e.desc()))?;
    if let Some(v4) = ss.as_sockaddr_in() {
        return Ok(ListenerKind::Tcp(SocketAddr::V4((*v4).into())));
    }
    if let Some(v6) = ss.as_sockaddr_in6() {
        return Ok(ListenerKind::Tcp(SocketAddr::V6((*v6).into())));
    }
    if let Some(un) = ss.as_unix_addr() {
        let path = un.path().map(|p| p.to_path_buf()).unwrap_or_default();
        return Ok(ListenerKind::Unix(path));
    }
    Err("unsupported socket family".into())
}

fn local_tcp_addr(fd: RawFd) -> Option<SocketAddr> {
    let ss: SockaddrStorage = getsockname(fd).ok()?;
    if let Some(v4) = ss.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    ss.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

pub fn set_cloexec(fd: impl AsFd, on: bool) -> std::io::Result<()> {
    let mut flags = FdFlag::from_bits_retain(fcntl(&fd, FcntlArg::F_GETFD)?);
    flags.set(FdFlag::FD_CLOEXEC, on);
    fcntl(&fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

pub fn set_nonblocking(fd: RawFd, on: bool) -> std::io::Result<()> {
    crate::net::with_fd(fd, |fd| {
        let mut flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
        flags.set(OFlag::O_NONBLOCK, on);
        fcntl(fd, FcntlArg::F_SETFL(flags))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(h: &str, p: u16) -> BindAddr {
        BindAddr::Tcp {
            host: h.into(),
            port: p,
        }
    }

    #[test]
    fn parses_gunicorn_bind_forms() {
        assert_eq!(
            BindAddr::parse("127.0.0.1:8000").unwrap(),
            tcp("127.0.0.1", 8000)
        );
        assert_eq!(
            BindAddr::parse("localhost").unwrap(),
            tcp("localhost", 8000)
        );
        assert_eq!(BindAddr::parse("[::1]:9000").unwrap(), tcp("::1", 9000));
        assert_eq!(BindAddr::parse("[::]").unwrap(), tcp("::", 8000));
        assert_eq!(BindAddr::parse(":5000").unwrap(), tcp("0.0.0.0", 5000));
        assert_eq!(
            BindAddr::parse("unix:/tmp/x.sock").unwrap(),
            BindAddr::Unix("/tmp/x.sock".into())
        );
        assert_eq!(BindAddr::parse("fd://3").unwrap(), BindAddr::Fd(3));
    }

    #[test]
    fn canonical_names_parse_back_to_the_same_address() {
        for spec in [
            "127.0.0.1:0",
            "localhost",
            "[::1]:9000",
            "unix:/tmp/x.sock",
            "fd://3",
            ":5000",
        ] {
            let a = BindAddr::parse(spec).unwrap();
            assert_eq!(BindAddr::parse(&a.name()).unwrap(), a, "{spec}");
        }
    }

    #[test]
    fn port_zero_is_served_by_any_port_of_the_same_ip() {
        let bound = ListenerKind::Tcp("127.0.0.1:4321".parse().unwrap());
        assert!(tcp("127.0.0.1", 0).is_served_by(&bound));
        assert!(tcp("127.0.0.1", 4321).is_served_by(&bound));
        assert!(!tcp("127.0.0.1", 4322).is_served_by(&bound));
        assert!(!tcp("0.0.0.0", 4321).is_served_by(&bound));
        assert!(!BindAddr::Unix("/x".into()).is_served_by(&bound));
    }

    #[test]
    fn rejects_malformed_binds() {
        for bad in [
            "127.0.0.1:http",
            "127.0.0.1:70000",
            "::1:80",
            "[::1",
            "unix:",
            "fd://x",
            "[nothost]:80",
        ] {
            assert!(BindAddr::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
