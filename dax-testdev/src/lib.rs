//! A real DAX test driver and a small extent filesystem, for dax-rs.
//!
//! [`MemDevice`] is a driver (an implementation of [`dax_device::DaxOperations`]) over
//! real memory: anonymous, a memfd, a hugetlb memfd (2 MiB pages), a file (persistent
//! across process restarts), a `/dev/daxX.Y` node, or (for Miri, which cannot map
//! memory) the heap. The memory is a [`dax_drivers::MemDriver`], the production
//! driver, for all but the heap; on top of it `MemDevice` behaves
//! like the kernel's pmem driver around media errors (drivers/nvdimm/pmem.c), and lets
//! tests inject poison, make operations fail, count calls and simulate power loss
//! (record the device at every flush, then build the images a crash could leave:
//! [`power`]).
//!
//! [`TestFs`] is a small extent filesystem on such a device (or any
//! [`DaxDevice`](dax_device::DaxDevice)): the worked example of a filesystem driving the
//! dax-rs engine, used by tests, benches and examples. See [`testfs`].
//!
//! ```
//! use dax_device::{DaxAccessMode, DaxError};
//! use dax_testdev::MemDevice;
//!
//! let dev = MemDevice::builder().size(1 << 20).build()?;
//! dev.driver().poison(8192, 512)?; // one bad sector in page 2
//! let section = dev.read_lock();
//! let err = section.direct_access(0, 4, DaxAccessMode::Access).unwrap_err();
//! assert_eq!(err.errno(), libc::EHWPOISON);
//! drop(section);
//! dev.zero_page_range(2, 1)?; // writing through the driver clears the poison
//! assert!(dev.driver().badblocks().is_empty());
//! # Ok::<(), DaxError>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod counters;
#[allow(unsafe_code)]
mod heap;
mod memdev;
pub mod power;
pub mod testfs;

pub use dax_drivers::shmem_thp_enabled;
pub use memdev::{
    Backing, DevOp, FailSchedule, MemDevice, MemDeviceBuilder, memory_failure, parse_size,
};
pub use power::{Line, PointCause, PowerLog, PowerOptions, PowerPoint, Replay, Subset};
pub use testfs::{
    Attr, BLOCK_SIZE, DirEntry, ExtentInfo, FallocMode, FileHandle, FileKind, Ino, IomapHook,
    Layout, MAX_LINKS, MAX_NAME_LEN, MkfsOptions, Perm, ROOT_INO, RenameFlags, SetAttr, Stat,
    StatFs, TestFs, TestInode,
};
