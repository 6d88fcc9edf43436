//! TLS with rustls: gunicorn's `certfile`/`keyfile`/`ca_certs`/`cert_reqs`/
//! `ciphers`/`ssl_version` turned into one `rustls::ServerConfig`.
//!
//! The master builds it (reading the key while it still has its start-up
//! privileges), before forking; workers inherit it and serve every bind
//! with it. SIGHUP builds a new one from the files as they are then: new
//! workers get the new certificate, old ones finish their connections on
//! the old, and a certificate or key that does not load keeps the old
//! configuration (see `master/reconfig.rs`). The handshake itself runs in
//! the worker's event loop (`worker/serve.rs`), record I/O in `stream.rs`.

pub mod ciphers;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Lowest and highest protocol version offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

/// What the TLS settings (and an `ssl_context` hook) ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub certfile: PathBuf,
    /// None: the key is in `certfile`, as with Python's `load_cert_chain`.
    pub keyfile: Option<PathBuf>,
    pub ca_certs: Option<PathBuf>,
    /// 0 no client certificate, 1 optional, 2 required (Python's CERT_*).
    pub cert_reqs: i64,
    pub ciphers: Option<String>,
    pub min_version: Version,
    pub max_version: Version,
    /// ALPN protocols offered; gunicorn serves HTTP/1.1 only.
    pub alpn: Vec<Vec<u8>>,
}

impl TlsSettings {
    /// From the settings table; None when `certfile` is unset (plain HTTP).
    pub fn from_settings(s: &crate::settings::Settings) -> Result<Option<TlsSettings>, String> {
        let Some(certfile) = s.str("certfile").filter(|c| !c.is_empty()) else {
            if let Some(k) = s.str("keyfile").filter(|k| !k.is_empty()) {
                return Err(format!(
                    "keyfile {k} is set but certfile is not: give --certfile too"
                ));
            }
            return Ok(None);
        };
        let cert_reqs = s.int("cert_reqs");
        if !(0..=2).contains(&cert_reqs) {
            return Err(format!(
                "cert_reqs must be 0 (none), 1 (optional) or 2 (required), not {cert_reqs}"
            ));
        }
        let min_version = parse_ssl_version(s.get("ssl_version"))?;
        Ok(Some(TlsSettings {
            certfile: PathBuf::from(certfile),
            keyfile: s
                .str("keyfile")
                .filter(|k| !k.is_empty())
                .map(PathBuf::from),
            ca_certs: s
                .str("ca_certs")
                .filter(|k| !k.is_empty())
                .map(PathBuf::from),
            cert_reqs,
            ciphers: s.str("ciphers").map(String::from),
            min_version,
            max_version: Version::Tls13,
            alpn: vec![b"http/1.1".to_vec()],
        }))
    }
}

/// gunicorn's `ssl_version`, read as the lowest version offered. The
/// protocol numbers and names are Python's `ssl.PROTOCOL_*`; those below
/// TLS 1.2 (which rustls does not speak) mean "1.2 or later".
fn parse_ssl_version(v: &crate::settings::Value) -> Result<Version, String> {
    use crate::settings::Value;
    let bad = |shown: String| {
        format!("ssl_version {shown} is not a protocol ferricorn knows: use TLS (2, the default), TLSv1_2 (5) or TLSv1_3")
    };
    match v {
        Value::None => Ok(Version::Tls12),
        Value::Int(2..=5) | Value::Int(16) | Value::Int(17) => Ok(Version::Tls12),
        Value::Int(n) => Err(bad(n.to_string())),
        Value::Str(s) => {
            let name = s.trim().trim_start_matches("PROTOCOL_");
            match name {
                "TLS" | "SSLv23" | "TLS_SERVER" | "TLS_CLIENT" | "TLSv1" | "TLSv1_1"
                | "TLSv1_2" | "TLSv1.2" => Ok(Version::Tls12),
                "TLSv1_3" | "TLSv1.3" => Ok(Version::Tls13),
                _ => match name.parse::<i64>() {
                    Ok(n) => parse_ssl_version(&Value::Int(n)),
                    Err(_) => Err(bad(format!("{s:?}"))),
                },
            }
        }
        other => Err(bad(format!("{other:?}"))),
    }
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("cannot read {what} {}: {why}", path.display())
    })
}

fn certs_in(what: &str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {} holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\")",
            path.display()
        ));
    }
    Ok(certs)
}

