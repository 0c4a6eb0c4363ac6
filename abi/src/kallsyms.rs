//! The layout of the kernel's embedded symbol table (`.kallsyms`): written by the host after
//! the link (`symbols::kallsyms::embed`), read by the kernel (`kernel/src/debug/kallsyms.rs`).
//!
//! The kernel cannot read its own ELF symbol table at run time and cannot feed the final link's
//! symbols back into that link, so it reserves a fixed-size `.kallsyms` section holding only a
//! header and the host fills it in afterwards. The builder and the reader used to each spell
//! out the offsets; here the layout is one set of types, the builder's `encode` and the
//! reader's `Table`, and the host tests run the reader over what the builder wrote.
//!
//! Blob format v1, little-endian:
//!
//! ```text
//! 0   magic  "CDZKSYM1"
//! 8   u32    count            functions, sorted by address, non-overlapping
//! 12  u32    names_len        bytes of the name area
//! 16  entry[count]            u64 address, u32 size, u32 name_offset (into the name area)
//! ..  names                   u8 length, then that many bytes of UTF-8, per name
//! ```
//!
//! The template the kernel is linked with has the magic and `count = 0`, so a kernel built by
//! plain `cargo build` boots with an empty table. The reader treats the blob as untrusted
//! bytes: every offset is checked, so a damaged table gives errors, never a fault.

use alloc::vec::Vec;

/// The ELF section the table lives in.
pub const SECTION: &str = ".kallsyms";
pub const MAGIC: &[u8; 8] = b"CDZKSYM1";
/// `magic`, `count`, `names_len`.
pub const HEADER_LEN: usize = 16;
/// `address` (u64), `size` (u32), `name_offset` (u32).
pub const ENTRY_LEN: usize = 16;
/// Longer names are cut (at a character boundary) to this many bytes: the length is one byte.
pub const MAX_NAME_LEN: usize = 255;

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub count: u32,
    pub names_len: u32,
}

impl Header {
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&self.count.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.names_len.to_le_bytes());
        bytes
    }

    pub fn parse(blob: &[u8]) -> Result<Self, LayoutError> {
        if blob.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err(LayoutError::BadMagic);
        }
        Ok(Self {
            count: u32_at(blob, 8).ok_or(LayoutError::ShortHeader)?,
            names_len: u32_at(blob, 12).ok_or(LayoutError::ShortHeader)?,
        })
    }
}

/// One entry of the table, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEntry {
    pub address: u64,
    pub size: u32,
    /// Where the name's length byte is, in the name area.
    pub name_offset: u32,
}

impl RawEntry {
    pub fn to_bytes(self) -> [u8; ENTRY_LEN] {
        let mut bytes = [0; ENTRY_LEN];
        bytes[..8].copy_from_slice(&self.address.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.size.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.name_offset.to_le_bytes());
        bytes
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            address: u64_at(bytes, 0)?,
            size: u32_at(bytes, 8)?,
            name_offset: u32_at(bytes, 12)?,
        })
    }
}

/// What is wrong with a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("bad magic")]
    BadMagic,
    #[error("short header")]
    ShortHeader,
    #[error("tables overrun the blob")]
    Overrun,
    #[error("entry index out of range")]
    NoSuchEntry,
    #[error("name offset out of range")]
    NameOffset,
    #[error("bad name")]
    BadName,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// `name` cut to `MAX_NAME_LEN` bytes at a character boundary.
pub fn truncated_name(name: &str) -> &str {
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let mut end = MAX_NAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Encodes `(address, size, name)` functions, already sorted by address, as a v1 blob. Sizes
/// above `u32::MAX` are clamped; names are cut with `truncated_name`.
pub fn encode<'n>(symbols: impl IntoIterator<Item = (u64, u64, &'n str)>) -> Vec<u8> {
    let mut names = Vec::new();
    let mut entries = Vec::new();
    let mut count = 0u32;
    for (address, size, name) in symbols {
        let name = truncated_name(name);
        let entry = RawEntry {
            address,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            name_offset: u32::try_from(names.len()).unwrap_or(u32::MAX),
        };
        entries.extend_from_slice(&entry.to_bytes());
        // `truncated_name` keeps the length within one byte.
        names.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        names.extend_from_slice(name.as_bytes());
        count += 1;
    }
    let header = Header {
        count,
        names_len: u32::try_from(names.len()).unwrap_or(u32::MAX),
    };
    let mut blob = Vec::with_capacity(HEADER_LEN + entries.len() + names.len());
    blob.extend_from_slice(&header.to_bytes());
    blob.extend_from_slice(&entries);
    blob.extend_from_slice(&names);
    blob
}

/// A function of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub name: &'a str,
    pub address: u64,
    pub size: u64,
}

/// A validated view of a blob (trailing bytes, such as the section's zero padding, ignored).
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    entries: &'a [u8],
    names: &'a [u8],
    count: usize,
}

