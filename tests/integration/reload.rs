//! Hot reload (`--reload`): what is watched, what is ignored, broken code,
//! `--preload`, and requests during a reload.
//!
//! Every test serves a copy of `tests/apps/reload_app.py` (as app.py, with
//! `reload_helper.py` as helper.py) from a temporary directory and edits the
//! copy. A save only counts once the master knows the files behind the
//! worker's `sys.modules`, so each test waits for the master's debug line
//! "Reloader: watching N files" first. Bytecode writing is left on (the
//! test environment may turn it off), as in a developer's checkout: the
//! `__pycache__` it creates must not trigger reloads, and must not serve
//! stale code.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);
const WATCHING: &str = "Reloader: watching";
const RELOADING: &str = "Reloading: ";
const FAILED: &str = "failed to boot";
const TRACEBACK: &str = "Traceback (most recent call last)";

/// A copy of the reload app in a temporary directory.
struct Project {
    dir: TempDir,
}

impl Project {
    fn new(tag: &str) -> Project {
        let dir = TempDir::new(tag);
        std::fs::copy(apps_dir().join("reload_app.py"), dir.join("app.py")).unwrap();
        std::fs::copy(apps_dir().join("reload_helper.py"), dir.join("helper.py")).unwrap();
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::write(dir.join("templates/page.html"), "t1\n").unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap()
    }

    /// Rewrite a file in place (open, truncate, write, close).
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.file(name), text).unwrap();
    }

    /// Replace `from` by `to` in a file, in place.
    fn edit(&self, name: &str, from: &str, to: &str) {
        let text = self.read(name);
        assert!(text.contains(from), "{name} has no {from:?}");
        self.write(name, &text.replacen(from, to, 1));
    }

    /// Save as most editors do: write a temporary file, rename it over.
    fn save_by_rename(&self, name: &str, text: &str) {
        let tmp = self.file(&format!(".{name}.tmp-save"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.file(name)).unwrap();
    }

    fn version_line(&self) -> String {
        self.read("app.py")
            .lines()
            .find(|l| l.starts_with("VERSION = "))
            .unwrap()
            .to_string()
    }

    /// Set the version string app.py serves on `/`.
    fn set_version(&self, v: &str) {
        let line = self.version_line();
        self.edit("app.py", &line, &format!("VERSION = \"{v}\""));
    }

    /// The log line naming exactly these changed files.
    fn reloading(&self, names: &[&str]) -> String {
        let files: Vec<String> = names
            .iter()
            .map(|n| self.file(n).display().to_string())
            .collect();
        format!("{RELOADING}{} modified", files.join(", "))
    }
}

fn builder(p: &Project, spec: &str, extra: &[&str]) -> Builder {
    Server::builder(spec)
        .cwd(p.path())
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .args([
            "--reload",
            "--log-level",
            "debug",
            "--graceful-timeout",
            "5",
        ])
        .args(extra.iter().copied())
}

/// Start with --reload and wait until the master watches the app's files.
fn start(p: &Project, extra: &[&str]) -> Server {
    let s = builder(p, "app:app", extra).start();
    assert!(
        s.wait_log(WATCHING, T),
        "the master never got the worker's files; log:\n{}",
        s.log()
    );
    s
}

/// GET `path` on a fresh connection: (status, body), or None on an error.
fn fetch(s: &Server, path: &str) -> Option<(u16, String)> {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    try_request(&s.addr(), raw.as_bytes(), Duration::from_secs(5))
        .ok()
        .map(|r| (r.status, r.text()))
}

/// Poll until `path` answers 200 with `want`.
fn serves(s: &Server, path: &str, want: &str) -> bool {
    eventually(T, || {
        fetch(s, path).is_some_and(|(st, body)| st == 200 && body == want)
    })
}

fn assert_serves(s: &Server, path: &str, want: &str) {
    assert!(
        serves(s, path, want),
        "GET {path} never served {want:?} (last: {:?}); log:\n{}",
        fetch(s, path),
        s.log()
    );
}

fn assert_log(s: &Server, needle: &str) {
    assert!(
        s.wait_log(needle, T),
        "no {needle:?} in the log:\n{}",
        s.log()
    );
}

/// A reload that was expected not to happen would show within this time
/// (the debounce is a few milliseconds; a reload is logged at once).
fn assert_no_reload_within(s: &Server, d: Duration) {
    assert!(
        !s.wait_log(RELOADING, d),
        "an unexpected reload:\n{}",
        s.log()
    );
}

