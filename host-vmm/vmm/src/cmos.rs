//! A minimal MC146818 CMOS real-time clock at ports 0x70 (index) and 0x71
//! (data): the time and date from the host clock (UTC, BCD, 24-hour), the
//! update-in-progress bit always clear, and 128 bytes of battery-backed
//! RAM.
//!
//! Without it, Linux polls status register A for a clear update-in-progress
//! bit ten thousand times (two port exits each) before it gives up on the
//! wall clock ("Unable to read current time from RTC"). Alarms, periodic
//! interrupts and setting the clock are not emulated: writes to the time
//! registers go to the RAM bytes and are overwritten by the next read.

use std::time::{SystemTime, UNIX_EPOCH};

/// Index port.
pub const CMOS_INDEX_PORT: u16 = 0x70;
/// Data port.
pub const CMOS_DATA_PORT: u16 = 0x71;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_STATUS_A: u8 = 0x0a;
const REG_STATUS_B: u8 = 0x0b;
const REG_STATUS_C: u8 = 0x0c;
const REG_STATUS_D: u8 = 0x0d;
/// The century register (the FADT names it, `acpi.rs`).
pub(crate) const REG_CENTURY: u8 = 0x32;
/// Status A: 32.768 kHz time base, 1024 Hz rate, update not in progress.
const STATUS_A: u8 = 0x26;
/// Status B: 24-hour mode, BCD.
const STATUS_B: u8 = 0x02;
/// Status D: RAM and time valid.
const STATUS_D: u8 = 0x80;

/// The CMOS state.
#[derive(Debug, Clone)]
pub struct Cmos {
    index: u8,
    ram: [u8; 128],
    now: fn() -> u64,
}

fn host_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn bcd(v: u64) -> u8 {
    let v = (v % 100) as u8;
    ((v / 10) << 4) | (v % 10)
}

/// Civil date (year, month 1-12, day 1-31) of days since 1970-01-01
/// (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Default for Cmos {
    fn default() -> Self {
        Self::new()
    }
}

impl Cmos {
    /// A CMOS reading the host clock.
    pub fn new() -> Self {
        Self::with_clock(host_seconds)
    }

    /// A CMOS reading `now` (seconds since the epoch), for tests.
    pub fn with_clock(now: fn() -> u64) -> Self {
        let mut ram = [0u8; 128];
        ram[usize::from(REG_STATUS_A)] = STATUS_A;
        ram[usize::from(REG_STATUS_B)] = STATUS_B;
        ram[usize::from(REG_STATUS_D)] = STATUS_D;
        Cmos { index: 0, ram, now }
    }

    fn clock_register(&self, reg: u8) -> Option<u8> {
        let t = (self.now)();
        let days = (t / 86_400) as i64;
        let secs = t % 86_400;
        let (y, m, d) = civil_from_days(days);
        Some(match reg {
            REG_SECONDS => bcd(secs % 60),
            REG_MINUTES => bcd(secs / 60 % 60),
            REG_HOURS => bcd(secs / 3600),
            // 1970-01-01 was a Thursday; the register counts Sunday as 1.
            REG_WEEKDAY => bcd(((days + 4).rem_euclid(7) + 1) as u64),
            REG_DAY => bcd(d.into()),
            REG_MONTH => bcd(m.into()),
            REG_YEAR => bcd(y.rem_euclid(100) as u64),
            REG_CENTURY => bcd(y.div_euclid(100) as u64),
            REG_STATUS_C => 0,
            _ => return None,
        })
    }

    /// A read of `port` (0x70 or 0x71).
    pub fn read(&self, port: u16) -> u8 {
        if port == CMOS_INDEX_PORT {
            return self.index;
        }
        let reg = self.index & 0x7f;
        self.clock_register(reg)
            .unwrap_or(self.ram[usize::from(reg)])
    }

    /// A write of `value` to `port` (0x70 selects a register; bit 7 is the
    /// NMI mask and is ignored).
    pub fn write(&mut self, port: u16, value: u8) {
        if port == CMOS_INDEX_PORT {
            self.index = value & 0x7f;
        } else {
            let reg = self.index & 0x7f;
            // Status A/B/D keep their fixed meaning.
            if !matches!(reg, REG_STATUS_A | REG_STATUS_B | REG_STATUS_D) {
                self.ram[usize::from(reg)] = value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23 20:45:07 UTC, a Monday.
    fn fixed() -> u64 {
        1_795_466_707
    }

    fn reg(c: &mut Cmos, r: u8) -> u8 {
        c.write(CMOS_INDEX_PORT, r | 0x80);
        c.read(CMOS_DATA_PORT)
    }

    #[test]
    fn time_and_date_in_bcd() {
        let mut c = Cmos::with_clock(fixed);
        assert_eq!(reg(&mut c, REG_SECONDS), 0x07);
        assert_eq!(reg(&mut c, REG_MINUTES), 0x45);
        assert_eq!(reg(&mut c, REG_HOURS), 0x20);
        assert_eq!(reg(&mut c, REG_DAY), 0x23);
        assert_eq!(reg(&mut c, REG_MONTH), 0x11);
        assert_eq!(reg(&mut c, REG_YEAR), 0x26);
        assert_eq!(reg(&mut c, REG_CENTURY), 0x20);
        assert_eq!(reg(&mut c, REG_WEEKDAY), 2, "Monday");
    }

    #[test]
    fn status_registers_say_ready_bcd_24h() {
        let mut c = Cmos::with_clock(fixed);
        assert_eq!(reg(&mut c, REG_STATUS_A) & 0x80, 0, "no update in progress");
        assert_eq!(reg(&mut c, REG_STATUS_B), STATUS_B);
        assert_eq!(reg(&mut c, REG_STATUS_D), STATUS_D);
        c.write(CMOS_DATA_PORT, 0xff);
        assert_eq!(
            reg(&mut c, REG_STATUS_D),
            STATUS_D,
            "fixed registers keep their value"
        );
    }

    #[test]
    fn ram_bytes_are_kept_and_index_reads_back() {
        let mut c = Cmos::with_clock(fixed);
        c.write(CMOS_INDEX_PORT, 0x40);
        c.write(CMOS_DATA_PORT, 0x5a);
        assert_eq!(c.read(CMOS_INDEX_PORT), 0x40);
        assert_eq!(reg(&mut c, 0x40), 0x5a);
        assert_eq!(reg(&mut c, 0xff), 0, "index is 7 bits");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
    }
}
