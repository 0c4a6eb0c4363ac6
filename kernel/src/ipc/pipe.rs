//! Pipes: a 64 KiB ring between a read end and a write end, with Linux's semantics — a read
//! blocks until data or end of file (no writers left), a write blocks while the ring is full,
//! writing with no reader left raises `SIGPIPE` and fails with `EPIPE`, `O_NONBLOCK` turns the
//! waits into `EAGAIN`. Each end is an `OpenFile` over the pipe as a character "device", whose
//! node is an unlinked FIFO in a private tmpfs, so `fstat` reports `S_IFIFO` as on Linux.
//!
//! Named pipes (`mkfifo`) are the same object reached by opening a FIFO node: every FIFO inode
//! that is open has one `Pipe`, found by the inode's identity in `OPEN_FIFOS`. The anonymous
//! pipes' nodes are listed there too, so reopening one through `/proc/<pid>/fd/N` (what bash's
//! `<(...)` does through `/dev/fd`) joins the same pipe, as on Linux. Opening a FIFO waits for
//! the other side as Linux's `fifo_open` does: a reader for a writer and a writer for a reader,
//! unless `O_NONBLOCK` (then a writer without readers gets `ENXIO`) or `O_RDWR`.

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use crate::errno::{EResult, Errno};
use crate::fs::dev::{CharDevice, PollEvents};
use crate::fs::inode::{NodeKind, Owner};
use crate::fs::{Location, Mount, MountFlags, OpenFile, OpenFlags};
use crate::sync::IrqSpinLock;
use crate::task::{self, WaitQueue, signal};

/// Linux's default pipe capacity.
pub const CAPACITY: usize = 64 * 1024;
/// POSIX's `PIPE_BUF`: a write of at most this much goes in whole or not at all.
pub const PIPE_BUF: usize = 4096;
const READ_END: u32 = 0;
const WRITE_END: u32 = 1;
/// A FIFO opened `O_RDWR`: both ends in one open file.
const BOTH_ENDS: u32 = 2;

struct State {
    buffer: VecDeque<u8>,
    readers: usize,
    writers: usize,
    /// How many times each side was ever opened: a FIFO open waits for the other count to
    /// move, so a peer that opens and closes at once still releases it (Linux's `r_counter`).
    reader_opens: u64,
    writer_opens: u64,
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

    /// Whether a writer with `pending` bytes left can make progress: room for all of them if
    /// they must go in at once (`atomic`), for some otherwise; or no reader left (`EPIPE`).
    fn writable(&self, pending: usize, atomic: bool) -> bool {
        let state = self.state.lock();
        let room = CAPACITY - state.buffer.len();
        state.readers == 0 || if atomic { room >= pending } else { room > 0 }
    }
}

impl CharDevice for Pipe {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn release(&self, minor: u32) {
        {
            let mut state = self.state.lock();
            if minor != WRITE_END {
                state.readers = state.readers.saturating_sub(1);
            }
            if minor != READ_END {
                state.writers = state.writers.saturating_sub(1);
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
            let (front, back) = state.buffer.as_slices();
            let first = n.min(front.len());
            buf[..first].copy_from_slice(&front[..first]);
            buf[first..n].copy_from_slice(&back[..n - first]);
            state.buffer.drain(..n);
            n
        };
        self.changed.wake_all();
        task::readiness_changed();
        Ok(n)
    }

