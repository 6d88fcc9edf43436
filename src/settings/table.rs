//! Every setting ferricorn knows, in one table: gunicorn's settings under
//! gunicorn's names, flags and defaults, plus ferricorn's own. The command
//! line, `--help`, the config-file keys, validation and docs/settings.md are
//! all derived from this table, so a setting cannot exist in one and be
//! missing from another.

/// Groups as in gunicorn's settings documentation (docs and `--help` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    ConfigFile,
    Control,
    Debugging,
    ServerHooks,
    Logging,
    ProcessNaming,
    Ssl,
    Security,
    ServerMechanics,
    ServerSocket,
    WorkerProcesses,
}

impl Section {
    pub const ALL: [Section; 11] = [
        Section::ConfigFile,
        Section::Control,
        Section::Debugging,
        Section::ServerHooks,
        Section::Logging,
        Section::ProcessNaming,
        Section::Ssl,
        Section::Security,
        Section::ServerMechanics,
        Section::ServerSocket,
        Section::WorkerProcesses,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Section::ConfigFile => "Config File",
            Section::Control => "Control",
            Section::Debugging => "Debugging",
            Section::ServerHooks => "Server Hooks",
            Section::Logging => "Logging",
            Section::ProcessNaming => "Process Naming",
            Section::Ssl => "SSL",
            Section::Security => "Security",
            Section::ServerMechanics => "Server Mechanics",
            Section::ServerSocket => "Server Socket",
            Section::WorkerProcesses => "Worker Processes",
        }
    }
}

/// What a value must look like; each kind has one validator (`value.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A non-negative integer (gunicorn's `validate_pos_int`).
    Int,
    /// A non-negative integer that also reads `0o22`, `022` (octal) and `0x12`.
    AutoInt,
    /// A non-negative number (integer or decimal).
    Float,
    /// `true`/`false`; on the command line a flag that sets `true`.
    Bool,
    /// A flag that sets `false`; unset means "decide at run time" (`--no-sendfile`).
    NegFlag,
    /// An optional string (surrounding whitespace stripped).
    Str,
    /// One of a fixed set of words (case-insensitive, stored lower-case).
    Choice(&'static [&'static str]),
    /// A list of strings; the flag repeats, and a single string is a one-item list.
    List,
    /// A list of strings written as one comma-separated string.
    CommaList,
    /// A list of paths or glob patterns (relative to the working directory).
    FileList,
    /// A mapping (Python dict or TOML table).
    Dict,
    /// A user name or uid, stored as the uid.
    User,
    /// A group name or gid, stored as the gid.
    Group,
    /// A directory that must exist, stored absolute.
    Dir,
    /// A worker class; only the sync worker exists here.
    WorkerClass,
    /// A class path string (or a class object in a Python config).
    ClassPath,
    /// Accepted as written and never interpreted (settings with no effect).
    Any,
    /// A server hook: a callable taking this many positional arguments, or a
    /// `module.attr` string naming one. `post_request` takes 2, 3 or 4.
    Hook(u8),
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Int => "integer",
            Kind::AutoInt => "integer (octal 0o22/022 or hex 0x12 accepted)",
            Kind::Float => "number",
            Kind::Bool => "boolean",
            Kind::NegFlag => "boolean (flag sets false)",
            Kind::Str => "string",
            Kind::Choice(_) => "one of a fixed set of strings",
            Kind::List => "list of strings",
            Kind::CommaList => "comma-separated string (or list of strings)",
            Kind::FileList => "list of paths or glob patterns",
            Kind::Dict => "dictionary",
            Kind::User => "user name or uid",
            Kind::Group => "group name or gid",
            Kind::Dir => "directory",
            Kind::WorkerClass => "worker class",
            Kind::ClassPath => "Python class path",
            Kind::Any => "any value",
            Kind::Hook(_) => "callable (Python config), or \"module.function\" string",
        }
    }

    pub fn is_hook(self) -> bool {
        matches!(self, Kind::Hook(_))
    }
}

/// The value a setting has when nobody sets it.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'static str),
    List(&'static [&'static str]),
    Dict(&'static [(&'static str, &'static str)]),
    /// Computed when loading (environment, process ids, working directory):
    /// the text is what the docs show.
    Computed(&'static str),
}

/// Whether ferricorn acts on a setting. Settings that do not apply are
/// still accepted (a gunicorn config must keep working), but a value other
/// than the default produces a warning naming the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Yes,
    /// Can never apply to this server (TLS, other worker classes, ...).
    NoEffect(&'static str),
    /// Will apply, but the server does not act on it yet.
    NotYet(&'static str),
}

#[derive(Debug)]
pub struct Setting {
    /// gunicorn's key: the config-file name and the name `--print-config` shows.
    pub name: &'static str,
    pub section: Section,
    /// Command-line spellings exactly as gunicorn has them (`-w`, `--workers`).
    pub flags: &'static [&'static str],
    /// Extra spellings accepted but not shown (dash forms of underscore flags).
    pub aliases: &'static [&'static str],
    /// Placeholder shown in `--help`.
    pub meta: Option<&'static str>,
    pub kind: Kind,
    pub default: Default,
    /// Environment variable that supplies the default, as in gunicorn.
    pub env_default: Option<&'static str>,
    /// One line for `--help`; `more` adds detail for the docs.
    pub doc: &'static str,
    pub more: &'static str,
    pub applies: Applies,
    /// Only ferricorn has it.
    pub ferricorn_only: bool,
}

