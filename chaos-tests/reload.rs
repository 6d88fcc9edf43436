//! Hot reload under load: a storm of saves, broken code and its fix, a module
//! deleted and restored, fifty reloads. The guarantee: no request fails, and
//! a burst of saves costs a bounded number of generations.
//!
//! Each scenario serves a copy of `tests/apps/reload_app.py` from a temporary
//! directory and edits the copy.

use crate::harness::*;
use crate::load::{Load, Target};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

struct Project {
    dir: TempDir,
}

impl Project {
    fn new(tag: &str) -> Project {
        let dir = TempDir::new(tag);
        std::fs::copy(apps_dir().join("reload_app.py"), dir.join("app.py")).unwrap();
        std::fs::copy(apps_dir().join("reload_helper.py"), dir.join("helper.py")).unwrap();
        Project { dir }
    }

    fn app_source(&self, version: &str) -> String {
        let text = std::fs::read_to_string(apps_dir().join("reload_app.py")).unwrap();
        text.replace("VERSION = \"v1\"", &format!("VERSION = \"{version}\""))
    }

    fn set_version(&self, version: &str) {
        std::fs::write(self.dir.join("app.py"), self.app_source(version)).unwrap();
    }

    fn start(&self) -> Server {
        self.start_with(&[])
    }

    fn start_with(&self, extra: &[&str]) -> Server {
        let s = Server::builder("app:app")
            .cwd(self.dir.path())
            .env_remove("PYTHONDONTWRITEBYTECODE")
            .args(extra.iter().copied())
            // gevent comes from the test venv.
            .with_venv()
            .args([
                "--reload",
                "--log-level",
                "debug",
                "-w",
                "2",
                "--graceful-timeout",
                "10",
            ])
            .start();
        // Saves count once the master watches the files the worker imported.
        assert!(s.wait_log("Reloader: watching", T), "{}", s.log());
        s
    }
}

