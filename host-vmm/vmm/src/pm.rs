//! The ACPI PM1a register blocks the FADT describes ([`crate::acpi`]), at
//! ports [`PM1A_EVT_BLK`] (status, enable) and [`PM1A_CNT_BLK`] (control).
//!
//! They are what Linux's ACPI core touches on a machine that is not
//! "hardware reduced": it clears the status bits, enables the fixed events
//! it wants (checking that the enable bits read back), reads SCI_EN in the
//! control register to see that the machine is in ACPI mode, and finally,
//! for `poweroff`, writes SLP_TYP from `\_S5` and then SLP_TYP with SLP_EN.
//! That last write is the one this module exists for: it powers the VM off.
//!
//! No fixed event ever happens here (no power button, no PM timer, no RTC
//! alarm), so the status register reads 0 and the SCI is never raised;
//! the enable register keeps what the guest writes. SCI_EN reads 1 (there
//! is no SMI command port to switch modes); SLP_EN reads 0.

use crate::acpi::{PM1A_CNT_BLK, PM1A_EVT_BLK, PM1_CNT_LEN, PM1_EVT_LEN, S5_SLP_TYP};

/// PM1 control: SCI_EN, the machine is in ACPI mode.
const SCI_EN: u16 = 1 << 0;
/// PM1 control: SLP_TYP, bits 12:10.
const SLP_TYP_SHIFT: u16 = 10;
const SLP_TYP_MASK: u16 = 0b111 << SLP_TYP_SHIFT;
/// PM1 control: SLP_EN, enter the sleep state in SLP_TYP (write only).
const SLP_EN: u16 = 1 << 13;

/// What a write to the PM1 registers asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmWrite {
    /// Not a PM1 port.
    NotOurs,
    /// Done; keep running.
    Done,
    /// The guest entered S5: power off.
    PowerOff,
}

/// The PM1a status, enable and control registers.
#[derive(Debug, Default)]
pub struct Pm1 {
    enable: u16,
    control: u16,
    /// Sleep types other than S5 asked for (there are none in `\_S5`'s
    /// siblings, so only a confused guest writes them): logged once.
    other_sleep_logged: bool,
}

/// Which register a port is in, and the byte within it.
enum Reg {
    Status,
    Enable(usize),
    Control(usize),
}

fn decode(port: u16) -> Option<Reg> {
    let evt = port.checked_sub(PM1A_EVT_BLK)?;
    let half = u16::from(PM1_EVT_LEN / 2);
    if evt < half {
        return Some(Reg::Status);
    }
    if evt < u16::from(PM1_EVT_LEN) {
        return Some(Reg::Enable((evt - half).into()));
    }
    let cnt = port.checked_sub(PM1A_CNT_BLK)?;
    (cnt < u16::from(PM1_CNT_LEN)).then_some(Reg::Control(cnt.into()))
}

/// Whether `port` is one of the PM1 registers' ports (checked without the
/// registers' lock, so the bus locks them only for their own ports).
pub fn decodes(port: u16) -> bool {
    decode(port).is_some()
}

fn byte(v: u16, i: usize) -> u8 {
    v.to_le_bytes()[i]
}

fn set_byte(v: u16, i: usize, b: u8) -> u16 {
    let mut bytes = v.to_le_bytes();
    bytes[i] = b;
    u16::from_le_bytes(bytes)
}

impl Pm1 {
    /// A port read starting at `port`; `false` if `port` is not a PM1 port.
    /// Bytes past the blocks read as all ones.
    pub fn read(&self, port: u16, data: &mut [u8]) -> bool {
        if !decodes(port) {
            return false;
        }
        for (i, d) in data.iter_mut().enumerate() {
            *d = match u16::try_from(i)
                .ok()
                .and_then(|i| decode(port.wrapping_add(i)))
            {
                Some(Reg::Status) => 0,
                Some(Reg::Enable(b)) => byte(self.enable, b),
                Some(Reg::Control(b)) => byte((self.control | SCI_EN) & !SLP_EN, b),
                None => 0xff,
            };
        }
        true
    }

