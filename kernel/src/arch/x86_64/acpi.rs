//! Just enough ACPI to find interrupt controllers, the power-off register and the RTC's century.
//!
//! The MADT says where the I/O APIC is and how ISA IRQs are rewired to its inputs (QEMU, like real
//! chipsets, moves the PIT from IRQ 0 to GSI 2); the FADT gives the PM1a control port used for an
//! ACPI power-off when QEMU's debug-exit device is absent, and which CMOS register (if any) holds
//! the real-time clock's century. Every table is checksum-verified and every physical read is
//! bounds-checked against the memory map, so a broken firmware table is ignored rather than
//! followed into unmapped memory.

use crate::mm::phys_to_virt;

#[derive(Clone, Copy, Debug, Default)]
pub struct IoApicInfo {
    pub id: u8,
    pub address: u64,
    pub gsi_base: u32,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct IrqOverride {
    pub source: u8,
    pub gsi: u32,
    pub flags: u16,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Platform {
    pub rsdp_phys: u64,
    pub local_apic_address: Option<u64>,
    pub io_apic: Option<IoApicInfo>,
    pub overrides: [Option<IrqOverride>; 16],
    pub cpus: u32,
    pub pm1a_control_port: Option<u16>,
    /// The CMOS register holding the RTC's century (FADT `CENTURY`), if there is one.
    pub rtc_century_register: Option<u8>,
}

impl Platform {
    /// The GSI an ISA IRQ arrives on, and whether it is level-triggered / active-low.
    pub fn isa_irq(&self, irq: u8) -> (u32, bool, bool) {
        match self.overrides.iter().flatten().find(|o| o.source == irq) {
            Some(o) => {
                let active_low = o.flags & 0x3 == 0x3;
                let level = (o.flags >> 2) & 0x3 == 0x3;
                (o.gsi, level, active_low)
            }
            None => (u32::from(irq), false, false),
        }
    }
}

#[derive(Debug)]
pub enum AcpiError {
    NoRsdp,
    /// A structure failed validation (checksum or length); names which.
    BadChecksum(&'static str),
    Unmapped(u64),
}

/// Copies `N` bytes of physical memory, if the memory map says they exist.
fn read_bytes<const N: usize>(phys: u64) -> Result<[u8; N], AcpiError> {
    if !crate::mm::is_phys_described(phys, N as u64) {
        return Err(AcpiError::Unmapped(phys));
    }
    let mut out = [0u8; N];
    // SAFETY: the range is described by the memory map, hence mapped by the direct map.
    unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(phys) as *const u8, out.as_mut_ptr(), N) };
    Ok(out)
}

fn read_slice(phys: u64, len: usize) -> Result<&'static [u8], AcpiError> {
    if !crate::mm::is_phys_described(phys, len as u64) {
        return Err(AcpiError::Unmapped(phys));
    }
    // SAFETY: as above; firmware tables are never freed or written by the kernel.
    Ok(unsafe { core::slice::from_raw_parts(phys_to_virt(phys) as *const u8, len) })
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b)) == 0
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    bytes
        .get(offset..offset + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from(u32_at(bytes, offset)) | (u64::from(u32_at(bytes, offset + 4)) << 32)
}

/// Reads a whole table given its physical address; verifies length and checksum.
fn table(phys: u64) -> Result<&'static [u8], AcpiError> {
    let header: [u8; 36] = read_bytes(phys)?;
    let len = u32_at(&header, 4) as usize;
    if !(36..=1 << 20).contains(&len) {
        return Err(AcpiError::BadChecksum("table length"));
    }
    let bytes = read_slice(phys, len)?;
    if !checksum_ok(bytes) {
        return Err(AcpiError::BadChecksum("table"));
    }
    Ok(bytes)
}

fn find_rsdp() -> Option<u64> {
    (0xe0000u64..0x100000).step_by(16).find(|&addr| {
        read_bytes::<20>(addr).is_ok_and(|b| &b[..8] == b"RSD PTR " && checksum_ok(&b))
    })
}

/// Walks RSDP → RSDT/XSDT → MADT and FADT.
pub fn discover(rsdp_hint: Option<u64>) -> Result<Platform, AcpiError> {
    let rsdp_phys = rsdp_hint.or_else(find_rsdp).ok_or(AcpiError::NoRsdp)?;
    let rsdp: [u8; 36] = read_bytes(rsdp_phys)?;
    if &rsdp[..8] != b"RSD PTR " || !checksum_ok(&rsdp[..20]) {
        return Err(AcpiError::BadChecksum("RSDP"));
    }
    let revision = rsdp[15];
    let (root, entry_size) = if revision >= 2 && u64_at(&rsdp, 24) != 0 {
        (table(u64_at(&rsdp, 24))?, 8)
    } else {
        (table(u64::from(u32_at(&rsdp, 16)))?, 4)
    };

    let mut platform = Platform {
        rsdp_phys,
        ..Platform::default()
    };
    for entry in root[36..].chunks_exact(entry_size) {
        let phys = if entry_size == 8 {
            u64_at(entry, 0)
        } else {
            u64::from(u32_at(entry, 0))
        };
        let Ok(t) = table(phys) else { continue };
        match &t[..4] {
            b"APIC" => parse_madt(t, &mut platform),
            b"FACP" => {
                let port = u32_at(t, 64);
                platform.pm1a_control_port = u16::try_from(port).ok().filter(|&p| p != 0);
                platform.rtc_century_register = t.get(108).copied().filter(|&r| r != 0);
            }
            _ => {}
        }
    }
    Ok(platform)
}

fn parse_madt(madt: &[u8], platform: &mut Platform) {
    platform.local_apic_address = Some(u64::from(u32_at(madt, 36)));
    let mut offset = 44;
    while offset + 2 <= madt.len() {
        let (kind, len) = (madt[offset], usize::from(madt[offset + 1]));
        if len < 2 || offset + len > madt.len() {
            break;
        }
        let e = &madt[offset..offset + len];
        match kind {
            0 if len >= 8 && u32_at(e, 4) & 1 != 0 => platform.cpus += 1,
            1 if len >= 12 && platform.io_apic.is_none() => {
                platform.io_apic = Some(IoApicInfo {
                    id: e[2],
                    address: u64::from(u32_at(e, 4)),
                    gsi_base: u32_at(e, 8),
                });
            }
            2 if len >= 10 => {
                let o = IrqOverride {
                    source: e[3],
                    gsi: u32_at(e, 4),
                    flags: u16::from_le_bytes([e[8], e[9]]),
                };
                if let Some(slot) = platform.overrides.iter_mut().find(|s| s.is_none()) {
                    *slot = Some(o);
                }
            }
            5 if len >= 12 => platform.local_apic_address = Some(u64_at(e, 4)),
            _ => {}
        }
        offset += len;
    }
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRsdp => {
                f.write_str("no RSDP (neither from the boot protocol nor in the BIOS area)")
            }
            Self::BadChecksum(what) => write!(f, "invalid {what}"),
            Self::Unmapped(phys) => write!(f, "table at {phys:#x} lies outside the memory map"),
        }
    }
}
