//! Fuzzes edu-vmm's port and MMIO router (`edu_vmm::bus::Bus`) built as
//! the VMM builds it: UART (to a sink), i8042, CMOS, the ACPI PM1
//! registers, reset control at 0xcf9, and the PCI side with two edu
//! devices and their BARs placed,
//! only with recording interrupt sinks instead of KVM's irqfds and a
//! manual edu clock. The input is a sequence of port and MMIO reads and
//! writes of 0 to 8 bytes. Invariants: no panic; a read writes exactly the
//! buffer it is given, all ones where nothing decodes the port and zeros
//! above the first byte of the byte-wide devices; a write ends the VM
//! (`PioOutcome::Reset`) exactly when it is one of the two reset writes,
//! and powers it off (`PioOutcome::PowerOff`) exactly when it starts on a
//! PM1 port and writes SLP_EN with `\_S5`'s sleep type into the control
//! register's high byte; every access is counted.

#![no_main]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use edu_devices::EduConfig;
use edu_pci::RecordingInterrupts;
use edu_vmm::acpi::{PM1A_CNT_BLK, PM1A_EVT_BLK, S5_SLP_TYP};
use edu_vmm::bus::{Bus, PioOutcome, RESET_CONTROL_PORT};
use edu_vmm::legacy::{EventFdTrigger, Legacy, I8042_PORT, I8042_PORT_LEN, SERIAL_PORT};
use edu_vmm::pci::PciDevices;
use libfuzzer_sys::fuzz_target;
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Bytes per access: op, 3 address bytes, length, 8 data bytes.
const CHUNK: usize = 13;
/// Marker around and in read buffers, to see what a read touched.
const CANARY: u8 = 0xa5;
/// Ports something decodes, and a few around them, for `port_near`.
const PORT_BASES: [u16; 7] = [
    SERIAL_PORT,
    I8042_PORT,
    0x70,
    PM1A_EVT_BLK,
    0xcf8,
    0x80,
    0x1234,
];
/// Where the VMM places the first edu BAR0 (the PCI window's start).
const BAR_BASE: u64 = 0xc000_0000;
/// The i8042 command port and its reset command.
const I8042_COMMAND: u16 = 0x64;
const I8042_RESET: u8 = 0xfe;

fn bus(trace: bool) -> (Bus, PciDevices) {
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 * 1024)]).expect("guest memory");
    let serial_irq = EventFdTrigger::new().expect("eventfd");
    let reset = EventFdTrigger::new().expect("eventfd");
    let reset_rx = reset.try_clone().expect("eventfd clone");
    let mut bus = Bus::new(
        Legacy::new(serial_irq, reset, Box::new(std::io::sink())),
        reset_rx,
        trace,
    );
    let pci = PciDevices::with_interrupts(&mem, 2, EduConfig::manual(), |_| {
        Ok(Arc::new(RecordingInterrupts::new()))
    })
    .expect("pci devices");
    bus.set_pci(pci.access());
    (bus, pci)
}

/// The bytes after a read's `len` still hold the canary. The bus gets only
/// `&mut buf[..len]`, so safe code cannot break this; it guards the slicing
/// the bus does on the way to each device.
fn assert_untouched_past(buf: &[u8], len: usize) {
    assert!(
        buf[len..].iter().all(|&b| b == CANARY),
        "read past the buffer"
    );
}

/// The PM1 event and control blocks.
fn pm1(port: u16) -> bool {
    (PM1A_EVT_BLK..PM1A_CNT_BLK + 2).contains(&port)
}

/// Whether a write of `payload` at `port` is ACPI S5: it starts on a PM1
/// port and its byte for the control register's high half has SLP_EN (bit
/// 13) and SLP_TYP (bits 12:10) = `\_S5`'s type.
fn s5(port: u16, payload: &[u8]) -> bool {
    let high = (PM1A_CNT_BLK + 1).wrapping_sub(port);
    pm1(port)
        && payload
            .get(usize::from(high))
            .is_some_and(|b| b & 0x20 != 0 && (b >> 2) & 7 == S5_SLP_TYP)
}

