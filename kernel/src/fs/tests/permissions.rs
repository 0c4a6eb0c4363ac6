//! Permission checks for non-root callers: rwx by owner/group/other, root's exceptions, search
//! permission on directories, the sticky bit, chmod/chown/utimens rules, set-gid directories.

use super::{chmod, chown, lstat, mkdir, ok, open, private_root, read_as, root, user, write_file};
use crate::errno::Errno;
use crate::fs::credentials::{Access, Credentials};
use crate::fs::file::OpenFlags;
use crate::fs::metadata::Timespec;
use crate::fs::path::{At, Follow, FsContext};
use crate::fs::vfs::{self, TimeChange};

fn access(ctx: &FsContext, creds: &Credentials, path: &str, wanted: Access) -> Option<Errno> {
    let location = vfs::resolve(ctx, creds, At::Cwd, path, Follow::Yes).ok()?;
    vfs::access(creds, &location, wanted).err()
}

crate::kernel_test!(non_root_cannot_read_a_0600_root_file, {
    let ctx = private_root();
    ok(write_file(&ctx, "/secret", b"s"))?;
    ok(chmod(&ctx, "/secret", 0o600))?;
    let alice = user(1000);
    crate::check_eq!(read_as(&ctx, &alice, "/secret").err(), Some(Errno::EACCES));
    crate::check_eq!(
        open(&ctx, &alice, "/secret", OpenFlags::WRONLY).err(),
        Some(Errno::EACCES)
    );
    crate::check_eq!(
        open(&ctx, &alice, "/secret", OpenFlags::TRUNC).err(),
        Some(Errno::EACCES)
    );
    crate::check_eq!(ok(read_as(&ctx, &root(), "/secret"))?, b"s");
    crate::check_eq!(
        access(&ctx, &alice, "/secret", Access::READ),
        Some(Errno::EACCES)
    );
    crate::check_eq!(access(&ctx, &alice, "/secret", Access::empty()), None);

    // Group bits for members (primary or supplementary), other bits for the rest.
    ok(chown(&ctx, "/secret", 0, 100))?;
    ok(chmod(&ctx, "/secret", 0o640))?;
    crate::check_eq!(
        ok(read_as(
            &ctx,
            &Credentials::user(1000, 1000, &[100]),
            "/secret"
        ))?,
        b"s"
    );
    crate::check_eq!(
        ok(read_as(&ctx, &Credentials::user(1000, 100, &[]), "/secret"))?,
        b"s"
    );
    crate::check_eq!(read_as(&ctx, &alice, "/secret").err(), Some(Errno::EACCES));
    // The owner gets the owner bits only, even when "other" may do more.
    ok(chown(&ctx, "/secret", 1000, 1000))?;
    ok(chmod(&ctx, "/secret", 0o077))?;
    crate::check_eq!(read_as(&ctx, &alice, "/secret").err(), Some(Errno::EACCES));
    crate::check_eq!(ok(read_as(&ctx, &user(1001), "/secret"))?, b"s");

    // Root may read and write anything, but executes only what someone may execute.
    ok(write_file(&ctx, "/prog", b"#!"))?;
    ok(chmod(&ctx, "/prog", 0o644))?;
    crate::check_eq!(
        access(&ctx, &root(), "/prog", Access::EXEC),
        Some(Errno::EACCES)
    );
    crate::check_eq!(
        vfs::open_exec(&ctx, &root(), At::Cwd, "/prog").err(),
        Some(Errno::EACCES)
    );
    ok(chmod(&ctx, "/prog", 0o744))?;
    crate::check_eq!(access(&ctx, &root(), "/prog", Access::EXEC), None);
    crate::check!(vfs::open_exec(&ctx, &root(), At::Cwd, "/prog").is_ok());
    crate::check_eq!(
        vfs::open_exec(&ctx, &alice, At::Cwd, "/prog").err(),
        Some(Errno::EACCES)
    );
    ok(chmod(&ctx, "/prog", 0o000))?;
    crate::check_eq!(ok(read_as(&ctx, &root(), "/prog"))?, b"#!");
    // a directory is not executable
    crate::check_eq!(
        vfs::open_exec(&ctx, &root(), At::Cwd, "/").err(),
        Some(Errno::EACCES)
    );
});

