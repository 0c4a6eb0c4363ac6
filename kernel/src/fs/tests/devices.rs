//! Device nodes: the memory and random devices, driver dispatch by (major, minor), `ENXIO`
//! without a driver, `nodev` mounts, and the standard `/dev` created at boot.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};

use super::{lstat, mkdir, ok, open, private_root, root};
use crate::errno::{EResult, Errno};
use crate::fs::dev::{self, CharDevice, PollEvents};
use crate::fs::file::{OpenFlags, Whence};
use crate::fs::initramfs;
use crate::fs::metadata::{DeviceId, FileType};
use crate::fs::mount::MountFlags;
use crate::fs::path::{At, Follow};
use crate::fs::tmpfs::Tmpfs;
use crate::fs::vfs;

crate::kernel_test!(memory_and_random_devices, {
    let ctx = private_root();
    let added = initramfs::add_standard_entries(&ctx);
    // 6 directories, 9 nodes in /dev and 4 links into procfs.
    crate::check_eq!(added.len(), 19);
    crate::check!(
        initramfs::add_standard_entries(&ctx).is_empty(),
        "idempotent"
    );
    crate::check_eq!(ok(lstat(&ctx, "/tmp"))?.permissions, 0o1777);
    let null = ok(lstat(&ctx, "/dev/null"))?;
    crate::check_eq!(
        (null.file_type, null.rdev, null.permissions),
        (FileType::CharDevice, DeviceId::new(1, 3), 0o666)
    );
    crate::check_eq!(ok(lstat(&ctx, "/dev/console"))?.rdev, DeviceId::new(5, 1));
    crate::check_eq!(ok(lstat(&ctx, "/dev/ttyS1"))?.rdev, DeviceId::new(4, 65));

    let zero = ok(open(&ctx, &root(), "/dev/zero", OpenFlags::RDWR))?;
    let mut buf = [0xaau8; 100];
    crate::check_eq!(ok(zero.read(&mut buf))?, 100);
    crate::check!(buf.iter().all(|&b| b == 0), "zero fills");
    crate::check_eq!(ok(zero.write(&[1; 10]))?, 10);
    crate::check_eq!(ok(zero.seek(1000, Whence::Set))?, 0);

    let null = ok(open(&ctx, &root(), "/dev/null", OpenFlags::RDWR))?;
    // null is always at end of file
    crate::check_eq!(ok(null.read(&mut buf))?, 0);
    // null discards everything
    crate::check_eq!(ok(null.write(&[1; 1000]))?, 1000);
    crate::check_eq!(ok(null.pread(&mut buf, 5))?, 0);
    // fstat shows the node
    crate::check_eq!(null.metadata().rdev, DeviceId::new(1, 3));

    let full = ok(open(&ctx, &root(), "/dev/full", OpenFlags::RDWR))?;
    buf.fill(0xaa);
    crate::check_eq!(ok(full.read(&mut buf))?, 100);
    crate::check!(buf.iter().all(|&b| b == 0));
    crate::check_eq!(full.write(b"x").err(), Some(Errno::ENOSPC));

    let urandom = ok(open(&ctx, &root(), "/dev/urandom", OpenFlags::RDWR))?;
    let (mut first, mut second) = ([0u8; 32], [0u8; 32]);
    crate::check_eq!(ok(urandom.read(&mut first))?, 32);
    crate::check_eq!(ok(urandom.read(&mut second))?, 32);
    crate::check!(first != second, "urandom differs between reads");
    crate::check!(first.iter().any(|&b| b != 0));
    crate::check_eq!(ok(urandom.write(b"entropy"))?, 7);
    let random = ok(open(&ctx, &root(), "/dev/random", OpenFlags::empty()))?;
    let mut third = [0u8; 32];
    crate::check_eq!(ok(random.read(&mut third))?, 32);
    crate::check!(third != first && third != second);
    // The getrandom path, and that the stream is not trivially biased.
    let mut big = alloc::vec![0u8; 4096];
    dev::random::fill(&mut big);
    let ones: u32 = big.iter().map(|b| b.count_ones()).sum();
    crate::check!((15_000..17_800).contains(&ones), "about half the bits set");
});

/// A driver that answers with its minor and counts releases.
struct EchoMinor {
    released: AtomicU32,
}

impl CharDevice for EchoMinor {
    fn name(&self) -> &'static str {
        "echo-minor"
    }

    fn open(&self, minor: u32, _flags: OpenFlags) -> EResult<()> {
        if minor == 8 {
            Err(Errno::EBUSY)
        } else {
            Ok(())
        }
    }

    fn release(&self, _minor: u32) {
        self.released.fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self, minor: u32, buf: &mut [u8], _flags: OpenFlags) -> EResult<usize> {
        buf.fill(minor as u8);
        Ok(buf.len())
    }

    fn write(&self, _minor: u32, _buf: &[u8], flags: OpenFlags) -> EResult<usize> {
        if flags.contains(OpenFlags::NONBLOCK) {
            Err(Errno::EAGAIN)
        } else {
            Ok(0)
        }
    }

    fn poll(&self, _minor: u32) -> PollEvents {
        PollEvents::OUT
    }
}

