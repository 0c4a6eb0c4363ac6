//! Character devices: drivers registered by Linux (major, minor) number, reached by opening a
//! device node.
//!
//! A node in the file system is only a name and a number (`mknod`); the driver behind the
//! number is found here when the node is opened (`ENXIO` if there is none), exactly as Linux's
//! `chrdev_open` does. Drivers register a range of minors (`register_char`), so one driver can
//! serve several units (the serial ports are 4:64.., the memory devices 1:1..1:9); every call
//! tells the driver which minor it is serving.
//!
//! The memory devices (`null`, `zero`, `full`) and the random devices live here; the TTY layer
//! registers majors 4 and 5 through the same call.

pub mod memory;
pub mod random;

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::file::OpenFlags;
use super::metadata::DeviceId;
use crate::errno::{EResult, Errno};

bitflags::bitflags! {
    /// `poll(2)` events (Linux values).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PollEvents: u16 {
        const IN = 0x001;
        const PRI = 0x002;
        const OUT = 0x004;
        const ERR = 0x008;
        const HUP = 0x010;
        const NVAL = 0x020;
        const RDNORM = 0x040;
        const WRNORM = 0x100;
    }
}

/// A character-device driver. `minor` says which unit a call is for; `flags` are the open
/// file's status flags (`O_NONBLOCK` decides whether a read may wait).
pub trait CharDevice: Send + Sync {
    /// For logs and `/proc/devices`.
    fn name(&self) -> &'static str;

    /// A node for `minor` is being opened; an error fails the `open`.
    fn open(&self, _minor: u32, _flags: OpenFlags) -> EResult<()> {
        Ok(())
    }

    /// The last descriptor of an open file for `minor` was closed.
    fn release(&self, _minor: u32) {}

    fn read(&self, minor: u32, buf: &mut [u8], flags: OpenFlags) -> EResult<usize>;

    fn write(&self, minor: u32, buf: &[u8], flags: OpenFlags) -> EResult<usize>;

    /// Device-specific requests; `arg` is passed through untouched (often a user pointer).
    fn ioctl(&self, _minor: u32, _cmd: u32, _arg: u64) -> EResult<u64> {
        Err(Errno::ENOTTY)
    }

    /// Which of `IN`/`OUT` would not block now (and `HUP`/`ERR` conditions).
    fn poll(&self, _minor: u32) -> PollEvents {
        PollEvents::IN | PollEvents::OUT
    }

    /// Whether `lseek`, `pread` and `pwrite` are allowed. The position of a seekable device
    /// always reads as 0 (Linux's `null_lseek`); an unseekable one gives `ESPIPE` (terminals).
    fn seekable(&self) -> bool {
        false
    }
}

struct Registration {
    major: u32,
    minor_first: u32,
    count: u32,
    device: Arc<dyn CharDevice>,
}

impl Registration {
    fn covers(&self, major: u32, minor: u32) -> bool {
        self.major == major && minor >= self.minor_first && minor - self.minor_first < self.count
    }
}

static CHAR_DEVICES: spin::Mutex<Vec<Registration>> = spin::Mutex::new(Vec::new());

/// Registers `device` for minors `minor_first..minor_first + count` of `major`: `EINVAL` for an
/// empty range, `EBUSY` if any of it is taken.
pub fn register_char(
    major: u32,
    minor_first: u32,
    count: u32,
    device: Arc<dyn CharDevice>,
) -> EResult<()> {
    let end = minor_first.checked_add(count).ok_or(Errno::EINVAL)?;
    if count == 0 {
        return Err(Errno::EINVAL);
    }
    let mut table = CHAR_DEVICES.lock();
    if table
        .iter()
        .any(|r| r.major == major && minor_first < r.minor_first + r.count && r.minor_first < end)
    {
        return Err(Errno::EBUSY);
    }
    table.push(Registration {
        major,
        minor_first,
        count,
        device,
    });
    Ok(())
}

/// Removes the registration that starts at (`major`, `minor_first`); `ENXIO` if none does.
/// Files already open keep their driver.
pub fn unregister_char(major: u32, minor_first: u32) -> EResult<()> {
    let mut table = CHAR_DEVICES.lock();
    let index = table
        .iter()
        .position(|r| r.major == major && r.minor_first == minor_first)
        .ok_or(Errno::ENXIO)?;
    table.remove(index);
    super::scrub_spare_capacity(&mut table);
    Ok(())
}

/// The registered ranges as (major, first minor, count, driver name), for `/proc/devices`.
pub fn registered_char_devices() -> Vec<(u32, u32, u32, &'static str)> {
    CHAR_DEVICES
        .lock()
        .iter()
        .map(|r| (r.major, r.minor_first, r.count, r.device.name()))
        .collect()
}

/// The driver for a device number, if one is registered.
pub fn char_device(id: DeviceId) -> Option<Arc<dyn CharDevice>> {
    CHAR_DEVICES
        .lock()
        .iter()
        .find(|r| r.covers(id.major, id.minor))
        .map(|r| r.device.clone())
}

/// Registers the built-in devices (once).
pub fn init() {
    static DONE: spin::Once<()> = spin::Once::new();
    DONE.call_once(|| {
        let memory: Arc<dyn CharDevice> = Arc::new(memory::MemoryDevices);
        for (minor, name) in [
            (memory::NULL_MINOR, "null"),
            (memory::ZERO_MINOR, "zero"),
            (memory::FULL_MINOR, "full"),
        ] {
            if let Err(error) = register_char(memory::MAJOR, minor, 1, memory.clone()) {
                crate::kprintln!("dev: cannot register {name}: {error}");
            }
        }
        if let Err(error) = register_char(
            memory::MAJOR,
            random::RANDOM_MINOR,
            random::URANDOM_MINOR - random::RANDOM_MINOR + 1,
            Arc::new(random::RandomDevice),
        ) {
            crate::kprintln!("dev: cannot register random: {error}");
        }
    });
}
