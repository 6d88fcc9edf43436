//! Server hooks as public gunicorn.conf.py files write them, through the
//! real binary: one test per hook checking the objects it is given (the
//! attributes and methods of gunicorn's Arbiter, Worker, Config, Request
//! and Response that hook code uses) and the moment it runs, plus one test
//! combining what real configuration files do.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

/// The start of every config here: `record(...)` appends one line to $HOOK_LOG.
const PRELUDE: &str = "\
import os, socket, sys
wsgi_app = 'hooked:app'
workers = 1
graceful_timeout = 5

def record(*parts):
    with open(os.environ['HOOK_LOG'], 'a') as f:
        f.write(' '.join(str(p) for p in parts) + '\\n')
";

struct Hooked {
    dir: TempDir,
    log: PathBuf,
}

impl Hooked {
    fn new(tag: &str, body: &str) -> Hooked {
        let dir = TempDir::new(tag);
        std::fs::write(dir.join("gunicorn.conf.py"), format!("{PRELUDE}{body}")).unwrap();
        let log = dir.join("hooks.log");
        Hooked { dir, log }
    }

    fn builder(&self) -> Builder {
        Server::builder("")
            .cwd(self.dir.path())
            .args(["--pythonpath", apps_dir().to_str().unwrap()])
            .env("HOOK_LOG", self.log.to_string_lossy().to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("GUNICORN_CMD_ARGS")
    }

    fn start(&self) -> Server {
        self.builder().start()
    }

    /// The hook log's lines in the order written.
    fn lines(&self) -> Vec<String> {
        read_lines(&self.log)
    }

    fn starting(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    fn wait_line(&self, line: &str, s: &Server) {
        assert!(
            eventually(T, || self.lines().iter().any(|l| l == line)),
            "no {line:?} in {:#?}\nlog:\n{}",
            self.lines(),
            s.log()
        );
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn stop(mut s: Server) -> String {
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
    s.log()
}

#[test]
fn on_starting_runs_before_binding_and_cfg_set_validates_and_takes_effect() {
    // The file's bind cannot be bound: the server only starts if the bind
    // on_starting sets is the one used.
    let h = Hooked::new(
        "on-starting",
        r#"bind = 'unix:/nonexistent-ferricorn-dir/never.sock'
def late_post_fork(server, worker):
    record('late_post_fork', worker.age)
def on_starting(server):
    server.log.info('on_starting hook ran')
    record('on_starting', len(server.LISTENERS), server.num_workers, server.cfg.bind)
    server.cfg.set('bind', ['127.0.0.1:0'])
    server.cfg.set('keepalive', '7')
    server.cfg.set('raw_paste_global_conf', [os.environ.get('PASTE_VAR', 'FOO=bar')])
    record('keepalive', repr(server.cfg.keepalive), server.cfg.settings['keepalive'].get())
    for name, value in [('workers', 'many'), ('workers', -1), ('timeout', [1]), ('loglevel', 'loud')]:
        try:
            server.cfg.set(name, value)
        except ValueError as e:
            record('refused', name, isinstance(e, TypeError), str(e).split(':')[0])
    try:
        server.cfg.set('no_such_setting', 1)
    except AttributeError as e:
        record('unknown', e)
    try:
        server.cfg.workers = 3
    except AttributeError as e:
        record('assign', e)
    record('address', server.cfg.address, server.cfg.worker_class_str)
    server.cfg.set('post_fork', late_post_fork)
    try:
        server.cfg.set('pre_fork', lambda worker: None)
    except TypeError as e:
        record('refused', str(e).split(':')[0], 'takes 1 positional argument' in str(e))
"#,
    );
    let mut s = h.builder().bind("").spawn();
    s.await_port(T);
    s.wait_ready(T);
    let log = s.log();
    let ran = log
        .find("on_starting hook ran")
        .expect("on_starting logged");
    let listening = log.find("Listening at: http://127.0.0.1:").expect(&log);
    assert!(ran < listening, "on_starting runs before binding:\n{log}");
    assert!(
        log.contains("raw_paste_global_conf is set (by a hook) but has no effect in ferricorn"),
        "{log}"
    );
    assert_eq!(
        h.lines(),
        [
            "on_starting 0 1 ['unix:/nonexistent-ferricorn-dir/never.sock']",
            "keepalive 7 7",
            "refused workers True workers",
            "refused workers True workers",
            "refused timeout True timeout",
            "refused loglevel True loglevel",
            "unknown No configuration setting for: no_such_setting",
            "assign Invalid access!",
            "address [('127.0.0.1', 0)] sync",
            "refused pre_fork True",
            "late_post_fork 1",
        ],
        "{log}"
    );
    stop(s);
}

#[test]
fn a_cfg_set_that_raises_in_on_starting_stops_with_file_and_line() {
    let h = Hooked::new(
        "on-starting-raise",
        r#"def on_starting(server):
    server.cfg.set('workers', 'many')
"#,
    );
    let mut s = h.builder().spawn();
    assert_eq!(s.exit_code(T), 1, "{}", s.log());
    let log = s.log();
    assert!(
        log.contains("gunicorn.conf.py\", line 10, in on_starting"),
        "names the file and line: {log}"
    );
    assert!(
        log.contains("SettingError: workers: 'many' is not valid here: expected an integer"),
        "{log}"
    );
    assert!(!log.contains("Listening at"), "{log}");
}

#[test]
fn when_ready_sees_the_listeners_and_the_server() {
    let h = Hooked::new(
        "when-ready",
        r#"workers = 2
def when_ready(server):
    l = server.LISTENERS[0]
    record('listener', str(l), l.getsockname()[1] == l.cfg_addr[1], l.FAMILY == socket.AF_INET,
           l.sock.type == socket.SOCK_STREAM, type(l.fileno()).__name__)
    record('server', server.pid == os.getpid(), server.num_workers, len(server.WORKERS),
           server.reexec_pid, server.master_pid, server.proc_name, server.app.cfg is server.cfg)
    # As in gunicorn, workers forked from now on set this environment.
    server.cfg.set('raw_env', ['LATE=set in when_ready'])
"#,
    );
    let s = h.start();
    assert_eq!(s.get_text("/env/LATE"), "set in when_ready");
    assert_eq!(
        h.lines(),
        [
            format!("listener http://127.0.0.1:{} True True True int", s.port),
            "server True 2 0 0 0 hooked:app True".to_string(),
        ],
        "{}",
        s.log()
    );
    stop(s);
}

#[test]
fn nworkers_changed_at_start_and_on_every_change_and_server_num_workers_sets_the_count() {
    let h = Hooked::new(
        "nworkers",
        r#"workers = 2
def nworkers_changed(server, new, old):
    record('nworkers_changed', new, old)
def on_reload(server):
    server.num_workers = 3
"#,
    );
    let s = h.start();
    assert_eq!(s.wait_workers(2, T).len(), 2);
    s.signal(libc::SIGTTIN);
    h.wait_line("nworkers_changed 3 2", &s);
    assert_eq!(s.wait_workers(3, T).len(), 3, "{}", s.log());
    s.signal(libc::SIGTTOU);
    h.wait_line("nworkers_changed 2 3", &s);
    assert_eq!(s.wait_workers(2, T).len(), 2, "{}", s.log());
    // HUP: gunicorn's reload() sets the count again (2, 2), then on_reload
    // sets server.num_workers, which calls the hook and is the new target.
    s.signal(libc::SIGHUP);
    h.wait_line("nworkers_changed 3 2", &s);
    assert!(eventually(T, || h.lines().len() == 5), "{:?}", h.lines());
    assert_eq!(
        h.lines(),
        [
            "nworkers_changed 2 None",
            "nworkers_changed 3 2",
            "nworkers_changed 2 3",
            "nworkers_changed 2 2",
            "nworkers_changed 3 2",
        ]
    );
    assert_eq!(s.wait_workers(3, T).len(), 3, "{}", s.log());
    stop(s);
}

/// The pids in the lines starting with `prefix`, at word `at`.
fn pids(lines: &[String], prefix: &str, at: usize) -> Vec<u32> {
    let mut v: Vec<u32> = lines
        .iter()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.split(' ').nth(at)?.parse().ok())
        .collect();
    v.sort();
    v
}

#[test]
fn fork_and_exit_hooks_see_one_worker_object_and_child_exit_runs_for_every_exit() {
    let h = Hooked::new(
        "lifecycle",
        r#"workers = 2
def pre_fork(server, worker):
    record('pre_fork', worker.age, worker.pid, worker.ppid == os.getpid(), worker.booted, worker.alive, worker.nr)
    worker.tag = 'from-pre_fork'
def post_fork(server, worker):
    record('post_fork', os.getpid(), worker.pid == os.getpid(), worker.ppid == os.getppid(), worker.tag)
def worker_exit(server, worker):
    record('worker_exit', os.getpid(), worker.pid == os.getpid(), worker.alive, worker.tag)
def child_exit(server, worker):
    record('child_exit', worker.pid, worker.alive, worker.pid in server.WORKERS, worker.tag, server.pid == os.getpid())
def on_exit(server):
    record('on_exit', len(server.WORKERS))
"#,
    );
    let mut s = h.start();
    let first = s.wait_workers(2, T);
    assert_eq!(first.len(), 2);
    // Killed from outside: child_exit (a killed worker runs no worker_exit).
    unsafe { libc::kill(first[0] as i32, libc::SIGKILL) };
    h.wait_line(
        &format!("child_exit {} False False from-pre_fork True", first[0]),
        &s,
    );
    assert!(eventually(T, || h.starting("post_fork").len() == 3));
    // Retired by TTOU: worker_exit in the worker, child_exit in the master.
    s.signal(libc::SIGTTOU);
    assert!(
        eventually(T, || h.starting("child_exit").len() == 2),
        "{:?}",
        h.lines()
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
    let lines = h.lines();
    assert_eq!(
        h.starting("pre_fork"),
        [
            "pre_fork 1 [booting] True False True 0",
            "pre_fork 2 [booting] True False True 0",
            "pre_fork 3 [booting] True False True 0",
        ]
    );
    assert!(h
        .starting("post_fork")
        .iter()
        .all(|l| l.ends_with(" True True from-pre_fork")));
    let forked = pids(&lines, "post_fork", 1);
    assert_eq!(forked.len(), 3, "{lines:#?}");
    assert_eq!(pids(&lines, "child_exit", 1), forked, "{lines:#?}");
    let mut exited = forked.clone();
    exited.retain(|p| *p != first[0]);
    assert_eq!(pids(&lines, "worker_exit", 1), exited, "{lines:#?}");
    assert!(h
        .starting("worker_exit")
        .iter()
        .all(|l| l.ends_with(" True False from-pre_fork")));
    assert_eq!(
        lines.last().map(String::as_str),
        Some("on_exit 0"),
        "on_exit is last"
    );
}

#[test]
fn a_worker_that_fails_to_boot_still_runs_worker_exit_and_child_exit() {
    let h = Hooked::new(
        "boot-fail-exit",
        r#"def post_worker_init(worker):
    raise RuntimeError('no init')
def worker_exit(server, worker):
    record('worker_exit', worker.booted)
def child_exit(server, worker):
    record('child_exit', worker.age)
"#,
    );
    let mut s = h.builder().spawn();
    assert_eq!(s.exit_code(T), 3, "{}", s.log());
    assert_eq!(
        h.lines(),
        ["worker_exit True", "child_exit 1"],
        "{}",
        s.log()
    );
}

#[test]
fn post_worker_init_has_the_app_in_worker_wsgi_and_worker_app() {
    let h = Hooked::new(
        "post-worker-init",
        r#"raw_env = ['WARM=warmed']
def post_worker_init(worker):
    seen = []
    body = b''.join(worker.wsgi({'PATH_INFO': '/WARM'}, lambda status, headers, exc=None: seen.append(status)))
    record('warm', seen[0].replace(' ', '_'), body.decode())
    record('app', worker.booted, worker.app.callable is worker.wsgi, worker.app.wsgi() is worker.wsgi,
           worker.app.cfg.wsgi_app, worker.cfg is worker.app.cfg, str(worker.sockets[0]).startswith('http://127.0.0.1:'))
    worker.notify()
    worker.tmp.notify()
    record('tmp', type(worker.tmp.last_update()).__name__)
    try:
        worker.tmp.fileno()
    except AttributeError as e:
        record('fileno', 'shared with the master' in str(e))
"#,
    );
    let s = h.start();
    assert_eq!(
        h.lines(),
        [
            "warm 200_OK warmed",
            "app True True True hooked:app True True",
            "tmp float",
            "fileno True",
        ],
        "{}",
        s.log()
    );
    stop(s);
}

#[test]
fn request_hooks_see_gunicorn_request_and_response_objects() {
    let h = Hooked::new(
        "request-hooks",
        r#"raw_env = ['GREETING=hi']
def pre_request(worker, req):
    record('pre', req.method, req.uri, req.path, req.query, repr(req.fragment), req.version, req.scheme,
           type(req.peer_addr).__name__, req.peer_addr[0], req.remote_addr == req.peer_addr,
           dict(req.headers).get('X-TEST'), req.should_close())
def post_request(worker, req, environ, resp):
    record('post', req.path, environ['QUERY_STRING'], resp.status.replace(' ', '_'), resp.status_code,
           dict(resp.headers).get('Content-Type'), resp.sent, resp.response_length, resp.headers_sent, worker.nr)
"#,
    );
    let s = h.start();
    let r = s.request(
        b"GET /env/GREETING?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.text(), "hi");
    // (The harness's readiness probe made lines of its own.)
    let ours = || -> Vec<String> {
        h.lines()
            .into_iter()
            .filter(|l| l.contains("/env/GREETING"))
            .collect()
    };
    assert!(eventually(T, || ours().len() == 2), "{:?}", h.lines());
    let lines = ours();
    assert_eq!(
        lines,
        [
            "pre GET /env/GREETING?a=1&b=2 /env/GREETING a=1&b=2 '' (1, 1) http tuple 127.0.0.1 True yes True",
            "post /env/GREETING a=1&b=2 200_OK 200 text/plain 2 2 True 2",
        ],
        "{}",
        s.log()
    );
    stop(s);
}

#[test]
fn pre_exec_runs_before_the_usr2_re_exec_and_the_masters_know_each_other() {
    let h = Hooked::new(
        "pre-exec",
        r#"pidfile = os.path.join(os.path.dirname(os.environ['HOOK_LOG']), 'master.pid')
def when_ready(server):
    record('when_ready', os.getpid(), server.master_pid)
def pre_exec(server):
    record('pre_exec', os.getpid(), server.reexec_pid)
def child_exit(server, worker):
    record('child_exit', os.getpid(), server.reexec_pid)
"#,
    );
    let s = h.start();
    let pidfile = h.dir.join("master.pid");
    let old = s.pid;
    let new = crate::upgrade_util::usr2_and_wait_ready(&s, &pidfile, old);
    crate::upgrade_util::phase_out(&s, old);
    let lines = h.lines();
    assert_eq!(
        lines[..3],
        [
            format!("when_ready {old} 0"),
            format!("pre_exec {old} 0"),
            format!("when_ready {new} {old}"),
        ],
        "{lines:#?}\n{}",
        s.log()
    );
    assert!(
        lines.contains(&format!("child_exit {old} {new}")),
        "the old master's server.reexec_pid names the new one: {lines:#?}"
    );
    unsafe { libc::kill(new as i32, libc::SIGTERM) };
    assert!(wait_gone(new, T), "{}", s.log());
}

/// What public configuration files do, together: the bind rewritten in
/// on_starting, per-worker ids kept across pre_fork / nworkers_changed /
/// child_exit and worker_exit, Prometheus multiprocess clean-up in
/// child_exit, and a thread dump in worker_int.
#[test]
fn a_real_world_config_runs_as_it_does_under_gunicorn() {
    let h = Hooked::new(
        "real-world",
        r#"import glob, threading, traceback
bind = "127.0.0.1:8000"
workers = 2
loglevel = "debug"
PROM_DIR = os.path.join(os.path.dirname(os.environ["HOOK_LOG"]), "prometheus")

def mark_process_dead(pid, path=None):
    # prometheus_client.multiprocess.mark_process_dead
    path = path or os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for mode in ("liveall", "livesum", "livemax", "livemin", "livemostrecent"):
        for f in glob.glob(os.path.join(path, "gauge_%s_%d.db" % (mode, pid))):
            os.remove(f)

def on_starting(server):
    os.makedirs(PROM_DIR, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROM_DIR
    for f in glob.glob(os.path.join(PROM_DIR, "*.db")):
        os.remove(f)
    server.cfg.set("bind", [os.environ["REAL_BIND"]])
    server.log.info("bind rewritten to %s", server.cfg.bind)

def nworkers_changed(server, new_value, old_value):
    server.free_ids = set(range(1, new_value + 1)) - {w.worker_id for w in server.WORKERS.values()}

def pre_fork(server, worker):
    worker.worker_id = min(server.free_ids) if server.free_ids else len(server.WORKERS) + 1
    server.free_ids.discard(worker.worker_id)

def post_fork(server, worker):
    os.environ["WORKER_ID"] = str(worker.worker_id)
    server.log.info("worker %s has id %s", worker.pid, worker.worker_id)

def post_worker_init(worker):
    open(os.path.join(PROM_DIR, "gauge_livesum_%d.db" % worker.pid), "w").close()
    open(os.path.join(PROM_DIR, "counter_%d.db" % worker.pid), "w").close()

def worker_int(worker):
    worker.log.info("worker received INT or QUIT signal")
    id2name = {th.ident: th.name for th in threading.enumerate()}
    code = []
    for thread_id, stack in sys._current_frames().items():
        code.append("\n# Thread: %s(%d)" % (id2name.get(thread_id, ""), thread_id))
        for filename, lineno, name, line in traceback.extract_stack(stack):
            code.append('File: "%s", line %d, in %s' % (filename, lineno, name))
            if line:
                code.append("  %s" % (line.strip()))
    worker.log.debug("\n".join(code))

def worker_exit(server, worker):
    record("worker_exit", worker.worker_id)

def child_exit(server, worker):
    mark_process_dead(worker.pid)
    server.free_ids.add(worker.worker_id)
    record("child_exit", worker.worker_id)
"#,
    );
    let port = free_port();
    let mut s = h
        .builder()
        .bind("")
        .env("REAL_BIND", format!("127.0.0.1:{port}"))
        .env("PYTHONUNBUFFERED", "1")
        .spawn();
    assert_eq!(s.await_port(T), port, "{}", s.log());
    s.wait_ready(T);
    let prom = h.dir.join("prometheus");
    let live = || {
        let mut v: Vec<String> = std::fs::read_dir(&prom)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("gauge_livesum_"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let workers = s.wait_workers(2, T);
    assert!(eventually(T, || live().len() == 2), "{:?}", live());
    // Every worker serves with its own id, 1 and 2.
    let mut ids: Vec<String> = Vec::new();
    assert!(eventually(T, || {
        let id = s.get_text("/env/WORKER_ID");
        if !ids.contains(&id) {
            ids.push(id);
        }
        ids.len() == 2
    }));
    ids.sort();
    assert_eq!(ids, ["1", "2"]);

    // A worker killed by the OOM killer: its live gauge file goes, and its
    // replacement takes the id it left free.
    let victim = workers[0];
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    assert!(
        eventually(T, || !live()
            .contains(&format!("gauge_livesum_{victim}.db"))),
        "{:?}",
        live()
    );
    assert!(
        eventually(T, || live().len() == 2),
        "{:?}\n{}",
        live(),
        s.log()
    );
    let freed = h.starting("child_exit");
    assert_eq!(freed.len(), 1, "{freed:?}");
    assert!(s.wait_log(&format!("has id {}", &freed[0]["child_exit ".len()..]), T));
    assert_eq!(s.count_log(" has id "), 3, "{}", s.log());

    // QUIT: worker_int dumps every thread's stack, then all exit.
    s.signal(libc::SIGQUIT);
    assert_eq!(s.exit_code(T), 0, "{}", s.log());
    let log = s.log();
    assert_eq!(
        log.matches("worker received INT or QUIT signal").count(),
        2,
        "{log}"
    );
    assert!(log.contains("# Thread: MainThread("), "{log}");
    assert!(log.contains("in worker_int"), "{log}");
    assert!(
        log.contains(&format!("bind rewritten to ['127.0.0.1:{port}']")),
        "{log}"
    );
    assert_eq!(
        live(),
        Vec::<String>::new(),
        "every worker's live gauge removed"
    );
    let mut exits = h.starting("child_exit");
    exits.sort();
    let mut want = vec![
        freed[0].clone(),
        "child_exit 1".to_string(),
        "child_exit 2".to_string(),
    ];
    want.sort();
    assert_eq!(exits, want, "child_exit for every worker");
    let mut exited = h.starting("worker_exit");
    exited.sort();
    assert_eq!(
        exited,
        ["worker_exit 1", "worker_exit 2"],
        "the QUIT workers"
    );
}
