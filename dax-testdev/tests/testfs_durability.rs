//! Checkpoints, crashes and reopening on a file-backed device: what the last fsync or
//! sync made durable comes back, nothing after it does, and a damaged newest
//! checkpoint slot falls back to the previous one.

mod testfs_common;

use dax_iomap::{IomapOps, IomapType};
use dax_testdev::{FallocMode, Ino, MkfsOptions, TestFs};
use testfs_common::*;

const SIZE: u64 = 8 << 20;

/// Writes `data` (at most one block) into file block `fb` of `ino` as the engine
/// would: `iomap_begin(WRITE)`, a store to the returned address, `iomap_end`.
fn write_block(fs: &TestFs, dev: &Dev, ino: Ino, fb: u64, data: &[u8]) -> u64 {
    let inode = fs.inode(ino).unwrap();
    let (m, _) = inode.iomap_begin(fb * B, data.len() as u64, W).unwrap();
    let addr = m.addr + (fb * B - m.offset);
    poke(dev, addr, data);
    inode
        .iomap_end(fb * B, data.len() as u64, data.len() as u64, W, &m)
        .unwrap();
    addr
}

fn names(fs: &TestFs) -> Vec<String> {
    fs.list().into_iter().map(|(n, _)| n).collect()
}

#[test]
fn fsynced_metadata_survives_a_crash_and_later_changes_do_not() {
    let path = TempPath::new("crash");
    let (addr0, addr1);
    {
        let dev = path.device(Some(SIZE));
        let fs = TestFs::mkfs(dev.clone()).unwrap();
        let a = fs.create("a").unwrap();
        fs.fallocate(a, FallocMode::empty(), 0, 2 * B).unwrap();
        addr0 = write_block(&fs, &dev, a, 0, b"hello");
        fs.fsync(a).unwrap();
        // Not synced: a new file, a bigger size, a conversion of block 1.
        fs.create("b").unwrap();
        fs.fallocate(a, FallocMode::empty(), 2 * B, 6 * B).unwrap();
        addr1 = write_block(&fs, &dev, a, 1, b"world");
        // Data written in place into blocks the checkpoint already maps is durable
        // (data is not journaled), like on ext4/XFS.
        poke(&dev, addr0 + 5, b", again");
    } // crash: everything dropped, no unmount
    let dev = path.device(None);
    let fs = TestFs::open(dev.clone()).unwrap();
    assert_eq!(names(&fs), ["a"]);
    let a = fs.lookup("a").unwrap();
    let st = fs.stat(a).unwrap();
    assert_eq!((st.size, st.blocks), (2 * B, 2));
    let inode = fs.inode(a).unwrap();
    let (m0, _) = inode.iomap_begin(0, B, R).unwrap();
    assert_eq!((m0.kind, m0.addr), (IomapType::Mapped, addr0));
    assert_eq!(peek(&dev, addr0, 12), b"hello, again");
    let (m1, _) = inode.iomap_begin(B, B, R).unwrap();
    assert_eq!(
        (m1.kind, m1.addr),
        (IomapType::Unwritten, addr1),
        "the conversion was not synced"
    );
}

#[test]
fn blocks_freed_after_fsync_keep_their_data_for_a_crash() {
    let path = TempPath::new("busy");
    let old;
    {
        let dev = path.device(Some(SIZE));
        let fs = TestFs::mkfs(dev.clone()).unwrap();
        let a = fs.create("a").unwrap();
        fs.truncate(a, B).unwrap();
        old = write_block(&fs, &dev, a, 0, b"AAAA");
        fs.fsync(a).unwrap();
        fs.truncate(a, 0).unwrap();
        let b = fs.create("b").unwrap();
        let new = write_block(&fs, &dev, b, 0, b"BBBB");
        assert_ne!(new, old, "a's block is busy until the next checkpoint");
    }
    let dev = path.device(None);
    let fs = TestFs::open(dev.clone()).unwrap();
    let a = fs.lookup("a").unwrap();
    assert_eq!(fs.stat(a).unwrap().size, B);
    let inode = fs.inode(a).unwrap();
    let (m, _) = inode.iomap_begin(0, B, R).unwrap();
    assert_eq!(m.addr, old);
    assert_eq!(peek(&dev, old, 4), b"AAAA");
}

