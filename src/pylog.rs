//! Python's logging as the destination of the server's log lines, when a
//! `logconfig`, `logconfig_dict` or `logconfig_json` setting asks for it
//! (or a `logger_class` other than gunicorn's).
//!
//! The configuration is applied in the master as gunicorn's
//! `glogging.Logger.setup` applies it (see `pylog.py`); workers inherit it
//! through fork. Then every error line goes to `gunicorn.error.log(level,
//! msg)` and every access line to `gunicorn.access.info(access_log_format,
//! atoms)` with gunicorn's atoms dict, so a formatter written for gunicorn
//! reads the same `record.args`. Access lines are emitted on the request's
//! own thread, holding the GIL only for that call.
//!
//! Without these settings nothing here runs: [`active`] is one relaxed load.

use crate::access_log::AccessRecord;
use crate::config::Config;
use crate::log::Level;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString};
use pyo3::{intern, Py};
use std::borrow::Cow;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

const SOURCE: &str = include_str!("pylog.py");

static ACTIVE: AtomicBool = AtomicBool::new(false);
static MODULE: OnceLock<Py<PyModule>> = OnceLock::new();
static LOGGERS: RwLock<Option<Arc<Loggers>>> = RwLock::new(None);

struct Loggers {
    /// `gunicorn.error.log`
    error_log: Py<PyAny>,
    /// `gunicorn.access.info`
    access_info: Py<PyAny>,
    safe_atoms: Py<PyAny>,
    access_format: Py<PyString>,
    /// With logger_class: `pylog.class_access` and the instance.
    class_access: Option<(Py<PyAny>, Py<PyAny>)>,
}

/// Whether error and access lines go to Python's logging.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Whether `cfg` asks for Python's logging.
pub fn wanted(cfg: &Config) -> bool {
    cfg.logconfig.is_some()
        || cfg.logconfig_json.is_some()
        || cfg.logconfig_dict
        || cfg.logger_class.is_some()
}

fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    if let Some(m) = MODULE.get() {
        return Ok(m.bind(py).clone());
    }
    let code = CString::new(SOURCE).expect("pylog source has no NUL");
    let m = PyModule::from_code(py, &code, c"<ferricorn.pylog>", c"_ferricorn_pylog")?;
    let _ = MODULE.set(m.clone().unbind());
    Ok(m)
}

fn current() -> Option<Arc<Loggers>> {
    LOGGERS.read().ok()?.clone()
}

