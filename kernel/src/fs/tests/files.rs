//! Open files, descriptor tables and the byte layouts userspace reads.

use alloc::sync::Arc;

use super::{chmod, chown, lstat, mkdir, ok, open, private_root, root, symlink, write_file};
use crate::errno::Errno;
use crate::fs::abi;
use crate::fs::fd_table::FdTable;
use crate::fs::file::{OpenFlags, Whence};
use crate::fs::metadata::{DeviceId, FileType, Timespec};
use crate::fs::path::{At, Follow};
use crate::fs::vfs::{self, TimeChange};

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default())
}

crate::kernel_test!(stat_and_statx_byte_layouts, {
    let ctx = private_root();
    ok(write_file(&ctx, "/f", b"hello"))?;
    ok(chown(&ctx, "/f", 1000, 100))?;
    ok(chmod(&ctx, "/f", 0o640))?;
    let location = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/f", Follow::No))?;
    ok(vfs::utimens(
        &root(),
        &location,
        TimeChange::Set(Timespec::new(111, 1)),
        TimeChange::Set(Timespec::new(222, 2)),
    ))?;
    let meta = location.metadata();
    let stat = abi::encode_stat(&meta);
    crate::check_eq!(
        ok(open(&ctx, &root(), "/f", OpenFlags::empty()))?.stat(),
        stat
    );
    crate::check_eq!(stat.len(), 144);
    crate::check_eq!(u64_at(&stat, 0), u64::from(meta.dev.encode()));
    crate::check_eq!(u64_at(&stat, 8), meta.ino);
    // st_nlink
    crate::check_eq!(u64_at(&stat, 16), 1);
    // st_mode at 24
    crate::check_eq!(u32_at(&stat, 24), 0o100640);
    crate::check_eq!(u32_at(&stat, 28), 1000);
    crate::check_eq!(u32_at(&stat, 32), 100);
    // padding
    crate::check_eq!(u32_at(&stat, 36), 0);
    // st_size at 48
    crate::check_eq!(u64_at(&stat, 48), 5);
    // st_blksize
    crate::check_eq!(u64_at(&stat, 56), 4096);
    // st_blocks: one page
    crate::check_eq!(u64_at(&stat, 64), 8);
    crate::check_eq!((u64_at(&stat, 72), u64_at(&stat, 80)), (111, 1));
    crate::check_eq!((u64_at(&stat, 88), u64_at(&stat, 96)), (222, 2));
    crate::check!(u64_at(&stat, 104) > 0 || u64_at(&stat, 112) > 0, "st_ctime");
    crate::check!(stat[120..].iter().all(|&b| b == 0));

    let node = FileType::CharDevice.mode_bits() | 0o620;
    ok(vfs::mknod(
        &ctx,
        &root(),
        At::Cwd,
        "/tty",
        node,
        DeviceId::new(4, 64),
    ))?;
    let tty = abi::encode_stat(&ok(lstat(&ctx, "/tty"))?);
    // st_rdev = makedev(4, 64)
    crate::check_eq!(u64_at(&tty, 40), 0x440);
    // mknod applies the umask (022): 0620 becomes 0600.
    crate::check_eq!(u32_at(&tty, 24), 0o20600);

    let statx = abi::encode_statx(&meta, 7, false);
    crate::check_eq!(statx.len(), 256);
    // basic stats, btime, mount id
    crate::check_eq!(u32_at(&statx, 0), 0x1fff);
    crate::check_eq!(u32_at(&statx, 4), 4096);
    crate::check_eq!(u32_at(&statx, 16), 1);
    crate::check_eq!((u32_at(&statx, 20), u32_at(&statx, 24)), (1000, 100));
    crate::check_eq!(u16_at(&statx, 28), 0o100640);
    crate::check_eq!(u64_at(&statx, 32), meta.ino);
    crate::check_eq!(u64_at(&statx, 40), 5);
    crate::check_eq!(u64_at(&statx, 48), 8);
    // stx_atime
    crate::check_eq!((u64_at(&statx, 64), u32_at(&statx, 72)), (111, 1));
    // stx_mtime
    crate::check_eq!((u64_at(&statx, 112), u32_at(&statx, 120)), (222, 2));
    crate::check_eq!(
        (u32_at(&statx, 136), u32_at(&statx, 140)),
        (meta.dev.major, meta.dev.minor)
    );
    // stx_mnt_id
    crate::check_eq!(u64_at(&statx, 144), 7);
    let tty_statx = abi::encode_statx(&ok(lstat(&ctx, "/tty"))?, 1, false);
    crate::check_eq!((u32_at(&tty_statx, 128), u32_at(&tty_statx, 132)), (4, 64));
    let root_statx = abi::statx_of(&ctx.root);
    crate::check_eq!(u64_at(&root_statx, 8), abi::STATX_ATTR_MOUNT_ROOT);
    crate::check_eq!(u64_at(&root_statx, 144), u64::from(ctx.root.mount.id()));

    let mut record = [0xffu8; 32];
    crate::check_eq!(
        abi::encode_dirent64(&mut record, 5, 9, FileType::Regular, "abc"),
        Some(24)
    );
    crate::check_eq!((u64_at(&record, 0), u64_at(&record, 8)), (5, 9));
    crate::check_eq!(u16_at(&record, 16), 24);
    // DT_REG
    crate::check_eq!(record[18], 8);
    crate::check_eq!(&record[19..24], b"abc\0\0");
    // nothing written past the record
    crate::check_eq!(record[24], 0xff);
    crate::check_eq!(
        abi::encode_dirent64(&mut record[..23], 5, 9, FileType::Regular, "abc"),
        None
    );
    crate::check_eq!(abi::dirent64_len("12345"), 32);
});

