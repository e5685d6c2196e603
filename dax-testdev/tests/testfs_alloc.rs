//! TestFs's allocator, extent maps, namespace and space operations, through its own
//! API (none of these need the engine: ranges are block aligned or over unwritten
//! blocks, so no partial block has to be zeroed).

mod testfs_common;

use dax_device::PMD_SIZE;
use dax_iomap::{IomapOps, MAX_FILE_SIZE};
use dax_testdev::{ExtentInfo, FallocMode, MemDevice, MkfsOptions, TestFs};
use testfs_common::*;

const PMD: u64 = PMD_SIZE as u64;

#[test]
fn namespace_create_lookup_list_unlink_and_name_errors() {
    let (_dev, fs) = mem_fs(4 << 20);
    let a = fs.create("a").unwrap();
    let b = fs.create("b").unwrap();
    assert_ne!(a, b);
    assert_eq!(fs.lookup("a").unwrap(), a);
    assert_eq!(fs.create("a").unwrap_err().errno(), libc::EEXIST);
    assert_eq!(fs.lookup("zz").unwrap_err().errno(), libc::ENOENT);
    assert_eq!(fs.create("").unwrap_err().errno(), libc::ENOENT);
    assert_eq!(
        fs.create(&"x".repeat(256)).unwrap_err().errno(),
        libc::ENAMETOOLONG
    );
    fs.create(&"x".repeat(255)).unwrap();
    for bad in ["a/b", "nul\0"] {
        assert_eq!(fs.create(bad).unwrap_err().errno(), libc::EINVAL, "{bad:?}");
    }
    // `.` and `..` exist (Linux's `filename_create` answers EEXIST).
    for dot in [".", ".."] {
        assert_eq!(fs.create(dot).unwrap_err().errno(), libc::EEXIST, "{dot:?}");
    }
    let names: Vec<_> = fs.list().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[..2], ["a".to_string(), "b".to_string()]);
    fs.unlink("a").unwrap();
    assert_eq!(fs.unlink("a").unwrap_err().errno(), libc::ENOENT);
    assert_eq!(fs.stat(a).unwrap_err().errno(), libc::ENOENT);
    // Inode numbers are not reused.
    let c = fs.create("a").unwrap();
    assert!(c.0 > b.0);
}

#[test]
fn fallocate_allocates_unwritten_blocks_and_sets_the_size() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::empty(), 100, 3 * B).unwrap();
    let st = fs.stat(ino).unwrap();
    assert_eq!((st.size, st.blocks), (100 + 3 * B, 4));
    assert!(fs.extents(ino).unwrap().iter().all(|e| e.unwritten));
    fs.fallocate(ino, FallocMode::KEEP_SIZE, 10 * B, 2 * B)
        .unwrap();
    let st = fs.stat(ino).unwrap();
    assert_eq!((st.size, st.blocks), (100 + 3 * B, 6));
    // Allocating over allocated blocks changes nothing.
    let before = fs.extents(ino).unwrap();
    fs.fallocate(ino, FallocMode::KEEP_SIZE, 0, 3 * B).unwrap();
    assert_eq!(fs.extents(ino).unwrap(), before);
}

#[test]
fn fallocate_argument_errors_follow_vfs_fallocate() {
    let (_dev, fs) = mem_fs(4 << 20);
    let ino = fs.create("f").unwrap();
    let e = |m: FallocMode, p: u64, l: u64| fs.fallocate(ino, m, p, l).unwrap_err().errno();
    assert_eq!(e(FallocMode::empty(), 0, 0), libc::EINVAL);
    assert_eq!(e(FallocMode::empty(), 1 << 63, 1), libc::EINVAL);
    assert_eq!(e(FallocMode::empty(), 0, 1 << 63), libc::EINVAL);
    assert_eq!(e(FallocMode::PUNCH_HOLE, 0, B), libc::EOPNOTSUPP);
    assert_eq!(e(FallocMode::NO_HIDE_STALE, 0, B), libc::EOPNOTSUPP);
    assert_eq!(
        e(FallocMode::from_bits_retain(0x100), 0, B),
        libc::EOPNOTSUPP
    );
    assert_eq!(
        e(
            FallocMode::PUNCH_HOLE | FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE,
            0,
            B
        ),
        libc::EOPNOTSUPP
    );
    assert_eq!(
        e(FallocMode::COLLAPSE_RANGE | FallocMode::KEEP_SIZE, 0, B),
        libc::EOPNOTSUPP
    );
    assert_eq!(e(FallocMode::empty(), MAX_FILE_SIZE, 1), libc::EFBIG);
    assert_eq!(e(FallocMode::COLLAPSE_RANGE, 0, B), libc::EOPNOTSUPP);
    assert_eq!(e(FallocMode::INSERT_RANGE, 0, B), libc::EOPNOTSUPP);
    assert_eq!(fs.stat(ino).unwrap().blocks, 0);
}

