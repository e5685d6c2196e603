//! TestFs's `iomap_begin`/`iomap_end` answers, asserted directly (no engine needed):
//! types, flags, addresses, zeroing of new blocks, ZERO and NOWAIT behaviour.

mod testfs_common;

use dax_device::{DaxError, PMD_SIZE};
use dax_iomap::{IOMAP_NULL_ADDR, IomapFlags, IomapOps, IomapType, IterFlags, MAX_FILE_SIZE};
use dax_testdev::{DevOp, FallocMode};
use testfs_common::*;

#[test]
fn empty_file_reads_as_one_hole_up_to_the_size_limit() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    let inode = fs.inode(ino).unwrap();
    let (m, src) = inode.iomap_begin(5000, 10, R).unwrap();
    assert_eq!(src, None);
    assert_eq!(
        (m.kind, m.offset, m.addr),
        (IomapType::Hole, 4096, IOMAP_NULL_ADDR)
    );
    assert_eq!(m.offset + m.length, MAX_FILE_SIZE.div_ceil(B) * B);
}

#[test]
fn write_into_a_hole_allocates_blocks_zeroed_through_the_driver() {
    let (dev, fs) = mem_fs(8 << 20);
    let data_start = fs.layout().data_start;
    // Stale data where the allocator will look first.
    poke(&dev, data_start * B, &vec![0x5a; 16 * B as usize]);
    let ino = fs.create("f").unwrap();
    let inode = fs.inode(ino).unwrap();
    let zeroes_before = dev.driver().calls(DevOp::ZeroPageRange);
    let (m, src) = inode.iomap_begin(100, 3 * B, W).unwrap();
    assert_eq!(src, None);
    assert_eq!(m.kind, IomapType::Mapped);
    assert_eq!(m.flags, IomapFlags::NEW | IomapFlags::DIRTY);
    assert_eq!(
        (m.offset, m.length),
        (0, 4 * B),
        "the blocks the write touches"
    );
    assert_eq!(m.addr, data_start * B);
    assert!(std::ptr::addr_eq(
        m.dax_dev.unwrap(),
        std::sync::Arc::as_ptr(&dev)
    ));
    assert_eq!(dev.driver().calls(DevOp::ZeroPageRange) - zeroes_before, 4);
    assert_eq!(peek(&dev, m.addr, 4 * B as usize), vec![0; 4 * B as usize]);
    assert_eq!(fs.stat(ino).unwrap().blocks, 4);
}

#[test]
fn new_blocks_have_their_poison_cleared() {
    let (dev, fs) = mem_fs(8 << 20);
    let first = fs.layout().data_start * B;
    dev.driver().poison(first + 512, 512).unwrap();
    let ino = fs.create("f").unwrap();
    let inode = fs.inode(ino).unwrap();
    let (m, _) = inode.iomap_begin(0, B, W).unwrap();
    assert_eq!(m.addr, first);
    assert!(!dev.driver().is_poisoned(first, B));
    assert!(dev.driver().badblocks().is_empty());
}

#[test]
fn overwrite_inside_eof_of_clean_blocks_is_plain_mapped() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::empty(), 0, 4 * B).unwrap();
    let inode = fs.inode(ino).unwrap();
    let (m, _) = inode.iomap_begin(0, 4 * B, W).unwrap();
    inode.iomap_end(0, 4 * B, 4 * B, W, &m).unwrap();
    fs.fsync(ino).unwrap();
    let (m2, _) = inode.iomap_begin(B + 10, 100, W).unwrap();
    assert_eq!(
        (m2.kind, m2.flags),
        (IomapType::Mapped, IomapFlags::empty())
    );
    assert_eq!((m2.offset, m2.length, m2.addr), (B, 3 * B, m.addr + B));
    // Reaching past EOF: DIRTY (the size must be committed for the data to be found).
    let (m3, _) = inode.iomap_begin(3 * B, 2 * B, W).unwrap();
    assert!(m3.flags.contains(IomapFlags::DIRTY));
    assert!(!m3.flags.contains(IomapFlags::NEW));
}

