//! The host half of booting Cadenza: build the kernel image and an initramfs, start QEMU with the
//! serial ports wired where the caller wants them, and turn QEMU's exit into a verdict.
//!
//! Every host tool goes through this crate — the `cadenza-qemu` CLI, the boot tests, the TUI — so
//! that "how we boot" is written down once. In particular the exit-code contract with the kernel
//! (`isa-debug-exit`, see `exit`) and the choice of TCG over KVM live here and nowhere else.

pub mod exit;
pub mod gdb;
pub mod image;
pub mod initramfs;
pub mod launch;
pub mod telemetry;
pub mod workspace;

pub use exit::GuestExit;
pub use image::{BuildOptions, Profile, build_kernel};
pub use initramfs::{DeviceNode, InitrdSource};
pub use launch::{Accel, QemuConfig, QemuGdb, RunResult, Running, SerialBackend};
pub use workspace::Workspace;
