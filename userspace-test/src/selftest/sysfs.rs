//! Finding an edu device in sysfs, and unbinding/rebinding it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// PCI vendor and device id of QEMU's edu.
const EDU_VENDOR: &str = "0x1234";
const EDU_DEVICE: &str = "0x11e8";

/// Splits a Linux `dev_t` into (major, minor), as glibc's `major()` and
/// `minor()` do.
pub fn split_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    (major, minor)
}

/// `(major, minor)` of a char device node.
pub fn node_numbers(node: &str) -> Result<(u64, u64), String> {
    let md = fs::metadata(node).map_err(|e| format!("{node}: {e}"))?;
    Ok(split_dev(md.rdev()))
}

fn read_trimmed(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

fn is_edu(pci_dir: &Path) -> bool {
    read_trimmed(&pci_dir.join("vendor")).as_deref() == Some(EDU_VENDOR)
        && read_trimmed(&pci_dir.join("device")).as_deref() == Some(EDU_DEVICE)
}

/// The PCI device directory (under /sys/devices) of the device behind the
/// char node `node`: through `/sys/dev/char/MAJ:MIN/device`, or, without
/// it, the `minor`-th edu device found in `/sys/bus/pci/devices`.
pub fn pci_dir_of(node: &str) -> Result<PathBuf, String> {
    let (major, minor) = node_numbers(node)?;
    let link = PathBuf::from(format!("/sys/dev/char/{major}:{minor}/device"));
    if let Ok(dir) = fs::canonicalize(&link) {
        if is_edu(&dir) {
            return Ok(dir);
        }
        return Err(format!("{} is not a 1234:11e8 device", dir.display()));
    }
    let mut edus: Vec<PathBuf> = fs::read_dir("/sys/bus/pci/devices")
        .map_err(|e| format!("/sys/bus/pci/devices: {e}"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| fs::canonicalize(e.path()).ok())
        .filter(|d| is_edu(d))
        .collect();
    edus.sort();
    edus.into_iter()
        .nth(minor as usize)
        .ok_or_else(|| format!("no edu PCI device for {node} (minor {minor})"))
}

/// The PCI address (e.g. `0000:00:04.0`) of a PCI device directory.
pub fn pci_address(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The driver directory a PCI device is bound to, if any.
pub fn bound_driver(dir: &Path) -> Option<PathBuf> {
    fs::canonicalize(dir.join("driver")).ok()
}

/// Writes the device's address to the driver's `unbind` or `bind` file.
pub fn write_control(driver: &Path, file: &str, addr: &str) -> Result<(), String> {
    let p = driver.join(file);
    fs::write(&p, addr).map_err(|e| format!("writing {addr} to {}: {e}", p.display()))
}

/// The `/dev` node of the char device whose parent is `pci_dir`, found
/// through `/sys/dev/char/*/device`; waits up to `wait` for it to appear.
pub fn node_of(pci_dir: &Path, wait: Duration) -> Result<String, String> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(node) = find_node(pci_dir) {
            if Path::new(&node).exists() {
                return Ok(node);
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no /dev node for {} after {} s",
                pci_dir.display(),
                wait.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn find_node(pci_dir: &Path) -> Option<String> {
    for entry in fs::read_dir("/sys/dev/char").ok()?.filter_map(|e| e.ok()) {
        if fs::canonicalize(entry.path().join("device"))
            .ok()
            .as_deref()
            != Some(pci_dir)
        {
            continue;
        }
        let uevent = fs::read_to_string(entry.path().join("uevent")).ok()?;
        if let Some(name) = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME=")) {
            return Some(format!("/dev/{name}"));
        }
    }
    None
}

/// Every `/dev/eduN` node, in order of N.
pub fn numbered_nodes() -> Vec<String> {
    let mut nodes: Vec<(u32, String)> = fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let n = name.strip_prefix("edu")?.parse::<u32>().ok()?;
                    Some((n, format!("/dev/{name}")))
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes.into_iter().map(|n| n.1).collect()
}

/// The N of a `/dev/eduN` path.
pub fn node_index(path: &str) -> Option<u32> {
    Path::new(path)
        .file_name()?
        .to_str()?
        .strip_prefix("edu")?
        .parse()
        .ok()
}

/// The loaded module's name, and its file for loading it again.
pub const MODULE: &str = "edu";
pub const MODULE_FILE: &str = "/lib/modules/edu.ko";

/// Where the device under test lives, found before the first case, so that
/// the suite can put it back when a case left it unbound or unloaded the
/// module.
pub struct Home {
    pci: PathBuf,
    driver: PathBuf,
    addr: String,
    /// The module's parameters at the start, for loading it again.
    params: String,
}

impl Home {
    /// The device behind `node`, if it is bound to a driver in sysfs.
    pub fn find(node: &str) -> Option<Self> {
        let pci = pci_dir_of(node).ok()?;
        let driver = bound_driver(&pci)?;
        Some(Home {
            addr: pci_address(&pci),
            pci,
            driver,
            params: super::kmod::current_params(MODULE),
        })
    }

    /// Loads the module if it is gone and binds the device if it is not
    /// bound. Returns what it had to do, if anything.
    pub fn restore(&self) -> Result<Option<String>, String> {
        if bound_driver(&self.pci).as_ref() == Some(&self.driver) {
            return Ok(None);
        }
        let mut done = Vec::new();
        if !self.driver.exists() {
            super::kmod::load_module(Path::new(MODULE_FILE), &self.params)
                .map_err(|e| format!("loading {MODULE_FILE} {}: {e}", self.params))?;
            done.push(format!("loaded {MODULE_FILE} again"));
        }
        if bound_driver(&self.pci).as_ref() != Some(&self.driver) {
            write_control(&self.driver, "bind", &self.addr)?;
            done.push(format!("bound {} again", self.addr));
        }
        node_of(&self.pci, Duration::from_secs(5))?;
        Ok(Some(done.join(" and ")))
    }

    /// The node to test next: `old`, or the device's current `/dev/eduN`
    /// if `old` was one (a rebind may give the device another minor).
    pub fn node(&self, old: &str) -> String {
        if node_index(old).is_some() {
            node_of(&self.pci, Duration::from_secs(5)).unwrap_or_else(|_| old.to_string())
        } else {
            old.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_t_split_matches_the_kernel_encoding() {
        // makedev(245, 0) and makedev(4095+1, 300) in glibc's encoding.
        assert_eq!(split_dev(245 << 8), (245, 0));
        let (maj, min) = (4096u64, 300u64);
        let dev =
            ((maj & 0xfff) << 8) | ((maj & !0xfff) << 32) | (min & 0xff) | ((min & !0xff) << 12);
        assert_eq!(split_dev(dev), (maj, min));
    }

    #[test]
    fn node_numbers_of_a_real_node() {
        // /dev/null is char 1:3 on every Linux.
        assert_eq!(node_numbers("/dev/null"), Ok((1, 3)));
    }

    #[test]
    fn node_indices() {
        assert_eq!(node_index("/dev/edu0"), Some(0));
        assert_eq!(node_index("/dev/edu12"), Some(12));
        assert_eq!(node_index("/dev/edu"), None);
        assert_eq!(node_index("/tmp/x"), None);
    }

    #[test]
    fn pci_address_is_the_last_component() {
        assert_eq!(
            pci_address(Path::new("/sys/devices/pci0000:00/0000:00:04.0")),
            "0000:00:04.0"
        );
    }
}
