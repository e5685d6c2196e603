//! The fault engine's cost per fault beside the kernel's own minor fault, in one run.
//!
//! Engine: `TestInode`'s fault handler (invalidate lock shared, `dax_iomap_fault`,
//! TestFs's `iomap_begin`/`iomap_end`) into a `SimPageTable`, with a warm index: the
//! file is fully written and every page was faulted once, so each timed fault finds
//! its entry (as a kernel minor fault finds its page in the page cache) and only the
//! page-table slot is missing. Before each batch the slots are removed (untimed).
//! Cases: PTE read and write faults on a file without 2 MiB extents (PMD faults off),
//! PMD read and write faults on a 2 MiB-aligned file.
//!
//! Kernel: a `MAP_SHARED` mapping of a memfd whose pages are in the page cache; before
//! each batch `madvise(MADV_DONTNEED)` removes the PTEs (untimed), then one load or
//! store per page (timed) takes a minor fault each — except that a read fault maps up
//! to 16 pages around it (fault-around), so `kernel_pte_read` is a cost per page and
//! `kernel_pte_read_per_fault` (one load per 64 KiB) the cost per read fault. For 2 MiB, the same on a hugetlb
//! memfd (skipped with a note when no 2 MiB pages are reserved): one minor fault per
//! 2 MiB page.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dax_device::{PAGE_SIZE, PMD_SIZE};
use dax_fault::sim::SimPageTable;
use dax_fault::{FaultFlags, MappedVma, PageTable, VmOps, Vma, Vmf};
use dax_testdev::{MemDevice, TestFs, TestInode};
use rustix::mm::{Advice, MapFlags, ProtFlags, madvise, mmap, munmap};

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;
const BASE: u64 = 0x7000_0000_0000;
/// Pages per batch for PTE faults, 2 MiB units per batch for PMD faults.
const PTE_BATCH: u64 = 512;
const PMD_BATCH: u64 = 16;

struct Engine {
    _fs: TestFs,
    inode: TestInode,
    pt: Arc<SimPageTable>,
    vma: Arc<MappedVma>,
}

fn engine(len: u64, huge: bool) -> Engine {
    let dev = MemDevice::builder()
        .size(len * 4)
        .populate(true)
        .build()
        .expect("device");
    let fs = TestFs::mkfs(dev).expect("mkfs");
    let ino = fs.create("bench").unwrap();
    let chunk = vec![0x5au8; PMD_SIZE];
    for off in (0..len).step_by(PMD_SIZE) {
        fs.write(ino, off, &chunk).unwrap();
    }
    let inode = fs.inode(ino).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let vma = fs
        .mmap(
            ino,
            Vma::new(BASE, len, 0).unwrap().writable(true).huge(huge),
            pt.clone(),
        )
        .unwrap();
    Engine {
        _fs: fs,
        inode,
        pt,
        vma,
    }
}

impl Engine {
    fn fault(&self, addr: u64, write: bool, order: u32) {
        let flags = if write {
            FaultFlags::WRITE
        } else {
            FaultFlags::empty()
        };
        let vmf = Vmf::new(&self.vma, addr, flags).unwrap();
        let r = self.inode.fault(&vmf, order);
        assert!(!r.is_error(), "fault failed: {r:?}");
    }

    /// Times `n` faults of `step` bytes each from BASE after clearing the slots.
    fn batch(&self, n: u64, step: u64, write: bool, order: u32) -> Duration {
        self.pt.unmap(BASE, n * step, true);
        let t = Instant::now();
        for i in 0..n {
            self.fault(BASE + i * step, write, order);
        }
        t.elapsed()
    }
}

struct Kernel {
    addr: *mut u8,
    len: usize,
}

