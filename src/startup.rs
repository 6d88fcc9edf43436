//! From command line to a running master: take inherited sockets, load the
//! configuration (starting Python first when the config file is Python),
//! set up the process, run the on_starting hooks, bind, daemonize, write the
//! pidfile, preload, run when_ready, hand over to the arbiter.
//!
//! A master started by a binary upgrade (USR2) goes the same way with three
//! differences: it adopts the listeners the old master handed over, it does
//! not daemonize again (it already is, and forking would change the pid the
//! old master watches), and it writes the pidfile only once it is ready.
//!
//! Every failure here prints one line saying what and where, leaves no
//! pidfile or socket file behind, and exits non-zero.

use crate::config::{Config, ConfigSource, LoadedConfig};
use crate::master::{Arbiter, UpgradeSetup, EXIT_APP_LOAD_ERROR};
use crate::pidfile::Pidfile;
use crate::settings::{Action, Env, SettingsError};
use crate::signals::SignalPipe;
use crate::sock::{
    adopt_inherited, bind_listener, listening_kind, BindAddr, BindOptions, Listener, ListenerKind,
};
use ferricorn_upgrade::{InheritedSocket, StartContext};
use nix::sys::signal::Signal;
use pyo3::prelude::*;
use std::io::IsTerminal;
use std::os::fd::AsRawFd;

const EXIT_CONFIG_ERROR: i32 = 1;

/// Print a configuration error as gunicorn does (`Error: ...`), with the
/// config file's traceback first when it raised.
pub fn print_settings_error(e: &SettingsError) {
    match e {
        SettingsError::Usage(clap_err) => {
            let _ = clap_err.print();
        }
        SettingsError::Invalid { traceback, .. } => {
            if let Some(tb) = traceback {
                eprint!("{}", tb);
            }
            eprintln!("Error: {e}");
        }
    }
}

/// Start the interpreter in the master: only when it must run Python.
/// Signal handlers are installed before (CPython then leaves SIGINT alone)
/// and a virtualenv it cannot use is refused before anything starts.
fn start_python_in_master(
    signals: &mut Option<SignalPipe>,
    path: Vec<std::path::PathBuf>,
) -> Result<(), String> {
    if crate::python::is_initialized() {
        return Ok(());
    }
    if signals.is_none() {
        *signals = Some(
            SignalPipe::install(&MASTER_SIGNALS)
                .map_err(|e| format!("Cannot install signal handlers: {e}"))?,
        );
    }
    crate::python::interp::choose_executable()?;
    let setup = crate::python::PythonSetup {
        argv: crate::proctitle::original_args().to_vec(),
        path_prepend: path,
    };
    crate::python::initialize(&setup)
}

/// Set (or with None remove) an environment variable for the server and
/// the app. With the interpreter already up (a Python config), its
/// `os.environ` was copied at start and must be told too; it calls
/// putenv/unsetenv itself.
pub fn set_env_var(key: &str, value: Option<&str>) {
    if crate::python::is_initialized() {
        let r = Python::attach(|py| -> PyResult<()> {
            let environ = py.import("os")?.getattr("environ")?;
            match value {
                Some(v) => environ.set_item(key, v)?,
                None => {
                    environ.call_method1("pop", (key, py.None()))?;
                }
            }
            Ok(())
        });
        if r.is_ok() {
            return;
        }
    }
    // Safe functions in this edition, yet unsound if another thread read
    // the environment meanwhile (getenv takes no lock): sound here, as the
    // master is single-threaded when it sets the app's environment.
    match value {
        Some(v) => std::env::set_var(key, v),
        None => std::env::remove_var(key),
    }
}

