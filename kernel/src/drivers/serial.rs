//! 16550 UART driver for COM1..COM4, interrupt-driven in both directions.
//!
//! Received bytes are drained into a ring by the RX interrupt so nothing is lost while the kernel
//! is busy; transmitted bytes queue in a ring that the THR-empty interrupt drains, so a slow
//! 115200-baud line never stalls the writer. Before interrupts are up, and on the panic path,
//! the same port is driven by polling: the console must work with interrupts masked and with the
//! driver's lock held by whoever we interrupted.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arch::x86_64::cpu::{inb, outb};
use crate::sync::IrqSpinLock;

/// I/O base and ISA IRQ of COM1..COM4 (ttyS0..ttyS3).
pub const PORTS: [(u16, u8); 4] = [(0x3f8, 4), (0x2f8, 3), (0x3e8, 4), (0x2e8, 3)];

const THR: u16 = 0; // transmit holding (write) / receive buffer (read)
const IER: u16 = 1;
const IIR_FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const SCR: u16 = 7;

const IER_RX: u8 = 0x01;
const IER_THRE: u8 = 0x02;
const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;
const MCR_DTR_RTS_OUT2: u8 = 0x0b;
const MCR_LOOPBACK: u8 = 0x10;
const FIFO_DEPTH: usize = 16;

/// A fixed-size byte ring; the oldest bytes are kept when full (new ones are counted as lost).
pub struct Ring<const N: usize> {
    buf: [u8; N],
    head: usize,
    len: usize,
    pub dropped: u64,
}

impl<const N: usize> Ring<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    pub fn push(&mut self, byte: u8) -> bool {
        if self.len == N {
            self.dropped += 1;
            return false;
        }
        self.buf[(self.head + self.len) % N] = byte;
        self.len += 1;
        true
    }

    pub fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let byte = self.buf[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(byte)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == N
    }
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PortStats {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub interrupts: u64,
}

struct Uart {
    base: u16,
    present: bool,
    interrupts_on: bool,
    rx: Ring<1024>,
    tx: Ring<8192>,
    stats: PortStats,
}

impl Uart {
    const fn new(base: u16) -> Self {
        Self {
            base,
            present: false,
            interrupts_on: false,
            rx: Ring::new(),
            tx: Ring::new(),
            stats: PortStats {
                rx_bytes: 0,
                tx_bytes: 0,
                rx_dropped: 0,
                interrupts: 0,
            },
        }
    }

    fn reg(&self, offset: u16) -> u16 {
        self.base + offset
    }

    fn probe_and_init(&mut self) -> bool {
        // An absent UART floats the bus: the scratch register will not hold a value.
        outb(self.reg(SCR), 0xa5);
        if inb(self.reg(SCR)) != 0xa5 {
            return false;
        }
        outb(self.reg(IER), 0);
        outb(self.reg(LCR), 0x80); // DLAB: divisor follows
        outb(self.reg(THR), 1); // 115200 baud
        outb(self.reg(IER), 0);
        outb(self.reg(LCR), 0x03); // 8N1
        outb(self.reg(IIR_FCR), 0xc7); // FIFOs on, cleared, RX trigger at 14 bytes
        outb(self.reg(MCR), MCR_DTR_RTS_OUT2);
        self.present = true;
        true
    }

    fn thr_empty(&self) -> bool {
        inb(self.reg(LSR)) & LSR_THR_EMPTY != 0
    }

    fn put_polled(&mut self, byte: u8) {
        let mut spins = 0u32;
        while !self.thr_empty() && spins < 1_000_000 {
            core::hint::spin_loop();
            spins += 1;
        }
        outb(self.reg(THR), byte);
        self.stats.tx_bytes += 1;
    }