#[test]
fn unmount_makes_everything_durable() {
    let path = TempPath::new("umount");
    {
        let dev = path.device(Some(SIZE));
        let fs = TestFs::mkfs(dev.clone()).unwrap();
        for i in 0..5 {
            let ino = fs.create(&format!("f{i}")).unwrap();
            fs.fallocate(ino, FallocMode::empty(), 0, (i + 1) * B)
                .unwrap();
        }
        fs.unmount().unwrap();
    }
    let fs = TestFs::open(path.device(None)).unwrap();
    assert_eq!(fs.list().len(), 5);
    assert_eq!(fs.stat(fs.lookup("f4").unwrap()).unwrap().blocks, 5);
}

#[test]
fn checkpoints_alternate_between_the_two_slots() {
    let (dev, fs) = mem_fs(SIZE);
    let layout = fs.layout();
    assert_eq!(fs.generation(), 1);
    fs.sync().unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.generation(), 3);
    let header = |slot: usize| peek(&dev, layout.slot_offsets[slot], 24);
    let generation = |h: Vec<u8>| u64::from_le_bytes(h[16..24].try_into().unwrap());
    assert_eq!(&header(0)[..8], b"TFSCKPT1");
    assert_eq!((generation(header(0)), generation(header(1))), (2, 3));
}

/// Two checkpoints ("one", then "one" + "two"), then a crash.
fn two_generations(path: &TempPath) -> (u64, [u64; 2]) {
    let dev = path.device(Some(SIZE));
    let fs = TestFs::mkfs(dev).unwrap();
    fs.create("one").unwrap();
    fs.sync().unwrap();
    fs.create("two").unwrap();
    fs.sync().unwrap();
    (fs.generation(), fs.layout().slot_offsets)
}

#[test]
fn corrupted_newest_checkpoint_falls_back_to_the_previous_one() {
    let path = TempPath::new("corrupt");
    let (generation, slots) = two_generations(&path);
    let newest = slots[(generation % 2) as usize];
    {
        let dev = path.device(None);
        let mut b = peek(&dev, newest + 64 + 9, 1);
        b[0] ^= 0x40; // one bit of the payload
        poke(&dev, newest + 64 + 9, &b);
    }
    let fs = TestFs::open(path.device(None)).unwrap();
    assert_eq!(
        (fs.generation(), names(&fs)),
        (generation - 1, vec!["one".to_string()])
    );
    // The next checkpoint overwrites the damaged slot and wins again.
    fs.create("three").unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.generation(), generation);
    drop(fs);
    let fs = TestFs::open(path.device(None)).unwrap();
    assert_eq!(names(&fs), ["one", "three"]);
}

#[test]
fn torn_newest_header_falls_back_to_the_previous_one() {
    let path = TempPath::new("torn");
    let (generation, slots) = two_generations(&path);
    poke(
        &path.device(None),
        slots[(generation % 2) as usize] + 30,
        &[0; 10],
    );
    let fs = TestFs::open(path.device(None)).unwrap();
    assert_eq!(names(&fs), ["one"]);
}

#[test]
fn poisoned_newest_checkpoint_falls_back_and_the_next_write_clears_the_poison() {
    let (dev, fs) = mem_fs(SIZE);
    fs.create("one").unwrap();
    fs.sync().unwrap();
    fs.create("two").unwrap();
    fs.sync().unwrap();
    let newest = fs.layout().slot_offsets[(fs.generation() % 2) as usize];
    drop(fs);
    dev.driver().poison(newest, 512).unwrap();
    let fs = TestFs::open(dev.clone()).unwrap();
    assert_eq!(names(&fs), ["one"]);
    fs.sync().unwrap();
    assert!(!dev.driver().is_poisoned(newest, B));
    drop(fs);
    assert_eq!(TestFs::open(dev).unwrap().generation(), 3);
}

#[test]
fn both_slots_damaged_is_euclean() {
    let path = TempPath::new("both");
    let (_, slots) = two_generations(&path);
    let dev = path.device(None);
    for s in slots {
        poke(&dev, s + 64, &[0xff; 8]);
    }
    assert_eq!(TestFs::open(dev).unwrap_err().errno(), libc::EUCLEAN);
}

#[test]
fn a_new_mkfs_ignores_the_old_filesystems_checkpoints() {
    let (dev, fs) = mem_fs(SIZE);
    fs.create("old").unwrap();
    fs.sync().unwrap(); // generation 2, slot 0
    drop(fs);
    let fs = TestFs::mkfs(dev.clone()).unwrap();
    drop(fs);
    let fs = TestFs::open(dev).unwrap();
    assert!(fs.list().is_empty());
}

