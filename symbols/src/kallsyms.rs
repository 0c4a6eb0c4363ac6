//! The kernel's own symbol table ("kallsyms"), built on the host and written into the kernel ELF.
//!
//! A kernel cannot read its ELF symbol table at run time (QEMU loads only `PT_LOAD` segments),
//! and on stable Rust there is no way to feed the final link's symbols back into the same link.
//! Linux solves this with a multi-pass link; we do the equivalent in one step after the link:
//! the kernel reserves a fixed-size `.kallsyms` section (so no code address depends on the
//! table's contents), and `embed` fills it from the ELF's own function symbols. The kernel then
//! prints `symbol+0xoff/0xsize` next to every backtrace address, in release builds too.
//!
//! The blob's layout (header, entries, names) is `cadenza_abi::kallsyms`, the same types the
//! kernel's reader (`kernel/src/debug/kallsyms.rs`) uses; this module builds the table from the
//! ELF and writes it into the section.
//!
//! The template the kernel is linked with has the magic and `count = 0`, so a kernel built by
//! plain `cargo build` still boots and simply prints raw addresses.

use std::path::Path;

use object::{Object, ObjectSection};
use thiserror::Error;

use crate::elf_symbols::SymbolTable;

use cadenza_abi::kallsyms::{Header, Table};
pub use cadenza_abi::kallsyms::{MAGIC, MAX_NAME_LEN, SECTION};

#[derive(Debug, Error)]
pub enum KallsymsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid ELF file: {reason}")]
    NotElf { path: String, reason: String },
    #[error("{path} has no {SECTION} section: is it a Cadenza kernel?")]
    NoSection { path: String },
    #[error("{path} has no function symbols (stripped?)")]
    NoSymbols { path: String },
    #[error(
        "the symbol table needs {needed} bytes but {SECTION} holds {capacity}: raise \
         KALLSYMS_CAPACITY in kernel/src/debug/kallsyms.rs"
    )]
    TooLarge { needed: usize, capacity: usize },
    #[error("malformed kallsyms blob: {0}")]
    Malformed(&'static str),
}

/// One decoded entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub address: u64,
    pub size: u32,
    pub name: String,
}

/// What `embed` wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbedStats {
    pub symbols: usize,
    pub bytes: usize,
    pub capacity: usize,
}

/// Encodes `table` as a v1 blob.
pub fn encode(table: &SymbolTable) -> Vec<u8> {
    cadenza_abi::kallsyms::encode(
        table
            .symbols()
            .iter()
            .map(|s| (s.address, s.size, s.name.as_str())),
    )
}

/// Decodes a blob (trailing zero padding is ignored).
pub fn decode(blob: &[u8]) -> Result<Vec<Entry>, KallsymsError> {
    let malformed = |error: cadenza_abi::kallsyms::LayoutError| {
        KallsymsError::Malformed(match error {
            cadenza_abi::kallsyms::LayoutError::BadMagic => "bad magic",
            cadenza_abi::kallsyms::LayoutError::ShortHeader => "short header",
            cadenza_abi::kallsyms::LayoutError::Overrun => "tables overrun the blob",
            cadenza_abi::kallsyms::LayoutError::NoSuchEntry => "entry out of range",
            cadenza_abi::kallsyms::LayoutError::NameOffset => "name offset out of range",
            cadenza_abi::kallsyms::LayoutError::BadName => "bad name",
        })
    };
    Table::parse(blob)
        .map_err(malformed)?
        .entries()
        .map(|entry| {
            let symbol = entry.map_err(malformed)?;
            Ok(Entry {
                address: symbol.address,
                size: u32::try_from(symbol.size).unwrap_or(u32::MAX),
                name: symbol.name.to_owned(),
            })
        })
        .collect()
}

/// Fills the `.kallsyms` section of the kernel ELF at `path` in place. Idempotent.
pub fn embed(path: &Path) -> Result<EmbedStats, KallsymsError> {
    let display = path.display().to_string();
    let mut data = std::fs::read(path).map_err(|source| KallsymsError::Read {
        path: display.clone(),
        source,
    })?;
    let (blob, file_offset, capacity) = {
        let file = object::File::parse(&*data).map_err(|e| KallsymsError::NotElf {
            path: display.clone(),
            reason: e.to_string(),
        })?;
        let section = file
            .section_by_name(SECTION)
            .ok_or_else(|| KallsymsError::NoSection {
                path: display.clone(),
            })?;
        let (file_offset, capacity) =
            section
                .file_range()
                .ok_or_else(|| KallsymsError::NoSection {
                    path: display.clone(),
                })?;
        let table = SymbolTable::from_object(&file);
        if table.is_empty() {
            return Err(KallsymsError::NoSymbols { path: display });
        }
        (encode(&table), file_offset as usize, capacity as usize)
    };
    if blob.len() > capacity {
        return Err(KallsymsError::TooLarge {
            needed: blob.len(),
            capacity,
        });
    }
    let region = &mut data[file_offset..file_offset + capacity];
    if region[..blob.len()] != blob[..] || region[blob.len()..].iter().any(|&b| b != 0) {
        region[..blob.len()].copy_from_slice(&blob);
        region[blob.len()..].fill(0);
        // Write to a sibling and rename, so an interrupted write never leaves half a kernel.
        let temp = path.with_extension("kallsyms-tmp");
        std::fs::write(&temp, &data)
            .and_then(|()| std::fs::set_permissions(&temp, std::fs::metadata(path)?.permissions()))
            .and_then(|()| std::fs::rename(&temp, path))
            .map_err(|source| KallsymsError::Write {
                path: display,
                source,
            })?;
    }
    Ok(EmbedStats {
        symbols: Header::parse(&blob).map_or(0, |h| h.count as usize),
        bytes: blob.len(),
        capacity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf_symbols::FunctionSymbol;

    fn symbol(address: u64, size: u64, name: &str) -> FunctionSymbol {
        FunctionSymbol {
            address,
            size,
            name: name.into(),
            mangled: name.into(),
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let long = "λ".repeat(200); // 400 bytes: cut at a character boundary
        let table = SymbolTable::from_symbols(vec![
            symbol(0xffff_ffff_8020_0000, 0x40, "kernel::main"),
            symbol(0x20_0000, 0x10, "pvh_start32"),
            symbol(0xffff_ffff_8020_0040, 0x8, &long),
        ]);
        let entries = decode(&encode(&table)).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].name, "pvh_start32");
        assert_eq!(entries[1].address, 0xffff_ffff_8020_0000);
        assert_eq!(entries[1].size, 0x40);
        assert_eq!(entries[2].name.len(), 254);
        assert!(long.starts_with(&entries[2].name));
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(decode(b"").is_err());
        assert!(decode(b"CDZKSYM1\xff\xff\xff\xff\0\0\0\0").is_err());
        let mut blob = encode(&SymbolTable::from_symbols(vec![symbol(1, 1, "a")]));
        let last = blob.len() - 2;
        blob[last] = 0xff; // the name's length byte now runs past the area
        assert!(decode(&blob).is_err());
    }
}
