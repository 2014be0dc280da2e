//! Opening `/dev/kvm` with errors a user can act on, and telling a
//! hardware-accelerated KVM from an emulating one.
//!
//! Some hosts expose a KVM that runs a non-paravirtualised guest by
//! instruction emulation (the `kvm_pvm` module): tiny guests work, Linux is
//! impractically slow. The module name is the reliable tell; we print it at
//! start so a slow boot is never a mystery.

use std::fmt;
use std::path::Path;

use kvm_ioctls::{Cap, Kvm};

/// The KVM API version every KVM since Linux 2.6.22 reports.
const KVM_API_VERSION: i32 = 12;

/// Errors opening KVM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/dev/kvm` does not exist.
    #[error("/dev/kvm does not exist: this host has no KVM (load kvm_intel or kvm_amd, or enable virtualization in the firmware)")]
    NoDevice,
    /// `/dev/kvm` exists but we may not open it.
    #[error("/dev/kvm: permission denied (add this user to the `kvm` group or run as root)")]
    Permission,
    /// Any other open failure.
    #[error("cannot open /dev/kvm: {0}")]
    Open(#[source] kvm_ioctls::Error),
    /// The API version is not the stable one.
    #[error("KVM API version {0} is not the supported version {KVM_API_VERSION}")]
    ApiVersion(i32),
    /// A capability the VMM needs is missing.
    #[error("KVM lacks a capability edu-vmm needs: {0}")]
    MissingCap(&'static str),
}

/// What kind of KVM the host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmKind {
    /// Hardware virtualization through the named module (`kvm_intel`/`kvm_amd`).
    Hardware(&'static str),
    /// A KVM that emulates guest instructions (`kvm_pvm`).
    Emulating(&'static str),
    /// No module we know is loaded (KVM built in, or a container view).
    Unknown,
}

impl fmt::Display for KvmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvmKind::Hardware(m) => write!(f, "hardware-accelerated KVM ({m})"),
            KvmKind::Emulating(m) => write!(
                f,
                "emulating KVM ({m}): guests run by instruction emulation, about 1M instructions/s; \
                 Linux will not boot in reasonable time here (run nested under a hardware-virtualization KVM)"
            ),
            KvmKind::Unknown => write!(
                f,
                "KVM of unknown kind (no kvm_intel, kvm_amd or kvm_pvm module visible)"
            ),
        }
    }
}

/// Classifies KVM from the modules present under `sys_module`
/// (normally `/sys/module`) and the CPU flags in `cpuinfo` (the text of
/// `/proc/cpuinfo`). An emulating module wins over a hardware one, since it
/// is what `/dev/kvm` serves when both are present. A kernel with both
/// `kvm_intel` and `kvm_amd` built in lists both; the CPU's `vmx` or `svm`
/// flag says which one works.
pub fn detect_kind(sys_module: &Path, cpuinfo: &str) -> KvmKind {
    if sys_module.join("kvm_pvm").exists() {
        return KvmKind::Emulating("kvm_pvm");
    }
    let intel = sys_module.join("kvm_intel").exists();
    let amd = sys_module.join("kvm_amd").exists();
    let flag = |f: &str| {
        cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|w| w == f))
    };
    match (intel, amd) {
        (true, true) if flag("svm") && !flag("vmx") => KvmKind::Hardware("kvm_amd"),
        (true, _) => KvmKind::Hardware("kvm_intel"),
        (false, true) => KvmKind::Hardware("kvm_amd"),
        (false, false) => KvmKind::Unknown,
    }
}

/// Classifies this host's KVM (see [`detect_kind`]).
pub fn detect() -> KvmKind {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    detect_kind(Path::new("/sys/module"), &cpuinfo)
}

/// Opens `/dev/kvm` and checks the capabilities the VMM relies on.
pub fn open() -> Result<Kvm, Error> {
    let kvm = Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT | libc::ENODEV => Error::NoDevice,
        libc::EACCES | libc::EPERM => Error::Permission,
        _ => Error::Open(e),
    })?;
    let v = kvm.get_api_version();
    if v != KVM_API_VERSION {
        return Err(Error::ApiVersion(v));
    }
    for (cap, name) in [
        (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (Cap::Pit2, "KVM_CAP_PIT2"),
        (Cap::SignalMsi, "KVM_CAP_SIGNAL_MSI"),
        (Cap::Irqfd, "KVM_CAP_IRQFD"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
        (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(Error::MissingCap(name));
        }
    }
    Ok(kvm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sys(modules: &[&str]) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "edu-vmm-sysmod-{}-{}",
            std::process::id(),
            modules.join("-")
        ));
        let _ = std::fs::remove_dir_all(&d);
        for m in modules {
            std::fs::create_dir_all(d.join(m)).unwrap();
        }
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn detects_module_kinds() {
        assert_eq!(
            detect_kind(&fake_sys(&["kvm", "kvm_amd"]), ""),
            KvmKind::Hardware("kvm_amd")
        );
        assert_eq!(
            detect_kind(&fake_sys(&["kvm_intel"]), ""),
            KvmKind::Hardware("kvm_intel")
        );
        assert_eq!(
            detect_kind(&fake_sys(&["kvm_pvm", "kvm_amd"]), ""),
            KvmKind::Emulating("kvm_pvm")
        );
        assert_eq!(detect_kind(&fake_sys(&["kvm"]), ""), KvmKind::Unknown);
    }

    #[test]
    fn both_built_in_is_decided_by_cpu_flags() {
        let both = fake_sys(&["kvm_intel", "kvm_amd"]);
        let amd = "processor\t: 0\nflags\t\t: fpu sse2 svm npt\n";
        let intel = "processor\t: 0\nflags\t\t: fpu sse2 vmx ept\n";
        assert_eq!(detect_kind(&both, amd), KvmKind::Hardware("kvm_amd"));
        assert_eq!(detect_kind(&both, intel), KvmKind::Hardware("kvm_intel"));
    }

    #[test]
    fn messages_name_the_problem() {
        assert!(Error::NoDevice.to_string().contains("/dev/kvm"));
        assert!(Error::Permission.to_string().contains("permission"));
        assert!(KvmKind::Emulating("kvm_pvm").to_string().contains("emulat"));
    }
}
