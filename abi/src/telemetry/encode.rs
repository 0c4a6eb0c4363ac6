//! The encoder: one snapshot, record by record, through `core::fmt::Write`.
//!
//! The kernel calls it from its UART interrupt handler with figures it gathered beforehand, so
//! nothing here allocates or waits: records are plain numbers and borrowed strings, stacks are
//! written through `StackFrames` (the kernel names its return addresses from kallsyms as it
//! writes them). The host's `Display for Snapshot` uses the same writer, which is what makes a
//! parsed snapshot print back byte for byte.

use core::fmt::{self, Display, Write};

use super::{
    BEGIN, END, ERROR, Frame, Frames, Heap, MapEntry, Place, ProcessDetail, Scan, SizeClass,
    Snapshot, Task, TaskMemory, Uptime, VERSION,
};

/// Escapes the inside of a quoted value: `\"`, `\\`, and `\xNN` for every control character.
pub struct Escaped<'a>(pub &'a mut dyn Write);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                c if c.is_control() => write!(self.0, "\\x{:02x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// ` key="escaped value"`.
fn quoted(out: &mut dyn Write, key: &str, value: &dyn Display) -> fmt::Result {
    write!(out, " {key}=\"")?;
    write!(Escaped(out), "{value}")?;
    out.write_char('"')
}

/// Writes the ` ret0=0x… sym0="…"` pairs of one stack.
pub struct FrameWriter<'a> {
    out: &'a mut dyn Write,
    index: usize,
}

impl FrameWriter<'_> {
    /// The next frame: its return address and its symbol (`?` when there is none).
    pub fn frame(&mut self, address: u64, symbol: Option<&dyn Display>) -> fmt::Result {
        let i = self.index;
        self.index += 1;
        write!(self.out, " ret{i}={address:#x} sym{i}=\"")?;
        match symbol {
            Some(symbol) => write!(Escaped(self.out), "{symbol}")?,
            None => self.out.write_char('?')?,
        }
        self.out.write_char('"')
    }
}

/// A stack the encoder can write: the kernel's raw return addresses (named from kallsyms as
/// they are written) or the host's parsed `Frame`s.
pub trait StackFrames {
    fn write_frames(&self, out: &mut FrameWriter<'_>) -> fmt::Result;
}

impl StackFrames for alloc::vec::Vec<Frame> {
    fn write_frames(&self, out: &mut FrameWriter<'_>) -> fmt::Result {
        for frame in self {
            out.frame(
                frame.address,
                frame.symbol.as_ref().map(|s| s as &dyn Display),
            )?;
        }
        Ok(())
    }
}

/// No stack at all.
impl StackFrames for () {
    fn write_frames(&self, _: &mut FrameWriter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// `tracker`: the leak tracker's state and figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackerRecord<'a> {
    /// `on` or `off`.
    pub state: &'a str,
    pub reason: Option<&'a str>,
    pub objects: u64,
    pub peak: u64,
    pub capacity: u64,
    pub bytes: u64,
    pub sites: u64,
    pub site_capacity: u64,
    pub overhead: u64,
    pub seq: u64,
    pub mark: u64,
    pub scans: u64,
    pub unreferenced: u64,
    pub untracked: u64,
    pub allocs: u64,
    pub frees: u64,
}

/// `site`: a call site.
pub struct SiteRecord<'a> {
    pub id: u32,
    pub objects: u64,
    pub bytes: u64,
    pub allocs: u64,
    pub frames: &'a dyn StackFrames,
}

/// `leak`: an unreferenced object.
pub struct LeakRecord<'a> {
    pub address: u64,
    pub size: u64,
    pub seq: u64,
    pub pid: u32,
    pub comm: &'a str,
    pub jiffies: u64,
    pub age_ms: u64,
    pub site: u32,
    pub frames: &'a dyn StackFrames,
}

/// `task`: a process.
#[derive(Clone, Copy, Debug)]
pub struct TaskRecord<'a> {
    pub pid: u32,
    pub ppid: u32,
    pub state: &'a str,
    pub comm: &'a str,
    pub cpu_ms: Option<u64>,
    pub rss_kib: Option<u64>,
    pub memory: Option<TaskMemory>,
    /// Fields beyond the format's (written quoted when they need it; empty from the kernel).
    pub extra: &'a [(alloc::string::String, alloc::string::String)],
}

/// `detail`: the process a `detail PID` request asked about.
pub struct DetailRecord<'a> {
    pub pid: u32,
    /// `ps`'s state letter, or `gone`.
    pub state: &'a str,
    pub place: Place,
    /// How many `map` records follow.
    pub maps: usize,
    /// The kernel stack (written only when `place` is `Sleeping`).
    pub frames: &'a dyn StackFrames,
}

