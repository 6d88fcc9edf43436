//! Building the PEP 3333 environ for one request.
//!
//! A per-worker template dict holds every constant key; each request copies
//! it (one C-level dict copy) and sets the rest with keys interned once.

use crate::http::RequestHead;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Where the request came from and arrived at.
pub struct ConnInfo<'a> {
    /// Peer IP as text ("" for unix sockets).
    pub remote_addr: &'a str,
    pub remote_port: Option<u16>,
    /// The listener's own name and port, used when the request has no Host.
    pub server_name: &'a str,
    pub server_port: &'a str,
    /// The peer may set X-Forwarded-* (it is in --forwarded-allow-ips).
    pub trusted_proxy: bool,
    /// How header names and forwarded headers are read.
    pub headers: &'a HeaderPolicy,
    /// The connection is TLS (this server terminated it).
    pub tls: bool,
    /// The client's verified certificate (PEM), with client certificates on.
    pub client_cert: Option<&'a str>,
}

/// gunicorn's `header_map`: what becomes of a header whose name contains
/// `_`, which would share its environ key with the `-` spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMap {
    /// Left out of the environ (gunicorn's default).
    Drop,
    /// The request is answered 400.
    Refuse,
    /// Mapped like `-`; values of both spellings are joined.
    Dangerous,
}

/// gunicorn's header settings, fixed for a worker's life (built from the
/// settings table, which holds gunicorn's defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderPolicy {
    pub header_map: HeaderMap,
    /// `secure_scheme_headers`: (name, value that means HTTPS); names
    /// compare case-insensitively, values exactly, as gunicorn's do.
    pub secure_scheme_headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// `forwarder_headers`: names with `_` a trusted peer may send whatever
    /// `header_map` says; `*` allows every name.
    pub forwarder_headers: Vec<Vec<u8>>,
}

impl HeaderPolicy {
    /// Whether a trusted peer may send `name` past `header_map`.
    fn forwarded(&self, name: &[u8]) -> bool {
        self.forwarder_headers
            .iter()
            .any(|f| f == b"*" || f.eq_ignore_ascii_case(name))
    }

    /// What to do with header `name` from this peer: Ok(true) map it into
    /// the environ, Ok(false) drop it, Err refuse the request.
    fn admit(&self, name: &[u8], trusted: bool) -> Result<bool, EnvironError> {
        if !name.contains(&b'_') || (trusted && self.forwarded(name)) {
            return Ok(true);
        }
        match self.header_map {
            HeaderMap::Drop => Ok(false),
            HeaderMap::Dangerous => Ok(true),
            HeaderMap::Refuse => Err(EnvironError(format!(
                "Invalid HTTP header name: {:?} (header_map is refuse)",
                String::from_utf8_lossy(name)
            ))),
        }
    }
}

/// Keys set on every request, interned once per worker.
pub struct Keys {
    pub request_method: Py<PyString>,
    pub path_info: Py<PyString>,
    pub query_string: Py<PyString>,
    pub raw_uri: Py<PyString>,
    pub server_protocol: Py<PyString>,
    pub remote_addr: Py<PyString>,
    pub remote_port: Py<PyString>,
    pub server_name: Py<PyString>,
    pub server_port: Py<PyString>,
    pub content_type: Py<PyString>,
    pub content_length: Py<PyString>,
    pub wsgi_input: Py<PyString>,
    pub url_scheme: Py<PyString>,
    pub script_name: Py<PyString>,
    pub https: Py<PyString>,
    /// HTTP_* names by lower-cased header name (bounded: names come from clients).
    header_keys: HashMap<Vec<u8>, HeaderEntry, BuildHasherDefault<NameHasher>>,
    method_v: Cached,
    protocol_v: Cached,
    path_info_v: Cached,
    query_v: Cached,
    raw_uri_v: Cached,
    remote_addr_v: Cached,
    remote_port_v: Cached,
    server_name_v: Cached,
    server_port_v: Cached,
    content_type_v: Cached,
    content_length_v: Cached,
}

/// The last value set for one environ key, reused while requests repeat it
/// (same client, same Host, same User-Agent): a byte comparison instead of
/// a new Python string per request.
#[derive(Default)]
struct Cached {
    bytes: Vec<u8>,
    obj: Option<Py<PyString>>,
}

impl Cached {
    /// Whether the object last handed out has exactly these bytes.
    fn holds(&self, bytes: &[u8]) -> bool {
        self.obj.is_some() && self.bytes == bytes
    }

