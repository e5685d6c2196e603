//! Zeroing file ranges on DAX files (`dax_zero_range`, `dax_truncate_page`).

use dax_core::DaxError;

use crate::iomap::{DaxInode, IomapOps};

/// Zeroes file bytes `pos .. pos + len` in place (`dax_zero_range`), never allocating:
/// ranges whose data is a hole or unwritten are skipped, whole pages are zeroed
/// through the driver (clearing poison), partial pages in place. Returns whether
/// anything was zeroed (`did_zero`).
pub fn dax_zero_range<I, O>(inode: &I, ops: &O, pos: u64, len: u64) -> Result<bool, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let _ = (inode, ops, pos, len);
    Err(DaxError::NotSupported {
        what: "dax_zero_range is not implemented yet",
    })
}

/// Zeroes from `pos` to the end of its block (`dax_truncate_page`); nothing when `pos`
/// is block aligned. Returns whether anything was zeroed.
pub fn dax_truncate_page<I, O>(inode: &I, ops: &O, pos: u64) -> Result<bool, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let _ = (inode, ops, pos);
    Err(DaxError::NotSupported {
        what: "dax_truncate_page is not implemented yet",
    })
}
