//! SIGHUP re-reads the configuration from the sources it came from at start
//! (the same argv, the environment as it was before `raw_env`), as
//! gunicorn's `Arbiter.reload()` does. The new configuration applies to the
//! workers started from then on: their number, timeouts, limits, log
//! settings, hooks, `wsgi_app`, `raw_env`, user/group, umask, pidfile. A
//! changed `bind` is applied too: addresses still wanted keep their socket
//! (no gap for clients), new ones are bound, dropped ones closed.
//!
//! Settings that shape the master process itself (`chdir`, `daemon`,
//! `preload_app`, `pythonpath`, `reuse_port`, `backlog` of kept sockets)
//! need a restart or a binary upgrade (USR2); a change to one is logged.
//!
//! Unlike gunicorn, which exits when the config file it re-reads is broken,
//! a configuration that fails to load or bind keeps the running one: the
//! error is logged and the workers are still recycled with the running
//! configuration (a HUP usually means "load the new code").

use super::Arbiter;
use crate::config::{Config, ConfigSource};
use crate::sock::{bind_listener, BindOptions, Listener};

impl Arbiter {
    /// Keep what a reload needs to read the configuration again.
    pub fn set_config_source(&mut self, source: ConfigSource) {
        self.source = Some(source);
    }

    /// Load the configuration again and make it the running one. Called by
    /// HUP before the new generation starts; calls on_reload.
    pub(super) fn reload_config(&mut self) {
        let old_tls = self.cfg.tls.clone();
        if let Some(source) = self.source.clone() {
            match self.load_again(&source) {
                Ok(()) => crate::info!("Configuration reloaded"),
                Err(e) => {
                    crate::error!("Cannot reload the configuration; the running configuration stays in force:\n{}", e.trim_end());
                }
            }
        }
        // Certificate rotation: the files are read again on every HUP,
        // changed settings or not. New workers serve the new certificate;
        // one that does not load leaves the running one in force.
        if let Err(e) = self.load_tls() {
            crate::error!("{e}; the certificate in use keeps serving");
            self.cfg.tls = old_tls;
        } else if self.cfg.tls.is_some() {
            crate::info!("TLS certificate loaded");
        }
        self.num_workers = self.cfg.workers;
        self.configure_statsd();
        self.hook_on_reload();
    }

    /// Build the TLS configuration workers will serve with from the
    /// running settings (and the ssl_context hook), reading the files now.
    pub fn load_tls(&mut self) -> Result<(), String> {
        self.cfg.tls = match &self.cfg.tls_settings {
            Some(t) => {
                let t = crate::hooks::ssl_context(&self.cfg, t)?;
                Some(crate::tls::build(&t)?)
            }
            None => None,
        };
        Ok(())
    }

    fn load_again(&mut self, source: &ConfigSource) -> Result<(), String> {
        if source.needs_python() && !crate::python::is_initialized() {
            // A gunicorn.conf.py appeared since start: the master needs the
            // interpreter now (its signal handlers are installed already).
            crate::python::initialize(&crate::python::PythonSetup::for_config(&self.cfg))?;
        }
        // raw_env of the running configuration must not leak into the load
        // (nor survive it if the new one drops a variable).
        self.unset_raw_env(source);
        let loaded = match source.load() {
            Ok(l) => l,
            Err(e) => {
                self.set_raw_env();
                let tb = match &e {
                    crate::settings::SettingsError::Invalid {
                        traceback: Some(tb),
                        ..
                    } => tb.clone(),
                    _ => String::new(),
                };
                return Err(format!("{tb}{e}"));
            }
        };
        let new = loaded.config;
        if new.binds != self.cfg.binds {
            if let Err(e) = self.rebind(&new) {
                self.set_raw_env();
                return Err(e);
            }
        }
        for w in &loaded.warnings {
            crate::warning!("{w}");
        }
        self.warn_restart_only(&new);
        let old_syslog = self.cfg.syslog.clone();
        self.apply_config(new, true);
        self.apply_logging(old_syslog);
        Ok(())
    }

    /// HUP: syslog and Python's logging as the new configuration says
    /// (gunicorn re-runs its logger's setup). A logging configuration that
    /// fails leaves the one in force and says why.
    fn apply_logging(&mut self, old_syslog: Option<crate::syslog::SyslogConfig>) {
        if self.cfg.syslog != old_syslog {
            match &self.cfg.syslog {
                Some(sc) => match crate::syslog::Syslog::open(sc) {
                    Ok(s) => crate::syslog::install(Some(s)),
                    Err(e) => crate::error!("{e}; syslog stays as it was"),
                },
                None => crate::syslog::install(None),
            }
        }
        if !crate::pylog::wanted(&self.cfg) {
            crate::pylog::deactivate();
            return;
        }
        let started = if crate::python::is_initialized() {
            Ok(())
        } else {
            crate::python::initialize(&crate::python::PythonSetup::for_config(&self.cfg))
        };
        if let Err(e) = started.and_then(|()| crate::pylog::configure(&self.cfg)) {
            crate::error!(
                "Cannot apply the new logging configuration; the one in force stays: {e}"
            );
        }
    }

