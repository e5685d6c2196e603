//! TestFs file operations through the engine: `dax_iomap_rw`, `dax_zero_range`,
//! `dax_truncate_page`, remap prep and dedupe compare, fiemap and seek.

mod testfs_common;

use dax_iomap::{Fiemap, FiemapExtentFlags};
use dax_testdev::{FallocMode, Ino, TestFs};
use testfs_common::*;

fn read_all(fs: &TestFs, ino: Ino) -> Vec<u8> {
    let size = fs.stat(ino).unwrap().size as usize;
    let mut buf = vec![0xee; size + 3 * B as usize];
    let n = fs.read(ino, 0, &mut buf).unwrap();
    assert_eq!(n, size, "a read stops at EOF");
    buf.truncate(n);
    buf
}

#[test]
fn write_then_read_round_trips_and_sets_the_size() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(1, 0, 10_000);
    assert_eq!(fs.write(ino, 0, &data).unwrap(), 10_000);
    assert_eq!(fs.stat(ino).unwrap().size, 10_000);
    assert_eq!(read_all(&fs, ino), data);
    let mut tail = [0u8; 100];
    assert_eq!(fs.read(ino, 9_950, &mut tail).unwrap(), 50);
    assert_eq!(fs.read(ino, 10_000, &mut tail).unwrap(), 0);
    assert_eq!(fs.read(ino, 1 << 40, &mut tail).unwrap(), 0);
    assert_eq!(fs.write(ino, 0, &[]).unwrap(), 0);
}

#[test]
fn unwritten_extents_read_as_zeros() {
    let (dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::empty(), 0, 4 * B).unwrap();
    let e = fs.extents(ino).unwrap()[0];
    poke(&dev, e.dev_block * B, &vec![0x99; 4 * B as usize]);
    assert_eq!(read_all(&fs, ino), vec![0; 4 * B as usize]);
}

#[test]
fn writing_past_eof_leaves_zeros_in_the_gap() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &[1; 100]).unwrap();
    fs.write(ino, 10_000, &[2; 10]).unwrap();
    let all = read_all(&fs, ino);
    assert_eq!(all.len(), 10_010);
    assert!(all[100..10_000].iter().all(|&b| b == 0));
}

#[test]
fn truncate_down_zeroes_the_eof_block_tail_so_growth_reads_zeros() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(3, 0, 3 * B as usize)).unwrap();
    fs.truncate(ino, 5000).unwrap();
    assert_eq!(fs.stat(ino).unwrap().blocks, 2);
    fs.truncate(ino, 3 * B).unwrap();
    let all = read_all(&fs, ino);
    assert_eq!(all[..5000], pattern(3, 0, 5000)[..]);
    assert!(all[5000..].iter().all(|&b| b == 0));
}

#[test]
fn punch_and_zero_range_with_partial_blocks_read_zero() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(4, 0, 8 * B as usize);
    fs.write(ino, 0, &data).unwrap();
    fs.fallocate(
        ino,
        FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
        1000,
        2 * B,
    )
    .unwrap();
    fs.fallocate(ino, FallocMode::ZERO_RANGE, 5 * B + 7, 100)
        .unwrap();
    let mut want = data.clone();
    want[1000..1000 + 2 * B as usize].fill(0);
    want[5 * B as usize + 7..5 * B as usize + 107].fill(0);
    assert_eq!(read_all(&fs, ino), want);
    assert_eq!(
        fs.stat(ino).unwrap().blocks,
        7,
        "block 1 was wholly punched"
    );
}

#[test]
fn reflink_shares_blocks_and_a_cow_write_unshares_only_what_it_writes() {
    let (_dev, fs) = mem_fs(8 << 20);
    let a = fs.create("a").unwrap();
    let data = pattern(5, 0, 4 * B as usize);
    fs.write(a, 0, &data).unwrap();
    let b = fs.create("b").unwrap();
    assert_eq!(fs.reflink(a, 0, b, 0, 4 * B).unwrap(), 4 * B);
    let blk = fs.extents(a).unwrap()[0].dev_block;
    assert_eq!(fs.extents(b).unwrap()[0].dev_block, blk);
    assert!((0..4).all(|i| fs.block_refcount(blk + i) == 2));
    assert_eq!(read_all(&fs, b), data);
    fs.write(b, B + 10, b"copy on write").unwrap();
    assert_eq!(read_all(&fs, a), data, "the source is untouched");
    let mut want = data.clone();
    want[B as usize + 10..B as usize + 23].copy_from_slice(b"copy on write");
    assert_eq!(read_all(&fs, b), want);
    assert_eq!(fs.block_refcount(blk + 1), 1);
    assert_eq!((fs.block_refcount(blk), fs.block_refcount(blk + 2)), (2, 2));
}

