//! Replays the raw requests in `tests/corpus/` through the HTTP parser the
//! way the worker does: bytes arrive in pieces, are appended to a buffer,
//! and the head parser / chunked decoder are called after every piece.
//!
//! Each file is fed whole, line by line, byte by byte and in pseudo-random
//! pieces; every feeding must give the same outcome, and the whole-file
//! outcome must match the `.expect` file (format: tests/corpus/README.md).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use ferricorn::http::{parse_head, BodyKind, ChunkedDecoder, HeadParser, HttpError, Limits, Rules};

/// Bytes that print as `b"..."` in assertion failures.
#[derive(Clone, Default, PartialEq, Eq)]
struct B(Vec<u8>);

impl std::fmt::Debug for B {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// One request as the worker would see it once its body is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Parsed {
    method: B,
    target: B,
    minor_version: u8,
    headers: Vec<(B, B)>,
    head_len: usize,
    body_kind: BodyKind,
    body: B,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// Input ended exactly after the last request.
    Clean,
    /// Input ended inside a head or body.
    Incomplete,
    Error(HttpError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<Parsed>,
    end: End,
}

enum Stage {
    Head,
    Length {
        remaining: u64,
        req: Parsed,
    },
    Chunked {
        decoder: ChunkedDecoder,
        req: Parsed,
    },
}

/// Worker-like consumer of one connection's byte stream.
struct Connection {
    limits: Limits,
    buf: Vec<u8>,
    resumable: HeadParser,
    stage: Stage,
    requests: Vec<Parsed>,
}

impl Connection {
    fn new(limits: &Limits) -> Self {
        Connection {
            limits: limits.clone(),
            buf: Vec::new(),
            resumable: HeadParser::new(limits),
            stage: Stage::Head,
            requests: Vec::new(),
        }
    }

    /// Appends one read; returns the error that ends the connection, if any.
    fn feed(&mut self, piece: &[u8]) -> Result<(), HttpError> {
        self.buf.extend_from_slice(piece);
        loop {
            match &mut self.stage {
                Stage::Head => {
                    let stateless = parse_head(&self.buf, &self.limits);
                    let resumable = self.resumable.parse(&self.buf);
                    assert_eq!(stateless, resumable, "HeadParser disagrees with parse_head");
                    let Some(h) = stateless? else { return Ok(()) };
                    let b = &self.buf;
                    let req = Parsed {
                        method: B(h.method(b).to_vec()),
                        target: B(h.target(b).to_vec()),
                        minor_version: h.minor_version,
                        headers: h
                            .headers(b)
                            .map(|(n, v)| (B(n.to_vec()), B(v.to_vec())))
                            .collect(),
                        head_len: h.head_len,
                        body_kind: h.body,
                        body: B::default(),
                        keep_alive: h.keep_alive,
                        expect_continue: h.expect_continue,
                        upgrade: h.upgrade,
                    };
                    self.buf.drain(..h.head_len);
                    self.stage = match h.body {
                        BodyKind::None => {
                            self.requests.push(req);
                            Stage::Head
                        }
                        BodyKind::Length(n) => Stage::Length { remaining: n, req },
                        BodyKind::Chunked => Stage::Chunked {
                            decoder: ChunkedDecoder::new(&self.limits),
                            req,
                        },
                    };
                }
                Stage::Length { remaining, req } => {
                    let n = (*remaining).min(self.buf.len() as u64) as usize;
                    req.body.0.extend(self.buf.drain(..n));
                    *remaining -= n as u64;
                    if *remaining > 0 {
                        return Ok(());
                    }
                    self.finish_body();
                }
                Stage::Chunked { decoder, req } => {
                    let (n, done) = decoder.decode(&self.buf, &mut req.body.0)?;
                    assert_eq!(done, decoder.is_done());
                    if !done {
                        assert_eq!(
                            n,
                            self.buf.len(),
                            "unfinished decoder left input unconsumed"
                        );
                        self.buf.clear();
                        return Ok(());
                    }
                    self.buf.drain(..n);
                    self.finish_body();
                }
            }
        }
    }

    fn finish_body(&mut self) {
        match std::mem::replace(&mut self.stage, Stage::Head) {
            Stage::Length { req, .. } | Stage::Chunked { req, .. } => self.requests.push(req),
            Stage::Head => unreachable!(),
        }
    }

    fn end(self, error: Option<HttpError>) -> Outcome {
        let end = match error {
            Some(e) => End::Error(e),
            None if matches!(self.stage, Stage::Head) && self.buf.is_empty() => End::Clean,
            None => End::Incomplete,
        };
        Outcome {
            requests: self.requests,
            end,
        }
    }
}

fn run<'a>(limits: &Limits, pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut conn = Connection::new(limits);
    for piece in pieces {
        if let Err(e) = conn.feed(piece) {
            return conn.end(Some(e));
        }
    }
    conn.end(None)
}

/// Pieces ending after each LF, as a line-buffered client would send.
fn lines(input: &[u8]) -> Vec<&[u8]> {
    input.split_inclusive(|&b| b == b'\n').collect()
}

