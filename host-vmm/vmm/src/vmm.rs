//! The VMM: `Vmm::try_from(config)` builds the VM one boot step at a time
//! (KVM and the VM, memory, kernel, devices, MP table and ACPI tables,
//! vCPUs), then `run()`
//! starts the vCPUs and waits for the reason the VM ends.

use std::fs::File;
use std::io::Read;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use crate::acpi;
use crate::boot::{self, EntryMode, LoadedKernel};
use crate::bus::Bus;
use crate::config::{Config, SerialOut};
use crate::cpu;
use crate::host_kvm;
use crate::legacy::{self, EventFdTrigger, Legacy};
use crate::memory;
use crate::mptable;
use crate::pci::{self, PciDevices};
use crate::seccomp;
use crate::trace::{self, Tracing};
use crate::vcpu::{Vcpu, VmExit};

/// Handler of the kick signal: it only has to exist, so that the signal
/// interrupts `KVM_RUN` (EINTR) instead of killing the process.
extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Address of the TSS KVM needs on Intel (three pages below the BIOS).
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;

/// Errors building or running the VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening KVM failed.
    #[error(transparent)]
    Kvm(#[from] host_kvm::Error),
    /// A VM-level ioctl failed.
    #[error("{0}: {1}")]
    VmIoctl(&'static str, #[source] kvm_ioctls::Error),
    /// Guest memory could not be created.
    #[error(transparent)]
    Memory(#[from] memory::Error),
    /// Loading the kernel, initramfs or command line failed.
    #[error(transparent)]
    Boot(#[from] boot::Error),
    /// Setting up a vCPU failed.
    #[error(transparent)]
    Cpu(#[from] cpu::Error),
    /// The MP table could not be written.
    #[error(transparent)]
    MpTable(#[from] mptable::Error),
    /// The ACPI tables could not be written.
    #[error(transparent)]
    Acpi(#[from] acpi::Error),
    /// PCI devices could not be created.
    #[error(transparent)]
    Pci(#[from] pci::Error),
    /// Legacy devices could not be created.
    #[error(transparent)]
    Legacy(#[from] legacy::Error),
    /// The serial output file could not be created.
    #[error("serial output {0}: {1}")]
    SerialFile(String, #[source] std::io::Error),
    /// A thread could not be started.
    #[error("starting thread {0}: {1}")]
    Thread(String, #[source] std::io::Error),
    /// Seccomp setup failed.
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    /// The kick signal handler could not be installed.
    #[error("installing the vCPU kick signal handler: {0}")]
    Signal(#[source] std::io::Error),
    /// The trace or the statistics file failed.
    #[error(transparent)]
    Trace(#[from] trace::Error),
    /// All vCPU threads ended without a reason.
    #[error("all vCPU threads ended without reporting why")]
    NoExitReason,
}

/// A VM ready to run.
pub struct Vmm {
    config: Config,
    // Field order matters for drop: vCPUs, then the VM, then its memory.
    vcpus: Vec<Vcpu>,
    bus: Arc<Bus>,
    pci: PciDevices,
    tracing: Tracing,
    _vm: Arc<VmFd>,
    _kvm: Kvm,
    _mem: GuestMemoryMmap,
}

impl TryFrom<Config> for Vmm {
    type Error = Error;

    fn try_from(config: Config) -> Result<Self, Error> {
        let kind = host_kvm::detect();
        log::info!("host: {kind}");
        let kvm = host_kvm::open()?;
        let vm = Arc::new(Self::create_vm(&kvm)?);
        let mem = Self::create_memory(&vm, config.memory_bytes)?;
        let kernel = Self::load_boot_images(&mem, &config)?;
        let mut tracing = Tracing::new(
            config.trace.as_ref(),
            config.trace_caps,
            config.stats_json.as_ref(),
        )?;
        let (bus, pci) = Self::create_devices(&vm, &mem, &config, &tracing)?;
        let slots = pci.slots();
        mptable::setup(&mem, config.vcpus, &slots)?;
        acpi::setup(&mem, config.vcpus, &slots)?;
        let vcpus = Self::create_vcpus(&kvm, &vm, &config, &kernel, &bus, &mut tracing)?;
        Ok(Vmm {
            config,
            vcpus,
            bus,
            pci,
            tracing,
            _vm: vm,
            _kvm: kvm,
            _mem: mem,
        })
    }
}

impl Vmm {
    /// Step 1: the VM with its TSS, in-kernel irqchip (PIC, IOAPIC, LAPICs)
    /// and PIT.
    fn create_vm(kvm: &Kvm) -> Result<VmFd, Error> {
        let vm = kvm
            .create_vm()
            .map_err(|e| Error::VmIoctl("KVM_CREATE_VM", e))?;
        vm.set_tss_address(KVM_TSS_ADDRESS)
            .map_err(|e| Error::VmIoctl("KVM_SET_TSS_ADDR", e))?;
        vm.create_irq_chip()
            .map_err(|e| Error::VmIoctl("KVM_CREATE_IRQCHIP", e))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit)
            .map_err(|e| Error::VmIoctl("KVM_CREATE_PIT2", e))?;
        Ok(vm)
    }

    /// Step 2: guest RAM, registered with KVM one slot per region.
    fn create_memory(vm: &VmFd, size: u64) -> Result<GuestMemoryMmap, Error> {
        let mem = memory::create_guest_memory(size)?;
        for (slot, region) in mem.iter().enumerate() {
            let r = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
            };
            // SAFETY: the region is a live mapping of `memory_size` bytes
            // owned by `mem`, which the Vmm keeps (and drops after the VM fd)
            // for as long as the VM can access it.
            unsafe { vm.set_user_memory_region(r) }
                .map_err(|e| Error::VmIoctl("KVM_SET_USER_MEMORY_REGION", e))?;
        }
        log::info!(
            "memory: {} MiB in {} region(s)",
            size >> 20,
            mem.num_regions()
        );
        Ok(mem)
    }

    /// Step 3: kernel, initramfs, command line, then the zero page or PVH
    /// start_info, and the GDT and page tables.
    fn load_boot_images(mem: &GuestMemoryMmap, c: &Config) -> Result<LoadedKernel, Error> {
        let kernel = boot::load_kernel(mem, &c.kernel, c.memory_bytes)?;
        let initramfs = match &c.initramfs {
            Some(p) => Some(boot::load_initramfs(mem, p, &kernel, c.memory_bytes)?),
            None => None,
        };
        let cmdline_len = boot::load_cmdline(mem, &c.cmdline)?;
        match kernel.mode {
            EntryMode::Linux64 => {
                boot::write_zero_page(mem, &kernel, cmdline_len, initramfs, c.memory_bytes)?
            }
            EntryMode::Pvh => boot::write_pvh_start_info(mem, initramfs, c.memory_bytes)?,
        }
        cpu::write_boot_tables(mem)?;
        log::info!(
            "kernel: {} ({:?}, entry {:#x}, ends {:#x}){}",
            c.kernel.display(),
            kernel.mode,
            kernel.entry.0,
            kernel.end,
            initramfs.map_or(String::new(), |i| format!(
                ", initramfs {} bytes at {:#x}",
                i.size, i.addr
            ))
        );
        Ok(kernel)
    }

    /// Step 4: the serial console, the reset port and the PCI devices.
    fn create_devices(
        vm: &Arc<VmFd>,
        mem: &GuestMemoryMmap,
        c: &Config,
        tracing: &Tracing,
    ) -> Result<(Arc<Bus>, PciDevices), Error> {
        let out: legacy::ConsoleOut = match &c.serial {
            SerialOut::Stdout => Box::new(std::io::stdout()),
            SerialOut::File(p) => Box::new(
                File::create(p).map_err(|e| Error::SerialFile(p.display().to_string(), e))?,
            ),
        };
        let serial_irq = EventFdTrigger::new()?;
        vm.register_irqfd(&serial_irq.0, legacy::SERIAL_IRQ)
            .map_err(|e| Error::VmIoctl("KVM_IRQFD", e))?;
        let reset = EventFdTrigger::new()?;
        let reset_rx = reset.try_clone()?;
        let mut bus = Bus::new(
            Legacy::new(serial_irq, reset, out),
            reset_rx,
            c.trace_devices,
        );
        let pci = PciDevices::new(vm.clone(), mem, c, tracing)?;
        bus.set_pci(pci.access());
        Ok((Arc::new(bus), pci))
    }

    /// Step 5: vCPUs with CPUID, MSRs, LAPIC, and the boot vCPU's registers.
    fn create_vcpus(
        kvm: &Kvm,
        vm: &VmFd,
        c: &Config,
        kernel: &LoadedKernel,
        bus: &Arc<Bus>,
        tracing: &mut Tracing,
    ) -> Result<Vec<Vcpu>, Error> {
        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| Error::VmIoctl("KVM_GET_SUPPORTED_CPUID", e))?;
        let mut vcpus = Vec::with_capacity(c.vcpus.into());
        for id in 0..c.vcpus {
            let fd = vm
                .create_vcpu(id.into())
                .map_err(|e| Error::VmIoctl("KVM_CREATE_VCPU", e))?;
            let mut cpuid = supported.clone();
            cpu::adjust_cpuid(&mut cpuid, id, c.vcpus);
            cpu::configure_common(&fd, &cpuid)?;
            if id == 0 {
                cpu::configure_boot_vcpu(&fd, kernel.entry.0, kernel.mode)?;
            }
            vcpus.push(Vcpu::new(fd, id, bus.clone(), tracing.exit_log(id)));
        }
        Ok(vcpus)
    }

    /// Runs the VM until it ends and returns why.
    ///
    /// The vCPU and console threads start and meet the main thread at a
    /// barrier; the main thread then installs the seccomp filter on every
    /// thread of the process (edu's worker threads included), and a second
    /// barrier lets the guest run.
    pub fn run(mut self) -> Result<VmExit, Error> {
        let (tx, rx) = mpsc::channel();
        let seccomp_on = self.config.seccomp;
        let vcpus = std::mem::take(&mut self.vcpus);
        let go = Arc::new(Barrier::new(vcpus.len() + 2));
        // A signal that only interrupts KVM_RUN, for the watchdog's kick.
        register_signal_handler(SIGRTMIN(), kick_handler)
            .map_err(|e| Error::Signal(std::io::Error::from_raw_os_error(e.errno())))?;
        // The trace writer is a thread too: it starts before the filter.
        self.tracing.start(&self.pci.bars())?;
        let mut threads = Vec::new();
        for (i, v) in vcpus.into_iter().enumerate() {
            let tx = tx.clone();
            let go = go.clone();
            let name = format!("vcpu{i}");
            let h = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    go.wait(); // started
                    go.wait(); // filter installed
                    v.run(tx)
                })
                .map_err(|e| Error::Thread(name, e))?;
            threads.push(h);
        }
        drop(tx);
        self.spawn_console_input(go.clone())?;
        // Every thread is past its start-up before the filter goes on.
        go.wait();
        // Firecracker's bar is VMM start-up in under 8 CPU-ms; measured here,
        // before the filter (which does not allow getrusage).
        match process_cpu_ms() {
            Some(ms) => log::info!("set-up done: {ms:.1} CPU-ms (user + system) since exec"),
            None => log::warn!("set-up done; getrusage failed, CPU time unknown"),
        }
        if seccomp_on {
            match seccomp::install_all_threads()? {
                seccomp::Installed::Yes => log::info!("seccomp filter installed on all threads"),
                seccomp::Installed::KernelLacksSeccomp => log::warn!(
                    "this host kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER): \
                     running WITHOUT a seccomp filter"
                ),
            }
        } else {
            log::warn!("seccomp filters are off (--no-seccomp)");
        }
        let start = std::time::Instant::now();
        go.wait();
        let exit = self.wait_for_exit(&rx, &threads)?;
        self.bus.legacy().flush();
        let s = &self.bus.stats;
        log::info!(
            "vm ended after {:.3} s: {exit}; exits: {} port, {} mmio; {} accesses to nothing",
            start.elapsed().as_secs_f64(),
            s.pio.load(Ordering::Relaxed),
            s.mmio.load(Ordering::Relaxed),
            s.unhandled.load(Ordering::Relaxed),
        );
        for (slot, st) in self.pci.stats() {
            log::info!("edu 00:{slot:02x}.0: {st:?}");
        }
        self.tracing.finish(&self.pci.bars())?;
        Ok(exit)
    }

    /// Waits for a vCPU to end the VM. If the guest makes no port or MMIO
    /// exit for `--watchdog-secs`, kicks the vCPUs out of `KVM_RUN` once so
    /// they log where they are (a guest stuck without exits is otherwise
    /// invisible).
    fn wait_for_exit(
        &self,
        rx: &mpsc::Receiver<VmExit>,
        threads: &[std::thread::JoinHandle<()>],
    ) -> Result<VmExit, Error> {
        let exits = || {
            self.bus.stats.pio.load(Ordering::Relaxed) + self.bus.stats.mmio.load(Ordering::Relaxed)
        };
        if self.config.watchdog_secs == 0 {
            return rx.recv().map_err(|_| Error::NoExitReason);
        }
        let period = Duration::from_secs(self.config.watchdog_secs);
        let mut last = exits();
        let mut kicked = false;
        loop {
            match rx.recv_timeout(period) {
                Ok(exit) => return Ok(exit),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::NoExitReason),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = exits();
                    if now == last && !kicked {
                        log::info!(
                            "the guest made no port or MMIO exit for {} s: asking the vCPUs where they are",
                            period.as_secs()
                        );
                        for t in threads {
                            // std's handle is a u64; libc's pthread_t is a u64
                            // on glibc and a pointer on musl.
                            #[allow(clippy::unnecessary_cast)]
                            let pt = t.as_pthread_t() as libc::pthread_t;
                            // SAFETY: the pthread_t belongs to a thread we
                            // started and still own (its JoinHandle is alive),
                            // and SIGRTMIN has a handler that does nothing.
                            unsafe { libc::pthread_kill(pt, SIGRTMIN()) };
                        }
                        kicked = true;
                    }
                    if now != last {
                        kicked = false;
                    }
                    last = now;
                }
            }
        }
    }

    /// Forwards standard input to the UART (when there is any).
    fn spawn_console_input(&self, go: Arc<Barrier>) -> Result<(), Error> {
        let bus = self.bus.clone();
        std::thread::Builder::new()
            .name("console-in".into())
            .spawn(move || {
                go.wait(); // started
                go.wait(); // filter installed
                let mut buf = [0u8; 64];
                let mut stdin = std::io::stdin();
                while let Ok(n) = stdin.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut rest = &buf[..n];
                    while !rest.is_empty() {
                        let taken = bus.legacy().serial_input(rest);
                        rest = &rest[taken..];
                        if taken == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                    }
                }
            })
            .map_err(|e| Error::Thread("console-in".into(), e))?;
        Ok(())
    }
}

/// CPU time (user + system) this process has used so far, in milliseconds.
fn process_cpu_ms() -> Option<f64> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the pointer, which points at
    // writable memory of that type; it is read only when the call succeeds.
    let ru = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) != 0 {
            return None;
        }
        ru.assume_init()
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    Some(ms(ru.ru_utime) + ms(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tss_is_below_the_ioapic_and_above_ram() {
        assert!(KVM_TSS_ADDRESS as u64 > memory::APIC_ADDR);
        assert!(KVM_TSS_ADDRESS as u64 + 3 * 4096 <= memory::MMIO_GAP_END);
    }

    #[test]
    fn process_cpu_time_is_measured_and_grows() {
        // Burn CPU until the figure moves (getrusage may count in ticks);
        // a figure that never moves fails after 5 s of wall time.
        let a = process_cpu_ms().expect("getrusage");
        let start = std::time::Instant::now();
        let mut b = a;
        while b <= a && start.elapsed() < Duration::from_secs(5) {
            let mut x = 0u64;
            for i in 0..1_000_000u64 {
                x = x.wrapping_add(std::hint::black_box(i));
            }
            std::hint::black_box(x);
            b = process_cpu_ms().expect("getrusage");
        }
        assert!(a >= 0.0 && b > a, "{a} -> {b}");
    }
}
