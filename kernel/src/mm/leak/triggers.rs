//! `kmemleak_test=<mode>`: drive the tracker's paths on a real boot (the QEMU tests use these).
//!
//! - `churn`: create and destroy thousands of kernel objects of mixed sizes (Box, Vec, String,
//!   BTreeMap), then check that the live heap is back at its baseline and a scan finds nothing;
//! - `leak`: leak one 72-byte object from `kmemleak_test_leak` and print the scan's report;
//! - `double_free`, `invalid_free`, `red_zone`: commit the bug, which must stop the kernel with
//!   a panic report naming the allocation and the free;
//! - `report`: print `/proc/meminfo` and the heap report (what gdb's `monitor meminfo` and
//!   `monitor heap` show) after a little work, for a look without a debugger.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::fmt::Write;
use core::hint::black_box;

use super::{ConsoleWriter, is_enabled, state, write_heap_report, write_leaks, write_meminfo};
use crate::boot::Cmdline;
use crate::kprintln;
use crate::mm::heap;

pub fn run_test_mode(cmdline: &Cmdline) {
    let Some(mode) = cmdline.get("kmemleak_test") else {
        return;
    };
    let needs_tracker = matches!(mode, "double_free" | "invalid_free" | "red_zone");
    if needs_tracker && !is_enabled() {
        kprintln!(
            "kmemleak_test: kmemleak is {}; not committing {mode}",
            state()
        );
        return;
    }
    match mode {
        "churn" => churn(),
        "leak" => leak(),
        "double_free" => double_free(),
        "invalid_free" => invalid_free(),
        "red_zone" => red_zone(),
        "report" => report(),
        other => kprintln!("kmemleak_test: unknown mode {other:?}; ignoring"),
    }
}

/// Overwrites the dead part of the stack below the caller, so that stale copies of pointers
/// left there by finished calls cannot be mistaken for references by the next scan (the scan
/// reads the running stack from its own stack pointer up, and its callers' frames may reuse
/// slots that held such copies).
#[inline(never)]
pub fn scrub_stack() {
    let mut zeroes = [0u8; 8192];
    black_box(&mut zeroes);
}