crate::kernel_test!(directories_need_search_and_write_permission, {
    let ctx = private_root();
    ok(mkdir(&ctx, "/private", 0o700))?;
    ok(write_file(&ctx, "/private/f", b"f"))?;
    let alice = user(1000);
    // Listing and entering need r and x on the directory; stat of the directory itself only x
    // on its parent.
    crate::check!(vfs::stat(&ctx, &alice, At::Cwd, "/private", Follow::Yes).is_ok());
    crate::check_eq!(
        vfs::stat(&ctx, &alice, At::Cwd, "/private/f", Follow::Yes).err(),
        Some(Errno::EACCES)
    );
    crate::check_eq!(
        open(&ctx, &alice, "/private", OpenFlags::DIRECTORY).err(),
        Some(Errno::EACCES)
    );
    let location = ok(vfs::resolve(
        &ctx,
        &root(),
        At::Cwd,
        "/private",
        Follow::Yes,
    ))?;
    let mut alice_ctx = ctx.clone();
    crate::check_eq!(
        vfs::chdir(&mut alice_ctx, &alice, location).err(),
        Some(Errno::EACCES)
    );
    // Execute-only: entries can be reached by name but not listed.
    ok(chmod(&ctx, "/private", 0o711))?;
    crate::check!(vfs::stat(&ctx, &alice, At::Cwd, "/private/f", Follow::Yes).is_ok());
    crate::check_eq!(
        open(&ctx, &alice, "/private", OpenFlags::DIRECTORY).err(),
        Some(Errno::EACCES)
    );
    // Creating needs w on the directory; an existing name is EEXIST first.
    crate::check_eq!(
        vfs::mkdir(&ctx, &alice, At::Cwd, "/private/new", 0o755).err(),
        Some(Errno::EACCES)
    );
    crate::check_eq!(
        vfs::mkdir(&ctx, &alice, At::Cwd, "/private/f", 0o755).err(),
        Some(Errno::EEXIST)
    );
    crate::check_eq!(
        open(
            &ctx,
            &alice,
            "/private/new",
            OpenFlags::CREAT | OpenFlags::WRONLY
        )
        .err(),
        Some(Errno::EACCES)
    );
    crate::check_eq!(
        vfs::unlink(&ctx, &alice, At::Cwd, "/private/f").err(),
        Some(Errno::EACCES)
    );
    // Only root makes device nodes; after the permission check.
    ok(chmod(&ctx, "/private", 0o777))?;
    let node = crate::fs::metadata::FileType::CharDevice.mode_bits() | 0o666;
    crate::check_eq!(
        vfs::mknod(
            &ctx,
            &alice,
            At::Cwd,
            "/private/null",
            node,
            Default::default()
        )
        .err(),
        Some(Errno::EPERM)
    );
    crate::check!(
        vfs::mknod(
            &ctx,
            &alice,
            At::Cwd,
            "/private/fifo",
            0o010600,
            Default::default()
        )
        .is_ok()
    );
    crate::check_eq!(
        vfs::mknod(
            &ctx,
            &alice,
            At::Cwd,
            "/private/d",
            0o040755,
            Default::default()
        )
        .err(),
        Some(Errno::EPERM)
    );
});

