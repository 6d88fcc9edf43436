//! Drop-in configuration: every gunicorn setting, from every gunicorn
//! source, with gunicorn's precedence:
//!
//! defaults < config file < `$GUNICORN_CMD_ARGS` < `$FERRICORN_CMD_ARGS` < command line
//!
//! The config file is `-c PATH`, `-c file:PATH` or `-c python:MODULE`
//! (from the command line, else from either environment variable), else
//! `./gunicorn.conf.py`, else `./ferricorn.toml`, when present. A `.toml`
//! file is TOML; anything else is Python, executed in the embedded
//! interpreter, which the caller must have initialised.
//!
//! [`load`] never exits and never prints: it returns the effective settings,
//! the warnings to log, or an error saying where the problem is. So it can
//! run again at SIGHUP with the same argv and the environment saved at start.

pub mod cli;
mod docs;
pub(crate) mod file_py;
mod file_toml;
pub mod table;
pub mod value;

pub use docs::settings_markdown;
pub use file_py::{hook_from_python, value_from_python};
pub use table::{Applies, Kind, Section, Setting, SETTINGS};
pub use value::{is_gevent_worker_class, is_thread_worker_class, Value};

use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment a load sees: variables and working directory, captured
/// once at start (gunicorn also keeps the original environment, so that
/// `raw_env` cannot change how `$GUNICORN_CMD_ARGS` reads at a reload).
#[derive(Debug, Clone)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

impl Env {
    pub fn from_process() -> std::io::Result<Env> {
        Ok(Env {
            vars: std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
            cwd: std::env::current_dir()?,
        })
    }

    pub fn new<K: Into<String>, V: Into<String>>(
        cwd: impl Into<PathBuf>,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            cwd: cwd.into(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    ConfigFile(PathBuf),
    /// `$GUNICORN_CMD_ARGS` or `$FERRICORN_CMD_ARGS`.
    EnvArgs(&'static str),
    CommandLine,
    /// `cfg.set(...)` from a server hook.
    Hook,
}

/// A server hook from the config: the callable and how many positional
/// arguments it takes (`post_request` may take 2, 3 or 4).
pub struct Hook {
    pub callable: Py<PyAny>,
    pub arity: usize,
    pub qualname: String,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}() arity {}>", self.qualname, self.arity)
    }
}

/// The effective configuration: one validated value per setting in the
/// table, and the hook callables.
#[derive(Debug)]
pub struct Settings {
    values: BTreeMap<&'static str, (Value, Source)>,
    hooks: BTreeMap<&'static str, Hook>,
}

impl Settings {
    /// Settings from values already validated (a running configuration
    /// that server hooks changed), without hooks.
    pub fn from_values(values: BTreeMap<&'static str, (Value, Source)>) -> Settings {
        Settings {
            values,
            hooks: BTreeMap::new(),
        }
    }

    /// The value of a setting. Panics on a name not in the table (a typo in
    /// the server's code, not a user error).
    pub fn get(&self, name: &str) -> &Value {
        &self
            .values
            .get(name)
            .unwrap_or_else(|| panic!("no setting named {name:?}"))
            .0
    }

    pub fn source(&self, name: &str) -> &Source {
        &self
            .values
            .get(name)
            .unwrap_or_else(|| panic!("no setting named {name:?}"))
            .1
    }

    /// Integer settings (validated non-negative).
    pub fn int(&self, name: &str) -> i64 {
        self.get(name)
            .as_int()
            .unwrap_or_else(|| panic!("setting {name:?} is not an integer"))
    }

    pub fn bool(&self, name: &str) -> bool {
        self.get(name).as_bool().unwrap_or(false)
    }

    /// String settings; None when unset.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).as_str()
    }

    pub fn list(&self, name: &str) -> Vec<&str> {
        self.get(name).str_list()
    }

    pub fn hook(&self, name: &str) -> Option<&Hook> {
        self.hooks.get(name)
    }

    pub fn hooks(&self) -> impl Iterator<Item = (&'static str, &Hook)> {
        self.hooks.iter().map(|(k, v)| (*k, v))
    }

