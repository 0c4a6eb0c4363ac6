//! Resolving kernel addresses to `symbol+0xoff/0xsize` and to source frames, inlined ones included.
//!
//! Two sources answer two different questions, so both are loaded once when the image is opened:
//! the ELF symbol table (`elf_symbols`) knows each function's exact start and size, which
//! `symbol+off/size` needs and DWARF does not give reliably; DWARF (through `addr2line::Loader`,
//! which keeps the mapped file and its lazily parsed units together) knows the source lines and
//! the chain of inlined calls. A release kernel inlines aggressively, so without the inlined
//! frames most addresses would point at a `core` helper with no hint of the kernel code around it.
//!
//! Lookups take `&self`: the TUI keeps one `Symbolizer` open for the whole session, and the log
//! annotator shares one across a whole stream. What repeats across lookups is cached (demangled
//! names, source-root-relative paths) because the same few hundred functions and files come back
//! for every frame; that is what makes the batch path fast enough to beat binutils by a wide
//! margin (see docs/symbols.md).
//!
//! Failure is always a `SymbolsError`, never a panic: the input is whatever file the user pointed
//! at. An image with a symbol table but no DWARF still opens (symbol-only mode, `symbol+off/size`
//! but no source lines), because a kernel built without `debug = true` should still give *some*
//! answer; callers that need lines use [`OpenOptions::require_debug_info`] or check
//! [`Symbolizer::has_debug_info`]. An image with neither is refused as stripped.
//!
//! Return addresses are looked up one byte earlier for their source frames, as Linux's `%pB` and
//! `decode_stacktrace.sh` do: the byte after a `call` often belongs to the next source line (or,
//! after a call to a `-> !` function, to the next function), while `address - 1` is always inside
//! the call instruction itself.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use addr2line::gimli::Reader;
use object::{Object, ObjectSection, ObjectSegment, SectionKind, SegmentFlags};
use thiserror::Error;

use crate::elf_symbols::{FunctionSymbol, SymbolTable, demangle};

/// Everything that can go wrong opening an image or resolving an address.
#[derive(Debug, Error)]
pub enum SymbolsError {
    #[error("{path}: no such file", path = .path.display())]
    NotFound { path: PathBuf },
    #[error("cannot read {path}: {source}", path = .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not an ELF file: it looks like {looks_like}", path = .path.display())]
    NotElf { path: PathBuf, looks_like: String },
    #[error("{path} is a truncated ELF file ({detail})", path = .path.display())]
    Truncated { path: PathBuf, detail: String },
    #[error("{path} is a corrupt ELF file: {reason}", path = .path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} is stripped: it has neither a symbol table nor DWARF debug info \
         (build with debug = true and do not strip it)",
        path = .path.display()
    )]
    Stripped { path: PathBuf },
    #[error(
        "{path} has no DWARF debug info (was it stripped? build with debug = true)",
        path = .path.display()
    )]
    NoDebugInfo { path: PathBuf },
    #[error("address {address:#x} is outside the image's text")]
    AddressOutsideImage { address: u64 },
    #[error("corrupt DWARF debug info at {address:#x}: {reason}")]
    DebugInfo { address: u64, reason: String },
    #[error("cannot parse address {text:?}: {reason}")]
    InvalidAddress { text: String, reason: &'static str },
    #[error("unknown symbol {name:?} (not a function in the image's symbol table)")]
    UnknownSymbol { name: String },
}

/// How to open an image.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Paths under this directory are printed relative to it. `None`: the workspace root found by
    /// walking up from the image (see [`find_workspace_root`]), else from the current directory.
    pub source_root: Option<PathBuf>,
    /// Refuse images without DWARF (`SymbolsError::NoDebugInfo`) instead of symbol-only mode.
    pub require_debug_info: bool,
}

/// Whether an address is where the CPU was (a faulting RIP) or where it will return to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    Exact,
    ReturnAddress,
}

/// The function symbol containing an address, Linux kallsyms style: `name+0xoffset/0xsize`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolOffset {
    /// Demangled, without hash.
    pub name: Arc<str>,
    /// The function's first byte.
    pub start: u64,
    pub offset: u64,
    pub size: u64,
}