crate::kernel_test!(sticky_directories_protect_other_users_files, {
    let ctx = private_root();
    ok(mkdir(&ctx, "/tmp", 0o777))?;
    ok(chmod(&ctx, "/tmp", 0o1777))?;
    let (alice, bob) = (user(1000), user(1001));
    let create = |creds: &Credentials, path: &str| {
        open(&ctx, creds, path, OpenFlags::CREAT | OpenFlags::WRONLY).map(drop)
    };
    ok(create(&alice, "/tmp/a"))?;
    ok(create(&bob, "/tmp/b"))?;
    crate::check_eq!(ok(lstat(&ctx, "/tmp/a"))?.uid, 1000);
    crate::check_eq!(
        vfs::unlink(&ctx, &bob, At::Cwd, "/tmp/a").err(),
        Some(Errno::EPERM)
    );
    let rename = |creds: &Credentials, from: &str, to: &str| {
        vfs::rename(&ctx, creds, At::Cwd, from, At::Cwd, to, Default::default()).err()
    };
    crate::check_eq!(rename(&bob, "/tmp/a", "/tmp/c"), Some(Errno::EPERM));
    // replacing alice's
    crate::check_eq!(rename(&bob, "/tmp/b", "/tmp/a"), Some(Errno::EPERM));
    crate::check_eq!(rename(&bob, "/tmp/b", "/tmp/c"), None);
    crate::check_eq!(rename(&alice, "/tmp/a", "/tmp/a2"), None);
    ok(vfs::unlink(&ctx, &alice, At::Cwd, "/tmp/a2"))?;
    ok(create(&alice, "/tmp/a"))?;
    // Root, and the directory's owner, may delete anything.
    ok(vfs::unlink(&ctx, &root(), At::Cwd, "/tmp/c"))?;
    ok(chown(&ctx, "/tmp", 1001, 1001))?;
    ok(vfs::unlink(&ctx, &bob, At::Cwd, "/tmp/a"))?;
    // Without the sticky bit, write permission on the directory is enough.
    ok(chown(&ctx, "/tmp", 0, 0))?;
    ok(chmod(&ctx, "/tmp", 0o777))?;
    ok(create(&alice, "/tmp/a"))?;
    ok(vfs::unlink(&ctx, &bob, At::Cwd, "/tmp/a"))?;
});

crate::kernel_test!(chmod_chown_and_utimens_rules, {
    let ctx = private_root();
    ok(write_file(&ctx, "/f", b"data"))?;
    ok(chown(&ctx, "/f", 1000, 1000))?;
    let (alice, bob) = (user(1000), user(1001));
    let location = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/f", Follow::Yes))?;
    crate::check_eq!(vfs::chmod(&bob, &location, 0o777).err(), Some(Errno::EPERM));
    ok(vfs::chmod(&alice, &location, 0o600))?;
    crate::check_eq!(location.metadata().permissions, 0o600);
    // Giving a file away is root's; changing its group to one of your own is the owner's.
    crate::check_eq!(
        vfs::chown(&alice, &location, Some(1001), None).err(),
        Some(Errno::EPERM)
    );
    crate::check_eq!(
        vfs::chown(&alice, &location, None, Some(50)).err(),
        Some(Errno::EPERM)
    );
    // even a no-op chown needs the right
    crate::check_eq!(
        vfs::chown(&bob, &location, Some(1000), None).err(),
        Some(Errno::EPERM)
    );
    ok(vfs::chown(
        &Credentials::user(1000, 1000, &[50]),
        &location,
        None,
        Some(50),
    ))?;
    crate::check_eq!(location.metadata().gid, 50);
    // chmod by someone outside the file's group drops set-gid; chown drops set-uid.
    ok(vfs::chmod(&alice, &location, 0o2755))?;
    crate::check_eq!(location.metadata().permissions, 0o755);
    ok(vfs::chmod(&root(), &location, 0o6755))?;
    ok(vfs::chown(&root(), &location, Some(0), None))?;
    crate::check_eq!(location.metadata().permissions, 0o755);

    // utimens: explicit times are the owner's; "now" is anyone's with write permission.
    ok(vfs::chown(&root(), &location, Some(1000), None))?;
    let when = Timespec::new(1_000_000, 42);
    crate::check_eq!(
        vfs::utimens(&bob, &location, TimeChange::Set(when), TimeChange::Omit).err(),
        Some(Errno::EPERM)
    );
    crate::check_eq!(
        vfs::utimens(&bob, &location, TimeChange::Now, TimeChange::Now).err(),
        Some(Errno::EACCES)
    );
    ok(vfs::chmod(&root(), &location, 0o666))?;
    ok(vfs::utimens(
        &bob,
        &location,
        TimeChange::Now,
        TimeChange::Now,
    ))?;
    // "now" for only one of the two is an explicit change, as Linux's ATTR_TIMES_SET
    crate::check_eq!(
        vfs::utimens(&bob, &location, TimeChange::Now, TimeChange::Omit).err(),
        Some(Errno::EPERM)
    );
    ok(vfs::utimens(
        &alice,
        &location,
        TimeChange::Omit,
        TimeChange::Set(when),
    ))?;
    let meta = location.metadata();
    crate::check_eq!(meta.mtime, when);
    crate::check!(meta.atime != when);
    crate::check_eq!(
        vfs::utimens(
            &alice,
            &location,
            TimeChange::Set(Timespec::new(0, 1_000_000_000)),
            TimeChange::Omit
        )
        .err(),
        Some(Errno::EINVAL)
    );
    ok(super::symlink(&ctx, "/f", "/link"))?;
    let link = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/link", Follow::No))?;
    crate::check_eq!(
        vfs::chmod(&root(), &link, 0o700).err(),
        Some(Errno::ENOTSUP)
    );
    // truncate needs write permission.
    ok(vfs::chmod(&root(), &location, 0o644))?;
    crate::check_eq!(vfs::truncate(&bob, &location, 0).err(), Some(Errno::EACCES));
    ok(vfs::truncate(&alice, &location, 2))?;
    crate::check_eq!(location.metadata().size, 2);
    crate::check_eq!(
        vfs::truncate(&alice, &location, -1).err(),
        Some(Errno::EINVAL)
    );
});

