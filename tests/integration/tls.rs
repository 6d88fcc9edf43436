//! TLS (`--certfile`): a PKI made here with rcgen, real clients (Python's
//! ssl module through tests/apps/tls_client.py, and curl), real handshakes.

use crate::harness::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SerialNumber};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A CA, and files for certificates it signs, in a temp dir.
struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {tag}"));
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let dir = TempDir::new(tag);
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A leaf for `localhost` with serial `serial`, as NAME.pem / NAME.key.
    fn leaf(&self, name: &str, serial: u64) -> (PathBuf, PathBuf) {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.serial_number = Some(SerialNumber::from(serial));
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca).unwrap();
        let (c, k) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

fn python() -> PathBuf {
    venv()
        .map(|v| v.join("bin/python"))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Run tls_client.py; its JSON answer as text.
fn client(port: u16, ca: &Path, extra: &[&str]) -> String {
    let out = Command::new(python())
        .arg(apps_dir().join("tls_client.py"))
        .arg(port.to_string())
        .arg(ca)
        .args(extra)
        .output()
        .expect("run tls_client.py");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn tls_server(pki: &Pki, extra: &[&str]) -> Server {
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let mut s = Server::builder("tls_app:app")
        .args(["--certfile"])
        .arg(cert.display().to_string())
        .arg("--keyfile")
        .arg(key.display().to_string())
        .args(extra.iter().copied())
        .with_venv()
        .no_wait()
        .start();
    wait_tls_ready(&mut s, pki);
    s
}

fn wait_tls_ready(s: &mut Server, pki: &Pki) {
    let ca = pki.path("ca.pem");
    assert!(
        eventually(Duration::from_secs(30), || client(s.port, &ca, &[])
            .contains("\"ok\": 1")),
        "TLS server not ready; log:\n{}",
        s.log()
    );
}

fn have_curl() -> bool {
    Command::new("curl").arg("--version").output().is_ok()
}

fn curl(port: u16, ca: &Path, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(args)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn serves_https(mode: &[&str]) {
    let pki = Pki::new("tls-basic");
    pki.leaf("server", 1);
    let mut args = vec!["-w", "1"];
    args.extend_from_slice(mode);
    let s = tls_server(&pki, &args);
    assert!(
        s.log().contains("Listening at: https://127.0.0.1:"),
        "{}",
        s.log()
    );
    let ca = pki.path("ca.pem");
    let r = client(s.port, &ca, &[]);
    assert!(r.contains("\"version\": \"TLSv1.3\""), "{r}");
    assert!(r.contains("\"alpn\": \"http/1.1\""), "{r}");
    assert!(r.contains("\"body\": \"https on\""), "{r}");
    let r = client(s.port, &ca, &["--max", "TLSv1_2"]);
    assert!(r.contains("\"version\": \"TLSv1.2\""), "{r}");
    assert!(r.contains("ECDHE-ECDSA-"), "{r}");
    // Keep-alive: 50 requests on one TLS connection.
    let r = client(s.port, &ca, &["--keepalive", "--count", "50"]);
    assert!(r.contains("\"ok\": 50, \"failed\": 0"), "{r}");
    // No client certificate asked for: none in the environ.
    let r = client(s.port, &ca, &["--path", "/cert"]);
    assert!(r.contains("\"body\": \"none\""), "{r}");

    // Garbage instead of a ClientHello: closed; the worker lives.
    let pids = s.worker_pids();
    let mut c = connect(&s.addr());
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP answered over TLS: {got:?}"
    );
    // Clients stalled mid-handshake hold a descriptor each, not the worker.
    let stalled: Vec<_> = (0..20)
        .map(|_| {
            let mut c = connect(&s.addr());
            c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            c
        })
        .collect();
    let t = Instant::now();
    let r = client(s.port, &ca, &[]);
    assert!(r.contains("\"ok\": 1"), "{r}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(stalled);
    assert_eq!(s.worker_pids(), pids, "a worker died; log:\n{}", s.log());

    if have_curl() {
        let url = format!("https://localhost:{}/", s.port);
        assert_eq!(curl(s.port, &ca, &[&url]), "https on");
        // A body up, a file (wsgi.file_wrapper: read + encrypt, no sendfile) down.
        let body = "x".repeat(300_000);
        let upload = pki.path("upload.txt");
        std::fs::write(&upload, &body).unwrap();
        let echo = curl(
            s.port,
            &ca,
            &[
                "--data-binary",
                &format!("@{}", upload.display()),
                &format!("https://localhost:{}/echo", s.port),
            ],
        );
        assert!(
            echo == body,
            "echo of {} bytes came back as {}",
            body.len(),
            echo.len()
        );
        let file = curl(
            s.port,
            &ca,
            &[&format!("https://localhost:{}/file", s.port)],
        );
        let want = std::fs::read_to_string(apps_dir().join("tls_app.py")).unwrap();
        assert_eq!(file, want);
        let v = curl(
            s.port,
            &ca,
            &[
                "--http1.1",
                "-w",
                "%{http_version}",
                "-o",
                "/dev/null",
                &url,
            ],
        );
        assert_eq!(v, "1.1");
    }
}

#[test]
fn https_with_python_ssl_and_curl_sync_worker() {
    serves_https(&[]);
}

#[test]
fn https_with_python_ssl_and_curl_threads() {
    serves_https(&["--threads", "4"]);
}

#[test]
fn client_certificates_accepted_and_refused() {
    let pki = Pki::new("tls-client");
    pki.leaf("server", 1);
    let (cc, ck) = pki.leaf("client", 7);
    let other = Pki::new("tls-other");
    let (oc, ok) = other.leaf("intruder", 9);
    let ca = pki.path("ca.pem");
    let (cc, ck, oc, ok) = (
        cc.display().to_string(),
        ck.display().to_string(),
        oc.display().to_string(),
        ok.display().to_string(),
    );
    let mut s = Server::builder("tls_app:app")
        .args(["-w", "1", "--cert-reqs", "2", "--ca-certs"])
        .arg(ca.display().to_string())
        .arg("--certfile")
        .arg(pki.path("server.pem").display().to_string())
        .arg("--keyfile")
        .arg(pki.path("server.key").display().to_string())
        .no_wait()
        .start();
    assert!(
        eventually(Duration::from_secs(30), || client(
            s.port,
            &ca,
            &["--cert", &cc, "--key", &ck, "--path", "/cert"]
        )
        .contains("\"ok\": 1")),
        "log:\n{}",
        s.log()
    );
    let r = client(
        s.port,
        &ca,
        &["--cert", &cc, "--key", &ck, "--path", "/cert"],
    );
    assert!(r.contains("-----BEGIN CERTIFICATE-----"), "{r}");
    let want = std::fs::read_to_string(&cc).unwrap().replace('\r', "");
    assert!(
        r.replace("\\n", "\n").contains(want.trim()),
        "SSL_CLIENT_CERT is not the client's certificate: {r}"
    );
    let r = client(s.port, &ca, &[]);
    assert!(
        r.contains("\"ok\": 0, \"failed\": 1"),
        "no certificate accepted: {r}"
    );
    let r = client(s.port, &ca, &["--cert", &oc, "--key", &ok]);
    assert!(
        r.contains("\"ok\": 0, \"failed\": 1"),
        "foreign certificate accepted: {r}"
    );
    let r = client(s.port, &ca, &["--cert", &cc, "--key", &ck]);
    assert!(r.contains("\"ok\": 1"), "{r}");
    let _ = s.exit_code_after_term();
}

trait Term {
    fn exit_code_after_term(&mut self) -> i32;
}

impl Term for Server {
    fn exit_code_after_term(&mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.exit_code(Duration::from_secs(20))
    }
}

/// Start with `args`; expect a non-zero exit whose log has `needle` on one line.
fn refuses(args: &[String], needle: &str) {
    let mut s = Server::builder("tls_app:app")
        .args(args.iter().cloned())
        .no_wait()
        .spawn();
    let code = s.exit_code(Duration::from_secs(30));
    let log = s.log();
    assert_ne!(code, 0, "started with {args:?}; log:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("[ERROR]") && l.contains(needle)),
        "no error line with {needle:?}; log:\n{log}"
    );
}

#[test]
fn start_errors_name_the_file() {
    let pki = Pki::new("tls-errors");
    let (c, k) = pki.leaf("server", 1);
    let (_, k2) = pki.leaf("other", 2);
    let (c, k, k2) = (
        c.display().to_string(),
        k.display().to_string(),
        k2.display().to_string(),
    );
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let missing = pki.path("nope.pem").display().to_string();
    refuses(
        &s(&["--certfile", &missing, "--keyfile", &k]),
        &format!("cannot read certfile {missing}: no such file"),
    );
    refuses(
        &s(&["--certfile", &c, "--keyfile", &k2]),
        &format!("keyfile {k2} does not match the certificate in certfile {c}"),
    );
    let enc = pki.path("enc.key");
    std::fs::write(
        &enc,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let enc = enc.display().to_string();
    refuses(
        &s(&["--certfile", &c, "--keyfile", &enc]),
        &format!("keyfile {enc} is encrypted"),
    );
    let empty_ca = pki.path("empty-ca.pem");
    std::fs::write(&empty_ca, "no certificates here\n").unwrap();
    let empty_ca = empty_ca.display().to_string();
    refuses(
        &s(&[
            "--certfile",
            &c,
            "--keyfile",
            &k,
            "--cert-reqs",
            "2",
            "--ca-certs",
            &empty_ca,
        ]),
        &format!("ca_certs {empty_ca} holds no certificate"),
    );
    refuses(
        &s(&["--certfile", &c, "--keyfile", &k, "--cert-reqs", "2"]),
        "cert_reqs 2 asks for client certificates but ca_certs is not set",
    );
    refuses(
        &s(&["--certfile", &c, "--keyfile", &k, "--ciphers", "AES256-SHA"]),
        "ciphers: AES256-SHA is not a cipher suite",
    );
    refuses(
        &s(&["--certfile", &c, "--keyfile", &k, "--ciphers", "DHE"]),
        "selects no cipher suite",
    );
}

#[test]
fn hup_rotates_the_certificate_under_load_and_keeps_it_on_a_bad_one() {
    let pki = Pki::new("tls-rotate");
    pki.leaf("server", 1);
    let mut s = tls_server(&pki, &["-w", "2"]);
    let ca = pki.path("ca.pem");
    let port = s.port;
    let load = {
        let ca = ca.clone();
        std::thread::spawn(move || client(port, &ca, &["--count", "0", "--seconds", "6"]))
    };
    std::thread::sleep(Duration::from_millis(800));
    // A new certificate (serial 2) in place of the old one, then HUP.
    let (c2, k2) = pki.leaf("next", 2);
    std::fs::copy(&c2, pki.path("server.pem")).unwrap();
    std::fs::copy(&k2, pki.path("server.key")).unwrap();
    s.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(20), || client(port, &ca, &[])
            .contains("\"serials\": [\"02\"]")),
        "new connections never got the new certificate; log:\n{}",
        s.log()
    );
    let r = load.join().unwrap();
    assert!(
        r.contains("\"failed\": 0"),
        "requests failed across the rotation: {r}; log:\n{}",
        s.log()
    );
    assert!(r.contains("\"01\"") && r.contains("\"02\""), "{r}");

    // A broken certificate on HUP: logged, and the current one keeps serving.
    std::fs::write(pki.path("server.pem"), "garbage\n").unwrap();
    s.signal(libc::SIGHUP);
    assert!(
        s.wait_log(
            "the certificate in use keeps serving",
            Duration::from_secs(20)
        ),
        "log:\n{}",
        s.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let r = client(port, &ca, &["--count", "5"]);
    assert!(
        r.contains("\"ok\": 5") && r.contains("\"serials\": [\"02\"]"),
        "{r}; log:\n{}",
        s.log()
    );
    let _ = s.exit_code_after_term();
}

#[test]
fn ssl_context_hook_settings_reach_rustls() {
    let pki = Pki::new("tls-hook");
    pki.leaf("server", 1);
    let conf = pki.path("conf.py");
    std::fs::write(
        &conf,
        format!(
            "import ssl\ncertfile = {:?}\nkeyfile = {:?}\n\ndef ssl_context(conf, default_ssl_context_factory):\n    context = default_ssl_context_factory()\n    context.minimum_version = ssl.TLSVersion.TLSv1_3\n    return context\n",
            pki.path("server.pem").display().to_string(),
            pki.path("server.key").display().to_string()
        ),
    )
    .unwrap();
    let mut s = Server::builder("tls_app:app")
        .args(["-w", "1", "-c"])
        .arg(conf.display().to_string())
        .no_wait()
        .start();
    wait_tls_ready(&mut s, &pki);
    let ca = pki.path("ca.pem");
    let r = client(s.port, &ca, &["--max", "TLSv1_2"]);
    assert!(
        r.contains("\"ok\": 0, \"failed\": 1"),
        "TLS 1.2 accepted: {r}"
    );
    let r = client(s.port, &ca, &[]);
    assert!(r.contains("\"version\": \"TLSv1.3\""), "{r}");
    let _ = s.exit_code_after_term();

    // What rustls cannot do is refused at start, by name.
    std::fs::write(
        &conf,
        format!(
            "certfile = {:?}\nkeyfile = {:?}\n\ndef ssl_context(conf, factory):\n    context = factory()\n    context.sni_callback = lambda *a: None\n    return context\n",
            pki.path("server.pem").display().to_string(),
            pki.path("server.key").display().to_string()
        ),
    )
    .unwrap();
    refuses(
        &["-c".to_string(), conf.display().to_string()],
        "ssl_context hook uses sni_callback, which ferricorn cannot apply",
    );
}

#[test]
fn https_with_python_ssl_and_curl_gevent() {
    serves_https(&["-k", "gevent"]);
}

#[test]
fn a_key_only_root_can_read_serves_workers_running_as_nobody() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let group = if Command::new("getent")
        .args(["group", "nogroup"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        "nogroup"
    } else {
        "nobody"
    };
    let pki = Pki::new("tls-root-key");
    let (_, key) = pki.leaf("server", 1);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let s = tls_server(&pki, &["-w", "1", "--preload", "-u", "nobody", "-g", group]);
    let w = s.wait_workers(1, Duration::from_secs(15))[0];
    assert!(
        !proc_status(w, "Uid:").unwrap().starts_with("0\t"),
        "worker still root"
    );
    let r = client(s.port, &pki.path("ca.pem"), &["--count", "3"]);
    assert!(r.contains("\"ok\": 3"), "{r}; log:\n{}", s.log());
}

#[test]
fn a_usr2_upgrade_keeps_serving_tls() {
    use crate::upgrade_util::{usr2_and_wait_ready, wait_alone, Deploy};
    let pki = Pki::new("tls-usr2");
    let (c, k) = pki.leaf("server", 1);
    let d = Deploy::new("tls-usr2-deploy");
    let (c, k) = (c.display().to_string(), k.display().to_string());
    let args = [
        "-b",
        "127.0.0.1:0",
        "-w",
        "1",
        "--upgrade-mode",
        "auto",
        "--certfile",
        &c,
        "--keyfile",
        &k,
        "tls_app:app",
    ];
    let mut s = Server::spawn_command(d.command(&apps_dir(), &args));
    s.await_port(Duration::from_secs(20));
    wait_tls_ready(&mut s, &pki);
    let old = s.pid;
    let new = usr2_and_wait_ready(&s, &d.pidfile, old);
    wait_alone(new, old);
    let r = client(s.port, &pki.path("ca.pem"), &["--count", "3"]);
    assert!(r.contains("\"ok\": 3"), "{r}; log:\n{}", s.log());
    assert!(
        s.log()
            .contains(&format!("Listening at: https://127.0.0.1:{}", s.port)),
        "{}",
        s.log()
    );
}
