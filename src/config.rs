//! Validated settings, resolved from the command line and the environment.
//!
//! Each setting keeps gunicorn's name, default and meaning; errors name the
//! offending flag and what to write instead.

use crate::cli::Cli;
use crate::sock::BindAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_ACCESS_LOG_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

#[derive(Debug, Clone)]
pub struct Config {
    pub wsgi_app: String,
    pub binds: Vec<BindAddr>,
    pub workers: u32,
    pub worker_connections: usize,
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
    pub limits: crate::http::Limits,
    pub forwarded_allow_ips: Vec<String>,
    pub sendfile: bool,
    /// Whether a bind address was given (-b or $PORT) rather than defaulted:
    /// without one, inherited listeners (systemd, GUNICORN_FD) are served as they are.
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

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

impl Config {
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        let wsgi_app = match &cli.wsgi_app {
            Some(app) => app.clone(),
            None => return err("No application module specified. Usage: ferricorn [OPTIONS] MODULE:ATTR"),
        };
        if !is_sync_worker_class(&cli.worker_class) {
            return err(format!(
                "Worker class '{}' is not supported: ferricorn runs sync workers only (use -k sync, or drop -k).",
                cli.worker_class
            ));
        }
        let workers = match cli.workers {
            Some(n) => n,
            None => match std::env::var("WEB_CONCURRENCY") {
                Ok(v) => v.trim().parse().map_err(|_| {
                    ConfigError(format!("WEB_CONCURRENCY={v:?} is not a number of workers."))
                })?,
                Err(_) => 1,
            },
        };
        if workers == 0 {
            return err("--workers must be at least 1.");
        }
        let bind_given = !cli.bind.is_empty() || std::env::var("PORT").is_ok_and(|p| !p.is_empty());
        let bind_specs: Vec<String> = if cli.bind.is_empty() {
            match std::env::var("PORT") {
                Ok(port) if !port.is_empty() => vec![format!("0.0.0.0:{port}")],
                _ => vec!["127.0.0.1:8000".to_string()],
            }
        } else {
            cli.bind.clone()
        };
        let mut binds = Vec::new();
        for spec in &bind_specs {
            binds.push(BindAddr::parse(spec).map_err(ConfigError)?);
        }
        let chdir = match &cli.chdir {
            Some(dir) => {
                let path = PathBuf::from(dir);
                if !path.is_dir() {
                    return err(format!("--chdir {dir}: no such directory."));
                }
                std::path::absolute(&path).unwrap_or(path)
            }
            None => std::env::current_dir()
                .map_err(|e| ConfigError(format!("cannot read the working directory: {e}")))?,
        };
        let pythonpath = cli
            .pythonpath
            .iter()
            .flat_map(|p| p.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| chdir.join(p))
            .collect();
        let mut raw_env = Vec::new();
        for kv in &cli.env {
            match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => raw_env.push((k.to_string(), v.to_string())),
                _ => return err(format!("-e/--env {kv:?}: expected KEY=VALUE.")),
            }
        }
        let log_level = crate::log::Level::parse(&cli.log_level).ok_or_else(|| {
            ConfigError(format!(
                "--log-level {:?}: expected one of debug, info, warning, error, critical.",
                cli.log_level
            ))
        })?;
        let umask = parse_umask(&cli.umask)?;
        let uid = cli.user.as_deref().map(resolve_user).transpose()?;
        let gid = cli.group.as_deref().map(resolve_group).transpose()?;
        let limits = crate::http::Limits {
            request_line: cli.limit_request_line,
            fields: cli.limit_request_fields.min(32768),
            field_size: cli.limit_request_field_size,
        };
        if cli.limit_request_line > 8190 {
            return err("--limit-request-line must be at most 8190 (0 means unlimited).");
        }
        let forwarded = cli
            .forwarded_allow_ips
            .clone()
            .or_else(|| std::env::var("FORWARDED_ALLOW_IPS").ok())
            .unwrap_or_else(|| "127.0.0.1,::1".to_string());
        Ok(Config {
            proc_name: cli.name.clone().unwrap_or_else(|| wsgi_app.clone()),
            wsgi_app,
            binds,
            workers,
            worker_connections: cli.worker_connections.max(1) as usize,
            timeout: (cli.timeout > 0).then(|| Duration::from_secs(cli.timeout)),
            graceful_timeout: Duration::from_secs(cli.graceful_timeout),
            keep_alive: Duration::from_secs(cli.keep_alive),
            header_timeout: Duration::from_secs(cli.header_timeout.max(1)),
            max_requests: cli.max_requests,
            max_requests_jitter: cli.max_requests_jitter,
            backlog: cli.backlog.max(1),
            reuse_port: cli.reuse_port,
            chdir,
            pythonpath,
            raw_env,
            pidfile: cli.pidfile.as_ref().map(PathBuf::from),
            daemon: cli.daemon,
            uid,
            gid,
            umask,
            preload: cli.preload,
            access_logfile: cli.access_logfile.clone(),
            access_logformat: cli
                .access_logformat
                .clone()
                .unwrap_or_else(|| DEFAULT_ACCESS_LOG_FORMAT.to_string()),
            error_logfile: cli.error_logfile.clone(),
            log_level,
            capture_output: cli.capture_output,
            limits,
            forwarded_allow_ips: forwarded.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            sendfile: !cli.no_sendfile,
            bind_given,
            upgrade_auto: cli.upgrade_mode == "auto",
            upgrade_timeout: Duration::from_secs(cli.upgrade_timeout.max(1)),
            reference_responder: cli.reference_responder,
            // gunicorn: extra files only make sense with reload, so they imply it.
            reload: cli.reload || !cli.reload_extra_file.is_empty(),
            reload_engine: cli.reload_engine.clone(),
            reload_extra_files: cli.reload_extra_file.clone(),
            reload_poll_interval: Duration::from_secs_f64(cli.reload_poll_interval.clamp(0.01, 3600.0)),
        })
    }
}

fn is_sync_worker_class(name: &str) -> bool {
    matches!(
        name,
        "sync" | "egg:gunicorn#sync" | "gunicorn.workers.sync.SyncWorker" | "ferricorn.sync"
    )
}

/// gunicorn's `auto_int`: `0o22`, `022` (read as octal), `0x12` or decimal.
fn parse_umask(text: &str) -> Result<u32, ConfigError> {
    let t = text.trim().to_ascii_lowercase();
    let parsed = if let Some(oct) = t.strip_prefix("0o") {
        u32::from_str_radix(oct, 8)
    } else if let Some(hex) = t.strip_prefix("0x") {
        u32::from_str_radix(hex, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        u32::from_str_radix(&t[1..], 8)
    } else {
        t.parse()
    };
    parsed.map_err(|_| ConfigError(format!("-m/--umask {text:?}: expected a number such as 0o22 or 18.")))
}

fn resolve_user(user: &str) -> Result<u32, ConfigError> {
    if let Ok(uid) = user.parse() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        _ => err(format!("-u/--user {user:?}: no such user.")),
    }
}

fn resolve_group(group: &str) -> Result<u32, ConfigError> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => err(format!("-g/--group {group:?}: no such group.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_accepts_gunicorn_spellings() {
        assert_eq!(parse_umask("0o22").unwrap(), 0o22);
        assert_eq!(parse_umask("022").unwrap(), 0o22);
        assert_eq!(parse_umask("18").unwrap(), 18);
        assert_eq!(parse_umask("0").unwrap(), 0);
        assert!(parse_umask("abc").is_err());
    }
}
