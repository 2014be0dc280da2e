//! Benchmarks: one guest MMIO access through the PCI bus lookup and edu, and
//! a 4 KiB DMA transfer with delay 0 against a plain 4 KiB memcpy.
//!
//! Run with `cargo bench -p edu-devices`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edu_devices::edu::regs::*;
use edu_devices::{EduConfig, EduDevice};
use edu_pci::config::{BAR0, COMMAND, COMMAND_MASTER, COMMAND_MEMORY};
use edu_pci::{PciAddress, PciBus, RecordingInterrupts};
use std::hint::black_box;
use std::sync::Arc;
use vm_memory::{GuestAddress, GuestMemoryMmap};

const BAR_BASE: u64 = 0xfea0_0000;
const RAM: u64 = 0x10000;

fn setup() -> (PciBus, Arc<EduDevice<GuestMemoryMmap>>) {
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("guest memory");
    let irq = Arc::new(RecordingInterrupts::new());
    let edu = Arc::new(EduDevice::new(EduConfig::manual(), mem, irq).expect("edu"));
    let mut bus = PciBus::new();
    let slot = bus.add_device(edu.clone()).expect("slot");
    let addr = PciAddress::new(0, slot, 0);
    bus.config_write(addr, BAR0, &(BAR_BASE as u32).to_le_bytes());
    bus.config_write(
        addr,
        COMMAND,
        &(COMMAND_MEMORY | COMMAND_MASTER).to_le_bytes(),
    );
    (bus, edu)
}

fn mmio(c: &mut Criterion) {
    let (bus, _edu) = setup();
    let mut g = c.benchmark_group("mmio");
    g.bench_function("read_id_via_bus", |b| {
        let mut data = [0u8; 4];
        b.iter(|| {
            bus.mmio_read(black_box(BAR_BASE + REG_ID), &mut data);
            black_box(data)
        })
    });
    g.bench_function("write_liveness_via_bus", |b| {
        b.iter(|| {
            bus.mmio_write(
                black_box(BAR_BASE + REG_LIVENESS),
                &0x1234_5678u32.to_le_bytes(),
            )
        })
    });
    g.finish();
}

fn dma(c: &mut Criterion) {
    let (bus, edu) = setup();
    let mut g = c.benchmark_group("dma_4k");
    g.throughput(Throughput::Bytes(DMA_BUF_SIZE as u64));
    let mmio_w64 = |off: u64, v: u64| {
        bus.mmio_write(BAR_BASE + off, &v.to_le_bytes());
    };
    g.bench_function("edu_ram_to_buffer_delay0", |b| {
        b.iter(|| {
            mmio_w64(REG_DMA_SRC, RAM);
            mmio_w64(REG_DMA_DST, DMA_BUF_START);
            mmio_w64(REG_DMA_CNT, DMA_BUF_SIZE as u64);
            mmio_w64(REG_DMA_CMD, DMA_CMD_RUN);
            edu.advance(std::time::Duration::ZERO);
        })
    });
    g.bench_function("edu_buffer_to_ram_delay0", |b| {
        b.iter(|| {
            mmio_w64(REG_DMA_SRC, DMA_BUF_START);
            mmio_w64(REG_DMA_DST, RAM);
            mmio_w64(REG_DMA_CNT, DMA_BUF_SIZE as u64);
            mmio_w64(REG_DMA_CMD, DMA_CMD_RUN | DMA_CMD_TO_RAM);
            edu.advance(std::time::Duration::ZERO);
        })
    });
    g.bench_function("memcpy_4k", |b| {
        let src = vec![0x5au8; DMA_BUF_SIZE];
        let mut dst = vec![0u8; DMA_BUF_SIZE];
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    g.finish();
    assert_eq!(edu.stats().dma_out_of_range, 0);
}

/// The same transfer with the worker thread doing it (delay 0): includes
/// the wake-up of the worker and of the waiting thread.
fn dma_thread(c: &mut Criterion) {
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("guest memory");
    let irq = Arc::new(RecordingInterrupts::new());
    let cfg = EduConfig {
        dma_delay: std::time::Duration::ZERO,
        ..EduConfig::default()
    };
    let edu = EduDevice::new(cfg, mem, irq).expect("edu");
    edu.config_write(COMMAND, &(COMMAND_MEMORY | COMMAND_MASTER).to_le_bytes());
    let mut g = c.benchmark_group("dma_4k");
    g.throughput(Throughput::Bytes(DMA_BUF_SIZE as u64));
    g.bench_function("edu_ram_to_buffer_thread_delay0", |b| {
        b.iter(|| {
            edu.write_u64(REG_DMA_SRC, RAM);
            edu.write_u64(REG_DMA_DST, DMA_BUF_START);
            edu.write_u64(REG_DMA_CNT, DMA_BUF_SIZE as u64);
            edu.write_u64(REG_DMA_CMD, DMA_CMD_RUN);
            assert!(edu.wait_idle(std::time::Duration::from_secs(5)));
        })
    });
    g.finish();
}

criterion_group!(benches, mmio, dma, dma_thread);
criterion_main!(benches);