    /// Move the hook callables out (the server keeps them apart from the values).
    pub fn take_hooks(&mut self) -> BTreeMap<&'static str, Hook> {
        std::mem::take(&mut self.hooks)
    }

    /// Every setting and its value, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.values.iter().map(|(k, (v, _))| (*k, v))
    }

    /// `proc_name`, else `default_proc_name`, as gunicorn resolves it.
    pub fn proc_name(&self) -> &str {
        self.str("proc_name")
            .or_else(|| self.str("default_proc_name"))
            .unwrap_or("ferricorn")
    }

    /// gunicorn's `--print-config`: `name = value` for every setting,
    /// sorted by name, names padded to one width, values as Python's str().
    pub fn print_config(&self) -> String {
        let width = self.values.keys().map(|k| k.len()).max().unwrap_or(0);
        self.values
            .iter()
            .map(|(k, (v, _))| format!("{k:width$} = {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// What the command line asks for once the settings are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Serve,
    /// `--check-config`: exit 0 (the caller may also import the app first, as gunicorn does).
    CheckConfig,
    /// `--print-config`: print [`Settings::print_config`] and exit 0.
    PrintConfig,
}

#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Settings that were set but do nothing here, and similar notices: log them.
    pub warnings: Vec<String>,
    /// The hidden `--reference-responder` benchmark switch.
    pub reference_responder: bool,
}

impl Loaded {
    pub fn action(&self) -> Action {
        if self.settings.bool("print_config") {
            Action::PrintConfig
        } else if self.settings.bool("check_config") {
            Action::CheckConfig
        } else {
            Action::Serve
        }
    }
}

/// Where a bad value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    CommandLine,
    /// `$GUNICORN_CMD_ARGS` / `$FERRICORN_CMD_ARGS`.
    EnvArgs(&'static str),
    /// An environment variable that supplies a default (`$WEB_CONCURRENCY`).
    EnvVar(&'static str),
    File {
        path: PathBuf,
        line: Option<usize>,
    },
}

#[derive(Debug)]
pub enum SettingsError {
    /// From clap: a bad flag, or `--help`/`--version` (which are not
    /// failures: see [`SettingsError::exit_code`]). Print with `e.print()`.
    Usage(clap::Error),
    Invalid {
        at: Location,
        message: String,
        /// The Python traceback, when a config file raised.
        traceback: Option<String>,
    },
}

impl SettingsError {
    pub(crate) fn invalid(at: Location, message: impl Into<String>) -> SettingsError {
        SettingsError::Invalid {
            at,
            message: message.into(),
            traceback: None,
        }
    }

    /// The exit status gunicorn uses: 0 for help/version, 2 for a bad
    /// command line, 1 for a bad configuration.
    pub fn exit_code(&self) -> i32 {
        match self {
            SettingsError::Usage(e) => e.exit_code(),
            SettingsError::Invalid { .. } => 1,
        }
    }

    pub fn location(&self) -> Option<&Location> {
        match self {
            SettingsError::Invalid { at, .. } => Some(at),
            SettingsError::Usage(_) => None,
        }
    }
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingsError::Usage(e) => write!(f, "{}", e.to_string().trim_end()),
            SettingsError::Invalid { at, message, .. } => match at {
                Location::CommandLine => f.write_str(message),
                Location::EnvArgs(var) | Location::EnvVar(var) => write!(f, "${var}: {message}"),
                Location::File {
                    path,
                    line: Some(line),
                } => write!(f, "{}:{line}: {message}", path.display()),
                Location::File { path, line: None } => write!(f, "{}: {message}", path.display()),
            },
        }
    }
}

impl std::error::Error for SettingsError {}

/// A setting as a config file gives it.
#[derive(Debug)]
pub(crate) struct FileEntry {
    pub setting: &'static Setting,
    pub raw: Raw,
    pub line: Option<usize>,
}

impl FileEntry {
    fn raw_is_set(&self) -> bool {
        !matches!(self.raw, Raw::Value(Value::None))
    }
}

