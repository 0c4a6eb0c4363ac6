//! Bookkeeping for software breakpoints (`int3` patched into code) and the four x86 debug
//! registers, with the DR7 encoding in one place.

use gdbstub::target::ext::breakpoints::WatchKind;

use crate::machine::Machine;

/// `int3`.
pub const INT3: u8 = 0xcc;
const MAX_SW_BREAKPOINTS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    Execute,
    Watch(WatchKind),
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    address: u64,
    len: u64,
    kind: SlotKind,
}

#[derive(Clone, Copy)]
struct SwBreakpoint {
    address: u64,
    original: u8,
}

pub struct Breakpoints {
    software: [Option<SwBreakpoint>; MAX_SW_BREAKPOINTS],
    slots: [Option<Slot>; 4],
}

impl Breakpoints {
    pub const fn new() -> Self {
        Self {
            software: [None; MAX_SW_BREAKPOINTS],
            slots: [None; 4],
        }
    }

    pub fn add_software(&mut self, machine: &mut impl Machine, address: u64) -> bool {
        if self.software_at(address).is_some() {
            return true;
        }
        let Some(free) = self.software.iter_mut().find(|s| s.is_none()) else {
            return false;
        };
        let mut original = [0u8];
        if machine.read_memory(address, &mut original) != 1
            || machine.write_memory(address, &[INT3]).is_err()
        {
            return false;
        }
        *free = Some(SwBreakpoint {
            address,
            original: original[0],
        });
        true
    }

    pub fn remove_software(&mut self, machine: &mut impl Machine, address: u64) -> bool {
        let Some(entry) = self
            .software
            .iter_mut()
            .find(|s| s.is_some_and(|b| b.address == address))
        else {
            return false;
        };
        let breakpoint = entry.take().expect("found above");
        machine
            .write_memory(address, &[breakpoint.original])
            .is_ok()
    }

    pub fn software_at(&self, address: u64) -> Option<u8> {
        self.software
            .iter()
            .flatten()
            .find(|b| b.address == address)
            .map(|b| b.original)
    }

    /// Shows the original bytes instead of the `int3`s in a memory read of `[address, ..)`.
    pub fn unpatch(&self, address: u64, data: &mut [u8]) {
        for breakpoint in self.software.iter().flatten() {
            if let Some(offset) = breakpoint.address.checked_sub(address)
                && let Some(byte) = data.get_mut(offset as usize)
            {
                *byte = breakpoint.original;
            }
        }
    }

    /// Claims a debug register; false if all four are taken or x86 cannot watch this range.
    pub fn add_hardware(
        &mut self,
        machine: &mut impl Machine,
        address: u64,
        len: u64,
        kind: SlotKind,
    ) -> bool {
        let valid = match kind {
            SlotKind::Execute => true,
            // x86 has no read-only watchpoints, and watches 1, 2, 4 or 8 aligned bytes.
            SlotKind::Watch(WatchKind::Read) => false,
            SlotKind::Watch(_) => matches!(len, 1 | 2 | 4 | 8) && address.is_multiple_of(len),
        };
        let Some(free) = self.slots.iter_mut().find(|s| s.is_none()) else {
            return false;
        };
        if !valid {
            return false;
        }
        *free = Some(Slot { address, len, kind });
        self.load(machine);
        true
    }

    pub fn remove_hardware(
        &mut self,
        machine: &mut impl Machine,
        address: u64,
        kind: SlotKind,
    ) -> bool {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.is_some_and(|s| s.address == address && s.kind == kind))
        else {
            return false;
        };
        *slot = None;
        self.load(machine);
        true
    }

    /// The slot DR6 reports as hit: its address and kind.
    pub fn hit(&self, dr6: u64) -> Option<(u64, SlotKind)> {
        (0..4)
            .filter(|i| dr6 & (1 << i) != 0)
            .find_map(|i| self.slots[i].map(|s| (s.address, s.kind)))
    }

    /// Removes everything (gdb detached).
    pub fn clear(&mut self, machine: &mut impl Machine) {
        for entry in &mut self.software {
            if let Some(breakpoint) = entry.take() {
                let _ = machine.write_memory(breakpoint.address, &[breakpoint.original]);
            }
        }
        self.slots = [None; 4];
        self.load(machine);
    }

    fn load(&self, machine: &mut impl Machine) {
        let mut addresses = [0u64; 4];
        let mut dr7 = 0u64;
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            addresses[i] = slot.address;
            dr7 |= encode_dr7_slot(i, slot.len, slot.kind);
        }
        machine.set_debug_registers(&addresses, dr7);
    }
}

/// DR7 bits enabling slot `index` (global enable, R/W and LEN fields).
pub fn encode_dr7_slot(index: usize, len: u64, kind: SlotKind) -> u64 {
    let rw = match kind {
        SlotKind::Execute => 0b00,
        SlotKind::Watch(WatchKind::Write) => 0b01,
        SlotKind::Watch(_) => 0b11,
    };
    let len_bits = match (kind, len) {
        (SlotKind::Execute, _) | (_, 1) => 0b00,
        (_, 2) => 0b01,
        (_, 8) => 0b10,
        _ => 0b11,
    };
    let shift = 16 + 4 * index;
    (1 << (2 * index + 1)) | (rw << shift) | (len_bits << (shift + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dr7_encoding_matches_the_sdm() {
        // Slot 0, execute: G0 only.
        assert_eq!(encode_dr7_slot(0, 1, SlotKind::Execute), 0b10);
        // Slot 1, 8-byte write watch: G1, R/W1 = 01, LEN1 = 10.
        assert_eq!(
            encode_dr7_slot(1, 8, SlotKind::Watch(WatchKind::Write)),
            (1 << 3) | (0b01 << 20) | (0b10 << 22)
        );
        // Slot 3, 4-byte access watch: G3, R/W3 = 11, LEN3 = 11.
        assert_eq!(
            encode_dr7_slot(3, 4, SlotKind::Watch(WatchKind::ReadWrite)),
            (1 << 7) | (0b11 << 28) | (0b11 << 30)
        );
    }
}
