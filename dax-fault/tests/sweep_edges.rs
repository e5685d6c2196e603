//! Edge-value sweep of dax-fault's public API: every function or method that takes an
//! index, offset, address, length, count, page number, pfn or order, called with 0, 1,
//! the largest valid value, the first invalid one, `u64::MAX`, and pairs whose sum
//! overflows. Each call must return (no panic, no hang), write nothing to the device
//! (its memory is compared before and after every probe: nothing here stores data),
//! and give the kernel's answer or a typed `DaxError`. Range ends of `u64::MAX` (or
//! `i64::MAX`) and counts that run past `u64::MAX` mean "to the end of the file" where
//! the kernel's `-1`/`LLONG_MAX` does (invalidate, unmap, writeback, layout breaking,
//! memory failure).
//!
//! Swept: `MappingIndex::{grab, lock_existing, lookup, next_entry, prepare_run,
//! prepare_pmd_run, delete_range, delete_entry, invalidate_clean,
//! invalidate_entry_sync, clear_dirty_range, tag_towrite, towrite_entries,
//! lock_for_writeback, lock_real, for_each, waiters}`, `Entry::{pages, encode}`,
//! `LockedEntry::insert`, `DaxMapping::{unmap_mapping_pages, with_block_size}` and its
//! `MappingOps` (`invalidate_range`, `clear_dirty_range`, `write_and_wait_range`,
//! `next_entry`), `dax_delete_mapping_entry`, `dax_delete_mapping_range`,
//! `dax_invalidate_mapping_entry_sync`, `dax_layout_busy_page(_range)`,
//! `dax_break_layout(_inode)`, `dax_writeback_mapping_range`, `mf_dax_kill_procs`,
//! `dax_lock_mapping_entry`, `dax_memory_failure`, `pin_user_pages`,
//! `page_hwpoison`/`clear_page_hwpoison`/`page_pins`, `Vma::{new, page_index,
//! range_of, holds_pmd, contains}`, `Vmf::new`, `dax_iomap_fault` (every order, file
//! sizes and mappings at the top of the file space), `dax_finish_sync_fault` (every
//! order), `SimPageTable::{any_mapped, unmap, wrprotect, free_tables, read_private,
//! write_private, insert_pte, insert_pmd, empty_run, insert_pte_run, insert_pmd_run,
//! read, write}`. (`mmu::MmuMapping` is swept in dax-testdev's sweep, through TestFs.)
//!
//! The harness is `dax_testkit::sweep`: the test fails listing every finding.

use std::sync::Arc;

use dax_device::{MfFlags, PAGE_SIZE, Pfn};
use dax_fault::index::{Entry, MappingIndex};
use dax_fault::pages::{clear_page_hwpoison, page_hwpoison, page_pins, pin_user_pages};
use dax_fault::sim::SimPageTable;
use dax_fault::{
    DaxMapping, FaultFlags, MapTarget, MfLock, PageTable, PmdValue, PteValue, VmFault, VmOps, Vma,
    Vmf, WritebackControl, dax_break_layout, dax_break_layout_inode, dax_delete_mapping_entry,
    dax_delete_mapping_range, dax_finish_sync_fault, dax_invalidate_mapping_entry_sync,
    dax_iomap_fault, dax_layout_busy_page, dax_layout_busy_page_range, dax_lock_mapping_entry,
    dax_memory_failure, dax_writeback_mapping_range, mf_dax_kill_procs,
};
use dax_iomap::{MAX_FILE_SIZE, MappingOps};
use dax_testkit::fault::*;

use dax_testkit::{sweep, sweep::*};

// =====================================================================================
// The sweeps.
// =====================================================================================

const MAX: u64 = MAX_FILE_SIZE;
const DEV: u64 = 8 * MIB;
const IDX: [u64; 9] = [
    0,
    1,
    511,
    512,
    MAX / PAGE,
    MAX / PAGE + 1,
    u64::MAX / PAGE,
    u64::MAX - 1,
    u64::MAX,
];
const ENDS: [u64; 8] = [0, 1, PAGE, 4 * PAGE, MAX - 1, MAX, MAX + 1, u64::MAX];

/// The whole device.
fn image(fs: &ScriptedFs) -> Vec<u8> {
    fs.peek(0, DEV as usize)
}