/// Put the app's directories first on `sys.path` (an interpreter started
/// to read the config only has the working directory there).
pub fn prepend_sys_path(cfg: &Config) {
    if !crate::python::is_initialized() {
        return;
    }
    let setup = crate::python::PythonSetup::for_config(cfg);
    let r = Python::attach(|py| -> PyResult<()> {
        let path = py.import("sys")?.getattr("path")?;
        for (i, dir) in setup.path_prepend.iter().enumerate() {
            let s = dir.to_string_lossy();
            while path
                .call_method1("__contains__", (s.as_ref(),))?
                .is_truthy()?
            {
                path.call_method1("remove", (s.as_ref(),))?;
            }
            path.call_method1("insert", (i, s.as_ref()))?;
        }
        Ok(())
    });
    if let Err(e) = r {
        crate::warning!("Cannot set sys.path: {e}");
    }
}

/// `--check-config` / `--print-config`: as gunicorn, the app is imported
/// too, so a config that names a broken app fails the check.
fn check_app(cfg: &Config, signals: &mut Option<SignalPipe>) -> i32 {
    for (k, v) in &cfg.raw_env {
        set_env_var(k, Some(v));
    }
    if let Err(e) = std::env::set_current_dir(&cfg.chdir) {
        eprintln!("Error: --chdir {}: {e}", cfg.chdir.display());
        return EXIT_CONFIG_ERROR;
    }
    let setup = crate::python::PythonSetup::for_config(cfg);
    if let Err(e) = start_python_in_master(signals, setup.path_prepend) {
        eprintln!("Error: {e}");
        return EXIT_CONFIG_ERROR;
    }
    prepend_sys_path(cfg);
    match Python::attach(|py| crate::python::load_app(py, &cfg.wsgi_app).map(|_| ())) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("\nError while loading the application:\n");
            eprint!("{}", e.report);
            EXIT_CONFIG_ERROR
        }
    }
}

/// Run the server (or `--check-config`/`--print-config`) for this command
/// line (`argv[0]` first); returns the exit status.
pub fn run(argv: Vec<String>) -> i32 {
    match serve(argv) {
        Ok(code) | Err(code) => code,
    }
}

/// `run`, with `?` for the failures: `Err` carries the exit status of a
/// failure already reported.
fn serve(argv: Vec<String>) -> Result<i32, i32> {
    // First of all: the hand-off variables leave the environment here, so
    // nothing later (least of all app code) sees or inherits them.
    let inherited = ferricorn_upgrade::take_inherited();
    // How this process was started, before --chdir moves it: USR2 starts the
    // next master from exactly this (Unicorn's START_CTX).
    let start = StartContext::capture(crate::proctitle::original_args().to_vec());
    let mut signals: Option<SignalPipe> = None;
    let (source, loaded) = load_config(argv, &mut signals)?;
    let LoadedConfig {
        config: cfg,
        action,
        warnings,
        printed,
    } = loaded;
    if action != Action::Serve {
        for w in &warnings {
            eprintln!("Warning: {w}");
        }
        if action == Action::PrintConfig {
            println!("{printed}");
        }
        return Ok(check_app(&cfg, &mut signals));
    }
    set_up_process(&cfg, &warnings)?;
    let inherited = inherited.map_err(|e| {
        crate::error!("Cannot use the sockets this process was started with: {e}");
        EXIT_CONFIG_ERROR
    })?;
    if let Some(note) = &inherited.ignored {
        crate::warning!("{note}");
    }
    let upgraded_from = inherited.upgraded_from;
    if cfg.capture_output {
        capture_output();
    }
    // Before Python can start: CPython then leaves our SIGINT handler alone.
    let signals = match signals.take() {
        Some(s) => s,
        None => SignalPipe::install(&MASTER_SIGNALS).map_err(|e| {
            crate::error!("Cannot install signal handlers: {e}");
            EXIT_CONFIG_ERROR
        })?,
    };
    configure_python_logging(&cfg)?;
    crate::info!("Starting ferricorn {}", env!("FERRICORN_VERSION"));
    // A virtualenv the embedded Python cannot use is refused here, before
    // anything is bound or forked, rather than by every worker in turn.
    if let Err(e) = crate::python::interp::choose_executable() {
        crate::error!("{e}");
        return Err(EXIT_CONFIG_ERROR);
    }
    let upgrade = UpgradeSetup {
        start,
        ready_fd: inherited.ready_fd,
        upgraded_from,
    };
    let mut arbiter = start_arbiter(cfg, signals, upgrade, source)?;
    let cfg = arbiter.config().clone();
    let (listeners, pidfile) = bind_and_detach(&cfg, inherited.sockets, upgraded_from)?;
    give_files_to_worker_user(&cfg, &listeners);
    announce(&cfg, &listeners);
    arbiter.set_listeners(listeners);
    arbiter.set_pidfile(pidfile);
    arbiter.set_config_file(cfg.config_file.clone());
    if cfg.preload {
        preload_app(&mut arbiter)?;
    }
    if let Err(code) = arbiter.ready_hooks() {
        crate::info!("Shutting down: Master");
        arbiter.abandon();
        return Err(code);
    }
    Ok(arbiter.run())
}