#[test]
fn an_edit_serves_the_new_code_and_the_log_names_the_file() {
    let p = Project::new("reload-edit");
    let s = start(&p, &[]);
    assert_serves(&s, "/", "v1");
    let booted = s.count_log("Booting worker with pid");
    p.set_version("v2");
    assert_serves(&s, "/", "v2");
    assert_log(&s, &p.reloading(&["app.py"]));
    assert_eq!(s.count_log(RELOADING), 1, "{}", s.log());
    assert!(s.count_log("Booting worker with pid") > booted);
    // A module the app imports is watched too.
    p.edit("helper.py", "h1", "h2");
    assert_serves(&s, "/helper", "h2");
    assert_log(&s, &p.reloading(&["helper.py"]));
}

#[test]
fn quick_same_size_edits_never_serve_stale_bytecode() {
    // Python trusts __pycache__ while the source's mtime (whole seconds) and
    // size match: several same-size edits within one second must each be
    // served, not the bytecode compiled for an earlier one.
    let p = Project::new("reload-pyc");
    let s = start(&p, &[]);
    assert!(
        p.file("__pycache__").is_dir(),
        "bytecode is not written, the test proves nothing"
    );
    for v in ["v2", "v3", "v4", "v5", "v6"] {
        p.set_version(v);
        assert_serves(&s, "/", v);
    }
}

#[test]
fn a_save_by_rename_reloads() {
    let p = Project::new("reload-rename");
    let s = start(&p, &[]);
    let text = p
        .read("app.py")
        .replace("VERSION = \"v1\"", "VERSION = \"v2\"");
    p.save_by_rename("app.py", &text);
    assert_serves(&s, "/", "v2");
    assert_log(&s, &p.reloading(&["app.py"]));
    // Once more: the watch survives the replaced inode.
    let text = p
        .read("app.py")
        .replace("VERSION = \"v2\"", "VERSION = \"v3\"");
    p.save_by_rename("app.py", &text);
    assert_serves(&s, "/", "v3");
}

#[test]
fn a_module_imported_later_by_a_request_is_watched_once_imported() {
    let p = Project::new("reload-lazy");
    let s = start(&p, &[]);
    // A new module file, imported only when a request needs it.
    p.write("lazy.py", "VALUE = \"l1\"\n");
    assert_serves(&s, "/lazy", "l1");
    // The worker reports its grown sys.modules; the master then watches more files.
    assert!(
        s.wait_log_n(WATCHING, 2, T),
        "the new module was never reported; log:\n{}",
        s.log()
    );
    assert_no_reload_within(&s, Duration::from_millis(300));
    p.edit("lazy.py", "l1", "l2");
    assert_serves(&s, "/lazy", "l2");
    assert_log(&s, &p.reloading(&["lazy.py"]));
}

#[test]
fn a_deleted_then_recreated_module_reloads() {
    let p = Project::new("reload-delete");
    let s = start(&p, &["-w", "2"]);
    assert_serves(&s, "/helper", "h1");
    let original = p.read("helper.py");
    std::fs::remove_file(p.file("helper.py")).unwrap();
    // The new code cannot import: the old workers keep serving it.
    assert_log(&s, FAILED);
    assert_log(&s, "No module named 'helper'");
    assert_serves(&s, "/helper", "h1");
    p.write("helper.py", &original.replace("h1", "h2"));
    assert_serves(&s, "/helper", "h2");
    assert!(
        s.count_log(&p.reloading(&["helper.py"])) >= 2,
        "{}",
        s.log()
    );
}

#[test]
fn editor_droppings_bytecode_and_files_the_app_writes_never_reload() {
    let p = Project::new("reload-ignore");
    let s = start(&p, &["--reload-extra-file", "templates/*.html"]);
    assert!(
        p.file("__pycache__").is_dir(),
        "bytecode is not written: the app dir should have __pycache__"
    );
    for name in [
        ".app.py.swp",
        ".app.py.swx",
        "app.py~",
        "#app.py#",
        ".#app.py",
        "4913",
        "app.py.tmp",
        "__pycache__/app.cpython-311.pyc.123456",
        "__pycache__/helper.cpython-311.pyc",
        "templates/.page.html.swp",
        "templates/page.html~",
    ] {
        std::fs::write(p.file(name), "junk\n").unwrap();
    }
    std::fs::remove_file(p.file("4913")).unwrap();
    // The app writes a log file beside its code, on every request.
    for _ in 0..3 {
        assert_eq!(fetch(&s, "/log"), Some((200, "logged".into())));
    }
    assert!(p.file("app.log").exists());
    assert_no_reload_within(&s, Duration::from_millis(500));
    // The watcher is alive: a real edit reloads, naming only that file.
    p.set_version("v2");
    assert_serves(&s, "/", "v2");
    assert_log(&s, &p.reloading(&["app.py"]));
    assert_eq!(s.count_log(RELOADING), 1, "{}", s.log());
}