#[test]
fn allocations_of_2mib_are_pmd_aligned_and_congruent_for_large_files() {
    let (_dev, fs) = mem_fs(32 << 20);
    let small = fs.create("small").unwrap();
    fs.fallocate(small, FallocMode::empty(), 0, 3 * B).unwrap();
    assert_eq!(
        fs.extents(small).unwrap()[0].dev_block,
        fs.layout().data_start
    );
    let big = fs.create("big").unwrap();
    fs.fallocate(big, FallocMode::empty(), 0, 2 * PMD).unwrap();
    let x = fs.extents(big).unwrap();
    assert_eq!(x.len(), 1);
    assert_eq!((x[0].dev_block % 512, x[0].len), (0, 1024));
    // A file that is already large: a single block at file block 515 lands at a
    // device block that is 3 mod 512, so the PMD can be filled in around it later.
    let grown = fs.create("grown").unwrap();
    fs.truncate(grown, 4 * PMD).unwrap();
    fs.fallocate(grown, FallocMode::empty(), 515 * B, B)
        .unwrap();
    assert_eq!(fs.extents(grown).unwrap()[0].dev_block % 512, 3);
    // Filling the rest of that PMD continues the same run (goal allocation).
    fs.fallocate(grown, FallocMode::empty(), 512 * B, PMD)
        .unwrap();
    let x = fs.extents(grown).unwrap();
    assert!(
        x.iter().all(|e| e.dev_block % 512 == e.file_block % 512),
        "{x:?}"
    );
}

#[test]
fn enospc_is_typed_and_busy_blocks_are_recycled_by_a_checkpoint() {
    let (_dev, fs) = mem_fs(4 << 20);
    let total = fs.statfs().blocks;
    let a = fs.create("a").unwrap();
    let err = fs
        .fallocate(a, FallocMode::empty(), 0, (total + 1) * B)
        .unwrap_err();
    assert_eq!(err.errno(), libc::ENOSPC);
    assert_eq!(fs.statfs().free, 0);
    assert_eq!(
        fs.stat(a).unwrap().blocks,
        total,
        "what was allocated stays"
    );
    let b = fs.create("b").unwrap();
    assert_eq!(
        fs.inode(b)
            .unwrap()
            .iomap_begin(0, B, W)
            .unwrap_err()
            .errno(),
        libc::ENOSPC
    );
    fs.fsync(a).unwrap();
    fs.unlink("a").unwrap();
    // The durable checkpoint still names a's blocks: busy, not free.
    let st = fs.statfs();
    assert_eq!((st.free, st.busy), (0, total));
    // Allocation forces a checkpoint rather than failing.
    fs.fallocate(b, FallocMode::empty(), 0, 8 * B).unwrap();
    let st = fs.statfs();
    assert_eq!((st.free, st.busy), (total - 8, 0));
}

#[test]
fn blocks_freed_after_a_checkpoint_are_not_reused_before_the_next() {
    let (_dev, fs) = mem_fs(8 << 20);
    let a = fs.create("a").unwrap();
    fs.fallocate(a, FallocMode::empty(), 0, 8 * B).unwrap();
    let old: Vec<u64> = fs
        .extents(a)
        .unwrap()
        .iter()
        .flat_map(|e| e.dev_block..e.dev_block + e.len)
        .collect();
    fs.fsync(a).unwrap();
    fs.truncate(a, 0).unwrap();
    let b = fs.create("b").unwrap();
    fs.fallocate(b, FallocMode::empty(), 0, 8 * B).unwrap();
    for e in fs.extents(b).unwrap() {
        for blk in e.dev_block..e.dev_block + e.len {
            assert!(
                !old.contains(&blk),
                "block {blk} reused before a checkpoint"
            );
        }
    }
    assert_eq!(fs.statfs().busy, 8);
    fs.sync().unwrap();
    assert_eq!(fs.statfs().busy, 0);
}

#[test]
fn punch_hole_frees_whole_blocks_only() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::empty(), 0, 16 * B).unwrap();
    let free = fs.statfs().free;
    // 4..12 whole; the unaligned edges fall in unwritten blocks (nothing to zero).
    fs.fallocate(
        ino,
        FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
        4 * B - 10,
        8 * B + 20,
    )
    .unwrap();
    let st = fs.stat(ino).unwrap();
    assert_eq!((st.size, st.blocks), (16 * B, 8));
    assert_eq!(fs.statfs().free, free + 8);
    let x: Vec<_> = fs
        .extents(ino)
        .unwrap()
        .iter()
        .map(|e| (e.file_block, e.len))
        .collect();
    assert_eq!(x, vec![(0, 4), (12, 4)]);
}

