//! Validation of the request line: `method SP request-target SP HTTP-version`.

use std::ops::Range;

use super::chars::is_tchar;
use super::error::{show, HttpError};
use super::limits::Rules;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestLine {
    pub method: Range<usize>,
    pub target: Range<usize>,
    pub minor_version: u8,
}

/// Validates a complete request line (CRLF stripped) found at
/// `buf[start..end]`; returned ranges index `buf`.
///
/// Order of checks (fixed, so one input always gives one error): method,
/// shape, version, target. Version precedes target so that an HTTP/2
/// preface (`PRI * HTTP/2.0`) is answered with 505 rather than 400.
pub(crate) fn parse_request_line(
    buf: &[u8],
    start: usize,
    end: usize,
    rules: &Rules,
) -> Result<RequestLine, HttpError> {
    let line = &buf[start..end];
    let invalid_line =
        || HttpError::bad_request(format!("Invalid HTTP request line: {}", show(line)));
    let m = scan_method(line, rules)?.ok_or_else(invalid_line)?;
    // Exactly one more SP (RFC 9112 §3): neither target nor version may
    // contain SP, and splitting on runs of whitespace would invite
    // disagreement with proxies about where the target ends.
    let rest = &line[m + 1..];
    let sp = match rest.iter().position(|&b| b == b' ') {
        Some(sp) if sp > 0 && sp + 1 < rest.len() && !rest[sp + 1..].contains(&b' ') => sp,
        _ => return Err(invalid_line()),
    };
    let method = &line[..m];
    let target = &rest[..sp];
    let version = &rest[sp + 1..];

    let minor_version = parse_version(version, rules)?;
    check_target(method, target)?;

    Ok(RequestLine {
        method: start..start + m,
        target: start + m + 1..start + m + 1 + sp,
        minor_version,
    })
}

/// gunicorn's default (`permit_unconventional_http_method = False`): a
/// token of 3 to 20 characters with no lowercase letters and no `#`.
/// With the switch, any token (RFC 9110 §9.1).
fn is_method_byte(b: u8, rules: &Rules) -> bool {
    is_tchar(b) && (rules.permit_unconventional_http_method || !b.is_ascii_lowercase() && b != b'#')
}

/// Longest method gunicorn accepts by default.
const MAX_METHOD_LEN: usize = 20;

/// Checks the method at the start of a (possibly unfinished) request line.
///
/// `Ok(Some(len))`: a valid method followed by SP. `Ok(None)`: valid so far,
/// more bytes needed. The verdict depends only on the first 21 bytes, so the
/// head parser runs this before anything else on the line: garbage such as
/// a TLS handshake sent to a plain-HTTP port is refused at its first byte
/// instead of after `limit_request_line` bytes or a timeout, and the error
/// is the same however the bytes were split. With
/// `permit_unconventional_http_method` a method has no length bounds but
/// its own line's, and the verdict still comes at the first bad byte.
pub(crate) fn scan_method(line: &[u8], rules: &Rules) -> Result<Option<usize>, HttpError> {
    let invalid =
        |n: usize| HttpError::bad_request(format!("Invalid HTTP method: {}", show(&line[..n])));
    let (min, max) = if rules.permit_unconventional_http_method {
        (1, usize::MAX)
    } else {
        (3, MAX_METHOD_LEN)
    };
    for (i, &b) in line.iter().enumerate() {
        if b == b' ' {
            return if i < min {
                Err(invalid(i))
            } else {
                Ok(Some(i))
            };
        }
        if b == b'\r' || b == b'\n' {
            return Err(HttpError::bad_request(format!(
                "Invalid HTTP request line: {}",
                show(&line[..i])
            )));
        }
        if i >= max || !is_method_byte(b, rules) {
            return Err(invalid(i + 1));
        }
    }
    Ok(None)
}

