//! What fsync reports after a failure, and to whom: TestFs's errseq semantics
//! (`FileHandle`'s docs), checked against the kernel's rules (`errseq_set`,
//! `errseq_sample`, `errseq_check_and_advance` through `filemap_sample_wb_err` and
//! `file_check_and_advance_wb_err`), and what the data is after each answer, by
//! crashing (dropping the filesystem without unmounting) and mounting again.

mod testfs_common;

use std::sync::Arc;

use dax_device::DaxError;
use dax_fault::Vma;
use dax_fault::index::Marks;
use dax_fault::sim::SimPageTable;
use dax_testdev::{DevOp, FailSchedule, TestFs};
use testfs_common::*;

const SIZE: u64 = 16 << 20;
const BASE: u64 = 0x7000_0000_0000;

fn eio() -> DaxError {
    DaxError::Io { what: "injected" }
}

fn errno(r: Result<(), DaxError>) -> i32 {
    r.expect_err("an error").errno()
}

/// Makes the next `count` device flushes fail, after letting `skip` through.
fn fail_flushes(dev: &Dev, skip: u32, count: u32) {
    dev.driver()
        .inject(DevOp::Flush, FailSchedule::After { skip, count }, eio());
}

fn read_all(fs: &TestFs, name: &str) -> Vec<u8> {
    let ino = fs.lookup(name).unwrap();
    let mut v = vec![0u8; fs.stat(ino).unwrap().size as usize];
    assert_eq!(fs.read(ino, 0, &mut v).unwrap(), v.len());
    v
}

#[test]
fn a_failed_commit_is_reported_once_to_every_file_open_at_the_time() {
    let (dev, fs) = mem_fs(SIZE);
    let f = fs.create("f").unwrap();
    let g = fs.create("g").unwrap();
    let (a, b, other) = (
        fs.open_file(f).unwrap(),
        fs.open_file(f).unwrap(),
        fs.open_file(g).unwrap(),
    );
    fs.write(f, 0, &pattern(1, 0, 8192)).unwrap();
    // The data flush before the checkpoint fails.
    fail_flushes(&dev, 0, 1);
    assert_eq!(errno(fs.fsync_file(&a)), libc::EIO);
    // a saw it: its next fsync commits and says so.
    fs.fsync_file(&a).unwrap();
    // A file opened after someone saw it is not told.
    let late = fs.open_file(f).unwrap();
    fs.fsync_file(&late).unwrap();
    // b was open when it happened: told once, although the commit now succeeds.
    assert_eq!(errno(fs.fsync_file(&b)), libc::EIO);
    fs.fsync_file(&b).unwrap();
    // The checkpoint is the whole filesystem's: another file's handle is told too.
    assert_eq!(errno(fs.fsync_file(&other)), libc::EIO);
    fs.fsync_file(&other).unwrap();
    // TestFs::fsync is an fsync through a fresh handle: nothing to report now.
    fs.fsync(f).unwrap();
    drop((a, b, late, other));
    drop(fs); // crash: the successful fsync made the data durable
    let fs = TestFs::open(dev).unwrap();
    assert_eq!(read_all(&fs, "f"), pattern(1, 0, 8192));
}

#[test]
fn an_error_nobody_saw_goes_to_the_next_opener_once() {
    // errseq_sample returns 0 for an unseen error: a failed sync(2) reports to its
    // caller but has no file to advance, so the next fsync's file is told.
    let (dev, fs) = mem_fs(SIZE);
    let f = fs.create("f").unwrap();
    fs.write(f, 0, b"x").unwrap();
    fail_flushes(&dev, 0, 1);
    assert_eq!(errno(fs.sync()), libc::EIO);
    assert_eq!(errno(fs.fsync(f)), libc::EIO, "not seen yet: reported");
    fs.fsync(f).unwrap();
    let fresh = fs.open_file(f).unwrap();
    fs.fsync_file(&fresh).unwrap();
}

/// Where the commit fails: the device flush before the checkpoint (data), the
/// metadata write into the slot, the flush that commits it.
const COMMIT_STEPS: [(&str, DevOp, u32); 3] = [
    ("data flush", DevOp::Flush, 0),
    ("metadata write", DevOp::DirectAccess, 0),
    ("commit flush", DevOp::Flush, 1),
];