#[test]
fn truncate_frees_blocks_past_eof_and_grows_over_holes() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::empty(), 0, 10 * B).unwrap();
    fs.fallocate(ino, FallocMode::KEEP_SIZE, 20 * B, 2 * B)
        .unwrap();
    let free = fs.statfs().free;
    fs.truncate(ino, 4 * B + 1).unwrap(); // the EOF block is unwritten: no zeroing needed
    let st = fs.stat(ino).unwrap();
    assert_eq!((st.size, st.blocks), (4 * B + 1, 5));
    assert_eq!(
        fs.statfs().free,
        free + 7,
        "also the preallocation past EOF"
    );
    fs.truncate(ino, 100 * B).unwrap();
    assert_eq!(
        fs.stat(ino).unwrap(),
        dax_testdev::Stat {
            ino,
            size: 100 * B,
            blocks: 5
        }
    );
    fs.truncate(ino, 0).unwrap();
    assert_eq!(fs.stat(ino).unwrap().blocks, 0);
    assert_eq!(fs.truncate(ino, 1 << 63).unwrap_err().errno(), libc::EINVAL);
}

#[test]
fn zero_range_of_whole_blocks_leaves_them_unwritten() {
    let (_dev, fs) = mem_fs(8 << 20);
    let ino = fs.create("f").unwrap();
    fs.fallocate(ino, FallocMode::empty(), 0, 4 * B).unwrap();
    let inode = fs.inode(ino).unwrap();
    let (m, _) = inode.iomap_begin(0, 4 * B, W).unwrap();
    inode.iomap_end(0, 4 * B, 4 * B, W, &m).unwrap();
    fs.fallocate(ino, FallocMode::ZERO_RANGE, B, 2 * B).unwrap();
    let x: Vec<_> = fs
        .extents(ino)
        .unwrap()
        .iter()
        .map(|e| (e.file_block, e.len, e.unwritten))
        .collect();
    assert_eq!(x, vec![(0, 1, false), (1, 2, true), (3, 1, false)]);
    fs.fallocate(ino, FallocMode::ZERO_RANGE, 4 * B, 4 * B)
        .unwrap();
    assert_eq!(fs.stat(ino).unwrap().size, 8 * B);
    fs.fallocate(
        ino,
        FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE,
        8 * B,
        4 * B,
    )
    .unwrap();
    let st = fs.stat(ino).unwrap();
    assert_eq!((st.size, st.blocks), (8 * B, 12));
}

#[test]
fn statfs_and_stat_account_every_block() {
    let (_dev, fs) = mem_fs(8 << 20);
    let st0 = fs.statfs();
    assert_eq!(st0.block_size, B);
    assert_eq!(st0.blocks, st0.free);
    let a = fs.create("a").unwrap();
    let b = fs.create("b").unwrap();
    fs.fallocate(a, FallocMode::empty(), 0, 5 * B).unwrap();
    fs.fallocate(b, FallocMode::KEEP_SIZE, 7 * B, 3 * B)
        .unwrap();
    let st = fs.statfs();
    assert_eq!((st.files, st0.free - st.free), (2, 8));
    assert_eq!(fs.stat(b).unwrap().size, 0);
    assert_eq!(fs.stat(b).unwrap().blocks, 3);
}

#[test]
fn every_allocated_block_has_one_owner() {
    let (_dev, fs) = mem_fs(16 << 20);
    let mut owned = std::collections::BTreeMap::new();
    for i in 0..8u64 {
        let ino = fs.create(&format!("f{i}")).unwrap();
        for j in 0..6u64 {
            fs.fallocate(ino, FallocMode::KEEP_SIZE, (j * 7 + i) * B, (j + 1) * B)
                .unwrap();
        }
        fs.fallocate(
            ino,
            FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
            3 * B,
            5 * B,
        )
        .unwrap();
    }
    let mut used = 0;
    for (name, ino) in fs.list() {
        for ExtentInfo { dev_block, len, .. } in fs.extents(ino).unwrap() {
            for blk in dev_block..dev_block + len {
                assert!(
                    owned.insert(blk, name.clone()).is_none(),
                    "block {blk} owned twice"
                );
                assert_eq!(fs.block_refcount(blk), 1);
            }
            used += len;
        }
    }
    let st = fs.statfs();
    assert_eq!(st.free + st.busy + used, st.blocks);
}

#[test]
fn mkfs_and_mount_errors() {
    let tiny = MemDevice::builder().size(16 * B).build().unwrap();
    assert_eq!(
        TestFs::mkfs(tiny.clone()).unwrap_err().errno(),
        libc::EINVAL
    );
    let opts = MkfsOptions::new().checkpoint_blocks(Some(1));
    let fs = TestFs::mkfs_with(tiny.clone(), opts).unwrap();
    assert_eq!(fs.layout().data_start, 3);
    assert_eq!(TestFs::open(tiny.clone()).unwrap_err().errno(), libc::EBUSY);
    assert_eq!(
        TestFs::mkfs_with(tiny.clone(), opts).unwrap_err().errno(),
        libc::EBUSY
    );
    drop(fs);
    TestFs::open(tiny).unwrap();
    let blank = MemDevice::builder().size(4 << 20).build().unwrap();
    assert_eq!(TestFs::open(blank).unwrap_err().errno(), libc::EINVAL);
}
