//! A mutation-fuzzing loop for the host-side harnesses (docs/fuzzing.md), run by plain
//! `cargo test` on stable.
//!
//! Why our own loop rather than `cargo fuzz`/`bolero`'s engines: those need nightly (libFuzzer,
//! sanitizers) or a separate runner, and the project's CI is `cargo test` on stable. What we
//! need is small: start from real inputs (a corpus), mutate them — blindly and, through a
//! harness's own hook, structure-aware (a gdb packet's checksum fixed up, an ELF header field
//! set to an edge value) — and run a target on each with a fixed budget, reproducibly:
//!
//! - every input is a pure function of (seed, iteration), so a failure prints both plus the
//!   input in hex, and `CADENZA_FUZZ_SEED` + `CADENZA_FUZZ_ITER` (or `CADENZA_FUZZ_INPUT=<hex>`)
//!   replay exactly that input;
//! - a panic is caught and reported with the input; an input that runs longer than
//!   `CADENZA_FUZZ_HANG_SECS` (10 s) is reported by a watchdog, which aborts the process (a
//!   thread stuck in a loop cannot be stopped otherwise);
//! - a harness binary that installs `LimitedAllocator` turns a huge allocation into a report
//!   and an abort instead of an OOM kill or a swapping machine.
//!
//! The budget: `CADENZA_FUZZ_ITERS` iterations (default per harness, small for CI) or
//! `CADENZA_FUZZ_SECS` seconds (default 3), whichever ends first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same inputs on every
/// machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 if `bound` is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next_u64() % bound as u64) as usize
        }
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An "interesting" number: a boundary of some integer width, a small one, or any.
    pub fn edge_u64(&mut self) -> u64 {
        const EDGES: [u64; 16] = [
            0,
            1,
            2,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0000,
            u64::MAX - 1,
            u64::MAX,
        ];
        match self.below(4) {
            0 => self.next_u64(),
            1 => self.below(4096) as u64,
            _ => *self.pick(&EDGES),
        }
    }
}

/// Words a blind mutation may insert (a harness passes its format's tokens).
pub type Dictionary = &'static [&'static [u8]];

/// Applies 1–8 random byte-level mutations to `input`, keeping it at most `max_len` bytes.
pub fn mutate(
    rng: &mut Rng,
    input: &mut Vec<u8>,
    corpus: &[Vec<u8>],
    dictionary: Dictionary,
    max_len: usize,
) {
    let count = 1 + rng.below(8);
    for _ in 0..count {
        let len = input.len();
        match rng.below(11) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.byte();
            }
            2 if len > 0 => {
                // An edge value in 1, 2, 4 or 8 little-endian bytes.
                let width = 1 << rng.below(4);
                let at = rng.below(len);
                let value = rng.edge_u64().to_le_bytes();
                let end = (at + width).min(len);
                input[at..end].copy_from_slice(&value[..end - at]);
            }
            3 => {
                let at = rng.below(len + 1);
                let extra = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..extra).map(|_| rng.byte()).collect();
                input.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let end = at + 1 + rng.below((len - at).min(64));
                input.drain(at..end);
            }
            5 if len > 0 => {
                // Duplicate a range somewhere else.
                let at = rng.below(len);
                let end = at + 1 + rng.below((len - at).min(64));
                let copy = input[at..end].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, copy);
            }
            6 if !corpus.is_empty() => {
                // Splice in a piece of another corpus input.
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let at = rng.below(other.len());
                    let end = at + 1 + rng.below((other.len() - at).min(256));
                    let to = rng.below(len + 1);
                    input.splice(to..to, other[at..end].iter().copied());
                }
            }
            7 if !dictionary.is_empty() => {
                let word = *rng.pick(dictionary);
                let to = rng.below(len + 1);
                if rng.one_in(2) && to + word.len() <= len {
                    input[to..to + word.len()].copy_from_slice(word);
                } else {
                    input.splice(to..to, word.iter().copied());
                }
            }
            8 if len > 0 => input.truncate(rng.below(len)),
            9 => {
                // A number as text (decimal or hex), as many formats here are textual.
                let value = rng.edge_u64();
                let text = if rng.one_in(2) {
                    format!("{value:x}")
                } else {
                    format!("{value}")
                };
                let to = rng.below(len + 1);
                input.splice(to..to, text.bytes());
            }
            _ if len > 0 => {
                // Overwrite a range with one repeated byte.
                let at = rng.below(len);
                let end = at + 1 + rng.below((len - at).min(32));
                let random = rng.byte();
                let byte = *rng.pick(&[0u8, 0xff, b' ', b'\n', b'0', random]);
                input[at..end].fill(byte);
            }
            _ => input.push(rng.byte()),
        }
    }
    input.truncate(max_len);
}