fn next(state: &mut u64) -> u64 {
    // xorshift64*: deterministic sizes, no allocation.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[inline(never)]
fn churn_round(round: usize, rng: &mut u64) -> usize {
    let mut boxes: Vec<Box<[u8]>> = Vec::new();
    for i in 0..40 {
        let size = 1 + (next(rng) % 3000) as usize;
        boxes.push(alloc::vec![i as u8; size].into_boxed_slice());
    }
    let mut map: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..60 {
        map.insert(
            alloc::format!("key-{round}-{i}"),
            (0..(i % 17) as u64).collect(),
        );
    }
    for i in (0..60).step_by(2) {
        map.remove(&alloc::format!("key-{round}-{i}"));
    }
    let mut text = String::new();
    for i in 0..30 {
        let _ = write!(text, "{i:08x}");
    }
    boxes.retain(|b| b.len() % 3 != 0);
    let nested: Vec<Box<Vec<String>>> = (0..8)
        .map(|i| Box::new((0..i).map(|j| alloc::format!("{j}")).collect()))
        .collect();
    black_box(&nested);
    black_box(&text);
    boxes.len() + map.len() + nested.len()
}

fn churn() {
    const ROUNDS: usize = 100;
    let before = heap::stats();
    let started = crate::time::now_ns();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut kept = 0;
    for round in 0..ROUNDS {
        kept += churn_round(round, &mut rng);
    }
    let elapsed_ms = (crate::time::now_ns() - started) / 1_000_000;
    let after = heap::stats();
    scrub_stack();
    let scan = super::scan();
    kprintln!(
        "kmemleak_test: churn: {} rounds, {} allocations and {} frees in {elapsed_ms} ms ({kept} objects at round ends)",
        ROUNDS,
        after.total_allocations - before.total_allocations,
        after.total_frees - before.total_frees
    );
    kprintln!(
        "kmemleak_test: churn: baseline live_objects={} live_bytes={}; after live_objects={} live_bytes={}",
        before.live_allocations,
        before.live_bytes,
        after.live_allocations,
        after.live_bytes
    );
    match scan {
        Ok(stats) => {
            kprintln!(
                "kmemleak_test: churn: scan objects={} unreferenced={}",
                stats.objects,
                stats.unreferenced
            );
            if stats.unreferenced > 0 {
                write_leaks(&mut ConsoleWriter, false);
            }
        }
        Err(error) => kprintln!("kmemleak_test: churn: no scan: {error}"),
    }
}

/// Leaks one 72-byte object on purpose.
#[inline(never)]
fn kmemleak_test_leak() {
    let leaked = Box::new([0x5a_u8; 72]);
    core::mem::forget(black_box(leaked));
}

fn leak() {
    kmemleak_test_leak();
    scrub_stack();
    kprintln!("kmemleak_test: leaked a 72-byte object in kmemleak_test_leak; scanning");
    write_leaks(&mut ConsoleWriter, true);
    // The report copied the object's address into stack frames of this (the boot) context,
    // which lives on as the idle task and is scanned as a root: without this, whether a later
    // scan still sees the leak depends on how deep later code happens to overwrite them.
    scrub_stack();
    kprintln!("kmemleak_test: leak report done");
}

const VICTIM: Layout = match Layout::from_size_align(48, 8) {
    Ok(layout) => layout,
    Err(_) => panic!("valid layout"),
};

#[inline(never)]
fn kmemleak_test_alloc_victim() -> *mut u8 {
    // SAFETY: non-zero size; freed (twice, on purpose) by the callers below.
    black_box(unsafe { alloc::alloc::alloc(VICTIM) })
}

// The two frees differ (`black_box` of different constants) so that the compiler cannot merge
// them into one function, which would give both sites the same name.
#[inline(never)]
fn kmemleak_test_first_free(ptr: *mut u8) {
    black_box(1u32);
    // SAFETY: `ptr` came from `alloc` with `VICTIM` and is live.
    unsafe { alloc::alloc::dealloc(black_box(ptr), VICTIM) };
}

#[inline(never)]
fn kmemleak_test_second_free(ptr: *mut u8) {
    black_box(2u32);
    // SAFETY: deliberately wrong — `ptr` was freed already. The tracker (checked to be on by
    // `run_test_mode`) panics before the heap's backend sees the block again.
    unsafe { alloc::alloc::dealloc(black_box(ptr), VICTIM) };
}

fn double_free() {
    let ptr = kmemleak_test_alloc_victim();
    kprintln!("kmemleak_test: freeing {ptr:p} twice");
    kmemleak_test_first_free(ptr);
    kmemleak_test_second_free(ptr);
    kprintln!("kmemleak_test: the double free was not caught");
}

#[inline(never)]
fn kmemleak_test_free_static() {
    static NOT_HEAP: [u64; 6] = [0; 6];
    let ptr = (&raw const NOT_HEAP).cast::<u8>().cast_mut();
    // SAFETY: deliberately wrong — the block is a static, not a heap block. The tracker panics
    // before the heap's backend sees it.
    unsafe { alloc::alloc::dealloc(black_box(ptr), VICTIM) };
}

fn invalid_free() {
    kmemleak_test_free_static();
    kprintln!("kmemleak_test: the invalid free was not caught");
}

#[inline(never)]
fn kmemleak_test_overflow(ptr: *mut u8) {
    // SAFETY: deliberately wrong, but inside memory the heap owns: a 40-byte request is served
    // from a 64-byte block, so byte 40 is the block's red zone, which the tracker checks on free.
    unsafe { black_box(ptr).add(40).write_volatile(0) };
}

fn red_zone() {
    let layout = Layout::new::<[u8; 40]>();
    // SAFETY: non-zero size; freed below with the same layout.
    let ptr = unsafe { alloc::alloc::alloc(layout) };
    kmemleak_test_overflow(ptr);
    // SAFETY: allocated above with `layout`.
    unsafe { alloc::alloc::dealloc(ptr, layout) };
    kprintln!("kmemleak_test: the overflow was not caught");
}

fn report() {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    // Some live objects from two sites, so the report has something to show.
    let kept: Vec<Box<[u8]>> = (0..64)
        .map(|_| alloc::vec![0u8; 1 + (next(&mut rng) % 700) as usize].into_boxed_slice())
        .collect();
    let map: BTreeMap<u64, String> = (0..100).map(|i| (i, alloc::format!("{i}"))).collect();
    kprintln!("kmemleak_test: /proc/meminfo:");
    write_meminfo(&mut ConsoleWriter);
    kprintln!("kmemleak_test: heap report:");
    write_heap_report(&mut ConsoleWriter);
    drop((kept, map));
}
