//! The Flask app and the Django project from examples/, served by the real
//! binary: pages, a CSRF-protected form, a multipart upload, a streamed
//! response, a static file and an error page.

use crate::harness::*;
use std::io::Write;
use std::time::Duration;

fn flask() -> Server {
    Server::builder("app:app")
        .cwd(examples_dir().join("flaskapp"))
        .args(["-w", "2"])
        .with_venv()
        .start()
}

fn django() -> Server {
    Server::builder("mysite.wsgi")
        .cwd(examples_dir().join("djangoproject"))
        .args(["-w", "2"])
        .with_venv()
        .start()
}

/// `name=value` pairs of every Set-Cookie, joined for a Cookie header.
fn cookies(r: &Response) -> String {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap().trim().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The value attribute of the input called `name` in an HTML page.
fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name} in {html}"));
    let rest = &html[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    rest[v..v + rest[v..].find('"').unwrap()].to_string()
}

fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn post_form(s: &Server, path: &str, cookie: &str, body: &str) -> Response {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.request(raw.as_bytes())
}

fn multipart(field: &str, filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----ferricornBoundary7MA4YWxkTrZu0gW";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn upload(s: &Server, path: &str, data: &[u8], chunked: bool) -> Response {
    let (ctype, body) = multipart("file", "data.bin", data);
    let mut c = connect(&s.addr());
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let mut raw = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\n{framing}\r\nConnection: close\r\n\r\n").into_bytes();
    if chunked {
        for piece in body.chunks(50_000) {
            raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            raw.extend_from_slice(piece);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
    } else {
        raw.extend_from_slice(&body);
    }
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&raw);
    });
    let r = read_response(&mut c).unwrap();
    writer.join().unwrap();
    r
}

fn upload_data() -> Vec<u8> {
    (0..700_001u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 13) as u8)
        .collect()
}

fn check_upload(r: &Response, data: &[u8]) {
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.contains(&sha256_hex(data)), "sha256 mismatch: {text}");
    assert!(
        text.contains(&format!("{}", data.len())),
        "size missing: {text}"
    );
    assert!(text.contains("data.bin"), "{text}");
}

fn check_stream(r: &Response) {
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("transfer-encoding"),
        Some("chunked"),
        "{:?}",
        r.headers
    );
    let want: String = (0..10).map(|n| format!("chunk {n}\n")).collect();
    assert_eq!(r.text(), want);
}

#[test]
fn flask_pages_json_static_stream_and_error() {
    let s = flask();
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let r = s.get("/json");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("\"message\":\"Hello, World!\"")
            || r.text().contains("\"message\": \"Hello, World!\""),
        "{}",
        r.text()
    );
    let r = s.get("/static/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello from a static file!\n");
    check_stream(&s.get("/stream"));
    let r = s.get("/error");
    assert_eq!(r.status, 500);
    assert!(
        s.wait_log("intentional error from /error", Duration::from_secs(5)),
        "traceback not logged:\n{}",
        s.log()
    );
    assert_eq!(s.get("/json").status, 200);
}

#[test]
fn flask_form_with_csrf_token() {
    let s = flask();
    let page = s.get("/form");
    assert_eq!(page.status, 200);
    let token = input_value(&page.text(), "csrf_token");
    let cookie = cookies(&page);
    assert!(!cookie.is_empty(), "no session cookie: {:?}", page.headers);
    let r = post_form(
        &s,
        "/form",
        &cookie,
        &form_urlencoded(&[("csrf_token", &token), ("message", "héllo wörld & more")]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "message: héllo wörld & more\n");
    let r = post_form(
        &s,
        "/form",
        &cookie,
        &form_urlencoded(&[("message", "no token")]),
    );
    assert_eq!(r.status, 403);
    let r = post_form(
        &s,
        "/form",
        "",
        &form_urlencoded(&[("csrf_token", &token), ("message", "no cookie")]),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn flask_upload_with_content_length_and_chunked() {
    let s = flask();
    let data = upload_data();
    check_upload(&upload(&s, "/upload", &data, false), &data);
    // Werkzeug reads a body without Content-Length because wsgi.input_terminated is set.
    check_upload(&upload(&s, "/upload", &data, true), &data);
}

#[test]
fn django_pages_static_stream_and_error() {
    let s = django();
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let r = s.get("/static/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello from a static file!\n");
    check_stream(&s.get("/stream/"));
    assert_eq!(s.get("/error/").status, 500);
    assert!(
        s.wait_log("intentional error from /error/", Duration::from_secs(5)),
        "traceback not logged:\n{}",
        s.log()
    );
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn django_form_with_csrf_token() {
    let s = django();
    let page = s.get("/form/");
    assert_eq!(page.status, 200);
    let token = input_value(&page.text(), "csrfmiddlewaretoken");
    let cookie = cookies(&page);
    assert!(
        cookie.contains("csrftoken="),
        "no csrftoken cookie: {:?}",
        page.headers
    );
    let r = post_form(
        &s,
        "/form/",
        &cookie,
        &form_urlencoded(&[
            ("csrfmiddlewaretoken", &token),
            ("message", "héllo from django"),
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "message: héllo from django\n");
    let r = post_form(
        &s,
        "/form/",
        &cookie,
        &form_urlencoded(&[("message", "no token")]),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn django_upload() {
    let s = django();
    let data = upload_data();
    check_upload(&upload(&s, "/upload/", &data, false), &data);
}
