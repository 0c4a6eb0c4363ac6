//! The system-wide files of `/proc`, in Linux's formats.

use alloc::string::String;
use core::fmt::Write;

use crate::arch::x86_64::cpu;
use crate::errno::EResult;
use crate::task::info;

pub fn cmdline(out: &mut String) -> EResult<()> {
    let _ = writeln!(
        out,
        "{}",
        super::KERNEL_CMDLINE
            .get()
            .map_or("", crate::boot::Cmdline::as_str)
    );
    Ok(())
}

/// `/proc/meminfo` (the heap's own figures follow Linux's fields; see `mm::leak::report`).
pub fn meminfo(out: &mut String) -> EResult<()> {
    crate::mm::leak::write_meminfo(out);
    Ok(())
}

/// `uptime idle`, seconds with two decimals.
pub fn uptime(out: &mut String) -> EResult<()> {
    let centis = |ns: u64| (ns / 1_000_000_000, ns / 10_000_000 % 100);
    let (up, up_c) = centis(crate::time::now_ns());
    let (idle, idle_c) = centis(info::idle_ns());
    let _ = writeln!(out, "{up}.{up_c:02} {idle}.{idle_c:02}");
    Ok(())
}

/// `1min 5min 15min running/total last-pid`.
pub fn loadavg(out: &mut String) -> EResult<()> {
    let processes = info::all();
    let running = processes.iter().filter(|p| p.state.letter() == 'R').count();
    let last_pid = processes.iter().map(|p| p.pid).max().unwrap_or(0);
    for load in info::load_average() {
        let (whole, hundredths) = info::format_load(load);
        let _ = write!(out, "{whole}.{hundredths:02} ");
    }
    let _ = writeln!(out, "{running}/{} {last_pid}", processes.len());
    Ok(())
}

/// Kernel statistics: the `cpu` lines `top` computes CPU usage from (in clock ticks; all busy
/// time counts as user time), and process counts.
pub fn stat(out: &mut String) -> EResult<()> {
    let now = crate::time::now_ns();
    let idle = info::idle_ns();
    let ticks = |ns: u64| ns / 10_000_000;
    let busy = ticks(now.saturating_sub(idle));
    for name in ["cpu ", "cpu0"] {
        let _ = writeln!(out, "{name} {busy} 0 0 {} 0 0 0 0 0 0", ticks(idle));
    }
    let processes = info::all();
    let running = processes.iter().filter(|p| p.state.letter() == 'R').count();
    let _ = writeln!(
        out,
        "intr 0\nctxt 0\nbtime {}\nprocesses {}\nprocs_running {running}\nprocs_blocked 0",
        crate::time::boot_realtime_ns() / 1_000_000_000,
        processes.iter().map(|p| p.pid).max().unwrap_or(0)
    );
    Ok(())
}

pub fn version(out: &mut String) -> EResult<()> {
    let _ = writeln!(
        out,
        "Linux version {} (cadenza@build) (rustc) {}",
        crate::syscall::UTS_RELEASE,
        crate::syscall::UTS_VERSION
    );
    Ok(())
}

/// The file system types `mount -t` accepts; `nodev`: none needs a block device.
pub fn filesystems(out: &mut String) -> EResult<()> {
    for name in crate::fs::vfs::FILESYSTEM_TYPES {
        let _ = writeln!(out, "nodev\t{name}");
    }
    Ok(())
}

/// The registered character-device majors (`/proc/devices`).
pub fn devices(out: &mut String) -> EResult<()> {
    let _ = writeln!(out, "Character devices:");
    let mut seen = alloc::vec::Vec::new();
    for (major, _, _, name) in crate::fs::dev::registered_char_devices() {
        if !seen.contains(&major) {
            seen.push(major);
            let _ = writeln!(out, "{major:>3} {name}");
        }
    }
    let _ = writeln!(out, "\nBlock devices:");
    Ok(())
}

/// One processor, described from CPUID as Linux's `show_cpuinfo` does.
pub fn cpuinfo(out: &mut String) -> EResult<()> {
    let vendor = {
        let id = cpu::cpuid(0, 0);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&id.ebx.to_le_bytes());
        bytes[4..8].copy_from_slice(&id.edx.to_le_bytes());
        bytes[8..].copy_from_slice(&id.ecx.to_le_bytes());
        bytes
    };
    let mut brand = [0u8; 48];
    if cpu::cpuid(0x8000_0000, 0).eax >= 0x8000_0004 {
        for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
            let r = cpu::cpuid(leaf, 0);
            for (j, word) in [r.eax, r.ebx, r.ecx, r.edx].iter().enumerate() {
                brand[i * 16 + j * 4..i * 16 + j * 4 + 4].copy_from_slice(&word.to_le_bytes());
            }
        }
    }
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .into()
    };
    let (vendor, brand): (String, String) = (text(&vendor), text(&brand));
    let signature = cpu::cpuid(1, 0);
    let base_family = (signature.eax >> 8) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((signature.eax >> 20) & 0xff)
    } else {
        base_family
    };
    let mut model = (signature.eax >> 4) & 0xf;
    if base_family == 0x6 || base_family == 0xf {
        model |= ((signature.eax >> 16) & 0xf) << 4;
    }
    let khz = crate::time::tsc_hz() / 1000;
    let _ = writeln!(
        out,
        "processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n\
         model name\t: {brand}\nstepping\t: {}\ncpu MHz\t\t: {}.{:03}\nphysical id\t: 0\n\
         siblings\t: 1\ncore id\t\t: 0\ncpu cores\t: 1\napicid\t\t: 0\nfpu\t\t: yes\n\
         cpuid level\t: {}",
        signature.eax & 0xf,
        khz / 1000,
        khz % 1000,
        cpu::cpuid(0, 0).eax,
    );
    let _ = write!(out, "flags\t\t:");
    for (bit, name) in EDX_FLAGS {
        if signature.edx & (1 << bit) != 0 {
            let _ = write!(out, " {name}");
        }
    }
    for (bit, name) in ECX_FLAGS {
        if signature.ecx & (1 << bit) != 0 {
            let _ = write!(out, " {name}");
        }
    }
    let _ = writeln!(
        out,
        "\nbogomips\t: {}.{:02}\naddress sizes\t: {} bits physical, {} bits virtual\n",
        khz * 2 / 1000,
        khz * 2 % 1000 / 10,
        cpu::cpuid(0x8000_0008, 0).eax & 0xff,
        (cpu::cpuid(0x8000_0008, 0).eax >> 8) & 0xff,
    );
    Ok(())
}

/// CPUID leaf 1 EDX bits, with Linux's names.
const EDX_FLAGS: [(u32, &str); 17] = [
    (0, "fpu"),
    (3, "pse"),
    (4, "tsc"),
    (5, "msr"),
    (6, "pae"),
    (8, "cx8"),
    (9, "apic"),
    (11, "sep"),
    (13, "pge"),
    (15, "cmov"),
    (16, "pat"),
    (19, "clflush"),
    (23, "mmx"),
    (24, "fxsr"),
    (25, "sse"),
    (26, "sse2"),
    (28, "ht"),
];

/// CPUID leaf 1 ECX bits.
const ECX_FLAGS: [(u32, &str); 10] = [
    (0, "pni"),
    (9, "ssse3"),
    (13, "cx16"),
    (19, "sse4_1"),
    (20, "sse4_2"),
    (22, "movbe"),
    (23, "popcnt"),
    (26, "xsave"),
    (28, "avx"),
    (30, "rdrand"),
];
