//! The serial console as a terminal: Linux's line discipline (N_TTY) and termios.
//!
//! Bytes from the UART arrive in interrupt context and go through input processing (CR to NL,
//! signal characters, canonical line editing with erase/kill/EOF, echo); readers sleep on a wait
//! queue until a line (canonical mode) or `VMIN` bytes (raw mode) are ready. Output goes through
//! `OPOST`/`ONLCR`. The termios, window-size and foreground-group ioctls use Linux's numbers and
//! struct layouts, so shells and editors configure it as they would a Linux serial port.
//!
//! Job control: the terminal belongs to the session that made it its controlling terminal (the
//! console starts out with init's session 0), and only the foreground process group of that
//! session may read it; a background group that tries is stopped with SIGTTIN (SIGTTOU for
//! changing settings or the foreground group, and for writing with `TOSTOP`), which is how a
//! shell's `cat &` ends up "Stopped (tty input)".
//!
//! Who may change that is Linux's drivers/tty/tty_jobctrl.c: a process's controlling terminal
//! is the console when its session is the console's (and it did not give it up with
//! `TIOCNOTTY`); only such a process may pick the foreground group (`TIOCSPGRP`, a group of its
//! own session) or push input (`TIOCSTI`, or root); only a session leader without one may make
//! the console its controlling terminal (`TIOCSCTTY`), and taking it from another session needs
//! root and an argument of 1. Otherwise a user could make its own group the foreground of
//! someone else's terminal and read what they type. Cadenza's one accommodation: until some
//! session claims the console, init's session 0 counts as its owner, so a shell run as init has
//! job control (Linux never gives init's session the console).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::drivers::serial;
use crate::errno::{EResult, Errno};
use crate::fs::OpenFlags;
use crate::fs::dev::{CharDevice, PollEvents};
use crate::sync::IrqSpinLock;
use crate::task::{self, Pid, WaitQueue, signal};

// c_iflag
const ICRNL: u32 = 0o400;
const INLCR: u32 = 0o100;
const IGNCR: u32 = 0o200;
const IXON: u32 = 0o2000;
// c_oflag
const OPOST: u32 = 0o1;
const ONLCR: u32 = 0o4;
// c_lflag
const ISIG: u32 = 0o1;
const ICANON: u32 = 0o2;
const ECHO: u32 = 0o10;
const ECHOE: u32 = 0o20;
const ECHOK: u32 = 0o40;
const ECHOCTL: u32 = 0o1000;
const ECHOKE: u32 = 0o4000;
const TOSTOP: u32 = 0o400;
const IEXTEN: u32 = 0o100000;
// c_cc indices
const VINTR: usize = 0;
const VQUIT: usize = 1;
const VERASE: usize = 2;
const VKILL: usize = 3;
const VEOF: usize = 4;
const VTIME: usize = 5;
const VMIN: usize = 6;
const VSUSP: usize = 10;
const VWERASE: usize = 14;

/// Longest canonical line (Linux's N_TTY_BUF_SIZE less one).
const MAX_LINE: usize = 4095;

/// `struct termios` as `TCGETS` returns it (36 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; 19],
}

impl Termios {
    /// Linux's defaults for a serial console (`stty sane`).
    pub const fn sane() -> Self {
        Self {
            iflag: ICRNL | IXON,
            oflag: OPOST | ONLCR,
            cflag: 0o10000 | 0o60 | 0o200 | 0o2000 | 0o15, // B38400-ish | CS8 | CREAD | HUPCL
            lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            line: 0,
            cc: [
                3, 0x1c, 0x7f, 0x15, 4, 0, 1, 0, 0x11, 0x13, 0x1a, 0, 0x12, 0x0f, 0x17, 0x16, 0, 0,
                0,
            ],
        }
    }

