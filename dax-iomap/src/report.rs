//! Reporting helpers: `iomap_fiemap`, `iomap_seek_hole`, `iomap_seek_data`,
//! `iomap_bmap` (fs/iomap/fiemap.c, fs/iomap/seek.c).

use dax_device::{DaxError, PAGE_SIZE};

use crate::iomap::{
    DaxInode, IOMAP_NULL_ADDR, Iomap, IomapFlags, IomapOps, IomapType, IterFlags, MAX_FILE_SIZE,
};
use crate::iter::IomapIter;

const PAGE: u64 = PAGE_SIZE as u64;

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

/// The most extents one fiemap call may ask for (`FIEMAP_MAX_EXTENTS`: `UINT_MAX`
/// bytes of 56-byte `struct fiemap_extent`); more is `EINVAL`.
pub const FIEMAP_MAX_EXTENTS: usize = (u32::MAX / 56) as usize;

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
///
/// `len == 0` is `EINVAL`, `start` at or past the largest file offset `EFBIG`; request
/// flags other than [`FiemapFlags::SYNC`] are `EBADR` (and left in `fiemap.flags`);
/// SYNC writes the file back first. Every non-hole mapping is reported with the
/// mapping's own offset, address and length (not clipped to the request) and flags
/// from its type and SHARED/MERGED; the last one carries
/// [`FiemapExtentFlags::LAST`]. When the extent array fills up while more mappings
/// exist, the one that did not fit is dropped and no extent carries LAST (as in
/// the kernel). With `extents_max == 0` extents are only counted.
///
/// Deliberate difference: when the filesystem fails after some non-hole mapping was
/// found, 6.15 overwrites the error with the result of emitting that mapping (so the
/// call succeeds with it marked LAST); here the error is returned.
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
    if len == 0 {
        return Err(DaxError::InvalidArgument {
            what: "fiemap of zero length",
        });
    }
    // `FIEMAP_MAX_EXTENTS`: the extent array must fit a `u32` of bytes.
    if fiemap.extents_max > FIEMAP_MAX_EXTENTS {
        return Err(DaxError::InvalidArgument {
            what: "more extents asked for than FIEMAP_MAX_EXTENTS",
        });
    }
    if start >= MAX_FILE_SIZE {
        return Err(DaxError::FileTooBig {
            what: "fiemap start past the largest file offset",
        });
    }
    let len = len.min(MAX_FILE_SIZE - start);
    let unsupported = fiemap.flags - FiemapFlags::SYNC;
    if !unsupported.is_empty() {
        fiemap.flags = unsupported;
        return Err(DaxError::Os {
            errno: libc::EBADR,
            what: "unsupported fiemap flags",
        });
    }
    if fiemap.flags.contains(FiemapFlags::SYNC)
        && let Some(m) = inode.mapping()
    {
        m.write_and_wait_range(0..=MAX_FILE_SIZE)?;
    }
    let mut prev: Option<Iomap<'_>> = None;
    let mut it = IomapIter::new(ops, start, len, IterFlags::REPORT)?;
    let result = loop {
        match it.next() {
            Ok(true) => {
                if it.iomap().kind == IomapType::Hole {
                    it.advance_full();
                    continue;
                }
                let full = match prev.replace(*it.iomap()) {
                    Some(p) => fill(fiemap, &p, FiemapExtentFlags::empty()),
                    None => false,
                };
                if !full {
                    it.advance_full();
                }
            }
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    match result {
        Err(e) if e.errno() != libc::ENOENT => return Err(e),
        _ => {}
    }
    if let Some(p) = prev {
        fill(fiemap, &p, FiemapExtentFlags::LAST);
    }
    Ok(())
}

/// Adds one mapping to the answer (`iomap_to_fiemap` + `fiemap_fill_next_extent`);
/// returns true when the array is full (or the extent was the last).
fn fill(fiemap: &mut Fiemap, m: &Iomap<'_>, extra: FiemapExtentFlags) -> bool {
    let mut flags = extra;
    match m.kind {
        IomapType::Hole => return false,
        IomapType::Delalloc => flags |= FiemapExtentFlags::DELALLOC | FiemapExtentFlags::UNKNOWN,
        IomapType::Unwritten => flags |= FiemapExtentFlags::UNWRITTEN,
        IomapType::Inline => {
            flags |= FiemapExtentFlags::DATA_INLINE | FiemapExtentFlags::NOT_ALIGNED
        }
        IomapType::Mapped => {}
    }
    if m.flags.contains(IomapFlags::MERGED) {
        flags |= FiemapExtentFlags::MERGED;
    }
    if m.flags.contains(IomapFlags::SHARED) {
        flags |= FiemapExtentFlags::SHARED;
    }
    let last = flags.contains(FiemapExtentFlags::LAST);
    if fiemap.extents_max == 0 {
        fiemap.mapped += 1;
        return last;
    }
    if fiemap.mapped >= fiemap.extents_max {
        return true;
    }
    fiemap.extents.push(FiemapExtent {
        logical: m.offset,
        physical: if m.addr == IOMAP_NULL_ADDR { 0 } else { m.addr },
        length: m.length,
        flags,
    });
    fiemap.mapped += 1;
    fiemap.mapped == fiemap.extents_max || last
}

/// Which of `SEEK_HOLE`/`SEEK_DATA` a probe looks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Whence {
    Hole,
    Data,
}

