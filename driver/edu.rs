// SPDX-License-Identifier: GPL-2.0

//! Rust driver for QEMU's educational PCI device `edu` (1234:11e8).
//!
//! Every edu device (up to 16) gets a char device `/dev/eduN` (minor N,
//! dynamic major `pci_edu` in `/proc/devices`) whose ioctls compute
//! factorials, raise interrupts and move data by DMA, each waiting for the
//! device's interrupt. Build it out of tree and load it in a guest that has
//! the device:
//!
//! ```text
//! make -C driver KDIR=/path/to/built/linux     # gives driver/edu.ko
//! qemu-system-x86_64 ... -device edu           # the guest
//! insmod edu.ko [irq_mode=auto|msi|intx] [timeout_ms=2000]
//! edu-test selftest                            # or any program using the ABI
//! ```
//!
//! Files: `regs.rs` (register map), `hw.rs` (per-device state, interrupt
//! handler, operations), `file.rs` (minor table and file operations),
//! `chrdev.rs` (char device and class support), `param.rs` (`irq_mode`).
//! The ioctl ABI comes from `abi/src/abi.rs`, shared with userspace.

use kernel::{
    device::Core,
    dma::{Coherent, Device as _, DmaMask},
    io::Io,
    ioctl, irq, pci,
    prelude::*,
    str::CString,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    ThisModule,
};

// The ABI shared with userspace, numbered with `kernel::ioctl` (imported
// above; `abi.rs` uses `super::ioctl`). Its items are `pub` for the userspace
// crate; here they are crate-internal.
#[allow(dead_code, unreachable_pub)]
#[path = "../abi/src/abi.rs"]
mod abi;
mod chrdev;
mod file;
mod hw;
mod param;
mod regs;

use file::{DEVICES, MAX_DEVICES};
use hw::{EduDev, IrqHandler};
use param::IrqMode;

/// PCI vendor ID QEMU uses for its own devices.
// SAFETY: `pci::Vendor` is `#[repr(transparent)]` over the `u16` vendor ID and
// only promises to hold a PCI vendor ID; 0x1234 is the one QEMU's edu reports.
const VENDOR_QEMU: pci::Vendor = unsafe { core::mem::transmute::<u16, pci::Vendor>(0x1234) };

/// PCI device ID of QEMU's edu device.
const DEVICE_EDU: u32 = 0x11e8;

/// Per-device driver data: lives from a successful probe to unbind.
///
/// Dropping it undoes probe, on every path: unbind and `rmmod` (the driver
/// core drops it after `unbind`), and a bind that fails after `probe`
/// returned (the driver core cannot store it). [`Drop`] unpublishes the
/// device and quiesces it; then the fields drop in order: the `/dev` node,
/// the interrupt handler (`free_irq()` waits for a running one), the
/// vectors it used.
struct EduData<'bound> {
    _node: chrdev::ClassDevice,
    _irq: Pin<KBox<irq::Registration<'bound, IrqHandler>>>,
    _vectors: KBox<pci::IrqVectorRegistration<'bound>>,
    dev: Arc<EduDev>,
}

impl Drop for EduData<'_> {
    fn drop(&mut self) {
        DEVICES.lock().remove(self.dev.id.minor);
        self.dev.shutdown();
        dev_info!(self.dev.pdev(), "released /dev/edu{}\n", self.dev.id.minor);
    }
}

/// The PCI driver: binds every 1234:11e8 device.
struct EduDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    <EduDriver as pci::Driver>::IdInfo,
    [(pci::DeviceId::from_id(VENDOR_QEMU, DEVICE_EDU), ())]
);

