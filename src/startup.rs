//! From command line to a running master: validate, set up the process,
//! bind, daemonize, write the pidfile, preload, hand over to the arbiter.
//!
//! Every failure here prints one line saying what and where, leaves no
//! pidfile or socket file behind, and exits non-zero.

use crate::cli::Cli;
use crate::config::Config;
use crate::master::{Arbiter, EXIT_APP_LOAD_ERROR};
use crate::pidfile::Pidfile;
use crate::signals::SignalPipe;
use crate::sock::{bind_listener, BindOptions, Listener};

const EXIT_CONFIG_ERROR: i32 = 1;

pub fn run(cli: &Cli) -> i32 {
    let cfg = match Config::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return EXIT_CONFIG_ERROR;
        }
    };
    unsafe { libc::umask(cfg.umask as libc::mode_t) };
    for (k, v) in &cfg.raw_env {
        // Single-threaded here, so changing the environment is sound.
        unsafe { std::env::set_var(k, v) };
    }
    if let Err(e) = std::env::set_current_dir(&cfg.chdir) {
        eprintln!("Error: --chdir {}: {e}", cfg.chdir.display());
        return EXIT_CONFIG_ERROR;
    }
    if let Err(e) = crate::log::init(cfg.log_level, &cfg.error_logfile, cfg.access_logfile.as_deref()) {
        eprintln!("Error: {e}");
        return EXIT_CONFIG_ERROR;
    }
    if cfg.capture_output && crate::log::error_log_is_file() {
        let fd = crate::log::error_fd();
        unsafe {
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
        }
    }
    // Before Python can start: CPython then leaves our SIGINT handler alone.
    let signals = match SignalPipe::install(&MASTER_SIGNALS) {
        Ok(s) => s,
        Err(e) => {
            crate::error!("Cannot install signal handlers: {e}");
            return EXIT_CONFIG_ERROR;
        }
    };

    crate::info!("Starting ferricorn {}", env!("CARGO_PKG_VERSION"));
    // A virtualenv the embedded Python cannot use is refused here, before
    // anything is bound or forked, rather than by every worker in turn.
    if let Err(e) = crate::python::interp::choose_executable() {
        crate::error!("{e}");
        return EXIT_CONFIG_ERROR;
    }
    let listeners = match bind_all(&cfg) {
        Ok(l) => l,
        Err(e) => {
            crate::error!("{e}");
            return EXIT_CONFIG_ERROR;
        }
    };
    if cfg.daemon {
        if let Err(e) = daemonize() {
            crate::error!("Cannot daemonize: {e}");
            cleanup(&listeners, None);
            return EXIT_CONFIG_ERROR;
        }
    }
    let pid = std::process::id();
    let pidfile = match &cfg.pidfile {
        Some(path) => match Pidfile::create(path, pid) {
            Ok(p) => Some(p),
            Err(e) => {
                crate::error!("{e}");
                cleanup(&listeners, None);
                return EXIT_CONFIG_ERROR;
            }
        },
        None => None,
    };
    give_files_to_worker_user(&cfg, &listeners);
    for l in &listeners {
        crate::info!("Listening at: {} ({pid})", l.url());
    }
    crate::info!("Using worker: sync");

    let preload = cfg.preload;
    let mut arbiter = match Arbiter::new(cfg, listeners, signals) {
        Ok(a) => a,
        Err(e) => {
            crate::error!("{e}");
            return EXIT_CONFIG_ERROR;
        }
    };
    arbiter.set_pidfile(pidfile);
    if preload {
        if let Err((code, report)) = arbiter.preload() {
            crate::error!("Exception while loading the application:\n{}", report.trim_end());
            crate::info!("Shutting down: Master");
            crate::info!("Reason: {}", if code == EXIT_APP_LOAD_ERROR { "App failed to load." } else { "Worker failed to boot." });
            arbiter.abandon();
            return code;
        }
    }
    arbiter.run()
}

const MASTER_SIGNALS: [i32; 11] = [
    libc::SIGHUP,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
    libc::SIGALRM,
];

fn bind_all(cfg: &Config) -> Result<Vec<Listener>, String> {
    let opts = BindOptions { backlog: cfg.backlog, reuse_port: cfg.reuse_port };
    let mut out: Vec<Listener> = Vec::new();
    for addr in &cfg.binds {
        match bind_listener(addr, &opts) {
            Ok(l) => {
                // Shared by every worker's event loop; accept must never block.
                let _ = crate::sock::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&l.fd), true);
                out.push(l);
            }
            Err(e) => {
                cleanup(&out, None);
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// With -u/-g, workers must still be able to reopen the log files on USR1
/// and clients of a unix socket reach a socket the workers' user owns, so
/// those files change owner, as gunicorn does. Failures are not fatal.
fn give_files_to_worker_user(cfg: &Config, listeners: &[Listener]) {
    if cfg.uid.is_none() && cfg.gid.is_none() {
        return;
    }
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    for target in std::iter::once(Some(cfg.error_logfile.as_str())).chain(std::iter::once(cfg.access_logfile.as_deref())).flatten() {
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
    use nix::unistd::{fork, setsid, ForkResult};
    match unsafe { fork() }.map_err(|e| e.to_string())? {
        ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
        ForkResult::Child => {}
    }
    setsid().map_err(|e| e.to_string())?;
    match unsafe { fork() }.map_err(|e| e.to_string())? {
        ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
        ForkResult::Child => {}
    }
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| e.to_string())?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    unsafe {
        libc::dup2(fd, 0);
        if !crate::log::error_log_is_file() || libc::isatty(1) == 1 {
            libc::dup2(fd, 1);
        }
        if libc::isatty(2) == 1 || !crate::log::error_log_is_file() {
            libc::dup2(fd, 2);
        }
    }
    Ok(())
}
