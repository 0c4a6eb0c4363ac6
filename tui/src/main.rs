//! The application users start first.
//!
//! It will launch QEMU through the `cadenza-qemu` library and show the serial console, symbolized
//! panic reports, heap and leak views and the process list in one `ratatui` screen. Until that
//! issue lands, the README's run command uses the `cadenza-qemu` launcher directly.

fn main() {
    eprintln!(
        "cadenza-tui is not built yet; boot the kernel with `cargo run -p cadenza-qemu --release -- run`"
    );
    std::process::exit(2);
}
