//! Kernel heap throughput with and without the leak tracker, side by side.
//!
//! `cargo bench -p cadenza-qemu --bench heap` builds the kernel, boots it with `bench=heap` and
//! with `bench=heap kmemleak=off` (alternately, `BENCH_BOOTS` times each, 3 by default), and
//! prints one table: nanoseconds per allocation + free pair for each size, and the tracker's
//! overhead. The kernel times the pairs itself with the TSC (`kernel/src/mm/heap/bench.rs`);
//! for each size the table takes the best round over all boots (the least disturbed by the
//! host) and also shows the median. docs/performance.md records a run and how to read it.

use std::collections::BTreeMap;
use std::time::Duration;

use cadenza_qemu::{BuildOptions, GuestExit, QemuConfig, Workspace, build_kernel};

/// Per size: (best, median) picoseconds per pair, one entry per boot.
type Samples = BTreeMap<u64, Vec<(u64, u64)>>;

fn field(line: &str, key: &str) -> Option<u64> {
    line.split(' ')
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn boot(kernel: &std::path::Path, append: &str, samples: &mut Samples) -> Result<String, String> {
    let mut config = QemuConfig::new(kernel);
    config.append = format!("console=ttyS0 {append}");
    let result = config
        .run(Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    if result.exit != GuestExit::Clean {
        return Err(format!(
            "the benchmark boot ended with {:?}:\n{}",
            result.exit, result.console
        ));
    }
    let mut header = String::new();
    for line in result.console.lines() {
        let Some((_, text)) = line.split_once("bench: heap ") else {
            continue;
        };
        if text.starts_with("begin ") {
            header = text
                .trim_end()
                .replace(" tracking=off", "")
                .replace(" tracking=on", "");
        }
        if let (Some(size), Some(median), Some(min)) = (
            field(text, "size"),
            field(text, "median_ps_per_pair"),
            field(text, "min_ps_per_pair"),
        ) {
            samples.entry(size).or_default().push((min, median));
        }
    }
    if samples.is_empty() {
        return Err(format!("no benchmark lines in:\n{}", result.console));
    }
    Ok(header)
}

fn ns(ps: u64) -> String {
    format!("{:.1}", ps as f64 / 1000.0)
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; there are no options of our own.
    let boots: usize = std::env::var("BENCH_BOOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let workspace = Workspace::locate().expect("run inside the checkout");
    let kernel = build_kernel(&workspace, &BuildOptions::default())
        .unwrap_or_else(|e| panic!("cannot build the kernel: {e:#}"));
    let (mut on, mut off) = (Samples::new(), Samples::new());
    let mut header = String::new();
    for _ in 0..boots {
        for (append, samples) in [
            ("bench=heap", &mut on),
            ("bench=heap kmemleak=off", &mut off),
        ] {
            match boot(&kernel, append, samples) {
                Ok(h) => header = h,
                Err(e) => {
                    eprintln!("heap benchmark: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    println!("kernel heap: one allocation + free, ns per pair (QEMU TCG; {boots} boots per mode)");
    println!("({header})");
    println!(
        "{:>7}  {:>9} {:>9}  {:>9} {:>9}  {:>9} {:>9}",
        "size", "off best", "median", "on best", "median", "overhead", "(median)"
    );
    for (size, off_samples) in &off {
        let Some(on_samples) = on.get(size) else {
            continue;
        };
        let best = |s: &Vec<(u64, u64)>| s.iter().map(|&(min, _)| min).min().unwrap_or(0);
        let med = |s: &Vec<(u64, u64)>| median(s.iter().map(|&(_, m)| m).collect());
        let (off_best, on_best) = (best(off_samples), best(on_samples));
        let (off_med, on_med) = (med(off_samples), med(on_samples));
        let overhead = |on: u64, off: u64| (on as f64 / off.max(1) as f64 - 1.0) * 100.0;
        println!(
            "{:>5} B  {:>9} {:>9}  {:>9} {:>9}  {:>8.0}% {:>8.0}%",
            size,
            ns(off_best),
            ns(off_med),
            ns(on_best),
            ns(on_med),
            overhead(on_best, off_best),
            overhead(on_med, off_med)
        );
    }
    fork_exec_exit(&kernel, boots);
}

/// Seconds on a kernel log line's `[    1.234567]` stamp.
fn stamp(line: &str) -> Option<f64> {
    line.strip_prefix('[')?
        .split_once(']')?
        .0
        .trim()
        .parse()
        .ok()
}

/// 1,000 fork+exec+exit cycles from a static musl init (qemu/tests/userland/forkloop.c), timed
/// by the kernel's own log stamps, tracking on vs off.
fn fork_exec_exit(kernel: &std::path::Path, boots: usize) {
    let workspace = Workspace::locate().expect("run inside the checkout");
    let dir = tempfile::tempdir().expect("temp dir");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).expect("tree");
    let source = workspace.root().join("qemu/tests/userland/forkloop.c");
    let compiled = std::process::Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(tree.join("init"))
        .arg(&source)
        .status();
    if !compiled.is_ok_and(|s| s.success()) {
        eprintln!("fork benchmark skipped: musl-gcc (Debian musl-tools) is needed");
        return;
    }
    let archive = dir.path().join("root.cpio");
    cadenza_qemu::initramfs::pack_directory(&tree, &archive).expect("archive");
    let seconds = |append: &str| -> Vec<f64> {
        (0..boots)
            .filter_map(|_| {
                let mut config = cadenza_qemu::QemuConfig::new(kernel);
                config.initrd = Some(archive.clone());
                config.append = format!("console=ttyS0 {append} -- 1000");
                let result = config.run(std::time::Duration::from_secs(300)).ok()?;
                let start = result
                    .console
                    .lines()
                    .find(|l| l.contains("Run /init as init"))?;
                let end = result
                    .console
                    .lines()
                    .find(|l| l.contains("init[1]: exited with status 0"))?;
                Some(stamp(end)? - stamp(start)?)
            })
            .collect()
    };
    let on = seconds("");
    let off = seconds("kmemleak=off");
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    if on.is_empty() || off.is_empty() {
        eprintln!("fork benchmark: a run failed");
        return;
    }
    println!();
    println!("1000 x fork+exec+exit (QEMU TCG; best of {boots} boots per mode)");
    println!("{:>12} {:>12} {:>10}", "off", "on", "overhead");
    println!(
        "{:>10.1}ms {:>10.1}ms {:>9.0}%",
        best(&off) * 1e3,
        best(&on) * 1e3,
        (best(&on) / best(&off) - 1.0) * 100.0
    );
}
