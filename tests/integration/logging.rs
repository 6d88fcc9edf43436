//! Logs speak gunicorn: the error log's line shape and familiar lines, the
//! access log's default format, levels, and --capture-output.

use crate::harness::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[%Y-%m-%d %H:%M:%S %z] [pid] [LEVEL] message`
fn parse_error_line(line: &str) -> Option<(u32, &str, &str)> {
    let rest = line.strip_prefix('[')?;
    let (stamp, rest) = rest.split_once("] [")?;
    let (date, rest_stamp) = stamp.split_once(' ')?;
    let (time, zone) = rest_stamp.split_once(' ')?;
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    let ok_stamp = d.len() == 3
        && digits(d[0], 4)
        && digits(d[1], 2)
        && digits(d[2], 2)
        && t.len() == 3
        && t.iter().all(|x| digits(x, 2))
        && zone.len() == 5
        && (zone.starts_with('+') || zone.starts_with('-'))
        && digits(&zone[1..], 4);
    if !ok_stamp {
        return None;
    }
    let (pid, rest) = rest.split_once("] [")?;
    let (level, msg) = rest.split_once("] ")?;
    if !["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].contains(&level) {
        return None;
    }
    Some((pid.parse().ok()?, level, msg))
}

/// `127.0.0.1 - - [24/Nov/2026:00:12:54 +0000] "GET / HTTP/1.1" 200 14 "-" "agent"`
fn check_access_line(line: &str, request_line: &str, status: u16, size: usize, agent: &str) {
    let (host, rest) = line
        .split_once(" - - [")
        .unwrap_or_else(|| panic!("{line:?}"));
    assert_eq!(host, "127.0.0.1", "{line:?}");
    let (stamp, rest) = rest.split_once("] ").unwrap_or_else(|| panic!("{line:?}"));
    let (dmy, hmsz) = stamp.split_once(':').unwrap_or_else(|| panic!("{line:?}"));
    let dmy: Vec<&str> = dmy.split('/').collect();
    assert!(
        dmy.len() == 3 && digits(dmy[0], 2) && dmy[1].len() == 3 && digits(dmy[2], 4),
        "{line:?}"
    );
    let (hms, zone) = hmsz.split_once(' ').unwrap();
    assert!(
        hms.split(':').all(|x| digits(x, 2)) && zone.len() == 5,
        "{line:?}"
    );
    assert_eq!(
        rest,
        format!("\"{request_line}\" {status} {size} \"-\" \"{agent}\""),
        "{line:?}"
    );
}

#[test]
fn error_log_lines_have_gunicorns_shape_and_familiar_messages() {
    let mut s = Server::builder("basic:app").args(["-w", "2"]).start();
    let workers = s.wait_workers(2, T);
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0);
    let log = s.log();
    let lines: Vec<(u32, &str, &str)> = log
        .lines()
        .map(|l| parse_error_line(l).unwrap_or_else(|| panic!("not gunicorn-shaped: {l:?}\n{log}")))
        .collect();
    let master = s.pid;
    let has = |pid: u32, level: &str, msg: &str| {
        lines
            .iter()
            .any(|(p, l, m)| *p == pid && *l == level && *m == msg)
    };
    assert!(
        has(
            master,
            "INFO",
            &format!("Starting ferricorn {}", env!("CARGO_PKG_VERSION"))
        ),
        "{log}"
    );
    assert!(
        has(
            master,
            "INFO",
            &format!("Listening at: http://127.0.0.1:{} ({master})", s.port)
        ),
        "{log}"
    );
    assert!(has(master, "INFO", "Using worker: sync"), "{log}");
    for w in workers {
        assert!(
            has(w, "INFO", &format!("Booting worker with pid: {w}")),
            "{log}"
        );
        assert!(
            has(w, "INFO", &format!("Worker exiting (pid: {w})")),
            "{log}"
        );
    }
    assert!(has(master, "INFO", "Handling signal: term"), "{log}");
    assert_eq!(
        lines.last().map(|l| (l.0, l.2)),
        Some((master, "Shutting down: Master")),
        "{log}"
    );
}

#[test]
fn access_log_default_format_matches_gunicorns() {
    let s = Server::builder("basic:app")
        .args(["--access-logfile", "-"])
        .start();
    let r = s.request(b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: test-agent/1.0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(s.wait_log("\"GET /x?y=1 HTTP/1.1\"", T), "{}", s.log());
    let log = s.log();
    let line = log.lines().find(|l| l.contains("GET /x?y=1")).unwrap();
    check_access_line(line, "GET /x?y=1 HTTP/1.1", 200, 14, "test-agent/1.0");
}

#[test]
fn access_log_file_with_custom_format() {
    let dir = TempDir::new("access");
    let file = dir.join("access.log");
    let s = Server::builder("basic:app")
        .arg("--access-logfile")
        .arg(file.to_string_lossy())
        .args([
            "--access-logformat",
            "%(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %({x-req}i)s %({content-type}o)s %%",
        ])
        .start();
    s.request(b"POST /p?a=b HTTP/1.0\r\nX-Req: r1\r\nContent-Length: 0\r\n\r\n");
    assert!(eventually(T, || std::fs::read_to_string(&file)
        .unwrap_or_default()
        .contains("POST")));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "POST /p a=b HTTP/1.0 200 14 r1 text/plain %"),
        "{text}"
    );
}

#[test]
fn no_access_log_unless_asked() {
    let s = Server::start("basic:app");
    s.request(b"GET /quiet-path HTTP/1.0\r\n\r\n");
    s.request(b"GET /quiet-path HTTP/1.0\r\n\r\n");
    assert!(!s.log().contains("quiet-path"), "{}", s.log());
}

#[test]
fn log_level_filters_the_error_log() {
    let mut s = Server::builder("basic:app")
        .args(["--log-level", "warning"])
        .no_wait()
        .spawn();
    assert_eq!(s.wait_workers(1, T).len(), 1);
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0);
    assert!(!s.log().contains("[INFO]"), "{}", s.log());
    let mut s = Server::builder("basic:app")
        .args(["--log-level", "loud"])
        .no_wait()
        .spawn();
    assert_ne!(s.exit_code(T), 0);
    assert!(s.log().contains("--log-level"), "{}", s.log());
}

#[test]
fn error_logfile_receives_the_log_and_log_file_is_an_alias() {
    for flag in ["--error-logfile", "--log-file"] {
        let dir = TempDir::new("errlog");
        let file = dir.join("error.log");
        let mut s = Server::builder("basic:app")
            .arg(flag)
            .arg(file.to_string_lossy())
            .no_wait()
            .spawn();
        assert!(eventually(T, || std::fs::read_to_string(&file)
            .unwrap_or_default()
            .contains("Booting worker")));
        s.signal(libc::SIGTERM);
        assert_eq!(s.exit_code(T), 0);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("Shutting down: Master"), "{text}");
        assert!(
            !s.log().contains("Starting ferricorn"),
            "{flag}: logged to stderr too: {}",
            s.log()
        );
    }
}

#[test]
fn capture_output_sends_the_apps_prints_to_the_error_log() {
    let dir = TempDir::new("capture");
    let file = dir.join("error.log");
    let s = Server::builder("foundation:app")
        .arg("--error-logfile")
        .arg(file.to_string_lossy())
        .arg("--capture-output")
        .no_wait()
        .spawn();
    assert!(eventually(T, || std::fs::read_to_string(&file)
        .unwrap_or_default()
        .contains("Listening at")));
    let text = std::fs::read_to_string(&file).unwrap();
    let port: u16 = listening_port(&text).expect("a 'Listening at' line");
    let addr = format!("127.0.0.1:{port}");
    assert!(eventually(T, || try_request(
        &addr,
        b"GET /print HTTP/1.0\r\n\r\n",
        T
    )
    .map(|r| r.status == 200)
    .unwrap_or(false)));
    assert!(eventually(T, || std::fs::read_to_string(&file)
        .unwrap_or_default()
        .contains("printed-by-the-app")));
    assert!(!s.log().contains("printed-by-the-app"));
}

#[test]
fn app_exception_is_logged_with_its_traceback() {
    let s = Server::start("basic:boom");
    assert_eq!(s.get("/boom").status, 500);
    assert!(
        s.wait_log("RuntimeError: the app failed on purpose", T),
        "{}",
        s.log()
    );
    let log = s.log();
    let err = log
        .lines()
        .find(|l| l.contains("[ERROR]"))
        .unwrap_or_else(|| panic!("no ERROR line: {log}"));
    assert!(parse_error_line(err).is_some(), "{err}");
}
