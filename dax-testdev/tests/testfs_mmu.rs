//! TestFs files mapped into this process for real (`dax_fault::mmu`): ordinary loads
//! and stores on the pointer, faults served by the engine through a SIGSEGV handler.
#![allow(unsafe_code)]

mod testfs_common;

use dax_core::PMD_SIZE;
use dax_fault::mmu::{MapOptions, MmuMapping};
use dax_fault::{EntryKind, Marks};
use testfs_common::*;

const PMD: u64 = PMD_SIZE as u64;

fn rw() -> MapOptions {
    MapOptions {
        writable: true,
        ..MapOptions::default()
    }
}

/// A load through the raw pointer (the access the handler must serve).
fn peek_at(m: &MmuMapping, off: usize) -> u8 {
    assert!(off < m.len());
    // SAFETY: inside the mapping, which outlives the call; a fault is served by the
    // handler (or kills the test, which is then a failure).
    unsafe { m.as_ptr().add(off).read_volatile() }
}

/// A store through the raw pointer.
fn poke_at(m: &MmuMapping, off: usize, v: u8) {
    assert!(off < m.len());
    // SAFETY: as in `peek_at`, on a writable mapping.
    unsafe { m.as_ptr().add(off).write_volatile(v) }
}

#[test]
fn loads_and_stores_through_the_pointer_reach_the_file() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(1, 0, 3 * B as usize);
    fs.write(ino, 0, &data).unwrap();
    let m = fs.mmap_real(ino, 0, 4 * B, rw()).unwrap();
    assert_eq!(m.as_ptr() as u64 % PMD, 0, "2 MiB aligned");
    assert_eq!(peek_at(&m, 5000), data[5000]);
    poke_at(&m, 5001, 0xa5);
    let mut b = [0u8; 2];
    fs.read(ino, 5000, &mut b).unwrap();
    assert_eq!(b, [data[5000], 0xa5]);
    // write(2) is seen through the mapping.
    fs.write(ino, 100, b"syscall").unwrap();
    assert_eq!(peek_at(&m, 100), b's');
    let e = m.vma().mapping().index().lookup(1).unwrap();
    assert_eq!((e.entry.kind, e.marks), (EntryKind::Real, Marks::DIRTY));
    // msync writes back and write-protects: the next store faults (mkwrite) again.
    m.msync(0, m.len()).unwrap();
    assert!(m.vma().mapping().index().lookup(1).unwrap().marks.is_empty());
    poke_at(&m, 5002, 1);
    assert_eq!(
        m.vma().mapping().index().lookup(1).unwrap().marks,
        Marks::DIRTY
    );
    // A fresh mapping sees the stores.
    let m2 = fs.mmap_real(ino, 0, 4 * B, MapOptions::default()).unwrap();
    assert_eq!(peek_at(&m2, 5001), 0xa5);
    let s = m.stats();
    assert!(s.pte >= 2, "{s:?}");
}

#[test]
fn holes_read_zero_then_a_store_allocates() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.truncate(ino, 8 * B).unwrap();
    let m = fs.mmap_real(ino, 0, 8 * B, rw()).unwrap();
    assert_eq!(peek_at(&m, 3 * B as usize + 7), 0);
    assert_eq!(fs.stat(ino).unwrap().blocks, 0);
    poke_at(&m, 3 * B as usize + 7, 42);
    assert_eq!(fs.stat(ino).unwrap().blocks, 1);
    let mut b = [0u8; 1];
    fs.read(ino, 3 * B + 7, &mut b).unwrap();
    assert_eq!(b[0], 42);
}

#[test]
fn an_aligned_2m_extent_is_one_pmd_fault() {
    let (_dev, fs) = mem_fs(32 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(2, 0, 2 * PMD as usize)).unwrap();
    let m = fs.mmap_real(ino, 0, 2 * PMD, rw()).unwrap();
    let mut sum = 0u64;
    for off in (0..m.len()).step_by(B as usize) {
        sum += peek_at(&m, off) as u64;
    }
    assert!(sum > 0);
    let s = m.stats();
    assert_eq!((s.pmd, s.pte, s.fallback), (2, 0, 0), "{s:?}");
}

#[test]
fn kernel_accesses_work_after_populate() {
    let (_dev, fs) = mem_fs(16 << 20);
    let src = fs.create("src").unwrap();
    let data = pattern(3, 0, 2 * B as usize);
    fs.write(src, 0, &data).unwrap();
    let m = fs.mmap_real(src, 0, 2 * B, rw()).unwrap();
    m.populate(0, m.len(), false).unwrap();
    // write(2) from the mapping into a pipe... here: a memfd.
    let fd = rustix::fs::memfd_create("sink", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: the range is populated (mapped readable) and lives across the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), m.as_ptr().cast(), m.len()) };
    assert_eq!(n, m.len() as isize);
    let mut back = vec![0u8; m.len()];
    rustix::io::pread(&fd, &mut back, 0).unwrap();
    assert_eq!(back, data);
    // read(2) into a populated writable mapping.
    m.populate(0, B as usize, true).unwrap();
    rustix::io::pwrite(&fd, b"from the kernel", 0).unwrap();
    // SAFETY: populated writable, lives across the call.
    let n = unsafe { libc::pread(fd.as_raw_fd(), m.as_ptr().cast(), 15, 0) };
    assert_eq!(n, 15);
    let mut b = [0u8; 15];
    fs.read(src, 0, &mut b).unwrap();
    assert_eq!(&b, b"from the kernel");
}