impl fmt::Display for SymbolOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}/{:#x}", self.name, self.offset, self.size)
    }
}

/// One source frame. A machine address has one non-inlined frame (the function the code
/// belongs to) and, inside it, the functions inlined into it, innermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Demangled function name, without hash.
    pub function: Option<Arc<str>>,
    /// Relative to the source root when under it, else as recorded in DWARF.
    pub file: Option<Arc<str>>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Inlined into the next frame of the resolution (true for all but the outermost frame).
    pub inlined: bool,
}

impl Frame {
    /// `file:line:column` (the parts that are known; `??:?` for none).
    pub fn location(&self) -> String {
        let mut text = String::new();
        let _ = self.write_location(&mut text);
        text
    }

    fn write_location(&self, out: &mut impl fmt::Write) -> fmt::Result {
        out.write_str(self.file.as_deref().unwrap_or("??"))?;
        match self.line {
            Some(line) => {
                write!(out, ":{line}")?;
                if let Some(column) = self.column {
                    write!(out, ":{column}")?;
                }
                Ok(())
            }
            None => out.write_str(":?"),
        }
    }
}

impl fmt::Display for Frame {
    /// `function at file:line:column`, then ` [inlined]` for inlined frames.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.function.as_deref().unwrap_or("??"))?;
        f.write_str(" at ")?;
        self.write_location(f)?;
        if self.inlined {
            f.write_str(" [inlined]")?;
        }
        Ok(())
    }
}

/// Everything known about one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The address as given.
    pub address: u64,
    pub kind: AddressKind,
    /// The address whose source frames were looked up: `address`, or `address - 1` for return
    /// addresses.
    pub lookup_address: u64,
    /// The function symbol containing `address` itself (not `lookup_address`), if any.
    pub symbol: Option<SymbolOffset>,
    /// Innermost first; empty without DWARF for this address.
    pub frames: Vec<Frame>,
}

impl Resolution {
    /// The innermost source frame: where the address is, as precisely as known.
    pub fn innermost(&self) -> Option<&Frame> {
        self.frames.first()
    }
}

impl fmt::Display for Resolution {
    /// `0xADDR symbol+0xoff/0xsize`, then one indented line per frame (the CLI's format).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x} ", self.address)?;
        match &self.symbol {
            Some(symbol) => write!(f, "{symbol}")?,
            None => f.write_str("??")?,
        }
        if self.frames.is_empty() {
            // No DWARF here (assembly, or a symbol-only image): name the function as binutils
            // does, from the symbol table.
            let name = self.symbol.as_ref().map_or("??", |s| &s.name);
            write!(f, "\n    {name} at ??:?")?;
        }
        for frame in &self.frames {
            write!(f, "\n    {frame}")?;
        }
        Ok(())
    }
}

/// FxHash: the caches are keyed by short strings that come from the image itself, so a fast
/// non-cryptographic hash is the right trade (SipHash showed up in the batch profile).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(SEED);
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }

    fn write_u64(&mut self, word: u64) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Keyed by where a string lies in memory (address, length), not by its contents: the names and
/// paths addr2line hands out are borrowed from the mapped image or from the loader's parsed line
/// tables, which never move or get freed while the loader lives, so identity is a valid key and
/// saves validating, hashing and comparing the text on every frame.
type Cache = RefCell<HashMap<(usize, usize), Arc<str>, BuildHasherDefault<FxHasher>>>;

fn identity(bytes: &[u8]) -> (usize, usize) {
    (bytes.as_ptr() as usize, bytes.len())
}

