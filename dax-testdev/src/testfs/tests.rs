//! Copy-on-write and reflink bookkeeping, tested without the engine: blocks are shared
//! with the block-map half of a remap (`TestFs::share_blocks`) and the CoW protocol is
//! driven by calling `iomap_begin`/`iomap_end` as the engine would. Also the lock
//! protocols that need TestFs's locks held from outside: reads without the metadata
//! lock, and a namespace change retrying when the file it would free changes.

use std::sync::Arc;

use dax_device::{DaxDevice, DaxError};
use dax_iomap::{IomapFlags, IomapOps, IomapType, IterFlags};

use super::*;
use crate::MemDevice;

const W: IterFlags = IterFlags::DAX.union(IterFlags::WRITE);

fn setup() -> (Arc<DaxDevice<MemDevice>>, TestFs) {
    let dev = MemDevice::builder().size(16 << 20).build().unwrap();
    let fs = TestFs::mkfs(dev.clone()).unwrap();
    (dev, fs)
}

fn poke(dev: &DaxDevice<MemDevice>, addr: u64, data: &[u8]) {
    dev.driver().poke(addr, data).unwrap();
}

fn peek(dev: &DaxDevice<MemDevice>, addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    dev.driver().peek(addr, &mut v).unwrap();
    v
}

/// A file `name` of `blocks` written blocks filled with `byte`, and its first block.
fn file_with_data(
    fs: &TestFs,
    dev: &DaxDevice<MemDevice>,
    name: &str,
    blocks: u64,
    byte: u8,
) -> (Ino, u64) {
    let ino = fs.create(name).unwrap();
    fs.fallocate(ino, FallocMode::empty(), 0, blocks * B)
        .unwrap();
    let inode = fs.inode(ino).unwrap();
    let (m, _) = inode.iomap_begin(0, blocks * B, W).unwrap();
    assert_eq!(m.length, blocks * B);
    poke(dev, m.addr, &vec![byte; (blocks * B) as usize]);
    inode.iomap_end(0, blocks * B, blocks * B, W, &m).unwrap();
    (ino, m.addr / B)
}

