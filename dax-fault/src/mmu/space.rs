//! The process's address space as a [`PageTable`]: a table of live DAX mappings the
//! signal handler can search without locks, and for each mapping a shadow of what
//! every page and every 2 MiB block currently maps (the kernel's page tables cannot be
//! read back cheaply).
//!
//! # The page-table lock
//!
//! Each 2 MiB block of a mapping has a lock, the counterpart of the kernel's PTE/PMD
//! lock. Every change — an insertion, an upgrade, a zap, a write-protect, a split, a
//! private copy — takes it, checks the shadow, makes the system call that changes the
//! process's real mapping (`mmap`, `mprotect`, `mremap`, userfaultfd write-protect)
//! and updates the shadow, all before it unlocks: no thread ever sees the shadow and
//! the real mapping disagree in a way that matters. (A thread that reads the shadow
//! without the lock only takes a hint: a fault it then handles re-checks under the
//! lock, and a store that the hardware lets through is always one the shadow allows.)
//!
//! The shadow is allocated lazily: a directory per 1 GiB of the mapping when first
//! touched, and a table of 512 page states per 2 MiB block when it first holds a
//! 4 KiB mapping. A large mapping costs only what is used.
//!
//! # Write tracking
//!
//! A shared writable mapping of a device whose memory the kernel can write-protect
//! per page (a memfd: shmem or hugetlbfs) tracks 4 KiB stores with userfaultfd
//! write-protect where the kernel has it (see `sys::uffd`). Read faults map runs
//! read-only by protection, as elsewhere, so the kernel's own fault-around keeps
//! first touch fast; the first store into such a run takes the whole run into
//! tracking (registered, write-protected, then made writable by protection), and
//! from then on "read-only" is the write-protect bit of each page-table entry: a
//! store to a clean page raises SIGBUS (served as the mkwrite fault) and writeback
//! re-protects pages, without changing the kernel's VMA. Without it (`mprotect`),
//! every page whose protection differs from its neighbours' costs a kernel VMA, and a
//! process has `vm.max_map_count` of those (65530 by default). 2 MiB mappings always
//! use `mprotect` (one VMA per 2 MiB block at most).

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use dax_device::{DaxAccessMode, DaxError, PAGE_SIZE, PMD_SIZE, Pfn};
use parking_lot::Mutex;

use super::sys::{self, Access};
use crate::mapping::MappedVma;
use crate::mm::{FaultSpace, handle_mm_fault_retrying};
use crate::pagetable::{Inserted, MapTarget, PageTable, PmdSlot, PmdValue, Pte, PteValue};
use crate::vm::VmFault;

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;
const BLOCK_PAGES: usize = (PMD / PAGE) as usize;
/// 2 MiB units a read fault may map at once (PMD fault-around).
const PMD_AROUND: u64 = 16;
/// Address space one directory of blocks covers.
const DIR_SPAN: u64 = 1 << 30;
const DIR_BLOCKS: usize = (DIR_SPAN / PMD) as usize;

// Page states (low 3 bits; device pages keep their pfn above them).
const P_NONE: u64 = 0;
/// A device page mapped read-only by its protection (`PROT_READ`).
const P_RO: u64 = 1;
/// A device page mapped writable (in a tracked mapping: registered, not protected).
const P_RW: u64 = 2;
const P_ZERO: u64 = 3;
const P_PRIVATE: u64 = 4;
/// Unmapped for good by a partial `munmap`: no access, never mapped again.
const P_GONE: u64 = 5;
/// A device page mapped read-only by userfaultfd write-protect, in a registered
/// writable mapping (tracked mappings only).
const P_WP: u64 = 6;
// 2 MiB block states.
const D_NONE: u64 = 0;
const D_TABLE: u64 = 1;
const D_HUGE_RO: u64 = 2;
const D_HUGE_RW: u64 = 3;
const D_HUGE_ZERO: u64 = 4;

fn kind(v: u64) -> u64 {
    v & 7
}

fn pfn_of(v: u64) -> Pfn {
    Pfn(v >> 3)
}

fn with_pfn(pfn: Pfn, k: u64) -> u64 {
    (pfn.0 << 3) | k
}

fn is_device_page(v: u64) -> bool {
    matches!(kind(v), P_RO | P_RW | P_WP)
}

fn is_huge_device(st: u64) -> bool {
    matches!(kind(st), D_HUGE_RO | D_HUGE_RW)
}

/// The 512 page states of one 2 MiB block, with each device page's offset on the
/// device (needed to copy it for a private mapping).
struct Ptes {
    val: [AtomicU64; BLOCK_PAGES],
    pgoff: [AtomicU64; BLOCK_PAGES],
}

/// One 2 MiB block of a mapping: its page-table lock and what it maps.
#[derive(Default)]
struct Block {
    lock: Mutex<()>,
    /// `D_*`, with the first pfn of a huge device mapping above the kind bits.
    state: AtomicU64,
    /// Device page offset of a huge device mapping.
    pgoff: AtomicU64,
    /// Created, under the lock, when the block first holds a 4 KiB mapping, and kept
    /// until the mapping goes (as the kernel keeps page tables until `munmap`).
    ptes: OnceLock<Box<Ptes>>,
}

