//! Incremental request-head parser: request line plus header section.
//!
//! The worker appends socket reads to one buffer and asks, after each read,
//! whether the head is complete. `parse_head` answers from scratch each
//! time; `HeadParser` remembers which lines it has already validated so a
//! head trickling in over many reads costs O(length) in total.
//!
//! Every check is made per line, in line order, and limit checks on an
//! unfinished line can only fire when the finished line would fail the same
//! check. Hence the result (including the error detail) does not depend on
//! how the bytes were split across reads. (With `permit_obsolete_folding` a
//! field is complete only once the next line does not continue it, so its
//! framing checks run at the first byte of the next line: still a point
//! fixed by the bytes, not by the reads.)

use std::ops::Range;

use super::chars::{find_line_break, is_ows, CR, LF};
use super::error::HttpError;
use super::field::{parse_continuation, parse_field_line};
pub use super::framing::BodyKind;
use super::framing::Framing;
use super::limits::{Limits, LineBound};
use super::request_line::{parse_request_line, scan_method};

/// RFC 9112 §2.2 lets a server skip at least one empty line before the
/// request line (clients sometimes send CRLF after a POST body); a few are
/// tolerated, an endless stream of them is not.
pub const MAX_LEADING_EMPTY_LINES: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Byte ranges index the buffer passed to the parser.
    pub method: Range<usize>,
    /// Raw request-target as sent.
    pub target: Range<usize>,
    /// 0 or 1 (HTTP/1.0 or HTTP/1.1).
    pub minor_version: u8,
    /// (name, value) in order of arrival; values have surrounding OWS trimmed.
    /// A value in `folded` replaces the one its range shows.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// (index into `headers`, whole value) for fields continued by obs-fold
    /// (only with `permit_obsolete_folding`): the lines' contents joined
    /// with single spaces, as gunicorn joins them. Empty otherwise.
    pub folded: Vec<(usize, Vec<u8>)>,
    /// Bytes of the head, leading empty lines and the final CRLFCRLF included.
    pub head_len: usize,
    pub body: BodyKind,
    /// HTTP/1.1: true unless `Connection: close`; HTTP/1.0: true only with
    /// `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
    /// `Connection: upgrade` plus an `Upgrade` field (informational).
    pub upgrade: bool,
}

impl RequestHead {
    pub fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.method.clone()]
    }

    pub fn target<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.target.clone()]
    }

    /// Header (name, value) byte slices in order of arrival.
    pub fn headers<'a>(&'a self, buf: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.headers
            .iter()
            .enumerate()
            .map(move |(i, (n, _))| (&buf[n.clone()], self.value(i, buf)))
    }

    /// The value of the `i`th header.
    pub fn value<'a>(&'a self, i: usize, buf: &'a [u8]) -> &'a [u8] {
        if !self.folded.is_empty() {
            if let Some((_, v)) = self.folded.iter().find(|(j, _)| *j == i) {
                return v;
            }
        }
        &buf[self.headers[i].1.clone()]
    }

    /// First value of the header called `name` (ASCII case-insensitive).
    pub fn header<'a>(&'a self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .position(|(n, _)| buf[n.clone()].eq_ignore_ascii_case(name))
            .map(|i| self.value(i, buf))
    }
}

/// Parses the request head at the start of `buf`.
///
/// `Ok(None)`: incomplete, call again with more bytes appended.
/// `Ok(Some(head))`: complete; the body (if any) starts at `head.head_len`.
/// `Err(e)`: answer with `e.status` and close the connection.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, HttpError> {
    HeadParser::new(limits).parse(buf)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    LeadingLines,
    RequestLine,
    Fields,
}