impl pci::Driver for EduDriver {
    type IdInfo = ();
    type Data<'bound> = EduData<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pdev.enable_device_mem()?;
        pdev.set_master();
        // SAFETY: probe runs before anything of this device allocates
        // or maps DMA memory.
        unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<{ regs::DMA_ADDR_BITS }>())? };

        let bar = pdev.iomap_region_sized::<{ regs::BAR0_SIZE }>(0, c"edu")?;
        let chip = bar.read(regs::ID).into_raw();
        // An earlier driver may have given up on a DMA or a factorial
        // (`rmmod` after a timeout): the device ignores new commands of
        // that kind until it is done, so the first user waits for it.
        let busy = hw::Busy {
            dma: bar.read(regs::DMA_CMD).busy(),
            factorial: bar.read(regs::STATUS).computing(),
        };
        // A factorial raises its interrupt when done (also one found
        // running); drop stale interrupt status.
        bar.write_reg(regs::STATUS::irq_enabled());
        bar.write_reg(regs::IRQ_ACK::from_raw(u32::MAX));
        let hw = hw::Hw::into_devres(pdev, bar)?;

        let buf = Coherent::<u8>::zeroed_slice(pdev.as_ref(), regs::DMA_BUF_SIZE, GFP_KERNEL)?;

        let types = match param::irq_mode() {
            IrqMode::Auto => pci::IrqTypes::default()
                .with(pci::IrqType::Msi)
                .with(pci::IrqType::Intx),
            IrqMode::Msi => pci::IrqTypes::default().with(pci::IrqType::Msi),
            IrqMode::Intx => pci::IrqTypes::default().with(pci::IrqType::Intx),
        };
        let vectors = KBox::new(pdev.alloc_irq_vectors(1, 1, types)?, GFP_KERNEL)?;
        // SAFETY: the vector registration lives in a heap allocation that
        // `EduData::_vectors` owns; moving the box does not move it, and
        // `EduData` drops `irq`, the only user of this reference, before
        // `_vectors`.
        let vectors_ref: &'bound pci::IrqVectorRegistration<'bound> =
            unsafe { &*core::ptr::from_ref(&*vectors) };
        let vector = vectors_ref.index(0)?;
        let msi = matches!(vector.irq_type(), pci::IrqType::Msi | pci::IrqType::MsiX);
        let request = irq::IrqRequest::from(vector);
        let irq_num = request.irq();
        let pending = match (busy.dma, busy.factorial) {
            (false, false) => "",
            (true, false) => ", a DMA still running",
            (false, true) => ", a factorial still running",
            (true, true) => ", a DMA and a factorial still running",
        };

        // Hold the table from picking a minor to publishing the device,
        // so concurrent probes cannot pick the same one.
        let mut table = DEVICES.lock();
        let minor = table.free_minor()?;
        let major = CHRDEV_MAJOR.load(Relaxed);
        let dev = Arc::pin_init(
            EduDev::new(
                hw,
                pdev.into(),
                buf,
                busy,
                hw::Identity {
                    minor,
                    major,
                    irq: irq_num,
                    irq_mode: if msi {
                        abi::EDU_IRQ_MODE_MSI
                    } else {
                        abi::EDU_IRQ_MODE_INTX
                    },
                    bar0_start: pdev.resource_start(0)?,
                    bar0_len: pdev.resource_len(0)?,
                },
                module_parameters::timeout_ms.value(),
            ),
            GFP_KERNEL,
        )?;

        // INTx may share the line with other devices; MSI is ours alone.
        let flags = if msi {
            irq::Flags::TRIGGER_NONE
        } else {
            irq::Flags::SHARED
        };
        // SAFETY: the registration is stored in `EduData` and dropped
        // with it, never forgotten.
        let irq = KBox::pin_init(
            unsafe { irq::Registration::new(request, flags, c"edu", IrqHandler::new(dev.clone())) },
            GFP_KERNEL,
        )?;

        let node = create_node(pdev, major, minor)?;
        // Publish the device to `open`. From here on `EduData` owns the
        // undoing, whoever drops it.
        table.insert(dev.clone());
        drop(table);

        dev_info!(
            pdev,
            "probed {:04x}:{:04x}, id {:#010x}, {} irq {}, /dev/edu{} ({}:{}){}\n",
            pdev.vendor_id().as_raw(),
            pdev.device_id(),
            chip,
            if msi { "MSI" } else { "INTx" },
            irq_num,
            minor,
            major,
            minor,
            pending
        );

        Ok(EduData {
            _node: node,
            _irq: irq,
            _vectors: vectors,
            dev,
        })
    }
}

