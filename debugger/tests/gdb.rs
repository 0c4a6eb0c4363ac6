//! The stub driven by Debian's real `gdb` over TCP, against a fake machine.
//!
//! The fake CPU runs a tiny instruction set (enough to hit breakpoints, trip watchpoints, be
//! single-stepped and interrupted) and implements `debugger::Machine` the way the kernel does;
//! the TCP "line" behaves like a serial port: gdb can come and go, bytes may be garbage.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use debugger::{Machine, MachineError, Registers, Resume, Session, ThreadInfo, Trap};
use gdbstub::conn::{Connection, ConnectionExt};

const CODE_BASE: u64 = 0x10_0000;
const DATA_BASE: u64 = 0x20_0000;
const NOP: u8 = 0x90;
const INC_DATA: u8 = 0xfe;
const JMP_START: u8 = 0xeb;
const INT3: u8 = 0xcc;

/// NOPs, one increment of the 8-byte counter at DATA_BASE at offset 16, then back to the start.
fn program() -> Vec<u8> {
    let mut code = vec![NOP; 32];
    code[16] = INC_DATA;
    code[31] = JMP_START;
    code
}

struct FakeCpu {
    regs: Registers,
    code: Vec<u8>,
    data: Vec<u8>,
    debug_addresses: [u64; 4],
    dr7: u64,
    trap_flag: bool,
    resume_flag: bool,
    killed: Arc<AtomicBool>,
}

impl FakeCpu {
    fn new(killed: Arc<AtomicBool>) -> Self {
        let mut regs = Registers::default();
        regs.regs[0] = 0x1111_2222_3333_4444; // rax
        regs.regs[7] = 0x7000; // rsp
        regs.rip = CODE_BASE;
        regs.segments.cs = 0x8;
        Self {
            regs,
            code: program(),
            data: vec![0; 4096],
            debug_addresses: [0; 4],
            dr7: 0,
            trap_flag: false,
            resume_flag: false,
            killed,
        }
    }

    fn byte_mut(&mut self, address: u64) -> Option<&mut u8> {
        let in_range =
            |base: u64, len: usize| address.checked_sub(base).filter(|o| *o < len as u64);
        if let Some(offset) = in_range(CODE_BASE, self.code.len()) {
            return self.code.get_mut(offset as usize);
        }
        let offset = in_range(DATA_BASE, self.data.len())?;
        self.data.get_mut(offset as usize)
    }

    fn slot_enabled(&self, slot: usize) -> Option<(u64, u64)> {
        (self.dr7 & (0b11 << (2 * slot)) != 0).then(|| {
            let rw = (self.dr7 >> (16 + 4 * slot)) & 0b11;
            (self.debug_addresses[slot], rw)
        })
    }

    /// Executes one instruction; returns the trap it raised, if any.
    fn step(&mut self) -> Option<Trap> {
        let rip = self.regs.rip;
        if !self.resume_flag {
            for slot in 0..4 {
                if self.slot_enabled(slot) == Some((rip, 0)) {
                    return Some(Trap::Debug { dr6: 1 << slot });
                }
            }
        }
        self.resume_flag = false;
        let Some(opcode) = self.byte_mut(rip).map(|b| *b) else {
            return Some(Trap::Fatal { signal: 11 });
        };
        let mut trap = None;
        match opcode {
            NOP => self.regs.rip += 1,
            INC_DATA => {
                let value = u64::from_le_bytes(self.data[..8].try_into().unwrap()) + 1;
                self.data[..8].copy_from_slice(&value.to_le_bytes());
                self.regs.rip += 1;
                for slot in 0..4 {
                    if let Some((address, rw)) = self.slot_enabled(slot)
                        && rw != 0
                        && address == DATA_BASE
                    {
                        trap = Some(Trap::Debug { dr6: 1 << slot });
                    }
                }
            }
            JMP_START => self.regs.rip = CODE_BASE,
            INT3 => {
                self.regs.rip += 1;
                return Some(Trap::Int3);
            }
            _ => return Some(Trap::Fatal { signal: 4 }),
        }
        if trap.is_none() && self.trap_flag {
            trap = Some(Trap::Debug { dr6: 1 << 14 });
        }
        trap
    }
}

impl Machine for FakeCpu {
    fn current_thread(&self) -> usize {
        1
    }