impl Block {
    fn ptes(&self) -> &Ptes {
        self.ptes.get_or_init(|| {
            Box::new(Ptes {
                val: std::array::from_fn(|_| AtomicU64::new(P_NONE)),
                pgoff: std::array::from_fn(|_| AtomicU64::new(0)),
            })
        })
    }

    fn page(&self, addr: u64) -> u64 {
        self.ptes
            .get()
            .map_or(P_NONE, |t| t.val[slot(addr)].load(Ordering::Acquire))
    }
}

fn slot(addr: u64) -> usize {
    ((addr % PMD) / PAGE) as usize
}

/// What one live mapping looks like, for the handler and the page-table calls.
pub(crate) struct Shadow {
    pub(crate) base: u64,
    pub(crate) len: u64,
    dirs: Box<[OnceLock<Box<[Block]>>]>,
    pub(crate) vma: Option<Arc<MappedVma>>,
    /// 4 KiB stores are tracked with userfaultfd write-protect (module docs).
    pub(crate) tracked: bool,
    /// The device maps only in 4 KiB units too (not hugetlb-backed).
    pub(crate) small_pages: bool,
    pub(crate) pte_maps: AtomicU64,
    pub(crate) pmd_maps: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) mkwrites: AtomicU64,
    /// Bumped whenever a block lock is released: tells a fault that found nothing to
    /// do whether anything changed since it last looked.
    changes: AtomicU64,
}

/// A held block lock; releasing it counts as a change of the mapping.
struct Locked<'a> {
    _guard: parking_lot::MutexGuard<'a, ()>,
    changes: &'a AtomicU64,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.changes.fetch_add(1, Ordering::Release);
    }
}

impl Shadow {
    pub(crate) fn new(base: u64, len: u64, tracked: bool, small_pages: bool) -> Shadow {
        Shadow {
            base,
            len,
            dirs: (0..len.div_ceil(DIR_SPAN))
                .map(|_| OnceLock::new())
                .collect(),
            vma: None,
            tracked,
            small_pages,
            pte_maps: AtomicU64::new(0),
            pmd_maps: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            mkwrites: AtomicU64::new(0),
            changes: AtomicU64::new(0),
        }
    }

    /// Takes `b`'s lock (the page-table lock of its 2 MiB block).
    fn lock<'a>(&'a self, b: &'a Block) -> Locked<'a> {
        Locked {
            _guard: b.lock.lock(),
            changes: &self.changes,
        }
    }

    fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.len
    }

    /// The block holding `addr` (inside the mapping), if its directory exists.
    fn block(&self, addr: u64) -> Option<&Block> {
        let off = addr - self.base;
        let dir = self.dirs[(off / DIR_SPAN) as usize].get()?;
        Some(&dir[((off % DIR_SPAN) / PMD) as usize])
    }

    /// The block holding `addr` (inside the mapping), creating its directory.
    fn block_mut(&self, addr: u64) -> &Block {
        let off = addr - self.base;
        let dir = self.dirs[(off / DIR_SPAN) as usize]
            .get_or_init(|| (0..DIR_BLOCKS).map(|_| Block::default()).collect());
        &dir[((off % DIR_SPAN) / PMD) as usize]
    }

    fn page(&self, addr: u64) -> u64 {
        self.block(addr).map_or(P_NONE, |b| b.page(addr))
    }

    fn block_state(&self, addr: u64) -> u64 {
        self.block(addr)
            .map_or(D_NONE, |b| b.state.load(Ordering::Acquire))
    }

    /// The page-aligned part of `addr .. addr + len` inside this mapping.
    fn clip(&self, addr: u64, len: u64) -> Option<(u64, u64)> {
        let lo = addr.max(self.base);
        let hi = addr.saturating_add(len).min(self.base + self.len);
        (lo < hi).then_some((lo & !(PAGE - 1), hi.next_multiple_of(PAGE)))
    }

    /// Calls `f` with each existing block overlapping `lo .. hi` and the part of the
    /// range inside it, the block locked.
    fn each_block(&self, lo: u64, hi: u64, mut f: impl FnMut(&Block, u64, u64)) {
        let mut b = lo & !(PMD - 1);
        while b < hi {
            let (s, e) = (lo.max(b), hi.min(b + PMD));
            if let Some(block) = self.block(s) {
                let _pt = self.lock(block);
                f(block, s, e);
            }
            b += PMD;
        }
    }

    /// Runs `copy(lo', hi')` over `lo .. hi` (inside the mapping) one 2 MiB block
    /// at a time, each with the block's lock held and only once every page of the
    /// piece is mapped (with `write`, writable) as the shadow says. Every change to
    /// what a block maps is made under its lock, the shadow and the system call
    /// together, so an access inside `copy` cannot fault: nothing can unmap or
    /// protect the piece meanwhile (the kernel's copies under the page-table lock
    /// work the same way). Returns the first page address found not so (nothing is
    /// run for it or after it; the caller faults it in and tries again), or `None`
    /// when all of the range was copied.
    ///
    /// `copy` must not access any other DAX mapping (its fault would need a lock
    /// this thread may hold).
    pub(crate) fn copy_locked(
        &self,
        lo: u64,
        hi: u64,
        write: bool,
        mut copy: impl FnMut(u64, u64),
    ) -> Option<u64> {
        if lo >= hi {
            return None;
        }
        let mut b = lo & !(PMD - 1);
        while b < hi {
            let (s, e) = (lo.max(b), hi.min(b + PMD));
            let Some(block) = self.block(s) else {
                return Some(s & !(PAGE - 1));
            };
            let _pt = self.lock(block);
            let mut a = s & !(PAGE - 1);
            while a < e {
                match self.present(a) {
                    Some(w) if w || !write => {}
                    _ => return Some(a),
                }
                a += PAGE;
            }
            copy(s, e);
            b += PMD;
        }
        None
    }

    /// Whether `addr` is mapped (`Some`), and whether stores pass without a fault
    /// (an unlocked snapshot).
    pub(crate) fn present(&self, addr: u64) -> Option<bool> {
        if !self.contains(addr) {
            return None;
        }
        match kind(self.block_state(addr)) {
            D_HUGE_RW => return Some(true),
            D_HUGE_RO | D_HUGE_ZERO => return Some(false),
            _ => {}
        }
        match kind(self.page(addr)) {
            P_RW | P_PRIVATE => Some(true),
            P_RO | P_WP | P_ZERO => Some(false),
            _ => None,
        }
    }

    /// Whether the 2 MiB block holding `addr` is one huge mapping (a snapshot).
    pub(crate) fn is_huge(&self, addr: u64) -> bool {
        kind(self.block_state(addr)) >= D_HUGE_RO
    }

    /// Whether `addr` (inside the mapping) was unmapped for good ([`retire`](Self::retire)).
    pub(crate) fn gone(&self, addr: u64) -> bool {
        self.page(addr) == P_GONE
    }

    /// Unmaps the pages of `lo .. hi` (page aligned, inside the mapping) for good, as a
    /// partial `munmap` does: their mappings go (a huge mapping over any of them goes
    /// whole; its other pages fault back in with PTEs), and every later access there
    /// is a SIGSEGV. The addresses stay reserved with no access until the whole
    /// mapping is dropped, so nothing else is placed there meanwhile.
    pub(crate) fn retire(&self, lo: u64, hi: u64) {
        let mut b = lo & !(PMD - 1);
        while b < hi {
            let (s, e) = (lo.max(b), hi.min(b + PMD));
            let block = self.block_mut(s);
            let _pt = self.lock(block);
            if kind(block.state.load(Ordering::Acquire)) >= D_HUGE_RO {
                must(sys::reset(b, PMD), "unmapping a 2 MiB page for munmap");
                block.state.store(D_NONE, Ordering::Release);
            }
            let t = block.ptes();
            let gone = runs(t, s, e, |p| {
                let v = p.swap(P_GONE, Ordering::AcqRel);
                v != P_NONE && v != P_GONE
            });
            for (a, l) in gone {
                must(sys::reset(a, l), "unmapping pages for munmap");
            }
            // A table, so that no 2 MiB mapping covers the gone pages again.
            block.state.store(D_TABLE, Ordering::Release);
            b += PMD;
        }
    }

    /// Maps `n` device pages of `target` at `addr` (inside one block whose lock the
    /// caller holds), read-only or writable, with write tracking where the mapping has
    /// it. A failure leaves the range unmapped.
    fn map_device_ptes(
        &self,
        addr: u64,
        target: &MapTarget<'_>,
        n: u64,
        writable: bool,
    ) -> Result<(), DaxError> {
        let (fd, offset, page_size) = source(target)?;
        if page_size != PAGE_SIZE {
            return Err(DaxError::NotSupported {
                what: "4 KiB mappings of a device that maps only 2 MiB pages (hugetlb)",
            });
        }
        let len = n * PAGE;
        // Writable in a tracked mapping: registered at once, so that writeback can
        // write-protect it later (the entry is already dirty, so a store before the
        // registration needs no tracking). Read-only: by protection, registered only
        // when the first store comes (registered ranges lose the kernel's own
        // fault-around, which makes first touch several times slower).
        let r = sys::map_fd(addr, len, fd, offset, writable, false).and_then(|()| {
            if self.tracked && writable {
                sys::uffd::register(addr, len)
            } else {
                Ok(())
            }
        });
        if r.is_err() {
            // Nothing may stay mapped that the shadow does not know of.
            must(sys::reset(addr, len), "undoing a failed mapping");
        }
        r
    }

    /// Makes the device page at `addr` (state `v`, in block table `t`, its lock held)
    /// writable. In a tracked mapping a page read-only by protection first takes the
    /// whole run of such pages around it in its block into tracking: registered,
    /// write-protected, then made writable by protection (in that order, so that no
    /// store slips through untracked); after that every page of the run is a
    /// write-protected one, and a store to it costs one write-protect change and no
    /// VMA. Elsewhere `mprotect` of the page.
    fn make_writable(&self, t: &Ptes, addr: u64, v: u64) -> Result<(), DaxError> {
        if !self.tracked {
            return sys::protect(addr, PAGE, true);
        }
        if kind(v) == P_RO {
            let i = slot(addr);
            let ro = |j: usize| kind(t.val[j].load(Ordering::Acquire)) == P_RO;
            let first = (0..i).rev().take_while(|&j| ro(j)).last().unwrap_or(i);
            let end = (i..BLOCK_PAGES).take_while(|&j| ro(j)).last().unwrap_or(i) + 1;
            let base = addr - (i - first) as u64 * PAGE;
            let len = (end - first) as u64 * PAGE;
            sys::uffd::register(base, len)
                .and_then(|()| sys::uffd::protect(base, len, true))
                .and_then(|()| sys::protect(base, len, true))?;
            for v in &t.val[first..end] {
                v.store(
                    with_pfn(pfn_of(v.load(Ordering::Acquire)), P_WP),
                    Ordering::Release,
                );
            }
        }
        sys::uffd::protect(addr, PAGE, false)
    }

    /// Makes the writable device pages `addr .. addr + len` (one block, locked)
    /// read-only again (writeback's `mkclean`); returns their new state.
    fn make_read_only(&self, addr: u64, len: u64) -> Result<u64, DaxError> {
        if self.tracked {
            sys::uffd::protect(addr, len, true).map(|()| P_WP)
        } else {
            sys::protect(addr, len, false).map(|()| P_RO)
        }
    }
}

