//! `daxfs-fuse`: TestFs, the dax-rs example filesystem, on a DAX device, served through
//! FUSE so that ordinary tools (`cp`, `dd`, `fio`, `sha256sum` ...) use it.
//!
//! The binary is a thin `main` over this library:
//!
//! | module | what it owns |
//! |---|---|
//! | [`options`] | the command line |
//! | [`device`] | the device (memfd, shmem THP, hugetlb or an image file) and mkfs or mount of TestFs on it |
//! | [`server`] | [`DaxFuse`](server::DaxFuse), the FUSE request → TestFs call table |
//! | [`unmount`] | SIGINT/SIGTERM handling and unmounting the FUSE mount |
//!
//! Reads and writes go through the DAX core's `dax_iomap_rw` (TestFs's `pread` and
//! `pwrite` on an open inode), straight between the FUSE request buffer and device
//! memory. See the crate's README for what works, the cache modes and the limits.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod device;
pub mod options;
pub mod server;
pub mod unmount;