/// An opened kernel image. Build once, resolve many times.
///
/// `Send` but not `Sync` (the lookup caches use `RefCell`): a thread that needs its own
/// lookups opens its own, or shares one behind a `Mutex`.
pub struct Symbolizer {
    path: PathBuf,
    /// `None` when the image has no `.debug_info`.
    dwarf: Option<addr2line::Loader>,
    symbols: SymbolTable,
    /// `symbols.symbols()[i].name`, shareable without copying.
    symbol_names: Vec<Arc<str>>,
    /// Executable sections (or segments, without section headers), sorted.
    text: Vec<Range<u64>>,
    source_root: Option<PathBuf>,
    /// `source_root` as given and canonicalized, each ending in `/`, for prefix stripping.
    root_prefixes: Vec<String>,
    /// Raw (mangled) DWARF name -> demangled.
    names: Cache,
    /// DWARF path -> path relative to the source root.
    files: Cache,
}

impl fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Symbolizer")
            .field("path", &self.path)
            .field("has_debug_info", &self.has_debug_info())
            .field("functions", &self.symbols.symbols().len())
            .field("text", &self.text)
            .field("source_root", &self.source_root)
            .finish_non_exhaustive()
    }
}

impl Symbolizer {
    /// Opens `path` with default options (source root: the enclosing Cargo workspace).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SymbolsError> {
        Self::open_with(path, &OpenOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self, SymbolsError> {
        let path = path.as_ref().to_path_buf();
        let data = std::fs::read(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SymbolsError::NotFound { path: path.clone() },
            _ => SymbolsError::Unreadable {
                path: path.clone(),
                source,
            },
        })?;
        if !data.starts_with(b"\x7fELF") {
            return Err(SymbolsError::NotElf {
                looks_like: describe_contents(&data),
                path,
            });
        }
        if let Err(detail) = check_elf_layout(&data) {
            return Err(SymbolsError::Truncated { path, detail });
        }
        let file = object::File::parse(&*data).map_err(|e| SymbolsError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let symbols = SymbolTable::from_object(&file);
        let text = text_ranges(&file);
        let has_dwarf = file
            .section_by_name(".debug_info")
            .is_some_and(|s| s.size() > 0);
        drop(file);
        drop(data);

        if !has_dwarf && symbols.is_empty() {
            return Err(SymbolsError::Stripped { path });
        }
        if !has_dwarf && options.require_debug_info {
            return Err(SymbolsError::NoDebugInfo { path });
        }
        let dwarf = if has_dwarf {
            Some(
                addr2line::Loader::new(&path).map_err(|e| SymbolsError::Corrupt {
                    path: path.clone(),
                    reason: format!("cannot load its DWARF debug info: {e}"),
                })?,
            )
        } else {
            None
        };
        let source_root = options
            .source_root
            .clone()
            .or_else(|| find_workspace_root(&path))
            // An image built into a target directory outside the checkout (CARGO_TARGET_DIR):
            // the checkout we are run from.
            .or_else(|| {
                std::env::current_dir()
                    .ok()
                    .and_then(|cwd| find_workspace_root(&cwd))
            });
        let symbol_names = symbols
            .symbols()
            .iter()
            .map(|s| Arc::from(s.name.as_str()))
            .collect();
        let mut symbolizer = Self {
            path,
            dwarf,
            symbols,
            symbol_names,
            text,
            source_root: None,
            root_prefixes: Vec::new(),
            names: Cache::default(),
            files: Cache::default(),
        };
        symbolizer.set_source_root(source_root);
        Ok(symbolizer)
    }

    /// The image's path, as given to `open`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the image has DWARF (`.debug_info`); without it resolutions have no frames.
    pub fn has_debug_info(&self) -> bool {
        self.dwarf.is_some()
    }

    /// The error describing why there are no source lines, for callers that warn once.
    pub fn missing_debug_info(&self) -> Option<SymbolsError> {
        (!self.has_debug_info()).then(|| SymbolsError::NoDebugInfo {
            path: self.path.clone(),
        })
    }

    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// The executable address ranges of the image, sorted.
    pub fn text_ranges(&self) -> &[Range<u64>] {
        &self.text
    }

    /// Whether `address` is in the image's executable text.
    pub fn contains(&self, address: u64) -> bool {
        self.text.iter().any(|r| r.contains(&address))
    }

    pub fn source_root(&self) -> Option<&Path> {
        self.source_root.as_deref()
    }

    /// Changes the directory that printed paths are relative to (`None`: print them as in DWARF).
    pub fn set_source_root(&mut self, root: Option<PathBuf>) {
        self.root_prefixes.clear();
        if let Some(root) = &root {
            let absolute = std::path::absolute(root).unwrap_or_else(|_| root.clone());
            let canonical = absolute.canonicalize().ok();
            for candidate in std::iter::once(absolute).chain(canonical) {
                let mut prefix = candidate.to_string_lossy().into_owned();
                if !prefix.ends_with('/') {
                    prefix.push('/');
                }
                if !self.root_prefixes.contains(&prefix) {
                    self.root_prefixes.push(prefix);
                }
            }
        }
        self.source_root = root;
        self.files.get_mut().clear();
    }

    /// The function symbol containing `address`, as `name+off/size`.
    pub fn symbol_offset(&self, address: u64) -> Option<SymbolOffset> {
        let symbol = self.symbols.lookup(address)?;
        // Symbols are sorted and unique by address: this finds `symbol`'s index, for its
        // shared name.
        let index = self
            .symbols
            .symbols()
            .partition_point(|s| s.address < symbol.address);
        Some(SymbolOffset {
            name: self.symbol_names.get(index)?.clone(),
            start: symbol.address,
            offset: address - symbol.address,
            size: symbol.size,
        })
    }

    /// Resolves an exact address (a faulting RIP, a breakpoint, a PC sample).
    pub fn resolve(&self, address: u64) -> Result<Resolution, SymbolsError> {
        self.resolve_as(address, AddressKind::Exact)
    }

    /// Resolves a return address from a backtrace: the source frames and the function are those
    /// of the call (`address - 1`), the offset is that of `address` itself.
    pub fn resolve_return_address(&self, address: u64) -> Result<Resolution, SymbolsError> {
        self.resolve_as(address, AddressKind::ReturnAddress)
    }

    pub fn resolve_as(&self, address: u64, kind: AddressKind) -> Result<Resolution, SymbolsError> {
        let lookup_address = match kind {
            AddressKind::Exact => address,
            AddressKind::ReturnAddress => address
                .checked_sub(1)
                .ok_or(SymbolsError::AddressOutsideImage { address })?,
        };
        if !self.contains(lookup_address) {
            return Err(SymbolsError::AddressOutsideImage { address });
        }
        Ok(Resolution {
            address,
            kind,
            lookup_address,
            // Linux's `%pB`, as the kernel prints it: the function is the one containing the
            // call (`lookup_address`), the offset that of the address itself — so a call that
            // never returns, ending its function, shows as `f+0x40/0x40`, not the next function.
            symbol: self
                .symbol_offset(lookup_address)
                .map(|symbol| SymbolOffset {
                    offset: address - symbol.start,
                    ..symbol
                }),
            frames: self.frames(lookup_address)?,
        })
    }

    /// The DWARF frames at `probe`, innermost first.
    fn frames(&self, probe: u64) -> Result<Vec<Frame>, SymbolsError> {
        let Some(dwarf) = &self.dwarf else {
            return Ok(Vec::new());
        };
        let corrupt = |e: &dyn fmt::Display| SymbolsError::DebugInfo {
            address: probe,
            reason: e.to_string(),
        };
        let mut iter = dwarf.find_frames(probe).map_err(|e| corrupt(&e))?;
        // Release kernels inline deeply: most addresses have a few frames, and growing from
        // empty would reallocate on the way there.
        let mut frames = Vec::with_capacity(8);
        while let Some(frame) = iter.next().map_err(|e| corrupt(&e))? {
            let function = match &frame.function {
                Some(name) => Some(self.demangled(&name.name).map_err(|e| corrupt(&e))?),
                None => None,
            };
            let (file, line, column) = match &frame.location {
                Some(location) => (
                    location.file.map(|f| self.relative_path(f)),
                    location.line.filter(|&l| l > 0),
                    location.column.filter(|&c| c > 0),
                ),
                None => (None, None, None),
            };
            frames.push(Frame {
                function,
                file,
                line,
                column,
                inlined: true,
            });
        }
        if let Some(outermost) = frames.last_mut() {
            outermost.inlined = false;
        }
        Ok(frames)
    }

    fn demangled<R: Reader>(&self, raw: &R) -> Result<Arc<str>, addr2line::gimli::Error> {
        let bytes = raw.to_slice()?;
        // Only borrowed bytes have a stable address; an owned copy is demangled every time.
        let key = matches!(bytes, Cow::Borrowed(_)).then(|| identity(&bytes));
        if let Some(name) = key.and_then(|key| self.names.borrow().get(&key).cloned()) {
            return Ok(name);
        }
        let name: Arc<str> = Arc::from(demangle(&String::from_utf8_lossy(&bytes)));
        if let Some(key) = key {
            self.names.borrow_mut().insert(key, name.clone());
        }
        Ok(name)
    }

    fn relative_path(&self, path: &str) -> Arc<str> {
        let key = identity(path.as_bytes());
        if let Some(relative) = self.files.borrow().get(&key) {
            return relative.clone();
        }
        let relative: Arc<str> = Arc::from(
            self.root_prefixes
                .iter()
                .find_map(|prefix| path.strip_prefix(prefix.as_str()))
                .unwrap_or(path),
        );
        self.files.borrow_mut().insert(key, relative.clone());
        relative
    }

    /// Parses an address as a user or a log writes it: `0xffffffff80012345`,
    /// `ffffffff80012345`, `symbol`, `symbol+0x1a` or `symbol+0x1a/0x40` (the size is checked for
    /// syntax only). Names may be demangled (with or without hash) or mangled.
    pub fn parse_address(&self, text: &str) -> Result<u64, SymbolsError> {
        let trimmed = text.trim();
        let invalid = |reason| SymbolsError::InvalidAddress {
            text: text.to_owned(),
            reason,
        };
        if trimmed.is_empty() {
            return Err(invalid("empty"));
        }
        if let Some(hex) = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
        {
            return parse_hex(hex).ok_or_else(|| invalid("not a 64-bit hexadecimal number"));
        }
        if let Some((name, rest)) = trimmed.rsplit_once('+') {
            let offset_text = rest.split_once('/').map_or(rest, |(offset, size)| {
                // Checked for syntax only: the kernel may print the size of a differently
                // trimmed symbol, and the offset alone locates the address.
                if size.strip_prefix("0x").and_then(parse_hex).is_none() {
                    return "";
                }
                offset
            });
            let offset = offset_text
                .strip_prefix("0x")
                .and_then(parse_hex)
                .ok_or_else(|| invalid("expected symbol+0xOFFSET or symbol+0xOFFSET/0xSIZE"))?;
            let symbol = self.symbol_by_name(name.trim())?;
            return symbol
                .address
                .checked_add(offset)
                .ok_or_else(|| invalid("offset overflows the address space"));
        }
        match self.symbol_by_name(trimmed) {
            Ok(symbol) => Ok(symbol.address),
            Err(unknown) => {
                if trimmed.chars().all(|c| c.is_ascii_hexdigit() || c == '_') {
                    parse_hex(trimmed).ok_or_else(|| invalid("not a 64-bit hexadecimal number"))
                } else {
                    Err(unknown)
                }
            }
        }
    }

    /// A function symbol by demangled name (with or without `::h…` hash) or mangled name.
    pub fn symbol_by_name(&self, name: &str) -> Result<&FunctionSymbol, SymbolsError> {
        self.symbols
            .by_name(name)
            .or_else(|| self.symbols.by_name(strip_hash(name)?))
            .ok_or_else(|| SymbolsError::UnknownSymbol {
                name: name.to_owned(),
            })
    }
}

/// `kernel::foo::h0123456789abcdef` -> `kernel::foo`.
fn strip_hash(name: &str) -> Option<&str> {
    let (path, hash) = name.rsplit_once("::h")?;
    (hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit())).then_some(path)
}

