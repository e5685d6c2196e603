//! What this machine offers: shmem transparent huge pages, free hugetlb pages,
//! device-dax nodes, and the geometry of one.

use std::os::fd::AsFd;
use std::path::PathBuf;

use dax_device::{DaxError, PAGE_SIZE, PMD_SIZE};

use crate::driver::os;

/// The sysfs switch for transparent huge pages on shmem (and so on memfds).
pub const SHMEM_THP_SWITCH: &str = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";

/// Whether shmem may be backed by transparent huge pages for memory that asks with
/// `MADV_HUGEPAGE` ([`SHMEM_THP_SWITCH`] reads `advise`, `always`, `within_size` or
/// `force`): what [`MemDriver::shmem_thp`](crate::MemDriver::shmem_thp) needs.
pub fn shmem_thp_enabled() -> bool {
    std::fs::read_to_string(SHMEM_THP_SWITCH).is_ok_and(|s| {
        ["[advise]", "[always]", "[within_size]", "[force]"]
            .iter()
            .any(|m| s.contains(m))
    })
}

/// How many 2 MiB hugetlb pages are free and not promised to a mapping yet
/// (`free_hugepages - resv_hugepages` under
/// `/sys/kernel/mm/hugepages/hugepages-2048kB`): how large a
/// [`MemDriver::hugetlb`](crate::MemDriver::hugetlb) device can be made now, in
/// 2 MiB units. 0 when hugetlb is unavailable. The pool is set with
/// `sysctl vm.nr_hugepages=N` (as root).
pub fn hugetlb_pages_available() -> u64 {
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/kernel/mm/hugepages/hugepages-2048kB/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    read("free_hugepages")
        .unwrap_or(0)
        .saturating_sub(read("resv_hugepages").unwrap_or(0))
}

/// The device-dax character devices of this machine (`/dev/daxX.Y`, the nodes
/// drivers/dax/device.c creates), in name order: what
/// [`MemDriver::dev_dax`](crate::MemDriver::dev_dax) opens. Empty when there are none.
pub fn dev_dax_nodes() -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    let mut nodes: Vec<PathBuf> = dir
        .filter_map(Result::ok)
        .filter(|e| is_dev_dax_name(&e.file_name().to_string_lossy()))
        .filter(|e| {
            use std::os::unix::fs::FileTypeExt;
            e.file_type().is_ok_and(|t| t.is_char_device())
        })
        .map(|e| e.path())
        .collect();
    nodes.sort();
    nodes
}

/// `daxX.Y` with decimal X and Y.
fn is_dev_dax_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix("dax")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(region, id)| digits(region) && digits(id))
}

/// Size and alignment of a device-dax node, from `/sys/dev/char/MAJ:MIN/{size,align}`
/// (the attributes drivers/dax/bus.c publishes). Not a character device, or one
/// without those attributes: [`DaxError::NotSupported`].
pub(crate) fn devdax_geometry(fd: impl AsFd) -> Result<(u64, usize), DaxError> {
    let st = rustix::fs::fstat(fd.as_fd()).map_err(|e| os("fstat of the device-dax node", e))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::CharacterDevice {
        return Err(DaxError::NotSupported {
            what: "not a device-dax node (not a character device)",
        });
    }
    let (maj, min) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    let dir = PathBuf::from(format!("/sys/dev/char/{maj}:{min}"));
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let size = read("size").ok_or(DaxError::NotSupported {
        what: "not a device-dax node (no sysfs size)",
    })?;
    let align = read("align").unwrap_or(PMD_SIZE as u64);
    let align = usize::try_from(align)
        .ok()
        .filter(|a| a.is_power_of_two())
        .ok_or(DaxError::NotSupported {
            what: "device-dax alignment is not a power of two",
        })?;
    Ok((size, align.max(PAGE_SIZE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_dax_names() {
        assert!(is_dev_dax_name("dax0.0"));
        assert!(is_dev_dax_name("dax12.345"));
        for bad in [
            "dax", "dax0", "dax0.", "dax.0", "daxa.0", "dax0.0x", "xdax0.0",
        ] {
            assert!(!is_dev_dax_name(bad), "{bad}");
        }
    }
}
