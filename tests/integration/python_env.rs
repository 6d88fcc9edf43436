//! The embedded Python: imports from the venv, the chdir directory and
//! --pythonpath; no Python signal handlers; --preload imports in the master
//! and only then; privileges dropped with -u/-g; serving basics.

use crate::harness::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn imports_resolve_from_the_active_virtualenv() {
    let Some(venv) = venv() else {
        eprintln!("skipped: no test venv (run scripts/setup)");
        return;
    };
    let dir = TempDir::new("venvapp");
    std::fs::write(
        dir.join("venv_probe.py"),
        "import sys, flask\n\
         def app(environ, start_response):\n\
         \x20   body = ('%s|%s' % (sys.prefix, flask.__file__)).encode()\n\
         \x20   start_response('200 OK', [('Content-Length', str(len(body)))])\n\
         \x20   return [body]\n",
    )
    .unwrap();
    let s = Server::builder("venv_probe:app")
        .with_venv()
        .cwd(dir.path())
        .start();
    let body = s.get_text("/");
    let (prefix, flask_file) = body.split_once('|').unwrap();
    let venv = std::fs::canonicalize(&venv).unwrap();
    assert_eq!(
        std::fs::canonicalize(prefix).unwrap(),
        venv,
        "sys.prefix is not the venv"
    );
    assert!(
        std::fs::canonicalize(flask_file)
            .unwrap()
            .starts_with(&venv),
        "flask came from {flask_file}"
    );
}

#[test]
fn python_signal_handlers_are_not_installed() {
    let s = Server::start("foundation:signal_handlers");
    let body = s.get_text("/");
    assert!(
        !body.contains("default_int_handler"),
        "Python installed its SIGINT handler: {body}"
    );
    // And SIGINT still reaches the master's own handler: a quick stop.
    let mut s = s;
    s.signal(libc::SIGINT);
    assert_eq!(s.exit_code(T), 0);
    assert!(s.log().contains("Handling signal: int"));
}

#[test]
fn without_preload_only_workers_import_the_app() {
    let s = Server::builder("foundation:import_pid")
        .args(["-w", "2"])
        .start();
    let body = s.get_text("/");
    let (imported_in, serving) = body.split_once(' ').unwrap();
    assert_eq!(
        imported_in, serving,
        "the app was imported before the worker existed"
    );
    assert_ne!(imported_in, s.pid.to_string());
}

#[test]
fn preload_imports_the_app_once_in_the_master_before_forking() {
    let s = Server::builder("foundation:import_pid")
        .args(["-w", "2", "--preload"])
        .start();
    let body = s.get_text("/");
    let (imported_in, serving) = body.split_once(' ').unwrap();
    assert_eq!(imported_in, s.pid.to_string(), "not imported in the master");
    assert_ne!(serving, imported_in);
    // Forked children are usable interpreters: both boot and stay up.
    let workers = s.wait_workers(2, T);
    assert_eq!(workers.len(), 2);
    for _ in 0..5 {
        assert_eq!(s.get("/").status, 200);
    }
    assert!(workers.iter().all(|w| process_alive(*w)), "{}", s.log());
    assert!(!s.log().contains("[ERROR]"), "{}", s.log());
}

#[test]
fn preloaded_workers_survive_hup() {
    let s = Server::builder("basic:pid")
        .args(["-w", "1", "--preload"])
        .start();
    let old = s.wait_workers(1, T);
    s.signal(libc::SIGHUP);
    assert!(
        eventually(T, || {
            let now = s.worker_pids();
            now.len() == 1 && now[0] != old[0]
        }),
        "{}",
        s.log()
    );
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn user_and_group_options_drop_worker_privileges() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let Some(nobody) = uid_of("nobody") else {
        eprintln!("skipped: no user nobody");
        return;
    };
    let group = if gid_of("nogroup").is_some() {
        "nogroup"
    } else {
        "nobody"
    };
    let Some(gid) = gid_of(group) else {
        eprintln!("skipped: no group nogroup/nobody");
        return;
    };
    // --preload: the interpreter is loaded before the switch, so this works
    // even where the Python installation is not readable by nobody.
    let dir = TempDir::new("nobody");
    let errlog = dir.join("error.log");
    let s = Server::builder("foundation:app")
        .args(["--preload", "-u", "nobody", "-g", group, "--error-logfile"])
        .arg(errlog.to_string_lossy())
        .no_wait()
        .spawn();
    assert!(eventually(T, || std::fs::read_to_string(&errlog)
        .unwrap_or_default()
        .contains("Booting worker")));
    let mut s = s;
    let text = std::fs::read_to_string(&errlog).unwrap();
    s.port = listening_port(&text).expect("a 'Listening at' line");
    s.wait_ready(T);
    // Workers must be able to reopen the log on USR1: it belongs to them.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&errlog).unwrap().uid(), nobody);
    let w = s.wait_workers(1, T)[0];
    assert_eq!(
        proc_status(w, "Uid:").unwrap(),
        format!("{nobody}\t{nobody}\t{nobody}\t{nobody}")
    );
    assert_eq!(
        proc_status(w, "Gid:").unwrap(),
        format!("{gid}\t{gid}\t{gid}\t{gid}")
    );
    assert_eq!(s.get_text("/uid"), format!("{nobody} {gid}"));
    // The master keeps its privileges.
    assert!(proc_status(s.pid, "Uid:").unwrap().starts_with("0\t"));
}

#[test]
fn unknown_user_is_a_clear_error() {
    let mut s = Server::builder("basic:app")
        .args(["-u", "no-such-user-ferricorn"])
        .no_wait()
        .spawn();
    assert_ne!(s.exit_code(T), 0);
    assert!(s.log().contains("no-such-user-ferricorn"), "{}", s.log());
    assert!(!s.log().contains("Listening at"), "{}", s.log());
}

#[test]
fn get_and_post_with_content_length_are_served() {
    let s = Server::start("basic:echo");
    let r = s.get("/some/path");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "GET /some/path 0\n");
    let r = s.request(b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "POST /submit 11\nhello world");
}

#[test]
fn app_exception_gives_500_and_the_worker_lives() {
    let s = Server::builder("foundation:app").args(["-w", "1"]).start();
    let before = s.get_text("/pid");
    for _ in 0..3 {
        assert_eq!(s.get("/boom").status, 500);
    }
    assert_eq!(
        s.get_text("/pid"),
        before,
        "the worker was replaced after an app exception"
    );
    // The log is read by another thread: wait for the line rather than race it.
    assert!(
        s.wait_log(
            "foundation app failed on purpose",
            std::time::Duration::from_secs(10)
        ),
        "{}",
        s.log()
    );
}

fn uid_of(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .and_then(|f| f.get(2)?.parse().ok())
}

fn gid_of(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .and_then(|f| f.get(2)?.parse().ok())
}
