//! Interleaved A/B companion of `iomap_rw`: TestFs `pread`/`pwrite` (pmem-like and
//! volatile devices, and the volatile one on 2 MiB hugetlb pages when enough are
//! reserved) beside a plain copy and `pread`/`pwrite` on a memfd, by default 4 KiB
//! random over 8 MiB (cache-resident), measured in alternation so that slow drifts of
//! a shared machine hit every variant alike.
//!
//! Each round runs, per variant, an untimed warm pass then one timed batch (order
//! rotated every round); printed are the median ns/op over rounds and each variant's
//! median per-round difference against its reference (`pread`/`pwrite` for 4 KiB,
//! the plain copy for 1 MiB). Run:
//! `cargo bench -p dax-benches --bench iomap_rw_ab [-- ROUNDS]`, and with
//! `DAX_AB_MIB=64` for 4 KiB random over a 64 MiB file (DRAM-bound: the variants'
//! sets together exceed the L3), or `DAX_AB_IO=1m` for 1 MiB sequential over 64 MiB.
//!
//! `DAX_AB_PROBES=1` adds "probe" variants: the TestFs volatile read plus one extra
//! instance of a per-call cost (an `Arc<DaxDevice>` clone/drop, an SRCU read section,
//! an uncontended mutex or rwlock cycle, a relaxed atomic increment, ...); probe minus
//! plain TestFs read estimates that cost in situ (single thread, uncontended). They
//! are off by default because they distort the rest, measured: every probe reads the
//! volatile file, so its pages stay warmer in the caches than the other variants',
//! and its plain read then measured ~30 ns faster than the identical pmem-like read
//! (175 against 205 ns; equal without probes). And a probe's operation runs in front
//! of the call, as the first locked instruction after the previous call's copy: it
//! prices more than removing the same operation from inside the call saves (an `Arc`
//! clone/drop probed at ~50 ns saved ~13 ns; see docs/benchmarks.md).
#![allow(missing_docs)]