/// Whether anything on the bus decodes a read of `len` bytes at `port`.
fn decoded(port: u16, len: usize) -> bool {
    (SERIAL_PORT..SERIAL_PORT + 8).contains(&port)
        || (I8042_PORT..I8042_PORT + I8042_PORT_LEN).contains(&port)
        || matches!(port, 0x70 | 0x71)
        || pm1(port)
        || (port == RESET_CONTROL_PORT && len == 1)
        || (0xcf8..0xd00).contains(&port)
}

/// Devices that answer a single byte and zero the rest of the buffer.
fn byte_wide(port: u16) -> bool {
    (SERIAL_PORT..SERIAL_PORT + 8).contains(&port)
        || (I8042_PORT..I8042_PORT + I8042_PORT_LEN).contains(&port)
        || matches!(port, 0x70 | 0x71)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (bus, _pci) = bus(flags & 1 != 0);
    // What the guest kernel does first: enable memory decoding and bus
    // mastering on both edus (Command register, 00:0N.0 offset 4).
    for slot in 1..=2u32 {
        let addr = 0x8000_0004 | slot << 11;
        assert_eq!(bus.pio_write(0xcf8, &addr.to_le_bytes()), PioOutcome::Done);
        assert_eq!(bus.pio_write(0xcfc, &[0x06, 0]), PioOutcome::Done);
    }
    let setup_pio = 4u64;

    let (mut pio, mut mmio) = (setup_pio, 0u64);
    for c in data.chunks_exact(CHUNK).take(1024) {
        let op = c[0];
        let a = u32::from_le_bytes([c[1], c[2], c[3], 0]);
        let len = usize::from(c[4] % 9);
        let payload = &c[5..5 + len];
        let port = if op & 0x10 != 0 {
            a as u16
        } else {
            PORT_BASES[usize::from(c[1]) % PORT_BASES.len()]
                .wrapping_add(u16::from(c[2] % 16))
                .wrapping_sub(4)
        };
        // From just below the first BAR to past the second.
        let addr = BAR_BASE - 0x1000 + u64::from(a & 0x3f_ffff);
        let mut buf = [CANARY; 8 + 8];
        match op & 3 {
            0 => {
                pio += 1;
                bus.pio_read(port, &mut buf[..len]);
                assert_untouched_past(&buf, len);
                let got = &buf[..len];
                if !decoded(port, len) {
                    assert!(got.iter().all(|&b| b == 0xff), "{port:#x}: {got:02x?}");
                }
                if byte_wide(port) && len > 1 {
                    assert!(got[1..].iter().all(|&b| b == 0), "{port:#x}: {got:02x?}");
                }
                if port == RESET_CONTROL_PORT && len == 1 {
                    assert_eq!(got, [0]);
                }
            }
            1 => {
                pio += 1;
                let out = bus.pio_write(port, payload);
                let reset = (port == RESET_CONTROL_PORT && len == 1 && payload[0] & 0x04 != 0)
                    || (port == I8042_COMMAND && payload.first() == Some(&I8042_RESET));
                assert_eq!(
                    out == PioOutcome::Reset,
                    reset,
                    "write {payload:02x?} to {port:#x} gave {out:?}"
                );
                assert_eq!(
                    out == PioOutcome::PowerOff,
                    s5(port, payload),
                    "write {payload:02x?} to {port:#x} gave {out:?}"
                );
            }
            2 => {
                mmio += 1;
                bus.mmio_read(addr, &mut buf[..len]);
                // No check on the value: the guest may move the BARs.
                assert_untouched_past(&buf, len);
            }
            _ => {
                mmio += 1;
                bus.mmio_write(addr, payload);
            }
        }
    }
    assert_eq!(bus.stats.pio.load(Ordering::Relaxed), pio);
    assert_eq!(bus.stats.mmio.load(Ordering::Relaxed), mmio);
});
