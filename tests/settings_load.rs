//! Loading settings from every source: precedence, the `-c` forms, default
//! config discovery, real-world gunicorn.conf.py files and their TOML
//! equivalents, and errors that name the file and the line.

use ferricorn::settings::{load, Action, Env, Location, Settings, SettingsError, Source, Value};
use pyo3::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

fn python() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        ferricorn::python::initialize(&ferricorn::python::PythonSetup {
            argv: vec![],
            path_prepend: vec![],
        })
        .expect("python starts");
        // Keep __pycache__ directories out of the fixture tree.
        Python::attach(|py| {
            py.import("sys")
                .unwrap()
                .setattr("dont_write_bytecode", true)
                .unwrap()
        });
    });
}

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("configs")
}

fn env_in(dir: &str, vars: &[(&str, &str)]) -> Env {
    Env::new(
        configs().join(dir),
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

fn argv(args: &[&str]) -> Vec<String> {
    std::iter::once("ferricorn")
        .chain(args.iter().copied())
        .map(String::from)
        .collect()
}

fn load_ok(args: &[&str], env: &Env) -> ferricorn::settings::Loaded {
    python();
    match load(&argv(args), env) {
        Ok(l) => l,
        Err(e) => panic!("load failed: {e}"),
    }
}

fn load_err(args: &[&str], env: &Env) -> SettingsError {
    python();
    match load(&argv(args), env) {
        Ok(l) => panic!("load should fail, got:\n{}", l.settings.print_config()),
        Err(e) => e,
    }
}

fn without_config_line(s: &Settings) -> String {
    s.print_config()
        .lines()
        .filter(|l| !l.starts_with("config "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn cpu_count() -> i64 {
    Python::attach(|py| {
        py.import("multiprocessing")
            .unwrap()
            .call_method0("cpu_count")
            .unwrap()
            .extract()
            .unwrap()
    })
}

#[test]
fn defaults_without_any_config() {
    let l = load_ok(&["app:wsgi"], &env_in("plain", &[]));
    let s = &l.settings;
    assert_eq!(l.config_file, None);
    assert_eq!(s.get("config"), &Value::None);
    assert_eq!(s.list("bind"), ["127.0.0.1:8000"]);
    assert_eq!(s.int("workers"), 1);
    assert_eq!(s.int("timeout"), 30);
    assert_eq!(s.str("wsgi_app"), Some("app:wsgi"));
    assert_eq!(s.proc_name(), "app:wsgi");
    assert_eq!(s.get("sendfile"), &Value::None);
    assert_eq!(s.list("forwarded_allow_ips"), ["127.0.0.1", "::1"]);
    assert_eq!(s.int("user"), nix::unistd::geteuid().as_raw() as i64);
    assert_eq!(
        s.str("chdir"),
        Some(configs().join("plain").to_str().unwrap())
    );
    assert_eq!(l.action(), Action::Serve);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert!(s.hooks().next().is_none());
}

#[test]
fn environment_defaults_as_gunicorn() {
    let env = env_in(
        "plain",
        &[
            ("WEB_CONCURRENCY", "4"),
            ("PORT", "9000"),
            ("FORWARDED_ALLOW_IPS", "10.0.0.1,10.0.0.2"),
        ],
    );
    let s = load_ok(&["app"], &env).settings;
    assert_eq!(s.int("workers"), 4);
    assert_eq!(s.list("bind"), ["0.0.0.0:9000"]);
    assert_eq!(s.list("forwarded_allow_ips"), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(s.source("workers"), &Source::Default);
    let e = load_err(&["app"], &env_in("plain", &[("WEB_CONCURRENCY", "lots")]));
    assert_eq!(e.location(), Some(&Location::EnvVar("WEB_CONCURRENCY")));
}

#[test]
fn precedence_defaults_file_gunicorn_env_ferricorn_env_cli() {
    let file = configs().join("realistic").join("gunicorn.conf.py");
    let file = file.to_str().unwrap();
    let both_env = [
        (
            "GUNICORN_CMD_ARGS",
            "-w 11 --timeout 7 --graceful-timeout 8",
        ),
        ("FERRICORN_CMD_ARGS", "-w 12 --timeout 9"),
    ];

    // File over defaults.
    let s = load_ok(&["-c", file], &env_in("plain", &[])).settings;
    assert_eq!(s.int("timeout"), 60);
    assert_eq!(
        s.source("timeout"),
        &Source::ConfigFile(PathBuf::from(file))
    );
    assert_eq!(s.int("backlog"), 2048);

    // $GUNICORN_CMD_ARGS over the file.
    let s = load_ok(&["-c", file], &env_in("plain", &both_env[..1])).settings;
    assert_eq!(
        (
            s.int("workers"),
            s.int("timeout"),
            s.int("graceful_timeout")
        ),
        (11, 7, 8)
    );
    assert_eq!(s.source("workers"), &Source::EnvArgs("GUNICORN_CMD_ARGS"));

    // $FERRICORN_CMD_ARGS over $GUNICORN_CMD_ARGS.
    let s = load_ok(&["-c", file], &env_in("plain", &both_env)).settings;
    assert_eq!(
        (
            s.int("workers"),
            s.int("timeout"),
            s.int("graceful_timeout")
        ),
        (12, 9, 8)
    );

    // The command line over everything; a repeated flag replaces the file's list.
    let s = load_ok(
        &[
            "-c",
            file,
            "-w",
            "13",
            "-b",
            "127.0.0.1:1",
            "-b",
            "127.0.0.1:2",
            "other:app",
        ],
        &env_in("plain", &both_env),
    )
    .settings;
    assert_eq!((s.int("workers"), s.int("timeout")), (13, 9));
    assert_eq!(s.list("bind"), ["127.0.0.1:1", "127.0.0.1:2"]);
    assert_eq!(
        s.str("wsgi_app"),
        Some("other:app"),
        "WSGI_APP wins over the file's wsgi_app"
    );
    assert_eq!(s.source("workers"), &Source::CommandLine);
}

#[test]
fn config_reference_from_the_environment() {
    let file = configs().join("realistic").join("gunicorn.conf.py");
    let env = env_in(
        "plain",
        &[("GUNICORN_CMD_ARGS", &format!("-c {}", file.display()))],
    );
    let l = load_ok(&[], &env);
    assert_eq!(l.config_file.as_deref(), Some(file.as_path()));
    assert_eq!(l.settings.str("wsgi_app"), Some("myapp:application"));
}

#[test]
fn each_config_form() {
    // PATH, relative to the working directory.
    let l = load_ok(&["-c", "ferricorn.toml"], &env_in("only_toml", &[]));
    assert_eq!(l.settings.int("workers"), 7);
    assert_eq!(l.settings.str("config"), Some("ferricorn.toml"));
    // file:PATH
    let l = load_ok(&["-c", "file:gunicorn.conf.py"], &env_in("both", &[]));
    assert_eq!(l.settings.str("wsgi_app"), Some("py:app"));
    // python:MODULE, found through the working directory.
    let l = load_ok(
        &["-c", "python:ferri_module_conf", "app"],
        &env_in("module", &[]),
    );
    assert_eq!(l.settings.int("workers"), 6);
    assert_eq!(l.settings.list("bind"), ["unix:/tmp/ferri-module.sock"]);
    assert!(l.config_file.unwrap().ends_with("ferri_module_conf.py"));
    // Another extension is read as Python, with a warning (gunicorn warns too).
    let l = load_ok(&["-c", "settings.conf", "app"], &env_in("module", &[]));
    assert_eq!(l.settings.int("workers"), 4);
    assert!(
        l.warnings.iter().any(|w| w.contains("extension")),
        "{:?}",
        l.warnings
    );
    // A named file that is missing is an error; a missing module too.
    let e = load_err(&["-c", "nope.py", "app"], &env_in("plain", &[]));
    assert_eq!(e.to_string(), "config file \"nope.py\" does not exist");
    let e = load_err(
        &["-c", "python:no_such_module_here", "app"],
        &env_in("plain", &[]),
    );
    assert!(e.to_string().contains("no_such_module_here"), "{e}");
}

#[test]
fn default_config_discovery() {
    // gunicorn.conf.py first, then ferricorn.toml, then nothing.
    let l = load_ok(&[], &env_in("both", &[]));
    assert_eq!(l.settings.str("wsgi_app"), Some("py:app"));
    assert!(l.config_file.unwrap().ends_with("gunicorn.conf.py"));
    let l = load_ok(&[], &env_in("only_toml", &[]));
    assert_eq!(l.settings.str("wsgi_app"), Some("toml:app"));
    assert_eq!(l.settings.int("workers"), 7);
    let e = load_err(&[], &env_in("plain", &[]));
    assert!(
        e.to_string().starts_with("No application module specified"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn realistic_gunicorn_conf_py() {
    let l = load_ok(&[], &env_in("realistic", &[]));
    let s = &l.settings;
    assert_eq!(
        s.int("workers"),
        cpu_count() * 2 + 1,
        "multiprocessing works in a config"
    );
    assert_eq!(
        s.list("bind"),
        ["127.0.0.1:8001"],
        "a single string is a one-item list"
    );
    assert_eq!(s.int("timeout"), 60);
    assert_eq!(s.int("umask"), 0o007);
    assert_eq!(s.str("accesslog"), Some("-"));
    assert_eq!(s.str("loglevel"), Some("warning"));
    assert!(s
        .str("access_log_format")
        .unwrap()
        .starts_with("%({x-forwarded-for}i)s"));
    assert_eq!(
        s.list("raw_env"),
        [
            "DJANGO_SETTINGS_MODULE=mysite.settings",
            "APP_ENV=production"
        ]
    );
    assert_eq!(s.list("forwarded_allow_ips"), ["*"]);
    assert_eq!(s.str("wsgi_app"), Some("myapp:application"));
    assert_eq!(s.get("post_fork"), &Value::Hook("post_fork".into()));
    assert_eq!(s.hook("post_fork").unwrap().arity, 2);
    assert_eq!(s.hook("when_ready").unwrap().arity, 1);
    assert!(s.hook("pre_fork").is_none());
    // The hooks are live Python callables.
    Python::attach(|py| {
        let code = c"import types\nlog = []\nserver = types.SimpleNamespace(log=types.SimpleNamespace(info=lambda *a: log.append(a[0] % a[1:])))\nworker = types.SimpleNamespace(pid=1234)\n";
        let ns = pyo3::types::PyDict::new(py);
        py.run(code, Some(&ns), None).unwrap();
        let server = ns.get_item("server").unwrap().unwrap();
        let worker = ns.get_item("worker").unwrap().unwrap();
        s.hook("when_ready")
            .unwrap()
            .callable
            .call1(py, (server.clone(),))
            .unwrap();
        s.hook("post_fork")
            .unwrap()
            .callable
            .call1(py, (server, worker))
            .unwrap();
        let log: Vec<String> = ns.get_item("log").unwrap().unwrap().extract().unwrap();
        assert_eq!(
            log,
            [
                "Server is ready. Spawning workers",
                "Worker spawned (pid: 1234)"
            ]
        );
    });
    // Hooks are called by the server: nothing to warn about them.
    assert!(
        !l.warnings.iter().any(|w| w.starts_with("post_fork")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn toml_equivalent_prints_the_same_configuration() {
    // workers is pinned on the command line: the Python file computes it
    // from the CPU count, which TOML cannot.
    let py = load_ok(&["-w", "3"], &env_in("realistic", &[]));
    let toml = load_ok(
        &["-w", "3", "-c", "ferricorn.toml"],
        &env_in("realistic", &[]),
    );
    assert!(py
        .config_file
        .as_ref()
        .unwrap()
        .ends_with("gunicorn.conf.py"));
    assert!(toml
        .config_file
        .as_ref()
        .unwrap()
        .ends_with("ferricorn.toml"));
    assert_eq!(
        without_config_line(&py.settings),
        without_config_line(&toml.settings)
    );
    assert_eq!(toml.settings.hook("post_fork").unwrap().arity, 2);
    assert_eq!(py.warnings, toml.warnings);
}

#[test]
fn print_config_shape() {
    let l = load_ok(
        &["--print-config", "-w", "2", "-e", "A=1", "app:wsgi"],
        &env_in("plain", &[]),
    );
    assert_eq!(l.action(), Action::PrintConfig);
    let out = l.settings.print_config();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), ferricorn::settings::SETTINGS.len());
    let names: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    let width = "permit_unconventional_http_version".len();
    assert!(
        lines
            .iter()
            .all(|l| l.as_bytes()[width] == b' ' && &l[width..width + 3] == " = "),
        "{out}"
    );
    assert!(
        lines.contains(&format!("{:width$} = 2", "workers").as_str()),
        "{out}"
    );
    assert!(
        lines.contains(&format!("{:width$} = ['A=1']", "raw_env").as_str()),
        "{out}"
    );
    assert!(
        lines.contains(&format!("{:width$} = None", "pidfile").as_str()),
        "{out}"
    );
    assert!(
        lines.contains(&format!("{:width$} = False", "daemon").as_str()),
        "{out}"
    );
    let l = load_ok(&["--check-config", "app"], &env_in("plain", &[]));
    assert_eq!(l.action(), Action::CheckConfig);
}

#[test]
fn syntax_error_names_file_and_line() {
    let e = load_err(&["-c", "errors/syntax_error.py", "app"], &env_in("", &[]));
    let path = configs().join("errors/syntax_error.py");
    assert_eq!(
        e.location(),
        Some(&Location::File {
            path: path.clone(),
            line: Some(3)
        })
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{}:3: SyntaxError", path.display())),
        "{e}"
    );
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn runtime_error_names_file_and_line() {
    let e = load_err(&["-c", "errors/name_error.py", "app"], &env_in("", &[]));
    let path = configs().join("errors/name_error.py");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5: NameError: name 'PORT' is not defined",
            path.display()
        )
    );
    let SettingsError::Invalid {
        traceback: Some(tb),
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(tb.contains("Traceback"), "{tb}");
    // The innermost line in the config file, inside a function it defines.
    let e = load_err(
        &["-c", "errors/raises_in_function.py", "app"],
        &env_in("", &[]),
    );
    assert!(
        e.to_string()
            .ends_with("raises_in_function.py:2: ZeroDivisionError: division by zero"),
        "{e}"
    );
    // sys.exit() in a config is an error, not an exit of the server.
    let e = load_err(&["-c", "errors/exits.py", "app"], &env_in("", &[]));
    assert!(e.to_string().contains("exits.py:2: SystemExit"), "{e}");
}

#[test]
fn invalid_values_name_file_and_line() {
    let e = load_err(&["-c", "errors/bad_value.py", "app"], &env_in("", &[]));
    assert!(
        e.to_string()
            .ends_with("bad_value.py:2: timeout: 'soon' is not valid here: expected an integer"),
        "{e}"
    );
    let e = load_err(&["-c", "errors/bad_hook.py", "app"], &env_in("", &[]));
    assert!(
        e.to_string()
            .contains("bad_hook.py:4: post_fork: post_fork() takes 1 positional argument"),
        "{e}"
    );
    let e = load_err(&["--workers", "many", "app"], &env_in("plain", &[]));
    assert_eq!(
        e.to_string(),
        "--workers: 'many' is not valid here: expected an integer"
    );
    let e = load_err(
        &["app"],
        &env_in("plain", &[("GUNICORN_CMD_ARGS", "--log-level loud")]),
    );
    assert_eq!(e.to_string(), "$GUNICORN_CMD_ARGS: --log-level: 'loud' is not one of debug, info, warning, error, critical");
    let e = load_err(
        &["app"],
        &env_in("plain", &[("FERRICORN_CMD_ARGS", "--no-such-flag")]),
    );
    assert!(
        e.to_string()
            .starts_with("$FERRICORN_CMD_ARGS: unexpected argument '--no-such-flag'"),
        "{e}"
    );
}

#[test]
fn unknown_toml_key_names_line_and_suggests() {
    let e = load_err(&["-c", "errors/unknown_key.toml", "app"], &env_in("", &[]));
    let path = configs().join("errors/unknown_key.toml");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5: unknown setting `acess_log_format`; did you mean `access_log_format`?",
            path.display()
        )
    );
}

#[test]
fn settings_without_effect_are_accepted_with_a_warning() {
    let l = load_ok(
        &[
            "--worker-tmp-dir",
            "/tmp",
            "--certfile",
            "c.pem",
            "--statsd-host",
            "localhost:8125",
            "app",
        ],
        &env_in("plain", &[]),
    );
    let w = l.warnings.join("\n");
    assert!(w.contains("worker_tmp_dir is set but has no effect"), "{w}");
    assert!(!w.contains("threads"), "threads is acted on: {w}");
    // TLS is acted on: certfile warns no more.
    assert!(!w.contains("certfile"), "{w}");
    // StatsD is sent now: no warning for it.
    assert!(!w.contains("statsd_host"), "statsd_host is acted on: {w}");
    // Set to its default: nothing to warn about.
    let l = load_ok(&["--threads", "1", "app"], &env_in("plain", &[]));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // A worker class ferricorn cannot run is refused.
    let e = load_err(
        &["-k", "uvicorn.workers.UvicornWorker", "app"],
        &env_in("plain", &[]),
    );
    assert!(e.to_string().contains("is not supported"), "{e}");
}

#[test]
fn help_and_version_are_returned_not_exited() {
    let e = load_err(&["--help"], &env_in("plain", &[]));
    assert_eq!(e.exit_code(), 0);
    assert!(e.to_string().contains("--graceful-timeout"));
    let e = load_err(&["--version"], &env_in("plain", &[]));
    assert_eq!(e.exit_code(), 0);
    let e = load_err(&["--bogus"], &env_in("plain", &[]));
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn loading_again_sees_the_edited_file() {
    // What SIGHUP will do: the same argv, the file changed in between.
    let dir = std::env::temp_dir().join(format!("ferricorn-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gunicorn.conf.py");
    std::fs::write(&file, "wsgi_app = 'a:b'\nworkers = 2\n").unwrap();
    let env = Env::new(&dir, Vec::<(String, String)>::new());
    assert_eq!(load_ok(&[], &env).settings.int("workers"), 2);
    std::fs::write(&file, "wsgi_app = 'a:b'\nworkers = 5\n").unwrap();
    assert_eq!(load_ok(&[], &env).settings.int("workers"), 5);
    std::fs::write(&file, "wsgi_app = 'a:b'\nworkers = (\n").unwrap();
    assert!(
        load(&argv(&[]), &env).is_err(),
        "a broken edit is an error value"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