/// The kernel's zap and mkclean cannot fail; here they are system calls that can
/// (`ENOMEM` when the process runs out of kernel mappings). Going on would leave a
/// page mapped that the engine believes gone (showing blocks the filesystem may give
/// to another file) or writable when writeback believes it clean (losing a store's
/// durability): the process is stopped instead, with the reason on stderr.
fn must(r: Result<(), DaxError>, what: &str) {
    if let Err(e) = r {
        sys::fatal(what, &e);
    }
}

/// Runs of consecutive pages in `lo .. hi` (one block) for which `pick` says yes
/// after updating the page's state.
fn runs(t: &Ptes, lo: u64, hi: u64, mut pick: impl FnMut(&AtomicU64) -> bool) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut a = lo;
    while a < hi {
        if pick(&t.val[slot(a)]) {
            match out.last_mut() {
                Some((s, l)) if *s + *l == a => *l += PAGE,
                _ => out.push((a, PAGE)),
            }
        }
        a += PAGE;
    }
    out
}

// ---- the registry ----

const MAX_MAPPINGS: usize = 1024;

struct LiveSlot {
    start: AtomicU64,
    end: AtomicU64,
    shadow: AtomicPtr<Shadow>,
    users: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const LIVE_SLOT: LiveSlot = LiveSlot {
    start: AtomicU64::new(u64::MAX),
    end: AtomicU64::new(0),
    shadow: AtomicPtr::new(std::ptr::null_mut()),
    users: AtomicUsize::new(0),
};
static SLOTS: [LiveSlot; MAX_MAPPINGS] = [LIVE_SLOT; MAX_MAPPINGS];
static HIGH: AtomicUsize = AtomicUsize::new(0);

/// A use of a published shadow; the mapping cannot go away while it lives.
pub(crate) struct ShadowRef {
    slot: &'static LiveSlot,
    shadow: *const Shadow,
}

impl ShadowRef {
    pub(crate) fn get(&self) -> &Shadow {
        // SAFETY: `unpublish` waits for `users` to drop to 0 before the shadow is freed,
        // and this ref holds one use.
        #[allow(unsafe_code)]
        unsafe {
            &*self.shadow
        }
    }
}

impl Drop for ShadowRef {
    fn drop(&mut self) {
        self.slot.users.fetch_sub(1, Ordering::Release);
    }
}

/// The live mapping holding `addr` (lock-free and allocation-free: callable from the
/// signal handler).
pub(crate) fn lookup(addr: u64) -> Option<ShadowRef> {
    let high = HIGH.load(Ordering::Acquire);
    for slot in &SLOTS[..high] {
        if addr < slot.start.load(Ordering::Relaxed) || addr >= slot.end.load(Ordering::Relaxed) {
            continue;
        }
        slot.users.fetch_add(1, Ordering::SeqCst);
        let p = slot.shadow.load(Ordering::SeqCst);
        if !p.is_null()
            && addr >= slot.start.load(Ordering::SeqCst)
            && addr < slot.end.load(Ordering::SeqCst)
        {
            return Some(ShadowRef { slot, shadow: p });
        }
        slot.users.fetch_sub(1, Ordering::Release);
    }
    None
}

/// Publishes `shadow` (which must stay put until [`unpublish`]); returns its slot.
pub(crate) fn publish(shadow: &Shadow) -> Result<usize, DaxError> {
    let p = shadow as *const Shadow as *mut Shadow;
    for (i, slot) in SLOTS.iter().enumerate() {
        if slot
            .shadow
            .compare_exchange(std::ptr::null_mut(), p, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            HIGH.fetch_max(i + 1, Ordering::AcqRel);
            slot.end.store(shadow.base + shadow.len, Ordering::SeqCst);
            slot.start.store(shadow.base, Ordering::SeqCst);
            return Ok(i);
        }
    }
    Err(DaxError::OutOfMemory {
        what: "too many live DAX mappings",
    })
}

/// Withdraws slot `i` and waits until no handler or page-table call uses it.
pub(crate) fn unpublish(i: usize) {
    let slot = &SLOTS[i];
    slot.start.store(u64::MAX, Ordering::SeqCst);
    slot.end.store(0, Ordering::SeqCst);
    while slot.users.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
    slot.shadow.store(std::ptr::null_mut(), Ordering::SeqCst);
}

thread_local! {
    /// Set while [`populating`] runs on this thread.
    static POPULATING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (faults asked for by `MmuMapping::populate`) with PMD fault-around
/// unbounded: populating a range maps each 2 MiB extent run with one `mmap`, as
/// `MAP_POPULATE` does the whole range at once.
pub(crate) fn populating<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            POPULATING.with(|p| p.set(false));
        }
    }
    POPULATING.with(|p| p.set(true));
    let _reset = Reset;
    f()
}

