//! Fault injection as Linux has it: `failslab` and `fail_page_alloc`.
//!
//! Error paths that never run are error paths that do not work. Linux's answer
//! (Documentation/fault-injection/fault-injection.rst) is to make allocations fail on purpose,
//! configured by boot parameters (`failslab=<interval>,<probability>,<space>,<times>`, the same
//! for `fail_page_alloc=`) and by debugfs files under `/sys/kernel/debug/<name>/`
//! (`probability`, `interval`, `times`, `space`, `verbose`). Cadenza takes both unchanged, so
//! the same scripts drive either kernel, plus one file of its own, `injected`: how many failures
//! were forced so far (tests read it to prove that failures happened).
//!
//! What each one covers, honestly:
//!
//! - `failslab` fails kernel-heap allocations made through the fallible kit (`mm::fallible`):
//!   buffers, strings and vectors whose size user input drives, whose callers turn failure into
//!   `ENOMEM`. Like Linux's failslab, which only fails allocations whose caller handles `NULL`
//!   (`__GFP_NOFAIL` is exempt), the kernel's infallible allocations (`Box::new`, `Arc::new`,
//!   a `String` pushed to) are never failed: in stable Rust they cannot report failure, and a
//!   failure there is a panic by construction.
//! - `fail_page_alloc` fails frame requests of `Urgency::User` and `Urgency::Kernel` (user
//!   pages, page tables, kernel stacks, fallible heap growth); `Urgency::Reserve` (the
//!   infallible heap's growth) is exempt, for the same reason.
//!
//! The decision is Linux's `should_fail`: nothing while `times` is 0; the first `space` bytes
//! requested pass; then only every `interval`-th call is a candidate, failing with `probability`
//! percent; each failure counts `times` down unless it is -1. With `verbose` 1 or more a failure
//! prints Linux's two lines (`FAULT_INJECTION: forcing a failure.` and the attributes),
//! rate-limited to 10 per 5 seconds as Linux's; with 2 (the default, as Linux) also a backtrace.
//!
//! Injection is armed once init is loaded (`arm`): the kernel's own boot-time allocations (and
//! loading init, which Linux treats as fatal if it fails) are not prepared to fail and are not
//! user-driven. Boot parameters set the attributes before that.

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::errno::{EResult, Errno};

/// Set once init starts; before that nothing is failed.
static ARMED: AtomicBool = AtomicBool::new(false);

/// One fault-injection point's attributes (Linux's `struct fault_attr`).
pub struct FaultAttr {
    pub name: &'static str,
    probability: AtomicU64,
    interval: AtomicU64,
    times: AtomicI64,
    space: AtomicI64,
    verbose: AtomicU64,
    /// Calls seen (for `interval`).
    calls: AtomicU64,
    /// Failures forced so far.
    injected: AtomicU64,
    /// Rate limit of the verbose report: start of the window (ns) and reports in it.
    window_start: AtomicU64,
    window_reports: AtomicU64,
    /// Random state (xorshift64*), shared; races only make it more random.
    random: AtomicU64,
}

impl FaultAttr {
    const fn new(name: &'static str, seed: u64) -> Self {
        Self {
            name,
            probability: AtomicU64::new(0),
            interval: AtomicU64::new(1),
            times: AtomicI64::new(1),
            space: AtomicI64::new(0),
            verbose: AtomicU64::new(2),
            calls: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            window_start: AtomicU64::new(0),
            window_reports: AtomicU64::new(0),
            random: AtomicU64::new(seed),
        }
    }