fn key_in(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "keyfile {} is encrypted (passphrase-protected); ferricorn needs an unencrypted key (openssl pkey -in KEY -out PLAIN_KEY)",
            path.display()
        ));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "keyfile {} holds no private key (expected PEM \"-----BEGIN PRIVATE KEY-----\")",
            path.display()
        ),
        e => format!("keyfile {} is not a valid private key: {e}", path.display()),
    })
}

/// The provider every configuration uses: ring (see the README's TLS notes).
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Read the files and build the configuration workers serve with.
pub fn build(t: &TlsSettings) -> Result<Arc<ServerConfig>, String> {
    let mut provider = provider();
    if let Some(list) = &t.ciphers {
        provider.cipher_suites = ciphers::select(list, &provider.cipher_suites)?;
    }
    let versions = protocol_versions(t)?;
    let has12 = provider
        .cipher_suites
        .iter()
        .any(|c| matches!(c, rustls::SupportedCipherSuite::Tls12(_)));
    if t.min_version == Version::Tls12 && t.max_version == Version::Tls12 && !has12 {
        return Err("ciphers leaves no TLS 1.2 suite and TLS 1.3 is disabled".into());
    }
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS settings cannot be combined: {e}"))?;

    let builder = match t.cert_reqs {
        0 => builder.with_no_client_auth(),
        n => builder.with_client_cert_verifier(client_verifier(t, n, provider)?),
    };

    let cert_pem = read("certfile", &t.certfile)?;
    let chain = certs_in("certfile", &t.certfile, &cert_pem)?;
    let (key_path, key_pem) = match &t.keyfile {
        Some(k) => (k.as_path(), read("keyfile", k)?),
        None => (t.certfile.as_path(), cert_pem.clone()),
    };
    let key = key_in(key_path, &key_pem)?;
    let mut cfg = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "keyfile {} does not match the certificate in certfile {}",
            key_path.display(),
            t.certfile.display()
        ),
        e => format!(
            "certfile {} / keyfile {}: {e}",
            t.certfile.display(),
            key_path.display()
        ),
    })?;
    cfg.alpn_protocols = t.alpn.clone();
    // Session tickets under one key made before fork: a client resumes on
    // whichever worker its next connection reaches.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| format!("cannot make TLS session-ticket keys: {e}"))?;
    Ok(Arc::new(cfg))
}

/// The protocol versions from the lowest to the highest asked for.
fn protocol_versions(
    t: &TlsSettings,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    Ok(match (t.min_version, t.max_version) {
        (Version::Tls12, Version::Tls13) => {
            vec![&rustls::version::TLS12, &rustls::version::TLS13]
        }
        (Version::Tls12, Version::Tls12) => vec![&rustls::version::TLS12],
        (Version::Tls13, Version::Tls13) => vec![&rustls::version::TLS13],
        (Version::Tls13, Version::Tls12) => {
            return Err("the TLS context's minimum_version is above its maximum_version".into())
        }
    })
}

/// Client certificates signed by the CAs in `ca_certs`: optional when
/// `cert_reqs` is 1, required when it is 2.
fn client_verifier(
    t: &TlsSettings,
    cert_reqs: i64,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let Some(ca) = &t.ca_certs else {
        return Err(format!(
            "cert_reqs {cert_reqs} asks for client certificates but ca_certs is not set: give --ca-certs FILE with the CAs that sign them"
        ));
    };
    let pem = read("ca_certs", ca)?;
    let mut roots = RootCertStore::empty();
    for c in certs_in("ca_certs", ca, &pem)? {
        roots.add(c).map_err(|e| {
            format!(
                "ca_certs {}: a certificate cannot be used as a CA: {e}",
                ca.display()
            )
        })?;
    }
    let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let v = if cert_reqs == 1 {
        v.allow_unauthenticated()
    } else {
        v
    };
    v.build()
        .map_err(|e| format!("ca_certs {}: {e}", ca.display()))
}

/// The peer's verified certificate as PEM (`SSL_CLIENT_CERT`), if it sent one.
pub fn peer_cert_pem(conn: &rustls::ServerConnection) -> Option<String> {
    let der = conn.peer_certificates()?.first()?;
    Some(pem_of(der.as_ref()))
}

fn pem_of(der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= n {
                b64.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_through_pki_types() {
        for len in [1usize, 2, 3, 100, 1000] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let pem = pem_of(&der);
            let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), &der[..]);
        }
    }
}
