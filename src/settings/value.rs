//! Setting values, their validation (one validator per `Kind`, following
//! gunicorn's validators) and their rendering as Python would print them,
//! so `--print-config` reads like gunicorn's.

use super::table::{Default, Kind, Setting};
use std::path::{Component, Path, PathBuf};

/// A setting's value, whatever its source. Sources hand in raw values
/// (strings from the command line, Python objects, TOML values) and
/// `validate` turns them into the one normal form per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    /// Insertion-ordered, as Python dicts are.
    Dict(Vec<(String, Value)>),
    /// A hook callable, by qualified name (the callable itself lives in
    /// `Settings::hooks`).
    Hook(String),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The strings of a list value (non-strings skipped; validated lists hold only strings).
    pub fn str_list(&self) -> Vec<&str> {
        match self {
            Value::List(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dictionary",
            Value::Hook(_) => "a callable",
        }
    }

    /// Python's `repr()`.
    pub fn repr(&self) -> String {
        match self {
            Value::Str(s) => py_repr_str(s),
            other => other.to_string(),
        }
    }
}

/// Python's `str()`: what gunicorn's `--print-config` shows.
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => f.write_str(s),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&v.repr())?;
                }
                f.write_str("]")
            }
            Value::Dict(items) => {
                f.write_str("{")?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {}", py_repr_str(k), v.repr())?;
                }
                f.write_str("}")
            }
            Value::Hook(name) => write!(f, "<{name}()>"),
        }
    }
}

fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// What validation needs from the outside world.
pub struct Context<'a> {
    /// Relative paths (chdir, reload_extra_files) are taken from here.
    pub cwd: &'a Path,
}

/// gunicorn's `int(x, 0)`: `0x`, `0o`, `0b` prefixes, decimal otherwise;
/// with `auto_octal`, a leading `0` also means octal (gunicorn's `auto_int`).
pub fn parse_int(text: &str, auto_octal: bool) -> Option<i64> {
    let t = text.trim().replace('_', "").to_ascii_lowercase();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
    };
    if t.is_empty() {
        return None;
    }
    let n = if let Some(h) = t.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = t.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = t.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        if !auto_octal {
            // Python refuses "022" with base 0 (ambiguous); so do we, except for umask.
            if t.bytes().all(|b| b == b'0') {
                0
            } else {
                return None;
            }
        } else {
            i64::from_str_radix(&t[1..], 8).ok()?
        }
    } else {
        t.parse::<i64>().ok()?
    };
    Some(if neg { -n } else { n })
}

fn bad(v: &Value, expected: &str) -> String {
    format!("{} is not valid here: expected {expected}", describe_raw(v))
}

fn describe_raw(v: &Value) -> String {
    match v {
        Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::None => v.repr(),
        other => other.type_name().to_string(),
    }
}

fn one_string(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.trim().to_string()),
        other => Err(bad(other, "a string")),
    }
}

fn string_list(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::None => Ok(Vec::new()),
        // gunicorn's "legacy syntax": a single string is a one-item list.
        Value::Str(s) if s.trim().is_empty() => Ok(Vec::new()),
        Value::Str(s) => Ok(vec![Value::Str(s.trim().to_string())]),
        Value::List(items) => items
            .iter()
            .map(|i| one_string(i).map(Value::Str))
            .collect(),
        other => Err(bad(other, "a list of strings")),
    }
}