/// Resumable form of `parse_head`.
///
/// Feed it the same growing buffer on every call. After it returns a head
/// it starts over, expecting a buffer that begins with the next request
/// (the worker drains the consumed bytes). If the buffer is ever shorter
/// than what was already examined, it also starts over.
#[derive(Clone, Debug)]
pub struct HeadParser {
    limits: Limits,
    phase: Phase,
    /// Start of the line under examination.
    line_start: usize,
    /// Where the search for the current line's terminator resumes.
    scan: usize,
    leading_lines: usize,
    method: Range<usize>,
    target: Range<usize>,
    minor_version: u8,
    fields_start: usize,
    headers: Vec<(Range<usize>, Range<usize>)>,
    folded: Vec<(usize, Vec<u8>)>,
    /// How many of `headers` framing has seen. With obs-fold permitted a
    /// field is complete only once the next line does not continue it.
    framed: usize,
    /// Bytes (CRLFs included) of the field being continued by obs-fold.
    field_len: usize,
    framing: Framing,
    failed: Option<HttpError>,
}

impl HeadParser {
    pub fn new(limits: &Limits) -> Self {
        HeadParser {
            limits: limits.clone(),
            phase: Phase::LeadingLines,
            line_start: 0,
            scan: 0,
            leading_lines: 0,
            method: 0..0,
            target: 0..0,
            minor_version: 1,
            fields_start: 0,
            headers: Vec::new(),
            folded: Vec::new(),
            framed: 0,
            field_len: 0,
            framing: Framing::default(),
            failed: None,
        }
    }

