//! Fuzzing the gdb remote-protocol path (docs/fuzzing.md): arbitrary bytes from "gdb" —
//! framing, checksums, escapes, run-length, `qXfer`, memory and register packets, Ctrl-C —
//! through `Session`, the same code the kernel runs, over a fake machine and an in-memory line.
//!
//! Properties: no panic, no hang (each input ends: the line runs dry, and the session returns
//! when it does), bounded replies (the stub's output stays proportional to its input).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use cadenza_fuzz::{Harness, LimitedAllocator, Rng};
use debugger::{Machine, MachineError, Registers, Resume, Session, ThreadInfo, Trap};
use gdbstub::conn::{Connection, ConnectionExt};

#[global_allocator]
static ALLOCATOR: LimitedAllocator = LimitedAllocator::new(64 << 20);

const CODE_BASE: u64 = 0x10_0000;
const DATA_BASE: u64 = 0x20_0000;

/// A machine with two small memory windows and two threads; every access is bounds-checked
/// with checked arithmetic (addresses come straight from the packets).
struct FakeMachine {
    regs: Registers,
    code: Vec<u8>,
    data: Vec<u8>,
}

impl FakeMachine {
    fn new() -> Self {
        Self {
            regs: Registers {
                rip: CODE_BASE + 1,
                ..Registers::default()
            },
            code: vec![0x90; 256],
            data: vec![0; 256],
        }
    }

    fn byte_mut(&mut self, address: u64) -> Option<&mut u8> {
        if let Some(offset) = address.checked_sub(CODE_BASE).filter(|o| *o < 256) {
            return self.code.get_mut(offset as usize);
        }
        let offset = address.checked_sub(DATA_BASE).filter(|o| *o < 256)?;
        self.data.get_mut(offset as usize)
    }
}

impl Machine for FakeMachine {
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
            name: "a-task-with-a-long-name-to-fill-the-extra-info-buffer",
            state: "sleeping",
        });
    }

    fn read_registers(&mut self, thread: usize, regs: &mut Registers) -> Result<(), MachineError> {
        match thread {
            1 => *regs = self.regs.clone(),
            42 => *regs = Registers::default(),
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
            match address.checked_add(i as u64).and_then(|a| self.byte_mut(a)) {
                Some(byte) => *out = *byte,
                None => return i,
            }
        }
        buf.len()
    }

    fn write_memory(&mut self, address: u64, data: &[u8]) -> Result<(), MachineError> {
        let writable = |i: usize| address.checked_add(i as u64);
        for i in 0..data.len() {
            let at = writable(i).ok_or(MachineError::Unmapped(address))?;
            if self.byte_mut(at).is_none() {
                return Err(MachineError::Unmapped(at));
            }
        }
        for (i, &value) in data.iter().enumerate() {
            if let Some(byte) = writable(i).and_then(|at| self.byte_mut(at)) {
                *byte = value;
            }
        }
        Ok(())
    }

    fn set_debug_registers(&mut self, _addresses: &[u64; 4], _dr7: u64) {}

    fn prepare_resume(&mut self, _step: bool) {}

    fn monitor(&mut self, command: &str, out: &mut dyn std::fmt::Write) -> bool {
        if command == "ps" {
            let _ = writeln!(out, "  PID NAME\n    1 cpu0\n   42 sleeper");
            return true;
        }
        false
    }

    fn monitor_commands(&self) -> &'static [(&'static str, &'static str)] {
        &[("ps", "list tasks")]
    }
}

/// An in-memory serial line: gdb's bytes in, the stub's replies kept.
#[derive(Clone)]
struct Line {
    incoming: Rc<RefCell<VecDeque<u8>>>,
    written: Rc<RefCell<Vec<u8>>>,
}

#[derive(Debug)]
struct LineDry;

impl Connection for Line {
    type Error = LineDry;

    fn write(&mut self, byte: u8) -> Result<(), LineDry> {
        self.written.borrow_mut().push(byte);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LineDry> {
        Ok(())
    }
}

impl ConnectionExt for Line {
    fn read(&mut self) -> Result<u8, LineDry> {
        self.incoming.borrow_mut().pop_front().ok_or(LineDry)
    }

