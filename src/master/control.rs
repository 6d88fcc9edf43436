//! The control socket's commands, answered from the master's state: those
//! of gunicorn 27 (`gunicorn/ctl/handlers.py`, same answers, so gunicornc
//! prints them) and ferricorn's `show generations` and `upgrade`.

use super::workers::WorkerState;
use super::Arbiter;
use crate::control::{ControlSocket, Request};
use crate::settings::Value;
use crate::sock::ListenerKind;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value as Json};

/// The settings `show config` lists (gunicorn's own list, then ferricorn's).
const CONFIG_KEYS: &[&str] = &[
    "bind",
    "workers",
    "worker_class",
    "threads",
    "timeout",
    "graceful_timeout",
    "keepalive",
    "max_requests",
    "max_requests_jitter",
    "worker_connections",
    "preload_app",
    "daemon",
    "pidfile",
    "proc_name",
    "reload",
    "control_socket",
    "control_socket_disable",
    "metrics_bind",
    "upgrade_mode",
];

impl Arbiter {
    /// Open the control socket (once, at start) unless disabled.
    pub(super) fn open_control(&mut self) {
        if self.cfg.control_socket_disable {
            return;
        }
        let path = self.cfg.control_socket.clone();
        match ControlSocket::bind(&path, self.cfg.control_socket_mode) {
            Ok(s) => {
                crate::debug!("Control socket listening at {}", path.display());
                self.control = Some(s);
            }
            // As gunicorn: a warning, and the server runs without.
            Err(e) => crate::warning!("Failed to start control socket: {}: {e}", path.display()),
        }
    }

    /// Every loop turn: take requests and answer them.
    pub(super) fn control_tick(&mut self) {
        let Some(mut sock) = self.control.take() else {
            return;
        };
        let requests = sock.turn();
        self.control = Some(sock);
        for req in requests {
            let answer = match self.execute(&req) {
                Ok(Some(data)) => json!({"id": req.id, "status": "ok", "data": data}),
                Ok(None) => continue, // answered later (upgrade)
                Err(e) => json!({"id": req.id, "status": "error", "error": e}),
            };
            if let Some(s) = self.control.as_mut() {
                s.answer(req.client, &answer);
            }
        }
    }

    /// The outcome of the upgrade a client is waiting for.
    pub(super) fn control_upgrade_done(&mut self, result: Result<Json, String>) {
        let waiting = std::mem::take(&mut self.observe.upgrade_waiters);
        let Some(s) = self.control.as_mut() else {
            return;
        };
        for (client, id) in waiting {
            let answer = match &result {
                Ok(data) => json!({"id": id, "status": "ok", "data": data}),
                Err(e) => json!({"id": id, "status": "error", "error": e}),
            };
            s.answer(client, &answer);
        }
    }

