//! Self-tests of the tracker against the live kernel heap.
//!
//! Leak tests must not keep the address they look for in a local: the stack is a scan root, so
//! the object would be referenced by the test itself. They keep it masked (`HIDE`) and scrub the
//! dead stack before each scan (`triggers::scrub_stack`).

use alloc::boxed::Box;
use alloc::string::String;
use core::alloc::Layout;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use super::triggers::scrub_stack;
use super::{
    CommandError, Filter, FreeErrorKind, State, check_free, command, is_enabled, scan, state,
    visit_objects, write_heap_report, write_leaks, write_meminfo,
};
use crate::debug::kallsyms;
use crate::selftest::{Failure, fail};

const HIDE: u64 = 0x5555_5555_5555_5555;

/// `Ok(true)` to run, `Ok(false)` to skip (booted with `kmemleak=off`), `Err` if it failed.
fn tracker_running() -> Result<bool, Failure> {
    match state() {
        State::On => Ok(true),
        State::OffAtBoot => Ok(false),
        other => Err(Failure {
            message: alloc::format!("kmemleak is {other}"),
            file: file!(),
            line: line!(),
        }),
    }
}

fn name_of(frames: &[u64]) -> &'static str {
    frames
        .first()
        .and_then(|&f| kallsyms::lookup(f - 1))
        .map_or("?", |s| s.name)
}

fn current_seq() -> u64 {
    super::tracker_stats().map_or(0, |t| t.seq)
}

/// (masked address, caller name, flags) of the live object of `size` allocated after `mark`.
fn find_since(mark: u64, size: u64) -> Option<(u64, &'static str, u8)> {
    let mut found = None;
    let _ = visit_objects(Filter::Since(mark), usize::MAX, |info| {
        if info.size == size {
            found = Some((info.addr ^ HIDE, name_of(info.caller()), info.flags));
        }
    });
    found
}

fn is_reported(masked: u64) -> bool {
    let mut reported = false;
    let _ = visit_objects(Filter::Unreferenced, usize::MAX, |info| {
        reported |= info.addr == masked ^ HIDE;
    });
    reported
}

#[inline(never)]
fn selftest_leak_88() {
    let leaked = Box::new([0x3c_u8; 88]);
    core::mem::forget(black_box(leaked));
}

crate::kernel_test!(leak_is_reported_with_its_site_and_clear_hides_it, {
    if !tracker_running()? {
        return Ok(());
    }
    let mark = current_seq();
    selftest_leak_88();
    scrub_stack();
    let stats = scan().map_err(|_| fail("scan failed"))?;
    crate::check!(stats.unreferenced >= 1 && stats.new >= 1);
    let (masked, caller, flags) =
        find_since(mark, 88).ok_or(fail("the leaked object is not tracked"))?;
    crate::check!(
        caller.ends_with("selftest_leak_88"),
        alloc::format!("the first frame names the leaking function, not {caller}")
    );
    crate::check!(
        flags & super::tables::UNREFERENCED != 0,
        "the leak is unreferenced"
    );
    crate::check!(is_reported(masked), "the leak is in the report");

    let mut text = String::new();
    write_leaks(&mut text, false);
    let header = alloc::format!("unreferenced object {:#x} (size 88):", masked ^ HIDE);
    crate::check!(text.contains(&header), text);
    crate::check!(text.contains("  comm \"swapper/0\", pid 0, jiffies "));
    crate::check!(text.contains("    3c 3c 3c 3c 3c 3c 3c 3c 3c 3c 3c 3c 3c 3c 3c 3c  <<<<<<<<"));
    crate::check!(text.contains("::selftest_leak_88+0x"), text);
    drop(text);

    let mut out = String::new();
    command("clear", &mut out).map_err(|_| fail("clear failed"))?;
    crate::check!(out.starts_with("kmemleak: cleared "), out);
    drop(out);
    scrub_stack();
    scan().map_err(|_| fail("scan failed"))?;
    crate::check!(!is_reported(masked), "a cleared leak is not reported again");
    let (_, _, flags) = find_since(mark, 88).ok_or(fail("the object vanished"))?;
    crate::check!(flags & super::tables::IGNORED != 0);
});

static HELD: AtomicU64 = AtomicU64::new(0);

#[repr(C)]
struct Holder {
    /// Points 8 bytes into the inner object: pointers inside a block count.
    inner: u64,
    pad: [u64; 3],
}

/// A 32-byte outer object, referenced only from `HELD`, pointing into a 104-byte inner object.
#[inline(never)]
fn build_chain() {
    let inner = Box::into_raw(Box::new([0x11_u8; 104]));
    let outer = Box::into_raw(Box::new(Holder {
        inner: inner as u64 + 8,
        pad: [0; 3],
    }));
    HELD.store(outer as u64, Ordering::SeqCst);
}