/// Creates the class device `edu<minor>`, hence `/dev/edu<minor>`, below `pdev`.
fn create_node(
    pdev: &pci::Device<Core<'_>>,
    major: u32,
    minor: u32,
) -> Result<chrdev::ClassDevice> {
    let class = CLASS.lock();
    let class = class.as_ref().ok_or(ENODEV)?;
    let name = CString::try_from_fmt(fmt!("edu{minor}"))?;
    class.create_device(pdev.as_ref(), chrdev::devt(major, minor), &name)
}

/// Major of the char device region, set once by the module initialiser.
static CHRDEV_MAJOR: Atomic<u32> = Atomic::new(0);

/// Longest `timeout_ms` accepted. Unbind may wait this long for the device,
/// so it is a bound on `rmmod` too.
const TIMEOUT_MS_MAX: u32 = 60_000;

/// Checks the `timeout_ms` parameter: an operation waits that long for the
/// device's interrupt, so 0 would fail everything and a huge value would
/// let a stuck device hold callers (and unbind) for hours.
fn check_timeout_ms(ms: u32) -> Result {
    if !(1..=TIMEOUT_MS_MAX).contains(&ms) {
        pr_err!("timeout_ms={ms} is out of range: give 1 to {TIMEOUT_MS_MAX} (milliseconds)\n");
        return Err(EINVAL);
    }
    Ok(())
}

kernel::sync::global_lock! {
    // SAFETY: initialised by the module initialiser before the PCI driver,
    // the only other user, is registered.
    unsafe(uninit) static CLASS: Mutex<Option<chrdev::Class>> = None;
}

/// The char device side of the module: number region, cdev and class.
///
/// Created before the PCI driver is registered and dropped after it is
/// unregistered (see [`EduModule`]'s field order).
struct CharDevs {
    _cdev: chrdev::Cdev<EduDev>,
    _region: chrdev::Region,
}

impl CharDevs {
    fn new() -> Result<Self> {
        let region = chrdev::Region::new(u32::try_from(MAX_DEVICES)?, c"pci_edu")?;
        CHRDEV_MAJOR.store(region.major(), Relaxed);
        *CLASS.lock() = Some(chrdev::Class::new(c"edu")?);
        let cdev = match chrdev::Cdev::new(&region) {
            Ok(cdev) => cdev,
            Err(e) => {
                CLASS.lock().take();
                return Err(e);
            }
        };
        Ok(Self {
            _cdev: cdev,
            _region: region,
        })
    }
}

impl Drop for CharDevs {
    fn drop(&mut self) {
        // Every class device is gone: the PCI driver was unregistered first.
        CLASS.lock().take();
    }
}

/// The module: the PCI driver and the char device side.
#[pin_data]
struct EduModule {
    /// Unregistered first on unload, which unbinds every device.
    #[pin]
    driver: kernel::driver::Registration<pci::Adapter<EduDriver>>,
    chrdevs: CharDevs,
}

impl kernel::InPlaceModule for EduModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            check_timeout_ms(module_parameters::timeout_ms.value())?;
            // SAFETY: called once, before anything uses the locks.
            unsafe {
                DEVICES.init();
                CLASS.init();
            }
            let chrdevs = CharDevs::new()?;
            Ok(try_pin_init!(Self {
                chrdevs,
                driver <- kernel::driver::Registration::new(c"edu", module),
            }))
        })
    }
}

module! {
    type: EduModule,
    name: "edu",
    authors: ["edu-rs developers"],
    description: "Driver for QEMU's educational PCI device (edu)",
    license: "GPL v2",
    params: {
        timeout_ms: u32 {
            default: 2000,
            description: "How long an operation waits for the device's interrupt (ms, 1 to 60000)",
        },
    },
}
