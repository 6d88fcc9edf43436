//! Request-size limits with gunicorn's semantics (`limit_request_line`,
//! `limit_request_fields`, `limit_request_field_size`), and gunicorn's
//! parser switches that loosen one syntax rule each (`Rules`). Both travel
//! together because everything that parses a head or a trailer section
//! needs both.

use super::error::HttpError;

/// Hard ceiling gunicorn applies to `limit_request_line`.
pub const MAX_REQUEST_LINE: usize = 8190;
/// Hard ceiling gunicorn applies to `limit_request_fields`.
pub const MAX_HEADERS: usize = 32768;
/// Field-size figure gunicorn uses to bound the whole header section when
/// `limit_request_field_size` is 0 (unlimited per line).
pub const DEFAULT_MAX_HEADERFIELD_SIZE: usize = 8190;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes, CRLF excluded; 0 = unlimited.
    /// Values above 8190 act as 8190 (gunicorn caps it there).
    pub request_line: usize,
    /// Most header (or trailer) field lines; 0 or > 32768 act as 32768.
    pub fields: usize,
    /// Longest field line in bytes, counted as gunicorn does: the raw line
    /// including its CRLF. 0 = unlimited per line (the section as a whole
    /// stays bounded, see `section_cap`).
    pub field_size: usize,
    /// Syntax switches; the default is gunicorn's (all strict).
    pub rules: Rules,
}

/// gunicorn's parser switches, off by default. Each one loosens exactly
/// one rule and nothing else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Accept obs-fold (a field line starting with SP/HTAB continues the
    /// previous field); the value is joined with single spaces, as gunicorn
    /// does. RFC 9112 §5.2 lets a server do this instead of answering 400.
    pub permit_obsolete_folding: bool,
    /// Accept whitespace between a field name and its colon, and drop it.
    pub strip_header_spaces: bool,
    /// Accept any token as a method, not only 3-20 characters without
    /// lowercase letters or `#`.
    pub permit_unconventional_http_method: bool,
    /// Accept `HTTP/d.d` with a major version other than 1: 0.x is served
    /// as HTTP/1.0, 2.x and later as HTTP/1.1 (instead of 505).
    pub permit_unconventional_http_version: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_line: 4094,
            fields: 100,
            field_size: 8190,
            rules: Rules::default(),
        }
    }
}

/// Which bound a too-long field line ran into; selects the error detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineBound {
    FieldSize,
    Section,
}

impl Limits {
    pub fn new(request_line: usize, fields: usize, field_size: usize) -> Self {
        Limits {
            request_line,
            fields,
            field_size,
            rules: Rules::default(),
        }
    }

    /// The same limits with other syntax switches.
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// Longest request line (CRLF excluded) accepted.
    pub(crate) fn request_line_cap(&self) -> usize {
        match self.request_line {
            0 => usize::MAX,
            n => n.min(MAX_REQUEST_LINE),
        }
    }

    /// Most field lines accepted in one header or trailer section.
    pub fn fields_cap(&self) -> usize {
        match self.fields {
            0 => MAX_HEADERS,
            n => n.min(MAX_HEADERS),
        }
    }

    /// Bound on a whole header/trailer section (field lines plus the empty
    /// line), mirroring gunicorn's `max_buffer_headers`. It only bites when
    /// `field_size` is 0; otherwise the per-line and count limits are tighter.
    pub fn section_cap(&self) -> usize {
        let per_line = match self.field_size {
            0 => DEFAULT_MAX_HEADERFIELD_SIZE,
            n => n,
        };
        self.fields_cap()
            .saturating_mul(per_line.saturating_add(2))
            .saturating_add(4)
    }

    /// Longest content (CRLF excluded) a field line may have when `used`
    /// bytes of its section precede it, and which bound that is.
    pub(crate) fn field_line_max(&self, used: usize) -> (usize, LineBound) {
        let by_field = match self.field_size {
            0 => usize::MAX,
            n => n.saturating_sub(2),
        };
        let by_section = self.section_cap().saturating_sub(used).saturating_sub(2);
        if by_field <= by_section {
            (by_field, LineBound::FieldSize)
        } else {
            (by_section, LineBound::Section)
        }
    }

    pub(crate) fn request_line_too_long(&self) -> HttpError {
        HttpError::uri_too_long(format!(
            "Request line is too large (more than {} bytes)",
            self.request_line_cap()
        ))
    }

    pub(crate) fn too_many_fields(&self) -> HttpError {
        HttpError::fields_too_large(format!(
            "Too many header fields (more than {})",
            self.fields_cap()
        ))
    }

    pub(crate) fn field_line_too_long(&self, bound: LineBound) -> HttpError {
        match bound {
            LineBound::FieldSize => HttpError::fields_too_large(format!(
                "Header field line is too large (more than {} bytes)",
                self.field_size
            )),
            LineBound::Section => HttpError::fields_too_large(format!(
                "Header section is too large (more than {} bytes)",
                self.section_cap()
            )),
        }
    }

    /// Checked at the start of every line of a section, including the empty
    /// line that ends it.
    pub(crate) fn check_section_room(&self, used: usize) -> Result<(), HttpError> {
        if used.saturating_add(2) > self.section_cap() {
            Err(self.field_line_too_long(LineBound::Section))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_gunicorn() {
        let l = Limits::default();
        assert_eq!((l.request_line, l.fields, l.field_size), (4094, 100, 8190));
        assert_eq!(l.request_line_cap(), 4094);
        assert_eq!(l.fields_cap(), 100);
        assert_eq!(l.section_cap(), 100 * 8192 + 4);
    }

    #[test]
    fn zero_request_line_is_unlimited_and_large_values_are_capped() {
        assert_eq!(Limits::new(0, 100, 8190).request_line_cap(), usize::MAX);
        assert_eq!(Limits::new(100_000, 100, 8190).request_line_cap(), 8190);
    }

    #[test]
    fn fields_zero_or_huge_means_gunicorn_maximum() {
        assert_eq!(Limits::new(4094, 0, 8190).fields_cap(), MAX_HEADERS);
        assert_eq!(Limits::new(4094, 1 << 20, 8190).fields_cap(), MAX_HEADERS);
    }

    #[test]
    fn field_size_counts_the_crlf() {
        let l = Limits::new(4094, 100, 10);
        assert_eq!(l.field_line_max(0), (8, LineBound::FieldSize));
    }

    #[test]
    fn unlimited_field_size_is_still_bounded_by_the_section() {
        let l = Limits::new(4094, 2, 0);
        let cap = 2 * 8192 + 4;
        assert_eq!(l.section_cap(), cap);
        assert_eq!(l.field_line_max(0), (cap - 2, LineBound::Section));
        assert_eq!(l.field_line_max(100), (cap - 102, LineBound::Section));
        assert!(l.check_section_room(cap - 2).is_ok());
        assert_eq!(l.check_section_room(cap - 1).unwrap_err().status, 431);
    }
}
