//! Copy-on-write support, unsharing, dedupe comparison and remap preparation
//! (`dax_iomap_copy_around`, `dax_file_unshare`, `dax_dedupe_file_range_compare`,
//! `dax_remap_file_range_prep`).

use dax_core::{DaxError, DaxOperations, DirectAccess};

use crate::iomap::{DaxInode, Iomap, IomapOps};

/// Fills the parts of the `align`-sized blocks around file bytes `pos .. pos + length`
/// that the operation will not write, from `srcmap` (or with zeros when the source is
/// unwritten or is the SHARED destination itself) (`dax_iomap_copy_around`). `dst`
/// reaches the destination from the start of the aligned block holding `pos`.
pub fn dax_iomap_copy_around<D: DaxOperations + ?Sized>(
    pos: u64,
    length: u64,
    align: u64,
    srcmap: &Iomap,
    dst: &DirectAccess<'_, D>,
) -> Result<(), DaxError> {
    let _ = (pos, length, align, srcmap, dst);
    Err(DaxError::NotSupported {
        what: "dax_iomap_copy_around is not implemented yet",
    })
}

/// Unshares file bytes `pos .. pos + len`: copies shared extents into the new blocks
/// the filesystem allocates for them (`dax_file_unshare`).
pub fn dax_file_unshare<I, O>(inode: &I, ops: &O, pos: u64, len: u64) -> Result<(), DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let _ = (inode, ops, pos, len);
    Err(DaxError::NotSupported {
        what: "dax_file_unshare is not implemented yet",
    })
}

/// Compares `len` bytes of two files for dedupe (`dax_dedupe_file_range_compare`):
/// `Ok(true)` when they are the same.
pub fn dax_dedupe_file_range_compare(
    src: &dyn IomapOps,
    srcoff: u64,
    dst: &dyn IomapOps,
    dstoff: u64,
    len: u64,
) -> Result<bool, DaxError> {
    let _ = (src, srcoff, dst, dstoff, len);
    Err(DaxError::NotSupported {
        what: "dax_dedupe_file_range_compare is not implemented yet",
    })
}

bitflags::bitflags! {
    /// Flags of a remap request (`REMAP_FILE_*`, same values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RemapFlags: u32 {
        /// `REMAP_FILE_DEDUP`: share only if the contents are identical.
        const DEDUP = 1 << 0;
        /// `REMAP_FILE_CAN_SHORTEN`: the length may be shortened to fit.
        const CAN_SHORTEN = 1 << 1;
    }
}

/// One side of a remap (reflink or dedupe) request: the file and what the generic
/// checks need to know about it.
pub struct RemapFile<'a> {
    /// Size and mapping index.
    pub inode: &'a dyn DaxInode,
    /// The filesystem's read mapping operations (used for the dedupe comparison).
    pub ops: &'a dyn IomapOps,
    /// A regular file (`S_ISREG`).
    pub regular: bool,
    /// A directory (`S_ISDIR`).
    pub directory: bool,
    /// Immutable (`IS_IMMUTABLE`); only checked on the destination.
    pub immutable: bool,
    /// An active swap file (`IS_SWAPFILE`).
    pub swapfile: bool,
}

/// Checks and prepares a remap of `len` bytes from `src` at `pos_in` to `dst` at
/// `pos_out` (`dax_remap_file_range_prep`): returns the length to remap (0 means
/// nothing to do), [`DaxError`]s with the kernel's errnos otherwise (`EBADE` when a
/// dedupe finds different contents).
pub fn dax_remap_file_range_prep(
    src: &RemapFile<'_>,
    pos_in: u64,
    dst: &RemapFile<'_>,
    pos_out: u64,
    len: u64,
    flags: RemapFlags,
) -> Result<u64, DaxError> {
    let _ = (src, pos_in, dst, pos_out, len, flags);
    Err(DaxError::NotSupported {
        what: "dax_remap_file_range_prep is not implemented yet",
    })
}