#[test]
fn an_extra_file_by_path_reloads() {
    let p = Project::new("reload-extra");
    p.write("settings.ini", "[app]\ncolour = red\n");
    let s = start(&p, &["--reload-extra-file", "settings.ini"]);
    let booted = s.count_log("Booting worker with pid");
    p.write("settings.ini", "[app]\ncolour = blue\n");
    assert_log(&s, &p.reloading(&["settings.ini"]));
    assert!(
        s.wait_log_n("Booting worker with pid", booted + 1, T),
        "{}",
        s.log()
    );
    assert_serves(&s, "/", "v1");
}

#[test]
fn an_extra_file_created_after_start_reloads() {
    let p = Project::new("reload-extra-later");
    let s = start(&p, &["--reload-extra-file", "local_settings.ini"]);
    p.write("local_settings.ini", "[app]\n");
    assert_log(&s, &p.reloading(&["local_settings.ini"]));
}

#[test]
fn a_broken_new_module_is_watched_and_its_fix_reloads() {
    // The edit imports a new module that fails: the failed worker's report
    // must make the master watch that module, or fixing it reloads nothing.
    let p = Project::new("reload-newmod");
    let s = builder(&p, "app:app", &["-w", "2"]).start();
    assert!(s.wait_log(WATCHING, T), "{}", s.log());
    p.write("extra.py", "VALUE = (\n");
    p.edit("app.py", "import helper\n", "import helper\nimport extra\n");
    assert_log(&s, FAILED);
    assert_serves(&s, "/", "v1");
    p.write("extra.py", "VALUE = 1\n");
    assert_log(&s, &p.reloading(&["extra.py"]));
    p.set_version("v2");
    assert_serves(&s, "/", "v2");
}

#[test]
fn the_error_page_shows_the_latest_error() {
    let p = Project::new("reload-first-twice");
    let good = p.read("app.py");
    p.edit("app.py", "VERSION = \"v1\"", "VERSION = (\"v1\"");
    let s = builder(&p, "app:app", &[]).start();
    assert!(s.wait_log(WATCHING, T), "{}", s.log());
    assert!(s.get("/").text().contains("SyntaxError"));
    p.write(
        "app.py",
        &good.replace("VERSION = \"v1\"", "VERSION = undefined_name"),
    );
    assert!(
        eventually(T, || fetch(&s, "/")
            .is_some_and(|(st, body)| st == 500 && body.contains("NameError"))),
        "the page still shows the old error: {:?}; log:\n{}",
        fetch(&s, "/"),
        s.log()
    );
}

#[test]
fn an_extra_file_glob_sees_new_files_and_new_directories() {
    let p = Project::new("reload-glob");
    let s = start(&p, &["--reload-extra-file", "templates/**/*.html"]);
    p.write("templates/page.html", "t2\n");
    assert_log(&s, &p.reloading(&["templates/page.html"]));
    // A template created after start, matching the pattern.
    p.write("templates/new.html", "new\n");
    assert_log(&s, &p.reloading(&["templates/new.html"]));
    // A file that does not match is no reason to reload.
    let before = s.count_log(RELOADING);
    p.write("templates/notes.txt", "notes\n");
    assert!(
        !s.wait_log_n(RELOADING, before + 1, Duration::from_millis(400)),
        "{}",
        s.log()
    );
    // A new directory, then a template in it ("**" is any depth).
    std::fs::create_dir_all(p.file("templates/admin")).unwrap();
    p.write("templates/admin/list.html", "list\n");
    assert_log(&s, &p.reloading(&["templates/admin/list.html"]));
    // And that file, once known, is watched for edits too.
    let before = s.count_log(RELOADING);
    p.write("templates/admin/list.html", "list 2\n");
    assert!(s.wait_log_n(RELOADING, before + 1, T), "{}", s.log());
}

