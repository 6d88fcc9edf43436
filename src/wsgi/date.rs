//! The `Date` header, formatted at most once per second.

use std::cell::RefCell;

thread_local! {
    static CACHE: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

pub fn with_http_date<R>(f: impl FnOnce(&str) -> R) -> R {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let now = chrono::Utc::now();
        let secs = now.timestamp();
        if c.0 != secs {
            c.0 = secs;
            c.1 = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        }
        f(&c.1)
    })
}
