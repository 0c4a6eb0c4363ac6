//! Path resolution: `.`/`..`, symlinks, trailing slashes, limits, mount crossing.

use alloc::string::String;

use super::{
    lstat, mkdir, names_in, ok, open, private_root, read_file, root, stat, symlink, user,
    write_file,
};
use crate::errno::Errno;
use crate::fs::file::OpenFlags;
use crate::fs::metadata::FileType;
use crate::fs::mount::{self, MountFlags};
use crate::fs::path::{At, Follow};
use crate::fs::tmpfs::Tmpfs;
use crate::fs::vfs;

crate::kernel_test!(dot_and_dotdot_never_escape_the_root, {
    let ctx = private_root();
    ok(mkdir(&ctx, "/a", 0o755))?;
    ok(mkdir(&ctx, "/a/b", 0o755))?;
    let top = ok(lstat(&ctx, "/"))?.ino;
    let a = ok(lstat(&ctx, "/a"))?.ino;
    let b = ok(lstat(&ctx, "/a/b"))?.ino;
    crate::check_eq!(ok(lstat(&ctx, "/a/b/.."))?.ino, a);
    crate::check_eq!(ok(lstat(&ctx, "/a/./b/../../a/b/."))?.ino, b);
    crate::check_eq!(ok(lstat(&ctx, "//a///b//"))?.ino, b);
    crate::check_eq!(ok(lstat(&ctx, "/.."))?.ino, top);
    crate::check_eq!(ok(lstat(&ctx, "/../../a/../.."))?.ino, top);

    // Relative to the working directory and to a directory "descriptor".
    let mut inside = ctx.clone();
    let target = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/a/b", Follow::Yes))?;
    ok(vfs::chdir(&mut inside, &root(), target))?;
    crate::check_eq!(ok(lstat(&inside, ".."))?.ino, a);
    crate::check_eq!(ok(lstat(&inside, "../../../.."))?.ino, top);
    crate::check_eq!(ok(vfs::getcwd(&inside))?, "/a/b");
    let dir_a = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/a", Follow::Yes))?;
    let via_dir = ok(vfs::resolve(
        &ctx,
        &root(),
        At::Dir(&dir_a),
        "b",
        Follow::Yes,
    ))?;
    crate::check_eq!(via_dir.metadata().ino, b);
    // An absolute path ignores the base directory.
    let absolute = ok(vfs::resolve(
        &ctx,
        &root(),
        At::Dir(&dir_a),
        "/",
        Follow::Yes,
    ))?;
    crate::check_eq!(absolute.metadata().ino, top);

    // After chroot("/a"), ".." of the new root is itself and getcwd is relative to it.
    ok(vfs::chroot(&mut inside, &root(), dir_a.clone()))?;
    crate::check_eq!(ok(lstat(&inside, "/../.."))?.ino, a);
    crate::check_eq!(ok(vfs::getcwd(&inside))?, "/b");
    crate::check_eq!(
        vfs::chroot(&mut inside, &user(1000), dir_a).err(),
        Some(Errno::EPERM)
    );
    // A removed working directory has no path.
    ok(vfs::rmdir(&ctx, &root(), At::Cwd, "/a/b"))?;
    crate::check_eq!(vfs::getcwd(&inside).err(), Some(Errno::ENOENT));
    crate::check_eq!(
        vfs::stat(&inside, &root(), At::Cwd, "x", Follow::No).err(),
        Some(Errno::ENOENT)
    );
});

crate::kernel_test!(symlink_loops_are_eloop_after_40_links, {
    let ctx = private_root();
    ok(symlink(&ctx, "/loop2", "/loop1"))?;
    ok(symlink(&ctx, "loop1", "/loop2"))?;
    ok(symlink(&ctx, "self", "/self"))?;
    crate::check_eq!(stat(&ctx, "/loop1").err(), Some(Errno::ELOOP));
    crate::check_eq!(stat(&ctx, "/self/x").err(), Some(Errno::ELOOP));
    crate::check_eq!(
        open(&ctx, &root(), "/loop1", OpenFlags::empty()).err(),
        Some(Errno::ELOOP)
    );
    crate::check_eq!(ok(lstat(&ctx, "/loop1"))?.file_type, FileType::Symlink);
    // A chain of exactly 40 links resolves; 41 do not.
    ok(write_file(&ctx, "/file", b"end"))?;
    ok(symlink(&ctx, "/file", "/l0"))?;
    for i in 1..=40 {
        ok(symlink(
            &ctx,
            &alloc::format!("l{}", i - 1),
            &alloc::format!("/l{i}"),
        ))?;
    }
    crate::check_eq!(ok(read_file(&ctx, "/l39"))?, b"end");
    crate::check_eq!(stat(&ctx, "/l40").err(), Some(Errno::ELOOP));
    // lstat of the 41st does not follow anything.
    crate::check!(lstat(&ctx, "/l40").is_ok());
});