    pub fn to_bytes(self) -> [u8; 36] {
        let mut bytes = [0u8; 36];
        for (i, word) in [self.iflag, self.oflag, self.cflag, self.lflag]
            .iter()
            .enumerate()
        {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        bytes[16] = self.line;
        bytes[17..36].copy_from_slice(&self.cc);
        bytes
    }

    pub fn from_bytes(bytes: &[u8; 36]) -> Self {
        let word = |i: usize| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4"));
        let mut cc = [0u8; 19];
        cc.copy_from_slice(&bytes[17..36]);
        Self {
            iflag: word(0),
            oflag: word(1),
            cflag: word(2),
            lflag: word(3),
            line: bytes[16],
            cc,
        }
    }
}

struct Tty {
    port: usize,
    termios: Termios,
    rows: u16,
    columns: u16,
    /// The line being edited (canonical mode).
    line: Vec<u8>,
    /// Bytes readers may take.
    ready: VecDeque<u8>,
    /// End-of-file marks (^D on an empty line) not yet consumed by a read.
    eof: usize,
    foreground: Pid,
    /// The session whose controlling terminal this is (0: init's, until another claims it).
    session: Pid,
    /// Processes (thread groups) of that session that gave it up (`TIOCNOTTY`).
    detached: Vec<Pid>,
}

impl Tty {
    /// Whether this is the controlling terminal of process `tgid` of session `sid`.
    fn controls(&self, tgid: Pid, sid: Pid) -> bool {
        self.session == sid && !self.detached.contains(&tgid)
    }

    /// Makes it session `sid`'s controlling terminal with `foreground` in front.
    fn attach(&mut self, sid: Pid, foreground: Pid) {
        self.session = sid;
        self.foreground = foreground;
        self.detached.clear();
    }
}

/// The caller's thread group, process group and session.
fn caller() -> EResult<(Pid, Pid, Pid)> {
    task::with_current(|p| (p.tgid, p.pgid, p.sid))
}

static CONSOLE: IrqSpinLock<Tty> = IrqSpinLock::new(Tty {
    port: 0,
    termios: Termios::sane(),
    rows: 24,
    columns: 80,
    line: Vec::new(),
    ready: VecDeque::new(),
    eof: 0,
    foreground: 0,
    session: 0,
    detached: Vec::new(),
});
static READERS: WaitQueue = WaitQueue::new();

/// The console terminal as a character device for the VFS: `/dev/console` (5:1), `/dev/tty`
/// (5:0, the controlling terminal — the console is the only one) and the console's
/// `/dev/ttyS<n>` (4:64+n). Terminal ioctls need user memory and go through `ioctl` above.
struct ConsoleDevice;

impl CharDevice for ConsoleDevice {
    fn name(&self) -> &'static str {
        "ttyS"
    }

    fn read(&self, _minor: u32, buf: &mut [u8], _flags: OpenFlags) -> EResult<usize> {
        read(buf)
    }

    fn write(&self, _minor: u32, buf: &[u8], _flags: OpenFlags) -> EResult<usize> {
        write(buf)
    }

    fn poll(&self, _minor: u32) -> PollEvents {
        if readable() {
            PollEvents::IN | PollEvents::RDNORM | PollEvents::OUT | PollEvents::WRNORM
        } else {
            PollEvents::OUT | PollEvents::WRNORM
        }
    }
}

/// Whether a character device number is a terminal this module answers ioctls for.
pub fn is_terminal(major: u32, minor: u32) -> bool {
    let port = CONSOLE.lock().port as u32;
    (major == 5 && minor <= 1) || (major == 4 && minor == 64 + port)
}

/// Takes over the console UART's input (the kernel log keeps writing to it) and registers the
/// terminal devices.
pub fn init() {
    let port = crate::console::port();
    CONSOLE.lock().port = port;
    serial::route_console_input(port, input);
    let device: alloc::sync::Arc<dyn CharDevice> = alloc::sync::Arc::new(ConsoleDevice);
    for (major, minor) in [(5, 0), (5, 1), (4, 64 + port as u32)] {
        if let Err(error) = crate::fs::dev::register_char(major, minor, 1, device.clone()) {
            crate::kprintln!("tty: cannot register {major}:{minor}: {error}");
        }
    }
}

fn output_raw(port: usize, bytes: &[u8]) {
    serial::write(port, bytes);
}