crate::kernel_test!(leak_scan_follows_statics_and_heap_pointers, {
    if !tracker_running()? {
        return Ok(());
    }
    let mark = current_seq();
    build_chain();
    scrub_stack();
    scan().map_err(|_| fail("scan failed"))?;
    let (outer, _, _) = find_since(mark, 32).ok_or(fail("outer not tracked"))?;
    let (inner, _, _) = find_since(mark, 104).ok_or(fail("inner not tracked"))?;
    crate::check!(!is_reported(outer), "referenced from a static: not a leak");
    crate::check!(
        !is_reported(inner),
        "reachable through a referenced object: not a leak"
    );

    // The control: once the static forgets the chain, both objects are leaks.
    // Masked behind `black_box`: the compiler must not keep the plain address alive.
    let held = black_box(HELD.swap(0, Ordering::SeqCst) ^ HIDE);
    scrub_stack();
    scan().map_err(|_| fail("scan failed"))?;
    let both = is_reported(outer) && is_reported(inner);
    let holder = (held ^ HIDE) as *mut Holder;
    // SAFETY: `build_chain` made both with `Box::into_raw`; nothing else frees them.
    unsafe {
        let inner = ((*holder).inner - 8) as *mut [u8; 104];
        drop(Box::from_raw(inner));
        drop(Box::from_raw(holder));
    }
    crate::check!(both, "an unreferenced chain is reported whole");
});

#[inline(never)]
fn selftest_alloc_victim(layout: Layout) -> *mut u8 {
    // SAFETY: non-zero size; freed by the test.
    black_box(unsafe { alloc::alloc::alloc(layout) })
}

#[inline(never)]
fn selftest_first_free(ptr: *mut u8, layout: Layout) {
    // SAFETY: `ptr` came from `alloc` with `layout` and is live.
    unsafe { alloc::alloc::dealloc(black_box(ptr), layout) };
}

crate::kernel_test!(leak_double_and_invalid_frees_are_caught, {
    if !tracker_running()? {
        return Ok(());
    }
    let layout = Layout::from_size_align(48, 8).map_err(|_| fail("layout"))?;
    let ptr = selftest_alloc_victim(layout);
    crate::check!(
        check_free(ptr, layout).is_ok(),
        "a live object may be freed"
    );
    selftest_first_free(ptr, layout);
    let error = check_free(ptr, layout)
        .err()
        .ok_or(fail("a double free must be refused"))?;
    crate::check_eq!(error.kind, FreeErrorKind::DoubleFree);
    crate::check!(
        name_of(super::capture::caller_frames(error.alloc_stack()))
            .ends_with("selftest_alloc_victim")
    );
    let (first, depth) = error
        .first_free
        .ok_or(fail("the first free is remembered"))?;
    crate::check!(
        name_of(super::capture::caller_frames(&first[..depth])).ends_with("selftest_first_free")
    );
    crate::check!(name_of(error.free_stack()).contains("leak_double_and_invalid_frees_are_caught"));
    let message = alloc::format!("{error}");
    crate::check!(message.starts_with(&alloc::format!("kmemleak: double free of {ptr:p} (size 48): allocated by kernel::mm::leak::tests::selftest_alloc_victim+")), message);
    crate::check!(
        message.contains("; first freed by kernel::mm::leak::tests::selftest_first_free+"),
        message
    );
    crate::check!(!message.contains('\n'), "one line for the panic report");

    static NOT_HEAP: u64 = 0;
    let stat = (&raw const NOT_HEAP).cast::<u8>().cast_mut();
    crate::check_eq!(
        check_free(stat, Layout::new::<u64>()).map_err(|e| e.kind),
        Err(FreeErrorKind::NotHeap)
    );

    let boxed = Box::new([0u8; 48]);
    let start = boxed.as_ptr().cast_mut();
    let interior = check_free(start.wrapping_add(8), layout)
        .err()
        .ok_or(fail("an interior pointer must be refused"))?;
    crate::check_eq!(interior.kind, FreeErrorKind::Interior);
    crate::check_eq!(interior.object, Some((start as u64, 48)));
    crate::check_eq!(
        check_free(start, Layout::new::<[u8; 40]>()).map_err(|e| e.kind),
        Err(FreeErrorKind::WrongSize { allocated: 48 })
    );
    drop(boxed);

    let overflowing = Box::into_raw(Box::new([0u8; 40])).cast::<u8>();
    // SAFETY: the 40-byte object lives in a 64-byte block owned by the heap; byte 40 is its red
    // zone. The test breaks it on purpose and restores it before freeing.
    unsafe { overflowing.add(40).write_volatile(0x41) };
    let corrupted = check_free(overflowing, Layout::new::<[u8; 40]>()).map_err(|e| e.kind);
    // SAFETY: as above.
    unsafe { overflowing.add(40).write_volatile(0xcc) };
    crate::check_eq!(
        corrupted,
        Err(FreeErrorKind::RedZone {
            offset: 40,
            found: 0x41
        })
    );
    // SAFETY: made by `Box::into_raw` above, red zone restored.
    drop(unsafe { Box::from_raw(overflowing.cast::<[u8; 40]>()) });
});

