//! Listeners in every gunicorn spelling (TCP, IPv6, unix:, fd://, several at
//! once) and running as a daemon with a pidfile.

use crate::harness::*;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn unix_socket_serves_and_is_removed_at_term() {
    let dir = TempDir::new("unix");
    let sock = dir.join("app.sock");
    let mut s = Server::builder("basic:app")
        .bind(format!("unix:{}", sock.display()))
        .start();
    assert!(
        s.wait_log(&format!("Listening at: unix:{}", sock.display()), T),
        "{}",
        s.log()
    );
    assert!(
        eventually(T, || unix_request(&sock, GET, T)
            .map(|r| r.status == 200)
            .unwrap_or(false)),
        "{}",
        s.log()
    );
    assert_eq!(
        unix_request(&sock, GET, T).unwrap().text(),
        "Hello, World!\n"
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0);
    assert!(!sock.exists(), "socket file left after TERM");
}

#[test]
fn stale_unix_socket_file_is_replaced() {
    let dir = TempDir::new("unixstale");
    let sock = dir.join("app.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let s = Server::builder("basic:app")
        .bind(format!("unix:{}", sock.display()))
        .start();
    assert!(
        eventually(T, || unix_request(&sock, GET, T)
            .map(|r| r.status == 200)
            .unwrap_or(false)),
        "{}",
        s.log()
    );
}

#[test]
fn inherited_fd_is_served() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(apps_dir())
        .args(["-b", &format!("fd://{fd}"), "basic:app"]);
    cmd.env_remove("VIRTUAL_ENV")
        .env_remove("PORT")
        .env_remove("WEB_CONCURRENCY");
    // Only in the child: the test's other spawns must not inherit it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut s = Server::spawn_command(cmd);
    drop(listener);
    assert_eq!(s.await_port(T), port, "{}", s.log());
    s.wait_ready(T);
    assert_eq!(s.get_text("/"), "Hello, World!\n");
}

#[test]
fn fd_that_is_not_a_listening_socket_is_refused() {
    let mut s = Server::builder("basic:app")
        .bind("fd://0")
        .no_wait()
        .spawn();
    assert_ne!(s.exit_code(T), 0);
    assert!(s.log().contains("Cannot use fd://0"), "{}", s.log());
}

#[test]
fn several_binds_including_ipv6_all_serve() {
    let p1 = free_port();
    let p2 = free_port();
    let s = Server::builder("basic:app")
        .bind(format!("127.0.0.1:{p1}"))
        .args(["-b", &format!("[::1]:{p2}")])
        .no_wait()
        .spawn();
    assert!(
        s.wait_log(&format!("Listening at: http://[::1]:{p2}"), T),
        "{}",
        s.log()
    );
    for addr in [format!("127.0.0.1:{p1}"), format!("[::1]:{p2}")] {
        assert!(
            eventually(T, || try_request(&addr, GET, T)
                .map(|r| r.status == 200)
                .unwrap_or(false)),
            "{addr}: {}",
            s.log()
        );
    }
}

#[test]
fn host_without_port_binds_8000_as_gunicorn_does() {
    // Port 8000 may be taken on the machine: either outcome names it.
    let mut s = Server::builder("basic:app")
        .bind("127.0.0.1")
        .no_wait()
        .spawn();
    assert!(
        eventually(T, || {
            let log = s.log();
            log.contains("Listening at: http://127.0.0.1:8000")
                || log.contains("Connection in use: 127.0.0.1:8000")
        }),
        "{}",
        s.log()
    );
    s.signal(libc::SIGTERM);
    let _ = s.wait_exit(T);
}

#[test]
fn reuse_port_lets_two_servers_share_a_port() {
    let port = free_port();
    let a = Server::builder("basic:app")
        .bind(format!("127.0.0.1:{port}"))
        .arg("--reuse-port")
        .start();
    let b = Server::builder("basic:app")
        .bind(format!("127.0.0.1:{port}"))
        .arg("--reuse-port")
        .start();
    assert_eq!(a.get("/").status, 200);
    assert_eq!(b.get("/").status, 200);
}