use std::hint::black_box;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dax_benches::{random_page_offsets, testfs_file};
use dax_device::DaxAccessMode;
use dax_iomap::{IomapOps, IterFlags, dax_iomap_read};
use dax_testdev::{Backing, MemDevice};

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;
const BATCH: usize = 2000;
const WARM: usize = 4096;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300);
    // DAX_AB_IO=1m: 1 MiB sequential instead of 4 KiB random; DAX_AB_MIB: file size
    // (default 8 MiB for 4 KiB, cache-resident; 64 MiB for 1 MiB, as in `iomap_rw`).
    let io = match std::env::var("DAX_AB_IO").as_deref() {
        Ok("1m" | "1M") => MIB,
        _ => PAGE,
    };
    let file_len = std::env::var("DAX_AB_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&m| m > 0)
        .unwrap_or(if io == MIB { 64 } else { 8 })
        * MIB;
    let probes = std::env::var_os("DAX_AB_PROBES").is_some();
    // Operations per timed batch (and per untimed warm pass): 8 MiB then 16 MiB of
    // 4 KiB operations, 16 MiB then 32 MiB of 1 MiB ones.
    let (batch, warm) = if io == MIB { (16, 32) } else { (BATCH, WARM) };
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 7 + 1) as u8).collect();
    let (pfs, pfile) = testfs_file(MemDevice::builder(), &chunk, file_len).unwrap();
    let (vfs, vfile) = testfs_file(MemDevice::builder().nocache(false), &chunk, file_len).unwrap();
    // The volatile device on 2 MiB pages, as real DAX memory is mapped (measured: no
    // faster for these reads, faster for writes). Needs twice the file size in reserved
    // 2 MiB pages.
    let huge = MemDevice::builder()
        .backing(Backing::HugetlbMemfd)
        .nocache(false);
    let hfs = match testfs_file(huge, &chunk, file_len) {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!(
                "note: no hugetlb device ({e}); reserve 2 MiB pages: sysctl vm.nr_hugepages={}",
                2 * file_len / (2 * MIB)
            );
            None
        }
    };
    let memfd: OwnedFd =
        rustix::fs::memfd_create("bench", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, file_len as u64).unwrap();
    for off in (0..file_len).step_by(MIB) {
        assert_eq!(rustix::io::pwrite(&memfd, &chunk, off as u64).unwrap(), MIB);
    }
    let plain = chunk.repeat(file_len / MIB);
    let mut plain_dst = plain.clone();
    let offsets: Vec<u64> = if io == MIB {
        (0..file_len as u64).step_by(MIB).collect()
    } else {
        random_page_offsets(file_len)
    };
    let mut page = vec![0u8; io];
    let data: Vec<u8> = (0..io).map(|i| (i * 13 + 5) as u8).collect();
    let dev = vfs.device().clone();
    let mutex = parking_lot::Mutex::new(0u64);
    let rwlock = parking_lot::RwLock::new(0u64);
    let counter = AtomicU64::new(0);

    type Op<'a> = Box<dyn FnMut(u64, &mut [u8]) + 'a>;
    let mut variants: Vec<(&str, Op<'_>)> = Vec::new();
    macro_rules! v {
        ($name:expr, $body:expr) => {
            variants.push(($name, Box::new($body)))
        };
    }
    // References first (indices used below).
    v!("read  testfs_volatile", |o, page: &mut [u8]| {
        vfs.pread(&vfile, o, black_box(&mut *page)).unwrap();
    });
    v!("read  testfs (pmem)", |o, page: &mut [u8]| {
        pfs.pread(&pfile, o, black_box(&mut *page)).unwrap();
    });
    v!("read  plain_copy", |o, page: &mut [u8]| {
        let o = o as usize;
        black_box(&mut *page).copy_from_slice(&plain[o..o + io]);
    });
    v!("read  pread_memfd", |o, page: &mut [u8]| {
        rustix::io::pread(&memfd, black_box(&mut *page), o).unwrap();
    });
    v!("write testfs_volatile", |o, _: &mut [u8]| {
        vfs.pwrite(&vfile, o, black_box(&data[..])).unwrap();
    });
    v!("write testfs (pmem)", |o, _: &mut [u8]| {
        pfs.pwrite(&pfile, o, black_box(&data[..])).unwrap();
    });
    v!("write plain_copy", |o, _: &mut [u8]| {
        let o = o as usize;
        plain_dst[o..o + io].copy_from_slice(black_box(&data[..]));
    });
    v!("write pwrite_memfd", |o, _: &mut [u8]| {
        rustix::io::pwrite(&memfd, black_box(&data[..]), o).unwrap();
    });
    if let Some((hfs, hfile)) = &hfs {
        v!("read  testfs_volatile_hugetlb", |o, page: &mut [u8]| {
            hfs.pread(hfile, o, black_box(&mut *page)).unwrap();
        });
        v!("write testfs_volatile_hugetlb", |o, _: &mut [u8]| {
            hfs.pwrite(hfile, o, black_box(&data[..])).unwrap();
        });
    }
    // Probes (opt-in): the volatile TestFs read plus one extra instance of a cost.
    // They read the volatile file too, so with them on, its data stays warmer in the
    // caches than the other variants' and its plain read measures faster than the
    // identical pmem-like one (measured: ~30 ns, hot).
    if probes {
        v!("probe +Arc<DaxDevice> clone/drop", |o, page: &mut [u8]| {
            drop(black_box(dev.clone()));
            vfs.pread(&vfile, o, black_box(&mut *page)).unwrap();
        });
        v!("probe +SRCU read section", |o, page: &mut [u8]| {
            drop(black_box(dev.read_lock()));
            vfs.pread(&vfile, o, black_box(&mut *page)).unwrap();
        });
        v!("probe +Mutex lock/unlock", |o, page: &mut [u8]| {
            *black_box(&mutex).lock() += 1;
            vfs.pread(&vfile, o, black_box(&mut *page)).unwrap();
        });
        v!("probe +RwLock read/unlock", |o, page: &mut [u8]| {
            black_box(*black_box(&rwlock).read());
            vfs.pread(&vfile, o, black_box(&mut *page)).unwrap();
        });
        v!("probe +atomic fetch_add", |o, page: &mut [u8]| {
            black_box(&counter).fetch_add(1, Ordering::Relaxed);
            vfs.pread(&vfile, o, black_box(&mut *page)).unwrap();
        });
        v!("probe +iomap_begin/drop (read)", |o, page: &mut [u8]| {
            black_box(vfile.iomap_begin(o, PAGE as u64, IterFlags::DAX).unwrap());
            vfs.pread(&vfile, o, black_box(&mut *page)).unwrap();
        });
        v!(
            "probe +SRCU section + direct_access",
            |o, page: &mut [u8]| {
                let section = dev.read_lock();
                black_box(
                    section
                        .direct_access(o / PAGE as u64, 1, DaxAccessMode::Access)
                        .unwrap(),
                );
                drop(section);
                vfs.pread(&vfile, o, black_box(&mut *page)).unwrap();
            }
        );
        // Not a probe: the engine called directly, without TestFs::pread's I/O lock,
        // mounted/unlinked checks (fine here: one thread, nothing else touches the file).
        v!("minus TestFs::pread wrapper", |o, page: &mut [u8]| {
            dax_iomap_read(&vfile, &vfile, o, black_box(&mut *page)).unwrap();
        });
    }
    let index = |name: &str| variants.iter().position(|(n, _)| *n == name).unwrap();
    // The targets compare 4 KiB operations with `pread`/`pwrite`, 1 MiB reads with a
    // plain copy.
    let (read_ref, write_ref) = if io == MIB {
        ("read  plain_copy", "write plain_copy")
    } else {
        ("read  pread_memfd", "write pwrite_memfd")
    };
    let (pread_i, pwrite_i, vread_i) = (
        index(read_ref),
        index(write_ref),
        index("read  testfs_volatile"),
    );
    let refs: Vec<usize> = variants
        .iter()
        .map(|(name, _)| {
            if name.starts_with("read ") {
                pread_i
            } else if name.starts_with("write ") {
                pwrite_i
            } else {
                vread_i
            }
        })
        .collect();
    let reference = |i: usize| refs[i];

    let n = variants.len();
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut diff: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut k = 0usize;
    // Warm up.
    for (_, f) in variants.iter_mut() {
        for _ in 0..batch {
            k = (k + 1) % offsets.len();
            f(offsets[k], &mut page);
        }
    }
    for round in 0..rounds {
        let mut t = vec![0.0; n];
        for j in 0..n {
            let i = (j + round) % n;
            let f = &mut variants[i].1;
            // Untimed pass first: the variants' 8 MiB sets together exceed the L3, so
            // each batch brings its own back into the cache before it is timed.
            for _ in 0..warm {
                k = (k + 1) % offsets.len();
                f(offsets[k], &mut page);
            }
            let start = Instant::now();
            for _ in 0..batch {
                k = (k + 1) % offsets.len();
                f(offsets[k], &mut page);
            }
            t[i] = start.elapsed().as_nanos() as f64 / batch as f64;
        }
        for i in 0..n {
            ns[i].push(t[i]);
            diff[i].push(t[i] - t[reference(i)]);
        }
    }
    println!(
        "{rounds} rounds x {batch} ops per variant, {} over {} MiB",
        if io == MIB {
            "sequential 1 MiB"
        } else {
            "random 4 KiB"
        },
        file_len / MIB
    );
    println!("| variant | median ns/op | median per-round diff vs ref (ns) | ref |");
    println!("|---|---:|---:|---|");
    for i in 0..n {
        let m = median(&mut ns[i]);
        let d = median(&mut diff[i]);
        println!(
            "| {} | {m:.1} | {d:+.1} | {} |",
            variants[i].0,
            variants[reference(i)].0
        );
    }
}