#[test]
fn unwritten_extents_read_unwritten_and_writes_convert_and_zero_them() {
    let (dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::empty(), 0, 4 * B).unwrap();
    let inode = fs.inode(ino).unwrap();
    let (r, _) = inode.iomap_begin(0, 4 * B, R).unwrap();
    assert_eq!((r.kind, r.length), (IomapType::Unwritten, 4 * B));
    assert!(r.dax_dev.is_some() && r.addr != IOMAP_NULL_ADDR);
    poke(&dev, r.addr, &vec![0x77; 4 * B as usize]); // stale bytes under the extent
    let (w, _) = inode.iomap_begin(B, B, W).unwrap();
    assert_eq!(
        (w.kind, w.offset, w.length, w.addr),
        (IomapType::Mapped, B, B, r.addr + B)
    );
    assert!(w.flags.contains(IomapFlags::NEW));
    assert_eq!(peek(&dev, w.addr, B as usize), vec![0; B as usize]);
    // Only the written block was converted.
    let x = fs.extents(ino).unwrap();
    let states: Vec<_> = x
        .iter()
        .map(|e| (e.file_block, e.len, e.unwritten))
        .collect();
    assert_eq!(states, vec![(0, 1, true), (1, 1, false), (2, 2, true)]);
}

#[test]
fn zero_never_allocates_and_maps_what_is_there() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::KEEP_SIZE, B, B).unwrap();
    let inode = fs.inode(ino).unwrap();
    let (m, _) = inode.iomap_begin(2 * B, B, W).unwrap();
    let z = IterFlags::DAX | IterFlags::ZERO;
    let free = fs.statfs().free;
    let (h, _) = inode.iomap_begin(0, B, z).unwrap();
    assert_eq!(h.kind, IomapType::Hole);
    let (u, _) = inode.iomap_begin(B, B, z).unwrap();
    assert_eq!(
        (u.kind, u.flags),
        (IomapType::Unwritten, IomapFlags::empty())
    );
    let (mm, _) = inode.iomap_begin(2 * B, B, z).unwrap();
    assert_eq!(
        (mm.kind, mm.addr, mm.flags),
        (IomapType::Mapped, m.addr, IomapFlags::empty())
    );
    let (h2, _) = inode.iomap_begin(10 * B, B, z).unwrap();
    assert_eq!(h2.kind, IomapType::Hole);
    assert_eq!(fs.statfs().free, free);
}

#[test]
fn nowait_writes_that_would_allocate_or_convert_are_eagain() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::empty(), B, B).unwrap();
    let inode = fs.inode(ino).unwrap();
    let free = fs.statfs().free;
    let nw = W | IterFlags::NOWAIT;
    let e = inode.iomap_begin(0, B, nw).unwrap_err();
    assert_eq!((e.clone(), e.errno()), (DaxError::WouldBlock, libc::EAGAIN));
    assert_eq!(
        inode.iomap_begin(B, B, nw).unwrap_err().errno(),
        libc::EAGAIN
    );
    assert_eq!(fs.statfs().free, free, "NOWAIT allocated nothing");
    assert!(fs.extents(ino).unwrap()[0].unwritten);
    let (m, _) = inode.iomap_begin(B, B, W).unwrap();
    inode.iomap_end(B, B, B, W, &m).unwrap();
    let (m2, _) = inode.iomap_begin(B, B, nw).unwrap();
    assert_eq!(m2.addr, m.addr);
    let (r, _) = inode.iomap_begin(0, B, R | IterFlags::NOWAIT).unwrap();
    assert_eq!(r.kind, IomapType::Hole);
}

#[test]
fn report_addresses_are_the_dax_addresses() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::empty(), 0, 8 * B).unwrap();
    let inode = fs.inode(ino).unwrap();
    let (d, _) = inode.iomap_begin(3 * B, B, R).unwrap();
    let (r, _) = inode.iomap_begin(3 * B, B, IterFlags::REPORT).unwrap();
    assert_eq!(
        (r.addr, r.offset, r.length, r.kind),
        (d.addr, d.offset, d.length, d.kind)
    );
}