/// Read the configuration from the command line, the environment and the
/// config file (a Python one runs in the master's interpreter, started
/// here, as gunicorn's does).
fn load_config(
    argv: Vec<String>,
    signals: &mut Option<SignalPipe>,
) -> Result<(ConfigSource, LoadedConfig), i32> {
    let env = Env::from_process().map_err(|e| {
        eprintln!("Error: cannot read the working directory: {e}");
        EXIT_CONFIG_ERROR
    })?;
    let source = ConfigSource::new(argv, env);
    if source.needs_python() {
        // Its imports are found from the working directory.
        if let Err(e) = start_python_in_master(signals, vec![source.env.cwd.clone()]) {
            eprintln!("Error: {e}");
            return Err(EXIT_CONFIG_ERROR);
        }
    }
    let loaded = source.load().map_err(|e| {
        print_settings_error(&e);
        e.exit_code()
    })?;
    Ok((source, loaded))
}

/// The process as the configuration wants it: umask, environment, working
/// directory, logs; then the configuration's warnings, in the log.
fn set_up_process(cfg: &Config, warnings: &[String]) -> Result<(), i32> {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(cfg.umask));
    for (k, v) in &cfg.raw_env {
        set_env_var(k, Some(v));
    }
    if let Err(e) = std::env::set_current_dir(&cfg.chdir) {
        eprintln!("Error: --chdir {}: {e}", cfg.chdir.display());
        return Err(EXIT_CONFIG_ERROR);
    }
    if let Err(e) = crate::log::init(
        cfg.log_level,
        &cfg.error_logfile,
        cfg.access_logfile.as_deref(),
    ) {
        eprintln!("Error: {e}");
        return Err(EXIT_CONFIG_ERROR);
    }
    if let Some(sc) = &cfg.syslog {
        match crate::syslog::Syslog::open(sc) {
            Ok(s) => crate::syslog::install(Some(s)),
            Err(e) => {
                eprintln!("Error: {e}");
                return Err(EXIT_CONFIG_ERROR);
            }
        }
    }
    for w in warnings {
        crate::warning!("{w}");
    }
    prepend_sys_path(cfg);
    Ok(())
}

/// --capture-output: what the app prints goes to the error log file.
fn capture_output() {
    if let Some(log) = crate::log::error_file() {
        let _ = nix::unistd::dup2_stdout(log);
        let _ = nix::unistd::dup2_stderr(log);
    }
}

/// A logging configuration is applied before the first line it should
/// carry; a broken one stops the server here, naming the file.
fn configure_python_logging(cfg: &Config) -> Result<(), i32> {
    if !crate::pylog::wanted(cfg) {
        return Ok(());
    }
    let started = if crate::python::is_initialized() {
        Ok(())
    } else {
        crate::python::initialize(&crate::python::PythonSetup::for_config(cfg))
    };
    if let Err(e) = started.and_then(|()| crate::pylog::configure(cfg)) {
        crate::error!("Cannot configure logging: {e}");
        if crate::log::error_log_is_file() {
            eprintln!("Error: cannot configure logging: {e}");
        }
        return Err(EXIT_CONFIG_ERROR);
    }
    Ok(())
}