/// A file of four mapped pages (device pages 16..20), each faulted in (read) through a
/// shared writable mapping at BASE, page 3 written (dirty); `f` runs, then the device
/// must be unchanged (nothing here stores data).
fn four_pages(
    f: impl FnOnce(&Arc<ScriptedFs>, &Arc<Space>, &Arc<dax_fault::MappedVma>, &mut Fails),
) -> Check {
    let fs = ScriptedFs::new(DEV, 4 * PAGE);
    fs.ext(Ext::mapped(0, 4 * PAGE, 16 * PAGE));
    let (space, vma) = fs.map_rw(4 * PAGE);
    for p in 0..4 {
        assert_eq!(rd(&fs, &vma, BASE + p * PAGE), VmFault::NOPAGE);
    }
    assert_eq!(wr(&fs, &vma, BASE + 3 * PAGE), VmFault::NOPAGE);
    let before = image(&fs);
    let mut fails = Fails::default();
    f(&fs, &space, &vma, &mut fails);
    if let Err(e) = same_bytes("device", &image(&fs), &before, 0) {
        fails.0.push(format!("DEVICE WRITTEN: {e}"));
    }
    fails.done()
}

// ---- the mapping index ----

fn sweep_index(s: &mut Sweep) {
    let orders = |index: u64| -> Vec<u32> {
        if index == 0 || index == u64::MAX {
            vec![0, 9, 1, 10, 63, 64, u32::MAX]
        } else {
            vec![0, 9]
        }
    };
    for &index in &IDX {
        for order in orders(index) {
            s.probe(
                format!(
                    "MappingIndex::grab(index {index}, order {order}) / lock_existing / lookup"
                ),
                || {
                    let ix = MappingIndex::new();
                    let mut f = Fails::default();
                    let r = ix.grab(index, order, &mut |_, _| {});
                    if order == 0 || order == 9 {
                        match r {
                            Ok(e) => {
                                let start = index & !((1u64 << order) - 1);
                                f.eq("start", e.start(), start);
                                f.eq("pages", e.entry().pages(), 1u64 << order);
                                drop(e);
                                f.eq("nrpages", ix.nrpages(), 1u64 << order);
                                f.that(ix.lookup(index).is_some(), || {
                                    "lookup found nothing".into()
                                });
                            }
                            Err(e) => f.0.push(format!("grab: {e:?}")),
                        }
                    } else {
                        f.that(r.is_err(), || {
                            "grab of an unsupported order succeeded".into()
                        });
                    }
                    let l = ix.lock_existing(index, order);
                    if order != 0 && order != 9 {
                        f.that(l.is_none(), || {
                            "lock_existing of an unsupported order found an entry".into()
                        });
                    }
                    drop(l);
                    let _ = ix.next_entry(index, u64::MAX);
                    let _ = ix.next_entry(u64::MAX, index);
                    f.done()
                },
            );
        }
    }
    s.probe(
        "Entry::{pages, encode, is_pmd} for orders 0..=u32::MAX and pfns at the edges",
        || {
            let mut f = Fails::default();
            for order in [0u32, 9, 63, 64, 65, u32::MAX] {
                for pfn in [0, 1, u64::MAX >> 4, u64::MAX] {
                    for e in [
                        Entry::empty(order),
                        Entry::zero(order, Pfn(pfn)),
                        Entry::real(order, Pfn(pfn)),
                    ] {
                        let p = std::hint::black_box(e).pages();
                        if order < 64 {
                            f.eq("pages", p, 1u64 << order);
                        }
                        let _ = e.encode(true);
                        let _ = e.is_pmd();
                    }
                }
            }
            f.done()
        },
    );
    let firsts = [0u64, 1, 512, u64::MAX - 512, u64::MAX - 1, u64::MAX];
    let maxes = [0u64, 1, 512, 513, u64::MAX];
    let pfns = [0u64, 1, u64::MAX - 1, u64::MAX];
    for &first in &firsts {
        for &max in &maxes {
            for &pfn in &pfns {
                // pfns at the top of their type: once per run start, one count.
                if pfn > 1 && max != 512 {
                    continue;
                }
                s.probe(format!("MappingIndex::prepare_run(first {first}, max {max}, pfn {pfn}, pgoff {pfn})"), || {
                    let ix = MappingIndex::new();
                    let mut f = Fails::default();
                    let (n, created) = ix.prepare_run(first, max, Pfn(pfn), pfn);
                    let room = (u64::MAX - first).saturating_add(1);
                    f.that(n <= max.min(512).min(room) && created.len() as u64 == n, || format!("run of {n}, {} created", created.len()));
                    f.eq("nrpages", ix.nrpages(), n);
                    ix.delete_range(0, u64::MAX);
                    f.eq("nrpages after delete", ix.nrpages(), 0);
                    f.done()
                });
                // A count past what fits is tried once (from 0): it does not return.
                if max == u64::MAX && (first != 0 || pfn != 0) {
                    continue;
                }
                s.probe(format!("MappingIndex::prepare_pmd_run(first {}, max {max}, pfn {pfn}, pgoff {pfn})", first & !511), || {
                    let ix = MappingIndex::new();
                    let mut f = Fails::default();
                    let first_pmd = first & !511;
                    let (n, _) = ix.prepare_pmd_run(first_pmd, max, Pfn(pfn), pfn);
                    let room = (u64::MAX - first_pmd) / 512 + 1;
                    f.that(n <= max.min(room), || format!("pmd run of {n}"));
                    ix.delete_range(0, u64::MAX);
                    f.eq("nrpages after delete", ix.nrpages(), 0);
                    f.done()
                });
            }
        }
    }
    for &a in &IDX {
        for &b in &IDX {
            s.probe(format!("MappingIndex range walks (first {a}, last {b}) over entries at 0, 512 (PMD), u64::MAX-511 (PMD) and u64::MAX"), || {
                let ix = MappingIndex::new();
                let mut f = Fails::default();
                for (i, o) in [(0u64, 0u32), (512, 9), (u64::MAX - 511, 9), (u64::MAX - 512, 0)] {
                    let mut e = ix.grab(i, o, &mut |_, _| {}).unwrap();
                    e.insert(Entry::real(o, Pfn(u64::MAX - 511)), u64::MAX - 511, true, true, false, &mut |_, _| {});
                }
                let _ = ix.next_entry(a, b);
                let _ = ix.tag_towrite(a, b);
                let tw = ix.towrite_entries(a, b);
                for (start, pfn) in tw {
                    if let Ok(Some(e)) = ix.lock_for_writeback(start, pfn) {
                        e.unlock_clean();
                    }
                }
                let mut n = 0;
                ix.for_each(a, b, |_| n += 1);
                ix.clear_dirty_range(a, b);
                let _ = ix.invalidate_clean(a, b);
                ix.delete_range(a, b);
                let _ = ix.delete_entry(a);
                let _ = ix.invalidate_entry_sync(b);
                let _ = ix.lock_real(a);
                let _ = ix.waiters(b);
                let _ = ix.lock_for_writeback(b, Pfn(u64::MAX));
                if a == 0 && b == u64::MAX {
                    f.eq("entries left after deleting everything", ix.entries().len(), 0);
                }
                f.done()
            });
        }
    }
}

