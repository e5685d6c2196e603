//! The process's address space as a [`PageTable`]: a table of live DAX mappings the
//! signal handler can search without locks, and for each mapping a shadow of what
//! every page and every 2 MiB block currently maps (the kernel's page tables cannot be
//! read back cheaply), updated alongside the real `mmap`/`mprotect` calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use dax_core::{DaxError, PAGE_SIZE, PMD_SIZE, Pfn};

use super::sys;
use crate::mapping::MappedVma;
use crate::mm::{MmSpace, handle_mm_fault};
use crate::pagetable::{MapTarget, PageTable, PmdSlot, Pte};
use crate::vm::VmFault;

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;

// Page states (low 3 bits; device pages keep their pfn above them).
const P_NONE: u64 = 0;
const P_RO: u64 = 1;
const P_RW: u64 = 2;
const P_ZERO: u64 = 3;
const P_PRIVATE: u64 = 4;
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

/// What one live mapping looks like, for the handler and the page-table calls.
pub(crate) struct Shadow {
    pub(crate) base: u64,
    pub(crate) len: u64,
    pages: Box<[AtomicU64]>,
    blocks: Box<[AtomicU64]>,
    pub(crate) vma: Option<Arc<MappedVma>>,
    pub(crate) pte_maps: AtomicU64,
    pub(crate) pmd_maps: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
}

impl Shadow {
    pub(crate) fn new(base: u64, len: u64) -> Shadow {
        let pages = (len / PAGE) as usize;
        let blocks = len.div_ceil(PMD) as usize;
        Shadow {
            base,
            len,
            pages: (0..pages).map(|_| AtomicU64::new(P_NONE)).collect(),
            blocks: (0..blocks).map(|_| AtomicU64::new(D_NONE)).collect(),
            vma: None,
            pte_maps: AtomicU64::new(0),
            pmd_maps: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }
    }

    fn page(&self, addr: u64) -> &AtomicU64 {
        &self.pages[((addr - self.base) / PAGE) as usize]
    }

    fn block(&self, addr: u64) -> &AtomicU64 {
        &self.blocks[((addr - self.base) / PMD) as usize]
    }

    fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.len
    }

    /// The page-aligned part of `addr .. addr + len` inside this mapping.
    fn clip(&self, addr: u64, len: u64) -> Option<(u64, u64)> {
        let lo = addr.max(self.base);
        let hi = addr.saturating_add(len).min(self.base + self.len);
        (lo < hi).then_some((lo & !(PAGE - 1), hi.next_multiple_of(PAGE)))
    }

    /// Returns whole runs of pages in `lo .. hi` for which `pick` says yes, after
    /// `pick` has updated each page's state.
    fn runs(&self, lo: u64, hi: u64, mut pick: impl FnMut(&AtomicU64) -> bool) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut a = lo;
        while a < hi {
            if pick(self.page(a)) {
                match out.last_mut() {
                    Some((s, l)) if *s + *l == a => *l += PAGE,
                    _ => out.push((a, PAGE)),
                }
            }
            a += PAGE;
        }
        out
    }
}

// ---- the registry ----

const MAX_MAPPINGS: usize = 1024;

