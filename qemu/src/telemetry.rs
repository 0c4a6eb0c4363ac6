//! The kernel's telemetry snapshots (docs/telemetry.md): parser, writer and a socket client.
//!
//! With `telemetry=ttyS2` on its command line the kernel answers one request line on that UART
//! (`snapshot`, or `scan` to run a leak scan first) with one snapshot: a versioned, line-based
//! `kind key=value` text format. This module is its host half, used by the TUI and the tests:
//!
//! - `Snapshot::parse` reads a snapshot out of any text (lines before the begin marker are
//!   ignored), strictly where a mistake would mislead — markers, sequence numbers, record and
//!   section counts, the version — and leniently where the kernel may grow: unknown record kinds
//!   and unknown fields are skipped, so an older tool reads a newer kernel's output;
//! - `Display` (and `to_text`) writes exactly the kernel's format, so a parsed snapshot prints
//!   back byte for byte (the boot test checks this against the real kernel);
//! - `TelemetryClient` talks to the UART through QEMU's unix-socket chardev
//!   (`SerialBackend::Unix`) with a timeout on every request.

use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

/// The format version this module reads and writes.
pub const VERSION: u32 = 1;
pub const BEGIN: &str = "telemetry-begin";
pub const END: &str = "telemetry-end";
pub const ERROR: &str = "telemetry-error";

/// `uptime`: time since the kernel's clock started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uptime {
    pub ns: u64,
    pub jiffies: u64,
    /// Jiffies per second.
    pub hz: u64,
}

/// `frames`: physical memory, in 4 KiB frames.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frames {
    pub total: u64,
    pub free: u64,
    pub used: u64,
    /// Claimed at boot: kernel image, initrd, the frame allocator's bitmap.
    pub kernel: u64,
    /// Held by the kernel heap (size-class frames and large blocks).
    pub heap: u64,
    /// The heap's per-frame descriptors.
    pub heap_meta: u64,
    /// The leak tracker's tables.
    pub tracker: u64,
}

/// `heap`: kernel heap totals (bytes unless named otherwise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heap {
    /// Live allocations.
    pub objects: u64,
    /// Bytes requested by live allocations.
    pub bytes: u64,
    /// Bytes the heap holds from the frame allocator.
    pub footprint: u64,
    /// Bytes of carved, currently free blocks.
    pub free_bytes: u64,
    /// Bytes lost to rounding requests up to their block size.
    pub internal_frag: u64,
    /// Bytes of free blocks in frames that also hold live blocks.
    pub external_frag: u64,
    pub allocs: u64,
    pub frees: u64,
    pub failed: u64,
    pub large_objects: u64,
    pub large_frames: u64,
    pub large_bytes: u64,
}

/// `class`: one size class of the heap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SizeClass {
    /// Block size in bytes.
    pub size: u64,
    pub frames: u64,
    /// Live blocks.
    pub live: u64,
    /// Free blocks.
    pub free: u64,
    /// Bytes requested by the live blocks' owners.
    pub requested: u64,
    /// Frames with both live and free blocks, and the free blocks in them.
    pub partial_frames: u64,
    pub partial_free: u64,
    pub empty_frames: u64,
    pub full_frames: u64,
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
}

/// `scan`: the last leak scan (absent before the first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub at_ns: u64,
    pub objects: u64,
    pub unreferenced: u64,
    pub new: u64,
    pub root_bytes: u64,
    pub object_bytes: u64,
    pub duration_ns: u64,
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

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("no telemetry snapshot in the input (no `{BEGIN}` line)")]
    NoSnapshot,
    #[error("the kernel refused the request: {0}")]
    Kernel(String),
    #[error(
        "telemetry format version {found} is not supported (this tool reads version {VERSION})"
    )]
    UnsupportedVersion { found: u32 },
    #[error("the snapshot is truncated: {0}")]
    Truncated(&'static str),
    #[error("line {line}: {reason}: {text:?}")]
    Malformed {
        line: usize,
        reason: &'static str,
        text: String,
    },
    #[error("line {line}: the `{record}` record has no `{field}` field")]
    MissingField {
        line: usize,
        record: String,
        field: &'static str,
    },
    #[error("line {line}: field `{field}` of the `{record}` record is not a number: {value:?}")]
    BadValue {
        line: usize,
        record: String,
        field: String,
        value: String,
    },
    #[error("the snapshot has no `{0}` record")]
    MissingRecord(&'static str),
    #[error("line {line}: a second `{record}` record")]
    DuplicateRecord { line: usize, record: &'static str },
    #[error("`{section}` declares {declared} records but the snapshot has {found}")]
    CountMismatch {
        section: &'static str,
        declared: u64,
        found: u64,
    },
    #[error("the end marker's sequence number {end} differs from the begin marker's {begin}")]
    SeqMismatch { begin: u64, end: u64 },
    #[error("the end marker counts {declared} records, but {found} were received")]
    RecordCount { declared: u64, found: u64 },
}

/// One parsed line: `kind key=value ...`.
struct Record<'a> {
    line: usize,
    kind: &'a str,
    fields: Vec<(&'a str, String)>,
}

/// Splits a record line into its kind and fields; values may be `"quoted"` with `\"`, `\\`,
/// `\n` and `\xNN` escapes.
fn tokenize(line: usize, text: &str) -> Result<Record<'_>, ParseError> {
    let malformed = |reason| ParseError::Malformed {
        line,
        reason,
        text: text.to_string(),
    };
    let (kind, mut rest) = text.split_once(' ').unwrap_or((text, ""));
    if kind.is_empty()
        || !kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(malformed("a record starts with its kind"));
    }
    let mut fields = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| malformed("expected key=value"))?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(malformed("bad field name"));
        }
        if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(malformed("unterminated quoted value")),
                    Some((at, '"')) => break at + 1,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '"')) => value.push('"'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 'x')) => {
                            let hex: String = (0..2)
                                .filter_map(|_| chars.next().map(|(_, c)| c))
                                .collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == 2)
                                .and_then(char::from_u32)
                                .ok_or_else(|| malformed("bad \\x escape"))?;
                            value.push(code);
                        }
                        _ => return Err(malformed("bad escape")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            rest = &quoted[end..];
            if !(rest.is_empty() || rest.starts_with(' ')) {
                return Err(malformed("text after a quoted value"));
            }
            fields.push((key, value));
        } else {
            let (value, after) = after.split_once(' ').unwrap_or((after, ""));
            fields.push((key, value.to_string()));
            rest = after;
        }
    }
    Ok(Record { line, kind, fields })
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() => u64::from_str_radix(hex, 16).ok(),
        _ if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        _ => None,
    }
}

