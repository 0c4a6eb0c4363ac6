//! The decoder's tests, and round trips of the encoder through it.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Display};

use super::*;

/// A snapshot as the kernel writes it (trimmed to a few records), with a leak and sites.
const SAMPLE: &str = "\
telemetry-begin version=1 seq=7
uptime ns=3004123456 jiffies=300 hz=100
frames total=65247 free=64500 used=747 kernel=244 heap=2 heap_meta=32 tracker=477
heap objects=3 bytes=200 footprint=8192 free_bytes=7920 internal_frag=72 external_frag=7920 allocs=10 frees=7 failed=0 large_objects=0 large_frames=0 large_bytes=0
classes count=2
class size=16 frames=1 live=1 free=255 requested=8 partial_frames=1 partial_free=255 empty_frames=0 full_frames=0
class size=128 frames=1 live=2 free=30 requested=192 partial_frames=1 partial_free=30 empty_frames=0 full_frames=0
tracker state=on objects=3 peak=5 capacity=32768 bytes=200 sites=4 site_capacity=1536 overhead=1953792 seq=10 mark=0 scans=1 unreferenced=1 untracked=0 allocs=10 frees=7
scan at_ns=3000000000 objects=3 unreferenced=1 new=1 root_bytes=264192 object_bytes=8 duration_ns=800000
sites count=1
site id=5 objects=2 bytes=144 allocs=2 ret0=0xffffffff80235a0c sym0=\"kernel::mm::leak::triggers::kmemleak_test_leak+0x1c/0x6b\" ret1=0xffffffff802352b0 sym1=\"<[u8; 4] as core::fmt::Debug>::fmt+0x60/0x798\" ret2=0x1234 sym2=\"?\"
leaks count=1 total=1
leak addr=0xffff80000050f000 size=72 seq=3 pid=0 comm=\"swapper/0\" jiffies=0 age_ms=3000 site=5 ret0=0xffffffff80235a0c sym0=\"kernel::mm::leak::triggers::kmemleak_test_leak+0x1c/0x6b\"
tasks count=0 total=0
telemetry-end seq=7 records=13
";

/// Figures that overflow the relations' arithmetic (free frames above the total, a class
/// with 2^64-1 frames, more frees than allocations) make an inconsistent snapshot, not a
/// panic. Found by `fuzz_telemetry_decoder` (qemu/tests/fuzz.rs).
#[test]
fn overflowing_figures_are_inconsistent_not_a_panic() {
    for (from, to) in [
        ("free=64500 ", "free=18446744073709551615 "),
        (
            "class size=16 frames=1 ",
            "class size=16 frames=18446744073709551615 ",
        ),
        (
            "allocs=10 frees=7 failed",
            "allocs=10 frees=0xffffffffffffffff failed",
        ),
        ("large_bytes=0", "large_bytes=18446744073709551615"),
    ] {
        assert!(SAMPLE.contains(from), "{from}");
        let snapshot = Snapshot::parse(&SAMPLE.replacen(from, to, 1)).expect("parses");
        assert!(snapshot.check_consistency().is_err(), "{to}");
    }
}

#[test]
fn parses_the_kernel_format_and_round_trips() {
    let snapshot = Snapshot::parse(SAMPLE).expect("parses");
    assert_eq!(snapshot.seq, 7);
    assert_eq!(snapshot.frames.total, 65247);
    assert_eq!(snapshot.classes.len(), 2);
    assert_eq!(snapshot.classes[1].requested, 192);
    assert!(snapshot.tracker.is_on());
    assert_eq!(snapshot.scan.as_ref().map(|s| s.new), Some(1));
    let site = &snapshot.sites[0];
    assert_eq!(site.frames.len(), 3);
    assert_eq!(
        site.frames[1].symbol.as_deref(),
        Some("<[u8; 4] as core::fmt::Debug>::fmt+0x60/0x798")
    );
    assert_eq!(
        site.frames[2],
        Frame {
            address: 0x1234,
            symbol: None
        }
    );
    let leak = &snapshot.leaks[0];
    assert_eq!(
        (leak.address, leak.size, leak.comm.as_str()),
        (0xffff_8000_0050_f000, 72, "swapper/0")
    );
    assert_eq!(
        snapshot.to_text(),
        SAMPLE,
        "the writer reproduces the kernel's bytes"
    );
    assert_eq!(Snapshot::parse(&snapshot.to_text()), Ok(snapshot.clone()));
    snapshot
        .check_consistency()
        .expect("the sample is consistent");
}

