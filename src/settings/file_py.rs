//! Python config files (`gunicorn.conf.py`, `-c python:MODULE`), executed in
//! the embedded interpreter. As in gunicorn, every module-level name that is
//! a setting is taken and every other name is ignored; values are then
//! validated like any other source's. Hook callables are kept as Python
//! objects for the server to call later.

use super::table::{find, Kind, Setting};
use super::value::Value;
use super::{FileEntry, Hook, Location, Raw, SettingsError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyModule, PyString, PyTuple, PyType,
};
use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

const HELPER_SOURCE: &str = include_str!("config_file.py");

fn helper(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let code = CString::new(HELPER_SOURCE).expect("helper source has no NUL");
    PyModule::from_code(py, &code, c"<ferricorn.settings>", c"_ferricorn_settings")
}

/// `gunicorn.SERVER` / `gunicorn.SERVER_SOFTWARE` as the last config file
/// read left them, for [`take_server_names`].
static SERVER_NAMES: std::sync::Mutex<Option<crate::server_name::ServerNames>> =
    std::sync::Mutex::new(None);

/// The names the last Python config file set (once).
pub fn take_server_names() -> crate::server_name::ServerNames {
    SERVER_NAMES
        .lock()
        .ok()
        .and_then(|mut g| g.take())
        .unwrap_or_default()
}

fn prepare_gunicorn(helper: &Bound<'_, PyModule>) -> PyResult<()> {
    helper
        .call_method1(
            "prepare_gunicorn",
            (
                env!("FERRICORN_VERSION"),
                crate::server_name::DEFAULT_SERVER,
                crate::server_name::DEFAULT_SOFTWARE,
            ),
        )
        .map(drop)
}

fn record_gunicorn_names(helper: &Bound<'_, PyModule>) {
    let names = helper
        .call_method0("gunicorn_names")
        .and_then(|t| t.extract::<(Option<String>, Option<String>)>())
        .unwrap_or_default();
    if let Ok(mut g) = SERVER_NAMES.lock() {
        *g = Some(crate::server_name::ServerNames {
            server: names.0,
            software: names.1,
        });
    }
}

fn need_python(path: &Path) -> Result<(), SettingsError> {
    if crate::python::is_initialized() {
        return Ok(());
    }
    Err(SettingsError::invalid(
        Location::File {
            path: path.to_path_buf(),
            line: None,
        },
        "a Python config file needs the embedded interpreter, which is not initialised",
    ))
}

fn internal(path: &Path, e: PyErr) -> SettingsError {
    SettingsError::invalid(
        Location::File {
            path: path.to_path_buf(),
            line: None,
        },
        format!("internal error: {e}"),
    )
}

/// The interpreter looks for modules the config imports (and `python:`
/// config modules) in the directory the server was started from, as
/// gunicorn puts that directory first on `sys.path` before loading the config.
fn ensure_on_path(py: Python<'_>, dir: &Path) -> PyResult<()> {
    let path = py.import("sys")?.getattr("path")?;
    let d = dir.to_string_lossy();
    if !path.contains(d.as_ref())? {
        path.call_method1("insert", (0, d.as_ref()))?;
    }
    Ok(())
}

/// Turn an exception raised while running the config into an error naming
/// the file and the line in it.
fn exec_error(
    py: Python<'_>,
    helper: &Bound<'_, PyModule>,
    path: &Path,
    err: PyErr,
) -> SettingsError {
    let shown = path.to_string_lossy();
    let located = helper
        .call_method1("locate", (err.value(py), err.traceback(py), shown.as_ref()))
        .and_then(|t| t.extract::<(Option<usize>, String, String)>());
    match located {
        Ok((line, summary, full)) => SettingsError::Invalid {
            at: Location::File {
                path: path.to_path_buf(),
                line,
            },
            message: summary,
            traceback: Some(full),
        },
        Err(_) => SettingsError::invalid(
            Location::File {
                path: path.to_path_buf(),
                line: None,
            },
            err.to_string(),
        ),
    }
}

