//! The in-kernel gdb stub, KGDB style: `kgdboc=ttyS1` puts gdb's remote protocol on a UART.
//!
//! Everything gdb-specific lives in the host-testable `debugger` crate; this module only connects
//! it to the machine: a serial "connection" that polls the UART (interrupts are masked while the
//! machine is stopped), the traps that stop the machine (`#BP`, `#DB`, gdb's Ctrl-C arriving as a
//! serial interrupt, panics and fatal exceptions), and `KernelMachine` (registers of the trapped
//! context, fault-free memory, debug registers).
//!
//! Like Linux: `kgdbwait` stops early in boot until gdb attaches; a panic or fatal exception
//! with kgdb configured stops in the stub before the machine halts (break-on-oops), so `bt`,
//! `info registers` and `x` show the crash site.

mod machine;
mod monitor;

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use debugger::{Connection, ConnectionExt, Session, Trap};

use crate::arch::x86_64::{cpu, trap};
use crate::boot::Cmdline;
use crate::drivers::serial;
use crate::kprintln;
use machine::KernelMachine;

/// gdb's end of the line: the claimed UART, driven by polling.
#[derive(Clone)]
struct UartLine {
    port: usize,
    out: [u8; 64],
    len: usize,
}

impl UartLine {
    fn new(port: usize) -> Self {
        Self {
            port,
            out: [0; 64],
            len: 0,
        }
    }
}

const POLL_BACKOFF_SPINS: usize = 2000;

/// The UART cannot fail; a lost byte is gdb's checksum's business.
#[derive(Debug)]
pub enum LineError {}

impl Connection for UartLine {
    type Error = LineError;

    fn write(&mut self, byte: u8) -> Result<(), LineError> {
        if self.len == self.out.len() {
            self.flush()?;
        }
        self.out[self.len] = byte;
        self.len += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LineError> {
        serial::write_polled(self.port, &self.out[..self.len]);
        self.len = 0;
        Ok(())
    }
}

impl ConnectionExt for UartLine {
    fn read(&mut self) -> Result<u8, LineError> {
        loop {
            if let Some(byte) = serial::read_polled(self.port) {
                return Ok(byte);
            }
            // Back off between polls: under emulation every UART register access is an exit
            // that takes the emulator's I/O lock, and polling flat out starves the thread that
            // delivers gdb's bytes to the UART (measured: 200+ ms per `stepi`).
            for _ in 0..POLL_BACKOFF_SPINS {
                cpu::pause();
            }
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, LineError> {
        Ok(None)
    }
}

static SESSION: spin::Mutex<Option<Session<KernelMachine, UartLine>>> = spin::Mutex::new(None);
const NO_PORT: usize = usize::MAX;
static PORT: AtomicUsize = AtomicUsize::new(NO_PORT);
/// The signal to report for the next compiled-in breakpoint (0: plain SIGTRAP).
static PENDING_SIGNAL: AtomicU8 = AtomicU8::new(0);
static STOPPED: AtomicBool = AtomicBool::new(false);

const SIGABRT: u8 = 6;

/// Whether `kgdboc=` configured a stub.
pub fn is_enabled() -> bool {
    PORT.load(Ordering::Acquire) != NO_PORT
}

/// `kgdboc=ttyS<n>[,baud]`: claims the UART and arms the debug traps; `kgdbwait` then stops
/// here until gdb attaches. Needs the heap (the packet buffer) and serial interrupts.
pub fn init(cmdline: &Cmdline) {
    let Some(device) = cmdline.get("kgdboc") else {
        return;
    };
    let name = device.split(',').next().unwrap_or(device);
    let Some(port) = name
        .strip_prefix("ttyS")
        .and_then(|n| n.parse::<usize>().ok())
    else {
        kprintln!("kgdb: kgdboc={device}: expected ttyS<n>; debugger disabled");
        return;
    };
    if let Err(error) = serial::claim(port, on_serial_byte) {
        kprintln!("kgdb: cannot use ttyS{port}: {error}; debugger disabled");
        return;
    }
    *SESSION.lock() = Some(Session::new(KernelMachine, UartLine::new(port)));
    PORT.store(port, Ordering::Release);
    trap::set_debug_trap_handler(on_debug_trap);
    kprintln!(
        "kgdb: registered on ttyS{port}; attach with: gdb <kernel ELF> -ex 'target remote <ttyS{port} socket>'"
    );
    if cmdline.has("kgdbwait") {
        kprintln!("kgdb: waiting for gdb on ttyS{port} (set remotetimeout 10 if gdb times out)");
        breakpoint();
        kprintln!("kgdb: continuing boot");
    }
}

/// A compiled-in breakpoint: stops in the stub if gdb is configured.
fn breakpoint() {
    cpu::breakpoint();
}

/// `#BP` or `#DB` with the debugger configured. False leaves the trap to the default handling.
fn on_debug_trap(vector: u64) -> bool {
    let trap = match vector {
        3 => match PENDING_SIGNAL.swap(0, Ordering::AcqRel) {
            0 => Trap::Int3,
            signal => Trap::Fatal { signal },
        },
        1 => Trap::Debug {
            dr6: cpu::take_dr6(),
        },
        _ => return false,
    };
    stop(trap)
}

/// Stops the machine in the stub until gdb resumes it. False if no session could be entered.
fn stop(trap: Trap) -> bool {
    // A trap taken while the stub itself runs (or holds the session) cannot be debugged.
    let Some(mut session) = SESSION.try_lock() else {
        return false;
    };
    let Some(session) = session.as_mut() else {
        return false;
    };
    STOPPED.store(true, Ordering::Release);
    session.stopped(trap);
    STOPPED.store(false, Ordering::Release);
    true
}

/// Bytes from gdb while the kernel runs (serial interrupt context): a Ctrl-C or a new gdb
/// stops the kernel right here, in the interrupted context.
fn on_serial_byte(byte: u8) {
    let Some(mut session) = SESSION.try_lock() else {
        return;
    };
    let Some(session) = session.as_mut() else {
        return;
    };
    STOPPED.store(true, Ordering::Release);
    let _ = session.incoming_while_running(byte);
    STOPPED.store(false, Ordering::Release);
}

/// Break-on-oops for panics: called by the panic handler after its report. Stops in the stub
/// (as SIGABRT at the panic handler's frame, so `bt` walks into the panicking code).
pub fn on_panic() {
    if !is_enabled() || STOPPED.load(Ordering::Acquire) {
        return;
    }
    kprintln!("kgdb: panic: stopping for gdb");
    PENDING_SIGNAL.store(SIGABRT, Ordering::Release);
    breakpoint();
}

/// Break-on-oops for fatal CPU exceptions, called from the exception's own trap (the trapped
/// context is the faulting one).
pub fn on_fatal_exception(vector: u64) {
    if !is_enabled() || STOPPED.load(Ordering::Acquire) {
        return;
    }
    let signal = match vector {
        0 | 16 | 19 => 8, // SIGFPE
        6 => 4,           // SIGILL
        1 | 3 => 5,       // SIGTRAP
        _ => 11,          // SIGSEGV
    };
    kprintln!("kgdb: fatal exception: stopping for gdb");
    stop(Trap::Fatal { signal });
}
