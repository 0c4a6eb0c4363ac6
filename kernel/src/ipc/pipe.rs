//! Pipes: a 64 KiB ring between a read end and a write end, with Linux's semantics — a read
//! blocks until data or end of file (no writers left), a write blocks while the ring is full,
//! writing with no reader left raises `SIGPIPE` and fails with `EPIPE`, `O_NONBLOCK` turns the
//! waits into `EAGAIN`. Each end is an `OpenFile` over the pipe as a character "device", whose
//! node is an unlinked FIFO in a private tmpfs, so `fstat` reports `S_IFIFO` as on Linux.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use crate::errno::{EResult, Errno};
use crate::fs::dev::{CharDevice, PollEvents};
use crate::fs::inode::{NodeKind, Owner};
use crate::fs::{Location, Mount, MountFlags, OpenFile, OpenFlags};
use crate::sync::IrqSpinLock;
use crate::task::{self, WaitQueue, signal};

/// Linux's default pipe capacity.
pub const CAPACITY: usize = 64 * 1024;
const READ_END: u32 = 0;
const WRITE_END: u32 = 1;

struct State {
    buffer: VecDeque<u8>,
    readers: usize,
    writers: usize,
}

pub struct Pipe {
    state: IrqSpinLock<State>,
    changed: WaitQueue,
}

impl Pipe {
    fn readable(&self) -> bool {
        let state = self.state.lock();
        !state.buffer.is_empty() || state.writers == 0
    }

    fn writable(&self) -> bool {
        let state = self.state.lock();
        state.buffer.len() < CAPACITY || state.readers == 0
    }
}

impl CharDevice for Pipe {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn release(&self, minor: u32) {
        {
            let mut state = self.state.lock();
            match minor {
                READ_END => state.readers = state.readers.saturating_sub(1),
                _ => state.writers = state.writers.saturating_sub(1),
            }
        }
        self.changed.wake_all();
        task::readiness_changed();
    }

    fn read(&self, _minor: u32, buf: &mut [u8], flags: OpenFlags) -> EResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if flags.contains(OpenFlags::NONBLOCK) {
            if !self.readable() {
                return Err(Errno::EAGAIN);
            }
        } else {
            self.changed.wait_until(|| self.readable())?;
        }
        let n = {
            let mut state = self.state.lock();
            let n = buf.len().min(state.buffer.len());
            for slot in &mut buf[..n] {
                *slot = state.buffer.pop_front().expect("counted");
            }
            n
        };
        self.changed.wake_all();
        task::readiness_changed();
        Ok(n)
    }

    fn write(&self, _minor: u32, buf: &[u8], flags: OpenFlags) -> EResult<usize> {
        let mut written = 0;
        while written < buf.len() {
            if flags.contains(OpenFlags::NONBLOCK) {
                if !self.writable() {
                    return if written > 0 {
                        Ok(written)
                    } else {
                        Err(Errno::EAGAIN)
                    };
                }
            } else {
                self.changed.wait_until(|| self.writable())?;
            }
            {
                let mut state = self.state.lock();
                if state.readers == 0 {
                    drop(state);
                    let pid = task::with_current(|p| p.pid).unwrap_or(0);
                    let _ = task::send_signal(
                        pid,
                        signal::SIGPIPE,
                        signal::Info {
                            code: signal::SI_USER,
                            pid,
                            ..signal::Info::default()
                        },
                        None,
                    );
                    return Err(Errno::EPIPE);
                }
                let room = CAPACITY - state.buffer.len();
                let n = room.min(buf.len() - written);
                state.buffer.extend(&buf[written..written + n]);
                written += n;
            }
            self.changed.wake_all();
            task::readiness_changed();
        }
        Ok(written)
    }

    fn poll(&self, minor: u32) -> PollEvents {
        let state = self.state.lock();
        let mut events = PollEvents::empty();
        if minor == READ_END {
            if !state.buffer.is_empty() {
                events |= PollEvents::IN | PollEvents::RDNORM;
            }
            if state.writers == 0 {
                events |= PollEvents::HUP;
            }
        } else {
            if state.buffer.len() < CAPACITY {
                events |= PollEvents::OUT | PollEvents::WRNORM;
            }
            if state.readers == 0 {
                events |= PollEvents::ERR;
            }
        }
        events
    }
}

static PIPEFS: spin::Once<Location> = spin::Once::new();

/// The FIFO node both ends report in `fstat`: created in a private tmpfs and unlinked at once.
fn fifo_node() -> EResult<Location> {
    let root = PIPEFS.call_once(|| {
        let fs = crate::fs::tmpfs::Tmpfs::with_options(
            0o700,
            crate::fs::tmpfs::Tmpfs::default_page_limit(),
        );
        Mount::new_root(fs, "pipefs", MountFlags::empty()).root_location()
    });
    let name = alloc::format!("pipe:{}", crate::time::now_ns());
    let owner = Owner { uid: 0, gid: 0 };
    let inode = root.inode.create(&name, NodeKind::Fifo, 0o600, owner)?;
    root.inode.unlink(&name)?;
    Ok(Location {
        mount: root.mount.clone(),
        inode,
    })
}

/// A new pipe's two ends: (read, write).
pub fn new(flags: OpenFlags) -> EResult<(Arc<OpenFile>, Arc<OpenFile>)> {
    let node = fifo_node()?;
    let pipe = Arc::new(Pipe {
        state: IrqSpinLock::new(State {
            buffer: VecDeque::new(),
            readers: 1,
            writers: 1,
        }),
        changed: WaitQueue::new(),
    });
    let status = flags & OpenFlags::NONBLOCK;
    let read = OpenFile::new_device(
        node.clone(),
        pipe.clone(),
        READ_END,
        OpenFlags::empty() | status,
    );
    let write = OpenFile::new_device(node, pipe, WRITE_END, OpenFlags::WRONLY | status);
    Ok((read, write))
}
