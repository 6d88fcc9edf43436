//! Byte classes from RFC 9110/9112 and small scanning helpers shared by the
//! head parser and the chunked decoder.

pub(crate) const CR: u8 = b'\r';
pub(crate) const LF: u8 = b'\n';

const fn build_tchar() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
}

static TCHAR: [bool; 256] = build_tchar();

/// RFC 9110 §5.6.2 `tchar`.
#[inline]
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// RFC 9110 §5.6.2 `token = 1*tchar`.
#[inline]
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Bytes allowed inside a field value: VCHAR, SP, HTAB and obs-text.
/// Everything else is a control byte (CTL, including NUL and DEL).
#[inline]
pub(crate) fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// `is_field_byte` over a whole value. Written without early exit so the
/// compiler can vectorize it; values are long (cookies, user agents) and
/// almost always valid, so scanning to the end costs nothing extra.
pub(crate) fn all_field_bytes(v: &[u8]) -> bool {
    let mut bad = false;
    for &b in v {
        bad |= (b < 0x20 && b != b'\t') | (b == 0x7f);
    }
    !bad
}

#[inline]
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Range-returning variant of `trim_ows` for `s[start..end]`.
pub(crate) fn trim_ows_range(s: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && is_ows(s[start]) {
        start += 1;
    }
    while end > start && is_ows(s[end - 1]) {
        end -= 1;
    }
    (start, end)
}

/// Value of an ASCII hex digit.
#[inline]
pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Index of the first CR or LF in `hay`.
///
/// Head parsing spends most of its time here, so eight bytes are tested at
/// once: a word can only hold CR or LF if some byte in it is below 0x0E, and
/// that test is a couple of arithmetic ops. Words that pass it (rare: tabs
/// or actual line ends) are re-scanned byte by byte.
pub(crate) fn find_line_break(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const BELOW: u64 = ONES * 0x0E;
    let mut i = 0;
    while i + 8 <= hay.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&hay[i..i + 8]);
        let x = u64::from_le_bytes(word);
        if x.wrapping_sub(BELOW) & !x & HIGHS != 0 {
            if let Some(p) = hay[i..i + 8].iter().position(|&b| b == CR || b == LF) {
                return Some(i + p);
            }
        }
        i += 8;
    }
    hay[i..]
        .iter()
        .position(|&b| b == CR || b == LF)
        .map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_matches_rfc9110() {
        let specials = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let expect = b.is_ascii_alphanumeric() || specials.contains(&b);
            assert_eq!(is_tchar(b), expect, "byte {b:#x}");
        }
    }

    #[test]
    fn field_bytes_exclude_controls_but_allow_obs_text() {
        assert!(is_field_byte(b'\t'));
        assert!(is_field_byte(b' '));
        assert!(is_field_byte(0x80));
        assert!(is_field_byte(0xff));
        assert!(!is_field_byte(0));
        assert!(!is_field_byte(0x0b));
        assert!(!is_field_byte(0x1f));
        assert!(!is_field_byte(0x7f));
    }

    #[test]
    fn all_field_bytes_agrees_with_is_field_byte() {
        for b in 0..=255u8 {
            let v = [b'a'; 40]
                .iter()
                .copied()
                .chain([b])
                .chain([b'z'; 20])
                .collect::<Vec<_>>();
            assert_eq!(all_field_bytes(&v), is_field_byte(b), "byte {b:#x}");
        }
        assert!(all_field_bytes(b""));
    }

    #[test]
    fn trim_ows_strips_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\x0bx"), b"\x0bx");
        assert_eq!(trim_ows_range(b"  ab  ", 0, 6), (2, 4));
        assert_eq!(trim_ows_range(b"    ", 1, 3), (3, 3));
    }

    #[test]
    fn find_line_break_agrees_with_naive_search() {
        let naive = |h: &[u8]| h.iter().position(|&b| b == CR || b == LF);
        let mut cases: Vec<Vec<u8>> = vec![vec![], b"abc".to_vec(), b"\r".to_vec()];
        for len in 0..40 {
            for pos in 0..len {
                for &brk in &[CR, LF] {
                    let mut v: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    // Decoys below 0x0E that must not be reported.
                    if len > 3 {
                        v[(pos + 1) % len] = b'\t';
                        v[(pos + 2) % len] = 0x0b;
                    }
                    v[pos] = brk;
                    cases.push(v);
                }
            }
            cases.push(vec![b'\t'; len]);
            cases.push(vec![0xff; len]);
        }
        for c in &cases {
            assert_eq!(find_line_break(c), naive(c), "{c:?}");
        }
    }
}