/// Looks in the mapping index for the first hole or data at or after `pos` and before
/// `end` (`mapping_seek_hole_data` on a DAX file): an index holding any entry is
/// data, an absent one a hole; answers are page-granular but never before `pos`.
fn probe<I: DaxInode + ?Sized>(inode: &I, pos: u64, end: u64, whence: Whence) -> Option<u64> {
    if pos >= end {
        return None;
    }
    let (first, last) = (pos / PAGE, (end - 1) / PAGE);
    let Some(m) = inode.mapping() else {
        return (whence == Whence::Hole).then_some(pos);
    };
    match whence {
        Whence::Data => m
            .next_entry(first..=last)
            .map(|(s, _)| (s * PAGE).max(pos))
            .filter(|&p| p < end),
        Whence::Hole => {
            let mut idx = first;
            while idx <= last {
                match m.next_entry(idx..=last) {
                    Some((s, n)) if s <= idx => idx = s.saturating_add(n.max(1)),
                    _ => return Some((idx * PAGE).max(pos)),
                }
            }
            None
        }
    }
}

fn seek<I, O>(inode: &I, ops: &O, pos: i64, whence: Whence) -> Result<u64, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let size = inode.i_size();
    let nxio = DaxError::Os {
        errno: libc::ENXIO,
        what: "seek position outside the file",
    };
    let Ok(pos) = u64::try_from(pos) else {
        return Err(nxio);
    };
    if pos >= size {
        return Err(nxio);
    }
    let mut it = IomapIter::new(ops, pos, size - pos, IterFlags::REPORT)?;
    let mut answer = None;
    while it.next()? {
        let (p, end) = (it.pos(), it.pos() + it.length());
        let found = match (it.iomap().kind, whence) {
            (IomapType::Hole, Whence::Hole) => Some(p),
            (IomapType::Hole, Whence::Data) => None,
            (IomapType::Unwritten, w) => probe(inode, p, end, w),
            (_, Whence::Hole) => None,
            (_, Whence::Data) => Some(p),
        };
        if found.is_some() {
            // Stop without advancing, as the kernel's body does: the iterator then
            // ends the mapping, and an iomap_end error is the result.
            answer = found;
            continue;
        }
        it.advance_full();
    }
    if let Some(at) = answer {
        return Ok(at);
    }
    match whence {
        Whence::Hole => Ok(size),
        Whence::Data => Err(DaxError::Os {
            errno: libc::ENXIO,
            what: "no data after the seek position",
        }),
    }
}

/// The first hole at or after `pos` (`iomap_seek_hole`, `SEEK_HOLE`): a HOLE mapping,
/// or inside an UNWRITTEN one a page with no entry in the mapping index; the file size
/// when there is none. `ENXIO` when `pos` is negative or at/after the end.
pub fn iomap_seek_hole<I, O>(inode: &I, ops: &O, pos: i64) -> Result<u64, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    seek(inode, ops, pos, Whence::Hole)
}

/// The first data at or after `pos` (`iomap_seek_data`, `SEEK_DATA`): a mapping that
/// is not a hole, or inside an UNWRITTEN one a page with an entry in the mapping index
/// (a read fault there makes it data). `ENXIO` when `pos` is negative, at/after the
/// end, or no data follows.
pub fn iomap_seek_data<I, O>(inode: &I, ops: &O, pos: i64) -> Result<u64, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    seek(inode, ops, pos, Whence::Data)
}

/// The device block (4096 bytes) holding file block `block`, 0 for anything but a
/// MAPPED block or on any error (`iomap_bmap`; 0 is the legacy interface's error).
/// The file is written back first.
pub fn iomap_bmap<I, O>(inode: &I, ops: &O, block: u64) -> u64
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    if let Some(m) = inode.mapping()
        && m.write_and_wait_range(0..=MAX_FILE_SIZE).is_err()
    {
        return 0;
    }
    let Some(pos) = block.checked_mul(PAGE).filter(|&p| p < MAX_FILE_SIZE) else {
        return 0;
    };
    // The last block of the file space has one byte less than a page before the
    // largest file offset.
    let len = PAGE.min(MAX_FILE_SIZE - pos);
    let Ok(mut it) = IomapIter::new(ops, pos, len, IterFlags::REPORT) else {
        return 0;
    };
    let answer = match it.next() {
        Ok(true) if it.iomap().kind == IomapType::Mapped => {
            let m = it.iomap();
            m.addr.wrapping_add(pos - m.offset) / PAGE
        }
        Ok(true) => 0,
        _ => return 0,
    };
    // The body advances nothing (as the kernel's): iomap_end sees written == 0, and
    // its error makes the answer 0.
    match it.next() {
        Ok(_) => answer,
        Err(_) => 0,
    }
}
