//! Throughput of the symbolizer against binutils `addr2line` and `llvm-symbolizer`.
//!
//! Not a timed test: numbers depend on the machine, so this only measures and prints a table
//! (recorded in docs/symbols.md). Every contender does the same work on the same batch: 100,000
//! seeded pseudo-random addresses inside the kernel's function symbols, resolved with inlined
//! frames, demangled function names and file:line, and printed. The external tools are timed
//! end to end (start, load, answer the whole batch on stdin, exit), so ours is timed both cold
//! (open the ELF, then the batch: the same work) and warm (an already open `Symbolizer`, as the
//! TUI uses it).
//!
//! Run with `cargo bench -p symbols`; `CADENZA_KERNEL=path` picks another ELF.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use symbols::Symbolizer;

const BATCH: usize = 100_000;
const SEED: u64 = 0x00c0_ffee_cade_2a00;
const RUNS: usize = 5;

fn main() {
    let Some(kernel) = kernel() else {
        return;
    };
    let symbolizer = match Symbolizer::open(&kernel) {
        Ok(symbolizer) => symbolizer,
        Err(error) => {
            println!("symbolize bench: skipped: {error}");
            return;
        }
    };
    let addresses = batch(&symbolizer);
    let input: String = addresses.iter().map(|a| format!("{a:#x}\n")).collect();
    let size = std::fs::metadata(&kernel).map(|m| m.len()).unwrap_or(0);
    println!(
        "kernel: {} ({:.1} MiB, {} functions), batch: {BATCH} addresses, best of {RUNS} runs",
        kernel.display(),
        size as f64 / (1024.0 * 1024.0),
        symbolizer.symbols().symbols().len()
    );

    let mut frames = 0usize;
    let warm = best_of(|| {
        let start = Instant::now();
        frames = ours(&symbolizer, &addresses);
        start.elapsed()
    });
    let cold = best_of(|| {
        let start = Instant::now();
        let symbolizer = Symbolizer::open(&kernel).expect("opened before");
        ours(&symbolizer, &addresses);
        start.elapsed()
    });
    println!(
        "ours: {frames} frames for {BATCH} addresses ({:.2} per address)",
        frames as f64 / BATCH as f64
    );

    let elf = kernel.display().to_string();
    let cli = Path::new(env!("CARGO_BIN_EXE_cadenza-symbols"));
    let ours_cli = time_tool(cli, &["resolve", "--elf", &elf], &input);
    let binutils = find_tool("addr2line");
    let llvm = find_tool("llvm-symbolizer");
    let llvm_name = llvm
        .as_ref()
        .and_then(|p| p.file_name())
        .map_or("llvm-symbolizer".into(), |n| {
            n.to_string_lossy().into_owned()
        });
    let rows = [
        (
            "ours: library, Symbolizer already open".to_owned(),
            Some(warm),
            true,
        ),
        (
            "ours: library, open ELF + batch".to_owned(),
            Some(cold),
            true,
        ),
        (
            "ours: cadenza-symbols resolve (stdin)".to_owned(),
            ours_cli,
            true,
        ),
        (
            "binutils addr2line -f -i -C".to_owned(),
            binutils
                .as_ref()
                .and_then(|tool| time_tool(tool, &["-f", "-i", "-C", "-e", &elf], &input)),
            false,
        ),
        (
            format!("{llvm_name} --obj --inlining"),
            llvm.as_ref()
                .and_then(|tool| time_tool(tool, &[&format!("--obj={elf}"), "--inlining"], &input)),
            false,
        ),
    ];

    println!();
    println!(
        "| {:<40} | {:>9} | {:>11} | {:>22} | {:>18} |",
        "symbolizer", "time (ms)", "addresses/s", "ours (open + batch) is", "ours (CLI) is"
    );
    println!(
        "|{:-<42}|{:->11}|{:->13}|{:->24}|{:->20}|",
        "", ":", ":", ":", ":"
    );
    let ratio = |theirs: Duration, ours: Option<Duration>| match ours {
        Some(ours) => format!("{:.1}x faster", theirs.as_secs_f64() / ours.as_secs_f64()),
        None => "n/a".to_owned(),
    };
    for (name, time, is_ours) in &rows {
        match time {
            Some(time) => {
                let (library, cli) = if *is_ours {
                    ("-".to_owned(), "-".to_owned())
                } else {
                    (ratio(*time, Some(cold)), ratio(*time, ours_cli))
                };
                println!(
                    "| {name:<40} | {:>9.1} | {:>11.0} | {library:>22} | {cli:>18} |",
                    time.as_secs_f64() * 1000.0,
                    BATCH as f64 / time.as_secs_f64(),
                );
            }
            None => println!(
                "| {name:<40} | {:>9} | {:>11} | {:>22} | {:>18} |",
                "n/a", "n/a", "n/a", "n/a"
            ),
        }
    }
    println!();
    if let Some(tool) = &binutils {
        cross_check(&symbolizer, tool, &elf, &addresses[..2_000]);
    }
}