#[derive(Debug)]
pub(crate) enum Raw {
    Value(Value),
    /// A callable from a Python config, already checked.
    Hook(Hook),
}

const ENV_ARGS: [&str; 2] = ["GUNICORN_CMD_ARGS", "FERRICORN_CMD_ARGS"];

enum ConfigRef {
    Python(PathBuf),
    Toml(PathBuf),
    Module(String),
}

/// Resolve `-c`: an explicit reference that does not exist is an error; the
/// default files are only read when present.
fn locate_config(
    spec: Option<(&str, Location)>,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<Option<ConfigRef>, SettingsError> {
    let by_extension = |p: PathBuf| {
        if p.extension().is_some_and(|e| e == "toml") {
            ConfigRef::Toml(p)
        } else {
            ConfigRef::Python(p)
        }
    };
    let Some((spec, at)) = spec else {
        for default in ["gunicorn.conf.py", "ferricorn.toml"] {
            let p = env.cwd.join(default);
            if p.is_file() {
                return Ok(Some(by_extension(p)));
            }
        }
        return Ok(None);
    };
    if let Some(module) = spec.strip_prefix("python:") {
        return Ok(Some(ConfigRef::Module(module.trim().to_string())));
    }
    let file = spec.strip_prefix("file:").unwrap_or(spec);
    let path = env.cwd.join(file);
    if !path.is_file() {
        return Err(SettingsError::invalid(
            at,
            format!("config file {file:?} does not exist"),
        ));
    }
    if !path.extension().is_some_and(|e| e == "py" || e == "toml") {
        warnings.push(format!(
            "config file {file:?} has neither a .py nor a .toml extension: reading it as Python, as gunicorn does"
        ));
    }
    Ok(Some(by_extension(path)))
}

struct Builder<'a> {
    values: BTreeMap<&'static str, (Value, Source)>,
    hooks: BTreeMap<&'static str, Hook>,
    env: &'a Env,
}

