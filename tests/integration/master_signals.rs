//! The master's life under real signals: HUP, TERM, INT/QUIT, TTIN/TTOU,
//! USR1, worker timeouts, max_requests recycling and a killed master.

use crate::harness::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// Requests in a loop on a thread until stopped; counts successes and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: String, path: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match try_request(&addr, raw.as_bytes(), Duration::from_secs(10)) {
                    Ok(r) if r.status == 200 => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => f.lock().unwrap().push(format!("status {}", r.status)),
                    Err(e) => f.lock().unwrap().push(e.to_string()),
                }
            }
        });
        Load {
            stop,
            ok,
            failed,
            handle: Some(handle),
        }
    }
    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.lock().unwrap().clone(),
        )
    }
}

fn pidfile_of(dir: &TempDir) -> std::path::PathBuf {
    dir.join("master.pid")
}

#[test]
fn hup_replaces_every_worker_retiring_old_ones_only_after_new_ones_booted() {
    let s = Server::builder("slow_boot:app")
        .args(["-w", "2", "--graceful-timeout", "5"])
        .start();
    let old = s.wait_workers(2, T);
    assert_eq!(old.len(), 2);
    assert!(s.wait_log_n("app-ready", 2, T));
    let load = Load::start(s.addr(), "/");
    let more: Vec<Load> = (0..3).map(|_| Load::start(s.addr(), "/")).collect();
    assert!(eventually(T, || load.ok.load(Ordering::Relaxed) > 5));
    s.signal(libc::SIGHUP);
    assert!(s.wait_log("Hang up: Master", T));
    let replaced = eventually(T, || {
        let now = s.worker_pids();
        now.len() == 2 && now.iter().all(|p| !old.contains(p))
    });
    let ok_before = load.ok.load(Ordering::Relaxed);
    assert!(eventually(T, || load.ok.load(Ordering::Relaxed) > ok_before + 5));
    let (mut ok, mut failed) = load.finish();
    for l in more {
        let (o, f) = l.finish();
        ok += o;
        failed.extend(f);
    }
    let log = s.log();
    assert!(
        replaced,
        "workers not replaced: {:?} vs {old:?}; log:\n{log}",
        s.worker_pids()
    );
    assert!(
        failed.is_empty(),
        "{} requests failed during HUP ({ok} ok): {failed:?}; log:\n{log}",
        failed.len()
    );
    // The k-th old worker to exit does so after k+1 new workers reported ready
    // (the two "app-ready" lines of the first generation come first).
    let mut exits: Vec<usize> = old
        .iter()
        .map(|pid| {
            log.find(&format!("Worker exiting (pid: {pid})"))
                .unwrap_or_else(|| panic!("old worker {pid} did not exit; log:\n{log}"))
        })
        .collect();
    exits.sort();
    for (k, at) in exits.iter().enumerate() {
        let ready_before = log[..*at].matches("app-ready").count();
        assert!(
            ready_before > 2 + k,
            "old worker #{k} retired before its replacement booted; log:\n{log}"
        );
    }
}

#[test]
fn hup_with_slow_booting_app_keeps_old_workers_until_the_new_ones_are_ready() {
    let s = Server::builder("slow_boot:app")
        .args(["-w", "1", "--graceful-timeout", "5"])
        .env("BOOT_DELAY", "0.7")
        .start();
    let old = s.wait_workers(1, T);
    s.signal(libc::SIGHUP);
    assert!(s.wait_log("Hang up: Master", T));
    // While the new worker imports, the old one still answers.
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert!(s.wait_log_n("app-ready", 2, T), "log:\n{}", s.log());
    assert!(
        eventually(T, || !process_alive(old[0])),
        "old worker still alive; log:\n{}",
        s.log()
    );
    let log = s.log();
    let ready2 = log.match_indices("app-ready").nth(1).unwrap().0;
    let exited = log
        .find(&format!("Worker exiting (pid: {})", old[0]))
        .expect("old worker exit line");
    assert!(
        ready2 < exited,
        "old worker retired before the new one booted; log:\n{log}"
    );
}

