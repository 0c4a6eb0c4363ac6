//! tmpfs operations through the VFS: rename variants, hard links and link counts, unlinked
//! open files, sparse files, readdir offsets, running out of space.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::{
    decode_dirents, lstat, mkdir, names_in, ok, open, private_root, read_file, root, write_file,
};
use crate::errno::Errno;
use crate::fs::file::{OpenFlags, Whence};
use crate::fs::inode::RenameFlags;
use crate::fs::mount::{Mount, MountFlags};
use crate::fs::path::{At, Follow, FsContext};
use crate::fs::tmpfs::Tmpfs;
use crate::fs::vfs;

fn rename(ctx: &FsContext, from: &str, to: &str, flags: RenameFlags) -> Option<Errno> {
    vfs::rename(ctx, &root(), At::Cwd, from, At::Cwd, to, flags).err()
}

crate::kernel_test!(rename_replaces_moves_and_exchanges, {
    let ctx = private_root();
    ok(write_file(&ctx, "/a", b"A"))?;
    ok(write_file(&ctx, "/b", b"B"))?;
    let a_ino = ok(lstat(&ctx, "/a"))?.ino;
    // Replacing a file.
    crate::check_eq!(rename(&ctx, "/a", "/b", RenameFlags::empty()), None);
    crate::check_eq!(lstat(&ctx, "/a").err(), Some(Errno::ENOENT));
    crate::check_eq!(ok(lstat(&ctx, "/b"))?.ino, a_ino);
    crate::check_eq!(ok(read_file(&ctx, "/b"))?, b"A");
    // NOREPLACE and EXCHANGE.
    ok(write_file(&ctx, "/c", b"C"))?;
    crate::check_eq!(
        rename(&ctx, "/b", "/c", RenameFlags::NOREPLACE),
        Some(Errno::EEXIST)
    );
    crate::check_eq!(
        rename(&ctx, "/b", "/new", RenameFlags::EXCHANGE),
        Some(Errno::ENOENT)
    );
    crate::check_eq!(
        rename(
            &ctx,
            "/b",
            "/c",
            RenameFlags::EXCHANGE | RenameFlags::NOREPLACE
        ),
        Some(Errno::EINVAL)
    );
    crate::check_eq!(rename(&ctx, "/b", "/c", RenameFlags::EXCHANGE), None);
    crate::check_eq!(ok(read_file(&ctx, "/b"))?, b"C");
    crate::check_eq!(ok(read_file(&ctx, "/c"))?, b"A");

    // Directories: onto an empty directory yes, a non-empty one no; type mismatches.
    ok(mkdir(&ctx, "/d1", 0o755))?;
    ok(mkdir(&ctx, "/d2", 0o755))?;
    ok(write_file(&ctx, "/d1/inside", b"i"))?;
    crate::check_eq!(
        rename(&ctx, "/d2", "/d1", RenameFlags::empty()),
        Some(Errno::ENOTEMPTY)
    );
    crate::check_eq!(
        rename(&ctx, "/d1", "/b", RenameFlags::empty()),
        Some(Errno::ENOTDIR)
    );
    crate::check_eq!(
        rename(&ctx, "/b", "/d2", RenameFlags::empty()),
        Some(Errno::EISDIR)
    );
    let root_links = ok(lstat(&ctx, "/"))?.nlink;
    crate::check_eq!(rename(&ctx, "/d1", "/d2", RenameFlags::empty()), None);
    crate::check_eq!(ok(read_file(&ctx, "/d2/inside"))?, b"i");
    crate::check_eq!(ok(lstat(&ctx, "/"))?.nlink, root_links - 1);

    // A directory cannot move into its own subtree; the reverse (a target that is an
    // ancestor of the source) is ENOTEMPTY.
    ok(mkdir(&ctx, "/d2/sub", 0o755))?;
    crate::check_eq!(
        rename(&ctx, "/d2", "/d2/sub/x", RenameFlags::empty()),
        Some(Errno::EINVAL)
    );
    crate::check_eq!(
        rename(&ctx, "/d2", "/d2/x", RenameFlags::empty()),
        Some(Errno::EINVAL)
    );
    crate::check_eq!(
        rename(&ctx, "/d2/sub", "/d2", RenameFlags::empty()),
        Some(Errno::ENOTEMPTY)
    );
    crate::check_eq!(
        rename(&ctx, "/d2/.", "/x", RenameFlags::empty()),
        Some(Errno::EBUSY)
    );
    crate::check_eq!(
        rename(&ctx, "/b", "/d2/..", RenameFlags::empty()),
        Some(Errno::EBUSY)
    );
    crate::check_eq!(
        rename(&ctx, "/b", "/", RenameFlags::NOREPLACE),
        Some(Errno::EEXIST)
    );
    crate::check_eq!(
        rename(&ctx, "/missing", "/x", RenameFlags::empty()),
        Some(Errno::ENOENT)
    );

    // Moving a directory between parents updates both link counts and its "..".
    ok(mkdir(&ctx, "/p", 0o755))?;
    let (p_before, d2_before) = (ok(lstat(&ctx, "/p"))?.nlink, ok(lstat(&ctx, "/d2"))?.nlink);
    crate::check_eq!(
        rename(&ctx, "/d2/sub", "/p/sub", RenameFlags::empty()),
        None
    );
    crate::check_eq!(ok(lstat(&ctx, "/p"))?.nlink, p_before + 1);
    crate::check_eq!(ok(lstat(&ctx, "/d2"))?.nlink, d2_before - 1);
    crate::check_eq!(
        ok(lstat(&ctx, "/p/sub/.."))?.ino,
        ok(lstat(&ctx, "/p"))?.ino
    );

    // Exchanging a directory and a file across directories.
    crate::check_eq!(rename(&ctx, "/p/sub", "/b", RenameFlags::EXCHANGE), None);
    crate::check!(ok(lstat(&ctx, "/b"))?.is_dir());
    crate::check_eq!(ok(read_file(&ctx, "/p/sub"))?, b"C");
    crate::check_eq!(ok(lstat(&ctx, "/p"))?.nlink, p_before);
    crate::check_eq!(ok(lstat(&ctx, "/b/.."))?.ino, ok(lstat(&ctx, "/"))?.ino);

    // Renaming a file onto another name for itself does nothing.
    ok(vfs::link(
        &ctx,
        &root(),
        At::Cwd,
        "/c",
        At::Cwd,
        "/c2",
        Follow::No,
    ))?;
    crate::check_eq!(rename(&ctx, "/c", "/c2", RenameFlags::empty()), None);
    crate::check!(lstat(&ctx, "/c").is_ok() && lstat(&ctx, "/c2").is_ok());
    crate::check_eq!(ok(lstat(&ctx, "/c"))?.nlink, 2);
    crate::check_eq!(
        rename(
            &ctx,
            "/c",
            "/c3",
            RenameFlags::WHITEOUT | RenameFlags::EXCHANGE
        ),
        Some(Errno::EINVAL)
    );
});

