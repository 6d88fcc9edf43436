//! Memory shared between the master and the workers it forks: an anonymous
//! shared mapping of atomic words, made once before the first fork and never
//! unmapped, so pointers into it stay valid for the life of every process.

use std::num::NonZeroUsize;
use std::sync::atomic::AtomicU64;

/// A zero-filled shared mapping of `words` atomic words (only the pages
/// touched take memory).
pub fn map_atomics(words: usize) -> std::io::Result<*mut AtomicU64> {
    let len = NonZeroUsize::new(words.max(1) * std::mem::size_of::<AtomicU64>())
        .expect("a non-zero length");
    // SAFETY: a fresh anonymous mapping aliases no Rust object; the kernel
    // zero-fills it, and all-zero bytes are valid AtomicU64 values. It is
    // page-aligned, so aligned for AtomicU64.
    let p = unsafe {
        nix::sys::mman::mmap_anonymous(
            None,
            len,
            nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
            nix::sys::mman::MapFlags::MAP_SHARED,
        )
    }
    .map_err(std::io::Error::from)?;
    Ok(p.as_ptr().cast())
}
