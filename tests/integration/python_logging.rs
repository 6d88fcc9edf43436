//! Logging configured as gunicorn users configure it: logconfig_dict,
//! logconfig (ini), logconfig_json through Python's logging with gunicorn's
//! atoms as `record.args`; HUP and USR1; syslog sent to receivers bound
//! here on loopback; logger_class; `import gunicorn` to rename the server.

use crate::harness::*;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A formatter class defined in the config file, reading the atoms dict
/// the way formatters written for gunicorn do.
const JSON_CONFIG: &str = r#"
import json, logging, sys

def make_generic():
    # A factory function (not a class) and a stream object (not "ext://"):
    # dictConfig takes both, so must ferricorn.
    return logging.Formatter("%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
                             "[%Y-%m-%d %H:%M:%S %z]")

class JsonFormatter(logging.Formatter):
    def format(self, record):
        a = record.args
        return json.dumps({
            "logger": record.name, "h": a["h"], "s": a["s"], "m": a["m"], "U": a["U"],
            "q": a["q"], "H": a["H"], "B": a["B"], "b": a["b"], "D": a["D"],
            "ua": a["{User-Agent}i"], "missing": a["{x-none}i"], "ct": a["{content-type}o"],
            "msg": record.getMessage(), "types": [type(a["D"]).__name__, type(a["s"]).__name__],
        }, sort_keys=True)

workers = 1
logconfig_dict = {
    "formatters": {
        "json": {"()": JsonFormatter},
        "generic": {"()": make_generic},
    },
    "handlers": {
        "access_file": {"class": "logging.FileHandler", "filename": ACCESS, "formatter": "json"},
        "console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": sys.stderr},
    },
    "loggers": {
        "gunicorn.access": {"handlers": ["access_file"], "level": "INFO", "propagate": False},
    },
}
"#;