crate::kernel_test!(fd_table_dup_semantics, {
    let ctx = private_root();
    ok(write_file(&ctx, "/f", b"0123456789"))?;
    let file = ok(open(&ctx, &root(), "/f", OpenFlags::RDWR))?;
    let other = ok(open(&ctx, &root(), "/f", OpenFlags::empty()))?;
    let mut table = FdTable::with_limit(8);
    crate::check_eq!(ok(table.insert(&file, false))?, 0);
    crate::check_eq!(ok(table.insert(&other, false))?, 1);
    crate::check_eq!(ok(table.insert(&file, false))?, 2);
    crate::check!(Arc::ptr_eq(&ok(table.close(1))?, &other));
    // lowest free number
    crate::check_eq!(ok(table.insert(&other, false))?, 1);
    // dup shares the open file, so the offset moves for both.
    crate::check_eq!(ok(table.dup(0))?, 3);
    ok(ok(table.get(0))?.read(&mut [0u8; 4]))?;
    crate::check_eq!(ok(table.get(3))?.offset(), 4);
    crate::check_eq!(ok(table.close_on_exec(3))?, false);

    // dup2 onto itself checks validity only; onto a bad or out-of-range number is EBADF.
    crate::check!(ok(table.dup2(0, 0))?.is_none());
    crate::check_eq!(table.dup2(5, 5).err(), Some(Errno::EBADF));
    crate::check_eq!(table.dup2(6, 0).err(), Some(Errno::EBADF));
    crate::check_eq!(table.dup2(0, 8).err(), Some(Errno::EBADF));
    crate::check_eq!(table.dup2(0, -1).err(), Some(Errno::EBADF));
    crate::check!(ok(table.dup2(0, 6))?.is_none());
    let replaced = ok(table.dup2(1, 6))?;
    crate::check!(
        replaced.is_some_and(|f| Arc::ptr_eq(&f, &file)),
        "returns what it closed"
    );
    crate::check!(Arc::ptr_eq(&ok(table.get(6))?, &other));
    // dup3: same number is EINVAL; O_CLOEXEC sets the descriptor flag.
    crate::check_eq!(table.dup3(0, 0, true).err(), Some(Errno::EINVAL));
    crate::check!(ok(table.dup3(0, 7, true))?.is_none());
    crate::check_eq!(ok(table.close_on_exec(7))?, true);
    ok(table.set_close_on_exec(2, true))?;
    crate::check_eq!(table.set_close_on_exec(5, true).err(), Some(Errno::EBADF));

    // The limit: EMFILE when full, EINVAL for F_DUPFD at or over it.
    crate::check_eq!(ok(table.insert(&file, false))?, 4);
    crate::check_eq!(ok(table.insert_from(5, &file, false))?, 5);
    crate::check_eq!(table.insert(&file, false).err(), Some(Errno::EMFILE));
    crate::check_eq!(table.dup(0).err(), Some(Errno::EMFILE));
    crate::check_eq!(
        table.insert_from(8, &file, false).err(),
        Some(Errno::EINVAL)
    );
    crate::check_eq!(
        table.insert_from(-1, &file, false).err(),
        Some(Errno::EINVAL)
    );
    crate::check_eq!(table.close(100).err(), Some(Errno::EBADF));
    crate::check_eq!(table.close(-1).err(), Some(Errno::EBADF));
    crate::check_eq!(table.get(-5).err(), Some(Errno::EBADF));

    // fork shares open files; exec closes the close-on-exec ones.
    let child = table.clone();
    crate::check!(Arc::ptr_eq(&ok(child.get(0))?, &ok(table.get(0))?));
    crate::check_eq!(table.count(), 8);
    let closed = table.close_for_exec();
    crate::check_eq!(closed.len(), 2);
    crate::check_eq!(table.get(2).err(), Some(Errno::EBADF));
    crate::check_eq!(table.get(7).err(), Some(Errno::EBADF));
    // the fork is unaffected
    crate::check_eq!(child.count(), 8);
    crate::check_eq!(table.close_range(3, 4, false).len(), 2);
    let _ = table.close_range(0, u32::MAX, true);
    crate::check!(table.iter().all(|(_, _, cloexec)| cloexec));
    crate::check_eq!(
        table
            .iter()
            .map(|(fd, _, _)| fd)
            .collect::<alloc::vec::Vec<_>>(),
        [0, 1, 5, 6]
    );
    // Lowering the limit (setrlimit) keeps descriptors above it open but unusable as targets.
    crate::check_eq!(table.limit(), 8);
    table.set_limit(2);
    crate::check_eq!(table.insert(&file, false).err(), Some(Errno::EMFILE));
    crate::check_eq!(table.dup2(0, 5).err(), Some(Errno::EBADF));
    crate::check!(table.get(5).is_ok());
});

