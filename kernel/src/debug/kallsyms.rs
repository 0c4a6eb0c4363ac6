//! The kernel's symbol table: `0xffffffff8020c792` becomes `kernel::main+0x22/0x30` on the console.
//!
//! The table cannot come from the link that produces it, so the kernel reserves a fixed-size
//! `.kallsyms` section holding only a header, and the host fills it in after linking
//! (`symbols::kallsyms::embed`, run by every `cadenza-qemu` build; blob format documented there).
//! Because the section's size never changes, no code address depends on its contents. A kernel
//! linked by plain `cargo build` keeps the empty template and prints raw addresses only.
//!
//! The blob is read as untrusted bytes: every offset is bounds-checked, so a damaged table gives
//! `?`, never a fault.

use core::cell::UnsafeCell;
use core::fmt;

/// Bytes reserved for the table (entries plus names).
pub const KALLSYMS_CAPACITY: usize = 512 * 1024;
const MAGIC: &[u8; 8] = b"CDZKSYM1";
const HEADER_LEN: usize = 16;
const ENTRY_LEN: usize = 16;

/// Written by the host after linking, never by the kernel: an `UnsafeCell` so that the compiler
/// does not assume the bytes are still the template's.
#[repr(C, align(8))]
struct Blob(UnsafeCell<[u8; KALLSYMS_CAPACITY]>);

// SAFETY: the kernel only ever reads the blob.
unsafe impl Sync for Blob {}

const fn template() -> [u8; KALLSYMS_CAPACITY] {
    let mut bytes = [0u8; KALLSYMS_CAPACITY];
    let mut i = 0;
    while i < MAGIC.len() {
        bytes[i] = MAGIC[i];
        i += 1;
    }
    bytes
}

#[used]
// SAFETY: `.kallsyms` is a section of its own that the linker script keeps in the read-only image.
#[unsafe(link_section = ".kallsyms")]
static KALLSYMS: Blob = Blob(UnsafeCell::new(template()));

fn blob() -> &'static [u8] {
    // SAFETY: the static is valid for its whole size and nothing writes it at run time.
    unsafe { &*KALLSYMS.0.get() }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The validated table.
struct Table {
    entries: &'static [u8],
    names: &'static [u8],
    count: usize,
}

fn table() -> Option<Table> {
    let blob = blob();
    if blob.get(..8)? != MAGIC {
        return None;
    }
    let count = u32_at(blob, 8)? as usize;
    let names_len = u32_at(blob, 12)? as usize;
    let entries_end = HEADER_LEN.checked_add(count.checked_mul(ENTRY_LEN)?)?;
    let names_end = entries_end.checked_add(names_len)?;
    Some(Table {
        entries: blob.get(HEADER_LEN..entries_end)?,
        names: blob.get(entries_end..names_end)?,
        count,
    })
}

impl Table {
    /// (address, size, name) of entry `index`.
    fn entry(&self, index: usize) -> Option<(u64, u64, &'static str)> {
        let at = index * ENTRY_LEN;
        let address = u64_at(self.entries, at)?;
        let size = u64::from(u32_at(self.entries, at + 8)?);
        let offset = u32_at(self.entries, at + 12)? as usize;
        let len = *self.names.get(offset)? as usize;
        let name = self.names.get(offset + 1..offset + 1 + len)?;
        Some((address, size, core::str::from_utf8(name).ok()?))
    }

    fn address(&self, index: usize) -> u64 {
        u64_at(self.entries, index * ENTRY_LEN).unwrap_or(u64::MAX)
    }
}

/// A function found in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: &'static str,
    pub address: u64,
    pub size: u64,
}

/// The function containing `address`.
pub fn lookup(address: u64) -> Option<Symbol> {
    let table = table()?;
    // Entries are sorted by address: find the last one starting at or below `address`.
    let (mut low, mut high) = (0, table.count);
    while low < high {
        let mid = low + (high - low) / 2;
        if table.address(mid) <= address {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    let (start, size, name) = table.entry(low.checked_sub(1)?)?;
    (address - start < size).then_some(Symbol {
        name,
        address: start,
        size,
    })
}

/// A function by exact (demangled, hash-free) name.
pub fn find(name: &str) -> Option<Symbol> {
    let table = table()?;
    (0..table.count)
        .filter_map(|i| table.entry(i))
        .find(|&(_, _, n)| n == name)
        .map(|(address, size, name)| Symbol {
            name,
            address,
            size,
        })
}

/// Number of functions in the embedded table (0 for a kernel linked without `embed`).
pub fn count() -> usize {
    table().map_or(0, |t| t.count)
}

/// Formats an address as Linux does in backtraces: `name+0xoff/0xsize`, or `?`.
///
/// A return address is looked up one byte earlier (a call can be a function's last instruction,
/// so its return address may already be the next function), but the offset still describes the
/// address itself — Linux's `%pB`.
#[derive(Clone, Copy)]
pub struct Symbolic {
    pub address: u64,
    pub return_address: bool,
}

impl fmt::Display for Symbolic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let probe = if self.return_address {
            self.address.wrapping_sub(1)
        } else {
            self.address
        };
        match lookup(probe) {
            Some(symbol) => write!(
                f,
                "{}+{:#x}/{:#x}",
                symbol.name,
                self.address - symbol.address,
                symbol.size
            ),
            None => f.write_str("?"),
        }
    }
}

crate::kernel_test!(kallsyms_names_kernel_functions, {
    if count() == 0 {
        return Err(crate::selftest::fail(
            "no embedded symbol table: build the kernel with `cadenza-qemu build`",
        ));
    }
    let this = kallsyms_names_kernel_functions as *const () as u64;
    let symbol = lookup(this).ok_or(crate::selftest::fail("own address not found"))?;
    crate::check!(
        symbol.name.ends_with("kallsyms_names_kernel_functions"),
        "the test finds itself"
    );
    crate::check_eq!(symbol.address, this);
    crate::check_eq!(lookup(symbol.address + symbol.size - 1), Some(symbol));
    let main = find("kernel::kernel_main").ok_or(crate::selftest::fail("kernel_main missing"))?;
    crate::check_eq!(lookup(main.address + 1).map(|s| s.name), Some(main.name));
    crate::check_eq!(lookup(0), None);
    crate::check_eq!(lookup(u64::MAX), None);
    let text = alloc::format!(
        "{}",
        Symbolic {
            address: main.address + 4,
            return_address: true
        }
    );
    crate::check_eq!(
        text,
        alloc::format!("kernel::kernel_main+0x4/{:#x}", main.size)
    );
});
