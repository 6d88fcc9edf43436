//! gunicorn 27's control socket, served from the master's loop.
//!
//! Framing and messages as gunicorn's `gunicorn/ctl/protocol.py`, so its
//! `gunicornc` client talks to ferricorn: each message is a 4-byte
//! big-endian length then that many bytes of JSON. A request is
//! `{"id": 1, "command": "show workers", "args": []}`; the answer is
//! `{"id": 1, "status": "ok", "data": {...}}` or
//! `{"id": 1, "status": "error", "error": "message"}`. A client may send
//! several requests on one connection.
//!
//! Everything is non-blocking and polled by the master (no thread): the
//! listener, and each client's socket for input or, while an answer is
//! pending, for output.
//!
//! The socket file is created under a temporary name, given its mode, and
//! renamed over the path: the path never goes missing, not even when a new
//! master started by USR2 takes it over from the old one (whose own socket
//! then only keeps the connections it has). A master removes the file at
//! exit only while it is still its own.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// gunicorn's limit on one message.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
const MAX_CLIENTS: usize = 32;
/// A client silent this long is dropped (gunicorn's idle timeout).
const IDLE: Duration = Duration::from_secs(300);

/// gunicorn's default path: `$XDG_RUNTIME_DIR/gunicorn.ctl` when that is a
/// directory, else `~/.gunicorn/gunicorn.ctl`.
pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(x) = env("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        if Path::new(&x).is_dir() {
            return Path::new(&x).join("gunicorn.ctl");
        }
    }
    let home = env("HOME").unwrap_or_else(|| "/".into());
    Path::new(&home).join(".gunicorn").join("gunicorn.ctl")
}

/// A request read whole from a client.
pub struct Request {
    pub client: u64,
    pub id: serde_json::Value,
    /// The command line split into words, `args` appended (as gunicorn's
    /// `shlex.split(command) + args`).
    pub words: Vec<String>,
}

struct Client {
    key: u64,
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Requests handed out and not answered yet (an `upgrade` waits).
    waiting: usize,
    closing: bool,
    last_input: Instant,
}

pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// (dev, ino) of the file this master created.
    ident: (u64, u64),
    clients: Vec<Client>,
    next_key: u64,
}

impl ControlSocket {
    pub fn bind(path: &Path, mode: u32) -> std::io::Result<ControlSocket> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)?;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        listener.set_nonblocking(true)?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            ident: (meta.dev(), meta.ino()),
            clients: Vec::new(),
            next_key: 1,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the socket file if it is still the one this master made.
    pub fn unlink_if_ours(&self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.ident {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        let clients = self
            .clients
            .iter()
            .map(|c| (c.stream.as_raw_fd(), !c.output.is_empty()));
        crate::pollset::push_server(out, self.listener.as_raw_fd(), clients);
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Accept, read and write what can be without blocking; the requests
    /// that came in whole are returned for the master to answer.
    pub fn turn(&mut self) -> Vec<Request> {
        while self.clients.len() < MAX_CLIENTS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        let key = self.next_key;
                        self.next_key += 1;
                        self.clients.push(Client {
                            key,
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            waiting: 0,
                            closing: false,
                            last_input: Instant::now(),
                        });
                    }
                }
                Err(_) => break,
            }
        }
        let mut requests = Vec::new();
        for c in &mut self.clients {
            c.read(&mut requests);
            if c.waiting == 0 && c.last_input.elapsed() > IDLE {
                c.closing = true;
            }
        }
        self.flush();
        requests
    }

    /// Queue the answer to a request (sent as the socket takes it).
    pub fn answer(&mut self, client: u64, response: &serde_json::Value) {
        let Some(c) = self.clients.iter_mut().find(|c| c.key == client) else {
            return; // it went away
        };
        c.waiting = c.waiting.saturating_sub(1);
        let body = serde_json::to_vec(response).unwrap_or_default();
        c.output
            .extend_from_slice(&(body.len() as u32).to_be_bytes());
        c.output.extend_from_slice(&body);
        self.flush();
    }

    /// Write what the sockets take; drop clients that are done.
    pub fn flush(&mut self) {
        self.clients.retain_mut(|c| {
            while !c.output.is_empty() {
                match c.stream.write(&c.output) {
                    Ok(0) => return false,
                    Ok(n) => {
                        c.output.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            !(c.closing && c.waiting == 0)
        });
    }
}

impl Client {
    fn read(&mut self, requests: &mut Vec<Request>) {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closing = true;
                    break;
                }
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    self.last_input = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closing = true;
                    break;
                }
            }
        }
        while self.input.len() >= 4 {
            let len =
                u32::from_be_bytes([self.input[0], self.input[1], self.input[2], self.input[3]])
                    as usize;
            if len > MAX_MESSAGE {
                // As gunicorn: a protocol error ends the connection.
                self.closing = true;
                self.input.clear();
                return;
            }
            if self.input.len() < 4 + len {
                break;
            }
            let msg: Result<serde_json::Value, _> = serde_json::from_slice(&self.input[4..4 + len]);
            self.input.drain(..4 + len);
            let Ok(msg) = msg else {
                self.closing = true;
                self.input.clear();
                return;
            };
            self.waiting += 1;
            requests.push(parse_request(self.key, &msg));
        }
    }
}

fn parse_request(client: u64, msg: &serde_json::Value) -> Request {
    let id = msg.get("id").cloned().unwrap_or(serde_json::json!(0));
    let command = msg.get("command").and_then(|c| c.as_str()).unwrap_or("");
    let mut words = split_words(command.trim());
    if let Some(args) = msg.get("args").and_then(|a| a.as_array()) {
        for a in args {
            words.push(match a {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
    }
    Request { client, id, words }
}

/// Words as a POSIX shell splits them (quotes and backslashes), which is
/// what gunicorn's `shlex.split` does for a command line.
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_as_shlex_splits_them() {
        assert_eq!(split_words("show  workers"), vec!["show", "workers"]);
        assert_eq!(
            split_words("worker 'kill' \"12\""),
            vec!["worker", "kill", "12"]
        );
        assert!(split_words("   ").is_empty());
    }

    #[test]
    fn default_path_is_gunicorns() {
        let env = |k: &str| match k {
            "XDG_RUNTIME_DIR" => Some("/nonexistent-dir".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(
            default_path(&env),
            PathBuf::from("/home/u/.gunicorn/gunicorn.ctl")
        );
        let tmp = std::env::temp_dir().to_string_lossy().into_owned();
        let env2 = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| tmp.clone());
        assert_eq!(default_path(&env2), Path::new(&tmp).join("gunicorn.ctl"));
    }
}
