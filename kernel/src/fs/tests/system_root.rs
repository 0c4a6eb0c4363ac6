//! The root file system the kernel booted with: what `init_root` must always provide.

use alloc::string::String;

use super::ok;
use crate::fs::credentials::Credentials;
use crate::fs::dev;
use crate::fs::initramfs::{STANDARD_DEVICE_NODES, STANDARD_DIRECTORIES};
use crate::fs::metadata::{DeviceId, FileType};
use crate::fs::mount;
use crate::fs::path::{At, Follow};
use crate::fs::vfs;

crate::kernel_test!(the_booted_root_has_dev_proc_sys_tmp, {
    let ctx = ok(vfs::init_context())?;
    let creds = Credentials::root();
    crate::check!(ctx.root.is_dir() && ctx.root.is_mount_root());
    for (path, _) in STANDARD_DIRECTORIES {
        let meta = ok(vfs::stat(&ctx, &creds, At::Cwd, path, Follow::Yes))?;
        crate::check!(meta.is_dir(), path);
    }
    for (path, major, minor, _) in STANDARD_DEVICE_NODES {
        let meta = ok(vfs::stat(&ctx, &creds, At::Cwd, path, Follow::No))?;
        crate::check_eq!(
            (meta.file_type, meta.rdev),
            (FileType::CharDevice, DeviceId::new(major, minor))
        );
    }
    let mut mounts = String::new();
    crate::check!(mount::write_mounts(&ctx.root, &mut mounts).is_ok());
    crate::check!(mounts.starts_with("tmpfs / tmpfs rw 0 0\n"), mounts);
    let devices = dev::registered_char_devices();
    crate::check!(devices.contains(&(1, 3, 1, "mem")));
    crate::check!(devices.contains(&(1, 8, 2, "random")));
    // The null device works through the real /dev.
    let null = ok(vfs::open(
        &ctx,
        &creds,
        At::Cwd,
        "/dev/null",
        crate::fs::OpenFlags::WRONLY,
        0,
    ))?;
    crate::check_eq!(ok(null.write(b"discarded"))?, 9);
});
