//! The VMM: `Vmm::try_from(config)` builds the VM one boot step at a time
//! (KVM and the VM, memory, kernel, devices, MP table and ACPI tables,
//! vCPUs), then `run()` starts the vCPUs, waits for the reason the VM ends,
//! stops and joins every vCPU (taking back their exit statistics), and
//! tears down the devices, the trace, the VM and guest memory in that
//! order.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::acpi;
use crate::boot::{self, EntryMode, LoadedKernel};
use crate::bus::Bus;
use crate::config::{Config, SerialOut};
use crate::cpu;
use crate::exit::VmExit;
use crate::host_kvm;
use crate::legacy::{self, EventFdTrigger, Legacy};
use crate::memory;
use crate::mptable;
use crate::pci::{self, PciDevices};
use crate::prefault;
use crate::seccomp::{self, Policy, Thread};
use crate::trace::{self, Tracing};
use crate::vcpu::{self, Requests, Vcpu};

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
    /// Mapping guest RAM in advance failed.
    #[error(transparent)]
    Prefault(#[from] prefault::Error),
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
    /// vCPU threads did not stop when asked.
    #[error("vCPU threads {0} did not stop within {VCPU_STOP_TIMEOUT:?}; not tearing the VM down")]
    VcpuStuck(String),
}

/// How long the vCPU threads have to stop once the VM ended.
pub const VCPU_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A VM ready to run.
pub struct Vmm {
    config: Config,
    seccomp: Policy,
    vcpus: Vec<Vcpu>,
    bus: Arc<Bus>,
    pci: PciDevices,
    tracing: Tracing,
    // Kept until the teardown at the end of `run` (which drops them in
    // order: devices, VM, memory).
    vm: Arc<VmFd>,
    kvm: Kvm,
    mem: GuestMemoryMmap,
}

impl TryFrom<Config> for Vmm {
    type Error = Error;

