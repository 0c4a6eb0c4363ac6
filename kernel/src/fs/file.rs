//! Open files: what a file descriptor refers to (Linux's `struct file`).
//!
//! One `OpenFile` is shared by every descriptor `dup`ed or inherited from it, so the offset and
//! the status flags (`O_APPEND`, `O_NONBLOCK`) live here behind a lock, not in the descriptor
//! table. The access mode is fixed at open. Reads and writes on a regular file hold the lock for
//! the whole transfer, so two processes sharing the file never get overlapping offsets; device
//! reads may block (a terminal waiting for input) and run without it.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::abi;
use super::dev::{CharDevice, PollEvents};
use super::metadata::{FileType, Metadata};
use super::mount::Location;
use super::tmpfs::MAX_FILE_SIZE;
use crate::errno::{EResult, Errno};

bitflags::bitflags! {
    /// `open(2)` flags, x86_64 Linux values. The access mode is the low two bits (`O_RDONLY` is
    /// 0); see `access_mode`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct OpenFlags: u32 {
        const WRONLY = 0o1;
        const RDWR = 0o2;
        const CREAT = 0o100;
        const EXCL = 0o200;
        const NOCTTY = 0o400;
        const TRUNC = 0o1000;
        const APPEND = 0o2000;
        const NONBLOCK = 0o4000;
        const DSYNC = 0o10000;
        const ASYNC = 0o20000;
        const DIRECT = 0o40000;
        const LARGEFILE = 0o100000;
        const DIRECTORY = 0o200000;
        const NOFOLLOW = 0o400000;
        const NOATIME = 0o1000000;
        const CLOEXEC = 0o2000000;
        const SYNC = 0o4010000;
        const PATH = 0o10000000;
        const TMPFILE = 0o20200000;
    }
}

/// The flags `fcntl(F_SETFL)` may change (Linux's `SETFL_MASK`, less `O_DIRECT`).
pub const SETFL_MASK: OpenFlags = OpenFlags::APPEND
    .union(OpenFlags::NONBLOCK)
    .union(OpenFlags::ASYNC)
    .union(OpenFlags::NOATIME);

impl OpenFlags {
    /// Whether the access mode allows reading (`O_RDONLY`, `O_RDWR`).
    pub fn reads(self) -> bool {
        matches!(self.bits() & 3, 0 | 2)
    }

    /// Whether the access mode allows writing (`O_WRONLY`, `O_RDWR`).
    pub fn writes(self) -> bool {
        matches!(self.bits() & 3, 1 | 2)
    }
}

/// `lseek` whence values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    Set,
    Current,
    End,
    /// `SEEK_DATA`: the next byte at or after the offset that is data.
    Data,
    /// `SEEK_HOLE`: the next hole at or after the offset (the end counts as one).
    Hole,
}

impl Whence {
    /// From the raw value; `EINVAL` for anything else.
    pub fn from_raw(raw: u32) -> EResult<Self> {
        Ok(match raw {
            0 => Self::Set,
            1 => Self::Current,
            2 => Self::End,
            3 => Self::Data,
            4 => Self::Hole,
            _ => return Err(Errno::EINVAL),
        })
    }
}

/// What reads and writes go to.
enum Backend {
    /// A regular file or a directory: the inode of the location.
    Inode,
    /// A character device node: the driver found at open.
    Device {
        device: Arc<dyn CharDevice>,
        minor: u32,
    },
    /// `O_PATH`: a location only; every I/O is `EBADF`.
    PathOnly,
}

struct FileState {
    offset: u64,
    /// Access mode and status flags, as `F_GETFL` reports them.
    flags: OpenFlags,
    /// A generated file's text as this open file last read it from offset 0 (`pseudo`).
    snapshot: Option<Vec<u8>>,
}

pub struct OpenFile {
    location: Location,
    backend: Backend,
    state: spin::Mutex<FileState>,
    /// The absolute path it was opened by, if it was opened by path (`/proc/<pid>/fd`).
    opened_path: spin::Once<String>,
}