    fn get<'py>(&mut self, py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
        if let Some(obj) = &self.obj {
            if self.bytes == bytes {
                return obj.bind(py).clone();
            }
        }
        let s = latin1(py, bytes);
        if bytes.len() <= 256 {
            self.bytes.clear();
            self.bytes.extend_from_slice(bytes);
            self.obj = Some(s.clone().unbind());
        }
        s
    }
}

/// FNV-1a over header names. The map never holds more than
/// HEADER_KEY_CACHE names, so even names crafted to collide cost a bounded
/// scan; SipHash's flooding protection would only add work per request.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf29ce484222325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        self.0 = h;
    }
}

struct HeaderEntry {
    key: Option<Py<PyString>>,
    value: Cached,
}

const HEADER_KEY_CACHE: usize = 512;

fn interned(py: Python<'_>, s: &str) -> Py<PyString> {
    PyString::intern(py, s).unbind()
}

impl Keys {
    pub fn new(py: Python<'_>) -> Keys {
        Keys {
            request_method: interned(py, "REQUEST_METHOD"),
            path_info: interned(py, "PATH_INFO"),
            query_string: interned(py, "QUERY_STRING"),
            raw_uri: interned(py, "RAW_URI"),
            server_protocol: interned(py, "SERVER_PROTOCOL"),
            remote_addr: interned(py, "REMOTE_ADDR"),
            remote_port: interned(py, "REMOTE_PORT"),
            server_name: interned(py, "SERVER_NAME"),
            server_port: interned(py, "SERVER_PORT"),
            content_type: interned(py, "CONTENT_TYPE"),
            content_length: interned(py, "CONTENT_LENGTH"),
            wsgi_input: interned(py, "wsgi.input"),
            url_scheme: interned(py, "wsgi.url_scheme"),
            script_name: interned(py, "SCRIPT_NAME"),
            https: interned(py, "https"),
            header_keys: HashMap::default(),
            method_v: Cached::default(),
            protocol_v: Cached::default(),
            path_info_v: Cached::default(),
            query_v: Cached::default(),
            raw_uri_v: Cached::default(),
            remote_addr_v: Cached::default(),
            remote_port_v: Cached::default(),
            server_name_v: Cached::default(),
            server_port_v: Cached::default(),
            content_type_v: Cached::default(),
            content_length_v: Cached::default(),
        }
    }

    /// The environ key for a header name and the value cache behind it.
    /// (Whether a name with "_" is mapped at all is `HeaderPolicy::admit`'s
    /// call, made before.)
    fn header_entry(&mut self, py: Python<'_>, name: &[u8]) -> Option<&mut HeaderEntry> {
        let mut stack = [0u8; 64];
        let lower: &[u8] = if name.len() <= stack.len() {
            for (d, s) in stack.iter_mut().zip(name) {
                *d = s.to_ascii_lowercase();
            }
            &stack[..name.len()]
        } else {
            return self.uncached_entry(py, name);
        };
        if !self.header_keys.contains_key(lower) {
            if self.header_keys.len() >= HEADER_KEY_CACHE {
                return self.uncached_entry(py, name);
            }
            let entry = HeaderEntry {
                key: make_header_key(py, name),
                value: Cached::default(),
            };
            self.header_keys.insert(lower.to_vec(), entry);
        }
        self.header_keys.get_mut(lower).filter(|e| e.key.is_some())
    }

    /// For names beyond the cache (very long, or a client sending hundreds of
    /// distinct names): a scratch entry that is not kept.
    fn uncached_entry(&mut self, py: Python<'_>, name: &[u8]) -> Option<&mut HeaderEntry> {
        let key = Some(make_header_key(py, name)?);
        self.header_keys.insert(
            b"\0scratch".to_vec(),
            HeaderEntry {
                key,
                value: Cached::default(),
            },
        );
        self.header_keys.get_mut(&b"\0scratch"[..])
    }
}

fn make_header_key(py: Python<'_>, name: &[u8]) -> Option<Py<PyString>> {
    let mut s = String::with_capacity(5 + name.len());
    s.push_str("HTTP_");
    for &b in name {
        s.push(if b == b'-' {
            '_'
        } else {
            b.to_ascii_uppercase() as char
        });
    }
    Some(PyString::intern(py, &s).unbind())
}

/// Whether two header names map to one environ key (case-insensitively,
/// `-` and `_` alike): then values are joined with "," as gunicorn does;
/// otherwise each is set directly.
fn has_repeated_names(head: &RequestHead, buf: &[u8]) -> bool {
    let same = |a: &[u8], b: &[u8]| {
        let norm = |c: u8| {
            if c == b'_' {
                b'-'
            } else {
                c.to_ascii_lowercase()
            }
        };
        a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| norm(x) == norm(y))
    };
    let names = &head.headers;
    for i in 0..names.len() {
        let a = &buf[names[i].0.clone()];
        for other in &names[..i] {
            if same(a, &buf[other.0.clone()]) {
                return true;
            }
        }
    }
    false
}