/// HTTP/1.x is served: 1.0 as 1.0, 1.1 and any later minor version as 1.1
/// (RFC 9110 §2.5: answer with the highest minor version the server
/// conforms to, as gunicorn does). Any other major version gets 505 (with
/// `permit_unconventional_http_version`: 0.x is served as 1.0, 2.x and
/// later as 1.1), anything else is a malformed request (400).
fn parse_version(version: &[u8], rules: &Rules) -> Result<u8, HttpError> {
    match version {
        b"HTTP/1.1" => Ok(1),
        b"HTTP/1.0" => Ok(0),
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => Ok(1),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if rules.permit_unconventional_http_version {
                return Ok(u8::from(*major >= b'1'));
            }
            Err(HttpError::version_not_supported(format!(
                "Unsupported HTTP version: {}",
                show(version)
            )))
        }
        _ => Err(HttpError::bad_request(format!(
            "Invalid HTTP version: {}",
            show(version)
        ))),
    }
}

/// RFC 9112 §3.2: one of the four request-target forms, the form allowed
/// by the method: authority form only (and always) with CONNECT, the
/// asterisk only with OPTIONS, otherwise origin form or absolute form. Bytes >= 0x80 are let through because gunicorn accepts
/// raw UTF-8 paths and applications rely on it; whitespace and control
/// bytes are never valid.
fn check_target(method: &[u8], target: &[u8]) -> Result<(), HttpError> {
    let invalid = || HttpError::bad_request(format!("Invalid request target: {}", show(target)));
    if target.iter().any(|&b| b <= 0x20 || b == 0x7f) {
        return Err(invalid());
    }
    let form_ok = if method == b"CONNECT" {
        is_authority_form(target)
    } else if target[0] == b'/' {
        true
    } else if target == b"*" {
        method == b"OPTIONS"
    } else {
        is_absolute_form(target)
    };
    if form_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// `scheme "://" authority path-abempty [ "?" query ]` (RFC 3986 §3, RFC
/// 9112 §3.2.2): an absolute URI with an authority. `host:port` alone, a
/// scheme without `//`, an empty or malformed authority, and userinfo
/// (`user@host`, which RFC 9110 §4.2.4 says to treat as an error) are not.
fn is_absolute_form(t: &[u8]) -> bool {
    let Some(colon) = t.iter().position(|&b| b == b':') else {
        return false;
    };
    let scheme = &t[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let Some(rest) = t[colon + 1..].strip_prefix(b"//") else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let (host, port) = match authority.iter().rposition(|&b| b == b':') {
        // A colon inside an IPv6 literal is not the port separator.
        Some(c) if !authority[c..].contains(&b']') => (&authority[..c], &authority[c + 1..]),
        _ => (authority, &b""[..]),
    };
    scheme_ok && port.len() <= 5 && port.iter().all(u8::is_ascii_digit) && is_host(host)
}

/// `uri-host ":" port` (RFC 9112 §3.2.3), as used by CONNECT.
fn is_authority_form(t: &[u8]) -> bool {
    let Some(colon) = t.iter().rposition(|&b| b == b':') else {
        return false;
    };
    let (host, port) = (&t[..colon], &t[colon + 1..]);
    let port_ok = (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit);
    port_ok && is_host(host)
}

/// RFC 3986 `host`: an IP literal in brackets or a non-empty reg-name
/// (unreserved, pct-encoded and sub-delims characters).
fn is_host(host: &[u8]) -> bool {
    match host {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner.iter().all(|&b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b':' | b'.' | b'%' | b'-' | b'_' | b'~')
                })
        }
        _ => {
            !host.is_empty()
                && host.iter().all(|&b| {
                    b.is_ascii_alphanumeric()
                        || matches!(
                            b,
                            b'-' | b'.'
                                | b'_'
                                | b'~'
                                | b'%'
                                | b'!'
                                | b'$'
                                | b'&'
                                | b'\''
                                | b'('
                                | b')'
                                | b'*'
                                | b'+'
                                | b','
                                | b';'
                                | b'='
                        )
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[u8]) -> Result<RequestLine, HttpError> {
        parse_request_line(line, 0, line.len(), &Rules::default())
    }

    fn status(line: &[u8]) -> u16 {
        parse(line).unwrap_err().status
    }

    #[test]
    fn ranges_point_into_the_buffer() {
        let buf = b"\r\nGET /a?b=1 HTTP/1.0";
        let rl = parse_request_line(buf, 2, buf.len(), &Rules::default()).unwrap();
        assert_eq!(&buf[rl.method.clone()], b"GET");
        assert_eq!(&buf[rl.target.clone()], b"/a?b=1");
        assert_eq!(rl.minor_version, 0);
    }

    #[test]
    fn shape_requires_exactly_two_single_spaces() {
        for l in [
            &b"GET /"[..],
            b"GET  / HTTP/1.1",
            b"GET / HTTP/1.1 ",
            b"GET /a b HTTP/1.1",
            b"GET / ",
            b"GET",
        ] {
            let e = parse(l).unwrap_err();
            assert_eq!(e.status, 400, "{l:?}");
            assert!(e.detail.starts_with("Invalid HTTP request line"), "{l:?}");
        }
    }

    #[test]
    fn methods_follow_gunicorn_conventional_rule() {
        for m in [
            "GET",
            "POST",
            "M-SEARCH",
            "PROPFIND",
            "X_Y",
            "A1!",
            "ABCDEFGHIJKLMNOPQRST",
        ] {
            assert!(parse(format!("{m} / HTTP/1.1").as_bytes()).is_ok(), "{m}");
        }
        for m in [
            "get",
            "Get",
            "GE",
            "G#T",
            "ABCDEFGHIJKLMNOPQRSTU",
            "GE(T",
            "G\x01T",
            "GÉT",
            "",
            "GET\t/",
        ] {
            let e = parse(format!("{m} / HTTP/1.1").as_bytes()).unwrap_err();
            assert_eq!(e.status, 400, "{m}");
            assert!(e.detail.starts_with("Invalid HTTP method"), "{m}");
        }
    }

    #[test]
    fn method_is_judged_from_its_first_bytes() {
        assert_eq!(scan_method(b"GE", &Rules::default()), Ok(None));
        assert_eq!(scan_method(b"GET", &Rules::default()), Ok(None));
        assert_eq!(scan_method(b"GET /", &Rules::default()), Ok(Some(3)));
        assert_eq!(
            scan_method(b"ABCDEFGHIJKLMNOPQRST", &Rules::default()),
            Ok(None)
        );
        // TLS ClientHello: refused at the first byte.
        assert_eq!(
            scan_method(b"\x16", &Rules::default()).unwrap_err().detail,
            "Invalid HTTP method: b\"\\x16\""
        );
        assert!(scan_method(b"ABCDEFGHIJKLMNOPQRSTU", &Rules::default()).is_err());
        assert!(scan_method(b"g", &Rules::default()).is_err());
        assert!(scan_method(b"GE ", &Rules::default()).is_err());
        let e = scan_method(b"GET\r", &Rules::default()).unwrap_err();
        assert!(
            e.detail.starts_with("Invalid HTTP request line"),
            "{}",
            e.detail
        );
    }

    #[test]
    fn well_formed_foreign_versions_get_505() {
        for v in ["HTTP/2.0", "HTTP/0.9", "HTTP/3.0", "HTTP/9.9"] {
            assert_eq!(status(format!("GET / {v}").as_bytes()), 505, "{v}");
        }
    }

    #[test]
    fn later_http_1_minor_versions_are_served_as_1_1() {
        for v in ["HTTP/1.2", "HTTP/1.9"] {
            let rl = parse(format!("GET / {v}").as_bytes()).unwrap();
            assert_eq!(rl.minor_version, 1, "{v}");
        }
    }

    #[test]
    fn malformed_versions_get_400() {
        for v in [
            "HTTP/1",
            "http/1.1",
            "HTTP/1.1x",
            "HTTP/11.1",
            "HTTP/1.",
            "HTTP/a.b",
            "HTTPS/1.1",
            "HTTP/1,1",
        ] {
            let e = parse(format!("GET / {v}").as_bytes()).unwrap_err();
            assert_eq!(e.status, 400, "{v}");
            assert!(e.detail.starts_with("Invalid HTTP version"), "{v}");
        }
    }

    #[test]
    fn http2_preface_is_answered_with_505() {
        assert_eq!(status(b"PRI * HTTP/2.0"), 505);
    }

    #[test]
    fn target_forms_are_tied_to_methods() {
        assert!(parse(b"OPTIONS * HTTP/1.1").is_ok());
        assert!(parse(b"GET * HTTP/1.1").is_err());
        assert!(parse(b"CONNECT example.com:443 HTTP/1.1").is_ok());
        assert!(parse(b"CONNECT [::1]:8080 HTTP/1.1").is_ok());
        assert!(parse(b"CONNECT / HTTP/1.1").is_err());
        assert!(parse(b"CONNECT http://x/ HTTP/1.1").is_err());
        assert!(parse(b"CONNECT example.com HTTP/1.1").is_err());
        assert!(parse(b"CONNECT :443 HTTP/1.1").is_err());
        assert!(parse(b"GET http://example.com/x?y HTTP/1.1").is_ok());
        assert!(parse(b"GET //double HTTP/1.1").is_ok());
        assert!(parse(b"GET x HTTP/1.1").is_err());
        assert!(parse(b"GET ?x HTTP/1.1").is_err());
        assert!(parse(b"GET 1http://x/ HTTP/1.1").is_err());
        assert!(parse(b"GET http: HTTP/1.1").is_err());
    }

    #[test]
    fn authority_form_only_with_connect() {
        for t in ["example.com:443", "[::1]:80", "localhost:8000"] {
            assert!(
                parse(format!("GET {t} HTTP/1.1").as_bytes()).is_err(),
                "{t}"
            );
            assert!(
                parse(format!("OPTIONS {t} HTTP/1.1").as_bytes()).is_err(),
                "{t}"
            );
        }
    }

    #[test]
    fn absolute_form_needs_scheme_and_authority() {
        for t in [
            "http://example.com",
            "http://example.com/",
            "https://example.com:8443/a?b",
            "http://[::1]:8000/x",
            "http://example.com:/x",
            "http://10.0.0.1?q",
            "coap+tcp://h.example/p",
        ] {
            assert!(parse(format!("GET {t} HTTP/1.1").as_bytes()).is_ok(), "{t}");
        }
        for t in [
            "http:/x",
            "http:x",
            "mailto:a@example.com",
            "http:///x",
            "http://",
            "http://user@example.com/",
            "http://example.com:80a/",
            "http://example.com:123456/",
            "http://exa<mple.com/",
            "http://[::1/",
            "1ttp://x/",
            "ht_tp://x/",
        ] {
            assert!(
                parse(format!("GET {t} HTTP/1.1").as_bytes()).is_err(),
                "{t}"
            );
        }
    }

    #[test]
    fn unconventional_methods_only_with_the_switch() {
        let loose = Rules {
            permit_unconventional_http_method: true,
            ..Rules::default()
        };
        for m in ["get", "G", "G#T", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "m-search"] {
            let line = format!("{m} / HTTP/1.1");
            assert!(parse(line.as_bytes()).is_err(), "{m}");
            let rl = parse_request_line(line.as_bytes(), 0, line.len(), &loose).unwrap();
            assert_eq!(&line.as_bytes()[rl.method], m.as_bytes());
        }
        // Still a token.
        for m in ["GE(T", "G\x01T", "GÉT"] {
            let line = format!("{m} / HTTP/1.1");
            assert!(
                parse_request_line(line.as_bytes(), 0, line.len(), &loose).is_err(),
                "{m}"
            );
        }
        assert!(scan_method(b" / HTTP/1.1", &loose).is_err());
    }

    #[test]
    fn unconventional_versions_only_with_the_switch() {
        let loose = Rules {
            permit_unconventional_http_version: true,
            ..Rules::default()
        };
        for (v, minor) in [("HTTP/0.9", 0), ("HTTP/2.0", 1), ("HTTP/9.9", 1)] {
            let line = format!("GET / {v}");
            assert_eq!(status(line.as_bytes()), 505, "{v}");
            let rl = parse_request_line(line.as_bytes(), 0, line.len(), &loose).unwrap();
            assert_eq!(rl.minor_version, minor, "{v}");
        }
        // Malformed versions stay malformed.
        let line = b"GET / HTTP/1.10";
        assert_eq!(
            parse_request_line(line, 0, line.len(), &loose)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn control_bytes_in_target_are_rejected_but_utf8_is_not() {
        assert!(parse(b"GET /a\x00b HTTP/1.1").is_err());
        assert!(parse(b"GET /a\x7fb HTTP/1.1").is_err());
        assert!(parse(b"GET /a\tb HTTP/1.1").is_err());
        assert!(parse(b"GET /caf\xc3\xa9 HTTP/1.1").is_ok());
    }
}