#[test]
fn daemon_writes_its_pid_serves_and_stops_on_term() {
    let dir = TempDir::new("daemon");
    let pidfile = dir.join("d.pid");
    let errlog = dir.join("error.log");
    let mut launcher = Server::builder("basic:app")
        .args(["-D", "-w", "2", "-p"])
        .arg(pidfile.to_string_lossy())
        .arg("--error-logfile")
        .arg(errlog.to_string_lossy())
        .no_wait()
        .spawn();
    // The launching process returns at once; the daemon lives on.
    assert_eq!(launcher.exit_code(T), 0, "{}", launcher.log());
    assert!(eventually(T, || std::fs::read_to_string(&pidfile)
        .is_ok_and(|t| t.trim().parse::<u32>().is_ok())));
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = KillOnDrop(pid);
    assert_ne!(
        pid, launcher.pid,
        "the pidfile must name the daemon, not the launcher"
    );
    assert!(process_alive(pid));
    assert_eq!(cmdline(pid), "ferricorn: master [basic:app]");
    // Detached: a session of its own (left by the second fork, so it is not
    // the leader and can never acquire a controlling terminal).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let own_session = unsafe { libc::getsid(0) }.to_string();
    assert_ne!(
        fields[3], own_session,
        "daemon still in the caller's session: {stat}"
    );
    assert_ne!(
        fields[3],
        pid.to_string(),
        "daemon is a session leader: {stat}"
    );
    assert!(eventually(T, || std::fs::read_to_string(&errlog)
        .unwrap_or_default()
        .contains("Listening at: http://127.0.0.1:")));
    let log = std::fs::read_to_string(&errlog).unwrap();
    assert!(log.contains(&format!("({pid})")), "{log}");
    let port: u16 = listening_port(&log).expect("a 'Listening at' line");
    let addr = format!("127.0.0.1:{port}");
    assert!(
        eventually(T, || try_request(&addr, GET, T)
            .map(|r| r.status == 200)
            .unwrap_or(false)),
        "{log}"
    );
    let workers = children_of(pid);
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(wait_gone(pid, T), "daemon ignored TERM");
    for w in workers {
        assert!(wait_gone(w, T));
    }
    assert!(!pidfile.exists(), "pidfile left after TERM");
}

#[test]
fn pidfile_of_a_live_master_is_not_taken_over() {
    let dir = TempDir::new("pidtaken");
    let pidfile = dir.join("m.pid");
    let first = Server::builder("basic:app")
        .arg("-p")
        .arg(pidfile.to_string_lossy())
        .start();
    let mut second = Server::builder("basic:app")
        .arg("-p")
        .arg(pidfile.to_string_lossy())
        .no_wait()
        .spawn();
    assert_ne!(second.exit_code(T), 0);
    assert!(
        second
            .log()
            .contains(&format!("Already running on PID {}", first.pid)),
        "{}",
        second.log()
    );
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        first.pid.to_string()
    );
}

#[test]
fn master_file_descriptors_are_close_on_exec() {
    let dir = TempDir::new("cloexec");
    let sock = dir.join("s.sock");
    let s = Server::builder("basic:app")
        .args([
            "-b",
            &format!("unix:{}", sock.display()),
            "--access-logfile",
        ])
        .arg(dir.join("a.log").to_string_lossy())
        .start();
    for pid in std::iter::once(s.pid).chain(s.wait_workers(1, T)) {
        let mut checked = 0;
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
        {
            let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
            if fd <= 2 {
                continue;
            }
            let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
                continue;
            };
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
                .unwrap();
            let target = std::fs::read_link(entry.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            // Inherited from the test runner's own environment, not ferricorn's doing.
            if std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .ok()
                .as_deref()
                == Some(&target)
            {
                continue;
            }
            assert!(
                flags & libc::O_CLOEXEC as u32 != 0,
                "pid {pid} fd {fd} ({target}) is inherited by exec"
            );
            checked += 1;
        }
        assert!(checked >= 2, "pid {pid}: expected listeners and log fds");
    }
}
