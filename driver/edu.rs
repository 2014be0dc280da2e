// SPDX-License-Identifier: GPL-2.0

//! Rust driver for QEMU's educational PCI device `edu` (1234:11e8).
//!
//! Build it out of tree and load it in a guest that has the device:
//!
//! ```text
//! make -C driver KDIR=/path/to/built/linux     # gives driver/edu.ko
//! qemu-system-x86_64 ... -device edu           # the guest
//! insmod edu.ko                                # in the guest
//! ```
//!
//! On probe the driver enables the device, maps BAR0 and logs the
//! identification register, for example
//! `edu 0000:00:04.0: probed 1234:11e8, id 0x010000ed`.

use kernel::{
    device::Core,
    io::Io,
    pci,
    prelude::*, //
};

mod regs;

/// PCI vendor ID QEMU uses for its own devices.
// SAFETY: `pci::Vendor` is `#[repr(transparent)]` over the `u16` vendor ID and
// only promises to hold a PCI vendor ID; 0x1234 is the one QEMU's edu reports.
const VENDOR_QEMU: pci::Vendor = unsafe { core::mem::transmute::<u16, pci::Vendor>(0x1234) };

/// PCI device ID of QEMU's edu device.
const DEVICE_EDU: u32 = 0x11e8;

/// BAR0 mapped with its full size known at compile time.
type Bar0<'bound> = pci::Bar<'bound, { regs::BAR0_SIZE }>;

/// Per-device driver data: lives from a successful probe to unbind.
struct EduData<'bound> {
    pdev: &'bound pci::Device,
    _bar: Bar0<'bound>,
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

        let bar = pdev.iomap_region_sized::<{ regs::BAR0_SIZE }>(0, c"edu")?;
        let id = bar.read(regs::ID).into_raw();

        dev_info!(
            pdev,
            "probed {:04x}:{:04x}, id {:#010x}\n",
            pdev.vendor_id().as_raw(),
            pdev.device_id(),
            id
        );

        Ok(EduData { pdev, _bar: bar })
    }
}

impl Drop for EduData<'_> {
    fn drop(&mut self) {
        dev_dbg!(self.pdev, "removed\n");
    }
}

kernel::module_pci_driver! {
    type: EduDriver,
    name: "edu",
    authors: ["edu-rs developers"],
    description: "Driver for QEMU's educational PCI device (edu)",
    license: "GPL v2",
}
