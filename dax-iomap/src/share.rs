//! Copy-on-write support, unsharing, dedupe comparison and remap preparation
//! (`dax_iomap_copy_around`, `dax_file_unshare`, `dax_dedupe_file_range_compare`,
//! `dax_remap_file_range_prep`).

use dax_core::{DaxAccessMode, DaxError, DaxOperations, DirectAccess, PAGE_SIZE};

use crate::iomap::{DaxInode, Iomap, IomapFlags, IomapOps, IomapType};

const PAGE: u64 = PAGE_SIZE as u64;

/// Fills the parts of the `align`-sized blocks around file bytes `pos .. pos + length`
/// that the operation will not write (`dax_iomap_copy_around`): from `srcmap` with a
/// machine-check-safe copy, or with zeros when `srcmap` is UNWRITTEN or is the SHARED
/// destination itself (the old data was a hole). `dst` reaches the destination from
/// the start of the aligned block holding `pos`.
///
/// When both edges are in place (`pos` aligned and the end aligned, as for a fault)
/// the whole block is filled. Zero-filled blocks are written back from the CPU cache;
/// copied edges are not (quirk Q7, reproduced: they reach persistence with the write
/// that follows or with writeback). A tail that lies beyond `dst` is left for the
/// chunk that reaches it. Fails with `EIO` when the source cannot be read (poison).
pub fn dax_iomap_copy_around<D: DaxOperations + ?Sized>(
    pos: u64,
    length: u64,
    align: u64,
    srcmap: &Iomap,
    dst: &DirectAccess<'_, D>,
) -> Result<(), DaxError> {
    if align < PAGE || !align.is_power_of_two() {
        return Err(DaxError::InvalidArgument {
            what: "copy-around alignment must be a power of two of at least a page",
        });
    }
    let head = pos % align;
    let end = pos + length;
    let block_end = end.div_ceil(align) * align;
    let total = (head + length).div_ceil(align) * align;
    let copy_all = head == 0 && end == block_end;
    let zero_edge =
        srcmap.flags.contains(IomapFlags::SHARED) || srcmap.kind == IomapType::Unwritten;
    let tail_off = (head + length) as usize;
    let tail_len = (block_end - end) as usize;
    let copy_failed = || DaxError::Io {
        what: "copy-on-write could not read the source",
    };

    if zero_edge {
        if copy_all {
            dst.fill(0, 0, total as usize);
        } else {
            dst.fill(0, 0, head as usize);
            if tail_len > 0 && tail_off < dst.len() {
                dst.fill(tail_off, 0, tail_len);
            }
        }
        dst.flush(0, total as usize);
        return Ok(());
    }

    let Some(dev) = srcmap.dax_dev.as_ref() else {
        return Err(DaxError::Io {
            what: "copy-on-write source has no DAX device",
        });
    };
    let section = dev.read_lock();
    let src = section
        .direct_access(
            srcmap.pgoff(pos - head),
            total / PAGE,
            DaxAccessMode::Access,
        )
        .map_err(DaxError::mem2blk)?;
    // Both `src` and `dst` start at the aligned block holding `pos`.
    let copy = |off: usize, n: usize| -> Result<(), DaxError> {
        if n == 0 {
            return Ok(());
        }
        if dst.copy_from_device(off, &src, off, n) == n {
            Ok(())
        } else {
            Err(copy_failed())
        }
    };
    if copy_all {
        copy(0, length as usize)?;
    } else {
        copy(0, head as usize)?;
        if tail_len > 0 && tail_off < dst.len() {
            copy(tail_off, tail_len)?;
        }
    }
    Ok(())
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