/// The arbiter, with the on_starting hooks run and TLS loaded.
///
/// gunicorn's order: nworkers_changed and on_starting before anything is
/// bound, so settings on_starting changes (`server.cfg.set("bind", ...)`)
/// are the ones the server starts with; when_ready once the listeners are
/// open, before the first worker is forked.
fn start_arbiter(
    cfg: Config,
    signals: SignalPipe,
    upgrade: UpgradeSetup,
    source: ConfigSource,
) -> Result<Arbiter, i32> {
    let mut arbiter = Arbiter::new(cfg, signals).map_err(|e| {
        crate::error!("{e}");
        EXIT_CONFIG_ERROR
    })?;
    arbiter.set_upgrade(upgrade);
    arbiter.set_config_source(source);
    if let Err(code) = arbiter.starting_hooks() {
        crate::info!("Shutting down: Master");
        return Err(code);
    }
    // Certificates and keys are read here, by the master, before any
    // worker drops privileges (-u/-g): a key only root can read works.
    if let Err(e) = arbiter.load_tls() {
        crate::error!("{e}");
        return Err(EXIT_CONFIG_ERROR);
    }
    Ok(arbiter)
}

/// Open the listeners, daemonize (not again after an upgrade) and write
/// the pidfile (after an upgrade, only once ready).
fn bind_and_detach(
    cfg: &Config,
    inherited: Vec<InheritedSocket>,
    upgraded_from: Option<u32>,
) -> Result<(Vec<Listener>, Option<Pidfile>), i32> {
    let listeners = open_listeners(cfg, inherited).map_err(|e| {
        crate::error!("{e}");
        EXIT_CONFIG_ERROR
    })?;
    if cfg.daemon && upgraded_from.is_none() {
        if let Err(e) = daemonize() {
            crate::error!("Cannot daemonize: {e}");
            cleanup(&listeners, None);
            return Err(EXIT_CONFIG_ERROR);
        }
    }
    let pidfile = match &cfg.pidfile {
        Some(path) if upgraded_from.is_some() => Some(Pidfile::deferred(path)),
        Some(path) => match Pidfile::create(path, std::process::id()) {
            Ok(p) => Some(p),
            Err(e) => {
                crate::error!("{e}");
                cleanup(&listeners, None);
                return Err(EXIT_CONFIG_ERROR);
            }
        },
        None => None,
    };
    Ok((listeners, pidfile))
}

/// The start-up lines naming the listeners and the worker type.
fn announce(cfg: &Config, listeners: &[Listener]) {
    let pid = std::process::id();
    for l in listeners {
        crate::info!("Listening at: {} ({pid})", l.url_with(cfg.tls.is_some()));
    }
    // gunicorn's words, so log parsers and operators see the same.
    match cfg.worker_mode {
        crate::config::WorkerMode::Sync => crate::info!("Using worker: sync"),
        crate::config::WorkerMode::Threads(n) => {
            crate::info!("Using worker: gthread");
            crate::debug!("{n} threads per worker");
        }
        crate::config::WorkerMode::Gevent => crate::info!("Using worker: gevent"),
    }
}

/// --preload: import the app in the master; a failure stops the server.
fn preload_app(arbiter: &mut Arbiter) -> Result<(), i32> {
    let Err((code, report)) = arbiter.preload() else {
        return Ok(());
    };
    crate::error!(
        "Exception while loading the application:\n{}",
        report.trim_end()
    );
    crate::info!("Shutting down: Master");
    crate::info!(
        "Reason: {}",
        if code == EXIT_APP_LOAD_ERROR {
            "App failed to load."
        } else {
            "Worker failed to boot."
        }
    );
    arbiter.abandon();
    Err(code)
}

