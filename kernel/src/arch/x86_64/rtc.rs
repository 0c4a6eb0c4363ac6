//! The CMOS real-time clock (MC146818 and compatibles), read once at boot for the wall-clock time.
//!
//! The RTC is the only clock a PC keeps across power-off, but it is slow to read (two port
//! accesses per register), has one-second resolution and may be in the middle of updating its
//! registers, so the kernel reads it once and counts from there with its monotonic clock
//! (`time::realtime_ns`). Registers hold BCD or binary and 12- or 24-hour values as status
//! register B says; the century is in a register the FADT names, if any, else 20xx is assumed.

use super::cpu::{inb, outb};

const INDEX_PORT: u16 = 0x70;
const DATA_PORT: u16 = 0x71;

const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const STATUS_A: u8 = 0x0a;
const STATUS_B: u8 = 0x0b;
/// Status A: the clock is updating its registers (for at most ~2 ms).
const UPDATE_IN_PROGRESS: u8 = 0x80;
/// Status B: hours run 0-23 (else 1-12 with bit 7 meaning PM).
const HOURS_24: u8 = 0x02;
/// Status B: values are binary (else BCD).
const BINARY: u8 = 0x04;
const PM: u8 = 0x80;

/// The registers as read, before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw {
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub day: u8,
    pub month: u8,
    pub year: u8,
    /// The century register's value, if the FADT names one.
    pub century: Option<u8>,
    pub status_b: u8,
}

fn read_register(register: u8) -> u8 {
    // Bit 7 of the index is the NMI mask: left clear, NMIs stay enabled.
    outb(INDEX_PORT, register & 0x7f);
    inb(DATA_PORT)
}

fn read_once(century_register: Option<u8>) -> Raw {
    // Registers are inconsistent while an update is in progress: wait for it to end (bounded,
    // in case the device is absent and the port reads 0xff).
    for _ in 0..1_000_000 {
        if read_register(STATUS_A) & UPDATE_IN_PROGRESS == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    Raw {
        seconds: read_register(SECONDS),
        minutes: read_register(MINUTES),
        hours: read_register(HOURS),
        day: read_register(DAY),
        month: read_register(MONTH),
        year: read_register(YEAR),
        century: century_register.map(read_register),
        status_b: read_register(STATUS_B),
    }
}

/// Reads the clock until two reads in a row agree (an update can still start between the
/// status check and the last register), then decodes it: seconds since the Unix epoch, or
/// `None` if the values make no sense (no RTC, or an unset one).
pub fn read_unix_seconds(century_register: Option<u8>) -> Option<u64> {
    let mut previous = read_once(century_register);
    for _ in 0..10 {
        let current = read_once(century_register);
        if current == previous {
            return decode(&current);
        }
        previous = current;
    }
    None
}

fn from_bcd(value: u8) -> u8 {
    (value >> 4) * 10 + (value & 0x0f)
}

/// The registers as a Unix time (UTC), or `None` if a field is out of range.
pub fn decode(raw: &Raw) -> Option<u64> {
    let binary = raw.status_b & BINARY != 0;
    let value = |v: u8| if binary { v } else { from_bcd(v) };
    let pm = raw.status_b & HOURS_24 == 0 && raw.hours & PM != 0;
    let mut hours = value(raw.hours & !PM);
    if raw.status_b & HOURS_24 == 0 {
        // 12-hour clock: 12 AM is midnight, 12 PM noon.
        if !(1..=12).contains(&hours) {
            return None;
        }
        hours = hours % 12 + if pm { 12 } else { 0 };
    }
    let (seconds, minutes) = (value(raw.seconds), value(raw.minutes));
    let (day, month, year) = (value(raw.day), value(raw.month), value(raw.year));
    let century = raw.century.map_or(20, value);
    if seconds > 59
        || minutes > 59
        || hours > 23
        || !(1..=31).contains(&day)
        || !(1..=12).contains(&month)
        || year > 99
        || !(19..=99).contains(&century)
    {
        return None;
    }
    let year = u64::from(century) * 100 + u64::from(year);
    let days = days_from_civil(year, u64::from(month), u64::from(day))?;
    Some(days * 86_400 + u64::from(hours) * 3600 + u64::from(minutes) * 60 + u64::from(seconds))
}

/// Days from 1970-01-01 to the given date (proleptic Gregorian), `None` before 1970. Howard
/// Hinnant's `days_from_civil`: years start in March, so the leap day is the last of the year.
pub fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

crate::kernel_test!(rtc_registers_decode_like_linux, {
    let raw = |hours: u8, status_b: u8| Raw {
        seconds: 0x56,
        minutes: 0x34,
        hours,
        day: 0x01,
        month: 0x03,
        year: 0x24,
        century: Some(0x20),
        status_b,
    };
    // 2024-03-01 12:34:56 UTC (`date -d @1709296496`), BCD and 24-hour.
    crate::check_eq!(decode(&raw(0x12, HOURS_24)), Some(1_709_296_496));
    // 12-hour: 12 PM is noon, 12 AM midnight, 1 PM is 13:00.
    crate::check_eq!(decode(&raw(0x12 | PM, 0)), Some(1_709_296_496));
    crate::check_eq!(decode(&raw(0x12, 0)), Some(1_709_296_496 - 12 * 3600));
    crate::check_eq!(decode(&raw(0x01 | PM, 0)), Some(1_709_296_496 + 3600));
    // Binary mode, no century register (20xx assumed).
    let binary = Raw {
        seconds: 56,
        minutes: 34,
        hours: 12,
        day: 1,
        month: 3,
        year: 24,
        century: None,
        status_b: BINARY | HOURS_24,
    };
    crate::check_eq!(decode(&binary), Some(1_709_296_496));
    // Nonsense (an absent device reads 0xff) is refused.
    crate::check_eq!(decode(&raw(0xff, 0xff)), None);
    // Hour 0 does not exist on a 12-hour clock.
    crate::check_eq!(decode(&raw(0x00, 0)), None);
    crate::check_eq!(days_from_civil(1970, 1, 1), Some(0));
    crate::check_eq!(days_from_civil(2000, 3, 1), Some(11_017));
    crate::check_eq!(days_from_civil(1969, 12, 31), None);
});