    fn threads(&self, each: &mut dyn FnMut(&ThreadInfo<'_>)) {
        each(&ThreadInfo {
            id: 1,
            name: "cpu0",
            state: "running",
        });
        each(&ThreadInfo {
            id: 42,
            name: "sleeper",
            state: "sleeping",
        });
    }

    fn read_registers(&mut self, thread: usize, regs: &mut Registers) -> Result<(), MachineError> {
        match thread {
            1 => *regs = self.regs.clone(),
            42 => {
                *regs = Registers::default();
                regs.rip = CODE_BASE + 8;
            }
            other => return Err(MachineError::NoThread(other)),
        }
        Ok(())
    }

    fn write_registers(&mut self, thread: usize, regs: &Registers) -> Result<(), MachineError> {
        if thread != 1 {
            return Err(MachineError::ReadOnlyThread(thread));
        }
        self.regs = regs.clone();
        Ok(())
    }

    fn read_memory(&mut self, address: u64, buf: &mut [u8]) -> usize {
        for (i, out) in buf.iter_mut().enumerate() {
            match self.byte_mut(address + i as u64) {
                Some(byte) => *out = *byte,
                None => return i,
            }
        }
        buf.len()
    }

    fn write_memory(&mut self, address: u64, data: &[u8]) -> Result<(), MachineError> {
        if let Some(bad) = (0..data.len() as u64).find(|i| self.byte_mut(address + i).is_none()) {
            return Err(MachineError::Unmapped(address + bad));
        }
        for (i, &value) in data.iter().enumerate() {
            *self.byte_mut(address + i as u64).expect("checked") = value;
        }
        Ok(())
    }

    fn set_debug_registers(&mut self, addresses: &[u64; 4], dr7: u64) {
        self.debug_addresses = *addresses;
        self.dr7 = dr7;
    }

    fn prepare_resume(&mut self, step: bool) {
        self.trap_flag = step;
        self.resume_flag = true;
    }

    fn monitor(&mut self, command: &str, out: &mut dyn std::fmt::Write) -> bool {
        match command {
            "ps" => {
                let _ = writeln!(out, "  PID NAME     STATE");
                let _ = writeln!(out, "    1 cpu0     running");
                let _ = writeln!(out, "   42 sleeper  sleeping");
                true
            }
            "counter" => {
                let value = u64::from_le_bytes(self.data[..8].try_into().unwrap());
                let _ = writeln!(out, "counter = {value}");
                true
            }
            _ => false,
        }
    }

    fn monitor_commands(&self) -> &'static [(&'static str, &'static str)] {
        &[("ps", "list tasks"), ("counter", "show the counter")]
    }

    fn kill(&mut self) {
        self.killed.store(true, Ordering::SeqCst);
    }
}

/// A TCP server that behaves like a serial line: gdb may disconnect and a new client continues.
#[derive(Clone)]
struct TcpLine {
    listener: Arc<TcpListener>,
    stream: Arc<Mutex<Option<TcpStream>>>,
    out: Vec<u8>,
    stop: Arc<AtomicBool>,
}

impl TcpLine {
    fn new(stop: Arc<AtomicBool>) -> (Self, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let line = Self {
            listener: Arc::new(listener),
            stream: Arc::new(Mutex::new(None)),
            out: Vec::new(),
            stop,
        };
        (line, port)
    }

    /// One byte if one arrives within a millisecond.
    fn poll(&self) -> std::io::Result<Option<u8>> {
        let mut guard = self.stream.lock().unwrap();
        if guard.is_none() {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    stream.set_read_timeout(Some(Duration::from_millis(1)))?;
                    *guard = Some(stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    drop(guard);
                    std::thread::sleep(Duration::from_millis(1));
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        let stream = guard.as_mut().expect("connected");
        let mut byte = [0u8];
        match Read::read(stream, &mut byte) {
            Ok(0) => {
                *guard = None;
                Ok(None)
            }
            Ok(_) => Ok(Some(byte[0])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(_) => {
                *guard = None;
                Ok(None)
            }
        }
    }
}

impl Connection for TcpLine {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        self.out.push(byte);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        let bytes = std::mem::take(&mut self.out);
        if let Some(stream) = self.stream.lock().unwrap().as_mut() {
            Write::write_all(stream, &bytes)?;
        }
        Ok(())
    }
}

impl ConnectionExt for TcpLine {
    fn read(&mut self) -> Result<u8, Self::Error> {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("test is over"));
            }
            if let Some(byte) = self.poll()? {
                return Ok(byte);
            }
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        Ok(None)
    }
}

