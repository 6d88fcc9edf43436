//! The command line is gunicorn's: app specs, defaults from the environment,
//! -e, --pythonpath, -n, -v, -h, -k, and process titles.

use crate::harness::*;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(apps_dir())
        .output()
        .expect("run ferricorn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn version_flag_prints_the_version() {
    for flag in ["-v", "--version"] {
        let (code, out) = run(&[flag]);
        assert_eq!(code, 0);
        assert_eq!(
            out.trim(),
            format!("ferricorn {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn help_lists_gunicorns_options() {
    let (code, out) = run(&["-h"]);
    assert_eq!(code, 0);
    assert!(out.contains("ferricorn [OPTIONS] [WSGI_APP]"), "{out}");
    for opt in [
        "-b, --bind",
        "-w, --workers",
        "-k, --worker-class",
        "-t, --timeout",
        "--graceful-timeout",
        "--keep-alive",
        "--max-requests",
        "--max-requests-jitter",
        "--backlog",
        "--reuse-port",
        "--chdir",
        "--pythonpath",
        "-e, --env",
        "-n, --name",
        "-p, --pid",
        "-D, --daemon",
        "-u, --user",
        "-g, --group",
        "-m, --umask",
        "--preload",
        "--access-logfile",
        "--access-logformat",
        "--error-logfile",
        "--log-file",
        "--log-level",
        "--capture-output",
        "-v, --version",
        "-h, --help",
    ] {
        assert!(out.contains(opt), "help lacks {opt}:\n{out}");
    }
}

#[test]
fn missing_app_is_a_usage_error() {
    let (code, out) = run(&["-b", "127.0.0.1:0"]);
    assert_ne!(code, 0);
    assert!(out.contains("No application module specified"), "{out}");
}

#[test]
fn unknown_option_is_refused() {
    let (code, out) = run(&["--no-such-option", "basic:app"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--no-such-option"), "{out}");
}

#[test]
fn worker_class_sync_and_gthread_are_accepted_and_others_refused() {
    let s = Server::builder("basic:app").args(["-k", "sync"]).start();
    assert_eq!(s.get("/").status, 200);
    let s = Server::builder("basic:app").args(["-k", "gthread"]).start();
    assert_eq!(s.get("/").status, 200);
    let (code, out) = run(&["-k", "tornado", "-b", "127.0.0.1:0", "basic:app"]);
    assert_ne!(code, 0);
    assert!(
        out.contains("Worker class 'tornado' is not supported"),
        "{out}"
    );
}

#[test]
fn app_spec_module_only_uses_the_application_attribute() {
    let s = Server::start("basic");
    assert_eq!(s.get_text("/"), "Hello, World!\n");
}

#[test]
fn app_spec_factory_call_without_arguments() {
    let s = Server::start("basic:make_app()");
    assert_eq!(s.get_text("/"), "Hello 1");
}

#[test]
fn app_spec_factory_call_with_literal_arguments() {
    let s = Server::start("basic:make_app('Howdy', n=7)");
    assert_eq!(s.get_text("/"), "Howdy 7");
}

#[test]
fn app_spec_factory_with_non_literal_arguments_is_refused() {
    let mut s = Server::builder("basic:make_app(os.getcwd())")
        .no_wait()
        .spawn();
    assert_eq!(s.exit_code(T), 4);
    assert!(
        s.log()
            .contains("Failed to parse arguments as literal values"),
        "{}",
        s.log()
    );
}

#[test]
fn env_option_is_visible_in_the_apps_environment() {
    let s = Server::builder("foundation:app")
        .args(["-e", "FERRICORN_T1=hello", "--env", "FERRICORN_T2=a=b"])
        .start();
    assert_eq!(s.get_text("/env?name=FERRICORN_T1"), "hello");
    assert_eq!(s.get_text("/env?name=FERRICORN_T2"), "a=b");
}

#[test]
fn pythonpath_directories_are_importable() {
    let dir = TempDir::new("pythonpath");
    let extra = dir.join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(
        extra.join("pp_only_app.py"),
        "def app(environ, start_response):\n    start_response('200 OK', [('Content-Length', '7')])\n    return [b'from pp']\n",
    )
    .unwrap();
    let s = Server::builder("pp_only_app:app")
        .arg("--pythonpath")
        .arg(format!("/nonexistent,{}", extra.display()))
        .start();
    assert_eq!(s.get_text("/"), "from pp");
}

#[test]
fn chdir_directory_is_importable() {
    let dir = TempDir::new("chdir");
    std::fs::write(
        dir.join("chdir_only_app.py"),
        "def app(environ, start_response):\n    start_response('200 OK', [('Content-Length', '9')])\n    return [b'from dir!']\n",
    )
    .unwrap();
    // Started from tests/apps, the module is only found through --chdir.
    let s = Server::builder("chdir_only_app:app")
        .arg("--chdir")
        .arg(dir.path().to_string_lossy())
        .start();
    assert_eq!(s.get_text("/"), "from dir!");
}

#[test]
fn port_env_sets_the_default_bind_to_all_interfaces() {
    let port = free_port();
    // No -b at all: the default bind comes from PORT.
    let s = Server::builder("basic:app")
        .bind("")
        .env("PORT", port.to_string())
        .spawn();
    assert!(
        s.wait_log(&format!("Listening at: http://0.0.0.0:{port} ("), T),
        "{}",
        s.log()
    );
    let addr = format!("127.0.0.1:{port}");
    assert!(eventually(T, || try_request(
        &addr,
        b"GET / HTTP/1.0\r\n\r\n",
        T
    )
    .map(|r| r.status == 200)
    .unwrap_or(false)));
}

#[test]
fn web_concurrency_sets_the_default_number_of_workers() {
    let s = Server::builder("basic:app")
        .env("WEB_CONCURRENCY", "3")
        .start();
    assert_eq!(s.wait_workers(3, T).len(), 3, "{}", s.log());
    // -w wins over the environment.
    let s = Server::builder("basic:app")
        .env("WEB_CONCURRENCY", "3")
        .args(["-w", "2"])
        .start();
    assert_eq!(s.wait_workers(2, T).len(), 2);
}

#[test]
fn one_worker_by_default() {
    let s = Server::start("basic:app");
    assert_eq!(s.wait_workers(1, T).len(), 1);
}

#[test]
fn process_titles_name_master_and_workers() {
    let s = Server::builder("basic:app").args(["-w", "2"]).start();
    assert_eq!(cmdline(s.pid), "ferricorn: master [basic:app]");
    let workers = s.wait_workers(2, T);
    for w in &workers {
        assert!(
            eventually(T, || cmdline(*w) == "ferricorn: worker [basic:app]"),
            "{:?}",
            cmdline(*w)
        );
    }
    let s = Server::builder("basic:app").args(["-n", "shop"]).start();
    assert_eq!(cmdline(s.pid), "ferricorn: master [shop]");
    let w = s.wait_workers(1, T)[0];
    assert!(
        eventually(T, || cmdline(w) == "ferricorn: worker [shop]"),
        "{:?}",
        cmdline(w)
    );
}

#[test]
fn umask_applies_to_files_the_server_creates() {
    let dir = TempDir::new("umask");
    let pid = dir.join("m.pid");
    let s = Server::builder("basic:app")
        .args(["-m", "0o077", "-p"])
        .arg(pid.to_string_lossy())
        .start();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pid).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "pidfile mode {mode:o} ignores -m 0o077");
    drop(s);
}
