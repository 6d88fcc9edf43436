//! Link the binary against the libpython it was built for, and record which
//! interpreter that is.
//!
//! Without an rpath the dynamic loader finds whatever `libpython3.X.so` the
//! system ships (often a different patch release with another `sys.prefix`),
//! so the embedded interpreter would not be the one whose headers we built
//! with. The version and executable recorded here let the binary refuse a
//! virtualenv of another minor version and set `sys.executable` correctly.
//!
//! `FERRICORN_VERSION_SUFFIX` at build time is appended to the version that
//! `-v`, the start-up line and `SERVER_SOFTWARE` show (e.g. `+build42`), so
//! two builds of one release can be told apart, e.g. across a binary upgrade.
fn main() {
    let suffix = std::env::var("FERRICORN_VERSION_SUFFIX").unwrap_or_default();
    println!(
        "cargo:rustc-env=FERRICORN_VERSION={}{suffix}",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
    println!("cargo:rerun-if-env-changed=FERRICORN_VERSION_SUFFIX");
    pyo3_build_config::add_libpython_rpath_link_args();
    let cfg = pyo3_build_config::get();
    println!("cargo:rustc-env=FERRICORN_PY_MAJOR={}", cfg.version().major);
    println!("cargo:rustc-env=FERRICORN_PY_MINOR={}", cfg.version().minor);
    println!(
        "cargo:rustc-env=FERRICORN_PY_EXECUTABLE={}",
        cfg.executable().unwrap_or_default()
    );
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
