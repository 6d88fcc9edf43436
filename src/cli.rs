//! The command line, spelled as gunicorn spells it.
//!
//! Everything here is parsing only; `config::Config::from_cli` turns the
//! parsed flags into validated settings.

use clap::{ArgAction, Parser};

/// ferricorn: a zero-downtime WSGI HTTP server for UNIX, a drop-in for gunicorn.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ferricorn",
    version = env!("FERRICORN_VERSION"),
    disable_version_flag = true,
    override_usage = "ferricorn [OPTIONS] [WSGI_APP]",
    after_help = "Upgrade a running server to the binary and code now on disk, without downtime:\n  ferricorn upgrade --pid PIDFILE [--timeout SECONDS]"
)]
pub struct Cli {
    /// The WSGI application: `module`, `module:attr`, `module:factory()` or
    /// `module:factory('arg', n=1)`. The attribute defaults to `application`.
    #[arg(value_name = "WSGI_APP")]
    pub wsgi_app: Option<String>,

    /// Socket to bind: HOST, HOST:PORT, [IPv6]:PORT, unix:PATH or fd://FD. Repeatable.
    /// Default 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set.
    #[arg(short = 'b', long = "bind", value_name = "ADDRESS", action = ArgAction::Append)]
    pub bind: Vec<String>,

    /// Number of worker processes (default: $WEB_CONCURRENCY or 1).
    #[arg(short = 'w', long = "workers", value_name = "INT")]
    pub workers: Option<u32>,

    /// Worker class. Only `sync` exists in ferricorn.
    #[arg(short = 'k', long = "worker-class", value_name = "STRING", default_value = "sync")]
    pub worker_class: String,

    /// Maximum simultaneous connections a worker holds (idle keep-alive and
    /// clients still sending their request head included).
    #[arg(long = "worker-connections", value_name = "INT", default_value_t = 1000)]
    pub worker_connections: u32,

    /// Workers silent for more than this many seconds are killed and restarted.
    /// 0 disables the timeout.
    #[arg(short = 't', long = "timeout", value_name = "INT", default_value_t = 30)]
    pub timeout: u64,

    /// Seconds workers get to finish in-flight requests after a graceful stop
    /// or restart before they are killed.
    #[arg(long = "graceful-timeout", value_name = "INT", default_value_t = 30)]
    pub graceful_timeout: u64,

    /// Seconds to wait for the next request on a keep-alive connection.
    #[arg(long = "keep-alive", value_name = "INT", default_value_t = 2)]
    pub keep_alive: u64,

    /// Seconds a client gets to send a complete request head before it is
    /// answered 408 and closed (slow-client protection).
    #[arg(long = "header-timeout", value_name = "INT", default_value_t = 10)]
    pub header_timeout: u64,

    /// Restart a worker after it has served this many requests (0 = never).
    #[arg(long = "max-requests", value_name = "INT", default_value_t = 0)]
    pub max_requests: u64,

    /// Add a random 0..=N to max-requests per worker, so workers do not all
    /// restart at once.
    #[arg(long = "max-requests-jitter", value_name = "INT", default_value_t = 0)]
    pub max_requests_jitter: u64,

    /// Maximum number of pending connections in the listen queue.
    #[arg(long = "backlog", value_name = "INT", default_value_t = 2048)]
    pub backlog: i32,

    /// Set SO_REUSEPORT on listening sockets.
    #[arg(long = "reuse-port")]
    pub reuse_port: bool,

    /// Change to this directory before loading the app.
    #[arg(long = "chdir", value_name = "DIR")]
    pub chdir: Option<String>,

    /// Comma-separated directories prepended to the Python path.
    #[arg(long = "pythonpath", value_name = "STRING")]
    pub pythonpath: Option<String>,

    /// Set an environment variable in the server and the app: KEY=VALUE. Repeatable.
    #[arg(short = 'e', long = "env", value_name = "ENV", action = ArgAction::Append)]
    pub env: Vec<String>,

    /// Name shown in process titles (default: the WSGI_APP).
    #[arg(short = 'n', long = "name", value_name = "STRING")]
    pub name: Option<String>,

    /// File to write the master's PID to.
    #[arg(short = 'p', long = "pid", value_name = "FILE")]
    pub pidfile: Option<String>,