#[test]
fn reflink_argument_errors() {
    let (_dev, fs) = mem_fs(8 << 20);
    let a = fs.create("a").unwrap();
    fs.write(a, 0, &[1; 3 * B as usize]).unwrap();
    let b = fs.create("b").unwrap();
    assert_eq!(
        fs.reflink(a, 10, b, 0, B).unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(
        fs.reflink(a, 0, a, B, 2 * B).unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(
        fs.reflink(a, 0, b, 0, 10 * B).unwrap_err().errno(),
        libc::EINVAL
    );
}

#[test]
fn dedupe_shares_identical_ranges_and_refuses_different_ones() {
    let (_dev, fs) = mem_fs(8 << 20);
    let a = fs.create("a").unwrap();
    let b = fs.create("b").unwrap();
    fs.write(a, 0, &[7; 2 * B as usize]).unwrap();
    fs.write(b, 0, &[7; 2 * B as usize]).unwrap();
    assert_eq!(fs.dedupe(a, 0, b, 0, 2 * B).unwrap(), 2 * B);
    assert_eq!(
        fs.extents(a).unwrap()[0].dev_block,
        fs.extents(b).unwrap()[0].dev_block
    );
    let c = fs.create("c").unwrap();
    fs.write(c, 0, &[8; 2 * B as usize]).unwrap();
    assert_eq!(
        fs.dedupe(a, 0, c, 0, 2 * B).unwrap_err().errno(),
        libc::EBADE
    );
}

#[test]
fn unshare_range_gives_the_file_its_own_blocks() {
    let (_dev, fs) = mem_fs(8 << 20);
    let a = fs.create("a").unwrap();
    fs.write(a, 0, &pattern(9, 0, 2 * B as usize)).unwrap();
    let b = fs.create("b").unwrap();
    fs.reflink(a, 0, b, 0, 2 * B).unwrap();
    fs.fallocate(b, FallocMode::UNSHARE_RANGE, 0, 2 * B)
        .unwrap();
    assert!(fs.extents(b).unwrap().iter().all(|e| !e.shared));
    assert_eq!(read_all(&fs, b), pattern(9, 0, 2 * B as usize));
}

#[test]
fn fiemap_reports_mapped_unwritten_and_shared_extents() {
    let (_dev, fs) = mem_fs(8 << 20);
    let a = fs.create("a").unwrap();
    fs.write(a, 0, &[1; 2 * B as usize]).unwrap();
    fs.fallocate(a, FallocMode::empty(), 4 * B, 2 * B).unwrap();
    let b = fs.create("b").unwrap();
    fs.reflink(a, 0, b, 0, B).unwrap();
    let mut fm = Fiemap {
        extents_max: 16,
        ..Fiemap::default()
    };
    fs.fiemap(a, &mut fm, 0, u64::MAX / 2).unwrap();
    let got: Vec<_> = fm
        .extents
        .iter()
        .map(|e| (e.logical, e.length, e.flags))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, B, FiemapExtentFlags::SHARED),
            (B, B, FiemapExtentFlags::empty()),
            (
                4 * B,
                2 * B,
                FiemapExtentFlags::UNWRITTEN | FiemapExtentFlags::LAST
            ),
        ]
    );
    let phys = fs.extents(a).unwrap()[0].dev_block * B;
    assert_eq!(fm.extents[0].physical, phys);
}

#[test]
fn seek_hole_and_seek_data() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 2 * B, &[1; B as usize]).unwrap();
    fs.truncate(ino, 6 * B).unwrap();
    assert_eq!(fs.seek_data(ino, 0).unwrap(), 2 * B);
    assert_eq!(fs.seek_hole(ino, 0).unwrap(), 0);
    assert_eq!(fs.seek_hole(ino, 2 * B as i64).unwrap(), 3 * B);
    assert_eq!(
        fs.seek_data(ino, 3 * B as i64).unwrap_err().errno(),
        libc::ENXIO
    );
    assert_eq!(
        fs.seek_hole(ino, 6 * B as i64).unwrap_err().errno(),
        libc::ENXIO
    );
}

#[test]
fn written_data_survives_fsync_and_later_writes_do_not() {
    let path = TempPath::new("rw-crash");
    let data = pattern(6, 0, 10_000);
    {
        let fs = TestFs::mkfs(path.device(Some(8 << 20))).unwrap();
        let a = fs.create("a").unwrap();
        fs.write(a, 0, &data).unwrap();
        fs.fsync(a).unwrap();
        fs.write(a, 10_000, &[9; 5000]).unwrap(); // grows the file: not durable
        let b = fs.create("b").unwrap();
        fs.write(b, 0, b"lost").unwrap();
    }
    let fs = TestFs::open(path.device(None)).unwrap();
    assert!(fs.lookup("b").is_err());
    let a = fs.lookup("a").unwrap();
    assert_eq!(read_all(&fs, a), data);
}

// The fsx-style model test lives in testfs_fsx.rs.

#[test]
fn handle_io_works_like_an_open_file_until_unlink() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("h").unwrap();
    let h = fs.inode(ino).unwrap();
    assert_eq!(fs.pwrite(&h, 100, b"through a handle").unwrap(), 16);
    assert_eq!(fs.stat(ino).unwrap().size, 116);
    let mut buf = [0u8; 16];
    assert_eq!(fs.pread(&h, 100, &mut buf).unwrap(), 16);
    assert_eq!(&buf, b"through a handle");
    // Overwrites inside the file keep the size; extending ones grow it.
    fs.pwrite(&h, 0, b"x").unwrap();
    assert_eq!(fs.stat(ino).unwrap().size, 116);
    drop(h);
    let h = fs.inode(ino).unwrap();
    fs.unlink("h").unwrap();
    assert_eq!(fs.pread(&h, 0, &mut buf).unwrap_err().errno(), libc::ENOENT);
    assert_eq!(fs.pwrite(&h, 0, b"y").unwrap_err().errno(), libc::ENOENT);
}