impl Setting {
    pub fn has_cli(&self) -> bool {
        !self.flags.is_empty()
    }
}

/// Look a setting up by its key.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

const LOG_LEVELS: &[&str] = &["debug", "info", "warning", "error", "critical"];
const RELOAD_ENGINES: &[&str] = &["auto", "poll", "inotify"];
const HEADER_MAPS: &[&str] = &["drop", "refuse", "dangerous"];
const UPGRADE_MODES: &[&str] = &["manual", "auto"];

const PASTE: &str = "PasteDeploy apps are not supported; give a WSGI_APP (module:attr) instead";

macro_rules! s {
    ($name:literal, $section:ident, [$($flag:literal),*], $kind:expr, $default:expr, $doc:literal
     $(, meta = $meta:literal)? $(, aliases = [$($alias:literal),*])? $(, env = $env:literal)?
     $(, more = $more:literal)? $(, applies = $applies:expr)? $(, ferricorn = $fo:literal)?) => {
        Setting {
            name: $name,
            section: Section::$section,
            flags: &[$($flag),*],
            aliases: &[$($($alias),*)?],
            meta: { let _m: Option<&'static str> = None; $(let _m = Some($meta);)? _m },
            kind: $kind,
            default: $default,
            env_default: { let _e: Option<&'static str> = None; $(let _e = Some($env);)? _e },
            doc: $doc,
            more: { let _x = ""; $(let _x = $more;)? _x },
            applies: { let _a = Applies::Yes; $(let _a = $applies;)? _a },
            ferricorn_only: { let _f = false; $(let _f = $fo;)? _f },
        }
    };
}

use self::Default as D;

pub static SETTINGS: &[Setting] = &[
    // ---- Config File
    s!("config", ConfigFile, ["-c", "--config"], Kind::Str, D::Computed("./gunicorn.conf.py, else ./ferricorn.toml, when present"),
       "Configuration file: PATH, file:PATH or python:MODULE.",
       meta = "CONFIG",
       more = "A `.toml` file is read as TOML; anything else is executed as Python, as gunicorn does. Without `-c`, `./gunicorn.conf.py` is read if it exists, else `./ferricorn.toml`. Only meaningful on the command line or in `$GUNICORN_CMD_ARGS`/`$FERRICORN_CMD_ARGS`."),
    s!("wsgi_app", ConfigFile, [], Kind::Str, D::None,
       "The WSGI application, MODULE:ATTR; the WSGI_APP argument wins over it.",
       more = "Lets a config file name the app, so the command line can be just `ferricorn -c app.conf.py`."),
    // ---- Control
    s!("control_socket", Control, ["--control-socket"], Kind::Str, D::Computed("$XDG_RUNTIME_DIR/gunicorn.ctl, else ~/.gunicorn/gunicorn.ctl"),
       "Unix socket path of the control interface that `gunicornc` talks to.",
       meta = "PATH",
       more = "gunicorn 27's protocol and commands (`show all|workers|stats|config|listeners`, `worker add|remove|kill`, `reload`, `reopen`, `shutdown`), plus ferricorn's `show generations` and `upgrade` (a binary upgrade, answered once the new master is ready or has failed). Served by the master's own loop. A relative path is taken from the working directory; the parent directory is created if needed. The socket survives HUP; a new master started by USR2 takes the path over (the file is replaced, never missing). Set at start."),
    s!("control_socket_mode", Control, ["--control-socket-mode"], Kind::AutoInt, D::Int(0o600),
       "Permission mode of the control socket (0600: only its owner may connect).",
       meta = "INT"),
    s!("control_socket_disable", Control, ["--no-control-socket"], Kind::Bool, D::Bool(false),
       "Create no control socket."),
    // ---- Debugging
    s!("reload", Debugging, ["--reload"], Kind::Bool, D::Bool(false),
       "Restart workers when the application's code changes (development only).",
       more = "The modules the app imported and `reload_extra_files` are watched; a change starts a new generation of workers, and code that fails to load leaves the old workers serving. Incompatible with preloading the app."),
    s!("reload_engine", Debugging, ["--reload-engine"], Kind::Choice(RELOAD_ENGINES), D::Str("auto"),
       "How to watch files for --reload: auto (inotify on Linux), inotify or poll.",
       meta = "STRING"),
    s!("reload_extra_files", Debugging, ["--reload-extra-file"], Kind::FileList, D::List(&[]),
       "More files to watch for --reload (templates, configuration...); implies --reload. Repeatable.",
       meta = "FILES",
       more = "Glob patterns such as `templates/**/*.html` are expanded again at every reload, so new files are picked up."),
    s!("reload_poll_interval", Debugging, ["--reload-poll-interval"], Kind::Float, D::Float(1.0),
       "Seconds between scans with --reload-engine poll.",
       meta = "SECONDS", ferricorn = true),
    s!("spew", Debugging, ["--spew"], Kind::Bool, D::Bool(false),
       "Trace every line the server executes.",
       applies = Applies::NoEffect("it traces gunicorn's own Python code; ferricorn's server is not Python")),
    s!("check_config", Debugging, ["--check-config"], Kind::Bool, D::Bool(false),
       "Check the configuration, then exit 0 if it is valid and 1 if not."),
    s!("print_config", Debugging, ["--print-config"], Kind::Bool, D::Bool(false),
       "Print every setting as finally resolved, then exit (implies --check-config)."),
    // ---- Server Hooks
    s!("on_starting", ServerHooks, [], Kind::Hook(1), D::None,
       "on_starting(server): called before the master process initialises.",
       more = "Runs before anything is bound, after nworkers_changed(server, workers, None): settings it changes with `server.cfg.set(name, value)`, `bind` included, are the ones the server starts with. gunicorn daemonizes and writes the pidfile before on_starting; ferricorn does both after binding (so a bind error still reaches the terminal), so with --daemon `server.pid` here is the pid before the daemon forks. See docs/hooks.md for the objects hooks receive."),
    s!("on_reload", ServerHooks, [], Kind::Hook(1), D::None,
       "on_reload(server): called when SIGHUP recycles the workers.",
       more = "Called after the configuration was read again (with the new configuration's hook, or the running one's if the new configuration is broken). An exception stops the server, as in gunicorn."),
    s!("when_ready", ServerHooks, [], Kind::Hook(1), D::None,
       "when_ready(server): called once the server has started.",
       more = "Called once the listeners are open (`server.LISTENERS`) and before the first worker is forked, as in gunicorn. An exception in on_starting or when_ready stops the start (exit 1)."),
    s!("pre_fork", ServerHooks, [], Kind::Hook(2), D::None,
       "pre_fork(server, worker): called just before a worker is forked."),
    s!("post_fork", ServerHooks, [], Kind::Hook(2), D::None,
       "post_fork(server, worker): called in the worker just after it was forked.",
       more = "Runs after the worker switched to --user/--group. An exception is a boot failure of the worker."),
    s!("post_worker_init", ServerHooks, [], Kind::Hook(1), D::None,
       "post_worker_init(worker): called after a worker has loaded the app.",
       more = "`worker.wsgi` is the app (and `worker.app.callable`), so `worker.wsgi(environ, start_response)` warms it. An exception is a boot failure of the worker."),
    s!("worker_int", ServerHooks, [], Kind::Hook(1), D::None,
       "worker_int(worker): called when a worker exits on SIGINT or SIGQUIT.",
       more = "Called between requests; a worker still inside a request 1 s after the signal exits without it. Without this hook a worker exits at once on INT/QUIT."),
    s!("worker_abort", ServerHooks, [], Kind::Hook(1), D::None,
       "worker_abort(worker): called when a worker gets SIGABRT, usually on timeout.",
       more = "As in gunicorn, it runs from a Python signal handler: after the Python stacks are logged, as soon as the interpreter runs again (a stuck `time.sleep` or Python loop qualifies, a C call that never returns does not). The master kills the worker 1 s after SIGABRT either way."),
    s!("pre_exec", ServerHooks, [], Kind::Hook(1), D::None,
       "pre_exec(server): called just before a new master is executed (USR2 upgrade).",
       more = "Called in the old master just before it starts the new one (gunicorn calls it in the forked child). An exception abandons the upgrade."),
    s!("pre_request", ServerHooks, [], Kind::Hook(2), D::None,
       "pre_request(worker, req): called before a worker handles a request."),
    s!("post_request", ServerHooks, [], Kind::Hook(4), D::None,
       "post_request(worker, req, environ, resp): called after a request; 2 or 3 arguments are also accepted."),
    s!("child_exit", ServerHooks, [], Kind::Hook(2), D::None,
       "child_exit(server, worker): called in the master after a worker has exited.",
       more = "For every worker, however it ended: retired, killed, crashed, or failed to boot."),
    s!("worker_exit", ServerHooks, [], Kind::Hook(2), D::None,
       "worker_exit(server, worker): called in the worker just before it exits.",
       more = "Also after a failed boot and after worker_abort, as in gunicorn; not when the worker is killed (SIGKILL)."),
    s!("nworkers_changed", ServerHooks, [], Kind::Hook(3), D::None,
       "nworkers_changed(server, new_value, old_value): called when the number of workers changes.",
       more = "`old_value` is None the first time (before on_starting). Then on TTIN/TTOU, on every HUP (even when the number stays, as in gunicorn), and when a hook sets `server.num_workers`, which also makes that the number of workers."),
    s!("on_exit", ServerHooks, [], Kind::Hook(1), D::None,
       "on_exit(server): called just before the master exits."),
    s!("ssl_context", ServerHooks, [], Kind::Hook(2), D::None,
       "ssl_context(config, default_ssl_context_factory): builds the TLS context.",
       more = "The factory makes the context the TLS settings describe; the hook may change it (`minimum_version`, `maximum_version`, `verify_mode`, `load_cert_chain`, `load_verify_locations`, `set_ciphers`, `set_alpn_protocols`) and returns it. Its settings are applied to rustls; what rustls cannot do (an SNI callback, DH parameters, a key passphrase) is an error at start naming it. Called at start and on each HUP."),
    // ---- Logging
    s!("accesslog", Logging, ["--access-logfile"], Kind::Str, D::None,
       "Access log file; '-' is stdout. No access log unless set.",
       meta = "FILE"),
    s!("disable_redirect_access_to_syslog", Logging, ["--disable-redirect-access-to-syslog"], Kind::Bool, D::Bool(false),
       "Do not send access logs to syslog."),
    s!("access_log_format", Logging, ["--access-logformat"], Kind::Str,
       D::Str(r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#),
       "Access log line format, with gunicorn's %(x)s atoms.",
       meta = "STRING",
       more = "Atoms: h remote address, l '-', u user, t date, r request line, m method, U path, q query string, H protocol, s status, B body length, b body length or '-', f referrer, a user agent, T/M/D/L request time in s/ms/µs/decimal s, p pid, %({header}i)s request header, %({header}o)s response header, %({var}e)s environment variable."),
    s!("errorlog", Logging, ["--error-logfile", "--log-file"], Kind::Str, D::Str("-"),
       "Error log file; '-' is stderr.",
       meta = "FILE"),
    s!("loglevel", Logging, ["--log-level"], Kind::Choice(LOG_LEVELS), D::Str("info"),
       "Error log level: debug, info, warning, error or critical.",
       meta = "LEVEL"),
    s!("capture_output", Logging, ["--capture-output"], Kind::Bool, D::Bool(false),
       "Send the app's stdout and stderr to the error log file."),
    s!("logger_class", Logging, ["--logger-class"], Kind::ClassPath, D::Str("gunicorn.glogging.Logger"),
       "Python class that does the logging.",
       meta = "STRING",
       more = "A subclass of gunicorn's glogging.Logger needs gunicorn installed in the server's Python: the class is created in the master and in every worker with a gunicorn Config holding these settings, and every log line goes through it: error-log lines through its log(level, msg), requests through its access(resp, req, environ, request_time) with gunicorn-shaped objects (status, sent, headers; method, uri, path, query, version, headers; REQUEST_METHOD, RAW_URI, PATH_INFO, QUERY_STRING, SERVER_PROTOCOL, REMOTE_ADDR and HTTP_* environ keys). Without gunicorn it is an error at start."),
    s!("logconfig", Logging, ["--log-config"], Kind::Str, D::None,
       "Python logging configuration file (fileConfig format).",
       meta = "FILE",
       more = "As in gunicorn: the server's lines then go to the `gunicorn.error` and `gunicorn.access` loggers (access lines with gunicorn's atoms dict as `record.args`), in the master and every worker. HUP reads the file again; a broken file keeps the configuration in force and logs why. Without any logconfig setting the logs are written by Rust, with no Python involved."),
    s!("logconfig_dict", Logging, [], Kind::Dict, D::Dict(&[]),
       "Python logging configuration dictionary (dictConfig format).",
       more = "Merged over gunicorn's defaults (glogging.CONFIG_DEFAULTS) with a shallow update, as gunicorn merges it, and applied with logging.config.dictConfig. Classes defined in the config file can be named by object (`\"()\": JsonFormatter`). Takes precedence over logconfig_json and logconfig."),
    s!("logconfig_json", Logging, ["--log-config-json"], Kind::Str, D::None,
       "Python logging configuration as a JSON file.",
       meta = "FILE",
       more = "A JSON object in dictConfig format, merged over gunicorn's defaults like logconfig_dict. A missing or invalid file is an error naming it (and the line)."),
    s!("syslog_addr", Logging, ["--log-syslog-to"], Kind::Str, D::Str("udp://localhost:514"),
       "Where to send syslog messages: unix://PATH#TYPE, udp://HOST:PORT or tcp://HOST:PORT.",
       meta = "SYSLOG_ADDR"),
    s!("syslog", Logging, ["--log-syslog"], Kind::Bool, D::Bool(false),
       "Send the server's logs to syslog.",
       more = "Sent by Rust in gunicorn's layout (`<PRI>gunicorn.PREFIX.error: [PID] message`, `.access` for access lines) over a non-blocking socket: a message that cannot be sent at once is dropped, never waited for. Also with a logconfig setting."),
    s!("syslog_prefix", Logging, ["--log-syslog-prefix"], Kind::Str, D::None,
       "Program name to use in syslog entries.",
       meta = "SYSLOG_PREFIX"),
    s!("syslog_facility", Logging, ["--log-syslog-facility"], Kind::Str, D::Str("user"),
       "Syslog facility name.",
       meta = "SYSLOG_FACILITY"),
    s!("enable_stdio_inheritance", Logging, ["-R", "--enable-stdio-inheritance"], Kind::Bool, D::Bool(false),
       "Keep stdio open in daemon mode instead of redirecting it to /dev/null.",
       applies = Applies::NotYet("daemon mode always redirects stdio to /dev/null")),
    s!("statsd_host", Logging, ["--statsd-host"], Kind::Str, D::None,
       "StatsD server to send metrics to: HOST:PORT, HOST (port 8125), unix:PATH or unix://PATH.",
       meta = "STATSD_ADDR",
       more = "Sent from Rust as gunicorn sends them: per request `gunicorn.request.duration` (timer, ms), `gunicorn.requests` and `gunicorn.request.status.<code>` (counters); from the master `gunicorn.workers` (gauge, when the count changes) and `gunicorn.backlog` (histogram, with enable_backlog_metric); and `gunicorn.log.warning`/`error`/`critical` (counters) for every such log line. A worker sends its per-request lines several to a datagram (StatsD's newline-separated multi-metric form, at most 1400 bytes, within 100 ms); gunicorn sends one per datagram. Datagrams go through a non-blocking socket and are dropped rather than wait, so an agent that is down or slow never holds a request."),
    s!("dogstatsd_tags", Logging, ["--dogstatsd-tags"], Kind::Str, D::Str(""),
       "Comma-separated DogStatsD tags added to metrics, e.g. `tag1:value1,tag2:value2`.",
       meta = "DOGSTATSD_TAGS"),
    s!("statsd_prefix", Logging, ["--statsd-prefix"], Kind::Str, D::Str(""),
       "Prefix of StatsD metric names (a trailing `.` is added if missing).",
       meta = "STATSD_PREFIX"),
    s!("enable_backlog_metric", Logging, ["--enable-backlog-metric"], Kind::Bool, D::Bool(false),
       "Send the listen backlog as the `gunicorn.backlog` StatsD histogram.",
       more = "The connections waiting in the listeners' accept queues (Linux), summed, once per turn of the master's loop."),
    s!("metrics_bind", Logging, ["--metrics-bind"], Kind::Str, D::None,
       "Serve Prometheus metrics at `GET /metrics` on this HOST:PORT, from the master.",
       meta = "ADDRESS",
       more = "Text exposition format, no Python involved: `ferricorn_requests_total{status}`, the `ferricorn_request_duration_seconds` histogram, `ferricorn_workers{generation,state}`, `ferricorn_connections_open`, `ferricorn_requests_in_flight`, `ferricorn_worker_restarts_total{reason}` (timeout, max_requests, crash), `ferricorn_upgrades_total{outcome}` and `ferricorn_reloads_total{outcome}`. Counters never go backwards while the master lives: a worker's exit, a recycling or a HUP loses nothing; a new master (USR2) starts from zero. Set at start (a HUP does not move it).",
       ferricorn = true),
    // ---- Process Naming
    s!("proc_name", ProcessNaming, ["-n", "--name"], Kind::Str, D::None,
       "Name shown in process titles (ps, top); default_proc_name when unset.",
       meta = "STRING"),
    s!("default_proc_name", ProcessNaming, [], Kind::Str, D::Computed("the WSGI app, else `ferricorn`"),
       "Internal: the process name used when proc_name is unset."),
    // ---- SSL
    s!("keyfile", Ssl, ["--keyfile"], Kind::Str, D::None, "TLS private key file (PEM).", meta = "FILE",
       more = "Unset: the key is read from `certfile`. Read by the master before workers drop privileges, so a key only root can read works with `--user`. Encrypted keys are refused."),
    s!("certfile", Ssl, ["--certfile"], Kind::Str, D::None, "TLS certificate file (PEM): every bind serves https.", meta = "FILE",
       more = "The server's certificate first, then its chain. Served by rustls with TLS 1.2 and 1.3 and ALPN `http/1.1`. SIGHUP reads it (and the key) again: new workers serve the new certificate, open connections finish on the old, and one that does not load keeps the old one serving."),
    s!("ssl_version", Ssl, ["--ssl-version"], Kind::Any, D::Int(2),
       "The lowest TLS version offered (deprecated in gunicorn).",
       more = "Python's `ssl.PROTOCOL_*` numbers or names: `TLS` (2, the default), `TLSv1`, `TLSv1_1` and `TLSv1_2` mean TLS 1.2 or later (rustls speaks nothing older); `TLSv1_3` means TLS 1.3 only."),
    s!("cert_reqs", Ssl, ["--cert-reqs"], Kind::Int, D::Int(0),
       "Whether a client certificate is required: 0 no, 1 optional, 2 required.",
       more = "1 and 2 need `ca_certs`. A verified client certificate is in the environ as `SSL_CLIENT_CERT` (PEM)."),
    s!("ca_certs", Ssl, ["--ca-certs"], Kind::Str, D::None, "CA certificates file (PEM) client certificates are verified against.", meta = "FILE"),
    s!("suppress_ragged_eofs", Ssl, ["--suppress-ragged-eofs"], Kind::Bool, D::Bool(true),
       "Treat a client closing TCP without TLS close_notify as an ordinary end of stream.",
       more = "False: such a close is an error (logged at debug level, the connection dropped)."),
    s!("do_handshake_on_connect", Ssl, ["--do-handshake-on-connect"], Kind::Bool, D::Bool(false),
       "Do the TLS handshake when the socket connects.",
       more = "ferricorn always handshakes as the connection arrives, in the worker's event loop with the request-head deadline (`--header-timeout`), never on a request thread; both values behave the same."),
    s!("ciphers", Ssl, ["--ciphers"], Kind::Str, D::None, "TLS 1.2 cipher suites, in OpenSSL's cipher list format.",
       more = "Mapped to rustls's suites (ECDHE with AES-GCM or ChaCha20-Poly1305): keywords such as `HIGH`, `ECDHE+AESGCM`, `!aNULL` work as in OpenSSL; a family rustls lacks (`DHE`) selects nothing; a suite rustls cannot offer named outright, an unknown keyword, or a list that selects nothing is an error. TLS 1.3 suites are all offered unless named (`TLS_AES_256_GCM_SHA384`)."),
    // ---- Security
    s!("limit_request_line", Security, ["--limit-request-line"], Kind::Int, D::Int(4094),
       "Largest request line in bytes, 0 (unlimited) to 8190.",
       meta = "INT"),
    s!("limit_request_fields", Security, ["--limit-request-fields"], Kind::Int, D::Int(100),
       "Most header fields in one request (at most 32768).",
       meta = "INT"),
    s!("limit_request_field_size", Security, ["--limit-request-field_size"], Kind::Int, D::Int(8190),
       "Largest header field in bytes; 0 is unlimited.",
       meta = "INT", aliases = ["--limit-request-field-size"]),
    // ---- Server Mechanics
    s!("preload_app", ServerMechanics, ["--preload"], Kind::Bool, D::Bool(false),
       "Load the app in the master before forking workers.",
       more = "Saves memory and start-up time; code changes then need a full restart rather than a worker restart."),
    s!("sendfile", ServerMechanics, ["--no-sendfile"], Kind::NegFlag, D::None,
       "Do not use sendfile() for file responses.",
       env = "SENDFILE",
       more = "Unset means: use sendfile unless `$SENDFILE` is something other than y, 1, yes or true."),
    s!("reuse_port", ServerMechanics, ["--reuse-port"], Kind::Bool, D::Bool(false),
       "Set SO_REUSEPORT on the listening sockets."),
    s!("chdir", ServerMechanics, ["--chdir"], Kind::Dir, D::Computed("the working directory"),
       "Change to this directory before loading the app.",
       meta = "DIR"),
    s!("daemon", ServerMechanics, ["-D", "--daemon"], Kind::Bool, D::Bool(false),
       "Detach from the terminal and run in the background."),
    s!("raw_env", ServerMechanics, ["-e", "--env"], Kind::List, D::List(&[]),
       "Set an environment variable for the server and the app: KEY=VALUE. Repeatable.",
       meta = "ENV"),
    s!("pidfile", ServerMechanics, ["-p", "--pid"], Kind::Str, D::None,
       "File to write the master's PID to; none unless set.",
       meta = "FILE"),
    s!("worker_tmp_dir", ServerMechanics, ["--worker-tmp-dir"], Kind::Str, D::None,
       "Directory for the workers' heartbeat files.",
       meta = "DIR",
       applies = Applies::NoEffect("worker heartbeats go through shared memory, not temporary files")),
    s!("user", ServerMechanics, ["-u", "--user"], Kind::User, D::Computed("the effective uid"),
       "Run the workers as this user (name or uid).",
       meta = "USER"),
    s!("group", ServerMechanics, ["-g", "--group"], Kind::Group, D::Computed("the effective gid"),
       "Run the workers as this group (name or gid).",
       meta = "GROUP"),
    s!("umask", ServerMechanics, ["-m", "--umask"], Kind::AutoInt, D::Int(0),
       "File mode mask for files the server writes, unix sockets included.",
       meta = "INT"),
    s!("initgroups", ServerMechanics, ["--initgroups"], Kind::Bool, D::Bool(false),
       "Give the workers all the supplementary groups of --user.",
       applies = Applies::NotYet("supplementary groups are not set yet")),
    s!("tmp_upload_dir", ServerMechanics, [], Kind::Str, D::None,
       "Directory for temporary request data.",
       applies = Applies::NoEffect("request bodies are streamed and never written to disk (gunicorn does not use it either)")),
    s!("secure_scheme_headers", ServerMechanics, [], Kind::Dict,
       D::Dict(&[("X-FORWARDED-PROTOCOL", "ssl"), ("X-FORWARDED-PROTO", "https"), ("X-FORWARDED-SSL", "on")]),
       "Headers and values by which a trusted proxy marks a request as HTTPS.",
       more = "Only peers in forwarded_allow_ips are believed. Names are matched case-insensitively, values exactly (case-sensitively, as in gunicorn). A trusted peer's request whose headers from this set disagree (one says HTTPS, another does not) gets 400. An empty dictionary turns the feature off."),
    s!("forwarded_allow_ips", ServerMechanics, ["--forwarded-allow-ips"], Kind::CommaList, D::Str("127.0.0.1,::1"),
       "Front-end IPs trusted to set the secure-scheme headers, comma-separated; '*' trusts all.",
       meta = "STRING", env = "FORWARDED_ALLOW_IPS"),
    s!("pythonpath", ServerMechanics, ["--pythonpath"], Kind::Str, D::None,
       "Comma-separated directories added to the front of the Python path.",
       meta = "STRING"),
    s!("paste", ServerMechanics, ["--paste", "--paster"], Kind::Str, D::None,
       "Load a PasteDeploy config file (FILE#section).",
       meta = "STRING",
       applies = Applies::NoEffect(PASTE)),
    s!("proxy_protocol", ServerMechanics, ["--proxy-protocol"], Kind::Bool, D::Bool(false),
       "Accept the PROXY protocol header from a front end.",
       applies = Applies::NoEffect("the PROXY protocol is not implemented; use X-Forwarded-For with forwarded_allow_ips")),
    s!("proxy_allow_ips", ServerMechanics, ["--proxy-allow-from"], Kind::CommaList, D::Str("127.0.0.1"),
       "Front-end IPs allowed to send the PROXY protocol header, comma-separated.",
       applies = Applies::NoEffect("the PROXY protocol is not implemented; use X-Forwarded-For with forwarded_allow_ips")),
    s!("raw_paste_global_conf", ServerMechanics, ["--paste-global"], Kind::List, D::List(&[]),
       "A PasteDeploy global variable, KEY=VALUE. Repeatable.",
       meta = "CONF",
       applies = Applies::NoEffect(PASTE)),
    s!("permit_obsolete_folding", ServerMechanics, ["--permit-obsolete-folding"], Kind::Bool, D::Bool(false),
       "Accept obsolete line folding in header and trailer fields (unsafe).",
       more = "A field line starting with a space or tab then continues the previous field, whose value is joined with single spaces, as gunicorn does; otherwise such a request gets 400."),
    s!("strip_header_spaces", ServerMechanics, ["--strip-header-spaces"], Kind::Bool, D::Bool(false),
       "Accept spaces between a header name and its colon (unsafe, deprecated).",
       more = "Such headers are otherwise rejected with 400: accepting them enables request smuggling."),
    s!("permit_unconventional_http_method", ServerMechanics, ["--permit-unconventional-http-method"], Kind::Bool, D::Bool(false),
       "Accept request methods that break the usual conventions (lowercase, very short or long).",
       more = "Without it a method is 3 to 20 characters with no lowercase letters and no `#`, as in gunicorn; with it any token is a method."),
    s!("permit_unconventional_http_version", ServerMechanics, ["--permit-unconventional-http-version"], Kind::Bool, D::Bool(false),
       "Accept HTTP versions other than 1.x in the request line.",
       more = "Without it `HTTP/0.9`, `HTTP/2.0` and the like get 505; with it 0.x is served as HTTP/1.0 and later versions as HTTP/1.1."),
    s!("casefold_http_method", ServerMechanics, ["--casefold-http-method"], Kind::Bool, D::Bool(false),
       "Upper-case request methods before the app sees them.",
       more = "Lowercase methods are refused unless permit_unconventional_http_method is set, so this matters only with it, as in gunicorn."),
    s!("forwarder_headers", ServerMechanics, ["--forwarder-headers"], Kind::CommaList, D::Str("SCRIPT_NAME,PATH_INFO"),
       "Headers with '_' in their name a trusted front end may set; they reach the environ whatever header_map says.",
       more = "Only peers in forwarded_allow_ips are believed; `*` names every header. As in gunicorn, a `SCRIPT_NAME` header sets SCRIPT_NAME, and PATH_INFO is the path after it; the others, e.g. `REMOTE_USER`, appear as `HTTP_REMOTE_USER`."),
    s!("header_map", ServerMechanics, ["--header-map"], Kind::Choice(HEADER_MAPS), D::Str("drop"),
       "What to do with header names containing '_': drop, refuse or dangerous.",
       more = "`drop` leaves them out of the environ, `refuse` answers 400, `dangerous` maps them like '-' (so `X_Forwarded_For` and `X-Forwarded-For` share `HTTP_X_FORWARDED_FOR`, values joined with ','). Names in forwarder_headers from a trusted peer are always mapped."),
    s!("upgrade_mode", ServerMechanics, ["--upgrade-mode"], Kind::Choice(UPGRADE_MODES), D::Str("manual"),
       "What an old master does once the new master started by USR2 has booted all its workers: manual or auto.",
       meta = "MODE",
       more = "`manual`: both serve until the operator sends WINCH then QUIT/TERM to the old master (gunicorn's and nginx's upgrade dance; HUP to it and TERM to the new one roll back). `auto`: the old master retires its workers gracefully and exits by itself, so one USR2 is a complete zero-downtime upgrade. Either way a new master that fails to start leaves the old one serving.",
       ferricorn = true),
    s!("upgrade_timeout", ServerMechanics, ["--upgrade-timeout"], Kind::Int, D::Int(60),
       "Seconds the new master started by USR2 gets to boot all its workers; past that the old master stops it and goes on serving.",
       meta = "INT", ferricorn = true),
    // ---- Server Socket
    s!("bind", ServerSocket, ["-b", "--bind"], Kind::List, D::Computed("['127.0.0.1:8000'], or ['0.0.0.0:$PORT'] when PORT is set"),
       "Socket to bind: HOST, HOST:PORT, [IPv6]:PORT, unix:PATH or fd://FD. Repeatable.",
       meta = "ADDRESS", env = "PORT"),
    s!("backlog", ServerSocket, ["--backlog"], Kind::Int, D::Int(2048),
       "Most pending connections in the listen queue.",
       meta = "INT"),
    // ---- Worker Processes
    s!("workers", WorkerProcesses, ["-w", "--workers"], Kind::Int, D::Computed("$WEB_CONCURRENCY, else 1"),
       "Number of worker processes, typically 2-4 per core.",
       meta = "INT", env = "WEB_CONCURRENCY"),
    s!("worker_class", WorkerProcesses, ["-k", "--worker-class"], Kind::WorkerClass, D::Str("sync"),
       "Worker type: sync (one request at a time), gthread (a pool of threads) or gevent (a greenlet per request).",
       meta = "STRING",
       more = "`sync` (also `egg:gunicorn#sync`, `gunicorn.workers.sync.SyncWorker`), `gthread` (also `egg:gunicorn#gthread`, `gunicorn.workers.gthread.ThreadWorker`) and `gevent` (also `egg:gunicorn#gevent`, `gunicorn.workers.ggevent.GeventWorker`, `gevent_wsgi`, `gevent_pywsgi`) are accepted. As in gunicorn, `sync` with `threads` above 1 runs threaded workers. gevent workers need gevent in the app's environment; they patch the standard library after `post_fork` and before the app is imported, and hold up to `worker_connections` requests at once. eventlet (removed from gunicorn 27) and ASGI classes are refused with what to use instead."),
    s!("threads", WorkerProcesses, ["--threads"], Kind::Int, D::Int(1),
       "Python threads per worker, each running one request at a time.",
       meta = "INT",
       more = "Above 1 (or with `-k gthread`), each worker runs this many threads fed in arrival order by its event loop, which keeps accepting, keep-alive, slow clients and deadlines to itself. Suits apps that wait on a database or another service. A request that runs past `timeout` is logged with its thread's stack and its worker is replaced gracefully."),
    s!("worker_connections", WorkerProcesses, ["--worker-connections"], Kind::Int, D::Int(1000),
       "Most connections one worker holds at once (idle keep-alive and slow clients included).",
       meta = "INT"),
    s!("max_requests", WorkerProcesses, ["--max-requests"], Kind::Int, D::Int(0),
       "Restart a worker after this many requests; 0 never.",
       meta = "INT"),
    s!("max_requests_jitter", WorkerProcesses, ["--max-requests-jitter"], Kind::Int, D::Int(0),
       "Add a random 0..N to max_requests per worker, so workers do not restart together.",
       meta = "INT"),
    s!("timeout", WorkerProcesses, ["-t", "--timeout"], Kind::Int, D::Int(30),
       "Kill and restart a worker silent for this many seconds; 0 disables.",
       meta = "INT"),
    s!("graceful_timeout", WorkerProcesses, ["--graceful-timeout"], Kind::Int, D::Int(30),
       "Seconds workers get to finish their requests on a graceful stop or restart.",
       meta = "INT"),
    s!("keepalive", WorkerProcesses, ["--keep-alive"], Kind::Int, D::Int(2),
       "Seconds to wait for the next request on a keep-alive connection.",
       meta = "INT",
       more = "Unlike gunicorn's sync worker, ferricorn's keeps connections alive."),
    s!("header_timeout", WorkerProcesses, ["--header-timeout"], Kind::Int, D::Int(10),
       "Seconds a client gets to send a whole request head before it is answered 408.",
       meta = "INT", ferricorn = true),
];
