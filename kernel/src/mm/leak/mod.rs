//! Leak tracking for the kernel heap, after Linux's kmemleak — and the heap reports built on it.
//!
//! Valgrind cannot run on a kernel, so the kernel watches itself. The tracker is the heap's
//! `HeapObserver`: for every live allocation it records address, size, alignment, the task it
//! was made for (`current_task_for_tracking`), an allocation sequence number, the jiffies, and
//! the call stack, deduplicated into a call-site table. From that it answers:
//!
//! - **which objects leaked**: `scan` runs kmemleak's conservative mark phase (see `scan`) and
//!   reports every object nothing points to, in kmemleak's own text format;
//! - **what is live since a point**: `mark` and `since-mark`, a cheap view without a scan;
//! - **who uses the heap**: live bytes and objects per call site, beside the heap's size-class
//!   and fragmentation figures (`write_heap_report`, `write_meminfo`, telemetry);
//! - **which free was wrong**: a double free, a free of a non-heap or interior pointer, a free
//!   with the wrong size, or a write past the end of an object (a red zone in the slack the size
//!   class leaves) stops the kernel with a panic report naming the allocation site and the free
//!   site (`FreeError`).
//!
//! The control words are kmemleak's (`scan`, `clear`, `off`, `dump=`), plus `mark`,
//! `since-mark` and `ignore=`; `command` takes them so that `/sys/kernel/debug/kmemleak` will be
//! a thin wrapper. The tracker never allocates from the heap it watches: its tables are frames
//! taken once at boot (`tables`), so its cost is fixed and stated in docs/leak-tracking.md, and
//! `kmemleak=off` leaves the heap exactly as fast as without it (docs/performance.md).
//!
//! The tracker is installed right after the frame allocator starts, before the heap can have
//! handed out anything (it has no frames before then), so every allocation is tracked from the
//! first. Should a future change allocate earlier, `init` counts those blocks and tolerates that
//! many unknown frees instead of calling them double frees (`untracked` in the reports).

mod capture;
pub mod debugfs;
mod report;
mod scan;
mod tables;
mod tests;
mod triggers;

use core::alloc::Layout;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::boot::Cmdline;
use crate::kprintln;
use crate::mm::heap::{self, HeapObserver, InterruptsOff, size_class};
pub use report::{ConsoleWriter, write_heap_report, write_leaks, write_meminfo};
pub use scan::ScanStats;
pub use tables::{FREE_DEPTH, OBJECT_CAPACITY, SITE_DEPTH, SITE_LIMIT};
use tables::{FrameHash, IGNORED, Object, REPORTED, Tables, UNREFERENCED};
pub use triggers::run_test_mode;

/// Whether the tracker runs, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// `init` has not run.
    Uninitialized = 0,
    On = 1,
    /// `kmemleak=off` on the command line.
    OffAtBoot = 2,
    /// The `off` command.
    OffByCommand = 3,
    /// More live objects than `OBJECT_CAPACITY`: like Linux, the tracker gives up rather than
    /// report objects it cannot see as leaks.
    OffPoolFull = 4,
    /// The frame allocator could not provide the tables.
    OffNoMemory = 5,
}

impl State {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::On,
            2 => Self::OffAtBoot,
            3 => Self::OffByCommand,
            4 => Self::OffPoolFull,
            5 => Self::OffNoMemory,
            _ => Self::Uninitialized,
        }
    }

    /// The telemetry/report spelling: `on`, or `off` and a reason.
    pub fn name(self) -> &'static str {
        match self {
            Self::On => "on",
            _ => "off",
        }
    }

    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::On => None,
            Self::Uninitialized => Some("uninitialized"),
            Self::OffAtBoot => Some("boot"),
            Self::OffByCommand => Some("command"),
            Self::OffPoolFull => Some("pool-full"),
            Self::OffNoMemory => Some("no-memory"),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::On => "on",
            Self::Uninitialized => "off (not initialized)",
            Self::OffAtBoot => "off (kmemleak=off)",
            Self::OffByCommand => "off (disabled by the `off` command)",
            Self::OffPoolFull => "off (object pool full: more than OBJECT_CAPACITY live objects)",
            Self::OffNoMemory => "off (no frames for the tables at boot)",
        })
    }
}

