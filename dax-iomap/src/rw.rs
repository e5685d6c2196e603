//! Reads and writes on DAX files (`dax_iomap_rw`, fs/dax.c).

use std::sync::atomic::{AtomicBool, Ordering};

use dax_device::{DaxAccessMode, DaxError, PAGE_SIZE};

use crate::iomap::{DaxInode, IomapFlags, IomapOps, IomapType, IterFlags};
use crate::iov::IovIter;
use crate::iter::IomapIter;
use crate::share::dax_iomap_copy_around;

const PAGE: u64 = PAGE_SIZE as u64;

/// The I/O control block of a read or write (`struct kiocb`): where it starts and how
/// it behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kiocb<'a> {
    /// File position (`ki_pos`); advanced by the bytes transferred.
    pub pos: u64,
    /// Do not block (`IOCB_NOWAIT`): `IOMAP_NOWAIT` is passed to the filesystem.
    pub nowait: bool,
    /// Set to stop the operation at the next chunk boundary with `EINTR`, as a fatal
    /// signal does in the kernel.
    pub interrupted: Option<&'a AtomicBool>,
}

impl Kiocb<'_> {
    /// A control block at `pos` with default behaviour.
    pub fn new(pos: u64) -> Self {
        Kiocb {
            pos,
            ..Kiocb::default()
        }
    }
}

/// Reads into or writes from `iter` at `iocb.pos` (`dax_iomap_rw`); returns the bytes
/// transferred (advancing `iocb.pos` by them) if any, else the error.
///
/// The caller holds the file's I/O lock (shared for reads, exclusive for writes),
/// extends the size after a write past EOF and handles `O_SYNC`, as in the kernel.
///
/// Per mapping the filesystem returns:
/// * reads stop at the file size; HOLE and UNWRITTEN read as zeros without touching
///   the device;
/// * anything else that is not MAPPED (and not a SHARED destination) is `EIO`;
/// * a write into NEW blocks or a copy-on-write first invalidates the range in the
///   mapping index (clean entries dropped, user mappings unmapped; a CoW also clears
///   dirty marks first);
/// * data moves chunk by chunk through `dax_direct_access`: a read over a poisoned
///   sector fails the chunk with `EIO`; a write over poison retries in
///   recovery-write mode and goes through the driver's `recovery_write`; a
///   CoW write fills the untouched parts of its first and last pages from the source;
///   a chunk that moves nothing is `EFAULT` — including, as in the kernel, a write that
///   covers a poisoned page only partly (`EFAULT`, not `EIO`) — except on a device
///   killed after it answered, which is `ENXIO` (the kernel says `EFAULT` there too);
/// * [`Kiocb::interrupted`] stops at the next chunk with `EINTR`.
///
/// Bytes done before a failure are returned as a short count.
pub fn dax_iomap_rw<I, O>(
    inode: &I,
    ops: &O,
    iocb: &mut Kiocb<'_>,
    iter: &mut IovIter<'_>,
) -> Result<usize, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let len = iter.count() as u64;
    if len == 0 {
        return Ok(0);
    }
    let mut flags = IterFlags::DAX;
    if iter.is_write() {
        flags |= IterFlags::WRITE;
    }
    if iocb.nowait {
        flags |= IterFlags::NOWAIT;
    }
    // The iterator is dropped (ending its mapping) where it lies, at the end of this
    // block: `drop(it)` would move all of it first.
    let (done, result) = {
        let mut it = IomapIter::new(ops, iocb.pos, len, flags)?;
        let result = loop {
            match it.next() {
                Ok(true) => {
                    let status = rw_iter(inode, &it, iter, iocb);
                    it.set_status(status);
                }
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        (it.processed(), result)
    };
    iocb.pos += done;
    match result {
        _ if done > 0 => Ok(done as usize),
        Ok(()) => Ok(0),
        Err(e) => Err(e),
    }
}

/// One mapping of a read or write (`dax_iomap_iter`).
fn rw_iter<I, O>(
    inode: &I,
    it: &IomapIter<'_, O>,
    iter: &mut IovIter<'_>,
    iocb: &Kiocb<'_>,
) -> Result<(), DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let iomap = it.iomap();
    let write = iter.is_write();
    let cow = write && iomap.flags.contains(IomapFlags::SHARED);
    let mut end = it.pos() + it.length();

    if !write {
        end = end.min(inode.i_size());
        if it.pos() >= end {
            return Ok(());
        }
        if matches!(iomap.kind, IomapType::Hole | IomapType::Unwritten) {
            let zeroed = iter.zero((end - it.pos()) as usize);
            return it.advance(zeroed as u64);
        }
    }
    if iomap.kind != IomapType::Mapped && !iomap.flags.contains(IomapFlags::SHARED) {
        return Err(DaxError::Io {
            what: "DAX I/O over a mapping that is neither MAPPED nor SHARED",
        });
    }
    if write && (cow || iomap.flags.contains(IomapFlags::NEW)) {
        invalidate_for_write(inode, it.pos(), end, cow);
    }
    let srcmap = it.srcmap();
    let Some(dev) = iomap.dax_dev else {
        return Err(DaxError::Io {
            what: "DAX I/O over a mapping without a device",
        });
    };
    let section = dev.read_lock();
    while it.pos() < end {
        if iocb.interrupted.is_some_and(|f| f.load(Ordering::Relaxed)) {
            return Err(DaxError::Interrupted);
        }
        let pos = it.pos();
        let length = it.length();
        let offset = pos % PAGE;
        let pages = (length + offset).div_ceil(PAGE);
        let pgoff = iomap.pgoff(pos);
        let (da, recovery) = match section.direct_access(pgoff, pages, DaxAccessMode::Access) {
            Ok(da) => (da, false),
            Err(DaxError::HwPoison { .. }) if write => {
                let da = section
                    .direct_access(pgoff, pages, DaxAccessMode::RecoveryWrite)
                    .map_err(DaxError::mem2blk)?;
                (da, true)
            }
            Err(e) => return Err(e.mem2blk()),
        };
        if cow {
            dax_iomap_copy_around(pos, length, PAGE, srcmap, &da)?;
        }
        let chunk = (da.len() as u64 - offset).min(end - pos) as usize;
        let offset = offset as usize;
        let xfer = if write {
            iter.copy_from_iter(&da, offset, chunk, recovery)
        } else {
            iter.copy_to_iter(&da, offset, chunk)
        };
        it.advance(xfer as u64)?;
        if xfer == 0 {
            // A device killed after `direct_access` answered moves nothing (its copies
            // check that it is alive): that is its removal, ENXIO, not the caller's
            // bad buffer. The kernel's `dax_iomap_iter` says EFAULT for both; fixed
            // on purpose, so that I/O racing a removal fails as all I/O after it does.
            if !section.alive() {
                return Err(DaxError::Dead);
            }
            return Err(DaxError::Fault {
                what: "no bytes could be moved (buffer fault or failed recovery write)",
            });
        }
        if xfer < chunk {
            break;
        }
    }
    Ok(())
}