#[test]
fn round_trips_awkward_strings_and_tasks() {
    let mut snapshot = Snapshot::parse(SAMPLE).unwrap();
    snapshot.leaks[0].comm = "a \"quoted\" \\ name\twith\ncontrols".into();
    snapshot.tasks.push(Task {
        pid: 1,
        ppid: 0,
        state: "R".into(),
        comm: "init".into(),
        cpu_ms: Some(12),
        rss_kib: None,
        memory: None,
        extra: Vec::new(),
    });
    snapshot.tasks.push(Task {
        pid: 2,
        ppid: 1,
        state: "S".into(),
        comm: "sh".into(),
        cpu_ms: Some(3),
        rss_kib: Some(48),
        memory: Some(TaskMemory {
            vsz_kib: 10296,
            image_kib: 20,
            heap_kib: 4,
            stack_kib: 8,
            anon_kib: 16,
        }),
        extra: vec![
            ("nr_threads".into(), "3".into()),
            ("note".into(), "two \"words\"".into()),
        ],
    });
    snapshot.tasks_total = 2;
    snapshot.detail = Some(ProcessDetail {
        pid: 2,
        state: "S".into(),
        place: KernelPlace::Sleeping(vec![
            Frame {
                address: 0xffff_ffff_8020_1234,
                symbol: Some("kernel::task::schedule+0x1a/0x200".into()),
            },
            Frame {
                address: 0xffff_ffff_8020_5678,
                symbol: None,
            },
        ]),
        maps: vec![
            MapEntry {
                start: 0x40_0000,
                end: 0x40_1000,
                perms: "r--p".into(),
                name: "sh".into(),
            },
            MapEntry {
                start: 0x7eff_ffff_0000,
                end: 0x7f00_0000_0000,
                perms: "rw-p".into(),
                name: String::new(),
            },
        ],
    });
    snapshot.tracker.state = "off".into();
    snapshot.tracker.reason = Some("pool-full".into());
    snapshot.scan = None;
    let text = snapshot.to_text();
    assert!(
        text.contains("comm=\"a \\\"quoted\\\" \\\\ name\\x09with\\x0acontrols\""),
        "{text}"
    );
    assert!(
        text.contains("detail pid=2 state=S where=sleeping maps=2 ret0="),
        "{text}"
    );
    // A `detail` record must be followed by as many `map` records as it declares.
    let short = text.replacen("maps=2", "maps=3", 1);
    assert!(
        matches!(
            Snapshot::parse(&short),
            Err(ParseError::CountMismatch {
                section: "detail",
                ..
            })
        ),
        "{short}"
    );
    assert_eq!(Snapshot::parse(&text), Ok(snapshot));
}

#[test]
fn finds_the_snapshot_in_noise_and_skips_unknown_records() {
    let noisy = SAMPLE
        .replace(
            "tasks count=0 total=0\n",
            "tasks count=0 total=0\nfuture-record x=1 y=\"z\"\n",
        )
        .replace("records=13", "records=14")
        .replace("hz=100", "hz=100 newfield=0x5");
    let text = format!("garbage line\r\n\n{}trailing", noisy.replace('\n', "\r\n"));
    let snapshot = Snapshot::parse(&text).expect("noise around it is fine");
    assert_eq!(snapshot.uptime.hz, 100);
}

#[test]
fn rejects_garbage_truncation_and_other_versions() {
    assert_eq!(Snapshot::parse(""), Err(ParseError::NoSnapshot));
    assert_eq!(
        Snapshot::parse("hello\nworld\n"),
        Err(ParseError::NoSnapshot)
    );
    assert_eq!(
        Snapshot::parse(&SAMPLE.replace("version=1", "version=2")),
        Err(ParseError::UnsupportedVersion { found: 2 })
    );
    let cut = &SAMPLE[..SAMPLE.find("leaks count").unwrap()];
    assert_eq!(
        Snapshot::parse(cut),
        Err(ParseError::Truncated("no end marker"))
    );
    let two = format!("{cut}{SAMPLE}");
    assert_eq!(
        Snapshot::parse(&two),
        Err(ParseError::Truncated(
            "a new snapshot began before the end marker"
        ))
    );
    assert_eq!(
        Snapshot::parse(&SAMPLE.replace("end seq=7", "end seq=8")),
        Err(ParseError::SeqMismatch { begin: 7, end: 8 })
    );
    assert_eq!(
        Snapshot::parse(&SAMPLE.replace("records=13", "records=12")),
        Err(ParseError::RecordCount {
            declared: 12,
            found: 13
        })
    );
    assert_eq!(
        Snapshot::parse(&SAMPLE.replace("classes count=2", "classes count=3")),
        Err(ParseError::CountMismatch {
            section: "classes",
            declared: 3,
            found: 2
        })
    );
    assert!(matches!(
        Snapshot::parse(&SAMPLE.replace("free=64500", "free=lots")),
        Err(ParseError::BadValue { line: 3, .. })
    ));
    assert!(matches!(
        Snapshot::parse(&SAMPLE.replace(" jiffies=300", "")),
        Err(ParseError::MissingField {
            line: 2,
            field: "jiffies",
            ..
        })
    ));
    assert!(matches!(
        Snapshot::parse(&SAMPLE.replace("comm=\"swapper/0\"", "comm=\"swapper/0")),
        Err(ParseError::Malformed { line: 13, .. })
    ));
    assert_eq!(
        Snapshot::parse(&SAMPLE.replace("uptime ns", "uptimes ns")),
        Err(ParseError::MissingRecord("uptime"))
    );
    assert_eq!(
        Snapshot::parse("telemetry-error version=1 message=\"unknown request\"\n"),
        Err(ParseError::Kernel("unknown request".into()))
    );
    let twice = SAMPLE.replace(
        "tasks count=0 total=0\n",
        "tasks count=0 total=0\ntasks count=0 total=0\n",
    );
    assert!(matches!(
        Snapshot::parse(&twice),
        Err(ParseError::DuplicateRecord {
            record: "tasks",
            ..
        })
    ));
}

