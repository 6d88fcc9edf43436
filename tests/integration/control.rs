//! The control socket driven by gunicorn 27's own client, `gunicornc`, as
//! an operator would: every gunicorn command, then ferricorn's
//! `show generations` and `upgrade`, across HUP and a binary upgrade.

use crate::harness::*;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

/// (exit code, stdout, stderr) of `gunicornc -s SOCKET [-j] -c COMMAND`.
fn gunicornc(socket: &Path, json: bool, command: &str) -> (i32, String, String) {
    let venv = venv().expect("the test venv is missing: run scripts/setup (scripts/test does it)");
    let bin = venv.join("bin").join("gunicornc");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.arg("-s").arg(socket);
    if json {
        cmd.arg("-j");
    }
    let out = cmd
        .arg("-c")
        .arg(command)
        .env("VIRTUAL_ENV", &venv)
        .output()
        .expect("run gunicornc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(socket: &Path, command: &str) -> serde_json::Value {
    let (code, out, err) = gunicornc(socket, true, command);
    assert_eq!(code, 0, "gunicornc -c {command:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{command:?}: {e}: {out}"))
}

#[test]
fn gunicornc_drives_every_gunicorn_command_and_the_socket_survives_hup() {
    let dir = TempDir::new("control");
    let sock = dir.join("app.ctl");
    let mut s = Server::builder("basic:app")
        .args(["-w", "2", "--graceful-timeout", "5", "--control-socket"])
        .arg(sock.to_string_lossy().to_string())
        .start();
    let workers = s.wait_workers(2, T);
    let meta = std::fs::symlink_metadata(&sock).expect("control socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let (code, out, err) = gunicornc(&sock, false, "show workers");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Total: 2 workers"), "{out}");
    for pid in &workers {
        assert!(out.contains(&pid.to_string()), "{pid} not in {out}");
    }
    let (_, out, _) = gunicornc(&sock, false, "show all");
    assert!(
        out.contains(&format!("PID: {}", s.pid)) && out.contains("WEB WORKERS (2)"),
        "{out}"
    );
    let stats = json(&sock, "show stats");
    assert_eq!(stats["pid"], s.pid);
    assert_eq!(stats["workers_target"], 2);
    let (_, out, _) = gunicornc(&sock, false, "show listeners");
    assert!(
        out.contains(&format!("http://127.0.0.1:{}", s.port)) && out.contains("tcp"),
        "{out}"
    );
    let (_, out, _) = gunicornc(&sock, false, "show config");
    assert!(
        out.contains("workers: 2") && out.contains("worker_class: sync"),
        "{out}"
    );

    assert_eq!(json(&sock, "worker add 1")["total"], 3);
    assert_eq!(s.wait_workers(3, T).len(), 3);
    assert_eq!(json(&sock, "worker remove 2")["total"], 1);
    let one = s.wait_workers(1, T);
    assert_eq!(one.len(), 1);
    let killed = json(&sock, &format!("worker kill {}", one[0]));
    assert_eq!(killed["success"], true, "{killed}");
    assert!(eventually(T, || {
        let w = s.worker_pids();
        w.len() == 1 && w[0] != one[0]
    }));
    assert_eq!(json(&sock, "worker kill 1")["success"], false);
    let (code, _, err) = gunicornc(&sock, false, "no such command");
    assert_eq!(code, 1);
    assert!(err.contains("Unknown command: no"), "{err}");

    // reload is HUP: the configuration read again (2 workers), a new
    // generation, and the socket stays.
    assert_eq!(json(&sock, "reload")["status"], "reloading");
    assert!(
        eventually(T, || {
            let g = json(&sock, "show generations");
            g["current"] == 2
                && g["generations"]
                    .as_array()
                    .is_some_and(|a| a.len() == 1 && a[0]["serving"] == 2)
        }),
        "log:\n{}",
        s.log()
    );
    assert_eq!(json(&sock, "show stats")["reloads"], 1);
    assert_eq!(json(&sock, "reopen")["status"], "reopening");
    assert_eq!(s.get("/").status, 200);

    assert_eq!(json(&sock, "shutdown")["mode"], "graceful");
    assert_eq!(s.exit_code(T), 0);
    assert!(!sock.exists(), "the master left its control socket behind");
}

#[test]
fn gunicornc_upgrade_answers_once_the_new_master_serves_and_the_socket_moves() {
    let dir = TempDir::new("control-upgrade");
    let sock = dir.join("app.ctl");
    let pidfile = dir.join("app.pid");
    let mut s = Server::builder("basic:pid")
        .args([
            "-w",
            "1",
            "--upgrade-mode",
            "auto",
            "--graceful-timeout",
            "5",
        ])
        .arg("--pid")
        .arg(pidfile.to_string_lossy().to_string())
        .arg("--control-socket")
        .arg(sock.to_string_lossy().to_string())
        .start();
    let answer = json(&sock, "upgrade");
    assert_eq!(answer["status"], "upgraded", "{answer}");
    assert_eq!(answer["old_pid"], s.pid);
    let new_pid = answer["new_pid"].as_u64().expect("new_pid") as u32;
    assert_ne!(new_pid, s.pid);
    // The old master hands over and exits; the path now reaches the new one.
    assert_eq!(s.exit_code(T), 0, "log:\n{}", s.log());
    assert!(
        sock.exists(),
        "the old master removed the new master's socket"
    );
    assert_eq!(json(&sock, "show stats")["pid"], new_pid);
    assert_eq!(s.get("/").status, 200);
    assert_eq!(json(&sock, "shutdown quick")["mode"], "quick");
    assert!(wait_gone(new_pid, T), "the new master did not stop");
    assert!(!sock.exists());
}

#[test]
fn no_control_socket_creates_none() {
    let dir = TempDir::new("control-off");
    let sock = dir.join("off.ctl");
    let s = Server::builder("basic:app")
        .args(["--no-control-socket", "--control-socket"])
        .arg(sock.to_string_lossy().to_string())
        .start();
    assert_eq!(s.get("/").status, 200);
    assert!(!sock.exists());
}