/// Hex digits (underscores allowed as separators), at most 64 bits.
fn parse_hex(digits: &str) -> Option<u64> {
    let mut value: u64 = 0;
    let mut count = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        value = (value << 4) | u64::from(c.to_digit(16)?);
        count += 1;
    }
    (1..=16).contains(&count).then_some(value)
}

/// The directory above `start` whose `Cargo.toml` declares `[workspace]`: where the kernel's
/// DWARF paths are rooted, so `/home/me/cadenza/kernel/src/x.rs` prints as `kernel/src/x.rs`.
pub fn find_workspace_root(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        manifest
            .lines()
            .any(|line| line.trim() == "[workspace]")
            .then(|| dir.to_path_buf())
    })
}

fn text_ranges<'data>(file: &object::File<'data>) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text && s.size() > 0)
        .map(|s| s.address()..s.address().saturating_add(s.size()))
        .collect();
    if ranges.is_empty() {
        // No section headers (e.g. `objcopy --strip-sections`): fall back to executable segments.
        ranges = file
            .segments()
            .filter(
                |s| matches!(s.flags(), SegmentFlags::Elf { p_flags, .. } if p_flags.0 & 1 != 0),
            )
            .filter(|s| s.size() > 0)
            .map(|s| s.address()..s.address().saturating_add(s.size()))
            .collect();
    }
    ranges.sort_by_key(|r| r.start);
    ranges
}

