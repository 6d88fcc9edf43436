//! The embedded CPython: starting it, loading the app, forking safely.

pub mod interp;
pub mod loader;

pub use interp::{fork_with_python, initialize, is_initialized, PythonSetup};
pub use loader::{load_app, LoadError};
