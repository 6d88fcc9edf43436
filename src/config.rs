//! The configuration the server runs with, resolved from the settings table
//! (`crate::settings`): every source already merged and validated there;
//! here the values become the types the master and workers use.
//!
//! [`ConfigSource`] keeps what a load needs (argv, the environment at
//! start) so SIGHUP can load the configuration again exactly as at start.

use crate::settings::{self, Env, Hook, Loaded, Settings, SettingsError, Source, Value};
use crate::sock::BindAddr;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_ACCESS_LOG_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// The server hooks a config file set, by setting name.
#[derive(Default)]
pub struct HookSet(pub BTreeMap<&'static str, Hook>);

impl HookSet {
    pub fn get(&self, name: &str) -> Option<&Hook> {
        self.0.get(name)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for HookSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// How the worker runs requests, from `-k` and `--threads`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerMode {
    /// One request at a time on the event loop's thread.
    Sync,
    /// This many Python threads per worker.
    Threads(usize),
    /// One greenlet per request on gevent's hub.
    Gevent,
}

impl WorkerMode {
    /// gunicorn's rule: the gthread class, or the sync class with more than
    /// one thread, means threaded workers.
    pub fn from_settings(worker_class: &str, threads: usize) -> WorkerMode {
        if crate::settings::is_gevent_worker_class(worker_class) {
            WorkerMode::Gevent
        } else if crate::settings::is_thread_worker_class(worker_class) {
            WorkerMode::Threads(threads.max(1))
        } else if threads > 1 {
            WorkerMode::Threads(threads)
        } else {
            WorkerMode::Sync
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub wsgi_app: String,
    pub binds: Vec<BindAddr>,
    pub workers: u32,
    pub worker_connections: usize,
    /// Sync or threaded, from worker_class and threads.
    pub worker_mode: WorkerMode,
    pub timeout: Option<Duration>,
    pub graceful_timeout: Duration,
    pub keep_alive: Duration,
    pub header_timeout: Duration,
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    pub backlog: i32,
    pub reuse_port: bool,
    pub chdir: PathBuf,
    pub pythonpath: Vec<PathBuf>,
    pub raw_env: Vec<(String, String)>,
    pub proc_name: String,
    pub pidfile: Option<PathBuf>,
    pub daemon: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub umask: u32,
    pub preload: bool,
    pub access_logfile: Option<String>,
    pub access_logformat: String,
    pub error_logfile: String,
    pub log_level: crate::log::Level,
    pub capture_output: bool,
    /// logconfig (an ini file for fileConfig), logconfig_json, and whether
    /// logconfig_dict is set: any of them routes the logs through Python.
    pub logconfig: Option<String>,
    pub logconfig_json: Option<String>,
    pub logconfig_dict: bool,
    /// logger_class when not gunicorn's default.
    pub logger_class: Option<String>,
    /// The Server header and SERVER_SOFTWARE a config file set through
    /// `gunicorn.SERVER` / `gunicorn.SERVER_SOFTWARE`.
    pub server_names: crate::server_name::ServerNames,
    /// Syslog, when `syslog` is on.
    pub syslog: Option<crate::syslog::SyslogConfig>,
    pub limits: crate::http::Limits,
    pub forwarded_allow_ips: Vec<String>,
    /// header_map, secure_scheme_headers, forwarder_headers.
    pub header_policy: crate::wsgi::environ::HeaderPolicy,
    pub casefold_http_method: bool,
    pub sendfile: bool,
    /// The TLS settings, when `certfile` is set: every bind serves https.
    pub tls_settings: Option<crate::tls::TlsSettings>,
    /// The configuration built from them (and the ssl_context hook) by the
    /// master before it forks; None until then, and for plain HTTP.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub suppress_ragged_eofs: bool,
    /// Whether a bind address was given (-b, a config file, or $PORT) rather
    /// than defaulted: without one, inherited listeners (systemd,
    /// GUNICORN_FD) are served as they are.
    pub bind_given: bool,
    /// Old master retires and exits by itself once its successor is ready.
    pub upgrade_auto: bool,
    pub upgrade_timeout: Duration,
    pub reference_responder: bool,
    pub reload: bool,
    /// "auto", "inotify" or "poll".
    pub reload_engine: String,
    pub reload_extra_files: Vec<String>,
    pub reload_poll_interval: Duration,
    /// statsd_host, statsd_prefix, dogstatsd_tags.
    pub statsd_host: Option<String>,
    pub statsd_prefix: String,
    pub dogstatsd_tags: String,
    pub enable_backlog_metric: bool,
    /// Where the master serves Prometheus metrics.
    pub metrics_bind: Option<String>,
    /// The control socket's path (absolute), mode, and whether it is off.
    pub control_socket: PathBuf,
    pub control_socket_mode: u32,
    pub control_socket_disable: bool,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// Every setting's value, for hooks (`server.cfg`) and `--print-config`.
    pub values: Arc<Vec<(&'static str, Value)>>,
    /// Server hooks; empty unless a config file set some.
    pub hooks: Arc<HookSet>,
}

/// A setting the user got wrong, with the message they will see.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

fn secs(s: &Settings, name: &str) -> Duration {
    Duration::from_secs(s.int(name).max(0) as u64)
}

/// gunicorn's sendfile rule: unset means use it unless `$SENDFILE` says no.
fn use_sendfile(v: &Value, env: &Env) -> bool {
    match v {
        Value::Bool(b) => *b,
        _ => match env.get("SENDFILE") {
            Some(x) => matches!(x.to_ascii_lowercase().as_str(), "y" | "1" | "yes" | "true"),
            None => true,
        },
    }
}

fn header_policy(s: &Settings) -> crate::wsgi::environ::HeaderPolicy {
    use crate::wsgi::environ::{HeaderMap, HeaderPolicy};
    let header_map = match s.str("header_map") {
        Some("refuse") => HeaderMap::Refuse,
        Some("dangerous") => HeaderMap::Dangerous,
        _ => HeaderMap::Drop,
    };
    let secure_scheme_headers = match s.get("secure_scheme_headers") {
        Value::Dict(items) => items
            .iter()
            .filter_map(|(k, v)| Some((k.as_bytes().to_vec(), v.as_str()?.as_bytes().to_vec())))
            .collect(),
        _ => Vec::new(),
    };
    let forwarder_headers = s
        .list("forwarder_headers")
        .into_iter()
        .map(|h| h.as_bytes().to_vec())
        .collect();
    HeaderPolicy {
        header_map,
        secure_scheme_headers,
        forwarder_headers,
    }
}

/// -u/-g: None when it is who we already are (nothing to switch).
fn switch_to(id: i64, current: u32) -> Option<u32> {
    Some(id as u32).filter(|i| *i != current)
}

fn binds(s: &Settings) -> Result<Vec<BindAddr>, ConfigError> {
    s.list("bind")
        .into_iter()
        .map(|spec| BindAddr::parse(spec).map_err(ConfigError))
        .collect()
}

/// statsd_host and metrics_bind, checked here so a typo stops the start
/// rather than silently sending or serving nothing.
fn check_metrics_targets(s: &Settings) -> Result<(), ConfigError> {
    if let Some(h) = s.str("statsd_host") {
        crate::metrics::statsd::parse_target(h)
            .map_err(|e| ConfigError(format!("Invalid value for statsd_host: {e}")))?;
    }
    if let Some(m) = s.str("metrics_bind") {
        let ok = m
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(ConfigError(format!(
                "Invalid value for metrics_bind: {m:?}: give HOST:PORT, e.g. 127.0.0.1:9100"
            )));
        }
    }
    Ok(())
}

/// pythonpath's comma-separated directories, relative to chdir.
fn pythonpath(s: &Settings, chdir: &std::path::Path) -> Vec<PathBuf> {
    s.str("pythonpath")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| chdir.join(p))
        .collect()
}

fn raw_env(s: &Settings) -> Vec<(String, String)> {
    s.list("raw_env")
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn http_limits(s: &Settings) -> crate::http::Limits {
    crate::http::Limits {
        request_line: s.int("limit_request_line") as usize,
        fields: (s.int("limit_request_fields") as usize).min(32768),
        field_size: s.int("limit_request_field_size") as usize,
        rules: crate::http::Rules {
            permit_obsolete_folding: s.bool("permit_obsolete_folding"),
            strip_header_spaces: s.bool("strip_header_spaces"),
            permit_unconventional_http_method: s.bool("permit_unconventional_http_method"),
            permit_unconventional_http_version: s.bool("permit_unconventional_http_version"),
        },
    }
}

fn reload_poll_interval(s: &Settings) -> Duration {
    let poll = match s.get("reload_poll_interval") {
        Value::Float(x) => *x,
        Value::Int(n) => *n as f64,
        _ => 1.0,
    };
    Duration::from_secs_f64(poll.clamp(0.01, 3600.0))
}

/// The syslog target, facility and tag, when `syslog` is on.
fn syslog_config(s: &Settings) -> Result<Option<crate::syslog::SyslogConfig>, ConfigError> {
    if !s.bool("syslog") {
        return Ok(None);
    }
    let target =
        crate::syslog::Target::parse(s.str("syslog_addr").unwrap_or("udp://localhost:514"))
            .map_err(|e| ConfigError(format!("syslog_addr: {e}")))?;
    let fname = s.str("syslog_facility").unwrap_or("user");
    let facility = crate::syslog::facility(fname).ok_or_else(|| {
        ConfigError(format!(
            "syslog_facility: unknown facility name {fname:?} (one of: {})",
            crate::syslog::FACILITIES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let prefix = s
        .str("syslog_prefix")
        .filter(|p| !p.is_empty())
        .map(String::from)
        .unwrap_or_else(|| s.proc_name().replace(':', "."));
    Ok(Some(crate::syslog::SyslogConfig {
        target,
        facility,
        prefix,
        access: !s.bool("disable_redirect_access_to_syslog"),
    }))
}

/// control_socket, else the default path; a relative one is taken from
/// the directory the server started in.
fn control_socket_path(s: &Settings, env: &Env) -> PathBuf {
    let p = s
        .str("control_socket")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::control::default_path(&|k| env.get(k).map(String::from)));
    if p.is_relative() {
        env.cwd.join(p)
    } else {
        p
    }
}

impl Config {
    /// The configuration from loaded settings. `env` is the environment the
    /// settings were loaded with (for `$PORT` and `$SENDFILE`).
    pub fn from_loaded(mut loaded: Loaded, env: &Env) -> Result<Config, ConfigError> {
        let hooks = HookSet(loaded.settings.take_hooks());
        let s = &loaded.settings;
        let bind_given =
            *s.source("bind") != Source::Default || env.get("PORT").is_some_and(|p| !p.is_empty());
        let binds = binds(s)?;
        check_metrics_targets(s)?;
        let chdir = PathBuf::from(s.str("chdir").unwrap_or("."));
        let pythonpath = pythonpath(s, &chdir);
        let timeout = s.int("timeout");
        let reload_extra_files: Vec<String> = s
            .list("reload_extra_files")
            .into_iter()
            .map(String::from)
            .collect();
        let syslog = syslog_config(s)?;
        let non_empty = |name: &str| s.str(name).filter(|v| !v.is_empty()).map(String::from);
        Ok(Config {
            logconfig: non_empty("logconfig"),
            logconfig_json: non_empty("logconfig_json"),
            logconfig_dict: matches!(s.get("logconfig_dict"), Value::Dict(d) if !d.is_empty()),
            logger_class: non_empty("logger_class")
                .filter(|c| !matches!(c.as_str(), "gunicorn.glogging.Logger" | "simple")),
            syslog,
            server_names: crate::settings::file_py::take_server_names(),
            proc_name: s.proc_name().to_string(),
            wsgi_app: s.str("wsgi_app").unwrap_or_default().to_string(),
            binds,
            workers: s.int("workers").clamp(1, u32::MAX as i64) as u32,
            worker_connections: s.int("worker_connections").max(1) as usize,
            worker_mode: WorkerMode::from_settings(
                s.str("worker_class").unwrap_or("sync"),
                s.int("threads").clamp(0, 1 << 16) as usize,
            ),
            timeout: (timeout > 0).then(|| Duration::from_secs(timeout as u64)),
            graceful_timeout: secs(s, "graceful_timeout"),
            keep_alive: secs(s, "keepalive"),
            header_timeout: secs(s, "header_timeout").max(Duration::from_secs(1)),
            max_requests: s.int("max_requests") as u64,
            max_requests_jitter: s.int("max_requests_jitter") as u64,
            backlog: s.int("backlog").clamp(1, i32::MAX as i64) as i32,
            reuse_port: s.bool("reuse_port"),
            chdir,
            pythonpath,
            raw_env: raw_env(s),
            pidfile: s.str("pidfile").map(PathBuf::from),
            daemon: s.bool("daemon"),
            uid: switch_to(s.int("user"), nix::unistd::geteuid().as_raw()),
            gid: switch_to(s.int("group"), nix::unistd::getegid().as_raw()),
            umask: s.int("umask") as u32,
            preload: s.bool("preload_app"),
            access_logfile: s.str("accesslog").map(String::from),
            access_logformat: s
                .str("access_log_format")
                .unwrap_or(DEFAULT_ACCESS_LOG_FORMAT)
                .to_string(),
            error_logfile: s.str("errorlog").unwrap_or("-").to_string(),
            log_level: crate::log::Level::parse(s.str("loglevel").unwrap_or("info"))
                .unwrap_or(crate::log::Level::Info),
            capture_output: s.bool("capture_output"),
            limits: http_limits(s),
            forwarded_allow_ips: s
                .list("forwarded_allow_ips")
                .into_iter()
                .map(String::from)
                .collect(),
            header_policy: header_policy(s),
            casefold_http_method: s.bool("casefold_http_method"),
            sendfile: use_sendfile(s.get("sendfile"), env),
            tls_settings: crate::tls::TlsSettings::from_settings(s).map_err(ConfigError)?,
            tls: None,
            suppress_ragged_eofs: s.bool("suppress_ragged_eofs"),
            bind_given,
            upgrade_auto: s.str("upgrade_mode") == Some("auto"),
            upgrade_timeout: secs(s, "upgrade_timeout").max(Duration::from_secs(1)),
            reference_responder: loaded.reference_responder,
            // gunicorn: extra files only make sense with reload, so they imply it.
            reload: s.bool("reload") || !reload_extra_files.is_empty(),
            reload_engine: s.str("reload_engine").unwrap_or("auto").to_string(),
            reload_extra_files,
            reload_poll_interval: reload_poll_interval(s),
            statsd_host: s.str("statsd_host").map(String::from),
            statsd_prefix: s.str("statsd_prefix").unwrap_or("").to_string(),
            dogstatsd_tags: s.str("dogstatsd_tags").unwrap_or("").to_string(),
            enable_backlog_metric: s.bool("enable_backlog_metric"),
            metrics_bind: s.str("metrics_bind").map(String::from),
            control_socket: control_socket_path(s, env),
            control_socket_mode: (s.int("control_socket_mode") as u32) & 0o7777,
            control_socket_disable: s.bool("control_socket_disable"),
            config_file: loaded.config_file.take(),
            values: Arc::new(s.iter().map(|(k, v)| (k, v.clone())).collect()),
            hooks: Arc::new(hooks),
        })
    }
}

impl Config {
    /// This configuration with some settings changed (values already
    /// validated), as `cfg.set` in a server hook changes them. The hooks
    /// stay those of this configuration.
    pub fn with_changes(
        &self,
        changes: &[(&'static str, Value)],
        env: &Env,
    ) -> Result<Config, ConfigError> {
        let mut values: BTreeMap<&'static str, (Value, Source)> = self
            .values
            .iter()
            .map(|(k, v)| (*k, (v.clone(), Source::Default)))
            .collect();
        for (k, v) in changes {
            values.insert(k, (v.clone(), Source::Hook));
        }
        let loaded = Loaded {
            settings: Settings::from_values(values),
            config_file: self.config_file.clone(),
            warnings: Vec::new(),
            reference_responder: self.reference_responder,
        };
        let mut new = Config::from_loaded(loaded, env)?;
        new.bind_given |= self.bind_given;
        new.hooks = self.hooks.clone();
        new.server_names = self.server_names.clone();
        Ok(new)
    }
}

/// What a configuration load reads, kept from start so that a reload
/// (SIGHUP) reads the same sources: the same argv, and the environment as it
/// was before `raw_env` changed it (as gunicorn keeps `env_orig`).
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub argv: Vec<String>,
    pub env: Env,
}

/// A load that succeeded: the configuration, the action asked for on the
/// command line, and warnings to log (settings that have no effect here).
pub struct LoadedConfig {
    pub config: Config,
    pub action: settings::Action,
    pub warnings: Vec<String>,
    /// `--print-config` text.
    pub printed: String,
}

impl ConfigSource {
    pub fn new(argv: Vec<String>, env: Env) -> ConfigSource {
        ConfigSource { argv, env }
    }

    /// Whether [`ConfigSource::load`] will run Python (see `settings::needs_python`).
    pub fn needs_python(&self) -> bool {
        settings::needs_python(&self.argv, &self.env)
    }

    pub fn load(&self) -> Result<LoadedConfig, SettingsError> {
        let loaded = settings::load(&self.argv, &self.env)?;
        let action = loaded.action();
        let printed = loaded.settings.print_config();
        let warnings = loaded.warnings.clone();
        let config =
            Config::from_loaded(loaded, &self.env).map_err(|e| SettingsError::Invalid {
                at: settings::Location::CommandLine,
                message: e.0,
                traceback: None,
            })?;
        Ok(LoadedConfig {
            config,
            action,
            warnings,
            printed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str], vars: &[(&str, &str)]) -> Config {
        let argv = std::iter::once("ferricorn")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let env = Env::new(
            std::env::current_dir().unwrap(),
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        );
        ConfigSource::new(argv, env)
            .load()
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    #[test]
    fn settings_map_to_config_fields() {
        let c = load(
            &[
                "-w",
                "3",
                "--keep-alive",
                "7",
                "--preload",
                "-t",
                "0",
                "--upgrade-mode",
                "auto",
                "-m",
                "022",
                "app:x",
            ],
            &[],
        );
        assert_eq!(c.workers, 3);
        assert_eq!(c.keep_alive, Duration::from_secs(7));
        assert!(c.preload);
        assert_eq!(c.timeout, None);
        assert!(c.upgrade_auto);
        assert_eq!(c.umask, 0o22);
        assert_eq!(c.proc_name, "app:x");
        assert!(!c.bind_given);
        assert_eq!(c.uid, None, "our own uid means no switch");
        assert!(c.sendfile);
        assert!(c.hooks.is_empty());
    }

    #[test]
    fn environment_decides_defaults() {
        let c = load(&["app"], &[("PORT", "9001"), ("SENDFILE", "0")]);
        assert!(c.bind_given);
        assert_eq!(c.binds, vec![BindAddr::parse("0.0.0.0:9001").unwrap()]);
        assert!(!c.sendfile);
        let c = load(
            &[
                "--reload-extra-file",
                "templates/*.html",
                "--reload-poll-interval",
                "0.5",
                "app",
            ],
            &[],
        );
        assert!(c.reload, "extra files imply reload");
        assert_eq!(c.reload_poll_interval, Duration::from_millis(500));
    }
}