static STATE: AtomicU8 = AtomicU8::new(State::Uninitialized as u8);

pub fn state() -> State {
    State::from_u8(STATE.load(Ordering::Relaxed))
}

pub fn is_enabled() -> bool {
    state() == State::On
}

fn set_state(state: State) {
    STATE.store(state as u8, Ordering::Relaxed);
}

/// The pid an allocation is charged to: for now everything is charged to pid 0, "swapper/0", as
/// Linux does for its idle task. Attributing allocations to processes is the processes work's
/// to fill in (with `task_comm`): this runs inside the allocator with interrupts masked, on every
/// allocation, so it must not allocate and should not take a lock — `task::current_pid()` takes
/// the scheduler's (a few dozen ns under TCG, and it fails while the scheduler itself allocates);
/// a current-pid atomic published by the context switch would be free.
pub fn current_task_for_tracking() -> u32 {
    crate::task::current_pid_fast()
}

/// The command name shown for `pid` in reports (Linux's `comm`).
pub fn task_comm(pid: u32) -> crate::task::Comm {
    crate::task::comm(pid)
}

/// Red zone: the slack between the requested size and the block size, up to this many bytes,
/// is filled with `RED_ZONE_BYTE` at allocation and checked at free (SLUB's red zoning).
const RED_ZONE_MAX: usize = 8;
const RED_ZONE_BYTE: u8 = 0xcc;

#[inline(always)]
fn red_zone_len(layout: &Layout) -> usize {
    (size_class::block_size(layout) - layout.size()).min(RED_ZONE_MAX)
}

#[inline(always)]
fn paint_red_zone(addr: u64, layout: &Layout) {
    let len = red_zone_len(layout);
    let zone = (addr as *mut u8).wrapping_add(layout.size());
    // SAFETY: the heap just handed out this block; it spans `block_size(layout)` bytes, so the
    // `len` bytes after the requested size are inside it and belong to nobody else.
    unsafe {
        if len == RED_ZONE_MAX {
            zone.cast::<u64>()
                .write_unaligned(u64::from_ne_bytes([RED_ZONE_BYTE; RED_ZONE_MAX]));
        } else {
            for i in 0..len {
                zone.add(i).write(RED_ZONE_BYTE);
            }
        }
    }
}

/// Whether the red zone of a live object is as `paint_red_zone` left it.
#[inline(always)]
fn red_zone_intact(addr: u64, layout: &Layout) -> bool {
    let len = red_zone_len(layout);
    if len == RED_ZONE_MAX {
        let zone = (addr as *const u8)
            .wrapping_add(layout.size())
            .cast::<u64>();
        // SAFETY: as in `paint_red_zone`: the block is live and the zone is inside it.
        let value = unsafe { zone.read_unaligned() };
        return value == u64::from_ne_bytes([RED_ZONE_BYTE; RED_ZONE_MAX]);
    }
    len == 0 || red_zone_damage(addr, layout).is_none()
}

/// The first damaged red-zone byte of a live object: (offset from the object, value found).
fn red_zone_damage(addr: u64, layout: &Layout) -> Option<(usize, u8)> {
    (0..red_zone_len(layout)).find_map(|i| {
        let at = layout.size() + i;
        // SAFETY: as in `paint_red_zone`: the block is live and `at` is inside it.
        let byte = unsafe { core::ptr::read_volatile((addr as *const u8).add(at)) };
        (byte != RED_ZONE_BYTE).then_some((at, byte))
    })
}

/// What was wrong with a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeErrorKind {
    /// The address is the start of a heap block that is not live.
    DoubleFree,
    /// The address is not in the heap at all.
    NotHeap,
    /// The address points into a heap block, not at its start.
    Interior,
    /// The layout's size differs from the allocation's.
    WrongSize { allocated: u64 },
    /// The red zone after the object was overwritten.
    RedZone { offset: usize, found: u8 },
}

/// A bad free, with everything needed to name the allocation and both frees.
#[derive(Clone, Copy, Debug)]
pub struct FreeError {
    pub kind: FreeErrorKind,
    pub addr: u64,
    /// The size the free was made with.
    pub size: u64,
    /// The object concerned (the one freed, or the one an interior pointer points into).
    pub object: Option<(u64, u64)>,
    pub alloc_stack: [u64; SITE_DEPTH],
    pub alloc_depth: usize,
    /// The earlier free of the same block (double frees found in the free history).
    pub first_free: Option<([u64; FREE_DEPTH], usize)>,
    /// The offending free.
    pub free_stack: [u64; FREE_DEPTH],
    pub free_depth: usize,
}

