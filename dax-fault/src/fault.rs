//! The DAX page-fault handler (`dax_iomap_fault`, `dax_iomap_pte_fault`,
//! `dax_iomap_pmd_fault`, `dax_fault_iter`, `dax_fault_cow_page`, `dax_load_hole`,
//! `dax_pmd_load_hole`, `dax_insert_entry`, `dax_finish_sync_fault`,
//! `dax_insert_pfn_mkwrite`), and the insertion rules of `vmf_insert_page_mkwrite` and
//! `vmf_insert_folio_pmd`.

use dax_device::{DaxAccessMode, DaxError, PAGE_SIZE, PMD_ORDER, PMD_PAGES, PMD_SIZE, Pfn};
use dax_iomap::{DaxInode, Iomap, IomapFlags, IomapIter, IomapOps, IomapType, IterFlags};

use crate::index::{Entry, EntryKind, LockedEntry};
use crate::mapping::DaxMapping;
use crate::mapping::Vmf;
use crate::page_state;
use crate::pagetable::{Inserted, MapTarget, PmdSlot, PmdValue, PteValue};
use crate::vm::VmFault;

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;

/// The pfn DAX records for a hole mapped with the shared zero page (`my_zero_pfn`).
/// It is no device's pfn: device pfns are process addresses shifted by 12 (below
/// 2^45 on x86-64).
pub const ZERO_PFN: Pfn = Pfn(1 << 52);
/// The pfn recorded for a hole mapped with the huge zero page (512-aligned).
pub const HUGE_ZERO_PFN: Pfn = Pfn((1 << 52) + PMD_PAGES);

/// Handles a page fault on a DAX file (`dax_iomap_fault`): `order` 0 for a 4 KiB (PTE)
/// fault, 9 for a 2 MiB (PMD) fault; any other order is `VM_FAULT_FALLBACK`.
///
/// The caller (the filesystem's fault handler) holds its invalidate lock shared, so
/// that the size and block map stay put against truncate and hole punch. `inode` gives the size, `ops` the block map. A synchronous write fault
/// (MAP_SYNC, and the filesystem reports [`IomapFlags::DIRTY`]) returns
/// [`VmFault::NEEDDSYNC`] with the pfn in `*pfnp`; the caller then makes its metadata
/// durable and calls [`dax_finish_sync_fault`]. Without `pfnp` that case is
/// [`VmFault::SIGBUS`]. PTE faults store the block-map error (for example `ENOSPC`
/// from `iomap_begin`) in `*iomap_errp`, as ext4 uses to retry after a journal commit.
pub fn dax_iomap_fault<I, O>(
    vmf: &Vmf<'_>,
    order: u32,
    inode: &I,
    ops: &O,
    pfnp: Option<&mut Pfn>,
    iomap_errp: Option<&mut Result<(), DaxError>>,
) -> VmFault
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    match order {
        0 => pte_fault(vmf, inode, ops, pfnp, iomap_errp),
        PMD_ORDER => pmd_fault(vmf, inode, ops, pfnp),
        _ => VmFault::FALLBACK,
    }
}

fn unmap_for(mapping: &DaxMapping) -> impl FnMut(u64, u64) + '_ {
    move |first, pages| mapping.unmap_mapping_pages(first, pages, false)
}

