//! N 4 KiB random `TestFs::pread`s on a volatile file (8 MiB, cache-resident, unless
//! a second argument gives its size in MiB), nothing else timed: the workload for
//! counting instructions per read with callgrind, e.g.
//! `valgrind --tool=callgrind target/release/examples/read_icount 20000`, then
//! `callgrind_annotate --inclusive=yes` and divide `TestFs::pread` by the count; or
//! for sampling where a read spends its time, e.g.
//! `perf record target/release/examples/read_icount 3000000 64`.
#![allow(missing_docs)]
use dax_testdev::{MemDevice, TestFs};
use std::hint::black_box;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10000);
    let mib: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .filter(|&m| m > 0)
        .unwrap_or(8);
    let dev = MemDevice::builder()
        .size((2 * mib) << 20)
        .nocache(false)
        .populate(true)
        .build()
        .unwrap();
    let fs = TestFs::mkfs(dev).unwrap();
    let ino = fs.create("bench").unwrap();
    let file = fs.inode(ino).unwrap();
    let chunk = vec![3u8; 1 << 20];
    for off in (0..mib << 20).step_by(1 << 20) {
        fs.pwrite(&file, off, &chunk).unwrap();
    }
    let mut page = vec![0u8; 4096];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let o = (x % (mib * 256)) * 4096;
        fs.pread(&file, o, black_box(&mut page)).unwrap();
    }
}