#[test]
fn mappings_cover_the_position_and_stop_at_extent_edges() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    let inode = fs.inode(ino).unwrap();
    fs.fallocate(ino, FallocMode::empty(), 0, 2 * B).unwrap();
    fs.fallocate(ino, FallocMode::empty(), 5 * B, 2 * B)
        .unwrap();
    let (m, _) = inode.iomap_begin(B + 7, 100 * B, R).unwrap();
    assert_eq!((m.offset, m.length), (B, B));
    assert_eq!(m.addr % B, m.offset % B);
    let (h, _) = inode.iomap_begin(3 * B, 100 * B, R).unwrap();
    assert_eq!(
        (h.kind, h.offset, h.length),
        (IomapType::Hole, 3 * B, 2 * B)
    );
}

#[test]
fn positions_past_the_file_size_limit_are_einval() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    let inode = fs.inode(ino).unwrap();
    assert_eq!(
        inode.iomap_begin(u64::MAX, 1, R).unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(
        inode
            .iomap_begin(MAX_FILE_SIZE + 1, 1, W)
            .unwrap_err()
            .errno(),
        libc::EINVAL
    );
    let (h, _) = inode.iomap_begin(MAX_FILE_SIZE, u64::MAX, R).unwrap();
    assert!(h.offset <= MAX_FILE_SIZE && h.offset + h.length > MAX_FILE_SIZE);
    // A write at the very last byte allocates one block and nothing overflows.
    let (w, _) = inode.iomap_begin(MAX_FILE_SIZE - 1, u64::MAX, W).unwrap();
    assert_eq!(w.length, B);
}

#[test]
fn short_write_frees_unwritten_new_blocks_past_eof() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    let inode = fs.inode(ino).unwrap();
    let free = fs.statfs().free;
    let (m, _) = inode.iomap_begin(0, 3 * B, W).unwrap();
    assert_eq!(m.length, 3 * B);
    inode.iomap_end(0, 3 * B, B + 1, W, &m).unwrap();
    assert_eq!(
        fs.stat(ino).unwrap().blocks,
        2,
        "blocks 0 and 1 hold written bytes"
    );
    assert_eq!(fs.statfs().free, free - 2);
}

#[test]
fn large_writes_get_2mib_aligned_blocks_small_files_first_fit() {
    let (_dev, fs) = mem_fs(16 << 20);
    let small = fs.create("small").unwrap();
    let small = fs.inode(small).unwrap();
    let (s, _) = small.iomap_begin(0, B, W).unwrap();
    assert_eq!(s.addr / B, fs.layout().data_start);
    let big = fs.create("big").unwrap();
    let pmd = PMD_SIZE as u64;
    let big = fs.inode(big).unwrap();
    let (m, _) = big.iomap_begin(0, pmd, W).unwrap();
    assert_eq!((m.addr % pmd, m.length), (0, pmd));
    // A small write in a file that is already large lands congruent to its offset.
    let (m2, _) = big.iomap_begin(3 * pmd + 5 * B, B, W).unwrap();
    assert_eq!(m2.addr % pmd, 5 * B);
}

#[test]
fn unlinked_and_unmounted_inodes_fail_cleanly() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    let inode = fs.inode(ino).unwrap();
    fs.unlink("f").unwrap();
    assert_eq!(
        inode.iomap_begin(0, B, R).unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!(
        inode.iomap_begin(0, B, W).unwrap_err().errno(),
        libc::ENOENT
    );
    let other = fs.create("g").unwrap();
    let handle = fs.inode(other).unwrap();
    fs.unmount().unwrap();
    assert_eq!(handle.iomap_begin(0, B, R).unwrap_err().errno(), libc::EIO);
}

#[test]
fn bogus_iomap_end_calls_change_nothing() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    let inode = fs.inode(ino).unwrap();
    let (m, _) = inode.iomap_begin(0, 2 * B, W).unwrap();
    inode.iomap_end(0, 2 * B, 2 * B, W, &m).unwrap();
    let before = fs.extents(ino).unwrap();
    let mut fake = m;
    fake.flags |= IomapFlags::SHARED;
    fake.private = u64::MAX;
    inode.iomap_end(0, 2 * B, 0, W, &fake).unwrap();
    let mut fake2 = m;
    fake2.addr += B;
    inode.iomap_end(0, 2 * B, 0, W, &fake2).unwrap();
    assert_eq!(fs.extents(ino).unwrap(), before);
}