#[test]
fn term_lets_the_in_flight_request_finish_then_exits_0_and_removes_the_pidfile() {
    let dir = TempDir::new("term");
    let pidfile = pidfile_of(&dir);
    let mut s = Server::builder("foundation:app")
        .args(["-w", "1", "--graceful-timeout", "10", "-p"])
        .arg(pidfile.to_string_lossy())
        .start();
    assert_eq!(read_pid(&pidfile), Some(s.pid));
    let addr = s.addr();
    let inflight = std::thread::spawn(move || {
        try_request(&addr, b"GET /sleep?s=1 HTTP/1.1\r\nHost: x\r\n\r\n", T)
    });
    assert!(s.wait_log("request-in-flight", T));
    let sent = Instant::now();
    s.signal(libc::SIGTERM);
    let r = inflight
        .join()
        .unwrap()
        .expect("in-flight request failed at TERM");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slept");
    assert_eq!(s.exit_code(T), 0, "log:\n{}", s.log());
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert!(!pidfile.exists(), "pidfile left after TERM");
    let log = s.log();
    assert!(
        log.contains("Handling signal: term") && log.contains("Shutting down: Master"),
        "log:\n{log}"
    );
    assert!(process_group_members(s.pid).is_empty());
}

#[test]
fn term_kills_requests_still_running_after_graceful_timeout() {
    let mut s = Server::builder("foundation:app")
        .args(["-w", "1", "--graceful-timeout", "1"])
        .start();
    let addr = s.addr();
    let inflight = std::thread::spawn(move || {
        try_request(&addr, b"GET /sleep?s=30 HTTP/1.1\r\nHost: x\r\n\r\n", T)
    });
    assert!(s.wait_log("request-in-flight", T));
    let sent = Instant::now();
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0);
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert!(inflight.join().unwrap().is_err());
    assert!(eventually(T, || process_group_members(s.pid).is_empty()));
}

#[test]
fn int_and_quit_stop_at_once_even_with_a_long_request_in_flight() {
    for sig in [libc::SIGINT, libc::SIGQUIT] {
        let dir = TempDir::new("quick");
        let pidfile = pidfile_of(&dir);
        let mut s = Server::builder("foundation:app")
            .args(["-w", "2", "--graceful-timeout", "30", "-p"])
            .arg(pidfile.to_string_lossy())
            .start();
        let addr = s.addr();
        let inflight = std::thread::spawn(move || {
            try_request(&addr, b"GET /sleep?s=30 HTTP/1.1\r\nHost: x\r\n\r\n", T)
        });
        assert!(s.wait_log("request-in-flight", T));
        let sent = Instant::now();
        s.signal(sig);
        assert_eq!(s.exit_code(T), 0, "log:\n{}", s.log());
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "signal {sig}: took {:?}",
            sent.elapsed()
        );
        assert!(inflight.join().unwrap().is_err());
        assert!(!pidfile.exists());
        assert!(
            eventually(T, || process_group_members(s.pid).is_empty()),
            "signal {sig}: processes left"
        );
    }
}

