//! The MSI capability (capability ID 0x05), as QEMU's `msi_init` lays it out.
//!
//! Layout for a 64-bit capability without per-vector masking (14 bytes):
//!
//! | offset | size | field                                                |
//! |--------|------|------------------------------------------------------|
//! | +0     | 1    | capability ID 0x05                                   |
//! | +1     | 1    | next capability pointer                              |
//! | +2     | 2    | message control: bit 0 enable, bits 3:1 multiple     |
//! |        |      | message capable (log2), bits 6:4 multiple message    |
//! |        |      | enable (log2), bit 7 64-bit, bit 8 per-vector mask   |
//! | +4     | 4    | message address low (bits 1:0 read as zero)          |
//! | +8     | 4    | message address high (64-bit only)                   |
//! | +12    | 2    | message data                                         |
//!
//! Writable: enable and multiple-message-enable in the control word, the
//! address and the data. After every configuration write QEMU's PCI core
//! runs `msi_write_config`; [`MsiCapability::after_config_write`] does the
//! same: while MSI is enabled, a write that touches the capability clamps
//! multiple-message-enable to what the function is capable of (here 0, one
//! vector) and tells the caller to deassert INTx. With MSI disabled the
//! field keeps whatever the guest wrote, and the message sent follows
//! QEMU's `msi_get_message`, which clears the low data bits for the number
//! of vectors enabled.

use crate::config::{ConfigError, ConfigSpace};
use crate::interrupt::MsiMessage;
use thiserror::Error;

/// Capability ID of MSI.
pub const CAP_ID_MSI: u8 = 0x05;
/// Control: MSI enable.
pub const CONTROL_ENABLE: u16 = 1 << 0;
/// Control: multiple message capable field (log2 of vectors supported).
pub const CONTROL_QMASK: u16 = 0x000e;
/// Control: multiple message enable field (log2 of vectors enabled).
pub const CONTROL_QSIZE: u16 = 0x0070;
/// Control: 64-bit message address.
pub const CONTROL_64BIT: u16 = 1 << 7;

/// Errors from adding the capability.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MsiError {
    /// The configuration space refused the capability.
    #[error("cannot add the MSI capability: {0}")]
    Config(#[from] ConfigError),
}

/// Where the MSI capability sits in a configuration space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiCapability {
    offset: usize,
    is_64bit: bool,
}

impl MsiCapability {
    /// Adds a single-vector MSI capability without per-vector masking to
    /// `config`, with a 64-bit address if `is_64bit`.
    pub fn add(config: &mut ConfigSpace, is_64bit: bool) -> Result<Self, MsiError> {
        let len = if is_64bit { 14 } else { 10 };
        let offset = config.add_capability(CAP_ID_MSI, len)?;
        let control = if is_64bit { CONTROL_64BIT } else { 0 };
        config.set_u16(offset + 2, control);
        config.set_wmask_u16(offset + 2, CONTROL_QSIZE | CONTROL_ENABLE);
        config.set_wmask_u32(offset + 4, 0xffff_fffc);
        if is_64bit {
            config.set_wmask_u32(offset + 8, 0xffff_ffff);
        }
        config.set_wmask_u16(Self::data_offset_for(offset, is_64bit), 0xffff);
        Ok(MsiCapability { offset, is_64bit })
    }

    fn data_offset_for(offset: usize, is_64bit: bool) -> usize {
        offset + if is_64bit { 12 } else { 8 }
    }

    /// Offset of the capability in configuration space.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Length of the capability in bytes.
    pub fn len(&self) -> usize {
        if self.is_64bit {
            14
        } else {
            10
        }
    }

    /// Always false: the capability has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The message control word.
    pub fn control(&self, config: &ConfigSpace) -> u16 {
        config.read_u16(self.offset + 2)
    }

    /// Whether the guest has set the MSI enable bit.
    pub fn enabled(&self, config: &ConfigSpace) -> bool {
        self.control(config) & CONTROL_ENABLE != 0
    }

    /// The message for vector 0 as QEMU's `msi_get_message` builds it.
    pub fn message(&self, config: &ConfigSpace) -> MsiMessage {
        let control = self.control(config);
        let low = u64::from(config.read_u32(self.offset + 4));
        let address = if self.is_64bit {
            low | (u64::from(config.read_u32(self.offset + 8)) << 32)
        } else {
            low
        };
        let mut data =
            u32::from(config.read_u16(Self::data_offset_for(self.offset, self.is_64bit)));
        let log_vectors = u32::from((control & CONTROL_QSIZE) >> 4);
        let vectors = 1u32 << log_vectors;
        if vectors > 1 {
            data &= !(vectors - 1);
        }
        MsiMessage { address, data }
    }

