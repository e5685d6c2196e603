//! Real mappings (`dax_fault::mmu`): sequential first touch (one load per 4 KiB page)
//! of a 1 GiB allocated TestFs file through a fresh mapping, beside in the same run the
//! kernel's own faults on a fresh `MAP_SHARED` mapping of a populated memfd of the same
//! kind; and `MmuMapping::populate` of the whole file beside the kernel's
//! `MAP_POPULATE` of the same memory. Figures are per 4 KiB page.
//!
//! - 4 KiB: a memfd device, `huge: false`, read-only and writable (stores tracked with
//!   userfaultfd write-protect) mappings, beside a 4 KiB memfd (the kernel's own
//!   fault-around maps 16 pages per fault).
//! - 2 MiB on shmem-THP: a `Backing::ShmemThp` device beside a memfd with
//!   `MADV_HUGEPAGE` (the kernel maps both with 2 MiB entries).
//! - 2 MiB on hugetlb: a hugetlb-backed device beside a hugetlb memfd. Needs about
//!   1100 reserved 2 MiB pages (`sysctl vm.nr_hugepages=1200`); skipped with a note
//!   otherwise.
//!
//! Floors in the same run: the same loop over memfd mappings already populated
//! (`MAP_POPULATE`, untimed), which take no fault at all.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dax_device::PMD_SIZE;
use dax_fault::mmu::MapOptions;
use dax_testdev::{Backing, MemDevice, TestFs, TestInode};
use rustix::fs::{MemfdFlags, memfd_create};
use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};

const PAGE: usize = 4096;

fn touch(p: *const u8, len: usize) -> u64 {
    let mut sum = 0u64;
    for off in (0..len).step_by(PAGE) {
        // SAFETY: `p .. p + len` is a live mapping for the duration of the call.
        sum += unsafe { p.add(off).read_volatile() } as u64;
    }
    sum
}

/// The memory behind a device or a kernel baseline.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Small,
    Thp,
    Hugetlb,
}

struct Dax {
    _fs: TestFs,
    inode: TestInode,
    len: u64,
}

fn dax(len: u64, kind: Kind) -> Option<Dax> {
    let mut b = MemDevice::builder().size(len + (64 << 20)).populate(true);
    b = match kind {
        Kind::Small => b,
        Kind::Thp => b.backing(Backing::ShmemThp),
        Kind::Hugetlb => b.backing(Backing::HugetlbMemfd),
    };
    let dev = match b.build() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("note: no {kind:?} device: {e}");
            return None;
        }
    };
    let fs = TestFs::mkfs(dev).expect("mkfs");
    let ino = fs.create("bench").unwrap();
    let chunk = vec![1u8; PMD_SIZE];
    for off in (0..len).step_by(PMD_SIZE) {
        fs.write(ino, off, &chunk).unwrap();
    }
    let inode = fs.inode(ino).unwrap();
    Some(Dax {
        _fs: fs,
        inode,
        len,
    })
}

impl Dax {
    fn map(&self, huge: bool, writable: bool) -> dax_fault::mmu::MmuMapping {
        self.inode
            .mmap_real(0, self.len, MapOptions::new().huge(huge).writable(writable))
            .unwrap()
    }

    fn first_touch(&self, huge: bool, writable: bool) -> Duration {
        let m = self.map(huge, writable);
        let t = Instant::now();
        std::hint::black_box(touch(m.as_ptr(), m.len()));
        let d = t.elapsed();
        let s = m.stats();
        assert!(
            if huge { s.pte == 0 } else { s.pmd == 0 },
            "unexpected fault mix: {s:?}"
        );
        d
    }

    /// `populate` of the whole mapping (the mapping is made untimed).
    fn populate(&self, huge: bool) -> Duration {
        let m = self.map(huge, false);
        let t = Instant::now();
        m.populate(0, m.len(), false).unwrap();
        t.elapsed()
    }
}

struct Memfd {
    fd: std::os::fd::OwnedFd,
    len: usize,
    thp: bool,
}

