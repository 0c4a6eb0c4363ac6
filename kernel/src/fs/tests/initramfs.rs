//! Unpacking newc archives built here: a valid archive gives exactly its tree; every kind of
//! damage gives an error (and keeps what came before), never a panic.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{lstat, names_in, ok, private_root, read_file, stat};
use crate::errno::Errno;
use crate::fs::initramfs::{ArchiveError, UnpackReport, unpack};
use crate::fs::metadata::{DeviceId, FileType, Timespec};
use crate::fs::path::{At, FsContext};
use crate::fs::vfs;

/// One archive member to write.
#[derive(Clone)]
struct Spec<'a> {
    name: &'a str,
    mode: u32,
    uid: u32,
    gid: u32,
    ino: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

impl<'a> Spec<'a> {
    fn new(name: &'a str, mode: u32, data: &'a [u8]) -> Self {
        Self {
            name,
            mode,
            uid: 0,
            gid: 0,
            ino: 0,
            nlink: 1,
            mtime: 0,
            rdev: (0, 0),
            data,
        }
    }
    fn dir(name: &'a str, permissions: u32) -> Self {
        Self::new(name, 0o040000 | permissions, b"")
    }
    fn file(name: &'a str, permissions: u32, data: &'a [u8]) -> Self {
        Self::new(name, 0o100000 | permissions, data)
    }
    fn symlink(name: &'a str, target: &'a str) -> Self {
        Self::new(name, 0o120777, target.as_bytes())
    }
    fn node(name: &'a str, type_bits: u32, permissions: u32, rdev: (u32, u32)) -> Self {
        Self {
            rdev,
            ..Self::new(name, type_bits | permissions, b"")
        }
    }
    fn owner(self, uid: u32, gid: u32) -> Self {
        Self { uid, gid, ..self }
    }
    fn mtime(self, mtime: u32) -> Self {
        Self { mtime, ..self }
    }
    fn link(self, ino: u32, nlink: u32) -> Self {
        Self { ino, nlink, ..self }
    }
}

/// Writes newc archives the way `cpio -H newc` (or the `crc` variant) does.
struct Archive {
    bytes: Vec<u8>,
    crc: bool,
    next_ino: u32,
}