/// `dax_iomap_pte_fault`.
fn pte_fault<I, O>(
    vmf: &Vmf<'_>,
    inode: &I,
    ops: &O,
    pfnp: Option<&mut Pfn>,
    iomap_errp: Option<&mut Result<(), DaxError>>,
) -> VmFault
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let mapping = vmf.vma().mapping();
    mapping.stats().count_pte();
    let pos = vmf.pgoff() * PAGE;
    if pos >= inode.i_size() {
        return VmFault::SIGBUS;
    }
    let mut flags = IterFlags::DAX | IterFlags::FAULT;
    if vmf.is_write() && !vmf.is_cow() {
        flags |= IterFlags::WRITE;
    }
    let Ok(mut entry) = mapping
        .index()
        .grab(vmf.pgoff(), 0, &mut unmap_for(mapping))
    else {
        return VmFault::SIGBUS;
    };
    let pt = vmf.vma().page_table();
    if pt.pmd(vmf.address()).is_huge() {
        // Raced with a PMD fault: the huge mapping serves this address.
        return VmFault::NOPAGE;
    }
    // Fault-around (off with the kernel's default of 1 page): how many of the pages
    // after this one may be mapped read-only with it, bounded by EOF, the VMA and the
    // 2 MiB block. A read fault asks the filesystem for the run and stops after this
    // one mapping; a write fault (where the page table asks for it) maps the pages
    // after its own with a separate read query, so that it allocates nothing more.
    let write = flags.contains(IterFlags::WRITE);
    let around_limit = if vmf.is_cow() {
        0
    } else {
        let eof_pages = inode
            .i_size()
            .div_ceil(PAGE)
            .saturating_sub(vmf.pgoff() + 1);
        let vma_pages = (vmf.vma().vma().end() - vmf.address()) / PAGE - 1;
        let block_pages = (PMD - vmf.address() % PMD) / PAGE - 1;
        (pt.fault_around(vmf.address(), write).saturating_sub(1))
            .min(eof_pages)
            .min(vma_pages)
            .min(block_pages)
    };
    let around = if write { 0 } else { around_limit };
    let mut iter = match IomapIter::new(ops, pos, PAGE * (1 + around), flags) {
        Ok(it) => it,
        Err(e) => return VmFault::from_error(&e),
    };
    let mut ret = VmFault::empty();
    let mut pfnp = pfnp;
    // Whether the filesystem allocated (or converted) blocks for this fault.
    let mut allocated = false;
    let status = loop {
        match iter.next() {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
        if iter.length() < PAGE {
            iter.set_status(Err(DaxError::Io {
                what: "filesystem mapping shorter than the faulting page",
            }));
            continue;
        }
        allocated |= iter.iomap().flags.contains(IomapFlags::NEW);
        ret = fault_iter(vmf, &iter, &mut entry, false, pfnp.as_deref_mut(), around);
        if ret != VmFault::SIGBUS && iter.iomap().flags.contains(IomapFlags::NEW) {
            mapping.stats().count_major();
            ret |= VmFault::MAJOR;
        }
        if !ret.is_error() {
            // Cannot fail: the length was checked above.
            let _ = iter.advance(PAGE);
        }
        if around > 0 {
            // The fault is one page; the run was only a hint to the filesystem.
            break Ok(());
        }
    };
    drop(iter);
    if ret.is_empty()
        && let Err(e) = &status
    {
        ret = VmFault::from_error(e);
    }
    if let Some(p) = iomap_errp {
        *p = status;
    }
    if write && around_limit > 0 && ret.contains(VmFault::NOPAGE) && !ret.is_error() {
        map_after_write(vmf, ops, around_limit);
    }
    if allocated && ret.is_error() && entry.entry().kind == EntryKind::Zero {
        // The filesystem gave the page storage (a hole filled, an unwritten block
        // converted), then the fault failed before its entry replaced the zero page's:
        // the block stays allocated, so the zero page no longer shows the file there,
        // and a write(2) into the block (MAPPED, not NEW: nothing invalidates) would
        // stay invisible behind it. Drop both; the next access faults the block in.
        // (The kernel leaves them; a dax-rs fix, found by fault injection.)
        mapping.unmap_mapping_pages(vmf.pgoff(), 1, false);
        entry.delete();
        return ret;
    }
    drop(entry);
    ret
}