impl Kernel {
    fn new(len: usize, hugetlb: bool) -> Option<Kernel> {
        use rustix::fs::{MemfdFlags, memfd_create};
        let mut flags = MemfdFlags::CLOEXEC;
        if hugetlb {
            flags |= MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB;
        }
        let fd = memfd_create("fault-bench", flags).ok()?;
        rustix::fs::ftruncate(&fd, len as u64).ok()?;
        // SAFETY: a fresh shared mapping of our own memfd; nothing else refers to it.
        let addr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::POPULATE,
                &fd,
                0,
            )
        }
        .ok()?;
        Some(Kernel {
            addr: addr.cast(),
            len,
        })
    }

    /// Times one access per `step` bytes over `n` steps after zapping the PTEs.
    fn batch(&self, n: u64, step: u64, write: bool) -> Duration {
        let len = (n * step) as usize;
        // SAFETY: the range is inside our mapping; DONTNEED on a shared mapping only
        // drops the page-table entries, the page cache keeps the data.
        unsafe { madvise(self.addr.cast(), len, Advice::LinuxDontNeed) }.expect("madvise");
        let t = Instant::now();
        for i in 0..n {
            // SAFETY: inside the mapping, which lives as long as `self`.
            let p = unsafe { self.addr.add((i * step) as usize) };
            if write {
                // SAFETY: as above; the mapping is writable.
                unsafe { p.write_volatile(i as u8) };
            } else {
                // SAFETY: as above.
                unsafe { p.read_volatile() };
            }
        }
        t.elapsed()
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping, with no references into it left.
        let _ = unsafe { munmap(self.addr.cast(), self.len) };
    }
}

fn per_fault(c: &mut Criterion, name: &str, n: u64, mut f: impl FnMut() -> Duration) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters.div_ceil(n) {
                total += f();
            }
            // Scale to `iters` faults.
            total * iters as u32 / (iters.div_ceil(n) * n) as u32
        })
    });
}

fn bench(c: &mut Criterion) {
    let pte = engine(PTE_BATCH * PAGE, false);
    let pmd = engine(PMD_BATCH * PMD, true);
    // Warm the index: every page (every 2 MiB) faulted once, written once.
    pte.batch(PTE_BATCH, PAGE, true, 0);
    pmd.batch(PMD_BATCH, PMD, true, 9);
    assert_eq!(
        pmd.vma.mapping().index().nrpages(),
        PMD_BATCH * 512,
        "the PMD file must be mapped with PMD entries"
    );
    let k4 = Kernel::new((PTE_BATCH * PAGE) as usize, false).expect("memfd");
    let k2 = Kernel::new((PMD_BATCH * PMD) as usize, true);
    if k2.is_none() {
        eprintln!("note: no 2 MiB hugetlb pages reserved; skipping the kernel PMD baseline");
    }

    let mut g = |name: &str, n: u64, f: &mut dyn FnMut() -> Duration| per_fault(c, name, n, f);
    g("fault/engine_pte_read", PTE_BATCH, &mut || {
        pte.batch(PTE_BATCH, PAGE, false, 0)
    });
    g("fault/kernel_pte_read", PTE_BATCH, &mut || {
        k4.batch(PTE_BATCH, PAGE, false)
    });
    // A read fault on a file maps up to 16 pages around the address (fault-around,
    // which DAX does not do): one access per 64 KiB takes one fault each.
    let around = PTE_BATCH / 16;
    g("fault/kernel_pte_read_per_fault", around, &mut || {
        k4.batch(around, 16 * PAGE, false)
    });
    g("fault/engine_pte_write", PTE_BATCH, &mut || {
        pte.batch(PTE_BATCH, PAGE, true, 0)
    });
    g("fault/kernel_pte_write", PTE_BATCH, &mut || {
        k4.batch(PTE_BATCH, PAGE, true)
    });
    g("fault/engine_pmd_read", PMD_BATCH, &mut || {
        pmd.batch(PMD_BATCH, PMD, false, 9)
    });
    g("fault/engine_pmd_write", PMD_BATCH, &mut || {
        pmd.batch(PMD_BATCH, PMD, true, 9)
    });
    if let Some(k2) = &k2 {
        g("fault/kernel_pmd_read", PMD_BATCH, &mut || {
            k2.batch(PMD_BATCH, PMD, false)
        });
        g("fault/kernel_pmd_write", PMD_BATCH, &mut || {
            k2.batch(PMD_BATCH, PMD, true)
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