crate::kernel_test!(hard_links_share_data_and_count_links, {
    let ctx = private_root();
    ok(write_file(&ctx, "/f", b"one"))?;
    ok(vfs::link(
        &ctx,
        &root(),
        At::Cwd,
        "/f",
        At::Cwd,
        "/g",
        Follow::No,
    ))?;
    crate::check_eq!(ok(lstat(&ctx, "/f"))?.nlink, 2);
    crate::check_eq!(ok(lstat(&ctx, "/f"))?.ino, ok(lstat(&ctx, "/g"))?.ino);
    ok(write_file(&ctx, "/g", b"two"))?;
    crate::check_eq!(ok(read_file(&ctx, "/f"))?, b"two");
    crate::check_eq!(
        vfs::link(&ctx, &root(), At::Cwd, "/f", At::Cwd, "/g", Follow::No).err(),
        Some(Errno::EEXIST)
    );
    ok(vfs::unlink(&ctx, &root(), At::Cwd, "/f"))?;
    crate::check_eq!(ok(lstat(&ctx, "/g"))?.nlink, 1);
    crate::check_eq!(ok(read_file(&ctx, "/g"))?, b"two");
    // Directories cannot be hard-linked; their link count is 2 + subdirectories.
    ok(mkdir(&ctx, "/d", 0o755))?;
    crate::check_eq!(
        vfs::link(&ctx, &root(), At::Cwd, "/d", At::Cwd, "/e", Follow::No).err(),
        Some(Errno::EPERM)
    );
    crate::check_eq!(ok(lstat(&ctx, "/d"))?.nlink, 2);
    ok(mkdir(&ctx, "/d/x", 0o755))?;
    ok(mkdir(&ctx, "/d/y", 0o755))?;
    ok(write_file(&ctx, "/d/file", b""))?;
    crate::check_eq!(ok(lstat(&ctx, "/d"))?.nlink, 4);
    ok(vfs::rmdir(&ctx, &root(), At::Cwd, "/d/x"))?;
    crate::check_eq!(ok(lstat(&ctx, "/d"))?.nlink, 3);
    crate::check_eq!(
        vfs::rmdir(&ctx, &root(), At::Cwd, "/d").err(),
        Some(Errno::ENOTEMPTY)
    );
    crate::check_eq!(
        vfs::rmdir(&ctx, &root(), At::Cwd, "/d/file").err(),
        Some(Errno::ENOTDIR)
    );
    // Linking a symlink itself (no AT_SYMLINK_FOLLOW) versus its target.
    ok(super::symlink(&ctx, "/g", "/sym"))?;
    ok(vfs::link(
        &ctx,
        &root(),
        At::Cwd,
        "/sym",
        At::Cwd,
        "/sym2",
        Follow::No,
    ))?;
    crate::check_eq!(ok(lstat(&ctx, "/sym2"))?.ino, ok(lstat(&ctx, "/sym"))?.ino);
    ok(vfs::link(
        &ctx,
        &root(),
        At::Cwd,
        "/sym",
        At::Cwd,
        "/g2",
        Follow::Yes,
    ))?;
    crate::check_eq!(ok(lstat(&ctx, "/g"))?.nlink, 2);
});

