//! Benchmarks: one guest MMIO access through the PCI bus lookup and edu, and
//! a 4 KiB DMA transfer with delay 0 against a plain 4 KiB memcpy.
//!
//! Run with `cargo bench -p edu-devices`. The last line it prints puts the
//! DMA and the memcpy side by side, measured alternately in the same run
//! (issue 12 asks for the DMA at 50% or more of the memcpy's speed).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edu_devices::edu::regs::*;
use edu_devices::{EduConfig, EduDevice};
use edu_pci::config::{BAR0, COMMAND, COMMAND_MASTER, COMMAND_MEMORY};
use edu_pci::{PciAddress, PciBus, RecordingInterrupts};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    g.bench_function("edu_ram_to_buffer_delay0", |b| {
        b.iter(|| dma_to_buffer(&bus, &edu))
    });
    g.bench_function("edu_ram_to_buffer_command_only_delay0", |b| {
        dma_to_buffer(&bus, &edu);
        b.iter(|| dma_command(&bus, &edu))
    });
    g.bench_function("edu_buffer_to_ram_delay0", |b| {
        b.iter(|| {
            mmio_w64(&bus, REG_DMA_SRC, DMA_BUF_START);
            mmio_w64(&bus, REG_DMA_DST, RAM);
            mmio_w64(&bus, REG_DMA_CNT, DMA_BUF_SIZE as u64);
            mmio_w64(&bus, REG_DMA_CMD, DMA_CMD_RUN | DMA_CMD_TO_RAM);
            edu.advance(Duration::ZERO);
        })
    });
    g.bench_function("memcpy_4k", |b| {
        let (src, mut dst) = memcpy_buffers();
        b.iter(|| memcpy_4k(&src, &mut dst))
    });
    g.finish();
    assert_eq!(edu.stats().dma_out_of_range, 0);
}

fn mmio_w64(bus: &PciBus, off: u64, v: u64) {
    bus.mmio_write(BAR_BASE + off, &v.to_le_bytes());
}

/// What a driver does for one 4 KiB transfer from RAM into edu's buffer:
/// three address and count writes through the bus, then the command.
fn dma_to_buffer(bus: &PciBus, edu: &EduDevice<GuestMemoryMmap>) {
    mmio_w64(bus, REG_DMA_SRC, RAM);
    mmio_w64(bus, REG_DMA_DST, DMA_BUF_START);
    mmio_w64(bus, REG_DMA_CNT, DMA_BUF_SIZE as u64);
    dma_command(bus, edu);
}

/// The transfer itself: the command write (the address and count
/// registers keep their values from the last transfer) and the (manual)
/// clock running it.
fn dma_command(bus: &PciBus, edu: &EduDevice<GuestMemoryMmap>) {
    mmio_w64(bus, REG_DMA_CMD, DMA_CMD_RUN);
    edu.advance(Duration::ZERO);
}

/// A page of memory, aligned as guest RAM and edu's DMA buffer are.
#[repr(C, align(4096))]
struct Page([u8; DMA_BUF_SIZE]);

/// The memcpy's source and destination: two pages, as the DMA copies
/// (where two `Vec`s from the allocator lie changes a 4 KiB memcpy from
/// about 40 to 300 ns on this machine, so they are no reference).
fn memcpy_buffers() -> (Box<Page>, Box<Page>) {
    (
        Box::new(Page([0x5a; DMA_BUF_SIZE])),
        Box::new(Page([0; DMA_BUF_SIZE])),
    )
}

fn memcpy_4k(src: &Page, dst: &mut Page) {
    dst.0.copy_from_slice(black_box(&src.0));
    black_box(dst);
}

/// The same transfer with the worker thread doing it (delay 0): includes
/// the wake-up of the worker and of the waiting thread.
fn dma_thread(c: &mut Criterion) {
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("guest memory");
    let irq = Arc::new(RecordingInterrupts::new());
    let cfg = EduConfig {
        dma_delay: Duration::ZERO,
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
            assert!(edu.wait_idle(Duration::from_secs(5)));
        })
    });
    g.finish();
}

/// Mean time per call of `f` over `n` calls, in nanoseconds.
fn per_call_ns(n: u32, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The DMA and the memcpy timed alternately, batch by batch, so that both
/// see the same machine load; prints one line with both medians and the
/// ratio.
fn dma_against_memcpy(_: &mut Criterion) {
    let (bus, edu) = setup();
    let (src, mut dst) = memcpy_buffers();
    dma_to_buffer(&bus, &edu);
    let (mut seq, mut cmd, mut copy) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..51 {
        seq.push(per_call_ns(2000, || dma_to_buffer(&bus, &edu)));
        cmd.push(per_call_ns(2000, || dma_command(&bus, &edu)));
        copy.push(per_call_ns(2000, || memcpy_4k(&src, &mut dst)));
    }
    let (seq, cmd, copy) = (median(seq), median(cmd), median(copy));
    let pct = |t: f64| 100.0 * copy / t;
    println!(
        "dma_4k summary (medians of 51 alternating batches): memcpy 4 KiB {copy:.0} ns; \
         edu RAM->buffer delay 0: command and transfer {cmd:.0} ns ({:.0}% of memcpy speed, \
         issue 12: >= 50%), with the three address/count writes {seq:.0} ns ({:.0}%)",
        pct(cmd),
        pct(seq)
    );
    assert_eq!(edu.stats().dma_out_of_range, 0);
}

criterion_group!(benches, mmio, dma, dma_thread, dma_against_memcpy);
criterion_main!(benches);
