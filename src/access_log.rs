//! gunicorn's access log format: `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`.
//!
//! The format is compiled once per worker into segments; a request is then
//! formatted by walking them, with no parsing per request.

use std::fmt::Write;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Atom(Atom),
}

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    RemoteAddr,
    Dash,
    User,
    Time,
    RequestLine,
    Method,
    UrlPath,
    Query,
    Protocol,
    Status,
    BytesInt,
    BytesClf,
    Referer,
    UserAgent,
    Seconds,
    Micros,
    Millis,
    DecimalSeconds,
    Pid,
    RequestHeader(String),
    ResponseHeader(String),
    EnvVar(String),
    Unknown,
}

#[derive(Debug, Clone)]
pub struct AccessFormat(Vec<Segment>);

/// What one request contributes to its access log line.
pub struct AccessRecord<'a> {
    pub remote_addr: &'a str,
    pub method: &'a str,
    pub target: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub response_length: Option<u64>,
    pub request_headers: &'a [(&'a [u8], &'a [u8])],
    pub response_headers: &'a [(String, String)],
    pub duration: Duration,
}

impl AccessRecord<'_> {
    fn req_header(&self, name: &str) -> Option<String> {
        self.request_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

impl AccessFormat {
    pub fn compile(format: &str) -> AccessFormat {
        let mut segs = Vec::new();
        let mut lit = String::new();
        let mut rest = format;
        while let Some(pos) = rest.find('%') {
            lit.push_str(&rest[..pos]);
            rest = &rest[pos..];
            if rest.starts_with("%%") {
                lit.push('%');
                rest = &rest[2..];
                continue;
            }
            let parsed = rest.strip_prefix("%(").and_then(|r| {
                let close = r.find(')')?;
                let conv = r[close + 1..].chars().next()?;
                // Consumed: "%(" + name + ")" + the conversion letter.
                matches!(conv, 's' | 'd').then(|| (&r[..close], close + 4))
            });
            match parsed {
                Some((name, len)) => {
                    if !lit.is_empty() {
                        segs.push(Segment::Literal(std::mem::take(&mut lit)));
                    }
                    segs.push(Segment::Atom(atom(name)));
                    rest = &rest[len..];
                }
                None => {
                    lit.push('%');
                    rest = &rest[1..];
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segs.push(Segment::Literal(lit));
        }
        AccessFormat(segs)
    }

    pub fn format(&self, r: &AccessRecord<'_>, out: &mut String) {
        for seg in &self.0 {
            match seg {
                Segment::Literal(s) => out.push_str(s),
                Segment::Atom(a) => write_atom(a, r, out),
            }
        }
        out.push('\n');
    }
}

fn atom(name: &str) -> Atom {
    if let Some(h) = name.strip_prefix('{') {
        if let Some(h) = h.strip_suffix("}i") {
            return Atom::RequestHeader(h.to_ascii_lowercase());
        }
        if let Some(h) = h.strip_suffix("}o") {
            return Atom::ResponseHeader(h.to_ascii_lowercase());
        }
        if let Some(h) = h.strip_suffix("}e") {
            return Atom::EnvVar(h.to_string());
        }
        return Atom::Unknown;
    }
    match name {
        "h" => Atom::RemoteAddr,
        "l" => Atom::Dash,
        "u" => Atom::User,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "m" => Atom::Method,
        "U" => Atom::UrlPath,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "s" => Atom::Status,
        "B" => Atom::BytesInt,
        "b" => Atom::BytesClf,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "D" => Atom::Micros,
        "M" => Atom::Millis,
        "L" => Atom::DecimalSeconds,
        "p" => Atom::Pid,
        _ => Atom::Unknown,
    }
}

fn or_dash(v: Option<String>) -> String {
    v.filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".to_string())
}

fn write_atom(a: &Atom, r: &AccessRecord<'_>, out: &mut String) {
    match a {
        Atom::RemoteAddr => out.push_str(r.remote_addr),
        Atom::Dash | Atom::Unknown => out.push('-'),
        Atom::User => out.push_str(&or_dash(
            r.req_header("authorization")
                .and_then(|v| basic_auth_user(&v)),
        )),
        Atom::Time => {
            let _ = write!(
                out,
                "{}",
                chrono::Local::now().format("[%d/%b/%Y:%H:%M:%S %z]")
            );
        }
        Atom::RequestLine => {
            let _ = write!(out, "{} {} {}", r.method, r.target, r.version);
        }
        Atom::Method => out.push_str(r.method),
        Atom::UrlPath => out.push_str(r.path),
        Atom::Query => out.push_str(r.query),
        Atom::Protocol => out.push_str(r.version),
        Atom::Status => out.push_str(itoa::Buffer::new().format(r.status)),
        Atom::BytesInt => out.push_str(itoa::Buffer::new().format(r.response_length.unwrap_or(0))),
        Atom::BytesClf => match r.response_length {
            Some(n) if n > 0 => out.push_str(itoa::Buffer::new().format(n)),
            _ => out.push('-'),
        },
        Atom::Referer => out.push_str(&or_dash(r.req_header("referer"))),
        Atom::UserAgent => out.push_str(&or_dash(r.req_header("user-agent"))),
        Atom::Seconds => out.push_str(itoa::Buffer::new().format(r.duration.as_secs())),
        Atom::Micros => out.push_str(itoa::Buffer::new().format(r.duration.as_micros())),
        Atom::Millis => out.push_str(itoa::Buffer::new().format(r.duration.as_millis())),
        Atom::DecimalSeconds => {
            let _ = write!(out, "{:.6}", r.duration.as_secs_f64());
        }
        Atom::Pid => {
            let _ = write!(out, "<{}>", std::process::id());
        }
        Atom::RequestHeader(h) => out.push_str(&or_dash(r.req_header(h))),
        Atom::ResponseHeader(h) => out.push_str(&or_dash(
            r.response_headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(h))
                .map(|(_, v)| v.clone()),
        )),
        Atom::EnvVar(v) => out.push_str(&or_dash(std::env::var(v).ok())),
    }
}

/// Log one request: to Python's `gunicorn.access` logger when Python's
/// logging is in use, else as a line to the access log file; and to
/// syslog when that is on.
pub fn emit(fmt: &AccessFormat, rec: &AccessRecord<'_>) {
    let python = crate::pylog::active();
    if python {
        crate::pylog::access(rec);
        if !crate::syslog::access_on() {
            return;
        }
    }
    let mut line = String::with_capacity(160);
    fmt.format(rec, &mut line);
    if !python {
        crate::log::access_write(line.as_bytes());
    }
    crate::syslog::access(&line);
}

/// The user name of an `Authorization: Basic ...` header.
pub(crate) fn basic_auth_user(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(token.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map(|(u, _)| u)
            .unwrap_or(&text)
            .to_string(),
    )
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format_renders_like_gunicorn() {
        let f = AccessFormat::compile(crate::config::DEFAULT_ACCESS_LOG_FORMAT);
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b"User-Agent", b"curl/8"),
            (b"Authorization", b"Basic dXNlcjpwYXNz"),
        ];
        let r = AccessRecord {
            remote_addr: "127.0.0.1",
            method: "GET",
            target: "/a?b=1",
            path: "/a",
            query: "b=1",
            version: "HTTP/1.1",
            status: 200,
            response_length: Some(13),
            request_headers: &headers,
            response_headers: &[],
            duration: Duration::from_millis(3),
        };
        let mut out = String::new();
        f.format(&r, &mut out);
        assert!(out.starts_with("127.0.0.1 - user ["), "{out}");
        assert!(
            out.ends_with("] \"GET /a?b=1 HTTP/1.1\" 200 13 \"-\" \"curl/8\"\n"),
            "{out}"
        );
    }

    #[test]
    fn percent_escapes_and_unknown_atoms() {
        let f = AccessFormat::compile("%% %(zz)s %({x-id}i)s %(D)s");
        let headers: Vec<(&[u8], &[u8])> = vec![(b"X-Id", b"7")];
        let r = AccessRecord {
            remote_addr: "",
            method: "GET",
            target: "/",
            path: "/",
            query: "",
            version: "HTTP/1.0",
            status: 404,
            response_length: None,
            request_headers: &headers,
            response_headers: &[],
            duration: Duration::from_micros(42),
        };
        let mut out = String::new();
        f.format(&r, &mut out);
        assert_eq!(out, "% - 7 42\n");
    }
}
