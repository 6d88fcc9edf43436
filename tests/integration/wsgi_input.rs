//! Request bodies through `wsgi.input`: Content-Length and chunked framing,
//! every read method, bodies arriving in pieces, `Expect: 100-continue`,
//! and malformed chunked framing answered 400 even when the app never reads.

use crate::harness::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

fn server() -> Server {
    Server::builder("conformance:app").args(["-w", "1"]).start()
}

const BODY: &[u8] = b"first line\nsecond line is longer\n\nfourth\nno newline at the end";

fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in body.chunks(piece).enumerate() {
        // Alternate with and without chunk extensions.
        if i % 2 == 0 {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        } else {
            out.extend_from_slice(format!("{:X};name=value;flag\r\n", c.len()).as_bytes());
        }
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nX-Trailer: done\r\nX-Other: 1\r\n\r\n");
    out
}

fn post(c: &mut TcpStream, path: &str, framing: &str, body: &[u8]) -> Response {
    let req = match framing {
        "length" => {
            let mut r = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        }
        _ => {
            let mut r =
                format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .into_bytes();
            r.extend_from_slice(&chunked(body, 9));
            r
        }
    };
    c.write_all(&req).unwrap();
    read_response(c).unwrap()
}

#[test]
fn every_read_method_sees_the_whole_body_and_nothing_after_it() {
    let s = server();
    let mut c = connect(&s.addr());
    let lines: Vec<&[u8]> = BODY.split_inclusive(|&b| b == b'\n').collect();
    for framing in ["length", "chunked"] {
        for mode in [
            "read",
            "read_n",
            "readline",
            "readline_n",
            "readlines",
            "iter",
        ] {
            let r = post(&mut c, &format!("/read?mode={mode}&n=7"), framing, BODY);
            assert_eq!(r.status, 200, "{framing} {mode}: {}", r.text());
            let out = kv(&r.text());
            assert_eq!(out["body"], hex(BODY), "{framing} {mode}");
            assert_eq!(out["after"], "", "{framing} {mode}: read past the end");
            assert_eq!(out["terminated"], "True");
            let pieces: Vec<usize> = out["pieces"]
                .split(',')
                .map(|p| p.parse().unwrap())
                .collect();
            match mode {
                "readline" | "readlines" | "iter" => assert_eq!(
                    pieces,
                    lines.iter().map(|l| l.len()).collect::<Vec<_>>(),
                    "{framing} {mode}"
                ),
                "read_n" | "readline_n" => assert!(
                    pieces.iter().all(|&p| p <= 7),
                    "{framing} {mode}: {pieces:?}"
                ),
                _ => {}
            }
        }
    }
    // The connection survived 12 bodies of both framings: nothing leaked into the next request.
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).unwrap().text(), "ok /ok\n");
}

#[test]
fn large_bodies_stream_intact_in_both_framings() {
    let s = server();
    let body: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let want = sha256_hex(&body);
    for framing in ["length", "chunked"] {
        let mut c = connect(&s.addr());
        let head = if framing == "length" {
            format!(
                "POST /read?mode=read_n&n=65536 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
        } else {
            "POST /read?mode=read_n&n=65536 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
        };
        let payload = if framing == "length" {
            body.clone()
        } else {
            chunked(&body, 100_000)
        };
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(head.as_bytes()).unwrap();
            w.write_all(&payload).unwrap();
        });
        let r = read_response(&mut c).unwrap();
        writer.join().unwrap();
        let out = kv(&r.text());
        assert_eq!(out["len"], body.len().to_string(), "{framing}");
        assert_eq!(out["sha256"], want, "{framing}");
    }
}

#[test]
fn body_trickling_in_is_read_as_it_arrives() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(
        b"POST /read?mode=readline HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    for piece in chunked(BODY, 5).chunks(4) {
        c.write_all(piece).unwrap();
        c.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = read_response(&mut c).unwrap();
    assert_eq!(kv(&r.text())["body"], hex(BODY));
}

#[test]
fn expect_100_continue_is_sent_when_the_app_first_reads() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(b"POST /read?mode=read HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n").unwrap();
    // The client waits for the interim response before sending the body.
    let interim = read_response(&mut c).unwrap();
    assert_eq!(interim.status, 100);
    assert_eq!(interim.version, "HTTP/1.1");
    c.write_all(b"hello world").unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(kv(&r.text())["body"], hex(b"hello world"));
    // Same again with a chunked body, on the same connection.
    c.write_all(b"POST /read?mode=read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 100);
    c.write_all(b"5\r\nhello\r\n0\r\n\r\n").unwrap();
    assert_eq!(
        kv(&read_response(&mut c).unwrap().text())["body"],
        hex(b"hello")
    );
}

#[test]
fn expect_100_continue_is_not_sent_when_the_app_ignores_the_body() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(
        b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 200, "final response without an interim 100");
    assert_eq!(r.text(), "ignored /ignore\n");
    // The body was never asked for: the server may not treat later bytes as a
    // request, so it closes the connection instead of waiting for them.
    let (rest, closed) = read_until_close(&mut c, Duration::from_secs(5));
    assert!(closed, "connection must close");
    assert!(
        !String::from_utf8_lossy(&rest).contains("100 Continue"),
        "no 100 after the final response: {rest:?}"
    );
}

#[test]
fn malformed_chunked_body_arriving_later_gets_400_even_if_the_app_never_reads() {
    let s = server();
    for (path, bad) in [
        ("/ignore", &b"zz\r\nabc\r\n0\r\n\r\n"[..]),
        ("/ignore", b"3\r\nabcdef\r\n0\r\n\r\n"),
        ("/ignore", b"5\r\nhello\r\n0\r\nBad Trailer\r\n\r\n"),
        ("/read", b"3\r\nabcdef\r\n0\r\n\r\n"),
        ("/read?mode=readline", b"-1\r\n"),
    ] {
        let mut c = connect(&s.addr());
        c.write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        // Make sure the head is handled on its own before the body shows up.
        c.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        c.write_all(bad).unwrap();
        let r = read_response(&mut c).unwrap();
        assert_eq!(
            r.status,
            400,
            "{path} {:?}: {}",
            String::from_utf8_lossy(bad),
            r.text()
        );
        assert!(read_until_close(&mut c, Duration::from_secs(5)).1);
    }
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn unread_bodies_are_skipped_so_keep_alive_goes_on() {
    let s = server();
    let mut c = connect(&s.addr());
    for framing in ["length", "chunked"] {
        let r = post(&mut c, "/ignore", framing, BODY);
        assert_eq!(r.text(), "ignored /ignore\n");
        c.write_all(b"GET /ok/next HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(
            read_response(&mut c).unwrap().text(),
            "ok /ok/next\n",
            "{framing}"
        );
    }
}

#[test]
fn client_closing_before_the_whole_body_does_not_harm_the_worker() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part")
        .unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let (out, closed) = read_until_close(&mut c, Duration::from_secs(5));
    assert!(closed);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 400"),
        "{text}"
    );
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn bytes_beyond_the_request_content_length_are_never_the_body() {
    let s = server();
    let mut c = connect(&s.addr());
    // Five body bytes, then bytes that cannot start a request.
    c.write_all(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello world\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(kv(&r.text())["body"], hex(b"hello"));
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 400, "the rest is parsed as the next request");
    assert!(
        read_until_close(&mut c, Duration::from_secs(5)).1,
        "then the connection closes"
    );
}
