//! The decoder: a snapshot out of any text, strictly where a mistake would mislead and leniently
//! where the kernel may grow (see the module documentation of `telemetry`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{
    BEGIN, CallSite, END, ERROR, Frame, Frames, Heap, KernelPlace, Leak, MapEntry, Place,
    ProcessDetail, Scan, SizeClass, Snapshot, Task, TaskMemory, Tracker, Uptime, VERSION,
};

/// Why a text is not a snapshot. Each names the line and the field concerned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
pub(super) struct Record<'a> {
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

    pub(super) fn num(&self, field: &'static str) -> Result<u64, ParseError> {
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
                "uptime" => once(&mut uptime, Uptime::read_fields(&record)?, line, "uptime")?,
                "frames" => once(&mut frames, Frames::read_fields(&record)?, line, "frames")?,
                "heap" => once(&mut heap, Heap::read_fields(&record)?, line, "heap")?,
                "classes" => once(&mut classes_count, record.num("count")?, line, "classes")?,
                "class" => snapshot.classes.push(SizeClass::read_fields(&record)?),
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
                "scan" => once(&mut scan, Scan::read_fields(&record)?, line, "scan")?,
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
                    extra: record
                        .fields
                        .iter()
                        .filter(|(key, _)| !Task::FIELDS.contains(key))
                        .map(|(key, value)| (key.to_string(), value.clone()))
                        .collect(),
                }),
                "detail" => {
                    let pid = record.num32("pid")?;
                    let place = match Place::from_word(&record.text("where")?) {
                        Place::Sleeping => KernelPlace::Sleeping(record.frames()?),
                        Place::Running => KernelPlace::Running,
                        Place::Gone => KernelPlace::Gone,
                        Place::Unknown => KernelPlace::Unknown,
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
