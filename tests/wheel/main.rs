//! The wheel as a pip user gets it: installed into fresh virtualenvs of
//! different interpreters, started with no Rust toolchain on PATH, served
//! from, upgraded in place under load.
//!
//! The wheels come from scripts/test-wheel, which builds them (a release
//! build each) and names them in `FERRICORN_WHEEL` (the one under test) and
//! `FERRICORN_WHEEL_ALT` (the same code, its version suffixed, to upgrade
//! to). Without them every test here says it was skipped: `cargo test`
//! alone does not build wheels.

#[path = "../integration/harness.rs"]
mod harness;
#[path = "../../chaos-tests/load.rs"]
mod load;

use harness::*;
use load::{Load, Target};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// The app every test serves: who runs it, and in which environment.
const PROBE: &str = "import os, sys\n\
def app(environ, start_response):\n\
\x20   body = '|'.join([sys.version.split()[0], sys.prefix, sys.executable, environ['SERVER_SOFTWARE'],\n\
\x20                    os.environ.get('LD_LIBRARY_PATH', '-'), os.environ.get('LD_PRELOAD', '-')]).encode()\n\
\x20   start_response('200 OK', [('Content-Length', str(len(body)))])\n\
\x20   return [body]\n";

fn wheel() -> Option<PathBuf> {
    let w = std::env::var_os("FERRICORN_WHEEL").map(PathBuf::from);
    if w.is_none() {
        eprintln!("skipped: FERRICORN_WHEEL is not set (scripts/test-wheel builds the wheels and sets it)");
    }
    w
}

/// The wheel's CPython minor version, from its tag (`…-cp311-cp311-…`).
fn wheel_minor(wheel: &Path) -> String {
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let tag = name
        .split('-')
        .find(|p| p.starts_with("cp3"))
        .unwrap_or_else(|| panic!("{name} has no cp3XY tag"));
    format!("3.{}", &tag[3..])
}