/// Execute a Python config file and return the settings it sets.
pub fn load_file(path: &Path, cwd: &Path) -> Result<Vec<FileEntry>, SettingsError> {
    need_python(path)?;
    Python::attach(|py| {
        let helper = helper(py).map_err(|e| internal(path, e))?;
        ensure_on_path(py, cwd).map_err(|e| internal(path, e))?;
        prepare_gunicorn(&helper).map_err(|e| internal(path, e))?;
        if let Ok(mut g) = LOGCONFIG_DICT.lock() {
            *g = None;
        }
        let shown = path.to_string_lossy();
        let (namespace, lines) = match helper.call_method1("exec_file", (shown.as_ref(),)) {
            Ok(r) => r
                .extract::<(Bound<'_, PyDict>, HashMap<String, usize>)>()
                .map_err(|e| internal(path, e))?,
            Err(e) => return Err(exec_error(py, &helper, path, e)),
        };
        record_gunicorn_names(&helper);
        collect(&helper, path, &namespace, &lines)
    })
}

/// Import `python:MODULE` and return the settings it sets, plus the
/// module's file (for messages and `--print-config`).
pub fn load_module(name: &str, cwd: &Path) -> Result<(Vec<FileEntry>, PathBuf), SettingsError> {
    let label = PathBuf::from(format!("python:{name}"));
    need_python(&label)?;
    Python::attach(|py| {
        let helper = helper(py).map_err(|e| internal(&label, e))?;
        ensure_on_path(py, cwd).map_err(|e| internal(&label, e))?;
        prepare_gunicorn(&helper).map_err(|e| internal(&label, e))?;
        if let Ok(mut g) = LOGCONFIG_DICT.lock() {
            *g = None;
        }
        let (namespace, lines, file) = match helper.call_method1("import_module", (name,)) {
            Ok(r) => r
                .extract::<(Bound<'_, PyDict>, HashMap<String, usize>, Option<String>)>()
                .map_err(|e| internal(&label, e))?,
            Err(e) => {
                // Point at the module's file when the error happened inside it.
                let file = py
                    .import("importlib.util")
                    .and_then(|u| u.call_method1("find_spec", (name,)))
                    .and_then(|spec| spec.getattr("origin"))
                    .and_then(|o| o.extract::<Option<String>>())
                    .ok()
                    .flatten();
                return Err(match file {
                    Some(f) => exec_error(py, &helper, Path::new(&f), e),
                    None => SettingsError::invalid(
                        Location::File {
                            path: label.clone(),
                            line: None,
                        },
                        e.to_string(),
                    ),
                });
            }
        };
        record_gunicorn_names(&helper);
        let path = file.map(PathBuf::from).unwrap_or(label);
        Ok((collect(&helper, &path, &namespace, &lines)?, path))
    })
}

fn collect(
    helper: &Bound<'_, PyModule>,
    path: &Path,
    namespace: &Bound<'_, PyDict>,
    lines: &HashMap<String, usize>,
) -> Result<Vec<FileEntry>, SettingsError> {
    let mut out = Vec::new();
    for (key, obj) in namespace.iter() {
        let Ok(name) = key.extract::<String>() else {
            continue;
        };
        // Unknown names (imports, helpers, constants) are ignored, as gunicorn does.
        let Some(setting) = find(&name) else { continue };
        let line = lines.get(&name).copied();
        let at = || Location::File {
            path: path.to_path_buf(),
            line,
        };
        let raw = if let Kind::Hook(_) = setting.kind {
            if obj.is_callable() && !obj.is_instance_of::<PyString>() {
                Raw::Hook(
                    hook_from_object(helper, setting, &obj)
                        .map_err(|m| SettingsError::invalid(at(), m))?,
                )
            } else {
                Raw::Value(
                    to_value(helper, &obj)
                        .map_err(|m| SettingsError::invalid(at(), format!("{name}: {m}")))?,
                )
            }
        } else if name == "logconfig_dict" {
            // dictConfig takes objects a setting cannot hold (a factory
            // function for "()", `sys.stdout` as a stream): the dict itself
            // is kept for Python's logging; the value shown is a sketch.
            if let Ok(mut g) = LOGCONFIG_DICT.lock() {
                *g = Some(obj.clone().unbind());
            }
            Raw::Value(sketch(helper, &obj))
        } else {
            Raw::Value(
                to_value(helper, &obj)
                    .map_err(|m| SettingsError::invalid(at(), format!("{name}: {m}")))?,
            )
        };
        out.push(FileEntry { setting, raw, line });
    }
    Ok(out)
}

/// Check a hook callable's signature the way gunicorn does, and keep it.
fn hook_from_object(
    helper: &Bound<'_, PyModule>,
    setting: &Setting,
    obj: &Bound<'_, PyAny>,
) -> Result<Hook, String> {
    let Kind::Hook(want) = setting.kind else {
        unreachable!("only hooks have callables")
    };
    let arity: Option<usize> = helper
        .call_method1("positional_arity", (obj,))
        .and_then(|a| a.extract())
        .map_err(|e| e.to_string())?;
    let qualname: String = helper
        .call_method1("qualname", (obj,))
        .and_then(|q| q.extract())
        .map_err(|e| e.to_string())?;
    if let Some(n) = arity {
        // post_request may leave out the trailing arguments, as in gunicorn.
        let ok = if setting.name == "post_request" {
            (2..=4).contains(&n)
        } else {
            n == want as usize
        };
        if !ok {
            let wanted = if setting.name == "post_request" {
                "2 to 4".to_string()
            } else {
                want.to_string()
            };
            return Err(format!(
                "{}: {qualname}() takes {n} positional argument{}, the hook is called with {wanted} ({})",
                setting.name,
                if n == 1 { "" } else { "s" },
                setting.doc.split(':').next().unwrap_or(setting.name),
            ));
        }
    }
    Ok(Hook {
        callable: obj.clone().unbind(),
        arity: arity.unwrap_or(want as usize),
        qualname,
    })
}

/// Resolve a `"module.function"` hook (TOML configs, or a string in a
/// Python config, which gunicorn also accepts).
pub fn resolve_hook(setting: &Setting, spec: &str) -> Result<Hook, String> {
    if !crate::python::is_initialized() {
        return Err(format!(
            "{}: resolving {spec:?} needs the embedded interpreter, which is not initialised",
            setting.name
        ));
    }
    Python::attach(|py| {
        let helper = helper(py).map_err(|e| e.to_string())?;
        let obj = helper
            .call_method1("resolve", (spec,))
            .map_err(|e| format!("{}: {}", setting.name, e.value(py)))?;
        if !obj.is_callable() {
            return Err(format!("{}: {spec:?} is not callable", setting.name));
        }
        hook_from_object(&helper, setting, &obj)
    })
}

/// A Python value as a config file's would be read (`cfg.set` from a hook).
pub fn value_from_python(obj: &Bound<'_, PyAny>) -> Result<Value, String> {
    let helper = helper(obj.py()).map_err(|e| e.to_string())?;
    to_value(&helper, obj)
}

/// A hook callable checked as a config file's would be (`cfg.set` from a
/// hook); a `"module.function"` string is resolved first.
pub fn hook_from_python(setting: &Setting, obj: &Bound<'_, PyAny>) -> Result<Hook, String> {
    if let Ok(spec) = obj.extract::<String>() {
        return resolve_hook(setting, spec.trim());
    }
    if !obj.is_callable() {
        return Err(format!(
            "{}: expected a callable or a \"module.function\" string",
            setting.name
        ));
    }
    let helper = helper(obj.py()).map_err(|e| e.to_string())?;
    hook_from_object(&helper, setting, obj)
}

/// `logconfig_dict` as the last Python config file read set it.
static LOGCONFIG_DICT: std::sync::Mutex<Option<Py<PyAny>>> = std::sync::Mutex::new(None);

/// The `logconfig_dict` object of the last Python config file read, with
/// every object in it as the file made it.
pub fn logconfig_dict(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    LOGCONFIG_DICT
        .lock()
        .ok()?
        .as_ref()
        .map(|o| o.bind(py).clone())
}

/// A value for any object: what `to_value` makes of it, else its repr
/// (inside dicts and lists, item by item).
fn sketch(helper: &Bound<'_, PyModule>, obj: &Bound<'_, PyAny>) -> Value {
    if let Ok(v) = to_value(helper, obj) {
        return v;
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return Value::Dict(
            d.iter()
                .map(|(k, v)| {
                    let key = k.str().map(|s| s.to_string()).unwrap_or_default();
                    (key, sketch(helper, &v))
                })
                .collect(),
        );
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        if let Ok(items) = obj.try_iter() {
            return Value::List(items.flatten().map(|i| sketch(helper, &i)).collect());
        }
    }
    Value::Str(obj.repr().map(|r| r.to_string()).unwrap_or_default())
}

/// Convert a plain Python value (the kinds a config file holds) to a `Value`.
fn to_value(helper: &Bound<'_, PyModule>, obj: &Bound<'_, PyAny>) -> Result<Value, String> {
    if obj.is_none() {
        return Ok(Value::None);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<i64>()
            .map(Value::Int)
            .map_err(|_| "the integer is too large".to_string());
    }
    if obj.is_instance_of::<PyFloat>() {
        return obj
            .extract::<f64>()
            .map(Value::Float)
            .map_err(|e| e.to_string());
    }
    if obj.is_instance_of::<PyString>() {
        return obj
            .extract::<String>()
            .map(Value::Str)
            .map_err(|e| e.to_string());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Str(
            String::from_utf8_lossy(b.as_bytes()).into_owned(),
        ));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in obj.try_iter().map_err(|e| e.to_string())? {
            items.push(to_value(helper, &item.map_err(|e| e.to_string())?)?);
        }
        return Ok(Value::List(items));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut items = Vec::new();
        for (k, v) in d.iter() {
            let key = match k.extract::<String>() {
                Ok(s) => s,
                Err(_) => k.str().map_err(|e| e.to_string())?.to_string(),
            };
            items.push((key, to_value(helper, &v)?));
        }
        return Ok(Value::Dict(items));
    }
    if obj.is_instance_of::<PyType>() {
        // A class (worker_class, logger_class): gunicorn accepts the class itself.
        return helper
            .call_method1("class_path", (obj,))
            .and_then(|p| p.extract::<String>())
            .map(Value::Str)
            .map_err(|e| e.to_string());
    }
    if obj.is_callable() {
        let q: String = helper
            .call_method1("qualname", (obj,))
            .and_then(|q| q.extract())
            .unwrap_or_default();
        return Ok(Value::Hook(q));
    }
    let type_name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Err(format!("a {type_name} value is not allowed"))
}
