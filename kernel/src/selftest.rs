//! In-kernel unit tests on stable Rust.
//!
//! `cargo test` cannot run code that needs page tables, interrupts and real devices, and the
//! `custom_test_frameworks` feature is nightly-only. Instead, `kernel_test!` places a `TestCase`
//! in the `.kernel_tests` linker section; booting with `selftest` (or `selftest=<filter>`) runs
//! every case after the kernel is fully up and reports each result on the console:
//!
//! ```text
//! selftest: running 12 tests
//! selftest: mm::heap::heap_small_large_and_aligned ... ok
//! selftest: <name> ... FAILED: <message> (kernel/src/x.rs:10)
//! selftest: result: 11 passed; 1 failed
//! ```
//!
//! A test returns `Err` through the `check!` macros instead of panicking, so one failure does not
//! stop the run. A panic inside a test is still a kernel panic, with its full report.

use alloc::string::String;

use crate::kprintln;

pub type TestResult = Result<(), Failure>;

pub struct TestCase {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub file: &'static str,
    pub line: u32,
}

/// A failure with a fixed message at the caller's location.
#[track_caller]
pub fn fail(message: &str) -> Failure {
    let location = core::panic::Location::caller();
    Failure {
        message: String::from(message),
        file: location.file(),
        line: location.line(),
    }
}

/// Registers a kernel self-test: `kernel_test!(name, { ...; })`.
#[macro_export]
macro_rules! kernel_test {
    ($name:ident, $body:block) => {
        const _: () = {
            #[allow(unreachable_code, clippy::unnecessary_wraps)]
            fn $name() -> $crate::selftest::TestResult {
                $body
                Ok(())
            }
            #[used]
            // SAFETY: the section only holds `TestCase` values; `selftest::all` reads it as such.
            #[unsafe(link_section = ".kernel_tests")]
            static CASE: $crate::selftest::TestCase = $crate::selftest::TestCase {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: $name,
            };
        };
    };
}

/// Fails the current test unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr $(,)?) => {
        $crate::check!($cond, stringify!($cond))
    };
    ($cond:expr, $msg:expr $(,)?) => {
        if !$cond {
            return Err($crate::selftest::Failure {
                message: alloc::string::String::from($msg),
                file: file!(),
                line: line!(),
            });
        }
    };
}

/// Fails the current test unless both sides are equal, showing both.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    return Err($crate::selftest::Failure {
                        message: alloc::format!(
                            "{} == {}: left {:?}, right {:?}",
                            stringify!($left),
                            stringify!($right),
                            left,
                            right
                        ),
                        file: file!(),
                        line: line!(),
                    });
                }
            }
        }
    };
}

fn all() -> &'static [TestCase] {
    unsafe extern "C" {
        static __kernel_tests_start: u8;
        static __kernel_tests_end: u8;
    }
    let start = core::ptr::addr_of!(__kernel_tests_start).cast::<TestCase>();
    let end = core::ptr::addr_of!(__kernel_tests_end).cast::<TestCase>();
    let count = (end as usize - start as usize) / core::mem::size_of::<TestCase>();
    // SAFETY: the linker script brackets `.kernel_tests`, which only `kernel_test!` fills, with
    // these symbols; every element is a properly aligned, initialised `TestCase`.
    unsafe { core::slice::from_raw_parts(start, count) }
}

/// Runs every test whose name contains `filter`; returns (passed, failed).
pub fn run(filter: Option<&str>) -> (usize, usize) {
    let tests = all();
    let selected = || {
        tests
            .iter()
            .filter(|t| filter.is_none_or(|f| t.name.contains(f)))
    };
    kprintln!("selftest: running {} tests", selected().count());
    let (mut passed, mut failed) = (0, 0);
    for test in selected() {
        match (test.run)() {
            Ok(()) => {
                passed += 1;
                kprintln!("selftest: {} ... ok", test.name);
            }
            Err(failure) => {
                failed += 1;
                kprintln!(
                    "selftest: {} ... FAILED: {} ({}:{})",
                    test.name,
                    failure.message,
                    failure.file,
                    failure.line
                );
            }
        }
    }
    kprintln!("selftest: result: {passed} passed; {failed} failed");
    (passed, failed)
}