/// What a shell with no Rust toolchain and no active venv would pass on.
fn plain_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
        )
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The interpreter itself behind `python` (pyenv's python3 is a shim).
fn real_python(python: &str) -> Option<PathBuf> {
    let out = Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn python_minor(python: &Path) -> String {
    let out =
        run(Command::new(python).args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh venv made by `python`, with `wheel` pip-installed from the file
/// alone (no index).
struct Venv {
    dir: TempDir,
}

impl Venv {
    fn new(python: &Path, tag: &str, wheel: &Path) -> Venv {
        let dir = TempDir::new(tag);
        run(plain_env(&mut Command::new(python))
            .arg("-m")
            .arg("venv")
            .arg(dir.join("venv")));
        let v = Venv { dir };
        v.pip_install(wheel, &[]);
        v
    }
    fn path(&self) -> PathBuf {
        self.dir.join("venv")
    }
    fn bin(&self, name: &str) -> PathBuf {
        self.path().join("bin").join(name)
    }
    fn pip_install(&self, wheel: &Path, extra: &[&str]) {
        run(plain_env(&mut Command::new(self.bin("python")))
            .args(["-m", "pip", "install", "--quiet", "--no-index"])
            .args(extra)
            .arg(wheel));
    }
    /// A directory holding the probe app.
    fn app_dir(&self) -> PathBuf {
        let d = self.dir.join("app");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("probe.py"), PROBE).unwrap();
        d
    }
    /// `program args…` in the app directory, as a server of the harness.
    fn serve(&self, program: &Path, args: &[&str]) -> Server {
        let cwd = self.app_dir();
        let mut cmd = Command::new(program);
        plain_env(&mut cmd)
            .current_dir(&cwd)
            .env("PWD", &cwd)
            .args(args);
        let mut s = Server::spawn_command(cmd);
        s.await_port(T);
        s.wait_ready(T);
        s
    }
}

/// Serve the probe from `venv` through `ferricorn` and check who answers:
/// the venv's own interpreter, its prefix, no loader variables set.
fn check_serves(venv: &Venv, python: &Path, s: &Server) {
    let body = s.get_text("/");
    let f: Vec<&str> = body.split('|').collect();
    assert_eq!(f.len(), 6, "{body}");
    let base_version = String::from_utf8_lossy(
        &run(Command::new(python).args(["-c", "import sys; print(sys.version.split()[0])"])).stdout,
    )
    .trim()
    .to_string();
    assert_eq!(f[0], base_version, "not the venv's interpreter: {body}");
    assert_eq!(
        std::fs::canonicalize(f[1]).unwrap(),
        std::fs::canonicalize(venv.path()).unwrap(),
        "sys.prefix is not the venv: {body}"
    );
    assert_eq!(
        Path::new(f[2]),
        venv.bin("python"),
        "sys.executable: {body}"
    );
    assert!(f[3].starts_with("ferricorn/"), "{body}");
    assert_eq!(
        (f[4], f[5]),
        ("-", "-"),
        "the launcher changed the app's environment: {body}"
    );
    // The process title, not the dynamic loader's command line.
    assert!(
        cmdline(s.pid).starts_with("ferricorn: master"),
        "{}",
        cmdline(s.pid)
    );
}

fn serve_from_fresh_venv(python: &Path, tag: &str) {
    let Some(wheel) = wheel() else { return };
    assert_eq!(
        python_minor(python),
        wheel_minor(&wheel),
        "{} is not the wheel's Python",
        python.display()
    );
    let venv = Venv::new(python, tag, &wheel);
    let s = venv.serve(
        &venv.bin("ferricorn"),
        &["-b", "127.0.0.1:0", "-w", "2", "probe:app"],
    );
    check_serves(&venv, python, &s);
}

#[test]
fn serves_from_a_fresh_venv_of_the_python3_on_path() {
    let python = real_python("python3").expect("python3 on PATH");
    serve_from_fresh_venv(&python, "wheel-path-python");
}

#[test]
fn serves_from_a_fresh_venv_of_debians_python3() {
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        eprintln!("skipped: no /usr/bin/python3");
        return;
    }
    if let Some(w) = std::env::var_os("FERRICORN_WHEEL") {
        if python_minor(python) != wheel_minor(Path::new(&w)) {
            eprintln!("skipped: /usr/bin/python3 is not of the wheel's minor version");
            return;
        }
    }
    serve_from_fresh_venv(python, "wheel-debian-python");
}

#[test]
fn python_dash_m_ferricorn_serves_and_answers_version() {
    let Some(wheel) = wheel() else { return };
    let python = real_python("python3").unwrap();
    let venv = Venv::new(&python, "wheel-dash-m", &wheel);
    let out = run(plain_env(&mut Command::new(venv.bin("python"))).args(["-m", "ferricorn", "-v"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ferricorn "),
        "{out:?}"
    );
    let s = venv.serve(
        &venv.bin("python"),
        &["-m", "ferricorn", "-b", "127.0.0.1:0", "probe:app"],
    );
    check_serves(&venv, &python, &s);
}

#[test]
fn the_wheel_names_no_libpython_and_no_build_machine_path() {
    let Some(wheel) = wheel() else { return };
    let python = real_python("python3").unwrap();
    let venv = Venv::new(&python, "wheel-elf", &wheel);
    let server = std::fs::read(venv.bin("ferricorn-server")).unwrap();
    let text = String::from_utf8_lossy(&server);
    assert!(!text.contains("libpython3"), "the server names a libpython");
    let home = std::env::var("HOME").unwrap_or_default();
    assert!(
        home.len() < 2 || !text.contains(&format!("{home}/.pyenv")),
        "the server names the build interpreter's directory"
    );
}

#[test]
fn auditwheel_names_a_manylinux_policy() {
    let Some(wheel) = wheel() else { return };
    let auditwheel = repo().join("target/wheel-tools/bin/auditwheel");
    let out = run(Command::new(&auditwheel).arg("show").arg(&wheel));
    let text = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    assert!(
        text.contains("consistent with the following platform tag: \"manylinux_"),
        "{text}"
    );
}

/// A CPython of another minor version than the wheel's: the one
/// scripts/test-wheel found (`FERRICORN_TEST_OTHER_PYTHON`), else
/// python3.10 … 3.14 on PATH.
fn other_minor_python(wheel: &Path) -> Option<PathBuf> {
    let want = wheel_minor(wheel);
    if let Some(p) = std::env::var_os("FERRICORN_TEST_OTHER_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    (10..=14)
        .map(|m| format!("python3.{m}"))
        .filter(|name| *name != format!("python{want}"))
        .find_map(|name| real_python(&name))
}

#[test]
fn a_python_of_another_minor_version_gets_one_clear_error() {
    let Some(wheel) = wheel() else { return };
    let Some(other) = other_minor_python(&wheel) else {
        eprintln!("skipped: no Python of another minor version on PATH");
        return;
    };
    let want = wheel_minor(&wheel);
    let have = python_minor(&other);
    // At install: pip refuses the wheel, whose tag names its Python.
    let dir = TempDir::new("wheel-other-minor");
    run(plain_env(&mut Command::new(&other))
        .arg("-m")
        .arg("venv")
        .arg(dir.join("venv")));
    let out = plain_env(&mut Command::new(dir.join("venv/bin/python")))
        .args(["-m", "pip", "install", "--no-index"])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a supported wheel on this platform"),
        "{err}"
    );
    // At start: the package made importable by force (PYTHONPATH) all the
    // same, the launcher says which Python the server embeds, and exits.
    let python = real_python("python3").unwrap();
    let venv = Venv::new(&python, "wheel-right-minor", &wheel);
    let site = venv.path().join(format!("lib/python{want}/site-packages"));
    let out = plain_env(&mut Command::new(dir.join("venv/bin/python")))
        .env("PYTHONPATH", &site)
        .args(["-m", "ferricorn", "-b", "127.0.0.1:0", "probe:app"])
        .current_dir(venv.app_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "embeds CPython {want}, but it runs under Python {have}"
        )),
        "{err}"
    );
}

fn mapped_server(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains("ferricorn-server"))
        .map(|l| l.split_whitespace().skip(5).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[test]
fn reinstall_then_usr2_upgrades_in_place_with_no_failed_request() {
    let Some(wheel) = wheel() else { return };
    let Some(alt) = std::env::var_os("FERRICORN_WHEEL_ALT").map(PathBuf::from) else {
        eprintln!("skipped: FERRICORN_WHEEL_ALT is not set (scripts/test-wheel sets it)");
        return;
    };
    let python = real_python("python3").unwrap();
    let venv = Venv::new(&python, "wheel-upgrade", &wheel);
    let pidfile = venv.dir.join("app.pid");
    let s = venv.serve(
        &venv.bin("ferricorn"),
        &[
            "-b",
            "127.0.0.1:0",
            "-w",
            "2",
            "-p",
            pidfile.to_str().unwrap(),
            "probe:app",
        ],
    );
    let old = s.pid;
    let old_version = s.get_text("/").split('|').nth(3).unwrap().to_string();
    let keepalive = Load::start(Target::Tcp(s.addr()), "/", 6, true);
    let close = Load::start(Target::Tcp(s.addr()), "/", 4, false);
    assert!(
        keepalive.wait_progress(50, T) && close.wait_progress(20, T),
        "{}",
        s.log()
    );

    // The deploy: a new wheel over the running server, then USR2.
    venv.pip_install(&alt, &["--force-reinstall"]);
    assert!(
        mapped_server(old).ends_with("(deleted)"),
        "{}",
        mapped_server(old)
    );
    let before = s.count_log("is ready: all its workers have booted");
    s.signal(libc::SIGUSR2);
    assert!(
        s.wait_log_n("is ready: all its workers have booted", before + 1, T),
        "no new master became ready; log:\n{}",
        s.log()
    );
    let new: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(new, old);
    assert_eq!(
        mapped_server(new),
        venv.bin("ferricorn-server").display().to_string()
    );
    assert!(
        cmdline(new).starts_with("ferricorn: master"),
        "{}",
        cmdline(new)
    );
    assert!(
        keepalive.wait_progress(50, T) && close.wait_progress(20, T),
        "{}",
        s.log()
    );

    // Phase the old generation out (WINCH, QUIT); the new one serves alone.
    s.signal(libc::SIGWINCH);
    assert!(
        eventually(T, || children_of(old).iter().all(|c| *c == new)),
        "{}",
        s.log()
    );
    s.signal(libc::SIGQUIT);
    assert!(wait_gone(old, T), "{}", s.log());
    assert!(
        keepalive.wait_progress(50, T) && close.wait_progress(20, T),
        "{}",
        s.log()
    );
    let (k, c) = (keepalive.stop(), close.stop());
    println!("reinstall + USR2: keep-alive: {k}\nper-request: {c}");
    assert_eq!(
        k.failed() + c.failed(),
        0,
        "keep-alive: {k}\nper-request: {c}\nlog:\n{}",
        s.log()
    );
    let new_version = try_request(&s.addr(), b"GET / HTTP/1.0\r\n\r\n", T)
        .unwrap()
        .text()
        .split('|')
        .nth(3)
        .unwrap()
        .to_string();
    assert_ne!(new_version, old_version, "the new version does not answer");
    assert!(new_version.ends_with("+wheel-alt"), "{new_version}");
    for st in [&k, &c] {
        assert!(st.bodies.keys().any(|b| b.contains(&new_version)), "{st}");
    }
    unsafe { libc::kill(new as i32, libc::SIGTERM) };
    assert!(wait_gone(new, T));
}
