//! Building the kernel ELF.
//!
//! The kernel is an ordinary cargo package built for `x86_64-unknown-none`; the flags that make it
//! bootable (static relocation model, frame pointers, kernel code model) live in
//! `.cargo/config.toml` and the linker script comes from `kernel/build.rs`, so this is a plain
//! `cargo build` run from the checkout's root, followed by the one post-link step cargo cannot
//! do: writing the kernel's own symbol table into its reserved `.kallsyms` section (Linux's
//! multi-pass kallsyms link, in one step; see `symbols::kallsyms`). Doing it here rather than
//! asking users to run cargo first means a stale or symbol-less kernel is never booted by accident.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::workspace::{KERNEL_TARGET, Workspace};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// Optimised, with full DWARF and frame pointers: what every tool boots by default.
    #[default]
    Release,
    /// cargo's dev profile (opt-level 1 in this workspace).
    Dev,
}

impl Profile {
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Dev => "debug",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub profile: Profile,
    /// Let cargo's progress and diagnostics through to our stderr (the CLI); otherwise they are
    /// captured and only shown when the build fails (tests, the TUI).
    pub show_cargo_output: bool,
}

/// Builds the kernel, embeds its symbol table and returns the path of its ELF.
pub fn build_kernel(workspace: &Workspace, options: &BuildOptions) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command.current_dir(workspace.root()).args([
        "build",
        "-p",
        "kernel",
        "--target",
        KERNEL_TARGET,
    ]);
    if options.profile == Profile::Release {
        command.arg("--release");
    }
    // Flags meant for the host (e.g. from a test harness) must not leak into the kernel build.
    command.env_remove("RUSTFLAGS");
    command.env_remove("CARGO_ENCODED_RUSTFLAGS");
    command.stdin(Stdio::null());
    let output = if options.show_cargo_output {
        command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        let status = command
            .status()
            .with_context(|| format!("cannot run {}", cargo.to_string_lossy()))?;
        (status, String::new())
    } else {
        let output = command
            .output()
            .with_context(|| format!("cannot run {}", cargo.to_string_lossy()))?;
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (status, stderr) = output;
    if !status.success() {
        bail!("building the kernel failed ({status}):\n{stderr}");
    }
    let elf = workspace.kernel_elf(options.profile);
    if !elf.is_file() {
        bail!(
            "cargo reported success but {} does not exist",
            elf.display()
        );
    }
    symbols::kallsyms::embed(&elf)
        .with_context(|| format!("cannot embed the symbol table into {}", elf.display()))?;
    Ok(elf)
}
