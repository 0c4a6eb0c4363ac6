//! The function symbols of an ELF image, demangled and sorted: the answer to "which function is
//! this address in, and where does it start and end".
//!
//! DWARF answers "which source line", but only the symbol table gives a function's exact start
//! and size, which is what `symbol+0xoff/0xsize` (Linux's kallsyms notation) needs and what the
//! in-kernel table is built from. Both the host symbolizer and the kallsyms embedder read it here
//! so the kernel and the host always name an address the same way.

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// One function in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSymbol {
    pub address: u64,
    pub size: u64,
    /// Demangled, without Rust's `::h0123abcd` hash suffix.
    pub name: String,
    /// As in the symbol table.
    pub mangled: String,
}

impl FunctionSymbol {
    /// The first address after the function (saturating: a table keeps only symbols that fit
    /// in the address space, but the fields are public).
    pub fn end(&self) -> u64 {
        self.address.saturating_add(self.size)
    }

    pub fn contains(&self, address: u64) -> bool {
        self.address <= address && address < self.end()
    }
}

/// Sorted by address, non-overlapping.
#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    symbols: Vec<FunctionSymbol>,
}

/// Demangles a Rust (legacy or v0) name, dropping the hash; other names are returned unchanged.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(demangled) => format!("{demangled:#}"),
        Err(_) => name.to_owned(),
    }
}

impl SymbolTable {
    /// Every sized function symbol in an executable section. Aliases (several names for one
    /// address) keep the first name in symbol-table order; overlaps are trimmed so that each
    /// address belongs to at most one function.
    pub fn from_object<'data>(file: &impl Object<'data>) -> Self {
        let executable: Vec<_> = file
            .sections()
            .filter(|s| s.kind() == SectionKind::Text)
            .map(|s| s.index())
            .collect();
        let symbols: Vec<FunctionSymbol> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .filter(|s| s.section_index().is_some_and(|i| executable.contains(&i)))
            .filter_map(|s| {
                let mangled = s.name().ok()?;
                Some(FunctionSymbol {
                    address: s.address(),
                    size: s.size(),
                    name: demangle(mangled),
                    mangled: mangled.to_owned(),
                })
            })
            .collect();
        Self::from_symbols(symbols)
    }

    /// A table from already-extracted symbols (sorted and trimmed like `from_object`). A symbol
    /// that runs past the end of the address space comes from a corrupt image: it is dropped
    /// rather than claim every address above it.
    pub fn from_symbols(mut symbols: Vec<FunctionSymbol>) -> Self {
        symbols.retain(|s| s.address.checked_add(s.size).is_some());
        symbols.sort_by_key(|s| s.address);
        symbols.dedup_by_key(|s| s.address);
        trim_overlaps(&mut symbols);
        Self { symbols }
    }

    pub fn symbols(&self) -> &[FunctionSymbol] {
        &self.symbols
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The function containing `address`.
    pub fn lookup(&self, address: u64) -> Option<&FunctionSymbol> {
        let index = self.symbols.partition_point(|s| s.address <= address);
        let candidate = self.symbols.get(index.checked_sub(1)?)?;
        candidate.contains(address).then_some(candidate)
    }

    /// A function by demangled name (with or without hash) or mangled name.
    pub fn by_name(&self, name: &str) -> Option<&FunctionSymbol> {
        self.symbols
            .iter()
            .find(|s| s.name == name || s.mangled == name)
            .or_else(|| {
                let demangled = demangle(name);
                self.symbols.iter().find(|s| s.name == demangled)
            })
    }

    /// `[lowest start, highest end)` over all functions.
    pub fn text_range(&self) -> Option<(u64, u64)> {
        let first = self.symbols.first()?;
        let end = self.symbols.iter().map(FunctionSymbol::end).max()?;
        Some((first.address, end))
    }
}

fn trim_overlaps(symbols: &mut [FunctionSymbol]) {
    for i in 1..symbols.len() {
        let next_start = symbols[i].address;
        let previous = &mut symbols[i - 1];
        if previous.end() > next_start {
            previous.size = next_start - previous.address;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_rust_names_without_hash() {
        assert_eq!(
            demangle("_ZN6kernel5debug5crash10panic_test17h0123456789abcdefE"),
            "kernel::debug::crash::panic_test"
        );
        assert_eq!(demangle("pvh_start32"), "pvh_start32");
    }

    #[test]
    fn lookup_respects_function_bounds() {
        let table = SymbolTable::from_symbols(vec![
            FunctionSymbol {
                address: 0x1000,
                size: 0x10,
                name: "a".into(),
                mangled: "a".into(),
            },
            FunctionSymbol {
                address: 0x1020,
                size: 0x8,
                name: "b".into(),
                mangled: "b".into(),
            },
        ]);
        assert_eq!(table.lookup(0x1000).unwrap().name, "a");
        assert_eq!(table.lookup(0x100f).unwrap().name, "a");
        assert!(table.lookup(0x1010).is_none(), "the gap between a and b");
        assert_eq!(table.lookup(0x1027).unwrap().name, "b");
        assert!(table.lookup(0x1028).is_none());
        assert!(table.lookup(0xfff).is_none());
        assert_eq!(table.by_name("b").unwrap().address, 0x1020);
        assert_eq!(table.text_range(), Some((0x1000, 0x1028)));
    }

    /// A symbol whose address + size runs past 2^64 (a damaged symbol table): `end()`
    /// overflowed in `trim_overlaps`/`text_range`. Found by `fuzz_symbolizer_images`
    /// (symbols/tests/fuzz.rs). It is dropped; the others still resolve.
    #[test]
    fn a_symbol_past_the_end_of_the_address_space_is_dropped() {
        let symbol = |address, size, name: &str| FunctionSymbol {
            address,
            size,
            name: name.into(),
            mangled: name.into(),
        };
        let table = SymbolTable::from_symbols(vec![
            symbol(0x1000, 0x10, "a"),
            symbol(u64::MAX - 4, 0x100, "broken"),
        ]);
        assert_eq!(table.symbols().len(), 1);
        assert_eq!(table.lookup(0x1000).unwrap().name, "a");
        assert!(table.lookup(u64::MAX - 1).is_none());
        assert_eq!(table.text_range(), Some((0x1000, 0x1010)));
        assert_eq!(symbol(u64::MAX - 4, 0x100, "x").end(), u64::MAX);
    }
}
