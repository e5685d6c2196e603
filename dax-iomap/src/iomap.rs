//! The iomap model: [`Iomap`] (`struct iomap`), its types and flags with the kernel's
//! values, the operation flags passed to the filesystem ([`IterFlags`]), and the two
//! traits a filesystem implements: [`IomapOps`] (`struct iomap_ops`) and
//! [`DaxInode`] (what the DAX core reads from an inode).

use std::fmt;
use std::ops::RangeInclusive;

use dax_device::{DaxDevice, DaxError};

/// "No address" (`IOMAP_NULL_ADDR`): all ones.
pub const IOMAP_NULL_ADDR: u64 = u64::MAX;

/// The largest file position (`MAX_LFS_FILESIZE` on 64-bit: `i64::MAX`).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// What backs a file range (`IOMAP_HOLE` .. `IOMAP_INLINE`, same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u16)]
pub enum IomapType {
    /// No storage (`IOMAP_HOLE` = 0): reads as zeros, must not be returned for writes.
    #[default]
    Hole = 0,
    /// Reserved but not allocated (`IOMAP_DELALLOC` = 1): never expected on DAX files.
    Delalloc = 1,
    /// Storage at `addr` (`IOMAP_MAPPED` = 2).
    Mapped = 2,
    /// Storage allocated but reading as zeros (`IOMAP_UNWRITTEN` = 3).
    Unwritten = 3,
    /// Data inline in the inode (`IOMAP_INLINE` = 4): not supported by DAX.
    Inline = 4,
}

impl IomapType {
    /// The kernel's numeric value.
    pub const fn value(self) -> u16 {
        self as u16
    }

    /// The type with the kernel's numeric value `v`.
    pub const fn from_value(v: u16) -> Option<IomapType> {
        Some(match v {
            0 => IomapType::Hole,
            1 => IomapType::Delalloc,
            2 => IomapType::Mapped,
            3 => IomapType::Unwritten,
            4 => IomapType::Inline,
            _ => return None,
        })
    }
}

bitflags::bitflags! {
    /// Flags of a mapping (`IOMAP_F_*`, Linux 6.15 bit values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct IomapFlags: u16 {
        /// `IOMAP_F_NEW`: blocks newly allocated by this `iomap_begin`; the filesystem
        /// has already zeroed them.
        const NEW = 1 << 0;
        /// `IOMAP_F_DIRTY`: the inode has metadata to commit for the data to be
        /// reachable after a crash (decides synchronous MAP_SYNC faults).
        const DIRTY = 1 << 1;
        /// `IOMAP_F_SHARED`: the blocks are shared; writing needs copy-on-write. With it
        /// the mapping is the new destination and the source map holds the old data.
        const SHARED = 1 << 2;
        /// `IOMAP_F_MERGED`: several extents were merged (reported to fiemap only).
        const MERGED = 1 << 3;
        /// `IOMAP_F_BUFFER_HEAD`.
        const BUFFER_HEAD = 1 << 4;
        /// `IOMAP_F_XATTR`.
        const XATTR = 1 << 5;
        /// `IOMAP_F_BOUNDARY`.
        const BOUNDARY = 1 << 6;
        /// `IOMAP_F_ANON_WRITE`.
        const ANON_WRITE = 1 << 7;
        /// `IOMAP_F_ATOMIC_BIO`.
        const ATOMIC_BIO = 1 << 8;
        /// `IOMAP_F_PRIVATE`: the first of the bits a filesystem may use for itself.
        const PRIVATE = 1 << 12;
        /// `IOMAP_F_SIZE_CHANGED`: set by the core (buffered writes only).
        const SIZE_CHANGED = 1 << 14;
        /// `IOMAP_F_STALE`: set by the core; the mapping must be asked for again.
        const STALE = 1 << 15;
    }
}

bitflags::bitflags! {
    /// What an operation asks of `iomap_begin`/`iomap_end` (`IOMAP_WRITE` ..
    /// `IOMAP_DONTCACHE`, Linux 6.15 values). No flag means a read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct IterFlags: u32 {
        /// `IOMAP_WRITE`: the caller will write; allocate (and convert unwritten).
        const WRITE = 1 << 0;
        /// `IOMAP_ZERO`: zeroing a range; never allocate.
        const ZERO = 1 << 1;
        /// `IOMAP_REPORT`: report the mapping (fiemap, seek, bmap).
        const REPORT = 1 << 2;
        /// `IOMAP_FAULT`: a page fault.
        const FAULT = 1 << 3;
        /// `IOMAP_DIRECT`: direct I/O (never set by DAX).
        const DIRECT = 1 << 4;
        /// `IOMAP_NOWAIT`: do not block; answer `EAGAIN` instead.
        const NOWAIT = 1 << 5;
        /// `IOMAP_OVERWRITE_ONLY`: only existing blocks (never set by DAX).
        const OVERWRITE_ONLY = 1 << 6;
        /// `IOMAP_UNSHARE`: unshare shared extents.
        const UNSHARE = 1 << 7;
        /// `IOMAP_DAX`: the operation is a DAX operation (addresses are device-relative).
        const DAX = 1 << 8;
        /// `IOMAP_ATOMIC` (never set by DAX).
        const ATOMIC = 1 << 9;
        /// `IOMAP_DONTCACHE` (never set by DAX).
        const DONTCACHE = 1 << 10;
    }
}