    /// Detach from the terminal and run in the background.
    #[arg(short = 'D', long = "daemon")]
    pub daemon: bool,

    /// Run workers as this user (name or uid).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// Run workers as this group (name or gid).
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    pub group: Option<String>,

    /// umask for files the server writes (octal like 0o22 or 022, or decimal).
    #[arg(short = 'm', long = "umask", value_name = "INT", default_value = "0")]
    pub umask: String,

    /// Load the app in the master before forking workers (saves memory and
    /// boot time; code changes then need a restart of the master).
    #[arg(long = "preload")]
    pub preload: bool,

    /// Access log file, `-` for stdout. No access log unless set.
    #[arg(long = "access-logfile", value_name = "FILE")]
    pub access_logfile: Option<String>,

    /// Access log format (gunicorn atoms: %(h)s %(r)s %(s)s ...).
    #[arg(long = "access-logformat", value_name = "STRING")]
    pub access_logformat: Option<String>,

    /// Error log file, `-` for stderr.
    #[arg(long = "error-logfile", visible_alias = "log-file", value_name = "FILE", default_value = "-")]
    pub error_logfile: String,

    /// Error log level: debug, info, warning, error, critical.
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Redirect the app's stdout and stderr to the error log file.
    #[arg(long = "capture-output")]
    pub capture_output: bool,

    /// Maximum size of the HTTP request line in bytes (0 = unlimited).
    #[arg(long = "limit-request-line", value_name = "INT", default_value_t = 4094)]
    pub limit_request_line: usize,

    /// Maximum number of header fields in a request.
    #[arg(long = "limit-request-fields", value_name = "INT", default_value_t = 100)]
    pub limit_request_fields: usize,

    /// Maximum size of one header field in bytes (0 = unlimited).
    #[arg(long = "limit-request-field_size", alias = "limit-request-field-size", value_name = "INT", default_value_t = 8190)]
    pub limit_request_field_size: usize,

    /// Comma-separated front-end IPs trusted to set X-Forwarded-* headers
    /// (`*` trusts all).
    #[arg(long = "forwarded-allow-ips", value_name = "STRING")]
    pub forwarded_allow_ips: Option<String>,

    /// Do not use sendfile() for wsgi.file_wrapper responses.
    #[arg(long = "no-sendfile")]
    pub no_sendfile: bool,

    /// Restart workers when the app's code changes (development): the
    /// modules the app imported and --reload-extra-file paths are watched.
    #[arg(long = "reload")]
    pub reload: bool,

    /// How --reload watches files: auto (inotify on Linux), inotify, or poll.
    #[arg(long = "reload-engine", value_name = "STRING", default_value = "auto", value_parser = ["auto", "inotify", "poll"])]
    pub reload_engine: String,

    /// Also reload when these files change (implies --reload); glob
    /// patterns such as 'templates/**/*.html' are expanded again on every
    /// reload, so new files are picked up. Repeatable.
    #[arg(long = "reload-extra-file", value_name = "FILES", action = ArgAction::Append)]
    pub reload_extra_file: Vec<String>,

    /// Seconds between scans with --reload-engine poll.
    #[arg(long = "reload-poll-interval", value_name = "SECONDS", default_value_t = 1.0)]
    pub reload_poll_interval: f64,

    /// Benchmark reference: answer every request with a fixed response from
    /// the Rust request path, without Python (the ceiling for the app path).
    #[arg(long = "reference-responder", hide = true)]
    pub reference_responder: bool,

    /// What an old master does once the new master started by USR2 has
    /// booted all its workers. `manual`: both serve until the operator
    /// sends WINCH then QUIT/TERM to the old master (gunicorn's and nginx's
    /// upgrade dance; HUP to it and TERM to the new one roll back). `auto`:
    /// the old master retires its workers gracefully and exits by itself, so
    /// one USR2 is a complete zero-downtime upgrade. Either way a new master
    /// that fails to start leaves the old one serving.
    #[arg(long = "upgrade-mode", value_name = "MODE", default_value = "manual", value_parser = ["manual", "auto"])]
    pub upgrade_mode: String,

    /// Seconds the new master started by USR2 gets to boot all its workers;
    /// past that the old master stops it and goes on serving.
    #[arg(long = "upgrade-timeout", value_name = "INT", default_value_t = 60)]
    pub upgrade_timeout: u64,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,
}
