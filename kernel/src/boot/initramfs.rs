//! Read-only lookups in the initramfs archive (newc cpio) as the boot loader left it in memory.
//!
//! Until the VFS unpacks the archive into the root tmpfs, this is how the kernel finds `/init`
//! and the programs it executes. The archive is untrusted input: every header field and size is
//! bounds-checked, and a malformed archive simply has no more entries.

use super::Initrd;

static ARCHIVE: spin::Once<&'static [u8]> = spin::Once::new();

/// Makes the archive available (called once at boot, after the initrd is reserved).
pub fn init(initrd: Option<Initrd>) {
    let Some(initrd) = initrd else { return };
    if !crate::mm::is_phys_described(initrd.phys_start, initrd.size) {
        return;
    }
    let start = crate::mm::phys_to_virt(initrd.phys_start) as *const u8;
    // SAFETY: the initrd is RAM reserved for the kernel (never handed to the frame allocator)
    // and covered by the direct map (checked above); it is never written, so a shared 'static
    // view is sound.
    let bytes = unsafe { core::slice::from_raw_parts(start, initrd.size as usize) };
    ARCHIVE.call_once(|| bytes);
}

/// One archive entry.
pub struct Entry<'a> {
    pub name: &'a str,
    pub mode: u32,
    pub data: &'a [u8],
}

fn hex_field(header: &[u8], index: usize) -> Option<usize> {
    let field = header.get(6 + index * 8..6 + index * 8 + 8)?;
    usize::from_str_radix(core::str::from_utf8(field).ok()?, 16).ok()
}

/// The entries of a newc archive, in order, until the trailer or the first malformed header.
pub fn entries(mut data: &[u8]) -> impl Iterator<Item = Entry<'_>> {
    core::iter::from_fn(move || {
        let header = data.get(..110)?;
        if &header[..6] != b"070701" && &header[..6] != b"070702" {
            return None;
        }
        let mode = hex_field(header, 1)? as u32;
        let size = hex_field(header, 6)?;
        let name_size = hex_field(header, 11)?;
        let name_bytes = data.get(110..110usize.checked_add(name_size)?.checked_sub(1)?)?;
        let name = core::str::from_utf8(name_bytes).ok()?;
        if name == "TRAILER!!!" {
            return None;
        }
        let start = (110 + name_size + 3) & !3;
        let body = data.get(start..start.checked_add(size)?)?;
        data = data.get((start + size + 3) & !3..).unwrap_or(&[]);
        Some(Entry {
            name,
            mode,
            data: body,
        })
    })
}

/// The contents of the regular file at `path` (absolute; symlinks are not followed).
pub fn read_file(path: &str) -> Option<&'static [u8]> {
    let wanted = path.trim_start_matches('/');
    entries(ARCHIVE.get()?)
        .find(|entry| {
            entry.name.trim_start_matches("./") == wanted && entry.mode & 0o170000 == 0o100000
        })
        .map(|entry| entry.data)
}

crate::kernel_test!(initramfs_reader_survives_garbage, {
    crate::check_eq!(entries(b"").count(), 0);
    crate::check_eq!(entries(b"070701zzzz").count(), 0);
    // One valid entry, then a header whose sizes point past the end.
    let mut archive = alloc::vec::Vec::new();
    let header = |name: &str, mode: u32, size: usize| {
        alloc::format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1,
            mode,
            0,
            0,
            1,
            0,
            size,
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        )
    };
    archive.extend_from_slice(header("init", 0o100755, 2).as_bytes());
    archive.extend_from_slice(b"init\0");
    while archive.len() % 4 != 0 {
        archive.push(0);
    }
    archive.extend_from_slice(b"hi\0\0");
    archive.extend_from_slice(header("big", 0o100644, 1 << 30).as_bytes());
    archive.extend_from_slice(b"big\0");
    let found: alloc::vec::Vec<_> = entries(&archive).map(|e| (e.name, e.data.len())).collect();
    crate::check_eq!(found, alloc::vec![("init", 2)]);
});