/// A mapping of a file range to storage (`struct iomap`).
///
/// Filesystems fill one in [`IomapOps::iomap_begin`]. `Iomap::default()` is the
/// kernel's zero-initialised map: a HOLE of length 0 with no device.
///
/// The map borrows its device for `'a`, as the kernel's `struct iomap` holds a plain
/// `struct dax_device *` whose lifetime the filesystem guarantees: no reference count
/// is taken per mapping. `'a` is the borrow of the filesystem's inode handle that
/// answered `iomap_begin`, so a map cannot outlive the filesystem that made it. Plain
/// data like the kernel's, it is `Copy`.
#[derive(Clone, Copy, Default)]
pub struct Iomap<'a> {
    /// Device byte address of file byte `offset` ([`IOMAP_NULL_ADDR`] when none). For
    /// DAX, `addr - offset` must be a multiple of the page size.
    pub addr: u64,
    /// File byte offset where the mapping starts (at or before the position asked
    /// for).
    pub offset: u64,
    /// Bytes covered (> 0).
    pub length: u64,
    /// What backs the range (`type`).
    pub kind: IomapType,
    /// Flags (`flags`).
    pub flags: IomapFlags,
    /// The DAX device `addr` points into (`dax_dev`); needed for MAPPED and
    /// UNWRITTEN mappings and SHARED destinations. Borrowed, not counted: the
    /// filesystem keeps the device alive while its inode handle is borrowed.
    pub dax_dev: Option<&'a DaxDevice>,
    /// The filesystem's sequence number for revalidation (`validity_cookie`). DAX
    /// never consults it (fsdax needs no revalidation), but it is carried for callers.
    pub validity_cookie: u64,
    /// An opaque word for the filesystem, handed back to `iomap_end` (`private`).
    pub private: u64,
}

/// Mappings are equal when every field is, the device by identity: by address only.
/// `&DaxDevice` is a trait-object reference, and the same device reached through two
/// coercions can carry two copies of the vtable (one per codegen unit), so comparing
/// the whole wide pointer (`ptr::eq`) would call one device two.
impl PartialEq for Iomap<'_> {
    fn eq(&self, o: &Self) -> bool {
        let same_dev = match (self.dax_dev, o.dax_dev) {
            (None, None) => true,
            (Some(a), Some(b)) => std::ptr::addr_eq(a, b),
            _ => false,
        };
        same_dev
            && (self.addr, self.offset, self.length, self.kind, self.flags)
                == (o.addr, o.offset, o.length, o.kind, o.flags)
            && (self.validity_cookie, self.private) == (o.validity_cookie, o.private)
    }
}

impl Eq for Iomap<'_> {}

impl fmt::Debug for Iomap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iomap")
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("offset", &self.offset)
            .field("length", &self.length)
            .field("kind", &self.kind)
            .field("flags", &self.flags)
            .field("dax_dev", &self.dax_dev.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> Iomap<'a> {
    /// A hole over `offset .. offset + length`.
    pub fn hole(offset: u64, length: u64) -> Iomap<'a> {
        Iomap {
            addr: IOMAP_NULL_ADDR,
            offset,
            length,
            kind: IomapType::Hole,
            ..Iomap::default()
        }
    }

    /// A mapping of `offset .. offset + length` to device bytes at `addr` of `dev`.
    pub fn mapped(offset: u64, length: u64, addr: u64, dev: &'a DaxDevice) -> Iomap<'a> {
        Iomap {
            addr,
            offset,
            length,
            kind: IomapType::Mapped,
            dax_dev: Some(dev),
            ..Iomap::default()
        }
    }

    /// End of the mapping (`offset + length`, saturating).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }

    /// Device page offset of the page holding file position `pos`
    /// (`dax_iomap_pgoff`). Only meaningful for mappings with an address.
    pub fn pgoff(&self, pos: u64) -> u64 {
        let page_pos = pos & !(dax_device::PAGE_SIZE as u64 - 1);
        self.addr.wrapping_add(page_pos).wrapping_sub(self.offset) >> dax_device::PAGE_SHIFT
    }

    /// Whether the mapping has storage behind it at `addr`.
    pub fn has_storage(&self) -> bool {
        matches!(self.kind, IomapType::Mapped | IomapType::Unwritten)
    }
}