fn absolute(cwd: &Path, p: &str) -> PathBuf {
    let joined = cwd.join(p);
    // Lexical normalisation, as os.path.normpath: symlinks are left alone.
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Check a raw value against a setting and return its normal form.
/// Errors are short phrases; callers add where the value came from.
pub fn validate(s: &Setting, raw: &Value, ctx: &Context) -> Result<Value, String> {
    let v = match s.kind {
        Kind::Int | Kind::AutoInt => validate_int(raw, s.kind == Kind::AutoInt)?,
        Kind::Float => validate_float(raw)?,
        Kind::Bool | Kind::NegFlag => validate_bool(raw, s.kind == Kind::NegFlag)?,
        Kind::Str | Kind::ClassPath => match raw {
            Value::None => Value::None,
            other => Value::Str(one_string(other)?),
        },
        Kind::Choice(words) => validate_choice(raw, words)?,
        Kind::List => Value::List(string_list(raw)?),
        Kind::CommaList => match raw {
            Value::Str(t) => Value::List(
                t.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(|x| Value::Str(x.to_string()))
                    .collect(),
            ),
            other => Value::List(string_list(other)?),
        },
        // Paths and glob patterns: a pattern may match nothing yet, so
        // nothing is checked here; the watcher reports what it cannot watch.
        Kind::FileList => Value::List(string_list(raw)?),
        Kind::Dict => match raw {
            Value::Dict(items) => Value::Dict(items.clone()),
            other => return Err(bad(other, "a dictionary")),
        },
        Kind::User | Kind::Group => validate_id(s.kind == Kind::User, raw)?,
        Kind::Dir => validate_dir(raw, ctx.cwd)?,
        Kind::WorkerClass => validate_worker_class(raw)?,
        Kind::Any => raw.clone(),
        Kind::Hook(_) => match raw {
            Value::None => Value::None,
            Value::Str(t) => Value::Str(t.trim().to_string()),
            Value::Hook(q) => Value::Hook(q.clone()),
            other => return Err(bad(other, "a callable or a \"module.function\" string")),
        },
    };
    check_setting(s.name, &v)?;
    Ok(v)
}

/// `auto_octal`: gunicorn's `auto_int` (umask), where `022` is octal.
fn validate_int(raw: &Value, auto_octal: bool) -> Result<Value, String> {
    let n = match raw {
        Value::Int(n) => *n,
        Value::Bool(b) => *b as i64,
        Value::Str(t) => parse_int(t, auto_octal).ok_or_else(|| bad(raw, "an integer"))?,
        other => return Err(bad(other, "an integer")),
    };
    if n < 0 {
        return Err(format!("{n} is negative: expected 0 or more"));
    }
    Ok(Value::Int(n))
}

fn validate_float(raw: &Value) -> Result<Value, String> {
    let x = match raw {
        Value::Int(n) => *n as f64,
        Value::Float(x) => *x,
        Value::Str(t) => t.trim().parse::<f64>().map_err(|_| bad(raw, "a number"))?,
        other => return Err(bad(other, "a number")),
    };
    if !x.is_finite() || x < 0.0 {
        return Err(format!(
            "{x} is not valid here: expected a number of 0 or more"
        ));
    }
    Ok(Value::Float(x))
}

/// `neg_flag`: a switch that may also be left unset (None).
fn validate_bool(raw: &Value, neg_flag: bool) -> Result<Value, String> {
    Ok(match raw {
        Value::Bool(b) => Value::Bool(*b),
        Value::None if neg_flag => Value::None,
        Value::Str(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad(raw, "true or false")),
        },
        other => return Err(bad(other, "true or false")),
    })
}

/// One of `words`, matched without regard to case.
fn validate_choice(raw: &Value, words: &[&str]) -> Result<Value, String> {
    let w = one_string(raw)
        .map_err(|_| bad(raw, &format!("one of {}", words.join(", "))))?
        .to_ascii_lowercase();
    if !words.contains(&w.as_str()) {
        return Err(format!(
            "{} is not one of {}",
            py_repr_str(&w),
            words.join(", ")
        ));
    }
    Ok(Value::Str(w))
}

/// An existing directory, made absolute against `cwd`.
fn validate_dir(raw: &Value, cwd: &Path) -> Result<Value, String> {
    let d = one_string(raw)?;
    let path = absolute(cwd, &d);
    if !path.is_dir() {
        return Err(format!(
            "cannot change to directory {d:?}: no such directory"
        ));
    }
    Ok(Value::Str(path.to_string_lossy().into_owned()))
}

fn validate_worker_class(raw: &Value) -> Result<Value, String> {
    let w = one_string(raw)?;
    if !is_sync_worker_class(&w) && !is_thread_worker_class(&w) && !is_gevent_worker_class(&w) {
        return Err(unsupported_worker_class(&w));
    }
    Ok(Value::Str(w))
}

