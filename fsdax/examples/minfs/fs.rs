//! minfs: a complete minimal DAX filesystem on `fsdax`, with no `unsafe`.
//!
//! Files live in an in-memory inode table, their bytes on the device. Each inode
//! answers `iomap_begin` from its extent map; the DAX core does the rest: read/write
//! copy straight to device memory, faults map device pages (4 KiB or 2 MiB) into
//! this process. Shared by the example (`main.rs`) and `tests/minfs.rs`.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};
use std::{collections::BTreeMap, ops::Range};

use fsdax::fault::dax_break_layout_relocking;
use fsdax::prelude::*;

/// A block is a 4 KiB page; a huge extent is 512 of them, 2 MiB aligned.
const BLOCK: u64 = PAGE_SIZE as u64;
const HUGE: u64 = PMD_PAGES;
type Guard<'a> = RwLockWriteGuard<'a, ()>;
type Result<T> = std::result::Result<T, DaxError>;
type Maps<'a> = (Iomap<'a>, Option<Iomap<'a>>); // a mapping and its copy-on-write source
const FULL: DaxError = DaxError::NoSpace { what: "no blocks" };

/// The free space of the device as `first page -> page count` runs, first fit.
struct Alloc(BTreeMap<u64, u64>);

impl Alloc {
    /// `count` pages starting on a multiple of `align` pages, or `None` (ENOSPC).
    fn alloc(&mut self, count: u64, align: u64) -> Option<u64> {
        let (s, n, a) = self.0.iter().find_map(|(&s, &n)| {
            let a = s.next_multiple_of(align);
            (a + count <= s + n).then_some((s, n, a))
        })?;
        self.0.remove(&s);
        if a > s {
            self.0.insert(s, a - s); // the unaligned head stays free
        }
        if a + count < s + n {
            self.0.insert(a + count, s + n - a - count); // and the tail
        }
        Some(a)
    }

    /// Returns `count` pages from `start`, merged with free neighbours.
    fn free(&mut self, mut start: u64, mut count: u64) {
        if let Some((&p, &n)) = self.0.range(..start).next_back()
            && p + n == start
        {
            self.0.remove(&p);
            (start, count) = (p, n + count);
        }
        if let Some(n) = self.0.remove(&(start + count)) {
            count += n;
        }
        self.0.insert(start, count);
    }
}

/// The device and its free space, shared by every inode.
struct Space {
    dev: Arc<DaxDevice>,
    alloc: Mutex<Alloc>,
}

/// The filesystem: its space and inode table (inode number = index).
pub struct Fs {
    space: Arc<Space>,
    files: Mutex<Vec<Arc<Inode>>>,
}

impl Fs {
    pub fn new(dev: Arc<DaxDevice>) -> Fs {
        let alloc = Mutex::new(Alloc(BTreeMap::from([(0, dev.driver().nr_pages())])));
        let space = Arc::new(Space { dev, alloc });
        let files = Mutex::default();
        Fs { space, files }
    }

    /// Creates an empty file; returns its inode number and handle.
    pub fn create(&self) -> (usize, Arc<Inode>) {
        let inode = Arc::new(Inode {
            mapping: DaxMapping::new(self.space.dev.clone()),
            space: self.space.clone(),
            io: RwLock::default(),
            invalidate: RwLock::default(),
            extents: Mutex::default(),
            size: AtomicU64::default(),
        });
        let mut files = self.files.lock().unwrap();
        files.push(inode.clone());
        (files.len() - 1, inode)
    }

    pub fn open(&self, ino: usize) -> Option<Arc<Inode>> {
        self.files.lock().unwrap().get(ino).cloned()
    }

    /// Free device space, in 4 KiB pages.
    pub fn free_pages(&self) -> u64 {
        self.space.alloc.lock().unwrap().0.values().sum()
    }
}

/// One file. Locks, outermost first (docs/guide.md, "Locks"):
/// 1. `io`: shared for reads, exclusive for writes, truncate and punch;
/// 2. `invalidate`: shared for a whole page fault, exclusive while blocks under
///    existing mappings change (truncate, punch);
/// 3. the DAX core's entry locks (never ours to take);
/// 4. `extents` (then the allocator inside it): only inside `iomap_begin` and for
///    the short block-freeing sections, never across a call into the core.
pub struct Inode {
    space: Arc<Space>,
    mapping: Arc<DaxMapping>,
    io: RwLock<()>,
    invalidate: RwLock<()>,
    /// `file page -> (device page, count)`.
    extents: Mutex<BTreeMap<u64, (u64, u64)>>,
    /// Changed only under `io` held exclusively; read by the core (EOF checks).
    size: AtomicU64,
}