    /// Linux's `pipe_write`: a blocking write waits until all of `buf` is in (a signal ends the
    /// wait: the bytes written so far, or `EINTR` if none); one of at most `PIPE_BUF` bytes is
    /// never split, so it waits for room for all of it.
    fn write(&self, _minor: u32, buf: &[u8], flags: OpenFlags) -> EResult<usize> {
        let atomic = buf.len() <= PIPE_BUF;
        let mut written = 0;
        while written < buf.len() {
            let pending = buf.len() - written;
            let ready = if flags.contains(OpenFlags::NONBLOCK) {
                if self.writable(pending, atomic) {
                    Ok(())
                } else {
                    Err(Errno::EAGAIN)
                }
            } else {
                self.changed.wait_until(|| self.writable(pending, atomic))
            };
            if let Err(error) = ready {
                return if written > 0 { Ok(written) } else { Err(error) };
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
                    // Linux's `pipe_write`: what went in before the readers left counts.
                    return if written > 0 {
                        Ok(written)
                    } else {
                        Err(Errno::EPIPE)
                    };
                }
                let room = CAPACITY - state.buffer.len();
                let n = room.min(pending);
                if state.buffer.try_reserve(n).is_err() {
                    drop(state);
                    return if written > 0 {
                        Ok(written)
                    } else {
                        Err(Errno::ENOMEM)
                    };
                }
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
        if minor != WRITE_END {
            if !state.buffer.is_empty() {
                events |= PollEvents::IN | PollEvents::RDNORM;
            }
            if state.writers == 0 {
                events |= PollEvents::HUP;
            }
        }
        if minor != READ_END {
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

impl Pipe {
    fn new(readers: usize, writers: usize) -> Arc<Self> {
        Arc::new(Self {
            state: IrqSpinLock::new(State {
                buffer: VecDeque::new(),
                readers,
                writers,
                reader_opens: readers as u64,
                writer_opens: writers as u64,
            }),
            changed: WaitQueue::new(),
        })
    }
}

impl Drop for Pipe {
    /// The last end is gone: its entry (and any other stale one) leaves the FIFO table now, so
    /// the table only ever holds live pipes. Never dropped with `OPEN_FIFOS` held: the table
    /// holds `Weak`s, and `pipe_of` returns what it upgrades.
    fn drop(&mut self) {
        sweep(&mut OPEN_FIFOS.lock());
    }
}

/// The pipe of every FIFO inode someone has open, by the inode's address. `Weak`: the last
/// open file of a FIFO drops its pipe (unread data goes, as on Linux), and the stale entry is
/// swept on the next lookup.
static OPEN_FIFOS: IrqSpinLock<Vec<(usize, Weak<Pipe>)>> = IrqSpinLock::new(Vec::new());

fn fifo_key(location: &Location) -> usize {
    Arc::as_ptr(&location.inode) as *const () as usize
}

/// Drops the entries of pipes that are gone. A `Weak` keeps its pipe's allocation alive, so
/// every registration sweeps first: otherwise each anonymous pipe ever made stayed in the table
/// until the next FIFO open, and a loop of `pipe` and `close` grew kernel memory without bound
/// (found by sysfuzz, seed 7).
fn sweep(fifos: &mut Vec<(usize, Weak<Pipe>)>) {
    fifos.retain(|(_, pipe)| pipe.strong_count() > 0);
}

/// The pipe behind FIFO `location`, made (empty, nobody on either side) if none is open.
fn pipe_of(location: &Location) -> Arc<Pipe> {
    let key = fifo_key(location);
    let mut fifos = OPEN_FIFOS.lock();
    sweep(&mut fifos);
    if let Some(pipe) = fifos
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, p)| p.upgrade())
    {
        return pipe;
    }
    let pipe = Pipe::new(0, 0);
    fifos.push((key, Arc::downgrade(&pipe)));
    pipe
}

/// Opens FIFO `location` (a named pipe, or an anonymous pipe's node reached through
/// `/proc/<pid>/fd`): joins its pipe on the side the access mode says, waiting for the other
/// side as Linux does (see the module's doc). A signal interrupts the wait (`EINTR`).
pub fn open_fifo(location: Location, flags: OpenFlags) -> EResult<Arc<OpenFile>> {
    let pipe = pipe_of(&location);
    // An anonymous pipe reopened through /proc never waits (Linux's `is_pipe`): its other
    // side may be long gone, and that is just end-of-file.
    let anonymous = PIPEFS
        .get()
        .is_some_and(|root| Arc::ptr_eq(&root.mount, &location.mount));
    let nonblocking = anonymous || flags.contains(OpenFlags::NONBLOCK);
    let minor = match (flags.reads(), flags.writes()) {
        (true, true) => BOTH_ENDS,
        (false, true) => WRITE_END,
        _ => READ_END,
    };
    let (reader_opens, writer_opens) = {
        let mut state = pipe.state.lock();
        if minor == WRITE_END && nonblocking && !anonymous && state.readers == 0 {
            return Err(Errno::ENXIO);
        }
        if minor != WRITE_END {
            state.readers += 1;
            state.reader_opens += 1;
        }
        if minor != READ_END {
            state.writers += 1;
            state.writer_opens += 1;
        }
        (state.reader_opens, state.writer_opens)
    };
    pipe.changed.wake_all();
    task::readiness_changed();
    // The file exists from here on: if the wait fails, dropping it gives the side back.
    let file = OpenFile::new_device(location, pipe.clone(), minor, flags);
    let waited = match minor {
        READ_END if !nonblocking => pipe.changed.wait_until(|| {
            let state = pipe.state.lock();
            state.writers > 0 || state.writer_opens != writer_opens
        }),
        WRITE_END if !anonymous => pipe.changed.wait_until(|| {
            let state = pipe.state.lock();
            state.readers > 0 || state.reader_opens != reader_opens
        }),
        _ => Ok(()),
    };
    waited.map(|()| file)
}

/// A new pipe's two ends: (read, write).
pub fn new(flags: OpenFlags) -> EResult<(Arc<OpenFile>, Arc<OpenFile>)> {
    let node = fifo_node()?;
    let pipe = Pipe::new(1, 1);
    // Reachable again through /proc/<pid>/fd while either end is open. Stale entries go
    // first: a `Weak` keeps its pipe's memory, so without the sweep every pipe ever made
    // would stay allocated.
    {
        let mut fifos = OPEN_FIFOS.lock();
        sweep(&mut fifos);
        fifos.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        fifos.push((fifo_key(&node), Arc::downgrade(&pipe)));
    }
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