impl Tty {
    /// Output processing (`OPOST`, `ONLCR`).
    fn output(&self, bytes: &[u8]) {
        if self.termios.oflag & (OPOST | ONLCR) != (OPOST | ONLCR) {
            output_raw(self.port, bytes);
            return;
        }
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            match piece.strip_suffix(b"\n") {
                Some(text) => {
                    output_raw(self.port, text);
                    output_raw(self.port, b"\r\n");
                }
                None => output_raw(self.port, piece),
            }
        }
    }

    fn echo(&self, byte: u8) {
        if self.termios.lflag & ECHO == 0 {
            return;
        }
        if self.termios.lflag & ECHOCTL != 0 && byte < 0x20 && byte != b'\n' && byte != b'\t' {
            self.output(&[b'^', byte + 0x40]);
        } else {
            self.output(&[byte]);
        }
    }

    fn erase_one(&mut self) {
        if let Some(byte) = self.line.pop()
            && self.termios.lflag & ECHO != 0
            && self.termios.lflag & ECHOE != 0
        {
            let width = if byte < 0x20 && self.termios.lflag & ECHOCTL != 0 {
                2
            } else {
                1
            };
            for _ in 0..width {
                self.output(b"\x08 \x08");
            }
        }
    }

    /// Input processing for one received byte; returns the signal to send to the foreground
    /// group, if the byte was a signal character.
    fn receive(&mut self, mut byte: u8) -> Option<u8> {
        let t = self.termios;
        if byte == b'\r' {
            if t.iflag & IGNCR != 0 {
                return None;
            }
            if t.iflag & ICRNL != 0 {
                byte = b'\n';
            }
        } else if byte == b'\n' && t.iflag & INLCR != 0 {
            byte = b'\r';
        }
        if t.lflag & ISIG != 0 {
            let signal = match byte {
                b if b == t.cc[VINTR] && b != 0 => Some(signal::SIGINT),
                b if b == t.cc[VQUIT] && b != 0 => Some(signal::SIGQUIT),
                b if b == t.cc[VSUSP] && b != 0 => Some(signal::SIGTSTP),
                _ => None,
            };
            if let Some(signal) = signal {
                self.line.clear();
                self.ready.clear();
                self.echo(byte);
                if t.lflag & ECHO != 0 {
                    self.output(b"\n");
                }
                return Some(signal);
            }
        }
        if t.lflag & ICANON == 0 {
            self.ready.push_back(byte);
            self.echo(byte);
            return None;
        }
        match byte {
            b if b == t.cc[VERASE] || b == 0x08 => self.erase_one(),
            b if b == t.cc[VWERASE] && t.lflag & IEXTEN != 0 => {
                while self.line.last() == Some(&b' ') {
                    self.erase_one();
                }
                while self.line.last().is_some_and(|&c| c != b' ') {
                    self.erase_one();
                }
            }
            b if b == t.cc[VKILL] => {
                while !self.line.is_empty() {
                    self.erase_one();
                }
            }
            b if b == t.cc[VEOF] => {
                if self.line.is_empty() {
                    self.eof += 1;
                } else {
                    self.ready.extend(self.line.drain(..));
                }
            }
            b'\n' => {
                self.line.push(b'\n');
                self.ready.extend(self.line.drain(..));
                self.echo(b'\n');
            }
            byte => {
                if self.line.len() < MAX_LINE {
                    self.line.push(byte);
                    self.echo(byte);
                }
            }
        }
        None
    }

    fn readable(&self) -> bool {
        if self.termios.lflag & ICANON != 0 {
            self.eof > 0 || self.ready.contains(&b'\n') || !self.ready.is_empty()
        } else {
            let min = usize::from(self.termios.cc[VMIN]);
            min == 0 || self.ready.len() >= min
        }
    }
}

/// Received bytes, in interrupt context.
fn input(byte: u8) {
    let (signal, foreground) = {
        let mut tty = CONSOLE.lock();
        let signal = tty.receive(byte);
        (signal, tty.foreground)
    };
    if let Some(signal) = signal
        && foreground != 0
    {
        let _ = task::send_signal_to(
            |p| p.pgid == foreground,
            signal,
            signal::Info {
                code: signal::SI_KERNEL,
                ..signal::Info::default()
            },
            None,
        );
    }
    READERS.wake_all();
    task::readiness_changed();
}

/// Whether a `read` would not block (for `poll`/`select`).
pub fn readable() -> bool {
    CONSOLE.lock().readable()
}

