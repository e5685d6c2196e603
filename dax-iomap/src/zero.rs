//! Zeroing file ranges on DAX files (`dax_zero_range`, `dax_truncate_page`).

use dax_device::{DaxAccessMode, DaxError, PAGE_SIZE};

use crate::iomap::{DaxInode, IomapFlags, IomapOps, IomapType, IterFlags, MAX_FILE_SIZE};
use crate::iter::IomapIter;
use crate::share::dax_iomap_copy_around;

const PAGE: u64 = PAGE_SIZE as u64;

/// Zeroes file bytes `pos .. pos + len` in place (`dax_zero_range`), never allocating
/// (the filesystem is asked with `IOMAP_DAX | IOMAP_ZERO`). Returns whether anything
/// was zeroed (`did_zero`).
///
/// Per mapping: a range whose data is a hole or unwritten already reads
/// as zeros and is skipped; a SHARED destination is first invalidated in the mapping
/// index; whole pages are zeroed through the driver (`dax_zero_page_range`, which
/// clears poison); partial pages are zeroed in place and written back from the CPU
/// cache (a poisoned page gives `EIO`), and for a SHARED destination the rest of the
/// page is filled from the old data.
///
/// Deliberate difference (edge 106): a DELALLOC or INLINE mapping (which a DAX
/// filesystem should never return) is refused with `EIO` instead of being zeroed at
/// whatever address it carries.
pub fn dax_zero_range<I, O>(inode: &I, ops: &O, pos: u64, len: u64) -> Result<bool, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let mut did_zero = false;
    // A length past the largest file offset means to the end of the file space (the
    // kernel's callers pass `LLONG_MAX - pos` and the like).
    let len = match pos.cmp(&MAX_FILE_SIZE) {
        std::cmp::Ordering::Less => len.min(MAX_FILE_SIZE - pos),
        // At the largest file offset there is nothing left to zero.
        std::cmp::Ordering::Equal => return Ok(false),
        std::cmp::Ordering::Greater => len,
    };
    let mut it = IomapIter::new(ops, pos, len, IterFlags::DAX | IterFlags::ZERO)?;
    loop {
        match it.next() {
            Ok(true) => {
                let status = zero_iter(inode, &it, &mut did_zero);
                it.set_status(status);
            }
            Ok(false) => return Ok(did_zero),
            Err(e) => return Err(e),
        }
    }
}

/// One mapping of a zeroing (`dax_zero_iter`).
fn zero_iter<I, O>(inode: &I, it: &IomapIter<'_, O>, did_zero: &mut bool) -> Result<(), DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let iomap = it.iomap();
    let srcmap = it.srcmap();
    if matches!(srcmap.kind, IomapType::Hole | IomapType::Unwritten) {
        it.advance_full();
        return Ok(());
    }
    if !matches!(iomap.kind, IomapType::Mapped) && !iomap.flags.contains(IomapFlags::SHARED) {
        return Err(DaxError::Io {
            what: "zeroing a mapping that is neither MAPPED nor SHARED",
        });
    }
    let shared = iomap.flags.contains(IomapFlags::SHARED);
    if shared
        && it.length() > 0
        && let Some(mapping) = inode.mapping()
    {
        let last_byte = it.pos() + it.length() - 1;
        let _ = mapping.invalidate_range(it.pos() / PAGE..=last_byte / PAGE);
    }
    let Some(dev) = iomap.dax_dev else {
        return Err(DaxError::Io {
            what: "zeroing a mapping without a device",
        });
    };
    while it.length() > 0 {
        let pos = it.pos();
        let offset = pos % PAGE;
        let size = (PAGE - offset).min(it.length());
        let pgoff = iomap.pgoff(pos);
        let section = dev.read_lock();
        if size == PAGE {
            section.zero_page_range(pgoff, 1)?;
        } else {
            let da = section
                .direct_access(pgoff, 1, DaxAccessMode::Access)
                .map_err(DaxError::mem2blk)?;
            da.fill(offset as usize, 0, size as usize);
            if shared {
                dax_iomap_copy_around(pos, size, PAGE, srcmap, &da)?;
            } else {
                da.flush(offset as usize, size as usize);
            }
        }
        drop(section);
        it.advance(size)?;
    }
    *did_zero = true;
    Ok(())
}

/// Zeroes from `pos` to the end of its block (`dax_truncate_page`): nothing when `pos`
/// is block aligned (DAX blocks are pages). Returns whether anything was zeroed.
pub fn dax_truncate_page<I, O>(inode: &I, ops: &O, pos: u64) -> Result<bool, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let offset = pos % PAGE;
    if offset == 0 {
        return Ok(false);
    }
    dax_zero_range(inode, ops, pos, PAGE - offset)
}
