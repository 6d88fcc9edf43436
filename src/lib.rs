//! ferricorn: a gunicorn-compatible pre-fork WSGI server with an embedded
//! CPython. The data flows one way: config → master → worker → http → wsgi
//! → app, and back out as bytes.

pub mod access_log;
pub mod config;
pub mod control;
pub mod heartbeat;
pub mod hooks;
pub mod http;
#[cfg(test)]
mod hygiene;
pub mod ipc;
#[macro_use]
pub mod log;
pub mod master;
pub mod metrics;
pub mod net;
pub mod pidfile;
pub mod pollset;
pub mod process;
pub mod proctitle;
pub mod pylog;
pub mod python;
pub mod server_name;
pub mod settings;
pub mod shm;
pub mod signals;
pub mod sock;
pub mod startup;
pub mod stream;
pub mod syslog;
pub mod tls;
pub mod upgrade_cmd;
pub mod worker;
pub mod wsgi;
