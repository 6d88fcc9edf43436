//! Leaving a process at once, the one way a forked child may.

/// End this process now with `code`: no atexit handlers, no destructors, no
/// stdio flush, no `Py_FinalizeEx`.
///
/// A forked child must not run its parent's exit machinery (it would flush
/// the parent's buffers twice and tear down an interpreter other threads may
/// still be inside), so every exit of a worker or a daemonizing parent comes
/// through here. It is also async-signal-safe, so a signal handler may call it.
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns; skipping destructors
    // is the point, and nothing this process owns needs them to stay sound
    // (the kernel closes its fds and frees its memory).
    unsafe { libc::_exit(code) }
}
