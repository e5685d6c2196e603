//! DAX drivers over the memory userspace filesystems really run on, with safe
//! constructors.
//!
//! A filesystem built on `fsdax` (or `dax-device`) reaches its storage through a
//! [`DaxDevice`](dax_device::DaxDevice), which wraps a driver: an implementation of
//! the `unsafe trait` [`DaxOperations`](dax_device::DaxOperations), the kernel's
//! `struct dax_operations`. [`MemDriver`] is that driver for memory mapped into this
//! process, so a filesystem needs no `unsafe` of its own:
//!
//! | constructor | memory | page size | kernel counterpart |
//! |---|---|---|---|
//! | [`MemDriver::anonymous`] | shared anonymous memory (no descriptor: no `mmap` of files) | 4 KiB | — |
//! | [`MemDriver::memfd`] | a memfd | 4 KiB | pmem (drivers/nvdimm/pmem.c) over DRAM |
//! | [`MemDriver::shmem_thp`] | a memfd on transparent huge pages: 2 MiB and 4 KiB mappings of the same memory | 4 KiB (2 MiB mappings too) | pmem |
//! | [`MemDriver::hugetlb`] | a hugetlb memfd | 2 MiB only | device-dax (drivers/dax/device.c) with 2 MiB alignment |
//! | [`MemDriver::file`], [`MemDriver::open_file`] | a regular file: persistent, flushed with `fdatasync` | 4 KiB | virtio-pmem (a file on the host) |
//! | [`MemDriver::dev_dax`] | `/dev/daxX.Y` | the device's alignment | device-dax |
//! | [`MemDriver::from_fd`] | a descriptor you opened | 4 KiB unless told | — |
//!
//! [`MemOptions`] adds prefaulting and the rest; [`MemDriver::into_device`] wraps
//! the driver in a live `DaxDevice` with the flags the pmem driver sets. The probes
//! [`shmem_thp_enabled`], [`hugetlb_pages_available`] and [`dev_dax_nodes`] say
//! what this machine offers.
//!
//! ```
//! use dax_device::{DaxAccessMode, DaxError, DaxOperations};
//! use dax_drivers::MemDriver;
//!
//! // 4 MiB of memfd, as a device with pmem's flags.
//! let dev = MemDriver::memfd(4 << 20)?.into_device();
//! assert!(dev.synchronous() && dev.write_cache_enabled());
//! {
//!     // Device memory is reached inside a read section, by copies.
//!     let section = dev.read_lock();
//!     let pages = section.direct_access(512, 1, DaxAccessMode::Access)?;
//!     assert_eq!(pages.copy_from(0, b"superblock"), 10);
//!     assert!(pages.pfn().is_aligned(9)); // 2 MiB-aligned offsets map 2 MiB-aligned
//! }
//! // The block path sees the same bytes.
//! let mut back = [0u8; 10];
//! dev.driver().read(2 << 20, &mut back)?;
//! assert_eq!(&back, b"superblock");
//! // And the memfd can be mapped again (by `dax_fault::mmu`, for files).
//! assert_eq!(dev.driver().map_source().unwrap().page_size, 4096);
//! # Ok::<(), DaxError>(())
//! ```
//!
//! All `unsafe` code of the crate is in two places: the mapping and its raw copies
//! (the private `region` module) and the `unsafe impl DaxOperations for MemDriver`
//! (the promise about the addresses it answers).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod driver;
mod probe;
#[allow(unsafe_code)]
mod region;

pub use driver::{MemDriver, MemKind, MemOptions};
pub use probe::{SHMEM_THP_SWITCH, dev_dax_nodes, hugetlb_pages_available, shmem_thp_enabled};
