//! Names and encoding of the hand-off variables.

/// The first handed-over fd, as systemd's socket activation numbers them.
pub const FIRST_FD: i32 = 3;

pub mod vars {
    pub const LISTEN_FDS: &str = "LISTEN_FDS";
    pub const LISTEN_PID: &str = "LISTEN_PID";
    pub const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
    pub const GUNICORN_FD: &str = "GUNICORN_FD";
    pub const READY_FD: &str = "FERRICORN_READY_FD";
    pub const UPGRADE_FROM: &str = "FERRICORN_UPGRADE_FROM";
    /// The handed-over fds whose unix socket file the sender created (and so
    /// the receiver removes when it is the last master to exit); a socket
    /// systemd created stays systemd's.
    pub const OWNED_FDS: &str = "FERRICORN_OWNED_FDS";
    /// Every variable the hand-off sets, removed by the receiver.
    pub const ALL: [&str; 7] = [
        LISTEN_FDS,
        LISTEN_PID,
        LISTEN_FDNAMES,
        GUNICORN_FD,
        READY_FD,
        UPGRADE_FROM,
        OWNED_FDS,
    ];
}

/// `LISTEN_FDNAMES` entries may not contain `:`; names are bind addresses
/// (`127.0.0.1:8000`, `unix:/run/app.sock`), so `:` is escaped as `%3A`
/// and `%` as `%25`.
pub fn encode_name(name: &str) -> String {
    name.replace('%', "%25").replace(':', "%3A")
}

pub fn decode_name(name: &str) -> String {
    name.replace("%3A", ":").replace("%25", "%")
}

/// Format `n` in decimal into `buf` without allocating (usable between fork
/// and exec); returns the number of bytes written.
pub(crate) fn write_decimal(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for j in 0..len {
        buf[j] = digits[len - 1 - j];
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_the_colon_separated_list() {
        for n in ["127.0.0.1:8000", "[::1]:80", "unix:/run/a%b.sock", "fd://3"] {
            let enc = encode_name(n);
            assert!(!enc.contains(':'));
            assert_eq!(decode_name(&enc), n);
        }
    }

    #[test]
    fn decimal_without_allocation() {
        let mut b = [0u8; 20];
        let n = write_decimal(0, &mut b);
        assert_eq!(&b[..n], b"0");
        let n = write_decimal(4194304, &mut b);
        assert_eq!(&b[..n], b"4194304");
        let n = write_decimal(u64::MAX, &mut b);
        assert_eq!(&b[..n], u64::MAX.to_string().as_bytes());
    }
}