/// Linux's `__tty_check_change` for the current process: outside the foreground group of the
/// terminal's session, its whole group is sent `signal` and stops here; once continued it looks
/// again (Linux restarts the call). A process that blocks or ignores the signal may go ahead,
/// except that a read fails with `EIO`, as does anything an orphaned group tries: nobody would
/// continue it.
fn job_control(signal: u8) -> EResult<()> {
    loop {
        let Ok((tgid, group, sid)) = caller() else {
            return Ok(()); // the kernel itself
        };
        let (foreground, controls) = {
            let tty = CONSOLE.lock();
            (tty.foreground, tty.controls(tgid, sid))
        };
        if !controls || foreground == 0 || group == foreground {
            return Ok(());
        }
        if task::with_current(|p| p.signals.ignores_or_blocks(signal))? {
            return if signal == signal::SIGTTIN {
                Err(Errno::EIO)
            } else {
                Ok(())
            };
        }
        if task::group_is_orphaned(group) {
            return Err(Errno::EIO);
        }
        let info = signal::Info {
            code: signal::SI_KERNEL,
            ..signal::Info::default()
        };
        let _ = task::send_signal_to(|p| p.pgid == group, signal, info, None);
        let stopped = task::stop_if_requested();
        if task::signal_pending() {
            return Err(Errno::EINTR);
        }
        if !stopped {
            return Err(Errno::EIO); // init, which no default action stops
        }
    }
}

/// `read` on the terminal.
pub fn read(out: &mut [u8]) -> EResult<usize> {
    if out.is_empty() {
        return Ok(0);
    }
    job_control(signal::SIGTTIN)?;
    let nonblocking_raw = {
        let tty = CONSOLE.lock();
        tty.termios.lflag & ICANON == 0 && tty.termios.cc[VMIN] == 0
    };
    if !nonblocking_raw {
        READERS.wait_until(|| CONSOLE.lock().readable())?;
    }
    let mut tty = CONSOLE.lock();
    if tty.termios.lflag & ICANON != 0 {
        let mut n = 0;
        while n < out.len() {
            let Some(byte) = tty.ready.pop_front() else {
                break;
            };
            out[n] = byte;
            n += 1;
            if byte == b'\n' {
                break;
            }
        }
        if n == 0 && tty.eof > 0 {
            tty.eof -= 1;
        }
        return Ok(n);
    }
    let n = out.len().min(tty.ready.len());
    for slot in &mut out[..n] {
        *slot = tty.ready.pop_front().expect("counted");
    }
    let _ = VTIME;
    Ok(n)
}

/// `write` on the terminal.
pub fn write(data: &[u8]) -> EResult<usize> {
    if CONSOLE.lock().termios.lflag & TOSTOP != 0 {
        job_control(signal::SIGTTOU)?;
    }
    CONSOLE.lock().output(data);
    Ok(data.len())
}

const TCGETS: u64 = 0x5401;
const TCSETS: u64 = 0x5402;
const TCSETSW: u64 = 0x5403;
const TCSETSF: u64 = 0x5404;
const TIOCSCTTY: u64 = 0x540e;
const TIOCSTI: u64 = 0x5412;
const TIOCGPGRP: u64 = 0x540f;
const TIOCSPGRP: u64 = 0x5410;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCSWINSZ: u64 = 0x5414;
const FIONREAD: u64 = 0x541b;
const TIOCNOTTY: u64 = 0x5422;
const TIOCGSID: u64 = 0x5429;

/// What an ioctl needs copied in or out (the syscall layer does the user memory part).
pub enum IoctlData {
    None,
    /// Write these bytes to the user's argument pointer.
    Out(Vec<u8>),
}

/// The session of process group `pgid`, or of process `pgid` if no group has that id
/// (`session_of_pgrp`); `ESRCH` if neither exists.
fn session_of_group(pgid: Pid) -> EResult<Pid> {
    if pgid == 0 {
        return Err(Errno::ESRCH); // no process has pid 0
    }
    let (mut of_group, mut of_process) = (None, None);
    task::info::for_each(|p| {
        if p.pgid == pgid && of_group.is_none() {
            of_group = Some(p.sid);
        }
        if p.pid == pgid {
            of_process = Some(p.sid);
        }
    });
    of_group.or(of_process).ok_or(Errno::ESRCH)
}

