//! Zero-downtime binary upgrades: handing listening sockets to a new master.
//!
//! # The protocol
//!
//! 1. The running master receives `USR2`. It renames its pidfile to
//!    `<pidfile>.oldbin` ([`pidfile::rotate_to_oldbin`]) and calls
//!    [`spawn_successor`], which forks.
//! 2. The child moves the listening sockets to fds `3, 4, …` (clearing
//!    `FD_CLOEXEC` on exactly those), puts the write end of a readiness pipe
//!    right after them, and sets:
//!
//!    | variable | value |
//!    |---|---|
//!    | `LISTEN_FDS` | number of listeners (systemd's convention) |
//!    | `LISTEN_PID` | the child's pid (exec keeps it) |
//!    | `LISTEN_FDNAMES` | the bind address of each fd, `:`-separated |
//!    | `GUNICORN_FD` | `3,4,…`, for tools that speak gunicorn's variant |
//!    | `FERRICORN_READY_FD` | the readiness pipe's write end |
//!    | `FERRICORN_UPGRADE_FROM` | the old master's pid |
//!    | `FERRICORN_OWNED_FDS` | the fds whose unix socket file the old master created |
//!
//!    It then `execve`s the executable path resolved at *first* start (see
//!    [`StartContext`]) with the original argv, in the original working
//!    directory — `$PWD` when it names the same directory, so a
//!    `current -> releases/N` symlink switched before the upgrade resolves to
//!    the new release.
//! 3. The new master calls [`take_inherited`] before anything else: it reads
//!    and removes those variables (no app code ever sees them), checks that
//!    `LISTEN_PID` is its own pid and that every fd is a listening socket,
//!    and marks them close-on-exec again. It adopts the sockets matching its
//!    binds, binds the rest, closes the ones it no longer wants, boots its
//!    workers, then calls [`notify_ready`], writes the pidfile (not before:
//!    until then the pidfile path is free and `.oldbin` names the old
//!    master) and, under systemd, sends `MAINPID=<pid>` + `READY=1`
//!    ([`sd_notify::notify`]).
//! 4. The old master polls [`Successor::ready_fd`] in its loop and calls
//!    [`Successor::poll`] when it is readable: `Ready` means the new
//!    generation serves; `Closed` (the pipe closed without `ready`) means the
//!    child is exiting: the caller reaps it and reports its exit status;
//!    `Failed` (an exec failure, or the deadline passed) and a child reaped
//!    before `Ready` mean the upgrade did not happen: the
//!    old master renames `.oldbin` back ([`pidfile::restore_from_oldbin`]) and
//!    keeps serving.
//!
//!    If `execve` itself fails, the forked child writes `exec <errno>` to the
//!    pipe first, so the failure names its cause.
//! 5. Rollback, the nginx way: while the new master runs, the old one is its
//!    parent; when it reaps the new master (killed, or TERM from the
//!    operator) it renames `.oldbin` back. The outcome of each upgrade is
//!    also written to `<pidfile>.upgrade` ([`pidfile::write_status`]) for
//!    tools such as `ferricorn upgrade` that wait on it.
//!
//! The same `LISTEN_FDS` path serves systemd socket activation at first
//! start (only when `LISTEN_PID` is this process, as `sd_listen_fds` does),
//! and `GUNICORN_FD` alone is honoured for external supervisors.
//!
//! # Preconditions
//!
//! Every fd the calling process owns must be close-on-exec except the ones
//! handed over: only listeners cross the exec, so fd counts do not grow
//! across upgrades. An inherited fd that is not a listening socket is
//! refused with [`UpgradeError::NotAListener`], never used.
//!
//! This crate spawns no threads and owns no loop: the caller polls the fds
//! it is handed.

mod env;
mod exec;
mod inherit;
pub mod pidfile;
mod ready;
pub mod sd_notify;

pub use env::{vars, FIRST_FD};
pub use exec::{spawn_successor, Handoff, StartContext};
pub use inherit::{take_inherited, Inherited, InheritedSocket};
pub use ready::{notify_ready, ReadyState, Successor};

/// Why an upgrade step failed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("{var}={value:?} is not valid: {why}")]
    BadVariable {
        var: &'static str,
        value: String,
        why: String,
    },
    #[error("inherited fd {fd} is not a listening socket: {why}")]
    NotAListener { fd: i32, why: String },
    #[error("cannot start the new master: {0}")]
    Spawn(String),
    #[error("pidfile {path}: {err}")]
    Pidfile { path: String, err: std::io::Error },
}