/// How a filesystem describes its files to the DAX core (`struct iomap_ops`),
/// implemented on the filesystem's inode handle.
///
/// The types follow the kernel's closely enough that the same code can answer a
/// FUSE server's iomap requests.
pub trait IomapOps {
    /// Describes the file range starting at `pos` (`iomap_begin`): returns a mapping
    /// with `offset <= pos < offset + length` (it may be shorter or longer than
    /// `length`), and for copy-on-write a source map with the old data (`None` when
    /// there is none, or the old data is a hole). An error aborts the operation.
    ///
    /// The maps borrow from `self` (their [`Iomap::dax_dev`] is a plain reference, as
    /// the kernel's `iomap->dax_dev` is a plain pointer): the device must live at
    /// least as long as the handle is borrowed.
    fn iomap_begin(
        &self,
        pos: u64,
        length: u64,
        flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError>;

    /// Ends the use of a mapping (`iomap_end`): `pos` is where its use began,
    /// `length` the bytes of it the operation covered, `written` the bytes it actually
    /// processed (possibly 0). Its error is returned only when `written == 0`.
    fn iomap_end(
        &self,
        pos: u64,
        length: u64,
        written: u64,
        flags: IterFlags,
        iomap: &Iomap<'_>,
    ) -> Result<(), DaxError> {
        let _ = (pos, length, written, flags, iomap);
        Ok(())
    }
}

/// What the DAX core reads from an inode besides its mappings: its size and the
/// per-file mapping index (`inode->i_size`, `inode->i_mapping`).
pub trait DaxInode {
    /// The file size in bytes (`i_size_read`). Named after the kernel's field so that
    /// it does not collide with a filesystem's own `size` methods.
    fn i_size(&self) -> u64;

    /// The per-file index of DAX mapping entries, if the file can be mapped (`dax-fault`
    /// provides it). `None` means no mappings exist, so nothing needs invalidating.
    fn mapping(&self) -> Option<&dyn MappingOps> {
        None
    }
}

/// The operations on a file's DAX mapping entries that reads, writes, zeroing and
/// reporting need (implemented by `dax-fault`'s `DaxMapping`). Page ranges are
/// inclusive ranges of file page indices and byte ranges inclusive ranges of bytes,
/// as the kernel's functions take them, written as `RangeInclusive` so the end's
/// meaning is in the type.
pub trait MappingOps {
    /// Clears the DIRTY and TOWRITE marks of every entry in the file pages `pages`,
    /// waiting for locked entries (`dax_clear_dirty_range`).
    fn clear_dirty_range(&self, pages: RangeInclusive<u64>);

    /// Removes every clean entry in the file pages `pages` and unmaps them from every
    /// user mapping (`invalidate_inode_pages2_range`); [`DaxError::Busy`] when dirty
    /// entries stayed.
    fn invalidate_range(&self, pages: RangeInclusive<u64>) -> Result<(), DaxError>;

    /// Writes back dirty entries over the file bytes `bytes` and waits
    /// (`filemap_write_and_wait_range`).
    fn write_and_wait_range(&self, bytes: RangeInclusive<u64>) -> Result<(), DaxError>;

    /// The first entry of any kind (empty, zero page, real; PTE or PMD) overlapping the
    /// file pages `pages`, as its first page index and its number of pages (the DAX
    /// case of `mapping_seek_hole_data`'s index probe).
    fn next_entry(&self, pages: RangeInclusive<u64>) -> Option<(u64, u64)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_linux_6_15() {
        assert_eq!(IomapType::Hole.value(), 0);
        assert_eq!(IomapType::Inline.value(), 4);
        for v in 0..5 {
            assert_eq!(IomapType::from_value(v).unwrap().value(), v);
        }
        assert_eq!(IomapType::from_value(5), None);
        assert_eq!(IomapFlags::SHARED.bits(), 4);
        assert_eq!(IomapFlags::ATOMIC_BIO.bits(), 0x100);
        assert_eq!(IomapFlags::PRIVATE.bits(), 0x1000);
        assert_eq!(IomapFlags::SIZE_CHANGED.bits(), 0x4000);
        assert_eq!(IomapFlags::STALE.bits(), 0x8000);
        assert_eq!(IterFlags::DAX.bits(), 0x100);
        assert_eq!(IterFlags::UNSHARE.bits(), 0x80);
        assert_eq!(IterFlags::DONTCACHE.bits(), 0x400);
        assert_eq!(IOMAP_NULL_ADDR, u64::MAX);
    }

    #[test]
    fn pgoff_follows_addr_minus_offset() {
        let m = Iomap {
            addr: 10 * 4096,
            offset: 3 * 4096,
            length: 8 * 4096,
            kind: IomapType::Mapped,
            ..Iomap::default()
        };
        assert_eq!(m.pgoff(3 * 4096), 10);
        assert_eq!(m.pgoff(5 * 4096 + 17), 12);
        assert_eq!(m.end(), 11 * 4096);
        let d = Iomap::default();
        assert_eq!(
            (d.kind, d.length, d.dax_dev.is_none()),
            (IomapType::Hole, 0, true)
        );
    }
}