// ---- the mapping: invalidation, writeback, layouts, memory failure ----

fn sweep_mapping(s: &mut Sweep) {
    for &first in &IDX {
        for &count in &[0, 1, 4, u64::MAX / PAGE, u64::MAX - 1, u64::MAX] {
            s.probe(
                format!("DaxMapping::unmap_mapping_pages(first {first}, count {count})"),
                || {
                    four_pages(|fs, space, _vma, f| {
                        fs.mapping.unmap_mapping_pages(first, count, true);
                        let end = first.saturating_add(count);
                        let left: Vec<u64> = space
                            .ptes()
                            .iter()
                            .map(|(a, _)| (a - BASE) / PAGE)
                            .collect();
                        let want: Vec<u64> = (0..4).filter(|&p| p < first || p >= end).collect();
                        f.eq("pages still mapped", left, want);
                    })
                },
            );
        }
    }
    for &first in &IDX {
        for &last in &IDX {
            s.probe(format!("MappingOps for DaxMapping: invalidate_range/clear_dirty_range/next_entry(first {first}, last {last})"), || {
                four_pages(|fs, space, _vma, f| {
                    let r = fs.mapping.invalidate_range(first..=last);
                    let covered = |p: u64| first <= p && p <= last;
                    if first <= last && covered(3) {
                        f.errno("a dirty page stays (invalidate_inode_pages2_range)", &r, libc::EBUSY);
                    } else {
                        f.that(r.is_ok(), || format!("got {r:?}"));
                    }
                    let mapped: Vec<u64> = space.ptes().iter().map(|(a, _)| (a - BASE) / PAGE).collect();
                    let want: Vec<u64> = (0..4).filter(|&p| first > last || !covered(p)).collect();
                    f.eq("pages still mapped", mapped, want);
                    fs.mapping.clear_dirty_range(first..=last);
                    let _ = fs.mapping.next_entry(first..=last);
                })
            });
        }
    }
    for &start in &ENDS {
        for &end in &ENDS {
            s.probe(
                format!(
                    "dax_writeback_mapping_range / write_and_wait_range(start {start}, end {end})"
                ),
                || {
                    four_pages(|fs, space, _vma, f| {
                        let r = dax_writeback_mapping_range(
                            &fs.mapping,
                            &fs.mapping.device().clone(),
                            &WritebackControl::sync_all(start..=end),
                        );
                        f.that(r.is_ok(), || format!("got {r:?}"));
                        let page3 = 3 * PAGE;
                        let cleaned = start <= end && start < page3 + PAGE && end >= page3;
                        let writable = matches!(
                            space.pte(BASE + page3),
                            Some(dax_fault::Pte::Page { writable: true, .. })
                        );
                        f.eq("page 3 write-protected by writeback", !writable, cleaned);
                        let r = fs.mapping.write_and_wait_range(start..=end);
                        f.that(r.is_ok(), || format!("write_and_wait_range: {r:?}"));
                    })
                },
            );
            s.probe(format!("dax_layout_busy_page_range / dax_break_layout / dax_delete_mapping_range(start {start}, end {end}) with page 1 pinned"), || {
                four_pages(|fs, space, vma, f| {
                    let pins = pin_user_pages(vma, BASE + PAGE, 1, false).unwrap();
                    let busy = dax_layout_busy_page_range(&fs.mapping, start..=end);
                    let covers = |p: u64| start <= end && start < p * PAGE + PAGE && (end >= p * PAGE);
                    f.eq("busy page", busy.is_some(), covers(1));
                    let mapped: Vec<u64> = space.ptes().iter().map(|(a, _)| (a - BASE) / PAGE).collect();
                    let want: Vec<u64> = (0..4).filter(|&p| !covers(p)).collect();
                    f.eq("pages still mapped after layout breaking", mapped, want);
                    let r = dax_break_layout(&fs.mapping, start..=end, None);
                    if covers(1) {
                        f.errno("busy, no wait callback", &r, dax_fault::ERESTARTSYS);
                    } else {
                        f.that(r.is_ok(), || format!("got {r:?}"));
                    }
                    drop(pins);
                    let r = dax_break_layout(&fs.mapping, start..=end, None);
                    f.that(r.is_ok(), || format!("after unpinning: {r:?}"));
                    dax_delete_mapping_range(&fs.mapping, start..=end);
                    let left: Vec<u64> = fs.mapping.index().entries().iter().map(|e| e.start).collect();
                    let want: Vec<u64> = (0..4).filter(|&p| !covers(p)).collect();
                    f.eq("entries left", left, want);
                })
            });
        }
    }
    for &index in &IDX {
        for &count in &[0, 1, 3, 4, u64::MAX - 1, u64::MAX] {
            s.probe(
                format!("mf_dax_kill_procs(index {index}, count {count})"),
                || {
                    four_pages(|fs, space, vma, f| {
                        let r = mf_dax_kill_procs(
                            Some(&fs.mapping),
                            index,
                            count,
                            MfFlags::MEM_PRE_REMOVE,
                        );
                        f.that(r.is_ok(), || format!("got {r:?}"));
                        let end = index.saturating_add(count);
                        let hit: Vec<u64> = (0..4).filter(|&p| p >= index && p < end).collect();
                        f.eq("signals", vma.take_signals().len(), hit.len());
                        let mapped: Vec<u64> = space
                            .ptes()
                            .iter()
                            .map(|(a, _)| (a - BASE) / PAGE)
                            .collect();
                        let want: Vec<u64> = (0..4).filter(|p| !hit.contains(p)).collect();
                        f.eq("pages still mapped", mapped, want);
                        let r = mf_dax_kill_procs(None, index, count, MfFlags::empty());
                        if count == 0 {
                            f.that(r.is_ok(), || "empty range without a mapping".into());
                        } else {
                            f.errno("no DAX mapping", &r, libc::EBUSY);
                        }
                        let l = dax_lock_mapping_entry(Some(&fs.mapping), index);
                        f.eq(
                            "dax_lock_mapping_entry finds a page",
                            matches!(l, MfLock::Locked(_)),
                            index < 4,
                        );
                        drop(l);
                        let _ = dax_delete_mapping_entry(&fs.mapping, index);
                        let _ = dax_invalidate_mapping_entry_sync(&fs.mapping, index);
                    })
                },
            );
        }
    }
    for pfn in [0u64, 1, 1 << 52, u64::MAX - 511, u64::MAX - 1, u64::MAX] {
        s.probe(
            format!(
                "dax_memory_failure / page_hwpoison / clear_page_hwpoison / page_pins (pfn {pfn})"
            ),
            || {
                let mut f = Fails::default();
                f.errno(
                    "no owner",
                    &dax_memory_failure(Pfn(pfn), MfFlags::empty()),
                    libc::EBUSY,
                );
                let _ = page_hwpoison(Pfn(pfn));
                clear_page_hwpoison(Pfn(pfn));
                f.eq("pins", page_pins(Pfn(pfn)), 0);
                f.done()
            },
        );
    }
    s.probe("dax_layout_busy_page / dax_break_layout_inode / writeback / kill_procs with a REAL entry at pfn u64::MAX (inserted through MappingIndex)", || {
        four_pages(|fs, _space, _vma, f| {
            for (i, pfn) in [(100u64, u64::MAX), (u64::MAX, u64::MAX - 1)] {
                let mut e = fs.mapping.index().grab(i, 0, &mut |_, _| {}).unwrap();
                e.insert(Entry::real(0, Pfn(pfn)), u64::MAX, true, true, false, &mut |_, _| {});
            }
            let _ = dax_layout_busy_page(&fs.mapping);
            let r = dax_writeback_mapping_range(&fs.mapping, &fs.mapping.device().clone(), &WritebackControl::sync_all(..));
            f.that(r.is_ok() || r.as_ref().is_err_and(|e| e.errno() != 0), || format!("{r:?}"));
            let _ = mf_dax_kill_procs(Some(&fs.mapping), 0, u64::MAX, MfFlags::empty());
            let r = dax_break_layout_inode(&fs.mapping, None);
            f.that(r.is_ok(), || format!("break layout: {r:?}"));
            f.eq("entries left", fs.mapping.index().entries().len(), 0);
        })
    });
    for bs in [0u64, 1, 512, 8192, u64::MAX] {
        s.probe(
            format!("DaxMapping::with_block_size({bs}): writeback is EIO"),
            || {
                let fs = ScriptedFs::new(DEV, 4 * PAGE);
                let m = DaxMapping::with_block_size(fs.dev.clone(), bs);
                let mut f = Fails::default();
                let mut e = m.index().grab(0, 0, &mut |_, _| {}).unwrap();
                e.insert(
                    Entry::real(0, fs.pfn(0)),
                    0,
                    true,
                    true,
                    false,
                    &mut |_, _| {},
                );
                drop(e);
                f.errno(
                    "writeback",
                    &dax_writeback_mapping_range(
                        &m,
                        &fs.mapping.device().clone(),
                        &WritebackControl::sync_all(..),
                    ),
                    libc::EIO,
                );
                m.index().delete_range(0, u64::MAX);
                f.done()
            },
        );
    }
    for (addr, pages) in [
        (BASE, 0u64),
        (BASE, 4),
        (BASE, 5),
        (BASE + 3 * PAGE, u64::MAX),
        (BASE - PAGE, 2),
        (u64::MAX - PAGE + 1, 2),
        (u64::MAX, u64::MAX),
    ] {
        s.probe(
            format!("pin_user_pages(addr {addr:#x}, pages {pages})"),
            || {
                four_pages(|_fs, _space, vma, f| {
                    let r = pin_user_pages(vma, addr, pages, false);
                    let inside = addr >= BASE
                        && pages <= 4
                        && addr
                            .checked_add(pages * PAGE)
                            .is_some_and(|e| e <= BASE + 4 * PAGE);
                    if inside {
                        f.that(
                            r.as_ref().is_ok_and(|p| p.pfns().len() as u64 == pages),
                            || format!("got {r:?}"),
                        );
                    } else {
                        f.errno("outside the mapping", &r.map(|_| ()), libc::EFAULT);
                    }
                })
            },
        );
    }
}

