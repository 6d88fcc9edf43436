//! Incremental decoder for the chunked transfer coding (RFC 9112 §7.1).
//!
//! A byte-level state machine: it keeps no input between calls except the
//! current trailer line, so it behaves identically however the body is split
//! across reads, down to one byte at a time.

use super::chars::{hex_val, is_field_byte, is_ows, CR, LF};
use super::error::{show, HttpError};
use super::field::{parse_continuation, parse_field_line};
use super::head::{bare_cr, bare_lf};
use super::limits::Limits;

/// 16 hex digits already cover u64::MAX; more can only be padding games.
const MAX_SIZE_DIGITS: u8 = 16;
/// Bound on chunk-size line extensions, which are ignored anyway.
pub const MAX_CHUNK_EXTENSIONS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    Size,
    /// Whitespace after the size; only `;` may follow (RFC 9112 BWS).
    SizeWhitespace,
    Extensions,
    /// CR of the chunk-size line seen.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerLine,
    TrailerLf,
    /// CR of the empty line ending the trailer section seen.
    FinalLf,
    Done,
}

#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    limits: Limits,
    state: State,
    size: u64,
    digits: u8,
    ext_len: usize,
    remaining: u64,
    trailer_count: usize,
    trailer_used: usize,
    trailer_line: Vec<u8>,
    failed: Option<HttpError>,
}