crate::kernel_test!(offsets_seek_append_and_open_flags, {
    let ctx = private_root();
    ok(write_file(&ctx, "/f", b"0123456789"))?;
    let file = ok(open(&ctx, &root(), "/f", OpenFlags::RDWR))?;
    let mut buf = [0u8; 4];
    crate::check_eq!(ok(file.read(&mut buf))?, 4);
    crate::check_eq!(&buf, b"0123");
    crate::check_eq!(ok(file.seek(-2, Whence::Current))?, 2);
    crate::check_eq!(file.seek(-3, Whence::Set).err(), Some(Errno::EINVAL));
    crate::check_eq!(file.seek(-100, Whence::Current).err(), Some(Errno::EINVAL));
    // a failed lseek leaves the offset
    crate::check_eq!(file.offset(), 2);
    crate::check_eq!(ok(file.seek(0, Whence::End))?, 10);
    crate::check_eq!(ok(file.seek(5, Whence::End))?, 15);
    crate::check_eq!(ok(file.write(b"x"))?, 1);
    crate::check_eq!(file.metadata().size, 16);
    crate::check_eq!(ok(file.seek(3, Whence::Data))?, 3);
    crate::check_eq!(ok(file.seek(3, Whence::Hole))?, 16);
    crate::check_eq!(file.seek(16, Whence::Data).err(), Some(Errno::ENXIO));
    crate::check_eq!(Whence::from_raw(5).err(), Some(Errno::EINVAL));
    crate::check_eq!(file.seek(i64::MAX, Whence::End).err(), Some(Errno::EINVAL));

    // O_APPEND writes at the end whatever the offset (pwrite too, as on Linux).
    let append = ok(open(
        &ctx,
        &root(),
        "/f",
        OpenFlags::WRONLY | OpenFlags::APPEND,
    ))?;
    crate::check_eq!(ok(append.write(b"A"))?, 1);
    crate::check_eq!(append.offset(), 17);
    crate::check_eq!(ok(append.pwrite(b"B", 0))?, 1);
    let mut all = [0u8; 18];
    crate::check_eq!(ok(file.pread(&mut all, 0))?, 18);
    crate::check_eq!(&all[15..], b"xAB");
    crate::check_eq!(&all[..2], b"01");
    crate::check_eq!(append.read(&mut buf).err(), Some(Errno::EBADF));
    let read_only = ok(open(&ctx, &root(), "/f", OpenFlags::empty()))?;
    crate::check_eq!(read_only.write(b"x").err(), Some(Errno::EBADF));
    crate::check_eq!(read_only.pwrite(b"x", 0).err(), Some(Errno::EBADF));
    crate::check_eq!(read_only.truncate(0).err(), Some(Errno::EINVAL));
    crate::check_eq!(read_only.ioctl(0x5401, 0).err(), Some(Errno::ENOTTY));
    crate::check_eq!(ok(read_only.read_all())?.len(), 18);

    // F_SETFL changes only the status flags.
    file.set_status_flags(OpenFlags::NONBLOCK | OpenFlags::APPEND | OpenFlags::CREAT);
    let flags = file.flags();
    crate::check!(flags.contains(OpenFlags::NONBLOCK | OpenFlags::APPEND | OpenFlags::RDWR));
    crate::check!(!flags.contains(OpenFlags::CREAT));

    // Creation and directory flags.
    crate::check_eq!(
        open(&ctx, &root(), "/f", OpenFlags::CREAT | OpenFlags::EXCL).err(),
        Some(Errno::EEXIST)
    );
    crate::check_eq!(
        open(&ctx, &root(), "/g", OpenFlags::CREAT | OpenFlags::DIRECTORY).err(),
        Some(Errno::EINVAL)
    );
    crate::check_eq!(
        open(&ctx, &root(), "/f", OpenFlags::DIRECTORY).err(),
        Some(Errno::ENOTDIR)
    );
    ok(mkdir(&ctx, "/d", 0o755))?;
    crate::check_eq!(
        open(&ctx, &root(), "/d", OpenFlags::WRONLY).err(),
        Some(Errno::EISDIR)
    );
    crate::check_eq!(
        open(&ctx, &root(), "/d", OpenFlags::CREAT).err(),
        Some(Errno::EISDIR)
    );
    let dir = ok(open(&ctx, &root(), "/d", OpenFlags::empty()))?;
    crate::check_eq!(dir.read(&mut buf).err(), Some(Errno::EISDIR));
    let truncated = ok(open(
        &ctx,
        &root(),
        "/f",
        OpenFlags::WRONLY | OpenFlags::TRUNC,
    ))?;
    crate::check_eq!(truncated.metadata().size, 0);
    crate::check_eq!(
        open(&ctx, &root(), "/t", OpenFlags::TMPFILE).err(),
        Some(Errno::ENOTSUP)
    );

    // O_PATH and O_NOFOLLOW.
    ok(symlink(&ctx, "/f", "/link"))?;
    crate::check_eq!(
        open(&ctx, &root(), "/link", OpenFlags::NOFOLLOW).err(),
        Some(Errno::ELOOP)
    );
    let path = ok(open(
        &ctx,
        &root(),
        "/link",
        OpenFlags::PATH | OpenFlags::NOFOLLOW,
    ))?;
    crate::check!(path.is_path_only());
    crate::check_eq!(path.metadata().file_type, FileType::Symlink);
    crate::check_eq!(ok(path.readlink())?, "/f");
    crate::check_eq!(path.read(&mut buf).err(), Some(Errno::EBADF));
    crate::check_eq!(path.getdents64(&mut buf).err(), Some(Errno::EBADF));
    // Through a directory "descriptor".
    let file_in_d = vfs::open(
        &ctx,
        &root(),
        At::Dir(dir.location()),
        "new",
        OpenFlags::CREAT | OpenFlags::WRONLY,
        0o600,
    );
    crate::check!(file_in_d.is_ok());
    crate::check_eq!(ok(lstat(&ctx, "/d/new"))?.permissions, 0o600);
});