impl FreeError {
    pub fn alloc_stack(&self) -> &[u64] {
        &self.alloc_stack[..self.alloc_depth]
    }

    pub fn free_stack(&self) -> &[u64] {
        &self.free_stack[..self.free_depth]
    }
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alloc = capture::OneLine {
            frames: self.alloc_stack(),
            max: 4,
        };
        let free = capture::OneLine {
            frames: self.free_stack(),
            max: 3,
        };
        let (addr, size) = (self.addr, self.size);
        match self.kind {
            FreeErrorKind::DoubleFree => {
                write!(f, "kmemleak: double free of {addr:#x} (size {size}): ")?;
                match self.first_free {
                    Some((frames, depth)) => {
                        let first = capture::OneLine {
                            frames: &frames[..depth],
                            max: 3,
                        };
                        write!(
                            f,
                            "allocated by {alloc}; first freed by {first}; freed again by {free}"
                        )
                    }
                    None => write!(
                        f,
                        "not live and not among the last {} frees; freed again by {free}",
                        tables::HISTORY
                    ),
                }
            }
            FreeErrorKind::NotHeap => write!(
                f,
                "kmemleak: free of {addr:#x} (size {size}), which is not a heap address, by {free}"
            ),
            FreeErrorKind::Interior => match self.object {
                Some((object, object_size)) => write!(
                    f,
                    "kmemleak: invalid free of {addr:#x} (size {size}) by {free}: it points {} bytes into object {object:#x} (size {object_size}) allocated by {alloc}",
                    addr - object
                ),
                None => write!(
                    f,
                    "kmemleak: invalid free of {addr:#x} (size {size}) by {free}: not the start of a heap block"
                ),
            },
            FreeErrorKind::WrongSize { allocated } => write!(
                f,
                "kmemleak: free of {addr:#x} with size {size} by {free}, but it was allocated with size {allocated} by {alloc}"
            ),
            FreeErrorKind::RedZone { offset, found } => write!(
                f,
                "kmemleak: heap corruption: object {addr:#x} (size {size}) allocated by {alloc} was written past its end (byte +{offset} is {found:#04x}, expected {RED_ZONE_BYTE:#04x}) before being freed by {free}"
            ),
        }
    }
}

struct Tracker {
    t: Tables,
    stack: capture::StackCache,
    /// The last stack hash and its site: consecutive allocations often come from one place.
    last_hash: u64,
    last_site: u32,
    seq: u64,
    mark: u64,
    scans: u64,
    last_scan: Option<ScanStats>,
    /// Blocks that were live before the tracker started (see the module documentation).
    untracked_live: usize,
}

/// A plain spinlock: the heap observer runs with interrupts masked (`HeapObserver`'s contract);
/// every other user masks them through `locked`/`try_locked`.
static TRACKER: spin::Mutex<Option<Tracker>> = spin::Mutex::new(None);

/// Runs `f` on the tracker with interrupts masked, waiting for its lock.
fn locked<R>(f: impl FnOnce(&mut Option<Tracker>) -> R) -> R {
    let _masked = InterruptsOff::new();
    f(&mut TRACKER.lock())
}

/// Like `locked`, but gives up if the tracker is locked (the debugger stopped its holder).
fn try_locked<R>(f: impl FnOnce(&mut Option<Tracker>) -> R) -> Option<R> {
    let _masked = InterruptsOff::new();
    let mut guard = TRACKER.try_lock()?;
    Some(f(&mut guard))
}

