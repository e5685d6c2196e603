//! The Linux DAX core for userspace filesystems on byte-addressable memory: one crate,
//! one `use`.
//!
//! DAX (direct access) lets a filesystem on memory-like storage — pmem, CXL memory,
//! `/dev/dax`, a file or plain memory — skip the page cache: `read` and `write` copy
//! straight between the caller and device memory, and `mmap` maps device pages into
//! the process. In Linux that is `fs/dax.c` with the iomap layer. `fsdax` is the same
//! core as a library, with the kernel's semantics case by case and its errno and
//! `VM_FAULT_*` values. It re-exports the layers and a driver, and two optional parts:
//!
//! | module | crate | what it owns | kernel counterpart |
//! |---|---|---|---|
//! | [`device`] | `dax-device` | the driver contract ([`DaxOperations`](device::DaxOperations)), the device and its lifecycle ([`DaxDevice`](device::DaxDevice)), media errors ([`Badblocks`](device::Badblocks)), persistent copies ([`persist`](device::persist)), and the error type of every layer ([`DaxError`](device::DaxError)) | `drivers/dax/super.c`, `include/linux/dax.h`, `block/badblocks.c` |
//! | [`drivers`] (feature `drivers`) | `dax-drivers` | [`MemDriver`](drivers::MemDriver), a driver with safe constructors over anonymous memory, a memfd, shmem THP, hugetlb, a regular file (persistent), `/dev/daxX.Y` or your own fd | `drivers/nvdimm/pmem.c`, `drivers/dax/device.c` |
//! | [`iomap`] | `dax-iomap` | how a filesystem describes a file ([`IomapOps`](iomap::IomapOps), [`Iomap`](iomap::Iomap)) and the file I/O built on it: [`dax_iomap_rw`](iomap::dax_iomap_rw), zeroing, copy-on-write, fiemap and seek | `fs/iomap/*`, `fs/dax.c` |
//! | [`fault`] | `dax-fault` | each file's mapping index and the page-fault engine ([`dax_iomap_fault`](fault::dax_iomap_fault)) for 4 KiB and 2 MiB faults, `MAP_SYNC`, writeback, invalidation, layout breaking and memory failure, over a [`PageTable`](fault::PageTable) | `fs/dax.c`, the DAX parts of `mm/memory.c` |
//! | [`mmu`] (feature `mmu`) | `dax-fault` | real mappings: map a file into this process, then load and store through a pointer while the engine serves the faults | the MMU |
//! | [`testing`] (feature `testing`) | `dax-testdev` | a test device with poison and failure injection, and TestFs, a small extent filesystem written as the worked example | `drivers/nvdimm/pmem.c`; ext4, XFS as users |
//!
//! The [`prelude`] holds what a filesystem names most: `use fsdax::prelude::*;`.
//!
//! # Features
//!
//! - `mmu` (default): the [`mmu`] module. Linux only; it installs SIGSEGV and SIGBUS
//!   handlers when the first mapping is made. Without it the engine still runs over
//!   any [`PageTable`](fault::PageTable), such as the recorded
//!   [`SimPageTable`](fault::sim::SimPageTable).
//! - `drivers` (default): the [`drivers`] module and [`MemDriver`](drivers::MemDriver)
//!   in the prelude, so a filesystem runs on a memfd, a file or hugetlb with no
//!   `unsafe` of its own.
//! - `testing`: the [`testing`] module (the test device and TestFs).
//!
//! # Units and ranges
//!
//! One rule, in every crate:
//!
//! - **Units.** A `u64` is a count of bytes (a file position, a device offset, a
//!   length) unless its name says pages: `index`, `pgoff`, `first`, `last`,
//!   `nr_pages`, `count`, `pages` are 4 KiB pages (file pages or device pages).
//! - **Ranges.** Where the kernel's function takes a start and a length, so does
//!   dax-rs, half-open: `iomap_begin(pos, length)`, `dax_zero_range(pos, len)`,
//!   `unmap_mapping_pages(first, count)`, `zero_page_range(pgoff, nr_pages)`,
//!   `MmuMapping::munmap(offset, len)`. Where the kernel's function takes an end
//!   (`loff_t start, loff_t end`, inclusive, with `LLONG_MAX` for "to the end"),
//!   dax-rs takes a Rust range instead, so the meaning of the end is written at the
//!   call: `WritebackControl::sync_all(..)`, `dax_break_layout(mapping, a..=b, wait)`,
//!   `dax_delete_mapping_range(mapping, pos..)`; `MappingOps` takes
//!   `RangeInclusive`. No public function takes a bare inclusive end, except inside
//!   [`fault::index`], the engine's own index, which keeps the xarray's `first, last`
//!   pairs.
//!
//! # A filesystem in a few lines
//!
//! A filesystem describes where a file's bytes live; the core does the copying. Here
//! one file fills the whole device, so every range maps to the same offset on it:
//!
//! ```
//! use std::sync::Arc;
//! use fsdax::prelude::*;
//!
//! /// One file, the size of the device, at device offset 0.
//! struct WholeDevice {
//!     dev: Arc<DaxDevice>,
//!     size: u64,
//! }
//!
//! impl IomapOps for WholeDevice {
//!     fn iomap_begin(
//!         &self,
//!         pos: u64,
//!         length: u64,
//!         _flags: IterFlags,
//!     ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
//!         let _ = length;
//!         if pos >= self.size {
//!             return Ok((Iomap::hole(pos, 4096), None));
//!         }
//!         // The whole file in one mapping: file offset 0 is device byte 0.
//!         Ok((Iomap::mapped(0, self.size, 0, &self.dev), None))
//!     }
//! }
//!
//! impl DaxInode for WholeDevice {
//!     fn i_size(&self) -> u64 {
//!         self.size
//!     }
//! }
//!
//! // Any driver will do; this one is a memfd.
//! let dev: Arc<DaxDevice> = MemDriver::memfd(1 << 20)?.into_device();
//! let file = WholeDevice { dev, size: 1 << 20 };
//! assert_eq!(dax_iomap_write(&file, &file, 8192, b"hello, device")?, 13);
//! let mut buf = [0u8; 13];
//! assert_eq!(dax_iomap_read(&file, &file, 8192, &mut buf)?, 13);
//! assert_eq!(&buf, b"hello, device");
//! # Ok::<(), DaxError>(())
//! ```
//!
//! A real filesystem also keeps a [`DaxMapping`](fault::DaxMapping) per file, answers
//! faults with [`dax_iomap_fault`](fault::dax_iomap_fault), and flushes with
//! [`dax_writeback_mapping_range`](fault::dax_writeback_mapping_range) on fsync: see
//! the guide (`docs/guide.md` in the repository) and TestFs's source.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The device layer (the `dax-device` crate): the driver contract, the device, media
/// errors, persistent copies and [`DaxError`](device::DaxError).
pub mod device {
    #[doc(inline)]
    pub use dax_device::*;
}

