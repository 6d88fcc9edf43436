//! Nanoseconds per request head for ferricorn's head parser: a realistic
//! browser head and a minimal one, each parsed from the start many times.
//! (The comparison with `httparse` that led to dropping it is in the
//! history of this file, commit 0bec722: same heads, same method.)
//!
//! `cargo bench --bench head_parser` (release profile). Prints the median of
//! several rounds; other load on the machine shows up as noise, so compare
//! figures from one run only. `-- PARSER HEAD` (e.g. `-- ferricorn browser`)
//! runs that one case alone, and `-- PARSER HEAD N` does N parses per round:
//! under `valgrind --tool=cachegrind --cache-sim=no`, the difference in
//! instructions (`I refs`) between N and 0 parses per round, divided by the
//! printed number of parses, is instructions per head, a figure that other
//! load on the machine does not disturb.

use std::hint::black_box;
use std::time::Instant;

use ferricorn::http::{parse_head, Limits};

/// What a current desktop browser sends for a page (Chromium-style).
const BROWSER: &[u8] = b"GET /articles/2026/11/http-parsing?ref=home&utm_source=feed HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-User: ?1\r\n\
Sec-Fetch-Dest: document\r\n\
Referer: https://www.example.com/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en;q=0.9,de;q=0.8\r\n\
Cookie: session=8f2b1c9e4d7a6b3f0e5d2c1b9a8f7e6d; theme=dark; _ga=GA1.2.1234567890.1700000000\r\n\r\n";

/// The smallest head an HTTP/1.1 client can send.
const MINIMAL: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

const ROUNDS: usize = 7;

fn median_ns(iters: u32, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn ferricorn(buf: &[u8], limits: &Limits) {
    let head = parse_head(black_box(buf), limits).unwrap().unwrap();
    black_box(head);
}

fn main() {
    let limits = Limits::default();
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let [parser, head, rest @ ..] = &only[..] {
        let (buf, mut iters) = if head == "browser" {
            (BROWSER, 200_000)
        } else {
            (MINIMAL, 1_000_000)
        };
        if let Some(n) = rest.first().and_then(|n| n.parse().ok()) {
            iters = n;
        }
        assert_eq!(parser, "ferricorn", "the only parser measured");
        let ns = median_ns(iters, || ferricorn(buf, &limits));
        println!(
            "{parser} {head}: {} parses, {ns:.1} ns/head",
            iters as usize * ROUNDS
        );
        return;
    }
    for (name, head, iters) in [
        ("browser", BROWSER, 200_000),
        ("minimal", MINIMAL, 1_000_000),
    ] {
        let ns = median_ns(iters, || ferricorn(head, &limits));
        println!(
            "{name:8} {:4} bytes  ferricorn {ns:7.1} ns/head",
            head.len()
        );
    }
}