    /// Forget all progress (and any error); the next buffer is a new request.
    pub fn reset(&mut self) {
        *self = HeadParser::new(&self.limits);
    }

    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if buf.len() < self.scan {
            self.reset();
        }
        match self.advance(buf) {
            Ok(Some(head)) => {
                self.reset();
                Ok(Some(head))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn advance(&mut self, buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        // The phases only ever move forward; each returns false while it
        // needs more bytes.
        if self.phase == Phase::LeadingLines && !self.skip_leading_lines(buf)? {
            return Ok(None);
        }
        if self.phase == Phase::RequestLine && !self.request_line(buf)? {
            return Ok(None);
        }
        self.fields(buf)
    }

    /// Skips the empty lines before the request line; true once the
    /// request line has begun.
    #[inline]
    fn skip_leading_lines(&mut self, buf: &[u8]) -> Result<bool, HttpError> {
        loop {
            match buf.get(self.line_start) {
                None => return Ok(false),
                Some(&CR) => match buf.get(self.line_start + 1) {
                    None => return Ok(false),
                    Some(&LF) => {
                        self.leading_lines += 1;
                        if self.leading_lines > MAX_LEADING_EMPTY_LINES {
                            return Err(HttpError::bad_request(format!(
                                "Too many empty lines before the request line (more than {MAX_LEADING_EMPTY_LINES})"
                            )));
                        }
                        self.line_start += 2;
                        self.scan = self.line_start;
                    }
                    Some(_) => return Err(bare_cr()),
                },
                Some(&LF) => return Err(bare_lf()),
                Some(_) => {
                    self.phase = Phase::RequestLine;
                    return Ok(true);
                }
            }
        }
    }

    /// True once the request line is parsed.
    #[inline]
    fn request_line(&mut self, buf: &[u8]) -> Result<bool, HttpError> {
        // The method verdict needs at most 21 bytes and comes first (see
        // `scan_method`); cheap enough to redo per call.
        if scan_method(&buf[self.line_start..], &self.limits.rules)?.is_none() {
            return Ok(false);
        }
        let max = self.limits.request_line_cap();
        let Some(end) = self.find_line_end(buf, max)? else {
            return Ok(false);
        };
        if end - self.line_start > max {
            return Err(self.limits.request_line_too_long());
        }
        let rl = parse_request_line(buf, self.line_start, end, &self.limits.rules)?;
        self.method = rl.method;
        self.target = rl.target;
        self.minor_version = rl.minor_version;
        self.next_line(end);
        self.fields_start = self.line_start;
        self.phase = Phase::Fields;
        Ok(true)
    }

    /// The header section, line by line: fields, obs-fold continuations,
    /// and the empty line that ends the head.
    #[inline]
    fn fields(&mut self, buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        loop {
            let Some(&first) = buf.get(self.line_start) else {
                return Ok(None);
            };
            let used = self.line_start - self.fields_start;
            self.limits.check_section_room(used)?;
            if first == CR {
                return match buf.get(self.line_start + 1) {
                    None => Ok(None),
                    Some(&LF) => {
                        self.frame_pending(buf)?;
                        self.finish(self.line_start + 2).map(Some)
                    }
                    Some(_) => Err(bare_cr()),
                };
            }
            if first == LF {
                return Err(bare_lf());
            }
            let folding = is_ows(first) && self.limits.rules.permit_obsolete_folding;
            self.check_line_start(buf, folding)?;
            let (max, bound) = self.limits.field_line_max(used);
            let Some(end) = self.find_line_end(buf, max)? else {
                return Ok(None);
            };
            if end - self.line_start > max {
                return Err(self.limits.field_line_too_long(bound));
            }
            let s = self.line_start;
            if folding {
                self.continue_field(buf, s, end)?;
            } else {
                self.add_field(buf, s, end)?;
            }
            self.next_line(end);
        }
    }

    /// What a field line's first byte already decides: a continuation
    /// needs a field to continue; a new field completes the one before it
    /// (with obs-fold) and must fit `limit_request_fields`.
    #[inline]
    fn check_line_start(&mut self, buf: &[u8], folding: bool) -> Result<(), HttpError> {
        if folding {
            if self.framed == self.headers.len() {
                // Nothing to continue: the first field line. The line may
                // be unfinished, so it is not quoted.
                return Err(HttpError::bad_request(
                    "Obsolete line folding is unacceptable: no field to continue",
                ));
            }
            return Ok(());
        }
        if self.limits.rules.permit_obsolete_folding {
            // The previous field is complete now.
            self.frame_pending(buf)?;
        }
        if self.headers.len() >= self.limits.fields_cap() {
            return Err(self.limits.too_many_fields());
        }
        Ok(())
    }

    /// Records the field line `buf[s..end]`; without obs-fold it is
    /// complete, so framing sees it at once.
    #[inline]
    fn add_field(&mut self, buf: &[u8], s: usize, end: usize) -> Result<(), HttpError> {
        let (n, v) = parse_field_line(&buf[s..end], &self.limits.rules)?;
        let (n, v) = (s + n.start..s + n.end, s + v.start..s + v.end);
        if self.headers.capacity() == 0 {
            // One allocation covers typical requests (~10-20 fields).
            self.headers.reserve(24);
        }
        if !self.limits.rules.permit_obsolete_folding {
            self.framing
                .on_field(&buf[n.clone()], &buf[v.clone()], self.minor_version)?;
            self.framed += 1;
        }
        self.headers.push((n, v));
        self.field_len = end - s + 2;
        Ok(())
    }

    /// Hands the fields not yet seen by framing to it (at most one, the
    /// last, when obs-fold is permitted; otherwise none is ever pending).
    fn frame_pending(&mut self, buf: &[u8]) -> Result<(), HttpError> {
        while self.framed < self.headers.len() {
            let i = self.framed;
            let name = &buf[self.headers[i].0.clone()];
            let value = match self.folded.last() {
                Some((j, v)) if *j == i => v.as_slice(),
                _ => &buf[self.headers[i].1.clone()],
            };
            self.framing.on_field(name, value, self.minor_version)?;
            self.framed += 1;
        }
        Ok(())
    }

    /// Appends the obs-fold line `buf[s..end]` to the last field's value,
    /// joined with one space as gunicorn does. The folded field as a whole
    /// is held to `limit_request_field_size`, as in gunicorn.
    fn continue_field(&mut self, buf: &[u8], s: usize, end: usize) -> Result<(), HttpError> {
        let part = parse_continuation(&buf[s..end])?;
        self.field_len += end - s + 2;
        if self.limits.field_size > 0 && self.field_len > self.limits.field_size {
            return Err(self.limits.field_line_too_long(LineBound::FieldSize));
        }
        let i = self.headers.len() - 1;
        if self.folded.last().map(|(j, _)| *j) != Some(i) {
            let first = buf[self.headers[i].1.clone()].to_vec();
            self.folded.push((i, first));
        }
        if let Some((_, v)) = self.folded.last_mut() {
            v.push(b' ');
            v.extend_from_slice(&buf[s + part.start..s + part.end]);
        }
        Ok(())
    }

    /// Locates the CRLF ending the current line and returns the offset of
    /// its CR. `Ok(None)` means more bytes are needed, unless the unfinished
    /// line is already longer than `max`: then the terminator's position
    /// cannot matter and `Some` of the current end is returned so the caller
    /// reports the length error exactly as it would for the finished line.
    fn find_line_end(&mut self, buf: &[u8], max: usize) -> Result<Option<usize>, HttpError> {
        match find_line_break(&buf[self.scan..]) {
            None => {
                self.scan = buf.len();
                if buf.len() - self.line_start > max {
                    Ok(Some(buf.len()))
                } else {
                    Ok(None)
                }
            }
            Some(i) => {
                let t = self.scan + i;
                self.scan = t;
                if t - self.line_start > max {
                    return Ok(Some(t));
                }
                if buf[t] == LF {
                    return Err(bare_lf());
                }
                match buf.get(t + 1) {
                    None => Ok(None),
                    Some(&LF) => Ok(Some(t)),
                    Some(_) => Err(bare_cr()),
                }
            }
        }
    }

    fn next_line(&mut self, cr: usize) {
        self.line_start = cr + 2;
        self.scan = self.line_start;
    }

    fn finish(&mut self, head_len: usize) -> Result<RequestHead, HttpError> {
        let outcome = self.framing.finish(self.minor_version)?;
        Ok(RequestHead {
            method: self.method.clone(),
            target: self.target.clone(),
            minor_version: self.minor_version,
            headers: std::mem::take(&mut self.headers),
            folded: std::mem::take(&mut self.folded),
            head_len,
            body: outcome.body,
            keep_alive: outcome.keep_alive,
            expect_continue: outcome.expect_continue,
            upgrade: outcome.upgrade,
        })
    }
}

pub(crate) fn bare_cr() -> HttpError {
    HttpError::bad_request("Invalid line ending: CR not followed by LF")
}

pub(crate) fn bare_lf() -> HttpError {
    HttpError::bad_request("Invalid line ending: LF without preceding CR")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> RequestHead {
        parse_head(buf, &Limits::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("incomplete")
    }

    fn error(buf: &[u8], limits: &Limits) -> HttpError {
        parse_head(buf, limits).expect_err("accepted")
    }

    #[test]
    fn simple_get_with_headers() {
        let buf = b"GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\nX-A:  b \r\n\r\nrest";
        let h = complete(buf);
        assert_eq!(h.method(buf), b"GET");
        assert_eq!(h.target(buf), b"/x?y=1");
        assert_eq!(h.minor_version, 1);
        let hs: Vec<_> = h.headers(buf).collect();
        assert_eq!(
            hs,
            vec![
                (&b"Host"[..], &b"example.com"[..]),
                (&b"X-A"[..], &b"b"[..])
            ]
        );
        assert_eq!(h.head_len, buf.len() - 4);
        assert_eq!(h.header(buf, b"host"), Some(&b"example.com"[..]));
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive);
    }

    #[test]
    fn every_proper_prefix_is_incomplete() {
        let buf = b"\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        for n in 0..buf.len() {
            assert_eq!(
                parse_head(&buf[..n], &Limits::default()),
                Ok(None),
                "prefix {n}"
            );
        }
        let h = complete(buf);
        assert_eq!(h.head_len, buf.len());
        assert_eq!(h.body, BodyKind::Length(3));
    }

    #[test]
    fn resumable_parser_matches_stateless_parse_byte_by_byte() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        let mut p = HeadParser::new(&Limits::default());
        for n in 0..buf.len() {
            assert_eq!(p.parse(&buf[..n]), Ok(None));
        }
        assert_eq!(p.parse(buf), parse_head(buf, &Limits::default()));
        // After a head the parser starts over on the next request.
        assert_eq!(p.parse(b"GET"), Ok(None));
        assert!(p.parse(b"GET /2 HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn resumable_parser_restarts_when_buffer_shrinks() {
        let mut p = HeadParser::new(&Limits::default());
        assert_eq!(p.parse(b"GET /looooooong HTTP/1.1\r\nA"), Ok(None));
        let h = p.parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.target, 4..5);
    }

    #[test]
    fn resumable_parser_keeps_reporting_its_error() {
        let mut p = HeadParser::new(&Limits::default());
        let e = p.parse(b"get / HTTP/1.1\r\n").unwrap_err();
        assert_eq!(
            p.parse(b"get / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err(),
            e
        );
    }

    #[test]
    fn leading_empty_lines_are_skipped_and_counted() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = complete(buf);
        assert_eq!(h.method, 4..7);
        assert_eq!(h.head_len, buf.len());
        let many = [
            &b"\r\n".repeat(MAX_LEADING_EMPTY_LINES + 1)[..],
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        .concat();
        assert_eq!(error(&many, &Limits::default()).status, 400);
        assert_eq!(
            error(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &Limits::default()).status,
            400
        );
    }

    #[test]
    fn request_line_limit_counts_line_without_crlf() {
        let limits = Limits::new(16, 100, 8190);
        let long = b"GET /23456789012 HTTP/1.1\r\nHost: a\r\n\r\n"; // 25 bytes
        assert_eq!(error(long, &limits).status, 414);
        let exact = b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"; // 15 bytes
        assert!(parse_head(exact, &limits).unwrap().is_some());
        let sixteen = b"GET /23 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(parse_head(sixteen, &limits).unwrap().is_some());
        let seventeen = b"GET /234 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(error(seventeen, &limits).status, 414);
    }

    #[test]
    fn unterminated_long_request_line_fails_without_waiting_for_crlf() {
        let limits = Limits::new(16, 100, 8190);
        assert_eq!(parse_head(b"GET /234 HTTP/1.", &limits), Ok(None)); // 16 bytes
        assert_eq!(error(b"GET /234 HTTP/1.1", &limits).status, 414);
        // A pending CR does not hide the overflow either.
        assert_eq!(error(b"GET /234 HTTP/1.1\r", &limits).status, 414);
    }

    #[test]
    fn zero_request_line_limit_is_unlimited() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(20_000));
        assert!(parse_head(long.as_bytes(), &Limits::new(0, 100, 8190))
            .unwrap()
            .is_some());
        assert_eq!(error(long.as_bytes(), &Limits::default()).status, 414);
    }

