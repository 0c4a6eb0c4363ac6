//! The newc cpio archive format (the initramfs), as Linux's init/initramfs.c reads it.
//!
//! The archive is untrusted input. `Reader` validates every header (magic, hex fields, a
//! NUL-terminated UTF-8 name without `..` components, data inside the archive, the checksum of
//! `070702` archives) and stops at the first problem with an error that says what and where.
//! Nothing in an archive can make it panic or allocate more than a copy of one entry name; the
//! kernel's `fs::initramfs` turns the entries into files. Like Linux, several archives may be
//! concatenated, with NUL padding between them.

use alloc::string::String;
use core::fmt;

/// Linux's `PATH_MAX`: a name must be shorter (it is used as a path).
pub const NAME_MAX_LEN: usize = 4096;
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;

/// A device number as the archive stores it (`c_devmajor`/`c_devminor`, `c_rdev*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceNumber {
    pub major: u32,
    pub minor: u32,
}

pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// The variant whose `check` field is the sum of the file's bytes.
pub const NEWC_CRC_MAGIC: &[u8; 6] = b"070702";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

/// What is wrong with an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// The data ends inside a header, a name or a file, or before the trailer.
    Truncated,
    BadMagic([u8; 6]),
    /// A compressed archive (Cadenza only reads uncompressed newc).
    Compressed(&'static str),
    BadHeaderField(&'static str),
    NameNotTerminated,
    /// Empty, not UTF-8, or longer than `PATH_MAX`.
    BadName,
    DotDotComponent,
    BadChecksum,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "archive truncated"),
            Self::BadMagic(magic) => write!(
                f,
                "bad magic {:?} (expected newc \"070701\")",
                String::from_utf8_lossy(magic)
            ),
            Self::Compressed(kind) => {
                write!(
                    f,
                    "{kind}-compressed archive; only uncompressed newc is supported"
                )
            }
            Self::BadHeaderField(field) => write!(f, "header field {field} is not 8 hex digits"),
            Self::NameNotTerminated => write!(f, "file name not NUL-terminated"),
            Self::BadName => write!(f, "empty, non-UTF-8 or over-long file name"),
            Self::DotDotComponent => write!(f, "file name contains a `..` component"),
            Self::BadChecksum => write!(f, "bad data checksum"),
        }
    }
}

/// An error and where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveFailure {
    /// Byte offset of the header of the entry at fault.
    pub offset: usize,
    /// The entry's name, when it could be read.
    pub entry: Option<String>,
    pub error: ArchiveError,
}

impl fmt::Display for ArchiveFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.error, self.offset)?;
        if let Some(name) = &self.entry {
            write!(f, " (entry {name:?})")?;
        }
        Ok(())
    }
}

/// One archive member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub dev: DeviceNumber,
    pub rdev: DeviceNumber,
    pub name: &'a str,
    pub data: &'a [u8],
}