/// The flags an open file keeps (creation flags such as `O_CREAT` are forgotten, as in Linux).
fn kept_flags(flags: OpenFlags) -> OpenFlags {
    let access = OpenFlags::from_bits_retain(flags.bits() & 3);
    access
        | (flags
            & (SETFL_MASK
                | OpenFlags::DIRECT
                | OpenFlags::LARGEFILE
                | OpenFlags::SYNC
                | OpenFlags::DSYNC
                | OpenFlags::PATH
                | OpenFlags::DIRECTORY
                | OpenFlags::NOFOLLOW))
}

impl OpenFile {
    fn with_backend(location: Location, backend: Backend, flags: OpenFlags) -> Arc<Self> {
        Arc::new(Self {
            location,
            backend,
            state: spin::Mutex::new(FileState {
                offset: 0,
                flags: kept_flags(flags),
                snapshot: None,
            }),
            opened_path: spin::Once::new(),
        })
    }

    /// An open regular file or directory. Permission checks are the caller's (`vfs::open`).
    pub fn new_inode(location: Location, flags: OpenFlags) -> Arc<Self> {
        Self::with_backend(location, Backend::Inode, flags)
    }

    /// An open device: `location` is its node (what `fstat` reports), `device` its driver.
    /// Also the constructor for files without a node of their own, such as pipes.
    pub fn new_device(
        location: Location,
        device: Arc<dyn CharDevice>,
        minor: u32,
        flags: OpenFlags,
    ) -> Arc<Self> {
        Self::with_backend(location, Backend::Device { device, minor }, flags)
    }