crate::kernel_test!(leak_mark_and_since_mark_list_new_objects, {
    if !tracker_running()? {
        return Ok(());
    }
    let mut out = String::new();
    command("mark", &mut out).map_err(|_| fail("mark"))?;
    let mark = super::tracker_stats().map_or(0, |t| t.mark);
    crate::check!(
        out.contains(&alloc::format!("mark set at allocation #{mark}")),
        out
    );
    let a = Box::new([1u8; 24]);
    let b = alloc::vec![0u64; 9];
    let (a_addr, b_addr) = (a.as_ptr() as u64, b.as_ptr() as u64);
    let mut seen = (false, false);
    visit_objects(Filter::Since(mark), usize::MAX, |info| {
        seen.0 |= info.addr == a_addr && info.size == 24;
        seen.1 |= info.addr == b_addr && info.size == 72;
    })
    .map_err(|_| fail("visit"))?;
    crate::check_eq!(seen, (true, true));
    out.clear();
    command("since-mark", &mut out).map_err(|_| fail("since-mark"))?;
    crate::check!(
        out.contains(&alloc::format!("object {a_addr:#x} (size 24):")),
        out
    );
    crate::check!(
        out.contains(&alloc::format!(
            "allocated after mark #{mark} are still live"
        )),
        out
    );
    drop((a, b));
    let mut still = false;
    visit_objects(Filter::Since(mark), usize::MAX, |info| {
        still |= info.addr == a_addr || info.addr == b_addr;
    })
    .map_err(|_| fail("visit"))?;
    crate::check!(!still, "freed objects leave the view");
});

crate::kernel_test!(leak_command_words, {
    if !tracker_running()? {
        return Ok(());
    }
    let mut out = String::new();
    crate::check_eq!(command("  ", &mut out), Err(CommandError::Empty));
    crate::check_eq!(command("bogus", &mut out), Err(CommandError::Unknown));
    crate::check_eq!(command("dump=zz", &mut out), Err(CommandError::BadAddress));
    crate::check_eq!(
        command("dump=0x10", &mut out),
        Err(CommandError::NoObject(0x10))
    );
    crate::check_eq!(command("scan=on", &mut out), Err(CommandError::Unsupported));
    let boxed = Box::new([9u8; 200]);
    let addr = boxed.as_ptr() as u64;
    command(&alloc::format!("dump={:#x}", addr + 100), &mut out).map_err(|_| fail("dump"))?;
    crate::check!(
        out.contains(&alloc::format!("object {addr:#x} (size 200):")),
        out
    );
    crate::check!(out.contains("  backtrace:\n    [<ffffffff8"), out);
    out.clear();
    command(&alloc::format!("ignore={addr}"), &mut out).map_err(|_| fail("ignore"))?;
    crate::check!(out.contains("will not be reported"), out);
    out.clear();
    command("scan", &mut out).map_err(|_| fail("scan"))?;
    crate::check!(out.starts_with("kmemleak: scanned "), out);
    drop(boxed);
    crate::check!(is_enabled());
});

crate::kernel_test!(leak_reports_meminfo_and_heap, {
    let mut out = String::new();
    write_meminfo(&mut out);
    for field in [
        "MemTotal:",
        "MemFree:",
        "MemAvailable:",
        "Slab:",
        "SUnreclaim:",
        "KernelStack:",
        "HeapLive:",
        "Kmemleak:",
    ] {
        crate::check!(out.contains(field), alloc::format!("{field} in {out}"));
    }
    crate::check!(
        out.lines().all(|l| l.len() == 27 && l.ends_with(" kB")),
        out
    );
    out.clear();
    write_heap_report(&mut out);
    crate::check!(out.starts_with("heap: "), out);
    crate::check!(out.contains(" class frames   live"), out);
    if is_enabled() {
        crate::check!(out.contains("top call sites by live bytes:"), out);
        crate::check!(out.contains("kmemleak: on; "), out);
    }
});
