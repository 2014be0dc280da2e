//! Runner B: our edu model ([`edu_devices::EduDevice`]) as a script target.
//!
//! The target stands in for everything between a script and QEMU's edu in
//! the reference run, so that only the device's behaviour is compared:
//!
//! - **Guest memory**: a `vm-memory` `GuestMemoryMmap` of [`MEM_SIZE`] bytes
//!   at guest address 0; the DMA buffer is fixed at [`BUF_GPA`].
//! - **Firmware and runner A's set-up**: the command register gets memory
//!   decoding and bus mastering (what `enable` in sysfs and runner A do) and
//!   BAR0 an address, before the script starts.
//! - **The CPU**: QEMU's TCG splits an MMIO access that is not naturally
//!   aligned. A load becomes two aligned loads of the same size (at the
//!   offset rounded down, and the next one) whose bytes are recombined; a
//!   store becomes one byte store per byte. [`ModelTarget`] does the same,
//!   so the device sees the accesses QEMU's edu saw. (Under KVM, QEMU's and
//!   ours, the device sees the unaligned access itself.)
//! - **MSI**: on a PC an MSI is a 4-byte memory write of the data to the
//!   address. Messages aimed at guest RAM are written there (scripts point
//!   the MSI address into the DMA buffer to observe them); others are
//!   counted only.
//! - **Time**: the device runs on the manual clock with QEMU's 100 ms DMA
//!   delay; `sleep` and every 1 ms poll of `wait` advance it. A factorial
//!   finishes at the next advance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edu_devices::edu::{EduClock, EduConfig, EduDevice, EduError, RejectedRead};
use edu_pci::{InterruptError, InterruptSink, IntxPin, MsiMessage};
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap};

use crate::exec::{Target, TargetError};
use crate::script::{BAR0_LEN, BUF_LEN};

/// Guest address of the DMA buffer.
pub const BUF_GPA: u64 = 0x0010_0000;
/// Size of the model's guest memory (from guest address 0).
pub const MEM_SIZE: usize = 0x0020_0000;
/// Address firmware gives BAR0 (what SeaBIOS chose in the reference run;
/// only ever shown masked).
pub const BAR0_ADDRESS: u32 = 0xfea0_0000;
/// Command register before the script: memory decoding and bus master.
pub const COMMAND: u16 = 0x0006;