impl Builder<'_> {
    fn set(
        &mut self,
        s: &'static Setting,
        raw: &Value,
        src: Source,
        at: Location,
        label: &str,
    ) -> Result<(), SettingsError> {
        let ctx = value::Context { cwd: &self.env.cwd };
        let v = value::validate(s, raw, &ctx)
            .map_err(|m| SettingsError::invalid(at.clone(), format!("{label}: {m}")))?;
        if s.kind.is_hook() {
            match &v {
                Value::Str(spec) => {
                    let hook = file_py::resolve_hook(s, spec)
                        .map_err(|m| SettingsError::invalid(at, m))?;
                    let shown = Value::Hook(hook.qualname.clone());
                    self.hooks.insert(s.name, hook);
                    self.values.insert(s.name, (shown, src));
                    return Ok(());
                }
                _ => {
                    self.hooks.remove(s.name);
                }
            }
        }
        self.values.insert(s.name, (v, src));
        Ok(())
    }

    /// Reads the config file `locate_config` found, if any, and applies
    /// it; returns its path.
    fn apply_config(
        &mut self,
        config: Option<ConfigRef>,
    ) -> Result<Option<PathBuf>, SettingsError> {
        let cwd = &self.env.cwd;
        let (entries, path) = match config {
            None => return Ok(None),
            Some(ConfigRef::Python(path)) => (file_py::load_file(&path, cwd)?, path),
            Some(ConfigRef::Toml(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    SettingsError::invalid(
                        Location::File {
                            path: path.clone(),
                            line: None,
                        },
                        format!("cannot read: {e}"),
                    )
                })?;
                (file_toml::parse(&path, &text)?, path)
            }
            Some(ConfigRef::Module(name)) => file_py::load_module(&name, cwd)?,
        };
        self.apply_file(entries, &path)?;
        Ok(Some(path))
    }

    /// The `config` setting shows the file actually read: the `-c` given,
    /// else the default file found.
    fn show_config_read(&mut self, spec: Option<String>, file: Option<&Path>) {
        let config_value = match (spec, file) {
            (Some(spec), _) => Value::Str(spec),
            (None, Some(path)) => Value::Str(path.to_string_lossy().into_owned()),
            (None, None) => Value::None,
        };
        let config_source = self
            .values
            .get("config")
            .map(|(_, s)| s.clone())
            .unwrap_or(Source::Default);
        self.values.insert("config", (config_value, config_source));
    }

    /// The WSGI_APP argument wins over wsgi_app from any other source;
    /// without an app there is nothing to serve. The app also names the
    /// processes unless default_proc_name was set.
    fn settle_wsgi_app(&mut self, argument: Option<&str>) -> Result<(), SettingsError> {
        if let Some(app) = argument {
            self.values.insert(
                "wsgi_app",
                (Value::Str(app.trim().to_string()), Source::CommandLine),
            );
        }
        let app = match self.values.get("wsgi_app") {
            Some((Value::Str(app), _)) if !app.is_empty() => app.clone(),
            _ => {
                return Err(SettingsError::invalid(
                    Location::CommandLine,
                    "No application module specified: give WSGI_APP (module:attr) or set wsgi_app in the config file.",
                ))
            }
        };
        if self
            .values
            .get("default_proc_name")
            .is_some_and(|(_, s)| *s == Source::Default)
        {
            self.values
                .insert("default_proc_name", (Value::Str(app), Source::Default));
        }
        Ok(())
    }

    fn apply_file(&mut self, entries: Vec<FileEntry>, path: &Path) -> Result<(), SettingsError> {
        for e in entries {
            let at = Location::File {
                path: path.to_path_buf(),
                line: e.line,
            };
            let src = Source::ConfigFile(path.to_path_buf());
            match e.raw {
                Raw::Value(v) => self.set(e.setting, &v, src, at, e.setting.name)?,
                Raw::Hook(h) => {
                    self.values
                        .insert(e.setting.name, (Value::Hook(h.qualname.clone()), src));
                    self.hooks.insert(e.setting.name, h);
                }
            }
        }
        Ok(())
    }

    fn apply_cli(
        &mut self,
        parsed: &cli::Parsed,
        src: Source,
        at: Location,
    ) -> Result<(), SettingsError> {
        for (s, raw) in &parsed.values {
            let flag = s
                .flags
                .iter()
                .rev()
                .find(|f| f.starts_with("--"))
                .copied()
                .unwrap_or(s.name);
            self.set(s, raw, src.clone(), at.clone(), flag)?;
        }
        Ok(())
    }
}

fn parse_env_args(var: &'static str, env: &Env) -> Result<cli::Parsed, SettingsError> {
    let Some(text) = env.get(var) else {
        return Ok(cli::Parsed::default());
    };
    let args =
        cli::shell_split(text).map_err(|m| SettingsError::invalid(Location::EnvArgs(var), m))?;
    cli::parse(&args).map_err(|e| {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("invalid arguments")
            .trim_start_matches("error: ")
            .to_string();
        SettingsError::invalid(Location::EnvArgs(var), first)
    })
}

fn default_values(env: &Env) -> Result<BTreeMap<&'static str, (Value, Source)>, SettingsError> {
    let ctx = value::Context { cwd: &env.cwd };
    let mut values = BTreeMap::new();
    for s in SETTINGS {
        let at = || match s.env_default {
            Some(var) => Location::EnvVar(var),
            None => Location::CommandLine,
        };
        let raw = value::raw_default(s, env).map_err(|m| SettingsError::invalid(at(), m))?;
        let v = value::validate(s, &raw, &ctx)
            .map_err(|m| SettingsError::invalid(at(), format!("default of {}: {m}", s.name)))?;
        values.insert(s.name, (v, Source::Default));
    }
    Ok(values)
}

