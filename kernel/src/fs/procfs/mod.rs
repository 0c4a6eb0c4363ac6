//! procfs: the process table and kernel state as the files Linux programs read
//! (`mount -t proc proc /proc`).
//!
//! busybox's `ps`, `top`, `free`, `mount` and `uptime`, and shells' `/dev/fd` tricks, are
//! written against Linux's exact text formats, so each file here copies its Linux counterpart's
//! layout (fs/proc/array.c, meminfo.c, ...) field for field, including fields that are always
//! zero here. Every process file reads `task::info`, the same description gdb's `monitor ps`
//! and the TUI's snapshot use.
//!
//! Nothing is cached: directories list the process table when read, files are generated when
//! read (`pseudo`). Inode numbers encode what an object is (see `ino`), so the same object
//! always has the same number.

mod process;
mod system;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::inode::{FileSystem, Inode};
use super::metadata::DeviceId;
use super::pseudo::{Attributes, Contents, Entry, GeneratedDir, GeneratedFile, GeneratedLink};
use super::tmpfs::anonymous_device;
use crate::errno::{EResult, Errno};
use crate::task::{self, Pid};

/// Inode numbers: 1 is the root, then the fixed entries; each process owns the range above
/// `PROCESS_BASE + (pid << 8)` for its directory and files, and its descriptors the range above
/// `FD_BASE + (pid << 20)`.
mod ino {
    pub const ROOT: u64 = 1;
    pub const FIXED_BASE: u64 = 2;
    pub const PROCESS_BASE: u64 = 1 << 32;
    pub const FD_BASE: u64 = 1 << 48;
}

/// `/proc/<pid>` entries' `getdents64` positions: after every fixed entry.
const PID_COOKIE_BASE: u64 = 1 << 32;

pub struct Procfs {
    device: DeviceId,
    root: Arc<GeneratedDir>,
}

impl Procfs {
    pub fn new() -> Arc<Self> {
        let device = anonymous_device();
        let root = GeneratedDir::new_root(
            Attributes::root(device, ino::ROOT, 0o555),
            Box::new(Root { device }),
        );
        Arc::new(Self { device, root })
    }
}

impl FileSystem for Procfs {
    fn type_name(&self) -> &'static str {
        "proc"
    }

    fn root(&self) -> Arc<dyn Inode> {
        self.root.clone()
    }

    fn device(&self) -> DeviceId {
        self.device
    }
}

/// The kernel command line, for `/proc/cmdline` (recorded at boot; outside the heap, so the
/// heap's size after boot does not depend on the command line's length).
static KERNEL_CMDLINE: spin::Once<crate::boot::Cmdline> = spin::Once::new();

pub fn set_kernel_cmdline(cmdline: &str) {
    KERNEL_CMDLINE.call_once(|| crate::boot::Cmdline::from_bytes(cmdline.as_bytes()));
}

/// The reader's thread group (what `/proc/self` names).
fn reader_tgid() -> EResult<Pid> {
    task::with_current(|p| p.tgid)
}

struct Root {
    device: DeviceId,
}

/// The fixed part of `/proc`: name, permissions, and what it is.
enum Fixed {
    Text(fn(&mut String) -> EResult<()>),
    Link(fn() -> EResult<String>),
    SysrqTrigger,
}

const FIXED: &[(&str, u32, Fixed)] = &[
    (
        "self",
        0o777,
        Fixed::Link(|| Ok(format!("{}", reader_tgid()?))),
    ),
    (
        "mounts",
        0o777,
        Fixed::Link(|| Ok(String::from("self/mounts"))),
    ),
    ("cmdline", 0o444, Fixed::Text(system::cmdline)),
    ("cpuinfo", 0o444, Fixed::Text(system::cpuinfo)),
    ("devices", 0o444, Fixed::Text(system::devices)),
    ("filesystems", 0o444, Fixed::Text(system::filesystems)),
    ("loadavg", 0o444, Fixed::Text(system::loadavg)),
    ("meminfo", 0o444, Fixed::Text(system::meminfo)),
    ("stat", 0o444, Fixed::Text(system::stat)),
    ("uptime", 0o444, Fixed::Text(system::uptime)),
    ("version", 0o444, Fixed::Text(system::version)),
    ("sysrq-trigger", 0o200, Fixed::SysrqTrigger),
];

impl Root {
    fn fixed(&self, index: usize) -> Arc<dyn Inode> {
        let (_, permissions, kind) = &FIXED[index];
        let attributes =
            Attributes::root(self.device, ino::FIXED_BASE + index as u64, *permissions);
        match *kind {
            Fixed::Text(show) => GeneratedFile::new(attributes, Box::new(show)),
            Fixed::Link(target) => GeneratedLink::new(attributes, Box::new(target)),
            Fixed::SysrqTrigger => GeneratedFile::with_store(
                attributes,
                // Write-only, like Linux's.
                Box::new(|_| Err(Errno::EIO)),
                Box::new(|keys| {
                    crate::debug::sysrq::write(keys);
                    Ok(keys.len())
                }),
            ),
        }
    }
}

impl Contents for Root {
    fn entries(&self, dir: &Arc<dyn Inode>) -> Vec<Entry> {
        let mut entries: Vec<Entry> = FIXED
            .iter()
            .enumerate()
            .map(|(index, (name, _, _))| Entry {
                cookie: index as u64 + 2,
                name: String::from(*name),
                inode: self.fixed(index),
            })
            .collect();
        // Thread groups only, as Linux lists them (threads are reachable by pid all the same).
        for info in task::info::all().iter().filter(|i| i.is_group_leader()) {
            entries.push(Entry {
                cookie: PID_COOKIE_BASE + u64::from(info.pid),
                name: format!("{}", info.pid),
                inode: process::directory(self.device, dir.clone(), info),
            });
        }
        entries
    }

    fn lookup(&self, dir: &Arc<dyn Inode>, name: &str) -> EResult<Arc<dyn Inode>> {
        if let Some(index) = FIXED.iter().position(|(fixed, _, _)| *fixed == name) {
            return Ok(self.fixed(index));
        }
        let pid: Pid = process::parse_number(name).ok_or(Errno::ENOENT)?;
        let info = task::info::get(pid).ok_or(Errno::ENOENT)?;
        Ok(process::directory(self.device, dir.clone(), &info))
    }
}
