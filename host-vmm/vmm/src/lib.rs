//! edu-vmm: a KVM virtual machine monitor that boots Linux with emulated
//! edu PCI devices.
//!
//! Boot order, one module per step (see `docs/vmm.md`):
//! [`config`] (command line) -> [`host_kvm`] (open and classify KVM) ->
//! [`memory`] (guest RAM and address map) -> [`boot`] (kernel, initramfs,
//! command line, zero page or PVH start_info) -> [`cpu`] (GDT, page tables,
//! CPUID, MSRs, registers) -> [`prefault`] (boot image mapped in KVM) ->
//! [`legacy`], [`pm`] and [`bus`] (devices) ->
//! [`mptable`] and [`acpi`] (CPUs, IOAPIC, interrupt routing, power off) ->
//! [`vcpu`] (run loop, with [`exit`] deciding what each exit leads to) ->
//! [`seccomp`]; [`vmm`] ties them together. [`trace`] is the I/O trace and
//! the exit statistics, fed by [`exit`].

pub mod acpi;
pub mod boot;
pub mod bus;
pub mod cmos;
pub mod config;
pub mod cpu;
pub mod exit;
pub mod host_kvm;
pub mod legacy;
pub mod logger;
pub mod memory;
pub mod mptable;
pub mod pci;
pub mod pm;
pub mod prefault;
pub mod seccomp;
pub mod trace;
pub mod vcpu;
pub mod vmm;

pub use config::{Cli, Config};
pub use exit::VmExit;
pub use vmm::Vmm;