// ---- VMAs, faults ----

fn sweep_vma_fault(s: &mut Sweep) {
    let starts = [
        0u64,
        PAGE,
        BASE,
        u64::MAX - 2 * PAGE + 1,
        u64::MAX - PAGE + 1,
        1,
        u64::MAX,
    ];
    let lens = [
        0u64,
        1,
        PAGE,
        2 * PAGE,
        MAX + 1,
        u64::MAX - PAGE + 1,
        u64::MAX,
    ];
    let pgoffs = [
        0u64,
        1,
        MAX / PAGE,
        MAX / PAGE + 1,
        u64::MAX / PAGE,
        u64::MAX,
    ];
    for &start in &starts {
        for &len in &lens {
            for &pgoff in &pgoffs {
                s.probe(format!("Vma::new(start {start:#x}, len {len:#x}, pgoff {pgoff:#x}) and its geometry"), || {
                    let r = Vma::new(start, len, pgoff);
                    let mut f = Fails::default();
                    let valid = start.is_multiple_of(PAGE)
                        && len.is_multiple_of(PAGE)
                        && len > 0
                        && start.checked_add(len).is_some()
                        // file_mmap_ok: the mapping must end at or before LLONG_MAX
                        // (the page holding byte LLONG_MAX is never mapped).
                        && pgoff.checked_mul(PAGE).and_then(|o| o.checked_add(len)).is_some_and(|e| e <= MAX);
                    match r {
                        Ok(v) if valid => {
                            for a in [0, start, start + len - 1, start.saturating_add(len), u64::MAX] {
                                let inside = v.contains(a);
                                f.eq(&format!("contains({a:#x})"), inside, a >= start && a - start < len);
                                if a < u64::MAX - PMD {
                                    let _ = v.holds_pmd(a);
                                }
                                if inside {
                                    f.eq("page_index", v.page_index(a), pgoff + (a - start) / PAGE);
                                }
                            }
                            for (fi, c) in [(0, u64::MAX), (pgoff, 1), (u64::MAX, u64::MAX), (pgoff.saturating_add(v.pages()), 1)] {
                                if let Some((a, l)) = v.range_of(fi, c) {
                                    f.that(a >= start && a.checked_add(l).is_some_and(|e| e <= v.end()), || format!("range_of({fi}, {c}) = ({a:#x}, {l:#x}) outside the vma"));
                                }
                            }
                        }
                        Ok(v) => f.0.push(format!("accepted {v:?}, which file_mmap_ok refuses (EOVERFLOW): it reaches byte {}", pgoff.saturating_mul(PAGE).saturating_add(len - 1))),
                        Err(_) if !valid => {}
                        Err(e) => f.0.push(format!("refused a valid vma: {e:?}")),
                    }
                    f.done()
                });
            }
        }
    }
    s.probe(
        "Vma::page_index(addr) below the start, Vma::holds_pmd(u64::MAX)",
        || {
            let v = Vma::new(u64::MAX - 2 * PMD + 1, PMD, 0).unwrap();
            let mut f = Fails::default();
            let _ = std::hint::black_box(v.holds_pmd(u64::MAX));
            let w = Vma::new(BASE, PAGE, 0).unwrap();
            let _ = std::hint::black_box(w.page_index(0));
            f.eq("holds_pmd(u64::MAX)", v.holds_pmd(u64::MAX), false);
            f.done()
        },
    );
    // Faults at the top of the file space: a 2 MiB vma showing the last 2 MiB-aligned
    // block of file offsets a mapping may show (file_mmap_ok: a mapping ends at or
    // before LLONG_MAX), backed by a 2 MiB extent.
    let top_pgoff = (MAX + 1) / PAGE - 2 * PMD / PAGE;
    for size in [
        0u64,
        1,
        PAGE,
        top_pgoff * PAGE,
        top_pgoff * PAGE + PAGE,
        MAX - 1,
        MAX,
        MAX + 1,
        u64::MAX,
    ] {
        for order in [0u32, 9, 1, 8, 10, 63, 64, u32::MAX] {
            for flags in [
                FaultFlags::empty(),
                FaultFlags::WRITE,
                FaultFlags::WRITE | FaultFlags::MKWRITE,
            ] {
                if order != 0 && order != 9 && size != MAX {
                    continue;
                }
                s.probe(format!("dax_iomap_fault(order {order}, {flags:?}) at both ends of the last mappable 2 MiB of the file space, file size {size}"), || {
                    let fs = ScriptedFs::new(DEV, size);
                    fs.ext(Ext::mapped(top_pgoff * PAGE, PMD, 2 * MIB));
                    let space = Space::new();
                    let vma = fs.mmap(Vma::new(BASE, PMD, top_pgoff).unwrap().writable(true), &space);
                    let before = image(&fs);
                    let mut f = Fails::default();
                    for addr in [BASE, BASE + PMD - 1] {
                        let vmf = Vmf::new(&vma, addr, flags).unwrap();
                        let mut pfn = Pfn(0);
                        let mut err = Ok(());
                        let ret = dax_iomap_fault(&vmf, order, &*fs, &*fs, Some(&mut pfn), Some(&mut err));
                        let page_end = vmf.pgoff() * PAGE + PAGE;
                        if order != 0 && order != 9 {
                            f.eq("unsupported order", ret, VmFault::FALLBACK);
                        } else if order == 0 && vmf.pgoff() * PAGE >= size {
                            f.eq("PTE fault past EOF", ret, VmFault::SIGBUS);
                        } else if order == 0 {
                            f.that(!ret.is_error(), || format!("PTE fault at {addr:#x} (page end {page_end}): {ret:?}"));
                        }
                    }
                    if let Err(e) = same_bytes("device", &image(&fs), &before, 0) {
                        f.0.push(format!("DEVICE WRITTEN: {e}"));
                    }
                    fs.mapping.index().delete_range(0, u64::MAX);
                    f.done()
                });
            }
        }
    }
    for order in [0u32, 9, 1, 10, 51, 52, 63, 64, u32::MAX] {
        for pgoff in [0u64, top_pgoff] {
            s.probe(
                format!("dax_finish_sync_fault(order {order}, pfn u64::MAX) at file page {pgoff}"),
                || {
                    let fs = ScriptedFs::new(DEV, MAX);
                    fs.ext(Ext::mapped(top_pgoff * PAGE, PMD, 2 * MIB));
                    let space = Space::new();
                    let vma = fs.mmap(Vma::new(BASE, PMD, pgoff).unwrap().writable(true), &space);
                    let vmf = Vmf::new(&vma, BASE, FaultFlags::WRITE).unwrap();
                    let mut f = Fails::default();
                    let r = dax_finish_sync_fault(&vmf, order, Pfn(u64::MAX), |a, b| {
                        f.that(a <= b, || format!("fsync got the inverted range {a}..={b}"));
                        Ok(())
                    });
                    if order != 0 && order != 9 {
                        // dax_insert_pfn_mkwrite: any other order is VM_FAULT_FALLBACK.
                        f.eq("unsupported order", r, VmFault::FALLBACK);
                    }
                    f.done()
                },
            );
        }
    }
    for addr in [BASE, BASE + 4 * PAGE - 1] {
        s.probe(format!("Vmf::new(addr {addr:#x}, WRITE | MKWRITE) on a private writable vma (fixed on main: refused)"), || {
            let fs = ScriptedFs::new(DEV, 4 * PAGE);
            fs.ext(Ext::mapped(0, 4 * PAGE, 16 * PAGE));
            let space = Space::new();
            let vma = fs.mmap(Vma::new(BASE, 4 * PAGE, 0).unwrap().writable(true).shared(false), &space);
            let mut f = Fails::default();
            f.errno("private mkwrite", &Vmf::new(&vma, addr, FaultFlags::WRITE | FaultFlags::MKWRITE).map(|_| ()), libc::EINVAL);
            f.eq("copy-on-write fault", wr(&fs, &vma, addr), VmFault::DONE_COW);
            fs.mapping.index().delete_range(0, u64::MAX);
            f.done()
        });
    }
    for addr in [0u64, BASE - 1, BASE + 4 * PAGE, u64::MAX] {
        s.probe(
            format!("Vmf::new(addr {addr:#x}) outside a 4-page vma at BASE"),
            || {
                four_pages(|_fs, _space, vma, f| {
                    f.errno(
                        "outside",
                        &Vmf::new(vma, addr, FaultFlags::empty()).map(|_| ()),
                        libc::EINVAL,
                    );
                })
            },
        );
    }
}

