//! `Symbolizer` against real ELF files built from `fixtures/inline.rs` by the test itself.

mod fixtures;

use std::path::Path;

use fixtures::{Fixture, Variant, fixture, scratch_dir, workspace_root};
use object::{Object, ObjectSection};
use symbols::elf_symbols::FunctionSymbol;
use symbols::{AddressKind, OpenOptions, Resolution, Symbolizer, SymbolsError};

const FILE: &str = "symbols/tests/fixtures/inline.rs";

fn open(variant: Variant) -> Symbolizer {
    let options = OpenOptions {
        source_root: Some(workspace_root()),
        require_debug_info: false,
    };
    Symbolizer::open_with(&fixture(variant).elf, &options).expect("fixture opens")
}

fn function<'a>(symbolizer: &'a Symbolizer, name: &str) -> &'a FunctionSymbol {
    symbolizer
        .symbols()
        .by_name(name)
        .unwrap_or_else(|| panic!("fixture has no function {name}"))
}

/// Every resolution of the bytes of `name`, exact.
fn resolve_all(symbolizer: &Symbolizer, name: &str) -> Vec<Resolution> {
    let function = function(symbolizer, name);
    (function.address..function.end())
        .map(|address| {
            symbolizer
                .resolve(address)
                .expect("address inside a function")
        })
        .collect()
}

/// The machine code of `function`, read straight from the file.
fn code(fixture: &Fixture, function: &FunctionSymbol) -> Vec<u8> {
    let data = std::fs::read(&fixture.elf).expect("read fixture");
    let file = object::File::parse(&*data).expect("parse fixture");
    let section = file
        .sections()
        .find(|s| s.address() <= function.address && function.end() <= s.address() + s.size())
        .expect("function lies in a section");
    let bytes = section
        .data_range(function.address, function.size)
        .expect("section data")
        .expect("function inside section");
    bytes.to_vec()
}

/// The return address of `caller`'s direct call to `callee` (the byte after `call rel32`).
fn return_address_of_call(fixture: &Fixture, caller: &FunctionSymbol, callee: u64) -> u64 {
    let code = code(fixture, caller);
    (0..code.len().saturating_sub(4))
        .find_map(|i| {
            let rel = i32::from_le_bytes(code[i + 1..i + 5].try_into().ok()?);
            let next = caller.address + i as u64 + 5;
            (code[i] == 0xe8 && next.wrapping_add_signed(i64::from(rel)) == callee).then_some(next)
        })
        .expect("caller contains a direct call to callee")
}

#[test]
fn reports_inlined_frames_innermost_first_with_call_sites() {
    let fixture = fixture(Variant::Debug);
    let symbolizer = open(Variant::Debug);
    let helper_body = fixture.line_of("helper-body");
    let helper_call = fixture.line_of("helper-call");

    let resolutions = resolve_all(&symbolizer, "inline::outer");
    let inlined = resolutions
        .iter()
        .find(|r| {
            r.frames.len() == 2
                && r.frames[0].function.as_deref() == Some("inline::helper")
                && r.frames[0].line == Some(helper_body)
        })
        .unwrap_or_else(|| {
            panic!("no address in inline::outer resolves into the inlined helper: {resolutions:#?}")
        });
    let (helper, outer) = (&inlined.frames[0], &inlined.frames[1]);
    assert!(helper.inlined, "the helper is inlined: {helper:?}");
    assert_eq!(helper.file.as_deref(), Some(FILE));
    assert_eq!(outer.function.as_deref(), Some("inline::outer"));
    assert!(!outer.inlined, "the outermost frame is the real function");
    assert_eq!(outer.file.as_deref(), Some(FILE));
    assert_eq!(
        outer.line,
        Some(helper_call),
        "the outer frame is at the call site"
    );
    assert_eq!(
        helper.to_string(),
        format!(
            "inline::helper at {FILE}:{helper_body}:{} [inlined]",
            helper.column.expect("column")
        )
    );

    // Every frame list ends in exactly one non-inlined frame, whatever the address.
    for resolution in &resolutions {
        let (last, inner) = resolution.frames.split_last().expect("DWARF covers outer");
        assert!(!last.inlined);
        assert!(inner.iter().all(|f| f.inlined), "{resolution:#?}");
        assert_eq!(last.function.as_deref(), Some("inline::outer"));
    }
}

