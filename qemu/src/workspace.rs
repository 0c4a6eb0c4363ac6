//! Where the Cadenza checkout is, and where its build products land.
//!
//! Tools are run from anywhere inside the checkout (or via `cargo run` from its root), so the root
//! is found by walking up from the current directory to the `Cargo.toml` that declares the
//! workspace and has a `kernel/` member; the checkout this binary was built from is the fallback.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::image::Profile;

/// The kernel's target triple; its build products live under `target/<triple>/`.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

#[derive(Clone, Debug)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Finds the checkout containing the current directory, else the one this crate was built in.
    pub fn locate() -> Result<Self> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        for dir in cwd.ancestors() {
            if is_workspace_root(dir) {
                return Ok(Self::at(dir));
            }
        }
        let built_in = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if is_workspace_root(&built_in) {
            return Ok(Self::at(&built_in));
        }
        bail!(
            "cannot find the Cadenza checkout: run this from inside it (looked upwards from {})",
            cwd.display()
        )
    }

    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Cargo's target directory (honours `CARGO_TARGET_DIR`).
    pub fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }

    /// Where `cargo build -p kernel` leaves the kernel ELF.
    pub fn kernel_elf(&self, profile: Profile) -> PathBuf {
        self.target_dir()
            .join(KERNEL_TARGET)
            .join(profile.dir_name())
            .join("kernel")
    }

    /// Scratch space for generated images (ignored by git).
    pub fn out_dir(&self) -> PathBuf {
        self.root.join("out")
    }
}

fn is_workspace_root(dir: &Path) -> bool {
    let manifest = dir.join("Cargo.toml");
    dir.join("kernel").join("Cargo.toml").is_file()
        && std::fs::read_to_string(manifest).is_ok_and(|text| text.contains("[workspace]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_checkout() {
        let ws = Workspace::locate().expect("tests run inside the checkout");
        assert!(ws.root().join("kernel/src/main.rs").is_file());
        let elf = ws.kernel_elf(Profile::Release);
        assert!(
            elf.ends_with("x86_64-unknown-none/release/kernel"),
            "{elf:?}"
        );
    }
}
