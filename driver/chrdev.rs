// SPDX-License-Identifier: GPL-2.0

//! A small character device abstraction for the edu driver.
//!
//! Linux 7.3 has no safe Rust wrapper for `struct cdev`, only for misc
//! devices (which have a fixed major). The edu driver needs a dynamic major
//! named `pci_edu` in `/proc/devices`, one minor per device, and nodes
//! `/dev/eduN` created through a device class, so this file wraps the few C
//! calls involved:
//!
//! - [`Region`]: `alloc_chrdev_region()` / `unregister_chrdev_region()`;
//! - [`Cdev`]: one `struct cdev` covering the whole region, whose file
//!   operations call an [`Operations`] implementation;
//! - [`Class`] and [`ClassDevice`]: `class_create()` / `device_create()`, so
//!   devtmpfs creates (and removes) the nodes.
//!
//! It is used by `edu.rs`; nothing here is specific to the edu device.

use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void},
    prelude::*,
    sync::Arc,
    types::ForeignOwnable,
    uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter},
};

/// Number of bits of the minor in a `dev_t` (`MINORBITS` in C).
const MINOR_BITS: u32 = bindings::MINORBITS;

/// `file->f_mode` bit of a file opened for writing (`FMODE_WRITE` in
/// `include/linux/fs.h`, a macro with a cast that bindgen does not export).
const FMODE_WRITE: bindings::fmode_t = 1 << 1;

/// The device number `major:minor` (`MKDEV()` in C).
pub(crate) fn devt(major: u32, minor: u32) -> bindings::dev_t {
    (major << MINOR_BITS) | minor
}

/// File operations of the character devices of a [`Cdev`].
///
/// `open` picks the object that serves the minor; it is kept in the file's
/// private data until the file is released, so it must be reference counted
/// and may outlive the hardware it stands for.
pub(crate) trait Operations: Send + Sync + Sized + 'static {
    /// Size of the file in bytes, the limit of `lseek`.
    const SIZE: i64;

    /// Opens minor `minor`.
    fn open(minor: u32) -> Result<Arc<Self>>;

    /// Handles `ioctl(cmd, arg)`; `arg` is usually a user pointer, and
    /// `writable` says whether the file was opened for writing.
    fn ioctl(this: &Self, cmd: u32, arg: usize, writable: bool) -> Result<isize>;

    /// Reads into `out` from file position `*pos`, advancing it.
    fn read(this: &Self, out: UserSliceWriter, pos: &mut i64) -> Result<usize>;

    /// Writes `data` at file position `*pos`, advancing it.
    fn write(this: &Self, data: UserSliceReader, pos: &mut i64) -> Result<usize>;
}

/// A range of character device numbers with a dynamically allocated major.
///
/// # Invariants
///
/// `first..first + count` was allocated by `alloc_chrdev_region()` and is
/// released on drop.
pub(crate) struct Region {
    first: bindings::dev_t,
    count: u32,
}

impl Region {
    /// Allocates `count` minors, starting at 0, under a new major shown as
    /// `name` in `/proc/devices`.
    pub(crate) fn new(count: u32, name: &'static CStr) -> Result<Self> {
        let mut first: bindings::dev_t = 0;
        // SAFETY: `first` is valid for writes; `name` is NUL-terminated and
        // `'static`, as the kernel keeps the pointer for `/proc/devices`.
        to_result(unsafe {
            bindings::alloc_chrdev_region(&mut first, 0, count, name.as_char_ptr())
        })?;
        // INVARIANT: the region was just allocated.
        Ok(Self { first, count })
    }

    /// The allocated major number.
    pub(crate) fn major(&self) -> u32 {
        self.first >> MINOR_BITS
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: by the type invariant, the range was allocated by
        // `alloc_chrdev_region()` and not released yet.
        unsafe { bindings::unregister_chrdev_region(self.first, self.count) };
    }
}

/// A registered `struct cdev` serving every minor of a [`Region`] with `T`.
///
/// # Invariants
///
/// `cdev` was allocated by `cdev_alloc()` and successfully added with
/// `cdev_add()`; this object owns the reference that `cdev_del()` drops.
pub(crate) struct Cdev<T: Operations> {
    cdev: NonNull<bindings::cdev>,
    _ops: PhantomData<T>,
}

// SAFETY: the cdev is only handed to `cdev_del()`, which may run on any thread.
unsafe impl<T: Operations> Send for Cdev<T> {}
// SAFETY: `&Cdev` offers no operation at all.
unsafe impl<T: Operations> Sync for Cdev<T> {}