/// A fake machine behind a stub on a TCP port, stopped at first (like `kgdbwait`).
struct Rig {
    port: u16,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    runner: Option<JoinHandle<(u64, usize)>>,
}

impl Rig {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let (line, port) = TcpLine::new(stop.clone());
        let poller = line.clone();
        let machine = FakeCpu::new(killed.clone());
        let runner_stop = stop.clone();
        let runner = std::thread::spawn(move || {
            let mut session = Session::new(machine, line);
            let mut pending = Some(Trap::Int3);
            let mut killed = false;
            while !runner_stop.load(Ordering::SeqCst) && !killed {
                if let Some(trap) = pending.take() {
                    killed = session.stopped(trap) == Resume::Killed;
                    continue;
                }
                for _ in 0..64 {
                    if let Some(trap) = session.machine().step() {
                        pending = Some(trap);
                        break;
                    }
                }
                if pending.is_none()
                    && let Ok(Some(byte)) = poller.poll()
                {
                    killed = session.incoming_while_running(byte) == Some(Resume::Killed);
                }
            }
            let counter = u64::from_le_bytes(session.machine().data[..8].try_into().unwrap());
            (counter, session.protocol_errors())
        });
        Self {
            port,
            stop,
            killed,
            runner: Some(runner),
        }
    }

    /// Runs gdb in batch mode with `commands`; returns stdout+stderr.
    fn gdb(&self, commands: &[&str]) -> String {
        let mut command = Command::new("gdb");
        command.args(["-nx", "-batch", "-ex", "set architecture i386:x86-64"]);
        command.args(["-ex", "set remotetimeout 10"]);
        if std::env::var_os("GDB_DEBUG_REMOTE").is_some() {
            command.args(["-ex", "set remotelogfile /tmp/gdb-remote.log"]);
        }
        command.args(["-ex", &format!("target remote 127.0.0.1:{}", self.port)]);
        for c in commands {
            command.args(["-ex", c]);
        }
        let output = command
            .output()
            .expect("gdb is installed (Debian package gdb)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("---- gdb ----\n{text}");
        text
    }

    /// Runs gdb reading `commands` from a pipe, pausing after each (so that asynchronous
    /// events such as an interrupted `continue &` are processed, as in an interactive session).
    fn gdb_interactive(&self, commands: &[&str], pause: Duration) -> String {
        use std::process::Stdio;
        let mut child = Command::new("gdb")
            .args(["-nx", "-q", "-ex", "set architecture i386:x86-64"])
            .args(["-ex", "set confirm off", "-ex", "set pagination off"])
            .args(["-ex", &format!("target remote 127.0.0.1:{}", self.port)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gdb is installed (Debian package gdb)");
        let mut stdin = child.stdin.take().expect("piped");
        for command in commands {
            std::thread::sleep(pause);
            writeln!(stdin, "{command}").expect("gdb reads its stdin");
        }
        std::thread::sleep(pause);
        let _ = writeln!(stdin, "quit");
        drop(stdin);
        let output = child.wait_with_output().expect("gdb exits");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("---- gdb (interactive) ----\n{text}");
        text
    }

    /// Stops the runner; returns (counter value, protocol errors survived).
    fn finish(mut self) -> (u64, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.runner.take().unwrap().join().expect("runner panicked")
    }
}

fn register(text: &str, name: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    let hex = line.split_whitespace().nth(1).unwrap();
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn registers_memory_and_errors() {
    let rig = Rig::start();
    let out = rig.gdb(&[
        "info registers rax rip rsp",
        "set $rbx = 0x5555",
        "info registers rbx",
        "x/4xb 0x100000",
        "set {char}0x200100 = 0x7f",
        "x/1xb 0x200100",
        "x/1xb 0x9000000",
        "set $rip = 0x100004",
        "info registers rip",
        "detach",
    ]);
    assert_eq!(register(&out, "rax"), 0x1111_2222_3333_4444);
    assert_eq!(register(&out, "rsp"), 0x7000);
    assert_eq!(register(&out, "rbx"), 0x5555);
    assert!(out.contains("0x100000:\t0x90\t0x90\t0x90\t0x90"), "{out}");
    assert!(out.contains("0x200100:\t0x7f"), "{out}");
    assert!(
        out.contains("Cannot access memory at address 0x9000000"),
        "{out}"
    );
    assert!(out.contains("rip            0x100004"), "{out}");
    rig.finish();
}

#[test]
fn software_and_hardware_breakpoints_steps_and_watchpoints() {
    let rig = Rig::start();
    let out = rig.gdb(&[
        "break *0x100008",
        "continue",
        "info registers rip",
        "x/1xb 0x100008",
        "stepi",
        "info registers rip",
        "delete",
        "hbreak *0x10000c",
        "continue",
        "info registers rip",
        "delete",
        "watch *(long *)0x200000",
        "continue",
        "info registers rip",
        "delete",
        "monitor counter",
        "detach",
    ]);
    assert!(out.contains("Breakpoint 1, 0x0000000000100008"), "{out}");
    // The int3 is hidden from memory reads.
    assert!(out.contains("0x100008:\t0x90"), "{out}");
    let rips: Vec<u64> = out
        .lines()
        .filter(|l| l.starts_with("rip "))
        .map(|l| register(l, "rip"))
        .collect();
    assert_eq!(rips, [0x100008, 0x100009, 0x10000c, 0x100011], "{out}");
    assert!(
        out.contains("Hardware watchpoint 3: *(long *)0x200000"),
        "{out}"
    );
    assert!(
        out.contains("Old value = 0") && out.contains("New value = 1"),
        "{out}"
    );
    assert!(out.contains("counter = 1"), "{out}");
    let (counter, errors) = rig.finish();
    assert!(counter >= 1);
    assert_eq!(errors, 0);
}

#[test]
fn threads_monitor_interrupt_and_reattach() {
    let rig = Rig::start();
    let out = rig.gdb_interactive(
        &[
            "info threads",
            "thread 2",
            "info registers rip",
            "thread 1",
            "monitor ps",
            "monitor help",
            "monitor frobnicate",
            "continue &",
            "interrupt",
            "info registers rip",
            "detach",
        ],
        Duration::from_millis(300),
    );
    assert!(out.contains("cpu0 (running)"), "{out}");
    assert!(out.contains("sleeper (sleeping)"), "{out}");
    assert!(
        out.contains("rip            0x100008"),
        "thread 42's saved rip: {out}"
    );
    assert!(out.contains("   42 sleeper  sleeping"), "{out}");
    assert!(out.contains("counter    show the counter"), "{out}");
    assert!(out.contains("unknown command \"frobnicate\""), "{out}");
    assert!(out.contains("received signal SIGINT"), "{out}");

    // The machine runs on after detach; a new gdb stops it again where it is.
    std::thread::sleep(Duration::from_millis(100));
    let again = rig.gdb(&["info registers rip", "monitor counter", "kill"]);
    let rip = register(&again, "rip");
    assert!((CODE_BASE..CODE_BASE + 32).contains(&rip), "{again}");
    let count: u64 = again
        .lines()
        .find_map(|l| l.strip_prefix("counter = "))
        .and_then(|n| n.trim().parse().ok())
        .expect("counter line");
    assert!(count > 10, "the machine ran between the sessions: {again}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rig.killed.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        rig.killed.load(Ordering::SeqCst),
        "kill reached the machine"
    );
    rig.finish();
}

#[test]
fn malformed_packets_do_not_stop_the_stub() {
    let rig = Rig::start();
    {
        let mut raw = TcpStream::connect(("127.0.0.1", rig.port)).unwrap();
        raw.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        for garbage in [
            &b"$m100000,4#00"[..],           // bad checksum
            b"$mzz,q#9b",                    // malformed command, valid framing
            b"-",                            // a NACK out of nowhere
            b"\xff\x00hello",                // noise
            b"$qSupported:multiprocess+#c6", // then a real packet
        ] {
            Write::write_all(&mut raw, garbage).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut reply = [0u8; 512];
        let n = Read::read(&mut raw, &mut reply).unwrap_or(0);
        assert!(
            String::from_utf8_lossy(&reply[..n]).contains("PacketSize"),
            "the stub still answers: {:?}",
            String::from_utf8_lossy(&reply[..n])
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    let out = rig.gdb(&["info registers rip", "x/2xb 0x100000", "detach"]);
    assert!(out.contains("0x100000:\t0x90\t0x90"), "{out}");
    let (_, errors) = rig.finish();
    assert!(errors >= 2, "errors were counted and survived: {errors}");
}
