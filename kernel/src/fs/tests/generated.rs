//! procfs, debugfs and the `pseudo` building blocks, mounted in a private tree: what a reader
//! sees through the VFS (listing, lookup, `..`, snapshots), mount options, and the lexical
//! paths `/proc/<pid>/fd` shows.

use alloc::string::String;

use super::{mkdir, names_in, ok, open, private_root, read_file, root, write_file};
use crate::errno::Errno;
use crate::fs::file::OpenFlags;
use crate::fs::mount::MountFlags;
use crate::fs::path::{At, Follow, lexical_join, path_of};
use crate::fs::vfs;

crate::kernel_test!(procfs_and_debugfs_mount_and_list_like_linux, {
    let ctx = private_root();
    ok(mkdir(&ctx, "/proc", 0o755))?;
    ok(mkdir(&ctx, "/debug", 0o700))?;
    let resolve = |path: &str| vfs::resolve(&ctx, &root(), At::Cwd, path, Follow::Yes);
    for (path, kind) in [("/proc", "proc"), ("/debug", "debugfs")] {
        let fs = ok(vfs::new_filesystem(kind, ""))?;
        ok(vfs::mount(
            &root(),
            &ok(resolve(path))?,
            fs,
            kind,
            MountFlags::empty(),
        ))?;
    }
    let names = ok(names_in(&ctx, "/proc"))?;
    for name in [
        "self",
        "meminfo",
        "uptime",
        "mounts",
        "sysrq-trigger",
        "cpuinfo",
    ] {
        crate::check!(names.iter().any(|n| n == name), "/proc lists {name}");
    }
    // Generated directories know their place: `..` and the path back from inside.
    crate::check_eq!(ok(path_of(&ok(resolve("/proc"))?, &ctx.root))?, "/proc");
    let meminfo = ok(read_file(&ctx, "/proc/meminfo"))?;
    crate::check!(meminfo.starts_with(b"MemTotal:"), "meminfo's first field");
    // Reads served from one snapshot: a text read in tiny pieces is whole.
    let file = ok(open(&ctx, &root(), "/proc/cpuinfo", OpenFlags::empty()))?;
    let mut text = alloc::vec::Vec::new();
    let mut piece = [0u8; 7];
    loop {
        match ok(file.read(&mut piece))? {
            0 => break,
            n => text.extend_from_slice(&piece[..n]),
        }
    }
    crate::check!(text.starts_with(b"processor\t: 0\n") && text.ends_with(b"\n\n"));
    // Not a process here (self-tests run in no task): no pid directories, no `self` target.
    crate::check_eq!(resolve("/proc/self").err(), Some(Errno::ESRCH));
    crate::check_eq!(resolve("/proc/1").err(), Some(Errno::ENOENT));
    crate::check_eq!(resolve("/proc/01").err(), Some(Errno::ENOENT));
    // Writes: `O_TRUNC` is accepted, a file without a handler refuses (`EIO`), attributes
    // cannot change.
    crate::check_eq!(
        write_file(&ctx, "/proc/uptime", b"1").err(),
        Some(Errno::EIO)
    );
    crate::check_eq!(
        vfs::mkdir(&ctx, &root(), At::Cwd, "/proc/x", 0o755).err(),
        Some(Errno::ENOTDIR)
    );
    crate::check_eq!(
        ok(names_in(&ctx, "/debug"))?,
        [
            ".",
            "..",
            "fail_page_alloc",
            "failslab",
            "kmemleak",
            "kmemleak_since_mark"
        ]
    );
    crate::check_eq!(
        write_file(&ctx, "/debug/kmemleak", b"frobnicate").err(),
        Some(Errno::EINVAL)
    );
    crate::check_eq!(vfs::new_filesystem("sysfs", "").err(), Some(Errno::ENODEV));
    drop(file);
    // Mounts are global: leave none behind.
    for path in ["/proc", "/debug"] {
        ok(vfs::umount(&root(), ok(resolve(path))?, false))?;
    }
});

crate::kernel_test!(tmpfs_mount_options_like_linux, {
    let fs = ok(vfs::new_filesystem("tmpfs", "size=8k,mode=0700,uid=0"))?;
    crate::check_eq!(fs.root().metadata().permissions, 0o700);
    let ctx = private_root();
    ok(mkdir(&ctx, "/small", 0o755))?;
    let at = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/small", Follow::Yes))?;
    ok(vfs::mount(&root(), &at, fs, "tmpfs", MountFlags::empty()))?;
    ok(write_file(&ctx, "/small/a", &[1; 8192]))?;
    crate::check_eq!(
        write_file(&ctx, "/small/b", &[1; 1]).err(),
        Some(Errno::ENOSPC)
    );
    for bad in [
        "size=lots",
        "mode=999",
        "colour=blue",
        "size=9999999999999999999g",
    ] {
        crate::check_eq!(vfs::new_filesystem("tmpfs", bad).err(), Some(Errno::EINVAL));
    }
    crate::check!(vfs::new_filesystem("tmpfs", "size=50%").is_ok());
    let mounted = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/small", Follow::Yes))?;
    ok(vfs::umount(&root(), mounted, false))?;
});

crate::kernel_test!(opened_paths_are_made_absolute_by_name, {
    for (base, path, expected) in [
        ("/", "etc/passwd", "/etc/passwd"),
        ("/home/u", "../v/./f", "/home/v/f"),
        ("/a", "/b//c/", "/b/c"),
        ("/", "../../..", "/"),
        ("/x", ".", "/x"),
    ] {
        crate::check_eq!(lexical_join(base, path), String::from(expected));
    }
    let ctx = private_root();
    ok(mkdir(&ctx, "/d", 0o755))?;
    ok(write_file(&ctx, "/d/f", b"x"))?;
    let dir = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/d", Follow::Yes))?;
    let file = ok(vfs::open(
        &ctx,
        &root(),
        At::Dir(&dir),
        "./f",
        OpenFlags::empty(),
        0,
    ))?;
    crate::check_eq!(file.opened_path(), Some("/d/f"));
});
