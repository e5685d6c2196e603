//! Real mappings (`dax_fault::mmu`): sequential first touch (one load per 4 KiB page)
//! of a 1 GiB allocated TestFs file through a fresh mapping, 4 KiB faults only
//! (`huge: false`) and with 2 MiB faults, beside in the same run the kernel's own
//! faults on a fresh `MAP_SHARED` mapping of a populated memfd (4 KiB pages, with the
//! kernel's fault-around) and of a hugetlb memfd (2 MiB pages; skipped with a note when
//! not enough 2 MiB pages are reserved). Figures are per 4 KiB page touched. Two
//! floors in the same run: the same loop over memfd and hugetlb mappings already
//! populated (`MAP_POPULATE`, untimed), which take no fault at all. The 2 MiB
//! DAX case wants a hugetlb-backed device: 1 GiB plus the kernel baseline need about
//! 1100 reserved 2 MiB pages (`sysctl vm.nr_hugepages=1100`).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dax_core::PMD_SIZE;
use dax_fault::mmu::MapOptions;
use dax_testdev::{MemDevice, TestFs, TestInode};
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

struct Dax {
    _fs: TestFs,
    inode: TestInode,
    len: u64,
}

fn dax(len: u64, hugetlb: bool) -> Option<Dax> {
    let mut b = MemDevice::builder().size(len + (64 << 20)).populate(true);
    if hugetlb {
        b = b.backing(dax_testdev::Backing::HugetlbMemfd);
    }
    let dev = match b.build() {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "note: no {} device: {e}",
                if hugetlb { "hugetlb" } else { "memfd" }
            );
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
    fn first_touch(&self, huge: bool) -> Duration {
        let m = self
            .inode
            .mmap_real(
                0,
                self.len,
                MapOptions {
                    huge,
                    ..MapOptions::default()
                },
            )
            .unwrap();
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
}

struct Memfd {
    fd: std::os::fd::OwnedFd,
    len: usize,
}

impl Memfd {
    fn new(len: usize, hugetlb: bool) -> Option<Memfd> {
        let mut flags = MemfdFlags::CLOEXEC;
        if hugetlb {
            flags |= MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB;
        }
        let fd = memfd_create("mmu-bench", flags).ok()?;
        rustix::fs::ftruncate(&fd, len as u64).ok()?;
        let m = Memfd { fd, len };
        // Allocate every page in the page cache (a populated, "allocated" file).
        m.map(true)?;
        Some(m)
    }

    /// Maps it fresh (optionally populating) and returns the time to touch every page.
    fn map(&self, populate: bool) -> Option<Duration> {
        let mut flags = MapFlags::SHARED;
        if populate {
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
        let t = Instant::now();
        std::hint::black_box(touch(p.cast(), self.len));
        let d = t.elapsed();
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
    // Separate files: PTE entries left by the 4 KiB runs would (correctly) make every
    // PMD fault over them fall back. The 2 MiB case is on a hugetlb-backed device (real
    // 2 MiB pages), else on memfd with a note.
    let d = dax(LEN, false).expect("memfd device");
    let d2 = dax(LEN, true).or_else(|| {
        eprintln!("note: PMD faults on a memfd device map 2 MiB through 512 4 KiB pages");
        dax(LEN, false)
    });
    let kernel4k = Memfd::new(LEN as usize, false).expect("memfd");
    per_page(c, "mmu/dax_pte_first_touch", pages, || d.first_touch(false));
    per_page(c, "mmu/kernel_4k_first_touch", pages, || {
        kernel4k.map(false).unwrap()
    });
    per_page(c, "mmu/kernel_4k_mapped_touch", pages, || {
        kernel4k.map(true).unwrap()
    });
    if let Some(d2) = &d2 {
        per_page(c, "mmu/dax_pmd_first_touch", pages, || d2.first_touch(true));
    }
    let huge = [LEN as usize, 256 << 20]
        .into_iter()
        .find_map(|l| Memfd::new(l, true));
    match huge {
        Some(h) => {
            let hp = (h.len / PAGE) as u64;
            if h.len < LEN as usize {
                eprintln!(
                    "note: kernel 2 MiB baseline on {} MiB (not enough hugetlb pages for 1 GiB)",
                    h.len >> 20
                );
            }
            per_page(c, "mmu/kernel_2m_first_touch", hp, || h.map(false).unwrap());
            // The floor of any 2 MiB path: the same loop over pages already mapped
            // (MAP_POPULATE, untimed), so no fault at all, only the loads.
            per_page(c, "mmu/kernel_2m_mapped_touch", hp, || h.map(true).unwrap());
        }
        None => {
            eprintln!("note: no 2 MiB hugetlb pages reserved; skipping the kernel 2 MiB baseline")
        }
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
