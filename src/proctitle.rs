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
static ORIGINAL: OnceLock<Captured> = OnceLock::new();

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

/// argv as it was at start: copies of the strings, and where they lay.
struct Captured {
    args: Vec<CString>,
    /// The argv strings that lie end to end from argv[0]: [start, end).
    span: Option<(usize, usize)>,
}

/// The command line the process was started with, as it was before any title.
pub fn original_args() -> &'static [CString] {
    &captured().args
}

fn captured() -> &'static Captured {
    ORIGINAL.get_or_init(|| {
        let argv = ARGV.load(Ordering::Relaxed);
        let argc = ARGC.load(Ordering::Relaxed);
        if argv.is_null() {
            return Captured {
                args: std::env::args()
                    .filter_map(|a| CString::new(a).ok())
                    .collect(),
                span: None,
            };
        }
        // SAFETY: argv and argc are what the C runtime passed to
        // `.init_array` functions: argc pointers to NUL-terminated strings,
        // which live as long as the process. Nothing has written over them
        // yet: only `set` does, and it finds its area through this copy.
        let strings: Vec<(usize, CString)> = unsafe {
            (0..argc)
                .map(|i| *argv.add(i))
                .take_while(|p| !p.is_null())
                .map(|p| (p as usize, CStr::from_ptr(p).to_owned()))
                .collect()
        };
        let span = strings.first().map(|(start, _)| {
            let mut end = *start;
            for (at, s) in &strings {
                if *at != end {
                    break;
                }
                end += s.as_bytes_with_nul().len();
            }
            (*start, end)
        });
        Captured {
            args: strings.into_iter().map(|(_, s)| s).collect(),
            span,
        }
    })
}

/// Find the contiguous argv+environ string area and move environ to the heap.
/// Must run while the process is single-threaded (master start-up).
fn title_area() -> Option<(usize, usize)> {
    let area = AREA.get_or_init(|| {
        let Some((mut start, mut end)) = captured().span else {
            return (0, 0);
        };
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
        (start, rehome_environ(end) - start)
    });
    (area.1 > 0).then_some(*area)
}

/// Copy every environment string to the heap, so that writing a title
/// leaves the environment intact, and return where the strings that follow
/// `end` directly in memory stop: their space joins the title area.
fn rehome_environ(mut end: usize) -> usize {
    // SAFETY: `environ` is the C runtime's NULL-terminated array of
    // NUL-terminated strings. This runs once, when the master first sets
    // its title at start-up, before it forks; the master runs no thread of
    // its own, so nothing of ours changes the environment meanwhile. Each
    // entry is replaced by a leaked heap copy of the same string, so getenv
    // and the environment a child inherits stay the same; the old strings
    // are never freed (the kernel placed them) and stay valid until `set`
    // writes over them, after this loop.
    unsafe {
        let env = environ;
        if env.is_null() {
            return end;
        }
        let mut i = 0;
        while !(*env.add(i)).is_null() {
            let p = *env.add(i);
            let s = CStr::from_ptr(p);
            if p as usize == end {
                end += s.to_bytes_with_nul().len();
            }
            *env.add(i) = s.to_owned().into_raw();
            i += 1;
        }
    }
    end
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
        // SAFETY: [start, start + len) is the command line's memory found by
        // `title_area`: this process's own, live as long as it. No Rust
        // object refers to it (argv and the environment were copied out
        // first), and only this function writes it, from the thread that
        // runs the master's (or a worker's) start-up.
        let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, len) };
        let bytes = title.as_bytes();
        let n = bytes.len().min(len - 1);
        area[..n].copy_from_slice(&bytes[..n]);
        area[n..].fill(0);
    }
    if let Ok(short) = CString::new(title.bytes().take(15).collect::<Vec<u8>>()) {
        let _ = nix::sys::prctl::set_name(&short);
    }
}