crate::kernel_test!(dangling_symlinks_and_creating_through_them, {
    let ctx = private_root();
    ok(symlink(&ctx, "/nowhere/x", "/dangling"))?;
    crate::check_eq!(stat(&ctx, "/dangling").err(), Some(Errno::ENOENT));
    crate::check_eq!(ok(lstat(&ctx, "/dangling"))?.size, 10);
    crate::check_eq!(
        ok(vfs::readlink(&ctx, &root(), At::Cwd, "/dangling"))?,
        "/nowhere/x"
    );
    crate::check_eq!(
        vfs::readlink(&ctx, &root(), At::Cwd, "/").err(),
        Some(Errno::EINVAL)
    );
    // O_CREAT through a dangling link creates its target, relative to the link's directory.
    ok(mkdir(&ctx, "/dir", 0o755))?;
    ok(symlink(&ctx, "target", "/dir/link"))?;
    let created = open(
        &ctx,
        &root(),
        "/dir/link",
        OpenFlags::WRONLY | OpenFlags::CREAT,
    );
    crate::check!(created.is_ok());
    crate::check_eq!(ok(lstat(&ctx, "/dir/target"))?.file_type, FileType::Regular);
    crate::check_eq!(
        ok(stat(&ctx, "/dir/link"))?.ino,
        ok(lstat(&ctx, "/dir/target"))?.ino
    );
    // ... but not with O_EXCL (the link itself exists), nor when its directory is missing.
    crate::check_eq!(
        open(
            &ctx,
            &root(),
            "/dir/link",
            OpenFlags::CREAT | OpenFlags::EXCL
        )
        .err(),
        Some(Errno::EEXIST)
    );
    crate::check_eq!(
        open(&ctx, &root(), "/dangling", OpenFlags::CREAT).err(),
        Some(Errno::ENOENT)
    );
    crate::check_eq!(
        open(
            &ctx,
            &root(),
            "/dir/link",
            OpenFlags::CREAT | OpenFlags::NOFOLLOW
        )
        .err(),
        Some(Errno::ELOOP)
    );
    ok(symlink(&ctx, "../dir/target", "/dir/up"))?;
    crate::check_eq!(
        ok(stat(&ctx, "/dir/up"))?.ino,
        ok(lstat(&ctx, "/dir/target"))?.ino
    );
    crate::check_eq!(symlink(&ctx, "", "/empty").err(), Some(Errno::ENOENT));
});

crate::kernel_test!(trailing_slashes_demand_directories, {
    let ctx = private_root();
    ok(write_file(&ctx, "/file", b"x"))?;
    ok(mkdir(&ctx, "/dir", 0o755))?;
    crate::check_eq!(stat(&ctx, "/file/").err(), Some(Errno::ENOTDIR));
    crate::check_eq!(lstat(&ctx, "/file/").err(), Some(Errno::ENOTDIR));
    crate::check_eq!(stat(&ctx, "/file/.").err(), Some(Errno::ENOTDIR));
    crate::check_eq!(
        open(&ctx, &root(), "/file/", OpenFlags::empty()).err(),
        Some(Errno::ENOTDIR)
    );
    crate::check!(stat(&ctx, "/dir/").is_ok());
    crate::check!(open(&ctx, &root(), "/dir/", OpenFlags::empty()).is_ok());
    ok(mkdir(&ctx, "/new/", 0o755))?;
    crate::check_eq!(
        open(
            &ctx,
            &root(),
            "/new2/",
            OpenFlags::WRONLY | OpenFlags::CREAT
        )
        .err(),
        Some(Errno::EISDIR)
    );
    crate::check_eq!(
        open(&ctx, &root(), "/file/", OpenFlags::CREAT).err(),
        Some(Errno::EISDIR)
    );
    crate::check_eq!(
        vfs::unlink(&ctx, &root(), At::Cwd, "/file/").err(),
        Some(Errno::ENOTDIR)
    );
    crate::check_eq!(
        vfs::unlink(&ctx, &root(), At::Cwd, "/dir/").err(),
        Some(Errno::EISDIR)
    );
    ok(vfs::rmdir(&ctx, &root(), At::Cwd, "/new/"))?;
    // A trailing slash makes even lstat follow a final symlink.
    ok(symlink(&ctx, "/dir", "/ldir"))?;
    ok(symlink(&ctx, "/file", "/lfile"))?;
    crate::check_eq!(ok(lstat(&ctx, "/ldir/"))?.file_type, FileType::Directory);
    crate::check_eq!(ok(lstat(&ctx, "/ldir"))?.file_type, FileType::Symlink);
    crate::check_eq!(lstat(&ctx, "/lfile/").err(), Some(Errno::ENOTDIR));
    // A symlink whose target ends in "/" must lead to a directory.
    ok(symlink(&ctx, "/file/", "/lslash"))?;
    crate::check_eq!(stat(&ctx, "/lslash").err(), Some(Errno::ENOTDIR));
    // Non-directories cannot be created with a trailing slash.
    crate::check_eq!(symlink(&ctx, "x", "/newlink/").err(), Some(Errno::ENOENT));
    crate::check_eq!(
        vfs::mknod(
            &ctx,
            &root(),
            At::Cwd,
            "/fifo/",
            0o010644,
            Default::default()
        )
        .err(),
        Some(Errno::ENOENT)
    );
    crate::check_eq!(symlink(&ctx, "x", "/file/").err(), Some(Errno::EEXIST));
    crate::check_eq!(
        vfs::rename(
            &ctx,
            &root(),
            At::Cwd,
            "/file",
            At::Cwd,
            "/file2/",
            Default::default()
        )
        .err(),
        Some(Errno::ENOTDIR)
    );
    ok(vfs::rename(
        &ctx,
        &root(),
        At::Cwd,
        "/dir/",
        At::Cwd,
        "/dir3/",
        Default::default(),
    ))?;
});