/// Bytes as a latin-1 `str` (PEP 3333's "native string").
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return PyString::new(py, unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    let s: String = bytes.iter().map(|&b| b as char).collect();
    PyString::new(py, &s)
}

/// Percent-decode a path; malformed escapes are kept as they are.
pub fn percent_decode(input: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !input.contains(&b'%') {
        return std::borrow::Cow::Borrowed(input);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Split a request-target into (path, query). Absolute-form targets
/// (`http://host/path`) give their path; a fragment is dropped.
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    let mut t = target;
    if let Some(hash) = t.iter().position(|&b| b == b'#') {
        t = &t[..hash];
    }
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &t[scheme.len()..];
            t = match rest.iter().position(|&b| b == b'/' || b == b'?') {
                Some(p) if rest[p] == b'/' => &rest[p..],
                Some(p) => &rest[p..],
                None => b"",
            };
            break;
        }
    }
    match t.iter().position(|&b| b == b'?') {
        Some(q) => (&t[..q], &t[q + 1..]),
        None => (t, b""),
    }
}

/// The scheme front-end proxies claim, per gunicorn's secure_scheme_headers.
/// Err when they contradict each other.
/// Front-end proxies disagree about the scheme (answered 400).
#[derive(Debug)]
pub struct ContradictoryScheme;

pub fn forwarded_scheme(
    head: &RequestHead,
    buf: &[u8],
    secure_headers: &[(Vec<u8>, Vec<u8>)],
) -> Result<Option<bool>, ContradictoryScheme> {
    let mut verdict: Option<bool> = None;
    for (name, value) in head.headers(buf) {
        for (h, secure_value) in secure_headers {
            if name.eq_ignore_ascii_case(h) {
                let secure = value == secure_value.as_slice();
                match verdict {
                    Some(v) if v != secure => return Err(ContradictoryScheme),
                    _ => verdict = Some(secure),
                }
            }
        }
    }
    Ok(verdict)
}

/// Host header → (SERVER_NAME, SERVER_PORT), with the scheme's default port.
fn host_name_port(host: &[u8], https: bool) -> (&[u8], Option<&[u8]>) {
    let default = if https { &b"443"[..] } else { &b"80"[..] };
    if host.first() == Some(&b'[') {
        if let Some(end) = host.iter().position(|&b| b == b']') {
            let rest = &host[end + 1..];
            let port = rest
                .strip_prefix(b":")
                .filter(|p| !p.is_empty())
                .unwrap_or(default);
            return (&host[..=end], Some(port));
        }
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(c) if !host[c + 1..].is_empty() => (&host[..c], Some(&host[c + 1..])),
        Some(c) => (&host[..c], Some(default)),
        None => (host, Some(default)),
    }
}

/// Why an environ could not be built: a client error answered with 400.
pub struct EnvironError(pub String);

/// Copy the template and fill in this request's keys.
pub fn build_environ<'py>(
    py: Python<'py>,
    k: &mut Keys,
    template: &Bound<'py, PyDict>,
    head: &RequestHead,
    buf: &[u8],
    conn: &ConnInfo<'_>,
    script_name: &str,
) -> Result<Bound<'py, PyDict>, EnvironError> {
    // Refusing a header must happen before anything else, and a forwarded
    // SCRIPT_NAME is needed before PATH_INFO is cut.
    let req = RequestParts { head, buf, conn };
    let forwarded_script_name = admit_underscored_headers(&req)?;
    let script_name = forwarded_script_name.as_deref().unwrap_or(script_name);
    let target = head.target(buf);
    let (path, query) = split_target(target);
    let decoded = percent_decode(path);
    let path_info = path_below_script_name(&decoded, path, script_name)?;
    let https = is_https(&req)?;
    let line = RequestLine {
        target,
        query,
        path_info,
        https,
    };
    refresh_template(py, k, template, &req, &line)?;

    let env = template.copy().map_err(|e| EnvironError(e.to_string()))?;
    if conn.remote_port.is_none() {
        // Unix-socket peers have no port.
        env.del_item(k.remote_port.bind(py))
            .map_err(|e| EnvironError(e.to_string()))?;
    }
    if https {
        set_item(py, &env, &k.url_scheme, k.https.bind(py))?;
    }
    if conn.tls {
        set_tls_keys(py, &env, conn)?;
    }
    if let Some(sn) = &forwarded_script_name {
        set_item(py, &env, &k.script_name, &PyString::new(py, sn))?;
    }
    add_headers(py, k, &env, &req)?;
    Ok(env)
}