    fn flush_polled(&mut self) {
        while let Some(byte) = self.tx.pop() {
            self.put_polled(byte);
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if !self.present {
            return;
        }
        for &byte in bytes {
            if !self.interrupts_on {
                self.put_polled(byte);
                continue;
            }
            if self.tx.is_full() {
                // The line is slower than the writer: make room the slow way.
                if let Some(old) = self.tx.pop() {
                    self.put_polled(old);
                }
            }
            self.tx.push(byte);
        }
        if self.interrupts_on {
            self.kick_tx();
        }
    }

    /// Moves queued bytes into the FIFO if it is empty and arms the THR-empty interrupt while
    /// more remain.
    fn kick_tx(&mut self) {
        if self.thr_empty() {
            for _ in 0..FIFO_DEPTH {
                let Some(byte) = self.tx.pop() else { break };
                outb(self.reg(THR), byte);
                self.stats.tx_bytes += 1;
            }
        }
        let ier = if self.tx.is_empty() {
            IER_RX
        } else {
            IER_RX | IER_THRE
        };
        outb(self.reg(IER), ier);
    }

    /// Takes whatever the FIFO holds, for a claimed port (`claim`), into `out`.
    fn take_rx(&mut self, out: &mut [u8; FIFO_DEPTH]) -> usize {
        let mut n = 0;
        while n < out.len() && inb(self.reg(LSR)) & LSR_DATA_READY != 0 {
            out[n] = inb(self.reg(THR));
            self.stats.rx_bytes += 1;
            n += 1;
        }
        n
    }

    fn drain_rx(&mut self) {
        while inb(self.reg(LSR)) & LSR_DATA_READY != 0 {
            let byte = inb(self.reg(THR));
            self.stats.rx_bytes += 1;
            if !self.rx.push(byte) {
                self.stats.rx_dropped += 1;
            }
        }
    }

    fn handle_interrupt(&mut self) {
        self.stats.interrupts += 1;
        self.drain_rx();
        self.kick_tx();
    }
}

static UARTS: [IrqSpinLock<Uart>; 4] = [
    IrqSpinLock::new(Uart::new(PORTS[0].0)),
    IrqSpinLock::new(Uart::new(PORTS[1].0)),
    IrqSpinLock::new(Uart::new(PORTS[2].0)),
    IrqSpinLock::new(Uart::new(PORTS[3].0)),
];

/// Probes and programs every COM port; returns which are present.
pub fn init() -> [bool; 4] {
    let mut present = [false; 4];
    for (i, uart) in UARTS.iter().enumerate() {
        present[i] = uart.lock().probe_and_init();
    }
    present
}

pub fn is_present(index: usize) -> bool {
    UARTS.get(index).is_some_and(|u| u.lock().present)
}

/// Switches a port to interrupt-driven operation. `route_irq` must already deliver the port's
/// ISA IRQ to `irq_handler`.
pub fn enable_interrupts(index: usize) {
    if let Some(uart) = UARTS.get(index) {
        let mut uart = uart.lock();
        if uart.present {
            uart.interrupts_on = true;
            uart.kick_tx();
        }
    }
}

/// Receives the bytes of a claimed port, one at a time, in interrupt context.
pub type RxHandler = fn(byte: u8);

const UNCLAIMED: usize = 0;
static OWNERS: [AtomicUsize; 4] = [const { AtomicUsize::new(UNCLAIMED) }; 4];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    NoSuchPort,
    IsConsole,
    AlreadyClaimed,
}

impl core::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoSuchPort => "no such serial port",
            Self::IsConsole => "the port is the console",
            Self::AlreadyClaimed => "the port is already in use",
        })
    }
}