crate::kernel_test!(unlinked_open_file_stays_readable, {
    let ctx = private_root();
    ok(write_file(&ctx, "/doomed", b"still here"))?;
    let file = ok(open(&ctx, &root(), "/doomed", OpenFlags::RDWR))?;
    ok(vfs::unlink(&ctx, &root(), At::Cwd, "/doomed"))?;
    crate::check_eq!(lstat(&ctx, "/doomed").err(), Some(Errno::ENOENT));
    crate::check_eq!(file.metadata().nlink, 0);
    let mut buf = [0u8; 32];
    crate::check_eq!(ok(file.read(&mut buf))?, 10);
    crate::check_eq!(&buf[..10], b"still here");
    crate::check_eq!(ok(file.write(b"!"))?, 1);
    crate::check_eq!(ok(file.pread(&mut buf, 0))?, 11);
    crate::check_eq!(file.metadata().size, 11);
    // An unlinked file cannot be given a name again.
    crate::check_eq!(
        vfs::link_location(&ctx, &root(), file.location(), At::Cwd, "/again").err(),
        Some(Errno::ENOENT)
    );
});

crate::kernel_test!(sparse_writes_zero_fill_and_truncate, {
    let ctx = private_root();
    let file = ok(open(
        &ctx,
        &root(),
        "/sparse",
        OpenFlags::RDWR | OpenFlags::CREAT,
    ))?;
    crate::check_eq!(ok(file.pwrite(b"end", 100_000))?, 3);
    let meta = file.metadata();
    crate::check_eq!(meta.size, 100_003);
    // one 4 KiB page allocated
    crate::check_eq!(meta.blocks, 8);
    let mut buf = alloc::vec![0xffu8; 100_003];
    crate::check_eq!(ok(file.pread(&mut buf, 0))?, 100_003);
    crate::check!(
        buf[..100_000].iter().all(|&b| b == 0),
        "the hole reads as zeros"
    );
    crate::check_eq!(&buf[100_000..], b"end");
    // Writing past the end of a written page fills the gap with zeros too.
    ok(file.pwrite(b"abc", 0))?;
    ok(file.pwrite(b"xyz", 10))?;
    let mut head = [0xffu8; 13];
    ok(file.pread(&mut head, 0))?;
    crate::check_eq!(&head, b"abc\0\0\0\0\0\0\0xyz");
    // Truncating down drops data; growing again reads zeros, not the old bytes.
    ok(file.truncate(5))?;
    crate::check_eq!(file.metadata().size, 5);
    crate::check_eq!(file.metadata().blocks, 8);
    ok(file.truncate(20))?;
    let mut grown = [0xffu8; 20];
    crate::check_eq!(ok(file.pread(&mut grown, 0))?, 20);
    crate::check_eq!(&grown[..5], b"abc\0\0");
    crate::check!(grown[5..].iter().all(|&b| b == 0));
    ok(file.truncate(0))?;
    crate::check_eq!(file.metadata().blocks, 0);
    // Offsets near the limit.
    crate::check_eq!(file.pwrite(b"x", i64::MAX as u64).err(), Some(Errno::EFBIG));
    crate::check_eq!(file.pwrite(b"x", u64::MAX).err(), Some(Errno::EINVAL));
    crate::check_eq!(file.truncate(-1).err(), Some(Errno::EINVAL));
    // Large sizes cost nothing until written.
    ok(file.truncate(1 << 40))?;
    crate::check_eq!(file.metadata().blocks, 0);
    let mut tail = [0xffu8; 4];
    crate::check_eq!(ok(file.pread(&mut tail, (1 << 40) - 2))?, 2);
    crate::check_eq!(tail, [0, 0, 0xff, 0xff]);
});