    fn try_from(config: Config) -> Result<Self, Error> {
        let kind = host_kvm::detect();
        log::info!("host: {kind}");
        let kvm = host_kvm::open()?;
        let vm = Arc::new(Self::create_vm(&kvm)?);
        // Before any thread of ours starts: each installs its filter.
        let seccomp = Policy::for_process(config.seccomp, vm.as_raw_fd())?;
        let mem = Self::create_memory(&vm, config.memory_bytes)?;
        let (kernel, initramfs) = Self::load_boot_images(&mem, &config)?;
        let tracing = Tracing::new(
            config.trace.as_ref(),
            config.trace_caps,
            config.stats_json.as_ref(),
        )?;
        let (bus, pci) = Self::create_devices(&vm, &mem, &config, seccomp, &tracing)?;
        let slots = pci.slots();
        mptable::setup(&mem, config.vcpus, &slots)?;
        acpi::setup(&mem, config.vcpus, &slots)?;
        let prefault = prefault::ranges(
            config.prefault,
            &kernel,
            initramfs,
            memory::low_ram_end(config.memory_bytes),
        );
        let vcpus = Self::create_vcpus(&kvm, &vm, &config, &kernel, &bus, &tracing)?;
        if let Some(boot) = vcpus.first() {
            Self::prefault(&kvm, boot, &mem, &prefault)?;
        }
        Ok(Vmm {
            config,
            seccomp,
            vcpus,
            bus,
            pci,
            tracing,
            vm,
            kvm,
            mem,
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
        if let Err(e) = memory::advise_huge_pages(&mem) {
            log::info!("memory: no transparent huge pages for guest RAM ({e}): 4 KiB pages");
        }
        for (slot, region) in mem.iter().enumerate() {
            let r = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
            };
            // SAFETY: the region is a live mapping of `memory_size` bytes
            // owned by `mem`, which the Vmm keeps until its teardown: after
            // every vCPU has stopped and been closed and the VM fd is closed.
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
    fn load_boot_images(
        mem: &GuestMemoryMmap,
        c: &Config,
    ) -> Result<(LoadedKernel, Option<boot::Initramfs>), Error> {
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
        Ok((kernel, initramfs))
    }

    /// Step 6: guest RAM in `ranges` mapped in KVM through the boot vCPU
    /// (its registers set), so that the guest's first touch of it is not an
    /// exit ([`prefault`]).
    fn prefault(
        kvm: &Kvm,
        boot: &Vcpu,
        mem: &GuestMemoryMmap,
        ranges: &[prefault::Range],
    ) -> Result<(), Error> {
        if ranges.is_empty() {
            return Ok(());
        }
        match prefault::map(kvm, boot, mem, ranges)? {
            Some(m) if m.bytes > 0 => log::info!(
                "prefault: {} MiB of guest RAM in {} range(s): resident in {:.1} ms, mapped by KVM in {:.1} ms",
                m.bytes >> 20,
                ranges.len(),
                m.populate.as_secs_f64() * 1e3,
                m.map.as_secs_f64() * 1e3
            ),
            Some(_) => {}
            None => log::info!(
                "prefault: KVM has no KVM_PRE_FAULT_MEMORY; the guest faults its RAM in"
            ),
        }
        Ok(())
    }

    /// Step 4: the serial console, the reset port and the PCI devices
    /// (whose threads install their seccomp filters as they start, and
    /// whose doings `tracing` records).
    fn create_devices(
        vm: &Arc<VmFd>,
        mem: &GuestMemoryMmap,
        c: &Config,
        seccomp: Policy,
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
        let pci = PciDevices::new(vm.clone(), mem, c, seccomp, tracing)?;
        bus.set_pci(pci.access());
        Ok((Arc::new(bus), pci))
    }

    /// Step 5: vCPUs with CPUID, MSRs, LAPIC, and the boot vCPU's
    /// registers; each with its own exit log from `tracing`.
    fn create_vcpus(
        kvm: &Kvm,
        vm: &VmFd,
        c: &Config,
        kernel: &LoadedKernel,
        bus: &Arc<Bus>,
        tracing: &Tracing,
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
            let log = tracing.exit_log(id);
            vcpus.push(Vcpu::new(fd, bus.clone(), c.test_panic_on_port, log));
        }
        Ok(vcpus)
    }

    /// Runs the VM until it ends and returns why.
    ///
    /// The trace writer, the vCPU and console threads start, install their
    /// seccomp filters and wait; the main thread installs its own (the edu
    /// workers and INTx threads did when the devices were made), then lets
    /// them run. If any filter cannot be installed, the guest never runs.
    /// When a vCPU ends the VM, every other vCPU is stopped and joined,
    /// handing back its exit statistics; only then do the devices, the
    /// trace (written to its end, the statistics printed), the VM and guest
    /// memory go, in that order.
    pub fn run(mut self) -> Result<VmExit, Error> {
        vcpu::register_kick_handler().map_err(Error::Signal)?;
        self.tracing.start(&self.pci.bars(), self.seccomp)?;
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        let mut starts = Vec::new();
        let mut tids = Vec::new();
        for (i, v) in std::mem::take(&mut self.vcpus).into_iter().enumerate() {
            let (start, started) = mpsc::channel::<()>();
            let requests = Arc::new(Requests::default());
            let (r, tx) = (requests.clone(), tx.clone());
            let thread = Thread::Vcpu {
                vcpu_fd: v.as_raw_fd(),
            };
            // The guest runs once the main thread says so; a start that
            // is called off hands the vCPU back unrun.
            let spawned =
                seccomp::spawn(
                    self.seccomp,
                    format!("vcpu{i}"),
                    thread,
                    move || match started.recv() {
                        Ok(()) => v.run(&r, tx),
                        Err(_) => v,
                    },
                );
            match spawned {
                Ok((handle, tid)) => {
                    threads.push(VcpuThread { handle, requests });
                    starts.push(start);
                    tids.push(tid);
                }
                Err(e) => return self.call_off(threads, e.into()),
            }
        }
        drop(tx);
        let console_start = match self.spawn_console_input() {
            Ok(start) => start,
            Err(e) => return self.call_off(threads, e),
        };
        // Firecracker's bar is VMM start-up in under 8 CPU-ms; measured here,
        // before the filter (which does not allow getrusage).
        match process_cpu_ms() {
            Some(ms) => log::info!("set-up done: {ms:.1} CPU-ms (user + system) since exec"),
            None => log::warn!("set-up done; getrusage failed, CPU time unknown"),
        }
        if let Err(e) = self.seccomp.install(Thread::Main { vcpu_tids: &tids }) {
            return self.call_off(threads, e.into());
        }
        match self.seccomp {
            Policy::On(_) => log::info!(
                "seccomp filters installed on every thread: {} vCPU, {} edu worker and INTx, console input, {}main",
                tids.len(),
                self.pci.slots().len(),
                if self.tracing.writing() {
                    "trace writer, "
                } else {
                    ""
                }
            ),
            Policy::Off => log::warn!("seccomp filters are off (--no-seccomp)"),
        }
        let start = std::time::Instant::now();
        for s in starts.into_iter().chain([console_start]) {
            // A thread that is gone cannot be started; the exit says why.
            let _ = s.send(());
        }
        let exit = self.wait_for_exit(&rx, &threads);
        let vcpus = match Self::stop_vcpus(threads) {
            Ok(vcpus) => vcpus,
            Err(e) => {
                // A vCPU may still be in the guest: keep everything it
                // could touch, and let the process exit take it all.
                std::mem::forget(self);
                return Err(e);
            }
        };
        // Every vCPU is closed; its exit statistics stay.
        let logs: Vec<_> = vcpus.into_iter().map(Vcpu::into_exit_log).collect();
        let exit = exit?;
        self.bus.legacy().flush();
        let s = &self.bus.stats;
        log::info!(
            "vm ended after {:.3} s: {exit}; exits: {} port, {} mmio; {} accesses to nothing",
            start.elapsed().as_secs_f64(),
            s.pio.load(Ordering::Relaxed),
            s.mmio.load(Ordering::Relaxed),
            s.unhandled.count(),
        );
        let (lost, reset_errors) = (
            self.bus.legacy().console_lost.count(),
            self.bus.legacy().reset_errors.count(),
        );
        if lost > 0 {
            log::warn!("console: {lost} bytes could not be written");
        }
        if reset_errors > 0 {
            log::warn!("i8042: {reset_errors} reset requests could not be signalled");
        }
        for (slot, st) in self.pci.stats() {
            log::info!("edu 00:{slot:02x}.0: {st:?}");
        }
        let bars = self.pci.bars();
        // Teardown after the vCPUs: the devices (edu's workers and the
        // INTx threads end, their last events recorded), then the trace,
        // then the VM, then guest memory.
        let Vmm {
            bus,
            pci,
            mut tracing,
            vm,
            kvm,
            mem,
            ..
        } = self;
        drop((bus, pci));
        let traced = tracing.finish(&bars, logs);
        drop((vm, kvm));
        drop(mem);
        traced?;
        Ok(exit)
    }

    /// Calls the start off after `error`: the vCPU threads started so far
    /// end without running the guest (their start is dropped) and are
    /// joined.
    fn call_off(self, threads: Vec<VcpuThread>, error: Error) -> Result<VmExit, Error> {
        Self::stop_vcpus(threads)?;
        Err(error)
    }

    /// Waits for a vCPU to end the VM. If the guest makes no port or MMIO
    /// exit for `--watchdog-secs`, asks the vCPUs once where they are (a
    /// guest stuck without exits, or a vCPU KVM cannot run, is otherwise
    /// invisible).
    fn wait_for_exit(
        &self,
        rx: &mpsc::Receiver<VmExit>,
        threads: &[VcpuThread],
    ) -> Result<VmExit, Error> {
        let exits = || {
            self.bus.stats.pio.load(Ordering::Relaxed) + self.bus.stats.mmio.load(Ordering::Relaxed)
        };
        if self.config.watchdog_secs == 0 {
            return rx.recv().map_err(|_| Error::NoExitReason);
        }
        let period = Duration::from_secs(self.config.watchdog_secs);
        let mut last = exits();
        let mut asked = false;
        loop {
            match rx.recv_timeout(period) {
                Ok(exit) => return Ok(exit),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::NoExitReason),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = exits();
                    if now == last && !asked {
                        log::info!(
                            "the guest made no port or MMIO exit for {} s: asking the vCPUs where they are",
                            period.as_secs()
                        );
                        for t in threads {
                            t.requests.report();
                            vcpu::kick(&t.handle);
                        }
                        asked = true;
                    }
                    if now != last {
                        asked = false;
                    }
                    last = now;
                }
            }
        }
    }