/// Fault-around after a write fault (a dax-rs extension, for page tables that ask for
/// it): maps up to `max` pages after the faulting one read-only, from a separate read
/// query, when they are already mapped extent (a hole or an unwritten extent is left
/// to its own fault; nothing is allocated). A store to one of them later faults as a
/// mkwrite, as after a read fault. Best effort: any failure just maps fewer pages.
fn map_after_write<O: IomapOps + ?Sized>(vmf: &Vmf<'_>, ops: &O, max: u64) {
    let pt = vmf.vma().page_table();
    let addr = vmf.address() + PAGE;
    let max = pt.empty_run(addr, max);
    if max == 0 {
        return;
    }
    let pos = (vmf.pgoff() + 1) * PAGE;
    let Ok(mut iter) = IomapIter::new(ops, pos, PAGE * max, IterFlags::DAX | IterFlags::FAULT)
    else {
        return;
    };
    if !matches!(iter.next(), Ok(true)) {
        return;
    }
    let iomap = iter.iomap();
    let Some(dev) = iomap.dax_dev else {
        return;
    };
    if iomap.kind != IomapType::Mapped
        || iomap.flags.contains(IomapFlags::SHARED)
        || iter.length() < PAGE
    {
        return;
    }
    let pgoff = iomap.pgoff(pos);
    let n = max.min(iter.length() / PAGE);
    let section = dev.read_lock();
    let Ok(da) = section.direct_access(pgoff, n, DaxAccessMode::Access) else {
        return;
    };
    let n = n.min(da.pages());
    let pfn = da.pfn();
    drop(section);
    let n = prepare_run_after(vmf, pfn, pgoff, n);
    if n > 0 {
        let _ = pt.insert_pte_run(addr, &MapTarget { pfn, pgoff, dev }, n);
    }
}

/// Gives up to `max` pages after the faulting one, backed by device pages from `pfn`
/// / `pgoff`, clean REAL entries and page ownership for fault-around (keeping entries
/// that are already right); returns how many can be mapped.
fn prepare_run_after(vmf: &Vmf<'_>, pfn: Pfn, pgoff: u64, max: u64) -> u64 {
    let mapping = vmf.vma().mapping();
    let first = vmf.pgoff() + 1;
    let (n, created) = mapping.index().prepare_run(first, max, pfn, pgoff);
    page_state::associate_units(pfn, 0, first, &created, mapping);
    n
}

/// `dax_fault_check_fallback`: whether a PMD cannot serve this fault.
fn pmd_fallback(vmf: &Vmf<'_>, index: u64, max_pgoff: u64) -> bool {
    let vma = vmf.vma().vma();
    let colour = PMD_PAGES - 1;
    ((vmf.address() / PAGE) & colour) != (vmf.pgoff() & colour)
        || (vmf.is_write() && !vma.is_shared())
        || !vma.holds_pmd(vmf.address())
        || (index | colour) >= max_pgoff
}

/// `dax_iomap_pmd_fault`.
fn pmd_fault<I, O>(vmf: &Vmf<'_>, inode: &I, ops: &O, pfnp: Option<&mut Pfn>) -> VmFault
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let mapping = vmf.vma().mapping();
    mapping.stats().count_pmd();
    let addr = vmf.address() & !(PMD - 1);
    let pt = vmf.vma().page_table();
    let index = vmf.pgoff() & !(PMD_PAGES - 1);
    let max_pgoff = inode.i_size().div_ceil(PAGE);
    if index >= max_pgoff {
        return VmFault::SIGBUS;
    }
    let fallback = || {
        pt.split_pmd(addr);
        mapping.stats().count_fallback();
        VmFault::FALLBACK
    };
    if pmd_fallback(vmf, index, max_pgoff) {
        return fallback();
    }
    let mut entry = match mapping
        .index()
        .grab(index, PMD_ORDER, &mut unmap_for(mapping))
    {
        Ok(e) => e,
        Err(_) => return fallback(),
    };
    if pt.pmd(addr) == PmdSlot::Table {
        // A PTE table appeared since the memory manager looked: retry.
        return VmFault::empty();
    }
    let mut flags = IterFlags::DAX | IterFlags::FAULT;
    if vmf.is_write() {
        flags |= IterFlags::WRITE;
    }
    // PMD fault-around (a dax-rs extension, off with the default of 1): a read fault
    // may also map the following 2 MiB units of its extent, each wholly inside the
    // VMA and before EOF (the rules a PMD fault of its own would check).
    let around = if vmf.is_write() {
        0
    } else {
        let vma_units = (vmf.vma().vma().end().saturating_sub(addr) / PMD).saturating_sub(1);
        let eof_units = ((max_pgoff - index) / PMD_PAGES).saturating_sub(1);
        pt.pmd_fault_around(addr)
            .saturating_sub(1)
            .min(vma_units)
            .min(eof_units)
    };
    let Ok(mut iter) = IomapIter::new(ops, index * PAGE, PMD * (1 + around), flags) else {
        drop(entry);
        return fallback();
    };
    let mut ret = VmFault::FALLBACK;
    let mut pfnp = pfnp;
    while let Ok(true) = iter.next() {
        if iter.length() < PMD {
            // The extent (or its source) does not cover the aligned 2 MiB: end the
            // iteration without progress, so `iomap_end` sees 0 bytes.
            continue;
        }
        ret = fault_iter(
            vmf,
            &iter,
            &mut entry,
            true,
            pfnp.as_deref_mut(),
            around * PMD_PAGES,
        );
        // Progress only for a fault that mapped something (the kernel advances on
        // anything but FALLBACK, SIGBUS included, so a failed copy-on-write copy is
        // committed by iomap_end with the destination half filled: its quirk Q10,
        // fixed here as the PTE path already behaves).
        if ret != VmFault::FALLBACK && !ret.is_error() {
            let _ = iter.advance(PMD);
        }
        if around > 0 {
            // The fault is one unit; the run was only a hint to the filesystem.
            break;
        }
    }
    drop(iter);
    drop(entry);
    if ret == VmFault::FALLBACK {
        return fallback();
    }
    ret
}