#[test]
fn metadata_too_big_for_a_slot_is_refused_at_create_and_what_was_admitted_syncs() {
    // A one-block checkpoint slot holds a few dozen 200-byte names. Names that would
    // not fit are refused when made (ENOSPC), so every sync of what was admitted
    // works and the reopened filesystem has every file.
    let path = TempPath::new("full");
    let mut made = 0;
    {
        let dev = path.device(Some(SIZE));
        let fs = TestFs::mkfs_with(dev, MkfsOptions::new().checkpoint_blocks(Some(1))).unwrap();
        for i in 0..100 {
            match fs.create(&format!("{i:0>200}")) {
                Ok(_) => made = i + 1,
                Err(e) => {
                    assert_eq!(e.errno(), libc::ENOSPC);
                    break;
                }
            }
            fs.sync().unwrap();
        }
        assert!(made > 5 && made < 100, "made {made}");
    }
    let fs = TestFs::open(path.device(None)).unwrap();
    assert_eq!(fs.list().len(), made);
}

/// Where a checkpoint can fail, and how to make the device fail it there.
#[derive(Debug, Clone, Copy)]
enum CommitStep {
    /// The data flush before the metadata is written.
    DataFlush,
    /// The metadata write into the checkpoint slot.
    MetadataWrite,
    /// The flush that commits the written slot (the slot is on the media, whole).
    CommitFlush,
}

fn fail_commit_at(dev: &Dev, step: CommitStep) {
    let eio = dax_device::DaxError::Io {
        what: "injected commit failure",
    };
    let d = dev.driver();
    match step {
        CommitStep::DataFlush => d.inject_error(dax_testdev::DevOp::Flush, 1, eio),
        CommitStep::MetadataWrite => d.inject_error(dax_testdev::DevOp::DirectAccess, 1, eio),
        CommitStep::CommitFlush => d.inject_error_after(dax_testdev::DevOp::Flush, 1, 1, eio),
    }
}

#[test]
fn after_a_failed_commit_no_file_comes_back_with_another_files_data() {
    // Issue 17, item 6: fsync a new file F while the device fails the commit (fsync
    // says EIO), then, as an application would, truncate F, create Y and write Y;
    // crash; reopen. If the failed checkpoint did reach the media, F comes back with
    // its blocks, so those blocks must not have been given to Y.
    for step in [
        CommitStep::DataFlush,
        CommitStep::MetadataWrite,
        CommitStep::CommitFlush,
    ] {
        let path = TempPath::new("failed-commit");
        let (f_data, g_data, y_data) = (
            pattern(21, 0, 4 * B as usize),
            pattern(22, 0, 4 * B as usize),
            pattern(23, 0, 4 * B as usize),
        );
        {
            let dev = path.device(Some(SIZE));
            let fs = TestFs::mkfs(dev.clone()).unwrap();
            let g = fs.create("g").unwrap();
            fs.write(g, 0, &g_data).unwrap();
            fs.fsync(g).unwrap();
            let f = fs.create("f").unwrap();
            fs.write(f, 0, &f_data).unwrap();
            fail_commit_at(&dev, step);
            let e = fs.fsync(f).unwrap_err();
            assert_eq!(e.errno(), libc::EIO, "{step:?}: {e}");
            dev.driver().clear_injections();
            fs.truncate(f, 0).unwrap();
            let y = fs.create("y").unwrap();
            fs.write(y, 0, &y_data).unwrap();
        } // crash
        let dev = path.device(None);
        let fs = TestFs::open(dev).unwrap();
        let g = fs.lookup("g").unwrap();
        let mut back = vec![0u8; g_data.len()];
        fs.read(g, 0, &mut back).unwrap();
        assert_eq!(back, g_data, "{step:?}: fsynced data intact");
        if let Ok(f) = fs.lookup("f") {
            let size = fs.stat(f).unwrap().size as usize;
            let mut back = vec![0u8; size];
            fs.read(f, 0, &mut back).unwrap();
            assert!(
                back.iter().all(|&b| b == 0) || back == f_data[..size],
                "{step:?}: f came back with data that is not its own"
            );
            assert_ne!(
                back,
                y_data[..size.min(y_data.len())],
                "{step:?}: f shows y's data"
            );
        }
    }
}