#[test]
fn demangles_module_generic_trait_and_no_mangle_names() {
    let fixture = fixture(Variant::Debug);
    let symbolizer = open(Variant::Debug);
    let names: Vec<&str> = symbolizer
        .symbols()
        .symbols()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    for expected in [
        "inline::outer",
        "inline::shapes::total",
        "<inline::shapes::Square as inline::shapes::Area>::area",
        "cadenza_fixture_entry",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(expected)),
            "{expected} missing"
        );
    }
    let total = names
        .iter()
        .find(|n| n.starts_with("inline::shapes::total"))
        .expect("total");
    assert!(!total.contains("::h"), "hash kept: {total}");
    let mangled = &function(&symbolizer, total).mangled;
    assert!(
        mangled.starts_with("_ZN") || mangled.starts_with("_R"),
        "{mangled}"
    );

    // DWARF names are demangled too, and match the symbol table's.
    let area = "<inline::shapes::Square as inline::shapes::Area>::area";
    let square_area = fixture.line_of("square-area");
    let resolutions = resolve_all(&symbolizer, area);
    assert!(
        resolutions.iter().any(|r| {
            let frame = &r.frames[0];
            frame.function.as_deref() == Some(area) && frame.line == Some(square_area)
        }),
        "{resolutions:#?}"
    );
    let resolution = &resolutions[0];
    assert_eq!(
        resolution.symbol.as_ref().expect("symbol").name.as_ref(),
        area
    );
}

#[test]
fn function_boundaries() {
    let symbolizer = open(Variant::Debug);
    let outer = function(&symbolizer, "inline::outer").clone();

    let first = symbolizer.resolve(outer.address).expect("first byte");
    let symbol = first.symbol.expect("symbol at first byte");
    assert_eq!((symbol.name.as_ref(), symbol.offset), ("inline::outer", 0));
    assert_eq!(symbol.size, outer.size);
    assert_eq!(symbol.start, outer.address);

    let last = symbolizer.resolve(outer.end() - 1).expect("last byte");
    let symbol = last.symbol.expect("symbol at last byte");
    assert_eq!(
        (symbol.name.as_ref(), symbol.offset),
        ("inline::outer", outer.size - 1)
    );
    assert_eq!(
        symbol.to_string(),
        format!("inline::outer+{:#x}/{:#x}", outer.size - 1, outer.size)
    );

    // One past the end: the next function if it starts right there, else padding (no symbol).
    let next = symbolizer
        .symbols()
        .symbols()
        .iter()
        .find(|s| s.address >= outer.end())
        .cloned();
    match symbolizer.resolve(outer.end()) {
        Ok(resolution) => match resolution.symbol {
            Some(symbol) => {
                let next = next.expect("a symbol after outer");
                assert_eq!(next.address, outer.end());
                assert_eq!(
                    (symbol.name.as_ref(), symbol.offset),
                    (next.name.as_str(), 0)
                );
            }
            None => assert!(next.is_none_or(|n| n.address > outer.end())),
        },
        Err(error) => assert!(
            matches!(error, SymbolsError::AddressOutsideImage { .. }),
            "{error}"
        ),
    }

    // A return address at a function's first byte: the frames and the function are those of
    // the byte before it (another function, or padding), the offset that of the address itself
    // (Linux's `%pB`): never `outer+0x0`.
    let resolution = symbolizer
        .resolve_return_address(outer.address)
        .expect("inside text");
    assert_eq!(resolution.kind, AddressKind::ReturnAddress);
    assert_eq!(resolution.lookup_address, outer.address - 1);
    if let Some(symbol) = &resolution.symbol {
        assert_ne!(symbol.name.as_ref(), "inline::outer");
        assert_eq!(symbol.start + symbol.offset, outer.address);
        assert_eq!(
            symbol.offset, symbol.size,
            "the end of the previous function"
        );
    }
    // One past the end of `outer`, as a return address: `outer+size/size`.
    let end = symbolizer
        .resolve_return_address(outer.end())
        .expect("inside text")
        .symbol
        .expect("outer");
    assert_eq!(
        (end.name.as_ref(), end.offset, end.size),
        ("inline::outer", outer.size, outer.size)
    );
    assert!(
        resolution
            .frames
            .iter()
            .all(|f| f.function.as_deref() != Some("inline::outer")),
        "{:#?}",
        resolution.frames
    );
}

