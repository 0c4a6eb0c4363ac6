//! The root file system at boot: a directory packed by the launcher is unpacked by the real
//! kernel into its root tmpfs, reported in one summary line (`Unpacking initramfs... N files,
//! M directories, K bytes (...)`) and listed by the `fs_list=DIR[,DIR...]` boot option; a
//! damaged archive is reported and the boot goes on.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cadenza_qemu::{GuestExit, InitrdSource, QemuConfig, RunResult, initramfs};
use common::{kernel, workspace};

/// Generous: TCG on a loaded CI machine; a boot takes well under a second.
const TIMEOUT: Duration = Duration::from_secs(60);

fn boot(initrd: PathBuf, append: &str) -> RunResult {
    let mut config = QemuConfig::new(kernel());
    config.initrd = Some(initrd);
    config.append = format!("console=ttyS0 {append}");
    let result = config.run(TIMEOUT).expect("QEMU starts");
    assert_ne!(
        result.exit,
        GuestExit::TimedOut,
        "the guest hung; console so far:\n{}",
        result.console
    );
    result
}

/// Console lines after the timestamp.
fn lines(console: &str) -> impl Iterator<Item = &str> {
    console
        .lines()
        .map(|line| line.split_once("] ").map_or(line, |(_, rest)| rest))
}

fn line_after<'a>(console: &'a str, prefix: &str) -> Option<&'a str> {
    lines(console).find_map(|line| line.strip_prefix(prefix))
}

/// What a tree holds, counted the way the kernel's summary counts it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    files: usize,
    directories: usize,
    bytes: u64,
    symlinks: usize,
    special_files: usize,
}

fn count_tree(dir: &Path, counts: &mut Counts) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            counts.symlinks += 1;
        } else if meta.is_dir() {
            counts.directories += 1;
            count_tree(&path, counts);
        } else if meta.is_file() {
            counts.files += 1;
            counts.bytes += meta.len();
        } else {
            counts.special_files += 1;
        }
    }
}

/// Parses `3 files, 4 directories, 30 bytes (1 symlinks, 9 special files, 0 hard links)`.
fn parse_summary(summary: &str) -> Counts {
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 6, "unexpected summary {summary:?}");
    Counts {
        files: numbers[0] as usize,
        directories: numbers[1] as usize,
        bytes: numbers[2],
        symlinks: numbers[3] as usize,
        special_files: numbers[4] as usize,
    }
}

fn sample_tree() -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("cadenza-initramfs-test")
        .tempdir()
        .unwrap();
    let path = |p: &str| root.path().join(p);
    fs::create_dir_all(path("bin")).unwrap();
    fs::create_dir_all(path("etc/conf.d")).unwrap();
    fs::create_dir_all(path("var/empty")).unwrap();
    fs::write(path("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(path("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("hello", path("bin/hi")).unwrap();
    std::os::unix::fs::symlink("/nowhere", path("bin/dangling")).unwrap();
    fs::write(path("etc/hostname"), b"cadenza\n").unwrap();
    fs::write(path("etc/conf.d/a.conf"), vec![b'x'; 5000]).unwrap();
    fs::set_permissions(path("etc/conf.d"), fs::Permissions::from_mode(0o700)).unwrap();
    root
}

/// The archive the launcher packs for `--initrd DIR` (under `out/`; removed when dropped).
struct Packed(PathBuf);

impl Drop for Packed {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn packed(dir: &Path) -> Packed {
    Packed(
        InitrdSource::Directory(dir.to_path_buf())
            .prepare(&workspace())
            .expect("the launcher packs the directory")
            .expect("a directory gives an archive"),
    )
}

#[test]
fn a_packed_directory_is_unpacked_into_the_root_and_listed() {
    let tree = sample_tree();
    let mut expected = Counts::default();
    count_tree(tree.path(), &mut expected);
    // The launcher adds /dev and its nine standard nodes.
    expected.directories += 1;
    expected.special_files += initramfs::standard_device_nodes().len();

    let archive = packed(tree.path());
    let result = boot(archive.0.clone(), "fs_list=/bin,/etc,/");
    let console = &result.console;
    assert_eq!(result.exit, GuestExit::Clean, "console:\n{console}");
    let summary = line_after(console, "Unpacking initramfs... ").expect("a summary line");
    assert_eq!(parse_summary(summary), expected, "{summary}");
    assert!(
        !console.contains("initramfs: "),
        "no errors or skipped entries:\n{console}"
    );
    // What the archive lacked is created: mount points for procfs and debugfs, /tmp, and
    // /dev's links into procfs.
    assert_eq!(
        line_after(console, "fs: created "),
        Some(
            "/proc /sys /sys/kernel /sys/kernel/debug /tmp /dev/fd /dev/stdin /dev/stdout /dev/stderr"
        )
    );

    let listed: Vec<Vec<&str>> = lines(console)
        .filter_map(|line| line.strip_prefix("fs_list: "))
        .map(|line| line.split_whitespace().collect())
        .collect();
    let entry = |name: &str| {
        listed
            .iter()
            .find(|fields| fields.get(5) == Some(&name))
            .unwrap_or_else(|| panic!("{name} is not listed:\n{console}"))
    };
    // mode, links, uid, gid, size, name [-> target]
    assert_eq!(entry("hello")[..5], ["-rwxr-xr-x", "1", "0", "0", "21"]);
    assert_eq!(
        entry("hi")[..],
        ["lrwxrwxrwx", "1", "0", "0", "5", "hi", "->", "hello"]
    );
    assert_eq!(entry("dangling")[6..], ["->", "/nowhere"]);
    assert_eq!(entry("hostname")[..5], ["-rw-r--r--", "1", "0", "0", "8"]);
    assert_eq!(entry("conf.d")[0], "drwx------");
    assert_eq!(entry("tmp")[0], "drwxrwxrwt");
    assert!(
        listed.iter().any(|fields| fields == &["/bin:"]),
        "{console}"
    );
}

#[test]
fn a_damaged_archive_is_reported_and_the_boot_goes_on() {
    let tree = sample_tree();
    let archive = fs::read(&packed(tree.path()).0).unwrap();
    let out = tempfile::tempdir().unwrap();
    // Cut inside the data of the big file: what precedes it is kept.
    let cut = archive
        .windows(b"etc/conf.d/a.conf".len())
        .position(|w| w == b"etc/conf.d/a.conf")
        .expect("the big file is in the archive")
        + 200;
    let truncated = out.path().join("truncated.cpio");
    fs::write(&truncated, &archive[..cut]).unwrap();

    let result = boot(truncated, "fs_list=/bin");
    let console = &result.console;
    assert_eq!(result.exit, GuestExit::Clean, "console:\n{console}");
    let error = line_after(console, "initramfs: ").expect("an error line");
    assert!(
        error.starts_with("archive truncated at byte ")
            && error.contains("(entry \"etc/conf.d/a.conf\")")
            && error.ends_with("; keeping what was unpacked before it"),
        "{error}"
    );
    // Entries are sorted: bin/ came before etc/ and was unpacked.
    assert!(
        lines(console)
            .any(|line| line.starts_with("fs_list: -rwxr-xr-x") && line.ends_with(" hello")),
        "{console}"
    );
    // Everything /dev would have had is created anyway.
    let created = line_after(console, "fs: created ").expect("standard entries");
    for path in [
        "/dev",
        "/proc",
        "/tmp",
        "/dev/console",
        "/dev/null",
        "/dev/ttyS0",
    ] {
        assert!(
            created.split(' ').any(|p| p == path),
            "{path} missing: {created}"
        );
    }
}
