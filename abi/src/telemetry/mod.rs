//! The telemetry snapshot format (docs/telemetry.md): record types, the encoder the kernel
//! writes with, and the decoder the host reads with.
//!
//! With `telemetry=ttyS2` the kernel answers one request line on that UART (`snapshot`, `scan`,
//! `detail PID`) with one snapshot: a versioned, line-based `kind key=value` text format. The
//! kernel formats it in its UART interrupt handler without allocating, so the encoder
//! (`SnapshotWriter`) writes record by record through `core::fmt::Write` from plain figures and
//! borrowed strings (`*Record` views); the host decodes it into owned values (`Snapshot::parse`)
//! and prints a parsed snapshot back through the very same encoder (`Display`), so
//! "the kernel's bytes" and "what the host writes" are one piece of code, and the host's tests
//! check encode → decode → equal on it.
//!
//! The decoder is strict where a mistake would mislead — markers, sequence numbers, record and
//! section counts, the version — and lenient where the kernel may grow: unknown record kinds are
//! skipped, and unknown fields of `task` records are kept (`Task::extra`) so a tool shows a newer
//! kernel's figures without re-reading the text. It never panics, whatever the input.

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;

pub use decode::ParseError;
pub use encode::{
    DetailRecord, Escaped, FrameWriter, LeakRecord, MapRecord, SiteRecord, SnapshotWriter,
    StackFrames, TaskRecord, TrackerRecord, write_error,
};

/// The format version this module reads and writes.
pub const VERSION: u32 = 1;
pub const BEGIN: &str = "telemetry-begin";
pub const END: &str = "telemetry-end";
pub const ERROR: &str = "telemetry-error";
/// How the kernel's boot log announces the channel: `Announcement`'s text starts with it, and
/// tools watching the console for the channel look for it.
pub const ANNOUNCEMENT_PREFIX: &str = "telemetry: snapshots (format v1) on ttyS";

/// The console line the kernel prints once it answers requests on `ttyS<port>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub port: usize,
}

impl core::fmt::Display for Announcement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "telemetry: snapshots (format v{VERSION}) on ttyS{}; requests: snapshot, scan, detail PID",
            self.port
        )
    }
}

/// The longest request line the kernel accepts (bytes, without the line terminator).
pub const MAX_REQUEST_LEN: usize = 64;

/// Records whose fields are all numbers: one list of field names serves the encoder and the
/// decoder.
macro_rules! numeric_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident = $kind:literal {
            $( $(#[$field_meta:meta])* pub $field:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: u64, )*
        }

        impl $name {
            /// The record's kind word.
            pub const KIND: &'static str = $kind;
            /// Its fields, in the order they are written.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn write_fields(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
                $( write!(out, concat!(" ", stringify!($field), "={}"), self.$field)?; )*
                Ok(())
            }

            fn read_fields(record: &decode::Record<'_>) -> Result<Self, ParseError> {
                Ok(Self { $( $field: record.num(stringify!($field))?, )* })
            }
        }
    };
}

numeric_record! {
    /// `uptime`: time since the kernel's clock started.
    pub struct Uptime = "uptime" {
        pub ns,
        pub jiffies,
        /// Jiffies per second.
        pub hz,
    }
}

numeric_record! {
    /// `frames`: physical memory, in 4 KiB frames.
    pub struct Frames = "frames" {
        pub total,
        pub free,
        pub used,
        /// Claimed at boot: kernel image, initrd, the frame allocator's bitmap.
        pub kernel,
        /// Held by the kernel heap (size-class frames and large blocks).
        pub heap,
        /// The heap's per-frame descriptors.
        pub heap_meta,
        /// The leak tracker's tables.
        pub tracker,
    }
}

numeric_record! {
    /// `heap`: kernel heap totals (bytes unless named otherwise).
    pub struct Heap = "heap" {
        /// Live allocations.
        pub objects,
        /// Bytes requested by live allocations.
        pub bytes,
        /// Bytes the heap holds from the frame allocator.
        pub footprint,
        /// Bytes of carved, currently free blocks.
        pub free_bytes,
        /// Bytes lost to rounding requests up to their block size.
        pub internal_frag,
        /// Bytes of free blocks in frames that also hold live blocks.
        pub external_frag,
        pub allocs,
        pub frees,
        pub failed,
        pub large_objects,
        pub large_frames,
        pub large_bytes,
    }
}