crate::kernel_test!(set_gid_directories_and_umask, {
    let ctx = private_root();
    ok(mkdir(&ctx, "/shared", 0o755))?;
    ok(chown(&ctx, "/shared", 0, 77))?;
    ok(chmod(&ctx, "/shared", 0o2777))?;
    let member = Credentials::user(1000, 1000, &[77]);
    let file = vfs::open(
        &ctx,
        &member,
        At::Cwd,
        "/shared/f",
        OpenFlags::CREAT | OpenFlags::WRONLY,
        0o666,
    );
    crate::check!(file.is_ok());
    let meta = ok(lstat(&ctx, "/shared/f"))?;
    crate::check_eq!((meta.uid, meta.gid, meta.permissions), (1000, 77, 0o644));
    ok(vfs::mkdir(&ctx, &member, At::Cwd, "/shared/sub", 0o777))?;
    let meta = ok(lstat(&ctx, "/shared/sub"))?;
    crate::check_eq!((meta.gid, meta.permissions), (77, 0o2755));
    // A non-member cannot create a set-gid executable there.
    let outsider = user(2000);
    ok(vfs::mknod(
        &ctx,
        &outsider,
        At::Cwd,
        "/shared/x",
        0o102775,
        Default::default(),
    ))?;
    crate::check_eq!(ok(lstat(&ctx, "/shared/x"))?.permissions, 0o0755);
});

crate::kernel_test!(
    hard_links_to_another_users_file_need_ownership_or_a_harmless_file,
    {
        // fs.protected_hardlinks = 1, as on Debian.
        let ctx = private_root();
        ok(chmod(&ctx, "/", 0o1777))?;
        for (name, mode) in [
            ("/secret", 0o600),
            ("/readonly", 0o644),
            ("/shared", 0o666),
            ("/setuid", 0o4777),
            ("/setgid-exec", 0o2777),
            ("/setgid-noexec", 0o2666),
        ] {
            ok(write_file(&ctx, name, b"x"))?;
            ok(chmod(&ctx, name, mode))?;
        }
        let link = |creds: &Credentials, old: &str, new: &str| {
            vfs::link(&ctx, creds, At::Cwd, old, At::Cwd, new, Follow::No).err()
        };
        let alice = user(1000);
        for refused in ["/secret", "/readonly", "/setuid", "/setgid-exec"] {
            crate::check!(link(&alice, refused, "/l") == Some(Errno::EPERM), refused);
        }
        crate::check_eq!(link(&alice, "/shared", "/l-shared"), None);
        crate::check_eq!(link(&alice, "/setgid-noexec", "/l-setgid"), None);
        // The owner and root link whatever they like.
        ok(chown(&ctx, "/secret", 1000, 1000))?;
        crate::check_eq!(link(&alice, "/secret", "/l-secret"), None);
        crate::check_eq!(link(&root(), "/setuid", "/l-setuid"), None);
    }
);
