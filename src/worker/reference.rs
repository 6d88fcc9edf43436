//! The benchmark reference: the worker's own request path (event loop,
//! parser, response framing) answering the hello-world response without
//! Python. Its throughput is the ceiling the Python path is measured
//! against (`--reference-responder`, hidden; see bench/).

use crate::http::BodyKind;
use crate::wsgi::{Outcome, Request};

const BODY: &[u8] = b"Hello, World!\n";

pub fn respond(req: &Request<'_>, buf: &mut Vec<u8>) -> Outcome {
    let head = req.head;
    let has_body = !matches!(head.body, BodyKind::None | BodyKind::Length(0));
    let keep_alive = head.keep_alive && req.keep_alive_enabled && !req.stopping && !has_body;
    buf.clear();
    buf.extend_from_slice(if head.minor_version == 0 {
        b"HTTP/1.0 200 OK\r\nServer: "
    } else {
        b"HTTP/1.1 200 OK\r\nServer: "
    });
    buf.extend_from_slice(crate::server_name::header());
    buf.extend_from_slice(b"\r\nDate: ");
    crate::wsgi::date::with_http_date(|d| buf.extend_from_slice(d.as_bytes()));
    buf.extend_from_slice(if keep_alive {
        b"\r\nConnection: keep-alive\r\n"
    } else {
        b"\r\nConnection: close\r\n"
    });
    buf.extend_from_slice(b"Content-Type: text/plain\r\nContent-Length: 14\r\n\r\n");
    let ok = req
        .io
        .write_all_vectored(
            &[buf, BODY],
            std::time::Duration::from_secs(30),
            &crate::net::POLL,
        )
        .is_ok();
    Outcome {
        keep_alive: keep_alive && ok,
        leftover: None,
        status: 200,
        sent: BODY.len() as u64,
        response_headers: Vec::new(),
        linger: has_body,
    }
}
