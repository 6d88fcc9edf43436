//! Property tests for the HTTP parser (proptest, stable Rust).
//!
//! - For arbitrary bytes, the head parser and the chunked decoder never
//!   panic and always return (Rust's bounds checks turn any read past the
//!   input into a panic), and what they report lies inside their input.
//! - Any split of the input into reads parses exactly as the whole.
//! - Generated valid requests parse to what generated them, under every
//!   combination of gunicorn's parser switches (they only loosen).
//! - Generated smuggling shapes are always rejected: Content-Length beside
//!   Transfer-Encoding, repeated Content-Length, malformed chunk sizes, a
//!   bare CR or LF anywhere in a head.
//!
//! The case count is bounded (`PROPTEST_CASES` raises it) and the seed is
//! fixed (`PROPTEST_RNG_SEED` picks another), so a run is repeatable and
//! quick. A failure found here is kept as a file in `tests/corpus/`.

use ferricorn::http::{
    parse_head, BodyKind, ChunkedDecoder, HeadParser, HttpError, Limits, RequestHead, Rules,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(cases: u32) -> Config {
    let mut c = Config::with_cases(
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
    );
    // Failures become corpus files, not proptest's own regression files.
    c.failure_persistence = None;
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x000f_e221_c021);
    }
    c
}

fn rules() -> impl Strategy<Value = Rules> {
    any::<[bool; 4]>().prop_map(|b| Rules {
        permit_obsolete_folding: b[0],
        strip_header_spaces: b[1],
        permit_unconventional_http_method: b[2],
        permit_unconventional_http_version: b[3],
    })
}

/// gunicorn's default limits, or small ones so that limits are hit too.
fn limits() -> impl Strategy<Value = Limits> {
    (
        prop_oneof![Just(4094usize), 0..80usize],
        prop_oneof![Just(100usize), 0..6usize],
        prop_oneof![Just(8190usize), 0..48usize],
        rules(),
    )
        .prop_map(|(line, fields, size, rules)| Limits::new(line, fields, size).with_rules(rules))
}

/// Bytes that look enough like HTTP to get past the first checks: pieces
/// of requests, line ends, separators and noise, in any order.
fn http_ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"GET ".to_vec()),
        Just(b"POST /p HTTP/1.1\r\n".to_vec()),
        Just(b"/x?y=1".to_vec()),
        Just(b" HTTP/1.1".to_vec()),
        Just(b" HTTP/1.0".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b":".to_vec()),
        Just(b"Host: a\r\n".to_vec()),
        Just(b"Content-Length: 3\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Transfer-Encoding: identity, chunked\r\n".to_vec()),
        Just(b"Content-Type: a/b\r\n".to_vec()),
        Just(b"X_Y: z\r\n".to_vec()),
        Just(b" folded\r\n".to_vec()),
        Just(b"Name : v\r\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..300), http_ish()]
}

/// Read sizes for splitting an input: cycled until the input is used up.
fn splits() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..40usize, 1..12)
}

fn pieces<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
        i += 1;
    }
    out
}

/// Everything a head reports lies inside the bytes it was parsed from.
fn assert_inside(h: &RequestHead, len: usize) {
    assert!(h.head_len <= len, "head_len {} > input {len}", h.head_len);
    let inside = |r: &std::ops::Range<usize>| r.start <= r.end && r.end <= h.head_len;
    assert!(inside(&h.method) && !h.method.is_empty());
    assert!(inside(&h.target) && !h.target.is_empty());
    assert!(h.minor_version <= 1);
    for (n, v) in &h.headers {
        assert!(inside(n) && !n.is_empty() && inside(v));
    }
    for (i, _) in &h.folded {
        assert!(*i < h.headers.len());
    }
}

fn assert_error_status(e: &HttpError) {
    assert!(
        [400, 413, 414, 431, 501, 505].contains(&e.status),
        "unexpected status {e}"
    );
}

/// Feeds `input` to a resumable parser the way the worker does (a growing
/// buffer, one read at a time) and checks every answer against a parse
/// from scratch of the same bytes; returns the answer for the whole input.
fn parse_in_pieces(
    input: &[u8],
    sizes: &[usize],
    limits: &Limits,
) -> Result<Option<RequestHead>, HttpError> {
    let mut p = HeadParser::new(limits);
    let mut buf = Vec::new();
    let mut last = Ok(None);
    for piece in pieces(input, sizes) {
        buf.extend_from_slice(piece);
        let resumable = p.parse(&buf);
        assert_eq!(
            resumable,
            parse_head(&buf, limits),
            "at {} bytes",
            buf.len()
        );
        last = resumable;
        if !matches!(last, Ok(None)) {
            // Complete or failed: later bytes cannot change the answer.
            break;
        }
    }
    last
}

