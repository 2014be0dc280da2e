//! Replays the lab report in the project's seeds (a Linux driver on QEMU's
//! edu) against our model on a PCI bus, with the worker thread and QEMU's
//! 100 ms DMA delay, and compares every value the report printed: the 64
//! configuration bytes and the BAR0 dump from 0x00 to 0x94.

use edu_devices::edu::regs::*;
use edu_devices::{EduConfig, EduDevice};
use edu_pci::{IntxPin, PciAddress, PciBus, RecordingInterrupts};
use std::sync::Arc;
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const BAR: u64 = 0xfea0_0000;

/// `io` lines of the report: offset, value.
const LAB_IO: [(u64, u32); 38] = [
    (0x00, 0x0100_00ed),
    (0x04, 0x0),
    (0x08, 0x0037_5f00),
    (0x0c, 0xffff_ffff),
    (0x10, 0xffff_ffff),
    (0x14, 0xffff_ffff),
    (0x18, 0xffff_ffff),
    (0x1c, 0xffff_ffff),
    (0x20, 0x80),
    (0x24, 0x0),
    (0x28, 0xffff_ffff),
    (0x2c, 0xffff_ffff),
    (0x30, 0xffff_ffff),
    (0x34, 0xffff_ffff),
    (0x38, 0xffff_ffff),
    (0x3c, 0xffff_ffff),
    (0x40, 0xffff_ffff),
    (0x44, 0xffff_ffff),
    (0x48, 0xffff_ffff),
    (0x4c, 0xffff_ffff),
    (0x50, 0xffff_ffff),
    (0x54, 0xffff_ffff),
    (0x58, 0xffff_ffff),
    (0x5c, 0xffff_ffff),
    (0x60, 0xffff_ffff),
    (0x64, 0xffff_ffff),
    (0x68, 0xffff_ffff),
    (0x6c, 0xffff_ffff),
    (0x70, 0xffff_ffff),
    (0x74, 0xffff_ffff),
    (0x78, 0xffff_ffff),
    (0x7c, 0xffff_ffff),
    (0x80, 0x40b0_0104),
    (0x84, 0xffff_ffff),
    (0x88, 0x0004_0000),
    (0x8c, 0xffff_ffff),
    (0x90, 0x4),
    (0x94, 0xffff_ffff),
];

/// `config` lines of the report.
const LAB_CONFIG: [u8; 64] = [
    0x34, 0x12, 0xe8, 0x11, 0x03, 0x01, 0x10, 0x00, 0x10, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00,
    0x00, //
    0x00, 0x00, 0xa0, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf4, 0x1a, 0x00,
    0x11, //
    0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x01, 0x00, 0x00,
];

fn cf8(bus: &PciBus, slot: u8, reg: u32) {
    let v = 0x8000_0000 | (u32::from(slot) << 11) | reg;
    bus.config_io_write(0, &v.to_le_bytes());
}

fn r32(bus: &PciBus, off: u64) -> u32 {
    let mut b = [0u8; 4];
    assert!(bus.mmio_read(BAR + off, &mut b));
    u32::from_le_bytes(b)
}

fn w32(bus: &PciBus, off: u64, v: u32) {
    assert!(bus.mmio_write(BAR + off, &v.to_le_bytes()));
}

#[test]
fn lab_report_values_reproduce() {
    // 192 MiB so the report's DMA address (masked to 28 bits) is RAM.
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 192 << 20)]).unwrap();
    mem.write_slice(&[0xde, 0xad, 0xbe, 0xef], GuestAddress(0x0b0_0104))
        .unwrap();
    let irq = Arc::new(RecordingInterrupts::new());
    let edu = Arc::new(EduDevice::new(EduConfig::default(), mem, irq.clone()).unwrap());
    let mut bus = PciBus::new();
    let slot = bus.add_device(edu.clone()).unwrap();

    // Firmware: size and place BAR0, interrupt line 11, I/O + memory + SERR.
    cf8(&bus, slot, 0x10);
    bus.config_io_write(4, &[0xff; 4]);
    let mut b = [0u8; 4];
    bus.config_io_read(4, &mut b);
    assert_eq!(u32::from_le_bytes(b), 0xfff0_0000);
    bus.config_io_write(4, &(BAR as u32).to_le_bytes());
    cf8(&bus, slot, 0x3c);
    bus.config_io_write(4, &[0x0b]);
    cf8(&bus, slot, 0x04);
    bus.config_io_write(4, &0x0103u16.to_le_bytes());

    let mut config = [0u8; 64];
    for (i, byte) in config.iter_mut().enumerate() {
        bus.config_read(PciAddress::new(0, slot, 0), i, std::slice::from_mut(byte));
    }
    assert_eq!(config, LAB_CONFIG);

    // The driver's flow: raise 0x12345678, ack it.
    w32(&bus, REG_IRQ_RAISE, 0x1234_5678);
    assert_eq!(r32(&bus, REG_IRQ_STATUS), 0x1234_5678);
    assert!(irq.intx_level(IntxPin::A));
    w32(&bus, REG_IRQ_ACK, 0x1234_5678);
    assert!(!irq.intx_level(IntxPin::A));

    // Factorial of 10 with the interrupt bit.
    w32(&bus, REG_STATUS, STATUS_IRQFACT);
    w32(&bus, REG_FACTORIAL, 10);
    assert!(edu.wait_idle(Duration::from_secs(5)));
    assert_eq!(r32(&bus, REG_IRQ_STATUS), IRQ_FACTORIAL);
    w32(&bus, REG_IRQ_ACK, IRQ_FACTORIAL);

    // DMA (bus master enabled by the driver), RAM -> buffer, with IRQ.
    cf8(&bus, slot, 0x04);
    bus.config_io_write(4, &0x0107u16.to_le_bytes());
    w32(&bus, REG_DMA_SRC, 0x40b0_0104);
    w32(&bus, REG_DMA_DST, 0x0004_0000);
    w32(&bus, REG_DMA_CNT, 4);
    w32(&bus, REG_DMA_CMD, (DMA_CMD_RUN | DMA_CMD_IRQ) as u32);
    assert_eq!(
        r32(&bus, REG_DMA_CMD) & 1,
        1,
        "running during QEMU's 100 ms"
    );
    assert!(edu.wait_idle(Duration::from_secs(5)));
    assert_eq!(r32(&bus, REG_IRQ_STATUS), IRQ_DMA);
    w32(&bus, REG_IRQ_ACK, IRQ_DMA);
    let mut got = [0u8; 4];
    edu.read_dma_buffer(0, &mut got);
    assert_eq!(
        got,
        [0xde, 0xad, 0xbe, 0xef],
        "copied from the 28-bit-masked address"
    );
    assert_eq!(edu.stats().dma_clamped, 1);

    for (off, want) in LAB_IO {
        assert_eq!(r32(&bus, off), want, "io {off:x}");
    }
}