crate::kernel_test!(name_and_path_length_limits, {
    let ctx = private_root();
    let longest = "n".repeat(255);
    ok(write_file(&ctx, &alloc::format!("/{longest}"), b""))?;
    crate::check!(stat(&ctx, &alloc::format!("/{longest}")).is_ok());
    let too_long = alloc::format!("/{longest}n");
    crate::check_eq!(stat(&ctx, &too_long).err(), Some(Errno::ENAMETOOLONG));
    crate::check_eq!(
        open(&ctx, &root(), &too_long, OpenFlags::CREAT).err(),
        Some(Errno::ENAMETOOLONG)
    );
    crate::check_eq!(
        mkdir(&ctx, &too_long, 0o755).err(),
        Some(Errno::ENAMETOOLONG)
    );
    // 4095 bytes still resolve (PATH_MAX counts the NUL); 4096 do not.
    let mut path = String::from("/");
    while path.len() < 4095 {
        path.push_str(if 4095 - path.len() >= 2 { "./" } else { "." });
    }
    crate::check_eq!(path.len(), 4095);
    crate::check!(stat(&ctx, &path).is_ok());
    path.push('.');
    crate::check_eq!(stat(&ctx, &path).err(), Some(Errno::ENAMETOOLONG));
    crate::check_eq!(stat(&ctx, "").err(), Some(Errno::ENOENT));
    crate::check_eq!(
        symlink(&ctx, &"t".repeat(4096), "/long").err(),
        Some(Errno::ENAMETOOLONG)
    );
});

crate::kernel_test!(missing_and_non_directory_components, {
    let ctx = private_root();
    ok(write_file(&ctx, "/file", b"x"))?;
    crate::check_eq!(stat(&ctx, "/file/x").err(), Some(Errno::ENOTDIR));
    crate::check_eq!(stat(&ctx, "/missing/x").err(), Some(Errno::ENOENT));
    crate::check_eq!(stat(&ctx, "/missing").err(), Some(Errno::ENOENT));
    crate::check_eq!(mkdir(&ctx, "/missing/x", 0o755).err(), Some(Errno::ENOENT));
    crate::check_eq!(mkdir(&ctx, "/file/x", 0o755).err(), Some(Errno::ENOTDIR));
    crate::check_eq!(
        open(&ctx, &root(), "/file/x", OpenFlags::CREAT).err(),
        Some(Errno::ENOTDIR)
    );
    crate::check_eq!(mkdir(&ctx, "/", 0o755).err(), Some(Errno::EEXIST));
    crate::check_eq!(mkdir(&ctx, "/file/..", 0o755).err(), Some(Errno::ENOTDIR));
    crate::check_eq!(mkdir(&ctx, "/.", 0o755).err(), Some(Errno::EEXIST));
    crate::check_eq!(
        vfs::rmdir(&ctx, &root(), At::Cwd, "/").err(),
        Some(Errno::EBUSY)
    );
    crate::check_eq!(
        vfs::rmdir(&ctx, &root(), At::Cwd, ".").err(),
        Some(Errno::EINVAL)
    );
    crate::check_eq!(
        vfs::rmdir(&ctx, &root(), At::Cwd, "..").err(),
        Some(Errno::ENOTEMPTY)
    );
    crate::check_eq!(
        vfs::unlink(&ctx, &root(), At::Cwd, ".").err(),
        Some(Errno::EISDIR)
    );
});