#[test]
fn the_poll_engine_with_a_small_interval_reloads() {
    let p = Project::new("reload-poll");
    let s = start(
        &p,
        &["--reload-engine", "poll", "--reload-poll-interval", "0.05"],
    );
    assert_log(&s, "(poll engine)");
    p.set_version("v2");
    assert_serves(&s, "/", "v2");
    assert_log(&s, &p.reloading(&["app.py"]));
    // Save by rename and a helper module, same engine.
    let text = p.read("helper.py").replace("h1", "h2");
    p.save_by_rename("helper.py", &text);
    assert_serves(&s, "/helper", "h2");
}

/// Break the code with `break_it`, check the old code keeps serving and the
/// traceback is logged once, then fix it and check the new code is served.
fn broken_reload_keeps_the_old_code(
    tag: &str,
    spec: &str,
    break_it: impl Fn(&Project),
    error: &str,
) {
    let p = Project::new(tag);
    let s = builder(&p, spec, &["-w", "2"]).start();
    assert!(s.wait_log(WATCHING, T), "{}", s.log());
    assert_serves(&s, "/", "v1");
    let good = p.read("app.py");
    break_it(&p);
    assert_log(&s, FAILED);
    assert_log(&s, error);
    // Both old workers still serve the last good code...
    for _ in 0..10 {
        assert_eq!(
            fetch(&s, "/"),
            Some((200, "v1".into())),
            "log:\n{}",
            s.log()
        );
    }
    // ...and the traceback was printed once, not per worker or per request.
    assert_eq!(s.count_log(TRACEBACK), 1, "{}", s.log());
    assert_eq!(s.count_log(error), 1, "{}", s.log());
    // The next save retries; the fix is served.
    p.write(
        "app.py",
        &good.replace("VERSION = \"v1\"", "VERSION = \"v2\""),
    );
    assert_serves(&s, "/", "v2");
    assert_eq!(s.wait_workers(2, T).len(), 2, "{}", s.log());
}

#[test]
fn a_syntax_error_at_reload_keeps_the_old_code() {
    broken_reload_keeps_the_old_code(
        "reload-syntax",
        "app:app",
        |p| p.edit("app.py", "VERSION = \"v1\"", "VERSION = (\"v2\""),
        "SyntaxError",
    );
}

#[test]
fn an_import_error_at_reload_keeps_the_old_code() {
    broken_reload_keeps_the_old_code(
        "reload-import",
        "app:app",
        |p| {
            p.edit(
                "app.py",
                "import helper\n",
                "import helper\nfrom helper import MISSING\n",
            )
        },
        "ImportError: cannot import name 'MISSING'",
    );
}

#[test]
fn a_missing_module_at_reload_keeps_the_old_code() {
    broken_reload_keeps_the_old_code(
        "reload-modnotfound",
        "app:app",
        |p| {
            p.edit(
                "app.py",
                "import helper\n",
                "import helper\nimport no_such_module\n",
            )
        },
        "ModuleNotFoundError: No module named 'no_such_module'",
    );
}

#[test]
fn a_name_error_at_import_keeps_the_old_code() {
    broken_reload_keeps_the_old_code(
        "reload-nameerror",
        "app:app",
        |p| p.edit("app.py", "VERSION = \"v1\"", "VERSION = undefined_name"),
        "NameError: name 'undefined_name' is not defined",
    );
}

#[test]
fn an_exception_in_the_app_factory_keeps_the_old_code() {
    broken_reload_keeps_the_old_code(
        "reload-factory",
        "app:make_app()",
        |p| {
            p.edit(
                "app.py",
                "    return app\n",
                "    raise RuntimeError(\"the factory failed\")\n",
            )
        },
        "RuntimeError: the factory failed",
    );
}

#[test]
fn code_broken_at_first_start_serves_the_traceback_until_fixed() {
    let p = Project::new("reload-first");
    let good = p.read("app.py");
    p.edit("app.py", "VERSION = \"v1\"", "VERSION = (\"v1\"");
    let s = builder(&p, "app:app", &["-w", "2"]).start();
    assert!(s.wait_log(WATCHING, T), "{}", s.log());
    // A development server: a 500 page with the traceback, no exit.
    let r = s.get("/");
    assert_eq!(r.status, 500, "{}", s.log());
    let page = r.text();
    assert!(
        page.contains("SyntaxError") && page.contains("app.py"),
        "{page}"
    );
    assert!(page.contains("Traceback (most recent call last)"), "{page}");
    assert!(process_alive(s.pid));
    p.write(
        "app.py",
        &good.replace("VERSION = \"v1\"", "VERSION = \"v2\""),
    );
    assert_serves(&s, "/", "v2");
    for _ in 0..5 {
        assert_eq!(fetch(&s, "/"), Some((200, "v2".into())), "{}", s.log());
    }
}