impl Tracker {
    /// Records a new object. The stack is walked once to hash it; only a stack never seen
    /// before is walked again to be stored. `false` if the object could not be recorded.
    #[inline(always)]
    fn record(&mut self, addr: u64, layout: &Layout, rbp: u64) -> bool {
        let mut hash = FrameHash::new();
        capture::walk_with(&mut self.stack, rbp, 0, SITE_DEPTH, |_, ret| hash.push(ret));
        let hash = hash.finish();
        let site = if hash == self.last_hash {
            self.last_site
        } else {
            let stack = &mut self.stack;
            let site = self
                .t
                .site_for_hash(hash, |out| capture::walk(stack, rbp, 0, out));
            self.last_hash = hash;
            self.last_site = site;
            site
        };
        let size = layout.size() as u64;
        let seq = self.seq + 1;
        let Ok(object) = self.t.insert(addr, size) else {
            return false;
        };
        object.seq = seq;
        object.jiffies = crate::time::ticks() as u32;
        object.site = site;
        object.pid = current_task_for_tracking();
        object.align_shift = layout.align().trailing_zeros() as u8;
        self.seq = seq;
        let site = self.t.site_mut(site);
        site.live_count += 1;
        site.live_bytes += size;
        site.allocs += 1;
        true
    }

    /// Why `record` failed: the pool is full (the tracker turns itself off), or the heap handed
    /// out a block the tracker believes is live (its free list is damaged: a panic).
    #[cold]
    #[inline(never)]
    fn record_failed(&mut self, addr: u64) {
        let Some((_, index)) = self.t.lookup(addr) else {
            set_state(State::OffPoolFull);
            return;
        };
        let object = self.t.objects[index];
        let site = *self.t.site(object.site);
        panic!(
            "kmemleak: heap corruption: the heap handed out {:#x} (size {}) while it is still live (allocated by {}); its free list is damaged, e.g. by a write after free",
            object.addr,
            object.size,
            capture::OneLine {
                frames: site.frames(),
                max: 4
            }
        );
    }

    fn error(&self, kind: FreeErrorKind, addr: u64, layout: &Layout) -> FreeError {
        FreeError {
            kind,
            addr,
            size: layout.size() as u64,
            object: None,
            alloc_stack: [0; SITE_DEPTH],
            alloc_depth: 0,
            first_free: None,
            free_stack: [0; FREE_DEPTH],
            free_depth: 0,
        }
    }

    fn with_object(&self, mut error: FreeError, index: usize) -> FreeError {
        let object = &self.t.objects[index];
        let site = self.t.site(object.site);
        error.object = Some((object.addr, object.size));
        error.alloc_depth = site.frames().len();
        error.alloc_stack[..error.alloc_depth].copy_from_slice(site.frames());
        error
    }

    /// Validates a free and, with `commit`, forgets the object; the stack of the free starts at
    /// `rbp`. The common case — a live object freed with its own size, red zone intact — is
    /// inlined into the allocator; everything else is `bad_free`'s.
    #[inline(always)]
    #[allow(
        clippy::result_large_err,
        reason = "the error is built on the allocator's path, where boxing it would recurse"
    )]
    fn release(
        &mut self,
        addr: u64,
        layout: &Layout,
        rbp: u64,
        commit: bool,
    ) -> Result<(), FreeError> {
        if let Some((slot, index)) = self.t.lookup(addr) {
            let object = &self.t.objects[index];
            let (size, seq, site) = (object.size, object.seq, object.site);
            if size == layout.size() as u64 && red_zone_intact(addr, layout) {
                if commit {
                    let stack = &mut self.stack;
                    let freed = self.t.next_free_record();
                    freed.addr = addr;
                    freed.size = size;
                    freed.seq = seq;
                    freed.site = site;
                    freed.depth = capture::walk(stack, rbp, 0, &mut freed.frames) as u32;
                    self.t.remove(slot, index);
                    let site = self.t.site_mut(site);
                    site.live_count -= 1;
                    site.live_bytes -= size;
                }
                return Ok(());
            }
        }
        self.bad_free(addr, layout, rbp, commit)
    }

    #[cold]
    #[inline(never)]
    #[allow(clippy::result_large_err, reason = "as for `release`")]
    fn bad_free(
        &mut self,
        addr: u64,
        layout: &Layout,
        rbp: u64,
        commit: bool,
    ) -> Result<(), FreeError> {
        let mut error = match self.t.lookup(addr) {
            Some((_, index)) => {
                let size = self.t.objects[index].size;
                let kind = if size != layout.size() as u64 {
                    FreeErrorKind::WrongSize { allocated: size }
                } else {
                    let (offset, found) = red_zone_damage(addr, layout).unwrap_or((0, 0));
                    FreeErrorKind::RedZone { offset, found }
                };
                self.with_object(self.error(kind, addr, layout), index)
            }
            None => match heap::block_containing(addr) {
                None => self.error(FreeErrorKind::NotHeap, addr, layout),
                Some(block) if block.start != addr => {
                    let error = self.error(FreeErrorKind::Interior, addr, layout);
                    match self.t.lookup(block.start) {
                        Some((_, index)) => self.with_object(error, index),
                        None => error,
                    }
                }
                Some(_) if self.untracked_live > 0 => {
                    if commit {
                        self.untracked_live -= 1;
                    }
                    return Ok(());
                }
                Some(_) => {
                    let mut error = self.error(FreeErrorKind::DoubleFree, addr, layout);
                    if let Some(freed) = self.t.last_free_of(addr) {
                        let site = self.t.site(freed.site);
                        error.alloc_depth = site.frames().len();
                        error.alloc_stack[..error.alloc_depth].copy_from_slice(site.frames());
                        error.object = Some((freed.addr, freed.size));
                        error.first_free = Some((freed.frames, freed.depth as usize));
                    }
                    error
                }
            },
        };
        error.free_depth = capture::walk(&mut self.stack, rbp, 0, &mut error.free_stack);
        Err(error)
    }

    fn scan(&mut self) -> ScanStats {
        let stats = scan::scan_with_registers_spilled(&mut self.t);
        self.scans += 1;
        self.last_scan = Some(stats);
        stats
    }
}

