//! The `ssl_context` hook: the TLS context gunicorn lets a config adjust.

use super::{cfg_object, helper, traceback_of};
use crate::config::Config;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// gunicorn's `ssl_context(config, default_ssl_context_factory)`: the hook
/// gets a factory for the context the settings make (`hooks.py`
/// `TLSContext`), adjusts it or makes its own, and returns it; what it
/// returns is read back into the settings rustls is configured from. Called
/// by the master at start and on each HUP; without the hook, `t` as it is.
pub fn ssl_context(
    cfg: &Config,
    t: &crate::tls::TlsSettings,
) -> Result<crate::tls::TlsSettings, String> {
    let Some(hook) = cfg.hooks.get("ssl_context") else {
        return Ok(t.clone());
    };
    if !crate::python::is_initialized() {
        return Ok(t.clone());
    }
    Python::attach(|py| {
        let h = helper(py).map_err(|e| e.to_string())?;
        let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let factory = h
            .getattr("default_ssl_context_factory")
            .and_then(|f| {
                f.call1((
                    t.certfile.display().to_string(),
                    path(&t.keyfile),
                    path(&t.ca_certs),
                    t.cert_reqs,
                    t.ciphers.clone(),
                ))
            })
            .map_err(|e| e.to_string())?;
        let c = cfg_object(py, cfg).map_err(|e| e.to_string())?;
        let args = PyTuple::new(py, [c, factory]).map_err(|e| e.to_string())?;
        let args =
            PyTuple::new(py, &args.as_slice()[..hook.arity.min(2)]).map_err(|e| e.to_string())?;
        let ctx = hook.callable.bind(py).call1(args).map_err(|e| {
            format!(
                "Exception in ssl_context hook\n{}",
                traceback_of(py, &e).trim_end()
            )
        })?;
        let class = h.getattr("TLSContext").map_err(|e| e.to_string())?;
        if !ctx.is_instance(&class).unwrap_or(false) {
            return Err(format!(
                "ssl_context hook returned {}, not the context default_ssl_context_factory() made: ferricorn serves TLS with rustls and can only apply that context's settings",
                ctx.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ));
        }
        settings_from_context(&ctx)
    })
}

/// The settings a `TLSContext` (hooks.py) ends up with, for rustls; what
/// rustls cannot apply is an error naming it.
fn settings_from_context(ctx: &Bound<'_, PyAny>) -> Result<crate::tls::TlsSettings, String> {
    use crate::tls::Version;
    type Export = (
        String,
        Option<String>,
        Option<String>,
        i64,
        Option<String>,
        i64,
        i64,
        Vec<String>,
        Vec<String>,
    );
    let (certfile, keyfile, cafile, verify, ciphers, min, max, alpn, unsupported): Export = ctx
        .call_method0("_export")
        .and_then(|e| e.extract())
        .map_err(|e| format!("ssl_context hook: {e}"))?;
    if let Some(first) = unsupported.first() {
        return Err(format!(
            "ssl_context hook uses {first}, which ferricorn cannot apply to rustls{}",
            if unsupported.len() > 1 {
                format!(" (also: {})", unsupported[1..].join(", "))
            } else {
                String::new()
            }
        ));
    }
    // ssl.TLSVersion: MINIMUM_SUPPORTED -2, MAXIMUM_SUPPORTED -1,
    // TLSv1 0x301 .. TLSv1_3 0x304.
    let min_version = match min {
        -2 | 0..=0x303 => Version::Tls12,
        _ => Version::Tls13,
    };
    let max_version =
        match max {
            -1 | 0x304.. => Version::Tls13,
            0x303 => Version::Tls12,
            _ => return Err(
                "ssl_context hook sets maximum_version below TLS 1.2, which rustls does not speak"
                    .into(),
            ),
        };
    Ok(crate::tls::TlsSettings {
        certfile: certfile.into(),
        keyfile: keyfile.map(Into::into),
        ca_certs: cafile.map(Into::into),
        cert_reqs: verify,
        ciphers,
        min_version,
        max_version,
        alpn: alpn.into_iter().map(String::into_bytes).collect(),
    })
}