/// `map`: one region of that process's memory map.
#[derive(Clone, Copy, Debug)]
pub struct MapRecord<'a> {
    pub start: u64,
    pub end: u64,
    pub perms: &'a str,
    pub name: &'a str,
}

/// Writes one snapshot: `begin`, the records in the format's order, `end`. It counts the
/// records it writes for the end marker.
pub struct SnapshotWriter<'w> {
    out: &'w mut dyn Write,
    seq: u64,
    records: u64,
}

impl<'w> SnapshotWriter<'w> {
    /// Writes the begin marker of snapshot `seq`.
    pub fn begin(out: &'w mut dyn Write, seq: u64) -> Result<Self, fmt::Error> {
        writeln!(out, "{BEGIN} version={VERSION} seq={seq}")?;
        Ok(Self {
            out,
            seq,
            records: 0,
        })
    }

    /// Starts a record line of `kind`; the caller ends it with `finish`.
    fn start(&mut self, kind: &str) -> Result<&mut dyn Write, fmt::Error> {
        self.records += 1;
        self.out.write_str(kind)?;
        Ok(&mut *self.out)
    }

    fn finish(&mut self) -> fmt::Result {
        self.out.write_char('\n')
    }

    fn stack(&mut self, frames: &dyn StackFrames) -> fmt::Result {
        frames.write_frames(&mut FrameWriter {
            out: &mut *self.out,
            index: 0,
        })
    }

    pub fn uptime(&mut self, uptime: &Uptime) -> fmt::Result {
        uptime.write_fields(self.start(Uptime::KIND)?)?;
        self.finish()
    }

    pub fn frames(&mut self, frames: &Frames) -> fmt::Result {
        frames.write_fields(self.start(Frames::KIND)?)?;
        self.finish()
    }

    pub fn heap(&mut self, heap: &Heap) -> fmt::Result {
        heap.write_fields(self.start(Heap::KIND)?)?;
        self.finish()
    }

    /// The `classes` header: `count` `class` records follow.
    pub fn classes(&mut self, count: usize) -> fmt::Result {
        write!(self.start("classes")?, " count={count}")?;
        self.finish()
    }

    pub fn class(&mut self, class: &SizeClass) -> fmt::Result {
        class.write_fields(self.start(SizeClass::KIND)?)?;
        self.finish()
    }

    pub fn tracker(&mut self, t: &TrackerRecord<'_>) -> fmt::Result {
        let out = self.start("tracker")?;
        write!(out, " state={}", t.state)?;
        if let Some(reason) = t.reason {
            write!(out, " reason={reason}")?;
        }
        write!(
            out,
            " objects={} peak={} capacity={} bytes={} sites={} site_capacity={} overhead={} seq={} mark={} scans={} unreferenced={} untracked={} allocs={} frees={}",
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
        )?;
        self.finish()
    }

    pub fn scan(&mut self, scan: &Scan) -> fmt::Result {
        scan.write_fields(self.start(Scan::KIND)?)?;
        self.finish()
    }

    /// The `sites` header.
    pub fn sites(&mut self, count: usize) -> fmt::Result {
        write!(self.start("sites")?, " count={count}")?;
        self.finish()
    }

    pub fn site(&mut self, site: &SiteRecord<'_>) -> fmt::Result {
        write!(
            self.start("site")?,
            " id={} objects={} bytes={} allocs={}",
            site.id,
            site.objects,
            site.bytes,
            site.allocs
        )?;
        self.stack(site.frames)?;
        self.finish()
    }

    /// The `leaks` header: `count` `leak` records follow, out of `total` unreferenced objects.
    pub fn leaks(&mut self, count: usize, total: u64) -> fmt::Result {
        write!(self.start("leaks")?, " count={count} total={total}")?;
        self.finish()
    }

    pub fn leak(&mut self, leak: &LeakRecord<'_>) -> fmt::Result {
        let out = self.start("leak")?;
        write!(
            out,
            " addr={:#x} size={} seq={} pid={}",
            leak.address, leak.size, leak.seq, leak.pid
        )?;
        quoted(out, "comm", &leak.comm)?;
        write!(
            out,
            " jiffies={} age_ms={} site={}",
            leak.jiffies, leak.age_ms, leak.site
        )?;
        self.stack(leak.frames)?;
        self.finish()
    }

    /// The `tasks` header: `count` `task` records follow, out of `total` processes.
    pub fn tasks(&mut self, count: usize, total: u64) -> fmt::Result {
        write!(self.start("tasks")?, " count={count} total={total}")?;
        self.finish()
    }