/// `ioctl` on the terminal. `argument` is the raw third argument and `arg_in` what it points
/// at, for the requests that read it (the syscall layer reads as many bytes as `argument_size`
/// says); `readable` says whether the descriptor was opened for reading.
pub fn ioctl(request: u64, argument: u64, arg_in: &[u8], readable: bool) -> EResult<IoctlData> {
    if matches!(request, TCSETS | TCSETSW | TCSETSF | TIOCSPGRP) {
        match job_control(signal::SIGTTOU) {
            Err(Errno::EIO) if request == TIOCSPGRP => return Err(Errno::ENOTTY),
            result => result?,
        }
    }
    let (tgid, pgid, sid) = caller()?;
    match request {
        TIOCSPGRP => {
            let bytes: &[u8; 4] = arg_in.try_into().map_err(|_| Errno::EFAULT)?;
            let group = i32::from_le_bytes(*bytes);
            let group = Pid::try_from(group).map_err(|_| Errno::EINVAL)?;
            if !CONSOLE.lock().controls(tgid, sid) {
                return Err(Errno::ENOTTY);
            }
            if session_of_group(group)? != sid {
                return Err(Errno::EPERM);
            }
            let mut tty = CONSOLE.lock();
            // Checked again under the lock: the session may have let go meanwhile.
            if !tty.controls(tgid, sid) {
                return Err(Errno::ENOTTY);
            }
            tty.foreground = group;
            return Ok(IoctlData::None);
        }
        TIOCSTI => {
            let privileged = task::with_current(|p| p.identity.is_privileged())?;
            if !CONSOLE.lock().controls(tgid, sid) && !privileged {
                return Err(Errno::EPERM);
            }
            let &[byte] = arg_in else {
                return Err(Errno::EFAULT);
            };
            input(byte);
            return Ok(IoctlData::None);
        }
        TIOCSCTTY => return make_controlling(tgid, pgid, sid, argument as i32 == 1, readable),
        TIOCNOTTY => return give_up_controlling(tgid, sid),
        _ => {}
    }
    let mut tty = CONSOLE.lock();
    match request {
        TCGETS => Ok(IoctlData::Out(tty.termios.to_bytes().to_vec())),
        TCSETS | TCSETSW | TCSETSF => {
            let bytes: &[u8; 36] = arg_in.try_into().map_err(|_| Errno::EFAULT)?;
            tty.termios = Termios::from_bytes(bytes);
            if request == TCSETSF {
                tty.ready.clear();
                tty.line.clear();
            }
            drop(tty);
            READERS.wake_all();
            Ok(IoctlData::None)
        }
        TIOCGWINSZ => {
            let mut bytes = [0u8; 8];
            bytes[0..2].copy_from_slice(&tty.rows.to_le_bytes());
            bytes[2..4].copy_from_slice(&tty.columns.to_le_bytes());
            Ok(IoctlData::Out(bytes.to_vec()))
        }
        TIOCSWINSZ => {
            let bytes: &[u8; 8] = arg_in.try_into().map_err(|_| Errno::EFAULT)?;
            tty.rows = u16::from_le_bytes([bytes[0], bytes[1]]);
            tty.columns = u16::from_le_bytes([bytes[2], bytes[3]]);
            let foreground = tty.foreground;
            drop(tty);
            if foreground != 0 {
                let _ = task::send_signal_to(
                    |p| p.pgid == foreground,
                    signal::SIGWINCH,
                    signal::Info::default(),
                    None,
                );
            }
            Ok(IoctlData::None)
        }
        // Only for a process whose controlling terminal it is (`tiocgpgrp`, `tiocgsid`).
        TIOCGPGRP | TIOCGSID if !tty.controls(tgid, sid) => Err(Errno::ENOTTY),
        TIOCGPGRP => Ok(IoctlData::Out(tty.foreground.to_le_bytes().to_vec())),
        TIOCGSID => Ok(IoctlData::Out(tty.session.to_le_bytes().to_vec())),
        FIONREAD => Ok(IoctlData::Out(
            (tty.ready.len() as u32).to_le_bytes().to_vec(),
        )),
        _ => Err(Errno::ENOTTY),
    }
}