/// The leak tracker as the heap's observer (`mm::heap::KernelHeap`'s type parameter). Its
/// methods are inlined into the global allocator; stacks are taken from the frame pointer of
/// whichever allocator function they land in, and the allocator's own frames are dropped when a
/// report is printed (`capture::caller_frames`).
pub struct Observer;

#[cold]
#[inline(never)]
fn free_failed(error: &FreeError) -> ! {
    panic!("{error}")
}

impl HeapObserver for Observer {
    #[inline(always)]
    fn allocated(&self, ptr: *mut u8, layout: Layout) {
        if !is_enabled() {
            return;
        }
        let rbp = capture::frame_pointer();
        // Interrupts are masked by `KernelHeap` (the observer contract).
        let mut guard = TRACKER.lock();
        let Some(tracker) = guard.as_mut() else {
            return;
        };
        if tracker.record(ptr as u64, &layout, rbp) {
            paint_red_zone(ptr as u64, &layout);
        } else {
            tracker.record_failed(ptr as u64);
        }
    }

    #[inline(always)]
    fn freeing(&self, ptr: *mut u8, layout: Layout) {
        if !is_enabled() {
            return;
        }
        let rbp = capture::frame_pointer();
        // Interrupts are masked by `KernelHeap` (the observer contract).
        let result = match TRACKER.lock().as_mut() {
            Some(tracker) => tracker.release(ptr as u64, &layout, rbp, true),
            None => return,
        };
        if let Err(error) = result {
            free_failed(&error);
        }
    }
}

/// Starts the tracker unless the command line says `kmemleak=off`. Call right after the frame
/// allocator and the heap's frame descriptors are up, before anything allocates.
pub fn init(cmdline: &Cmdline) {
    if cmdline.get("kmemleak") == Some("off") {
        set_state(State::OffAtBoot);
        kprintln!("kmemleak: Kernel memory leak detector disabled (kmemleak=off)");
        return;
    }
    let Some(t) = Tables::new() else {
        set_state(State::OffNoMemory);
        kprintln!("kmemleak: cannot allocate the tracking tables; leak detector disabled");
        return;
    };
    let frames = t.frames;
    let untracked_live = heap::stats().live_allocations;
    locked(|tracker| {
        *tracker = Some(Tracker {
            t,
            stack: capture::StackCache::new(),
            last_hash: 0,
            last_site: 0,
            seq: 0,
            mark: 0,
            scans: 0,
            last_scan: None,
            untracked_live,
        })
    });
    set_state(State::On);
    kprintln!(
        "kmemleak: Kernel memory leak detector initialized (mem pool available: {OBJECT_CAPACITY})"
    );
    kprintln!(
        "kmemleak: {} KiB of tables ({frames} frames): {OBJECT_CAPACITY} objects, {SITE_LIMIT} call sites",
        frames * 4
    );
    if untracked_live > 0 {
        kprintln!("kmemleak: {untracked_live} heap blocks predate the tracker and are not tracked");
    }
}