/// A harness's structure-aware mutation.
pub type StructureStep<'a> = dyn Fn(&mut Rng, &mut Vec<u8>) + 'a;

/// One harness: a name, where inputs start, how they are mutated, and how much to run.
pub struct Harness<'a> {
    name: &'static str,
    corpus: Vec<Vec<u8>>,
    dictionary: Dictionary,
    max_len: usize,
    default_iterations: u64,
    structure: Option<Box<StructureStep<'a>>>,
    blind: bool,
}

/// The budget and replay settings from the environment.
#[derive(Clone, Debug)]
struct Settings {
    seed: u64,
    iterations: u64,
    time: Duration,
    hang: Duration,
    only_iteration: Option<u64>,
    input: Option<Vec<u8>>,
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    match parsed {
        Ok(value) => Some(value),
        Err(_) => panic!("{name}={text:?} is not a number"),
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// A stable seed per harness name (FNV-1a), so CI runs are reproducible without any setting.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}

thread_local! {
    /// What the current thread is fuzzing, for `LimitedAllocator`'s report (plain `Cell`s:
    /// reading them cannot allocate).
    static CURRENT: Cell<(&'static str, u64, u64)> = const { Cell::new(("", 0, 0)) };
}

impl<'a> Harness<'a> {
    /// `default_iterations` is the CI budget (also capped at `CADENZA_FUZZ_SECS`, default 3 s).
    pub fn new(name: &'static str, default_iterations: u64) -> Self {
        Self {
            name,
            corpus: Vec::new(),
            dictionary: &[],
            max_len: 64 * 1024,
            default_iterations,
            structure: None,
            blind: true,
        }
    }

    pub fn corpus(mut self, inputs: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.corpus.extend(inputs);
        self
    }

    pub fn dictionary(mut self, words: Dictionary) -> Self {
        self.dictionary = words;
        self
    }

    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// A structure-aware step, applied after the blind mutations of half the inputs (e.g. fix
    /// up checksums so the mutated packet gets past the framing).
    pub fn structure(mut self, fix: impl Fn(&mut Rng, &mut Vec<u8>) + 'a) -> Self {
        self.structure = Some(Box::new(fix));
        self
    }

    /// Only the structure-aware step changes inputs (for formats where inserting or deleting
    /// bytes just breaks every offset, such as an ELF file's).
    pub fn structure_only(mut self) -> Self {
        self.blind = false;
        self
    }

    fn settings(&self) -> Settings {
        Settings {
            seed: env_u64("CADENZA_FUZZ_SEED").unwrap_or_else(|| name_seed(self.name)),
            iterations: env_u64("CADENZA_FUZZ_ITERS").unwrap_or(self.default_iterations),
            time: Duration::from_secs(env_u64("CADENZA_FUZZ_SECS").unwrap_or(3)),
            hang: Duration::from_secs(env_u64("CADENZA_FUZZ_HANG_SECS").unwrap_or(10)),
            only_iteration: env_u64("CADENZA_FUZZ_ITER"),
            input: std::env::var("CADENZA_FUZZ_INPUT")
                .ok()
                .map(|text| from_hex(&text).expect("CADENZA_FUZZ_INPUT is not hex")),
        }
    }

    /// The input of iteration `iteration` for `seed`: the corpus inputs themselves first, then
    /// mutations of them.
    pub fn input(&self, seed: u64, iteration: u64) -> Vec<u8> {
        if let Some(input) = self.corpus.get(iteration as usize) {
            return input.clone();
        }
        let mut rng = Rng::new(seed ^ iteration.wrapping_mul(0xd6e8_feb8_6659_fd93));
        let mut input = if self.corpus.is_empty() || rng.one_in(50) {
            Vec::new()
        } else {
            rng.pick(&self.corpus).clone()
        };
        // Stack a few rounds now and then: deeper changes from the same start.
        let rounds = if rng.one_in(4) { 1 + rng.below(4) } else { 1 };
        // A third of the inputs change only through the structure-aware step: they stay
        // well-formed enough to reach the code behind a strict parser's first checks.
        let structure_only = self.structure.is_some() && (!self.blind || rng.one_in(3));
        for _ in 0..rounds {
            if !structure_only {
                mutate(
                    &mut rng,
                    &mut input,
                    &self.corpus,
                    self.dictionary,
                    self.max_len,
                );
            }
            if let Some(fix) = &self.structure
                && (structure_only || rng.one_in(2))
            {
                fix(&mut rng, &mut input);
                input.truncate(self.max_len);
            }
        }
        input
    }

    /// Runs `target` on the corpus and on mutated inputs until the budget is spent. Panics (so
    /// the test fails) with the seed, iteration and input of the first input that panicked.
    pub fn run(&self, target: impl Fn(&[u8])) -> Report {
        let settings = self.settings();
        if let Some(input) = &settings.input {
            eprintln!(
                "fuzz {}: replaying the input from CADENZA_FUZZ_INPUT",
                self.name
            );
            self.one(&settings, u64::MAX, input, &target);
            return Report { iterations: 1 };
        }
        if let Some(iteration) = settings.only_iteration {
            let input = self.input(settings.seed, iteration);
            eprintln!(
                "fuzz {}: replaying seed {:#x} iteration {iteration}: {}",
                self.name,
                settings.seed,
                to_hex(&input)
            );
            self.one(&settings, iteration, &input, &target);
            return Report { iterations: 1 };
        }
        let watchdog = Watchdog::start(self.name, settings.seed, settings.hang);
        let started = Instant::now();
        let mut iteration = 0;
        while iteration < settings.iterations.max(self.corpus.len() as u64)
            && (iteration < self.corpus.len() as u64 || started.elapsed() < settings.time)
        {
            let input = self.input(settings.seed, iteration);
            watchdog.begin(iteration, &input);
            self.one(&settings, iteration, &input, &target);
            iteration += 1;
        }
        watchdog.stop();
        eprintln!(
            "fuzz {}: {iteration} inputs in {:.1?} (seed {:#x})",
            self.name,
            started.elapsed(),
            settings.seed
        );
        Report {
            iterations: iteration,
        }
    }

    fn one(&self, settings: &Settings, iteration: u64, input: &[u8], target: &impl Fn(&[u8])) {
        CURRENT.with(|current| current.set((self.name, settings.seed, iteration)));
        let outcome = catch_unwind(AssertUnwindSafe(|| target(input)));
        CURRENT.with(|current| current.set(("", 0, 0)));
        if let Err(payload) = outcome {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            panic!(
                "fuzz {}: input panicked: {message}\n  seed {:#x} iteration {iteration} \
                 (replay: CADENZA_FUZZ_SEED={:#x} CADENZA_FUZZ_ITER={iteration})\n  input ({} \
                 bytes): {}",
                self.name,
                settings.seed,
                settings.seed,
                input.len(),
                to_hex(input)
            );
        }
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    pub iterations: u64,
}

/// Aborts the process, after printing the input, if one input runs longer than the limit.
struct Watchdog {
    state: Arc<WatchState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct WatchState {
    done: AtomicBool,
    /// Iteration + 1 of the input running now (0: none yet).
    running: AtomicU64,
    input: std::sync::Mutex<Vec<u8>>,
}

impl Watchdog {
    fn start(name: &'static str, seed: u64, limit: Duration) -> Self {
        let state = Arc::new(WatchState {
            done: AtomicBool::new(false),
            running: AtomicU64::new(0),
            input: std::sync::Mutex::new(Vec::new()),
        });
        let watched = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let mut last = (0, Instant::now());
            while !watched.done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(100));
                let now = watched.running.load(Ordering::Acquire);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if now != 0 && last.1.elapsed() > limit {
                    let input = watched.input.lock().map(|i| to_hex(&i)).unwrap_or_default();
                    eprintln!(
                        "fuzz {name}: input ran over {limit:?} (a hang?)\n  seed {seed:#x} \
                         iteration {} (replay: CADENZA_FUZZ_SEED={seed:#x} \
                         CADENZA_FUZZ_ITER={})\n  input: {input}",
                        now - 1,
                        now - 1
                    );
                    std::process::abort();
                }
            }
        });
        Self {
            state,
            thread: Some(thread),
        }
    }

    fn begin(&self, iteration: u64, input: &[u8]) {
        if let Ok(mut current) = self.state.input.lock() {
            current.clear();
            current.extend_from_slice(input);
        }
        self.state.running.store(iteration + 1, Ordering::Release);
    }

    fn stop(mut self) {
        self.state.done.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A global allocator for fuzz-test binaries: the system allocator, except that one allocation
/// larger than `limit` bytes is reported (harness, seed, iteration) and aborts the process —
/// an input that makes a parser allocate gigabytes is a bug even if the machine had them.
pub struct LimitedAllocator {
    limit: usize,
}

impl LimitedAllocator {
    pub const fn new(limit: usize) -> Self {
        Self { limit }
    }

    #[cold]
    fn refuse(&self, size: usize) -> ! {
        // Formatted into a stack buffer: no allocation inside the allocator.
        struct Buffer {
            bytes: [u8; 512],
            len: usize,
        }
        impl std::fmt::Write for Buffer {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                let n = s.len().min(self.bytes.len() - self.len);
                self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
                self.len += n;
                Ok(())
            }
        }
        let mut buffer = Buffer {
            bytes: [0; 512],
            len: 0,
        };
        let (name, seed, iteration) = CURRENT.with(Cell::get);
        let _ = write!(
            buffer,
            "fuzz {name}: one allocation of {size} bytes (limit {})\n  seed {seed:#x} iteration \
             {iteration} (replay: CADENZA_FUZZ_SEED={seed:#x} CADENZA_FUZZ_ITER={iteration})\n",
            self.limit
        );
        let _ = std::io::stderr().write_all(&buffer.bytes[..buffer.len]);
        std::process::abort();
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; refusing (aborting) never returns a bad pointer.
unsafe impl GlobalAlloc for LimitedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > self.limit {
            self.refuse(layout.size());
        }
        // SAFETY: the caller's `layout` contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > self.limit {
            self.refuse(layout.size());
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this `layout` (we allocate nothing else).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > self.limit {
            self.refuse(new_size);
        }
        // SAFETY: `ptr`/`layout` came from `System`, as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: LimitedAllocator = LimitedAllocator::new(1 << 30);

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs this test binary again with only `test` and `CADENZA_FUZZ_SELFTEST` set; returns
    /// whether it succeeded and its stderr.
    fn run_child(test: &str, extra_env: &[(&str, &str)]) -> (bool, String) {
        let exe = std::env::current_exe().expect("the test binary");
        let output = std::process::Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("CADENZA_FUZZ_SELFTEST", "1")
            .envs(extra_env.iter().copied())
            .output()
            .expect("run the test binary");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn in_child() -> bool {
        std::env::var_os("CADENZA_FUZZ_SELFTEST").is_some()
    }

    #[test]
    fn child_allocating_hugely() {
        if in_child() {
            Harness::new("selftest-alloc", 5)
                .corpus([b"x".to_vec()])
                .run(|input| {
                    let huge: Vec<u8> = Vec::with_capacity((2 << 30) + input.len());
                    std::hint::black_box(huge);
                });
        }
    }

    #[test]
    fn child_hanging() {
        if in_child() {
            Harness::new("selftest-hang", 5)
                .corpus([b"x".to_vec()])
                .run(|_| {
                    loop {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                });
        }
    }

    #[test]
    fn a_huge_allocation_is_reported_and_aborts() {
        if in_child() {
            return;
        }
        let (ok, stderr) = run_child("tests::child_allocating_hugely", &[]);
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains("fuzz selftest-alloc: one allocation of"),
            "{stderr}"
        );
        assert!(stderr.contains("CADENZA_FUZZ_ITER=0"), "{stderr}");
    }

    #[test]
    fn a_hanging_input_is_reported_and_aborts() {
        if in_child() {
            return;
        }
        let (ok, stderr) = run_child("tests::child_hanging", &[("CADENZA_FUZZ_HANG_SECS", "1")]);
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains("fuzz selftest-hang: input ran over"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("input: {}", to_hex(b"x"))),
            "{stderr}"
        );
    }

    #[test]
    fn inputs_are_a_function_of_seed_and_iteration() {
        let harness = Harness::new("self-test", 10).corpus([b"hello world".to_vec()]);
        for iteration in 0..50 {
            assert_eq!(harness.input(7, iteration), harness.input(7, iteration));
        }
        assert_ne!(
            (1..50).map(|i| harness.input(7, i)).collect::<Vec<_>>(),
            (1..50).map(|i| harness.input(8, i)).collect::<Vec<_>>()
        );
        assert_eq!(harness.input(7, 0), b"hello world");
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&bytes)).as_deref(), Some(&bytes[..]));
        assert_eq!(from_hex("abc"), None);
    }

    #[test]
    fn a_panicking_input_is_reported_with_its_seed_and_hex() {
        let harness =
            Harness::new("self-test-panics", 100).corpus([b"ok".to_vec(), b"boom".to_vec()]);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            harness.run(|input| assert!(input != b"boom", "found it"));
        }));
        let payload = outcome.expect_err("the harness must fail");
        let message = payload
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(message.contains("found it"), "{message}");
        assert!(message.contains("iteration 1"), "{message}");
        assert!(message.contains(&to_hex(b"boom")), "{message}");
    }
}