impl Record<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, field: &'static str) -> Result<String, ParseError> {
        self.get(field)
            .map(str::to_string)
            .ok_or_else(|| ParseError::MissingField {
                line: self.line,
                record: self.kind.to_string(),
                field,
            })
    }

    fn number_of(&self, field: &str, value: &str) -> Result<u64, ParseError> {
        parse_number(value).ok_or_else(|| ParseError::BadValue {
            line: self.line,
            record: self.kind.to_string(),
            field: field.to_string(),
            value: value.to_string(),
        })
    }

    /// An optional number: absent is `None`, present but malformed is an error.
    fn opt_num(&self, field: &'static str) -> Result<Option<u64>, ParseError> {
        self.get(field)
            .map(|value| self.number_of(field, value))
            .transpose()
    }

    fn num(&self, field: &'static str) -> Result<u64, ParseError> {
        let value = self.text(field)?;
        self.number_of(field, &value)
    }

    fn num32(&self, field: &'static str) -> Result<u32, ParseError> {
        let value = self.text(field)?;
        let number = self.number_of(field, &value)?;
        u32::try_from(number).map_err(|_| ParseError::BadValue {
            line: self.line,
            record: self.kind.to_string(),
            field: field.to_string(),
            value,
        })
    }

    /// `ret0=… sym0="…" ret1=…`, until the first missing `retN`.
    fn frames(&self) -> Result<Vec<Frame>, ParseError> {
        let mut frames = Vec::new();
        for i in 0.. {
            let Some(address) = self.get(&format!("ret{i}")) else {
                break;
            };
            let address = self.number_of(&format!("ret{i}"), address)?;
            let symbol = self
                .get(&format!("sym{i}"))
                .filter(|s| *s != "?")
                .map(str::to_string);
            frames.push(Frame { address, symbol });
        }
        Ok(frames)
    }
}

/// Lines without their line terminators, numbered from 1.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

/// A singleton record's slot: set once.
fn once<T>(
    slot: &mut Option<T>,
    value: T,
    line: usize,
    record: &'static str,
) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::DuplicateRecord { line, record });
    }
    *slot = Some(value);
    Ok(())
}

impl Snapshot {
    /// Parses the first snapshot in `text`; see the module documentation for what is checked.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut lines = numbered_lines(text);
        let begin = loop {
            let Some((line, l)) = lines.next() else {
                return Err(ParseError::NoSnapshot);
            };
            if l.starts_with(BEGIN) && (l.len() == BEGIN.len() || l[BEGIN.len()..].starts_with(' '))
            {
                break tokenize(line, l)?;
            }
            if l.starts_with(ERROR) && (l.len() == ERROR.len() || l[ERROR.len()..].starts_with(' '))
            {
                let record = tokenize(line, l)?;
                return Err(ParseError::Kernel(
                    record.get("message").unwrap_or("(no message)").to_string(),
                ));
            }
        };
        let version = begin.num("version")?;
        if version != u64::from(VERSION) {
            return Err(ParseError::UnsupportedVersion {
                found: u32::try_from(version).unwrap_or(u32::MAX),
            });
        }
        let seq = begin.num("seq")?;

