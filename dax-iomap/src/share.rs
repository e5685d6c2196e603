//! Copy-on-write support, unsharing, dedupe comparison and remap preparation
//! (`dax_iomap_copy_around`, `dax_file_unshare`, `dax_dedupe_file_range_compare`,
//! `dax_remap_file_range_prep`).

use dax_device::{DaxAccessMode, DaxError, DaxOperations, DirectAccess, PAGE_SIZE};

use crate::iomap::{DaxInode, Iomap, IomapFlags, IomapOps, IomapType, IterFlags, MAX_FILE_SIZE};
use crate::iter::IomapIter;

const PAGE: u64 = PAGE_SIZE as u64;

/// Fills the parts of the `align`-sized blocks around file bytes `pos .. pos + length`
/// that the operation will not write (`dax_iomap_copy_around`): from `srcmap` with a
/// machine-check-safe copy, or with zeros when `srcmap` is UNWRITTEN or is the SHARED
/// destination itself (the old data was a hole). `dst` reaches the destination from
/// the start of the aligned block holding `pos`.
///
/// When both edges are in place (`pos` aligned and the end aligned, as for a fault)
/// the whole block is filled. Zero-filled blocks are written back from the CPU cache;
/// copied edges are not (as in the kernel: they reach persistence with the write
/// that follows or with writeback). A tail that lies beyond `dst` is left for the
/// chunk that reaches it. Fails with `EIO` when the source cannot be read (poison).
pub fn dax_iomap_copy_around<D: DaxOperations + ?Sized>(
    pos: u64,
    length: u64,
    align: u64,
    srcmap: &Iomap<'_>,
    dst: &DirectAccess<'_, D>,
) -> Result<(), DaxError> {
    if align < PAGE || !align.is_power_of_two() {
        return Err(DaxError::InvalidArgument {
            what: "copy-around alignment must be a power of two of at least a page",
        });
    }
    let overflow = || DaxError::Overflow {
        what: "copy-around range past the largest offset",
    };
    let head = pos % align;
    let end = pos.checked_add(length).ok_or_else(overflow)?;
    let block_end = end
        .div_ceil(align)
        .checked_mul(align)
        .ok_or_else(overflow)?;
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

    let Some(dev) = srcmap.dax_dev else {
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
        if dst.copy_mc_from(off, &src, off, n) == n {
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

/// Unshares file bytes `pos .. pos + len` (`dax_file_unshare`): for every mapping
/// that is a SHARED destination with a MAPPED source (`iomap_want_unshare_iter`), the
/// page-rounded range is invalidated in the mapping index and copied from the old
/// blocks into the new ones; other mappings are skipped. Nothing happens at or past
/// the end of the file; the range is clipped to it. A source that cannot be read is
/// `EIO`. Like the kernel, no cache write-back follows the copy.
pub fn dax_file_unshare<I, O>(inode: &I, ops: &O, pos: u64, len: u64) -> Result<(), DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let size = inode.i_size();
    if pos >= size {
        return Ok(());
    }
    let len = len.min(size - pos);
    let flags = IterFlags::DAX | IterFlags::WRITE | IterFlags::UNSHARE;
    let mut it = IomapIter::new(ops, pos, len, flags)?;
    loop {
        match it.next() {
            Ok(true) => {
                let status = unshare_iter(inode, &it);
                it.set_status(status);
            }
            Ok(false) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// One mapping of an unshare (`dax_unshare_iter`).
fn unshare_iter<I, O>(inode: &I, it: &IomapIter<'_, O>) -> Result<(), DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    if !it.want_unshare() {
        it.advance_full();
        return Ok(());
    }
    let (dst_map, src_map) = (it.iomap(), it.raw_srcmap());
    let start = it.pos() / PAGE * PAGE;
    let end = (it.pos() + it.length()).div_ceil(PAGE) * PAGE;
    if end == start {
        it.advance_full();
        return Ok(());
    }
    if let Some(mapping) = inode.mapping() {
        let _ = mapping.invalidate_range(start / PAGE..=end / PAGE - 1);
    }
    let (Some(ddev), Some(sdev)) = (dst_map.dax_dev, src_map.dax_dev) else {
        return Err(DaxError::Io {
            what: "unshare mapping without a device",
        });
    };
    let pages = (end - start) / PAGE;
    {
        let (dsec, ssec) = (ddev.read_lock(), sdev.read_lock());
        let dst = dsec
            .direct_access(dst_map.pgoff(start), pages, DaxAccessMode::Access)
            .map_err(DaxError::mem2blk)?;
        let src = ssec
            .direct_access(src_map.pgoff(start), pages, DaxAccessMode::Access)
            .map_err(DaxError::mem2blk)?;
        let n = (end - start) as usize;
        if dst.copy_mc_from(0, &src, 0, n) != n {
            return Err(DaxError::Io {
                what: "unshare could not copy the shared data",
            });
        }
    }
    it.advance_full();
    Ok(())
}

/// Compares `len` bytes of two files for dedupe (`dax_dedupe_file_range_compare`):
/// `Ok(true)` when they are the same. Both files are walked in lock-step with their
/// filesystems' read mappings (`IOMAP_DAX`): two holes are the same, a hole and data
/// are not (even all-zero data), data is compared byte for byte.
///
/// Deliberate differences from 6.15: an error is returned as the
/// error (the kernel returns 1 and loses the errno); each round compares only what is
/// left of both mappings from the current positions (the kernel uses whole mapping
/// lengths); only the pages holding the compared bytes are mapped (the kernel maps up
/// to `round_up(pos + len)`, so an unrelated bad page could fail the compare); and the
/// destination's last mapping is ended with `iomap_end` too.
pub fn dax_dedupe_file_range_compare(
    src: &dyn IomapOps,
    srcoff: u64,
    dst: &dyn IomapOps,
    dstoff: u64,
    len: u64,
) -> Result<bool, DaxError> {
    let mut same = false;
    let mut s = IomapIter::new(src, srcoff, len, IterFlags::DAX)?;
    let mut d = IomapIter::new(dst, dstoff, len, IterFlags::DAX)?;
    while s.next()? && d.next()? {
        match compare_iter(&s, &d, &mut same) {
            Ok(()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(same)
}

/// One round of a dedupe comparison (`dax_range_compare_iter`).
fn compare_iter(
    s: &IomapIter<'_, dyn IomapOps + '_>,
    d: &IomapIter<'_, dyn IomapOps + '_>,
    same: &mut bool,
) -> Result<(), DaxError> {
    let n = s.length().min(d.length());
    let (sm, dm) = (s.iomap(), d.iomap());
    match (sm.kind == IomapType::Hole, dm.kind == IomapType::Hole) {
        (true, true) => {
            *same = true;
            s.advance(n)?;
            return d.advance(n);
        }
        (true, false) | (false, true) => {
            *same = false;
            return Ok(());
        }
        (false, false) => {}
    }
    let (Some(sdev), Some(ddev)) = (sm.dax_dev, dm.dax_dev) else {
        return Err(DaxError::Io {
            what: "dedupe mapping without a device",
        });
    };
    let (spos, dpos) = (s.pos(), d.pos());
    let pages = |pos: u64| (pos % PAGE + n).div_ceil(PAGE);
    {
        let (ssec, dsec) = (sdev.read_lock(), ddev.read_lock());
        let sa = ssec
            .direct_access(sm.pgoff(spos), pages(spos), DaxAccessMode::Access)
            .map_err(|_| DaxError::Io {
                what: "dedupe could not map the source",
            })?;
        let da = dsec
            .direct_access(dm.pgoff(dpos), pages(dpos), DaxAccessMode::Access)
            .map_err(|_| DaxError::Io {
                what: "dedupe could not map the destination",
            })?;
        const CHUNK: usize = 64 * 1024;
        let (mut sb, mut db) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        let (so, dof) = ((spos % PAGE) as usize, (dpos % PAGE) as usize);
        let mut done = 0usize;
        *same = true;
        while done < n as usize {
            let k = CHUNK.min(n as usize - done);
            if sa.copy_to(so + done, &mut sb[..k]) != k || da.copy_to(dof + done, &mut db[..k]) != k
            {
                return Err(DaxError::Io {
                    what: "dedupe could not read the data",
                });
            }
            if sb[..k] != db[..k] {
                *same = false;
                break;
            }
            done += k;
        }
    }
    let adv = if *same { n } else { 0 };
    s.advance(adv)?;
    d.advance(adv)
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
/// `pos_out` (`dax_remap_file_range_prep` with the generic checks of
/// `__generic_remap_file_range_prep`): returns the length to remap (0: nothing to do).
///
/// In order: an immutable destination is `EPERM`; a swap file `ETXTBSY`; a directory
/// `EISDIR`; anything not a regular file `EINVAL`. A zero length is "nothing" for a
/// dedupe and "to the end of the source" for a clone (`EINVAL` past the end). Then the
/// generic range checks: both positions block aligned, no wrap-around, a dedupe inside
/// both files, the source range inside the source (shortened to its end), the
/// destination below the largest file offset, a length that is block
/// aligned unless it reaches the source's end ([`RemapFlags::CAN_SHORTEN`] rounds it
/// down instead of failing), no overlap within one file — each `EINVAL`. Both ranges
/// are then written back from the mapping index, a dedupe compares the contents
/// (`EBADE` when they differ), and a length that is not block aligned must reach the
/// destination's end (`generic_remap_check_len`: else rounded down with CAN_SHORTEN,
/// `EBADE` for a dedupe, `EINVAL` for a clone).
pub fn dax_remap_file_range_prep(
    src: &RemapFile<'_>,
    pos_in: u64,
    dst: &RemapFile<'_>,
    pos_out: u64,
    len: u64,
    flags: RemapFlags,
) -> Result<u64, DaxError> {
    let os = |errno, what| DaxError::Os { errno, what };
    if dst.immutable {
        return Err(os(libc::EPERM, "the destination is immutable"));
    }
    if src.swapfile || dst.swapfile {
        return Err(os(libc::ETXTBSY, "remap of an active swap file"));
    }
    if src.directory || dst.directory {
        return Err(os(libc::EISDIR, "remap of a directory"));
    }
    if !src.regular || !dst.regular {
        return Err(DaxError::InvalidArgument {
            what: "remap of something that is not a regular file",
        });
    }
    let dedup = flags.contains(RemapFlags::DEDUP);
    let size_in = src.inode.i_size();
    let mut len = len;
    if len == 0 {
        if dedup || pos_in == size_in {
            return Ok(0);
        }
        if pos_in > size_in {
            return Err(DaxError::InvalidArgument {
                what: "clone source position past the end of the file",
            });
        }
        len = size_in - pos_in;
    }
    len = remap_checks(src, pos_in, dst, pos_out, len, flags)?;
    if len == 0 {
        return Ok(0);
    }
    for (f, pos) in [(src, pos_in), (dst, pos_out)] {
        if let Some(m) = f.inode.mapping() {
            m.write_and_wait_range(pos..=pos + len - 1)?;
        }
    }
    if dedup && !dax_dedupe_file_range_compare(src.ops, pos_in, dst.ops, pos_out, len)? {
        return Err(os(libc::EBADE, "dedupe: the contents differ"));
    }
    remap_check_len(dst, pos_out, len, flags)
}

/// The final length check of a remap (`generic_remap_check_len`): a length that is not
/// block aligned may only reach the destination's end, so that a partial EOF block of
/// the source is never linked into the middle of the destination; otherwise it is
/// rounded down with [`RemapFlags::CAN_SHORTEN`], else `EBADE` (dedupe) or `EINVAL`.
fn remap_check_len(
    dst: &RemapFile<'_>,
    pos_out: u64,
    len: u64,
    flags: RemapFlags,
) -> Result<u64, DaxError> {
    if len.is_multiple_of(PAGE) || pos_out + len >= dst.inode.i_size() {
        return Ok(len);
    }
    if flags.contains(RemapFlags::CAN_SHORTEN) {
        return Ok(len / PAGE * PAGE);
    }
    if flags.contains(RemapFlags::DEDUP) {
        Err(DaxError::Os {
            errno: libc::EBADE,
            what: "dedupe of a partial block inside the destination",
        })
    } else {
        Err(DaxError::InvalidArgument {
            what: "clone of a partial block inside the destination",
        })
    }
}

/// The generic range checks of a remap (`generic_remap_checks`).
fn remap_checks(
    src: &RemapFile<'_>,
    pos_in: u64,
    dst: &RemapFile<'_>,
    pos_out: u64,
    len: u64,
    flags: RemapFlags,
) -> Result<u64, DaxError> {
    let inval = |what| DaxError::InvalidArgument { what };
    let bs = PAGE;
    if !pos_in.is_multiple_of(bs) || !pos_out.is_multiple_of(bs) {
        return Err(inval("remap positions must be block aligned"));
    }
    let past_max = |pos: u64| pos.checked_add(len).is_none_or(|e| e > MAX_FILE_SIZE);
    if past_max(pos_in) || past_max(pos_out) {
        return Err(inval("remap range wraps around"));
    }
    let (size_in, size_out) = (src.inode.i_size(), dst.inode.i_size());
    let dedup = flags.contains(RemapFlags::DEDUP);
    if dedup
        && (pos_in >= size_in
            || pos_in + len > size_in
            || pos_out >= size_out
            || pos_out.saturating_add(len) > size_out)
    {
        return Err(inval("dedupe range outside a file"));
    }
    if pos_in >= size_in {
        return Err(inval(
            "remap source position at or past the end of the file",
        ));
    }
    let mut count = len.min(size_in - pos_in);
    let bcount = if pos_in + count == size_in && (!dedup || pos_out + count == size_out) {
        size_in.div_ceil(bs) * bs - pos_in
    } else {
        if !count.is_multiple_of(bs) {
            if flags.contains(RemapFlags::CAN_SHORTEN) {
                count = count / bs * bs;
            } else {
                return Err(inval("remap length must be block aligned"));
            }
        }
        count
    };
    let same_file = std::ptr::addr_eq(
        src.inode as *const dyn DaxInode,
        dst.inode as *const dyn DaxInode,
    );
    if same_file && pos_out + bcount > pos_in && pos_out < pos_in + bcount {
        return Err(inval("remap ranges overlap within one file"));
    }
    if count != len && !flags.contains(RemapFlags::CAN_SHORTEN) {
        return Err(inval(
            "remap would be shortened but the caller cannot take that",
        ));
    }
    Ok(count)
}
