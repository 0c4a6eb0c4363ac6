//! gdb stub benchmark: the kernel's own stub over the emulated UART vs QEMU's built-in stub, on
//! the same kernel in the same run.
//!
//! Measures the round-trip latency of `stepi` (median of N) and the throughput of reading 64 KiB
//! of kernel memory (`dump binary memory`), both as gdb users experience them (through gdb's
//! command line, prompt to prompt). Run with `cargo bench -p cadenza-qemu --bench gdb_stub`;
//! results go in docs/performance.md.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cadenza_qemu::gdb::Gdb;
use cadenza_qemu::launch::free_local_port;
use cadenza_qemu::{BuildOptions, QemuConfig, QemuGdb, SerialBackend, Workspace, build_kernel};

const STEPS: usize = 200;
const READ_BYTES: u64 = 64 * 1024;
const READS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(60);

struct Measurement {
    stepi_median: Duration,
    stepi_p90: Duration,
    read_best: Duration,
}

fn measure(kernel: &Path, target: &str) -> Result<Measurement> {
    let (mut gdb, _) = Gdb::attach(kernel, target, TIMEOUT)?;
    // A known place to step from, the same for both stubs.
    gdb.run("break kernel::report_initrd", TIMEOUT)?;
    gdb.run("continue", TIMEOUT)?;
    gdb.run("delete", TIMEOUT)?;
    let mut steps = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let start = Instant::now();
        gdb.run("stepi", TIMEOUT)?;
        steps.push(start.elapsed());
    }
    steps.sort();
    // Kernel .text: 64 KiB that both stubs can read.
    let dump = tempfile::NamedTempFile::new()?;
    let base = 0xffff_ffff_8020_6000u64;
    let mut read_best = Duration::MAX;
    for _ in 0..READS {
        let start = Instant::now();
        gdb.run(
            &format!(
                "dump binary memory {} {base:#x} {:#x}",
                dump.path().display(),
                base + READ_BYTES
            ),
            TIMEOUT,
        )?;
        read_best = read_best.min(start.elapsed());
    }
    let size = std::fs::metadata(dump.path())?.len();
    anyhow::ensure!(
        size == READ_BYTES,
        "gdb dumped {size} bytes, not {READ_BYTES}"
    );
    gdb.run("kill", TIMEOUT).ok();
    gdb.quit();
    Ok(Measurement {
        stepi_median: steps[STEPS / 2],
        stepi_p90: steps[STEPS * 9 / 10],
        read_best,
    })
}

fn main() -> Result<()> {
    let workspace = Workspace::locate()?;
    let kernel =
        build_kernel(&workspace, &BuildOptions::default()).context("building the kernel")?;

    // Ours: kgdboc on ttyS1 (TCP), stopped at kgdbwait.
    let port = free_local_port()?;
    let mut ours = QemuConfig::new(&kernel);
    ours.serial = vec![SerialBackend::Null, SerialBackend::Tcp(port)];
    ours.append = "console=ttyS0 kgdboc=ttyS1 kgdbwait".into();
    let qemu = ours.spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let our = measure(&kernel, &format!("127.0.0.1:{port}"))?;
    drop(qemu);

    // QEMU's stub: frozen at the first instruction (-S) until gdb continues.
    let port = free_local_port()?;
    let mut theirs = QemuConfig::new(&kernel);
    theirs.serial = vec![SerialBackend::Null, SerialBackend::Null];
    theirs.qemu_gdb = Some(QemuGdb {
        port,
        wait_for_attach: true,
    });
    let qemu = theirs.spawn()?;
    let qemus = measure(&kernel, &format!("127.0.0.1:{port}"))?;
    drop(qemu);

    let kib_s = |d: Duration| READ_BYTES as f64 / 1024.0 / d.as_secs_f64();
    println!("gdb stub benchmark (TCG, {STEPS} stepi, best of {READS} 64 KiB reads)");
    println!("| stub | stepi median | stepi p90 | 64 KiB read | read throughput |");
    println!("|---|--:|--:|--:|--:|");
    for (name, m) in [("Cadenza kgdb (ttyS1)", &our), ("QEMU -gdb", &qemus)] {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.1} ms | {:.0} KiB/s |",
            m.stepi_median.as_secs_f64() * 1e3,
            m.stepi_p90.as_secs_f64() * 1e3,
            m.read_best.as_secs_f64() * 1e3,
            kib_s(m.read_best)
        );
    }
    println!(
        "ours / QEMU: stepi {:.2}x, 64 KiB read {:.2}x (goal: at most 2x)",
        our.stepi_median.as_secs_f64() / qemus.stepi_median.as_secs_f64(),
        our.read_best.as_secs_f64() / qemus.read_best.as_secs_f64()
    );
    Ok(())
}
