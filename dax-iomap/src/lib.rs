//! The iomap model and the file I/O half of the Linux DAX core, in userspace Rust.
//!
//! A filesystem on byte-addressable memory describes its files with [`IomapOps`]
//! (`iomap_begin`/`iomap_end`, `struct iomap_ops`) and [`DaxInode`] (size and mapping
//! index); this crate does the rest, as `fs/dax.c` and `fs/iomap/*` do in the kernel:
//!
//! * [`IomapIter`]: the iterator that walks a file range mapping by mapping
//!   (`iomap_iter`), validating every mapping the filesystem returns;
//! * [`dax_iomap_rw`]: read and write straight between the caller's buffers and device
//!   memory, with holes, unwritten extents, copy-on-write, poison and recovery writes;
//! * [`dax_zero_range`], [`dax_truncate_page`], [`dax_file_unshare`],
//!   [`dax_dedupe_file_range_compare`], [`dax_remap_file_range_prep`];
//! * [`iomap_fiemap`], [`iomap_seek_hole`], [`iomap_seek_data`], [`iomap_bmap`].
//!
//! Flag and type values are the kernel's (Linux 6.15), so the same filesystem code
//! can answer a FUSE server's iomap requests. Each item's docs name the kernel
//! function it mirrors.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod iomap;
mod iov;
mod iter;
mod report;
mod rw;
mod share;
mod zero;

pub use iomap::{
    DaxInode, IOMAP_NULL_ADDR, Iomap, IomapFlags, IomapOps, IomapType, IterFlags, MAX_FILE_SIZE,
    MappingOps,
};
pub use iov::IovIter;
pub use iter::{IomapIter, MAX_STALE_RETRIES};
pub use report::{
    FIEMAP_MAX_EXTENTS, Fiemap, FiemapExtent, FiemapExtentFlags, FiemapFlags, iomap_bmap,
    iomap_fiemap, iomap_seek_data, iomap_seek_hole,
};
pub use rw::{Kiocb, dax_iomap_read, dax_iomap_rw, dax_iomap_write};
pub use share::{
    RemapFile, RemapFlags, dax_dedupe_file_range_compare, dax_file_unshare, dax_iomap_copy_around,
    dax_remap_file_range_prep,
};
pub use zero::{dax_truncate_page, dax_zero_range};