crate::kernel_test!(mount_points_are_crossed_both_ways, {
    let ctx = private_root();
    ok(mkdir(&ctx, "/mnt", 0o755))?;
    ok(write_file(&ctx, "/mnt/underneath", b"u"))?;
    let top = ok(lstat(&ctx, "/"))?;
    let mountpoint = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/mnt", Follow::Yes))?;
    crate::check_eq!(
        vfs::mount(
            &user(1),
            &mountpoint,
            Tmpfs::new(),
            "tmpfs",
            MountFlags::empty()
        )
        .err(),
        Some(Errno::EPERM)
    );
    crate::check_eq!(vfs::new_filesystem("ext4", "").err(), Some(Errno::ENODEV));
    let fs = ok(vfs::new_filesystem("tmpfs", ""))?;
    let device = fs.device();
    ok(vfs::mount(
        &root(),
        &mountpoint,
        fs,
        "tmpfs",
        MountFlags::empty(),
    ))?;
    let mounted = ok(stat(&ctx, "/mnt"))?;
    crate::check_eq!(mounted.dev, device);
    crate::check!(mounted.dev != top.dev, "/mnt is the new file system's root");
    crate::check_eq!(mounted.permissions, 0o1777);
    crate::check_eq!(ok(names_in(&ctx, "/mnt"))?, [".", ".."]);
    ok(write_file(&ctx, "/mnt/new", b"n"))?;
    crate::check_eq!(ok(stat(&ctx, "/mnt/new"))?.dev, mounted.dev);
    let up = ok(stat(&ctx, "/mnt/.."))?;
    crate::check_eq!((up.dev, up.ino), (top.dev, top.ino));
    crate::check_eq!(ok(stat(&ctx, "/mnt/../mnt/new"))?.dev, mounted.dev);

    let mut text = String::new();
    crate::check!(mount::write_mounts(&ctx.root, &mut text).is_ok());
    crate::check_eq!(text, "tmpfs /mnt tmpfs rw 0 0\n");

    crate::check_eq!(
        vfs::rename(
            &ctx,
            &root(),
            At::Cwd,
            "/mnt/new",
            At::Cwd,
            "/new",
            Default::default()
        )
        .err(),
        Some(Errno::EXDEV)
    );
    crate::check_eq!(
        vfs::link(
            &ctx,
            &root(),
            At::Cwd,
            "/mnt/new",
            At::Cwd,
            "/new",
            Follow::No
        )
        .err(),
        Some(Errno::EXDEV)
    );
    crate::check_eq!(
        vfs::rmdir(&ctx, &root(), At::Cwd, "/mnt").err(),
        Some(Errno::EBUSY)
    );

    // In use (a working directory inside): EBUSY until it leaves.
    let mut inside = ctx.clone();
    let mnt_root = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/mnt", Follow::Yes))?;
    ok(vfs::chdir(&mut inside, &root(), mnt_root.clone()))?;
    crate::check_eq!(ok(vfs::getcwd(&inside))?, "/mnt");
    crate::check_eq!(ok(lstat(&inside, ".."))?.ino, top.ino);
    crate::check_eq!(
        vfs::umount(&root(), mnt_root.clone(), false).err(),
        Some(Errno::EBUSY)
    );
    drop(inside);
    let not_root = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/", Follow::Yes))?;
    crate::check_eq!(
        vfs::umount(&root(), not_root, false).err(),
        Some(Errno::EINVAL)
    );
    ok(vfs::umount(&root(), mnt_root, false))?;
    crate::check_eq!(ok(read_file(&ctx, "/mnt/underneath"))?, b"u");
    let mut text = String::new();
    crate::check!(mount::write_mounts(&ctx.root, &mut text).is_ok());
    crate::check_eq!(text, "");

    // Read-only, and a lazy unmount while a file is open.
    ok(vfs::mount(
        &root(),
        &mountpoint,
        Tmpfs::new(),
        "scratch",
        MountFlags::RDONLY | MountFlags::NOEXEC,
    ))?;
    let mut text = String::new();
    crate::check!(mount::write_mounts(&ctx.root, &mut text).is_ok());
    crate::check_eq!(text, "scratch /mnt tmpfs ro,noexec 0 0\n");
    crate::check_eq!(write_file(&ctx, "/mnt/x", b"").err(), Some(Errno::EROFS));
    crate::check_eq!(mkdir(&ctx, "/mnt/d", 0o755).err(), Some(Errno::EROFS));
    let open_dir = ok(open(&ctx, &root(), "/mnt", OpenFlags::DIRECTORY))?;
    let mnt_root = open_dir.location().clone();
    crate::check_eq!(
        vfs::umount(&root(), mnt_root.clone(), false).err(),
        Some(Errno::EBUSY)
    );
    ok(vfs::umount(&root(), mnt_root, true))?;
    crate::check_eq!(
        ok(open_dir.getdents64(&mut [0u8; 256])).map(|n| n > 0)?,
        true
    );
    crate::check_eq!(ok(read_file(&ctx, "/mnt/underneath"))?, b"u");
});
