//! N first touches (one load per 4 KiB page) of a 1 GiB TestFs file through fresh
//! 4 KiB-only real mappings, only the loads timed (as in the `mmu` bench): the
//! workload for sampling where a first touch spends its time, e.g.
//! `perf record -g target/release/examples/pte_touch 20`, against `pte_touch 20 kernel`
//! for the kernel's own faults on a memfd.
#![allow(missing_docs)]
use std::hint::black_box;
use std::time::Instant;

use dax_device::DaxOperations;
use dax_fault::mmu::MapOptions;
use dax_testdev::{MemDevice, TestFs};

const LEN: usize = 1 << 30;
const PAGE: usize = 4096;

fn touch(p: *const u8, len: usize) -> u64 {
    let mut sum = 0u64;
    for off in (0..len).step_by(PAGE) {
        // SAFETY: `p .. p + len` is a live mapping for the duration of the call.
        sum += unsafe { p.add(off).read_volatile() } as u64;
    }
    sum
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let kernel = std::env::args().nth(2).as_deref() == Some("kernel");
    let dev = MemDevice::builder()
        .size(LEN as u64 + (64 << 20))
        .populate(true)
        .build()
        .unwrap();
    let fs = TestFs::mkfs(dev.clone()).unwrap();
    let ino = fs.create("bench").unwrap();
    let chunk = vec![1u8; 2 << 20];
    for off in (0..LEN).step_by(chunk.len()) {
        fs.write(ino, off as u64, &chunk).unwrap();
    }
    let file = fs.inode(ino).unwrap();
    let fd = dev
        .driver()
        .map_source()
        .unwrap()
        .fd
        .try_clone_to_owned()
        .unwrap();
    let mut total = std::time::Duration::ZERO;
    for _ in 0..n {
        if kernel {
            // SAFETY: a fresh shared mapping of the device's own memfd, unmapped below.
            let p = unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    LEN,
                    rustix::mm::ProtFlags::READ,
                    rustix::mm::MapFlags::SHARED,
                    &fd,
                    0,
                )
            }
            .unwrap();
            let t = Instant::now();
            black_box(touch(p.cast(), LEN));
            total += t.elapsed();
            // SAFETY: the mapping made above; nothing refers into it.
            unsafe { rustix::mm::munmap(p, LEN) }.unwrap();
        } else {
            let m = file
                .mmap_real(0, LEN as u64, MapOptions::new().huge(false))
                .unwrap();
            let t = Instant::now();
            black_box(touch(m.as_ptr(), LEN));
            total += t.elapsed();
        }
    }
    let per = total.as_nanos() as f64 / (n * LEN / PAGE) as f64;
    println!(
        "{per:.1} ns per page ({})",
        if kernel { "kernel" } else { "dax" }
    );
}
