//! The few system calls the unbind and unload cases need beyond sysfs:
//! unloading and loading a module, and making a device node.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::errno::Errno;

/// Packs (major, minor) into a Linux `dev_t`, as glibc's `makedev()`.
pub fn make_dev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8)
        | ((major & 0xffff_f000) << 32)
        | (minor & 0xff)
        | ((minor & 0xffff_ff00) << 12)
}

fn c_path(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| Errno(libc::EINVAL))
}

/// `mknod(path, S_IFCHR | 0600, makedev(major, minor))`.
pub fn mknod_char(path: &Path, major: u64, minor: u64) -> Result<(), Errno> {
    let c = c_path(path)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o600,
            make_dev(major, minor) as libc::dev_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// `delete_module(name, O_NONBLOCK)`: what `rmmod name` does.
pub fn delete_module(name: &str) -> Result<(), Errno> {
    let c = CString::new(name).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: `c` is a NUL-terminated module name that outlives the call;
    // the kernel only reads it.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, c.as_ptr(), libc::O_NONBLOCK) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// `finit_module(open(ko), params, 0)`: what `insmod ko params` does.
pub fn load_module(ko: &Path, params: &str) -> Result<(), Errno> {
    let file = File::open(ko).map_err(|e| Errno::from_io(&e).unwrap_or(Errno(libc::EIO)))?;
    let c = CString::new(params).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: the fd is open for the call and `c` is a NUL-terminated
    // parameter string that outlives it; the kernel only reads both.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), c.as_ptr(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// The module's current parameters as an insmod argument string, from
/// `/sys/module/NAME/parameters` (unreadable ones are left out).
pub fn current_params(name: &str) -> String {
    let dir = format!("/sys/module/{name}/parameters");
    let mut params: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let value = std::fs::read_to_string(e.path()).ok()?;
                    let key = e.file_name().into_string().ok()?;
                    Some(format!("{key}={}", value.trim()))
                })
                .collect()
        })
        .unwrap_or_default();
    params.sort();
    params.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selftest::sysfs::split_dev;

    #[test]
    fn make_dev_inverts_split_dev() {
        for (maj, min) in [(1, 3), (245, 0), (253, 15), (4096, 300), (511, 1 << 19)] {
            assert_eq!(split_dev(make_dev(maj, min)), (maj, min));
        }
        assert_eq!(make_dev(245, 0), 245 << 8);
    }

    #[test]
    fn missing_module_files_and_names() {
        assert_eq!(
            load_module(Path::new("/nonexistent/edu.ko"), ""),
            Err(Errno(libc::ENOENT))
        );
        assert_eq!(current_params("no-such-module-here"), "");
    }
}
