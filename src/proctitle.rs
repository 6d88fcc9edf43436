//! Process titles as `ps` shows them: `ferricorn: master [app]`.
//!
//! Linux shows a process's argv memory as its command line, so the title is
//! written over argv in place (what setproctitle does for gunicorn). argv is
//! often short, so the environment strings that follow it are first copied
//! to the heap and the area they used joins the title space.
//!
//! The original argv is captured before anything is overwritten (see
//! [`original_args`]); re-exec for binary upgrades uses that copy.

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());
static ARGC: AtomicUsize = AtomicUsize::new(0);
static AREA: OnceLock<(usize, usize)> = OnceLock::new();
static ORIGINAL: OnceLock<Vec<CString>> = OnceLock::new();

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// glibc calls `.init_array` functions with (argc, argv, envp): the one
/// portable-enough way to reach the real argv memory from Rust.
#[used]
#[link_section = ".init_array"]
static CAPTURE_ARGV: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = capture_argv;

extern "C" fn capture_argv(argc: c_int, argv: *mut *mut c_char, _envp: *mut *mut c_char) {
    ARGC.store(argc.max(0) as usize, Ordering::Relaxed);
    ARGV.store(argv, Ordering::Relaxed);
}

/// The command line the process was started with, as it was before any title.
pub fn original_args() -> &'static [CString] {
    ORIGINAL.get_or_init(|| {
        let argv = ARGV.load(Ordering::Relaxed);
        let argc = ARGC.load(Ordering::Relaxed);
        if argv.is_null() {
            return std::env::args()
                .filter_map(|a| CString::new(a).ok())
                .collect();
        }
        (0..argc)
            .filter_map(|i| {
                let p = unsafe { *argv.add(i) };
                (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_owned())
            })
            .collect()
    })
}

/// Find the contiguous argv+environ string area and move environ to the heap.
/// Must run while the process is single-threaded (master start-up).
fn title_area() -> Option<(usize, usize)> {
    let area = AREA.get_or_init(|| unsafe {
        original_args();
        let argv = ARGV.load(Ordering::Relaxed);
        let argc = ARGC.load(Ordering::Relaxed);
        if argv.is_null() || argc == 0 || (*argv).is_null() {
            return (0, 0);
        }
        let mut start = *argv as usize;
        let mut end = start;
        for i in 0..argc {
            let p = *argv.add(i);
            if p.is_null() || p as usize != end {
                break;
            }
            end += CStr::from_ptr(p).to_bytes().len() + 1;
        }
        // Started through the dynamic loader (the wheel's launcher runs
        // `ld.so --preload libpython --argv0 … server …`), argv skips the
        // loader's own words: the kernel's command line still begins, and
        // ends, where the exec put it. Take that whole area, so `ps` shows
        // the title rather than the loader's command line.
        if let Some((arg_start, arg_end)) = kernel_arg_area() {
            if arg_start <= start && start < arg_end && end <= arg_end {
                start = arg_start;
                end = arg_end;
            }
        }
        // Extend over environment strings that directly follow, re-homing each.
        let env = environ;
        if !env.is_null() {
            let mut i = 0;
            while !(*env.add(i)).is_null() {
                let p = *env.add(i);
                if p as usize == end {
                    end += CStr::from_ptr(p).to_bytes().len() + 1;
                }
                let copy = CStr::from_ptr(p).to_owned().into_raw();
                *env.add(i) = copy;
                i += 1;
            }
        }
        (start, end - start)
    });
    (area.1 > 0).then_some(*area)
}

/// `arg_start` and `arg_end` of this process (fields 48 and 49 of
/// /proc/self/stat): the memory /proc/self/cmdline shows.
fn kernel_arg_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may
    // contain spaces: field 3 is the first of these.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(48 - 3);
    let arg_start = fields.next()?.parse().ok()?;
    let arg_end = fields.next()?.parse().ok()?;
    Some((arg_start, arg_end))
}

/// Set the title `ps` shows for this process (and the short name in `top`).
pub fn set(title: &str) {
    if let Some((start, len)) = title_area() {
        let bytes = title.as_bytes();
        let n = bytes.len().min(len - 1);
        unsafe {
            let dst = start as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, n);
            std::ptr::write_bytes(dst.add(n), 0, len - n);
        }
    }
    if let Ok(short) = CString::new(title.bytes().take(15).collect::<Vec<u8>>()) {
        unsafe { libc::prctl(libc::PR_SET_NAME, short.as_ptr() as libc::c_ulong, 0, 0, 0) };
    }
}
