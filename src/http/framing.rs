//! Header fields that decide message framing and connection handling:
//! Content-Length, Transfer-Encoding, Host, Connection, Expect, Upgrade,
//! and the fields that may not be repeated (Host, Content-Type).
//!
//! Fields are fed one at a time as the head parser validates them; errors a
//! single field can prove are raised immediately, the rest in `finish`.

use super::chars::{is_token, trim_ows};
use super::error::{show, HttpError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Framing {
    content_length: Option<u64>,
    te_present: bool,
    chunked: bool,
    /// First Transfer-Encoding value naming a coding other than chunked
    /// (or identity), kept for the 501 message.
    unsupported_te: Option<Vec<u8>>,
    host_seen: bool,
    content_type_seen: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    upgrade_field: bool,
    expect_continue: bool,
}

pub(crate) struct Outcome {
    pub body: BodyKind,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub upgrade: bool,
}

fn name_is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.eq_ignore_ascii_case(lower)
}

impl Framing {
    /// Called for every field line, so inlined: its length dispatch turns
    /// most names away in a compare or two.
    #[inline(always)]
    pub(crate) fn on_field(
        &mut self,
        n: &[u8],
        v: &[u8],
        minor_version: u8,
    ) -> Result<(), HttpError> {
        // Dispatch on length first: nearly every field is irrelevant here
        // and a length mismatch rejects it without comparing bytes.
        match n.len() {
            4 if name_is(n, b"host") => {
                if self.host_seen {
                    return Err(HttpError::bad_request("Duplicate Host header"));
                }
                self.host_seen = true;
            }
            6 if name_is(n, b"expect") => {
                self.expect_continue |=
                    minor_version >= 1 && v.eq_ignore_ascii_case(b"100-continue");
            }
            7 if name_is(n, b"upgrade") => self.upgrade_field |= !v.is_empty(),
            10 if name_is(n, b"connection") => {
                for token in v.split(|&b| b == b',').map(trim_ows) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.conn_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.conn_keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        self.conn_upgrade = true;
                    }
                }
            }
            12 if name_is(n, b"content-type") => {
                // RFC 9110 §5.3: a singleton field; two values are ambiguous.
                if self.content_type_seen {
                    return Err(HttpError::bad_request("Duplicate Content-Type header"));
                }
                self.content_type_seen = true;
            }
            14 if name_is(n, b"content-length") => self.content_length(v)?,
            17 if name_is(n, b"transfer-encoding") => self.transfer_encoding(v, minor_version)?,
            _ => {}
        }
        Ok(())
    }

    /// RFC 9112 §6.3: `Content-Length = 1*DIGIT`. Lists, signs and repeated
    /// fields are refused outright (gunicorn rejects repeats even when equal)
    /// because any leniency lets two parsers disagree on the body length.
    fn content_length(&mut self, v: &[u8]) -> Result<(), HttpError> {
        if self.content_length.is_some() {
            return Err(HttpError::bad_request("Duplicate Content-Length header"));
        }
        let invalid = || HttpError::bad_request(format!("Invalid Content-Length: {}", show(v)));
        if v.is_empty() {
            return Err(invalid());
        }
        let mut n: u64 = 0;
        for &b in v {
            if !b.is_ascii_digit() {
                return Err(invalid());
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or_else(invalid)?;
        }
        self.content_length = Some(n);
        Ok(())
    }

    /// Transfer-Encoding lines form one list across repeated fields. Errors
    /// that the list so far already proves (chunked twice, a coding after
    /// chunked, TE on HTTP/1.0) are raised here; the rest in `finish`.
    fn transfer_encoding(&mut self, v: &[u8], minor_version: u8) -> Result<(), HttpError> {
        if minor_version == 0 {
            // RFC 9112 §6.1: chunked framing in HTTP/1.0 is always faulty;
            // gunicorn refuses it rather than guess.
            return Err(HttpError::bad_request(
                "Transfer-Encoding is not allowed in HTTP/1.0 requests",
            ));
        }
        self.te_present = true;
        for element in v.split(|&b| b == b',').map(trim_ows) {
            if element.is_empty() {
                // RFC 9110 §5.6.1: empty list elements are ignored.
                continue;
            }
            let (coding, params) = match element.iter().position(|&b| b == b';') {
                Some(i) => (trim_ows(&element[..i]), Some(&element[i + 1..])),
                None => (element, None),
            };
            if !is_token(coding) {
                return Err(HttpError::bad_request(format!(
                    "Invalid Transfer-Encoding: {}",
                    show(v)
                )));
            }
            let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if self.chunked {
                return Err(HttpError::bad_request(if is_chunked {
                    format!("Transfer-Encoding applies chunked twice: {}", show(v))
                } else {
                    format!(
                        "Transfer-Encoding chunked is not the final coding: {}",
                        show(v)
                    )
                }));
            }
            if coding.eq_ignore_ascii_case(b"identity") && params.is_none() {
                // No coding at all; gunicorn lets it precede chunked (after
                // chunked it was refused above), so it changes nothing.
                continue;
            }
            if is_chunked {
                if params.is_some() {
                    return Err(HttpError::bad_request(format!(
                        "Invalid Transfer-Encoding: {}",
                        show(v)
                    )));
                }
                self.chunked = true;
            } else if self.unsupported_te.is_none() {
                self.unsupported_te = Some(v.to_vec());
            }
        }
        Ok(())
    }

    pub(crate) fn finish(&self, minor_version: u8) -> Result<Outcome, HttpError> {
        let body = if self.te_present {
            if self.content_length.is_some() {
                // RFC 9112 §6.3 allows TE to win, but a proxy that picked CL
                // would see a different request boundary: refuse instead.
                return Err(HttpError::bad_request(
                    "Both Content-Length and Transfer-Encoding present",
                ));
            }
            if !self.chunked {
                // RFC 9112 §6.3: without final chunked the request length
                // cannot be determined; the server MUST answer 400.
                return Err(HttpError::bad_request(
                    "Transfer-Encoding present but chunked is not the final coding",
                ));
            }
            if let Some(r) = &self.unsupported_te {
                return Err(HttpError::not_implemented(format!(
                    "Unsupported transfer coding: {}",
                    show(r)
                )));
            }
            BodyKind::Chunked
        } else if let Some(n) = self.content_length {
            BodyKind::Length(n)
        } else {
            BodyKind::None
        };
        if minor_version >= 1 && !self.host_seen {
            // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1
            // request without Host. Checked after the framing, so a request
            // that is wrong in both ways gets the framing error.
            return Err(HttpError::bad_request("Missing Host header"));
        }
        let keep_alive = !self.conn_close && (minor_version >= 1 || self.conn_keep_alive);
        Ok(Outcome {
            body,
            keep_alive,
            expect_continue: self.expect_continue,
            upgrade: self.conn_upgrade && self.upgrade_field,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `fields` as if they followed an HTTP/1.`minor` request line.
    fn run(minor: u8, fields: &[(&str, &str)]) -> Result<Outcome, HttpError> {
        let mut f = Framing::default();
        if minor >= 1 && !fields.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            f.on_field(b"Host", b"h", minor)?;
        }
        for (n, v) in fields {
            f.on_field(n.as_bytes(), v.as_bytes(), minor)?;
        }
        f.finish(minor)
    }

    fn body(minor: u8, fields: &[(&str, &str)]) -> BodyKind {
        run(minor, fields)
            .unwrap_or_else(|e| panic!("{fields:?}: {e}"))
            .body
    }

    fn status(minor: u8, fields: &[(&str, &str)]) -> u16 {
        match run(minor, fields) {
            Ok(o) => panic!("{fields:?} accepted as {:?}", o.body),
            Err(e) => e.status,
        }
    }

    #[test]
    fn content_length_digits_only() {
        assert_eq!(body(1, &[("Content-Length", "0")]), BodyKind::Length(0));
        assert_eq!(body(1, &[("content-length", "007")]), BodyKind::Length(7));
        assert_eq!(
            body(1, &[("Content-Length", "18446744073709551615")]),
            BodyKind::Length(u64::MAX)
        );
        for bad in [
            "",
            "+1",
            "-1",
            "1 2",
            "1,1",
            "0x10",
            "1.0",
            "18446744073709551616",
        ] {
            assert_eq!(status(1, &[("Content-Length", bad)]), 400, "{bad:?}");
        }
    }

    #[test]
    fn duplicate_content_length_is_rejected_even_if_equal() {
        assert_eq!(
            status(1, &[("Content-Length", "5"), ("Content-Length", "5")]),
            400
        );
    }

    #[test]
    fn transfer_encoding_list_rules() {
        assert_eq!(
            body(1, &[("Transfer-Encoding", "chunked")]),
            BodyKind::Chunked
        );
        assert_eq!(
            body(1, &[("Transfer-Encoding", "CHUNKED")]),
            BodyKind::Chunked
        );
        assert_eq!(
            body(1, &[("Transfer-Encoding", " , chunked ,")]),
            BodyKind::Chunked
        );
        // Unknown coding before a final chunked: understood framing, unsupported coding.
        assert_eq!(status(1, &[("Transfer-Encoding", "gzip, chunked")]), 501);
        assert_eq!(
            status(
                1,
                &[
                    ("Transfer-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked")
                ]
            ),
            501
        );
        // identity is no coding: a no-op before chunked, an error after it.
        assert_eq!(
            body(1, &[("Transfer-Encoding", "identity, chunked")]),
            BodyKind::Chunked
        );
        assert_eq!(
            body(
                1,
                &[
                    ("Transfer-Encoding", "identity"),
                    ("Transfer-Encoding", "chunked")
                ]
            ),
            BodyKind::Chunked
        );
        assert_eq!(
            status(1, &[("Transfer-Encoding", "chunked, identity")]),
            400
        );
        assert_eq!(status(1, &[("Transfer-Encoding", "identity")]), 400);
        assert_eq!(
            status(1, &[("Transfer-Encoding", "identity;q=1, chunked")]),
            501
        );
        assert_eq!(status(1, &[("Transfer-Encoding", "deflate, chunked")]), 501);
        // Final coding is not chunked: framing unknowable.
        assert_eq!(status(1, &[("Transfer-Encoding", "gzip")]), 400);
        assert_eq!(status(1, &[("Transfer-Encoding", "chunked, gzip")]), 400);
        assert_eq!(
            status(
                1,
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "gzip")
                ]
            ),
            400
        );
        assert_eq!(status(1, &[("Transfer-Encoding", "chunked, chunked")]), 400);
        assert_eq!(status(1, &[("Transfer-Encoding", "")]), 400);
        assert_eq!(status(1, &[("Transfer-Encoding", "chunked;x=1")]), 400);
        assert_eq!(status(1, &[("Transfer-Encoding", "chu nked")]), 400);
        assert_eq!(status(1, &[("Transfer-Encoding", "\"chunked\"")]), 400);
    }

    #[test]
    fn transfer_encoding_with_content_length_is_rejected() {
        assert_eq!(
            status(
                1,
                &[("Content-Length", "3"), ("Transfer-Encoding", "chunked")]
            ),
            400
        );
        assert_eq!(
            status(
                1,
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]
            ),
            400
        );
    }

    #[test]
    fn transfer_encoding_on_http10_is_rejected() {
        assert_eq!(status(0, &[("Transfer-Encoding", "chunked")]), 400);
    }

    #[test]
    fn duplicate_host_is_rejected() {
        assert_eq!(status(1, &[("Host", "a"), ("host", "a")]), 400);
        assert_eq!(body(1, &[("Host", "a")]), BodyKind::None);
        assert_eq!(body(1, &[]), BodyKind::None);
    }

    #[test]
    fn host_is_required_on_http11_only() {
        let mut f = Framing::default();
        let e = f.finish(1).err().expect("accepted");
        assert_eq!((e.status, e.detail.as_str()), (400, "Missing Host header"));
        assert!(f.finish(0).is_ok());
        f.on_field(b"Host", b"", 1).unwrap();
        assert!(f.finish(1).is_ok(), "an empty Host is a Host");
    }

    #[test]
    fn duplicate_content_type_is_rejected() {
        assert_eq!(
            status(1, &[("Content-Type", "a/b"), ("content-type", "a/b")]),
            400
        );
        assert_eq!(body(1, &[("Content-Type", "a/b")]), BodyKind::None);
    }

    #[test]
    fn keep_alive_defaults_by_version_and_connection_tokens() {
        let ka = |minor, f: &[(&str, &str)]| run(minor, f).unwrap().keep_alive;
        assert!(ka(1, &[]));
        assert!(!ka(0, &[]));
        assert!(!ka(1, &[("Connection", "close")]));
        assert!(!ka(1, &[("Connection", "Keep-Alive, CLOSE")]));
        assert!(ka(0, &[("Connection", "keep-alive")]));
        assert!(ka(0, &[("Connection", "foo ,\tKeep-Alive")]));
        assert!(!ka(
            0,
            &[("Connection", "keep-alive"), ("Connection", "close")]
        ));
        assert!(ka(1, &[("Connection", "closed")]));
    }

    #[test]
    fn expect_continue_only_on_http11() {
        let ex = |minor, f: &[(&str, &str)]| run(minor, f).unwrap().expect_continue;
        assert!(ex(1, &[("Expect", "100-continue")]));
        assert!(ex(1, &[("expect", "100-Continue")]));
        assert!(!ex(0, &[("Expect", "100-continue")]));
        assert!(!ex(1, &[("Expect", "200-ok")]));
    }

    #[test]
    fn upgrade_needs_connection_token_and_upgrade_field() {
        let up = |f: &[(&str, &str)]| run(1, f).unwrap().upgrade;
        assert!(up(&[("Connection", "Upgrade"), ("Upgrade", "websocket")]));
        assert!(up(&[
            ("Upgrade", "h2c"),
            ("Connection", "keep-alive, upgrade")
        ]));
        assert!(!up(&[("Upgrade", "websocket")]));
        assert!(!up(&[("Connection", "upgrade")]));
    }
}
