//! The error log, in gunicorn's format:
//! `[2026-11-24 00:12:54 +0000] [4242] [INFO] Listening at: http://127.0.0.1:8000 (4242)`.
//!
//! One process-wide logger. Each line is one `write(2)`, so master and worker
//! lines never interleave mid-line in a shared file. Log files live at a fixed
//! fd number for the life of the process: USR1 reopens the file *onto the same
//! fd* (dup3), so anything that captured the fd (stdout/stderr redirection,
//! Python's faulthandler) follows the reopened file.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Debug = 10,
    Info = 20,
    Warning = 30,
    Error = 40,
    Critical = 50,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warning" | "warn" => Level::Warning,
            "error" => Level::Error,
            "critical" => Level::Critical,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
    fn from_u8(v: u8) -> Level {
        match v {
            10 => Level::Debug,
            20 => Level::Info,
            30 => Level::Warning,
            40 => Level::Error,
            _ => Level::Critical,
        }
    }
}

/// Where a log goes.
#[derive(Debug)]
enum Sink {
    /// Nowhere (no access log).
    Off,
    /// A standard stream (`-`): its fd number, wherever that points now.
    Std(RawFd),
    /// A file, open for the life of the process and reopened on USR1 onto
    /// the same fd.
    File { path: String, file: std::fs::File },
}

impl Sink {
    fn open(target: &str, std_fd: RawFd) -> std::io::Result<Sink> {
        if target == "-" {
            return Ok(Sink::Std(std_fd));
        }
        Ok(Sink::File {
            path: target.to_string(),
            file: open_append(target)?,
        })
    }

    fn fd(&self) -> Option<RawFd> {
        match self {
            Sink::Off => None,
            Sink::Std(fd) => Some(*fd),
            Sink::File { file, .. } => Some(file.as_raw_fd()),
        }
    }

