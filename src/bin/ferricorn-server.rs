//! The server as the wheel installs it: the same program as `ferricorn`,
//! under the name the wheel's launcher (python/ferricorn) execs once it has
//! found the interpreter's shared library. A second target rather than a
//! rename, so a source build keeps its `target/release/ferricorn`.
include!("../main.rs");
