//! The `Server` response header and the `SERVER_SOFTWARE` environ value.
//!
//! ferricorn's own by default. A config file that changes `gunicorn.SERVER`
//! or `gunicorn.SERVER_SOFTWARE` (a common way to hide or rename the Server
//! header) changes them, as in gunicorn. The master records the names with
//! each configuration it applies; a worker reads them once, at its first
//! response, so the per-request cost is one load.

use std::sync::{Mutex, OnceLock};

pub const DEFAULT_SERVER: &str = "ferricorn";
pub const DEFAULT_SOFTWARE: &str = concat!("ferricorn/", env!("FERRICORN_VERSION"));

/// What a configuration set (None: ferricorn's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerNames {
    pub server: Option<String>,
    pub software: Option<String>,
}

static CONFIGURED: Mutex<Option<ServerNames>> = Mutex::new(None);
static FROZEN: OnceLock<(Vec<u8>, String)> = OnceLock::new();

/// Record the names of the configuration in force (master, at start and HUP),
/// for the workers forked from now on.
pub fn set(names: &ServerNames) {
    if let Ok(mut g) = CONFIGURED.lock() {
        *g = Some(names.clone());
    }
}

fn frozen() -> &'static (Vec<u8>, String) {
    FROZEN.get_or_init(|| {
        let names = CONFIGURED
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_default();
        // A header value cannot carry CR or LF: such a name is not used.
        let server = names
            .server
            .filter(|s| !s.bytes().any(|b| b == b'\r' || b == b'\n'))
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        (
            server.into_bytes(),
            names
                .software
                .unwrap_or_else(|| DEFAULT_SOFTWARE.to_string()),
        )
    })
}

/// The `Server` header's value.
pub fn header() -> &'static [u8] {
    &frozen().0
}

/// `SERVER_SOFTWARE` in the WSGI environ.
pub fn software() -> &'static str {
    &frozen().1
}