        let mut uptime = None;
        let mut frames = None;
        let mut heap = None;
        let mut tracker = None;
        let mut scan = None;
        let mut classes_count = None;
        let mut sites_count = None;
        let mut leaks_header = None;
        let mut tasks_header = None;
        let mut detail: Option<(ProcessDetail, u64)> = None;
        let mut maps = Vec::new();
        let mut snapshot = Snapshot {
            version: VERSION,
            seq,
            ..Snapshot::default()
        };
        let mut records = 0u64;
        let end = loop {
            let Some((line, text)) = lines.next() else {
                return Err(ParseError::Truncated("no end marker"));
            };
            if text.trim().is_empty() {
                return Err(ParseError::Truncated("a blank line inside the snapshot"));
            }
            let record = tokenize(line, text)?;
            match record.kind {
                BEGIN => {
                    return Err(ParseError::Truncated(
                        "a new snapshot began before the end marker",
                    ));
                }
                END => break record,
                "uptime" => once(
                    &mut uptime,
                    Uptime {
                        ns: record.num("ns")?,
                        jiffies: record.num("jiffies")?,
                        hz: record.num("hz")?,
                    },
                    line,
                    "uptime",
                )?,
                "frames" => once(
                    &mut frames,
                    Frames {
                        total: record.num("total")?,
                        free: record.num("free")?,
                        used: record.num("used")?,
                        kernel: record.num("kernel")?,
                        heap: record.num("heap")?,
                        heap_meta: record.num("heap_meta")?,
                        tracker: record.num("tracker")?,
                    },
                    line,
                    "frames",
                )?,
                "heap" => once(
                    &mut heap,
                    Heap {
                        objects: record.num("objects")?,
                        bytes: record.num("bytes")?,
                        footprint: record.num("footprint")?,
                        free_bytes: record.num("free_bytes")?,
                        internal_frag: record.num("internal_frag")?,
                        external_frag: record.num("external_frag")?,
                        allocs: record.num("allocs")?,
                        frees: record.num("frees")?,
                        failed: record.num("failed")?,
                        large_objects: record.num("large_objects")?,
                        large_frames: record.num("large_frames")?,
                        large_bytes: record.num("large_bytes")?,
                    },
                    line,
                    "heap",
                )?,
                "classes" => once(&mut classes_count, record.num("count")?, line, "classes")?,
                "class" => snapshot.classes.push(SizeClass {
                    size: record.num("size")?,
                    frames: record.num("frames")?,
                    live: record.num("live")?,
                    free: record.num("free")?,
                    requested: record.num("requested")?,
                    partial_frames: record.num("partial_frames")?,
                    partial_free: record.num("partial_free")?,
                    empty_frames: record.num("empty_frames")?,
                    full_frames: record.num("full_frames")?,
                }),
                "tracker" => once(
                    &mut tracker,
                    Tracker {
                        state: record.text("state")?,
                        reason: record.get("reason").map(str::to_string),
                        objects: record.num("objects")?,
                        peak: record.num("peak")?,
                        capacity: record.num("capacity")?,
                        bytes: record.num("bytes")?,
                        sites: record.num("sites")?,
                        site_capacity: record.num("site_capacity")?,
                        overhead: record.num("overhead")?,
                        seq: record.num("seq")?,
                        mark: record.num("mark")?,
                        scans: record.num("scans")?,
                        unreferenced: record.num("unreferenced")?,
                        untracked: record.num("untracked")?,
                        allocs: record.num("allocs")?,
                        frees: record.num("frees")?,
                    },
                    line,
                    "tracker",
                )?,
                "scan" => once(
                    &mut scan,
                    Scan {
                        at_ns: record.num("at_ns")?,
                        objects: record.num("objects")?,
                        unreferenced: record.num("unreferenced")?,
                        new: record.num("new")?,
                        root_bytes: record.num("root_bytes")?,
                        object_bytes: record.num("object_bytes")?,
                        duration_ns: record.num("duration_ns")?,
                    },
                    line,
                    "scan",
                )?,
                "sites" => once(&mut sites_count, record.num("count")?, line, "sites")?,
                "site" => snapshot.sites.push(CallSite {
                    id: record.num32("id")?,
                    objects: record.num("objects")?,
                    bytes: record.num("bytes")?,
                    allocs: record.num("allocs")?,
                    frames: record.frames()?,
                }),
                "leaks" => once(
                    &mut leaks_header,
                    (record.num("count")?, record.num("total")?),
                    line,
                    "leaks",
                )?,
                "leak" => snapshot.leaks.push(Leak {
                    address: record.num("addr")?,
                    size: record.num("size")?,
                    seq: record.num("seq")?,
                    pid: record.num32("pid")?,
                    comm: record.text("comm")?,
                    jiffies: record.num("jiffies")?,
                    age_ms: record.num("age_ms")?,
                    site: record.num32("site")?,
                    frames: record.frames()?,
                }),
                "tasks" => once(
                    &mut tasks_header,
                    (record.num("count")?, record.num("total")?),
                    line,
                    "tasks",
                )?,
                "task" => snapshot.tasks.push(Task {
                    pid: record.num32("pid")?,
                    ppid: record.num32("ppid")?,
                    state: record.text("state")?,
                    comm: record.text("comm")?,
                    cpu_ms: record.opt_num("cpu_ms")?,
                    rss_kib: record.opt_num("rss_kib")?,
                    memory: match record.opt_num("vsz_kib")? {
                        Some(vsz_kib) => Some(TaskMemory {
                            vsz_kib,
                            image_kib: record.num("image_kib")?,
                            heap_kib: record.num("heap_kib")?,
                            stack_kib: record.num("stack_kib")?,
                            anon_kib: record.num("anon_kib")?,
                        }),
                        None => None,
                    },
                }),
                "detail" => {
                    let pid = record.num32("pid")?;
                    let place = match record.text("where")?.as_str() {
                        "sleeping" => KernelPlace::Sleeping(record.frames()?),
                        "running" => KernelPlace::Running,
                        "gone" => KernelPlace::Gone,
                        _ => KernelPlace::Unknown,
                    };
                    let found = ProcessDetail {
                        pid,
                        state: record.text("state")?,
                        place,
                        maps: Vec::new(),
                    };
                    once(&mut detail, (found, record.num("maps")?), line, "detail")?;
                }
                "map" => maps.push(MapEntry {
                    start: record.num("start")?,
                    end: record.num("end")?,
                    perms: record.text("perms")?,
                    name: record.text("name")?,
                }),
                // Forward compatibility: newer kernels may add record kinds.
                _ => {}
            }
            records += 1;
        };
        let end_seq = end.num("seq")?;
        if end_seq != seq {
            return Err(ParseError::SeqMismatch {
                begin: seq,
                end: end_seq,
            });
        }
        let declared = end.num("records")?;
        if declared != records {
            return Err(ParseError::RecordCount {
                declared,
                found: records,
            });
        }
        snapshot.uptime = uptime.ok_or(ParseError::MissingRecord("uptime"))?;
        snapshot.frames = frames.ok_or(ParseError::MissingRecord("frames"))?;
        snapshot.heap = heap.ok_or(ParseError::MissingRecord("heap"))?;
        snapshot.tracker = tracker.ok_or(ParseError::MissingRecord("tracker"))?;
        snapshot.scan = scan;
        let (leaks_count, leaks_total) = leaks_header.ok_or(ParseError::MissingRecord("leaks"))?;
        snapshot.leaks_total = leaks_total;
        let (tasks_count, tasks_total) = tasks_header.ok_or(ParseError::MissingRecord("tasks"))?;
        snapshot.tasks_total = tasks_total;
        for (section, declared, found) in [
            (
                "classes",
                classes_count.ok_or(ParseError::MissingRecord("classes"))?,
                snapshot.classes.len(),
            ),
            (
                "sites",
                sites_count.ok_or(ParseError::MissingRecord("sites"))?,
                snapshot.sites.len(),
            ),
            ("leaks", leaks_count, snapshot.leaks.len()),
            ("tasks", tasks_count, snapshot.tasks.len()),
            (
                "detail",
                detail.as_ref().map_or(0, |(_, maps)| *maps),
                maps.len(),
            ),
        ] {
            if declared != found as u64 {
                return Err(ParseError::CountMismatch {
                    section,
                    declared,
                    found: found as u64,
                });
            }
        }
        snapshot.detail = detail.map(|(mut detail, _)| {
            detail.maps = maps;
            detail
        });
        Ok(snapshot)
    }

    /// The snapshot in the kernel's format (what `Display` writes).
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// Checks the relations between the heap figures that must hold in any snapshot; returns
    /// the first one that does not. The figures come from the kernel (or a garbled line): the
    /// arithmetic is done in `u128`, where sums of a snapshot's `u64`s and their products with
    /// a page size cannot overflow, and differences are compared as sums, so no figure can
    /// make the check itself fail.
    pub fn check_consistency(&self) -> Result<(), String> {
        let page: u128 = 4096;
        let wide = u128::from;
        let sum = |field: fn(&SizeClass) -> u64| self.classes.iter().map(|c| wide(field(c))).sum();
        let class_frames: u128 = sum(|c| c.frames);
        let checks = [
            (
                (class_frames + wide(self.heap.large_frames)) * page == wide(self.heap.footprint),
                "footprint = (class frames + large frames) * 4096",
            ),
            (
                wide(self.frames.heap) * page == wide(self.heap.footprint),
                "frames.heap = heap.footprint / 4096",
            ),
            (
                sum(|c| c.live) + wide(self.heap.large_objects) == wide(self.heap.objects),
                "heap.objects = live blocks + large objects",
            ),
            (
                sum(|c| c.requested) + wide(self.heap.large_bytes) == wide(self.heap.bytes),
                "heap.bytes = requested bytes of classes + large bytes",
            ),
            (
                self.classes.iter().all(|c| {
                    c.size > 0
                        && wide(c.frames) * (page / wide(c.size)) == wide(c.live) + wide(c.free)
                }),
                "class: frames * blocks per frame = live + free",
            ),
            (
                self.classes.iter().all(|c| {
                    wide(c.partial_frames) + wide(c.empty_frames) + wide(c.full_frames)
                        == wide(c.frames)
                        && c.partial_free <= c.free
                }),
                "class: partial + empty + full frames = frames",
            ),
            (
                self.classes
                    .iter()
                    .map(|c| wide(c.free) * wide(c.size))
                    .sum::<u128>()
                    == wide(self.heap.free_bytes),
                "heap.free_bytes = free blocks * block size",
            ),
            (
                self.classes
                    .iter()
                    .map(|c| wide(c.partial_free) * wide(c.size))
                    .sum::<u128>()
                    == wide(self.heap.external_frag),
                "heap.external_frag = free blocks in partial frames * block size",
            ),
            (
                wide(self.frames.used) + wide(self.frames.free) == wide(self.frames.total),
                "frames.used = total - free",
            ),
            (
                wide(self.heap.frees) + wide(self.heap.objects) == wide(self.heap.allocs),
                "heap.allocs - heap.frees = heap.objects",
            ),
            (
                !self.tracker.is_on() || self.tracker.objects == self.heap.objects,
                "the tracker sees every live heap object",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, what)) => Err(format!("inconsistent snapshot {}: {what}", self.seq)),
            None => Ok(()),
        }
    }
}

