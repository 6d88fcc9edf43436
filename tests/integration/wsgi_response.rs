//! The response side of PEP 3333 through the real binary: framing,
//! start_response / exc_info / write(), header validation, app errors,
//! close() on the app iterable, and wsgi.file_wrapper with and without
//! sendfile.

use crate::harness::*;
use std::io::{Read, Write};
use std::time::Duration;

fn server() -> Server {
    Server::builder("conformance:app").args(["-w", "1"]).start()
}

fn is_close(r: &Response) -> bool {
    r.header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

#[test]
fn unknown_length_is_chunked_on_1_1_and_close_delimited_on_1_0() {
    let s = server();
    let want = "part 0\npart 1\npart 2\npart 3\npart 4\n";
    let mut c = connect(&s.addr());
    c.write_all(b"GET /gen HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.text(), want);
    assert!(!is_close(&r));
    // The connection is still usable after the last chunk.
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).unwrap().text(), "ok /ok\n");

    let r = s.request(b"GET /gen HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.header("transfer-encoding"), None);
    assert!(
        is_close(&r),
        "close-delimited on 1.0 even when keep-alive was asked"
    );
    assert_eq!(r.text(), want);
}

#[test]
fn head_requests_get_headers_but_no_body() {
    let s = server();
    let mut c = connect(&s.addr());
    for path in ["/ok", "/gen", "/write"] {
        c.write_all(format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(c.read(&mut b).unwrap(), 1);
            head.push(b[0]);
        }
        let text = String::from_utf8_lossy(&head);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        if path == "/ok" {
            assert!(
                text.contains("Content-Length: 7\r\n"),
                "HEAD keeps the app's Content-Length: {text}"
            );
        }
    }
    // Had any body bytes been sent, this response would not parse.
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).unwrap().text(), "ok /ok\n");
}

#[test]
fn no_content_response_has_no_body_and_keeps_the_connection() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(read_response(&mut c).unwrap().text(), "ok /ok\n");
}

#[test]
fn app_sending_fewer_bytes_than_its_content_length_gets_the_connection_closed() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (out, closed) = read_until_close(&mut c, Duration::from_secs(5));
    assert!(closed, "the client must see EOF, not a hang");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("Content-Length: 100\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nonly ten!\n"), "{text}");
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn bytes_beyond_the_content_length_are_not_sent() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c).unwrap().text(), "hello");
    assert_eq!(read_response(&mut c).unwrap().text(), "ok /ok\n");
}

#[test]
fn write_callable_and_iterable_are_sent_in_order() {
    let s = server();
    let r = s.get("/write");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "written by write() then iterated\n");
}

