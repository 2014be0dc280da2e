//! PCI for edu-vmm, without KVM.
//!
//! This crate models what a guest sees of conventional PCI on a single root
//! bus, the way QEMU's PCI core presents it:
//!
//! - [`config`]: a type-0 configuration space with per-byte writable and
//!   write-1-to-clear masks (so BAR sizing by writing all ones falls out),
//!   BAR registration and a capability list;
//! - [`msi`]: the MSI capability (64-bit address, one vector, no per-vector
//!   masking, as QEMU's `msi_init` builds it for edu);
//! - [`interrupt`]: the [`InterruptSink`] trait through which a device
//!   asserts or deasserts its INTx pin or sends an MSI message, plus
//!   [`RecordingInterrupts`] and [`FailingInterrupts`] for tests;
//! - [`device`]: the [`BusDevice`] ("read/write at an offset") and
//!   [`PciDevice`] (configuration space, BARs, interrupt pin) traits;
//! - [`bus`]: [`PciBus`] with a host bridge at 00:00.0, devices in further
//!   slots, configuration mechanism #1 at ports 0xCF8/0xCFC and MMIO
//!   dispatch to programmed memory BARs;
//! - [`host_bridge`]: the host bridge itself.
//!
//! Every method that a guest can reach takes `&self`, never panics and
//! answers all ones where nothing decodes the access.

pub mod bar;
pub mod bus;
pub mod config;
pub mod device;
pub mod host_bridge;
pub mod interrupt;
pub mod msi;

pub use bar::{BarKind, BarRange, BarSpec};
pub use bus::{PciAddress, PciBus, PciBusError, PciConfigIo};
pub use config::{ConfigError, ConfigSpace, Type0Header};
pub use device::{BusDevice, PciDevice};
pub use host_bridge::HostBridge;
pub use interrupt::{
    FailingInterrupts, InterruptError, InterruptEvent, InterruptSink, IntxPin, MsiMessage,
    RecordingInterrupts,
};
pub use msi::{MsiCapability, MsiError};