crate::kernel_test!(device_nodes_dispatch_to_registered_drivers, {
    /// "Local/experimental use" in Linux's devices.txt.
    const MAJOR: u32 = 240;
    let ctx = private_root();
    let node = |path: &str, minor: u32| {
        let mode = FileType::CharDevice.mode_bits() | 0o666;
        vfs::mknod(
            &ctx,
            &root(),
            At::Cwd,
            path,
            mode,
            DeviceId::new(MAJOR, minor),
        )
    };
    ok(node("/seven", 7))?;
    ok(node("/eight", 8))?;
    ok(node("/twelve", 12))?;
    // no driver yet
    crate::check_eq!(
        open(&ctx, &root(), "/seven", OpenFlags::empty()).err(),
        Some(Errno::ENXIO)
    );
    let driver = Arc::new(EchoMinor {
        released: AtomicU32::new(0),
    });
    ok(dev::register_char(MAJOR, 5, 4, driver.clone()))?;
    crate::check_eq!(
        dev::register_char(MAJOR, 8, 1, driver.clone()).err(),
        Some(Errno::EBUSY)
    );
    crate::check_eq!(
        dev::register_char(MAJOR, 20, 0, driver.clone()).err(),
        Some(Errno::EINVAL)
    );
    let result = (|| -> Result<(), crate::selftest::Failure> {
        let file = ok(open(&ctx, &root(), "/seven", OpenFlags::RDWR))?;
        let mut buf = [0u8; 3];
        crate::check_eq!(ok(file.read(&mut buf))?, 3);
        crate::check_eq!(buf, [7, 7, 7]);
        crate::check_eq!(file.ioctl(0x5401, 0).err(), Some(Errno::ENOTTY));
        crate::check_eq!(file.seek(0, Whence::Set).err(), Some(Errno::ESPIPE));
        crate::check_eq!(file.pread(&mut buf, 0).err(), Some(Errno::ESPIPE));
        crate::check_eq!(file.poll(), PollEvents::OUT);
        crate::check_eq!(ok(file.write(b"x"))?, 0);
        file.set_status_flags(OpenFlags::NONBLOCK);
        // flags reach the driver
        crate::check_eq!(file.write(b"x").err(), Some(Errno::EAGAIN));
        drop(file);
        crate::check_eq!(driver.released.load(Ordering::Relaxed), 1);
        // the driver's open can refuse
        crate::check_eq!(
            open(&ctx, &root(), "/eight", OpenFlags::empty()).err(),
            Some(Errno::EBUSY)
        );
        // outside the registered range
        crate::check_eq!(
            open(&ctx, &root(), "/twelve", OpenFlags::empty()).err(),
            Some(Errno::ENXIO)
        );
        // Block devices and sockets have no drivers yet; FIFOs are pipes.
        ok(vfs::mknod(
            &ctx,
            &root(),
            At::Cwd,
            "/blk",
            0o060600,
            DeviceId::new(8, 0),
        ))?;
        ok(vfs::mknod(
            &ctx,
            &root(),
            At::Cwd,
            "/fifo",
            0o010600,
            DeviceId::default(),
        ))?;
        crate::check_eq!(
            open(&ctx, &root(), "/blk", OpenFlags::empty()).err(),
            Some(Errno::ENXIO)
        );
        // Without a reader, a non-blocking writer is refused (a blocking one would wait).
        let write_only = OpenFlags::WRONLY | OpenFlags::NONBLOCK;
        crate::check_eq!(
            open(&ctx, &root(), "/fifo", write_only).err(),
            Some(Errno::ENXIO)
        );
        let reader = ok(open(&ctx, &root(), "/fifo", OpenFlags::NONBLOCK))?;
        let writer = ok(open(&ctx, &root(), "/fifo", write_only))?;
        crate::check_eq!(ok(writer.write(b"fifo"))?, 4);
        let mut got = [0u8; 8];
        crate::check_eq!(ok(reader.read(&mut got))?, 4);
        crate::check_eq!(&got[..4], b"fifo");
        crate::check_eq!(reader.read(&mut got).err(), Some(Errno::EAGAIN));
        drop((reader, writer));
        // O_RDWR holds both ends: it never waits, and reads back its own writes.
        let both = ok(open(&ctx, &root(), "/fifo", OpenFlags::RDWR))?;
        crate::check_eq!(ok(both.write(b"xy"))?, 2);
        crate::check_eq!(ok(both.read(&mut got))?, 2);
        // A nodev mount refuses device nodes.
        ok(mkdir(&ctx, "/mnt", 0o755))?;
        let point = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/mnt", Follow::Yes))?;
        ok(vfs::mount(
            &root(),
            &point,
            Tmpfs::new(),
            "tmpfs",
            MountFlags::NODEV,
        ))?;
        ok(node("/mnt/seven", 7))?;
        crate::check_eq!(
            open(&ctx, &root(), "/mnt/seven", OpenFlags::empty()).err(),
            Some(Errno::EACCES)
        );
        let mounted = ok(vfs::resolve(&ctx, &root(), At::Cwd, "/mnt", Follow::Yes))?;
        ok(vfs::umount(&root(), mounted, false))?;
        Ok(())
    })();
    // Leave the registry as it was, whatever happened above.
    let unregistered = dev::unregister_char(MAJOR, 5);
    result?;
    ok(unregistered)?;
    crate::check_eq!(dev::unregister_char(MAJOR, 5).err(), Some(Errno::ENXIO));
    crate::check_eq!(
        open(&ctx, &root(), "/seven", OpenFlags::empty()).err(),
        Some(Errno::ENXIO)
    );
});