#[test]
fn return_addresses_report_the_call_line() {
    let fixture = fixture(Variant::Debug);
    let symbolizer = open(Variant::Debug);
    let entry = function(&symbolizer, "cadenza_fixture_entry").clone();
    let outer = function(&symbolizer, "inline::outer").clone();
    let return_address = return_address_of_call(fixture, &entry, outer.address);

    let resolution = symbolizer
        .resolve_return_address(return_address)
        .expect("resolves");
    assert_eq!(resolution.address, return_address);
    assert_eq!(resolution.lookup_address, return_address - 1);
    let symbol = resolution.symbol.as_ref().expect("symbol");
    assert_eq!(symbol.name.as_ref(), "cadenza_fixture_entry");
    assert_eq!(
        symbol.offset,
        return_address - entry.address,
        "offset of the address itself"
    );
    let frame = resolution.innermost().expect("frame");
    assert_eq!(frame.function.as_deref(), Some("cadenza_fixture_entry"));
    assert_eq!(frame.line, Some(fixture.line_of("outer-call")));
}

#[test]
fn symbol_offsets_round_trip_through_parse_address() {
    let symbolizer = open(Variant::Debug);
    let symbols = symbolizer.symbols().symbols();
    let unique = |s: &&FunctionSymbol| symbols.iter().filter(|o| o.name == s.name).count() == 1;
    let mut checked = 0;
    for symbol in symbols.iter().filter(unique) {
        for offset in [0, symbol.size / 2, symbol.size - 1] {
            let address = symbol.address + offset;
            let printed = symbolizer
                .resolve(address)
                .expect("resolves")
                .symbol
                .expect("has a symbol")
                .to_string();
            assert_eq!(
                symbolizer.parse_address(&printed).ok(),
                Some(address),
                "{printed}"
            );
            let (without_size, _) = printed.rsplit_once('/').expect("has /size");
            assert_eq!(symbolizer.parse_address(without_size).ok(), Some(address));
            let mangled = format!("{}+{offset:#x}", symbol.mangled);
            assert_eq!(
                symbolizer.parse_address(&mangled).ok(),
                Some(address),
                "{mangled}"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} round trips");

    let outer = function(&symbolizer, "inline::outer").clone();
    let hashed = outer.mangled.clone();
    for (text, expected) in [
        (format!("{:#x}", outer.address), outer.address),
        (format!("{:x}", outer.address), outer.address),
        (format!("  0X{:X}  ", outer.address), outer.address),
        ("inline::outer".to_owned(), outer.address),
        (hashed.clone(), outer.address),
        (format!("{hashed}+0x3"), outer.address + 3),
        ("inline::outer+0x2/0xffff".to_owned(), outer.address + 2),
        ("0xffff_ffff_8000_0000".to_owned(), 0xffff_ffff_8000_0000),
    ] {
        assert_eq!(
            symbolizer.parse_address(&text).ok(),
            Some(expected),
            "{text:?}"
        );
    }
    // Demangled with hash, as `{:?}`-style demanglers print it.
    let hash = hashed
        .trim_end_matches('E')
        .rsplit_once("17h")
        .map(|(_, hash)| hash.to_owned());
    if let Some(hash) = hash.filter(|h| h.len() == 16) {
        let text = format!("inline::outer::h{hash}+0x1");
        assert_eq!(
            symbolizer.parse_address(&text).ok(),
            Some(outer.address + 1),
            "{text}"
        );
    }
}

#[test]
fn parse_address_rejects_bad_text_with_the_right_error() {
    let symbolizer = open(Variant::Debug);
    for text in [
        "",
        "   ",
        "0x",
        "0xzz",
        "0x1ffffffffffffffff",
        "inline::outer+12",
        "inline::outer+0x",
        "inline::outer+0x1/zz",
        "inline::outer+0x1/0x",
    ] {
        match symbolizer.parse_address(text) {
            Err(SymbolsError::InvalidAddress { text: got, .. }) => assert_eq!(got, text),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    for text in ["no_such_function", "no_such_function+0x10", "kernel::x::y"] {
        match symbolizer.parse_address(text) {
            Err(error @ SymbolsError::UnknownSymbol { .. }) => {
                assert!(error.to_string().contains("unknown symbol"), "{error}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn addresses_outside_the_text_are_errors() {
    let symbolizer = open(Variant::Debug);
    let (_, text_end) = symbolizer
        .text_ranges()
        .iter()
        .map(|r| (r.start, r.end))
        .max()
        .expect("text");
    for address in [0, 1, 0x10, text_end, u64::MAX] {
        match symbolizer.resolve(address) {
            Err(SymbolsError::AddressOutsideImage { address: got }) => assert_eq!(got, address),
            other => panic!("{address:#x}: {other:?}"),
        }
    }
    assert!(matches!(
        symbolizer.resolve_return_address(0),
        Err(SymbolsError::AddressOutsideImage { address: 0 })
    ));
    let error = symbolizer.resolve(0x10).unwrap_err().to_string();
    assert_eq!(error, "address 0x10 is outside the image's text");
}

#[test]
fn paths_are_relative_to_the_source_root() {
    let fixture = fixture(Variant::Debug);
    let outer = "inline::outer";

    let file_with = |root: Option<&Path>| {
        let mut symbolizer = Symbolizer::open(&fixture.elf).expect("opens");
        if let Some(root) = root {
            symbolizer.set_source_root(Some(root.to_path_buf()));
        }
        let address = function(&symbolizer, outer).address;
        let resolution = symbolizer.resolve(address).expect("resolves");
        resolution.frames.last().and_then(|f| f.file.clone())
    };
    let fixtures_dir = fixture.source.parent().expect("fixtures dir");
    assert_eq!(file_with(Some(fixtures_dir)).as_deref(), Some("inline.rs"));
    assert_eq!(file_with(Some(&workspace_root())).as_deref(), Some(FILE));
    // Not under the root: left as recorded.
    let elsewhere = scratch_dir("root-elsewhere");
    let absolute = fixture.source.to_string_lossy().into_owned();
    assert_eq!(
        file_with(Some(&elsewhere)).as_deref(),
        Some(absolute.as_str())
    );

    // The default root is the workspace found above the ELF, else the one we run in.
    let default_root = symbols::find_workspace_root(&fixture.elf).or_else(|| {
        std::env::current_dir()
            .ok()
            .and_then(|cwd| symbols::find_workspace_root(&cwd))
    });
    let symbolizer = Symbolizer::open(&fixture.elf).expect("opens");
    assert_eq!(symbolizer.source_root(), default_root.as_deref());
    if default_root.as_deref() == Some(workspace_root().as_path()) {
        assert_eq!(file_with(None).as_deref(), Some(FILE));
    }

    let mut symbolizer = symbolizer;
    symbolizer.set_source_root(None);
    let address = function(&symbolizer, outer).address;
    let frames = symbolizer.resolve(address).expect("resolves").frames;
    assert_eq!(
        frames.last().and_then(|f| f.file.as_deref()),
        Some(absolute.as_str())
    );
}

#[test]
fn finds_the_workspace_root_by_its_manifest() {
    let dir = scratch_dir("workspace-root");
    let nested = dir.join("crate/target/release");
    std::fs::create_dir_all(&nested).expect("mkdir");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"crate\"]\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("crate/Cargo.toml"),
        "[package]\n[workspace.package]\n",
    )
    .expect("write");
    assert_eq!(
        symbols::find_workspace_root(&nested.join("kernel")),
        Some(dir.clone())
    );
}

#[test]
fn one_symbolizer_answers_many_lookups_consistently() {
    let symbolizer = open(Variant::Debug);
    let outer = function(&symbolizer, "inline::outer").clone();
    let first: Vec<_> = (outer.address..outer.end())
        .map(|a| symbolizer.resolve(a).expect("resolves"))
        .collect();
    // Again, interleaved with other lookups: the caches must not change any answer.
    for (address, expected) in (outer.address..outer.end()).zip(&first) {
        let _ = symbolizer.resolve_return_address(address);
        assert_eq!(&symbolizer.resolve(address).expect("resolves"), expected);
    }
    let fresh = open(Variant::Debug);
    assert_eq!(fresh.resolve(outer.address + 3).ok().as_ref(), first.get(3));

    fn is_send<T: Send>(_: &T) {}
    is_send(&symbolizer);
}

#[test]
fn missing_file_names_the_path() {
    let path = scratch_dir("missing").join("no-such-kernel");
    let error = Symbolizer::open(&path).expect_err("missing file");
    assert!(matches!(error, SymbolsError::NotFound { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("{}: no such file", path.display())
    );

    let dir = scratch_dir("directory");
    let error = Symbolizer::open(&dir).expect_err("a directory");
    assert!(
        matches!(error, SymbolsError::Unreadable { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&dir.display().to_string()),
        "{error}"
    );
}

fn open_bytes(name: &str, bytes: &[u8]) -> (std::path::PathBuf, SymbolsError) {
    let path = scratch_dir("corrupt").join(name);
    std::fs::write(&path, bytes).expect("write");
    let error = Symbolizer::open(&path).expect_err("must not open");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "error names the file: {error}"
    );
    (path, error)
}

#[test]
fn truncated_and_corrupt_files_are_reported_not_panicked_on() {
    let elf = std::fs::read(&fixture(Variant::Debug).elf).expect("read fixture");

    for (name, length) in [("head-10", 10), ("head-100", 100), ("half", elf.len() / 2)] {
        let (_, error) = open_bytes(name, &elf[..length]);
        assert!(
            matches!(error, SymbolsError::Truncated { .. }),
            "{name}: {error:?}"
        );
        assert!(error.to_string().contains("truncated ELF"), "{error}");
    }
    // Cut off just before the end: the section header table is at the end of the file.
    let (_, error) = open_bytes("minus-1", &elf[..elf.len() - 1]);
    assert!(matches!(error, SymbolsError::Truncated { .. }), "{error:?}");

    // A damaged header: wrong section header entry size.
    let mut bad = elf.clone();
    bad[0x3a] = 0x10;
    bad[0x3b] = 0;
    let (_, error) = open_bytes("bad-shentsize", &bad);
    assert!(matches!(error, SymbolsError::Corrupt { .. }), "{error:?}");

    // ELF magic, then noise.
    let mut noise: Vec<u8> = b"\x7fELF".to_vec();
    noise.extend(pseudo_random_bytes(4096, 7));
    let (_, error) = open_bytes("elf-noise", &noise);
    assert!(
        matches!(
            error,
            SymbolsError::Truncated { .. } | SymbolsError::Corrupt { .. }
        ),
        "{error:?}"
    );

    let (_, error) = open_bytes("random", &pseudo_random_bytes(4096, 1));
    match &error {
        SymbolsError::NotElf { looks_like, .. } => {
            assert!(looks_like.starts_with("binary data"), "{looks_like}")
        }
        other => panic!("{other:?}"),
    }
    let (_, error) = open_bytes("notes.txt", b"kernel build notes\nnothing to see\n");
    match &error {
        SymbolsError::NotElf { looks_like, .. } => {
            assert!(looks_like.starts_with("a text file"), "{looks_like}")
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("is not an ELF file"), "{error}");
    let (_, error) = open_bytes("empty", b"");
    assert!(
        matches!(&error, SymbolsError::NotElf { looks_like, .. } if looks_like == "an empty file"),
        "{error:?}"
    );

    // Every truncation length in a sweep over the headers: never a panic, never success.
    for length in (0..512).chain((512..elf.len()).step_by(elf.len() / 64)) {
        let path = scratch_dir("sweep").join("cut");
        std::fs::write(&path, &elf[..length]).expect("write");
        let error = Symbolizer::open(&path).expect_err("a cut ELF must not open");
        assert!(
            matches!(
                error,
                SymbolsError::NotElf { .. }
                    | SymbolsError::Truncated { .. }
                    | SymbolsError::Corrupt { .. }
            ),
            "{length}: {error:?}"
        );
    }
}

#[test]
fn stripped_elf_is_refused_clearly() {
    let fixture = fixture(Variant::Stripped);
    let error = Symbolizer::open(&fixture.elf).expect_err("stripped");
    assert!(matches!(error, SymbolsError::Stripped { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&fixture.elf.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("neither a symbol table nor DWARF"),
        "{message}"
    );
}

#[test]
fn elf_without_dwarf_works_in_symbol_only_mode() {
    let fixture = fixture(Variant::NoDebugInfo);
    let symbolizer = Symbolizer::open(&fixture.elf).expect("symbol-only mode");
    assert!(!symbolizer.has_debug_info());
    let outer = function(&symbolizer, "inline::outer").clone();
    let resolution = symbolizer.resolve(outer.address + 1).expect("resolves");
    assert_eq!(
        resolution.symbol.expect("symbol").to_string(),
        format!("inline::outer+0x1/{:#x}", outer.size)
    );
    assert!(resolution.frames.is_empty());
    let warning = symbolizer
        .missing_debug_info()
        .expect("says why")
        .to_string();
    assert!(
        warning.ends_with("has no DWARF debug info (was it stripped? build with debug = true)"),
        "{warning}"
    );

    let strict = OpenOptions {
        require_debug_info: true,
        ..OpenOptions::default()
    };
    let error = Symbolizer::open_with(&fixture.elf, &strict).expect_err("DWARF required");
    assert!(
        matches!(error, SymbolsError::NoDebugInfo { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("was it stripped? build with debug = true")
    );
    // The full-DWARF fixture passes the same check.
    assert!(Symbolizer::open_with(&fixtures::fixture(Variant::Debug).elf, &strict).is_ok());
}

/// xorshift64*: deterministic noise without a `rand` dependency.
fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}
