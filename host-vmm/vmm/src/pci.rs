//! The PCI side of the VM: edu-pci's bus (host bridge at 00:00.0, the
//! 0xCF8/0xCFC configuration ports, BAR dispatch) with one edu-devices edu
//! per slot from 00:01.0, and the KVM implementation of the devices'
//! interrupt trait.
//!
//! INTx: a slot's INTA is the IOAPIC pin the MP table names
//! ([`mptable::pci_slot_gsi`]), driven the way QEMU drives it under KVM:
//! an irqfd with a resample eventfd. Asserting writes the irqfd, which
//! raises the line; the line stays up until the guest's EOI, when KVM
//! lowers it and signals the resample eventfd; a small thread then raises
//! it again if the device still asserts (edu: status non-zero). So the guest
//! sees level semantics, and an interrupt acked before the EOI is not
//! delivered again.
//!
//! The emulating KVM on our development machines (`kvm_pvm`) performs the
//! IOAPIC's end-of-interrupt for a level interrupt as soon as it is
//! delivered, before the guest's handler has acked the device (measured: a
//! guest that never writes the local APIC's EOI register still receives
//! every later interrupt, and the resample eventfd fires while the handler
//! runs). Re-raising at once would deliver every INTx twice there, and plain
//! `KVM_IRQ_LINE` 1/0 did exactly that. So after a resample the thread
//! waits up to [`INTX_REASSERT_GRACE`] for the device to deassert before it
//! raises the line again. On a hardware KVM the resample comes after the
//! handler's ack, the device no longer asserts, and nothing waits; only a
//! guest that leaves status bits set sees its repeated interrupt that much
//! later. MSI: the message the guest programmed goes to `KVM_SIGNAL_MSI`
//! as is.
//!
//! Like firmware, the VMM places each edu's BAR0 in the PCI window and
//! writes the slot's GSI into the Interrupt Line register; the guest may
//! move the BAR, and the bus follows. The BARs come from a vm-allocator
//! [`AddressAllocator`] over the window (first match, naturally aligned), so
//! they land 1 MiB apart from the window's start. The GSIs are not
//! allocated: they are the board's wiring, fixed per slot by the MP table.

use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use edu_devices::{EduConfig, EduDevice, EduStats, WorkerSetupError};
use edu_pci::{InterruptError, InterruptSink, IntxPin, MsiMessage, PciAddress, PciBus};
use kvm_bindings::kvm_msi;
use kvm_ioctls::VmFd;
use vm_allocator::{AddressAllocator, AllocPolicy};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::bus::PciAccess;
use crate::config::Config;
use crate::legacy::lock;
use crate::memory::{PCI_MMIO_END, PCI_MMIO_START};
use crate::mptable;
use crate::seccomp::{self, Policy, Thread};
use crate::trace::{IrqTrace, Tracing};

/// First configuration port (CONFIG_ADDRESS).
const CONFIG_PORT: u16 = 0xcf8;
/// Ports decoded for configuration mechanism #1 (0xcf8..=0xcff).
const CONFIG_PORT_LEN: u16 = 8;
/// Size of edu's BAR0.
const EDU_BAR_SIZE: u64 = 1 << 20;
/// How long after an early EOI the resample thread waits for the device to
/// deassert before raising INTx again (see the module documentation).
pub const INTX_REASSERT_GRACE: Duration = Duration::from_millis(10);
/// Offset of BAR0 in configuration space.
const PCI_BAR0: usize = 0x10;
/// Offset of the Interrupt Line register.
const PCI_INTERRUPT_LINE: usize = 0x3c;