thread_local! {
    /// Faults in a row at one page that found nothing to do (the shadow already
    /// allows the access) while the mapping did not change: (page, change count, n).
    static STALE: std::cell::Cell<(u64, u64, u32)> = const { std::cell::Cell::new((0, 0, 0)) };
}

/// How many times in a row a fault may find nothing to do at an unchanged mapping
/// before it is taken for a fault that is not ours. One is the common race: another
/// thread mapped the page between the fault and the handler.
const STALE_LIMIT: u32 = 8;

/// The handler's resolver: the memory manager's dispatch for a fault at `addr`.
pub(crate) fn resolve(addr: u64, access: Access) -> Option<Result<(), VmFault>> {
    let r = lookup(addr)?;
    let s = r.get();
    if s.gone(addr) {
        // Unmapped by a partial munmap: what the kernel gives for no mapping.
        return Some(Err(VmFault::SIGSEGV));
    }
    if access == Access::Fetch {
        // The mappings are not executable: the kernel's answer for a fetch there.
        return Some(Err(VmFault::SIGSEGV));
    }
    if access == Access::TrackedStore && !s.tracked {
        return None;
    }
    let vma = s.vma.clone()?;
    let present = s.present(addr);
    let write = match access {
        Access::Load => false,
        // A fault on a page mapped read-only can only be a store.
        Access::Unknown => present == Some(false),
        _ => true,
    };
    if present.is_some_and(|w| w || !write) {
        // Nothing to do: another thread got there first, and retrying the access
        // will pass, unless this keeps happening with the mapping unchanged, which
        // means the fault is not one the shadow can explain (not ours).
        let (page, seen) = (addr & !(PAGE - 1), s.changes.load(Ordering::Acquire));
        let n = STALE.with(|c| {
            let (p, g, n) = c.get();
            let n = if (p, g) == (page, seen) { n + 1 } else { 1 };
            c.set((page, seen, n));
            n
        });
        return (n <= STALE_LIMIT).then_some(Ok(()));
    }
    drop(r);
    Some(
        match handle_mm_fault_retrying(&MmuPageTable, &vma, addr, write) {
            // Still contended: return, and the access faults again if it must.
            Err(VmFault::RETRY) => Ok(()),
            r => r,
        },
    )
}

/// The process's address space (all state is in the registry and the shadows).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MmuPageTable;

fn not_ours() -> DaxError {
    DaxError::Fault {
        what: "address is not in a live DAX mapping",
    }
}

fn source<'a>(t: &'a MapTarget<'a>) -> Result<(std::os::fd::BorrowedFd<'a>, u64, usize), DaxError> {
    let s = t.dev.driver().map_source().ok_or(DaxError::NotSupported {
        what: "the device cannot be mapped into a process",
    })?;
    Ok((s.fd, s.offset + t.pgoff * PAGE, s.page_size))
}

/// The live mapping holding `addr`, for a change.
fn owner(addr: u64) -> Result<ShadowRef, DaxError> {
    let r = lookup(addr).ok_or_else(not_ours)?;
    if !r.get().contains(addr) {
        return Err(not_ours());
    }
    Ok(r)
}

/// Runs `f` on the PTE slot of `addr` (the mapping, its block, the block's table and
/// the slot's index) under the block's lock; under a huge mapping the slot is not
/// there to fill: [`Inserted::Present`].
fn with_pte_slot(
    addr: u64,
    f: impl FnOnce(&Shadow, &Block, &Ptes, usize) -> Result<Inserted, DaxError>,
) -> Result<Inserted, DaxError> {
    let r = owner(addr)?;
    let s = r.get();
    let b = s.block_mut(addr);
    let _pt = s.lock(b);
    if kind(b.state.load(Ordering::Acquire)) >= D_HUGE_RO {
        return Ok(Inserted::Present);
    }
    f(s, b, b.ptes(), slot(addr))
}

impl PageTable for MmuPageTable {
    fn pte(&self, addr: u64) -> Option<Pte> {
        let r = lookup(addr)?;
        let s = r.get();
        if kind(s.block_state(addr)) >= D_HUGE_RO {
            return None;
        }
        let v = s.page(addr);
        match kind(v) {
            P_RO | P_RW | P_WP => Some(Pte::Page {
                pfn: pfn_of(v),
                writable: kind(v) == P_RW,
                dirty: kind(v) == P_RW,
            }),
            P_ZERO => Some(Pte::Zero),
            P_PRIVATE => Some(Pte::Private { writable: true }),
            _ => None,
        }
    }

