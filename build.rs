//! Link the binary against the libpython it was built for.
//!
//! Without an rpath the dynamic loader finds whatever `libpython3.X.so` the
//! system ships (often a different patch release with another `sys.prefix`),
//! so the embedded interpreter would not be the one whose headers we built with.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
