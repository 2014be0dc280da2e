// SPDX-License-Identifier: GPL-2.0

//! The `irq_mode` module parameter: `insmod edu.ko irq_mode=auto|msi|intx`.
//!
//! The `module!` macro only declares integer and boolean parameters, so
//! this string-valued one is registered by hand the way the macro registers
//! its own: a `struct kernel_param` in the `__param` section whose `set`
//! callback parses the value. It is read-only (not in sysfs) and is parsed
//! once, when the module is loaded.

use crate::EduModule;
use kernel::{
    bindings,
    ffi::{c_char, c_int},
    module_param::KernelParam,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// Which interrupt the driver asks the PCI core for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IrqMode {
    /// MSI if the device and platform offer it, else INTx.
    Auto,
    /// MSI only: probe fails without it.
    Msi,
    /// Legacy INTx (pin A) only.
    Intx,
}

/// The parsed value: 0 auto, 1 msi, 2 intx.
static IRQ_MODE: Atomic<u32> = Atomic::new(0);

/// The value of `irq_mode`.
pub(crate) fn irq_mode() -> IrqMode {
    match IRQ_MODE.load(Relaxed) {
        1 => IrqMode::Msi,
        2 => IrqMode::Intx,
        _ => IrqMode::Auto,
    }
}

/// `kernel_param_ops::set` of `irq_mode`.
///
/// # Safety
///
/// `val` must be null or a NUL-terminated string valid for the call, as the
/// module loader passes it.
unsafe extern "C" fn set_irq_mode(val: *const c_char, _kp: *const bindings::kernel_param) -> c_int {
    if val.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: `val` is a valid NUL-terminated string (function safety).
    let val = unsafe { CStr::from_char_ptr(val) };
    let mode = match val.to_bytes() {
        b"auto" => 0,
        b"msi" => 1,
        b"intx" => 2,
        _ => {
            pr_err!("irq_mode must be auto, msi or intx\n");
            return EINVAL.to_errno();
        }
    };
    IRQ_MODE.store(mode, Relaxed);
    0
}

static IRQ_MODE_OPS: bindings::kernel_param_ops = bindings::kernel_param_ops {
    flags: 0,
    set: Some(set_irq_mode),
    get: None,
    free: None,
};

#[link_section = "__param"]
#[used(compiler)]
static IRQ_MODE_PARAM: KernelParam = KernelParam::new(bindings::kernel_param {
    name: kernel::str::as_char_ptr_in_const_context(c"irq_mode"),
    mod_: kernel::module::this_module::<EduModule>().as_ptr(),
    ops: &raw const IRQ_MODE_OPS,
    perm: 0,
    level: -1,
    flags: 0,
    __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
        arg: core::ptr::null_mut(),
    },
});

// `modinfo edu.ko` shows the parameter like the ones `module!` declares.
#[link_section = ".modinfo"]
#[used(compiler)]
static IRQ_MODE_PARMTYPE: [u8; 24] = *b"parmtype=irq_mode:charp\0";

#[link_section = ".modinfo"]
#[used(compiler)]
static IRQ_MODE_PARM: [u8; 63] =
    *b"parm=irq_mode:Interrupt mode: auto (MSI, else INTx), msi, intx\0";
