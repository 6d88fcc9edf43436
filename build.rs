//! Link the binary against the libpython it was built for, and record which
//! interpreter that is.
//!
//! Without an rpath the dynamic loader finds whatever `libpython3.X.so` the
//! system ships (often a different patch release with another `sys.prefix`),
//! so the embedded interpreter would not be the one whose headers we built
//! with. The version and executable recorded here let the binary refuse a
//! virtualenv of another minor version and set `sys.executable` correctly.
//!
//! With the `wheel` feature (scripts/build-wheel, which also sets
//! `PYO3_BUILD_EXTENSION_MODULE` so pyo3 adds no `-lpython3.X`) the binary
//! names no libpython at all, neither rpath nor `NEEDED`: the wheel runs on
//! machines where the build interpreter's `lib/` does not exist or is another
//! Python. Its launcher (python/ferricorn/__main__.py) has the dynamic loader
//! preload the libpython of the interpreter it runs under, whose symbols then
//! resolve the server's references to CPython; so the linker is told to
//! leave those unresolved. (The development build links libpython normally
//! and so still checks every symbol at link time.)
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
    if std::env::var_os("CARGO_FEATURE_WHEEL").is_some() {
        println!("cargo:rustc-link-arg-bins=-Wl,--unresolved-symbols=ignore-in-object-files");
    } else {
        pyo3_build_config::add_libpython_rpath_link_args();
    }
    let cfg = pyo3_build_config::get();
    println!("cargo:rustc-env=FERRICORN_PY_MAJOR={}", cfg.version().major);
    println!("cargo:rustc-env=FERRICORN_PY_MINOR={}", cfg.version().minor);
    // The fallback for `sys.executable`. A wheel's launcher always names the
    // interpreter (FERRICORN_PYTHON), and the build machine's path means
    // nothing where the wheel is installed: a bare name there.
    let executable = if std::env::var_os("CARGO_FEATURE_WHEEL").is_some() {
        format!("python{}.{}", cfg.version().major, cfg.version().minor)
    } else {
        cfg.executable().unwrap_or_default().to_string()
    };
    println!("cargo:rustc-env=FERRICORN_PY_EXECUTABLE={executable}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