    #[test]
    fn field_count_limit() {
        let limits = Limits::new(4094, 2, 8190);
        assert!(
            parse_head(b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\n\r\n", &limits)
                .unwrap()
                .is_some()
        );
        let e = error(b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC", &limits);
        assert_eq!(e.status, 431);
    }

    #[test]
    fn field_size_limit_counts_crlf() {
        let limits = Limits::new(4094, 100, 10);
        // "A: 123456" is 9 bytes + CRLF = 11 > 10.
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nA: 123456\r\n\r\n", &limits).status,
            431
        );
        assert!(
            parse_head(b"GET / HTTP/1.1\r\nA: 12345\r\nHost: a\r\n\r\n", &limits)
                .unwrap()
                .is_some()
        );
        // Unfinished but already too long.
        assert_eq!(error(b"GET / HTTP/1.1\r\nA: 123456", &limits).status, 431);
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nA: 12345", &limits), Ok(None));
    }

    #[test]
    fn unlimited_field_size_is_bounded_by_section() {
        let limits = Limits::new(4094, 1, 0);
        let cap = limits.section_cap();
        let mut buf = b"GET / HTTP/1.1\r\nA: ".to_vec();
        buf.resize(16 + cap, b'a');
        let e = error(&buf, &limits);
        assert_eq!(e.status, 431);
        assert!(e.detail.contains("section"), "{}", e.detail);
    }

    #[test]
    fn bare_cr_and_bare_lf_are_rejected_anywhere() {
        let l = Limits::default();
        for buf in [
            &b"GET / HTTP/1.1\n\r\n"[..],
            b"GET / HTTP/1.1\r\nA: b\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n\n",
            b"GET / HTTP/1.1\rX\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
            b"GET / HTTP/1.1\r\n\rX",
            b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            let e = error(buf, &l);
            assert_eq!(e.status, 400, "{buf:?}");
            assert!(
                e.detail.starts_with("Invalid line ending"),
                "{buf:?}: {}",
                e.detail
            );
        }
    }

    #[test]
    fn obs_fold_is_rejected_even_on_first_field_line() {
        let l = Limits::default();
        assert_eq!(error(b"GET / HTTP/1.1\r\n X: y\r\n\r\n", &l).status, 400);
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nX: y\r\n\tz\r\n\r\n", &l).status,
            400
        );
    }

