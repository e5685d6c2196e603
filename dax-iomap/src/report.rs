//! Reporting helpers: `iomap_fiemap`, `iomap_seek_hole`, `iomap_seek_data`,
//! `iomap_bmap` (fs/iomap/fiemap.c, fs/iomap/seek.c).

use dax_core::DaxError;

use crate::iomap::{DaxInode, IomapOps};

bitflags::bitflags! {
    /// Request flags of a fiemap call (`FIEMAP_FLAG_*`, same values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FiemapFlags: u32 {
        /// `FIEMAP_FLAG_SYNC`: write back the file's data first.
        const SYNC = 0x1;
        /// `FIEMAP_FLAG_XATTR`: map the extended-attribute tree.
        const XATTR = 0x2;
        /// `FIEMAP_FLAG_CACHE`: request caching of the extents.
        const CACHE = 0x4;
    }
}

bitflags::bitflags! {
    /// Flags of a reported extent (`FIEMAP_EXTENT_*`, same values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FiemapExtentFlags: u32 {
        /// `FIEMAP_EXTENT_LAST`: the last extent of the file.
        const LAST = 0x1;
        /// `FIEMAP_EXTENT_UNKNOWN`: data location unknown.
        const UNKNOWN = 0x2;
        /// `FIEMAP_EXTENT_DELALLOC`: location still pending.
        const DELALLOC = 0x4;
        /// `FIEMAP_EXTENT_ENCODED`.
        const ENCODED = 0x8;
        /// `FIEMAP_EXTENT_DATA_ENCRYPTED`.
        const DATA_ENCRYPTED = 0x80;
        /// `FIEMAP_EXTENT_NOT_ALIGNED`.
        const NOT_ALIGNED = 0x100;
        /// `FIEMAP_EXTENT_DATA_INLINE`.
        const DATA_INLINE = 0x200;
        /// `FIEMAP_EXTENT_DATA_TAIL`.
        const DATA_TAIL = 0x400;
        /// `FIEMAP_EXTENT_UNWRITTEN`: allocated but unwritten.
        const UNWRITTEN = 0x800;
        /// `FIEMAP_EXTENT_MERGED`: several extents merged.
        const MERGED = 0x1000;
        /// `FIEMAP_EXTENT_SHARED`: shared with other files.
        const SHARED = 0x2000;
    }
}

/// One reported extent (`struct fiemap_extent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FiemapExtent {
    /// File byte offset (`fe_logical`).
    pub logical: u64,
    /// Device byte address (`fe_physical`).
    pub physical: u64,
    /// Length in bytes (`fe_length`).
    pub length: u64,
    /// Flags (`fe_flags`).
    pub flags: FiemapExtentFlags,
}

/// A fiemap request and its answer (`struct fiemap` with `fiemap_extent_info`).
#[derive(Debug, Clone, Default)]
pub struct Fiemap {
    /// Request flags (`fm_flags`); on `EBADR` the unsupported ones are left here.
    pub flags: FiemapFlags,
    /// Room for extents (`fm_extent_count`); 0 only counts them.
    pub extents_max: usize,
    /// Extents reported (`fm_extents`).
    pub extents: Vec<FiemapExtent>,
    /// Extents found (`fm_mapped_extents`).
    pub mapped: usize,
}

/// Reports the extents of file bytes `start .. start + len` (`iomap_fiemap`).
pub fn iomap_fiemap<I, O>(
    inode: &I,
    ops: &O,
    fiemap: &mut Fiemap,
    start: u64,
    len: u64,
) -> Result<(), DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let _ = (inode, ops, fiemap, start, len);
    Err(DaxError::NotSupported {
        what: "iomap_fiemap is not implemented yet",
    })
}

/// The first hole at or after `pos` (`iomap_seek_hole`, `SEEK_HOLE`); the file size
/// when there is none. `ENXIO` when `pos` is negative or at/after the end.
pub fn iomap_seek_hole<I, O>(inode: &I, ops: &O, pos: i64) -> Result<u64, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let _ = (inode, ops, pos);
    Err(DaxError::NotSupported {
        what: "iomap_seek_hole is not implemented yet",
    })
}

/// The first data at or after `pos` (`iomap_seek_data`, `SEEK_DATA`). `ENXIO` when
/// `pos` is negative, at/after the end, or no data follows.
pub fn iomap_seek_data<I, O>(inode: &I, ops: &O, pos: i64) -> Result<u64, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let _ = (inode, ops, pos);
    Err(DaxError::NotSupported {
        what: "iomap_seek_data is not implemented yet",
    })
}

/// The device block (4096 bytes) holding file block `block`, 0 for anything but a
/// MAPPED block or on any error (`iomap_bmap`).
pub fn iomap_bmap<I, O>(inode: &I, ops: &O, block: u64) -> u64
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let _ = (inode, ops, block);
    0
}
