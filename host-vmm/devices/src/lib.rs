//! Device models for edu-vmm, without KVM.
//!
//! [`edu::EduDevice`] is QEMU's educational PCI device (`-device edu`),
//! reproduced register for register: identification, liveness, an
//! asynchronous factorial, interrupt raise/acknowledge over INTx or MSI, and
//! a 4 KiB DMA buffer with transfers to and from guest memory through
//! `vm-memory`. It implements [`edu_pci::PciDevice`] (configuration space,
//! BAR0, INTA) and [`edu_pci::BusDevice`] (BAR0 reads and writes at an
//! offset), and delivers interrupts through an [`edu_pci::InterruptSink`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use edu_devices::edu::{regs, EduConfig, EduDevice};
//! use edu_pci::RecordingInterrupts;
//! use vm_memory::{GuestAddress, GuestMemoryMmap};
//!
//! let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
//! let irq = Arc::new(RecordingInterrupts::new());
//! let edu = EduDevice::new(EduConfig::manual(), mem, irq).unwrap();
//! assert_eq!(edu.read_u32(regs::REG_ID), 0x010000ed);
//! edu.write_u32(regs::REG_FACTORIAL, 10);
//! assert_eq!(edu.read_u32(regs::REG_STATUS) & regs::STATUS_COMPUTING, 1);
//! assert!(edu.wait_idle(Duration::from_secs(1)));
//! assert_eq!(edu.read_u32(regs::REG_FACTORIAL), 3_628_800);
//! ```

pub mod edu;
pub mod guest_log;

pub use edu::{
    DmaOutcome, EduClock, EduConfig, EduDevice, EduError, EduEvent, EduObserver, EduStats,
    RejectedRead, WorkerSetupError,
};
