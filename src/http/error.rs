//! The error type every parsing failure maps to: an HTTP status to answer
//! with (the connection is closed afterwards) plus a message for the error log.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    /// Reason phrase for the status line, e.g. "Bad Request".
    pub reason: &'static str,
    /// Human-readable explanation for the error log; never sent verbatim
    /// to untrusted peers without escaping (it quotes request bytes).
    pub detail: String,
}

impl HttpError {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        HttpError {
            status,
            reason: reason_phrase(status),
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, detail)
    }

    pub fn uri_too_long(detail: impl Into<String>) -> Self {
        Self::new(414, detail)
    }

    pub fn fields_too_large(detail: impl Into<String>) -> Self {
        Self::new(431, detail)
    }

    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(501, detail)
    }

    pub fn version_not_supported(detail: impl Into<String>) -> Self {
        Self::new(505, detail)
    }
}

/// Reason phrases for the statuses this layer produces (and a few neighbours
/// the server is likely to need); anything else gets a generic phrase.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "Request-URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        401..=499 => "Client Error",
        _ => "Server Error",
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.reason, self.detail)
    }
}

impl std::error::Error for HttpError {}

/// Longest slice of request bytes quoted in a detail message; request lines
/// can be kilobytes long and the log should stay readable.
const SHOW_MAX: usize = 64;

/// Renders request bytes like Python's `repr(bytes)` (`b"..."`), escaping
/// non-printables so hostile input cannot forge log lines.
pub(crate) fn show(bytes: &[u8]) -> String {
    let (head, cut) = if bytes.len() > SHOW_MAX {
        (&bytes[..SHOW_MAX], true)
    } else {
        (bytes, false)
    };
    format!(
        "b\"{}\"{}",
        head.escape_ascii(),
        if cut { "..." } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_escapes_control_bytes_and_quotes() {
        assert_eq!(show(b"Fo o"), "b\"Fo o\"");
        assert_eq!(show(b"a\r\n\0\"\xff"), "b\"a\\r\\n\\x00\\\"\\xff\"");
    }

    #[test]
    fn show_truncates_long_input() {
        let s = show(&[b'a'; 100]);
        assert!(s.ends_with("\"..."));
        assert_eq!(s.len(), 2 + SHOW_MAX + 1 + 3);
    }

    #[test]
    fn constructors_set_reason_phrases() {
        assert_eq!(HttpError::bad_request("x").reason, "Bad Request");
        assert_eq!(HttpError::uri_too_long("x").reason, "Request-URI Too Long");
        assert_eq!(
            HttpError::fields_too_large("x").reason,
            "Request Header Fields Too Large"
        );
        assert_eq!(HttpError::not_implemented("x").reason, "Not Implemented");
        assert_eq!(
            HttpError::version_not_supported("x").reason,
            "HTTP Version Not Supported"
        );
        assert_eq!(
            HttpError::bad_request("boom").to_string(),
            "400 Bad Request: boom"
        );
    }
}
