//! Initramfs images: newc cpio archives, the format Linux and Cadenza unpack into the root tmpfs.
//!
//! Users hand the launcher either a ready archive or a directory; a directory is packed here so
//! nobody needs `find | cpio -o -H newc` muscle memory. Device nodes cannot be created in a
//! directory without root, so — like Linux's `gen_init_cpio` `nod` lines — they can be added to
//! an archive directly (`DeviceNode`). Entries are written in sorted order with root ownership,
//! so the same tree always gives the same archive.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cpio::newc::{self, ModeFileType};

use crate::workspace::Workspace;

/// The six bytes every newc archive starts with (`070702` is the checksummed variant).
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
const NEWC_CRC_MAGIC: &[u8; 6] = b"070702";

/// A character or block device node to put in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path inside the archive, without a leading `/` (e.g. `dev/console`).
    pub path: String,
    pub block: bool,
    pub major: u32,
    pub minor: u32,
    pub permissions: u32,
}

impl DeviceNode {
    pub fn char(path: &str, major: u32, minor: u32, permissions: u32) -> Self {
        Self {
            path: path.to_owned(),
            block: false,
            major,
            minor,
            permissions,
        }
    }
}

/// The device nodes every Cadenza initramfs gets, numbered as on Linux
/// (Documentation/admin-guide/devices.txt).
pub fn standard_device_nodes() -> Vec<DeviceNode> {
    vec![
        DeviceNode::char("dev/console", 5, 1, 0o600),
        DeviceNode::char("dev/tty", 5, 0, 0o666),
        DeviceNode::char("dev/null", 1, 3, 0o666),
        DeviceNode::char("dev/zero", 1, 5, 0o666),
        DeviceNode::char("dev/full", 1, 7, 0o666),
        DeviceNode::char("dev/random", 1, 8, 0o666),
        DeviceNode::char("dev/urandom", 1, 9, 0o666),
        DeviceNode::char("dev/ttyS0", 4, 64, 0o660),
        DeviceNode::char("dev/ttyS1", 4, 65, 0o660),
    ]
}

/// Builds a newc archive in memory.
pub struct Archive {
    bytes: Vec<u8>,
    written: BTreeSet<String>,
    next_inode: u32,
}

impl Default for Archive {
    fn default() -> Self {
        Self::new()
    }
}