/// Checks whether freeing `ptr` with `layout` would be valid, without freeing anything: the
/// detection the allocator runs on every free (where an error is a panic), as a value.
#[inline(never)]
#[allow(
    clippy::result_large_err,
    reason = "a plain value, so that detection never allocates"
)]
pub fn check_free(ptr: *mut u8, layout: Layout) -> Result<(), FreeError> {
    let rbp = capture::frame_pointer();
    locked(|tracker| match tracker.as_mut() {
        Some(tracker) if is_enabled() => tracker.release(ptr as u64, &layout, rbp, false),
        _ => Ok(()),
    })
}

/// Why a control command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    Empty,
    Unknown,
    /// Linux's `stack=`, `scan=on/off`, `scan=<secs>`: there is no scanning thread here.
    Unsupported,
    BadAddress,
    NoObject(u64),
    Disabled(State),
    /// The tables are locked by code the debugger stopped; continue and retry.
    Busy,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty command"),
            Self::Unknown => f.write_str(
                "unknown command; use scan, clear, off, dump=ADDR, mark, since-mark or ignore=ADDR",
            ),
            Self::Unsupported => f.write_str(
                "not supported: there is no scanning thread and stacks are always recorded",
            ),
            Self::BadAddress => f.write_str("not an address (0x-hex or decimal)"),
            Self::NoObject(addr) => write!(f, "no tracked object contains {addr:#x}"),
            Self::Disabled(state) => write!(f, "kmemleak is {state}"),
            Self::Busy => {
                f.write_str("the tracker is locked by the stopped code; continue and try again")
            }
        }
    }
}

fn with_tracker<R>(f: impl FnOnce(&mut Tracker) -> R) -> Result<R, CommandError> {
    if !is_enabled() {
        return Err(CommandError::Disabled(state()));
    }
    try_locked(|tracker| {
        let tracker = tracker
            .as_mut()
            .ok_or(CommandError::Disabled(State::Uninitialized))?;
        Ok(f(tracker))
    })
    .unwrap_or(Err(CommandError::Busy))
}

/// Runs a scan now.
pub fn scan() -> Result<ScanStats, CommandError> {
    with_tracker(Tracker::scan)
}

fn parse_address(text: &str) -> Result<u64, CommandError> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| CommandError::BadAddress)
}

/// The pool index of the live object whose block contains `addr`.
fn object_containing(t: &Tables, addr: u64) -> Option<usize> {
    let block = heap::block_containing(addr)?;
    let (_, index) = t.lookup(block.start)?;
    let object = &t.objects[index];
    (addr < object.addr + object.size.max(1)).then_some(index)
}