    /// An `O_PATH` file.
    pub fn new_path_only(location: Location, flags: OpenFlags) -> Arc<Self> {
        Self::with_backend(location, Backend::PathOnly, flags)
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Records the path `open` was given, made absolute (once; later calls are ignored).
    pub fn set_opened_path(&self, path: String) {
        self.opened_path.call_once(|| path);
    }

    pub fn opened_path(&self) -> Option<&str> {
        self.opened_path.get().map(String::as_str)
    }

    pub fn metadata(&self) -> Metadata {
        self.location.metadata()
    }

    /// `struct stat` for `fstat`.
    pub fn stat(&self) -> [u8; abi::STAT_SIZE] {
        abi::encode_stat(&self.metadata())
    }

    /// Access mode and status flags (`F_GETFL`).
    pub fn flags(&self) -> OpenFlags {
        self.state.lock().flags
    }

    /// `F_SETFL`: replaces the changeable status flags, keeps the rest.
    pub fn set_status_flags(&self, flags: OpenFlags) {
        let mut state = self.state.lock();
        state.flags = (state.flags - SETFL_MASK) | (flags & SETFL_MASK);
    }

    pub fn is_path_only(&self) -> bool {
        matches!(self.backend, Backend::PathOnly)
    }

    pub fn is_readable(&self) -> bool {
        !self.is_path_only() && self.flags().reads()
    }

    pub fn is_writable(&self) -> bool {
        !self.is_path_only() && self.flags().writes()
    }

    /// The current offset (what `lseek(fd, 0, SEEK_CUR)` returns).
    pub fn offset(&self) -> u64 {
        self.state.lock().offset
    }

    /// `read(2)`: from the current offset, advancing it.
    pub fn read(&self, buf: &mut [u8]) -> EResult<usize> {
        if !self.is_readable() {
            return Err(Errno::EBADF);
        }
        match &self.backend {
            Backend::Device { device, minor } => device.read(*minor, buf, self.flags()),
            Backend::PathOnly => Err(Errno::EBADF),
            Backend::Inode => {
                let mut state = self.state.lock();
                let count = match self.location.inode.as_generated() {
                    Some(generated) => {
                        if state.offset == 0 || state.snapshot.is_none() {
                            state.snapshot = Some(generated.generate()?);
                        }
                        let text = state.snapshot.as_deref().unwrap_or_default();
                        super::pseudo::read_from(text, state.offset, buf)
                    }
                    None => self.location.inode.read_at(state.offset, buf)?,
                };
                state.offset += count as u64;
                Ok(count)
            }
        }
    }

    /// `write(2)`: at the current offset, or at the end with `O_APPEND`; advances the offset.
    pub fn write(&self, buf: &[u8]) -> EResult<usize> {
        if !self.is_writable() {
            return Err(Errno::EBADF);
        }
        match &self.backend {
            Backend::Device { device, minor } => device.write(*minor, buf, self.flags()),
            Backend::PathOnly => Err(Errno::EBADF),
            Backend::Inode => {
                let mut state = self.state.lock();
                if state.flags.contains(OpenFlags::APPEND) {
                    let (written, end) = self.location.inode.append(buf)?;
                    state.offset = end;
                    return Ok(written);
                }
                let count = self.location.inode.write_at(state.offset, buf)?;
                state.offset += count as u64;
                Ok(count)
            }
        }
    }

    /// `pread64`: at `offset`, leaving the file offset alone.
    pub fn pread(&self, buf: &mut [u8], offset: u64) -> EResult<usize> {
        if !self.is_readable() {
            return Err(Errno::EBADF);
        }
        check_position(offset)?;
        match &self.backend {
            Backend::Device { device, minor } if device.seekable() => {
                device.read(*minor, buf, self.flags())
            }
            Backend::Device { .. } => Err(Errno::ESPIPE),
            Backend::PathOnly => Err(Errno::EBADF),
            Backend::Inode => self.location.inode.read_at(offset, buf),
        }
    }

    /// `pwrite64`: at `offset`, leaving the file offset alone — except that with `O_APPEND` the
    /// data goes to the end, a Linux quirk its man page documents.
    pub fn pwrite(&self, buf: &[u8], offset: u64) -> EResult<usize> {
        if !self.is_writable() {
            return Err(Errno::EBADF);
        }
        check_position(offset)?;
        match &self.backend {
            Backend::Device { device, minor } if device.seekable() => {
                device.write(*minor, buf, self.flags())
            }
            Backend::Device { .. } => Err(Errno::ESPIPE),
            Backend::PathOnly => Err(Errno::EBADF),
            Backend::Inode if self.flags().contains(OpenFlags::APPEND) => {
                Ok(self.location.inode.append(buf)?.0)
            }
            Backend::Inode => self.location.inode.write_at(offset, buf),
        }
    }

    /// `lseek`: `EINVAL` for a negative or overflowing result, `ESPIPE` on a device that
    /// cannot seek, `ENXIO` for `SEEK_DATA`/`SEEK_HOLE` at or past the end.
    pub fn seek(&self, offset: i64, whence: Whence) -> EResult<u64> {
        match &self.backend {
            Backend::PathOnly => return Err(Errno::EBADF),
            Backend::Device { device, .. } if device.seekable() => return Ok(0),
            Backend::Device { .. } => return Err(Errno::ESPIPE),
            Backend::Inode => {}
        }
        let mut state = self.state.lock();
        let meta = self.location.metadata();
        let is_dir = meta.file_type == FileType::Directory;
        let base = match whence {
            Whence::Set => 0,
            Whence::Current => state.offset as i64,
            Whence::End if is_dir => return Err(Errno::EINVAL),
            Whence::End => meta.size as i64,
            Whence::Data | Whence::Hole if is_dir => return Err(Errno::EINVAL),
            Whence::Data | Whence::Hole => {
                // No hole tracking: all of the file is data, the end is the only hole.
                if offset < 0 || offset as u64 >= meta.size {
                    return Err(Errno::ENXIO);
                }
                let position = if whence == Whence::Data {
                    offset as u64
                } else {
                    meta.size
                };
                state.offset = position;
                return Ok(position);
            }
        };
        // Linux's sum wraps negative on overflow and is refused like any negative result.
        let position = base.checked_add(offset).ok_or(Errno::EINVAL)?;
        if position < 0 {
            return Err(Errno::EINVAL);
        }
        state.offset = position as u64;
        Ok(position as u64)
    }

    /// `getdents64`: encodes as many `struct linux_dirent64` records as fit in `buf` from the
    /// current position and advances it. 0 at the end; `EINVAL` if not even one fits.
    pub fn getdents64(&self, buf: &mut [u8]) -> EResult<usize> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        if !matches!(self.backend, Backend::Inode) || !self.location.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let mut state = self.state.lock();
        let mut written = 0;
        let mut next = state.offset;
        let mut too_small = false;
        self.location
            .inode
            .read_dir(state.offset, &mut |entry| match abi::encode_dirent64(
                &mut buf[written..],
                entry.ino,
                entry.next_offset,
                entry.file_type,
                entry.name,
            ) {
                Some(length) => {
                    written += length;
                    next = entry.next_offset;
                    true
                }
                None => {
                    too_small = written == 0;
                    false
                }
            })?;
        if too_small {
            return Err(Errno::EINVAL);
        }
        state.offset = next;
        Ok(written)
    }

