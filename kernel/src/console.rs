//! The kernel console and its log ring (what `dmesg` will read).
//!
//! Every `kprintln!` line gets a Linux-style `[seconds.micros]` timestamp, goes to the console
//! UART selected by `console=ttyS<n>`, and is kept in a fixed ring so that later readers (the
//! `dmesg` gdb monitor command, /dev/kmsg, the TUI) see boot messages printed before they existed.
//! The panic path bypasses all of this through `emergency_write`.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::drivers::serial;
use crate::sync::IrqSpinLock;

static CONSOLE_PORT: AtomicUsize = AtomicUsize::new(0);
static CONSOLE_ENABLED: AtomicBool = AtomicBool::new(true);

pub const LOG_CAPACITY: usize = 64 * 1024;

/// The most recent `N` bytes of kernel output.
pub struct LogRing<const N: usize = LOG_CAPACITY> {
    buf: [u8; N],
    /// Total bytes ever written; the ring holds the last `min(written, CAPACITY)`.
    written: u64,
    at_line_start: bool,
}

impl<const N: usize> LogRing<N> {
    const fn new() -> Self {
        Self {
            buf: [0; N],
            written: 0,
            at_line_start: true,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.buf[(self.written % N as u64) as usize] = byte;
            self.written += 1;
        }
    }

    /// Copies the retained log, oldest first, into `out`; returns the number of bytes copied.
    pub fn copy_to(&self, out: &mut [u8]) -> usize {
        let held = self.written.min(N as u64) as usize;
        let start = self.written as usize - held;
        let n = held.min(out.len());
        for (i, slot) in out[..n].iter_mut().enumerate() {
            *slot = self.buf[(start + held - n + i) % N];
        }
        n
    }

    /// Copies retained bytes from `offset` (0 = the oldest retained byte) into `out`; returns
    /// the number copied (0 at the end). For readers that stream the log in pieces.
    pub fn copy_from(&self, offset: usize, out: &mut [u8]) -> usize {
        let held = self.written.min(N as u64) as usize;
        let start = self.written as usize - held;
        let n = held.saturating_sub(offset).min(out.len());
        for (i, slot) in out[..n].iter_mut().enumerate() {
            *slot = self.buf[(start + offset + i) % N];
        }
        n
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

static LOG: IrqSpinLock<LogRing> = IrqSpinLock::new(LogRing::new());

/// Selects the console UART (0 = ttyS0).
pub fn set_port(index: usize) {
    CONSOLE_PORT.store(index, Ordering::Relaxed);
}

pub fn port() -> usize {
    CONSOLE_PORT.load(Ordering::Relaxed)
}

/// Whether `index` is the (enabled) console port.
pub fn is_console(index: usize) -> bool {
    CONSOLE_ENABLED.load(Ordering::Relaxed) && port() == index
}

/// `console=` named something we cannot drive: keep the log, print nothing.
pub fn disable() {
    CONSOLE_ENABLED.store(false, Ordering::Relaxed);
}

struct LineWriter<'a> {
    log: &'a mut LogRing,
}

impl Write for LineWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for line in s.split_inclusive('\n') {
            if self.log.at_line_start {
                let mut stamp = StampBuf::default();
                let ns = crate::time::now_ns();
                let _ = write!(
                    stamp,
                    "[{:5}.{:06}] ",
                    ns / 1_000_000_000,
                    (ns / 1000) % 1_000_000
                );
                emit(self.log, stamp.as_bytes());
                self.log.at_line_start = false;
            }
            emit(self.log, line.as_bytes());
            if line.ends_with('\n') {
                self.log.at_line_start = true;
            }
        }
        Ok(())
    }
}

fn emit(log: &mut LogRing, bytes: &[u8]) {
    log.push(bytes);
    if CONSOLE_ENABLED.load(Ordering::Relaxed) {
        write_translated(bytes, |chunk| serial::write(port(), chunk));
    }
}

/// Serial terminals want CR LF.
fn write_translated(bytes: &[u8], mut out: impl FnMut(&[u8])) {
    for piece in bytes.split_inclusive(|&b| b == b'\n') {
        match piece.strip_suffix(b"\n") {
            Some(text) => {
                out(text);
                out(b"\r\n");
            }
            None => out(piece),
        }
    }
}

#[derive(Default)]
struct StampBuf {
    buf: [u8; 32],
    len: usize,
}

impl StampBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Write for StampBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut log = LOG.lock();
    let _ = LineWriter { log: &mut log }.write_fmt(args);
}

/// Runs `f` with the log ring (for dmesg-like readers).
pub fn with_log<R>(f: impl FnOnce(&LogRing) -> R) -> R {
    f(&LOG.lock())
}

/// Like `with_log`, but gives up instead of waiting if the log is being written (the debugger
/// may have stopped the machine inside `kprintln!`).
pub fn try_with_log<R>(f: impl FnOnce(&LogRing) -> R) -> Option<R> {
    LOG.try_lock().map(|log| f(&log))
}

/// Console output for the panic path: no locks waited on, no allocation.
pub struct EmergencyWriter;

impl Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(mut log) = LOG.try_lock() {
            log.push(s.as_bytes());
        }
        write_translated(s.as_bytes(), |chunk| serial::emergency_write(port(), chunk));
        Ok(())
    }
}

#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! kprintln {
    () => ($crate::kprint!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}

crate::kernel_test!(log_ring_keeps_latest_bytes, {
    let mut ring = LogRing::<16>::new();
    let mut out = [0u8; 8];
    crate::check_eq!(ring.copy_to(&mut out), 0);
    ring.push(b"hello");
    crate::check_eq!(ring.copy_to(&mut out), 5);
    crate::check_eq!(&out[..5], b"hello");
    for _ in 0..4 {
        ring.push(b"abcd");
    }
    ring.push(b"XY");
    crate::check_eq!(ring.copy_to(&mut out), 8);
    crate::check_eq!(&out, b"cdabcdXY");
});

crate::kernel_test!(log_ring_holds_the_boot_log, {
    let (written, tail) = with_log(|log| {
        let mut tail = alloc::vec![0u8; LOG_CAPACITY];
        let n = log.copy_to(&mut tail);
        (
            log.written(),
            alloc::string::String::from_utf8_lossy(&tail[..n]).into_owned(),
        )
    });
    crate::check!(written > 0);
    crate::check!(
        tail.contains("Cadenza"),
        "the boot banner must be in the log ring"
    );
    crate::check!(tail.contains("] Command line: "), "lines carry timestamps");
});
