//! What the boot-test files share: the checkout, the kernel they boot (built once per test
//! binary), the C test programs compiled with Debian's musl-gcc, Debian's own kernel (the
//! parity oracle), and the user-printed lines of a console.
//!
//! Each test file is its own crate and uses only part of this, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cadenza_qemu::{BuildOptions, Workspace, build_kernel};

pub fn workspace() -> Workspace {
    Workspace::locate().expect("inside the checkout")
}

/// The release kernel with its symbol table embedded, built once per test binary.
pub fn kernel() -> PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            build_kernel(&workspace(), &BuildOptions::default())
                .unwrap_or_else(|e| panic!("cannot build the kernel: {e:#}"))
        })
        .clone()
}

/// Compiles `qemu/tests/userland/<name>.c` statically with musl (and pthreads) into `binary`.
pub fn compile(name: &str, binary: &Path) {
    let source = workspace()
        .root()
        .join("qemu/tests/userland")
        .join(format!("{name}.c"));
    let status = Command::new("musl-gcc")
        .args(["-static", "-O2", "-pthread", "-o"])
        .arg(binary)
        .arg(&source)
        .status()
        .expect("musl-gcc runs (Debian package musl-tools; scripts/setup.sh installs it)");
    assert!(status.success(), "compiling {}", source.display());
}

/// Debian's kernel image (scripts/setup.sh unpacks `linux-image-amd64` into
/// target/debian-linux/).
pub fn debian_linux() -> PathBuf {
    let image = workspace().root().join("target/debian-linux/vmlinuz");
    assert!(
        image.is_file(),
        "Debian's kernel is needed at {} (scripts/setup.sh fetches it)",
        image.display()
    );
    image
}

/// What userspace printed: the console without kernel log lines (`[    1.234] ...`, on both
/// kernels) and blank lines.
pub fn user_lines(console: &str) -> Vec<String> {
    console
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('['))
        .map(str::to_string)
        .collect()
}