numeric_record! {
    /// `class`: one size class of the heap.
    pub struct SizeClass = "class" {
        /// Block size in bytes.
        pub size,
        pub frames,
        /// Live blocks.
        pub live,
        /// Free blocks.
        pub free,
        /// Bytes requested by the live blocks' owners.
        pub requested,
        /// Frames with both live and free blocks, and the free blocks in them.
        pub partial_frames,
        pub partial_free,
        pub empty_frames,
        pub full_frames,
    }
}

numeric_record! {
    /// `scan`: the last leak scan (absent before the first).
    pub struct Scan = "scan" {
        pub at_ns,
        pub objects,
        pub unreferenced,
        pub new,
        pub root_bytes,
        pub object_bytes,
        pub duration_ns,
    }
}

/// `tracker`: the leak tracker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracker {
    /// `on` or `off`.
    pub state: String,
    /// Why it is off: `boot` (`kmemleak=off`), `command`, `pool-full`, `no-memory`, `busy`.
    pub reason: Option<String>,
    pub objects: u64,
    pub peak: u64,
    pub capacity: u64,
    pub bytes: u64,
    pub sites: u64,
    pub site_capacity: u64,
    /// Bytes of the tracker's tables.
    pub overhead: u64,
    /// The last allocation sequence number handed out.
    pub seq: u64,
    pub mark: u64,
    pub scans: u64,
    pub unreferenced: u64,
    pub untracked: u64,
    pub allocs: u64,
    pub frees: u64,
}

impl Tracker {
    pub fn is_on(&self) -> bool {
        self.state == "on"
    }

    /// The record the encoder writes for it.
    pub fn record(&self) -> TrackerRecord<'_> {
        TrackerRecord {
            state: &self.state,
            reason: self.reason.as_deref(),
            objects: self.objects,
            peak: self.peak,
            capacity: self.capacity,
            bytes: self.bytes,
            sites: self.sites,
            site_capacity: self.site_capacity,
            overhead: self.overhead,
            seq: self.seq,
            mark: self.mark,
            scans: self.scans,
            unreferenced: self.unreferenced,
            untracked: self.untracked,
            allocs: self.allocs,
            frees: self.frees,
        }
    }
}

/// One return address of a stack, with its kallsyms name (`None` where the kernel had none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub address: u64,
    pub symbol: Option<String>,
}

/// `site`: a call site and what is live from it. `frames[0]` is the allocating code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallSite {
    pub id: u32,
    pub objects: u64,
    pub bytes: u64,
    pub allocs: u64,
    pub frames: Vec<Frame>,
}

/// `leak`: an object the last scan found unreferenced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leak {
    pub address: u64,
    pub size: u64,
    pub seq: u64,
    pub pid: u32,
    pub comm: String,
    pub jiffies: u64,
    pub age_ms: u64,
    pub site: u32,
    pub frames: Vec<Frame>,
}

/// `task`: a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub ppid: u32,
    /// `ps`'s state letter: `R` runnable or running, `S` waiting, `T` stopped, `Z` zombie.
    pub state: String,
    /// The executable's name (at most 15 bytes, like Linux's `comm`).
    pub comm: String,
    /// CPU time used, in milliseconds (optional: kernels before it was added omit it).
    pub cpu_ms: Option<u64>,
    /// Resident user memory in KiB (optional; also absent when the kernel could not read it
    /// without waiting for a lock).
    pub rss_kib: Option<u64>,
    /// Mapped size and resident memory by kind of region (optional; present with `rss_kib`
    /// in kernels that report it).
    pub memory: Option<TaskMemory>,
    /// Fields this version of the format does not define (a newer kernel's), in record order,
    /// values unescaped: kept so tools can show them, and written back after the known ones.
    pub extra: Vec<(String, String)>,
}

impl Task {
    /// The fields the format defines for a `task` record, in the order they are written.
    pub const FIELDS: [&'static str; 11] = [
        "pid",
        "ppid",
        "state",
        "comm",
        "cpu_ms",
        "rss_kib",
        "vsz_kib",
        "image_kib",
        "heap_kib",
        "stack_kib",
        "anon_kib",
    ];

