//! Validation of one field line (`name: value`), shared by the request head
//! and chunked trailers so both sections obey identical rules.

use std::ops::Range;

use super::chars::{all_field_bytes, is_field_byte, is_ows, is_tchar, trim_ows_range};
use super::error::{show, HttpError};
use super::limits::Rules;

/// Validates a complete field line (CRLF already stripped) and returns the
/// name and OWS-trimmed value as ranges relative to `line`.
///
/// Checks run in a fixed order so a line with several defects always yields
/// the same error: folding, missing colon, name, value bytes. A caller that
/// permits obs-fold handles continuation lines before calling this.
pub(crate) fn parse_field_line(
    line: &[u8],
    rules: &Rules,
) -> Result<(Range<usize>, Range<usize>), HttpError> {
    if line.first().is_some_and(|&b| is_ows(b)) {
        // RFC 9112 §5.2: a server MUST reject obs-fold (or replace it), and
        // rejecting is the only choice that cannot desync with a proxy.
        return Err(obs_fold(line));
    }
    // Fast path: the name is scanned once, up to the first non-tchar,
    // which for a valid line is the colon.
    let stop = line
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(line.len());
    let colon = if line.get(stop) == Some(&b':') {
        stop
    } else {
        line[stop..]
            .iter()
            .position(|&b| b == b':')
            .map(|i| stop + i)
            .ok_or_else(|| HttpError::bad_request(format!("Invalid HTTP header: {}", show(line))))?
    };
    // The name is line[..stop]. Whitespace between it and the colon is a
    // smuggling vector RFC 9112 §5.1 says MUST be rejected; gunicorn's
    // strip_header_spaces drops it instead.
    let gap_ok = colon == stop
        || (rules.strip_header_spaces && line[stop..colon].iter().all(|&b| is_ows(b)));
    if stop == 0 || !gap_ok {
        return Err(HttpError::bad_request(format!(
            "Invalid HTTP header name: {}",
            show(&line[..colon])
        )));
    }
    let name = &line[..stop];
    let (vs, ve) = trim_ows_range(line, colon + 1, line.len());
    let value = &line[vs..ve];
    if !all_field_bytes(value) {
        let bad = value.iter().position(|&b| !is_field_byte(b)).unwrap_or(0);
        return Err(HttpError::bad_request(format!(
            "Invalid byte {:#04x} in value of header {}",
            value[bad],
            show(name)
        )));
    }
    Ok((0..stop, vs..ve))
}

/// Checks one obs-fold continuation line (leading SP/HTAB included) and
/// returns its content with surrounding whitespace removed, as gunicorn
/// joins it to the previous value.
pub(crate) fn parse_continuation(line: &[u8]) -> Result<Range<usize>, HttpError> {
    let (s, e) = trim_ows_range(line, 0, line.len());
    if let Some(bad) = line[s..e].iter().position(|&b| !is_field_byte(b)) {
        return Err(HttpError::bad_request(format!(
            "Invalid byte {:#04x} in folded header line",
            line[s + bad]
        )));
    }
    Ok(s..e)
}

fn obs_fold(line: &[u8]) -> HttpError {
    HttpError::bad_request(format!(
        "Obsolete line folding is unacceptable: {}",
        show(line)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &[u8]) -> (&[u8], &[u8]) {
        let (n, v) = parse_field_line(line, &Rules::default()).unwrap();
        (&line[n], &line[v])
    }

    fn err(line: &[u8]) -> String {
        let e = parse_field_line(line, &Rules::default()).unwrap_err();
        assert_eq!(e.status, 400);
        e.detail
    }

    #[test]
    fn value_is_trimmed_of_ows_on_both_sides() {
        assert_eq!(
            ok(b"Host: example.com"),
            (&b"Host"[..], &b"example.com"[..])
        );
        assert_eq!(ok(b"X:\t a b \t"), (&b"X"[..], &b"a b"[..]));
        assert_eq!(ok(b"X:"), (&b"X"[..], &b""[..]));
        assert_eq!(ok(b"X:   "), (&b"X"[..], &b""[..]));
    }

    #[test]
    fn value_may_contain_colons_and_obs_text() {
        assert_eq!(ok(b"X: a:b"), (&b"X"[..], &b"a:b"[..]));
        assert_eq!(ok(b"X: caf\xc3\xa9"), (&b"X"[..], &b"caf\xc3\xa9"[..]));
    }

    #[test]
    fn whitespace_before_colon_is_rejected() {
        assert!(err(b"Host : x").contains("header name"));
        assert!(err(b"Host\t: x").contains("header name"));
    }

    #[test]
    fn strip_header_spaces_drops_whitespace_before_colon_only() {
        let loose = Rules {
            strip_header_spaces: true,
            ..Rules::default()
        };
        let ok = |line: &'static [u8]| {
            let (n, v) = parse_field_line(line, &loose).unwrap();
            (&line[n], &line[v])
        };
        assert_eq!(ok(b"Host : x"), (&b"Host"[..], &b"x"[..]));
        assert_eq!(ok(b"Host \t : x"), (&b"Host"[..], &b"x"[..]));
        assert_eq!(ok(b"Host: x"), (&b"Host"[..], &b"x"[..]));
        for bad in [&b"Ho st: x"[..], b" Host: x", b": x", b" : x", b"Host x"] {
            assert!(parse_field_line(bad, &loose).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn continuation_lines_are_trimmed_and_checked() {
        assert_eq!(parse_continuation(b" \t a b \t"), Ok(3..6));
        assert_eq!(parse_continuation(b"  "), Ok(2..2));
        assert!(parse_continuation(b" a\x00b").is_err());
    }

    #[test]
    fn empty_or_non_token_name_is_rejected() {
        assert!(err(b": x").contains("header name"));
        assert!(err(b"Fo o: x").contains("b\"Fo o\""));
        assert!(err(b"X(y): x").contains("header name"));
        assert!(err(b"\xc3\xa9: x").contains("header name"));
    }

    #[test]
    fn line_without_colon_is_rejected() {
        assert!(err(b"NoColonHere").contains("Invalid HTTP header"));
    }

    #[test]
    fn folded_continuation_is_rejected_before_other_checks() {
        assert!(err(b" continued").contains("folding"));
        assert!(err(b"\tX: y").contains("folding"));
    }

    #[test]
    fn control_bytes_in_value_are_rejected() {
        for b in (0u8..0x20).filter(|&b| b != b'\t').chain([0x7f]) {
            let line = [b'X', b':', b' ', b'a', b, b'b'];
            assert!(err(&line).contains("Invalid byte"), "byte {b:#x}");
        }
    }
}