/// Apply `cfg`'s logging configuration (the interpreter must be
/// initialised). A broken configuration is an error naming the file (and
/// line where there is one); the configuration applied before, if any,
/// stays in force.
pub fn configure(cfg: &Config) -> Result<(), String> {
    let loggers = Python::attach(|py| -> Result<Loggers, String> {
        let m = module(py).map_err(|e| format!("internal error: {e}"))?;
        let cfg_obj =
            crate::hooks::cfg_object(py, cfg).map_err(|e| format!("internal error: {e}"))?;
        // The config file's own dict (with its objects), unless a hook's
        // cfg.set replaced it.
        let raw_dict = crate::settings::file_py::logconfig_dict(py).filter(|_| {
            cfg.values.iter().any(|(n, v)| {
                *n == "logconfig_dict"
                    && matches!(v, crate::settings::Value::Dict(d) if !d.is_empty())
            })
        });
        if let Some(d) = &raw_dict {
            let _ = cfg_obj
                .getattr("_values")
                .and_then(|v| v.set_item("logconfig_dict", d));
        }
        let set_up = match &cfg.logger_class {
            Some(class) => m.call_method1("setup_class", (class, cfg_obj)).map(|inst| {
                let pair = (inst.clone(), inst.clone());
                (pair, Some(inst))
            }),
            None => m
                .call_method1("setup", (cfg_obj,))
                .and_then(|pair| pair.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>())
                .map(|pair| (pair, None)),
        };
        let ((error_logger, access_logger), instance) = match set_up {
            Ok(r) => r,
            Err(e) => {
                let config_error = m
                    .getattr("ConfigError")
                    .is_ok_and(|c| e.get_type(py).is(&c));
                return Err(if config_error {
                    e.value(py).to_string()
                } else {
                    let tb = e
                        .traceback(py)
                        .and_then(|t| t.format().ok())
                        .unwrap_or_default();
                    format!("{tb}{e}")
                });
            }
        };
        let level: u8 = m
            .call_method0("effective_level")
            .and_then(|l| l.extract::<i64>())
            .map(|l| l.clamp(0, 50) as u8)
            .unwrap_or(Level::Info as u8);
        crate::log::set_threshold(level);
        let attr = |o: &Bound<'_, PyAny>, name| {
            o.getattr(name)
                .map(Bound::unbind)
                .map_err(|e| format!("internal error: {e}"))
        };
        let class_access = match instance {
            Some(inst) => Some((attr(m.as_any(), "class_access")?, inst.unbind())),
            None => None,
        };
        Ok(Loggers {
            error_log: attr(&error_logger, "log")?,
            access_info: attr(&access_logger, "info")?,
            class_access,
            safe_atoms: attr(m.as_any(), "SafeAtoms")?,
            access_format: PyString::new(py, &cfg.access_logformat).unbind(),
        })
    })?;
    if let Ok(mut g) = LOGGERS.write() {
        *g = Some(Arc::new(loggers));
    }
    ACTIVE.store(true, Ordering::Relaxed);
    Ok(())
}

/// Back to the Rust log path (a reload removed the logging settings, or
/// the interpreter is about to be finalized).
pub fn deactivate() {
    if !ACTIVE.swap(false, Ordering::Relaxed) {
        return;
    }
    crate::log::set_threshold(crate::log::configured_level() as u8);
    // The Python objects are not dropped here: the caller may not hold the
    // GIL, and they are few and live as long as the interpreter anyway.
    if let Ok(mut g) = LOGGERS.write() {
        if let Some(l) = g.take() {
            std::mem::forget(l);
        }
    }
}

/// One error-log line through `gunicorn.error`.
pub fn error(level: Level, msg: &str) {
    let Some(l) = current() else { return };
    Python::attach(|py| {
        // A failing handler reports itself (logging's handleError); an
        // exception here can only come from a broken logger object.
        if let Err(e) = l.error_log.bind(py).call1((level as u8, msg)) {
            crate::log::raw_error(&format!("gunicorn.error logger failed: {e}\n"));
        }
    });
}

/// USR1: reopen the files of Python's FileHandlers, as gunicorn does.
pub fn reopen() {
    if !active() {
        return;
    }
    Python::attach(|py| {
        if let Err(e) = module(py).and_then(|m| m.call_method0("reopen_files")) {
            crate::log::raw_error(&format!("Cannot reopen Python log files: {e}\n"));
        }
    });
}