const MASTER_SIGNALS: [i32; 11] = [
    Signal::SIGHUP as i32,
    Signal::SIGTERM as i32,
    Signal::SIGINT as i32,
    Signal::SIGQUIT as i32,
    Signal::SIGTTIN as i32,
    Signal::SIGTTOU as i32,
    Signal::SIGUSR1 as i32,
    Signal::SIGUSR2 as i32,
    Signal::SIGWINCH as i32,
    Signal::SIGCHLD as i32,
    Signal::SIGALRM as i32,
];

/// Inherited sockets waiting to be matched with a bind, and what each is.
type Pool = Vec<Option<(InheritedSocket, ListenerKind)>>;

/// The listeners to serve: inherited sockets that match the configured
/// binds are adopted (matched by the name the old master sent, else by
/// address), the other binds are bound, and inherited sockets no longer
/// configured are closed. Without any bind given (-b, $PORT), sockets from
/// systemd or a supervisor are served as they are, as gunicorn does.
fn open_listeners(cfg: &Config, inherited: Vec<InheritedSocket>) -> Result<Vec<Listener>, String> {
    let mut pool = inherited_pool(inherited)?;
    let mut out: Vec<Listener> = Vec::new();
    let opened = if !cfg.bind_given && !pool.is_empty() {
        adopt_as_they_are(pool, &mut out)
    } else {
        let chosen = choose_inherited(&cfg.binds, &mut pool);
        let opened = bind_or_adopt(cfg, chosen, &mut out);
        if opened.is_ok() {
            close_unconfigured(pool);
        }
        opened
    };
    if let Err(e) = opened {
        // Only socket files bound here are removed on failure: an adopted
        // one may be serving the old master still.
        for l in out.iter().filter(|l| !l.inherited) {
            l.unlink();
        }
        return Err(e);
    }
    for l in &out {
        // Shared by every worker's event loop; accept must never block.
        let _ = crate::sock::set_nonblocking(l.fd.as_raw_fd(), true);
    }
    Ok(out)
}

/// The inherited sockets, each checked to be a listening socket.
fn inherited_pool(inherited: Vec<InheritedSocket>) -> Result<Pool, String> {
    inherited
        .into_iter()
        .map(|s| {
            let kind = listening_kind(&s.fd)
                .map_err(|why| format!("Cannot use inherited fd {}: {why}", s.fd.as_raw_fd()))?;
            Ok(Some((s, kind)))
        })
        .collect()
}

/// Serve every inherited socket, under the name it came with when that
/// fits it, else under what it is.
fn adopt_as_they_are(pool: Pool, out: &mut Vec<Listener>) -> Result<(), String> {
    for (s, kind) in pool.into_iter().flatten() {
        let addr = s
            .name
            .as_deref()
            .and_then(|n| BindAddr::parse(n).ok())
            .filter(|a| a.is_served_by(&kind))
            .unwrap_or_else(|| BindAddr::of_kind(&kind));
        out.push(adopt_inherited(&addr, s.fd, s.owns_path)?);
    }
    Ok(())
}

/// For each bind, the inherited socket to adopt, taken from the pool:
/// first by the name the old master sent (exact, and the only way for port
/// 0 and fd://), then by address (systemd and GUNICORN_FD send no usable
/// names). None where the bind is to be bound afresh.
fn choose_inherited(binds: &[BindAddr], pool: &mut Pool) -> Vec<Option<InheritedSocket>> {
    let mut chosen: Vec<Option<InheritedSocket>> = Vec::new();
    for addr in binds {
        let name = addr.name();
        let i = pool.iter().position(|p| {
            p.as_ref().is_some_and(|(s, kind)| match addr {
                BindAddr::Fd(n) => {
                    s.name.as_deref() == Some(name.as_str())
                        || (s.name.is_none() && s.fd.as_raw_fd() == *n)
                }
                _ => s.name.as_deref() == Some(name.as_str()) && addr.is_served_by(kind),
            })
        });
        chosen.push(i.and_then(|i| pool[i].take()).map(|(s, _)| s));
    }
    for (addr, slot) in binds.iter().zip(chosen.iter_mut()) {
        if slot.is_some() || matches!(addr, BindAddr::Fd(_) | BindAddr::Tcp { port: 0, .. }) {
            continue;
        }
        let i = pool
            .iter()
            .position(|p| p.as_ref().is_some_and(|(_, kind)| addr.is_served_by(kind)));
        *slot = i.and_then(|i| pool[i].take()).map(|(s, _)| s);
    }
    chosen
}