/// Decodes a chunked body fed in pieces, dropping consumed bytes as the
/// worker does; returns (body, bytes consumed, done) or the error.
fn decode_in_pieces(
    input: &[u8],
    sizes: &[usize],
    limits: &Limits,
) -> Result<(Vec<u8>, usize, bool), HttpError> {
    let mut dec = ChunkedDecoder::new(limits);
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut consumed = 0;
    for piece in pieces(input, sizes) {
        buf.extend_from_slice(piece);
        let before = out.len();
        let (n, done) = dec.decode(&buf, &mut out)?;
        assert!(n <= buf.len(), "consumed {n} of {}", buf.len());
        assert!(out.len() - before <= n, "more body than input");
        buf.drain(..n);
        consumed += n;
        if done {
            return Ok((out, consumed, true));
        }
    }
    Ok((out, consumed, false))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn head_parser_on_arbitrary_bytes_returns_inside_its_input(
        input in any_input(),
        limits in limits(),
        sizes in splits(),
    ) {
        let whole = parse_head(&input, &limits);
        match &whole {
            Ok(Some(h)) => assert_inside(h, input.len()),
            Ok(None) => {}
            Err(e) => assert_error_status(e),
        }
        // Any split gives the same answer as the whole.
        prop_assert_eq!(parse_in_pieces(&input, &sizes, &limits), whole.clone());
        prop_assert_eq!(parse_in_pieces(&input, &[1], &limits), whole);
    }

    #[test]
    fn chunked_decoder_on_arbitrary_bytes_returns_inside_its_input(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            chunked_ish(),
        ],
        limits in limits(),
        sizes in splits(),
    ) {
        let mut dec = ChunkedDecoder::new(&limits);
        let mut out = Vec::new();
        let whole = dec.decode(&input, &mut out).map(|(n, done)| {
            assert!(n <= input.len());
            assert!(out.len() <= n);
            if !done {
                assert_eq!(n, input.len(), "an unfinished decoder consumes everything");
            }
            (out.clone(), n, done)
        });
        if let Err(e) = &whole {
            assert_error_status(e);
        }
        prop_assert_eq!(decode_in_pieces(&input, &sizes, &limits), whole.clone());
        prop_assert_eq!(decode_in_pieces(&input, &[1], &limits), whole);
    }
}

/// Chunk-size lines, data, trailers and line ends in any order.
fn chunked_ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"5\r\nhello\r\n".to_vec()),
        Just(b"0\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        Just(b"a;ext=1\r\n".to_vec()),
        Just(b"ffffffffffffffff\r\n".to_vec()),
        Just(b"X-T: 1\r\n".to_vec()),
        Just(b"Host: evil\r\n".to_vec()),
        Just(b" fold\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        prop::collection::vec(any::<u8>(), 1..6),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

// ---------------------------------------------------------------------------
// Generated valid requests.

#[derive(Clone, Debug)]
enum Body {
    None,
    Length(Vec<u8>),
    Chunked(Vec<Vec<u8>>),
}

#[derive(Clone, Debug)]
struct Generated {
    leading_empty_lines: usize,
    method: String,
    target: String,
    minor: u8,
    /// (name, value, OWS before the value, OWS after it)
    fields: Vec<(String, Vec<u8>, String, String)>,
    body: Body,
    /// Chunked framing details: upper-case hex, leading zeros, extensions.
    chunk_style: (bool, usize, bool),
}

/// Field names the generator leaves to the smuggling tests: they change
/// framing or may not repeat.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "content-type",
    "connection",
    "expect",
    "upgrade",
];

fn field() -> impl Strategy<Value = (String, Vec<u8>, String, String)> {
    let name = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,24}".prop_filter("reserved name", |n| {
        !RESERVED.contains(&n.to_ascii_lowercase().as_str())
    });
    let byte = prop_oneof![0x21u8..=0x7e, 0x80u8..=0xff, Just(b' '), Just(b'\t')];
    let value = prop::collection::vec(byte, 0..40).prop_map(|mut v| {
        while v.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            v.remove(0);
        }
        while v.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
            v.pop();
        }
        v
    });
    (name, value, "[ \t]{0,3}", "[ \t]{0,3}")
}

