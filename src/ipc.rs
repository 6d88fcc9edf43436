//! Messages from a worker to its master, over the worker's own pipe.
//!
//! Frame: one kind byte, a little-endian u32 length, the payload. A worker
//! writes whole frames with blocking writes; the master reads non-blocking
//! and reassembles.

use std::os::fd::RawFd;

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The app is loaded; the worker is serving.
    Booted,
    /// The worker could not start; `code` is its exit code, `report` what to print once.
    BootFailed { code: i32, report: String },
    /// The worker reached max_requests and asks to be replaced.
    Recycle,
    /// Source files the worker's app uses (reload mode): watch them.
    Watch(Vec<String>),
    /// Reload mode: the app failed to import and this worker serves an
    /// error page with `report` instead (the master prints it once).
    ErrorPage(String),
}

const BOOTED: u8 = 1;
const BOOT_FAILED: u8 = 2;
const RECYCLE: u8 = 3;
const WATCH: u8 = 4;
const ERROR_PAGE: u8 = 5;

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, Vec<u8>) = match self {
            Message::Booted => (BOOTED, vec![]),
            Message::BootFailed { code, report } => {
                let mut p = code.to_le_bytes().to_vec();
                p.extend_from_slice(report.as_bytes());
                (BOOT_FAILED, p)
            }
            Message::Recycle => (RECYCLE, vec![]),
            Message::Watch(files) => (WATCH, files.join("\0").into_bytes()),
            Message::ErrorPage(report) => (ERROR_PAGE, report.as_bytes().to_vec()),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Write the message to the master; a gone master is not an error here.
    pub fn send(&self, fd: RawFd) {
        crate::log::write_all(fd, &self.encode());
    }
}

/// Reassembles frames from a non-blocking pipe.
#[derive(Default, Debug)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn next_message(&mut self) -> Option<Message> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if self.buf.len() < 5 + len {
            return None;
        }
        let kind = self.buf[0];
        let payload: Vec<u8> = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Some(match kind {
            BOOTED => Message::Booted,
            BOOT_FAILED if payload.len() >= 4 => Message::BootFailed {
                code: i32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]),
                report: String::from_utf8_lossy(&payload[4..]).into_owned(),
            },
            RECYCLE => Message::Recycle,
            WATCH => Message::Watch(
                String::from_utf8_lossy(&payload)
                    .split('\0')
                    .filter(|f| !f.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            ERROR_PAGE => Message::ErrorPage(String::from_utf8_lossy(&payload).into_owned()),
            _ => return self.next_message(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_byte_by_byte_delivery() {
        let msgs = [
            Message::Booted,
            Message::BootFailed {
                code: 4,
                report: "Traceback ...\n".into(),
            },
            Message::Recycle,
            Message::Watch(vec!["/srv/app/app.py".into(), "/srv/app/views.py".into()]),
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| m.encode()).collect();
        let mut d = Decoder::default();
        let mut got = vec![];
        for b in bytes {
            d.feed(&[b]);
            while let Some(m) = d.next_message() {
                got.push(m);
            }
        }
        assert_eq!(got, msgs);
    }
}
