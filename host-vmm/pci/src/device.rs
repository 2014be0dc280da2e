//! The two traits the VMM, the bus and the tests use to talk to devices.
//!
//! Both take `&self`: a device keeps its own lock, so the bus can be shared
//! by every vCPU thread without a bus-wide lock, and a device's own worker
//! (edu's factorial and DMA timer) can reach the same state.

use crate::bar::{BarRange, BarSpec};
use crate::interrupt::IntxPin;

/// A device that answers reads and writes at an offset inside its window
/// (an MMIO BAR, an I/O port range).
///
/// A read must fill all of `data`; what a device does not decode reads as
/// all ones. Neither method may panic on any offset or length.
pub trait BusDevice: Send + Sync {
    /// Reads `data.len()` bytes at `offset`.
    fn read(&self, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset`.
    fn write(&self, offset: u64, data: &[u8]);
}

/// A PCI function: configuration space, BARs and an interrupt pin.
///
/// Configuration offsets are byte offsets into the 256-byte space; a device
/// must treat any offset and length safely (bytes past the end read as all
/// ones and are not written).
pub trait PciDevice: Send + Sync {
    /// Reads `data.len()` bytes of configuration space at `offset`.
    fn config_read(&self, offset: usize, data: &mut [u8]);
    /// Writes `data` to configuration space at `offset`, through the
    /// device's writable masks, with the device's side effects (INTx
    /// disable, bus master).
    fn config_write(&self, offset: usize, data: &[u8]);
    /// The BAR the device declares at `index`, if any.
    fn bar(&self, index: usize) -> Option<BarSpec>;
    /// BAR `index` as currently decoded (programmed and enabled), if at all.
    fn bar_range(&self, index: usize) -> Option<BarRange>;
    /// Reads `data.len()` bytes at `offset` inside BAR `index`.
    fn bar_read(&self, index: usize, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset` inside BAR `index`.
    fn bar_write(&self, index: usize, offset: u64, data: &[u8]);
    /// The INTx pin the function uses, if any.
    fn interrupt_pin(&self) -> Option<IntxPin>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A one-register device that counts writes.
    struct Counter(AtomicU64);

    impl BusDevice for Counter {
        fn read(&self, offset: u64, data: &mut [u8]) {
            if offset == 0 && data.len() == 8 {
                data.copy_from_slice(&self.0.load(Ordering::SeqCst).to_le_bytes());
            } else {
                data.fill(0xff);
            }
        }
        fn write(&self, _offset: u64, _data: &[u8]) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn bus_device_is_object_safe_and_shareable() {
        let d: std::sync::Arc<dyn BusDevice> = std::sync::Arc::new(Counter(AtomicU64::new(0)));
        let d2 = d.clone();
        std::thread::spawn(move || d2.write(0, &[1]))
            .join()
            .unwrap();
        let mut b = [0u8; 8];
        d.read(0, &mut b);
        assert_eq!(u64::from_le_bytes(b), 1);
        let mut b = [0u8; 3];
        d.read(0, &mut b);
        assert_eq!(b, [0xff; 3]);
    }
}