// ---- the simulated page table ----

fn sweep_sim(s: &mut Sweep) {
    let addrs = [
        0u64,
        PAGE,
        BASE,
        u64::MAX - PMD + 1,
        u64::MAX - PAGE + 1,
        u64::MAX - 10,
        u64::MAX,
    ];
    let lens = [0u64, 1, PAGE, PMD, u64::MAX - 1, u64::MAX];
    // A table with PTEs at the bottom and top of the address space, a device PMD at
    // 2 MiB and a huge zero page in the top 2 MiB slot.
    let table = || {
        let pt = SimPageTable::new();
        let fs = ScriptedFs::new(DEV, 4 * PAGE);
        let dev: &dax_device::DaxDevice = &*fs.dev;
        let t = MapTarget {
            pfn: Pfn(u64::MAX - 511),
            pgoff: 0,
            dev,
        };
        let _ = pt.insert_pte(0, PteValue::Page(t), true, true);
        let _ = pt.insert_pte(u64::MAX - PMD - PAGE + 1, PteValue::Page(t), true, true);
        let _ = pt.insert_pmd(PMD, PmdValue::Page(t), true, true);
        let _ = pt.insert_pmd(u64::MAX - PMD + 1, PmdValue::Zero, false, false);
        let _ = pt.insert_private(PAGE, &[7u8; PAGE_SIZE]);
        pt
    };
    for &addr in &addrs {
        for &len in &lens {
            s.probe(format!("SimPageTable::any_mapped/unmap(addr {addr:#x}, len {len:#x}) over mappings at the bottom and top"), || {
                let pt = table();
                let mut f = Fails::default();
                let _ = pt.any_mapped(addr, len);
                pt.unmap(addr, len, true);
                if addr == 0 && len == u64::MAX {
                    f.eq("anything left after unmapping everything", pt.any_mapped(0, u64::MAX), false);
                }
                f.done()
            });
            s.probe(format!("SimPageTable::free_tables/release(addr {addr:#x}, len {len:#x}) over mappings at the bottom and top"), || {
                let pt = table();
                pt.free_tables(addr, len);
                pt.release(addr, len);
                Ok(())
            });
        }
    }
    for (first, pages) in [
        (0u64, 1u64),
        (0, u64::MAX),
        (u64::MAX - 511, 512),
        (u64::MAX, 1),
        (u64::MAX, u64::MAX),
    ] {
        s.probe(format!("SimPageTable::wrprotect(0, u64::MAX, first pfn {first}, pages {pages}) over PTEs and a PMD of pfn 2^64-512"), || {
            let pt = table();
            pt.wrprotect(0, u64::MAX, Pfn(first), pages);
            Ok(())
        });
    }
    for off in [
        0usize,
        1,
        PAGE_SIZE - 1,
        PAGE_SIZE,
        usize::MAX - 1,
        usize::MAX,
    ] {
        for len in [0usize, 1, 2, PAGE_SIZE] {
            s.probe(format!("SimPageTable::read_private/write_private(off {off}, len {len})"), || {
                let pt = SimPageTable::new();
                let _ = pt.insert_private(BASE, &[7u8; PAGE_SIZE]);
                let mut f = Fails::default();
                let mut buf = vec![0u8; len];
                let r = pt.read_private(BASE, off, &mut buf);
                let w = pt.write_private(BASE, off, &buf);
                let fits = off.checked_add(len).is_some_and(|e| e <= PAGE_SIZE);
                f.that(r == fits && w == fits, || format!("read {r}, write {w}: expected {fits} (false for a range outside the page)"));
                f.done()
            });
        }
    }
    for &addr in &[0u64, BASE, u64::MAX - 3 * PAGE + 1, u64::MAX - PMD + 1] {
        for n in [0u64, 1, 3, 4, 512, 513] {
            s.probe(format!("PageTable::insert_pte_run / insert_pmd_run / empty_run (default methods) at {addr:#x}, n {n}"), || {
                let pt = SimPageTable::new();
                let fs = ScriptedFs::new(DEV, 4 * PAGE);
                let dev: &dax_device::DaxDevice = &*fs.dev;
                let t = MapTarget { pfn: Pfn(1 << 40), pgoff: 0, dev };
                let mut f = Fails::default();
                let room = (u64::MAX - addr) / PAGE + 1;
                let r = pt.insert_pte_run(addr, &t, n);
                f.that(r.as_ref().is_ok_and(|&m| m <= n.min(room)), || format!("insert_pte_run: {r:?}"));
                let e = pt.empty_run(addr, n);
                f.that(e <= n, || format!("empty_run {e}"));
                let a = addr & !(PMD - 1);
                let room = (u64::MAX - a) / PMD + 1;
                let r = pt.insert_pmd_run(a, &t, n.min(4));
                f.that(r.as_ref().is_ok_and(|&m| m <= n.min(4).min(room)), || format!("insert_pmd_run: {r:?}"));
                f.done()
            });
        }
    }
    s.probe(
        "PageTable::empty_run(0, u64::MAX) on an empty table (default method)",
        || {
            let pt = SimPageTable::new();
            let n = pt.empty_run(0, u64::MAX);
            let mut f = Fails::default();
            f.that(n > 0, || "0".into());
            f.done()
        },
    );
    for (addr, len) in [
        (BASE, 4 * PAGE as usize),
        (BASE + 4 * PAGE - 1, 2),
        (u64::MAX - 10, 100),
        (u64::MAX, 1),
    ] {
        s.probe(
            format!("SimPageTable::read/write(addr {addr:#x}, len {len}) through a 4-page vma"),
            || {
                let fs = ScriptedFs::new(DEV, 4 * PAGE);
                fs.ext(Ext::mapped(0, 4 * PAGE, 16 * PAGE));
                let space = Space::new();
                let ops: Arc<dyn VmOps> = Arc::new(Ops(fs.clone()));
                let vma = fs
                    .mapping
                    .mmap_with(
                        Vma::new(BASE, 4 * PAGE, 0).unwrap(),
                        space.clone() as Arc<dyn PageTable>,
                        ops,
                    )
                    .unwrap();
                let mut f = Fails::default();
                let mut buf = vec![0u8; len];
                let r = space.read(&vma, addr, &mut buf);
                let inside = addr >= BASE
                    && addr
                        .checked_add(len as u64)
                        .is_some_and(|e| e <= BASE + 4 * PAGE);
                f.that(r.is_ok() == inside, || format!("read: {r:?}"));
                let r = space.write(&vma, addr, &buf);
                f.that(r.is_err(), || "a store to a read-only mapping".into());
                fs.mapping.index().delete_range(0, u64::MAX);
                f.done()
            },
        );
    }
}

/// ScriptedFs's fault handler, for `SimPageTable::read`/`write`.
struct Ops(Arc<ScriptedFs>);

impl VmOps for Ops {
    fn fault(&self, vmf: &Vmf<'_>, order: u32) -> VmFault {
        dax_iomap_fault(vmf, order, &*self.0, &*self.0, None, None)
    }
}

sweep!(
    /// `MappingIndex` and `Entry` at the edges of the index, orders, pfns and pgoffs.
    sweep_fault_index,
    child_sweep_fault_index,
    sweep_index
);
sweep!(
    /// Invalidation, unmapping, writeback, layout breaking and memory failure over
    /// ranges to the end and past it.
    sweep_fault_mapping,
    child_sweep_fault_mapping,
    sweep_mapping
);
sweep!(
    /// `Vma`, `Vmf`, `dax_iomap_fault`, `dax_finish_sync_fault`.
    sweep_fault_vma,
    child_sweep_fault_vma,
    sweep_vma_fault
);
sweep!(
    /// `SimPageTable` and the `PageTable` default methods.
    sweep_fault_sim,
    child_sweep_fault_sim,
    sweep_sim
);