    fn reopen(&self) -> std::io::Result<()> {
        let Sink::File { path, file } = self else {
            return Ok(());
        };
        let new = open_append(path)?;
        // nix's dup3 wants the target as a `&mut OwnedFd`, but the file
        // belongs to the process-wide logger, which writers share.
        // SAFETY: dup3 takes no pointers. The target is this sink's own
        // open file: dup3 swaps what its fd refers to atomically, so a
        // writer at the same moment writes to the old file or the new one,
        // never to a closed or reused fd.
        let r = unsafe { libc::dup3(new.as_raw_fd(), file.as_raw_fd(), libc::O_CLOEXEC) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Write all of `bytes`, as `write_all` below.
    fn write(&self, bytes: &[u8]) {
        match self {
            Sink::Off => {}
            Sink::Std(fd) => write_all(*fd, bytes),
            Sink::File { file, .. } => {
                let _ = (&*file).write_all(bytes);
            }
        }
    }
}

/// Open a log file to append to (close-on-exec, as std opens every file).
fn open_append(path: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open log file {path}: {e}")))
}

/// Write everything, retrying on EINTR and short writes; a full disk is not
/// worth crashing a server for, so other errors are dropped.
pub fn write_all(fd: RawFd, mut bytes: &[u8]) {
    // A raw fd: callers keep theirs open for the life of the process (the
    // log sinks, a worker's report pipe), which is what `with_fd` needs.
    let _ = crate::net::with_fd(fd, |fd| {
        while !bytes.is_empty() {
            match nix::unistd::write(fd, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
}

struct Logger {
    level: AtomicU8,
    error: Sink,
    access: Sink,
}

static LOGGER: Mutex<Option<&'static Logger>> = Mutex::new(None);
static FALLBACK: Logger = Logger {
    level: AtomicU8::new(Level::Info as u8),
    error: Sink::Off,
    access: Sink::Off,
};

fn logger() -> &'static Logger {
    match LOGGER.lock() {
        Ok(guard) => guard.unwrap_or(&FALLBACK),
        Err(_) => &FALLBACK,
    }
}

/// Set up the process's logs. `access` is None when access logging is off.
pub fn init(level: Level, error_target: &str, access_target: Option<&str>) -> std::io::Result<()> {
    let error = Sink::open(error_target, 2)?;
    let access = match access_target {
        Some(t) => Sink::open(t, 1)?,
        None => Sink::Off,
    };
    let leaked: &'static Logger = Box::leak(Box::new(Logger {
        level: AtomicU8::new(level as u8),
        error,
        access,
    }));
    if let Ok(mut g) = LOGGER.lock() {
        *g = Some(leaked);
    }
    CONFIGURED.store(level as u8, Ordering::Relaxed);
    Ok(())
}

/// Reopen log files (USR1), e.g. after logrotate moved them away: ours,
/// and those of Python's file handlers when Python's logging is in use.
pub fn reopen() -> std::io::Result<()> {
    crate::pylog::reopen();
    let l = logger();
    l.error.reopen()?;
    l.access.reopen()
}

/// The lowest level logged. Python's logging, when in use, decides it
/// (the effective level of `gunicorn.error`); otherwise `loglevel` does.
pub fn set_threshold(level: u8) {
    logger().level.store(level, Ordering::Relaxed);
}

/// The level `loglevel` set at start.
pub fn configured_level() -> Level {
    Level::from_u8(CONFIGURED.load(Ordering::Relaxed))
}

static CONFIGURED: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// The fd the error log is written to (stable across reopen).
pub fn error_fd() -> RawFd {
    logger().error.fd().unwrap_or(2)
}

/// True when the error log is a file rather than stderr.
pub fn error_log_is_file() -> bool {
    error_file().is_some()
}

/// The error log's file, when it is one: open for the life of the process
/// (loggers are never dropped, and a reopen keeps the fd).
pub fn error_file() -> Option<BorrowedFd<'static>> {
    match &logger().error {
        Sink::File { file, .. } => Some(file.as_fd()),
        _ => None,
    }
}

/// Whether requests are logged: to an access log file, to Python's
/// `gunicorn.access` logger, or to syslog (gunicorn's rule).
pub fn access_enabled() -> bool {
    logger().access.fd().is_some() || crate::pylog::active() || crate::syslog::access_on()
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= logger().level.load(Ordering::Relaxed)
}

/// `[2026-11-24 00:12:54 +0000]`, local time as gunicorn prints it.
pub fn timestamp() -> String {
    chrono::Local::now()
        .format("[%Y-%m-%d %H:%M:%S %z]")
        .to_string()
}

pub fn log(level: Level, msg: &str) {
    // As gunicorn's Statsd logger: counted whatever the log level shows.
    match level {
        Level::Warning => crate::metrics::statsd::count_log("warning"),
        Level::Error => crate::metrics::statsd::count_log("error"),
        Level::Critical => crate::metrics::statsd::count_log("critical"),
        _ => {}
    }
    if !enabled(level) {
        return;
    }
    crate::syslog::error(level, msg);
    if crate::pylog::active() {
        crate::pylog::error(level, msg.trim_end_matches('\n'));
        return;
    }
    let mut line = String::with_capacity(msg.len() + 48);
    line.push_str(&timestamp());
    line.push_str(" [");
    line.push_str(itoa::Buffer::new().format(std::process::id()));
    line.push_str("] [");
    line.push_str(level.name());
    line.push_str("] ");
    line.push_str(msg);
    if !msg.ends_with('\n') {
        line.push('\n');
    }
    logger().error.write(line.as_bytes());
}

/// Write a raw block (`wsgi.errors`) to the error log as-is. As in
/// gunicorn, where `wsgi.errors` writes to the error log's streams, this
/// is not a log record, also when Python's logging is in use.
pub fn raw_error(text: &str) {
    logger().error.write(text.as_bytes());
}

pub fn access_write(line: &[u8]) {
    logger().access.write(line);
}

#[macro_export]
macro_rules! debug { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Debug) { $crate::log::log($crate::log::Level::Debug, &format!($($t)*)) } } }
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($t)*)) } }
#[macro_export]
macro_rules! warning { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warning, &format!($($t)*)) } }
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Error, &format!($($t)*)) } }
#[macro_export]
macro_rules! critical { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Critical, &format!($($t)*)) } }
