//! Self-tests of the file system layer (`selftest=fs`).
//!
//! Every test builds its own tree — a fresh tmpfs mounted as a private root, so `/` inside a
//! test is that tmpfs — and never sees the system's files or another test's. Expected values
//! are Linux's, checked against the man pages and fs/namei.c; where Linux's behaviour is
//! surprising the test says so.

mod devices;
mod files;
mod generated;
mod initramfs;
mod path;
mod permissions;
mod system_root;
mod tmpfs;

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::credentials::Credentials;
use super::file::{OpenFile, OpenFlags};
use super::metadata::Metadata;
use super::mount::{Mount, MountFlags};
use super::path::{At, Follow, FsContext};
use super::tmpfs::Tmpfs;
use super::vfs;
use crate::errno::EResult;

/// A private tree: a fresh tmpfs (root 0755, 4 MiB) as root and working directory.
fn private_root() -> FsContext {
    let fs = Tmpfs::with_options(0o755, 1024);
    FsContext::new(Mount::new_root(fs, "test", MountFlags::empty()).root_location())
}

fn root() -> Credentials {
    Credentials::root()
}

fn user(uid: u32) -> Credentials {
    Credentials::user(uid, uid, &[])
}

fn open(
    ctx: &FsContext,
    creds: &Credentials,
    path: &str,
    flags: OpenFlags,
) -> EResult<Arc<OpenFile>> {
    vfs::open(ctx, creds, At::Cwd, path, flags, 0o644)
}

/// Creates (or truncates) `path` with `data`, as root.
fn write_file(ctx: &FsContext, path: &str, data: &[u8]) -> EResult<()> {
    let file = open(
        ctx,
        &root(),
        path,
        OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::TRUNC,
    )?;
    if file.write(data)? == data.len() {
        Ok(())
    } else {
        Err(crate::errno::Errno::EIO)
    }
}

/// The whole content of `path`, read as `creds`.
fn read_as(ctx: &FsContext, creds: &Credentials, path: &str) -> EResult<Vec<u8>> {
    let file = open(ctx, creds, path, OpenFlags::empty())?;
    let mut data = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match file.read(&mut chunk)? {
            0 => return Ok(data),
            count => data.extend_from_slice(&chunk[..count]),
        }
    }
}

fn read_file(ctx: &FsContext, path: &str) -> EResult<Vec<u8>> {
    read_as(ctx, &root(), path)
}

fn mkdir(ctx: &FsContext, path: &str, mode: u32) -> EResult<()> {
    vfs::mkdir(ctx, &root(), At::Cwd, path, mode)
}

fn symlink(ctx: &FsContext, target: &str, path: &str) -> EResult<()> {
    vfs::symlink(ctx, &root(), target, At::Cwd, path)
}

fn lstat(ctx: &FsContext, path: &str) -> EResult<Metadata> {
    vfs::stat(ctx, &root(), At::Cwd, path, Follow::No)
}

fn stat(ctx: &FsContext, path: &str) -> EResult<Metadata> {
    vfs::stat(ctx, &root(), At::Cwd, path, Follow::Yes)
}

/// Sets permissions exactly (no umask), as root.
fn chmod(ctx: &FsContext, path: &str, mode: u32) -> EResult<()> {
    let location = vfs::resolve(ctx, &root(), At::Cwd, path, Follow::Yes)?;
    vfs::chmod(&root(), &location, mode)
}

fn chown(ctx: &FsContext, path: &str, uid: u32, gid: u32) -> EResult<()> {
    let location = vfs::resolve(ctx, &root(), At::Cwd, path, Follow::No)?;
    vfs::chown(&root(), &location, Some(uid), Some(gid))
}

/// Names in a directory (with `.` and `..`), via getdents64 with a generous buffer.
fn names_in(ctx: &FsContext, path: &str) -> EResult<Vec<alloc::string::String>> {
    let dir = open(ctx, &root(), path, OpenFlags::DIRECTORY)?;
    let mut buf = alloc::vec![0u8; 8192];
    let mut names = Vec::new();
    loop {
        let length = dir.getdents64(&mut buf)?;
        if length == 0 {
            break;
        }
        names.extend(decode_dirents(&buf[..length]).into_iter().map(|d| d.name));
    }
    names.sort();
    Ok(names)
}

/// One decoded `struct linux_dirent64`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dirent {
    ino: u64,
    next_offset: u64,
    kind: u8,
    name: alloc::string::String,
}

/// Decodes getdents64 output the way libc does: by `d_reclen`.
fn decode_dirents(mut buf: &[u8]) -> Vec<Dirent> {
    let mut entries = Vec::new();
    while buf.len() >= 19 {
        let u64_at = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
        let reclen = u16::from_le_bytes([buf[16], buf[17]]) as usize;
        let name_bytes = &buf[19..reclen];
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        entries.push(Dirent {
            ino: u64_at(0),
            next_offset: u64_at(8),
            kind: buf[18],
            name: alloc::string::String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
        });
        buf = &buf[reclen..];
    }
    entries
}

/// The value of a result the test needs, or a failure naming the unexpected error.
#[track_caller]
fn ok<T>(result: EResult<T>) -> Result<T, crate::selftest::Failure> {
    let location = core::panic::Location::caller();
    result.map_err(|error| crate::selftest::Failure {
        message: alloc::format!("unexpected error {error}"),
        file: location.file(),
        line: location.line(),
    })
}