impl Archive {
    pub fn new() -> Self {
        Self {
            bytes: Vec::new(),
            written: BTreeSet::new(),
            next_inode: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, mtime: u32, data: &[u8]) -> Result<()> {
        let name = name.trim_start_matches('/');
        if name.is_empty() || self.written.contains(name) {
            return Ok(());
        }
        self.ensure_parents(name)?;
        let size = u32::try_from(data.len())
            .with_context(|| format!("{name}: newc cannot hold files of 4 GiB or more"))?;
        let mut writer = newc::Builder::new(name)
            .ino(self.next_inode)
            .mode(mode)
            .mtime(mtime)
            .write(&mut self.bytes, size);
        writer.write_all(data)?;
        writer.finish()?;
        self.next_inode += 1;
        self.written.insert(name.to_owned());
        Ok(())
    }

    /// Writes a directory entry for every ancestor of `name` not yet in the archive.
    fn ensure_parents(&mut self, name: &str) -> Result<()> {
        let mut ancestors: Vec<&str> = Path::new(name)
            .ancestors()
            .skip(1)
            .filter_map(Path::to_str)
            .filter(|a| !a.is_empty())
            .collect();
        ancestors.reverse();
        for dir in ancestors {
            if !self.written.contains(dir) {
                self.directory(dir, 0o755)?;
            }
        }
        Ok(())
    }

    pub fn directory(&mut self, path: &str, permissions: u32) -> Result<()> {
        let mode = u32::from(ModeFileType::Directory) | (permissions & 0o7777);
        self.entry(path, mode, 0, &[])
    }

    pub fn file(&mut self, path: &str, permissions: u32, data: &[u8]) -> Result<()> {
        let mode = u32::from(ModeFileType::Regular) | (permissions & 0o7777);
        self.entry(path, mode, 0, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mode = u32::from(ModeFileType::Symlink) | 0o777;
        self.entry(path, mode, 0, target.as_bytes())
    }

    pub fn device(&mut self, node: &DeviceNode) -> Result<()> {
        let name = node.path.trim_start_matches('/');
        if self.written.contains(name) {
            return Ok(());
        }
        self.ensure_parents(name)?;
        let kind = if node.block {
            ModeFileType::Block
        } else {
            ModeFileType::Char
        };
        let writer = newc::Builder::new(name)
            .ino(self.next_inode)
            .mode(u32::from(kind) | (node.permissions & 0o7777))
            .rdev_major(node.major)
            .rdev_minor(node.minor)
            .write(&mut self.bytes, 0);
        writer.finish()?;
        self.next_inode += 1;
        self.written.insert(name.to_owned());
        Ok(())
    }

    /// Adds everything below `dir` (not `dir` itself), in sorted order.
    pub fn add_tree(&mut self, dir: &Path) -> Result<()> {
        self.add_tree_at(dir, "")
    }

    fn add_tree_at(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .with_context(|| format!("cannot read directory {}", dir.display()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("cannot list {}", dir.display()))?;
        entries.sort();
        for path in entries {
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                bail!("{}: file names must be UTF-8", path.display());
            };
            let name = format!("{prefix}{file_name}");
            let meta = fs::symlink_metadata(&path)
                .with_context(|| format!("cannot stat {}", path.display()))?;
            let mtime = u32::try_from(meta.mtime()).unwrap_or(0);
            let file_type = meta.file_type();
            if file_type.is_dir() {
                self.entry(&name, meta.mode(), mtime, &[])?;
                self.add_tree_at(&path, &format!("{name}/"))?;
            } else if file_type.is_symlink() {
                let target = fs::read_link(&path)
                    .with_context(|| format!("cannot read link {}", path.display()))?;
                let target = target
                    .to_str()
                    .with_context(|| format!("{}: link targets must be UTF-8", path.display()))?;
                self.entry(&name, meta.mode(), mtime, target.as_bytes())?;
            } else if file_type.is_file() {
                let data =
                    fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                self.entry(&name, meta.mode(), mtime, &data)?;
            } else if file_type.is_char_device() || file_type.is_block_device() {
                let (major, minor) = split_rdev(meta.rdev());
                self.device(&DeviceNode {
                    path: name,
                    block: file_type.is_block_device(),
                    major,
                    minor,
                    permissions: meta.mode(),
                })?;
            } else {
                // FIFOs and sockets: metadata only.
                self.entry(&name, meta.mode(), mtime, &[])?;
            }
        }
        Ok(())
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(newc::trailer(self.bytes)?)
    }
}

/// Linux's `dev_t` encoding (glibc's `gnu_dev_major`/`gnu_dev_minor`).
fn split_rdev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Packs `dir` (plus the standard device nodes) into a newc archive at `out`; returns its size.
pub fn pack_directory(dir: &Path, out: &Path) -> Result<u64> {
    let mut archive = Archive::new();
    archive.add_tree(dir)?;
    for node in standard_device_nodes() {
        archive.device(&node)?;
    }
    write_archive(archive, out)
}

fn write_archive(archive: Archive, out: &Path) -> Result<u64> {
    let bytes = archive.finish()?;
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(bytes.len() as u64)
}

/// Checks that `path` is a newc archive.
pub fn check_archive(path: &Path) -> Result<()> {
    let mut magic = [0u8; 6];
    let bytes =
        fs::read(path).with_context(|| format!("cannot read initramfs {}", path.display()))?;
    let len = bytes.len().min(6);
    magic[..len].copy_from_slice(&bytes[..len]);
    if &magic != NEWC_MAGIC && &magic != NEWC_CRC_MAGIC {
        bail!(
            "{} is not a newc cpio archive (it starts with {:?}, expected \"070701\"); \
             pass a directory to have it packed",
            path.display(),
            String::from_utf8_lossy(&magic)
        );
    }
    Ok(())
}

/// Where Debian's `busybox-static` package puts its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// busybox init's table for the default system: a banner, then a shell on the console that
/// comes back when it exits, and `poweroff` (or Ctrl-Alt-Del) ending the machine.
const INITTAB: &str = "\
::sysinit:/bin/mount -a
::sysinit:/bin/echo Cadenza: busybox init is up. Try ls, ps, top, bash, neofetch; poweroff ends the machine.
::respawn:-/bin/sh
::ctrlaltdel:/bin/poweroff
::shutdown:/bin/echo Cadenza: going down
";

/// What `mount -a` mounts at boot, as a distribution's fstab: procfs, and debugfs where Linux
/// has it (the kmemleak file is `/sys/kernel/debug/kmemleak`).
const FSTAB: &str = "\
proc /proc proc defaults 0 0
debugfs /sys/kernel/debug debugfs defaults 0 0
";

/// Debian's static bash and neofetch (a bash script), added to the default system when the
/// host has them: more of a real userland to try.
pub const BASH: &str = "/bin/bash-static";
pub const NEOFETCH: &str = "/usr/bin/neofetch";

/// What the system calls itself (neofetch and others read it).
const OS_RELEASE: &str = "\
NAME=\"Cadenza\"
PRETTY_NAME=\"Cadenza (Debian's busybox userland)\"
ID=cadenza
HOME_URL=\"https://example.invalid/cadenza\"
";

/// The archive booted when the user names none: a root file system with Debian's static
/// busybox as `/init` (busybox init, then a shell on the console) when the host has it, else
/// just the skeleton (the kernel then says there is no init and powers off).
pub fn default_archive() -> Result<Vec<u8>> {
    default_archive_with(Path::new(BUSYBOX))
}

/// `default_archive` with busybox taken from `busybox` (tests point it elsewhere).
pub fn default_archive_with(busybox: &Path) -> Result<Vec<u8>> {
    let mut archive = Archive::new();
    for dir in ["bin", "dev", "etc", "proc", "root", "sys", "sys/kernel"] {
        archive.directory(dir, 0o755)?;
    }
    archive.directory("sys/kernel/debug", 0o700)?;
    archive.directory("tmp", 0o1777)?;
    archive.file("etc/hostname", 0o644, b"cadenza\n")?;
    archive.file(
        "etc/motd",
        0o644,
        b"Welcome to Cadenza. Debug me: see docs/debugging.md.\n",
    )?;
    for node in standard_device_nodes() {
        archive.device(&node)?;
    }
    if let Ok(binary) = fs::read(busybox) {
        archive.file("bin/busybox", 0o755, &binary)?;
        for applet in busybox_applets(busybox) {
            if applet != "busybox" {
                archive.symlink(&format!("bin/{applet}"), "busybox")?;
            }
        }
        archive.symlink("init", "bin/busybox")?;
        archive.file("etc/inittab", 0o644, INITTAB.as_bytes())?;
        archive.file("etc/fstab", 0o644, FSTAB.as_bytes())?;
        archive.file("etc/os-release", 0o644, OS_RELEASE.as_bytes())?;
        if let Ok(bash) = fs::read(BASH) {
            archive.file("bin/bash", 0o755, &bash)?;
        }
        if let Ok(neofetch) = fs::read(NEOFETCH) {
            archive.directory("usr", 0o755)?;
            archive.directory("usr/bin", 0o755)?;
            archive.file("usr/bin/neofetch", 0o755, &neofetch)?;
        }
    }
    archive.finish()
}

/// The applets a busybox binary provides (`busybox --list`), or a basic set if it cannot say.
fn busybox_applets(busybox: &Path) -> Vec<String> {
    let listed = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .filter(|a| !a.is_empty() && !a.contains('/'))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        ["sh", "ls", "cat", "echo", "ps", "mount", "poweroff", "init"]
            .map(String::from)
            .to_vec()
    } else {
        listed
    }
}

/// What to boot as the initramfs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum InitrdSource {
    /// No `-initrd` at all.
    None,
    /// The built-in default (`default_archive`).
    #[default]
    Default,
    /// A ready newc archive.
    Archive(PathBuf),
    /// A directory, packed on each launch.
    Directory(PathBuf),
}

