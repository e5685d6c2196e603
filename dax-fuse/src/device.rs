//! The device under the filesystem: [`open_fs`] builds a [`MemDriver`] (the pmem-like
//! production driver) over a memfd, shmem THP, hugetlb or a file, and formats it
//! ([`TestFs::mkfs`](fsdax::testing::TestFs::mkfs)) or mounts the TestFs it holds
//! ([`TestFs::open`](fsdax::testing::TestFs::open), the kernel's `fill_super`).

use std::sync::Arc;

use fsdax::device::{DaxDevice, PAGE_SIZE, PMD_SIZE};
use fsdax::drivers::{MemDriver, hugetlb_pages_available, shmem_thp_enabled};
use fsdax::testing::TestFs;

use crate::options::{DEFAULT_SIZE, Memory};

/// A mounted TestFs and a line saying what it is on.
#[derive(Debug)]
pub struct Opened {
    /// The filesystem.
    pub fs: TestFs,
    /// E.g. `new 1 GiB TestFs on memfd`.
    pub what: String,
}

/// `1 GiB`, `512 MiB`, `4096 bytes`.
pub fn human(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

fn check_multiple(size: u64, unit: usize, what: &str) -> Result<(), String> {
    if size.is_multiple_of(unit as u64) {
        Ok(())
    } else {
        Err(format!(
            "--size {size} is not a multiple of {} ({what})",
            human(unit as u64)
        ))
    }
}

/// Builds the device `memory` asks for and the TestFs on it: a memory device and a
/// new or empty image file are formatted, an image with contents is mounted from its
/// last checkpoint. Errors are one line, without the program name.
pub fn open_fs(memory: &Memory, size: Option<u64>) -> Result<Opened, String> {
    let new_size = size.unwrap_or(DEFAULT_SIZE);
    let (driver, kind) = match memory {
        Memory::Memfd => {
            check_multiple(new_size, PAGE_SIZE, "the page size")?;
            (MemDriver::memfd(new_size), "memfd".to_owned())
        }
        Memory::Thp => {
            check_multiple(new_size, PMD_SIZE, "--thp uses 2 MiB pages")?;
            if !shmem_thp_enabled() {
                return Err(
                    "--thp: shmem transparent huge pages are off (as root: echo advise > \
                     /sys/kernel/mm/transparent_hugepage/shmem_enabled)"
                        .into(),
                );
            }
            (MemDriver::shmem_thp(new_size), "shmem THP memfd".to_owned())
        }
        Memory::Hugetlb => {
            check_multiple(new_size, PMD_SIZE, "--hugetlb uses 2 MiB pages")?;
            let need = new_size / PMD_SIZE as u64;
            let free = hugetlb_pages_available();
            if free < need {
                return Err(format!(
                    "--hugetlb: {} needs {need} free 2 MiB huge pages, {free} are free \
                     (as root: sysctl vm.nr_hugepages={need})",
                    human(new_size)
                ));
            }
            (MemDriver::hugetlb(new_size), "hugetlb memfd".to_owned())
        }
        Memory::Image(path) => {
            let existing = match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => {
                    return Err(format!("--image {}: is a directory", path.display()));
                }
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(format!("--image {}: {e}", path.display())),
            };
            if existing > 0 {
                if let Some(s) = size.filter(|&s| s != existing) {
                    return Err(format!(
                        "--image {} holds {} but --size says {} (leave --size out to mount it)",
                        path.display(),
                        human(existing),
                        human(s)
                    ));
                }
                let dev: Arc<DaxDevice> = MemDriver::open_file(path)
                    .map_err(|e| format!("--image {}: {e}", path.display()))?
                    .into_device();
                let fs = TestFs::open(dev)
                    .map_err(|e| format!("--image {}: no TestFs to mount: {e}", path.display()))?;
                return Ok(Opened {
                    fs,
                    what: format!(
                        "existing {} TestFs on image {}",
                        human(existing),
                        path.display()
                    ),
                });
            }
            check_multiple(new_size, PAGE_SIZE, "the page size")?;
            (
                MemDriver::file(path, new_size),
                format!("image {}", path.display()),
            )
        }
    };
    let dev: Arc<DaxDevice> = driver.map_err(|e| format!("{kind}: {e}"))?.into_device();
    let fs = TestFs::mkfs(dev).map_err(|e| format!("mkfs on {kind}: {e}"))?;
    Ok(Opened {
        fs,
        what: format!("new {} TestFs on {kind}", human(new_size)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human(3 << 20), "3 MiB");
        assert_eq!(human(4097), "4097 bytes");
    }

    #[test]
    fn image_is_formatted_then_reopened() {
        let dir = std::env::temp_dir().join(format!("dax-fuse-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("img");
        let _ = std::fs::remove_file(&img);
        let o = open_fs(&Memory::Image(img.clone()), Some(8 << 20)).unwrap();
        assert!(o.what.starts_with("new 8 MiB"), "{}", o.what);
        let ino = o.fs.create("f").unwrap();
        o.fs.write(ino, 0, b"kept").unwrap();
        o.fs.unmount().unwrap();
        let o = open_fs(&Memory::Image(img.clone()), None).unwrap();
        assert!(o.what.starts_with("existing"), "{}", o.what);
        assert_eq!(o.fs.stat(o.fs.lookup("f").unwrap()).unwrap().size, 4);
        drop(o);
        let e = open_fs(&Memory::Image(img.clone()), Some(16 << 20)).unwrap_err();
        assert!(e.contains("--size"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