impl Archive {
    fn new(crc: bool) -> Self {
        Self {
            bytes: Vec::new(),
            crc,
            next_ino: 1000,
        }
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn add(&mut self, spec: &Spec<'_>) -> &mut Self {
        let ino = if spec.ino != 0 {
            spec.ino
        } else {
            self.next_ino += 1;
            self.next_ino
        };
        let check = if self.crc {
            spec.data.iter().map(|&b| u32::from(b)).sum()
        } else {
            0
        };
        let header = format!(
            "{}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            if self.crc { "070702" } else { "070701" },
            ino,
            spec.mode,
            spec.uid,
            spec.gid,
            spec.nlink,
            spec.mtime,
            spec.data.len(),
            0,
            0,
            spec.rdev.0,
            spec.rdev.1,
            spec.name.len() + 1,
            check
        );
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(spec.name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(spec.data);
        self.pad();
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        self.add(&Spec::new("TRAILER!!!", 0, b""));
        core::mem::take(&mut self.bytes)
    }
}

fn unpacked(archive: &[u8]) -> (FsContext, UnpackReport) {
    let ctx = private_root();
    let report = unpack(&ctx, archive);
    (ctx, report)
}

fn sample_archive(crc: bool) -> Vec<u8> {
    let mut archive = Archive::new(crc);
    archive
        .add(&Spec::dir(".", 0o711))
        .add(&Spec::dir("bin", 0o755).mtime(1000))
        .add(&Spec::file("bin/busybox", 0o755, b"\x7fELF busybox").mtime(2000))
        .add(&Spec::symlink("bin/sh", "busybox").mtime(2500))
        .add(&Spec::file("bin/su", 0o4755, b"su"))
        .add(&Spec::dir("./etc", 0o750).owner(0, 42).mtime(3000))
        .add(&Spec::file(
            "etc/passwd",
            0o644,
            b"root:x:0:0::/root:/bin/sh\n",
        ))
        .add(&Spec::file("/etc/mine", 0o600, b"abs").owner(1000, 1000))
        .add(&Spec::dir("dev", 0o755))
        .add(&Spec::node("dev/console", 0o020000, 0o600, (5, 1)))
        .add(&Spec::node("dev/sda", 0o060000, 0o660, (8, 0)).owner(0, 6))
        .add(&Spec::node("dev/initctl", 0o010000, 0o600, (0, 0)))
        .add(&Spec::dir("hl", 0o755))
        // GNU cpio style: the data travels with the last link.
        .add(&Spec::file("hl/a", 0o644, b"").link(77, 2))
        .add(&Spec::file("hl/b", 0o644, b"shared").link(77, 2))
        .add(&Spec::file("late", 0o644, b"first"))
        .add(&Spec::file("late", 0o640, b"second"));
    archive.finish()
}

crate::kernel_test!(unpacking_a_valid_archive_gives_exactly_its_tree, {
    for crc in [false, true] {
        let archive = sample_archive(crc);
        let (ctx, report) = unpacked(&archive);
        crate::check_eq!(report.failure, None);
        crate::check_eq!(report.first_skipped, None);
        let stats = &report.stats;
        crate::check_eq!(
            (
                stats.files,
                stats.directories,
                stats.symlinks,
                stats.special_files
            ),
            (8, 4, 1, 3)
        );
        crate::check_eq!(stats.hard_links, 1);
        crate::check_eq!(stats.bytes, 12 + 2 + 26 + 3 + 6 + 5 + 6);
        crate::check_eq!(
            ok(names_in(&ctx, "/"))?,
            [".", "..", "bin", "dev", "etc", "hl", "late"]
        );
        crate::check_eq!(
            ok(names_in(&ctx, "/bin"))?,
            [".", "..", "busybox", "sh", "su"]
        );
        // the \".\" entry
        crate::check_eq!(ok(lstat(&ctx, "/"))?.permissions, 0o711);
        let busybox = ok(lstat(&ctx, "/bin/busybox"))?;
        crate::check_eq!(
            (busybox.file_type, busybox.permissions, busybox.size),
            (FileType::Regular, 0o755, 12)
        );
        crate::check_eq!(busybox.mtime, Timespec::new(2000, 0));
        crate::check_eq!(ok(read_file(&ctx, "/bin/sh"))?, b"\x7fELF busybox");
        crate::check_eq!(
            ok(vfs::readlink(&ctx, &super::root(), At::Cwd, "/bin/sh"))?,
            "busybox"
        );
        crate::check_eq!(ok(lstat(&ctx, "/bin/sh"))?.mtime, Timespec::new(2500, 0));
        crate::check_eq!(ok(lstat(&ctx, "/bin/su"))?.permissions, 0o4755);
        // set last
        crate::check_eq!(ok(lstat(&ctx, "/bin"))?.mtime, Timespec::new(1000, 0));
        let etc = ok(lstat(&ctx, "/etc"))?;
        crate::check_eq!((etc.permissions, etc.gid, etc.mtime.sec), (0o750, 42, 3000));
        let mine = ok(lstat(&ctx, "/etc/mine"))?;
        crate::check_eq!((mine.uid, mine.gid, mine.permissions), (1000, 1000, 0o600));
        let console = ok(lstat(&ctx, "/dev/console"))?;
        crate::check_eq!(
            (console.file_type, console.rdev, console.permissions),
            (FileType::CharDevice, DeviceId::new(5, 1), 0o600)
        );
        let sda = ok(lstat(&ctx, "/dev/sda"))?;
        crate::check_eq!(
            (sda.file_type, sda.rdev, sda.gid),
            (FileType::BlockDevice, DeviceId::new(8, 0), 6)
        );
        crate::check_eq!(ok(lstat(&ctx, "/dev/initctl"))?.file_type, FileType::Fifo);
        let (a, b) = (ok(lstat(&ctx, "/hl/a"))?, ok(lstat(&ctx, "/hl/b"))?);
        crate::check_eq!((a.ino, a.nlink), (b.ino, 2));
        crate::check_eq!(ok(read_file(&ctx, "/hl/a"))?, b"shared");
        // a later entry replaces
        crate::check_eq!(ok(read_file(&ctx, "/late"))?, b"second");
        crate::check_eq!(ok(lstat(&ctx, "/late"))?.permissions, 0o640);
    }
});

crate::kernel_test!(every_truncation_of_an_archive_is_an_error_not_a_panic, {
    let mut archive = Archive::new(false);
    archive
        .add(&Spec::dir("d", 0o755))
        .add(&Spec::file("d/f", 0o644, b"0123456789"))
        .add(&Spec::symlink("s", "d/f"));
    let full = archive.finish();
    let (_, complete) = unpacked(&full);
    crate::check_eq!(complete.failure, None);
    // an empty archive is valid
    crate::check_eq!(unpacked(b"").1.failure, None);
    for cut in 1..full.len() {
        let (ctx, report) = unpacked(&full[..cut]);
        let Some(failure) = report.failure else {
            return Err(crate::selftest::fail(
                "a truncated archive unpacked cleanly",
            ));
        };
        crate::check!(
            matches!(
                failure.error,
                ArchiveError::Truncated
                    | ArchiveError::NameNotTerminated
                    | ArchiveError::BadMagic(_)
            ),
            format!("cut at {cut}: {failure}")
        );
        // Whatever was unpacked is a prefix of the full tree.
        let kept = report.stats.directories + report.stats.files + report.stats.symlinks;
        crate::check!(kept <= 3);
        if report.stats.files == 1 {
            crate::check_eq!(ok(read_file(&ctx, "/d/f"))?, b"0123456789");
        }
    }
});

crate::kernel_test!(damaged_archives_report_what_and_where, {
    let good_prefix = {
        let mut archive = Archive::new(false);
        archive.add(&Spec::file("kept", 0o644, b"k"));
        archive.bytes.clone()
    };
    let entry = |spec: &Spec<'_>, crc: bool| {
        let mut archive = Archive::new(crc);
        archive.add(spec);
        archive.bytes.clone()
    };
    let mut bad_magic = b"070703".to_vec();
    bad_magic.resize(110, b'0');
    // The last byte of the name is not its NUL.
    let mut bad_name = entry(&Spec::file("abc", 0o644, b""), false);
    bad_name[110 + 3] = b'x';
    // c_namesize and c_filesize pointing past the end.
    let mut huge_name = entry(&Spec::file("abc", 0o644, b""), false);
    huge_name[94..102].copy_from_slice(b"0000ffff");
    let mut huge_file = entry(&Spec::file("abc", 0o644, b"xy"), false);
    huge_file[54..62].copy_from_slice(b"7fffffff");
    // c_mode with a non-hex digit.
    let mut bad_hex = entry(&Spec::file("abc", 0o644, b""), false);
    bad_hex[14] = b'g';
    // A 070702 entry whose c_check does not match its data.
    let mut bad_sum = entry(&Spec::file("sum", 0o644, b"data"), true);
    bad_sum[109] = if bad_sum[109] == b'0' { b'1' } else { b'0' };
    let dot_dot = entry(&Spec::file("a/../../etc/x", 0o644, b"x"), false);
    let cases: [(&str, &[u8], ArchiveError, Option<&str>); 9] = [
        (
            "bad magic",
            &bad_magic,
            ArchiveError::BadMagic(*b"070703"),
            None,
        ),
        (
            "gzip",
            &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0],
            ArchiveError::Compressed("gzip"),
            None,
        ),
        (
            "garbage",
            b"garbage, not an archive",
            ArchiveError::BadMagic(*b"garbag"),
            None,
        ),
        (
            "unterminated name",
            &bad_name,
            ArchiveError::NameNotTerminated,
            None,
        ),
        (
            "name past the end",
            &huge_name,
            ArchiveError::Truncated,
            None,
        ),
        (
            "data past the end",
            &huge_file,
            ArchiveError::Truncated,
            Some("abc"),
        ),
        (
            "non-hex field",
            &bad_hex,
            ArchiveError::BadHeaderField("c_mode"),
            None,
        ),
        (
            "`..` component",
            &dot_dot,
            ArchiveError::DotDotComponent,
            Some("a/../../etc/x"),
        ),
        (
            "bad checksum",
            &bad_sum,
            ArchiveError::BadChecksum,
            Some("sum"),
        ),
    ];
    for (what, damage, error, entry_name) in cases {
        // Behind a good entry: that entry is kept, the offset points at the damaged header.
        let mut bytes = good_prefix.clone();
        bytes.extend_from_slice(damage);
        let (ctx, report) = unpacked(&bytes);
        let failure = report
            .failure
            .ok_or_else(|| crate::selftest::fail("damage went unnoticed"))?;
        crate::check!(
            (&failure.error, failure.entry.as_deref()) == (&error, entry_name),
            format!("{what}: {failure}")
        );
        crate::check!(
            failure.offset == good_prefix.len(),
            format!("{what}: {failure}")
        );
        crate::check!(read_file(&ctx, "/kept") == Ok(b"k".to_vec()), what);
    }

    // An entry whose directory is missing is skipped, not fatal (as on Linux).
    let mut archive = Archive::new(false);
    archive
        .add(&Spec::file("nodir/file", 0o644, b"x"))
        .add(&Spec::file("after", 0o644, b"a"));
    let (ctx, report) = unpacked(&archive.finish());
    crate::check_eq!(report.failure, None);
    crate::check_eq!(report.stats.skipped, 1);
    crate::check_eq!(
        report.first_skipped,
        Some((String::from("nodir/file"), Errno::ENOENT))
    );
    crate::check!(stat(&ctx, "/after").is_ok());

    // Concatenated archives with NUL padding between them (Linux accepts this).
    let mut first = Archive::new(false);
    first.add(&Spec::file("one", 0o644, b"1"));
    let mut second = Archive::new(true);
    second.add(&Spec::file("two", 0o644, b"2"));
    let mut both = first.finish();
    both.extend_from_slice(&[0; 12]);
    both.extend_from_slice(&second.finish());
    let (ctx, report) = unpacked(&both);
    crate::check_eq!(report.failure, None);
    crate::check_eq!(ok(read_file(&ctx, "/two"))?, b"2");

    // Random junk behind a valid magic never panics.
    let mut junk = [0u8; 200];
    for round in 0..64 {
        crate::fs::dev::random::fill(&mut junk);
        junk[..6].copy_from_slice(b"070701");
        if round % 2 == 0 {
            // Mostly-valid hex so parsing gets further.
            for byte in &mut junk[6..110] {
                *byte = b"0123456789abcdef"[usize::from(*byte % 16)];
            }
        }
        let (_, report) = unpacked(&junk);
        crate::check!(report.failure.is_some());
    }
});