/// Writes a quoted, escaped value.
fn quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            c if c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn write_frames(f: &mut fmt::Formatter<'_>, frames: &[Frame]) -> fmt::Result {
    for (i, frame) in frames.iter().enumerate() {
        write!(f, " ret{i}={:#x} sym{i}=", frame.address)?;
        quoted(f, frame.symbol.as_deref().unwrap_or("?"))?;
    }
    Ok(())
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{BEGIN} version={} seq={}", self.version, self.seq)?;
        let mut records = 0;
        let mut record = |f: &mut fmt::Formatter<'_>, args: fmt::Arguments<'_>| {
            records += 1;
            f.write_fmt(args)
        };
        let u = &self.uptime;
        record(
            f,
            format_args!("uptime ns={} jiffies={} hz={}\n", u.ns, u.jiffies, u.hz),
        )?;
        let fr = &self.frames;
        record(
            f,
            format_args!(
                "frames total={} free={} used={} kernel={} heap={} heap_meta={} tracker={}\n",
                fr.total, fr.free, fr.used, fr.kernel, fr.heap, fr.heap_meta, fr.tracker
            ),
        )?;
        let h = &self.heap;
        record(
            f,
            format_args!(
                "heap objects={} bytes={} footprint={} free_bytes={} internal_frag={} external_frag={} allocs={} frees={} failed={} large_objects={} large_frames={} large_bytes={}\n",
                h.objects,
                h.bytes,
                h.footprint,
                h.free_bytes,
                h.internal_frag,
                h.external_frag,
                h.allocs,
                h.frees,
                h.failed,
                h.large_objects,
                h.large_frames,
                h.large_bytes
            ),
        )?;
        record(f, format_args!("classes count={}\n", self.classes.len()))?;
        for c in &self.classes {
            record(
                f,
                format_args!(
                    "class size={} frames={} live={} free={} requested={} partial_frames={} partial_free={} empty_frames={} full_frames={}\n",
                    c.size,
                    c.frames,
                    c.live,
                    c.free,
                    c.requested,
                    c.partial_frames,
                    c.partial_free,
                    c.empty_frames,
                    c.full_frames
                ),
            )?;
        }
        let t = &self.tracker;
        let reason = t
            .reason
            .as_ref()
            .map(|r| format!(" reason={r}"))
            .unwrap_or_default();
        record(
            f,
            format_args!(
                "tracker state={}{reason} objects={} peak={} capacity={} bytes={} sites={} site_capacity={} overhead={} seq={} mark={} scans={} unreferenced={} untracked={} allocs={} frees={}\n",
                t.state,
                t.objects,
                t.peak,
                t.capacity,
                t.bytes,
                t.sites,
                t.site_capacity,
                t.overhead,
                t.seq,
                t.mark,
                t.scans,
                t.unreferenced,
                t.untracked,
                t.allocs,
                t.frees
            ),
        )?;
        if let Some(s) = &self.scan {
            record(
                f,
                format_args!(
                    "scan at_ns={} objects={} unreferenced={} new={} root_bytes={} object_bytes={} duration_ns={}\n",
                    s.at_ns,
                    s.objects,
                    s.unreferenced,
                    s.new,
                    s.root_bytes,
                    s.object_bytes,
                    s.duration_ns
                ),
            )?;
        }
        record(f, format_args!("sites count={}\n", self.sites.len()))?;
        for s in &self.sites {
            records += 1;
            write!(
                f,
                "site id={} objects={} bytes={} allocs={}",
                s.id, s.objects, s.bytes, s.allocs
            )?;
            write_frames(f, &s.frames)?;
            f.write_char('\n')?;
        }
        records += 1;
        writeln!(
            f,
            "leaks count={} total={}",
            self.leaks.len(),
            self.leaks_total
        )?;
        for l in &self.leaks {
            records += 1;
            write!(
                f,
                "leak addr={:#x} size={} seq={} pid={} comm=",
                l.address, l.size, l.seq, l.pid
            )?;
            quoted(f, &l.comm)?;
            write!(
                f,
                " jiffies={} age_ms={} site={}",
                l.jiffies, l.age_ms, l.site
            )?;
            write_frames(f, &l.frames)?;
            f.write_char('\n')?;
        }
        records += 1;
        writeln!(
            f,
            "tasks count={} total={}",
            self.tasks.len(),
            self.tasks_total
        )?;
        for task in &self.tasks {
            records += 1;
            write!(
                f,
                "task pid={} ppid={} state={} comm=",
                task.pid, task.ppid, task.state
            )?;
            quoted(f, &task.comm)?;
            if let Some(cpu_ms) = task.cpu_ms {
                write!(f, " cpu_ms={cpu_ms}")?;
            }
            if let Some(rss_kib) = task.rss_kib {
                write!(f, " rss_kib={rss_kib}")?;
            }
            if let Some(m) = task.memory {
                write!(
                    f,
                    " vsz_kib={} image_kib={} heap_kib={} stack_kib={} anon_kib={}",
                    m.vsz_kib, m.image_kib, m.heap_kib, m.stack_kib, m.anon_kib
                )?;
            }
            f.write_char('\n')?;
        }
        if let Some(detail) = &self.detail {
            records += 1 + detail.maps.len() as u64;
            let place = match &detail.place {
                KernelPlace::Sleeping(_) => "sleeping",
                KernelPlace::Running => "running",
                KernelPlace::Gone => "gone",
                KernelPlace::Unknown => "unknown",
            };
            write!(
                f,
                "detail pid={} state={} where={place} maps={}",
                detail.pid,
                detail.state,
                detail.maps.len()
            )?;
            if let KernelPlace::Sleeping(frames) = &detail.place {
                write_frames(f, frames)?;
            }
            f.write_char('\n')?;
            for map in &detail.maps {
                write!(
                    f,
                    "map start={:#x} end={:#x} perms={} name=",
                    map.start, map.end, map.perms
                )?;
                quoted(f, &map.name)?;
                f.write_char('\n')?;
            }
        }
        writeln!(f, "{END} seq={} records={records}", self.seq)
    }
}

