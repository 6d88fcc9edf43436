//! HTTP/1.1 strictness and gunicorn's parser and header switches, through
//! the real binary: every refused request gets its 4xx, its connection is
//! closed, and the same worker goes on serving.

use crate::harness::*;
use crate::http_conformance::{expect_rejected, is_close};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

fn server(extra: &[&str]) -> Server {
    Server::builder("conformance:app")
        .args(["-w", "1"])
        .args(extra.iter().copied())
        .start()
}

fn environ(s: &Server, raw: &str) -> HashMap<String, String> {
    let r = s.request(raw.as_bytes());
    assert_eq!(r.status, 200, "{raw:?}: {}", r.text());
    kv(&r.text())
}

fn py(s: &str) -> String {
    format!("'{s}'")
}

/// The worker that served first is the one serving at the end.
fn same_worker(s: &Server, before: &str) {
    assert_eq!(s.get("/pid").text(), before, "the worker was replaced");
}

#[test]
fn http11_without_host_is_refused_at_once_even_with_a_body_announced() {
    let s = server(&[]);
    let pid = s.get("/pid").text();
    // No body is sent: a server that waited for it would never answer.
    expect_rejected(&s, b"POST /read HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 400);
    expect_rejected(&s, b"GET /ok HTTP/1.1\r\n\r\n", 400);
    expect_rejected(&s, b"GET /ok HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    expect_rejected(&s, b"GET /ok HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400);
    // HTTP/1.0 needs no Host.
    let r = s.request(b"GET /ok HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    same_worker(&s, &pid);
}

#[test]
fn fields_that_cannot_repeat_are_refused_when_repeated() {
    let s = server(&[]);
    let pid = s.get("/pid").text();
    for raw in [
        &b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n"[..],
        b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\ncontent-type: a/b\r\nContent-Length: 0\r\n\r\n",
        b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ] {
        expect_rejected(&s, raw, 400);
    }
    same_worker(&s, &pid);
}

#[test]
fn framing_routing_and_authentication_trailers_are_refused() {
    let s = server(&[]);
    let pid = s.get("/pid").text();
    for name in [
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Trailer",
        "Authorization",
        "Content-Type",
    ] {
        let raw = format!(
            "POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n{name}: 1\r\n\r\n"
        );
        expect_rejected(&s, raw.as_bytes(), 400);
    }
    // Other trailers are read and dropped; the body is intact.
    let r = s.request(b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nServer-Timing: a\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(kv(&r.text())["body"], hex(b"abc"));
    same_worker(&s, &pid);
}

#[test]
fn request_targets_take_the_form_their_method_allows() {
    let s = server(&[]);
    let pid = s.get("/pid").text();
    for raw in [
        &b"GET example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
        b"POST localhost:8000 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"GET http:/ok HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http:///ok HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://u:p@x/ok HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET mailto:a@b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT /ok HTTP/1.1\r\nHost: x\r\n\r\n",
        b"OPTIONS example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        expect_rejected(&s, raw, 400);
    }
    let r = s.request(b"GET http://example.com:8080/ok/abs?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok /ok/abs\n");
    same_worker(&s, &pid);
}

#[test]
fn identity_before_chunked_is_a_no_op_and_real_codings_are_not_implemented() {
    let s = server(&[]);
    let pid = s.get("/pid").text();
    for te in [
        "Transfer-Encoding: identity, chunked\r\n",
        "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let raw = format!(
            "POST /read HTTP/1.1\r\nHost: x\r\n{te}Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let r = s.request(raw.as_bytes());
        assert_eq!(r.status, 200, "{te:?}");
        assert_eq!(kv(&r.text())["body"], hex(b"hello"));
    }
    for (te, status) in [
        ("gzip, chunked", 501),
        ("deflate, chunked", 501),
        ("chunked, identity", 400),
        ("identity", 400),
    ] {
        let raw =
            format!("POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
        expect_rejected(&s, raw.as_bytes(), status);
    }
    expect_rejected(
        &s,
        b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    same_worker(&s, &pid);
}

// ---- gunicorn's switches: each off by default, each loosening one rule ----

#[test]
fn permit_obsolete_folding_joins_continuation_lines() {
    let folded = "GET /environ HTTP/1.1\r\nHost: x\r\nX-Long: one\r\n  two\r\n\tthree\r\nConnection: close\r\n\r\n";
    let strict = server(&[]);
    expect_rejected(&strict, folded.as_bytes(), 400);
    let s = server(&["--permit-obsolete-folding"]);
    let e = environ(&s, folded);
    assert_eq!(e["HTTP_X_LONG"], py("one two three"));
    // Only folding is loosened.
    expect_rejected(&s, b"GET /ok HTTP/1.1\r\nHost : x\r\n\r\n", 400);
    expect_rejected(&s, b"GET /ok HTTP/1.1\r\n X: y\r\nHost: x\r\n\r\n", 400);
}

#[test]
fn strip_header_spaces_accepts_space_before_the_colon() {
    let raw = "GET /environ HTTP/1.1\r\nHost : x\r\nX-A\t: 1\r\nConnection: close\r\n\r\n";
    let strict = server(&[]);
    expect_rejected(&strict, raw.as_bytes(), 400);
    let s = server(&["--strip-header-spaces"]);
    let e = environ(&s, raw);
    assert_eq!(e["HTTP_X_A"], py("1"));
    assert_eq!(e["SERVER_NAME"], py("x"));
    expect_rejected(
        &s,
        b"GET /ok HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        400,
    );
}

#[test]
fn unconventional_methods_and_casefolding() {
    let strict = server(&[]);
    expect_rejected(&strict, b"get /ok HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    expect_rejected(
        &strict,
        b"MKCALENDAR-X-VERY-LONG / HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    );
    // casefold alone changes nothing: lowercase is still refused first.
    let fold_only = server(&["--casefold-http-method"]);
    expect_rejected(&fold_only, b"get /ok HTTP/1.1\r\nHost: x\r\n\r\n", 400);

    let loose = server(&["--permit-unconventional-http-method"]);
    let e = environ(
        &loose,
        "get /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["REQUEST_METHOD"], py("get"), "methods are case-sensitive");
    let e = environ(
        &loose,
        "MKCALENDAR-X-VERY-LONG /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["REQUEST_METHOD"], py("MKCALENDAR-X-VERY-LONG"));
    expect_rejected(&loose, b"G(T /ok HTTP/1.1\r\nHost: x\r\n\r\n", 400);

    let both = server(&[
        "--permit-unconventional-http-method",
        "--casefold-http-method",
    ]);
    let e = environ(
        &both,
        "pOsT /environ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["REQUEST_METHOD"], py("POST"));
}

#[test]
fn permit_unconventional_http_version_serves_other_majors() {
    let strict = server(&[]);
    expect_rejected(&strict, b"GET /ok HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    let s = server(&["--permit-unconventional-http-version"]);
    let r = s.request(b"GET /ok HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.version.as_str()), (200, "HTTP/1.1"));
    let r = s.request(b"GET /ok HTTP/0.9\r\n\r\n");
    assert_eq!((r.status, r.version.as_str()), (200, "HTTP/1.0"));
    assert!(is_close(&r), "0.9 is served as 1.0: no keep-alive");
    expect_rejected(&s, b"GET /ok HTTP/2\r\nHost: x\r\n\r\n", 400);
}

#[test]
fn header_map_drops_refuses_or_maps_names_with_underscores() {
    let raw = "GET /environ HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\nX_Forwarded_For: 6.6.6.6\r\nX_Only: u\r\nConnection: close\r\n\r\n";
    let drop = server(&[]);
    let e = environ(&drop, raw);
    assert_eq!(e["HTTP_X_FORWARDED_FOR"], py("1.2.3.4"));
    assert!(!e.contains_key("HTTP_X_ONLY"));

    let refuse = server(&["--header-map", "refuse"]);
    let pid = refuse.get("/pid").text();
    expect_rejected(&refuse, raw.as_bytes(), 400);
    same_worker(&refuse, &pid);

    let dangerous = server(&["--header-map", "dangerous"]);
    let e = environ(&dangerous, raw);
    assert_eq!(e["HTTP_X_FORWARDED_FOR"], py("1.2.3.4,6.6.6.6"));
    assert_eq!(e["HTTP_X_ONLY"], py("u"));
}

#[test]
fn forwarder_headers_pass_a_trusted_front_ends_names_whatever_header_map_says() {
    // Loopback is trusted by default, and SCRIPT_NAME is a default forwarder header.
    let s = server(&["--header-map", "refuse"]);
    let e = environ(
        &s,
        "GET /app/environ/x HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: /app\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["SCRIPT_NAME"], py("/app"));
    assert_eq!(e["PATH_INFO"], py("/environ/x"));
    assert_eq!(e["HTTP_SCRIPT_NAME"], py("/app"));
    // Not a forwarder header: header_map decides.
    expect_rejected(
        &s,
        b"GET /ok HTTP/1.1\r\nHost: x\r\nREMOTE_USER: root\r\n\r\n",
        400,
    );

    let custom = server(&["--forwarder-headers", "REMOTE_USER"]);
    let e = environ(&custom, "GET /environ HTTP/1.1\r\nHost: x\r\nREMOTE_USER: alice\r\nSCRIPT_NAME: /app\r\nConnection: close\r\n\r\n");
    assert_eq!(e["HTTP_REMOTE_USER"], py("alice"));
    assert_eq!(
        e["SCRIPT_NAME"],
        py(""),
        "SCRIPT_NAME is no longer a forwarder header"
    );
    assert!(!e.contains_key("HTTP_SCRIPT_NAME"));

    // From a peer outside forwarded_allow_ips the names are header_map's.
    let untrusted = server(&["--forwarded-allow-ips", "10.9.8.7"]);
    let e = environ(
        &untrusted,
        "GET /environ HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: /app\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["SCRIPT_NAME"], py(""));
    assert!(!e.contains_key("HTTP_SCRIPT_NAME"));
}

#[test]
fn custom_secure_scheme_headers_are_honoured_from_trusted_peers() {
    let dir = TempDir::new("scheme");
    let conf = dir.join("ferricorn.toml");
    std::fs::write(
        &conf,
        "secure_scheme_headers = { \"X-Scheme\" = \"https\", \"Front-End-Https\" = \"on\" }\n",
    )
    .unwrap();
    let s = server(&["-c", conf.to_str().unwrap()]);
    let e = environ(
        &s,
        "GET /environ HTTP/1.1\r\nHost: x\r\nX-Scheme: https\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["wsgi.url_scheme"], py("https"));
    let e = environ(
        &s,
        "GET /environ HTTP/1.1\r\nHost: x\r\nfront-end-https: on\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["wsgi.url_scheme"], py("https"));
    // Values compare exactly, as in gunicorn; the defaults are replaced.
    let e = environ(
        &s,
        "GET /environ HTTP/1.1\r\nHost: x\r\nX-Scheme: HTTPS\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["wsgi.url_scheme"], py("http"));
    let e = environ(
        &s,
        "GET /environ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["wsgi.url_scheme"], py("http"));
    let pid = s.get("/pid").text();
    expect_rejected(
        &s,
        b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Scheme: https\r\nFront-End-Https: off\r\n\r\n",
        400,
    );
    same_worker(&s, &pid);
    assert!(
        !s.log().contains("not acted on yet"),
        "no warning for secure_scheme_headers: {}",
        s.log()
    );
}

#[test]
fn the_parser_switches_no_longer_warn() {
    let s = server(&[
        "--permit-obsolete-folding",
        "--strip-header-spaces",
        "--casefold-http-method",
        "--permit-unconventional-http-method",
        "--permit-unconventional-http-version",
        "--header-map",
        "dangerous",
        "--forwarder-headers",
        "REMOTE_USER",
    ]);
    let log = s.log();
    for name in [
        "permit_obsolete_folding",
        "strip_header_spaces",
        "casefold_http_method",
        "permit_unconventional_http_method",
        "permit_unconventional_http_version",
        "header_map",
        "forwarder_headers",
    ] {
        assert!(!log.contains(&format!("{name} is set")), "{name}: {log}");
    }
}

#[test]
fn a_refused_request_closes_its_connection_even_when_more_was_pipelined() {
    let s = server(&[]);
    let mut c = connect(&s.addr());
    c.write_all(b"GET /ok/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /ok/2 HTTP/1.1\r\n\r\nGET /ok/3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let rs = read_responses_until_close(&mut c);
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 400], "nothing is served after the error");
    assert!(read_until_close(&mut c, Duration::from_secs(5)).1);
}