/// The entries of one or more concatenated newc archives, in order, ending at the first
/// error.
pub struct Reader<'a> {
    data: &'a [u8],
    position: usize,
    after_trailer: bool,
    failed: bool,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            position: 0,
            // An empty archive is a valid (empty) one.
            after_trailer: true,
            failed: false,
        }
    }

    fn fail(&mut self, offset: usize, entry: Option<&str>, error: ArchiveError) -> ArchiveFailure {
        self.failed = true;
        ArchiveFailure {
            offset,
            entry: entry.map(String::from),
            error,
        }
    }

    fn compression(bytes: &[u8]) -> Option<&'static str> {
        const MAGICS: [(&[u8], &str); 7] = [
            (&[0x1f, 0x8b], "gzip"),
            (b"BZh", "bzip2"),
            (&[0xfd, b'7', b'z', b'X', b'Z'], "xz"),
            (&[0x5d, 0, 0], "lzma"),
            (&[0x89, b'L', b'Z', b'O'], "lzo"),
            (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
            (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        ];
        MAGICS
            .iter()
            .find(|(magic, _)| bytes.starts_with(magic))
            .map(|&(_, name)| name)
    }

    fn next_entry(&mut self) -> Option<Result<Entry<'a>, ArchiveFailure>> {
        loop {
            // Archives may be padded with NULs and concatenated (Linux skips NULs here too).
            while self.data.get(self.position) == Some(&0) {
                self.position += 1;
            }
            let start = self.position;
            let rest = &self.data[start.min(self.data.len())..];
            if rest.is_empty() {
                return if self.after_trailer {
                    None
                } else {
                    Some(Err(self.fail(start, None, ArchiveError::Truncated)))
                };
            }
            let Some(header) = rest.get(..HEADER_LEN) else {
                if let Some(kind) = Self::compression(rest) {
                    return Some(Err(self.fail(start, None, ArchiveError::Compressed(kind))));
                }
                let error = match rest.get(..6) {
                    Some(magic) if magic != NEWC_MAGIC && magic != NEWC_CRC_MAGIC => {
                        ArchiveError::BadMagic(magic.try_into().expect("six bytes"))
                    }
                    _ => ArchiveError::Truncated,
                };
                return Some(Err(self.fail(start, None, error)));
            };
            let magic: [u8; 6] = header[..6].try_into().expect("six bytes");
            if &magic != NEWC_MAGIC && &magic != NEWC_CRC_MAGIC {
                let error = match Self::compression(header) {
                    Some(kind) => ArchiveError::Compressed(kind),
                    None => ArchiveError::BadMagic(magic),
                };
                return Some(Err(self.fail(start, None, error)));
            }
            const FIELDS: [&str; 13] = [
                "c_ino",
                "c_mode",
                "c_uid",
                "c_gid",
                "c_nlink",
                "c_mtime",
                "c_filesize",
                "c_devmajor",
                "c_devminor",
                "c_rdevmajor",
                "c_rdevminor",
                "c_namesize",
                "c_check",
            ];
            let mut values = [0u32; 13];
            for (index, value) in values.iter_mut().enumerate() {
                let digits = &header[6 + index * 8..6 + index * 8 + 8];
                match parse_hex(digits) {
                    Some(parsed) => *value = parsed,
                    None => {
                        let error = ArchiveError::BadHeaderField(FIELDS[index]);
                        return Some(Err(self.fail(start, None, error)));
                    }
                }
            }
            let [
                ino,
                mode,
                uid,
                gid,
                nlink,
                mtime,
                file_size,
                dev_major,
                dev_minor,
                rdev_major,
                rdev_minor,
                name_size,
                check,
            ] = values;
            let name_size = name_size as usize;
            let Some(name_bytes) = rest.get(HEADER_LEN..HEADER_LEN + name_size) else {
                return Some(Err(self.fail(start, None, ArchiveError::Truncated)));
            };
            let Some((&0, name_bytes)) = name_bytes.split_last() else {
                return Some(Err(self.fail(start, None, ArchiveError::NameNotTerminated)));
            };
            if name_bytes.contains(&0) {
                return Some(Err(self.fail(start, None, ArchiveError::NameNotTerminated)));
            }
            let Ok(name) = core::str::from_utf8(name_bytes) else {
                return Some(Err(self.fail(start, None, ArchiveError::BadName)));
            };
            if name.is_empty() || name.len() >= NAME_MAX_LEN {
                return Some(Err(self.fail(start, Some(name), ArchiveError::BadName)));
            }
            let data_start = (HEADER_LEN + name_size).next_multiple_of(4);
            let Some(data) = rest.get(data_start..data_start + file_size as usize) else {
                return Some(Err(self.fail(start, Some(name), ArchiveError::Truncated)));
            };
            // The padding after the last member may be missing: never step past the end (an
            // error found there is reported at the end, not beyond it).
            self.position =
                (start + (data_start + data.len()).next_multiple_of(4)).min(self.data.len());
            if name == TRAILER {
                self.after_trailer = true;
                continue;
            }
            self.after_trailer = false;
            if name.split('/').any(|component| component == "..") {
                let error = ArchiveError::DotDotComponent;
                return Some(Err(self.fail(start, Some(name), error)));
            }
            if &magic == NEWC_CRC_MAGIC
                && mode & S_IFMT == S_IFREG
                && data
                    .iter()
                    .fold(0u32, |sum, &byte| sum.wrapping_add(u32::from(byte)))
                    != check
            {
                return Some(Err(self.fail(start, Some(name), ArchiveError::BadChecksum)));
            }
            return Some(Ok(Entry {
                ino,
                mode,
                uid,
                gid,
                nlink,
                mtime,
                dev: DeviceNumber {
                    major: dev_major,
                    minor: dev_minor,
                },
                rdev: DeviceNumber {
                    major: rdev_major,
                    minor: rdev_minor,
                },
                name,
                data,
            }));
        }
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, ArchiveFailure>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.next_entry()
    }
}

/// Eight ASCII hex digits, nothing else.
fn parse_hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, &digit| {
        let nibble = (digit as char).to_digit(16)?;
        Some(value << 4 | nibble)
    })
}
