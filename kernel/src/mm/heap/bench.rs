//! `bench=heap`: allocation + free throughput for typical kernel sizes, timed with the TSC.
//!
//! The host benchmark (`cargo bench -p cadenza-qemu --bench heap`) boots the kernel twice, with
//! and without the leak tracker (`kmemleak=off`), and sets the two runs side by side; the numbers
//! and how to read them are in docs/performance.md. Each round allocates a batch of blocks and
//! frees them in reverse order — the shape of a kernel object's life (several live at once, the
//! most recent freed first) — and the median of several rounds is reported, so that a timer
//! interrupt landing in one round does not skew the result.
//!
//! Output, one line per size (machine-readable, `key=value`):
//!
//! ```text
//! bench: heap size=64 pairs=4096 rounds=15 tracking=on median_ps_per_pair=812345 min_ps_per_pair=800000
//! ```

use core::alloc::Layout;
use core::hint::black_box;

use crate::kprintln;
use crate::time;

pub const SIZES: [usize; 5] = [16, 64, 256, 1024, 4096];
const BATCH: usize = 32;
const PAIRS: usize = 4096;
const ROUNDS: usize = 15;

/// Runs the benchmark and prints its lines on the console.
pub fn run() {
    let tracking = if crate::mm::leak::is_enabled() {
        "on"
    } else {
        "off"
    };
    kprintln!(
        "bench: heap begin tracking={tracking} batch={BATCH} pairs={PAIRS} rounds={ROUNDS} tsc_mhz={}",
        time::tsc_hz() / 1_000_000
    );
    for size in SIZES {
        let Ok(layout) = Layout::from_size_align(size, 8) else {
            continue;
        };
        if round(layout, BATCH * 8).is_none() {
            kprintln!("bench: heap size={size} error=out-of-memory");
            continue;
        }
        let mut samples = [0u64; ROUNDS];
        for sample in &mut samples {
            *sample = round(layout, PAIRS).unwrap_or(u64::MAX);
        }
        samples.sort_unstable();
        let per_pair = |ns: u64| ns.saturating_mul(1000) / PAIRS as u64;
        kprintln!(
            "bench: heap size={size} pairs={PAIRS} rounds={ROUNDS} tracking={tracking} median_ps_per_pair={} min_ps_per_pair={}",
            per_pair(samples[ROUNDS / 2]),
            per_pair(samples[0])
        );
    }
    kprintln!("bench: heap end");
}

/// `pairs` allocations and frees of `layout`, in batches; the elapsed nanoseconds.
#[inline(never)]
fn round(layout: Layout, pairs: usize) -> Option<u64> {
    let mut blocks = [core::ptr::null_mut::<u8>(); BATCH];
    let start = time::now_ns();
    for _ in 0..pairs / BATCH {
        for block in &mut blocks {
            // SAFETY: `layout` has a non-zero size; every block is freed below with it.
            *block = black_box(unsafe { alloc::alloc::alloc(layout) });
        }
        if blocks.iter().any(|b| b.is_null()) {
            for &block in blocks.iter().filter(|b| !b.is_null()) {
                // SAFETY: allocated above with `layout`, freed once.
                unsafe { alloc::alloc::dealloc(block, layout) };
            }
            return None;
        }
        for &block in blocks.iter().rev() {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe { alloc::alloc::dealloc(black_box(block), layout) };
        }
    }
    Some(time::now_ns() - start)
}