/// Poll until `/` serves `want`, through a request outside the load.
fn serves(s: &Server, want: &str) -> bool {
    eventually(T, || {
        try_request(
            &s.addr(),
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .is_ok_and(|r| r.status == 200 && r.text() == want)
    })
}

fn reloads(s: &Server) -> usize {
    s.count_log("Reloading: ")
}

#[test]
fn a_storm_of_saves_is_a_few_reloads_and_fails_no_request() {
    let p = Project::new("chaos-storm");
    let s = p.start();
    let load = Load::start(Target::Tcp(s.addr()), "/", 6, true);
    assert!(
        load.wait_progress(50, Duration::from_secs(10)),
        "no traffic; log:\n{}",
        s.log()
    );
    // 100 saves in 2 s, as a formatter on save or a sync tool might do.
    let start = Instant::now();
    for i in 0..100 {
        p.set_version(&format!("storm{i:03}"));
        let due = start + Duration::from_millis(20 * (i + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    assert!(
        serves(&s, "storm099"),
        "the last save is not served; log:\n{}",
        s.log()
    );
    assert!(load.wait_progress(50, Duration::from_secs(10)));
    let stats = load.stop();
    let n = reloads(&s);
    println!("100 saves in {:?}: {n} reloads; {stats}", start.elapsed());
    assert_eq!(stats.failed(), 0, "{stats}\nlog:\n{}", s.log());
    // Reloads are at least 150 ms apart and wait for the previous one to
    // boot: about one per 150-200 ms of storm, never one per save.
    assert!(
        (1..=20).contains(&n),
        "{n} reloads for 100 saves; log:\n{}",
        s.log()
    );
}

#[test]
fn a_syntax_error_then_its_fix_fails_no_request() {
    let p = Project::new("chaos-syntax");
    let s = p.start();
    let load = Load::start(Target::Tcp(s.addr()), "/slow", 6, false);
    assert!(
        load.wait_progress(20, Duration::from_secs(10)),
        "no traffic; log:\n{}",
        s.log()
    );
    for round in 0..3 {
        let broken = p
            .app_source("v1")
            .replace("VERSION = \"v1\"", "VERSION = (\"broken\"");
        std::fs::write(p.dir.join("app.py"), broken).unwrap();
        assert!(s.wait_log_n("SyntaxError", round + 1, T), "{}", s.log());
        assert!(
            load.wait_progress(20, Duration::from_secs(10)),
            "serving stopped; log:\n{}",
            s.log()
        );
        let fixed = format!("fixed{round}");
        p.set_version(&fixed);
        assert!(serves(&s, &fixed), "{}", s.log());
        assert!(load.wait_progress(20, Duration::from_secs(10)));
    }
    let stats = load.stop();
    println!("syntax error / fix x3: {stats}");
    assert_eq!(stats.failed(), 0, "{stats}\nlog:\n{}", s.log());
    assert_eq!(
        s.count_log("SyntaxError: '(' was never closed"),
        3,
        "one traceback per broken save; log:\n{}",
        s.log()
    );
}

#[test]
fn deleting_and_restoring_a_module_fails_no_request() {
    let p = Project::new("chaos-delete");
    let s = p.start();
    let load = Load::start(Target::Tcp(s.addr()), "/helper", 6, true);
    assert!(
        load.wait_progress(20, Duration::from_secs(10)),
        "no traffic; log:\n{}",
        s.log()
    );
    let helper = p.dir.join("helper.py");
    let original = std::fs::read_to_string(&helper).unwrap();
    for round in 0..3 {
        std::fs::remove_file(&helper).unwrap();
        assert!(
            s.wait_log_n("No module named 'helper'", round + 1, T),
            "{}",
            s.log()
        );
        assert!(
            load.wait_progress(20, Duration::from_secs(10)),
            "serving stopped; log:\n{}",
            s.log()
        );
        let value = format!("h{}", round + 2);
        std::fs::write(&helper, original.replace("h1", &value)).unwrap();
        assert!(
            eventually(T, || try_request(
                &s.addr(),
                b"GET /helper HTTP/1.0\r\n\r\n",
                Duration::from_secs(5)
            )
            .is_ok_and(|r| r.text() == value)),
            "{}",
            s.log()
        );
    }
    let stats = load.stop();
    println!("delete / restore x3: {stats}");
    assert_eq!(stats.failed(), 0, "{stats}\nlog:\n{}", s.log());
}

#[test]
fn fifty_reloads_under_load_fail_no_request() {
    fifty_reloads("chaos-fifty", &[]);
}

#[test]
fn fifty_reloads_under_load_fail_no_request_with_threads() {
    fifty_reloads("chaos-fifty-threads", crate::restarts::THREADS);
}

#[test]
fn fifty_reloads_under_load_fail_no_request_with_gevent() {
    fifty_reloads("chaos-fifty-gevent", crate::restarts::GEVENT);
}

fn fifty_reloads(tag: &str, extra: &[&str]) {
    let p = Project::new(tag);
    let s = p.start_with(extra);
    let mut total = crate::load::Stats::default();
    for keepalive in [true, false] {
        let load = Load::start(Target::Tcp(s.addr()), "/", 8, keepalive);
        assert!(
            load.wait_progress(50, Duration::from_secs(10)),
            "no traffic; log:\n{}",
            s.log()
        );
        for i in 0..25 {
            let v = format!("{}{i}", if keepalive { "ka" } else { "close" });
            p.set_version(&v);
            assert!(serves(&s, &v), "{v} never served; log:\n{}", s.log());
            assert!(load.wait_progress(10, Duration::from_secs(10)));
        }
        let stats = load.stop();
        println!("25 reloads, keepalive={keepalive} {extra:?}: {stats}");
        assert_eq!(stats.failed(), 0, "{stats}\nlog:\n{}", s.log());
        total.ok += stats.ok;
    }
    // Every save was served (checked above). A save that lands while the
    // previous reload's generation is still booting (gevent workers boot
    // slower: the import and the patch) may join that reload.
    assert!(
        reloads(&s) >= 45,
        "{} reloads; log:\n{}",
        reloads(&s),
        s.log()
    );
    assert!(total.ok > 500);
}
