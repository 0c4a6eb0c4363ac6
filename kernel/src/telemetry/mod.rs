//! Machine-readable snapshots of the kernel's memory state on a serial line, for the TUI.
//!
//! `telemetry=ttyS2` claims that UART (`serial::claim`). The host writes one request per line —
//! `snapshot`, `scan` to run a leak scan first, or `detail PID` to add one process's memory map
//! and kernel stack — and the kernel answers with one snapshot in
//! the versioned text format documented in docs/telemetry.md, whose encoder, decoder and request
//! grammar are `cadenza_abi::telemetry` (shared with the host's `cadenza_qemu::telemetry`). Requests are served in the UART's interrupt handler with
//! interrupts masked, so the snapshot is consistent (nothing can run in the middle of it); it is
//! formatted straight to the port through a small buffer (`write_polled`), with no heap
//! allocation, so that the telemetry never shows up in — or disturbs — the heap it reports on.

mod snapshot;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::boot::Cmdline;
use crate::drivers::serial;
use crate::kprintln;
use crate::sync::IrqSpinLock;
use cadenza_abi::telemetry::{Announcement, MAX_REQUEST_LEN, Request, write_error};
pub use snapshot::write_snapshot;

const NO_PORT: usize = usize::MAX;
static PORT: AtomicUsize = AtomicUsize::new(NO_PORT);
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The sequence number for the next snapshot (1 for the first).
pub fn next_sequence() -> u64 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1
}

/// The request being received.
struct Line {
    bytes: [u8; MAX_REQUEST_LEN],
    len: usize,
    overflowed: bool,
}

static LINE: IrqSpinLock<Line> = IrqSpinLock::new(Line {
    bytes: [0; MAX_REQUEST_LEN],
    len: 0,
    overflowed: false,
});

/// `telemetry=ttyS<n>`: claims the UART and starts answering requests.
pub fn init(cmdline: &Cmdline) {
    let Some(device) = cmdline.get("telemetry") else {
        return;
    };
    let Some(index) = device
        .strip_prefix("ttyS")
        .and_then(|n| n.parse::<usize>().ok())
    else {
        kprintln!("telemetry: {device:?} is not a ttyS<n> device; telemetry off");
        return;
    };
    match serial::claim(index, on_byte) {
        Ok(()) => {
            PORT.store(index, Ordering::Release);
            kprintln!("{}", Announcement { port: index });
        }
        Err(error) => kprintln!("telemetry: cannot use ttyS{index}: {error}; telemetry off"),
    }
}

/// The claimed port's receive handler (interrupt context, interrupts masked).
fn on_byte(byte: u8) {
    let request = {
        let mut line = LINE.lock();
        if byte != b'\n' && byte != b'\r' {
            if line.len < line.bytes.len() {
                let at = line.len;
                line.bytes[at] = byte;
                line.len += 1;
            } else {
                line.overflowed = true;
            }
            return;
        }
        let request = (line.bytes, line.len, line.overflowed);
        line.len = 0;
        line.overflowed = false;
        request
    };
    let (bytes, len, overflowed) = request;
    let port = PORT.load(Ordering::Acquire);
    if port == NO_PORT {
        return;
    }
    let text = core::str::from_utf8(&bytes[..len]).unwrap_or("\u{fffd}");
    let mut out = PolledWriter::new(port);
    answer(text.trim(), overflowed, &mut out);
    out.flush();
}

/// Answers one request line.
fn answer(request: &str, overflowed: bool, out: &mut dyn Write) {
    if request.is_empty() && !overflowed {
        return;
    }
    let _ = match Request::parse(request) {
        _ if overflowed => write_error(out, "request line too long"),
        Some(Request::Snapshot) => write_snapshot(out, next_sequence(), None),
        Some(Request::Scan) => {
            // A tracker that is off still gets its snapshot, which says why it is off.
            let _ = crate::mm::leak::scan();
            write_snapshot(out, next_sequence(), None)
        }
        Some(Request::Detail(pid)) => write_snapshot(out, next_sequence(), Some(pid)),
        None => write_error(out, "unknown request; use snapshot, scan or detail PID"),
    };
}

/// Formats into a small buffer and writes it to the UART by polling.
struct PolledWriter {
    port: usize,
    buf: [u8; 128],
    len: usize,
}

impl PolledWriter {
    fn new(port: usize) -> Self {
        Self {
            port,
            buf: [0; 128],
            len: 0,
        }
    }

    fn flush(&mut self) {
        serial::write_polled(self.port, &self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for PolledWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = byte;
            self.len += 1;
        }
        Ok(())
    }
}

crate::kernel_test!(telemetry_answers_requests, {
    let mut out = alloc::string::String::new();
    answer("snapshot", false, &mut out);
    crate::check!(out.starts_with("telemetry-begin version=1 seq="), out);
    crate::check!(
        out.ends_with("\n")
            && out
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("telemetry-end seq=")),
        out
    );
    out.clear();
    for bad in ["frobnicate", "detail", "detail x", "detail -1"] {
        out.clear();
        answer(bad, false, &mut out);
        crate::check_eq!(
            out.as_str(),
            "telemetry-error version=1 message=\"unknown request; use snapshot, scan or detail PID\"\n"
        );
    }
    out.clear();
    answer("", false, &mut out);
    crate::check!(out.is_empty());
    answer("snapshot", true, &mut out);
    crate::check!(out.contains("request line too long"));
});