impl<T: Operations> Cdev<T> {
    /// Registers a cdev for all of `region`; opens are live once this returns.
    pub(crate) fn new(region: &Region) -> Result<Self> {
        // SAFETY: `cdev_alloc()` has no preconditions.
        let cdev = NonNull::new(unsafe { bindings::cdev_alloc() }).ok_or(ENOMEM)?;
        let raw = cdev.as_ptr();
        // SAFETY: `raw` was just allocated and initialised by `cdev_alloc()`
        // and nobody else knows it yet; the vtable is a `'static`.
        unsafe {
            (*raw).owner = VTable::<T>::VTABLE.owner;
            (*raw).ops = &VTable::<T>::VTABLE;
        }
        // SAFETY: `raw` is a valid, initialised cdev and the device numbers
        // belong to `region`, which this driver owns.
        let ret = unsafe { bindings::cdev_add(raw, region.first, region.count) };
        if ret != 0 {
            // SAFETY: `cdev_add()` failed, so the cdev was never visible;
            // dropping the allocation's only reference frees it.
            unsafe { bindings::kobject_put(&raw mut (*raw).kobj) };
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: allocated and added above.
        Ok(Self {
            cdev,
            _ops: PhantomData,
        })
    }
}

impl<T: Operations> Drop for Cdev<T> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the cdev was added and this is its
        // owner's reference; `cdev_del()` stops new opens, and open files
        // keep the memory alive through their own kobject references.
        unsafe { bindings::cdev_del(self.cdev.as_ptr()) };
    }
}

/// A device class (`/sys/class/<name>`).
///
/// # Invariants
///
/// `class` was returned by a successful `class_create()` and is destroyed on drop.
pub(crate) struct Class {
    class: NonNull<bindings::class>,
}

// SAFETY: the class API is thread safe; the pointer is only passed to it.
unsafe impl Send for Class {}
// SAFETY: as above, shared use only calls the (thread safe) class API.
unsafe impl Sync for Class {}