/// `dax_fault_iter`: the fault body for one mapping.
///
/// `around_limit`: pages after the faulting page (or 2 MiB unit) that fault-around
/// may map, already bounded by the page table's fault-around size, EOF, the VMA and,
/// for a PTE, the 2 MiB block ([`pte_fault`] and [`pmd_fault`] work it out; for a
/// PMD a multiple of 512); 0 where fault-around does not apply (write and
/// copy-on-write faults).
fn fault_iter<O: IomapOps + ?Sized>(
    vmf: &Vmf<'_>,
    iter: &IomapIter<'_, O>,
    entry: &mut LockedEntry<'_>,
    pmd: bool,
    pfnp: Option<&mut Pfn>,
    around_limit: u64,
) -> VmFault {
    let iomap = iter.iomap();
    let srcmap = iter.srcmap();
    let size = if pmd { PMD } else { PAGE };
    let pos = iter.pos();
    let write = iter.flags().contains(IterFlags::WRITE);
    let vma = vmf.vma().vma();

    if !pmd && vmf.is_cow() {
        return cow_page(vmf, iomap, pos);
    }
    if !write && matches!(iomap.kind, IomapType::Unwritten | IomapType::Hole) {
        return if pmd {
            pmd_load_hole(vmf, entry)
        } else {
            load_hole(vmf, entry)
        };
    }
    if iomap.kind != IomapType::Mapped && !iomap.flags.contains(IomapFlags::SHARED) {
        return if pmd {
            VmFault::FALLBACK
        } else {
            VmFault::SIGBUS
        };
    }
    let err = |e: &DaxError| {
        if pmd {
            VmFault::FALLBACK
        } else {
            VmFault::from_error(e)
        }
    };
    let Some(dev) = iomap.dax_dev else {
        return err(&DaxError::Io {
            what: "mapped extent without a DAX device",
        });
    };
    let section = dev.read_lock();
    let pages = size / PAGE;
    let pgoff = iomap.pgoff(pos);
    // Fault-around (a dax-rs extension, off unless the page table asks for it): a read
    // fault on a mapped extent may also map the following pages of the same extent.
    let whole = |n: u64| if pmd { n - n % PMD_PAGES } else { n };
    // Not over a shared (reflinked) extent: a write(2) may copy-on-write those
    // blocks away while holding only the I/O lock, deleting the run's unlocked entries
    // and unmapping before this fault maps them; only the faulting page, whose entry
    // this fault holds, is safe to map there.
    let mut around = if iomap.kind == IomapType::Mapped && !iomap.flags.contains(IomapFlags::SHARED)
    {
        whole(around_limit.min((iomap.end().saturating_sub(pos) / PAGE).saturating_sub(pages)))
    } else {
        0
    };
    // `dax_iomap_direct_access` (for the run when faulting around; poison anywhere in
    // the run falls back to the faulting page alone).
    let da = loop {
        match section.direct_access(pgoff, pages + around, DaxAccessMode::Access) {
            Err(_) if around > 0 => around = 0,
            r => break r,
        }
    };
    let da = match da {
        Ok(da) if da.pages() < pages => {
            return err(&DaxError::InvalidArgument {
                what: "storage behind the fault is not contiguous for its size",
            });
        }
        Ok(da) if !da.pfn().is_aligned(if pmd { PMD_ORDER } else { 0 }) => {
            return err(&DaxError::InvalidArgument {
                what: "storage behind a PMD fault is not 2 MiB aligned",
            });
        }
        Ok(da) => da,
        Err(e) => return err(&e),
    };
    let around = whole(around.min(da.pages() - pages));
    let pfn = da.pfn();
    let sync = write && vma.is_sync() && iomap.flags.contains(IomapFlags::DIRTY);
    let shared = iomap.flags.contains(IomapFlags::SHARED);
    // A copy-on-write destination is filled before the entry names it (the kernel's
    // dax_fault_iter inserts the entry first): if the copy fails, the filesystem's
    // iomap_end sees nothing written and frees the destination (XFS cancels the CoW
    // reservation), and an entry left pointing at it would name a freed block — one
    // writeback would flush and memory failure would find, after the block went to
    // another file. The entry is locked throughout, so nobody sees the difference
    // otherwise.
    if write
        && shared
        && let Err(e) = dax_iomap::dax_iomap_copy_around(pos, size, size, srcmap, &da)
    {
        return VmFault::from_error(&e);
    }
    insert_entry(
        vmf,
        entry,
        Entry::real(if pmd { PMD_ORDER } else { 0 }, pfn),
        pgoff,
        write && !sync,
        write,
        shared,
    );
    drop(section);
    if sync {
        return match pfnp {
            Some(p) => {
                *p = pfn;
                VmFault::NEEDDSYNC
            }
            None => VmFault::SIGBUS,
        };
    }
    let target = MapTarget { pfn, pgoff, dev };
    if pmd && around > 0 {
        return insert_pmd_run(vmf, entry.start(), &target, around / PMD_PAGES);
    }
    if pmd {
        return insert_pmd(vmf, &target, write);
    }
    let pt = vmf.vma().page_table();
    let around = if around > 0 && pt.pte(vmf.address()).is_none() {
        pt.empty_run(vmf.address() + PAGE, around)
    } else {
        0
    };
    if around > 0 {
        let n = prepare_run_after(vmf, pfn.add(1), pgoff + 1, around);
        // Under the lock the run maps only into slots that are still empty; a slot
        // another fault filled meanwhile ends it (0 pages: the faulting one was
        // filled, and a read leaves it alone).
        return match pt.insert_pte_run(vmf.address(), &target, n + 1) {
            Ok(_) => VmFault::NOPAGE,
            Err(e) => pt_error(&e),
        };
    }
    insert_pte(vmf, PteValue::Page(target), write)
}