    /// Whether the allocation of `size` bytes about to happen should fail (Linux's
    /// `should_fail`). Never allocates; safe with interrupts masked and heap locks held.
    pub fn should_fail(&self, size: usize) -> bool {
        let probability = self.probability.load(Ordering::Relaxed);
        if probability == 0 || !ARMED.load(Ordering::Relaxed) {
            return false;
        }
        if self.times.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        if self.space.load(Ordering::Relaxed) > size {
            self.space.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        let interval = self.interval.load(Ordering::Relaxed);
        if interval > 1 {
            let count = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            if !count.is_multiple_of(interval) {
                return false;
            }
        }
        if probability <= self.next_random() % 100 {
            return false;
        }
        let times = self.times.load(Ordering::Relaxed);
        if times > 0 {
            self.times.store(times - 1, Ordering::Relaxed);
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        self.report();
        true
    }

    fn next_random(&self) -> u64 {
        let mut x = self.random.load(Ordering::Relaxed);
        if x == 0 {
            x = 0x9e37_79b9_7f4a_7c15 ^ crate::time::now_ns();
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32
    }

    /// Linux's `fail_dump`: two lines and, with `verbose` 2, a backtrace; at most 10 reports
    /// per 5 seconds.
    fn report(&self) {
        let verbose = self.verbose.load(Ordering::Relaxed);
        if verbose == 0 {
            return;
        }
        let now = crate::time::now_ns();
        if now.saturating_sub(self.window_start.load(Ordering::Relaxed)) > 5_000_000_000 {
            self.window_start.store(now, Ordering::Relaxed);
            self.window_reports.store(0, Ordering::Relaxed);
        }
        if self.window_reports.fetch_add(1, Ordering::Relaxed) >= 10 {
            return;
        }
        crate::kprintln!("FAULT_INJECTION: forcing a failure.");
        crate::kprintln!(
            "name {}, interval {}, probability {}, space {}, times {}",
            self.name,
            self.interval.load(Ordering::Relaxed),
            self.probability.load(Ordering::Relaxed),
            self.space.load(Ordering::Relaxed),
            self.times.load(Ordering::Relaxed)
        );
        if verbose > 1 {
            let backtrace = crate::debug::backtrace::Backtrace::capture();
            crate::kprintln!("Call Trace:");
            for &address in backtrace.frames() {
                crate::kprintln!(" [<{address:016x}>]");
            }
        }
    }

    /// The boot parameter: `<interval>,<probability>,<space>,<times>` (Linux's
    /// `setup_fault_attr`); `Err` and no change if it does not parse.
    pub fn configure(&self, text: &str) -> Result<(), ()> {
        let mut fields = text.split(',');
        let mut next = || fields.next().map(str::trim).ok_or(());
        let interval = next()?.parse::<u64>().map_err(|_| ())?;
        let probability = next()?.parse::<u64>().map_err(|_| ())?;
        let space = next()?.parse::<i64>().map_err(|_| ())?;
        let times = next()?.parse::<i64>().map_err(|_| ())?;
        self.interval.store(interval, Ordering::Relaxed);
        self.probability.store(probability, Ordering::Relaxed);
        self.space.store(space, Ordering::Relaxed);
        self.times.store(times, Ordering::Relaxed);
        Ok(())
    }

    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }
}

/// `failslab`: fallible kernel-heap allocations.
pub static FAILSLAB: FaultAttr = FaultAttr::new("failslab", 0x5eed_0001_cafe_f00d);
/// `fail_page_alloc`: frame requests other than the reserve's.
pub static FAIL_PAGE_ALLOC: FaultAttr = FaultAttr::new("fail_page_alloc", 0x5eed_0002_dead_beef);

/// Reads `failslab=` and `fail_page_alloc=` from the command line.
pub fn init(cmdline: &crate::boot::Cmdline) {
    for attr in [&FAILSLAB, &FAIL_PAGE_ALLOC] {
        if let Some(value) = cmdline.get(attr.name) {
            match attr.configure(value) {
                Ok(()) => crate::kprintln!(
                    "{}: interval {}, probability {}, space {}, times {}",
                    attr.name,
                    attr.interval.load(Ordering::Relaxed),
                    attr.probability.load(Ordering::Relaxed),
                    attr.space.load(Ordering::Relaxed),
                    attr.times.load(Ordering::Relaxed)
                ),
                Err(()) => crate::kprintln!("{}: cannot parse {value:?}; ignored", attr.name),
            }
        }
    }
}

/// Starts injecting (called once init is loaded, before its first instruction).
pub fn arm() {
    ARMED.store(true, Ordering::Relaxed);
}

/// A debugfs knob of one attribute.
#[derive(Clone, Copy)]
pub enum Knob {
    Probability,
    Interval,
    Times,
    Space,
    Verbose,
    /// Read-only: failures forced so far (Cadenza's addition).
    Injected,
}

impl Knob {
    pub const ALL: [(&'static str, Knob); 6] = [
        ("probability", Knob::Probability),
        ("interval", Knob::Interval),
        ("times", Knob::Times),
        ("space", Knob::Space),
        ("verbose", Knob::Verbose),
        ("injected", Knob::Injected),
    ];
}

/// What reading `/sys/kernel/debug/<attr>/<knob>` shows: the number and a newline.
pub fn show(attr: &FaultAttr, knob: Knob, out: &mut String) -> EResult<()> {
    let _ = match knob {
        Knob::Probability => writeln!(out, "{}", attr.probability.load(Ordering::Relaxed)),
        Knob::Interval => writeln!(out, "{}", attr.interval.load(Ordering::Relaxed)),
        Knob::Times => writeln!(out, "{}", attr.times.load(Ordering::Relaxed)),
        Knob::Space => writeln!(out, "{}", attr.space.load(Ordering::Relaxed)),
        Knob::Verbose => writeln!(out, "{}", attr.verbose.load(Ordering::Relaxed)),
        Knob::Injected => writeln!(out, "{}", attr.injected.load(Ordering::Relaxed)),
    };
    Ok(())
}

/// A write to a knob: a decimal number (leading/trailing blanks and a newline allowed),
/// `EINVAL` otherwise. Like Linux's, values are not range-checked: a probability of 100 or more
/// fails every candidate call, an interval of 0 or 1 makes every call a candidate.
pub fn store(attr: &FaultAttr, knob: Knob, data: &[u8]) -> EResult<usize> {
    let text = core::str::from_utf8(data)
        .map_err(|_| Errno::EINVAL)?
        .trim();
    match knob {
        Knob::Times | Knob::Space => {
            let value = text.parse::<i64>().map_err(|_| Errno::EINVAL)?;
            let target = if matches!(knob, Knob::Times) {
                &attr.times
            } else {
                &attr.space
            };
            target.store(value, Ordering::Relaxed);
        }
        Knob::Injected => return Err(Errno::EIO),
        Knob::Probability | Knob::Interval | Knob::Verbose => {
            let value = text.parse::<u64>().map_err(|_| Errno::EINVAL)?;
            match knob {
                Knob::Probability => attr.probability.store(value, Ordering::Relaxed),
                Knob::Interval => attr.interval.store(value, Ordering::Relaxed),
                _ => attr.verbose.store(value, Ordering::Relaxed),
            }
        }
    }
    Ok(data.len())
}

crate::kernel_test!(fault_attr_parses_linux_boot_format, {
    let attr = FaultAttr::new("test", 1);
    crate::check!(attr.configure("1,2,0,-1").is_ok());
    crate::check_eq!(attr.interval.load(Ordering::Relaxed), 1);
    crate::check_eq!(attr.probability.load(Ordering::Relaxed), 2);
    crate::check_eq!(attr.times.load(Ordering::Relaxed), -1);
    crate::check!(attr.configure("x").is_err());
    // Not armed in a self-test boot: never fails.
    crate::check!(!attr.should_fail(16));
});
