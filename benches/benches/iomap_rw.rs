//! `dax_iomap_rw` through TestFs (`pread`/`pwrite` on an inode handle, the TestFs
//! equivalent of an open file, locks included) beside, in the
//! same run, a plain copy of the same bytes between two prefaulted buffers and
//! `pread`/`pwrite` on a memfd of the same size (the kernel's page cache path).
//!
//! Cases: 1 MiB sequential and 4 KiB random (page-aligned), read and write, over a
//! 64 MiB file that is fully written (allocated and prefaulted) before timing; the
//! random cases also within its first 8 MiB (`_hot8m`: cache-resident, so the
//! software overhead is not hidden behind DRAM). TestFs runs on three devices: the
//! pmem-like default (`testfs`: NOCACHE, writes bypass the cache), a volatile one
//! (`testfs_volatile`: no NOCACHE) and a hugetlb-backed one (`testfs_hugetlb`,
//! skipped with a note when no 2 MiB pages are reserved).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::os::fd::OwnedFd;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dax_benches::{random_page_offsets, testfs_file};
use dax_testdev::{Backing, MemDevice, MemDeviceBuilder, TestFs, TestInode};

const FILE: usize = 64 << 20;
const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

/// TestFs on one kind of device, with a file fully written.
struct Fs {
    name: &'static str,
    fs: TestFs,
    /// An inode handle, the equivalent of an open file descriptor.
    file: TestInode,
}

struct Setup {
    /// The pmem-like memfd device first; then volatile (no NOCACHE) and hugetlb ones.
    kinds: Vec<Fs>,
    plain: Vec<u8>,
    memfd: OwnedFd,
    /// Random page offsets over the whole 64 MiB file (DRAM-bound on this machine).
    offsets: Vec<u64>,
    /// Random page offsets within its first 8 MiB (cache-resident).
    hot_offsets: Vec<u64>,
}

fn testfs(name: &'static str, builder: MemDeviceBuilder, chunk: &[u8]) -> Option<Fs> {
    match testfs_file(builder, chunk, FILE) {
        Ok((fs, file)) => Some(Fs { name, fs, file }),
        Err(e) => {
            eprintln!("note: skipping the {name} device: {e}");
            None
        }
    }
}

fn setup() -> Setup {
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 7 + 1) as u8).collect();
    let kinds = [
        ("testfs", MemDevice::builder()),
        ("testfs_volatile", MemDevice::builder().nocache(false)),
        (
            "testfs_hugetlb",
            MemDevice::builder().backing(Backing::HugetlbMemfd),
        ),
    ]
    .into_iter()
    .filter_map(|(name, b)| testfs(name, b, &chunk))
    .collect();
    let memfd = rustix::fs::memfd_create("bench", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, FILE as u64).unwrap();
    for off in (0..FILE).step_by(MIB) {
        assert_eq!(rustix::io::pwrite(&memfd, &chunk, off as u64).unwrap(), MIB);
    }
    let plain = chunk.repeat(FILE / MIB);
    let (offsets, hot_offsets) = (random_page_offsets(FILE), random_page_offsets(8 << 20));
    Setup {
        kinds,
        plain,
        memfd,
        offsets,
        hot_offsets,
    }
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut buf = vec![0u8; MIB];
    let data: Vec<u8> = (0..MIB).map(|i| (i * 13 + 5) as u8).collect();
    let mut plain_dst = s.plain.clone();

    let mut g = c.benchmark_group("iomap_rw");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);

    // 1 MiB sequential.
    g.throughput(Throughput::Bytes(MIB as u64));
    let mut off = 0usize;
    let mut next_1m = move || {
        off = (off + MIB) % FILE;
        off
    };
    for k in &s.kinds {
        g.bench_function(BenchmarkId::new("read_1m_seq", k.name), |b| {
            b.iter(|| k.fs.pread(&k.file, next_1m() as u64, &mut buf).unwrap())
        });
    }
    g.bench_function(BenchmarkId::new("read_1m_seq", "plain_copy"), |b| {
        b.iter(|| {
            let o = next_1m();
            buf.copy_from_slice(&s.plain[o..o + MIB]);
        })
    });
    g.bench_function(BenchmarkId::new("read_1m_seq", "pread_memfd"), |b| {
        b.iter(|| rustix::io::pread(&s.memfd, &mut buf, next_1m() as u64).unwrap())
    });
    for k in &s.kinds {
        g.bench_function(BenchmarkId::new("write_1m_seq", k.name), |b| {
            b.iter(|| k.fs.pwrite(&k.file, next_1m() as u64, &data).unwrap())
        });
    }
    g.bench_function(BenchmarkId::new("write_1m_seq", "plain_copy"), |b| {
        b.iter(|| {
            let o = next_1m();
            plain_dst[o..o + MIB].copy_from_slice(&data);
        })
    });
    g.bench_function(BenchmarkId::new("write_1m_seq", "pwrite_memfd"), |b| {
        b.iter(|| rustix::io::pwrite(&s.memfd, &data, next_1m() as u64).unwrap())
    });

    // 4 KiB random: counted in bytes (4 KiB per call) so that `benches/report` can plot
    // them by I/O size beside the 1 MiB cases; the docs quote their time per call.
    g.throughput(Throughput::Bytes(PAGE as u64));
    for (span, offsets) in [("", &s.offsets), ("_hot8m", &s.hot_offsets)] {
        let mut i = 0usize;
        let mut next_4k = move || {
            i = (i + 1) % offsets.len();
            offsets[i]
        };
        let page = &mut buf[..PAGE];
        for k in &s.kinds {
            g.bench_function(
                BenchmarkId::new(format!("read_4k_rand{span}"), k.name),
                |b| b.iter(|| k.fs.pread(&k.file, next_4k(), page).unwrap()),
            );
        }
        g.bench_function(
            BenchmarkId::new(format!("read_4k_rand{span}"), "plain_copy"),
            |b| {
                b.iter(|| {
                    let o = next_4k() as usize;
                    page.copy_from_slice(&s.plain[o..o + PAGE]);
                })
            },
        );
        g.bench_function(
            BenchmarkId::new(format!("read_4k_rand{span}"), "pread_memfd"),
            |b| b.iter(|| rustix::io::pread(&s.memfd, &mut *page, next_4k()).unwrap()),
        );
        for k in &s.kinds {
            g.bench_function(
                BenchmarkId::new(format!("write_4k_rand{span}"), k.name),
                |b| b.iter(|| k.fs.pwrite(&k.file, next_4k(), &data[..PAGE]).unwrap()),
            );
        }
        g.bench_function(
            BenchmarkId::new(format!("write_4k_rand{span}"), "plain_copy"),
            |b| {
                b.iter(|| {
                    let o = next_4k() as usize;
                    plain_dst[o..o + PAGE].copy_from_slice(&data[..PAGE]);
                })
            },
        );
        g.bench_function(
            BenchmarkId::new(format!("write_4k_rand{span}"), "pwrite_memfd"),
            |b| b.iter(|| rustix::io::pwrite(&s.memfd, &data[..PAGE], next_4k()).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