/// `dax_insert_entry`: puts the new entry in the index (replacing an EMPTY or ZERO one,
/// or any with `shared`), moves device-page ownership, and sets the marks.
fn insert_entry(
    vmf: &Vmf<'_>,
    entry: &mut LockedEntry<'_>,
    new: Entry,
    pgoff: u64,
    dirty: bool,
    write: bool,
    shared: bool,
) {
    let mapping = vmf.vma().mapping();
    if dirty {
        mapping.mark_inode_dirty();
    }
    let old = entry.entry();
    let now = entry.insert(
        new,
        pgoff,
        dirty,
        write && shared,
        shared,
        &mut unmap_for(mapping),
    );
    if now == new && old != new {
        if old.kind == EntryKind::Real {
            page_state::disassociate(old.pfn);
        }
        if new.kind == EntryKind::Real {
            page_state::associate(new.pfn, new.order, &mapping.arc(), entry.start(), shared);
        }
    }
}

fn pt_error(e: &DaxError) -> VmFault {
    if e.errno() == libc::ENOMEM {
        VmFault::OOM
    } else {
        VmFault::SIGBUS
    }
}

/// `vmf_insert_page_mkwrite`: maps `value` at the fault address if the slot is empty.
/// An occupied slot is left alone on a read; on a write it must hold the same page,
/// which is made writable in place (the check and the change are one step under the
/// page-table lock). A write that finds another device page is SIGBUS (the kernel's
/// `-EFAULT`); one that lost the race to another fault, or found the zero page of a
/// hole a racing `write(2)` has just allocated ([`Inserted::ZeroPage`]), is NOPAGE.
fn insert_pte(vmf: &Vmf<'_>, value: PteValue<'_>, write: bool) -> VmFault {
    let pt = vmf.vma().page_table();
    let writable = write && vmf.vma().vma().is_writable();
    match pt.insert_pte(vmf.address(), value, write, writable) {
        Ok(Inserted::Mismatch) => VmFault::SIGBUS,
        Ok(_) => VmFault::NOPAGE,
        Err(e) => pt_error(&e),
    }
}