/// Checks that belong to one setting rather than to its kind.
fn check_setting(name: &str, v: &Value) -> Result<(), String> {
    match name {
        "bind" => {
            for spec in v.str_list() {
                crate::sock::BindAddr::parse(spec)?;
            }
        }
        "raw_env" => {
            for kv in v.str_list() {
                match kv.split_once('=') {
                    Some((k, _)) if !k.is_empty() => {}
                    _ => return Err(format!("{kv:?} is not KEY=VALUE")),
                }
            }
        }
        "workers" if v.as_int() == Some(0) => return Err("there must be at least 1 worker".into()),
        "limit_request_line" if v.as_int().is_some_and(|n| n > 8190) => {
            return Err("must be at most 8190 (0 means unlimited)".into())
        }
        "secure_scheme_headers" => {
            if let Value::Dict(items) = v {
                for (k, val) in items {
                    if val.as_str().is_none() {
                        return Err(format!("the value for {} must be a string", py_repr_str(k)));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

pub fn is_sync_worker_class(name: &str) -> bool {
    matches!(
        name,
        "sync" | "egg:gunicorn#sync" | "gunicorn.workers.sync.SyncWorker" | "ferricorn.sync"
    )
}

/// gunicorn's gevent workers under each name a configuration may give them.
pub fn is_gevent_worker_class(name: &str) -> bool {
    matches!(
        name,
        "gevent"
            | "egg:gunicorn#gevent"
            | "gunicorn.workers.ggevent.GeventWorker"
            | "gevent_wsgi"
            | "egg:gunicorn#gevent_wsgi"
            | "gevent_pywsgi"
            | "egg:gunicorn#gevent_pywsgi"
            | "gunicorn.workers.ggevent.GeventPyWSGIWorker"
            | "ferricorn.gevent"
    )
}

/// What to say about a worker class ferricorn cannot run, and what to use.
fn unsupported_worker_class(w: &str) -> String {
    let lower = w.to_ascii_lowercase();
    if lower.contains("eventlet") {
        return format!(
            "Worker class '{w}' is not supported: gunicorn 27 removed its eventlet worker; use -k gevent (cooperative, for many concurrent requests) or --threads N"
        );
    }
    if lower.contains("uvicorn") || lower.contains("asgi") || lower.contains("tornado") {
        return format!(
            "Worker class '{w}' is not supported: it runs ASGI (or Tornado) apps, and ferricorn is a WSGI server; serve the app with uvicorn, or give ferricorn a WSGI app with -k sync, -k gthread or -k gevent"
        );
    }
    format!(
        "Worker class '{w}' is not supported: ferricorn runs sync, gthread and gevent workers (use -k sync, -k gthread, --threads N or -k gevent, or leave it unset)"
    )
}

/// gunicorn's threaded worker under each name a configuration may give it.
pub fn is_thread_worker_class(name: &str) -> bool {
    matches!(
        name,
        "gthread"
            | "egg:gunicorn#gthread"
            | "gunicorn.workers.gthread.ThreadWorker"
            | "ferricorn.gthread"
    )
}

fn validate_id(user: bool, raw: &Value) -> Result<Value, String> {
    let what = if user { "user" } else { "group" };
    match raw {
        Value::None => Ok(Value::Int(if user {
            nix::unistd::geteuid().as_raw() as i64
        } else {
            nix::unistd::getegid().as_raw() as i64
        })),
        Value::Int(n) if *n >= 0 => Ok(Value::Int(*n)),
        Value::Str(t) => {
            let t = t.trim();
            if let Ok(n) = t.parse::<u32>() {
                return Ok(Value::Int(n as i64));
            }
            let found = if user {
                nix::unistd::User::from_name(t)
                    .ok()
                    .flatten()
                    .map(|u| u.uid.as_raw())
            } else {
                nix::unistd::Group::from_name(t)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw())
            };
            found
                .map(|id| Value::Int(id as i64))
                .ok_or_else(|| format!("no such {what}: {t:?}"))
        }
        other => Err(bad(other, &format!("a {what} name or id"))),
    }
}

/// The raw default of a setting (before validation), given the environment.
pub fn raw_default(s: &Setting, env: &super::Env) -> Result<Value, String> {
    Ok(match s.default {
        Default::None => Value::None,
        Default::Bool(b) => Value::Bool(b),
        Default::Int(n) => Value::Int(n),
        Default::Float(x) => Value::Float(x),
        Default::Str(t) => match s.env_default.and_then(|var| env.get(var)) {
            Some(from_env) if s.name == "forwarded_allow_ips" => Value::Str(from_env.to_string()),
            _ => Value::Str(t.to_string()),
        },
        Default::List(items) => {
            Value::List(items.iter().map(|i| Value::Str(i.to_string())).collect())
        }
        Default::Dict(items) => Value::Dict(
            items
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                .collect(),
        ),
        Default::Computed(_) => match s.name {
            "bind" => match env.get("PORT") {
                Some(port) if !port.is_empty() => {
                    Value::List(vec![Value::Str(format!("0.0.0.0:{port}"))])
                }
                _ => Value::List(vec![Value::Str("127.0.0.1:8000".into())]),
            },
            "workers" => match env.get("WEB_CONCURRENCY") {
                Some(n) => {
                    Value::Int(parse_int(n, false).filter(|n| *n > 0).ok_or_else(|| {
                        format!("$WEB_CONCURRENCY={n:?} is not a number of workers")
                    })?)
                }
                None => Value::Int(1),
            },
            "chdir" => Value::Str(env.cwd.to_string_lossy().into_owned()),
            "control_socket" => Value::Str(
                crate::control::default_path(&|k| env.get(k).map(String::from))
                    .to_string_lossy()
                    .into_owned(),
            ),
            "user" | "group" | "config" => Value::None,
            "default_proc_name" => Value::Str("ferricorn".into()),
            other => unreachable!("no computed default for {other}"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_read_like_python() {
        assert_eq!(parse_int("18", false), Some(18));
        assert_eq!(parse_int("0x12", false), Some(18));
        assert_eq!(parse_int("0o22", false), Some(18));
        assert_eq!(parse_int("022", false), None);
        assert_eq!(parse_int("022", true), Some(18));
        assert_eq!(parse_int("0", true), Some(0));
        assert_eq!(parse_int("00", false), Some(0));
        assert_eq!(parse_int("1_000", false), Some(1000));
        assert_eq!(parse_int("x", false), None);
    }

    #[test]
    fn values_print_as_python_str() {
        let v = Value::List(vec![Value::Str("a".into()), Value::Str("it's".into())]);
        assert_eq!(v.to_string(), r#"['a', "it's"]"#);
        let d = Value::Dict(vec![
            ("K".into(), Value::Str("v".into())),
            ("n".into(), Value::Int(1)),
        ]);
        assert_eq!(d.to_string(), "{'K': 'v', 'n': 1}");
        assert_eq!(Value::Bool(true).to_string(), "True");
        assert_eq!(Value::None.to_string(), "None");
        assert_eq!(Value::Float(1.0).to_string(), "1.0");
        assert_eq!(Value::Hook("post_fork".into()).to_string(), "<post_fork()>");
    }

    #[test]
    fn kinds_validate_like_gunicorn() {
        let cwd = std::env::current_dir().unwrap();
        let ctx = Context { cwd: &cwd };
        let find = |n| super::super::table::find(n).unwrap();
        assert_eq!(
            validate(find("workers"), &Value::Str("3".into()), &ctx),
            Ok(Value::Int(3))
        );
        assert!(validate(find("workers"), &Value::Int(-1), &ctx).is_err());
        assert!(validate(find("workers"), &Value::Int(0), &ctx).is_err());
        assert_eq!(
            validate(find("umask"), &Value::Str("022".into()), &ctx),
            Ok(Value::Int(0o22))
        );
        assert_eq!(
            validate(find("daemon"), &Value::Str("True".into()), &ctx),
            Ok(Value::Bool(true))
        );
        assert!(validate(find("daemon"), &Value::Int(1), &ctx).is_err());
        assert_eq!(
            validate(find("bind"), &Value::Str(" 0.0.0.0:80 ".into()), &ctx),
            Ok(Value::List(vec![Value::Str("0.0.0.0:80".into())]))
        );
        assert_eq!(
            validate(
                find("forwarded_allow_ips"),
                &Value::Str("10.0.0.1, 10.0.0.2".into()),
                &ctx
            ),
            Ok(Value::List(vec![
                Value::Str("10.0.0.1".into()),
                Value::Str("10.0.0.2".into())
            ]))
        );
        assert_eq!(
            validate(find("loglevel"), &Value::Str("DEBUG".into()), &ctx),
            Ok(Value::Str("debug".into()))
        );
        assert!(validate(find("loglevel"), &Value::Str("loud".into()), &ctx).is_err());
        assert!(validate(
            find("raw_env"),
            &Value::List(vec![Value::Str("NOEQUALS".into())]),
            &ctx
        )
        .is_err());
        assert!(validate(find("worker_class"), &Value::Str("gevent".into()), &ctx).is_ok());
        assert!(validate(find("worker_class"), &Value::Str("tornado".into()), &ctx).is_err());
        assert_eq!(
            validate(find("user"), &Value::Str("0".into()), &ctx),
            Ok(Value::Int(0))
        );
        assert_eq!(
            validate(find("user"), &Value::Str("root".into()), &ctx),
            Ok(Value::Int(0))
        );
        assert!(validate(find("user"), &Value::Str("no-such-user-here".into()), &ctx).is_err());
        assert_eq!(
            validate(find("chdir"), &Value::Str("src/..".into()), &ctx),
            Ok(Value::Str(cwd.to_string_lossy().into_owned()))
        );
    }
}
