//! Integration tests: the real binary, real sockets, real signals, real apps.

mod harness;
mod smoke;
mod boot_failures;
mod master_signals;
mod http_conformance;
mod wsgi_input;
mod command_line;
mod wsgi_response;
mod binds_and_daemon;
mod wsgi_environ;
mod logging;
mod slow_clients;
mod frameworks;
mod python_env;
mod upgrade;
mod upgrade_util;
mod reload;
mod config_files;
mod config_hooks;