#[test]
fn ttin_and_ttou_change_the_number_of_workers() {
    let s = Server::builder("basic:app").args(["-w", "1"]).start();
    assert_eq!(s.wait_workers(1, T).len(), 1);
    s.signal(libc::SIGTTIN);
    assert!(s.wait_log("Number of workers: 2", T));
    s.signal(libc::SIGTTIN);
    assert!(s.wait_log("Number of workers: 3", T));
    assert_eq!(s.wait_workers(3, T).len(), 3, "log:\n{}", s.log());
    s.signal(libc::SIGTTOU);
    assert!(s.wait_log("Number of workers: 2", T));
    assert_eq!(s.wait_workers(2, T).len(), 2, "log:\n{}", s.log());
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn max_requests_recycles_the_worker_starting_its_replacement_first() {
    // The replacement takes a moment to import, so the order is visible.
    let s = Server::builder("slow_boot:app")
        .args(["-w", "1", "--max-requests", "3"])
        .env("BOOT_DELAY", "0.3")
        .start();
    let first = s.worker_pids();
    let mut pids: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    // Requests back to back: the worker past max_requests keeps serving until
    // its replacement has booted, so none of them may fail.
    let recycled_twice = eventually(T, || {
        match try_request(
            &s.addr(),
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            T,
        ) {
            Ok(r) if r.status == 200 => pids.push(r.text()),
            Ok(r) => failures.push(format!("status {}", r.status)),
            Err(e) => failures.push(e.to_string()),
        }
        let mut d = pids.clone();
        d.dedup();
        d.len() >= 3
    });
    let log = s.log();
    assert!(recycled_twice, "pids {pids:?}; log:\n{log}");
    assert!(failures.is_empty(), "{failures:?}; log:\n{log}");
    assert!(log.contains("Autorestarting worker after current request."));
    assert!(
        eventually(T, || !first.iter().any(|p| process_alive(*p))),
        "recycled worker still running"
    );
    let exited = log
        .find(&format!("Worker exiting (pid: {})", first[0]))
        .expect("first worker's exit line");
    assert!(
        log[..exited].matches("app-ready").count() >= 2,
        "retired before its replacement booted; log:\n{log}"
    );
    assert_eq!(s.wait_workers(1, T).len(), 1);
}

#[test]
fn max_requests_jitter_still_recycles() {
    let s = Server::builder("basic:pid")
        .args([
            "-w",
            "1",
            "--max-requests",
            "2",
            "--max-requests-jitter",
            "2",
        ])
        .start();
    let mut pids = Vec::new();
    assert!(
        eventually(T, || {
            pids.push(s.get_text("/"));
            let mut d = pids.clone();
            d.dedup();
            d.len() >= 3
        }),
        "{pids:?}"
    );
}

#[test]
fn timed_out_worker_gets_its_python_stack_logged_and_is_replaced() {
    let s = Server::builder("foundation:app")
        .args(["-w", "1", "-t", "1"])
        .start();
    let old = s.wait_workers(1, T)[0];
    let addr = s.addr();
    let hung = std::thread::spawn(move || {
        try_request(
            &addr,
            b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(15),
        )
    });
    assert!(
        s.wait_log(&format!("WORKER TIMEOUT (pid:{old})"), T),
        "log:\n{}",
        s.log()
    );
    assert!(
        s.wait_log("sleeping_view_for_timeout", T),
        "no Python stack in the log:\n{}",
        s.log()
    );
    assert!(hung
        .join()
        .unwrap()
        .map(|r| r.status >= 500)
        .unwrap_or(true));
    assert!(wait_gone(old, T));
    let fresh = s.get_text("/pid");
    assert_ne!(fresh, old.to_string());
    assert_eq!(s.worker_pids().len(), 1);
}

#[test]
fn worker_ignoring_sigabrt_is_killed_and_replaced() {
    let s = Server::builder("foundation:app")
        .args(["-w", "1", "-t", "1"])
        .start();
    let old = s.wait_workers(1, T)[0];
    let addr = s.addr();
    let _hung = std::thread::spawn(move || {
        try_request(
            &addr,
            b"GET /hang-ignoring-abort HTTP/1.0\r\n\r\n",
            Duration::from_secs(15),
        )
    });
    assert!(
        s.wait_log(&format!("WORKER TIMEOUT (pid:{old})"), T),
        "log:\n{}",
        s.log()
    );
    assert!(
        s.wait_log(&format!("Worker (pid:{old}) was sent SIGKILL!"), T),
        "log:\n{}",
        s.log()
    );
    assert_ne!(s.get_text("/pid"), old.to_string());
}

#[test]
fn workers_still_booting_exit_when_the_master_is_killed() {
    let s = Server::builder("slow_boot:app")
        .args(["-w", "2"])
        .env("BOOT_DELAY", "30")
        .no_wait()
        .spawn();
    assert!(s.wait_log_n("Booting worker with pid", 2, T), "{}", s.log());
    let workers = s.wait_workers(2, T);
    s.signal(libc::SIGKILL);
    for w in workers {
        assert!(wait_gone(w, T), "booting worker {w} outlived its master");
    }
}

#[test]
fn workers_exit_when_the_master_is_killed() {
    let s = Server::builder("basic:app").args(["-w", "3"]).start();
    let workers = s.wait_workers(3, T);
    assert_eq!(workers.len(), 3);
    s.signal(libc::SIGKILL);
    for w in workers {
        assert!(wait_gone(w, T), "worker {w} outlived its master");
    }
}

#[test]
fn killed_workers_are_reaped_and_respawned() {
    let s = Server::builder("basic:pid").args(["-w", "2"]).start();
    let workers = s.wait_workers(2, T);
    unsafe { libc::kill(workers[0] as i32, libc::SIGKILL) };
    assert!(
        s.wait_log(&format!("Worker (pid:{}) was sent SIGKILL!", workers[0]), T),
        "log:\n{}",
        s.log()
    );
    assert!(eventually(T, || {
        let now = s.worker_pids();
        now.len() == 2 && !now.contains(&workers[0])
    }));
    // Reaped: the dead worker is not left as a zombie child.
    assert!(!children_of(s.pid).contains(&workers[0]));
    assert!(
        !std::path::Path::new(&format!("/proc/{}", workers[0])).exists(),
        "zombie left"
    );
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn usr1_reopens_error_and_access_logs_in_master_and_workers() {
    let dir = TempDir::new("usr1");
    let err = dir.join("error.log");
    let acc = dir.join("access.log");
    let s = Server::builder("foundation:app")
        .args(["-w", "2", "--error-logfile"])
        .arg(err.to_string_lossy())
        .arg("--access-logfile")
        .arg(acc.to_string_lossy())
        .no_wait()
        .spawn();
    assert!(eventually(T, || std::fs::read_to_string(&err)
        .unwrap_or_default()
        .contains("Listening at:")));
    let log = std::fs::read_to_string(&err).unwrap();
    let port: u16 = listening_port(&log).expect("a 'Listening at' line");
    let addr = format!("127.0.0.1:{port}");
    assert!(eventually(T, || try_request(
        &addr,
        b"GET / HTTP/1.0\r\n\r\n",
        T
    )
    .is_ok()));
    std::fs::rename(&err, dir.join("error.log.1")).unwrap();
    std::fs::rename(&acc, dir.join("access.log.1")).unwrap();
    s.signal(libc::SIGUSR1);
    let old_err = dir.join("error.log.1");
    assert!(eventually(T, || std::fs::read_to_string(&old_err)
        .unwrap_or_default()
        .contains("Handling signal: usr1")));
    // Master: the line for a second USR1 is written after the first reopen.
    s.signal(libc::SIGUSR1);
    assert!(eventually(T, || std::fs::read_to_string(&err)
        .unwrap_or_default()
        .contains("Handling signal: usr1")));
    // Workers: access lines and request errors go to the new files.
    assert!(eventually(T, || {
        let _ = try_request(&addr, b"GET /after-usr1 HTTP/1.0\r\n\r\n", T);
        std::fs::read_to_string(&acc)
            .unwrap_or_default()
            .contains("GET /after-usr1")
    }));
    assert!(
        eventually(T, || {
            let _ = try_request(&addr, b"GET /boom HTTP/1.0\r\n\r\n", T);
            std::fs::read_to_string(&err)
                .unwrap_or_default()
                .contains("foundation app failed on purpose")
        }),
        "new error.log:\n{}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    assert!(std::fs::read_to_string(dir.join("access.log.1"))
        .unwrap()
        .contains("GET /"));
}

fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
