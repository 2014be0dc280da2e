//! Fuzzes edu with the clock the VMM uses, its own worker thread
//! (`EduClock::Thread`), from two threads at once, as two vCPUs would: the
//! input's accesses are dealt alternately to two threads that run them
//! concurrently while the worker finishes factorials and DMAs on its own
//! time. Interrupts go to a sink that records them or fails in a pattern
//! the input chooses.
//!
//! Invariants: no panic; no deadlock or lost wake-up (the device is idle
//! within 2 s of the last access); the device counted every interrupt the
//! sink refused; no more DMAs completed than DMA commands were written;
//! the identification register intact.

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use edu_devices::edu::regs::{
    DMA_BUF_START, DMA_CMD_RUN, ID_VALUE, REG_DMA_CMD, REG_DMA_CNT, REG_DMA_DST, REG_DMA_SRC,
    REG_FACTORIAL, REG_ID, REG_STATUS, STATUS_IRQFACT,
};
use edu_devices::{EduClock, EduConfig, EduDevice};
use edu_pci::{FailingInterrupts, InterruptSink, RecordingInterrupts};
use libfuzzer_sys::fuzz_target;
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Bytes per access: op, offset selector, 8 data bytes.
const CHUNK: usize = 10;
/// Guest RAM for DMA.
const RAM: u64 = 1 << 20;
/// How long the device may take to go idle after the last access.
const IDLE_WITHIN: Duration = Duration::from_secs(2);
/// Configuration registers worth writing: Command, Interrupt Line, and the
/// MSI capability's control, address and data.
const CONFIG_REGS: [usize; 6] = [0x04, 0x3c, 0x42, 0x44, 0x48, 0x4c];

fn guest_memory() -> &'static GuestMemoryMmap {
    static MEM: OnceLock<GuestMemoryMmap> = OnceLock::new();
    MEM.get_or_init(|| {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)])
            .expect("guest memory")
    })
}

/// One vCPU's share of the input, run against the device.
fn vcpu(edu: &EduDevice<GuestMemoryMmap>, ops: &[[u8; CHUNK]], dma_commands: &AtomicU64) {
    for c in ops {
        let (op, sel) = (c[0], c[1]);
        let v = u64::from_le_bytes(c[2..10].try_into().expect("8 bytes"));
        let size = usize::from(op >> 4) % 9;
        let offset = u64::from(sel) % 0xa0;
        match op % 6 {
            0 => {
                let mut buf = [0u8; 8];
                edu.read(offset, &mut buf[..size]);
            }
            1 => {
                if offset == REG_DMA_CMD && size >= 1 && v & DMA_CMD_RUN != 0 {
                    dma_commands.fetch_add(1, Ordering::SeqCst);
                }
                edu.write(offset, &v.to_le_bytes()[..size]);
            }
            2 => {
                if sel & 1 != 0 {
                    edu.write_u32(REG_STATUS, STATUS_IRQFACT);
                }
                edu.write_u32(REG_FACTORIAL, v as u32 % 20);
            }
            3 => {
                // A DMA between the buffer and RAM (sometimes past either).
                let buffer = DMA_BUF_START + (v & 0xfff) + u64::from(sel & 0x10);
                let ram = (v >> 12) % (RAM + 0x2000);
                let to_ram = sel & 2 != 0;
                let (src, dst) = if to_ram { (buffer, ram) } else { (ram, buffer) };
                edu.write_u64(REG_DMA_SRC, src);
                edu.write_u64(REG_DMA_DST, dst);
                edu.write_u64(REG_DMA_CNT, (v >> 40) % 0x1100);
                dma_commands.fetch_add(1, Ordering::SeqCst);
                edu.write_u64(REG_DMA_CMD, u64::from(sel & 6) | DMA_CMD_RUN);
            }
            4 => {
                let reg = CONFIG_REGS[usize::from(sel) % CONFIG_REGS.len()];
                edu.config_write(reg, &v.to_le_bytes()[..size.clamp(1, 4)]);
            }
            _ => {
                if sel & 1 != 0 {
                    let _ = edu.wait_idle(Duration::ZERO);
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, data)) = data.split_first_chunk::<9>() else {
        return;
    };
    let pattern = u64::from_le_bytes(flags[1..9].try_into().expect("8 bytes"));
    let failing = (flags[0] & 1 != 0).then(|| Arc::new(FailingInterrupts::new(pattern)));
    let irq: Arc<dyn InterruptSink> = match &failing {
        Some(f) => f.clone(),
        None => Arc::new(RecordingInterrupts::new()),
    };
    let config = EduConfig {
        dma_delay: Duration::from_micros(u64::from(flags[0] >> 2) * 8),
        dma_mask: if flags[0] & 2 != 0 {
            u64::MAX
        } else {
            EduConfig::default().dma_mask
        },
        clock: EduClock::Thread,
        ..EduConfig::default()
    };
    let edu = EduDevice::new(config, guest_memory().clone(), irq).expect("edu");
    let ops: Vec<[u8; CHUNK]> = data
        .chunks_exact(CHUNK)
        .take(512)
        .map(|c| c.try_into().expect("chunk"))
        .collect();
    let (even, odd): (Vec<_>, Vec<_>) = ops.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let share = |v: Vec<(usize, &[u8; CHUNK])>| v.into_iter().map(|(_, c)| *c).collect::<Vec<_>>();
    let (even, odd) = (share(even), share(odd));
    let dma_commands = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| vcpu(&edu, &odd, &dma_commands));
        vcpu(&edu, &even, &dma_commands);
    });
    assert!(
        edu.wait_idle(IDLE_WITHIN),
        "not idle {IDLE_WITHIN:?} after the last access"
    );
    let stats = edu.stats();
    assert!(
        stats.dma_completed <= dma_commands.load(Ordering::SeqCst),
        "{stats:?}"
    );
    if let Some(f) = &failing {
        assert_eq!(
            stats.interrupt_errors,
            f.failures(),
            "refused interrupts not all counted"
        );
    }
    assert_eq!(edu.read_u32(REG_ID), ID_VALUE);
});