/// The kmemleak control interface: what writing to `/sys/kernel/debug/kmemleak` will do.
///
/// - `scan`: scan now; report how many new unreferenced objects were found
/// - `clear`: never report the objects currently reported as unreferenced again
/// - `off`: stop tracking for good (Linux's semantics)
/// - `dump=ADDR`: show the object containing `ADDR`
/// - `mark`: remember the current allocation sequence number
/// - `since-mark`: list the objects allocated after the mark that are still live (no scan)
/// - `ignore=ADDR`: never report the object containing `ADDR` (still scanned: what it points to
///   stays referenced — Linux's `kmemleak_not_leak`)
pub fn command(text: &str, out: &mut dyn Write) -> Result<(), CommandError> {
    let word = text.trim();
    if word.is_empty() {
        return Err(CommandError::Empty);
    }
    let (key, value) = match word.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (word, None),
    };
    match (key, value) {
        ("off", None) => {
            if is_enabled() {
                set_state(State::OffByCommand);
            }
            let _ = writeln!(out, "kmemleak: Kernel memory leak detector disabled");
            Ok(())
        }
        ("scan", None) => {
            let stats = scan()?;
            report::write_scan_summary(out, &stats);
            Ok(())
        }
        ("clear", None) => {
            let cleared = with_tracker(|tracker| {
                let mut cleared = 0;
                for object in tracker.t.objects.iter_mut().filter(|o| o.addr != 0) {
                    if object.flags & (UNREFERENCED | REPORTED) == UNREFERENCED | REPORTED {
                        object.flags = (object.flags & !UNREFERENCED) | IGNORED;
                        cleared += 1;
                    }
                }
                cleared
            })?;
            let _ = writeln!(out, "kmemleak: cleared {cleared} unreferenced objects");
            Ok(())
        }
        ("mark", None) => {
            let mark = with_tracker(|tracker| {
                tracker.mark = tracker.seq;
                tracker.mark
            })?;
            let _ = writeln!(out, "kmemleak: mark set at allocation #{mark}");
            Ok(())
        }
        ("since-mark", None) => {
            let mark = with_tracker(|tracker| tracker.mark)?;
            report::write_since(out, mark)
        }
        ("dump", Some(addr)) => {
            let addr = parse_address(addr)?;
            let found = with_tracker(|tracker| object_containing(&tracker.t, addr))?;
            let index = found.ok_or(CommandError::NoObject(addr))?;
            report::write_dump(out, index)
        }
        ("ignore", Some(addr)) => {
            let addr = parse_address(addr)?;
            let ignored = with_tracker(|tracker| {
                let index = object_containing(&tracker.t, addr)?;
                let object = &mut tracker.t.objects[index];
                object.flags = (object.flags & !UNREFERENCED) | IGNORED;
                Some((object.addr, object.size))
            })?;
            let (start, size) = ignored.ok_or(CommandError::NoObject(addr))?;
            let _ = writeln!(
                out,
                "kmemleak: object {start:#x} (size {size}) will not be reported"
            );
            Ok(())
        }
        ("stack" | "scan", Some(_)) => Err(CommandError::Unsupported),
        _ => Err(CommandError::Unknown),
    }
}

/// Tracker-wide figures for reports and telemetry.
#[derive(Clone, Copy, Debug)]
pub struct TrackerStats {
    pub state: State,
    pub objects: usize,
    pub peak: usize,
    pub live_bytes: u64,
    pub sites: usize,
    pub overhead_bytes: usize,
    pub seq: u64,
    pub mark: u64,
    pub scans: u64,
    pub last_scan: Option<ScanStats>,
    /// Objects the last scan found unreferenced that are still live and not cleared/ignored.
    pub unreferenced: usize,
    pub untracked: usize,
    pub allocs: u64,
    pub frees: u64,
}

/// `None` while the debugger has stopped the machine inside the tracker. When the tracker is
/// off, the figures are those it had when it stopped (zero if it never ran).
pub fn tracker_stats() -> Option<TrackerStats> {
    let state = state();
    try_locked(|guard| match guard.as_ref() {
        None => TrackerStats {
            state,
            objects: 0,
            peak: 0,
            live_bytes: 0,
            sites: 0,
            overhead_bytes: 0,
            seq: 0,
            mark: 0,
            scans: 0,
            last_scan: None,
            unreferenced: 0,
            untracked: 0,
            allocs: 0,
            frees: 0,
        },
        Some(tracker) => TrackerStats {
            state,
            objects: tracker.t.live,
            peak: tracker.t.peak,
            live_bytes: tracker
                .t
                .sites
                .iter()
                .filter(|s| s.hash != 0)
                .map(|s| s.live_bytes)
                .sum(),
            sites: tracker.t.sites_used,
            overhead_bytes: tracker.t.frames * crate::mm::PAGE_SIZE,
            seq: tracker.seq,
            mark: tracker.mark,
            scans: tracker.scans,
            last_scan: tracker.last_scan,
            unreferenced: tracker
                .t
                .live_objects()
                .filter(|(_, o)| o.flags & (UNREFERENCED | IGNORED) == UNREFERENCED)
                .count(),
            untracked: tracker.untracked_live,
            allocs: tracker.seq,
            frees: tracker.seq - tracker.t.live as u64,
        },
    })
}

/// A call site and what is live from it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SiteInfo {
    pub id: u32,
    pub live_count: u32,
    pub live_bytes: u64,
    pub allocs: u64,
    pub frames: [u64; SITE_DEPTH],
    pub depth: usize,
}

impl SiteInfo {
    /// The stack without allocator frames: `caller()[0]` is the code that allocated.
    pub fn caller(&self) -> &[u64] {
        capture::caller_frames(&self.frames[..self.depth])
    }
}