    /// A port write starting at `port`, one byte per register byte it
    /// covers (status bits are write-1-to-clear, and none is ever set).
    pub fn write(&mut self, port: u16, data: &[u8]) -> PmWrite {
        if !decodes(port) {
            return PmWrite::NotOurs;
        }
        let mut control_written = false;
        for (i, &b) in data.iter().enumerate() {
            match u16::try_from(i)
                .ok()
                .and_then(|i| decode(port.wrapping_add(i)))
            {
                Some(Reg::Enable(n)) => self.enable = set_byte(self.enable, n, b),
                Some(Reg::Control(n)) => {
                    self.control = set_byte(self.control, n, b);
                    control_written = true;
                }
                Some(Reg::Status) | None => {}
            }
        }
        if !control_written || self.control & SLP_EN == 0 {
            return PmWrite::Done;
        }
        self.control &= !SLP_EN;
        let slp_typ = (self.control & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
        if slp_typ == u16::from(S5_SLP_TYP) {
            return PmWrite::PowerOff;
        }
        if !self.other_sleep_logged {
            self.other_sleep_logged = true;
            log::warn!(
                "the guest asked for sleep type {slp_typ}, which this machine does not have \
                 (only S5 = {S5_SLP_TYP}, power off): ignored"
            );
        }
        PmWrite::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read16(pm: &Pm1, port: u16) -> u16 {
        let mut d = [0u8; 2];
        assert!(pm.read(port, &mut d));
        u16::from_le_bytes(d)
    }

    #[test]
    fn only_the_pm1_ports_are_ours() {
        let mut pm = Pm1::default();
        let mut d = [0u8; 1];
        assert!(!pm.read(PM1A_EVT_BLK - 1, &mut d));
        assert!(!pm.read(PM1A_CNT_BLK + 2, &mut d));
        assert_eq!(pm.write(PM1A_CNT_BLK + 2, &[0xff]), PmWrite::NotOurs);
        for port in PM1A_EVT_BLK..PM1A_CNT_BLK + 2 {
            assert!(pm.read(port, &mut d), "{port:#x}");
        }
    }

    #[test]
    fn acpi_mode_status_and_enable_as_acpica_checks_them() {
        let mut pm = Pm1::default();
        // SCI_EN reads 1: already in ACPI mode.
        assert_eq!(read16(&pm, PM1A_CNT_BLK) & SCI_EN, SCI_EN);
        // Clearing all status bits, then enabling the global lock event:
        // the enable bit must read back.
        assert_eq!(
            pm.write(PM1A_EVT_BLK, &0xffffu16.to_le_bytes()),
            PmWrite::Done
        );
        assert_eq!(read16(&pm, PM1A_EVT_BLK), 0);
        assert_eq!(
            pm.write(PM1A_EVT_BLK + 2, &0x0020u16.to_le_bytes()),
            PmWrite::Done
        );
        assert_eq!(read16(&pm, PM1A_EVT_BLK + 2), 0x0020);
        // One 32-bit read of the event block: status, then enable.
        let mut d = [0u8; 4];
        assert!(pm.read(PM1A_EVT_BLK, &mut d));
        assert_eq!(u32::from_le_bytes(d), 0x0020_0000);
        // Past the control block: all ones.
        let mut d = [0u8; 4];
        assert!(pm.read(PM1A_CNT_BLK, &mut d));
        assert_eq!(&d[2..], &[0xff, 0xff]);
    }

    #[test]
    fn s5_powers_off_the_way_acpica_writes_it() {
        let mut pm = Pm1::default();
        let typ = u16::from(S5_SLP_TYP) << SLP_TYP_SHIFT;
        // Write 1: SLP_TYP alone (read-modify-write of the control register).
        let v = read16(&pm, PM1A_CNT_BLK) | typ;
        assert_eq!(pm.write(PM1A_CNT_BLK, &v.to_le_bytes()), PmWrite::Done);
        // Write 2: SLP_TYP with SLP_EN.
        assert_eq!(
            pm.write(PM1A_CNT_BLK, &(v | SLP_EN).to_le_bytes()),
            PmWrite::PowerOff
        );
        // SLP_EN is write-only.
        assert_eq!(read16(&pm, PM1A_CNT_BLK) & SLP_EN, 0);
    }

    #[test]
    fn s5_by_byte_writes_and_other_sleep_types() {
        let mut pm = Pm1::default();
        let hi = ((u16::from(S5_SLP_TYP) << SLP_TYP_SHIFT | SLP_EN) >> 8) as u8;
        assert_eq!(pm.write(PM1A_CNT_BLK + 1, &[hi]), PmWrite::PowerOff);
        // S1 (type 1) is not a state of this machine: ignored, not an exit.
        let s1 = (1 << SLP_TYP_SHIFT | SLP_EN).to_le_bytes();
        assert_eq!(pm.write(PM1A_CNT_BLK, &s1), PmWrite::Done);
        assert_eq!(pm.write(PM1A_CNT_BLK, &s1), PmWrite::Done);
        // SLP_EN without a control byte written (an enable-register write
        // with the same bit pattern) does nothing.
        assert_eq!(
            pm.write(PM1A_EVT_BLK + 2, &SLP_EN.to_le_bytes()),
            PmWrite::Done
        );
    }
}