fn generated() -> impl Strategy<Value = Generated> {
    let method = prop_oneof![
        Just("GET".to_string()),
        Just("POST".to_string()),
        Just("PUT".to_string()),
        Just("DELETE".to_string()),
        Just("OPTIONS".to_string()),
        Just("M-SEARCH".to_string()),
        "[A-Z0-9!$%&'*+._`|~^-]{3,20}",
    ];
    let target = prop_oneof![
        "/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,40}(\\?[A-Za-z0-9=&%/?]{0,20})?",
        "https?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[a-z0-9/]{0,20})?(\\?[a-z=&]{0,10})?",
    ];
    let body = prop_oneof![
        Just(Body::None),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Length),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..5)
            .prop_map(Body::Chunked),
    ];
    (
        0..=4usize,
        method,
        target,
        0..=1u8,
        prop::collection::vec(field(), 0..12),
        0..=12usize,
        body,
        (any::<bool>(), 0..3usize, any::<bool>()),
    )
        .prop_map(
            |(leading, method, target, minor, mut fields, host_at, body, chunk_style)| {
                let body = match (minor, body) {
                    // Chunked framing is refused on HTTP/1.0.
                    (0, Body::Chunked(_)) => Body::None,
                    (_, b) => b,
                };
                if minor == 1 {
                    let at = host_at.min(fields.len());
                    fields.insert(
                        at,
                        (
                            "Host".into(),
                            b"example.com:8080".to_vec(),
                            " ".into(),
                            String::new(),
                        ),
                    );
                }
                Generated {
                    leading_empty_lines: leading,
                    method,
                    target,
                    minor,
                    fields,
                    body,
                    chunk_style,
                }
            },
        )
}

