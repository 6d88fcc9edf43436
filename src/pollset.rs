//! The master's poll set for a small server it runs in its own loop (the
//! control socket, the metrics endpoint): the listener, then each client,
//! waiting to read or, with output pending, to write.

use std::os::fd::RawFd;

/// Push `listener` and every `(client fd, has output)` onto `out`.
pub fn push_server(
    out: &mut Vec<libc::pollfd>,
    listener: RawFd,
    clients: impl Iterator<Item = (RawFd, bool)>,
) {
    let entry = |fd, events| libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    out.push(entry(listener, libc::POLLIN));
    for (fd, writing) in clients {
        out.push(entry(
            fd,
            if writing { libc::POLLOUT } else { libc::POLLIN },
        ));
    }
}