/// The iomap layer (the `dax-iomap` crate): describing files, and the file I/O built
/// on it.
pub mod iomap {
    #[doc(inline)]
    pub use dax_iomap::*;
}

/// The fault layer (the `dax-fault` crate): mapping indexes, the fault engine,
/// writeback, invalidation, layout breaking and memory failure.
pub mod fault {
    #[doc(inline)]
    pub use dax_fault::*;
}

/// Real mappings of DAX files in this process (`dax_fault::mmu`).
#[cfg(all(target_os = "linux", feature = "mmu"))]
#[cfg_attr(docsrs, doc(cfg(all(target_os = "linux", feature = "mmu"))))]
pub mod mmu {
    #[doc(inline)]
    pub use dax_fault::mmu::*;
}

/// Drivers over anonymous memory, memfd, shmem THP, hugetlb, regular files,
/// `/dev/daxX.Y` and your own fd, with safe constructors (the `dax-drivers` crate).
#[cfg(feature = "drivers")]
#[cfg_attr(docsrs, doc(cfg(feature = "drivers")))]
pub mod drivers {
    #[doc(inline)]
    pub use dax_drivers::*;
}

/// The test device and TestFs (the `dax-testdev` crate).
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing {
    #[doc(inline)]
    pub use dax_testdev::*;
}

/// What a filesystem names most, for `use fsdax::prelude::*`.
pub mod prelude {
    pub use dax_device::{
        DaxAccessMode, DaxDevice, DaxError, DaxHolder, DaxOperations, FsDax, MfFlags, PAGE_SIZE,
        PMD_PAGES, PMD_SIZE, Pfn,
    };
    #[cfg(feature = "drivers")]
    pub use dax_drivers::MemDriver;
    #[cfg(all(target_os = "linux", feature = "mmu"))]
    pub use dax_fault::mmu::{MapOptions, MmuMapping};
    pub use dax_fault::{
        DaxMapping, MappedVma, PageTable, VmFault, VmOps, Vma, Vmf, WritebackControl,
        dax_break_layout_final, dax_break_layout_inode, dax_finish_sync_fault, dax_iomap_fault,
        dax_writeback_mapping_range, mf_dax_kill_procs,
    };
    pub use dax_iomap::{
        DaxInode, Iomap, IomapFlags, IomapOps, IomapType, IovIter, IterFlags, Kiocb, MAX_FILE_SIZE,
        MappingOps, dax_file_unshare, dax_iomap_read, dax_iomap_rw, dax_iomap_write,
        dax_truncate_page, dax_zero_range, iomap_fiemap, iomap_seek_data, iomap_seek_hole,
    };
}