/// gunicorn's SafeAtoms escapes double quotes in string atoms.
fn esc(s: &str) -> Cow<'_, str> {
    if s.contains('"') {
        Cow::Owned(s.replace('"', "\\\""))
    } else {
        Cow::Borrowed(s)
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// One access line through `gunicorn.access`, with gunicorn's atoms as
/// `record.args`.
pub fn access(rec: &AccessRecord<'_>) {
    let Some(l) = current() else { return };
    Python::attach(|py| {
        let result = (|| -> PyResult<()> {
            if let Some((f, inst)) = &l.class_access {
                return class_access(py, f.bind(py), inst.bind(py), rec);
            }
            let atoms = l.safe_atoms.bind(py).call0()?;
            let d = atoms.cast::<PyDict>()?;
            fill_atoms(py, d, rec)?;
            l.access_info
                .bind(py)
                .call1((l.access_format.bind(py), atoms.clone()))?;
            Ok(())
        })();
        if let Err(e) = result {
            let tb = e
                .traceback(py)
                .and_then(|t| t.format().ok())
                .unwrap_or_default();
            crate::error!("{tb}{e}");
        }
    });
}

fn class_access(
    py: Python<'_>,
    f: &Bound<'_, PyAny>,
    inst: &Bound<'_, PyAny>,
    r: &AccessRecord<'_>,
) -> PyResult<()> {
    // gunicorn's request headers: upper-cased names, in order.
    let req_headers: Vec<(String, String)> = r
        .request_headers
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).to_ascii_uppercase(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let resp_headers: Vec<(&str, &str)> = r
        .response_headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let args = (
        inst,
        r.status.to_string(),
        r.response_length.unwrap_or(0),
        resp_headers,
        req_headers,
        r.method,
        r.target,
        r.path,
        r.query,
        r.version,
        r.remote_addr,
        r.duration.as_micros() as u64,
    );
    let _ = py;
    f.call1(args).map(drop)
}

/// The atoms gunicorn's `Logger.atoms` computes, with the same types:
/// `s` and `b` strings, `B`, `T`, `D`, `M` integers, `{name}i` / `{name}o`
/// request and response headers under lower-cased names.
fn fill_atoms(py: Python<'_>, d: &Bound<'_, PyDict>, r: &AccessRecord<'_>) -> PyResult<()> {
    let micros = r.duration.as_micros() as u64;
    let secs = micros / 1_000_000;
    let sub = micros % 1_000_000;
    let header = |name: &str| -> Option<String> {
        r.request_headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let user = header("authorization")
        .and_then(|v| crate::access_log::basic_auth_user(&v))
        .unwrap_or_else(|| "-".to_string());
    let referer = header("referer").unwrap_or_else(|| "-".into());
    let agent = header("user-agent").unwrap_or_else(|| "-".into());
    let time = chrono::Local::now()
        .format("[%d/%b/%Y:%H:%M:%S %z]")
        .to_string();
    let request_line = format!("{} {} {}", r.method, r.target, r.version);
    let sent = r.response_length.unwrap_or(0);
    d.set_item(intern!(py, "h"), esc(or_dash(r.remote_addr)))?;
    d.set_item(intern!(py, "l"), "-")?;
    d.set_item(intern!(py, "u"), esc(&user))?;
    d.set_item(intern!(py, "t"), time)?;
    d.set_item(intern!(py, "r"), esc(&request_line))?;
    d.set_item(intern!(py, "s"), r.status.to_string())?;
    d.set_item(intern!(py, "m"), esc(r.method))?;
    d.set_item(intern!(py, "U"), esc(r.path))?;
    d.set_item(intern!(py, "q"), esc(r.query))?;
    d.set_item(intern!(py, "H"), r.version)?;
    d.set_item(intern!(py, "b"), sent.to_string())?;
    d.set_item(intern!(py, "B"), sent)?;
    d.set_item(intern!(py, "f"), esc(&referer))?;
    d.set_item(intern!(py, "a"), esc(&agent))?;
    d.set_item(intern!(py, "T"), secs)?;
    d.set_item(intern!(py, "D"), micros)?;
    d.set_item(intern!(py, "M"), micros / 1000)?;
    d.set_item(intern!(py, "L"), format!("{secs}.{sub:06}"))?;
    d.set_item(intern!(py, "p"), format!("<{}>", std::process::id()))?;
    let mut key = String::with_capacity(40);
    for (n, v) in r.request_headers {
        key.clear();
        key.push('{');
        key.push_str(&String::from_utf8_lossy(n).to_ascii_lowercase());
        key.push_str("}i");
        d.set_item(key.as_str(), esc(&String::from_utf8_lossy(v)))?;
    }
    for (n, v) in r.response_headers {
        key.clear();
        key.push('{');
        key.push_str(&n.to_ascii_lowercase());
        key.push_str("}o");
        d.set_item(key.as_str(), esc(v))?;
    }
    Ok(())
}