impl Class {
    /// Creates the class `name`.
    pub(crate) fn new(name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated and `'static`, as the class keeps it.
        let ptr = unsafe { bindings::class_create(name.as_char_ptr()) };
        // `class_create()` returns an `ERR_PTR()` on failure.
        let ptr = kernel::error::from_err_ptr(ptr)?;
        // INVARIANT: created above.
        Ok(Self {
            class: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }

    /// Creates the class device `name` (e.g. `edu0`) for `devt` below
    /// `parent`; devtmpfs then creates `/dev/<name>`.
    pub(crate) fn create_device(
        &self,
        parent: &kernel::device::Device,
        devt: bindings::dev_t,
        name: &CStr,
    ) -> Result<ClassDevice> {
        // `kernel::device::Device` is a transparent wrapper of `struct device`.
        let parent = core::ptr::from_ref(parent)
            .cast::<bindings::device>()
            .cast_mut();
        // SAFETY: the class is alive (type invariant); `parent` is a live
        // device (we hold a reference); the format is a NUL-terminated "%s"
        // and `name` a NUL-terminated string that `device_create()` copies.
        let dev = unsafe {
            bindings::device_create(
                self.class.as_ptr(),
                parent,
                devt,
                core::ptr::null_mut(),
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        kernel::error::from_err_ptr(dev)?;
        // INVARIANT: the device for `devt` was created in `self.class`.
        Ok(ClassDevice {
            class: self.class,
            devt,
        })
    }
}

impl Drop for Class {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the class was created and not yet destroyed.
        unsafe { bindings::class_destroy(self.class.as_ptr()) };
    }
}

/// A device of a [`Class`], i.e. a `/dev` node; removed on drop.
///
/// # Invariants
///
/// A device numbered `devt` was created in `class` and not destroyed yet.
/// Its [`Class`] outlives it: the driver drops every `ClassDevice` (device
/// unbind) before the class (module exit, after the PCI driver is gone).
pub(crate) struct ClassDevice {
    class: NonNull<bindings::class>,
    devt: bindings::dev_t,
}

// SAFETY: `device_destroy()` may be called from any thread.
unsafe impl Send for ClassDevice {}
// SAFETY: `&ClassDevice` offers no operation at all.
unsafe impl Sync for ClassDevice {}

impl Drop for ClassDevice {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the class is alive and holds `devt`.
        unsafe { bindings::device_destroy(self.class.as_ptr(), self.devt) };
    }
}

/// A byte count or an error as `read`/`write` return it to the VFS.
fn to_ssize(r: Result<usize>) -> isize {
    match r.and_then(|n| isize::try_from(n).map_err(Error::from)) {
        Ok(n) => n,
        // Lossless: an errno (`c_int`) fits any `isize`.
        Err(e) => e.to_errno() as isize,
    }
}

/// The `file_operations` of a [`Cdev`] serving `T`.
struct VTable<T: Operations>(PhantomData<T>);

impl<T: Operations> VTable<T> {
    const VTABLE: bindings::file_operations = bindings::file_operations {
        owner: kernel::module::this_module::<crate::EduModule>().as_ptr(),
        open: Some(Self::open),
        release: Some(Self::release),
        read: Some(Self::read),
        write: Some(Self::write),
        llseek: Some(Self::llseek),
        unlocked_ioctl: Some(Self::ioctl),
        // `compat_ptr_ioctl` with compat support, `None` without.
        compat_ioctl: bindings::compat_ptr_ioctl,
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// Called by the VFS with a valid inode of this cdev and a file being opened.
    unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `inode` is valid for the duration of the call (caller).
        let minor = unsafe { (*inode).i_rdev } & ((1 << MINOR_BITS) - 1);
        match T::open(minor) {
            Ok(this) => {
                // SAFETY: the file is being opened, nobody else uses its
                // private data; `release` turns it back into the `Arc`.
                unsafe { (*file).private_data = this.into_foreign() };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFS once per file opened by [`Self::open`].
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `open` stored an `Arc<T>` there and this is the last use of it.
        drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign((*file).private_data) });
        0
    }

    /// Borrows the object `open` stored in `file`.
    ///
    /// # Safety
    ///
    /// `file` must be a file opened by [`Self::open`] and not released yet.
    unsafe fn this<'a>(file: *mut bindings::file) -> &'a T {
        // SAFETY: `open` stored an `Arc<T>`, which `release` frees only after
        // every other file operation has returned (caller).
        let this = unsafe { <Arc<T> as ForeignOwnable>::borrow((*file).private_data) };
        // SAFETY: as above, the object lives as long as the file, which
        // outlives the running file operation that uses `'a`.
        unsafe { &*core::ptr::from_ref::<T>(&this) }
    }

    /// # Safety
    ///
    /// Called by the VFS for a file opened by [`Self::open`].
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: the file is open (caller).
        let this = unsafe { Self::this(file) };
        // SAFETY: the file is open (caller); `f_mode` is set at open and
        // does not change afterwards.
        let writable = unsafe { (*file).f_mode } & FMODE_WRITE != 0;
        // `c_ulong` and `c_long` are the kernel's `usize` and `isize`.
        match T::ioctl(this, cmd, arg, writable) {
            Ok(ret) => ret,
            // Lossless: an errno (`c_int`) fits any `c_long`.
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS for a file opened by [`Self::open`], with a user
    /// buffer of `count` bytes and a valid position pointer.
    unsafe extern "C" fn read(
        file: *mut bindings::file,
        buf: *mut c_char,
        count: usize,
        pos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: the file is open (caller).
        let this = unsafe { Self::this(file) };
        let out = UserSlice::new(UserPtr::from_ptr(buf.cast::<c_void>()), count).writer();
        // SAFETY: `pos` is valid for reads and writes during the call (caller).
        let pos = unsafe { &mut *pos };
        to_ssize(T::read(this, out, pos))
    }

    /// # Safety
    ///
    /// Called by the VFS for a file opened by [`Self::open`], with a user
    /// buffer of `count` bytes and a valid position pointer.
    unsafe extern "C" fn write(
        file: *mut bindings::file,
        buf: *const c_char,
        count: usize,
        pos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: the file is open (caller).
        let this = unsafe { Self::this(file) };
        let data = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast::<c_void>()), count);
        // SAFETY: `pos` is valid for reads and writes during the call (caller).
        let pos = unsafe { &mut *pos };
        to_ssize(T::write(this, data.reader(), pos))
    }

    /// # Safety
    ///
    /// Called by the VFS for a file opened by [`Self::open`].
    unsafe extern "C" fn llseek(
        file: *mut bindings::file,
        offset: bindings::loff_t,
        whence: c_int,
    ) -> bindings::loff_t {
        // SAFETY: `file` is a valid open file (caller); the helper
        // implements SEEK_SET/CUR/END within `0..=T::SIZE`.
        unsafe { bindings::fixed_size_llseek(file, offset, whence, T::SIZE) }
    }
}
