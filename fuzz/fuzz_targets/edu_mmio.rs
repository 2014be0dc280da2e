//! Fuzzes edu's BAR0: any sequence of MMIO reads and writes of any size at
//! any offset, configuration writes (MSI, INTx disable, bus master) and
//! clock steps must not panic, must fill every read, and must keep the
//! identification register intact.

#![no_main]

use edu_devices::edu::regs::{ID_VALUE, REG_ID};
use edu_devices::{EduConfig, EduDevice, RejectedRead};
use edu_pci::RecordingInterrupts;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::Duration;
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Reads little-endian integers off the front of the input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u64(&mut self, n: usize) -> Option<u64> {
        let n = n.min(8).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(head);
        Some(u64::from_le_bytes(b))
    }
}

/// Offsets mostly near the registers, sometimes anywhere.
fn offset(sel: u8, raw: u64) -> u64 {
    match sel % 4 {
        0 | 1 => raw % 0xa0,
        2 => 0x98 - (raw % 0x20),
        _ => raw,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let Some(flags) = inp.u8() else { return };
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 * 1024)]).expect("guest memory");
    let irq = Arc::new(RecordingInterrupts::new());
    let cfg = EduConfig {
        dma_delay: Duration::from_millis(u64::from(flags >> 4) * 10),
        dma_mask: if flags & 1 != 0 {
            u64::MAX
        } else {
            (1 << 28) - 1
        },
        rejected_read: if flags & 2 != 0 {
            RejectedRead::Zero
        } else {
            RejectedRead::AllOnes
        },
        ..EduConfig::manual()
    };
    let edu = EduDevice::new(cfg, mem, irq).expect("edu");
    for _ in 0..256 {
        let Some(op) = inp.u8() else { break };
        let Some(sel) = inp.u8() else { break };
        let Some(raw) = inp.u64(4) else { break };
        let off = offset(sel, raw);
        let size = usize::from(op >> 4) % 10;
        match op % 5 {
            0 | 1 => {
                let mut buf = vec![0x5a_u8; size];
                edu.read(off, &mut buf);
                if size != 4 && size != 8 {
                    assert!(buf.iter().all(|&b| b == 0xff || b == 0), "read not filled");
                }
            }
            2 | 3 => {
                let Some(v) = inp.u64(size) else { break };
                edu.write(off, &v.to_le_bytes()[..size.min(8)]);
            }
            _ => match sel % 3 {
                0 => edu.advance(Duration::from_millis(raw % 200)),
                1 => {
                    // Configuration write: command, MSI control/address/data.
                    let reg = [0x04usize, 0x42, 0x44, 0x48, 0x4c, 0x3c][(raw % 6) as usize];
                    let Some(v) = inp.u64(4) else { break };
                    edu.config_write(reg, &v.to_le_bytes()[..(size % 5).max(1)]);
                }
                _ => {
                    let _ = edu.wait_idle(Duration::ZERO);
                }
            },
        }
    }
    let _ = edu.wait_idle(Duration::ZERO);
    assert_eq!(edu.read_u32(REG_ID), ID_VALUE);
});