#[test]
fn never_panics_on_random_input() {
    // Mutations of a valid snapshot (bytes dropped, swapped, replaced) and pure noise.
    let mut state = 0x1234_5678_9abc_def0_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"telmyrsq=\" \\x0123456789abcdef\n\r-_gin";
    for _ in 0..3000 {
        let mut bytes = SAMPLE.as_bytes().to_vec();
        for _ in 0..(next() % 8) {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 3 {
                0 if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                _ if !bytes.is_empty() => {
                    let last = bytes.len() - 1;
                    bytes[at.min(last)] = (next() % 256) as u8;
                }
                _ => {}
            }
        }
        let _ = Snapshot::parse(&String::from_utf8_lossy(&bytes));
        let noise: Vec<u8> = (0..(next() % 300))
            .map(|_| alphabet[(next() as usize) % alphabet.len()])
            .collect();
        let _ = Snapshot::parse(&String::from_utf8_lossy(&noise));
        let _ = Snapshot::parse(&format!(
            "telemetry-begin version=1 seq=1\n{}",
            String::from_utf8_lossy(&noise)
        ));
    }
}

/// A kernel-side stack: raw return addresses, named as they are written (here by a fake
/// symbol table that knows addresses above 0x1000).
struct KernelStack<'a>(&'a [u64]);

struct FakeSymbol(u64);

impl Display for FakeSymbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel::f{:x}+0x1/0x10 \"q\"", self.0)
    }
}

impl StackFrames for KernelStack<'_> {
    fn write_frames(&self, out: &mut FrameWriter<'_>) -> fmt::Result {
        for &address in self.0 {
            let symbol = FakeSymbol(address);
            out.frame(
                address,
                (address > 0x1000).then_some(&symbol as &dyn Display),
            )?;
        }
        Ok(())
    }
}