/// The kernel ELF: `CADENZA_KERNEL`, else the workspace's release kernel, built if missing.
fn kernel() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CADENZA_KERNEL") {
        return Some(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    let kernel = root.join("target/x86_64-unknown-none/release/kernel");
    if !kernel.is_file() {
        println!(
            "symbolize bench: building the kernel ({})",
            kernel.display()
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let built = Command::new(cargo)
            .args([
                "build",
                "-p",
                "kernel",
                "--release",
                "--target",
                "x86_64-unknown-none",
            ])
            .current_dir(&root)
            .status()
            .is_ok_and(|s| s.success());
        if !built || !kernel.is_file() {
            println!(
                "symbolize bench: skipped: no kernel at {} and building it failed; set \
                 CADENZA_KERNEL or run `cargo build -p kernel --release --target \
                 x86_64-unknown-none`",
                kernel.display()
            );
            return None;
        }
    }
    Some(kernel)
}

/// splitmix64: a fixed, seeded sequence without a `rand` dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Addresses uniformly distributed over the bytes of all function symbols.
fn batch(symbolizer: &Symbolizer) -> Vec<u64> {
    let functions = symbolizer.symbols().symbols();
    let mut ends = Vec::with_capacity(functions.len());
    let mut total = 0u64;
    for function in functions {
        total += function.size;
        ends.push(total);
    }
    let mut rng = SplitMix(SEED);
    (0..BATCH)
        .map(|_| {
            let pick = rng.next() % total;
            let index = ends.partition_point(|&end| end <= pick);
            let before = index.checked_sub(1).map_or(0, |i| ends[i]);
            functions[index].address + (pick - before)
        })
        .collect()
}

/// Resolves and prints the whole batch into a 64 KiB buffer, emptied when full as the CLI's
/// `BufWriter` would be; returns the number of frames.
fn ours(symbolizer: &Symbolizer, addresses: &[u64]) -> usize {
    const BUFFER: usize = 64 * 1024;
    let mut out = String::with_capacity(2 * BUFFER);
    let mut frames = 0;
    for &address in addresses {
        if out.len() >= BUFFER {
            std::hint::black_box(&out);
            out.clear();
        }
        match symbolizer.resolve(address) {
            Ok(resolution) => {
                frames += resolution.frames.len();
                let _ = writeln!(out, "{resolution}");
            }
            Err(error) => {
                let _ = writeln!(out, "{address:#x}: {error}");
            }
        }
    }
    std::hint::black_box(&out);
    frames
}

fn best_of(mut run: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| run()).min().unwrap_or_default()
}

/// `name` or `name-NN` (Debian's versioned LLVM tools) on PATH.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let mut versioned = Vec::new();
    for dir in std::env::split_paths(&path) {
        let exact = dir.join(name);
        if exact.is_file() {
            return Some(exact);
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if let Some(version) = file.strip_prefix(&format!("{name}-"))
                    && let Ok(version) = version.parse::<u32>()
                {
                    versioned.push((version, entry.path()));
                }
            }
        }
    }
    versioned.sort();
    let found = versioned.pop().map(|(_, path)| path);
    if found.is_none() {
        println!("symbolize bench: {name} not found on PATH: not measured");
    }
    found
}