/// What the client can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Snapshot,
    /// Run a leak scan, then answer with a snapshot (its `leak` records are the scan's result).
    Scan,
    /// A snapshot plus this process's memory map and kernel stack (`Snapshot::detail`).
    Detail(u32),
}

impl Request {
    pub fn line(self) -> String {
        match self {
            Self::Snapshot => "snapshot".into(),
            Self::Scan => "scan".into(),
            Self::Detail(pid) => format!("detail {pid}"),
        }
    }
}

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "cannot connect to the telemetry socket {path}: {source} (is QEMU running with telemetry=ttyS<n> on that port?)"
    )]
    Connect { path: PathBuf, source: io::Error },
    #[error("telemetry I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("no complete answer to {request:?} within {timeout:?} ({received} bytes received)")]
    Timeout {
        request: String,
        timeout: Duration,
        received: usize,
    },
    #[error("the telemetry socket closed (did the guest exit?)")]
    Closed,
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// A connection to the kernel's telemetry UART through QEMU's unix-socket chardev.
pub struct TelemetryClient {
    stream: UnixStream,
    pending: Vec<u8>,
}

impl TelemetryClient {
    /// Connects, retrying until `timeout` while QEMU has not created the socket yet.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let deadline = Instant::now() + timeout;
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    return Ok(Self {
                        stream,
                        pending: Vec::new(),
                    });
                }
                Err(source) if Instant::now() >= deadline => {
                    return Err(ClientError::Connect {
                        path: path.to_path_buf(),
                        source,
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Sends one request line and returns the raw answer: the lines from `telemetry-begin` to
    /// `telemetry-end`, or a `telemetry-error` line.
    pub fn request_text(
        &mut self,
        request: &str,
        timeout: Duration,
    ) -> Result<String, ClientError> {
        let deadline = Instant::now() + timeout;
        self.stream.write_all(format!("{request}\n").as_bytes())?;
        self.stream.flush()?;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(answer) = self.take_answer() {
                return Ok(answer);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout {
                    request: request.to_string(),
                    timeout,
                    received: self.pending.len(),
                });
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A complete answer at the front of the buffer, if one has arrived (bytes before it —
    /// the tail of an answer nobody waited for — are dropped with it).
    fn take_answer(&mut self) -> Option<String> {
        let mut start = None;
        let mut offset = 0;
        while let Some(newline) = self.pending[offset..].iter().position(|&b| b == b'\n') {
            let end = offset + newline + 1;
            let line = &self.pending[offset..end];
            let answer = if line.starts_with(ERROR.as_bytes()) && start.is_none() {
                Some(offset)
            } else if line.starts_with(BEGIN.as_bytes()) {
                start = Some(offset);
                None
            } else if line.starts_with(END.as_bytes()) {
                start
            } else {
                None
            };
            if let Some(from) = answer {
                let text = String::from_utf8_lossy(&self.pending[from..end]).into_owned();
                self.pending.drain(..end);
                return Some(text);
            }
            offset = end;
        }
        None
    }

    /// Requests and parses one snapshot.
    pub fn request(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<Snapshot, ClientError> {
        let text = self.request_text(&request.line(), timeout)?;
        Ok(Snapshot::parse(&text)?)
    }

    pub fn snapshot(&mut self, timeout: Duration) -> Result<Snapshot, ClientError> {
        self.request(Request::Snapshot, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot as the kernel writes it (trimmed to a few records), with a leak and sites.
    const SAMPLE: &str = "\
telemetry-begin version=1 seq=7
uptime ns=3004123456 jiffies=300 hz=100
frames total=65247 free=64500 used=747 kernel=244 heap=2 heap_meta=32 tracker=477
heap objects=3 bytes=200 footprint=8192 free_bytes=7920 internal_frag=72 external_frag=7920 allocs=10 frees=7 failed=0 large_objects=0 large_frames=0 large_bytes=0
classes count=2
class size=16 frames=1 live=1 free=255 requested=8 partial_frames=1 partial_free=255 empty_frames=0 full_frames=0
class size=128 frames=1 live=2 free=30 requested=192 partial_frames=1 partial_free=30 empty_frames=0 full_frames=0
tracker state=on objects=3 peak=5 capacity=32768 bytes=200 sites=4 site_capacity=1536 overhead=1953792 seq=10 mark=0 scans=1 unreferenced=1 untracked=0 allocs=10 frees=7
scan at_ns=3000000000 objects=3 unreferenced=1 new=1 root_bytes=264192 object_bytes=8 duration_ns=800000
sites count=1
site id=5 objects=2 bytes=144 allocs=2 ret0=0xffffffff80235a0c sym0=\"kernel::mm::leak::triggers::kmemleak_test_leak+0x1c/0x6b\" ret1=0xffffffff802352b0 sym1=\"<[u8; 4] as core::fmt::Debug>::fmt+0x60/0x798\" ret2=0x1234 sym2=\"?\"
leaks count=1 total=1
leak addr=0xffff80000050f000 size=72 seq=3 pid=0 comm=\"swapper/0\" jiffies=0 age_ms=3000 site=5 ret0=0xffffffff80235a0c sym0=\"kernel::mm::leak::triggers::kmemleak_test_leak+0x1c/0x6b\"
tasks count=0 total=0
telemetry-end seq=7 records=13
";

    /// Figures that overflow the relations' arithmetic (free frames above the total, a class
    /// with 2^64-1 frames, more frees than allocations) make an inconsistent snapshot, not a
    /// panic. Found by `fuzz_telemetry_decoder` (qemu/tests/fuzz.rs).
    #[test]
    fn overflowing_figures_are_inconsistent_not_a_panic() {
        for (from, to) in [
            ("free=64500 ", "free=18446744073709551615 "),
            (
                "class size=16 frames=1 ",
                "class size=16 frames=18446744073709551615 ",
            ),
            (
                "allocs=10 frees=7 failed",
                "allocs=10 frees=0xffffffffffffffff failed",
            ),
            ("large_bytes=0", "large_bytes=18446744073709551615"),
        ] {
            assert!(SAMPLE.contains(from), "{from}");
            let snapshot = Snapshot::parse(&SAMPLE.replacen(from, to, 1)).expect("parses");
            assert!(snapshot.check_consistency().is_err(), "{to}");
        }
    }

    #[test]
    fn parses_the_kernel_format_and_round_trips() {
        let snapshot = Snapshot::parse(SAMPLE).expect("parses");
        assert_eq!(snapshot.seq, 7);
        assert_eq!(snapshot.frames.total, 65247);
        assert_eq!(snapshot.classes.len(), 2);
        assert_eq!(snapshot.classes[1].requested, 192);
        assert!(snapshot.tracker.is_on());
        assert_eq!(snapshot.scan.as_ref().map(|s| s.new), Some(1));
        let site = &snapshot.sites[0];
        assert_eq!(site.frames.len(), 3);
        assert_eq!(
            site.frames[1].symbol.as_deref(),
            Some("<[u8; 4] as core::fmt::Debug>::fmt+0x60/0x798")
        );
        assert_eq!(
            site.frames[2],
            Frame {
                address: 0x1234,
                symbol: None
            }
        );
        let leak = &snapshot.leaks[0];
        assert_eq!(
            (leak.address, leak.size, leak.comm.as_str()),
            (0xffff_8000_0050_f000, 72, "swapper/0")
        );
        assert_eq!(
            snapshot.to_text(),
            SAMPLE,
            "the writer reproduces the kernel's bytes"
        );
        assert_eq!(Snapshot::parse(&snapshot.to_text()), Ok(snapshot.clone()));
        snapshot
            .check_consistency()
            .expect("the sample is consistent");
    }

    #[test]
    fn round_trips_awkward_strings_and_tasks() {
        let mut snapshot = Snapshot::parse(SAMPLE).unwrap();
        snapshot.leaks[0].comm = "a \"quoted\" \\ name\twith\ncontrols".into();
        snapshot.tasks.push(Task {
            pid: 1,
            ppid: 0,
            state: "R".into(),
            comm: "init".into(),
            cpu_ms: Some(12),
            rss_kib: None,
            memory: None,
        });
        snapshot.tasks.push(Task {
            pid: 2,
            ppid: 1,
            state: "S".into(),
            comm: "sh".into(),
            cpu_ms: Some(3),
            rss_kib: Some(48),
            memory: Some(TaskMemory {
                vsz_kib: 10296,
                image_kib: 20,
                heap_kib: 4,
                stack_kib: 8,
                anon_kib: 16,
            }),
        });
        snapshot.tasks_total = 2;
        snapshot.detail = Some(ProcessDetail {
            pid: 2,
            state: "S".into(),
            place: KernelPlace::Sleeping(vec![
                Frame {
                    address: 0xffff_ffff_8020_1234,
                    symbol: Some("kernel::task::schedule+0x1a/0x200".into()),
                },
                Frame {
                    address: 0xffff_ffff_8020_5678,
                    symbol: None,
                },
            ]),
            maps: vec![
                MapEntry {
                    start: 0x40_0000,
                    end: 0x40_1000,
                    perms: "r--p".into(),
                    name: "sh".into(),
                },
                MapEntry {
                    start: 0x7eff_ffff_0000,
                    end: 0x7f00_0000_0000,
                    perms: "rw-p".into(),
                    name: String::new(),
                },
            ],
        });
        snapshot.tracker.state = "off".into();
        snapshot.tracker.reason = Some("pool-full".into());
        snapshot.scan = None;
        let text = snapshot.to_text();
        assert!(
            text.contains("comm=\"a \\\"quoted\\\" \\\\ name\\x09with\\x0acontrols\""),
            "{text}"
        );
        assert!(
            text.contains("detail pid=2 state=S where=sleeping maps=2 ret0="),
            "{text}"
        );
        // A `detail` record must be followed by as many `map` records as it declares.
        let short = text.replacen("maps=2", "maps=3", 1);
        assert!(
            matches!(
                Snapshot::parse(&short),
                Err(ParseError::CountMismatch {
                    section: "detail",
                    ..
                })
            ),
            "{short}"
        );
        assert_eq!(Snapshot::parse(&text), Ok(snapshot));
    }

    #[test]
    fn finds_the_snapshot_in_noise_and_skips_unknown_records() {
        let noisy = SAMPLE
            .replace(
                "tasks count=0 total=0\n",
                "tasks count=0 total=0\nfuture-record x=1 y=\"z\"\n",
            )
            .replace("records=13", "records=14")
            .replace("hz=100", "hz=100 newfield=0x5");
        let text = format!("garbage line\r\n\n{}trailing", noisy.replace('\n', "\r\n"));
        let snapshot = Snapshot::parse(&text).expect("noise around it is fine");
        assert_eq!(snapshot.uptime.hz, 100);
    }

    #[test]
    fn rejects_garbage_truncation_and_other_versions() {
        assert_eq!(Snapshot::parse(""), Err(ParseError::NoSnapshot));
        assert_eq!(
            Snapshot::parse("hello\nworld\n"),
            Err(ParseError::NoSnapshot)
        );
        assert_eq!(
            Snapshot::parse(&SAMPLE.replace("version=1", "version=2")),
            Err(ParseError::UnsupportedVersion { found: 2 })
        );
        let cut = &SAMPLE[..SAMPLE.find("leaks count").unwrap()];
        assert_eq!(
            Snapshot::parse(cut),
            Err(ParseError::Truncated("no end marker"))
        );
        let two = format!("{cut}{SAMPLE}");
        assert_eq!(
            Snapshot::parse(&two),
            Err(ParseError::Truncated(
                "a new snapshot began before the end marker"
            ))
        );
        assert_eq!(
            Snapshot::parse(&SAMPLE.replace("end seq=7", "end seq=8")),
            Err(ParseError::SeqMismatch { begin: 7, end: 8 })
        );
        assert_eq!(
            Snapshot::parse(&SAMPLE.replace("records=13", "records=12")),
            Err(ParseError::RecordCount {
                declared: 12,
                found: 13
            })
        );
        assert_eq!(
            Snapshot::parse(&SAMPLE.replace("classes count=2", "classes count=3")),
            Err(ParseError::CountMismatch {
                section: "classes",
                declared: 3,
                found: 2
            })
        );
        assert!(matches!(
            Snapshot::parse(&SAMPLE.replace("free=64500", "free=lots")),
            Err(ParseError::BadValue { line: 3, .. })
        ));
        assert!(matches!(
            Snapshot::parse(&SAMPLE.replace(" jiffies=300", "")),
            Err(ParseError::MissingField {
                line: 2,
                field: "jiffies",
                ..
            })
        ));
        assert!(matches!(
            Snapshot::parse(&SAMPLE.replace("comm=\"swapper/0\"", "comm=\"swapper/0")),
            Err(ParseError::Malformed { line: 13, .. })
        ));
        assert_eq!(
            Snapshot::parse(&SAMPLE.replace("uptime ns", "uptimes ns")),
            Err(ParseError::MissingRecord("uptime"))
        );
        assert_eq!(
            Snapshot::parse("telemetry-error version=1 message=\"unknown request\"\n"),
            Err(ParseError::Kernel("unknown request".into()))
        );
        let twice = SAMPLE.replace(
            "tasks count=0 total=0\n",
            "tasks count=0 total=0\ntasks count=0 total=0\n",
        );
        assert!(matches!(
            Snapshot::parse(&twice),
            Err(ParseError::DuplicateRecord {
                record: "tasks",
                ..
            })
        ));
    }

    #[test]
    fn never_panics_on_random_input() {
        // Mutations of a valid snapshot (bytes dropped, swapped, replaced) and pure noise.
        let mut state = 0x1234_5678_9abc_def0_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"telmyrsq=\" \\x0123456789abcdef\n\r-_gin";
        for _ in 0..3000 {
            let mut bytes = SAMPLE.as_bytes().to_vec();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % bytes.len().max(1);
                match next() % 3 {
                    0 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                    _ if !bytes.is_empty() => {
                        let last = bytes.len() - 1;
                        bytes[at.min(last)] = (next() % 256) as u8;
                    }
                    _ => {}
                }
            }
            let _ = Snapshot::parse(&String::from_utf8_lossy(&bytes));
            let noise: Vec<u8> = (0..(next() % 300))
                .map(|_| alphabet[(next() as usize) % alphabet.len()])
                .collect();
            let _ = Snapshot::parse(&String::from_utf8_lossy(&noise));
            let _ = Snapshot::parse(&format!(
                "telemetry-begin version=1 seq=1\n{}",
                String::from_utf8_lossy(&noise)
            ));
        }
    }

    #[test]
    fn client_reassembles_answers_from_a_stream() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut client = TelemetryClient {
            stream: ours,
            pending: Vec::new(),
        };
        let kernel = std::thread::spawn(move || {
            let mut theirs = theirs;
            let mut request = [0u8; 9];
            theirs.read_exact(&mut request).unwrap();
            assert_eq!(&request, b"snapshot\n");
            // Stale bytes first, then the answer in small pieces.
            theirs
                .write_all(b"telemetry-end seq=6 records=1\n")
                .unwrap();
            for piece in SAMPLE.as_bytes().chunks(37) {
                theirs.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut request = [0u8; 9];
            theirs.read_exact(&mut request).unwrap();
            theirs
                .write_all(b"telemetry-error version=1 message=\"unknown request; use snapshot, scan or detail PID\"\n")
                .unwrap();
            theirs
        });
        let snapshot = client
            .snapshot(Duration::from_secs(10))
            .expect("a snapshot");
        assert_eq!(snapshot.seq, 7);
        match client.request(Request::Snapshot, Duration::from_secs(10)) {
            Err(ClientError::Parse(ParseError::Kernel(message))) => {
                assert!(message.starts_with("unknown request"), "{message}")
            }
            other => panic!("expected the kernel's error, got {other:?}"),
        }
        let _theirs = kernel.join().unwrap();
        let timeout = client.request_text("snapshot", Duration::from_millis(100));
        assert!(
            matches!(timeout, Err(ClientError::Timeout { .. })),
            "{timeout:?}"
        );
    }

    #[test]
    fn connect_reports_a_missing_socket() {
        let error =
            TelemetryClient::connect("/nonexistent/telemetry.sock", Duration::from_millis(50))
                .err()
                .expect("must fail");
        assert!(
            error.to_string().contains("/nonexistent/telemetry.sock"),
            "{error}"
        );
    }
}
