//! `cadenza-qemu`: build the kernel and an initramfs, boot them in QEMU, report how it ended.
//!
//! A thin shell over the `cadenza_qemu` library; see `cadenza-qemu --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cadenza_qemu::launch::free_local_port;
use cadenza_qemu::{
    Accel, BuildOptions, InitrdSource, Profile, QemuConfig, QemuGdb, SerialBackend, Workspace,
    build_kernel, initramfs,
};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Build and boot the Cadenza kernel in QEMU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the kernel (unless --kernel is given) and boot it with the console on this terminal.
    Run(RunArgs),
    /// Build the kernel and print the path of its ELF.
    Build {
        /// Build with cargo's dev profile instead of release.
        #[arg(long)]
        dev: bool,
    },
    /// Pack a directory (or, without one, the default root skeleton) into a newc cpio archive.
    Initramfs {
        /// The directory to pack.
        dir: Option<PathBuf>,
        /// Where to write the archive.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Boot this kernel ELF instead of building one.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Build with cargo's dev profile instead of release.
    #[arg(long)]
    dev: bool,
    /// Initramfs: a newc cpio archive, a directory to pack, or `none` (default: a root skeleton).
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Words added to the kernel command line (after `console=ttyS0`), e.g. "selftest".
    #[arg(long, default_value = "")]
    append: String,
    /// Accelerator: tcg (default, works everywhere) or kvm (fast on real machines).
    #[arg(long, default_value = "tcg")]
    accel: Accel,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256)]
    memory: u32,
    /// Kill QEMU after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Where the console (ttyS0) goes: stdio, file:PATH, tcp:PORT, unix:PATH.
    #[arg(long, default_value = "stdio")]
    console: SerialBackend,
    /// Where ttyS1 goes: null, file:PATH, tcp:PORT, unix:PATH.
    #[arg(long, default_value = "null")]
    serial1: SerialBackend,
    /// Wire ttyS1 to the kernel's own gdb stub (`kgdboc=ttyS1`): tcp:PORT or unix:PATH.
    #[arg(long, num_args = 0..=1, default_missing_value = "tcp:1234", value_name = "BACKEND")]
    kgdb: Option<SerialBackend>,
    /// With --kgdb: stop early in boot until gdb attaches (`kgdbwait`).
    #[arg(long, requires = "kgdb")]
    kgdbwait: bool,
    /// Start QEMU's own gdb stub on this TCP port (0 picks a free one) and freeze the CPU until
    /// gdb continues.
    #[arg(long, num_args = 0..=1, default_missing_value = "1234", value_name = "PORT")]
    gdb_qemu: Option<u16>,
    /// Print the QEMU command instead of running it.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("cadenza-qemu: {error:#}");
            ExitCode::from(3)
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Build { dev } => {
            let workspace = Workspace::locate()?;
            let elf = build_kernel(&workspace, &build_options(dev))?;
            println!("{}", elf.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Initramfs { dir, output } => {
            let size = match dir {
                Some(dir) => initramfs::pack_directory(&dir, &output)?,
                None => {
                    let bytes = initramfs::default_archive()?;
                    std::fs::write(&output, &bytes)
                        .with_context(|| format!("cannot write {}", output.display()))?;
                    bytes.len() as u64
                }
            };
            eprintln!("wrote {} ({size} bytes)", output.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn build_options(dev: bool) -> BuildOptions {
    BuildOptions {
        profile: if dev { Profile::Dev } else { Profile::Release },
        show_cargo_output: true,
    }
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let workspace = Workspace::locate()?;
    let kernel = match args.kernel {
        Some(path) => path,
        None => build_kernel(&workspace, &build_options(args.dev))?,
    };
    let initrd = match args.initrd {
        None => InitrdSource::Default,
        Some(path) if path.as_os_str() == "none" => InitrdSource::None,
        Some(path) => InitrdSource::from_path(&path)?,
    };
    let mut config = QemuConfig::new(kernel);
    // The CLI spawns from its main thread: if it is killed, QEMU goes with it.
    config.exit_with_parent = true;
    config.initrd = initrd.prepare(&workspace)?;
    config.append = format!("console=ttyS0 {}", args.append).trim().to_owned();
    config.accel = args.accel;
    config.memory_mib = args.memory;
    config.serial = vec![args.console, args.serial1];
    config.echo_stderr = true;
    if let Some(line) = args.kgdb {
        let target = match &line {
            SerialBackend::Tcp(port) => format!(":{port}"),
            SerialBackend::Unix(path) => path.display().to_string(),
            other => anyhow::bail!("--kgdb needs tcp:PORT or unix:PATH, not {other:?}"),
        };
        config.serial[1] = line;
        config.append.push_str(" kgdboc=ttyS1");
        if args.kgdbwait {
            config.append.push_str(" kgdbwait");
        }
        eprintln!(
            "cadenza-qemu: the kernel's gdb stub is on ttyS1; in another terminal run:\n  \
             gdb {} -ex 'set remotetimeout 10' -ex 'target remote {target}'",
            config.kernel.display()
        );
    }
    if let Some(port) = args.gdb_qemu {
        let port = if port == 0 { free_local_port()? } else { port };
        config.qemu_gdb = Some(QemuGdb {
            port,
            wait_for_attach: true,
        });
        eprintln!(
            "cadenza-qemu: QEMU's gdb stub waits on port {port}; in another terminal run:\n  \
             gdb {} -ex 'target remote :{port}'",
            config.kernel.display()
        );
    }
    if args.accel == Accel::Kvm {
        eprintln!(
            "cadenza-qemu: KVM selected; on nested KVM a guest int3 (gdb software breakpoints) \
             can kill QEMU: use --accel tcg for debugging sessions"
        );
    }
    if args.dry_run {
        println!("{}", config.command_line());
        return Ok(ExitCode::SUCCESS);
    }
    let running = config.spawn()?;
    let result = running.wait(args.timeout.map(Duration::from_secs))?;
    eprintln!(
        "cadenza-qemu: {} after {:.1}s",
        result.exit,
        result.elapsed.as_secs_f64()
    );
    Ok(ExitCode::from(result.exit.cli_status() as u8))
}