    /// `ioctl`: devices decide; anything else is `ENOTTY`.
    pub fn ioctl(&self, cmd: u32, arg: u64) -> EResult<u64> {
        match &self.backend {
            Backend::Device { device, minor } => device.ioctl(*minor, cmd, arg),
            Backend::PathOnly => Err(Errno::EBADF),
            Backend::Inode => Err(Errno::ENOTTY),
        }
    }

    /// Readiness for `poll`/`select`: files and directories are always ready.
    pub fn poll(&self) -> PollEvents {
        match &self.backend {
            Backend::Device { device, minor } => device.poll(*minor),
            Backend::PathOnly => PollEvents::NVAL,
            Backend::Inode => {
                PollEvents::IN | PollEvents::OUT | PollEvents::RDNORM | PollEvents::WRNORM
            }
        }
    }

    /// `ftruncate`: `EINVAL` unless this is a regular file open for writing.
    pub fn truncate(&self, length: i64) -> EResult<()> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        if length < 0
            || !self.is_writable()
            || !matches!(self.backend, Backend::Inode)
            || self.location.file_type() != FileType::Regular
        {
            return Err(Errno::EINVAL);
        }
        self.location.inode.truncate(length as u64)
    }

    /// The whole content of a regular file from offset 0, for the kernel's own use (`execve`
    /// reading an image). Does not move the offset.
    pub fn read_all(&self) -> EResult<Vec<u8>> {
        if !matches!(self.backend, Backend::Inode) || self.location.file_type() != FileType::Regular
        {
            return Err(Errno::EACCES);
        }
        let size = usize::try_from(self.metadata().size).map_err(|_| Errno::EFBIG)?;
        let mut data = Vec::new();
        data.try_reserve_exact(size).map_err(|_| Errno::ENOMEM)?;
        data.resize(size, 0);
        let mut done = 0;
        while done < size {
            match self
                .location
                .inode
                .read_at(done as u64, &mut data[done..])?
            {
                0 => break,
                count => done += count,
            }
        }
        data.truncate(done);
        Ok(data)
    }

    /// Whether `mmap` can map this file: an open regular file whose bytes are stored (not a
    /// device, pipe, directory or generated procfs text, which have no `mmap` on Linux either).
    pub fn is_mappable(&self) -> bool {
        matches!(self.backend, Backend::Inode)
            && self.location.file_type() == FileType::Regular
            && self.location.inode.as_generated().is_none()
    }

    /// Fills `buf` from `offset` for a file mapping's page fault: as much as the file has
    /// there, the rest left as it is (zeroes). Returns how many bytes came from the file.
    pub fn read_for_mapping(&self, offset: u64, buf: &mut [u8]) -> EResult<usize> {
        if !self.is_mappable() {
            return Err(Errno::ENODEV);
        }
        let mut done = 0;
        while done < buf.len() {
            match self
                .location
                .inode
                .read_at(offset + done as u64, &mut buf[done..])?
            {
                0 => break,
                count => done += count,
            }
        }
        Ok(done)
    }

    /// The target of a symlink opened with `O_PATH | O_NOFOLLOW` (`readlinkat(fd, "")`).
    pub fn readlink(&self) -> EResult<String> {
        self.location.inode.readlink()
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if let Backend::Device { device, minor } = &self.backend {
            device.release(*minor);
        }
    }
}

/// A file position from userspace: `EINVAL` beyond `i64::MAX`.
fn check_position(offset: u64) -> EResult<()> {
    if offset > MAX_FILE_SIZE {
        Err(Errno::EINVAL)
    } else {
        Ok(())
    }
}