    fn execute(&mut self, req: &Request) -> Result<Option<Json>, String> {
        let words: Vec<String> = req.words.iter().map(|w| w.to_lowercase()).collect();
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        let count = |arg: Option<&&str>| -> Result<u32, String> {
            match arg {
                None => Ok(1),
                Some(a) => a
                    .parse::<i64>()
                    .map(|n| n.clamp(1, u32::MAX as i64) as u32)
                    .map_err(|_| format!("invalid literal for int() with base 10: '{a}'")),
            }
        };
        let data = match w.as_slice() {
            [] => return Err("Empty command".into()),
            ["show"] => return Err("Missing show target".into()),
            ["show", "all", ..] => self.show_all(),
            ["show", "workers", ..] => self.show_workers(),
            ["show", "stats", ..] => self.show_stats(),
            ["show", "config", ..] => self.show_config(),
            ["show", "listeners", ..] => self.show_listeners(),
            ["show", "generations", ..] => self.show_generations(),
            ["show", "dirty", ..] => {
                json!({"enabled": false, "pid": null, "workers": [], "apps": []})
            }
            ["show", other, ..] => return Err(format!("Unknown show target: {other}")),
            ["worker", "add", rest @ ..] => {
                let n = count(rest.first())?;
                let previous = self.num_workers;
                self.num_workers = self.num_workers.saturating_add(n);
                json!({"added": n, "previous": previous, "total": self.num_workers})
            }
            ["worker", "remove", rest @ ..] => {
                let n = count(rest.first())?;
                let previous = self.num_workers;
                self.num_workers = previous.saturating_sub(n).max(1);
                json!({"removed": previous - self.num_workers, "previous": previous, "total": self.num_workers})
            }
            ["worker", "kill", pid, ..] => {
                let pid: i32 = pid
                    .parse()
                    .map_err(|_| format!("invalid literal for int() with base 10: '{pid}'"))?;
                if !self.workers.iter().any(|w| w.pid.as_raw() == pid) {
                    json!({"success": false, "error": format!("Worker {pid} not found")})
                } else {
                    match kill(Pid::from_raw(pid), Signal::SIGTERM) {
                        Ok(()) => json!({"success": true, "killed": pid}),
                        Err(e) => json!({"success": false, "error": e.to_string()}),
                    }
                }
            }
            ["worker", "kill"] => return Err("Missing PID".into()),
            ["worker", other, ..] => return Err(format!("Unknown worker action: {other}")),
            ["worker"] => return Err("Missing worker action".into()),
            ["dirty", ..] => json!({"success": false, "error": "Dirty arbiter not running"}),
            // As gunicorn: the master signals itself, so these take the very
            // path the signals take.
            ["reload", ..] => {
                self.signal_self(Signal::SIGHUP);
                json!({"status": "reloading"})
            }
            ["reopen", ..] => {
                self.signal_self(Signal::SIGUSR1);
                json!({"status": "reopening"})
            }
            ["shutdown", rest @ ..] => {
                let mode = rest.first().copied().unwrap_or("graceful");
                let quick = mode == "quick";
                self.signal_self(if quick {
                    Signal::SIGINT
                } else {
                    Signal::SIGTERM
                });
                json!({"status": "shutting_down", "mode": mode})
            }
            ["upgrade", ..] => return self.control_upgrade(req),
            ["help", ..] => help(),
            [other, ..] => return Err(format!("Unknown command: {other}")),
        };
        Ok(Some(data))
    }

