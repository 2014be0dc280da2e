//! The host bridge at 00:00.0.
//!
//! It has no BARs and no interrupt; it exists so that enumeration finds a
//! bridge at 00:00.0 as on every PC. Its IDs are those of QEMU's generic
//! PCIe host bridge (Red Hat 1b36:0008), for which Linux has no quirks.

use crate::bar::{BarRange, BarSpec};
use crate::config::{ConfigSpace, Type0Header};
use crate::device::PciDevice;
use crate::interrupt::IntxPin;
use std::sync::{Mutex, PoisonError};

/// Vendor ID of the host bridge (Red Hat, Inc.).
pub const HOST_BRIDGE_VENDOR_ID: u16 = 0x1b36;
/// Device ID of the host bridge (QEMU PCIe host bridge).
pub const HOST_BRIDGE_DEVICE_ID: u16 = 0x0008;
/// Class code: bridge device, host bridge.
pub const HOST_BRIDGE_CLASS: u32 = 0x06_00_00;

/// The host bridge function.
#[derive(Debug)]
pub struct HostBridge {
    config: Mutex<ConfigSpace>,
}

impl HostBridge {
    /// A host bridge with the IDs above.
    pub fn new() -> Self {
        HostBridge {
            config: Mutex::new(ConfigSpace::new(&Type0Header {
                vendor_id: HOST_BRIDGE_VENDOR_ID,
                device_id: HOST_BRIDGE_DEVICE_ID,
                revision_id: 0,
                class_code: HOST_BRIDGE_CLASS,
                subsystem_vendor_id: 0x1af4,
                subsystem_id: 0x1100,
                interrupt_pin: 0,
            })),
        }
    }
}

impl Default for HostBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl PciDevice for HostBridge {
    fn config_read(&self, offset: usize, data: &mut [u8]) {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read(offset, data);
    }

    fn config_write(&self, offset: usize, data: &[u8]) {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(offset, data);
    }

    fn bar(&self, _index: usize) -> Option<BarSpec> {
        None
    }

    fn bar_range(&self, _index: usize) -> Option<BarRange> {
        None
    }

    fn bar_read(&self, _index: usize, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn bar_write(&self, _index: usize, _offset: u64, _data: &[u8]) {}

    fn interrupt_pin(&self) -> Option<IntxPin> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_as_a_host_bridge() {
        let hb = HostBridge::new();
        let mut b = [0u8; 4];
        hb.config_read(0, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0x0008_1b36);
        hb.config_read(8, &mut b);
        assert_eq!(u32::from_le_bytes(b) >> 8, 0x060000);
        hb.config_read(0x0c, &mut b);
        assert_eq!(b[2], 0, "single-function type-0 header");
        assert_eq!(hb.interrupt_pin(), None);
        assert_eq!(hb.bar(0), None);
        assert_eq!(hb.bar_range(0), None);
        hb.bar_read(0, 0, &mut b);
        assert_eq!(b, [0xff; 4]);
        hb.bar_write(0, 0, &b);
    }
}