/// Checks that the ELF header, the header tables and every section's contents lie inside the
/// file, so a cut-off copy is reported as truncated rather than as some parse error.
fn check_elf_layout(data: &[u8]) -> Result<(), String> {
    let len = data.len() as u64;
    let is64 = match data.get(4) {
        Some(1) => false,
        Some(2) => true,
        // Not ours to judge: `object` reports an unknown class as corruption.
        Some(_) => return Ok(()),
        None => return Err(format!("the file is only {len} bytes")),
    };
    let big_endian = data.get(5) == Some(&2);
    let header_size: u64 = if is64 { 64 } else { 52 };
    if len < header_size {
        return Err(format!(
            "the file is {len} bytes, the ELF header alone needs {header_size}"
        ));
    }
    let read = |offset: u64, width: u64| -> Option<u64> {
        let start = usize::try_from(offset).ok()?;
        let end = usize::try_from(offset.checked_add(width)?).ok()?;
        let bytes = data.get(start..end)?;
        let mut value = 0u64;
        for i in 0..bytes.len() {
            let byte = if big_endian {
                bytes[i]
            } else {
                bytes[bytes.len() - 1 - i]
            };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    };
    let word = if is64 { 8 } else { 4 };
    let field = |offset64: u64, offset32: u64, width: u64| {
        read(if is64 { offset64 } else { offset32 }, width).unwrap_or(0)
    };
    let phoff = field(0x20, 0x1c, word);
    let shoff = field(0x28, 0x20, word);
    let phentsize = field(0x36, 0x2a, 2);
    let phnum = field(0x38, 0x2c, 2);
    let shentsize = field(0x3a, 0x2e, 2);
    let shnum = field(0x3c, 0x30, 2);

    // Entry sizes other than the standard ones are corruption, not truncation: leave them to
    // `object`, and don't read the tables with a wrong stride.
    let (standard_ph, standard_sh) = if is64 { (56, 64) } else { (32, 40) };
    if (phnum > 0 && phentsize != standard_ph) || (shnum > 0 && shentsize != standard_sh) {
        return Ok(());
    }
    let table_end = |offset: u64, entry: u64, count: u64| {
        entry
            .checked_mul(count)
            .and_then(|size| size.checked_add(offset))
            .unwrap_or(u64::MAX)
    };
    if phnum > 0 && table_end(phoff, phentsize, phnum) > len {
        return Err(format!(
            "the program headers end at byte {} but the file has {len}",
            table_end(phoff, phentsize, phnum)
        ));
    }
    if shnum > 0 && shoff > 0 {
        let end = table_end(shoff, shentsize, shnum);
        if end > len {
            return Err(format!(
                "the section headers end at byte {end} but the file has {len}"
            ));
        }
        const SHT_NOBITS: u64 = 8;
        let (type_at, offset_at, size_at) = if is64 { (4, 24, 32) } else { (4, 16, 20) };
        for index in 0..shnum {
            let entry = shoff + index * shentsize;
            let kind = read(entry + type_at, 4).unwrap_or(SHT_NOBITS);
            if kind == SHT_NOBITS {
                continue;
            }
            let offset = read(entry + offset_at, word).unwrap_or(0);
            let size = read(entry + size_at, word).unwrap_or(0);
            let end = offset.saturating_add(size);
            if end > len {
                return Err(format!(
                    "section {index} ends at byte {end} but the file has {len}"
                ));
            }
        }
    }
    Ok(())
}

/// A short guess at what a non-ELF file is, for the error message.
fn describe_contents(data: &[u8]) -> String {
    let head = &data[..data.len().min(512)];
    let magic: &[(&[u8], &str)] = &[
        (b"MZ", "a PE/COFF (Windows/EFI) executable"),
        (b"\xfe\xed\xfa\xce", "a Mach-O file"),
        (b"\xfe\xed\xfa\xcf", "a Mach-O file"),
        (b"\xce\xfa\xed\xfe", "a Mach-O file"),
        (b"\xcf\xfa\xed\xfe", "a Mach-O file"),
        (b"\xca\xfe\xba\xbe", "a Mach-O universal binary"),
        (b"!<arch>\n", "an ar archive (a static library?)"),
        (b"\x1f\x8b", "gzip-compressed data"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
        (b"\0asm", "a WebAssembly module"),
        (b"070701", "a cpio archive (an initramfs?)"),
        (b"#!", "a script"),
    ];
    if data.is_empty() {
        return "an empty file".to_owned();
    }
    if let Some((_, what)) = magic.iter().find(|(m, _)| data.starts_with(m)) {
        return (*what).to_owned();
    }
    let text = match std::str::from_utf8(head) {
        Ok(text) => Some(text),
        // A multi-byte character cut at the 512-byte boundary is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    if let Some(text) = text
        && text
            .chars()
            .all(|c| !c.is_control() || c.is_ascii_whitespace())
    {
        let start: String = text.chars().take(24).collect();
        return format!("a text file (starting {start:?})");
    }
    let bytes: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("binary data (starting {})", bytes.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_with_and_without_prefix() {
        assert_eq!(parse_hex("ffffffff80012345"), Some(0xffff_ffff_8001_2345));
        assert_eq!(
            parse_hex("ffff_ffff_8001_2345"),
            Some(0xffff_ffff_8001_2345)
        );
        assert_eq!(parse_hex("1ffffffff80012345"), None, "more than 64 bits");
        assert_eq!(parse_hex(""), None);
        assert_eq!(parse_hex("xyz"), None);
    }

    #[test]
    fn strips_rust_hashes_only() {
        assert_eq!(
            strip_hash("kernel::foo::h0123456789abcdef"),
            Some("kernel::foo")
        );
        assert_eq!(strip_hash("kernel::hello"), None);
    }

    #[test]
    fn describes_what_a_non_elf_file_looks_like() {
        assert_eq!(describe_contents(b""), "an empty file");
        assert!(describe_contents(b"hello world\n").starts_with("a text file"));
        assert!(describe_contents(b"MZ\x90\0").contains("PE/COFF"));
        assert!(describe_contents(b"070701000000").contains("cpio"));
        assert!(describe_contents(&[0, 1, 2, 3, 0xff]).starts_with("binary data (starting 00 01"));
    }

    #[test]
    fn layout_check_catches_short_headers() {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[4] = 2;
        header[5] = 1;
        assert!(check_elf_layout(&header[..40]).is_err());
        assert!(check_elf_layout(&header).is_ok(), "no tables at all");
        header[0x28] = 0x40; // section headers at 64...
        header[0x3a] = 64; // ...64 bytes each...
        header[0x3c] = 2; // ...two of them: past the end.
        let error = check_elf_layout(&header).unwrap_err();
        assert!(error.contains("section headers end at byte 192"), "{error}");
    }
}