#[test]
fn a_missing_module_at_first_start_reloads_once_the_module_is_created() {
    let p = Project::new("reload-first-missing");
    std::fs::remove_file(p.file("helper.py")).unwrap();
    let s = builder(&p, "app:app", &[]).start();
    assert!(s.wait_log(WATCHING, T), "{}", s.log());
    assert_eq!(s.get("/").status, 500);
    // The fix is a new file, not an edit of one that failed.
    std::fs::copy(apps_dir().join("reload_helper.py"), p.file("helper.py")).unwrap();
    assert_serves(&s, "/", "v1");
}

#[test]
fn preload_reload_re_executes_the_master_and_serves_the_new_code() {
    let p = Project::new("reload-preload");
    let mut s = start(&p, &["--preload", "-w", "2"]);
    let (_, master) = fetch(&s, "/ppid").unwrap();
    assert_eq!(master, s.pid.to_string());
    p.set_version("v2");
    assert_serves(&s, "/", "v2");
    let (_, new_master) = fetch(&s, "/ppid").unwrap();
    assert_ne!(
        new_master,
        master,
        "the master was not replaced; log:\n{}",
        s.log()
    );
    // The old master handed over and left.
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
    // The new master watches and reloads in turn.
    let new_pid: u32 = new_master.parse().unwrap();
    let _guard = KillOnDrop(new_pid);
    assert!(s.wait_log_n(WATCHING, 2, T), "{}", s.log());
    p.edit("helper.py", "h1", "h2");
    assert_serves(&s, "/helper", "h2");
}

#[test]
fn preload_reload_with_broken_code_keeps_serving() {
    let p = Project::new("reload-preload-broken");
    let s = start(&p, &["--preload"]);
    let good = p.read("app.py");
    p.edit("app.py", "VERSION = \"v1\"", "VERSION = (\"v2\"");
    assert_log(&s, "SyntaxError");
    for _ in 0..5 {
        assert_eq!(fetch(&s, "/"), Some((200, "v1".into())), "{}", s.log());
    }
    assert!(process_alive(s.pid));
    p.write(
        "app.py",
        &good.replace("VERSION = \"v1\"", "VERSION = \"v3\""),
    );
    assert_serves(&s, "/", "v3");
}

#[test]
fn no_request_fails_during_reloads() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let p = Project::new("reload-load");
    let s = start(&p, &["-w", "2"]);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, failures, ok, addr) = (stop.clone(), failures.clone(), ok.clone(), s.addr());
            // Half the clients hold a request in flight across the switch.
            let path = if i % 2 == 0 { "/" } else { "/slow" };
            std::thread::spawn(move || {
                let raw =
                    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
                while !stop.load(Ordering::Relaxed) {
                    match try_request(&addr, raw.as_bytes(), Duration::from_secs(10)) {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", r.status)),
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    for v in ["v2", "v3", "v4"] {
        p.set_version(v);
        assert_serves(&s, "/", v);
    }
    let served = ok.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed of {served}: {:?}; log:\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        s.log()
    );
    assert!(served > 10);
}

#[test]
fn editing_the_config_file_reloads_the_configuration() {
    let p = Project::new("reload-config");
    p.write(
        "gunicorn.conf.py",
        "workers = 1\nreload = True\nloglevel = 'debug'\n",
    );
    let s = Server::builder("app:app")
        .cwd(p.path())
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .args(["-c", "gunicorn.conf.py"])
        .start();
    assert!(s.wait_log(WATCHING, T), "{}", s.log());
    assert_eq!(s.wait_workers(1, T).len(), 1);
    p.write(
        "gunicorn.conf.py",
        "workers = 3\nreload = True\nloglevel = 'debug'\n",
    );
    assert_log(&s, &p.reloading(&["gunicorn.conf.py"]));
    assert_eq!(s.wait_workers(3, T).len(), 3, "{}", s.log());
    // A broken config keeps the running one.
    p.write("gunicorn.conf.py", "workers = (\n");
    assert!(s.wait_log_n(RELOADING, 2, T), "{}", s.log());
    assert_serves(&s, "/", "v1");
    assert!(process_alive(s.pid));
}