impl Memfd {
    fn new(len: usize, kind: Kind) -> Option<Memfd> {
        let mut flags = MemfdFlags::CLOEXEC;
        if kind == Kind::Hugetlb {
            flags |= MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB;
        }
        if kind == Kind::Thp && !dax_testdev::shmem_thp_enabled() {
            eprintln!("note: shmem THP is off; no shmem-THP baseline");
            return None;
        }
        let fd = memfd_create("mmu-bench", flags).ok()?;
        rustix::fs::ftruncate(&fd, len as u64).ok()?;
        let m = Memfd {
            fd,
            len,
            thp: kind == Kind::Thp,
        };
        // Allocate every page in the page cache (a populated, "allocated" file), in
        // huge pages for shmem THP.
        m.map(true)?;
        Some(m)
    }

    /// Maps it fresh (populating: untimed) and returns the time to touch every page.
    fn map(&self, populate: bool) -> Option<Duration> {
        self.mapped(populate, |p| {
            let t = Instant::now();
            std::hint::black_box(touch(p.cast(), self.len));
            t.elapsed()
        })
    }

    /// The time `mmap(MAP_POPULATE)` of the whole file takes.
    fn populate(&self) -> Option<Duration> {
        let t = Instant::now();
        self.mapped(true, |_| t.elapsed())
    }

    fn mapped(&self, populate: bool, f: impl FnOnce(*mut u8) -> Duration) -> Option<Duration> {
        let mut flags = MapFlags::SHARED;
        if populate && !self.thp {
            flags |= MapFlags::POPULATE;
        }
        // SAFETY: a fresh shared mapping of our own memfd.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                self.len,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
                &self.fd,
                0,
            )
        }
        .ok()?;
        if self.thp {
            // SAFETY: advice on the mapping just made; the populate only prefaults it.
            unsafe {
                rustix::mm::madvise(p, self.len, rustix::mm::Advice::LinuxHugepage).ok()?;
                if populate {
                    rustix::mm::madvise(p, self.len, rustix::mm::Advice::LinuxPopulateWrite)
                        .ok()?;
                }
            }
        }
        let d = f(p.cast());
        // SAFETY: unmapping the mapping just made; nothing refers into it.
        unsafe { munmap(p, self.len) }.ok()?;
        Some(d)
    }
}

fn per_page(c: &mut Criterion, name: &str, pages: u64, mut f: impl FnMut() -> Duration) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters.div_ceil(pages) {
                total += f();
            }
            total * iters as u32 / (iters.div_ceil(pages) * pages) as u32
        })
    });
}

fn bench(c: &mut Criterion) {
    const LEN: u64 = 1 << 30;
    let pages = LEN / PAGE as u64;
    // Separate files per case: PTE entries left by the 4 KiB runs would (correctly)
    // make every PMD fault over them fall back.
    let d = dax(LEN, Kind::Small).expect("memfd device");
    let kernel4k = Memfd::new(LEN as usize, Kind::Small).expect("memfd");
    per_page(c, "mmu/dax_pte_first_touch", pages, || {
        d.first_touch(false, false)
    });
    per_page(c, "mmu/dax_pte_first_touch_rw", pages, || {
        d.first_touch(false, true)
    });
    per_page(c, "mmu/kernel_4k_first_touch", pages, || {
        kernel4k.map(false).unwrap()
    });
    per_page(c, "mmu/kernel_4k_mapped_touch", pages, || {
        kernel4k.map(true).unwrap()
    });
    per_page(c, "mmu/dax_populate_4k", pages, || d.populate(false));
    per_page(c, "mmu/kernel_populate_4k", pages, || {
        kernel4k.populate().unwrap()
    });
    drop((d, kernel4k));
    for (kind, tag) in [(Kind::Thp, "thp"), (Kind::Hugetlb, "hugetlb")] {
        let (Some(d), Some(k)) = (dax(LEN, kind), Memfd::new(LEN as usize, kind)) else {
            eprintln!("note: skipping the {tag} cases");
            continue;
        };
        per_page(c, &format!("mmu/dax_pmd_first_touch_{tag}"), pages, || {
            d.first_touch(true, false)
        });
        per_page(
            c,
            &format!("mmu/kernel_2m_first_touch_{tag}"),
            pages,
            || k.map(false).unwrap(),
        );
        per_page(
            c,
            &format!("mmu/kernel_2m_mapped_touch_{tag}"),
            pages,
            || k.map(true).unwrap(),
        );
        per_page(c, &format!("mmu/dax_populate_{tag}"), pages, || {
            d.populate(true)
        });
        per_page(c, &format!("mmu/kernel_populate_{tag}"), pages, || {
            k.populate().unwrap()
        });
    }
}
criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