    /// Stops every vCPU thread (a stop request and a kick, see
    /// [`crate::vcpu`]) and joins it, returning the vCPUs that ran. A
    /// thread that has not stopped within [`VCPU_STOP_TIMEOUT`] is an
    /// error.
    fn stop_vcpus(threads: Vec<VcpuThread>) -> Result<Vec<Vcpu>, Error> {
        for t in &threads {
            t.requests.stop();
            vcpu::kick(&t.handle);
        }
        let deadline = Instant::now() + VCPU_STOP_TIMEOUT;
        while threads.iter().any(|t| !t.handle.is_finished()) {
            if Instant::now() > deadline {
                let stuck = threads
                    .iter()
                    .filter(|t| !t.handle.is_finished())
                    .filter_map(|t| t.handle.thread().name().map(String::from))
                    .collect::<Vec<_>>();
                return Err(Error::VcpuStuck(stuck.join(", ")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // A panic aborts the process, so a finished thread returned its
        // vCPU (none if it never got its filter).
        Ok(threads
            .into_iter()
            .filter_map(|t| t.handle.join().ok().flatten())
            .collect())
    }

    /// Forwards standard input to the UART (when there is any), once the
    /// returned start is sent. The thread holds the bus weakly, so
    /// teardown is not held up by a read that never returns.
    fn spawn_console_input(&self) -> Result<mpsc::Sender<()>, Error> {
        let bus = Arc::downgrade(&self.bus);
        let (start, started) = mpsc::channel::<()>();
        seccomp::spawn(
            self.seccomp,
            "console-in".into(),
            Thread::ConsoleInput,
            move || {
                if started.recv().is_err() {
                    return;
                }
                let mut buf = [0u8; 64];
                let mut stdin = std::io::stdin();
                while let Ok(n) = stdin.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut rest = &buf[..n];
                    while !rest.is_empty() {
                        let Some(bus) = bus.upgrade() else { return };
                        let taken = bus.legacy().serial_input(rest);
                        rest = &rest[taken..];
                        if taken == 0 {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            },
        )?;
        Ok(start)
    }
}

/// A running vCPU thread and what the main thread can ask of it.
struct VcpuThread {
    handle: JoinHandle<Option<Vcpu>>,
    requests: Arc<Requests>,
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