/// Whether loading with this `argv` and `env` runs Python: a Python config
/// file, or a TOML one naming hooks by import path. The interpreter must be
/// initialised before [`load`] then. Problems are left for [`load`] to report.
pub fn needs_python(argv: &[String], env: &Env) -> bool {
    let args = argv.get(1..).unwrap_or(&[]);
    let Ok(command_line) = cli::parse(args) else {
        return false;
    };
    let env_args = [
        parse_env_args(ENV_ARGS[0], env).unwrap_or_default(),
        parse_env_args(ENV_ARGS[1], env).unwrap_or_default(),
    ];
    let spec = config_spec(&command_line, &env_args);
    let mut ignored = Vec::new();
    match locate_config(
        spec.as_ref().map(|(s, at)| (s.as_str(), at.clone())),
        env,
        &mut ignored,
    ) {
        Ok(Some(ConfigRef::Python(_) | ConfigRef::Module(_))) => true,
        Ok(Some(ConfigRef::Toml(path))) => std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| file_toml::parse(&path, &text).ok())
            .is_some_and(|entries| {
                entries
                    .iter()
                    .any(|e| e.setting.kind.is_hook() && e.raw_is_set())
            }),
        _ => false,
    }
}

/// Load the effective settings from `argv` (with the program name first,
/// as `std::env::args()` gives it) and `env`.
pub fn load(argv: &[String], env: &Env) -> Result<Loaded, SettingsError> {
    let args = argv.get(1..).unwrap_or(&[]);
    let command_line = cli::parse(args).map_err(SettingsError::Usage)?;
    let env_args = [
        parse_env_args(ENV_ARGS[0], env)?,
        parse_env_args(ENV_ARGS[1], env)?,
    ];
    let mut warnings = Vec::new();

    let config_spec = config_spec(&command_line, &env_args);
    let config = locate_config(
        config_spec.as_ref().map(|(s, at)| (s.as_str(), at.clone())),
        env,
        &mut warnings,
    )?;

    let mut b = Builder {
        values: default_values(env)?,
        hooks: BTreeMap::new(),
        env,
    };
    let defaults: BTreeMap<&'static str, Value> =
        b.values.iter().map(|(k, (v, _))| (*k, v.clone())).collect();

    let config_file = b.apply_config(config)?;
    for (i, var) in ENV_ARGS.iter().enumerate() {
        b.apply_cli(&env_args[i], Source::EnvArgs(var), Location::EnvArgs(var))?;
    }
    b.apply_cli(&command_line, Source::CommandLine, Location::CommandLine)?;
    b.show_config_read(config_spec.map(|(spec, _)| spec), config_file.as_deref());
    b.settle_wsgi_app(command_line.wsgi_app.as_deref())?;
    warnings.extend(inert_settings_set(&b.values, &defaults));

    let reference_responder =
        command_line.reference_responder || env_args.iter().any(|p| p.reference_responder);
    Ok(Loaded {
        settings: Settings {
            values: b.values,
            hooks: b.hooks,
        },
        config_file,
        warnings,
        reference_responder,
    })
}

/// `-c` and where it was given: the command line wins, then the later
/// environment variable.
fn config_spec(
    command_line: &cli::Parsed,
    env_args: &[cli::Parsed; 2],
) -> Option<(String, Location)> {
    std::iter::once((command_line, Location::CommandLine))
        .chain([
            (&env_args[1], Location::EnvArgs(ENV_ARGS[1])),
            (&env_args[0], Location::EnvArgs(ENV_ARGS[0])),
        ])
        .find_map(|(p, at)| {
            p.get("config")
                .and_then(Value::as_str)
                .map(|s| (s.trim().to_string(), at))
        })
}

/// Warnings for the settings set (to something other than their default)
/// that ferricorn accepts but does not act on, in table order.
fn inert_settings_set(
    values: &BTreeMap<&'static str, (Value, Source)>,
    defaults: &BTreeMap<&'static str, Value>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for s in SETTINGS {
        let (v, src) = &values[s.name];
        if *src == Source::Default || defaults.get(s.name) == Some(v) {
            continue;
        }
        match s.applies {
            Applies::Yes => {}
            Applies::NoEffect(why) => warnings.push(format!(
                "{} is set but has no effect in ferricorn: {why}.",
                s.name
            )),
            Applies::NotYet(why) => {
                warnings.push(format!("{} is set but not acted on yet: {why}.", s.name))
            }
        }
    }
    warnings
}