/// PyDict_SetItem straight away: keys are interned and values already
/// Python objects, so pyo3's generic conversions would only add work.
#[inline]
fn set_item(
    py: Python<'_>,
    dict: &Bound<'_, PyDict>,
    key: &Py<PyString>,
    value: &Bound<'_, PyString>,
) -> Result<(), EnvironError> {
    // SAFETY: GIL held (`py`); the dict, key and value are live objects we
    // hold references to for the length of the call, which takes its own.
    if unsafe { pyo3::ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), value.as_ptr()) } < 0 {
        return Err(EnvironError(PyErr::fetch(py).to_string()));
    }
    Ok(())
}

/// Apply header_map (and forwarder_headers) to every name with `_`, which
/// may refuse the request; the SCRIPT_NAME a trusted forwarder sent, if any.
fn admit_underscored_headers(req: &RequestParts<'_>) -> Result<Option<String>, EnvironError> {
    let RequestParts { head, buf, conn } = *req;
    let mut forwarded_script_name = None;
    for (name, value) in head.headers(buf) {
        if name.contains(&b'_')
            && conn.headers.admit(name, conn.trusted_proxy)?
            && name.eq_ignore_ascii_case(b"script_name")
        {
            // As gunicorn: a SCRIPT_NAME header that got past header_map
            // (a trusted forwarder's, by default) is the SCRIPT_NAME.
            forwarded_script_name = Some(value.iter().map(|&b| b as char).collect::<String>());
        }
    }
    Ok(forwarded_script_name)
}

/// PATH_INFO: the decoded path with SCRIPT_NAME cut off its front; a path
/// outside SCRIPT_NAME is the client's error. (`raw_path` is for the message.)
fn path_below_script_name<'a>(
    decoded: &'a [u8],
    raw_path: &[u8],
    script_name: &str,
) -> Result<&'a [u8], EnvironError> {
    let sn = script_name.as_bytes();
    if sn.is_empty() {
        return Ok(decoded);
    }
    if decoded.starts_with(sn) && (decoded.len() == sn.len() || decoded[sn.len()] == b'/') {
        return Ok(&decoded[sn.len()..]);
    }
    Err(EnvironError(format!(
        "Request path {:?} does not start with SCRIPT_NAME {:?}",
        String::from_utf8_lossy(raw_path),
        script_name
    )))
}

/// Whether `wsgi.url_scheme` is https: this server's TLS, or the scheme a
/// trusted forwarder's secure_scheme_headers name.
fn is_https(req: &RequestParts<'_>) -> Result<bool, EnvironError> {
    let RequestParts { head, buf, conn } = *req;
    if conn.tls {
        return Ok(true);
    }
    if !conn.trusted_proxy {
        return Ok(false);
    }
    match forwarded_scheme(head, buf, &conn.headers.secure_scheme_headers) {
        Ok(v) => Ok(v == Some(true)),
        Err(ContradictoryScheme) => Err(EnvironError("Contradictory scheme headers".into())),
    }
}

/// What the environ is built from: the parsed head, the bytes it indexes,
/// and the connection.
#[derive(Clone, Copy)]
struct RequestParts<'a> {
    head: &'a RequestHead,
    buf: &'a [u8],
    conn: &'a ConnInfo<'a>,
}

/// The parts of the request line the template's keys take.
struct RequestLine<'a> {
    target: &'a [u8],
    query: &'a [u8],
    path_info: &'a [u8],
    https: bool,
}

/// The template keeps the previous request's values for the keys every
/// request has; only the ones that differ are written (into the template),
/// and the copy then carries them. A client repeating the same request pays
/// for one dict copy and its HTTP_* headers.
fn refresh_template(
    py: Python<'_>,
    k: &mut Keys,
    template: &Bound<'_, PyDict>,
    req: &RequestParts<'_>,
    line: &RequestLine<'_>,
) -> Result<(), EnvironError> {
    let RequestParts { head, buf, conn } = *req;
    let refresh =
        |cache: &mut Cached, key: &Py<PyString>, bytes: &[u8]| -> Result<(), EnvironError> {
            if !cache.holds(bytes) {
                let obj = cache.get(py, bytes);
                set_item(py, template, key, &obj)?;
            }
            Ok(())
        };
    refresh(&mut k.method_v, &k.request_method, head.method(buf))?;
    refresh(&mut k.path_info_v, &k.path_info, line.path_info)?;
    refresh(&mut k.raw_uri_v, &k.raw_uri, line.target)?;
    refresh(&mut k.query_v, &k.query_string, line.query)?;
    refresh(
        &mut k.protocol_v,
        &k.server_protocol,
        if head.minor_version == 0 {
            b"HTTP/1.0"
        } else {
            b"HTTP/1.1"
        },
    )?;
    refresh(
        &mut k.remote_addr_v,
        &k.remote_addr,
        conn.remote_addr.as_bytes(),
    )?;
    if let Some(port) = conn.remote_port {
        refresh(
            &mut k.remote_port_v,
            &k.remote_port,
            itoa::Buffer::new().format(port).as_bytes(),
        )?;
    }
    let (name, port) = match head.header(buf, b"host").filter(|h| !h.is_empty()) {
        Some(h) => {
            let (name, port) = host_name_port(h, line.https);
            (name, port.unwrap_or(b""))
        }
        None => (conn.server_name.as_bytes(), conn.server_port.as_bytes()),
    };
    refresh(&mut k.server_name_v, &k.server_name, name)?;
    refresh(&mut k.server_port_v, &k.server_port, port)
}