impl Generated {
    /// The head's bytes and the body's bytes (as framed on the wire).
    fn serialize(&self) -> (Vec<u8>, Vec<u8>) {
        let mut head = b"\r\n".repeat(self.leading_empty_lines);
        head.extend_from_slice(
            format!("{} {} HTTP/1.{}\r\n", self.method, self.target, self.minor).as_bytes(),
        );
        for (n, v, pre, post) in &self.fields {
            head.extend_from_slice(n.as_bytes());
            head.push(b':');
            head.extend_from_slice(pre.as_bytes());
            head.extend_from_slice(v);
            head.extend_from_slice(post.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        let mut body = Vec::new();
        match &self.body {
            Body::None => {}
            Body::Length(b) => {
                head.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
                body.extend_from_slice(b);
            }
            Body::Chunked(chunks) => {
                head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                let (upper, zeros, ext) = self.chunk_style;
                for c in chunks {
                    let size = if upper {
                        format!("{}{:X}", "0".repeat(zeros), c.len())
                    } else {
                        format!("{}{:x}", "0".repeat(zeros), c.len())
                    };
                    body.extend_from_slice(size.as_bytes());
                    if ext {
                        body.extend_from_slice(b";name=\"v a\"");
                    }
                    body.extend_from_slice(b"\r\n");
                    body.extend_from_slice(c);
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
            }
        }
        head.extend_from_slice(b"\r\n");
        (head, body)
    }

    fn expected_fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut f: Vec<_> = self
            .fields
            .iter()
            .map(|(n, v, _, _)| (n.as_bytes().to_vec(), v.clone()))
            .collect();
        match &self.body {
            Body::None => {}
            Body::Length(b) => f.push((b"Content-Length".to_vec(), b.len().to_string().into())),
            Body::Chunked(_) => f.push((b"Transfer-Encoding".to_vec(), b"chunked".to_vec())),
        }
        f
    }
}

/// The next pipelined request, to check nothing of it is consumed.
const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n";

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn generated_valid_requests_parse_to_what_generated_them(
        g in generated(),
        rules in rules(),
        sizes in splits(),
    ) {
        let limits = Limits::default().with_rules(rules);
        let (head, body) = g.serialize();
        let mut input = head.clone();
        input.extend_from_slice(&body);
        input.extend_from_slice(NEXT);

        let h = parse_in_pieces(&input, &sizes, &limits)
            .unwrap_or_else(|e| panic!("{e} for {:?}", input.escape_ascii().to_string()))
            .expect("complete");
        prop_assert_eq!(h.head_len, head.len());
        prop_assert_eq!(h.method(&input), g.method.as_bytes());
        prop_assert_eq!(h.target(&input), g.target.as_bytes());
        prop_assert_eq!(h.minor_version, g.minor);
        let fields: Vec<(Vec<u8>, Vec<u8>)> =
            h.headers(&input).map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(fields, g.expected_fields());
        prop_assert_eq!(h.keep_alive, g.minor == 1);

        let rest = &input[h.head_len..];
        match &g.body {
            Body::None => prop_assert_eq!(h.body, BodyKind::None),
            Body::Length(b) => prop_assert_eq!(h.body, BodyKind::Length(b.len() as u64)),
            Body::Chunked(chunks) => {
                prop_assert_eq!(h.body, BodyKind::Chunked);
                let (out, consumed, done) = decode_in_pieces(rest, &sizes, &limits)
                    .unwrap_or_else(|e| panic!("{e}"));
                prop_assert!(done);
                prop_assert_eq!(out, chunks.concat());
                prop_assert_eq!(consumed, body.len());
                prop_assert_eq!(&rest[consumed..], NEXT);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Smuggling shapes.

/// A spelling of a field name in random case.
fn any_case(name: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), name.len()).prop_map(move |up| {
        name.chars()
            .zip(up)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn te_value() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("chunked"),
        Just("CHUNKED"),
        Just("identity, chunked"),
        Just(" chunked "),
        Just("gzip, chunked"),
        Just("chunked, chunked"),
        Just("xchunked"),
    ]
}

/// Inserts `line` (CRLF included) as the `at`th field line of a head.
fn insert_field(head: &[u8], at: usize, line: &[u8]) -> Vec<u8> {
    // The first CRLF ends the request line: these heads have no leading
    // empty lines. Candidate positions are the starts of the lines after it.
    let first_end = head.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut bounds = vec![first_end];
    let mut i = first_end;
    while i + 2 <= head.len() - 2 {
        if &head[i..i + 2] == b"\r\n" {
            bounds.push(i + 2);
        }
        i += 1;
    }
    let pos = bounds[at % bounds.len()];
    [&head[..pos], line, &head[pos..]].concat()
}

fn plain_head() -> impl Strategy<Value = Vec<u8>> {
    generated().prop_map(|mut g| {
        g.leading_empty_lines = 0;
        g.body = Body::None;
        g.minor = 1;
        if !g.fields.iter().any(|f| f.0 == "Host") {
            g.fields
                .push(("Host".into(), b"h".to_vec(), " ".into(), String::new()));
        }
        g.serialize().0
    })
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn content_length_beside_transfer_encoding_is_refused(
        head in plain_head(),
        cl_name in any_case("content-length"),
        te_name in any_case("transfer-encoding"),
        te in te_value(),
        n in 0..100_000u64,
        (at1, at2) in (0..16usize, 0..16usize),
        rules in rules(),
    ) {
        let head = insert_field(&head, at1, format!("{cl_name}: {n}\r\n").as_bytes());
        let head = insert_field(&head, at2, format!("{te_name}: {te}\r\n").as_bytes());
        let r = parse_head(&head, &Limits::default().with_rules(rules));
        prop_assert!(
            matches!(&r, Err(e) if e.status == 400 || e.status == 501),
            "{:?} gave {:?}", head.escape_ascii().to_string(), r
        );
    }

    #[test]
    fn repeated_content_length_is_refused(
        head in plain_head(),
        names in (any_case("content-length"), any_case("content-length")),
        (a, b) in prop_oneof![(0..1000u64).prop_map(|n| (n, n)), (0..1000u64, 0..1000u64)],
        (at1, at2) in (0..16usize, 0..16usize),
        rules in rules(),
    ) {
        let head = insert_field(&head, at1, format!("{}: {a}\r\n", names.0).as_bytes());
        let head = insert_field(&head, at2, format!("{}: {b}\r\n", names.1).as_bytes());
        let r = parse_head(&head, &Limits::default().with_rules(rules));
        prop_assert!(matches!(&r, Err(e) if e.status == 400), "{:?}", r);
    }

    #[test]
    fn malformed_chunk_sizes_are_refused(
        size in prop_oneof![
            Just("".to_string()),
            "0x[0-9a-f]{1,4}",
            "[+-][0-9a-f]{1,4}",
            "[ \t][0-9a-f]{1,4}",
            "[0-9a-f]{1,4}[ \t]",
            "[0-9a-f]{0,3}[g-zG-Z_.,][0-9a-f]{0,3}",
            "[1-9a-f][0-9a-f]{16,20}",
        ],
        good_before in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..8), 0..3),
        sizes in splits(),
        rules in rules(),
    ) {
        let mut body = Vec::new();
        for c in &good_before {
            body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(size.as_bytes());
        body.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
        let limits = Limits::default().with_rules(rules);
        let r = decode_in_pieces(&body, &sizes, &limits);
        prop_assert!(matches!(&r, Err(e) if e.status == 400), "{:?}: {:?}", size, r);
    }

    #[test]
    fn a_bare_cr_or_lf_anywhere_in_a_head_is_refused(
        head in plain_head(),
        at in any::<prop::sample::Index>(),
        shape in 0..3u8,
        rules in rules(),
    ) {
        // Insert before any byte but the final CRLF's LF (a LF there would
        // end the head first and belong to the next request).
        let pos = at.index(head.len() - 1);
        let broken = match shape {
            0 => [&head[..pos], b"\r", &head[pos..]].concat(),
            1 => [&head[..pos], b"\n", &head[pos..]].concat(),
            _ => {
                // Drop the CR of the first CRLF at or after `pos`.
                let cr = pos + head[pos..].windows(2).position(|w| w == b"\r\n").unwrap();
                [&head[..cr], &head[cr + 1..]].concat()
            }
        };
        let r = parse_head(&broken, &Limits::default().with_rules(rules));
        prop_assert!(
            matches!(&r, Err(e) if e.status == 400),
            "{:?} gave {:?}", broken.escape_ascii().to_string(), r
        );
    }
}
