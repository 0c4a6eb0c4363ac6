//! The byte layouts userspace reads: x86_64 Linux's `struct stat` (144 bytes), `struct statx`
//! (256 bytes) and `struct linux_dirent64`.
//!
//! They are written field by field at fixed offsets into byte arrays rather than through
//! `#[repr(C)]` structs, so there is no padding to leak, no `unsafe` to view a struct as bytes,
//! and every offset is spelled out next to the field it holds (and checked by a self-test).

use super::metadata::{FileType, Metadata, Timespec};
use super::mount::Location;

pub const STAT_SIZE: usize = 144;
pub const STATX_SIZE: usize = 256;

/// `statx` mask bits: the basic fields (type, mode, nlink, uid, gid, times, ino, size,
/// blocks), creation time and mount id — everything `encode_statx` fills.
pub const STATX_BASIC_STATS: u32 = 0x7ff;
pub const STATX_BTIME: u32 = 0x800;
pub const STATX_MNT_ID: u32 = 0x1000;
/// `stx_attributes` bit: the file is the root of a mount.
pub const STATX_ATTR_MOUNT_ROOT: u64 = 0x2000;

fn put_u16(buf: &mut [u8], offset: usize, value: u16) {
    buf[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(buf: &mut [u8], offset: usize, value: u32) {
    buf[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(buf: &mut [u8], offset: usize, value: u64) {
    buf[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

/// `struct stat` as x86_64 Linux lays it out (arch/x86/include/uapi/asm/stat.h).
pub fn encode_stat(meta: &Metadata) -> [u8; STAT_SIZE] {
    let mut buf = [0u8; STAT_SIZE];
    put_u64(&mut buf, 0, u64::from(meta.dev.encode())); // st_dev
    put_u64(&mut buf, 8, meta.ino); // st_ino
    put_u64(&mut buf, 16, u64::from(meta.nlink)); // st_nlink
    put_u32(&mut buf, 24, meta.mode()); // st_mode
    put_u32(&mut buf, 28, meta.uid); // st_uid
    put_u32(&mut buf, 32, meta.gid); // st_gid; 36: __pad0
    put_u64(&mut buf, 40, u64::from(meta.rdev.encode())); // st_rdev
    put_u64(&mut buf, 48, meta.size); // st_size
    put_u64(&mut buf, 56, u64::from(meta.blksize)); // st_blksize
    put_u64(&mut buf, 64, meta.blocks); // st_blocks
    let times = [meta.atime, meta.mtime, meta.ctime];
    for (i, time) in times.iter().enumerate() {
        put_u64(&mut buf, 72 + i * 16, time.sec as u64); // st_[amc]time
        put_u64(&mut buf, 80 + i * 16, u64::from(time.nsec)); // st_[amc]time_nsec
    }
    // 120..144: __unused[3]
    buf
}

fn put_statx_time(buf: &mut [u8], offset: usize, time: Timespec) {
    put_u64(buf, offset, time.sec as u64); // tv_sec
    put_u32(buf, offset + 8, time.nsec); // tv_nsec; +12: __reserved
}

/// `struct statx` (include/uapi/linux/stat.h). Every basic field is always filled, plus btime
/// and the mount id, whatever was asked for — as Linux does when it has them at no cost.
pub fn encode_statx(meta: &Metadata, mount_id: u64, is_mount_root: bool) -> [u8; STATX_SIZE] {
    let mut buf = [0u8; STATX_SIZE];
    put_u32(&mut buf, 0, STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID); // stx_mask
    put_u32(&mut buf, 4, meta.blksize); // stx_blksize
    let attributes = if is_mount_root {
        STATX_ATTR_MOUNT_ROOT
    } else {
        0
    };
    put_u64(&mut buf, 8, attributes); // stx_attributes
    put_u32(&mut buf, 16, meta.nlink); // stx_nlink
    put_u32(&mut buf, 20, meta.uid); // stx_uid
    put_u32(&mut buf, 24, meta.gid); // stx_gid
    put_u16(&mut buf, 28, meta.mode() as u16); // stx_mode; 30: __spare0
    put_u64(&mut buf, 32, meta.ino); // stx_ino
    put_u64(&mut buf, 40, meta.size); // stx_size
    put_u64(&mut buf, 48, meta.blocks); // stx_blocks
    put_u64(&mut buf, 56, STATX_ATTR_MOUNT_ROOT); // stx_attributes_mask
    put_statx_time(&mut buf, 64, meta.atime); // stx_atime
    put_statx_time(&mut buf, 80, meta.btime); // stx_btime
    put_statx_time(&mut buf, 96, meta.ctime); // stx_ctime
    put_statx_time(&mut buf, 112, meta.mtime); // stx_mtime
    put_u32(&mut buf, 128, meta.rdev.major); // stx_rdev_major
    put_u32(&mut buf, 132, meta.rdev.minor); // stx_rdev_minor
    put_u32(&mut buf, 136, meta.dev.major); // stx_dev_major
    put_u32(&mut buf, 140, meta.dev.minor); // stx_dev_minor
    put_u64(&mut buf, 144, mount_id); // stx_mnt_id
    // 152..256: direct-I/O alignment, subvolume, atomic-write limits, spares: zero.
    buf
}

/// `statx` for a location (its mount's id and whether it is that mount's root).
pub fn statx_of(location: &Location) -> [u8; STATX_SIZE] {
    encode_statx(
        &location.metadata(),
        u64::from(location.mount.id()),
        location.is_mount_root(),
    )
}

/// Bytes of `struct linux_dirent64` before `d_name`: d_ino (8), d_off (8), d_reclen (2),
/// d_type (1).
const DIRENT64_HEADER: usize = 19;

/// The record length of a `linux_dirent64` for `name`: header, name, NUL, padded to 8.
pub fn dirent64_len(name: &str) -> usize {
    (DIRENT64_HEADER + name.len() + 1).next_multiple_of(8)
}

/// Writes one `struct linux_dirent64` at the start of `buf`; returns its length, or `None` if
/// it does not fit.
pub fn encode_dirent64(
    buf: &mut [u8],
    ino: u64,
    next_offset: u64,
    file_type: FileType,
    name: &str,
) -> Option<usize> {
    let length = dirent64_len(name);
    let record = buf.get_mut(..length)?;
    put_u64(record, 0, ino); // d_ino
    put_u64(record, 8, next_offset); // d_off
    put_u16(record, 16, length as u16); // d_reclen
    record[18] = file_type.dirent_type(); // d_type
    record[DIRENT64_HEADER..DIRENT64_HEADER + name.len()].copy_from_slice(name.as_bytes());
    record[DIRENT64_HEADER + name.len()..].fill(0); // NUL and padding
    Some(length)
}