/// Errors creating the model target.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The guest memory could not be created.
    #[error("guest memory: {0}")]
    Memory(#[from] vm_memory::mmap::FromRangesError),
    /// The device could not be created.
    #[error(transparent)]
    Device(#[from] EduError),
}

/// Delivers MSIs as the memory writes they are; INTx is only counted (the
/// device shows its INTx state in configuration space itself).
#[derive(Debug)]
pub struct MemoryInterrupts {
    mem: GuestMemoryMmap,
    msi_to_ram: AtomicU64,
    msi_elsewhere: AtomicU64,
    intx_asserts: AtomicU64,
}

impl MemoryInterrupts {
    fn new(mem: GuestMemoryMmap) -> Self {
        MemoryInterrupts {
            mem,
            msi_to_ram: AtomicU64::new(0),
            msi_elsewhere: AtomicU64::new(0),
            intx_asserts: AtomicU64::new(0),
        }
    }

    /// MSIs written into guest RAM.
    pub fn msi_to_ram(&self) -> u64 {
        self.msi_to_ram.load(Ordering::Relaxed)
    }

    /// MSIs to addresses outside guest RAM (an interrupt controller).
    pub fn msi_elsewhere(&self) -> u64 {
        self.msi_elsewhere.load(Ordering::Relaxed)
    }

    /// INTx assertions.
    pub fn intx_asserts(&self) -> u64 {
        self.intx_asserts.load(Ordering::Relaxed)
    }
}

impl InterruptSink for MemoryInterrupts {
    fn assert_intx(&self, _pin: IntxPin) -> Result<(), InterruptError> {
        self.intx_asserts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn deassert_intx(&self, _pin: IntxPin) -> Result<(), InterruptError> {
        Ok(())
    }

    fn send_msi(&self, msg: MsiMessage) -> Result<(), InterruptError> {
        let addr = GuestAddress(msg.address);
        if self.mem.check_range(addr, 4, vm_memory::Permissions::Write) {
            self.mem
                .write_slice(&msg.data.to_le_bytes(), addr)
                .map_err(|e| InterruptError::Delivery(std::io::Error::other(e.to_string())))?;
            self.msi_to_ram.fetch_add(1, Ordering::Relaxed);
        } else {
            self.msi_elsewhere.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// One fresh edu model with its guest memory, as a script target.
pub struct ModelTarget {
    dev: EduDevice<GuestMemoryMmap>,
    mem: GuestMemoryMmap,
    irq: Arc<MemoryInterrupts>,
}

impl ModelTarget {
    /// A device as QEMU's edu is when a script starts in the reference run.
    pub fn new() -> Result<ModelTarget, ModelError> {
        let config = EduConfig {
            clock: EduClock::Manual,
            // Observed on QEMU 7.2: reads its memory core refuses give 0.
            rejected_read: RejectedRead::Zero,
            ..EduConfig::default()
        };
        Self::with_config(config)
    }

    /// Like [`ModelTarget::new`] with another device configuration.
    pub fn with_config(config: EduConfig) -> Result<ModelTarget, ModelError> {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)])?;
        let irq = Arc::new(MemoryInterrupts::new(mem.clone()));
        let dev = EduDevice::new(config, mem.clone(), irq.clone())?;
        dev.config_write(0x10, &BAR0_ADDRESS.to_le_bytes());
        dev.config_write(0x04, &COMMAND.to_le_bytes());
        Ok(ModelTarget { dev, mem, irq })
    }

    /// The device.
    pub fn device(&self) -> &EduDevice<GuestMemoryMmap> {
        &self.dev
    }

    /// The interrupt sink (MSI and INTx counters).
    pub fn interrupts(&self) -> &MemoryInterrupts {
        &self.irq
    }

    fn aligned_read(&self, offset: u64, size: u8) -> Result<u64, TargetError> {
        check_bar0(offset, size)?;
        let mut b = [0u8; 8];
        self.dev.read(offset, &mut b[..usize::from(size)]);
        Ok(u64::from_le_bytes(b))
    }
}

fn check_bar0(offset: u64, size: u8) -> Result<(), TargetError> {
    if offset
        .checked_add(u64::from(size))
        .is_none_or(|end| end > BAR0_LEN)
    {
        return Err(TargetError::Unsupported(format!(
            "bar0 access {offset:#x}+{size} reaches past BAR0"
        )));
    }
    Ok(())
}

fn buf_gpa(offset: usize, len: usize) -> Result<GuestAddress, TargetError> {
    if offset.checked_add(len).is_none_or(|end| end > BUF_LEN) {
        return Err(TargetError::Unsupported(format!(
            "buffer range {offset:#x}+{len} outside the buffer"
        )));
    }
    Ok(GuestAddress(BUF_GPA + offset as u64))
}

fn mem_err(e: vm_memory::GuestMemoryError) -> TargetError {
    TargetError::Io {
        what: "guest memory".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl Target for ModelTarget {
    fn bar0_read(&mut self, offset: u64, size: u8) -> Result<u64, TargetError> {
        let shift = offset % u64::from(size);
        if shift == 0 {
            return self.aligned_read(offset, size);
        }
        // TCG: two aligned loads of the same size, recombined.
        let first = offset - shift;
        let lo = self.aligned_read(first, size)?;
        let hi = self.aligned_read(first + u64::from(size), size)?;
        let bits = 8 * shift as u32;
        let width = 8 * u32::from(size);
        let v = (lo >> bits) | (hi << (width - bits));
        Ok(v & crate::exec::size_mask(size))
    }

    fn bar0_write(&mut self, offset: u64, size: u8, value: u64) -> Result<(), TargetError> {
        check_bar0(offset, size)?;
        let bytes = value.to_le_bytes();
        let bytes = &bytes[..usize::from(size)];
        if offset % u64::from(size) == 0 {
            self.dev.write(offset, bytes);
        } else {
            // TCG: one byte store per byte.
            for (i, b) in (0u64..).zip(bytes) {
                self.dev.write(offset + i, std::slice::from_ref(b));
            }
        }
        Ok(())
    }

    fn config_read(&mut self, offset: u64, size: u8) -> Result<u64, TargetError> {
        let mut b = [0u8; 8];
        self.dev
            .config_read(offset as usize, &mut b[..usize::from(size)]);
        Ok(u64::from_le_bytes(b))
    }

    fn config_write(&mut self, offset: u64, size: u8, value: u64) -> Result<(), TargetError> {
        self.dev
            .config_write(offset as usize, &value.to_le_bytes()[..usize::from(size)]);
        Ok(())
    }

    fn buf_addr(&self) -> u64 {
        BUF_GPA
    }

    fn buf_read(&mut self, offset: usize, out: &mut [u8]) -> Result<(), TargetError> {
        let addr = buf_gpa(offset, out.len())?;
        self.mem.read_slice(out, addr).map_err(mem_err)
    }

    fn buf_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TargetError> {
        let addr = buf_gpa(offset, data.len())?;
        self.mem.write_slice(data, addr).map_err(mem_err)
    }

    fn sleep_ms(&mut self, ms: u64) {
        self.dev.advance(Duration::from_millis(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{self, Entry};
    use crate::exec;

    fn run_text(text: &str) -> Vec<String> {
        let script = crate::script::Script::parse(text).unwrap();
        exec::run(&script, &mut ModelTarget::new().unwrap()).unwrap()
    }

    #[test]
    fn starts_like_the_reference_device() {
        let out = run_text("read bar0 4 0\nread cfg 2 4\nread cfg 4 0x10\n");
        assert_eq!(
            out,
            [
                "read bar0 4 0x000 = 0x010000ed",
                "read cfg 2 0x004 = 0x0006",
                "read cfg 4 0x010 = 0xfea00000",
            ]
        );
    }

    #[test]
    fn unaligned_loads_are_split_like_tcg() {
        // id 0x010000ed at 0x00, liveness at 0x04 reads back ~0x01020304.
        let out = run_text(
            "write bar0 4 4 0x01020304\nread bar0 4 1\nread bar0 4 3\nread bar0 2 1\n\
             write bar0 8 0x80 0x1122334455667788\nread bar0 4 0x82\n",
        );
        assert_eq!(
            out,
            [
                "read bar0 4 0x001 = 0xfb010000",
                "read bar0 4 0x003 = 0xfdfcfb01",
                // Both halves are 2-byte loads, which edu never answers.
                "read bar0 2 0x001 = 0x0000",
                // The upper bytes of 0x80's low half, then 0x84 (all ones).
                "read bar0 4 0x082 = 0xffff5566",
            ]
        );
    }

    #[test]
    fn unaligned_stores_become_ignored_byte_stores() {
        let out =
            run_text("write bar0 4 0x05 0\nwrite bar0 8 0x84 5\nread bar0 4 4\nread bar0 8 0x80\n");
        assert_eq!(
            out,
            [
                "read bar0 4 0x004 = 0x00000000",
                "read bar0 8 0x080 = 0x0000000000000000"
            ]
        );
    }

    #[test]
    fn msi_lands_in_guest_memory() {
        let mut t = ModelTarget::new().unwrap();
        let script = crate::script::Script::parse(
            "write cfg 4 0x44 $buf+0x10\nwrite cfg 2 0x4c 0xbeef\nwrite cfg 2 0x42 1\n\
             write bar0 4 0x60 1\nbuf dump 0x10 4\n",
        )
        .unwrap();
        let out = exec::run(&script, &mut t).unwrap();
        assert_eq!(out, ["buf 0x0010: ef be 00 00"]);
        assert_eq!(t.interrupts().msi_to_ram(), 1);
        t.irq
            .send_msi(MsiMessage {
                address: 0xfee0_0000,
                data: 0x41,
            })
            .unwrap();
        assert_eq!(t.interrupts().msi_elsewhere(), 1);
    }

    #[test]
    fn dma_takes_100ms_of_polling() {
        let mut t = ModelTarget::new().unwrap();
        let script = crate::script::Script::parse(
            "buf pattern 0 4096 1\nwrite bar0 8 0x80 $buf\nwrite bar0 8 0x88 0x40000\n\
             write bar0 8 0x90 4\nwrite bar0 8 0x98 1\nsleep 99\nread bar0 8 0x98\n\
             sleep 1\nread bar0 8 0x98\n",
        )
        .unwrap();
        let out = exec::run(&script, &mut t).unwrap();
        assert_eq!(
            out,
            [
                "read bar0 8 0x098 = 0x0000000000000001",
                "read bar0 8 0x098 = 0x0000000000000000"
            ]
        );
        let mut b = [0u8; 4];
        t.device().read_dma_buffer(0, &mut b);
        assert_eq!(b, [1, 8, 15, 22]);
        // The parser keeps scripts inside BAR0; the target checks anyway.
        assert!(t.bar0_read(0xffffe, 4).is_err());
        assert!(t.bar0_write(0x100000, 1, 0).is_err());
    }

    /// What a corpus script does against the model, compared with its
    /// expected transcript.
    fn check(entry: &Entry) -> Result<(), String> {
        let config = EduConfig {
            clock: EduClock::Manual,
            rejected_read: RejectedRead::Zero,
            ..EduConfig::default()
        };
        check_with(entry, config)
    }

    fn check_with(entry: &Entry, config: EduConfig) -> Result<(), String> {
        let expected_path = entry.expected_path();
        let expected = corpus::read_transcript(&expected_path).map_err(|e| e.to_string())?;
        let mut t = ModelTarget::with_config(config).map_err(|e| e.to_string())?;
        let got = exec::run_with_origins(&entry.script, &mut t).map_err(|e| e.to_string())?;
        match corpus::compare(&expected, &got) {
            None => Ok(()),
            Some(m) => Err(format!(
                "{}: model differs from {}: {m}",
                entry.path.display(),
                expected_path.display()
            )),
        }
    }

    /// The worker-thread clock, with a DMA delay long enough (250 ms) that
    /// a loaded machine cannot finish a transfer between two accesses a
    /// script makes back to back; the transcripts do not depend on it.
    fn thread_clock() -> EduConfig {
        EduConfig {
            clock: EduClock::Thread,
            rejected_read: RejectedRead::Zero,
            dma_delay: Duration::from_millis(250),
            ..EduConfig::default()
        }
    }

    /// The device as the VMM runs it (worker thread, real time)
    /// against every script whose result does not depend on how long the
    /// asynchronous work takes. One thread per script keeps it short.
    #[test]
    fn threaded_model_reproduces_the_timing_independent_scripts() {
        let entries = corpus::load_dir(&corpus::builtin_dir()).unwrap();
        let runs: Vec<_> = entries
            .into_iter()
            .filter(|e| e.script.timing_sensitive.is_none())
            .map(|e| std::thread::spawn(move || (check_with(&e, thread_clock()), e)))
            .collect();
        assert!(runs.len() >= 20, "only {} scripts", runs.len());
        let failures: Vec<String> = runs
            .into_iter()
            .filter_map(|h| {
                let (result, e) = h.join().unwrap();
                match (&e.script.known_mismatch, result) {
                    (None, Ok(())) | (Some(_), Err(_)) => None,
                    (None, Err(msg)) => Some(msg),
                    (Some(_), Ok(())) => Some(format!("{}: matches now", e.path.display())),
                }
            })
            .collect();
        assert!(
            failures.is_empty(),
            "thread clock:\n\n{}",
            failures.join("\n\n")
        );
    }

    /// Runner B: every script of the corpus against the model. Scripts with
    /// a `# known-model-mismatch:` header must still differ (so the marker
    /// is removed once the model is fixed); all others must match.
    #[test]
    fn model_reproduces_every_golden_file() {
        let entries = corpus::load_dir(&corpus::builtin_dir()).unwrap();
        assert!(
            entries.len() >= 20,
            "corpus has only {} scripts",
            entries.len()
        );
        let mut failures = Vec::new();
        let mut known = 0;
        for e in &entries {
            let result = check(e);
            match (&e.script.known_mismatch, result) {
                (None, Ok(())) => {}
                (None, Err(msg)) => failures.push(msg),
                (Some(_), Err(_)) => known += 1,
                (Some(why), Ok(())) => failures.push(format!(
                    "{}: marked known-model-mismatch ({why}) but the model now matches: \
                     remove the marker",
                    e.path.display()
                )),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} scripts fail against the model ({known} known mismatches):\n\n{}",
            failures.len(),
            entries.len(),
            failures.join("\n\n")
        );
    }

    #[test]
    fn every_script_has_exactly_its_kind_of_expected_file() {
        for e in corpus::load_dir(&corpus::builtin_dir()).unwrap() {
            let golden = e.path.with_extension(corpus::GOLDEN_EXT);
            let hand = e.path.with_extension(corpus::EXPECTED_EXT);
            let (want, other) = if e.script.model_only.is_some() {
                (hand, golden)
            } else {
                (golden, hand)
            };
            assert!(want.exists(), "{} is missing", want.display());
            assert!(!other.exists(), "{} must not exist", other.display());
        }
    }
}