#[test]
fn logconfig_dict_with_a_formatter_class_from_the_config_file_gets_gunicorns_atoms() {
    let dir = TempDir::new("pylog-dict");
    let access = dir.join("access.json");
    let conf = dir.join("conf.py");
    std::fs::write(
        &conf,
        format!("ACCESS = {:?}\n{JSON_CONFIG}", access.to_string_lossy()),
    )
    .unwrap();
    let mut s = Server::builder("basic:app")
        .arg("-c")
        .arg(conf.to_string_lossy())
        .start();
    let r = s.request(
        b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: agent \"7\"\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(
        eventually(T, || read(&access).contains("/a/b")),
        "{}",
        s.log()
    );
    let line = read(&access)
        .lines()
        .find(|l| l.contains("/a/b"))
        .unwrap()
        .to_string();
    assert!(line.contains(r#""msg": "127.0.0.1 - - ["#), "{line}");
    for part in [
        r#""logger": "gunicorn.access""#,
        r#""h": "127.0.0.1""#,
        r#""s": "200""#,
        r#""m": "GET""#,
        r#""U": "/a/b""#,
        r#""q": "x=1""#,
        r#""H": "HTTP/1.1""#,
        r#""B": 14"#,
        r#""b": "14""#,
        r#""ua": "agent \\\"7\\\"""#,
        r#""missing": "-""#,
        r#""ct": "text/plain""#,
        r#""types": ["int", "str"]"#,
        r#"\"GET /a/b?x=1 HTTP/1.1\" 200 14 \"-\" \"agent \\\"7\\\"\""#,
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
    // The error lines went to gunicorn.error with gunicorn's default
    // handler (stderr) and format; no warning about the setting.
    let log = s.log();
    assert!(log.contains("[INFO] Booting worker with pid"), "{log}");
    assert!(!log.contains("[WARNING]"), "{log}");
    assert!(
        !log.contains("/a/b"),
        "access line went elsewhere too: {log}"
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0);
}

const INI: &str = r#"
[loggers]
keys=root,access,error

[handlers]
keys=access_file,error_stream

[formatters]
keys=plain,generic

[logger_root]
level=INFO
handlers=error_stream

[logger_access]
level=INFO
handlers=access_file
propagate=0
qualname=gunicorn.access

[logger_error]
level=DEBUG
handlers=error_stream
propagate=0
qualname=gunicorn.error

[handler_access_file]
class=FileHandler
formatter=plain
args=('%(here)s/access.log',)

[handler_error_stream]
class=StreamHandler
formatter=generic
args=(sys.stderr,)

[formatter_plain]
format=%(levelname)s %(name)s %(message)s

[formatter_generic]
format=ini %(levelname)s %(message)s
"#;

#[test]
fn logconfig_ini_file_configures_both_loggers_and_usr1_reopens_its_files() {
    let dir = TempDir::new("pylog-ini");
    let ini = dir.join("logging.ini");
    std::fs::write(&ini, INI).unwrap();
    let access = dir.join("access.log");
    let s = Server::builder("basic:app")
        .arg("--log-config")
        .arg(ini.to_string_lossy())
        .args(["--access-logformat", "%(m)s %(U)s %(s)s %(B)s"])
        .args(["--log-level", "warning"])
        .start();
    s.get("/ini-path");
    assert!(eventually(T, || read(&access).contains("/ini-path")));
    assert!(
        read(&access)
            .lines()
            .any(|l| l == "INFO gunicorn.access GET /ini-path 200 14"),
        "{}",
        read(&access)
    );
    // The ini's error logger level decides, not --log-level (as in gunicorn).
    let log = s.log();
    assert!(log.contains("ini INFO Booting worker with pid"), "{log}");

    // logrotate: the file moves away, USR1, the handlers reopen the path.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&access, &rotated).unwrap();
    s.signal(libc::SIGUSR1);
    assert!(s.wait_log("Handling signal: usr1", T), "{}", s.log());
    assert!(eventually(T, || {
        s.get("/after-rotate");
        read(&access).contains("/after-rotate")
    }));
    assert!(!read(&rotated).contains("/after-rotate"));
}

#[test]
fn broken_logging_configs_stop_the_server_naming_the_file() {
    let dir = TempDir::new("pylog-broken");
    let json = dir.join("log.json");
    std::fs::write(&json, "{\n  \"version\": 1,\n  \"loggers\": [oops\n}\n").unwrap();
    let mut s = Server::builder("basic:app")
        .arg("--log-config-json")
        .arg(json.to_string_lossy())
        .no_wait()
        .spawn();
    assert_ne!(s.exit_code(T), 0);
    let log = s.log();
    assert!(
        log.contains(&format!("logconfig_json {}, line 3", json.display())),
        "{log}"
    );
    assert!(!log.contains("Booting worker"), "{log}");

    let ini = dir.join("bad.ini");
    std::fs::write(&ini, "[loggers]\nkeys=root\n\n[handlers]\nkeys=h\n\n[formatters]\nkeys=\n\n[logger_root]\nhandlers=h\n\n[handler_h]\nclass=NoSuchHandler\nargs=()\n").unwrap();
    let mut s = Server::builder("basic:app")
        .arg("--log-config")
        .arg(ini.to_string_lossy())
        .no_wait()
        .spawn();
    assert_ne!(s.exit_code(T), 0);
    let log = s.log();
    assert!(
        log.contains(&format!("logconfig {}:", ini.display())) && log.contains("NoSuchHandler"),
        "{log}"
    );

    let mut s = Server::builder("basic:app")
        .args(["--log-config", "/nonexistent/logging.ini"])
        .no_wait()
        .spawn();
    assert_ne!(s.exit_code(T), 0);
    assert!(
        s.log()
            .contains("logconfig /nonexistent/logging.ini: No such file"),
        "{}",
        s.log()
    );
}

fn dict_config(access: &std::path::Path, format: &str) -> String {
    format!(
        r#"
workers = 1
logconfig_dict = {{
    "root": {{"level": "INFO", "handlers": ["e"]}},
    "formatters": {{"tagged": {{"format": {format:?}}}, "generic": {{"format": "[%(levelname)s] %(message)s"}}}},
    "handlers": {{
        "f": {{"class": "logging.FileHandler", "filename": {:?}, "formatter": "tagged"}},
        "e": {{"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr"}},
    }},
    "loggers": {{
        "gunicorn.access": {{"handlers": ["f"], "level": "INFO", "propagate": False}},
        "gunicorn.error": {{"handlers": ["e"], "level": "INFO", "propagate": False}},
    }},
}}
"#,
        access.to_string_lossy()
    )
}

#[test]
fn hup_applies_an_edited_logging_config_and_keeps_the_old_when_broken() {
    let dir = TempDir::new("pylog-hup");
    let access = dir.join("access.log");
    let conf = dir.join("conf.py");
    std::fs::write(&conf, dict_config(&access, "first %(message)s")).unwrap();
    let s = Server::builder("basic:app")
        .arg("-c")
        .arg(conf.to_string_lossy())
        .args(["--access-logformat", "%(U)s"])
        .start();
    s.get("/one");
    assert!(eventually(T, || read(&access).contains("first /one")));

    std::fs::write(&conf, dict_config(&access, "second %(message)s")).unwrap();
    s.signal(libc::SIGHUP);
    assert!(s.wait_log("Configuration reloaded", T), "{}", s.log());
    assert!(eventually(T, || {
        s.get("/two");
        read(&access).contains("second /two")
    }));

    // A handler class that does not exist: the reload is refused for the
    // logging, which stays as it was, with the reason in the log.
    let broken = dict_config(&access, "third %(message)s")
        .replace("logging.FileHandler", "logging.NoSuchHandler");
    std::fs::write(&conf, broken).unwrap();
    s.signal(libc::SIGHUP);
    assert!(
        s.wait_log("Cannot apply the new logging configuration", T),
        "{}",
        s.log()
    );
    assert!(s.log().contains("NoSuchHandler"), "{}", s.log());
    assert!(s.wait_log_n("Configuration reloaded", 2, T), "{}", s.log());
    assert!(eventually(T, || {
        s.get("/three");
        read(&access).contains("second /three")
    }));
    assert!(!read(&access).contains("third"), "{}", read(&access));
}

fn recv_until(sock: &UdpSocket, needle: &str) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let end = std::time::Instant::now() + T;
    while std::time::Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = m.contains(needle);
            got.push(m);
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn syslog_over_udp_in_gunicorns_layout_with_access_lines() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = rx.local_addr().unwrap().port();
    let s = Server::builder("basic:app")
        .args(["--log-syslog", "--log-syslog-prefix", "shop"])
        .args(["--log-syslog-facility", "local1"])
        .arg(format!("--log-syslog-to=udp://127.0.0.1:{port}"))
        .start();
    let master = s.pid;
    let got = recv_until(&rx, "Listening at");
    // local1 (17) * 8 + info (6) = 142.
    let want = format!(
        "<142>gunicorn.shop.error: [{master}] Listening at: http://127.0.0.1:{} ({master})\0",
        s.port
    );
    assert!(got.contains(&want), "{want:?} not in {got:?}");
    s.get("/via-syslog");
    let got = recv_until(&rx, "/via-syslog");
    let line = got.last().unwrap();
    assert!(
        line.starts_with("<142>gunicorn.shop.access: [")
            && line.contains("] 127.0.0.1 - - [")
            && line.ends_with("\"GET /via-syslog HTTP/1.1\" 200 14 \"-\" \"-\"\0"),
        "{got:?}"
    );
    // Still on stderr as well, and no warning that syslog does nothing.
    assert!(s.log().contains("Listening at"));
    assert!(!s.log().contains("[WARNING]"), "{}", s.log());
}

#[test]
fn syslog_to_a_unix_socket_without_access_lines_when_disabled() {
    let dir = TempDir::new("syslog-unix");
    let path = dir.join("log.sock");
    let rx = UnixDatagram::bind(&path).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut s = Server::builder("basic:app")
        .args(["--log-syslog", "--disable-redirect-access-to-syslog"])
        .arg(format!("--log-syslog-to=unix://{}#dgram", path.display()))
        .start();
    s.get("/not-in-syslog");
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0);
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = rx.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // user (1) * 8 + info (6) = 14; the prefix is proc_name with ':' as '.'.
    let pid = s.pid;
    assert!(
        got.contains(&format!(
            "<14>gunicorn.basic.app.error: [{pid}] Shutting down: Master\0"
        )),
        "{got:?}"
    );
    assert!(
        got.iter().any(|m| m.contains("Booting worker with pid")),
        "{got:?}"
    );
    assert!(!got.iter().any(|m| m.contains("not-in-syslog")), "{got:?}");
}

#[test]
fn unknown_syslog_facility_is_refused_at_start() {
    let mut s = Server::builder("basic:app")
        .args(["--log-syslog", "--log-syslog-facility", "local9"])
        .no_wait()
        .spawn();
    assert_ne!(s.exit_code(T), 0);
    assert!(
        s.log().contains("unknown facility name \"local9\""),
        "{}",
        s.log()
    );
}

const SOFTWARE_APP: &str = r#"
def app(environ, start_response):
    body = environ["SERVER_SOFTWARE"].encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"#;

#[test]
fn import_gunicorn_in_a_config_renames_the_server_without_gunicorn_installed() {
    let dir = TempDir::new("server-name");
    std::fs::write(dir.join("software.py"), SOFTWARE_APP).unwrap();
    std::fs::write(
        dir.join("gunicorn.conf.py"),
        "import gunicorn\ngunicorn.SERVER = 'undisclosed'\ngunicorn.SERVER_SOFTWARE = 'shop/' + gunicorn.__version__.split('.')[0]\nworkers = 1\n",
    )
    .unwrap();
    let s = Server::builder("software:app").cwd(dir.path()).start();
    let r = s.get("/");
    assert_eq!(r.header("server"), Some("undisclosed"), "{}", s.log());
    assert_eq!(r.text(), "shop/0");
    // Unchanged names: ferricorn's own.
    let other = TempDir::new("server-name-plain");
    std::fs::write(other.join("software.py"), SOFTWARE_APP).unwrap();
    let plain = Server::builder("software:app").cwd(other.path()).start();
    let r = plain.get("/");
    assert_eq!(r.header("server"), Some("ferricorn"));
    assert!(r.text().starts_with("ferricorn/"), "{}", r.text());
}

const LOGGER_CLASS_CONFIG: &str = r#"
from gunicorn import glogging

class TaggedLogger(glogging.Logger):
    error_fmt = "tagged %(levelname)s %(message)s"

    def access(self, resp, req, environ, request_time):
        self.error_log.info("ACCESS %s %s %s %d", environ["REQUEST_METHOD"],
                            environ["PATH_INFO"], resp.status, request_time.microseconds >= 0)

logger_class = TaggedLogger
workers = 1
"#;

#[test]
fn logger_class_subclassing_glogging_logger_when_gunicorn_is_installed() {
    let dir = TempDir::new("logger-class");
    let conf = dir.join("conf.py");
    std::fs::write(&conf, LOGGER_CLASS_CONFIG).unwrap();
    let s = Server::builder("basic:app")
        .with_venv()
        .arg("-c")
        .arg(conf.to_string_lossy())
        .start();
    s.get("/classy");
    assert!(
        s.wait_log("tagged INFO ACCESS GET /classy 200 1", T),
        "{}",
        s.log()
    );
    assert!(
        s.log().contains("tagged INFO Booting worker"),
        "{}",
        s.log()
    );

    // Without gunicorn: a clear error at start.
    let mut s = Server::builder("basic:app")
        .args(["--logger-class", "gunicorn.glogging.Logger2"])
        .no_wait()
        .spawn();
    assert_ne!(s.exit_code(T), 0);
    assert!(
        s.log()
            .contains("logger_class gunicorn.glogging.Logger2 needs gunicorn installed"),
        "{}",
        s.log()
    );
}

#[test]
fn python_access_lines_from_request_threads_are_all_written() {
    let dir = TempDir::new("pylog-threads");
    let access = dir.join("access.log");
    let conf = dir.join("conf.py");
    std::fs::write(&conf, dict_config(&access, "%(message)s")).unwrap();
    let s = Server::builder("basic:app")
        .arg("-c")
        .arg(conf.to_string_lossy())
        .args(["--threads", "4", "--access-logformat", "%(U)s %(s)s"])
        .start();
    let n = 40;
    std::thread::scope(|sc| {
        for t in 0..4 {
            let s = &s;
            sc.spawn(move || {
                for i in 0..n / 4 {
                    assert_eq!(s.get(&format!("/t{t}-{i}")).status, 200);
                }
            });
        }
    });
    assert!(eventually(T, || read(&access)
        .lines()
        .filter(|l| l.starts_with("/t"))
        .count()
        == n));
    let text = read(&access);
    for t in 0..4 {
        for i in 0..n / 4 {
            assert!(text.contains(&format!("/t{t}-{i} 200\n")), "{text}");
        }
    }
}

#[test]
fn syslog_over_tcp_frames_messages_with_nul() {
    use std::io::Read;
    let rx = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    let s = Server::builder("basic:app")
        .args(["--log-syslog", "--log-syslog-facility", "daemon"])
        .arg(format!("--log-syslog-to=tcp://127.0.0.1:{port}"))
        .start();
    let (mut conn, _) = rx.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.get("/over-tcp");
    let mut got = Vec::new();
    let end = std::time::Instant::now() + T;
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < end && !String::from_utf8_lossy(&got).contains("/over-tcp") {
        if let Ok(n) = conn.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    }
    let text = String::from_utf8_lossy(&got);
    let msgs: Vec<&str> = text.split('\0').collect();
    // daemon (3) * 8 + info (6) = 30.
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("<30>gunicorn.basic.app.error: [") && m.contains("Listening at")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("<30>gunicorn.basic.app.access: [")
                && m.contains("GET /over-tcp")),
        "{msgs:?}"
    );
}