impl InitrdSource {
    /// A directory or an archive, as named on a command line.
    pub fn from_path(path: &Path) -> Result<Self> {
        let meta = fs::metadata(path)
            .with_context(|| format!("initramfs {} does not exist", path.display()))?;
        if meta.is_dir() {
            Ok(Self::Directory(path.to_path_buf()))
        } else {
            check_archive(path)?;
            Ok(Self::Archive(path.to_path_buf()))
        }
    }

    /// Produces the archive to pass to QEMU, packing it under `out/` if needed.
    pub fn prepare(&self, workspace: &Workspace) -> Result<Option<PathBuf>> {
        match self {
            Self::None => Ok(None),
            Self::Archive(path) => {
                check_archive(path)?;
                Ok(Some(path.clone()))
            }
            Self::Directory(dir) => {
                let name = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("initramfs");
                let out = workspace.out_dir().join(format!("{name}.cpio"));
                pack_directory(dir, &out)?;
                Ok(Some(out))
            }
            Self::Default => {
                let out = workspace.out_dir().join("initramfs-default.cpio");
                let bytes = default_archive()?;
                if let Some(parent) = out.parent() {
                    fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                fs::write(&out, bytes)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                Ok(Some(out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Name, mode, rdev (major, minor) and data of one entry.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Every entry, read back with the cpio crate.
    fn read_back(bytes: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut input = bytes;
        loop {
            let mut reader = cpio::NewcReader::new(input).expect("valid header");
            if reader.entry().is_trailer() {
                break;
            }
            let entry = reader.entry();
            let (name, mode, rdev) = (
                entry.name().to_owned(),
                entry.mode(),
                (entry.rdev_major(), entry.rdev_minor()),
            );
            let mut data = Vec::new();
            reader.read_to_end(&mut data).expect("entry data");
            entries.push((name, mode, rdev, data));
            input = reader.finish().expect("next entry");
        }
        entries
    }

    #[test]
    fn packs_a_directory_with_files_links_and_nodes() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("bin")).unwrap();
        fs::write(dir.path().join("bin/hello"), b"#!/bin/sh\necho hi\n").unwrap();
        std::os::unix::fs::symlink("hello", dir.path().join("bin/hi")).unwrap();
        fs::write(dir.path().join("init"), b"x").unwrap();
        let out = dir.path().join("out.cpio");
        let size = pack_directory(&dir.path().join("bin"), &out).unwrap();
        assert_eq!(size, fs::metadata(&out).unwrap().len());

        let entries = read_back(&fs::read(&out).unwrap());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(&names[..2], ["hello", "hi"]);
        assert_eq!(entries[0].3, b"#!/bin/sh\necho hi\n");
        assert_eq!(entries[1].1 & 0o170000, 0o120000, "a symlink");
        assert_eq!(entries[1].3, b"hello");
        let console = entries.iter().find(|e| e.0 == "dev/console").unwrap();
        assert_eq!(console.1 & 0o170000, 0o020000, "a char device");
        assert_eq!(console.2, (5, 1));
        assert!(
            names.iter().position(|n| *n == "dev") < names.iter().position(|n| *n == "dev/console"),
            "parents come before children: {names:?}"
        );
    }

    #[test]
    fn default_archive_is_a_root_skeleton() {
        let entries = read_back(&default_archive_with(Path::new("/nonexistent/busybox")).unwrap());
        let find = |name: &str| entries.iter().find(|e| e.0 == name);
        assert_eq!(find("etc/hostname").unwrap().3, b"cadenza\n");
        assert_eq!(find("tmp").unwrap().1 & 0o7777, 0o1777);
        assert_eq!(find("dev/null").unwrap().2, (1, 3));
        assert!(find("proc").is_some() && find("sys").is_some());
        assert!(find("init").is_none(), "no busybox, no init");
    }

    #[test]
    fn default_archive_boots_busybox_when_the_host_has_it() {
        if !Path::new(BUSYBOX).is_file() {
            panic!("Debian's busybox-static is needed ({BUSYBOX}); scripts/setup.sh installs it");
        }
        let entries = read_back(&default_archive().unwrap());
        let find = |name: &str| entries.iter().find(|e| e.0 == name);
        assert_eq!(find("init").unwrap().3, b"bin/busybox");
        assert_eq!(find("bin/sh").unwrap().3, b"busybox");
        assert!(find("bin/busybox").unwrap().3.len() > 100_000);
        assert!(
            String::from_utf8_lossy(&find("etc/inittab").unwrap().3).contains("respawn:-/bin/sh")
        );
        assert!(find("etc/os-release").is_some());
        // scripts/setup.sh installs both; the archive carries them when the host has them.
        assert_eq!(
            find("bin/bash").map(|e| e.3.len() > 100_000),
            Path::new(BASH).is_file().then_some(true)
        );
        assert_eq!(
            find("usr/bin/neofetch").is_some(),
            Path::new(NEOFETCH).is_file()
        );
    }

    #[test]
    fn rejects_what_is_not_an_archive() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("kernel.elf");
        fs::write(&bogus, b"\x7fELF....").unwrap();
        let error = InitrdSource::from_path(&bogus).unwrap_err().to_string();
        assert!(error.contains("not a newc cpio archive"), "{error}");
        let missing = InitrdSource::from_path(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        assert_eq!(
            InitrdSource::from_path(dir.path()).unwrap(),
            InitrdSource::Directory(dir.path().to_path_buf())
        );
    }

    #[test]
    fn splits_linux_dev_t() {
        // glibc's makedev.
        let makedev = |major: u64, minor: u64| {
            ((major & 0xfff) << 8)
                | ((major & !0xfff) << 32)
                | (minor & 0xff)
                | ((minor & !0xff) << 12)
        };
        assert_eq!(split_rdev(makedev(4, 65)), (4, 65));
        assert_eq!(split_rdev(makedev(0x1234, 0x56789)), (0x1234, 0x56789));
    }
}