    pub fn task(&mut self, task: &TaskRecord<'_>) -> fmt::Result {
        let out = self.start("task")?;
        write!(
            out,
            " pid={} ppid={} state={}",
            task.pid, task.ppid, task.state
        )?;
        quoted(out, "comm", &task.comm)?;
        if let Some(cpu_ms) = task.cpu_ms {
            write!(out, " cpu_ms={cpu_ms}")?;
        }
        if let Some(rss_kib) = task.rss_kib {
            write!(out, " rss_kib={rss_kib}")?;
        }
        if let Some(m) = task.memory {
            write!(
                out,
                " vsz_kib={} image_kib={} heap_kib={} stack_kib={} anon_kib={}",
                m.vsz_kib, m.image_kib, m.heap_kib, m.stack_kib, m.anon_kib
            )?;
        }
        for (key, value) in task.extra {
            let plain = !value.is_empty()
                && !value
                    .chars()
                    .any(|c| c == ' ' || c == '"' || c == '\\' || c.is_control());
            if plain {
                write!(out, " {key}={value}")?;
            } else {
                quoted(out, key, value)?;
            }
        }
        self.finish()
    }

    pub fn detail(&mut self, detail: &DetailRecord<'_>) -> fmt::Result {
        write!(
            self.start("detail")?,
            " pid={} state={} where={} maps={}",
            detail.pid,
            detail.state,
            detail.place.word(),
            detail.maps
        )?;
        if detail.place == Place::Sleeping {
            self.stack(detail.frames)?;
        }
        self.finish()
    }

    pub fn map(&mut self, map: &MapRecord<'_>) -> fmt::Result {
        let out = self.start("map")?;
        write!(
            out,
            " start={:#x} end={:#x} perms={}",
            map.start, map.end, map.perms
        )?;
        quoted(out, "name", &map.name)?;
        self.finish()
    }

    /// Writes the end marker with the number of records written.
    pub fn end(self) -> fmt::Result {
        writeln!(self.out, "{END} seq={} records={}", self.seq, self.records)
    }
}

/// The answer to a request the kernel cannot serve: one `telemetry-error` line.
pub fn write_error(out: &mut dyn Write, message: &str) -> fmt::Result {
    write!(out, "{ERROR} version={VERSION}")?;
    quoted(out, "message", &message)?;
    out.write_char('\n')
}

impl Task {
    /// The record the encoder writes for it.
    pub fn record(&self) -> TaskRecord<'_> {
        TaskRecord {
            pid: self.pid,
            ppid: self.ppid,
            state: &self.state,
            comm: &self.comm,
            cpu_ms: self.cpu_ms,
            rss_kib: self.rss_kib,
            memory: self.memory,
            extra: &self.extra,
        }
    }
}

impl MapEntry {
    pub fn record(&self) -> MapRecord<'_> {
        MapRecord {
            start: self.start,
            end: self.end,
            perms: &self.perms,
            name: &self.name,
        }
    }
}

impl ProcessDetail {
    fn write(&self, w: &mut SnapshotWriter<'_>) -> fmt::Result {
        let frames: &dyn StackFrames = match &self.place {
            super::KernelPlace::Sleeping(frames) => frames,
            _ => &(),
        };
        w.detail(&DetailRecord {
            pid: self.pid,
            state: &self.state,
            place: self.place.place(),
            maps: self.maps.len(),
            frames,
        })?;
        for map in &self.maps {
            w.map(&map.record())?;
        }
        Ok(())
    }
}

impl Snapshot {
    /// Writes the snapshot in the kernel's format (what `Display` writes).
    pub fn encode(&self, out: &mut dyn Write) -> fmt::Result {
        let mut w = SnapshotWriter::begin(out, self.seq)?;
        w.uptime(&self.uptime)?;
        w.frames(&self.frames)?;
        w.heap(&self.heap)?;
        w.classes(self.classes.len())?;
        for class in &self.classes {
            w.class(class)?;
        }
        w.tracker(&self.tracker.record())?;
        if let Some(scan) = &self.scan {
            w.scan(scan)?;
        }
        w.sites(self.sites.len())?;
        for site in &self.sites {
            w.site(&SiteRecord {
                id: site.id,
                objects: site.objects,
                bytes: site.bytes,
                allocs: site.allocs,
                frames: &site.frames,
            })?;
        }
        w.leaks(self.leaks.len(), self.leaks_total)?;
        for leak in &self.leaks {
            w.leak(&LeakRecord {
                address: leak.address,
                size: leak.size,
                seq: leak.seq,
                pid: leak.pid,
                comm: &leak.comm,
                jiffies: leak.jiffies,
                age_ms: leak.age_ms,
                site: leak.site,
                frames: &leak.frames,
            })?;
        }
        w.tasks(self.tasks.len(), self.tasks_total)?;
        for task in &self.tasks {
            w.task(&task.record())?;
        }
        if let Some(detail) = &self.detail {
            detail.write(&mut w)?;
        }
        w.end()
    }

    /// The snapshot in the kernel's format.
    pub fn to_text(&self) -> alloc::string::String {
        alloc::string::ToString::to_string(self)
    }
}

impl Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.encode(f)
    }
}