#[test]
fn after_a_failed_fsync_a_crash_shows_old_or_new_bytes_and_after_a_later_fsync_the_new() {
    for (step, op, skip) in COMMIT_STEPS {
        for retry in [false, true] {
            let path = TempPath::new("fsync-err");
            let (old, new) = (pattern(2, 0, 3 * B as usize), pattern(3, 0, 5 * B as usize));
            {
                let dev = path.device(Some(SIZE));
                let fs = TestFs::mkfs(dev.clone()).unwrap();
                let f = fs.create("f").unwrap();
                fs.write(f, 0, &old).unwrap();
                fs.fsync(f).unwrap();
                let h = fs.open_file(f).unwrap();
                fs.write(f, 0, &new).unwrap();
                dev.driver()
                    .inject(op, FailSchedule::After { skip, count: 1 }, eio());
                assert_eq!(errno(fs.fsync_file(&h)), libc::EIO, "{step}");
                dev.driver().clear_injections();
                if retry {
                    // The same file's next fsync: the error was reported to it, the
                    // commit succeeds, and the state is durable.
                    fs.fsync_file(&h).unwrap();
                }
            } // crash
            let fs = TestFs::open(path.device(None)).unwrap();
            let back = read_all(&fs, "f");
            if retry {
                assert_eq!(back, new, "{step}: fsync succeeded after the failure");
            } else {
                // The last durable checkpoint or the new one says the size; each byte
                // is the old or the new one (the overwrite in place is on the media
                // whichever checkpoint wins, as an overwrite without fsync is).
                assert!(
                    back.len() == old.len() || back.len() == new.len(),
                    "{step}: size {} is neither the old nor the new one",
                    back.len()
                );
                for (i, &x) in back.iter().enumerate() {
                    let was = old.get(i).copied().unwrap_or(0);
                    assert!(
                        x == was || x == new[i],
                        "{step}: byte {i} is {x:#x}, neither old {was:#x} nor new {:#x}",
                        new[i]
                    );
                }
            }
        }
    }
}

#[test]
fn a_failed_writeback_keeps_the_data_dirty_reports_once_per_file_and_the_next_fsync_writes_it_back()
{
    let (dev, fs) = mem_fs(SIZE);
    let f = fs.create("f").unwrap();
    fs.truncate(f, 2 * B).unwrap();
    let (a, b) = (fs.open_file(f).unwrap(), fs.open_file(f).unwrap());
    let pt = Arc::new(SimPageTable::new());
    let vma = fs
        .mmap(
            f,
            Vma::new(BASE, 2 * B, 0)
                .unwrap()
                .shared(true)
                .writable(true),
            pt.clone(),
        )
        .unwrap();
    pt.write(&vma, BASE + 10, b"stored").unwrap();
    let index = vma.mapping().index();
    assert!(index.lookup(0).unwrap().marks.contains(Marks::DIRTY));
    // Writeback cannot reach the device.
    dev.driver()
        .inject(DevOp::DirectAccess, FailSchedule::EveryNth(1), eio());
    assert_eq!(errno(fs.fsync_file(&a)), libc::EIO);
    dev.driver().clear_injections();
    assert!(
        index.lookup(0).unwrap().marks.contains(Marks::DIRTY),
        "the entry stays dirty for the next writeback"
    );
    fs.fsync_file(&a).unwrap();
    assert!(!index.lookup(0).unwrap().marks.contains(Marks::DIRTY));
    assert_eq!(errno(fs.fsync_file(&b)), libc::EIO, "b was open: told once");
    fs.fsync_file(&b).unwrap();
    let mut got = [0u8; 6];
    fs.read(f, 10, &mut got).unwrap();
    assert_eq!(&got, b"stored");
}

#[test]
fn fsync_after_shutdown_is_eio() {
    let (dev, fs) = mem_fs(SIZE);
    let f = fs.create("f").unwrap();
    let h = fs.open_file(f).unwrap();
    dev.kill();
    assert_eq!(errno(fs.fsync_file(&h)), libc::EIO);
    assert_eq!(fs.fsync(f).unwrap_err().errno(), libc::EIO);
}