/// Gives a port to a kernel service (the gdb stub, the telemetry channel): its received bytes go
/// to `handler` instead of the RX ring, and its output is written by polling (`write_polled`),
/// which works while the machine is stopped.
pub fn claim(index: usize, handler: RxHandler) -> Result<(), ClaimError> {
    if !is_present(index) {
        return Err(ClaimError::NoSuchPort);
    }
    if crate::console::is_console(index) {
        return Err(ClaimError::IsConsole);
    }
    OWNERS[index]
        .compare_exchange(
            UNCLAIMED,
            handler as usize,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map(|_| ())
        .map_err(|_| ClaimError::AlreadyClaimed)
}

/// Sends the console UART's input to the terminal layer (`tty`), like `claim` but for the port
/// the kernel log also writes to.
pub fn route_console_input(index: usize, handler: RxHandler) {
    if let Some(owner) = OWNERS.get(index) {
        owner.store(handler as usize, Ordering::Release);
    }
}

pub fn is_claimed(index: usize) -> bool {
    OWNERS
        .get(index)
        .is_some_and(|o| o.load(Ordering::Acquire) != UNCLAIMED)
}

fn owner(index: usize) -> Option<RxHandler> {
    let handler = OWNERS.get(index)?.load(Ordering::Acquire);
    // SAFETY: only `claim` stores non-zero values, and it stores `RxHandler` function pointers.
    (handler != UNCLAIMED).then(|| unsafe { core::mem::transmute::<usize, RxHandler>(handler) })
}

/// Services every interrupt-driven port (COM1/COM3 and COM2/COM4 share IRQ lines).
pub fn irq_handler(_vector: u8) {
    for (index, uart) in UARTS.iter().enumerate() {
        let Some(handler) = owner(index) else {
            let mut uart = uart.lock();
            if uart.interrupts_on {
                uart.handle_interrupt();
            }
            continue;
        };
        // A claimed port: hand the bytes over with the lock released (the gdb stub may stop
        // the machine right here and poll the port itself).
        let mut bytes = [0u8; FIFO_DEPTH];
        let n = {
            let mut uart = uart.lock();
            if !uart.interrupts_on {
                continue;
            }
            uart.stats.interrupts += 1;
            let n = uart.take_rx(&mut bytes);
            // The console stays interrupt-driven for output.
            uart.kick_tx();
            n
        };
        for &byte in &bytes[..n] {
            handler(byte);
        }
    }
}

/// Reads one byte by polling, if one is waiting (claimed ports, with the machine stopped).
pub fn read_polled(index: usize) -> Option<u8> {
    let base = PORTS.get(index)?.0;
    (inb(base + LSR) & LSR_DATA_READY != 0).then(|| inb(base + THR))
}

/// Writes by polling, without the driver's TX queue (claimed ports). Bytes go out in bursts of
/// a FIFO's worth per "transmitter empty", halving the register accesses of byte-by-byte
/// polling (each one is an exit under emulation).
pub fn write_polled(index: usize, bytes: &[u8]) {
    let Some(&(base, _)) = PORTS.get(index) else {
        return;
    };
    for burst in bytes.chunks(FIFO_DEPTH) {
        let mut spins = 0u32;
        while inb(base + LSR) & LSR_THR_EMPTY == 0 && spins < 1_000_000 {
            core::hint::spin_loop();
            spins += 1;
        }
        for &byte in burst {
            outb(base + THR, byte);
        }
    }
    if let Some(uart) = UARTS.get(index)
        && let Some(mut uart) = uart.try_lock()
    {
        uart.stats.tx_bytes += bytes.len() as u64;
    }
}

pub fn write(index: usize, bytes: &[u8]) {
    if let Some(uart) = UARTS.get(index) {
        uart.lock().write(bytes);
    }
}

/// Takes up to `buf.len()` received bytes.
pub fn read(index: usize, buf: &mut [u8]) -> usize {
    let Some(uart) = UARTS.get(index) else {
        return 0;
    };
    let mut uart = uart.lock();
    let mut n = 0;
    while n < buf.len() {
        let Some(byte) = uart.rx.pop() else { break };
        buf[n] = byte;
        n += 1;
    }
    n
}

pub fn stats(index: usize) -> PortStats {
    UARTS.get(index).map(|u| u.lock().stats).unwrap_or_default()
}

/// Writes with polling only, never waiting for the driver's lock: for panic reports.
///
/// If the lock is free, queued output is flushed first so the report follows it in order. If it
/// is held (we interrupted the holder on this CPU), the port is driven directly; the holder's
/// state is not touched.
pub fn emergency_write(index: usize, bytes: &[u8]) {
    let Some(uart) = UARTS.get(index) else { return };
    if let Some(mut uart) = uart.try_lock() {
        if uart.present {
            uart.flush_polled();
            for &byte in bytes {
                uart.put_polled(byte);
            }
        }
        return;
    }
    let base = PORTS[index].0;
    for &byte in bytes {
        let mut spins = 0u32;
        while inb(base + LSR) & LSR_THR_EMPTY == 0 && spins < 1_000_000 {
            core::hint::spin_loop();
            spins += 1;
        }
        outb(base + THR, byte);
    }
}

/// Puts a port in loopback mode (transmitted bytes come back as received bytes), for self-tests.
pub fn set_loopback(index: usize, on: bool) {
    if let Some(uart) = UARTS.get(index) {
        let uart = uart.lock();
        let mcr = if on {
            MCR_DTR_RTS_OUT2 | MCR_LOOPBACK
        } else {
            MCR_DTR_RTS_OUT2
        };
        outb(uart.reg(MCR), mcr);
    }
}

crate::kernel_test!(serial_rx_interrupt_via_loopback, {
    // Needs a UART that is not the console; the launcher always gives the guest ttyS1.
    let console = crate::console::port();
    let Some(index) = (0..4).find(|&i| i != console && is_present(i) && !is_claimed(i)) else {
        return Err(crate::selftest::fail(
            "no second UART: boot with at least two -serial ports",
        ));
    };
    let before = stats(index);
    set_loopback(index, true);
    write(index, b"ping");
    let deadline = crate::time::now_ns() + 500_000_000;
    let mut got = [0u8; 8];
    let mut n = 0;
    while n < 4 && crate::time::now_ns() < deadline {
        crate::arch::x86_64::cpu::enable_interrupts_and_halt();
        n += read(index, &mut got[n..]);
    }
    set_loopback(index, false);
    crate::check_eq!(&got[..n], b"ping");
    crate::check!(
        stats(index).interrupts > before.interrupts,
        "bytes must arrive by interrupt"
    );
});
