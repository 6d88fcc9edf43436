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
    /// Every variable the hand-off sets, removed by the receiver.
    pub const ALL: [&str; 6] = [LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, GUNICORN_FD, READY_FD, UPGRADE_FROM];
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
}