/// Drops clean entries and user mappings over the pages a write into new (or CoW)
/// blocks covers, so that zero-page and old-block mappings cannot shadow the new data.
fn invalidate_for_write<I: DaxInode + ?Sized>(inode: &I, pos: u64, end: u64, cow: bool) {
    let Some(mapping) = inode.mapping() else {
        return;
    };
    let (first, last) = (pos / PAGE, (end - 1) / PAGE);
    if cow {
        mapping.clear_dirty_range(first..=last);
    }
    // Dirty entries stay; the kernel ignores the EBUSY this gives, and so do we.
    let _ = mapping.invalidate_range(first..=last);
}

/// Reads into `buf` at `pos`: [`dax_iomap_rw`] with one destination buffer.
pub fn dax_iomap_read<I, O>(inode: &I, ops: &O, pos: u64, buf: &mut [u8]) -> Result<usize, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    dax_iomap_rw(
        inode,
        ops,
        &mut Kiocb::new(pos),
        &mut IovIter::read_one(buf),
    )
}

/// Writes `buf` at `pos`: [`dax_iomap_rw`] with one source buffer.
pub fn dax_iomap_write<I, O>(inode: &I, ops: &O, pos: u64, buf: &[u8]) -> Result<usize, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    dax_iomap_rw(
        inode,
        ops,
        &mut Kiocb::new(pos),
        &mut IovIter::write_one(buf),
    )
}
