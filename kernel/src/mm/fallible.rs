//! Fallible heap allocation: the kit for data whose size user input drives.
//!
//! Stable Rust has no `Box::try_new`, and `vec![0; n]` or `String::from` abort (here: panic)
//! when the heap is out of memory. A system call must instead answer `ENOMEM`, so every buffer,
//! string and vector whose size a user chooses is made through this module: it reserves with
//! `try_reserve*` and maps `TryReserveError` to `ENOMEM`.
//!
//! Each reservation runs under the heap's fallible marker (`heap::fallibly`), which is what lets
//! the heap treat it differently from the kernel's infallible allocations: it grows only with
//! `Urgency::User` frames, above the low watermark, so a failure costs a system call an `ENOMEM`
//! and never the kernel its reserve; and `failslab` fault injection fails only these (the
//! infallible ones could only panic — Linux's failslab exempts `__GFP_NOFAIL` the same way).
//!
//! Small fixed-size kernel objects (an `Arc<Task>`, an inode, a descriptor) stay infallible:
//! their number is bounded by resource limits, and they are served from the reserve.

use alloc::string::String;
use alloc::vec::Vec;

use crate::errno::{EResult, Errno};

/// Makes room for `additional` more elements in `vec`, or `ENOMEM`.
pub fn try_reserve<T>(vec: &mut Vec<T>, additional: usize) -> EResult<()> {
    super::heap::fallibly(|| vec.try_reserve_exact(additional)).map_err(|_| Errno::ENOMEM)
}

/// An empty vector with room for `capacity` elements, or `ENOMEM`.
pub fn try_vec_with_capacity<T>(capacity: usize) -> EResult<Vec<T>> {
    let mut vec = Vec::new();
    try_reserve(&mut vec, capacity)?;
    Ok(vec)
}

/// `len` zero bytes (a system call's buffer), or `ENOMEM`.
pub fn try_vec_zeroed(len: usize) -> EResult<Vec<u8>> {
    let mut vec = try_vec_with_capacity(len)?;
    vec.resize(len, 0);
    Ok(vec)
}

/// Appends `value`, growing (amortised, like `push`) fallibly; `ENOMEM` if it cannot grow.
pub fn try_push<T>(vec: &mut Vec<T>, value: T) -> EResult<()> {
    if vec.len() == vec.capacity() {
        let additional = vec.capacity().max(4);
        if try_reserve(vec, additional).is_err() {
            try_reserve(vec, 1)?;
        }
    }
    vec.push(value);
    Ok(())
}

/// A copy of `text` in a new `String`, or `ENOMEM`.
pub fn try_string_from(text: &str) -> EResult<String> {
    let mut bytes = try_vec_with_capacity(text.len())?;
    bytes.extend_from_slice(text.as_bytes());
    String::from_utf8(bytes).map_err(|_| Errno::EINVAL)
}

/// Collects an iterator into a vector fallibly (sized by its lower size hint first).
pub trait TryCollect: Iterator + Sized {
    fn try_collect_vec(self) -> EResult<Vec<Self::Item>> {
        let mut vec = try_vec_with_capacity(self.size_hint().0)?;
        for item in self {
            try_push(&mut vec, item)?;
        }
        Ok(vec)
    }
}

impl<I: Iterator> TryCollect for I {}

crate::kernel_test!(fallible_kit_refuses_impossible_sizes, {
    crate::check_eq!(try_vec_zeroed(usize::MAX / 2).err(), Some(Errno::ENOMEM));
    // More than all of RAM: the heap says no instead of panicking.
    crate::check_eq!(try_vec_zeroed(1 << 40).err(), Some(Errno::ENOMEM));
    let small = try_vec_zeroed(100).map_err(|_| crate::selftest::fail("100 bytes"))?;
    crate::check!(small.len() == 100 && small.iter().all(|&b| b == 0));
    let mut v: Vec<u32> = Vec::new();
    for i in 0..100 {
        try_push(&mut v, i).map_err(|_| crate::selftest::fail("push"))?;
    }
    crate::check_eq!(v.len(), 100);
    let collected = (0..10u8)
        .try_collect_vec()
        .map_err(|_| crate::selftest::fail("collect"))?;
    crate::check_eq!(collected.len(), 10);
    let text = try_string_from("hello").map_err(|_| crate::selftest::fail("string"))?;
    crate::check_eq!(text.as_str(), "hello");
});
