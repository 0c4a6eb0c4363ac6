//! The kernel's symbol table: `0xffffffff8020c792` becomes `kernel::main+0x22/0x30` on the console.
//!
//! The table cannot come from the link that produces it, so the kernel reserves a fixed-size
//! `.kallsyms` section holding only a header, and the host fills it in after linking
//! (`symbols::kallsyms::embed`, run by every `cadenza-qemu` build). The blob's layout and its
//! reader are `cadenza_abi::kallsyms`, shared with that builder.
//! Because the section's size never changes, no code address depends on its contents. A kernel
//! linked by plain `cargo build` keeps the empty template and prints raw addresses only.
//!
//! The blob is read as untrusted bytes: every offset is bounds-checked, so a damaged table gives
//! `?`, never a fault.

use core::cell::UnsafeCell;
use core::fmt;

use cadenza_abi::kallsyms::{Table, template};

/// Bytes reserved for the table (entries plus names).
pub const KALLSYMS_CAPACITY: usize = 512 * 1024;

/// Written by the host after linking, never by the kernel: an `UnsafeCell` so that the compiler
/// does not assume the bytes are still the template's.
#[repr(C, align(8))]
struct Blob(UnsafeCell<[u8; KALLSYMS_CAPACITY]>);

// SAFETY: the kernel only ever reads the blob.
unsafe impl Sync for Blob {}

#[used]
// SAFETY: `.kallsyms` is a section of its own that the linker script keeps in the read-only image.
#[unsafe(link_section = ".kallsyms")]
static KALLSYMS: Blob = Blob(UnsafeCell::new(template()));

fn blob() -> &'static [u8] {
    // SAFETY: the static is valid for its whole size and nothing writes it at run time.
    unsafe { &*KALLSYMS.0.get() }
}

/// The validated table (`None` if the blob is damaged).
fn table() -> Option<Table<'static>> {
    Table::parse(blob()).ok()
}

/// A function found in the table.
pub type Symbol = cadenza_abi::kallsyms::Symbol<'static>;

/// The function containing `address`.
pub fn lookup(address: u64) -> Option<Symbol> {
    table()?.lookup(address)
}

/// A function by exact (demangled, hash-free) name.
pub fn find(name: &str) -> Option<Symbol> {
    table()?.find(name)
}

/// Number of functions in the embedded table (0 for a kernel linked without `embed`).
pub fn count() -> usize {
    table().map_or(0, |t| t.len())
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