    fn pmd(&self, addr: u64) -> PmdSlot {
        let Some(r) = lookup(addr) else {
            return PmdSlot::Empty;
        };
        let v = r.get().block_state(addr);
        match kind(v) {
            D_TABLE => PmdSlot::Table,
            D_HUGE_RO | D_HUGE_RW => PmdSlot::Huge {
                pfn: pfn_of(v),
                writable: kind(v) == D_HUGE_RW,
                dirty: kind(v) == D_HUGE_RW,
            },
            D_HUGE_ZERO => PmdSlot::HugeZero,
            _ => PmdSlot::Empty,
        }
    }

    fn insert_pte(
        &self,
        addr: u64,
        value: PteValue<'_>,
        write: bool,
        writable: bool,
    ) -> Result<Inserted, DaxError> {
        with_pte_slot(addr, |s, b, t, i| {
            let v = t.val[i].load(Ordering::Acquire);
            if v != P_NONE {
                if !write {
                    return Ok(Inserted::Present);
                }
                return match value {
                    PteValue::Page(tg) if is_device_page(v) && pfn_of(v) == tg.pfn => {
                        if !writable || kind(v) == P_RW {
                            return Ok(Inserted::Present);
                        }
                        s.make_writable(t, addr, v)?;
                        t.val[i].store(with_pfn(tg.pfn, P_RW), Ordering::Release);
                        s.mkwrites.fetch_add(1, Ordering::Relaxed);
                        Ok(Inserted::Upgraded)
                    }
                    _ if kind(v) == P_ZERO => Ok(Inserted::ZeroPage),
                    _ => Ok(Inserted::Mismatch),
                };
            }
            match value {
                PteValue::Page(tg) => {
                    s.map_device_ptes(addr, &tg, 1, writable)?;
                    t.pgoff[i].store(tg.pgoff, Ordering::Relaxed);
                    let k = if writable { P_RW } else { P_RO };
                    t.val[i].store(with_pfn(tg.pfn, k), Ordering::Release);
                }
                PteValue::Zero => {
                    sys::map_anon(addr, PAGE, false)?;
                    t.val[i].store(P_ZERO, Ordering::Release);
                }
            }
            b.state.store(D_TABLE, Ordering::Release);
            s.pte_maps.fetch_add(1, Ordering::Relaxed);
            Ok(Inserted::New)
        })
    }

    fn fault_around(&self, addr: u64, write: bool) -> u64 {
        // One signal and one kernel mapping for up to a whole 2 MiB block of an
        // extent, not one per page (which would also exhaust vm.max_map_count). After
        // a write fault only where stores are tracked per page: elsewhere a store to
        // one of those pages would split the kernel's mapping anyway.
        if !write || lookup(addr).is_some_and(|r| r.get().tracked) {
            PMD / PAGE
        } else {
            1
        }
    }

    fn empty_run(&self, addr: u64, max: u64) -> u64 {
        let Some(r) = lookup(addr) else {
            return 0;
        };
        let s = r.get();
        // A block at a time: a block without a page table is all empty.
        let mut n = 0;
        while n < max {
            let a = addr + n * PAGE;
            if !s.contains(a) {
                break;
            }
            let first = slot(a);
            let room = (PMD / PAGE - first as u64)
                .min(max - n)
                .min((s.base + s.len - a).div_ceil(PAGE));
            let Some(t) = s.block(a).and_then(|b| b.ptes.get()) else {
                n += room;
                continue;
            };
            let vals = &t.val[first..first + room as usize];
            match vals
                .iter()
                .position(|v| v.load(Ordering::Acquire) != P_NONE)
            {
                Some(i) => return n + i as u64,
                None => n += room,
            }
        }
        n
    }

    fn insert_pte_run(&self, addr: u64, target: &MapTarget<'_>, n: u64) -> Result<u64, DaxError> {
        let r = owner(addr)?;
        let s = r.get();
        let b = s.block_mut(addr);
        let _pt = s.lock(b);
        if kind(b.state.load(Ordering::Acquire)) >= D_HUGE_RO {
            return Ok(0);
        }
        let t = b.ptes();
        let room = (PMD - addr % PMD) / PAGE;
        let k = (0..n.min(room))
            .find(|&i| {
                let a = addr + i * PAGE;
                !s.contains(a) || t.val[slot(a)].load(Ordering::Acquire) != P_NONE
            })
            .unwrap_or(n.min(room));
        if k == 0 {
            return Ok(0);
        }
        s.map_device_ptes(addr, target, k, false)?;
        for i in 0..k {
            let j = slot(addr) + i as usize;
            t.pgoff[j].store(target.pgoff + i, Ordering::Relaxed);
            t.val[j].store(with_pfn(target.pfn.add(i), P_RO), Ordering::Release);
        }
        b.state.store(D_TABLE, Ordering::Release);
        s.pte_maps.fetch_add(k, Ordering::Relaxed);
        Ok(k)
    }