    /// QEMU's `msi_write_config` for a capability without per-vector
    /// masking, to run after every configuration write of `len` bytes at
    /// `offset`: if the write touched the capability and MSI is enabled,
    /// clamps multiple-message-enable to multiple-message-capable and
    /// returns true, meaning the function must deassert its INTx pins
    /// (MSI and INTx are mutually exclusive).
    pub fn after_config_write(&self, config: &mut ConfigSpace, offset: usize, len: usize) -> bool {
        if !self.overlaps(offset, len) {
            return false;
        }
        let control = self.control(config);
        if control & CONTROL_ENABLE == 0 {
            return false;
        }
        let enabled_log = (control & CONTROL_QSIZE) >> 4;
        let capable_log = (control & CONTROL_QMASK) >> 1;
        if enabled_log > capable_log {
            let clamped = (control & !CONTROL_QSIZE) | (capable_log << 4);
            config.set_u16(self.offset + 2, clamped);
        }
        true
    }

    /// Whether a configuration write at `offset` of `len` bytes touches the
    /// capability.
    pub fn overlaps(&self, offset: usize, len: usize) -> bool {
        offset < self.offset + self.len() && offset.saturating_add(len) > self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::header;

    fn cs() -> ConfigSpace {
        ConfigSpace::new(&header())
    }

    #[test]
    fn layout_matches_qemu_edu() {
        let mut c = cs();
        let msi = MsiCapability::add(&mut c, true).unwrap();
        assert_eq!(msi.offset(), 0x40);
        assert_eq!(c.read_u8(0x34), 0x40);
        assert_eq!(c.read_u32(0x40), 0x0080_0005);
        assert_eq!(c.read_u32(0x44), 0);
        assert_eq!(c.read_u32(0x48), 0);
        assert_eq!(c.read_u16(0x4c), 0);
        assert!(!msi.enabled(&c));
    }

    #[test]
    fn enable_address_and_data_are_writable() {
        let mut c = cs();
        let msi = MsiCapability::add(&mut c, true).unwrap();
        c.write(0x44, &0xfee0_1003u32.to_le_bytes());
        c.write(0x48, &0x1u32.to_le_bytes());
        c.write(0x4c, &0x4041u16.to_le_bytes());
        c.write(0x42, &0xffffu16.to_le_bytes());
        assert!(msi.enabled(&c));
        assert_eq!(
            msi.control(&c),
            CONTROL_64BIT | CONTROL_QSIZE | CONTROL_ENABLE
        );
        c.write(0x42, &CONTROL_ENABLE.to_le_bytes());
        assert_eq!(
            msi.message(&c),
            MsiMessage {
                address: 0x1_fee0_1000,
                data: 0x4041
            }
        );
        c.write(0x40, &[0xff, 0xff]);
        assert_eq!(c.read_u16(0x40), 0x0005, "id and next are read-only");
        c.write(0x42, &0u16.to_le_bytes());
        assert!(!msi.enabled(&c));
    }

    #[test]
    fn multiple_message_enable_masks_data_like_qemu() {
        let mut c = cs();
        let msi = MsiCapability::add(&mut c, true).unwrap();
        c.write(0x4c, &0x00ffu16.to_le_bytes());
        c.write(0x42, &(0x20 | CONTROL_ENABLE).to_le_bytes());
        assert_eq!(msi.message(&c).data, 0x00fc);
    }

    #[test]
    fn enabling_clamps_multiple_message_enable_like_qemu() {
        // The sequence of the register-script recording `35_msi_control_clamp`.
        let mut c = cs();
        let msi = MsiCapability::add(&mut c, true).unwrap();
        let write = |c: &mut ConfigSpace, v: u16| {
            c.write(0x42, &v.to_le_bytes());
            let deassert = msi.after_config_write(c, 0x42, 2);
            (c.read_u16(0x42), deassert)
        };
        assert_eq!(c.read_u16(0x42), 0x0080);
        assert_eq!(
            write(&mut c, 0x0070),
            (0x00f0, false),
            "kept while disabled"
        );
        assert_eq!(
            write(&mut c, 0x0071),
            (0x0081, true),
            "clamped when enabled"
        );
        assert_eq!(write(&mut c, 0x0010), (0x0090, false));
        assert_eq!(write(&mut c, 0x0011), (0x0081, true));
        assert_eq!(write(&mut c, 0x0001), (0x0081, true));
        assert_eq!(write(&mut c, 0x0000), (0x0080, false));
        // A write elsewhere does nothing, even with MSI enabled.
        write(&mut c, 0x0071);
        assert!(!msi.after_config_write(&mut c, 0x3c, 1));
        assert!(
            msi.after_config_write(&mut c, 0x4c, 2),
            "data write with MSI on"
        );
    }

    #[test]
    fn thirty_two_bit_variant() {
        let mut c = cs();
        let msi = MsiCapability::add(&mut c, false).unwrap();
        assert_eq!(msi.len(), 10);
        c.write(0x44, &0xfee0_0000u32.to_le_bytes());
        c.write(0x48, &0x31u16.to_le_bytes());
        assert_eq!(
            msi.message(&c),
            MsiMessage {
                address: 0xfee0_0000,
                data: 0x31
            }
        );
    }

    #[test]
    fn overlap_check() {
        let mut c = cs();
        let msi = MsiCapability::add(&mut c, true).unwrap();
        assert!(msi.overlaps(0x42, 2));
        assert!(msi.overlaps(0x3e, 4));
        assert!(!msi.overlaps(0x3c, 4));
        assert!(!msi.overlaps(0x4e, 2));
        assert!(!msi.overlaps(usize::MAX, 4));
    }
}