/// Adopt the chosen socket of each bind, or bind it.
fn bind_or_adopt(
    cfg: &Config,
    chosen: Vec<Option<InheritedSocket>>,
    out: &mut Vec<Listener>,
) -> Result<(), String> {
    let opts = BindOptions {
        backlog: cfg.backlog,
        reuse_port: cfg.reuse_port,
    };
    for (addr, slot) in cfg.binds.iter().zip(chosen) {
        out.push(match slot {
            Some(s) => adopt_inherited(addr, s.fd, s.owns_path),
            None => bind_listener(addr, &opts),
        }?);
    }
    Ok(())
}

/// Close the inherited sockets no bind asked for.
fn close_unconfigured(pool: Pool) {
    for (s, kind) in pool.into_iter().flatten() {
        let shown = BindAddr::of_kind(&kind).name();
        crate::info!(
            "Closing inherited socket {shown} (fd {}): not among the configured binds",
            s.fd.as_raw_fd()
        );
    }
}

/// With -u/-g, workers must still be able to reopen the log files on USR1
/// and clients of a unix socket reach a socket the workers' user owns, so
/// those files change owner, as gunicorn does. Failures are not fatal.
fn give_files_to_worker_user(cfg: &Config, listeners: &[Listener]) {
    if cfg.uid.is_none() && cfg.gid.is_none() {
        return;
    }
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    for target in std::iter::once(Some(cfg.error_logfile.as_str()))
        .chain(std::iter::once(cfg.access_logfile.as_deref()))
        .flatten()
    {
        if target != "-" {
            paths.push(target.into());
        }
    }
    for l in listeners {
        if let (crate::sock::ListenerKind::Unix(p), true) = (&l.kind, l.owns_path) {
            paths.push(p.clone());
        }
    }
    for p in paths {
        if let Err(e) = std::os::unix::fs::chown(&p, cfg.uid, cfg.gid) {
            crate::warning!("Cannot give {} to the workers' user: {e}", p.display());
        }
    }
}

fn cleanup(listeners: &[Listener], pidfile: Option<&Pidfile>) {
    for l in listeners {
        l.unlink();
    }
    if let Some(p) = pidfile {
        p.remove_if_ours(std::process::id());
    }
}

/// Detach from the terminal: fork, new session, fork again, stdio to /dev/null.
fn daemonize() -> Result<(), String> {
    use nix::unistd::{setsid, ForkResult};
    // With a Python config the interpreter is up already: fork with its
    // cooperation so the daemon's interpreter is consistent.
    let fork = crate::python::fork_with_python;
    match fork().map_err(|e| e.to_string())? {
        ForkResult::Parent { .. } => crate::process::exit_immediately(0),
        ForkResult::Child => {}
    }
    setsid().map_err(|e| e.to_string())?;
    match fork().map_err(|e| e.to_string())? {
        ForkResult::Parent { .. } => crate::process::exit_immediately(0),
        ForkResult::Child => {}
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| e.to_string())?;
    let _ = nix::unistd::dup2_stdin(&null);
    if !crate::log::error_log_is_file() || std::io::stdout().is_terminal() {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    if std::io::stderr().is_terminal() || !crate::log::error_log_is_file() {
        let _ = nix::unistd::dup2_stderr(&null);
    }
    Ok(())
}
