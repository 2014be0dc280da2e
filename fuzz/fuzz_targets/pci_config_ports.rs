//! Fuzzes configuration mechanism #1 (ports 0xCF8..=0xCFF, and a little
//! beyond) and MMIO dispatch on a bus holding the host bridge and two edu
//! devices: no input may panic, and an absent function must read all ones.

#![no_main]

use edu_devices::{EduConfig, EduDevice};
use edu_pci::{PciBus, RecordingInterrupts};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use vm_memory::{GuestAddress, GuestMemoryMmap};

fuzz_target!(|data: &[u8]| {
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 * 1024)]).expect("guest memory");
    let mut bus = PciBus::new();
    for _ in 0..2 {
        let irq = Arc::new(RecordingInterrupts::new());
        let edu = EduDevice::new(EduConfig::manual(), mem.clone(), irq).expect("edu");
        bus.add_device(Arc::new(edu)).expect("slot");
    }
    let mut chunks = data.chunks_exact(6);
    for c in chunks.by_ref().take(512) {
        let port = u64::from(c[0] % 10);
        let len = usize::from(c[1] % 6);
        let v = u32::from_le_bytes([c[2], c[3], c[4], c[5]]);
        match c[1] >> 5 {
            0..=2 => {
                let mut b = vec![0u8; len];
                bus.config_io_read(port, &mut b);
            }
            3..=5 => {
                let bytes = v.to_le_bytes();
                bus.config_io_write(port, &bytes[..len.min(4)]);
            }
            6 => {
                // MMIO near where firmware would put the BARs.
                let addr = 0xfe00_0000u64 + u64::from(v & 0x01ff_ffff);
                let mut b = vec![0u8; len + 3];
                bus.mmio_read(addr, &mut b);
            }
            _ => {
                let addr = 0xfe00_0000u64 + u64::from(v & 0x01ff_ffff);
                bus.mmio_write(addr, &v.to_le_bytes()[..len.min(4)]);
            }
        }
    }
    // Slot 3 is empty: all ones whatever happened before.
    bus.config_io_write(0, &0x8000_1800u32.to_le_bytes());
    let mut b = [0u8; 4];
    bus.config_io_read(4, &mut b);
    assert_eq!(b, [0xff; 4]);
});
