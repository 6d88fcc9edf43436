//! The WSGI environ as PEP 3333 and gunicorn define it, seen by a real app.

use crate::harness::*;
use std::collections::HashMap;
use std::io::Write;

fn environ(s: &Server, raw: &str) -> HashMap<String, String> {
    let r = s.request(raw.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    kv(&r.text())
}

/// A Python str repr as the app prints it.
fn py(s: &str) -> String {
    format!("'{s}'")
}

#[test]
fn environ_has_the_pep_3333_and_gunicorn_keys() {
    let s = Server::builder("conformance:app").args(["-w", "2"]).start();
    let e = environ(
        &s,
        "POST /environ/a%20b/%C3%A9?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nX-Multi: one\r\nx-multi: two\r\nX-Dash-Name: d\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["REQUEST_METHOD"], py("POST"));
    assert_eq!(e["SCRIPT_NAME"], py(""));
    // Percent-decoded, then each byte one latin-1 character (PEP 3333).
    assert_eq!(e["PATH_INFO"], py("/environ/a b/Ã©"));
    assert_eq!(e["QUERY_STRING"], py("x=1&y=%20"));
    assert_eq!(e["RAW_URI"], py("/environ/a%20b/%C3%A9?x=1&y=%20"));
    assert_eq!(e["SERVER_PROTOCOL"], py("HTTP/1.1"));
    assert_eq!(e["SERVER_NAME"], py("example.com"));
    assert_eq!(e["SERVER_PORT"], py("8080"));
    assert_eq!(e["REMOTE_ADDR"], py("127.0.0.1"));
    let port: u16 = e["REMOTE_PORT"].trim_matches('\'').parse().unwrap();
    assert!(port > 0);
    assert_eq!(e["CONTENT_TYPE"], py("text/plain"));
    assert_eq!(e["CONTENT_LENGTH"], py("0"));
    assert!(!e.contains_key("HTTP_CONTENT_TYPE") && !e.contains_key("HTTP_CONTENT_LENGTH"));
    assert_eq!(e["HTTP_HOST"], py("example.com:8080"));
    assert_eq!(
        e["HTTP_X_MULTI"],
        py("one,two"),
        "repeated headers are joined with a comma"
    );
    assert_eq!(e["HTTP_X_DASH_NAME"], py("d"));
    assert_eq!(e["wsgi.version"], "(1, 0)");
    assert_eq!(e["wsgi.url_scheme"], py("http"));
    assert_eq!(e["wsgi.multithread"], "False");
    assert_eq!(e["wsgi.multiprocess"], "True", "two workers");
    assert_eq!(e["wsgi.run_once"], "False");
    assert_eq!(e["wsgi.input_terminated"], "True");
    assert_eq!(e["has wsgi.input"], "True");
    assert_eq!(e["has wsgi.errors"], "True");
    assert_eq!(e["has wsgi.file_wrapper"], "True");
    assert_eq!(e["errors_has_write"], "True");
    assert_eq!(e["input_has_readline"], "True");
    assert!(e["SERVER_SOFTWARE"].contains("ferricorn"));
}

#[test]
fn headers_with_underscores_are_dropped() {
    let s = Server::builder("conformance:app").args(["-w", "1"]).start();
    let e = environ(&s, "GET /environ HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n\r\n");
    assert_eq!(
        e["HTTP_X_FORWARDED_FOR"],
        py("1.2.3.4"),
        "the underscore spelling must not impersonate the dash one"
    );
}

#[test]
fn http_1_0_without_host_uses_the_listener_address() {
    let s = Server::builder("conformance:app").args(["-w", "1"]).start();
    let e = environ(&s, "GET /environ HTTP/1.0\r\n\r\n");
    assert_eq!(e["SERVER_PROTOCOL"], py("HTTP/1.0"));
    assert_eq!(e["SERVER_NAME"], py("127.0.0.1"));
    assert_eq!(e["SERVER_PORT"], py(&s.port.to_string()));
    assert_eq!(e["wsgi.multiprocess"], "False", "one worker");
    let e = environ(&s, "GET /environ HTTP/1.0\r\nHost: example.org\r\n\r\n");
    assert_eq!(e["SERVER_NAME"], py("example.org"));
    assert_eq!(e["SERVER_PORT"], py("80"));
}

#[test]
fn absolute_form_targets_give_path_and_query() {
    let s = Server::builder("conformance:app").args(["-w", "1"]).start();
    let e = environ(&s, "GET http://example.com:9000/environ/abs?q=1 HTTP/1.1\r\nHost: example.com:9000\r\nConnection: close\r\n\r\n");
    assert_eq!(e["PATH_INFO"], py("/environ/abs"));
    assert_eq!(e["QUERY_STRING"], py("q=1"));
    assert_eq!(e["RAW_URI"], py("http://example.com:9000/environ/abs?q=1"));
    assert_eq!(e["SERVER_NAME"], py("example.com"));
    assert_eq!(e["SERVER_PORT"], py("9000"));
}

#[test]
fn script_name_comes_from_the_environment() {
    let s = Server::builder("conformance:app")
        .args(["-w", "1"])
        .env("SCRIPT_NAME", "/prefix")
        .start();
    // The readiness probe asks for "/", outside the prefix: that is a client error, not a crash.
    let e = environ(
        &s,
        "GET /prefix/environ/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["SCRIPT_NAME"], py("/prefix"));
    assert_eq!(e["PATH_INFO"], py("/environ/x"));
    let r = s.get("/elsewhere");
    assert_eq!(r.status, 400);
    assert_eq!(s.get("/prefix/ok").status, 200);
}

#[test]
fn forwarded_scheme_is_trusted_only_from_allowed_ips() {
    // Loopback is in the default --forwarded-allow-ips.
    let trusted = Server::builder("conformance:app").args(["-w", "1"]).start();
    let e = environ(&trusted, "GET /environ HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n");
    assert_eq!(e["wsgi.url_scheme"], py("https"));
    assert_eq!(e["SERVER_PORT"], py("443"));
    let e = environ(
        &trusted,
        "GET /environ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Ssl: on\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["wsgi.url_scheme"], py("https"));
    let e = environ(
        &trusted,
        "GET /environ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(e["wsgi.url_scheme"], py("http"));
    // Scheme headers that contradict each other are a bad request.
    let r = trusted.request(b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    assert_eq!(trusted.get("/ok").status, 200);

    let untrusted = Server::builder("conformance:app")
        .args(["-w", "1", "--forwarded-allow-ips", "10.9.8.7"])
        .start();
    let e = environ(&untrusted, "GET /environ HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n");
    assert_eq!(
        e["wsgi.url_scheme"],
        py("http"),
        "an untrusted peer cannot claim https"
    );
    assert_eq!(e["SERVER_PORT"], py("80"));
    let r = untrusted.request(b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\nConnection: close\r\n\r\n");
    assert_eq!(
        r.status, 200,
        "untrusted scheme headers are ignored, not judged"
    );

    let star = Server::builder("conformance:app")
        .args(["-w", "1", "--forwarded-allow-ips", "*"])
        .start();
    let e = environ(&star, "GET /environ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Protocol: ssl\r\nConnection: close\r\n\r\n");
    assert_eq!(e["wsgi.url_scheme"], py("https"));
}

#[test]
fn each_request_gets_a_fresh_environ() {
    let s = Server::builder("conformance:app").args(["-w", "1"]).start();
    let mut c = connect(&s.addr());
    c.write_all(b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Only-First: 1\r\n\r\nGET /environ HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let first = kv(&read_response(&mut c).unwrap().text());
    let second = kv(&read_response(&mut c).unwrap().text());
    assert!(first.contains_key("HTTP_X_ONLY_FIRST"));
    assert!(
        !second.contains_key("HTTP_X_ONLY_FIRST"),
        "headers must not leak between requests"
    );
    assert_eq!(first["REMOTE_PORT"], second["REMOTE_PORT"]);
}