struct Slot {
    start: AtomicU64,
    end: AtomicU64,
    shadow: AtomicPtr<Shadow>,
    users: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const SLOT: Slot = Slot {
    start: AtomicU64::new(u64::MAX),
    end: AtomicU64::new(0),
    shadow: AtomicPtr::new(std::ptr::null_mut()),
    users: AtomicUsize::new(0),
};
static SLOTS: [Slot; MAX_MAPPINGS] = [SLOT; MAX_MAPPINGS];
static HIGH: AtomicUsize = AtomicUsize::new(0);

/// A use of a published shadow; the mapping cannot go away while it lives.
pub(crate) struct ShadowRef {
    slot: &'static Slot,
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
    Err(DaxError::Os {
        errno: libc::ENOMEM,
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

/// The handler's resolver: the memory manager's dispatch for a fault at `addr`.
pub(crate) fn resolve(addr: u64, write: Option<bool>) -> Option<Result<(), VmFault>> {
    let r = lookup(addr)?;
    let vma = r.get().vma.clone()?;
    drop(r);
    // Unknown direction: a fault on a page mapped read-only can only be a store.
    let write = write.unwrap_or_else(|| MmuSpace.present(addr) == Some(false));
    Some(handle_mm_fault(&MmuSpace, &vma, addr, write))
}

/// The process's address space (all state is in the registry and the shadows).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MmuSpace;

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

impl PageTable for MmuSpace {
    fn pte(&self, addr: u64) -> Option<Pte> {
        let r = lookup(addr)?;
        let s = r.get();
        if kind(s.block(addr).load(Ordering::Acquire)) >= D_HUGE_RO {
            return None;
        }
        let v = s.page(addr).load(Ordering::Acquire);
        match kind(v) {
            P_RO | P_RW => Some(Pte::Page {
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
        let v = r.get().block(addr).load(Ordering::Acquire);
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

    fn map_pte(&self, addr: u64, target: &MapTarget<'_>, writable: bool) -> Result<(), DaxError> {
        self.map_ptes(addr, target, 1, writable)
    }

    fn fault_around(&self) -> u64 {
        // One signal and one kernel mapping for up to a whole 2 MiB block of a read
        // extent, not one per page (which would also exhaust vm.max_map_count).
        PMD / PAGE
    }

    fn empty_run(&self, addr: u64, max: u64) -> u64 {
        let Some(r) = lookup(addr) else {
            return 0;
        };
        let s = r.get();
        (0..max)
            .find(|&i| {
                let a = addr + i * PAGE;
                !s.contains(a) || s.page(a).load(Ordering::Acquire) != P_NONE
            })
            .unwrap_or(max)
    }

    fn map_ptes(
        &self,
        addr: u64,
        target: &MapTarget<'_>,
        n: u64,
        writable: bool,
    ) -> Result<(), DaxError> {
        let r = lookup(addr).ok_or_else(not_ours)?;
        let s = r.get();
        if !s.contains(addr + (n - 1) * PAGE) || (addr % PMD) / PAGE + n > PMD / PAGE {
            return Err(DaxError::InvalidArgument {
                what: "a run of PTEs must stay inside one mapping and one 2 MiB block",
            });
        }
        let (fd, offset, page_size) = source(target)?;
        if page_size != PAGE_SIZE {
            return Err(DaxError::NotSupported {
                what: "4 KiB mappings of a device backed by huge pages",
            });
        }
        sys::map_fd(addr, n * PAGE, fd, offset, writable, false)?;
        let k = if writable { P_RW } else { P_RO };
        for i in 0..n {
            s.page(addr + i * PAGE)
                .store(((target.pfn.0 + i) << 3) | k, Ordering::Release);
        }
        s.block(addr).store(D_TABLE, Ordering::Release);
        s.pte_maps.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    fn map_zero_pte(&self, addr: u64) -> Result<(), DaxError> {
        let r = lookup(addr).ok_or_else(not_ours)?;
        let s = r.get();
        sys::map_anon(addr, PAGE, false)?;
        s.page(addr).store(P_ZERO, Ordering::Release);
        s.block(addr).store(D_TABLE, Ordering::Release);
        s.pte_maps.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn mkwrite_pte(&self, addr: u64) -> Result<(), DaxError> {
        let r = lookup(addr).ok_or_else(not_ours)?;
        let s = r.get();
        let v = s.page(addr).load(Ordering::Acquire);
        if kind(v) != P_RO && kind(v) != P_RW {
            return Err(DaxError::Fault {
                what: "mkwrite of a slot that holds no device page",
            });
        }
        sys::protect(addr, PAGE, true)?;
        s.page(addr).store((v & !7) | P_RW, Ordering::Release);
        Ok(())
    }

    fn map_pmd(&self, addr: u64, target: &MapTarget<'_>, writable: bool) -> Result<(), DaxError> {
        let r = lookup(addr).ok_or_else(not_ours)?;
        let s = r.get();
        let (fd, offset, _) = source(target)?;
        sys::map_fd(addr, PMD, fd, offset, writable, true)?;
        let k = if writable { D_HUGE_RW } else { D_HUGE_RO };
        s.block(addr)
            .store((target.pfn.0 << 3) | k, Ordering::Release);
        s.pmd_maps.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn map_huge_zero(&self, addr: u64) -> Result<(), DaxError> {
        let r = lookup(addr).ok_or_else(not_ours)?;
        let s = r.get();
        sys::map_anon(addr, PMD, false)?;
        s.block(addr).store(D_HUGE_ZERO, Ordering::Release);
        s.pmd_maps.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn mkwrite_pmd(&self, addr: u64) -> Result<(), DaxError> {
        let r = lookup(addr).ok_or_else(not_ours)?;
        let s = r.get();
        let v = s.block(addr).load(Ordering::Acquire);
        if kind(v) != D_HUGE_RO && kind(v) != D_HUGE_RW {
            return Err(DaxError::Fault {
                what: "mkwrite of a PMD slot that holds no device mapping",
            });
        }
        sys::protect(addr, PMD, true)?;
        s.block(addr).store((v & !7) | D_HUGE_RW, Ordering::Release);
        Ok(())
    }

    fn map_private(&self, addr: u64, data: &[u8; PAGE_SIZE]) -> Result<(), DaxError> {
        let r = lookup(addr).ok_or_else(not_ours)?;
        let s = r.get();
        sys::map_anon_copy(addr, data)?;
        s.page(addr).store(P_PRIVATE, Ordering::Release);
        s.block(addr).store(D_TABLE, Ordering::Release);
        s.pte_maps.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn split_pmd(&self, addr: u64) {
        let Some(r) = lookup(addr) else {
            return;
        };
        let s = r.get();
        s.fallbacks.fetch_add(1, Ordering::Relaxed);
        let v = s.block(addr).load(Ordering::Acquire);
        if kind(v) >= D_HUGE_RO && sys::reset(addr, PMD).is_ok() {
            s.block(addr).store(D_NONE, Ordering::Release);
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
        let mut b = lo & !(PMD - 1);
        while b < hi {
            if b >= s.base && kind(s.block(b).load(Ordering::Acquire)) >= D_HUGE_RO {
                let _ = sys::reset(b, PMD);
                s.block(b).store(D_NONE, Ordering::Release);
            }
            b += PMD;
        }
        let runs = s.runs(lo, hi, |p| {
            let v = p.load(Ordering::Acquire);
            if v == P_NONE || (kind(v) == P_PRIVATE && !even_cows) {
                return false;
            }
            p.store(P_NONE, Ordering::Release);
            true
        });
        for (a, l) in runs {
            let _ = sys::reset(a, l);
        }
    }

    fn wrprotect(&self, addr: u64, len: u64, first: Pfn, pages: u64) {
        let Some(r) = lookup(addr) else {
            return;
        };
        let s = r.get();
        let Some((lo, hi)) = s.clip(addr, len) else {
            return;
        };
        let in_range = |p: Pfn| p >= first && p.0 < first.0 + pages;
        let mut b = lo & !(PMD - 1);
        while b < hi {
            let v = s.block(b).load(Ordering::Acquire);
            if kind(v) == D_HUGE_RW
                && (in_range(pfn_of(v)) || (first >= pfn_of(v) && first.0 < pfn_of(v).0 + 512))
                && sys::protect(b, PMD, false).is_ok()
            {
                s.block(b).store((v & !7) | D_HUGE_RO, Ordering::Release);
            }
            b += PMD;
        }
        let runs = s.runs(lo, hi, |p| {
            let v = p.load(Ordering::Acquire);
            if kind(v) != P_RW || !in_range(pfn_of(v)) {
                return false;
            }
            p.store((v & !7) | P_RO, Ordering::Release);
            true
        });
        for (a, l) in runs {
            let _ = sys::protect(a, l, false);
        }
    }

    fn release(&self, addr: u64, len: u64) {
        sys::release(addr, len);
    }
}

impl MmSpace for MmuSpace {
    fn present(&self, addr: u64) -> Option<bool> {
        let r = lookup(addr)?;
        let s = r.get();
        if !s.contains(addr) {
            return None;
        }
        let b = s.block(addr).load(Ordering::Acquire);
        match kind(b) {
            D_HUGE_RW => return Some(true),
            D_HUGE_RO | D_HUGE_ZERO => return Some(false),
            _ => {}
        }
        match kind(s.page(addr).load(Ordering::Acquire)) {
            P_RW | P_PRIVATE => Some(true),
            P_RO | P_ZERO => Some(false),
            _ => None,
        }
    }

    fn cow_private(&self, _vma: &MappedVma, addr: u64) -> Result<(), VmFault> {
        let r = lookup(addr).ok_or(VmFault::SIGSEGV)?;
        let s = r.get();
        let page = addr & !(PAGE - 1);
        sys::cow_page(page).map_err(|_| VmFault::OOM)?;
        s.page(page).store(P_PRIVATE, Ordering::Release);
        s.block(page).store(D_TABLE, Ordering::Release);
        Ok(())
    }
}