/// Fills `out` with the call sites holding the most live bytes, largest first; returns how many.
pub fn top_sites(out: &mut [SiteInfo]) -> Result<usize, CommandError> {
    with_tracker(|tracker| {
        let mut n = 0;
        for (id, site) in tracker.t.sites.iter().enumerate() {
            if site.hash == 0 || site.live_count == 0 {
                continue;
            }
            let at = out[..n]
                .iter()
                .position(|s| s.live_bytes < site.live_bytes)
                .unwrap_or(n);
            if at >= out.len() {
                continue;
            }
            if n < out.len() {
                n += 1;
            }
            out.copy_within(at..n - 1, at + 1);
            let depth = site.frames().len();
            out[at] = SiteInfo {
                id: id as u32,
                live_count: site.live_count,
                live_bytes: site.live_bytes,
                allocs: site.allocs,
                frames: site.frames,
                depth,
            };
        }
        n
    })
}

/// A copy of one tracked object, for reports written without the tracker's lock.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObjectInfo {
    pub addr: u64,
    pub size: u64,
    pub align: u64,
    pub seq: u64,
    pub jiffies: u32,
    pub pid: u32,
    pub flags: u8,
    pub site: u32,
    pub frames: [u64; SITE_DEPTH],
    pub depth: usize,
    /// The object's first bytes (kmemleak's hex dump).
    pub head: [u8; 32],
    pub head_len: usize,
}

impl ObjectInfo {
    pub fn caller(&self) -> &[u64] {
        capture::caller_frames(&self.frames[..self.depth])
    }

    pub fn is_unreferenced(&self) -> bool {
        self.flags & (UNREFERENCED | IGNORED) == UNREFERENCED
    }
}

fn object_info(t: &Tables, object: &Object) -> ObjectInfo {
    let site = t.site(object.site);
    let mut info = ObjectInfo {
        addr: object.addr,
        size: object.size,
        align: 1 << object.align_shift,
        seq: object.seq,
        jiffies: object.jiffies,
        pid: object.pid,
        flags: object.flags,
        site: object.site,
        frames: site.frames,
        depth: site.frames().len(),
        ..ObjectInfo::default()
    };
    info.head_len = (object.size as usize).min(info.head.len());
    for (i, byte) in info.head[..info.head_len].iter_mut().enumerate() {
        // SAFETY: the object is live (the caller holds the tracker's lock, so it cannot be freed
        // meanwhile) and `i` is below its size.
        *byte = unsafe { core::ptr::read_volatile((object.addr as *const u8).add(i)) };
    }
    info
}

/// Which objects `visit_objects` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Found unreferenced by the last scan, not cleared or ignored.
    Unreferenced,
    /// Allocated after sequence number `n`.
    Since(u64),
    /// One pool entry (for `dump=`).
    Index(usize),
}

/// Calls `f` with copies of the live objects that match `filter`, at most `limit` of them, in
/// pool order; the tracker's lock is taken for small batches and released around `f`, so `f`
/// may allocate (the view is therefore not one atomic snapshot). Returns how many were visited.
pub fn visit_objects(
    filter: Filter,
    limit: usize,
    mut f: impl FnMut(&ObjectInfo),
) -> Result<usize, CommandError> {
    const BATCH: usize = 4;
    let (mut cursor, mut visited) = (0, 0);
    loop {
        let mut batch = [ObjectInfo::default(); BATCH];
        let (n, next) = with_tracker(|tracker| {
            let t = &tracker.t;
            let mut n = 0;
            let mut at = cursor;
            while at < t.objects.len() && n < BATCH && visited + n < limit {
                let object = &t.objects[at];
                at += 1;
                let wanted = object.addr != 0
                    && match filter {
                        Filter::Unreferenced => {
                            object.flags & (UNREFERENCED | IGNORED) == UNREFERENCED
                        }
                        Filter::Since(seq) => object.seq > seq,
                        Filter::Index(index) => at - 1 == index,
                    };
                if wanted {
                    batch[n] = object_info(t, object);
                    n += 1;
                }
            }
            (n, at)
        })?;
        for info in &batch[..n] {
            f(info);
        }
        visited += n;
        cursor = next;
        if cursor >= OBJECT_CAPACITY || visited >= limit {
            return Ok(visited);
        }
    }
}