crate::kernel_test!(getdents64_in_small_buffers_sees_each_entry_once, {
    let ctx = private_root();
    ok(mkdir(&ctx, "/dir", 0o755))?;
    let mut expected: Vec<String> = (0..60)
        .map(|i| alloc::format!("entry-{i}-{}", "x".repeat(i % 17)))
        .collect();
    for name in &expected {
        ok(write_file(&ctx, &alloc::format!("/dir/{name}"), b""))?;
    }
    ok(mkdir(&ctx, "/dir/subdir", 0o755))?;
    expected.push(String::from("subdir"));
    let dir = ok(open(&ctx, &root(), "/dir", OpenFlags::DIRECTORY))?;
    // Too small for even one record.
    crate::check_eq!(dir.getdents64(&mut [0u8; 20]).err(), Some(Errno::EINVAL));
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    let mut calls = 0;
    let mut buf = [0u8; 64];
    loop {
        let length = ok(dir.getdents64(&mut buf))?;
        if length == 0 {
            break;
        }
        calls += 1;
        for entry in decode_dirents(&buf[..length]) {
            *seen.entry(entry.name.clone()).or_default() += 1;
            kinds.insert(entry.name, entry.kind);
        }
        // Changing the directory between calls must not repeat or lose entries that stay.
        if calls == 3 {
            ok(write_file(&ctx, "/dir/late", b""))?;
            ok(vfs::unlink(&ctx, &root(), At::Cwd, "/dir/late"))?;
        }
    }
    crate::check!(calls > 10, "the 64-byte buffer forced many calls");
    crate::check!(seen.values().all(|&count| count == 1), "no entry twice");
    expected.push(String::from("."));
    expected.push(String::from(".."));
    expected.sort();
    let names: Vec<String> = seen.keys().cloned().collect();
    crate::check_eq!(names, expected);
    crate::check_eq!(kinds["."], 4);
    crate::check_eq!(kinds["subdir"], 4);
    crate::check_eq!(kinds["entry-0-"], 8);
    // Rewinding starts over; seeking to a returned d_off resumes there.
    crate::check_eq!(ok(dir.seek(0, Whence::Set))?, 0);
    let length = ok(dir.getdents64(&mut [0u8; 4096]))?;
    let mut big = alloc::vec![0u8; 4096];
    ok(dir.seek(0, Whence::Set))?;
    crate::check_eq!(ok(dir.getdents64(&mut big))?, length);
    let entries = decode_dirents(&big[..length]);
    let resume = entries[5].next_offset;
    ok(dir.seek(resume as i64, Whence::Set))?;
    let again = ok(dir.getdents64(&mut [0u8; 64]))?;
    crate::check!(again > 0);
    crate::check_eq!(dir.seek(0, Whence::End).err(), Some(Errno::EINVAL));
    crate::check_eq!(ok(names_in(&ctx, "/dir/subdir"))?, [".", ".."]);
    // getdents on a regular file.
    let file = ok(open(&ctx, &root(), "/dir/entry-1-x", OpenFlags::empty()))?;
    crate::check_eq!(file.getdents64(&mut big).err(), Some(Errno::ENOTDIR));
});

