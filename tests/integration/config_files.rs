//! Config files through the real binary: gunicorn.conf.py and its TOML
//! equivalent give the same effective configuration (`--print-config`),
//! precedence with $GUNICORN_CMD_ARGS and the command line, and
//! `--check-config` errors that name the file and the line.

use crate::harness::*;
use std::path::PathBuf;
use std::process::Command;

fn configs() -> PathBuf {
    repo().join("tests").join("configs")
}

/// Run ferricorn in `dir` with `args`: (exit code, stdout, stderr).
pub fn run_in(
    dir: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for k in [
        "GUNICORN_CMD_ARGS",
        "FERRICORN_CMD_ARGS",
        "WEB_CONCURRENCY",
        "PORT",
        "VIRTUAL_ENV",
        "HOOKED_WORKERS",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ferricorn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn apps() -> String {
    apps_dir().to_string_lossy().into_owned()
}

fn print_config(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> String {
    let apps = apps();
    let mut all = vec!["--print-config", "--pythonpath", apps.as_str()];
    all.extend_from_slice(args);
    let (code, out, err) = run_in(dir, &all, envs);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    out.lines()
        .filter(|l| !l.starts_with("config "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn value<'a>(printed: &'a str, name: &str) -> &'a str {
    printed
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_once(" = "))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in:\n{printed}"))
}

#[test]
fn gunicorn_conf_py_and_its_toml_print_the_same_configuration() {
    let dir = configs().join("hooked");
    let py = print_config(&dir, &[], &[]);
    let toml = print_config(&dir, &["-c", "ferricorn.toml"], &[]);
    assert_eq!(py, toml);
    assert_eq!(value(&py, "workers"), "2");
    assert_eq!(value(&py, "bind"), "['127.0.0.1:8000']");
    assert_eq!(value(&py, "access_log_format"), "access %(m)s %(U)s %(s)s");
    assert_eq!(value(&py, "raw_env"), "['APP_GREETING=hello from raw_env']");
    assert_eq!(value(&py, "post_request"), "<post_request()>");
    assert_eq!(value(&py, "pre_fork"), "<pre_fork()>");
    // The older fixture pair too (workers pinned: the Python file computes it).
    let dir = configs().join("realistic");
    let py = print_config(&dir, &["-w", "3", "basic:app"], &[]);
    let toml = print_config(&dir, &["-w", "3", "-c", "ferricorn.toml", "basic:app"], &[]);
    assert_eq!(py, toml);
}

#[test]
fn a_python_config_runs_real_code() {
    let want = Command::new("python3")
        .args([
            "-c",
            "import multiprocessing; print(multiprocessing.cpu_count() * 2 + 1)",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap();
    let printed = print_config(&configs().join("realistic"), &["basic:app"], &[]);
    assert_eq!(value(&printed, "workers"), want);
    // The file reads the environment like any Python program.
    let printed = print_config(&configs().join("hooked"), &[], &[("HOOKED_WORKERS", "5")]);
    assert_eq!(value(&printed, "workers"), "5");
}

#[test]
fn precedence_file_then_env_args_then_command_line() {
    let dir = configs().join("hooked");
    for conf in [&[][..], &["-c", "ferricorn.toml"][..]] {
        let p = print_config(&dir, conf, &[("GUNICORN_CMD_ARGS", "-w 5 --timeout 7")]);
        assert_eq!(
            (
                value(&p, "workers"),
                value(&p, "timeout"),
                value(&p, "keepalive")
            ),
            ("5", "7", "2")
        );
        let p = print_config(
            &dir,
            conf,
            &[
                ("GUNICORN_CMD_ARGS", "-w 5 --timeout 7"),
                ("FERRICORN_CMD_ARGS", "-w 6"),
            ],
        );
        assert_eq!((value(&p, "workers"), value(&p, "timeout")), ("6", "7"));
        let mut args = conf.to_vec();
        args.extend(["-w", "9"]);
        let p = print_config(
            &dir,
            &args,
            &[
                ("GUNICORN_CMD_ARGS", "-w 5"),
                ("FERRICORN_CMD_ARGS", "-w 6"),
            ],
        );
        assert_eq!(value(&p, "workers"), "9");
    }
}

#[test]
fn check_config_exits_0_or_1_naming_file_and_line() {
    let dir = configs().join("hooked");
    let (code, _, err) = run_in(&dir, &["--check-config", "--pythonpath", &apps()], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_in(
        &dir,
        &[
            "--check-config",
            "-c",
            "ferricorn.toml",
            "--pythonpath",
            &apps(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    // The app is imported too, as gunicorn does.
    let (code, _, err) = run_in(&dir, &["--check-config"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("No module named 'hooked'"), "{err}");

    let errors = configs().join("errors");
    let (code, _, err) = run_in(
        &errors,
        &["--check-config", "-c", "syntax_error.py", "basic:app"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "Error: {}:3: SyntaxError",
            errors.join("syntax_error.py").display()
        )),
        "{err}"
    );
    let (code, _, err) = run_in(
        &errors,
        &["--check-config", "-c", "name_error.py", "basic:app"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("name_error.py:5: NameError: name 'PORT' is not defined"),
        "{err}"
    );
    assert!(err.contains("Traceback"), "the traceback is shown: {err}");
    let (code, _, err) = run_in(
        &errors,
        &["--check-config", "-c", "unknown_key.toml", "basic:app"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown_key.toml:5: unknown setting `acess_log_format`; did you mean `access_log_format`?"), "{err}");
    let (code, _, err) = run_in(
        &errors,
        &["--check-config", "-c", "bad_hook.py", "basic:app"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("bad_hook.py:4: post_fork"), "{err}");
}

#[test]
fn settings_without_effect_warn_and_serve() {
    let s = Server::builder("basic:app")
        .args(["--worker-tmp-dir", "/tmp", "--paste-global", "FOO=bar"])
        .start();
    assert_eq!(s.get("/").status, 200);
    let log = s.log();
    assert!(
        log.contains("worker_tmp_dir is set but has no effect in ferricorn"),
        "{log}"
    );
    assert!(
        log.contains(
            "raw_paste_global_conf is set but has no effect in ferricorn: PasteDeploy apps are not supported"
        ),
        "{log}"
    );
}

#[test]
fn help_lists_every_setting_with_a_flag() {
    let (code, out, _) = run_in(&apps_dir(), &["--help"], &[]);
    assert_eq!(code, 0);
    for s in ferricorn::settings::SETTINGS.iter().filter(|s| s.has_cli()) {
        for f in s.flags.iter().filter(|f| f.starts_with("--")) {
            assert!(out.contains(f), "--help lacks {f}:\n{out}");
        }
    }
    assert!(out.contains("ferricorn upgrade --pid PIDFILE"), "{out}");
    assert!(
        !out.contains("--reference-responder"),
        "benchmark switch stays hidden"
    );
}
