//! One client connection as the worker's event loop holds it.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub struct Conn {
    pub fd: OwnedFd,
    /// How bytes go in and out: the socket, or a TLS session over it.
    pub io: crate::stream::Stream,
    /// The client's verified TLS certificate as PEM, read once after the
    /// handshake (SSL_CLIENT_CERT).
    pub client_cert: Option<String>,
    pub remote_addr: String,
    pub remote_port: Option<u16>,
    /// Index of the listener it came in on (for SERVER_NAME/PORT).
    pub listener: usize,
    /// Bytes received and not yet consumed (a partial or pipelined request).
    pub buf: Vec<u8>,
    /// Milliseconds (monotonic) after which the connection is dropped:
    /// the head deadline while a request arrives, the keep-alive limit when idle.
    pub deadline_ms: u64,
    /// Requests served on this connection.
    pub served: u64,
    /// The peer shut its sending side down.
    pub eof: bool,
    /// Done with: our side is shut down and whatever the client still sends
    /// is read and discarded until it closes or the deadline passes.
    pub lingering: bool,
    /// In the worker's epoll set. A connection whose request was complete
    /// on the first read and answered with close never needs to be.
    pub registered: bool,
    /// Registered for writability too: TLS records (a handshake flight)
    /// the socket could not take at once.
    pub wants_out: bool,
}

impl Conn {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Idle means between requests with nothing of the next one received.
    /// A new connection whose first request is still on its way is not
    /// idle: closing it would fail a request the client already sent.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.served > 0
    }
}

/// Peer address of an accepted socket as (ip text, port); an IPv4 client
/// of a dual-stack socket (a v4-mapped address) shows as IPv4.
pub fn peer_of(peer: Option<SocketAddr>) -> (String, Option<u16>) {
    match peer {
        Some(SocketAddr::V4(a)) => (a.ip().to_string(), Some(a.port())),
        Some(SocketAddr::V6(a)) => {
            let text = match a.ip().to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => a.ip().to_string(),
            };
            (text, Some(a.port()))
        }
        None => (String::new(), None),
    }
}