#[test]
fn what_the_kernel_encodes_decodes_to_the_same_figures() {
    let mut text = String::new();
    let mut w = SnapshotWriter::begin(&mut text, 9).unwrap();
    let uptime = Uptime {
        ns: 5,
        jiffies: 6,
        hz: 100,
    };
    w.uptime(&uptime).unwrap();
    let frames = Frames {
        total: 10,
        free: 4,
        used: 6,
        ..Frames::default()
    };
    w.frames(&frames).unwrap();
    w.heap(&Heap::default()).unwrap();
    w.classes(1).unwrap();
    let class = SizeClass {
        size: 16,
        frames: 1,
        free: 256,
        empty_frames: 1,
        ..SizeClass::default()
    };
    w.class(&class).unwrap();
    w.tracker(&TrackerRecord {
        state: "off",
        reason: Some("busy"),
        capacity: 32768,
        ..TrackerRecord::default()
    })
    .unwrap();
    w.sites(1).unwrap();
    w.site(&SiteRecord {
        id: 3,
        objects: 1,
        bytes: 64,
        allocs: 2,
        frames: &KernelStack(&[0xffff_ffff_8020_0010, 0x10]),
    })
    .unwrap();
    w.leaks(1, 4).unwrap();
    w.leak(&LeakRecord {
        address: 0xffff_8000_0000_1000,
        size: 64,
        seq: 2,
        pid: 1,
        comm: "in\"it\n",
        jiffies: 1,
        age_ms: 50,
        site: 3,
        frames: &(),
    })
    .unwrap();
    w.tasks(1, 1).unwrap();
    w.task(&TaskRecord {
        pid: 1,
        ppid: 0,
        state: "S",
        comm: "init",
        cpu_ms: Some(4),
        rss_kib: Some(48),
        memory: Some(TaskMemory {
            vsz_kib: 100,
            ..TaskMemory::default()
        }),
        extra: &[],
    })
    .unwrap();
    w.detail(&DetailRecord {
        pid: 1,
        state: "S",
        place: Place::Sleeping,
        maps: 1,
        frames: &KernelStack(&[0x2000]),
    })
    .unwrap();
    w.map(&MapRecord {
        start: 0x40_0000,
        end: 0x40_1000,
        perms: "r-xp",
        name: "init",
    })
    .unwrap();
    w.end().unwrap();

    let snapshot = Snapshot::parse(&text).expect("the encoder's output parses");
    assert_eq!(snapshot.seq, 9);
    assert_eq!(snapshot.uptime, uptime);
    assert_eq!(snapshot.frames, frames);
    assert_eq!(snapshot.classes, [class]);
    assert_eq!(snapshot.tracker.reason.as_deref(), Some("busy"));
    assert_eq!(snapshot.tracker.capacity, 32768);
    assert_eq!(
        snapshot.sites[0].frames,
        [
            Frame {
                address: 0xffff_ffff_8020_0010,
                symbol: Some("kernel::fffffffff80200010+0x1/0x10 \"q\"".into()),
            },
            Frame {
                address: 0x10,
                symbol: None
            }
        ]
    );
    assert_eq!(snapshot.leaks[0].comm, "in\"it\n");
    assert_eq!(snapshot.leaks_total, 4);
    assert_eq!(snapshot.tasks[0].memory.map(|m| m.vsz_kib), Some(100));
    let detail = snapshot.detail.as_ref().expect("detail");
    assert_eq!(detail.maps[0].name, "init");
    assert!(matches!(&detail.place, KernelPlace::Sleeping(f) if f.len() == 1));
    assert_eq!(snapshot.to_text(), text, "encode(decode(text)) = text");
}

#[test]
fn unknown_task_fields_are_kept_and_written_back() {
    let text = SAMPLE
        .replace(
            "tasks count=0 total=0\n",
            "tasks count=1 total=1\ntask pid=1 ppid=0 state=S comm=\"init\" cpu_ns=1200 rss=0x3000 note=\"two words\"\n",
        )
        .replace("records=13", "records=14");
    let snapshot = Snapshot::parse(&text).unwrap();
    let task = &snapshot.tasks[0];
    assert_eq!(
        task.extra,
        [
            ("cpu_ns".to_string(), "1200".to_string()),
            ("rss".to_string(), "0x3000".to_string()),
            ("note".to_string(), "two words".to_string()),
        ]
    );
    assert_eq!(task.extra_field("rss"), Some("0x3000"));
    assert_eq!(task.cpu_ms, None);
    assert_eq!(snapshot.to_text(), text);
}

#[test]
fn requests_and_errors() {
    for request in [Request::Snapshot, Request::Scan, Request::Detail(42)] {
        assert_eq!(Request::parse(&request.line()), Some(request));
    }
    assert_eq!(Request::parse("  detail 7 \r"), Some(Request::Detail(7)));
    for bad in ["", "frobnicate", "detail", "detail x", "detail -1", "mark"] {
        assert_eq!(Request::parse(bad), None, "{bad:?}");
    }
    let mut line = String::new();
    write_error(&mut line, "unknown \"request\"").unwrap();
    assert_eq!(
        line,
        "telemetry-error version=1 message=\"unknown \\\"request\\\"\"\n"
    );
    assert_eq!(
        Snapshot::parse(&line),
        Err(ParseError::Kernel("unknown \"request\"".into()))
    );
    let mut escaped = String::new();
    fmt::Write::write_str(&mut Escaped(&mut escaped), "a\"b\\c\n").unwrap();
    assert_eq!(escaped, "a\\\"b\\\\c\\x0a");
}

#[test]
fn numeric_records_list_their_fields_in_writing_order() {
    assert_eq!(Uptime::FIELDS, ["ns", "jiffies", "hz"]);
    let mut text = String::new();
    Heap {
        objects: 1,
        large_bytes: 2,
        ..Heap::default()
    }
    .write_fields(&mut text)
    .unwrap();
    let written: Vec<&str> = text
        .split_whitespace()
        .map(|f| f.split_once('=').map_or(f, |(k, _)| k))
        .collect();
    assert_eq!(written, Heap::FIELDS);
}

#[test]
fn the_announcement_starts_with_what_tools_look_for() {
    let line = Announcement { port: 2 }.to_string();
    assert!(line.starts_with(ANNOUNCEMENT_PREFIX), "{line}");
    assert!(line.starts_with(&format!(
        "telemetry: snapshots (format v{VERSION}) on ttyS2;"
    )));
}