impl ChunkedDecoder {
    /// Trailer fields obey the same count and size limits as header fields.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            limits: limits.clone(),
            state: State::SizeStart,
            size: 0,
            digits: 0,
            ext_len: 0,
            remaining: 0,
            trailer_count: 0,
            trailer_used: 0,
            trailer_line: Vec::new(),
            failed: None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending body bytes to `out`.
    ///
    /// Returns (bytes of `input` consumed, finished). Once finished, the
    /// bytes after the final CRLF are left unconsumed: they belong to the
    /// next pipelined request. After an error every call repeats it.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HttpError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.run(input, out) {
            Ok(n) => Ok((n, self.is_done())),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Data => {
                    let avail = input.len() - i;
                    let n = usize::try_from(self.remaining).map_or(avail, |r| r.min(avail));
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::TrailerLineStart => {
                    // Same order as header lines: section room, end of
                    // section, count, then (in TrailerLine) length and content.
                    self.limits.check_section_room(self.trailer_used)?;
                    match input[i] {
                        CR => {
                            self.state = State::FinalLf;
                            i += 1;
                        }
                        LF => return Err(bare_lf()),
                        b => {
                            let continues = is_ows(b)
                                && self.limits.rules.permit_obsolete_folding
                                && self.trailer_count > 0;
                            if !continues && self.trailer_count >= self.limits.fields_cap() {
                                return Err(self.limits.too_many_fields());
                            }
                            self.state = State::TrailerLine;
                        }
                    }
                }
                State::TrailerLine => {
                    let rest = &input[i..];
                    let stop = rest.iter().position(|&b| b == CR || b == LF);
                    let take = stop.unwrap_or(rest.len());
                    let (max, bound) = self.limits.field_line_max(self.trailer_used);
                    if self.trailer_line.len() + take > max {
                        return Err(self.limits.field_line_too_long(bound));
                    }
                    self.trailer_line.extend_from_slice(&rest[..take]);
                    i += take;
                    if stop.is_some() {
                        if input[i] == LF {
                            return Err(bare_lf());
                        }
                        self.state = State::TrailerLf;
                        i += 1;
                    }
                }
                _ => {
                    self.step(input[i])?;
                    i += 1;
                }
            }
        }
        Ok(i)
    }

    /// Advances over one byte in the states that are handled bytewise.
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        match self.state {
            State::SizeStart => {
                let v = hex_val(b).ok_or_else(|| invalid_size(b))?;
                self.size = u64::from(v);
                self.digits = 1;
                self.ext_len = 0;
                self.state = State::Size;
            }
            State::Size => self.size_byte(b)?,
            State::SizeWhitespace => match b {
                b' ' | b'\t' => self.count_extension_byte()?,
                b';' => self.state = State::Extensions,
                _ => return Err(invalid_size(b)),
            },
            State::Extensions => match b {
                CR => self.state = State::SizeLf,
                _ if is_field_byte(b) => self.count_extension_byte()?,
                LF => return Err(bare_lf()),
                _ => {
                    return Err(HttpError::bad_request(format!(
                        "Invalid byte {b:#04x} in chunk extension"
                    )))
                }
            },
            State::SizeLf => {
                if b != LF {
                    return Err(bare_cr());
                }
                self.start_chunk();
            }
            State::DataCr => {
                if b != CR {
                    return Err(missing_terminator(b));
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != LF {
                    return Err(missing_terminator(b));
                }
                self.state = State::SizeStart;
            }
            State::TrailerLf => {
                if b != LF {
                    return Err(bare_cr());
                }
                self.end_trailer_line()?;
            }
            State::FinalLf => {
                if b != LF {
                    return Err(bare_cr());
                }
                self.state = State::Done;
            }
            State::Data | State::TrailerLineStart | State::TrailerLine | State::Done => {
                unreachable!("state {:?} is handled in run()", self.state)
            }
        }
        Ok(())
    }

    /// A byte after the first of a chunk size: another hex digit, or what
    /// ends the size (whitespace, `;` or the line's CR).
    #[inline]
    fn size_byte(&mut self, b: u8) -> Result<(), HttpError> {
        if let Some(v) = hex_val(b) {
            self.digits += 1;
            if self.digits > MAX_SIZE_DIGITS {
                return Err(HttpError::bad_request(format!(
                    "Invalid chunk size: more than {MAX_SIZE_DIGITS} hex digits"
                )));
            }
            self.size = (self.size << 4) | u64::from(v);
            return Ok(());
        }
        match b {
            b' ' | b'\t' => {
                self.count_extension_byte()?;
                self.state = State::SizeWhitespace;
            }
            b';' => self.state = State::Extensions,
            CR => self.state = State::SizeLf,
            _ => return Err(invalid_size(b)),
        }
        Ok(())
    }

    /// The chunk-size line is complete: its data follows, or, after the
    /// last chunk (size 0), the trailer section.
    #[inline]
    fn start_chunk(&mut self) {
        if self.size == 0 {
            self.trailer_count = 0;
            self.trailer_used = 0;
            self.state = State::TrailerLineStart;
        } else {
            self.remaining = self.size;
            self.state = State::Data;
        }
    }

    /// Checks the trailer line just ended (a field, or with obs-fold a
    /// continuation of the previous one) and counts it against the limits.
    fn end_trailer_line(&mut self) -> Result<(), HttpError> {
        let line = &self.trailer_line;
        if line.first().is_some_and(|&b| is_ows(b))
            && self.limits.rules.permit_obsolete_folding
            && self.trailer_count > 0
        {
            parse_continuation(line)?;
        } else {
            let (name, _) = parse_field_line(line, &self.limits.rules)?;
            let name = &line[name];
            if forbidden_in_trailer(name) {
                return Err(HttpError::bad_request(format!(
                    "Header {} is not allowed in a trailer section",
                    show(name)
                )));
            }
            self.trailer_count += 1;
        }
        self.trailer_used += self.trailer_line.len() + 2;
        self.trailer_line.clear();
        self.state = State::TrailerLineStart;
        Ok(())
    }

    fn count_extension_byte(&mut self) -> Result<(), HttpError> {
        self.ext_len += 1;
        if self.ext_len > MAX_CHUNK_EXTENSIONS {
            return Err(HttpError::bad_request(format!(
                "Chunk extensions too long (more than {MAX_CHUNK_EXTENSIONS} bytes)"
            )));
        }
        Ok(())
    }
}

/// RFC 9110 §6.5.1: fields a recipient must have before the content, so
/// that a trailer carrying them could only contradict the header section
/// or be acted on too late: framing (Content-Length, Transfer-Encoding,
/// Trailer), routing (Host), connection control (Connection, Keep-Alive,
/// Upgrade, TE), request modifiers (Expect, Max-Forwards, Cache-Control,
/// Pragma, Range and the conditionals), authentication (Authorization,
/// Proxy-Authorization, Cookie) and the content's format (Content-Type,
/// Content-Encoding, Content-Range). gunicorn refuses six of them (Host,
/// Content-Length, Transfer-Encoding, Trailer, Authorization, TE); the
/// rest are refused for the same reason.
fn forbidden_in_trailer(name: &[u8]) -> bool {
    const FORBIDDEN: &[&[u8]] = &[
        b"content-length",
        b"transfer-encoding",
        b"trailer",
        b"host",
        b"connection",
        b"keep-alive",
        b"upgrade",
        b"te",
        b"expect",
        b"max-forwards",
        b"cache-control",
        b"pragma",
        b"range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        b"authorization",
        b"proxy-authorization",
        b"cookie",
        b"content-type",
        b"content-encoding",
        b"content-range",
    ];
    FORBIDDEN.iter().any(|f| name.eq_ignore_ascii_case(f))
}