crate::kernel_test!(a_full_tmpfs_is_enospc, {
    let fs = Tmpfs::with_options(0o755, 4);
    let ctx =
        FsContext::new(Mount::new_root(fs.clone(), "tiny", MountFlags::empty()).root_location());
    let file = ok(open(
        &ctx,
        &root(),
        "/big",
        OpenFlags::WRONLY | OpenFlags::CREAT,
    ))?;
    let chunk = [7u8; 4096];
    for _ in 0..4 {
        crate::check_eq!(ok(file.write(&chunk))?, 4096);
    }
    crate::check_eq!(file.write(&chunk).err(), Some(Errno::ENOSPC));
    crate::check_eq!(fs.pages_used(), 4);
    // A write that straddles the limit is short, not failed.
    ok(file.truncate(4096 * 3 + 100))?;
    crate::check_eq!(fs.pages_used(), 4);
    ok(file.truncate(4096 * 3))?;
    crate::check_eq!(fs.pages_used(), 3);
    ok(file.seek(4096 * 3 - 10, Whence::Set))?;
    crate::check_eq!(ok(file.write(&chunk))?, 4096);
    crate::check_eq!(ok(file.write(&chunk))?, 10);
    // Deleting the file gives the space back once the last reference goes.
    ok(vfs::unlink(&ctx, &root(), At::Cwd, "/big"))?;
    crate::check_eq!(fs.pages_used(), 4);
    drop(file);
    crate::check_eq!(fs.pages_used(), 0);
});

crate::kernel_test!(a_very_deep_tree_is_freed_without_recursion, {
    let fs = Tmpfs::with_options(0o755, 16);
    let ctx = FsContext::new(Mount::new_root(fs, "deep", MountFlags::empty()).root_location());
    // Far deeper than any path can name (4096 bytes), built one level at a time.
    let mut dir = ctx.root.clone();
    for _ in 0..5000 {
        ok(vfs::mkdir(&ctx, &root(), At::Dir(&dir), "d", 0o755))?;
        dir = ok(vfs::resolve(&ctx, &root(), At::Dir(&dir), "d", Follow::No))?;
    }
    ok(super::write_file(&ctx, "/d/d/d/f", b"x"))?;
    let mut deep_ctx = ctx.clone();
    ok(vfs::chdir(&mut deep_ctx, &root(), dir))?;
    crate::check_eq!(vfs::getcwd(&deep_ctx).err(), Some(Errno::ENAMETOOLONG));
    drop(deep_ctx);
    // The last reference: the whole tree goes here, on this stack.
    drop(ctx);
});