impl IomapOps for Inode {
    /// Where byte `pos` lives. Reads, zeroing (`ZERO`) and read faults see holes as
    /// holes; writes and write faults (`WRITE`) allocate zeroed blocks, flagged `NEW`.
    ///
    /// No `IomapFlags::DIRTY`: our metadata is never written anywhere, so there is
    /// nothing to commit before mapped data is reachable after a crash (a crash loses
    /// the whole filesystem). MAP_SYNC faults thus never need an fsync, and fsync is
    /// only the data steps (writeback + fence).
    fn iomap_begin(&self, pos: u64, length: u64, flags: IterFlags) -> Result<Maps<'_>> {
        let dev = &*self.space.dev;
        let page = pos / BLOCK;
        let mut ext = self.extents.lock().unwrap();
        if let Some((&fp, &(dp, n))) = ext.range(..=page).next_back()
            && page < fp + n
        {
            return Ok((Iomap::mapped(fp * BLOCK, n * BLOCK, dp * BLOCK, dev), None));
        }
        // A hole, up to the next extent.
        let next = ext
            .range(page..)
            .next()
            .map_or(MAX_FILE_SIZE / BLOCK, |e| *e.0);
        if !flags.contains(IterFlags::WRITE) {
            return Ok((Iomap::hole(page * BLOCK, (next - page) * BLOCK), None));
        }
        // Allocate. A large file gets whole 2 MiB-aligned extents (on 2 MiB-aligned
        // device pages) so that PMD faults can map it; a small one gets 4 KiB blocks
        // for the range asked, up to the next extent.
        let want_end = (pos + length).div_ceil(BLOCK).min(next);
        let region = page - page % HUGE;
        let large = self.i_size().max(pos + length) >= HUGE * BLOCK;
        let last = ext.range(..region + HUGE).next_back();
        let region_free = last.is_none_or(|(&fp, &(_, n))| fp + n <= region);
        let mut alloc = self.space.alloc.lock().unwrap();
        let huge = (large && region_free)
            .then(|| alloc.alloc(HUGE, HUGE))
            .flatten();
        let (fp, count) = huge.map_or((page, want_end - page), |_| (region, HUGE));
        let dp = huge.or_else(|| alloc.alloc(count, 1)).ok_or(FULL)?;
        drop(alloc);
        // New blocks are zeroed through the driver (a page per call, as pmem takes) before
        // anyone sees them, clearing poison on reused ones; the core never zeroes for faults.
        if let Err(e) = (dp..dp + count).try_for_each(|p| dev.zero_page_range(p, 1)) {
            self.space.alloc.lock().unwrap().free(dp, count);
            return Err(e);
        }
        ext.insert(fp, (dp, count));
        let mut map = Iomap::mapped(fp * BLOCK, count * BLOCK, dp * BLOCK, dev);
        map.flags |= IomapFlags::NEW;
        Ok((map, None))
    }
}

impl DaxInode for Inode {
    fn i_size(&self) -> u64 {
        self.size.load(SeqCst)
    }
    /// The mapping index: writes into new blocks invalidate what is mapped there.
    fn mapping(&self) -> Option<&dyn MappingOps> {
        Some(&*self.mapping)
    }
}

impl VmOps for Inode {
    /// A page fault (4 KiB, `order` 0, or 2 MiB, `order` 9): the invalidate lock
    /// shared for the whole fault, then the engine, which calls `iomap_begin`. No
    /// `NEEDDSYNC` handling: we never flag `DIRTY` (see `iomap_begin`).
    fn fault(&self, vmf: &Vmf<'_>, order: u32) -> VmFault {
        let _inval = self.invalidate.read().unwrap();
        dax_iomap_fault(vmf, order, self, self, None, None)
    }
}

impl Inode {
    pub fn read(&self, pos: u64, buf: &mut [u8]) -> Result<usize> {
        let _io = self.io.read().unwrap();
        dax_iomap_read(self, self, pos, buf)
    }

