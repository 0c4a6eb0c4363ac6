#!/usr/bin/env bash
# Every check CI runs: set-up, formatting, lints (host crates and the kernel), then all tests —
# host unit tests and the boot tests that run the real kernel in QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo clippy -p kernel --release --target x86_64-unknown-none -- -D warnings
cargo test
