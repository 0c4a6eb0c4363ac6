//! The command line. Options follow `cadenza-qemu run` where both have them, so moving between
//! the launcher and the TUI needs no new vocabulary.

use std::path::PathBuf;

use cadenza_qemu::Accel;
use clap::Parser;

#[derive(Clone, Debug, Parser)]
#[command(
    name = "cadenza-tui",
    version,
    about = "Build and boot the Cadenza kernel in QEMU and watch its console, panics, heap, leaks \
             and processes in one screen",
    after_help = "Keys: press ? inside the TUI. Documentation: docs/tui.md."
)]
pub struct Cli {
    /// Boot this kernel ELF instead of building one.
    #[arg(long, value_name = "ELF")]
    pub kernel: Option<PathBuf>,
    /// Do not build: boot the kernel already in target/ (release, or debug with --dev).
    #[arg(long, conflicts_with = "kernel")]
    pub no_build: bool,
    /// Use cargo's dev profile instead of release.
    #[arg(long)]
    pub dev: bool,
    /// Initramfs: a newc cpio archive, a directory to pack, or `none` (default: a root skeleton).
    #[arg(long, value_name = "DIR_OR_CPIO")]
    pub initrd: Option<PathBuf>,
    /// Words added to the kernel command line, e.g. "panic_test" or "kmemleak_test=leak".
    #[arg(
        long,
        default_value = "",
        value_name = "WORDS",
        allow_hyphen_values = true
    )]
    pub append: String,
    /// Accelerator: tcg (default, works everywhere) or kvm (fast on real machines).
    #[arg(long, default_value = "tcg")]
    pub accel: Accel,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256, value_name = "MiB")]
    pub memory: u32,
    /// The kernel's own gdb stub on ttyS1 (`kgdboc=ttyS1`), served on this TCP port (0: any
    /// free port).
    #[arg(long, num_args = 0..=1, default_missing_value = "1234", value_name = "PORT")]
    pub kgdb: Option<u16>,
    /// With --kgdb: stop early in boot until gdb attaches (`kgdbwait`).
    #[arg(long, requires = "kgdb")]
    pub kgdbwait: bool,
    /// QEMU's own gdb stub on this TCP port (0: any free port); the CPU waits for gdb.
    #[arg(
        long,
        num_args = 0..=1,
        default_missing_value = "1234",
        value_name = "PORT",
        conflicts_with = "kgdb"
    )]
    pub gdb_qemu: Option<u16>,
    /// Do not ask the kernel for telemetry (no `telemetry=ttyS2`).
    #[arg(long)]
    pub no_telemetry: bool,
    /// Where `s` saves reports (default: out/ in the checkout, else the current directory).
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// The QEMU binary (default: qemu-system-x86_64 on PATH).
    #[arg(long, value_name = "BINARY", default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_options() {
        let cli = Cli::try_parse_from([
            "cadenza-tui",
            "--kernel",
            "k.elf",
            "--initrd",
            "root",
            "--append",
            "panic_test -- x",
            "--accel",
            "kvm",
            "--memory",
            "512",
            "--kgdb",
        ])
        .expect("parses");
        assert_eq!(cli.kernel.as_deref(), Some(std::path::Path::new("k.elf")));
        assert_eq!(cli.append, "panic_test -- x");
        assert_eq!(cli.accel, Accel::Kvm);
        assert_eq!((cli.memory, cli.kgdb), (512, Some(1234)));

        let cli = Cli::try_parse_from(["cadenza-tui", "--gdb-qemu", "0"]).expect("parses");
        assert_eq!(cli.gdb_qemu, Some(0));
        assert!(Cli::try_parse_from(["cadenza-tui", "--kgdb", "--gdb-qemu"]).is_err());
        assert!(Cli::try_parse_from(["cadenza-tui", "--kgdbwait"]).is_err());
        assert!(Cli::try_parse_from(["cadenza-tui", "--accel", "hvf"]).is_err());
        assert!(Cli::try_parse_from(["cadenza-tui", "--memory", "lots"]).is_err());
    }
}