fn share(fs: &TestFs, src: Ino, dst: Ino, nb: u64) {
    fs.share_blocks(src, 0, dst, 0, nb, Some(nb * B)).unwrap();
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn sharing_raises_refcounts_and_flags_both_files() {
    let (dev, fs) = setup();
    let (a, blk) = file_with_data(&fs, &dev, "a", 4, 0xaa);
    let b = fs.create("b").unwrap();
    share(&fs, a, b, 4);
    for i in 0..4 {
        assert_eq!(fs.block_refcount(blk + i), 2);
    }
    for ino in [a, b] {
        let x = fs.extents(ino).unwrap();
        assert_eq!(x.len(), 1);
        assert!(x[0].shared && x[0].dev_block == blk && x[0].len == 4);
    }
    assert_eq!(fs.stat(b).unwrap().size, 4 * B);
    // A read of a shared extent says so (XFS's read iomap for DAX inodes).
    let inode = fs.inode(b).unwrap();
    let (m, _) = inode.iomap_begin(0, B, IterFlags::DAX).unwrap();
    assert_eq!(
        (m.kind, m.flags, m.addr),
        (IomapType::Mapped, IomapFlags::SHARED, blk * B)
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn cow_write_gets_a_zeroed_shared_destination_and_a_source_map() {
    let (dev, fs) = setup();
    let (a, blk) = file_with_data(&fs, &dev, "a", 4, 0xaa);
    let b = fs.create("b").unwrap();
    share(&fs, a, b, 4);
    let free = fs.statfs().free;
    let inode = fs.inode(b).unwrap();
    let (dst, src) = inode.iomap_begin(B, 2 * B, W).unwrap();
    let src = src.expect("a CoW write has a source map");
    assert!(dst.flags.contains(IomapFlags::SHARED | IomapFlags::DIRTY));
    assert!(!dst.flags.contains(IomapFlags::NEW));
    assert_eq!(
        (dst.kind, dst.offset, dst.length),
        (IomapType::Mapped, B, 2 * B)
    );
    assert_ne!(dst.addr / B, blk + 1);
    assert!(dst.dax_dev.is_some());
    assert_eq!(
        (src.kind, src.offset, src.length, src.addr),
        (IomapType::Mapped, B, 2 * B, (blk + 1) * B)
    );
    assert!(src.dax_dev.is_some());
    assert_eq!(
        peek(&dev, dst.addr, 2 * B as usize),
        vec![0; 2 * B as usize]
    );
    assert_eq!(fs.statfs().free, free - 2, "the reservation is allocated");
    // Nothing written: the reservation is cancelled, nothing changes.
    inode.iomap_end(B, 2 * B, 0, W, &dst).unwrap();
    assert_eq!(fs.statfs().free, free);
    assert_eq!(fs.block_refcount(blk + 1), 2);
    assert_eq!(fs.extents(b).unwrap()[0].dev_block, blk);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn cow_end_remaps_written_blocks_and_drops_the_old_references() {
    let (dev, fs) = setup();
    let (a, blk) = file_with_data(&fs, &dev, "a", 4, 0xaa);
    let b = fs.create("b").unwrap();
    share(&fs, a, b, 4);
    let inode = fs.inode(b).unwrap();
    let (dst, _) = inode.iomap_begin(B, 2 * B, W).unwrap();
    poke(&dev, dst.addr, &vec![0xbb; 2 * B as usize]); // what the engine would write
    inode.iomap_end(B, 2 * B, 2 * B, W, &dst).unwrap();
    assert_eq!(fs.block_refcount(blk), 2);
    assert_eq!(fs.block_refcount(blk + 1), 1);
    assert_eq!(fs.block_refcount(blk + 2), 1);
    assert_eq!(fs.block_refcount(blk + 3), 2);
    assert_eq!(fs.block_refcount(dst.addr / B), 1);
    let x = fs.extents(b).unwrap();
    let summary: Vec<_> = x
        .iter()
        .map(|e| (e.file_block, e.dev_block, e.len, e.shared))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, blk, 1, true),
            (1, dst.addr / B, 2, false),
            (3, blk + 3, 1, true)
        ]
    );
    // The partner still sees its data, and the blocks it alone holds now are unshared.
    assert_eq!(
        peek(&dev, (blk + 1) * B, 2 * B as usize),
        vec![0xaa; 2 * B as usize]
    );
    let xa = fs.extents(a).unwrap();
    assert_eq!(
        xa.iter().filter(|e| !e.shared).map(|e| e.len).sum::<u64>(),
        2
    );
    // A later write to the partner's now-unshared blocks is an ordinary overwrite.
    let inode = fs.inode(a).unwrap();
    let (m, src) = inode.iomap_begin(B, B, W).unwrap();
    assert_eq!(
        (m.addr, src, m.flags.contains(IomapFlags::SHARED)),
        ((blk + 1) * B, None, false)
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn cow_short_write_keeps_the_old_rest_of_its_last_block() {
    let (dev, fs) = setup();
    let (a, _) = file_with_data(&fs, &dev, "a", 2, 0xaa);
    let b = fs.create("b").unwrap();
    share(&fs, a, b, 2);
    let inode = fs.inode(b).unwrap();
    let (dst, _) = inode.iomap_begin(0, 2 * B, W).unwrap();
    // The engine wrote 100 bytes and stopped (a faulting user buffer).
    poke(&dev, dst.addr, &[0xbb; 100]);
    inode.iomap_end(0, 2 * B, 100, W, &dst).unwrap();
    let x = fs.extents(b).unwrap();
    assert_eq!((x[0].dev_block, x[0].len), (dst.addr / B, 1));
    let mut want = vec![0xaa; B as usize];
    want[..100].fill(0xbb);
    assert_eq!(peek(&dev, dst.addr, B as usize), want);
    assert!(x[1].shared, "the unwritten block stays shared");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn zeroing_shared_mapped_blocks_copies_on_write_but_unwritten_and_holes_never_allocate() {
    let (dev, fs) = setup();
    let (a, _) = file_with_data(&fs, &dev, "a", 2, 0xaa);
    let u = fs.create("u").unwrap();
    fs.fallocate(u, FallocMode::empty(), 0, 2 * B).unwrap();
    let b = fs.create("b").unwrap();
    share(&fs, a, b, 2);
    let c = fs.create("c").unwrap();
    fs.share_blocks(u, 0, c, 0, 2, Some(4 * B)).unwrap();
    let z = IterFlags::DAX | IterFlags::ZERO;
    let free = fs.statfs().free;
    let inode = fs.inode(c).unwrap();
    let (m, src) = inode.iomap_begin(0, 2 * B, z).unwrap();
    assert_eq!((m.kind, src), (IomapType::Unwritten, None));
    let (m, _) = inode.iomap_begin(2 * B, B, z).unwrap();
    assert_eq!(m.kind, IomapType::Hole);
    assert_eq!(fs.statfs().free, free);
    let inode = fs.inode(b).unwrap();
    let (m, src) = inode.iomap_begin(0, B, z).unwrap();
    assert!(m.flags.contains(IomapFlags::SHARED) && src.is_some());
    assert_eq!(fs.statfs().free, free - 1);
    inode.iomap_end(0, B, B, z, &m).unwrap();
    assert_eq!(fs.extents(b).unwrap()[0].dev_block, m.addr / B);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn write_into_shared_unwritten_blocks_copies_with_an_unwritten_source() {
    let (_dev, fs) = setup();
    let u = fs.create("u").unwrap();
    fs.fallocate(u, FallocMode::empty(), 0, 2 * B).unwrap();
    let c = fs.create("c").unwrap();
    fs.share_blocks(u, 0, c, 0, 2, Some(2 * B)).unwrap();
    let inode = fs.inode(c).unwrap();
    let (m, src) = inode.iomap_begin(0, B, W).unwrap();
    assert!(m.flags.contains(IomapFlags::SHARED));
    assert_eq!(src.unwrap().kind, IomapType::Unwritten);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn unlink_drops_references_and_cancels_reservations() {
    let (dev, fs) = setup();
    let (a, blk) = file_with_data(&fs, &dev, "a", 4, 0xaa);
    let b = fs.create("b").unwrap();
    share(&fs, a, b, 4);
    let free = fs.statfs().free;
    let (_dst, _) = fs.inode(b).unwrap().iomap_begin(0, B, W).unwrap();
    fs.unlink("b").unwrap();
    assert_eq!(fs.block_refcount(blk), 1);
    assert_eq!(fs.statfs().free, free);
    fs.unlink("a").unwrap();
    assert_eq!(fs.block_refcount(blk), 0);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn shared_extents_and_refcounts_survive_a_checkpoint_and_reopen() {
    let (dev, fs) = setup();
    let (a, blk) = file_with_data(&fs, &dev, "a", 4, 0xaa);
    let b = fs.create("b").unwrap();
    share(&fs, a, b, 4);
    fs.sync().unwrap();
    drop(fs);
    let fs = TestFs::open(dev.clone()).unwrap();
    assert_eq!(fs.block_refcount(blk), 2);
    assert!(fs.extents(fs.lookup("b").unwrap()).unwrap()[0].shared);
    let inode = fs.inode(fs.lookup("b").unwrap()).unwrap();
    let (m, src) = inode.iomap_begin(0, B, W).unwrap();
    assert!(m.flags.contains(IomapFlags::SHARED) && src.is_some());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn nowait_cow_is_eagain() {
    let (dev, fs) = setup();
    let (a, _) = file_with_data(&fs, &dev, "a", 1, 0xaa);
    let b = fs.create("b").unwrap();
    share(&fs, a, b, 1);
    let err = fs
        .inode(b)
        .unwrap()
        .iomap_begin(0, B, W | IterFlags::NOWAIT)
        .unwrap_err();
    assert_eq!(err, DaxError::WouldBlock);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn reads_look_up_blocks_under_the_extent_lock_alone() {
    // A read-type iomap_begin takes only the inode's extent lock, shared: with the
    // filesystem-wide metadata lock held elsewhere, a NOWAIT read of unshared blocks
    // still answers; with the extent lock held exclusively it does not. A shared
    // extent needs the allocator's reference counts, so its read does need the
    // metadata lock.
    let (dev, fs) = setup();
    let (a, blk) = file_with_data(&fs, &dev, "a", 2, 0xaa);
    let inode = fs.inode(a).unwrap();
    let r = IterFlags::DAX | IterFlags::NOWAIT;
    {
        let _meta = fs.state().meta.lock();
        let (m, src) = inode.iomap_begin(B, B, r).unwrap();
        assert_eq!(
            (m.kind, m.addr, m.offset, m.length, src),
            (IomapType::Mapped, (blk + 1) * B, B, B, None)
        );
        let (h, _) = inode.iomap_begin(2 * B, B, r).unwrap();
        assert_eq!((h.kind, h.offset), (IomapType::Hole, 2 * B));
    }
    {
        let _blocks = inode.core().blocks.write();
        assert_eq!(
            inode.iomap_begin(0, B, r).unwrap_err(),
            DaxError::WouldBlock
        );
    }
    let b = fs.create("b").unwrap();
    share(&fs, a, b, 2);
    let shared = fs.inode(b).unwrap();
    {
        let _meta = fs.state().meta.lock();
        assert_eq!(
            shared.iomap_begin(0, B, r).unwrap_err(),
            DaxError::WouldBlock
        );
    }
    let (m, _) = shared.iomap_begin(0, B, r).unwrap();
    assert_eq!(
        (m.kind, m.flags, m.addr, m.length),
        (IomapType::Mapped, IomapFlags::SHARED, blk * B, 2 * B)
    );
    // Once the partner is gone the blocks are no longer shared, whatever the hint says.
    fs.unlink("a").unwrap();
    let (m, _) = shared.iomap_begin(0, B, r).unwrap();
    assert_eq!((m.flags, m.length), (IomapFlags::empty(), 2 * B));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn unlink_empties_the_block_map_under_the_extent_lock() {
    // A handle that outlives its file must not find blocks that are now free (and may
    // be another file's): unlink takes the map out and marks the inode under the
    // extent lock, and a read then answers ENOENT.
    let (dev, fs) = setup();
    let (a, _) = file_with_data(&fs, &dev, "a", 3, 0xaa);
    let inode = fs.inode(a).unwrap();
    fs.unlink("a").unwrap();
    assert_eq!(inode.core().blocks.read().map.blocks(), 0);
    assert_eq!(
        inode.iomap_begin(0, B, IterFlags::DAX).unwrap_err().errno(),
        libc::ENOENT
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn overwrites_of_own_written_blocks_skip_the_metadata_lock() {
    // A write-type iomap_begin that finds written blocks the file does not share
    // changes no metadata: it answers with the extent lock alone, DIRTY only while
    // the inode has metadata no checkpoint has made durable. Anything that allocates,
    // converts or copies still needs the metadata lock.
    let (dev, fs) = setup();
    let (a, blk) = file_with_data(&fs, &dev, "a", 2, 0xaa);
    fs.sync().unwrap();
    let inode = fs.inode(a).unwrap();
    let w = W | IterFlags::NOWAIT;
    {
        let _meta = fs.state().meta.lock();
        let (m, src) = inode.iomap_begin(B, B, w).unwrap();
        assert_eq!(
            (m.kind, m.flags, m.addr, m.length, src),
            (
                IomapType::Mapped,
                IomapFlags::empty(),
                (blk + 1) * B,
                B,
                None
            )
        );
        let (m, _) = inode.iomap_begin(B, 2 * B, w).unwrap();
        assert_eq!(m.flags, IomapFlags::DIRTY, "reaches past EOF");
        assert_eq!(
            inode.iomap_begin(2 * B, B, w).unwrap_err(),
            DaxError::WouldBlock,
            "a hole needs allocation"
        );
    }
    fs.truncate(a, 2 * B + 1).unwrap(); // metadata not yet checkpointed
    let (m, _) = inode.iomap_begin(0, B, w).unwrap();
    assert_eq!(m.flags, IomapFlags::DIRTY);
    fs.sync().unwrap();
    let (m, _) = inode.iomap_begin(0, B, w).unwrap();
    assert_eq!(m.flags, IomapFlags::empty());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn a_rename_whose_victim_changes_while_it_waits_evicts_the_new_one() {
    // rename(a → t) over t's last link must take t's I/O and invalidate locks before
    // the metadata lock. While it waits for them (held here), t is linked elsewhere
    // and another file renamed over it: the rename must check again, find the new
    // last link, lock that file instead, and free it, not the first.
    let (dev, fs) = setup();
    let a = fs.create("a").unwrap();
    let (v1, _) = file_with_data(&fs, &dev, "t", 2, 0x11);
    let (v2, _) = file_with_data(&fs, &dev, "v2", 3, 0x22);
    let v1h = fs.inode(v1).unwrap();
    let held = v1h.core().io.write();
    std::thread::scope(|s| {
        let fs = &fs;
        let renamer =
            s.spawn(move || fs.rename(ROOT_INO, "a", ROOT_INO, "t", RenameFlags::empty()));
        // Give the rename time to find v1 and wait for its lock (if it has not got
        // there yet, it simply finds v2 first: the outcome is the same).
        std::thread::sleep(std::time::Duration::from_millis(50));
        fs.link(v1, ROOT_INO, "keep").unwrap();
        fs.rename(ROOT_INO, "v2", ROOT_INO, "t", RenameFlags::empty())
            .unwrap();
        drop(held);
        renamer.join().unwrap().unwrap();
    });
    assert_eq!(fs.lookup("t").unwrap(), a);
    assert_eq!(fs.lookup("keep").unwrap(), v1);
    assert_eq!(fs.getattr(v1).unwrap().nlink, 1);
    assert_eq!(fs.stat(v1).unwrap().blocks, 2, "v1 keeps its blocks");
    assert_eq!(fs.getattr(v2).unwrap_err().errno(), libc::ENOENT);
    assert!(!v1h.core().is_unlinked());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn an_unlink_that_finds_a_new_link_keeps_the_files_dirty_entries() {
    // unlink(a) waits for a's locks (held here); meanwhile a gets a second name, so
    // the unlink only removes a name. What was stored through a mapping is still
    // dirty in a's mapping index, for the next fsync to write back: the wait for
    // the locks must not have dropped the entries.
    use dax_fault::index::Marks;
    use dax_fault::sim::SimPageTable;
    use dax_fault::{PageTable, Vma};

    let (dev, fs) = setup();
    let (a, _) = file_with_data(&fs, &dev, "a", 1, 0x11);
    let pt = Arc::new(SimPageTable::new());
    let base = 0x7000_0000_0000;
    let vma = fs
        .mmap(
            a,
            Vma::new(base, B, 0).unwrap().writable(true),
            pt.clone() as Arc<dyn PageTable>,
        )
        .unwrap();
    pt.write(&vma, base, b"stored through the mapping").unwrap();
    assert!(
        vma.mapping()
            .index()
            .lookup(0)
            .unwrap()
            .marks
            .contains(Marks::DIRTY)
    );
    let ah = fs.inode(a).unwrap();
    let held = ah.core().io.write();
    std::thread::scope(|s| {
        let fs = &fs;
        let unlinker = s.spawn(move || fs.unlink("a"));
        std::thread::sleep(std::time::Duration::from_millis(50));
        fs.link(a, ROOT_INO, "b").unwrap();
        drop(held);
        unlinker.join().unwrap().unwrap();
    });
    assert_eq!(fs.getattr(a).unwrap().nlink, 1);
    assert!(!ah.core().is_unlinked());
    let e = vma.mapping().index().lookup(0);
    assert!(
        e.is_some_and(|e| e.marks.contains(Marks::DIRTY)),
        "the surviving file lost its dirty entry: {e:?}"
    );
    // And when the last name goes, the entries go with the file.
    fs.unlink("b").unwrap();
    assert!(vma.mapping().index().lookup(0).is_none());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn held_locks_names_every_lock_level_and_locked_entries() {
    let (_dev, fs) = setup();
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, b"x").unwrap();
    assert!(fs.held_locks().is_empty());
    let inode = fs.inode(ino).unwrap();
    let core = inode.core();
    let n = ino.0;
    {
        let _io = core.io.read();
        assert_eq!(fs.held_locks(), [format!("inode {n}: I/O lock")]);
    }
    {
        let _inval = core.invalidate.read();
        assert_eq!(fs.held_locks(), [format!("inode {n}: invalidate lock")]);
    }
    {
        let _blocks = core.blocks.read();
        assert_eq!(fs.held_locks(), [format!("inode {n}: extent lock")]);
    }
    {
        let _times = core.times_guard_for_test();
        assert_eq!(fs.held_locks(), [format!("inode {n}: timestamp lock")]);
    }
    {
        let _e = core.mapping.index().grab(3, 0, &mut |_, _| {}).unwrap();
        assert_eq!(
            fs.held_locks(),
            [format!("inode {n}: mapping entry at page 3 (Empty) locked")]
        );
    }
    {
        let _meta = fs.state().meta.lock();
        assert_eq!(fs.held_locks(), ["metadata lock"]);
    }
    assert!(fs.held_locks().is_empty());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "TestFs stamps times from the real-time clock and owners from getuid/getgid, which Miri's isolation refuses"
)]
fn a_fault_during_device_removal_maps_nothing_that_outlives_it() {
    // kill -> notify_failure(MEM_PRE_REMOVE): TestFs unmaps every user of the device.
    // A fault that comes after that walk (here: run from inside the notification,
    // after the walk) must not leave a mapping behind when kill returns. It did when
    // TestFs shut down only after the walk: the fault mapped the page in between.
    use dax_fault::sim::SimPageTable;
    use dax_fault::{VmFault, Vma};

    let (dev, fs) = setup();
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &[7u8; 4096]).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let base = 0x7000_0000_0000;
    let vma = fs
        .mmap(
            ino,
            Vma::new(base, 4096, 0).unwrap().shared(true),
            pt.clone(),
        )
        .unwrap();
    let late = Arc::new(parking_lot::Mutex::new(None));
    {
        let (pt, vma, late) = (pt.clone(), vma.clone(), late.clone());
        super::failure::test_hook::set(move || {
            let mut b = [0u8; 1];
            *late.lock() = Some(pt.read(&vma, base, &mut b));
        });
    }
    dev.kill();
    assert_eq!(*late.lock(), Some(Err(VmFault::SIGBUS)), "the late fault");
    assert!(
        !pt.any_mapped(base, 4096),
        "kill returned with the page mapped"
    );
}