    fn peek(&mut self) -> Result<Option<u8>, LineDry> {
        Ok(self.incoming.borrow().front().copied())
    }
}

/// `$body#xx` with the right checksum.
fn packet(body: &[u8]) -> Vec<u8> {
    let sum = body.iter().fold(0u8, |sum, &b| sum.wrapping_add(b));
    let mut out = vec![b'$'];
    out.extend_from_slice(body);
    out.extend_from_slice(format!("#{sum:02x}").as_bytes());
    out
}

/// What gdb 13 sends when it attaches, reads registers and memory, sets breakpoints and
/// watchpoints, writes memory (hex and binary, with escapes), steps, continues and leaves.
fn corpus() -> Vec<Vec<u8>> {
    let attach: &[&[u8]] = &[
        b"qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;memory-tagging+;xmlRegisters=i386",
        b"vMustReplyEmpty",
        b"QStartNoAckMode",
        b"Hgp0.0",
        b"qXfer:features:read:target.xml:0,ffb",
        b"qXfer:features:read:target.xml:ffb,ffb",
        b"qTStatus",
        b"?",
        b"qfThreadInfo",
        b"qsThreadInfo",
        b"qAttached",
        b"Hc-1",
        b"qC",
        b"qOffsets",
        b"g",
    ];
    let inspect: &[&[u8]] = &[
        b"m100000,40",
        b"m1fffff,8",
        b"mffffffffffffffff,10",
        b"m200000,ffffffff",
        b"M200000,4:01020304",
        b"X200004,3:}]}\x03}\x5d",
        b"p10",
        b"P10=0100100000000000",
        b"P0=ffffffffffffffff",
        b"Z0,100010,1",
        b"Z1,100020,1",
        b"Z2,200000,8",
        b"Z3,200008,4",
        b"Z4,200010,2",
        b"z0,100010,1",
        b"z2,200000,8",
        b"qThreadExtraInfo,2a",
        b"qThreadExtraInfo,1",
        b"T2a",
        b"Hg2a",
        b"qRcmd,7073",
        b"qRcmd,68656c70",
        b"qRcmd,ff",
        b"vCont?",
        b"vCont;s:1;c",
        b"vCont;c",
        b"s",
        b"c",
    ];
    let mut session = b"+".to_vec();
    for body in attach {
        session.extend(packet(body));
        session.push(b'+');
    }
    let mut inspecting = Vec::new();
    for body in inspect {
        inspecting.extend(packet(body));
    }
    let mut all = vec![session.clone(), inspecting.clone()];
    let mut full = session.clone();
    full.extend_from_slice(&inspecting);
    full.push(0x03);
    full.extend(packet(b"?"));
    full.extend(packet(b"D"));
    full.extend(packet(b"k"));
    all.push(full);
    // Run-length encoding (`*`), a bad checksum, a stray `}` and a NAK.
    all.push(b"$m100000,4*!#00+-$g#67".to_vec());
    all.push(b"$qSupported#00-$}#7d\x03\x03$D#44".to_vec());
    all
}

/// Recomputes the checksum of every `$...#xx` packet, so mutated packets pass the framing.
fn fix_checksums(_rng: &mut Rng, input: &mut Vec<u8>) {
    let mut at = 0;
    while let Some(start) = input[at..].iter().position(|&b| b == b'$').map(|p| p + at) {
        let Some(end) = input[start + 1..]
            .iter()
            .position(|&b| b == b'#')
            .map(|p| p + start + 1)
        else {
            return;
        };
        let sum = input[start + 1..end]
            .iter()
            .fold(0u8, |sum, &b| sum.wrapping_add(b));
        let digits = format!("{sum:02x}");
        if input.len() < end + 3 {
            input.resize(end + 3, b'0');
        }
        input[end + 1..end + 3].copy_from_slice(digits.as_bytes());
        at = end + 3;
    }
}

/// Serves `input`; returns the replies and the last protocol error.
fn serve(input: &[u8]) -> (String, String) {
    let line = Line {
        incoming: Rc::new(RefCell::new(input.iter().copied().collect())),
        written: Rc::new(RefCell::new(Vec::new())),
    };
    let mut session = Session::new(FakeMachine::new(), line.clone());
    let traps = [
        Trap::Int3,
        Trap::Debug { dr6: 1 << 14 },
        Trap::Debug { dr6: 1 },
        Trap::Fatal { signal: 11 },
        Trap::Interrupted,
    ];
    let mut rounds = 0usize;
    while !line.incoming.borrow().is_empty() {
        rounds += 1;
        let before = line.incoming.borrow().len();
        let trap = traps[rounds % traps.len()];
        if session.stopped(trap) == Resume::Killed {
            break;
        }
        // The machine runs: a few bytes arrive as interrupts until one stops it again.
        for _ in 0..4 {
            let Some(byte) = line.incoming.borrow_mut().pop_front() else {
                break;
            };
            if session.incoming_while_running(byte).is_some() {
                break;
            }
        }
        assert!(
            line.incoming.borrow().len() < before || line.incoming.borrow().is_empty(),
            "a round consumed no input"
        );
    }
    // Replies are bounded: a packet's reply is at most the packet buffer (4 KiB) plus framing.
    let written = line.written.borrow().len();
    assert!(
        written <= (input.len() + 1) * 8192,
        "{written} bytes of replies for {} bytes of input",
        input.len()
    );
    let replies = String::from_utf8_lossy(&line.written.borrow()).into_owned();
    (replies, session.last_protocol_error().to_string())
}

#[test]
fn fuzz_gdb_packets() {
    let report = Harness::new("gdb-packets", 5_000)
        .corpus(corpus())
        .dictionary(&[
            b"$",
            b"#",
            b"}",
            b"*",
            b"+",
            b"-",
            b"\x03",
            b":",
            b",",
            b";",
            b"qXfer:features:read:",
            b"qSupported",
            b"vCont;",
            b"m",
            b"M",
            b"X",
            b"Z0,",
            b"z1,",
            b"qRcmd,",
            b"ffffffff",
        ])
        .max_len(16 * 1024)
        .structure(fix_checksums)
        .run(|input| {
            serve(input);
        });
    assert!(report.iterations > 0);
}

/// The corpus is a real conversation: the stub understands it (no protocol error) and answers
/// it (features, target.xml, registers, memory, breakpoints), so mutations start from deep
/// inside the protocol.
#[test]
fn the_gdb_corpus_is_understood() {
    let inputs = corpus();
    let (replies, error) = serve(&inputs[0]);
    // The only error: the line running dry at the end.
    assert_eq!(error, "LineDry");
    assert!(replies.contains("qXfer:features:read+"), "{replies}");
    assert!(
        replies.contains("<architecture>i386:x86-64</architecture>"),
        "{replies}"
    );
    let (replies, _) = serve(&inputs[2]);
    // Memory at CODE_BASE (NOPs) and `qThreadExtraInfo` of thread 1 ("cpu0" in hex).
    assert!(replies.contains("$90909090"), "{replies}");
    assert!(replies.contains("63707530"), "{replies}");
}
