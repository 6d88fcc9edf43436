//! Integration tests: the real binary, real sockets, real signals, real apps.

mod binds_and_daemon;
mod boot_failures;
mod command_line;
mod config_files;
mod config_hooks;
mod frameworks;
mod gevent;
mod harness;
mod http_conformance;
mod http_strictness;
mod logging;
mod master_signals;
mod python_env;
mod python_logging;
mod reload;
mod server_hooks;
mod slow_clients;
mod smoke;
mod threads;
mod tls;
mod upgrade;
mod upgrade_util;
mod wsgi_environ;
mod wsgi_input;
mod wsgi_response;