impl<'a> Table<'a> {
    /// Checks the header and that the entry and name areas fit in `blob`.
    pub fn parse(blob: &'a [u8]) -> Result<Self, LayoutError> {
        let header = Header::parse(blob)?;
        let count = header.count as usize;
        let entries_end = count
            .checked_mul(ENTRY_LEN)
            .and_then(|len| len.checked_add(HEADER_LEN))
            .ok_or(LayoutError::Overrun)?;
        let names_end = entries_end
            .checked_add(header.names_len as usize)
            .ok_or(LayoutError::Overrun)?;
        Ok(Self {
            entries: blob
                .get(HEADER_LEN..entries_end)
                .ok_or(LayoutError::Overrun)?,
            names: blob
                .get(entries_end..names_end)
                .ok_or(LayoutError::Overrun)?,
            count,
        })
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `index`, its name checked.
    pub fn entry(&self, index: usize) -> Result<Symbol<'a>, LayoutError> {
        let at = index
            .checked_mul(ENTRY_LEN)
            .ok_or(LayoutError::NoSuchEntry)?;
        let raw = self
            .entries
            .get(at..)
            .and_then(RawEntry::parse)
            .ok_or(LayoutError::NoSuchEntry)?;
        let offset = raw.name_offset as usize;
        let len = *self.names.get(offset).ok_or(LayoutError::NameOffset)? as usize;
        let name = self
            .names
            .get(offset + 1..offset + 1 + len)
            .and_then(|n| core::str::from_utf8(n).ok())
            .ok_or(LayoutError::BadName)?;
        Ok(Symbol {
            name,
            address: raw.address,
            size: u64::from(raw.size),
        })
    }

    /// Entry `index`'s start address (`u64::MAX` past the end, so searches stop there).
    fn address(&self, index: usize) -> u64 {
        index
            .checked_mul(ENTRY_LEN)
            .and_then(|at| u64_at(self.entries, at))
            .unwrap_or(u64::MAX)
    }

    /// The function containing `address`.
    pub fn lookup(&self, address: u64) -> Option<Symbol<'a>> {
        // Entries are sorted by address: find the last one starting at or below `address`.
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.address(mid) <= address {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let symbol = self.entry(low.checked_sub(1)?).ok()?;
        (address - symbol.address < symbol.size).then_some(symbol)
    }

    /// A function by exact name.
    pub fn find(&self, name: &str) -> Option<Symbol<'a>> {
        (0..self.count)
            .filter_map(|i| self.entry(i).ok())
            .find(|s| s.name == name)
    }

    /// Every entry in order, each checked.
    pub fn entries(&self) -> impl Iterator<Item = Result<Symbol<'a>, LayoutError>> + '_ {
        (0..self.count).map(|i| self.entry(i))
    }
}

/// The blob the kernel is linked with: the magic and an empty table, zero-padded to `N`.
pub const fn template<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let mut i = 0;
    while i < MAGIC.len() && i < N {
        bytes[i] = MAGIC[i];
        i += 1;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn the_reader_reads_what_the_builder_writes() {
        let long = "λ".repeat(200); // 400 bytes: cut at a character boundary
        let mut blob = encode([
            (0x20_0000, 0x10, "pvh_start32"),
            (0xffff_ffff_8020_0000, 0x40, "kernel::main"),
            (0xffff_ffff_8020_0040, 0x8, long.as_str()),
        ]);
        blob.resize(blob.len() + 100, 0); // the section's padding
        let table = Table::parse(&blob).unwrap();
        assert_eq!(table.len(), 3);
        let main = table.find("kernel::main").unwrap();
        assert_eq!((main.address, main.size), (0xffff_ffff_8020_0000, 0x40));
        assert_eq!(table.lookup(0xffff_ffff_8020_003f), Some(main));
        assert_eq!(table.lookup(0xffff_ffff_8020_0000 - 1), None);
        assert_eq!(table.lookup(0), None);
        assert_eq!(table.lookup(u64::MAX), None);
        let cut = table.entry(2).unwrap().name;
        assert_eq!(cut.len(), 254);
        assert!(long.starts_with(cut));
        assert_eq!(table.entry(3), Err(LayoutError::NoSuchEntry));
    }

    #[test]
    fn the_template_is_an_empty_table() {
        let template = template::<64>();
        let table = Table::parse(&template).unwrap();
        assert!(table.is_empty());
        assert_eq!(table.lookup(0x1000), None);
    }

    #[test]
    fn damaged_blobs_are_errors_not_faults() {
        assert_eq!(Table::parse(b"").err(), Some(LayoutError::BadMagic));
        assert_eq!(
            Table::parse(b"CDZKSYM1\x01").err(),
            Some(LayoutError::ShortHeader)
        );
        assert_eq!(
            Table::parse(b"CDZKSYM1\xff\xff\xff\xff\0\0\0\0").err(),
            Some(LayoutError::Overrun)
        );
        let mut blob = encode([(1, 1, "a")]);
        let last = blob.len() - 2;
        blob[last] = 0xff; // the name's length byte now runs past the area
        let table = Table::parse(&blob).unwrap();
        assert_eq!(table.entry(0), Err(LayoutError::BadName));
        assert_eq!(table.lookup(1), None);
        let mut blob = encode([(1, 1, "a")]);
        blob[HEADER_LEN + 12] = 9; // name offset past the name area
        assert_eq!(
            Table::parse(&blob).unwrap().entry(0),
            Err(LayoutError::NameOffset)
        );
        // Random bytes after the magic never panic.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            let mut blob = String::from("CDZKSYM1").into_bytes();
            for _ in 0..(state % 80) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                blob.push((state % 7) as u8);
            }
            if let Ok(table) = Table::parse(&blob) {
                let _ = table.lookup(state % 8);
                let _ = table.entries().count();
            }
        }
    }
}
