//! HTTP/1.x request parsing: pure functions over byte buffers, no I/O.
//!
//! The worker appends socket reads to a buffer and calls `parse_head` (or a
//! reusable `HeadParser`) until it yields a `RequestHead`; the body then
//! follows at `head_len`, framed as `RequestHead::body` says, with
//! `ChunkedDecoder` for chunked bodies. Any `HttpError` means: answer with
//! its status and close the connection. `Limits` carries gunicorn's size
//! limits and its parser switches (`Rules`), strict by default.

mod chars;
pub use chars::is_tchar;
pub mod chunked;
pub mod error;
mod field;
mod framing;
pub mod head;
pub mod limits;
mod request_line;

pub use chunked::ChunkedDecoder;
pub use error::HttpError;
pub use head::{parse_head, BodyKind, HeadParser, RequestHead};
pub use limits::{Limits, Rules};
