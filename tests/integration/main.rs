//! Integration tests: the real binary, real sockets, real signals, real apps.

mod harness;
mod smoke;