/// Deterministic xorshift64 so failures reproduce without a rand crate.
struct XorShift(u64);

impl XorShift {
    fn seeded(name: &str, salt: u64) -> Self {
        // FNV-1a of the file name: a different, stable split for every file.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        XorShift(h | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn random_pieces<'a>(input: &'a [u8], rng: &mut XorShift, max: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = (1 + rng.next() as usize % max).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

// ---------------------------------------------------------------------------
// Corpus files and the `.expect` format.

struct Case {
    name: String,
    input: Vec<u8>,
    limits: Limits,
    expected: Outcome,
    /// Substring the error detail must contain, if the file names one.
    detail: Option<String>,
}

fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind)
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: String = [bytes.next(), bytes.next()]
                    .iter()
                    .map(|b| char::from(b.expect("truncated \\x escape")))
                    .collect();
                out.push(u8::from_str_radix(&hex, 16).expect("bad \\x escape"));
            }
            other => panic!("unknown escape \\{:?}", other.map(char::from)),
        }
    }
    out
}

fn parse_bool(v: &str) -> bool {
    match v {
        "true" => true,
        "false" => false,
        _ => panic!("expected true/false, got {v:?}"),
    }
}

/// `head_len` is optional in `.expect` files; when absent it is not compared.
const HEAD_LEN_UNCHECKED: usize = usize::MAX;

fn new_request() -> Parsed {
    Parsed {
        method: B::default(),
        target: B::default(),
        minor_version: 1,
        headers: Vec::new(),
        head_len: HEAD_LEN_UNCHECKED,
        body_kind: BodyKind::None,
        body: B::default(),
        keep_alive: true,
        expect_continue: false,
        upgrade: false,
    }
}

/// Parses an `.expect` file (format in tests/corpus/README.md).
fn parse_expect(text: &str) -> (Limits, Vec<Parsed>, End, Option<String>) {
    let mut limits = Limits::default();
    let mut requests: Vec<Parsed> = Vec::new();
    let mut end = End::Clean;
    let mut detail = None;
    let mut in_error = false;
    for (lineno, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let ctx = || format!("line {}: {raw:?}", lineno + 1);
        match key {
            "limits" => {
                let n: Vec<usize> = value
                    .split_whitespace()
                    .map(|v| v.parse().unwrap_or_else(|_| panic!("{}", ctx())))
                    .collect();
                assert_eq!(n.len(), 3, "{}", ctx());
                limits = Limits::new(n[0], n[1], n[2]).with_rules(limits.rules.clone());
            }
            "rules" => {
                let mut rules = Rules::default();
                for name in value.split_whitespace() {
                    match name {
                        "permit_obsolete_folding" => rules.permit_obsolete_folding = true,
                        "strip_header_spaces" => rules.strip_header_spaces = true,
                        "permit_unconventional_http_method" => {
                            rules.permit_unconventional_http_method = true
                        }
                        "permit_unconventional_http_version" => {
                            rules.permit_unconventional_http_version = true
                        }
                        _ => panic!("unknown rule {name:?}, {}", ctx()),
                    }
                }
                limits.rules = rules;
            }
            "request" => requests.push(new_request()),
            "incomplete" => end = End::Incomplete,
            "error" => in_error = true,
            "status" => {
                assert!(in_error, "status outside error block, {}", ctx());
                let status: u16 = value.parse().unwrap_or_else(|_| panic!("{}", ctx()));
                end = End::Error(HttpError::new(status, String::new()));
            }
            "detail" => detail = Some(value.to_string()),
            _ => {
                let req = requests
                    .last_mut()
                    .unwrap_or_else(|| panic!("field before any `request`, {}", ctx()));
                match key {
                    "method" => req.method = B(unescape(value)),
                    "target" => req.target = B(unescape(value)),
                    "version" => {
                        req.minor_version = match value {
                            "1.0" => 0,
                            "1.1" => 1,
                            _ => panic!("{}", ctx()),
                        }
                    }
                    "header" => {
                        let h = unescape(value);
                        let colon = h
                            .iter()
                            .position(|&b| b == b':')
                            .unwrap_or_else(|| panic!("{}", ctx()));
                        let v = h[colon + 1..].strip_prefix(b" ").unwrap_or(&h[colon + 1..]);
                        req.headers.push((B(h[..colon].to_vec()), B(v.to_vec())));
                    }
                    "body_kind" => {
                        req.body_kind = match value.split_once(' ') {
                            None if value == "none" => BodyKind::None,
                            None if value == "chunked" => BodyKind::Chunked,
                            Some(("length", n)) => {
                                BodyKind::Length(n.parse().unwrap_or_else(|_| panic!("{}", ctx())))
                            }
                            _ => panic!("{}", ctx()),
                        }
                    }
                    "head_len" => {
                        req.head_len = value.parse().unwrap_or_else(|_| panic!("{}", ctx()))
                    }
                    "body" => req.body.0.extend(unescape(value)),
                    "keep_alive" => req.keep_alive = parse_bool(value),
                    "expect_continue" => req.expect_continue = parse_bool(value),
                    "upgrade" => req.upgrade = parse_bool(value),
                    _ => panic!("unknown key, {}", ctx()),
                }
            }
        }
    }
    if in_error {
        assert!(matches!(end, End::Error(_)), "error block without status");
    }
    (limits, requests, end, detail)
}