    fn unset_raw_env(&self, source: &ConfigSource) {
        for (k, _) in &self.cfg.raw_env {
            crate::startup::set_env_var(k, source.env.get(k));
        }
    }

    fn set_raw_env(&self) {
        for (k, v) in &self.cfg.raw_env {
            crate::startup::set_env_var(k, Some(v));
        }
    }

    fn warn_restart_only(&self, new: &Config) {
        let old = &self.cfg;
        let mut changed = Vec::new();
        if new.chdir != old.chdir {
            changed.push("chdir");
        }
        if new.daemon != old.daemon {
            changed.push("daemon");
        }
        if new.preload != old.preload {
            changed.push("preload_app");
        }
        if new.pythonpath != old.pythonpath {
            changed.push("pythonpath");
        }
        if new.capture_output != old.capture_output {
            changed.push("capture_output");
        }
        if new.preload && new.wsgi_app != old.wsgi_app {
            changed.push("wsgi_app (with preload_app)");
        }
        if !changed.is_empty() {
            crate::warning!(
                "Changed on reload but only applied by a restart or a binary upgrade (USR2): {}",
                changed.join(", ")
            );
        }
    }

    /// New listeners for a changed `bind`: sockets for addresses still
    /// configured are kept, new addresses bound; only when all succeed are
    /// the old ones no longer wanted closed.
    pub(super) fn rebind(&mut self, new: &Config) -> Result<(), String> {
        let opts = BindOptions {
            backlog: new.backlog,
            reuse_port: new.reuse_port,
        };
        let mut old: Vec<Option<Listener>> = std::mem::take(&mut self.listeners)
            .into_iter()
            .map(Some)
            .collect();
        // (listener, index in `old` it came from)
        let mut out: Vec<(Listener, Option<usize>)> = Vec::new();
        for addr in &new.binds {
            if let Some(i) = old
                .iter()
                .position(|l| l.as_ref().is_some_and(|l| &l.addr == addr))
            {
                out.push((old[i].take().expect("position found it"), Some(i)));
                continue;
            }
            match bind_listener(addr, &opts) {
                Ok(l) => {
                    let _ =
                        crate::sock::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&l.fd), true);
                    out.push((l, None));
                }
                Err(e) => {
                    // Put everything back as it was.
                    for (l, from) in out {
                        match from {
                            Some(i) => old[i] = Some(l),
                            None => l.unlink(),
                        }
                    }
                    self.listeners = old.into_iter().flatten().collect();
                    return Err(format!("{e} (new bind on reload)"));
                }
            }
        }
        let fresh = out.iter().any(|(_, from)| from.is_none());
        let out: Vec<Listener> = out.into_iter().map(|(l, _)| l).collect();
        for l in old.into_iter().flatten() {
            crate::info!(
                "Closing listener {} (no longer in bind); its workers finish on it",
                l.url()
            );
            if l.owns_path {
                l.unlink();
            }
        }
        if fresh {
            for l in &out {
                crate::info!(
                    "Listening at: {} ({})",
                    l.url_with(self.cfg.tls.is_some()),
                    self.pid
                );
            }
        }
        self.listeners = out;
        Ok(())
    }

    /// Make `new` the running configuration. Before the server has
    /// started (`started` false: on_starting changed settings) the pidfile
    /// is left to start-up, which writes it next.
    pub(super) fn apply_config(&mut self, new: Config, started: bool) {
        let old = std::mem::replace(&mut self.cfg, new);
        let cfg = &self.cfg;
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(cfg.umask));
        self.set_raw_env();
        if cfg.log_level != old.log_level
            || cfg.error_logfile != old.error_logfile
            || cfg.access_logfile != old.access_logfile
        {
            if let Err(e) = crate::log::init(
                cfg.log_level,
                &cfg.error_logfile,
                cfg.access_logfile.as_deref(),
            ) {
                crate::error!("Cannot open the new log files, keeping the old ones: {e}");
                let _ = crate::log::init(
                    old.log_level,
                    &old.error_logfile,
                    old.access_logfile.as_deref(),
                );
            }
        }
        if started && cfg.pidfile != old.pidfile {
            if let Some(p) = &self.pidfile {
                p.remove_if_ours(self.pid);
            }
            self.pidfile = match &cfg.pidfile {
                Some(path) => match crate::pidfile::Pidfile::create(path, self.pid) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        crate::error!("{e}");
                        None
                    }
                },
                None => None,
            };
        }
        if cfg.proc_name != old.proc_name {
            crate::proctitle::set(&format!("ferricorn: master [{}]", cfg.proc_name));
        }
        crate::startup::prepend_sys_path(cfg);
    }
}