fn missing_terminator(b: u8) -> HttpError {
    HttpError::bad_request(format!(
        "Missing chunk terminator: expected CRLF after chunk data, got {}",
        show(&[b])
    ))
}

fn invalid_size(b: u8) -> HttpError {
    HttpError::bad_request(format!(
        "Invalid chunk size: unexpected byte {}",
        show(&[b])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes, the way the worker
    /// would: unconsumed bytes stay in the buffer and are offered again.
    fn decode_in_steps(
        input: &[u8],
        step: usize,
        limits: &Limits,
    ) -> Result<(Vec<u8>, usize), HttpError> {
        let mut dec = ChunkedDecoder::new(limits);
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut consumed_total = 0;
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            let (n, done) = dec.decode(&buf, &mut out)?;
            buf.drain(..n);
            consumed_total += n;
            if done {
                assert!(dec.is_done());
                return Ok((out, consumed_total));
            }
        }
        Err(HttpError::bad_request("incomplete"))
    }

    fn decode_all_ways(input: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        let limits = Limits::default();
        let whole = decode_in_steps(input, input.len(), &limits);
        for step in 1..8 {
            assert_eq!(decode_in_steps(input, step, &limits), whole, "step {step}");
        }
        whole
    }

    fn ok(input: &[u8]) -> Vec<u8> {
        decode_all_ways(input).unwrap_or_else(|e| panic!("{e}")).0
    }

    fn err(input: &[u8]) -> HttpError {
        decode_all_ways(input).expect_err("accepted")
    }

    #[test]
    fn decodes_chunks_and_stops_at_the_final_crlf() {
        let input = b"5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nGET / HTTP/1.1";
        let (body, consumed) = decode_all_ways(input).unwrap();
        assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz");
        assert_eq!(&input[consumed..], b"GET / HTTP/1.1");
    }

    #[test]
    fn upper_and_lower_case_hex_and_leading_zeros() {
        assert_eq!(ok(b"0A\r\n0123456789\r\n000\r\n\r\n"), b"0123456789");
        assert_eq!(ok(b"a\r\n0123456789\r\n0\r\n\r\n"), b"0123456789");
    }

    #[test]
    fn extensions_are_ignored() {
        assert_eq!(
            ok(b"3;name=value;x=\"q s\"\r\nabc\r\n0;last\r\n\r\n"),
            b"abc"
        );
        assert_eq!(ok(b"3 ;a\r\nabc\r\n0\t;b\r\n\r\n"), b"abc");
    }

    #[test]
    fn trailers_are_validated_and_discarded() {
        assert_eq!(ok(b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n"), b"abc");
        assert_eq!(err(b"0\r\nBad Name: x\r\n\r\n").status, 400);
        assert_eq!(err(b"0\r\n folded\r\n\r\n").status, 400);
        assert_eq!(err(b"0\r\nX: a\x01b\r\n\r\n").status, 400);
        assert_eq!(err(b"0\r\nX: a\n\r\n").status, 400);
        assert_eq!(err(b"0\r\nX: a\rb\r\n\r\n").status, 400);
    }

    #[test]
    fn framing_routing_and_authentication_fields_are_refused_in_trailers() {
        for name in [
            "Content-Length",
            "transfer-encoding",
            "Host",
            "Trailer",
            "TE",
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "Content-Type",
            "Expect",
            "Connection",
        ] {
            let input = format!("3\r\nabc\r\n0\r\nX-Ok: 1\r\n{name}: 5\r\n\r\n");
            let e = err(input.as_bytes());
            assert_eq!(e.status, 400, "{name}");
            assert!(e.detail.contains("trailer section"), "{name}: {}", e.detail);
        }
        assert_eq!(
            ok(b"0\r\nX-Content-Length: 5\r\nServer-Timing: a\r\n\r\n"),
            b""
        );
    }

    #[test]
    fn trailer_folding_and_spaces_follow_the_switches() {
        let loose = Limits::default().with_rules(crate::http::Rules {
            permit_obsolete_folding: true,
            strip_header_spaces: true,
            ..Default::default()
        });
        let run = |input: &[u8], limits: &Limits| {
            let whole = decode_in_steps(input, input.len(), limits);
            assert_eq!(decode_in_steps(input, 1, limits), whole);
            whole.map(|(body, _)| body)
        };
        let folded = b"1\r\na\r\n0\r\nX: 1\r\n 2\r\nY : 3\r\n\r\n";
        assert_eq!(run(folded, &Limits::default()).unwrap_err().status, 400);
        assert_eq!(run(folded, &loose).unwrap(), b"a");
        // Still refused: a fold with nothing to continue, a forbidden name
        // behind spaces, control bytes in a continuation.
        assert!(run(b"0\r\n x\r\n\r\n", &loose).is_err());
        assert!(run(b"0\r\nHost : x\r\n\r\n", &loose).is_err());
        assert!(run(b"0\r\nX: 1\r\n a\x01\r\n\r\n", &loose).is_err());
    }

    #[test]
    fn trailers_obey_field_limits() {
        let limits = Limits::new(4094, 1, 10);
        let run = |input: &[u8]| {
            let whole = decode_in_steps(input, input.len(), &limits);
            assert_eq!(decode_in_steps(input, 1, &limits), whole);
            whole
        };
        assert!(run(b"0\r\nA: 12345\r\n\r\n").is_ok());
        assert_eq!(run(b"0\r\nA: 123456\r\n\r\n").unwrap_err().status, 431);
        assert_eq!(run(b"0\r\nA: 1\r\nB: 2\r\n\r\n").unwrap_err().status, 431);
    }

    #[test]
    fn malformed_chunk_sizes_are_rejected() {
        for input in [
            &b"\r\n"[..],
            b"x\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5 5\r\n",
            b"5\n",
            b"5\rhello",
            b"11111111111111111\r\n",
        ] {
            let e = err(input);
            assert_eq!(e.status, 400, "{input:?}");
        }
        assert!(err(b"g\r\n").detail.contains("Invalid chunk size"));
    }

    #[test]
    fn sixteen_hex_digits_are_accepted() {
        let mut dec = ChunkedDecoder::new(&Limits::default());
        let mut out = Vec::new();
        assert_eq!(
            dec.decode(b"ffffffffffffffff\r\nab", &mut out),
            Ok((20, false))
        );
        assert_eq!(out, b"ab");
    }

    #[test]
    fn control_bytes_in_extensions_are_rejected() {
        assert_eq!(err(b"3;a\x00\r\nabc\r\n0\r\n\r\n").status, 400);
        assert_eq!(err(b"3;a\nabc\r\n0\r\n\r\n").status, 400);
        assert_eq!(err(b"3;a\rb\r\nabc\r\n0\r\n\r\n").status, 400);
        let long = [&b"1;"[..], &[b'a'; MAX_CHUNK_EXTENSIONS + 1], b"\r\n"].concat();
        assert_eq!(err(&long).status, 400);
    }

    #[test]
    fn chunk_data_must_be_followed_by_crlf() {
        for input in [
            &b"3\r\nabcd\r\n0\r\n\r\n"[..],
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabc\rX0\r\n\r\n",
            b"3\r\nabc0\r\n\r\n",
        ] {
            let e = err(input);
            assert!(
                e.detail.contains("Missing chunk terminator"),
                "{input:?}: {}",
                e.detail
            );
        }
    }

    #[test]
    fn final_crlf_must_be_exact() {
        assert_eq!(err(b"0\r\n\rX").status, 400);
        assert_eq!(err(b"0\r\n\n").status, 400);
    }

    #[test]
    fn errors_are_sticky_and_done_consumes_nothing_more() {
        let mut dec = ChunkedDecoder::new(&Limits::default());
        let mut out = Vec::new();
        let e = dec.decode(b"z", &mut out).unwrap_err();
        assert_eq!(dec.decode(b"0\r\n\r\n", &mut out), Err(e));

        let mut dec = ChunkedDecoder::new(&Limits::default());
        assert_eq!(dec.decode(b"0\r\n\r\nXYZ", &mut out), Ok((5, true)));
        assert_eq!(dec.decode(b"XYZ", &mut out), Ok((0, true)));
    }
}