#[test]
fn invalid_headers_from_the_app_become_500_and_are_never_sent() {
    let s = server();
    for kind in ["name", "crlf", "lf", "colon", "status"] {
        let mut c = connect(&s.addr());
        c.write_all(format!("GET /bad_header?kind={kind} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let (out, _) = read_until_close(&mut c, Duration::from_secs(5));
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 500 "), "{kind}: {text}");
        for leaked in ["Bad Header", "Set-Cookie", "evil", "X-Evil", "X-Bad"] {
            assert!(
                !text.contains(leaked),
                "{kind}: {leaked} leaked into {text}"
            );
        }
    }
    assert!(
        s.wait_log("Invalid HTTP header name", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn exception_before_headers_is_a_500_with_the_traceback_logged() {
    let s = server();
    let pid = s.get("/pid").text();
    let r = s.get("/boom");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("Internal Server Error"));
    assert!(
        !r.text().contains("conformance boom"),
        "the traceback must not reach the client"
    );
    assert!(
        s.wait_log(
            "RuntimeError: conformance boom before headers",
            Duration::from_secs(5)
        ),
        "{}",
        s.log()
    );
    assert!(s.log().contains("Traceback (most recent call last)"));
    assert_eq!(s.get("/pid").text(), pid, "the same worker serves on");
}

#[test]
fn exception_after_headers_closes_the_connection() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /boom_after HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (out, closed) = read_until_close(&mut c, Duration::from_secs(5));
    assert!(closed);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("first part"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a failed stream must not look complete: {text}"
    );
    assert!(s.wait_log("conformance boom after headers", Duration::from_secs(5)));
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn start_response_with_exc_info_replaces_headers_not_yet_sent() {
    let s = server();
    let r = s.get("/exc_before");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "replaced\n");
}

#[test]
fn start_response_with_exc_info_after_headers_reraises_and_closes() {
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /exc_after HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (out, closed) = read_until_close(&mut c, Duration::from_secs(5));
    assert!(closed);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 200")
            && text.contains("head is out")
            && !text.contains("unreachable"),
        "{text}"
    );
    assert!(
        s.wait_log("ValueError: too late", Duration::from_secs(5)),
        "{}",
        s.log()
    );
}

#[test]
fn an_iterable_of_str_is_a_500() {
    let s = server();
    assert_eq!(s.get("/str_body").status, 500);
    assert!(
        s.wait_log("must yield bytes", Duration::from_secs(5)),
        "{}",
        s.log()
    );
}

#[test]
fn calling_start_response_twice_without_exc_info_is_an_error() {
    let s = server();
    assert_eq!(s.get("/start_twice").status, 500);
}

#[test]
fn close_is_called_when_the_client_disconnects_mid_stream() {
    let dir = TempDir::new("close");
    let marker = dir.join("closed");
    let s = server();
    let mut c = connect(&s.addr());
    c.write_all(
        format!(
            "GET /stream_close?marker={}&n=2000&delay=0.005 HTTP/1.1\r\nHost: x\r\n\r\n",
            marker.display()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut got = vec![0u8; 200_000];
    c.read_exact(&mut got).unwrap();
    assert!(!marker.exists(), "close() before the stream ended");
    drop(c);
    assert!(
        eventually(Duration::from_secs(10), || marker.exists()),
        "close() was not called after the client left"
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "closed");
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn close_is_called_after_a_complete_stream() {
    let dir = TempDir::new("close2");
    let marker = dir.join("closed");
    let s = server();
    let r = s.get(&format!(
        "/stream_close?marker={}&n=3&delay=0&size=6",
        marker.display()
    ));
    assert_eq!(r.text(), "000000000001000002");
    assert!(eventually(Duration::from_secs(5), || marker.exists()));
}

fn file_wrapper_checks(s: &Server, dir: &TempDir) {
    let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
    let path = dir.join("data.bin");
    std::fs::write(&path, &data).unwrap();
    let p = path.display();
    let r = s.get(&format!("/file?path={p}"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some("1000003"),
        "a real file's length is known: {:?}",
        r.headers
    );
    assert!(r.body == data, "whole file");
    let r = s.get(&format!("/file?path={p}&seek=1000"));
    assert!(r.body == data[1000..], "from the file's current position");
    let r = s.get(&format!("/file?path={p}&cl=10"));
    assert!(
        r.body == data[..10],
        "the app's Content-Length caps the file"
    );
    // HTTP/1.0: the length still goes out and the file arrives whole.
    let r = s.request(format!("GET /file?path={p} HTTP/1.0\r\n\r\n").as_bytes());
    assert!(r.body == data);
    let r = s.get("/file_nofileno");
    assert_eq!(r.body.len(), 10004);
    assert!(r.text().ends_with("end\n"));
    // Keep-alive goes on after a file response.
    let mut c = connect(&s.addr());
    c.write_all(format!("GET /file?path={p}&cl=5 HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    assert!(read_response(&mut c).unwrap().body == data[..5]);
    assert_eq!(read_response(&mut c).unwrap().text(), "ok /ok\n");
}

#[test]
fn file_wrapper_sends_real_files_with_sendfile() {
    let dir = TempDir::new("fw");
    let s = server();
    file_wrapper_checks(&s, &dir);
}

#[test]
fn file_wrapper_works_with_no_sendfile() {
    let dir = TempDir::new("fw-nosf");
    let s = Server::builder("conformance:app")
        .args(["-w", "1", "--no-sendfile"])
        .start();
    file_wrapper_checks(&s, &dir);
}