    fn insert_pmd(
        &self,
        addr: u64,
        value: PmdValue<'_>,
        write: bool,
        writable: bool,
    ) -> Result<Inserted, DaxError> {
        let r = owner(addr)?;
        let s = r.get();
        if !s.contains(addr + PMD - 1) {
            return Err(DaxError::InvalidArgument {
                what: "a 2 MiB mapping must lie inside the DAX mapping",
            });
        }
        let b = s.block_mut(addr);
        let _pt = s.lock(b);
        let st = b.state.load(Ordering::Acquire);
        if kind(st) != D_NONE {
            if !write {
                return Ok(Inserted::Present);
            }
            return match value {
                PmdValue::Page(tg) if is_huge_device(st) && pfn_of(st) == tg.pfn => {
                    if !writable || kind(st) == D_HUGE_RW {
                        return Ok(Inserted::Present);
                    }
                    sys::protect(addr, PMD, true)?;
                    b.state
                        .store(with_pfn(tg.pfn, D_HUGE_RW), Ordering::Release);
                    s.mkwrites.fetch_add(1, Ordering::Relaxed);
                    Ok(Inserted::Upgraded)
                }
                _ => Ok(Inserted::Mismatch),
            };
        }
        match value {
            PmdValue::Page(tg) => {
                let (fd, offset, _) = source(&tg)?;
                sys::map_fd(addr, PMD, fd, offset, writable, true)?;
                b.pgoff.store(tg.pgoff, Ordering::Relaxed);
                let k = if writable { D_HUGE_RW } else { D_HUGE_RO };
                b.state.store(with_pfn(tg.pfn, k), Ordering::Release);
            }
            PmdValue::Zero => {
                sys::map_anon(addr, PMD, false)?;
                b.state.store(D_HUGE_ZERO, Ordering::Release);
            }
        }
        s.pmd_maps.fetch_add(1, Ordering::Relaxed);
        Ok(Inserted::New)
    }

    fn pmd_fault_around(&self, _addr: u64) -> u64 {
        // One signal and one kernel mapping for up to 32 MiB of an extent; while
        // populating, the whole extent (the engine bounds it by the VMA and EOF).
        if POPULATING.with(|p| p.get()) {
            u64::MAX >> 32
        } else {
            PMD_AROUND
        }
    }

    fn insert_pmd_run(&self, addr: u64, target: &MapTarget<'_>, n: u64) -> Result<u64, DaxError> {
        let r = owner(addr)?;
        let s = r.get();
        // The blocks' locks, taken in address order (the only place that holds more
        // than one), for as long as their slots are empty.
        let mut held = Vec::new();
        for k in 0..n {
            let a = addr + k * PMD;
            if !s.contains(a + PMD - 1) {
                break;
            }
            let b = s.block_mut(a);
            let g = s.lock(b);
            if kind(b.state.load(Ordering::Acquire)) != D_NONE {
                break;
            }
            held.push((b, g));
        }
        let k = held.len() as u64;
        if k == 0 {
            return Ok(0);
        }
        let (fd, offset, _) = source(target)?;
        sys::map_fd(addr, k * PMD, fd, offset, false, true)?;
        for (i, (b, _)) in held.iter().enumerate() {
            let i = i as u64 * (PMD / PAGE);
            b.pgoff.store(target.pgoff + i, Ordering::Relaxed);
            b.state
                .store(with_pfn(target.pfn.add(i), D_HUGE_RO), Ordering::Release);
        }
        s.pmd_maps.fetch_add(k, Ordering::Relaxed);
        Ok(k)
    }

    fn insert_private(&self, addr: u64, data: &[u8; PAGE_SIZE]) -> Result<Inserted, DaxError> {
        with_pte_slot(addr, |s, b, t, i| {
            if t.val[i].load(Ordering::Acquire) != P_NONE {
                return Ok(Inserted::Present);
            }
            sys::map_private_copy(addr, data)?;
            t.val[i].store(P_PRIVATE, Ordering::Release);
            b.state.store(D_TABLE, Ordering::Release);
            s.pte_maps.fetch_add(1, Ordering::Relaxed);
            Ok(Inserted::New)
        })
    }

    /// A huge device mapping of a device that also maps 4 KiB pages becomes 512 PTEs
    /// of the same pages, with the same protection (what splitting it and then
    /// faulting every page back in would give, without the faults); the kernel's VMA
    /// stays and only the shadow changes (plus, for writable pages of a tracked
    /// mapping, the registration that tracks them one by one). A huge zero page, or a
    /// device that maps only 2 MiB pages, is removed.
    fn split_pmd(&self, addr: u64) {
        let Some(r) = lookup(addr) else {
            return;
        };
        let s = r.get();
        if !s.contains(addr) {
            return;
        }
        let Some(b) = s.block(addr) else {
            return;
        };
        let _pt = s.lock(b);
        let st = b.state.load(Ordering::Acquire);
        if kind(st) < D_HUGE_RO {
            return;
        }
        let writable = kind(st) == D_HUGE_RW;
        // Writable pages of a tracked mapping must be registered, so that writeback can
        // write-protect them one by one; read-only ones are registered when first
        // stored to, as any read-only run.
        let convert = is_huge_device(st)
            && s.small_pages
            && (!s.tracked || !writable || sys::uffd::register(addr, PMD).is_ok());
        if convert {
            let t = b.ptes();
            let (pfn, pgoff) = (pfn_of(st), b.pgoff.load(Ordering::Relaxed));
            let k = if writable { P_RW } else { P_RO };
            for i in 0..BLOCK_PAGES {
                t.pgoff[i].store(pgoff + i as u64, Ordering::Relaxed);
                t.val[i].store(with_pfn(pfn.add(i as u64), k), Ordering::Release);
            }
            b.state.store(D_TABLE, Ordering::Release);
        } else if sys::reset(addr, PMD).is_ok() {
            b.state.store(D_NONE, Ordering::Release);
        }
    }

