//! Memory shared between the master and the workers it forks: an anonymous
//! shared mapping of atomic words, made once before the first fork and never
//! unmapped, so it stays valid for the life of every process that has it.
//!
//! This is the one place that touches the mapping as raw memory; everything
//! else sees a plain `&'static [AtomicU64]`, which is Send and Sync like any
//! shared reference to atomics.

use std::num::NonZeroUsize;
use std::sync::atomic::AtomicU64;

/// A zero-filled shared mapping of `words` atomic words (only the pages
/// touched take memory). It is never unmapped, and a fork inherits it at
/// the same address, shared with this process.
pub fn map_atomics(words: usize) -> std::io::Result<&'static [AtomicU64]> {
    let words = words.max(1);
    let len =
        NonZeroUsize::new(words * std::mem::size_of::<AtomicU64>()).expect("a non-zero length");
    // SAFETY: a fresh anonymous mapping aliases no Rust object. The kernel
    // zero-fills it, and all-zero bytes are valid AtomicU64 values; it is
    // page-aligned, so aligned for AtomicU64, and `len` bytes hold exactly
    // `words` of them. Nothing ever unmaps it, so the slice may be
    // 'static; other processes writing to it concurrently is what atomics
    // are for, and the slice only ever hands out `&AtomicU64`.
    unsafe {
        let p = nix::sys::mman::mmap_anonymous(
            None,
            len,
            nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
            nix::sys::mman::MapFlags::MAP_SHARED,
        )
        .map_err(std::io::Error::from)?;
        Ok(std::slice::from_raw_parts(
            p.as_ptr().cast::<AtomicU64>(),
            words,
        ))
    }
}