    fn signal_self(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid as i32), sig);
    }

    /// USR2's dance, answered when the new master is ready or has failed.
    fn control_upgrade(&mut self, req: &Request) -> Result<Option<Json>, String> {
        self.observe.usr2_refusal = None;
        self.on_usr2();
        if let Some(why) = self.observe.usr2_refusal.take() {
            return Err(format!("Upgrade not started: {why}"));
        }
        if !self.upgrade_in_progress() {
            return Err("Upgrade failed (see the server log)".into());
        }
        self.observe
            .upgrade_waiters
            .push((req.client, req.id.clone()));
        Ok(None)
    }

    fn worker_rows(&self) -> Vec<Json> {
        let mut rows: Vec<(u64, Json)> = self
            .workers
            .iter()
            .map(|w| {
                let hb = (self.heartbeats.silence(w.slot).as_secs_f64() * 100.0).round() / 100.0;
                (
                    w.age,
                    json!({
                        "pid": w.pid.as_raw(),
                        "age": w.age,
                        "booted": w.is_booted() || w.is_retiring(),
                        "aborted": w.aborted_at.is_some(),
                        "last_heartbeat": hb,
                        "generation": w.generation,
                        "state": state_name(w.state),
                    }),
                )
            })
            .collect();
        rows.sort_by_key(|(age, _)| *age);
        rows.into_iter().map(|(_, j)| j).collect()
    }

    fn show_workers(&self) -> Json {
        let workers = self.worker_rows();
        json!({"count": workers.len(), "workers": workers})
    }

    fn show_all(&self) -> Json {
        let web: Vec<Json> = self
            .worker_rows()
            .into_iter()
            .map(|mut w| {
                if let Some(o) = w.as_object_mut() {
                    o.insert("type".into(), json!("web"));
                    o.remove("aborted");
                }
                w
            })
            .collect();
        json!({
            "arbiter": {"pid": self.pid, "type": "arbiter", "role": "master"},
            "web_worker_count": web.len(),
            "web_workers": web,
            "dirty_arbiter": null,
            "dirty_workers": [],
            "dirty_worker_count": 0,
        })
    }

    fn show_stats(&self) -> Json {
        let o = &self.observe;
        json!({
            "uptime": (o.started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            "pid": self.pid,
            "workers_current": self.workers.len(),
            "workers_target": self.num_workers,
            "workers_spawned": o.spawned,
            "workers_killed": o.restarts.timeout + o.restarts.crash,
            "reloads": o.reloads.succeeded + o.reloads.failed,
            "dirty_arbiter_pid": null,
            "generation": self.generation,
            "requests": self.request_totals().requests(),
        })
    }

    fn show_config(&self) -> Json {
        let mut out = serde_json::Map::new();
        for key in CONFIG_KEYS {
            if let Some((_, v)) = self.cfg.values.iter().find(|(k, _)| k == key) {
                out.insert((*key).into(), to_json(v));
            }
        }
        // The values in force rather than as written.
        out.insert("workers".into(), json!(self.num_workers));
        out.insert(
            "control_socket".into(),
            json!(self.cfg.control_socket.display().to_string()),
        );
        Json::Object(out)
    }

    fn show_listeners(&self) -> Json {
        let listeners: Vec<Json> = self
            .listeners
            .iter()
            .map(|l| {
                let kind = match &l.kind {
                    ListenerKind::Unix(_) => "unix",
                    ListenerKind::Tcp(a) if a.is_ipv6() => "tcp6",
                    ListenerKind::Tcp(_) => "tcp",
                };
                json!({"address": l.url(), "fd": std::os::fd::AsRawFd::as_raw_fd(&l.fd), "type": kind})
            })
            .collect();
        json!({"count": listeners.len(), "listeners": listeners})
    }

    fn show_generations(&self) -> Json {
        let mut gens: Vec<u64> = self.workers.iter().map(|w| w.generation).collect();
        gens.push(self.generation);
        gens.sort();
        gens.dedup();
        let rows: Vec<Json> = gens
            .iter()
            .map(|g| {
                let of = |f: &dyn Fn(&super::workers::WorkerProc) -> bool| {
                    self.workers
                        .iter()
                        .filter(|w| w.generation == *g && f(w))
                        .count()
                };
                json!({
                    "generation": g,
                    "current": *g == self.generation,
                    "workers": of(&|_| true),
                    "booting": of(&|w| w.state == WorkerState::Booting),
                    "serving": of(&|w| w.state == WorkerState::Serving),
                    "retiring": of(&|w| w.is_retiring()),
                    "failed": self.blocked_generation == Some(*g),
                })
            })
            .collect();
        json!({"current": self.generation, "generations": rows})
    }
}

fn state_name(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Booting => "booting",
        WorkerState::Serving => "serving",
        WorkerState::Retiring { .. } => "retiring",
    }
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(n) => json!(n),
        Value::Float(x) => json!(x),
        Value::Str(s) | Value::Hook(s) => json!(s),
        Value::List(l) => Json::Array(l.iter().map(to_json).collect()),
        Value::Dict(d) => Json::Object(d.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

fn help() -> Json {
    json!({"commands": {
        "show all": "Show all processes (arbiter, web workers)",
        "show workers": "List HTTP workers with their status",
        "show config": "Show current effective configuration",
        "show stats": "Show server statistics",
        "show listeners": "Show bound sockets",
        "show generations": "Worker generations and their workers (ferricorn)",
        "worker add [N]": "Spawn N workers (default 1)",
        "worker remove [N]": "Remove N workers (default 1)",
        "worker kill <PID>": "Gracefully terminate specific worker",
        "reload": "Graceful reload (HUP)",
        "reopen": "Reopen log files (USR1)",
        "shutdown [graceful|quick]": "Shutdown server (TERM/INT)",
        "upgrade": "Binary upgrade (USR2); answers once the new master is ready or has failed (ferricorn)",
        "help": "Show this help message",
    }})
}