    /// The value of an extra field, by name.
    pub fn extra_field(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A process's memory by region, in KiB: `vsz` is everything mapped, the rest is resident.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskMemory {
    pub vsz_kib: u64,
    pub image_kib: u64,
    pub heap_kib: u64,
    pub stack_kib: u64,
    pub anon_kib: u64,
}

/// The `where` word of a `detail` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Sleeping,
    Running,
    Gone,
    Unknown,
}

impl Place {
    pub fn word(self) -> &'static str {
        match self {
            Self::Sleeping => "sleeping",
            Self::Running => "running",
            Self::Gone => "gone",
            Self::Unknown => "unknown",
        }
    }

    /// Words a newer kernel may add read as `Unknown`.
    pub fn from_word(word: &str) -> Self {
        match word {
            "sleeping" => Self::Sleeping,
            "running" => Self::Running,
            "gone" => Self::Gone,
            _ => Self::Unknown,
        }
    }
}

/// Where a process is in the kernel, as a `detail` answer says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KernelPlace {
    /// Asleep in the kernel: the backtrace from its saved context, innermost first.
    Sleeping(Vec<Frame>),
    /// On the CPU (in user mode, or the kernel on its behalf) when the snapshot was taken.
    Running,
    /// The process no longer exists.
    Gone,
    /// The kernel could not say.
    #[default]
    Unknown,
}

impl KernelPlace {
    pub fn place(&self) -> Place {
        match self {
            Self::Sleeping(_) => Place::Sleeping,
            Self::Running => Place::Running,
            Self::Gone => Place::Gone,
            Self::Unknown => Place::Unknown,
        }
    }
}

/// One region of a process's memory map (`/proc/<pid>/maps`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapEntry {
    pub start: u64,
    pub end: u64,
    /// `r-xp` style.
    pub perms: String,
    /// The executable's name, `[heap]`, `[stack]`, or empty for anonymous memory.
    pub name: String,
}

/// `detail` and `map` records: one process looked at closely (answer to `detail PID`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessDetail {
    pub pid: u32,
    /// `ps`'s state letter, or `gone`.
    pub state: String,
    pub place: KernelPlace,
    pub maps: Vec<MapEntry>,
}

/// One snapshot of the kernel's memory state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u32,
    /// Increases by one for every snapshot the kernel writes.
    pub seq: u64,
    pub uptime: Uptime,
    pub frames: Frames,
    pub heap: Heap,
    pub classes: Vec<SizeClass>,
    pub tracker: Tracker,
    pub scan: Option<Scan>,
    /// The call sites holding the most live bytes, largest first.
    pub sites: Vec<CallSite>,
    /// Listed unreferenced objects (at most a few; `leaks_total` says how many there are).
    pub leaks: Vec<Leak>,
    pub leaks_total: u64,
    /// Listed processes (at most 64; `tasks_total` says how many there are).
    pub tasks: Vec<Task>,
    pub tasks_total: u64,
    /// The process a `detail PID` request asked about (absent in plain snapshots).
    pub detail: Option<ProcessDetail>,
}

/// A request line the host sends and the kernel answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Snapshot,
    /// Run a leak scan, then answer with a snapshot (its `leak` records are the scan's result).
    Scan,
    /// A snapshot plus this process's memory map and kernel stack (`Snapshot::detail`).
    Detail(u32),
}

impl Request {
    /// The line to send (without its `\n`).
    pub fn line(self) -> String {
        alloc::string::ToString::to_string(&self)
    }

    /// Reads a request line (surrounding whitespace ignored); `None` for anything else.
    pub fn parse(line: &str) -> Option<Self> {
        match line.trim() {
            "snapshot" => Some(Self::Snapshot),
            "scan" => Some(Self::Scan),
            other => other
                .strip_prefix("detail ")
                .and_then(|pid| pid.trim().parse().ok())
                .map(Self::Detail),
        }
    }
}

impl core::fmt::Display for Request {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Snapshot => f.write_str("snapshot"),
            Self::Scan => f.write_str("scan"),
            Self::Detail(pid) => write!(f, "detail {pid}"),
        }
    }
}