fn load(kind: &str) -> Vec<Case> {
    let dir = corpus_dir(kind);
    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "http"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|path| {
            let name = format!("{kind}/{}", path.file_stem().unwrap().to_string_lossy());
            let input = fs::read(&path).unwrap();
            let expect_path = path.with_extension("expect");
            let text = fs::read_to_string(&expect_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expect_path.display()));
            let (limits, requests, end, detail) = parse_expect(&text);
            Case {
                name,
                input,
                limits,
                expected: Outcome { requests, end },
                detail,
            }
        })
        .collect()
}

fn all_cases() -> Vec<Case> {
    let mut cases = load("valid");
    cases.extend(load("invalid"));
    cases
}

/// Compares an actual outcome with the expectation: errors by status and
/// detail substring, requests field by field.
fn mismatch(case: &Case, actual: &Outcome) -> Option<String> {
    let mut expected = case.expected.clone();
    for (e, a) in expected.requests.iter_mut().zip(&actual.requests) {
        if e.head_len == HEAD_LEN_UNCHECKED {
            e.head_len = a.head_len;
        }
    }
    let mut actual_cmp = actual.clone();
    if let (End::Error(e), End::Error(a)) = (&mut expected.end, &mut actual_cmp.end) {
        if let Some(d) = &case.detail {
            if !a.detail.contains(d.as_str()) {
                return Some(format!("detail {:?} does not contain {d:?}", a.detail));
            }
        }
        e.reason = a.reason;
        e.detail = a.detail.clone();
    }
    (expected != actual_cmp).then(|| format!("expected {expected:#?}\n   got {actual:#?}"))
}

fn report(failures: Vec<String>) {
    if !failures.is_empty() {
        let mut msg = format!("{} corpus file(s) failed:\n", failures.len());
        for f in failures {
            let _ = writeln!(msg, "--- {f}");
        }
        panic!("{msg}");
    }
}

fn check_expectations(kind: &str) {
    let mut failures = Vec::new();
    for case in load(kind) {
        let actual = run(&case.limits, [&case.input[..]]);
        if let Some(m) = mismatch(&case, &actual) {
            failures.push(format!("{}: {m}", case.name));
        }
    }
    report(failures);
}

/// Asserts that feeding every file as `split` does gives the same outcome
/// as feeding it whole (error details included).
fn check_split_invariance(split: impl Fn(&Case) -> Vec<Vec<&[u8]>>) {
    let mut failures = Vec::new();
    for case in all_cases() {
        let whole = run(&case.limits, [&case.input[..]]);
        for pieces in split(&case) {
            let got = run(&case.limits, pieces.iter().copied());
            if got != whole {
                let sizes: Vec<usize> = pieces.iter().map(|p| p.len()).collect();
                failures.push(format!(
                    "{}: pieces {sizes:?}\n   whole {whole:#?}\n   split {got:#?}",
                    case.name
                ));
                break;
            }
        }
    }
    report(failures);
}

#[test]
fn valid_corpus_files_parse_to_their_expectations() {
    check_expectations("valid");
}

#[test]
fn invalid_corpus_files_fail_with_their_expected_status() {
    for case in load("invalid") {
        assert!(
            matches!(case.expected.end, End::Error(_)),
            "{}: invalid case must expect an error",
            case.name
        );
    }
    check_expectations("invalid");
}

#[test]
fn feeding_line_by_line_matches_feeding_whole() {
    check_split_invariance(|case| vec![lines(&case.input)]);
}

#[test]
fn feeding_byte_by_byte_matches_feeding_whole() {
    check_split_invariance(|case| vec![case.input.chunks(1).collect()]);
}

#[test]
fn feeding_random_piece_sizes_matches_feeding_whole() {
    check_split_invariance(|case| {
        let mut out = Vec::new();
        for (salt, max) in [(1, 3), (2, 7), (3, 16), (4, 64), (5, 512)] {
            let mut rng = XorShift::seeded(&case.name, salt);
            out.push(random_pieces(&case.input, &mut rng, max));
        }
        out
    });
}

#[test]
fn every_corpus_request_file_has_an_expectation() {
    for kind in ["valid", "invalid"] {
        let dir = corpus_dir(kind);
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            match path.extension().and_then(|x| x.to_str()) {
                Some("http") => {
                    assert!(path.with_extension("expect").exists(), "{}", path.display())
                }
                Some("expect") => {
                    assert!(path.with_extension("http").exists(), "{}", path.display())
                }
                _ => panic!("stray file in corpus: {}", path.display()),
            }
        }
    }
}