/// `vmf_insert_folio_pmd`: maps the 512 pages of `target` at the 2 MiB-aligned fault
/// address; an occupied slot is upgraded in place on a write when it maps the same
/// pages and otherwise left alone (NOPAGE either way, as in the kernel).
fn insert_pmd(vmf: &Vmf<'_>, target: &MapTarget<'_>, write: bool) -> VmFault {
    let pt = vmf.vma().page_table();
    let vma = vmf.vma().vma();
    let addr = vmf.address() & !(PMD - 1);
    if !vma.holds_pmd(addr) {
        return VmFault::SIGBUS;
    }
    let writable = write && vma.is_writable();
    match pt.insert_pmd(addr, PmdValue::Page(*target), write, writable) {
        Ok(_) => VmFault::NOPAGE,
        Err(e) => pt_error(&e),
    }
}

/// PMD fault-around: maps the faulting 2 MiB unit at `index` (its entry already
/// inserted) read-only together with up to `more` following units of the same
/// extent, whose entries are created here unless already there, in one step of the
/// page table (for the `mmu` backend, one `mmap`). Units whose entries cannot be
/// taken (a PTE entry, a locked one) or whose slots are occupied end the run.
fn insert_pmd_run(vmf: &Vmf<'_>, index: u64, target: &MapTarget<'_>, more: u64) -> VmFault {
    let mapping = vmf.vma().mapping();
    let next = index + PMD_PAGES;
    let (n, created) = mapping.index().prepare_pmd_run(
        next,
        more,
        target.pfn.add(PMD_PAGES),
        target.pgoff + PMD_PAGES,
    );
    page_state::associate_units(
        target.pfn.add(PMD_PAGES),
        PMD_ORDER,
        next,
        &created,
        &mapping.arc(),
    );
    let addr = vmf.address() & !(PMD - 1);
    // A slot another fault filled meanwhile ends the run (0 units: the faulting one
    // was filled, and a read leaves it alone).
    match vmf.vma().page_table().insert_pmd_run(addr, target, n + 1) {
        Ok(_) => VmFault::NOPAGE,
        Err(e) => pt_error(&e),
    }
}

/// `dax_load_hole`: a ZERO entry and the zero page, read-only.
fn load_hole(vmf: &Vmf<'_>, entry: &mut LockedEntry<'_>) -> VmFault {
    insert_entry(vmf, entry, Entry::zero(0, ZERO_PFN), 0, false, false, false);
    insert_pte(vmf, PteValue::Zero, false)
}