/// Feeds the batch on stdin, reads all output; best wall time of `RUNS`.
fn time_tool(tool: &Path, args: &[&str], input: &str) -> Option<Duration> {
    let mut best: Option<Duration> = None;
    for _ in 0..RUNS {
        let (time, _) = run_tool(tool, args, input, false)?;
        best = Some(best.map_or(time, |b| b.min(time)));
    }
    best
}

/// Runs `tool` on `input`; the output is kept only if asked (reading it into a growing buffer
/// would bill the bench's own copying to the tool).
fn run_tool(tool: &Path, args: &[&str], input: &str, keep: bool) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut output = Vec::new();
    let mut stdout = child.stdout.take()?;
    if keep {
        stdout.read_to_end(&mut output).ok()?;
    } else {
        let mut chunk = vec![0; 64 * 1024];
        while stdout.read(&mut chunk).ok()? > 0 {}
    }
    writer.join().ok()?.ok()?;
    let status = child.wait().ok()?;
    let time = start.elapsed();
    if !status.success() {
        println!("symbolize bench: {} failed ({status})", tool.display());
        return None;
    }
    Some((time, output))
}

/// Not timed: how often ours and binutils agree (frame count, innermost line, function names).
fn cross_check(symbolizer: &Symbolizer, addr2line: &Path, elf: &str, addresses: &[u64]) {
    let input: String = addresses.iter().map(|a| format!("{a:#x}\n")).collect();
    let Some((_, output)) = run_tool(
        addr2line,
        &["-a", "-f", "-i", "-C", "-e", elf],
        &input,
        true,
    ) else {
        return;
    };
    let output = String::from_utf8_lossy(&output);
    // With -a: "0x<address>" then (function, file:line) pairs.
    let mut theirs: Vec<Vec<(String, Option<u32>)>> = Vec::new();
    let mut lines = output.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("0x") {
            theirs.push(Vec::new());
            continue;
        }
        let location = lines.next().unwrap_or_default();
        let number = location
            .rsplit_once(':')
            .and_then(|(_, l)| l.split_whitespace().next().and_then(|l| l.parse().ok()));
        if let Some(frames) = theirs.last_mut() {
            frames.push((line.to_owned(), number.filter(|&n| n > 0)));
        }
    }
    let (mut same_count, mut same_line, mut same_names) = (0, 0, 0);
    for (&address, theirs) in addresses.iter().zip(&theirs) {
        let Ok(ours) = symbolizer.resolve(address) else {
            continue;
        };
        // Without DWARF both fall back to the symbol table's name (ours only when printing).
        let mut ours = ours;
        if ours.frames.is_empty() {
            ours.frames.push(symbols::Frame {
                function: ours.symbol.as_ref().map(|s| s.name.clone()),
                file: None,
                line: None,
                column: None,
                inlined: false,
            });
        }
        if ours.frames.len() == theirs.len() {
            same_count += 1;
        }
        if ours.frames.first().and_then(|f| f.line) == theirs.first().and_then(|t| t.1) {
            same_line += 1;
        }
        let names_match = ours.frames.len() == theirs.len()
            && ours
                .frames
                .iter()
                .zip(theirs)
                .all(|(o, t)| o.function.as_deref().unwrap_or("??") == t.0);
        if names_match {
            same_names += 1;
        }
    }
    let total = addresses.len().min(theirs.len());
    println!(
        "agreement with binutils on {total} addresses: frame count {:.1}%, innermost line \
         {:.1}%, all function names {:.1}%",
        100.0 * same_count as f64 / total as f64,
        100.0 * same_line as f64 / total as f64,
        100.0 * same_names as f64 / total as f64
    );
}