    #[test]
    fn garbage_is_rejected_before_a_line_ends() {
        // A TLS ClientHello on a plain-HTTP port.
        let e = error(b"\x16\x03\x01\x02\x00\x01", &Limits::default());
        assert_eq!(e.status, 400);
        assert!(e.detail.starts_with("Invalid HTTP method"), "{}", e.detail);
        assert_eq!(error(b"get", &Limits::default()).status, 400);
    }

    #[test]
    fn connect_and_absolute_targets() {
        let buf = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
        assert_eq!(complete(buf).target(buf), b"example.com:443");
        let buf = b"GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(complete(buf).target(buf), b"http://example.com/a");
    }

    fn loose(rules: crate::http::Rules) -> Limits {
        Limits::default().with_rules(rules)
    }

    #[test]
    fn http11_without_host_is_refused_at_the_end_of_its_head() {
        let e = error(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            &Limits::default(),
        );
        assert_eq!((e.status, e.detail.as_str()), (400, "Missing Host header"));
        assert!(parse_head(b"GET / HTTP/1.0\r\n\r\n", &Limits::default())
            .unwrap()
            .is_some());
        let e = error(
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            &Limits::default(),
        );
        assert_eq!(e.detail, "Duplicate Host header");
    }

    #[test]
    fn obs_fold_is_joined_with_single_spaces_when_permitted() {
        let limits = loose(crate::http::Rules {
            permit_obsolete_folding: true,
            ..Default::default()
        });
        let buf = b"GET / HTTP/1.1\r\nX: a \r\n \t b\r\n\tc \r\nHost: h\r\n\r\n";
        let h = parse_head(buf, &limits).unwrap().unwrap();
        let hs: Vec<_> = h.headers(buf).collect();
        assert_eq!(
            hs,
            vec![(&b"X"[..], &b"a b c"[..]), (&b"Host"[..], &b"h"[..])]
        );
        assert_eq!(h.header(buf, b"x"), Some(&b"a b c"[..]));
        assert_eq!(h.head_len, buf.len());
        // The folded value is what framing sees.
        let buf = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n";
        assert_eq!(parse_head(buf, &limits).unwrap_err().status, 501);
        let buf = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n 2\r\n\r\n";
        assert_eq!(parse_head(buf, &limits).unwrap_err().status, 400);
        // Nothing to continue; still refused without the switch.
        assert_eq!(
            error(b"GET / HTTP/1.1\r\n X: y\r\n\r\n", &limits).status,
            400
        );
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nX: y\r\n z\r\n\r\n", &Limits::default()).status,
            400
        );
        // The folded field as a whole obeys limit_request_field_size.
        let mut small = limits.clone();
        small.field_size = 12;
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nX: abc\r\n defgh\r\n\r\n", &small).status,
            431
        );
    }

    #[test]
    fn strip_header_spaces_reads_name_before_the_spaces() {
        let limits = loose(crate::http::Rules {
            strip_header_spaces: true,
            ..Default::default()
        });
        let buf = b"POST / HTTP/1.1\r\nHost : h\r\nContent-Length\t: 2\r\n\r\nab";
        let h = parse_head(buf, &limits).unwrap().unwrap();
        assert_eq!(h.header(buf, b"host"), Some(&b"h"[..]));
        assert_eq!(h.body, BodyKind::Length(2));
        assert_eq!(error(buf, &Limits::default()).status, 400);
    }
}