    fn unmap(&self, addr: u64, len: u64, even_cows: bool) {
        let Some(r) = lookup(addr).or_else(|| lookup(addr.saturating_add(len).saturating_sub(1)))
        else {
            return;
        };
        let s = r.get();
        let Some((lo, hi)) = s.clip(addr, len) else {
            return;
        };
        s.each_block(lo, hi, |b, lo, hi| {
            let base = lo & !(PMD - 1);
            if kind(b.state.load(Ordering::Acquire)) >= D_HUGE_RO {
                // A huge mapping partly inside the range goes whole.
                must(sys::reset(base, PMD), "zapping a 2 MiB mapping");
                b.state.store(D_NONE, Ordering::Release);
                return;
            }
            let Some(t) = b.ptes.get() else {
                return;
            };
            let gone = runs(t, lo, hi, |p| {
                let v = p.load(Ordering::Acquire);
                if v == P_NONE || v == P_GONE || (kind(v) == P_PRIVATE && !even_cows) {
                    return false;
                }
                p.store(P_NONE, Ordering::Release);
                true
            });
            for (a, l) in gone {
                must(sys::reset(a, l), "zapping mapped pages");
            }
        });
    }

    fn wrprotect(&self, addr: u64, len: u64, first: Pfn, pages: u64) {
        let Some(r) = lookup(addr) else {
            return;
        };
        let s = r.get();
        let Some((lo, hi)) = s.clip(addr, len) else {
            return;
        };
        let in_range = |p: Pfn| p >= first && p.0 - first.0 < pages;
        s.each_block(lo, hi, |b, lo, hi| {
            let base = lo & !(PMD - 1);
            let st = b.state.load(Ordering::Acquire);
            if kind(st) == D_HUGE_RW {
                let pfn = pfn_of(st);
                if in_range(pfn) || (first >= pfn && first.0 - pfn.0 < 512) {
                    must(
                        sys::protect(base, PMD, false),
                        "write-protecting a 2 MiB mapping",
                    );
                    b.state.store(with_pfn(pfn, D_HUGE_RO), Ordering::Release);
                }
                return;
            }
            let Some(t) = b.ptes.get() else {
                return;
            };
            let clean = runs(t, lo, hi, |p| {
                let v = p.load(Ordering::Acquire);
                kind(v) == P_RW && in_range(pfn_of(v))
            });
            for (a, l) in clean {
                {
                    let k = match s.make_read_only(a, l) {
                        Ok(k) => k,
                        Err(e) => sys::fatal("write-protecting written pages for writeback", &e),
                    };
                    let mut p = a;
                    while p < a + l {
                        let v = &t.val[slot(p)];
                        v.store(
                            with_pfn(pfn_of(v.load(Ordering::Acquire)), k),
                            Ordering::Release,
                        );
                        p += PAGE;
                    }
                }
            }
        });
    }

    fn release(&self, addr: u64, len: u64) {
        sys::release(addr, len);
    }
}

impl FaultSpace for MmuPageTable {
    fn present(&self, addr: u64) -> Option<bool> {
        lookup(addr)?.get().present(addr)
    }

    /// The copy is made from the device page (or zeros for the zero page) into a
    /// private buffer under the block's lock, then moved into place in one step: never
    /// from the user's address, which another thread's store may be changing.
    fn cow_private(&self, vma: &MappedVma, addr: u64) -> Result<(), VmFault> {
        let r = lookup(addr).ok_or(VmFault::SIGSEGV)?;
        let s = r.get();
        if !s.contains(addr) {
            return Err(VmFault::SIGSEGV);
        }
        let page = addr & !(PAGE - 1);
        let b = s.block_mut(page);
        let _pt = s.lock(b);
        if kind(b.state.load(Ordering::Acquire)) >= D_HUGE_RO {
            // The memory manager splits it first; look again.
            return Ok(());
        }
        let t = b.ptes();
        let i = slot(page);
        let v = t.val[i].load(Ordering::Acquire);
        let mut data = Box::new([0u8; PAGE_SIZE]);
        match kind(v) {
            P_RO => {
                let dev = vma.mapping().device();
                let section = dev.read_lock();
                let da = section
                    .direct_access(t.pgoff[i].load(Ordering::Relaxed), 1, DaxAccessMode::Access)
                    .map_err(|e| VmFault::from_error(&e))?;
                if da.copy_to(0, &mut data[..]) != PAGE_SIZE {
                    return Err(VmFault::HWPOISON);
                }
            }
            P_ZERO => {}
            // Copied already, or gone: the access is retried.
            _ => return Ok(()),
        }
        sys::map_private_copy(page, &data).map_err(|_| VmFault::OOM)?;
        t.val[i].store(P_PRIVATE, Ordering::Release);
        s.pte_maps.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn note_fallback(&self, addr: u64) {
        if let Some(r) = lookup(addr) {
            r.get().fallbacks.fetch_add(1, Ordering::Relaxed);
        }
    }
}
