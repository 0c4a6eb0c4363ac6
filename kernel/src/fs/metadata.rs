//! Inode metadata exactly as Linux reports it: file type and permission bits, owners, device
//! numbers, sizes and the four timestamps.
//!
//! These are plain values copied out of an inode under its lock, so callers (stat encoders, the
//! permission checks, `ls`-style listings) never hold a file system lock while they work.

use core::fmt;

/// The file-type bits of `st_mode` (`S_IFMT`).
pub const S_IFMT: u32 = 0o170_000;
pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
/// The sticky bit: in a directory, only a file's owner (or the directory's, or root) may
/// delete or rename it — the `/tmp` rule.
pub const S_ISVTX: u32 = 0o1000;
pub const S_IXGRP: u32 = 0o010;
/// Every permission bit a mode can carry (`07777`).
pub const PERMISSION_BITS: u32 = 0o7777;

/// What kind of object an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The type encoded in a mode's `S_IFMT` bits; `None` for a value Linux does not define.
    pub const fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & S_IFMT {
            0o100_000 => Self::Regular,
            0o040_000 => Self::Directory,
            0o120_000 => Self::Symlink,
            0o020_000 => Self::CharDevice,
            0o060_000 => Self::BlockDevice,
            0o010_000 => Self::Fifo,
            0o140_000 => Self::Socket,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits for this type.
    pub const fn mode_bits(self) -> u32 {
        match self {
            Self::Regular => 0o100_000,
            Self::Directory => 0o040_000,
            Self::Symlink => 0o120_000,
            Self::CharDevice => 0o020_000,
            Self::BlockDevice => 0o060_000,
            Self::Fifo => 0o010_000,
            Self::Socket => 0o140_000,
        }
    }

    /// `d_type` in `struct linux_dirent64` (`DT_REG`, `DT_DIR`, ...).
    pub const fn dirent_type(self) -> u8 {
        match self {
            Self::Fifo => 1,
            Self::CharDevice => 2,
            Self::Directory => 4,
            Self::BlockDevice => 6,
            Self::Regular => 8,
            Self::Symlink => 10,
            Self::Socket => 12,
        }
    }

    /// The first character of an `ls -l` mode string.
    pub const fn ls_char(self) -> char {
        match self {
            Self::Regular => '-',
            Self::Directory => 'd',
            Self::Symlink => 'l',
            Self::CharDevice => 'c',
            Self::BlockDevice => 'b',
            Self::Fifo => 'p',
            Self::Socket => 's',
        }
    }
}

/// A point in time as `struct timespec` carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    pub sec: i64,
    /// Always below 1_000_000_000.
    pub nsec: u32,
}

impl Timespec {
    pub const fn new(sec: i64, nsec: u32) -> Self {
        Self { sec, nsec }
    }

    pub const fn from_ns(ns: u64) -> Self {
        Self {
            sec: (ns / 1_000_000_000) as i64,
            nsec: (ns % 1_000_000_000) as u32,
        }
    }
}

/// A Linux device number: the driver (`major`) and the unit it drives (`minor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceId {
    pub major: u32,
    pub minor: u32,
}

impl DeviceId {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Linux's `new_encode_dev`: the `dev_t` in `st_dev`/`st_rdev` and the one `mknod(2)` takes
    /// (for major < 4096 and minor < 2^20 it equals glibc's `makedev`).
    pub const fn encode(self) -> u32 {
        (self.minor & 0xff) | ((self.major & 0xfff) << 8) | ((self.minor & !0xff) << 12)
    }

    /// Linux's `new_decode_dev`, the inverse of `encode`.
    pub const fn decode(dev: u32) -> Self {
        Self {
            major: (dev & 0xfff00) >> 8,
            minor: (dev & 0xff) | ((dev >> 12) & 0xfff00),
        }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// Everything `stat` reports about an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The file system's device (`st_dev`).
    pub dev: DeviceId,
    pub ino: u64,
    pub file_type: FileType,
    /// `07777`: rwx for owner, group, other plus set-uid, set-gid and sticky.
    pub permissions: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// The device a device node stands for (`st_rdev`); zero otherwise.
    pub rdev: DeviceId,
    pub size: u64,
    pub blksize: u32,
    /// Allocated storage in 512-byte units.
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// Creation time (`statx`'s `stx_btime`).
    pub btime: Timespec,
}

impl Metadata {
    /// `st_mode`: type bits and permission bits.
    pub const fn mode(&self) -> u32 {
        self.file_type.mode_bits() | self.permissions
    }

    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Directory
    }

    /// `-rwxr-sr-t`, as `ls -l` prints the mode.
    pub fn mode_string(&self) -> ModeString {
        ModeString(self.mode())
    }
}

/// A mode shown the way `ls -l` shows it (`drwxrwxrwt`, `-rwsr-xr-x`).
#[derive(Clone, Copy, Debug)]
pub struct ModeString(pub u32);

impl fmt::Display for ModeString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let mode = self.0;
        f.write_char(FileType::from_mode(mode).map_or('?', FileType::ls_char))?;
        // (read bit, write bit, exec bit, special bit, letter when special+exec, when special only)
        let triads = [
            (0o400, 0o200, 0o100, S_ISUID, 's', 'S'),
            (0o040, 0o020, 0o010, S_ISGID, 's', 'S'),
            (0o004, 0o002, 0o001, S_ISVTX, 't', 'T'),
        ];
        for (r, w, x, special, both, only) in triads {
            f.write_char(if mode & r != 0 { 'r' } else { '-' })?;
            f.write_char(if mode & w != 0 { 'w' } else { '-' })?;
            f.write_char(match (mode & x != 0, mode & special != 0) {
                (true, true) => both,
                (false, true) => only,
                (true, false) => 'x',
                (false, false) => '-',
            })?;
        }
        Ok(())
    }
}

/// A change to an inode's attributes; `None` leaves a field alone. `chmod` changes only the
/// permission bits (the type never changes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttrChange {
    pub permissions: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<Timespec>,
    pub mtime: Option<Timespec>,
    pub ctime: Option<Timespec>,
}

crate::kernel_test!(device_numbers_encode_like_linux, {
    // glibc's makedev for small numbers: (major << 8) | minor.
    crate::check_eq!(DeviceId::new(5, 1).encode(), 0x501);
    crate::check_eq!(DeviceId::new(4, 64).encode(), 0x440);
    let big = DeviceId::new(0xabc, 0x12345);
    crate::check_eq!(DeviceId::decode(big.encode()), big);
    crate::check_eq!(alloc::format!("{}", ModeString(0o41777)), "drwxrwxrwt");
    crate::check_eq!(alloc::format!("{}", ModeString(0o104755)), "-rwsr-xr-x");
    crate::check_eq!(alloc::format!("{}", ModeString(0o20620)), "crw--w----");
    crate::check_eq!(alloc::format!("{}", ModeString(0o102644)), "-rw-r-Sr--");
});
