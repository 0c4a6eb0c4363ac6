#!/usr/bin/env bash
# One-time (idempotent) set-up for building, booting and testing Cadenza on Debian.
#
# Installs only what is missing: the Rust target and rust-src (RUSTUP_AUTO_INSTALL=0 means a
# rust-toolchain.toml alone installs nothing), and Debian's QEMU, gdb, cpio and musl-tools (the
# userland test programs are built with musl-gcc), Debian's static busybox (the userland the
# kernel runs), static bash and neofetch (more of Debian the tests run), and tmux (the TUI's end-to-end
# test); and Debian's own Linux kernel image
# (package linux-image-amd64, unpacked into target/debian-linux/, not installed), which the
# parity tests boot with the same initramfs to check that every scenario behaves as on Linux.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found: install Rust with rustup first (https://rustup.rs)"
    exit 1
fi

installed_targets=$(rustup target list --installed 2>/dev/null || true)
if ! grep -qx 'x86_64-unknown-none' <<<"$installed_targets"; then
    say "adding the x86_64-unknown-none target"
    rustup target add x86_64-unknown-none
fi
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    say "adding rust-src"
    rustup component add rust-src
fi
for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done

# Debian packages: command -> package.
declare -A packages=(
    [qemu-system-x86_64]=qemu-system-x86
    [gdb]=gdb
    [cpio]=cpio
    [musl-gcc]=musl-tools
    [busybox]=busybox-static
    [bash-static]=bash-static
    [neofetch]=neofetch
    [tmux]=tmux
)
missing=()
for cmd in "${!packages[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${packages[$cmd]}")
done
sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
fi
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ] && [ -z "$sudo" ]; then
        say "need root to install: ${missing[*]} (run: apt-get install -y ${missing[*]})"
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's kernel image, unpacked (nothing is installed): the parity tests boot it.
linux_dir=target/debian-linux
if [ ! -f "$linux_dir/vmlinuz" ]; then
    image_package() {
        apt-cache depends linux-image-amd64 2>/dev/null |
            awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
    }
    package=$(image_package)
    if [ -z "$package" ]; then
        $sudo apt-get update -qq
        package=$(image_package)
    fi
    if [ -z "$package" ]; then
        say "cannot find Debian's linux-image-amd64 package (is apt configured?)"
        exit 1
    fi
    say "fetching Debian's kernel ($package) into $linux_dir"
    download=$(mktemp -d)
    (cd "$download" && apt-get download -qq "$package" 2>/dev/null)
    dpkg-deb --fsys-tarfile "$download"/*.deb | tar -x -C "$download" ./boot
    mkdir -p "$linux_dir"
    cp "$download"/boot/vmlinuz-* "$linux_dir/vmlinuz"
    echo "$package" > "$linux_dir/package"
    rm -rf "$download"
fi