/// HTTPS and SSL_CLIENT_CERT, as Apache's mod_ssl (and so mod_wsgi) sets them.
fn set_tls_keys(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    conn: &ConnInfo<'_>,
) -> Result<(), EnvironError> {
    env.set_item(pyo3::intern!(py, "HTTPS"), pyo3::intern!(py, "on"))
        .map_err(|e| EnvironError(e.to_string()))?;
    if let Some(pem) = conn.client_cert {
        env.set_item(pyo3::intern!(py, "SSL_CLIENT_CERT"), pem)
            .map_err(|e| EnvironError(e.to_string()))?;
    }
    Ok(())
}

/// CONTENT_TYPE, CONTENT_LENGTH and an HTTP_* key per admitted header; the
/// values of a repeated name are joined with ",".
fn add_headers(
    py: Python<'_>,
    k: &mut Keys,
    env: &Bound<'_, PyDict>,
    req: &RequestParts<'_>,
) -> Result<(), EnvironError> {
    let RequestParts { head, buf, conn } = *req;
    let repeated = has_repeated_names(head, buf);
    for (name, value) in head.headers(buf) {
        if name.contains(&b'_') && !conn.headers.admit(name, conn.trusted_proxy)? {
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-type") {
            set_item(py, env, &k.content_type, &k.content_type_v.get(py, value))?;
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            set_item(
                py,
                env,
                &k.content_length,
                &k.content_length_v.get(py, value),
            )?;
            continue;
        }
        let Some(entry) = k.header_entry(py, name) else {
            continue;
        };
        let Some(key) = entry.key.as_ref() else {
            continue;
        };
        let previous = if repeated {
            env.get_item(key.bind(py))
                .map_err(|e| EnvironError(e.to_string()))?
        } else {
            None
        };
        let value_obj = match previous {
            Some(prev) => {
                let mut s: String = prev.extract().unwrap_or_default();
                s.push(',');
                s.extend(value.iter().map(|&b| b as char));
                PyString::new(py, &s)
            }
            None => entry.value.get(py, value),
        };
        set_item(py, env, key, &value_obj)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(
            split_target(b"/a/b?x=1&y=2"),
            (&b"/a/b"[..], &b"x=1&y=2"[..])
        );
        assert_eq!(split_target(b"/a#frag"), (&b"/a"[..], &b""[..]));
        assert_eq!(
            split_target(b"http://example.com/p?q"),
            (&b"/p"[..], &b"q"[..])
        );
        assert_eq!(split_target(b"http://example.com"), (&b""[..], &b""[..]));
        assert_eq!(split_target(b"*"), (&b"*"[..], &b""[..]));
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(&*percent_decode(b"/a%20b%2Fc"), b"/a b/c");
        assert_eq!(&*percent_decode(b"/100%"), b"/100%");
        assert_eq!(&*percent_decode(b"/%zz%4"), b"/%zz%4");
        assert_eq!(&*percent_decode(b"/%e9"), b"/\xe9");
    }

    #[test]
    fn host_header_gives_server_name_and_port() {
        assert_eq!(
            host_name_port(b"example.com:8080", false),
            (&b"example.com"[..], Some(&b"8080"[..]))
        );
        assert_eq!(
            host_name_port(b"example.com", false),
            (&b"example.com"[..], Some(&b"80"[..]))
        );
        assert_eq!(
            host_name_port(b"example.com", true),
            (&b"example.com"[..], Some(&b"443"[..]))
        );
        assert_eq!(
            host_name_port(b"[::1]:9000", false),
            (&b"[::1]"[..], Some(&b"9000"[..]))
        );
    }
}