    /// Writes, then extends the size by what landed past EOF (the core does not).
    pub fn write(&self, pos: u64, buf: &[u8]) -> Result<usize> {
        let _io = self.io.write().unwrap();
        let size = self.i_size();
        if pos > size && !size.is_multiple_of(BLOCK) {
            // Stores through a mapping may have left bytes past EOF in the last
            // block: zero them before they become part of the file.
            dax_zero_range(self, self, size, size.next_multiple_of(BLOCK) - size)?;
        }
        let n = dax_iomap_write(self, self, pos, buf)?;
        self.size.fetch_max(pos + n as u64, SeqCst);
        Ok(n)
    }

    /// Maps `len` bytes from file page `pgoff` into this process.
    pub fn mmap(self: &Arc<Self>, pgoff: u64, len: u64, writable: bool) -> Result<MmuMapping> {
        let opts = MapOptions::new().writable(writable);
        MmuMapping::map(&self.mapping, self.clone(), pgoff, len, opts)
    }

    /// fsync: write back the cache lines that mapped stores dirtied (write-protecting
    /// them so the next store is tracked again), then fence. `write` copied with
    /// non-temporal stores: the fence covers it. Durable metadata would commit next.
    pub fn fsync(&self) -> Result<()> {
        let dev = &self.space.dev;
        dax_writeback_mapping_range(&self.mapping, dev, &WritebackControl::sync_all(..))?;
        dev.flush()
    }

    /// Takes the I/O and invalidate locks exclusively and breaks the layout of
    /// `bytes` (unmap everywhere, wait for pinned pages, dropping and retaking the
    /// invalidate lock meanwhile). Block maps may change while the guards are held.
    fn break_layout(&self, bytes: Range<u64>) -> Result<(Guard<'_>, Option<Guard<'_>>)> {
        let io = self.io.write().unwrap();
        let relock = || self.invalidate.write().unwrap();
        let mut inval = Some(relock());
        dax_break_layout_relocking(&self.mapping, bytes, &mut inval, relock, None)?;
        Ok((io, inval))
    }

    /// Frees the whole blocks `first..end` (file pages), splitting extents, then
    /// drops what is still mapped there (private copies included).
    fn free_blocks(&self, first: u64, end: u64) {
        let mut ext = self.extents.lock().unwrap();
        let mut alloc = self.space.alloc.lock().unwrap();
        let hit = ext.range(..end).filter(|e| *e.0 + e.1.1 > first);
        let hit: Vec<_> = hit.map(|(&fp, &e)| (fp, e)).collect();
        for (fp, (dp, n)) in hit {
            ext.remove(&fp);
            let (lo, hi) = (fp.max(first), (fp + n).min(end));
            if fp < lo {
                ext.insert(fp, (dp, lo - fp)); // head survives
            }
            if hi < fp + n {
                ext.insert(hi, (dp + hi - fp, fp + n - hi)); // tail survives
            }
            alloc.free(dp + lo - fp, hi - lo);
        }
        drop((alloc, ext));
        self.mapping.unmap_mapping_pages(first, end - first, true);
    }

    /// truncate: zero the tail of a partial last block, break the layout past it,
    /// free the blocks past EOF. Growing only zeroes the old tail block.
    pub fn truncate(&self, new_size: u64) -> Result<()> {
        let keep = new_size.div_ceil(BLOCK);
        let (_io, _inval) = self.break_layout(keep * BLOCK..MAX_FILE_SIZE)?;
        let size = self.i_size();
        if new_size < size {
            dax_truncate_page(self, self, new_size)?;
            self.free_blocks(keep, MAX_FILE_SIZE / BLOCK);
        } else {
            dax_zero_range(self, self, size, size.next_multiple_of(BLOCK) - size)?;
        }
        self.size.store(new_size, SeqCst);
        Ok(())
    }

    /// fallocate(PUNCH_HOLE | KEEP_SIZE): zero the partial blocks at the edges, free
    /// the whole ones in between. The size does not change.
    pub fn punch_hole(&self, pos: u64, len: u64) -> Result<()> {
        let (_io, _inval) =
            self.break_layout(pos - pos % BLOCK..(pos + len).next_multiple_of(BLOCK))?;
        let end = (pos + len).min(self.i_size());
        if pos >= end {
            return Ok(());
        }
        // The whole blocks `first..last`; `first == last` when there are none.
        let first = pos.next_multiple_of(BLOCK).min(end);
        let last = (end - end % BLOCK).max(first);
        dax_zero_range(self, self, pos, first - pos)?;
        dax_zero_range(self, self, last, end - last)?;
        self.free_blocks(first / BLOCK, last / BLOCK);
        Ok(())
    }
}