/// Errors creating the PCI devices.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An edu device could not be created.
    #[error("creating edu device {0}: {1}")]
    Edu(u8, #[source] edu_devices::EduError),
    /// The bus had no room.
    #[error("adding edu device {0} to the PCI bus: {1}")]
    Bus(u8, #[source] edu_pci::PciBusError),
    /// An eventfd could not be created.
    #[error("creating an eventfd for INTx: {0}")]
    EventFd(#[source] std::io::Error),
    /// The irqfd could not be registered.
    #[error("registering the INTx irqfd for GSI {0}: {1}")]
    Irqfd(u32, #[source] kvm_ioctls::Error),
    /// The resample thread could not be started with its filter.
    #[error("starting the INTx resample thread: {0}")]
    Thread(#[source] seccomp::Error),
    /// The BARs do not fit in the PCI window.
    #[error("{0} edu BARs of 1 MiB do not fit in the PCI MMIO window: {1}")]
    Window(u8, #[source] vm_allocator::Error),
}

/// Interrupt delivery of one PCI slot through KVM.
pub struct KvmInterrupts {
    vm: Arc<VmFd>,
    gsi: u32,
    irqfd: EventFd,
    /// Whether the device asserts INTx (re-raised after each EOI while set).
    level: Mutex<bool>,
    /// Signalled when `level` drops.
    lowered: Condvar,
    trace: bool,
    /// The I/O trace's record of what is sent (`--trace`).
    events: Option<IrqTrace>,
    /// The resample eventfd (a second handle), to wake the resample thread
    /// when this goes, and that thread.
    resample: EventFd,
    resample_thread: Mutex<Option<JoinHandle<Option<()>>>>,
}

impl KvmInterrupts {
    /// Delivery for a device whose INTA is wired to `gsi`; registers the
    /// irqfd and starts the resample thread (with its seccomp filter).
    /// `events` records what is sent.
    pub fn new(
        vm: Arc<VmFd>,
        gsi: u32,
        trace: bool,
        events: Option<IrqTrace>,
        seccomp: Policy,
    ) -> Result<Arc<Self>, Error> {
        let irqfd = EventFd::new(libc::EFD_NONBLOCK).map_err(Error::EventFd)?;
        let resample = EventFd::new(0).map_err(Error::EventFd)?;
        vm.register_irqfd_with_resample(&irqfd, &resample, gsi)
            .map_err(|e| Error::Irqfd(gsi, e))?;
        let wake = resample.try_clone().map_err(Error::EventFd)?;
        let me = Arc::new(KvmInterrupts {
            vm,
            gsi,
            irqfd,
            level: Mutex::new(false),
            lowered: Condvar::new(),
            trace,
            events,
            resample: wake,
            resample_thread: Mutex::new(None),
        });
        let weak = Arc::downgrade(&me);
        let thread = Thread::IntxResample {
            resample_fd: resample.as_raw_fd(),
        };
        let (handle, _) = seccomp::spawn(seccomp, format!("intx-gsi{gsi}"), thread, move || {
            // Each read returns after an EOI of this GSI lowered the line,
            // or when the KvmInterrupts goes (see Drop).
            while resample.read().is_ok() {
                match weak.upgrade() {
                    Some(me) => me.resample(),
                    None => break,
                }
            }
        })
        .map_err(Error::Thread)?;
        *lock(&me.resample_thread) = Some(handle);
        Ok(me)
    }

    /// KVM lowered the line at an EOI: raise it again if the device still
    /// asserts once the grace period is over.
    fn resample(&self) {
        let level = lock(&self.level);
        let (level, _) = self
            .lowered
            .wait_timeout_while(level, INTX_REASSERT_GRACE, |l| *l)
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = &self.events {
            t.resample(self.gsi, *level);
        }
        if *level {
            if self.trace {
                log::info!(
                    "intx gsi {} still asserted after EOI: raised again",
                    self.gsi
                );
            }
            let _ = self.irqfd.write(1);
        }
    }

    fn io_err(e: std::io::Error) -> InterruptError {
        InterruptError::Delivery(e)
    }
}

impl Drop for KvmInterrupts {
    /// Ends the resample thread: it wakes, finds this gone, and returns.
    /// It is joined unless it is the thread dropping this (its upgrade
    /// held the last reference).
    fn drop(&mut self) {
        let _ = self.resample.write(1);
        let thread = self
            .resample_thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// The `kvm_msi` for a message.
pub fn kvm_msi_from(msg: MsiMessage) -> kvm_msi {
    kvm_msi {
        address_lo: msg.address as u32,
        address_hi: (msg.address >> 32) as u32,
        data: msg.data,
        ..Default::default()
    }
}

impl InterruptSink for KvmInterrupts {
    fn assert_intx(&self, _pin: IntxPin) -> Result<(), InterruptError> {
        if self.trace {
            log::info!("intx gsi {} assert", self.gsi);
        }
        *lock(&self.level) = true;
        if let Some(t) = &self.events {
            t.intx(self.gsi, true);
        }
        self.irqfd.write(1).map_err(Self::io_err)
    }

    fn deassert_intx(&self, _pin: IntxPin) -> Result<(), InterruptError> {
        if self.trace {
            log::info!(
                "intx gsi {} deassert (line drops at the guest's EOI)",
                self.gsi
            );
        }
        *lock(&self.level) = false;
        self.lowered.notify_all();
        if let Some(t) = &self.events {
            t.intx(self.gsi, false);
        }
        Ok(())
    }

    fn send_msi(&self, msg: MsiMessage) -> Result<(), InterruptError> {
        if self.trace {
            log::info!("msi address {:#x} data {:#x}", msg.address, msg.data);
        }
        if let Some(t) = &self.events {
            t.msi(msg.address, msg.data);
        }
        self.vm
            .signal_msi(kvm_msi_from(msg))
            .map(|_| ())
            .map_err(|e| InterruptError::Delivery(std::io::Error::from_raw_os_error(e.errno())))
    }
}

/// Routes the configuration ports and BAR accesses to the bus.
struct BusAccess(Arc<PciBus>);

impl PciAccess for BusAccess {
    fn config_read(&self, port: u16, data: &mut [u8]) -> bool {
        match port
            .checked_sub(CONFIG_PORT)
            .filter(|o| *o < CONFIG_PORT_LEN)
        {
            Some(off) => {
                self.0.config_io_read(off.into(), data);
                true
            }
            None => false,
        }
    }

    fn config_write(&self, port: u16, data: &[u8]) -> bool {
        match port
            .checked_sub(CONFIG_PORT)
            .filter(|o| *o < CONFIG_PORT_LEN)
        {
            Some(off) => {
                self.0.config_io_write(off.into(), data);
                true
            }
            None => false,
        }
    }

    fn mmio_read(&self, addr: u64, data: &mut [u8]) -> bool {
        self.0.mmio_read(addr, data)
    }

    fn mmio_write(&self, addr: u64, data: &[u8]) -> bool {
        self.0.mmio_write(addr, data)
    }
}

/// Addresses for `count` edu BAR0s in `window`: each `EDU_BAR_SIZE` long
/// and aligned to its size (a memory BAR must be naturally aligned), the
/// first free place from the window's start.
fn place_bars(window: Range<u64>, count: u8) -> Result<Vec<u64>, Error> {
    let window_err = |e| Error::Window(count, e);
    let mut alloc =
        AddressAllocator::new(window.start, window.end - window.start).map_err(window_err)?;
    (0..count)
        .map(|_| {
            alloc
                .allocate(EDU_BAR_SIZE, EDU_BAR_SIZE, AllocPolicy::FirstMatch)
                .map(|r| r.start())
                .map_err(window_err)
        })
        .collect()
}

/// The PCI bus and its edu devices.
pub struct PciDevices {
    bus: Arc<PciBus>,
    edus: Vec<(u8, Arc<EduDevice<GuestMemoryMmap>>)>,
}

impl PciDevices {
    /// Creates `c.edu_devices` edu devices in slots 1.. with their BARs
    /// placed; their threads install their seccomp filters per `seccomp`,
    /// and `tracing` records what they do and send.
    pub fn new(
        vm: Arc<VmFd>,
        mem: &GuestMemoryMmap,
        c: &Config,
        seccomp: Policy,
        tracing: &Tracing,
    ) -> Result<Self, Error> {
        let edu_config = EduConfig {
            dma_delay: Duration::from_millis(c.edu_dma_delay_ms),
            dma_mask: c.edu_dma_mask,
            ..EduConfig::default()
        };
        let pci = Self::with_interrupts(mem, c.edu_devices, edu_config, seccomp, |slot| {
            // Not allocated: INTA of a slot is wired to a fixed IOAPIC pin,
            // which the MP table describes (see mptable::pci_slot_gsi).
            let gsi = mptable::pci_slot_gsi(slot);
            let events = tracing.irq(slot - 1);
            let irq: Arc<dyn InterruptSink> =
                KvmInterrupts::new(vm.clone(), gsi, c.trace_devices, events, seccomp)?;
            Ok(irq)
        })?;
        pci.observe(tracing);
        Ok(pci)
    }

    /// Sends what each edu does to `tracing` (when it traces).
    pub fn observe(&self, tracing: &Tracing) {
        for (i, (_, edu)) in self.devices().enumerate() {
            if let Some(o) = tracing.edu(i as u8) {
                edu.set_observer(o);
            }
        }
    }

    /// [`PciDevices::new`] with the interrupt delivery of each slot from
    /// `irq` instead of KVM, so tests and the fuzz targets can build the
    /// VMM's PCI side (same slots, BARs and Interrupt Line) without a VM.
    pub fn with_interrupts(
        mem: &GuestMemoryMmap,
        count: u8,
        edu_config: EduConfig,
        seccomp: Policy,
        mut irq: impl FnMut(u8) -> Result<Arc<dyn InterruptSink>, Error>,
    ) -> Result<Self, Error> {
        let bars = place_bars(PCI_MMIO_START..PCI_MMIO_END, count)?;
        let mut bus = PciBus::new();
        let mut edus = Vec::new();
        for i in 0..count {
            let slot = i + 1;
            let irq = irq(slot)?;
            let worker_filter = move || {
                seccomp
                    .install(Thread::EduWorker)
                    .map_err(WorkerSetupError::from)
            };
            let edu = Arc::new(
                EduDevice::with_worker_setup(edu_config, mem.clone(), irq, worker_filter)
                    .map_err(|e| Error::Edu(i, e))?,
            );
            bus.add_device_at(slot, edu.clone())
                .map_err(|e| Error::Bus(i, e))?;
            edus.push((slot, edu));
        }
        let bus = Arc::new(bus);
        for ((slot, _), &bar) in edus.iter().zip(&bars) {
            let addr = PciAddress::new(0, *slot, 0);
            bus.config_write(addr, PCI_BAR0, &(bar as u32).to_le_bytes());
            bus.config_write(
                addr,
                PCI_INTERRUPT_LINE,
                &[mptable::pci_slot_gsi(*slot) as u8],
            );
            log::info!(
                "pci: edu at {addr} (1234:11e8), BAR0 {bar:#x}, INTA -> GSI {}",
                mptable::pci_slot_gsi(*slot)
            );
        }
        Ok(PciDevices { bus, edus })
    }

    /// Slots holding devices (for the MP table's interrupt entries).
    pub fn slots(&self) -> Vec<u8> {
        self.edus.iter().map(|(s, _)| *s).collect()
    }

    /// The bus as the VMM's port/MMIO router sees it.
    pub fn access(&self) -> Arc<dyn PciAccess> {
        Arc::new(BusAccess(self.bus.clone()))
    }

    /// (slot, BAR0 address) of each edu, in edu order, as the guest left
    /// them.
    pub fn bars(&self) -> Vec<(u8, u64)> {
        self.edus
            .iter()
            .map(|(slot, _)| {
                let mut b = [0u8; 4];
                self.bus
                    .config_read(PciAddress::new(0, *slot, 0), PCI_BAR0, &mut b);
                (*slot, u64::from(u32::from_le_bytes(b) & !0xf))
            })
            .collect()
    }

    /// Per-device counters, for the exit report.
    pub fn stats(&self) -> Vec<(u8, EduStats)> {
        self.devices().map(|(s, e)| (s, e.stats())).collect()
    }

    /// Each slot and its edu (tests and fuzz targets move a manual clock
    /// and look at the device directly).
    pub fn devices(&self) -> impl Iterator<Item = (u8, &EduDevice<GuestMemoryMmap>)> {
        self.edus.iter().map(|(s, e)| (*s, e.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msi_message_splits_address() {
        let m = kvm_msi_from(MsiMessage {
            address: 0x1_fee0_1000,
            data: 0x4041,
        });
        assert_eq!(
            (m.address_lo, m.address_hi, m.data),
            (0xfee0_1000, 1, 0x4041)
        );
    }

    #[test]
    fn config_ports_reach_the_bus() {
        let a = BusAccess(Arc::new(PciBus::new()));
        let mut d = [0u8; 4];
        assert!(!a.config_read(0xcf7, &mut d));
        assert!(!a.config_read(0xd00, &mut d));
        // Host bridge vendor/device through CONFIG_ADDRESS/CONFIG_DATA.
        assert!(a.config_write(0xcf8, &0x8000_0000u32.to_le_bytes()));
        assert!(a.config_read(0xcfc, &mut d));
        assert_ne!(u32::from_le_bytes(d), 0xffff_ffff);
        // Absent slot reads all ones.
        assert!(a.config_write(0xcf8, &0x8000_f800u32.to_le_bytes()));
        assert!(a.config_read(0xcfc, &mut d));
        assert_eq!(u32::from_le_bytes(d), 0xffff_ffff);
    }

    #[test]
    fn bars_are_allocated_1_mib_apart_from_the_window_start() {
        let window = PCI_MMIO_START..PCI_MMIO_END;
        assert_eq!(place_bars(window.clone(), 1).unwrap(), [0xc000_0000]);
        assert_eq!(
            place_bars(window.clone(), 2).unwrap(),
            [0xc000_0000, 0xc010_0000]
        );
        let eight: Vec<u64> = (0..8).map(|i| 0xc000_0000 + i * 0x10_0000).collect();
        assert_eq!(place_bars(window, 8).unwrap(), eight);
    }

    #[test]
    fn devices_without_kvm_get_the_vmm_bars() {
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(vm_memory::GuestAddress(0), 1 << 16)]).unwrap();
        let pci = PciDevices::with_interrupts(&mem, 2, EduConfig::manual(), Policy::Off, |_| {
            Ok(Arc::new(edu_pci::RecordingInterrupts::new()))
        })
        .unwrap();
        assert_eq!(pci.slots(), [1, 2]);
        let a = pci.access();
        // 00:02.0 BAR0 and Interrupt Line as firmware would leave them.
        assert!(a.config_write(0xcf8, &0x8000_1010u32.to_le_bytes()));
        let mut d = [0u8; 4];
        assert!(a.config_read(0xcfc, &mut d));
        assert_eq!(u32::from_le_bytes(d), 0xc010_0000);
        assert!(a.config_write(0xcf8, &0x8000_103cu32.to_le_bytes()));
        assert!(a.config_read(0xcfc, &mut d[..1]));
        assert_eq!(u32::from(d[0]), mptable::pci_slot_gsi(2));
        // edu's identification register through the BAR, once the guest
        // enables memory decoding (Command register bit 1).
        assert!(!a.mmio_read(0xc010_0000, &mut d));
        assert!(a.config_write(0xcf8, &0x8000_1004u32.to_le_bytes()));
        assert!(a.config_write(0xcfc, &[0x02]));
        assert!(a.mmio_read(0xc010_0000, &mut d));
        assert_eq!(u32::from_le_bytes(d), 0x0100_00ed);
    }

    #[test]
    fn too_many_bars_for_the_window_is_an_error() {
        // Every u8 count fits the real window (1004 MiB); a 4 MiB one holds 4.
        let window = PCI_MMIO_START..PCI_MMIO_START + 4 * EDU_BAR_SIZE;
        assert_eq!(place_bars(window.clone(), 4).unwrap().len(), 4);
        let e = place_bars(window, 5).unwrap_err();
        assert!(matches!(e, Error::Window(5, _)), "{e:?}");
        assert!(e.to_string().starts_with("5 edu BARs"), "{e}");
    }
}