/// `TIOCSCTTY` (`tiocsctty`): the caller must be a session leader and its session must not
/// have the console already (`EPERM`; nothing to do if it has); a console that is another
/// session's controlling terminal is taken away from it only by root asking with `steal` = 1
/// (`EPERM`), and a descriptor not open for reading needs root too.
fn make_controlling(
    tgid: Pid,
    pgid: Pid,
    sid: Pid,
    steal: bool,
    readable: bool,
) -> EResult<IoctlData> {
    let leader = tgid == sid;
    let privileged = task::with_current(|p| p.identity.is_privileged())?;
    let owner = CONSOLE.lock().session;
    // Linux takes the terminal from a session when its leader exits; here that is noticed
    // now. Session 0 is init's, which holds the console only until someone claims it.
    let owner_alive = owner != 0
        && task::with_process(owner, |p| {
            p.sid == owner && !matches!(p.state, task::State::Zombie(_))
        })
        .unwrap_or(false);
    // System calls are not preempted: nothing changes the owner between the two locks.
    let mut tty = CONSOLE.lock();
    if leader && tty.session == sid {
        return Ok(IoctlData::None);
    }
    if !leader {
        return Err(Errno::EPERM);
    }
    if owner_alive && !(steal && privileged) {
        return Err(Errno::EPERM);
    }
    if !readable && !privileged {
        return Err(Errno::EPERM);
    }
    tty.attach(sid, pgid);
    Ok(IoctlData::None)
}

/// `TIOCNOTTY`: only for a process whose controlling terminal it is (`ENOTTY`). A session
/// leader gives it up for the whole session, whose foreground group gets `SIGHUP` and
/// `SIGCONT` (`disassociate_ctty`), and the console goes back to init's session; any other
/// process only for itself.
fn give_up_controlling(tgid: Pid, sid: Pid) -> EResult<IoctlData> {
    let mut tty = CONSOLE.lock();
    if !tty.controls(tgid, sid) {
        return Err(Errno::ENOTTY);
    }
    if tgid != sid {
        tty.detached.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        tty.detached.push(tgid);
        return Ok(IoctlData::None);
    }
    let foreground = tty.foreground;
    tty.attach(0, 0);
    drop(tty);
    if foreground != 0 {
        for hangup in [signal::SIGHUP, signal::SIGCONT] {
            let _ = task::send_signal_to(
                |p| p.pgid == foreground,
                hangup,
                signal::Info {
                    code: signal::SI_KERNEL,
                    ..signal::Info::default()
                },
                None,
            );
        }
    }
    Ok(IoctlData::None)
}

/// How many bytes an ioctl's argument points at, for the requests that read it.
pub fn argument_size(request: u64) -> usize {
    match request {
        TCSETS | TCSETSW | TCSETSF => 36,
        TIOCSWINSZ => 8,
        TIOCSPGRP => 4,
        TIOCSTI => 1,
        _ => 0,
    }
}

crate::kernel_test!(tty_line_discipline_edits_and_signals, {
    let mut tty = Tty {
        port: 9, // no such UART: echo goes nowhere
        termios: Termios::sane(),
        rows: 24,
        columns: 80,
        line: Vec::new(),
        ready: VecDeque::new(),
        eof: 0,
        foreground: 0,
        session: 0,
        detached: Vec::new(),
    };
    for &byte in b"lsx\x7f -l\r" {
        crate::check_eq!(tty.receive(byte), None);
    }
    crate::check_eq!(
        tty.ready.iter().copied().collect::<Vec<u8>>(),
        b"ls -l\n".to_vec()
    );
    crate::check_eq!(tty.receive(3), Some(signal::SIGINT));
    crate::check!(tty.ready.is_empty(), "^C flushes input");
    tty.receive(4);
    crate::check_eq!(tty.eof, 1);
    let raw = Termios {
        lflag: 0,
        ..Termios::sane()
    };
    crate::check_eq!(Termios::from_bytes(&raw.to_bytes()), raw);
});