/// `dax_pmd_load_hole`: a ZERO PMD entry and the huge zero page; FALLBACK if the PMD
/// slot is no longer empty (the ZERO entry stays, and the PTE retry downgrades it).
fn pmd_load_hole(vmf: &Vmf<'_>, entry: &mut LockedEntry<'_>) -> VmFault {
    let pt = vmf.vma().page_table();
    let addr = vmf.address() & !(PMD - 1);
    insert_entry(
        vmf,
        entry,
        Entry::zero(PMD_ORDER, HUGE_ZERO_PFN),
        0,
        false,
        false,
        false,
    );
    match pt.insert_pmd(addr, PmdValue::Zero, false, false) {
        Ok(Inserted::New) => VmFault::NOPAGE,
        _ => VmFault::FALLBACK,
    }
}

/// `dax_fault_cow_page`: fills a private page (zeros for a hole or unwritten extent,
/// a copy of the storage for a mapped one) and maps it; the entry stays EMPTY.
fn cow_page(vmf: &Vmf<'_>, iomap: &Iomap, pos: u64) -> VmFault {
    let mut page = Box::new([0u8; PAGE_SIZE]);
    match iomap.kind {
        IomapType::Hole | IomapType::Unwritten => {}
        IomapType::Mapped => {
            let Some(dev) = iomap.dax_dev else {
                return VmFault::SIGBUS;
            };
            let section = dev.read_lock();
            match section.direct_access(iomap.pgoff(pos), 1, DaxAccessMode::Access) {
                Ok(da) => {
                    if da.copy_to(0, &mut page[..]) != PAGE_SIZE {
                        return VmFault::SIGBUS;
                    }
                }
                Err(e) => return VmFault::from_error(&e),
            }
        }
        _ => return VmFault::SIGBUS,
    }
    // `finish_fault`: the copy goes in only if the slot is still empty.
    match vmf.vma().page_table().insert_private(vmf.address(), &page) {
        Ok(Inserted::New) => VmFault::DONE_COW,
        Ok(_) => VmFault::NOPAGE,
        Err(e) => pt_error(&e),
    }
}

/// Completes a synchronous write fault (`dax_finish_sync_fault`): `fsync(start, end)`
/// makes the file's metadata for bytes `start ..= end` durable (the faulting page's
/// range, `PAGE_SIZE << order` long: for a PMD fault not 2 MiB aligned, as in the
/// kernel); if it fails the fault is SIGBUS and nothing is mapped. Then the entry is
/// found again and, if it is still there, marked DIRTY and mapped writable at `pfn`
/// (`dax_insert_pfn_mkwrite`); if it went away meanwhile (a truncate) the result is
/// NOPAGE and the access faults again.
///
/// Called with the same filesystem locks as the fault.
pub fn dax_finish_sync_fault(
    vmf: &Vmf<'_>,
    order: u32,
    pfn: Pfn,
    fsync: impl FnOnce(u64, u64) -> Result<(), DaxError>,
) -> VmFault {
    if order != 0 && order != PMD_ORDER {
        // `dax_insert_pfn_mkwrite`'s answer for any other order, before any fsync.
        return VmFault::FALLBACK;
    }
    let start = vmf.pgoff() * PAGE;
    let len = PAGE << order;
    if fsync(start, start.saturating_add(len - 1)).is_err() {
        return VmFault::SIGBUS;
    }
    insert_pfn_mkwrite(vmf, pfn, order)
}

/// `dax_insert_pfn_mkwrite`.
fn insert_pfn_mkwrite(vmf: &Vmf<'_>, pfn: Pfn, order: u32) -> VmFault {
    let mapping = vmf.vma().mapping();
    if order != 0 && order != PMD_ORDER {
        return VmFault::FALLBACK;
    }
    let Some(entry) = mapping.index().lock_existing(vmf.pgoff(), order) else {
        return VmFault::NOPAGE;
    };
    entry.mark_dirty();
    let e = entry.entry();
    let dev = mapping.device();
    let target = MapTarget {
        pfn,
        pgoff: entry.pgoff() + (pfn.0.wrapping_sub(e.pfn.0) & (e.pages() - 1)),
        dev,
    };
    let ret = if order == 0 {
        insert_pte(vmf, PteValue::Page(target), true)
    } else {
        insert_pmd(vmf, &target, true)
    };
    drop(entry);
    ret
}
