//! Errno values as their C names and meanings, for error messages that say
//! exactly what the kernel answered ("EINVAL (Invalid argument)").
//!
//! The table is ours rather than `strerror(3)`, so the text is the same
//! whichever libc the binary is linked with.

use std::fmt;
use std::io;

/// A raw errno value returned by a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// `(value, name, meaning)` for the errnos a char device driver can return.
const TABLE: &[(i32, &str, &str)] = &[
    (libc::EPERM, "EPERM", "Operation not permitted"),
    (libc::ENOENT, "ENOENT", "No such file or directory"),
    (libc::ESRCH, "ESRCH", "No such process"),
    (libc::EINTR, "EINTR", "Interrupted system call"),
    (libc::EIO, "EIO", "Input/output error"),
    (libc::ENXIO, "ENXIO", "No such device or address"),
    (libc::E2BIG, "E2BIG", "Argument list too long"),
    (libc::EBADF, "EBADF", "Bad file descriptor"),
    (libc::ECHILD, "ECHILD", "No child processes"),
    (libc::EAGAIN, "EAGAIN", "Resource temporarily unavailable"),
    (libc::ENOMEM, "ENOMEM", "Cannot allocate memory"),
    (libc::EACCES, "EACCES", "Permission denied"),
    (libc::EFAULT, "EFAULT", "Bad address"),
    (libc::EBUSY, "EBUSY", "Device or resource busy"),
    (libc::EEXIST, "EEXIST", "File exists"),
    (libc::ENODEV, "ENODEV", "No such device"),
    (libc::ENOTDIR, "ENOTDIR", "Not a directory"),
    (libc::EISDIR, "EISDIR", "Is a directory"),
    (libc::EINVAL, "EINVAL", "Invalid argument"),
    (libc::ENFILE, "ENFILE", "Too many open files in system"),
    (libc::EMFILE, "EMFILE", "Too many open files"),
    (libc::ENOTTY, "ENOTTY", "Inappropriate ioctl for device"),
    (libc::EFBIG, "EFBIG", "File too large"),
    (libc::ENOSPC, "ENOSPC", "No space left on device"),
    (libc::ESPIPE, "ESPIPE", "Illegal seek"),
    (libc::EROFS, "EROFS", "Read-only file system"),
    (libc::EPIPE, "EPIPE", "Broken pipe"),
    (libc::ERANGE, "ERANGE", "Numerical result out of range"),
    (libc::EDEADLK, "EDEADLK", "Resource deadlock avoided"),
    (libc::ENOSYS, "ENOSYS", "Function not implemented"),
    (
        libc::EOVERFLOW,
        "EOVERFLOW",
        "Value too large for defined data type",
    ),
    (libc::EOPNOTSUPP, "EOPNOTSUPP", "Operation not supported"),
    (libc::ETIMEDOUT, "ETIMEDOUT", "Connection timed out"),
    (libc::ECANCELED, "ECANCELED", "Operation canceled"),
    // Kernel-internal values that must never reach userspace; naming them
    // makes such a driver bug obvious.
    (
        512,
        "ERESTARTSYS",
        "kernel-internal restart code leaked to userspace",
    ),
    (
        513,
        "ERESTARTNOINTR",
        "kernel-internal restart code leaked to userspace",
    ),
    (
        516,
        "ERESTART_RESTARTBLOCK",
        "kernel-internal restart code leaked to userspace",
    ),
    (
        524,
        "ENOTSUPP",
        "kernel-internal error code leaked to userspace",
    ),
];

impl Errno {
    /// The errno of the last failed libc call on this thread.
    pub fn last() -> Self {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The errno carried by an I/O error, if it has one.
    pub fn from_io(err: &io::Error) -> Option<Self> {
        err.raw_os_error().map(Errno)
    }

    /// The C name, e.g. `"EINVAL"`, or `None` for a value not in the table.
    pub fn name(self) -> Option<&'static str> {
        TABLE.iter().find(|e| e.0 == self.0).map(|e| e.1)
    }

    /// The meaning, e.g. `"Invalid argument"`.
    pub fn meaning(self) -> Option<&'static str> {
        TABLE.iter().find(|e| e.0 == self.0).map(|e| e.2)
    }
}

impl fmt::Display for Errno {
    /// `EINVAL (Invalid argument)`, or `errno 1234` for an unknown value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.meaning()) {
            (Some(name), Some(meaning)) => write!(f, "{name} ({meaning})"),
            _ => write!(f, "errno {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_errnos_the_driver_returns() {
        assert_eq!(Errno(libc::EINVAL).to_string(), "EINVAL (Invalid argument)");
        assert_eq!(
            Errno(libc::ENOTTY).to_string(),
            "ENOTTY (Inappropriate ioctl for device)"
        );
        assert_eq!(Errno(libc::EFAULT).name(), Some("EFAULT"));
        assert_eq!(Errno(libc::ENODEV).name(), Some("ENODEV"));
        assert_eq!(Errno(libc::ENOSPC).name(), Some("ENOSPC"));
        assert_eq!(Errno(libc::ETIMEDOUT).name(), Some("ETIMEDOUT"));
        assert_eq!(Errno(512).name(), Some("ERESTARTSYS"));
    }

    #[test]
    fn unknown_values_print_the_number() {
        assert_eq!(Errno(4242).name(), None);
        assert_eq!(Errno(4242).to_string(), "errno 4242");
    }

    #[test]
    fn table_has_no_duplicate_values_or_names() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert_ne!(a.0, b.0, "{} and {}", a.1, b.1);
                assert_ne!(a.1, b.1);
            }
        }
    }

    #[test]
    fn io_errors_carry_their_errno() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(Errno::from_io(&e), Some(Errno(libc::ENOSPC)));
        assert_eq!(Errno::from_io(&io::Error::other("x")), None);
    }
}
