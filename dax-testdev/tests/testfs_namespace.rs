//! TestFs's directory tree and attributes: every errno of mkdir, create, lookup,
//! link, unlink, rmdir and rename (with RENAME_NOREPLACE and RENAME_EXCHANGE) as
//! Linux gives it; link counts and timestamps after each kind of change; durability
//! across unmount and crash; a model-based test running seeded random sequences
//! against an in-memory tree; and damaged directory payloads on the device.

mod testfs_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dax_device::DaxError;
use dax_fault::Vma;
use dax_fault::sim::SimPageTable;
use dax_testdev::{
    FallocMode, FileKind, Ino, MAX_LINKS, MkfsOptions, Perm, ROOT_INO, RenameFlags, SetAttr, TestFs,
};
use dax_testkit::fuzz::testfs::crc32c;
use testfs_common::*;

const SIZE: u64 = 16 << 20;
const P: Perm = Perm::new(0o755, 1000, 100);
const NONE: RenameFlags = RenameFlags::empty();

fn errno<T: std::fmt::Debug>(r: Result<T, DaxError>) -> i32 {
    r.unwrap_err().errno()
}

fn t(sec: u64, nsec: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(sec, nsec)
}

fn names(fs: &TestFs, dir: Ino) -> Vec<String> {
    fs.readdir(dir)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

// ---------------------------------------------------------------------------------
// Errnos

#[test]
fn root_is_inode_1_and_files_start_at_2() {
    let (_dev, fs) = mem_fs(SIZE);
    let root = fs.getattr(ROOT_INO).unwrap();
    assert_eq!((root.kind, root.nlink, root.size), (FileKind::Dir, 2, 0));
    assert_eq!(fs.parent(ROOT_INO).unwrap(), ROOT_INO);
    assert_eq!(fs.lookup_in(ROOT_INO, "..").unwrap(), ROOT_INO);
    assert_eq!(fs.lookup_in(ROOT_INO, ".").unwrap(), ROOT_INO);
    let f = fs.create("f").unwrap();
    assert_eq!(f, Ino(2));
    assert_eq!(fs.statfs().files, 1);
    assert_eq!(fs.statfs().dirs, 1);
    // The root has no name: nothing can remove or move it.
    assert!(fs.list().iter().all(|(_, i)| *i != ROOT_INO));
}

#[test]
fn mkdir_and_create_errnos() {
    let (_dev, fs) = mem_fs(SIZE);
    let d = fs.mkdir(ROOT_INO, "d", P).unwrap();
    let f = fs.create_in(d, "f", P).unwrap();
    for r in [
        fs.mkdir(ROOT_INO, "d", P),
        fs.mkdir(d, "f", P),
        fs.create_in(d, "f", P),
        fs.create_in(ROOT_INO, "d", P),
    ] {
        assert_eq!(errno(r), libc::EEXIST);
    }
    assert_eq!(errno(fs.mkdir(f, "x", P)), libc::ENOTDIR);
    assert_eq!(errno(fs.create_in(f, "x", P)), libc::ENOTDIR);
    assert_eq!(errno(fs.mkdir(Ino(999), "x", P)), libc::ENOENT);
    assert_eq!(errno(fs.create_in(Ino(999), "x", P)), libc::ENOENT);
    assert_eq!(errno(fs.mkdir(d, "", P)), libc::ENOENT);
    assert_eq!(errno(fs.mkdir(d, &"n".repeat(256), P)), libc::ENAMETOOLONG);
    fs.mkdir(d, &"n".repeat(255), P).unwrap();
    for bad in ["a/b", "nul\0"] {
        assert_eq!(errno(fs.mkdir(d, bad, P)), libc::EINVAL, "{bad:?}");
        assert_eq!(errno(fs.create_in(d, bad, P)), libc::EINVAL, "{bad:?}");
    }
    for dot in [".", ".."] {
        assert_eq!(errno(fs.mkdir(d, dot, P)), libc::EEXIST, "{dot:?}");
        assert_eq!(errno(fs.create_in(d, dot, P)), libc::EEXIST, "{dot:?}");
    }
    // Modes keep only the permission bits.
    let g = fs
        .create_in(d, "g", Perm::new(0o104_755 | 0o7000, 1, 2))
        .unwrap();
    assert_eq!(fs.getattr(g).unwrap().mode, 0o7755);
}

#[test]
fn lookup_readdir_and_parent_errnos() {
    let (_dev, fs) = mem_fs(SIZE);
    let d = fs.mkdir(ROOT_INO, "d", P).unwrap();
    let e = fs.mkdir(d, "e", P).unwrap();
    let f = fs.create_in(e, "f", P).unwrap();
    assert_eq!(fs.lookup_in(e, "f").unwrap(), f);
    assert_eq!(fs.lookup_in(e, "..").unwrap(), d);
    assert_eq!(fs.lookup_in(e, ".").unwrap(), e);
    assert_eq!(fs.parent(e).unwrap(), d);
    assert_eq!(errno(fs.lookup_in(e, "g")), libc::ENOENT);
    assert_eq!(errno(fs.lookup_in(f, "g")), libc::ENOTDIR);
    assert_eq!(errno(fs.lookup_in(f, "..")), libc::ENOTDIR);
    assert_eq!(errno(fs.lookup_in(Ino(999), "g")), libc::ENOENT);
    assert_eq!(errno(fs.lookup_in(e, "a/b")), libc::EINVAL);
    assert_eq!(errno(fs.readdir(f)), libc::ENOTDIR);
    assert_eq!(errno(fs.readdir(Ino(999))), libc::ENOENT);
    assert_eq!(errno(fs.parent(f)), libc::ENOTDIR);
    assert_eq!(errno(fs.parent(Ino(999))), libc::ENOENT);
    assert_eq!(errno(fs.getattr(Ino(999))), libc::ENOENT);
    // The flat lookup keeps refusing "." and "..".
    assert_eq!(errno(fs.lookup("..")), libc::EINVAL);
    let kinds: Vec<_> = fs
        .readdir(d)
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.ino, e.kind))
        .collect();
    assert_eq!(kinds, [("e".to_string(), e, FileKind::Dir)]);
}

#[test]
fn unlink_rmdir_and_link_errnos() {
    let (_dev, fs) = mem_fs(SIZE);
    let d = fs.mkdir(ROOT_INO, "d", P).unwrap();
    let e = fs.mkdir(d, "e", P).unwrap();
    let f = fs.create_in(d, "f", P).unwrap();
    // unlink
    assert_eq!(errno(fs.unlink_in(d, "e")), libc::EISDIR);
    assert_eq!(errno(fs.unlink_in(d, "nope")), libc::ENOENT);
    assert_eq!(errno(fs.unlink_in(f, "x")), libc::ENOTDIR);
    assert_eq!(errno(fs.unlink_in(Ino(999), "x")), libc::ENOENT);
    assert_eq!(errno(fs.unlink("d")), libc::EISDIR);
    // rmdir
    assert_eq!(errno(fs.rmdir(ROOT_INO, "d")), libc::ENOTEMPTY);
    assert_eq!(errno(fs.rmdir(d, "f")), libc::ENOTDIR);
    assert_eq!(errno(fs.rmdir(d, "nope")), libc::ENOENT);
    assert_eq!(errno(fs.rmdir(f, "x")), libc::ENOTDIR);
    assert_eq!(errno(fs.rmdir(d, ".")), libc::EINVAL);
    assert_eq!(errno(fs.rmdir(d, "..")), libc::ENOTEMPTY);
    // link
    assert_eq!(errno(fs.link(d, ROOT_INO, "d2")), libc::EPERM);
    assert_eq!(errno(fs.link(f, ROOT_INO, "d")), libc::EEXIST);
    assert_eq!(errno(fs.link(f, f, "x")), libc::ENOTDIR);
    assert_eq!(errno(fs.link(f, Ino(999), "x")), libc::ENOENT);
    assert_eq!(errno(fs.link(Ino(999), ROOT_INO, "x")), libc::ENOENT);
    assert_eq!(errno(fs.link(f, ROOT_INO, "")), libc::ENOENT);
    assert_eq!(errno(fs.link(f, ROOT_INO, "a/b")), libc::EINVAL);
    // A directory with a file in it cannot go; once empty it can.
    fs.link(f, e, "f2").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
    assert_eq!(errno(fs.rmdir(d, "e")), libc::ENOTEMPTY);
    fs.unlink_in(e, "f2").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    fs.rmdir(d, "e").unwrap();
    assert_eq!(errno(fs.getattr(e)), libc::ENOENT);
    assert_eq!(errno(fs.readdir(e)), libc::ENOENT);
    assert_eq!(fs.getattr(d).unwrap().nlink, 2);
}

#[test]
fn the_last_link_frees_the_file_and_its_blocks() {
    let (_dev, fs) = mem_fs(SIZE);
    let free0 = fs.statfs().free;
    let d = fs.mkdir(ROOT_INO, "d", P).unwrap();
    let f = fs.create_in(d, "f", P).unwrap();
    fs.write(f, 0, &pattern(3, 0, 4 * B as usize)).unwrap();
    fs.link(f, ROOT_INO, "g").unwrap();
    let handle = fs.inode(f).unwrap();
    fs.unlink_in(d, "f").unwrap();
    // Still one name: data and handle live.
    let mut buf = vec![0u8; 4 * B as usize];
    assert_eq!(fs.pread(&handle, 0, &mut buf).unwrap(), buf.len());
    assert_eq!(buf, pattern(3, 0, 4 * B as usize));
    assert_eq!(fs.statfs().free, free0 - 4);
    fs.unlink("g").unwrap();
    assert_eq!(errno(fs.getattr(f)), libc::ENOENT);
    assert_eq!(errno(fs.pread(&handle, 0, &mut buf)), libc::ENOENT);
    assert_eq!(fs.statfs().free, free0, "no checkpoint references them");
    assert_eq!(fs.statfs().files, 0);
}

#[test]
fn an_open_file_outlives_its_last_name_until_its_last_handle_goes() {
    let (_dev, fs) = mem_fs(SIZE);
    let free0 = fs.statfs().free;
    let f = fs.create("f").unwrap();
    fs.write(f, 0, &pattern(5, 0, 4 * B as usize)).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let vma = fs
        .mmap(
            f,
            Vma::new(0x4000_0000, 4 * B, 0)
                .unwrap()
                .shared(true)
                .writable(true),
            pt.clone(),
        )
        .unwrap();
    let (h1, h2) = (fs.open_file(f).unwrap(), fs.open_file(f).unwrap());
    fs.unlink("f").unwrap();
    // Nameless, but there: by inode number, through a handle and through a mapping.
    assert_eq!(errno(fs.lookup("f")), libc::ENOENT);
    assert_eq!(fs.getattr(f).unwrap().nlink, 0);
    let mut buf = vec![0u8; 4 * B as usize];
    assert_eq!(fs.read(f, 0, &mut buf).unwrap(), buf.len());
    assert_eq!(buf, pattern(5, 0, 4 * B as usize));
    fs.write(f, B, b"after unlink").unwrap();
    pt.write(&vma, 0x4000_0000 + 2 * B, b"stored").unwrap();
    fs.fsync_file(&h1).unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.read(f, B, &mut buf[..12]).unwrap(), 12);
    assert_eq!(&buf[..12], b"after unlink");
    assert_eq!(fs.read(f, 2 * B, &mut buf[..6]).unwrap(), 6);
    assert_eq!(&buf[..6], b"stored");
    assert_eq!(fs.statfs().free, free0 - 4, "its blocks are still its own");
    // `vfs_link` refuses a nameless file; opening it again by number works.
    assert_eq!(errno(fs.link(f, ROOT_INO, "back")), libc::ENOENT);
    let h3 = fs.open_file(f).unwrap();
    drop(h1);
    drop(h2);
    assert_eq!(fs.getattr(f).unwrap().nlink, 0, "h3 still holds it");
    drop(h3);
    // The last handle freed it: gone by number, unmapped, its blocks free.
    assert_eq!(errno(fs.getattr(f)), libc::ENOENT);
    assert_eq!(errno(fs.read(f, 0, &mut buf)), libc::ENOENT);
    assert!(pt.read(&vma, 0x4000_0000, &mut buf[..1]).is_err());
    assert_eq!(fs.statfs().free, free0);
    assert_eq!(fs.statfs().files, 0);
}

#[test]
fn a_file_renamed_over_while_open_is_an_orphan_until_closed() {
    let (_dev, fs) = mem_fs(SIZE);
    let old = fs.create("old").unwrap();
    fs.write(old, 0, b"old data").unwrap();
    let new = fs.create("new").unwrap();
    let h = fs.open_file(old).unwrap();
    fs.rename(ROOT_INO, "new", ROOT_INO, "old", NONE).unwrap();
    assert_eq!(fs.lookup("old").unwrap(), new);
    let mut buf = [0u8; 8];
    assert_eq!(fs.read(old, 0, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"old data");
    drop(h);
    assert_eq!(errno(fs.getattr(old)), libc::ENOENT);
}

#[test]
fn an_orphan_is_gone_after_a_crash_or_an_unmount_and_its_blocks_are_free() {
    for crash in [true, false] {
        let (dev, fs) = mem_fs(SIZE);
        let free0 = fs.statfs().free;
        let keep = fs.create("keep").unwrap();
        fs.write(keep, 0, b"kept").unwrap();
        let f = fs.create("f").unwrap();
        fs.write(f, 0, &pattern(6, 0, 8 * B as usize)).unwrap();
        let h = fs.open_file(f).unwrap();
        fs.unlink("f").unwrap();
        fs.write(f, 8 * B, &pattern(7, 0, 2 * B as usize)).unwrap();
        fs.sync().unwrap();
        if crash {
            drop(fs);
        } else {
            fs.unmount().unwrap();
        }
        // The handle outlives its filesystem: dropping it now does nothing.
        drop(h);
        let fs = TestFs::open(dev.clone()).unwrap();
        assert_eq!(errno(fs.getattr(f)), libc::ENOENT, "crash {crash}");
        assert_eq!(fs.statfs().files, 1, "crash {crash}");
        assert_eq!(
            fs.statfs().free,
            free0 - 1,
            "crash {crash}: only keep's block"
        );
        let mut buf = [0u8; 4];
        assert_eq!(fs.read(keep, 0, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"kept");
        // New files get the orphan's blocks.
        let g = fs.create("g").unwrap();
        assert_eq!(
            fs.write(g, 0, &vec![1; (free0 - 1) as usize * B as usize])
                .unwrap(),
            (free0 - 1) as usize * B as usize,
            "crash {crash}"
        );
    }
}

#[test]
fn rename_errnos_in_vfs_order() {
    let (_dev, fs) = mem_fs(SIZE);
    let r = ROOT_INO;
    let a = fs.mkdir(r, "a", P).unwrap();
    let b = fs.mkdir(a, "b", P).unwrap();
    let c = fs.mkdir(b, "c", P).unwrap();
    let f = fs.create_in(r, "f", P).unwrap();
    let g = fs.create_in(a, "g", P).unwrap();
    let e = fs.mkdir(r, "empty", P).unwrap();
    let ne = RenameFlags::NOREPLACE;
    let ex = RenameFlags::EXCHANGE;
    let cases: Vec<(&str, Result<(), DaxError>, i32)> = vec![
        (
            "both flags",
            fs.rename(r, "f", r, "x", ne | ex),
            libc::EINVAL,
        ),
        (
            "whiteout",
            fs.rename(r, "f", r, "x", RenameFlags::from_bits_retain(4)),
            libc::EINVAL,
        ),
        ("bad name", fs.rename(r, "f", r, "x/y", NONE), libc::EINVAL),
        ("dot", fs.rename(r, ".", r, "x", NONE), libc::EBUSY),
        (
            "long",
            fs.rename(r, "f", r, &"x".repeat(256), NONE),
            libc::ENAMETOOLONG,
        ),
        (
            "no parent",
            fs.rename(Ino(999), "f", r, "x", NONE),
            libc::ENOENT,
        ),
        (
            "file parent",
            fs.rename(f, "f", r, "x", NONE),
            libc::ENOTDIR,
        ),
        (
            "file new parent",
            fs.rename(r, "f", f, "x", NONE),
            libc::ENOTDIR,
        ),
        (
            "no source",
            fs.rename(r, "nope", r, "x", NONE),
            libc::ENOENT,
        ),
        ("noreplace", fs.rename(r, "f", a, "g", ne), libc::EEXIST),
        (
            "noreplace self",
            fs.rename(r, "f", r, "f", ne),
            libc::EEXIST,
        ),
        (
            "exchange without target",
            fs.rename(r, "f", r, "x", ex),
            libc::ENOENT,
        ),
        ("into itself", fs.rename(r, "a", a, "x", NONE), libc::EINVAL),
        (
            "into own subtree",
            fs.rename(r, "a", c, "x", NONE),
            libc::EINVAL,
        ),
        (
            "exchange into subtree",
            fs.rename(r, "a", b, "c", ex),
            libc::EINVAL,
        ),
        (
            "onto an ancestor",
            fs.rename(b, "c", r, "a", NONE),
            libc::ENOTEMPTY,
        ),
        (
            "exchange with an ancestor",
            fs.rename(b, "c", r, "a", ex),
            libc::EINVAL,
        ),
        (
            "dir onto file",
            fs.rename(r, "empty", a, "g", NONE),
            libc::ENOTDIR,
        ),
        (
            "file onto dir",
            fs.rename(a, "g", r, "empty", NONE),
            libc::EISDIR,
        ),
        (
            "onto non-empty dir",
            fs.rename(r, "empty", r, "a", NONE),
            libc::ENOTEMPTY,
        ),
    ];
    for (what, r, want) in cases {
        assert_eq!(errno(r), want, "{what}");
    }
    // Nothing moved.
    assert_eq!(names(&fs, r), ["a", "empty", "f"]);
    assert_eq!(names(&fs, a), ["b", "g"]);
    assert_eq!(names(&fs, b), ["c"]);
    let _ = (g, e);
}

#[test]
fn rename_moves_replaces_and_exchanges() {
    let (_dev, fs) = mem_fs(SIZE);
    let r = ROOT_INO;
    let a = fs.mkdir(r, "a", P).unwrap();
    let b = fs.mkdir(r, "b", P).unwrap();
    let sub = fs.mkdir(a, "sub", P).unwrap();
    let f = fs.create_in(a, "f", P).unwrap();
    let nl = |i| fs.getattr(i).unwrap().nlink;
    assert_eq!((nl(r), nl(a), nl(b)), (4, 3, 2));

    // A directory to another parent: its ".." link moves.
    fs.rename(a, "sub", b, "sub2", NONE).unwrap();
    assert_eq!((nl(a), nl(b), fs.parent(sub).unwrap()), (2, 3, b));
    // Within one directory.
    fs.rename(b, "sub2", b, "sub3", NONE).unwrap();
    assert_eq!((names(&fs, b), nl(b)), (vec!["sub3".to_string()], 3));

    // A directory over an empty directory: the target goes.
    let empty = fs.mkdir(a, "empty", P).unwrap();
    assert_eq!(nl(a), 3);
    fs.rename(b, "sub3", a, "empty", NONE).unwrap();
    assert_eq!(errno(fs.getattr(empty)), libc::ENOENT);
    assert_eq!((nl(a), nl(b), fs.parent(sub).unwrap()), (3, 2, a));
    assert_eq!(fs.lookup_in(a, "empty").unwrap(), sub);

    // A file over a file: the replaced file loses that link and, its last, is freed.
    fs.write(f, 0, b"data of f").unwrap();
    let victim = fs.create_in(b, "v", P).unwrap();
    fs.write(victim, 0, &[9u8; 3 * B as usize]).unwrap();
    let free = fs.statfs().free;
    let handle = fs.inode(victim).unwrap();
    fs.rename(a, "f", b, "v", NONE).unwrap();
    assert_eq!(errno(fs.getattr(victim)), libc::ENOENT);
    assert_eq!(errno(fs.pread(&handle, 0, &mut [0u8; 4])), libc::ENOENT);
    assert_eq!(fs.statfs().free, free + 3);
    assert_eq!(fs.lookup_in(b, "v").unwrap(), f);
    // A replaced file with another name keeps it.
    let w = fs.create_in(b, "w", P).unwrap();
    fs.link(w, r, "w-too").unwrap();
    fs.rename(b, "v", b, "w", NONE).unwrap();
    assert_eq!(fs.getattr(w).unwrap().nlink, 1);
    assert_eq!(fs.lookup("w-too").unwrap(), w);

    // Two names of one inode: nothing happens, both stay.
    fs.link(f, r, "f-too").unwrap();
    fs.rename(r, "f-too", b, "w", NONE).unwrap();
    fs.rename(b, "w", b, "w", NONE).unwrap();
    assert_eq!(fs.lookup_in(b, "w").unwrap(), f);
    assert_eq!(fs.lookup("f-too").unwrap(), f);
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
    fs.unlink("f-too").unwrap();

    // Exchange a file and a directory across directories.
    let d = fs.mkdir(r, "d", P).unwrap();
    let (nr, nb) = (nl(r), nl(b));
    fs.rename(b, "w", r, "d", RenameFlags::EXCHANGE).unwrap();
    assert_eq!(fs.lookup_in(b, "w").unwrap(), d);
    assert_eq!(fs.lookup("d").unwrap(), f);
    assert_eq!(fs.parent(d).unwrap(), b);
    assert_eq!((nl(r), nl(b)), (nr - 1, nb + 1));
    // NOREPLACE to a free name works like a plain rename.
    fs.rename(b, "w", r, "dd", RenameFlags::NOREPLACE).unwrap();
    assert_eq!(fs.parent(d).unwrap(), r);
    assert_eq!(nl(b), nb);
}

#[test]
fn emlink_at_max_links() {
    // 65,000 links and 65,000 directories need about 7 MiB of checkpoint: 8 MiB slots.
    let dev = dax_testdev::MemDevice::builder()
        .size(32 << 20)
        .build()
        .unwrap();
    let fs = TestFs::mkfs_with(dev, MkfsOptions::new().checkpoint_blocks(Some(2048))).unwrap();
    let r = ROOT_INO;
    let f = fs.create("f").unwrap();
    let d = fs.mkdir(r, "d", P).unwrap();
    for i in 1..MAX_LINKS {
        fs.link(f, d, &format!("{i}")).unwrap();
    }
    assert_eq!(fs.getattr(f).unwrap().nlink, MAX_LINKS);
    assert_eq!(errno(fs.link(f, r, "one-more")), libc::EMLINK);
    // A directory full of subdirectories: no mkdir, no directory moved in.
    let full = fs.mkdir(r, "full", P).unwrap();
    for i in 2..MAX_LINKS {
        fs.mkdir(full, &format!("{i}"), P).unwrap();
    }
    assert_eq!(fs.getattr(full).unwrap().nlink, MAX_LINKS);
    assert_eq!(errno(fs.mkdir(full, "x", P)), libc::EMLINK);
    fs.mkdir(r, "x", P).unwrap();
    assert_eq!(errno(fs.rename(r, "x", full, "x", NONE)), libc::EMLINK);
    // A file still can go in, and a directory can replace one already there.
    fs.create_in(full, "file", P).unwrap();
    fs.rename(r, "x", full, "2", NONE).unwrap();
}

#[test]
fn file_operations_on_a_directory_are_eisdir() {
    let (_dev, fs) = mem_fs(SIZE);
    let d = fs.mkdir(ROOT_INO, "d", P).unwrap();
    let f = fs.create("f").unwrap();
    assert_eq!(errno(fs.inode(d)), libc::EISDIR);
    assert_eq!(errno(fs.write(d, 0, b"x")), libc::EISDIR);
    assert_eq!(errno(fs.read(d, 0, &mut [0u8; 1])), libc::EISDIR);
    assert_eq!(errno(fs.truncate(d, 0)), libc::EISDIR);
    assert_eq!(
        errno(fs.fallocate(d, FallocMode::empty(), 0, B)),
        libc::EISDIR
    );
    assert_eq!(errno(fs.reflink(f, 0, d, 0, 0)), libc::EISDIR);
    assert_eq!(errno(fs.reflink(d, 0, f, 0, 0)), libc::EISDIR);
    assert_eq!(errno(fs.seek_data(d, 0)), libc::EISDIR);
    assert_eq!(
        errno(fs.setattr(d, &SetAttr::new().size(0).mode(0o700))),
        libc::EISDIR
    );
    assert_eq!(fs.getattr(d).unwrap().mode, 0o755, "nothing changed");
    let pt = Arc::new(SimPageTable::new());
    let vma = Vma::new(0x7000_0000_0000, B, 0).unwrap();
    assert_eq!(errno(fs.mmap(d, vma, pt)), libc::EISDIR);
    // fsync and stat of a directory are fine.
    fs.fsync(d).unwrap();
    assert_eq!(fs.stat(d).unwrap().size, 0);
}

// ---------------------------------------------------------------------------------
// Attributes

#[test]
fn namespace_changes_stamp_parents_and_children() {
    let (_dev, fs) = mem_fs(SIZE);
    let r = ROOT_INO;
    let at = |fs: &TestFs, s| fs.set_clock(Some(t(s, 7))).unwrap();
    at(&fs, 100);
    let d = fs.mkdir(r, "d", P).unwrap();
    let da = fs.getattr(d).unwrap();
    assert_eq!(
        (da.atime, da.mtime, da.ctime),
        (t(100, 7), t(100, 7), t(100, 7))
    );
    assert_eq!(fs.getattr(r).unwrap().mtime, t(100, 7));
    at(&fs, 200);
    let f = fs.create_in(d, "f", P).unwrap();
    let (fa, da) = (fs.getattr(f).unwrap(), fs.getattr(d).unwrap());
    assert_eq!(
        (fa.mtime, da.mtime, da.ctime),
        (t(200, 7), t(200, 7), t(200, 7))
    );
    assert_eq!(
        fs.getattr(r).unwrap().mtime,
        t(100, 7),
        "not the grandparent"
    );
    at(&fs, 300);
    fs.link(f, r, "f2").unwrap();
    let fa = fs.getattr(f).unwrap();
    assert_eq!((fa.mtime, fa.ctime, fa.nlink), (t(200, 7), t(300, 7), 2));
    assert_eq!(fs.getattr(r).unwrap().mtime, t(300, 7));
    assert_eq!(fs.getattr(d).unwrap().mtime, t(200, 7));
    at(&fs, 400);
    fs.rename(d, "f", r, "f3", NONE).unwrap();
    let fa = fs.getattr(f).unwrap();
    assert_eq!((fa.mtime, fa.ctime), (t(200, 7), t(400, 7)));
    assert_eq!(fs.getattr(d).unwrap().mtime, t(400, 7));
    assert_eq!(fs.getattr(r).unwrap().ctime, t(400, 7));
    at(&fs, 500);
    fs.unlink("f3").unwrap();
    let fa = fs.getattr(f).unwrap();
    assert_eq!((fa.ctime, fa.nlink), (t(500, 7), 1));
    at(&fs, 600);
    fs.rmdir(r, "d").unwrap();
    assert_eq!(fs.getattr(r).unwrap().mtime, t(600, 7));
    // A failed change stamps nothing.
    at(&fs, 700);
    fs.rename(r, "nope", r, "x", NONE).unwrap_err();
    assert_eq!(fs.getattr(r).unwrap().mtime, t(600, 7));
}

#[test]
fn data_changes_stamp_mtime_and_ctime_and_reads_do_not_stamp_atime() {
    let (_dev, fs) = mem_fs(SIZE);
    let at = |s| fs.set_clock(Some(t(s, 0))).unwrap();
    at(10);
    let f = fs.create("f").unwrap();
    let g = fs.create("g").unwrap();
    let times = |i| {
        let a = fs.getattr(i).unwrap();
        (a.atime, a.mtime, a.ctime)
    };
    at(20);
    fs.write(f, 0, &[1u8; 2 * B as usize]).unwrap();
    assert_eq!(times(f), (t(10, 0), t(20, 0), t(20, 0)));
    at(30);
    fs.read(f, 0, &mut [0u8; 100]).unwrap();
    assert_eq!(times(f), (t(10, 0), t(20, 0), t(20, 0)), "noatime");
    fs.truncate(f, B).unwrap();
    assert_eq!(times(f).1, t(30, 0));
    at(40);
    fs.truncate(f, B).unwrap(); // same size: truncate(2) still stamps
    assert_eq!(times(f).1, t(40, 0));
    at(50);
    fs.fallocate(f, FallocMode::KEEP_SIZE, 0, 4 * B).unwrap();
    assert_eq!(times(f).1, t(50, 0));
    at(60);
    fs.reflink(f, 0, g, 0, B).unwrap();
    assert_eq!(times(g).1, t(60, 0), "the reflink destination");
    assert_eq!(times(f).1, t(50, 0), "not the source");
    at(70);
    fs.dedupe(f, 0, g, 0, B).unwrap();
    assert_eq!(times(g).1, t(60, 0), "dedupe changes no data");
    at(80);
    fs.fsync(f).unwrap();
    assert_eq!(times(f).1, t(50, 0));
    // A store through a shared mapping stamps at the write fault.
    let pt = Arc::new(SimPageTable::new());
    let base = 0x7000_0000_0000;
    let vma = fs
        .mmap(f, Vma::new(base, B, 0).unwrap().writable(true), pt.clone())
        .unwrap();
    pt.read(&vma, base, &mut [0u8; 1]).unwrap();
    assert_eq!(times(f).1, t(50, 0), "a read fault stamps nothing");
    pt.write(&vma, base, b"x").unwrap();
    assert_eq!(times(f), (t(10, 0), t(80, 0), t(80, 0)));
}

#[test]
fn setattr_changes_what_it_names_and_stamps_ctime() {
    let (_dev, fs) = mem_fs(SIZE);
    fs.set_clock(Some(t(1, 0))).unwrap();
    let f = fs.create_in(ROOT_INO, "f", P).unwrap();
    fs.write(f, 0, &[5u8; 10000]).unwrap();
    fs.set_clock(Some(t(2, 0))).unwrap();
    let a = fs.setattr(f, &SetAttr::new()).unwrap();
    assert_eq!(
        (a.ctime, a.mode),
        (t(1, 0), 0o755),
        "an empty setattr changes nothing"
    );
    let a = fs
        .setattr(f, &SetAttr::new().mode(0o100_600).uid(7).gid(8))
        .unwrap();
    assert_eq!((a.mode, a.uid, a.gid), (0o600, 7, 8));
    assert_eq!((a.mtime, a.ctime), (t(1, 0), t(2, 0)));
    assert_eq!(a.st_mode(), libc::S_IFREG | 0o600);
    fs.set_clock(Some(t(3, 0))).unwrap();
    let before_epoch = UNIX_EPOCH - Duration::new(5, 1);
    let a = fs
        .setattr(
            f,
            &SetAttr::new().atime(before_epoch).mtime(t(9, 999_999_999)),
        )
        .unwrap();
    assert_eq!(
        (a.atime, a.mtime, a.ctime),
        (before_epoch, t(9, 999_999_999), t(3, 0))
    );
    fs.set_clock(Some(t(4, 0))).unwrap();
    let a = fs.setattr(f, &SetAttr::new().size(5000)).unwrap();
    assert_eq!(
        (a.size, a.blocks, a.mtime, a.ctime),
        (5000, 2, t(4, 0), t(4, 0))
    );
    // Size and an explicit mtime: the explicit one wins.
    let a = fs
        .setattr(f, &SetAttr::new().size(0).mtime(t(1, 1)))
        .unwrap();
    assert_eq!(
        (a.size, a.blocks, a.mtime, a.ctime),
        (0, 0, t(1, 1), t(4, 0))
    );
    assert_eq!(
        errno(fs.setattr(Ino(999), &SetAttr::new().mode(0))),
        libc::ENOENT
    );
    // Times far from the epoch are kept (i64 seconds); a pinned clock is narrower.
    let far = t(1 << 40, 1);
    assert_eq!(
        fs.setattr(f, &SetAttr::new().atime(far)).unwrap().atime,
        far
    );
    assert_eq!(errno(fs.set_clock(Some(far))), libc::EOVERFLOW);
    // Directories take mode, owner and times.
    let a = fs
        .setattr(ROOT_INO, &SetAttr::new().mode(0o1777).uid(0))
        .unwrap();
    assert_eq!(
        (a.kind, a.mode, a.uid, a.st_mode()),
        (FileKind::Dir, 0o1777, 0, libc::S_IFDIR | 0o1777)
    );
}

#[test]
fn the_tree_and_attributes_survive_unmount_and_crash() {
    let path = TempPath::new("tree");
    let root = Perm::new(0o700, 4242, 4343);
    let (d, f);
    {
        let dev = path.device(Some(SIZE));
        let fs = TestFs::mkfs_with(dev, MkfsOptions::new().root(root)).unwrap();
        fs.set_clock(Some(t(1_700_000_000, 123_456_789))).unwrap();
        d = fs.mkdir(ROOT_INO, "d", P).unwrap();
        f = fs.create_in(d, "f", Perm::new(0o640, 1, 2)).unwrap();
        fs.write(f, 0, b"persistent").unwrap();
        fs.link(f, ROOT_INO, "f-link").unwrap();
        fs.setattr(f, &SetAttr::new().atime(UNIX_EPOCH - Duration::new(1, 5)))
            .unwrap();
        fs.unmount().unwrap();
    }
    let dev = path.device(None);
    let fs = TestFs::open(dev.clone()).unwrap();
    let ra = fs.getattr(ROOT_INO).unwrap();
    assert_eq!((ra.mode, ra.uid, ra.gid, ra.nlink), (0o700, 4242, 4343, 3));
    let fa = fs.getattr(f).unwrap();
    assert_eq!(
        (fa.mode, fa.uid, fa.gid, fa.nlink, fa.size),
        (0o640, 1, 2, 2, 10)
    );
    assert_eq!(fa.atime, UNIX_EPOCH - Duration::new(1, 5));
    assert_eq!(fa.mtime, t(1_700_000_000, 123_456_789));
    assert_eq!(fs.lookup_in(d, "f").unwrap(), f);
    assert_eq!(fs.lookup("f-link").unwrap(), f);
    assert_eq!(fs.parent(d).unwrap(), ROOT_INO);
    // After an fsync, a crash loses only what came later.
    fs.set_clock(Some(t(5, 0))).unwrap();
    fs.mkdir(d, "kept", P).unwrap();
    fs.fsync(d).unwrap();
    fs.mkdir(d, "lost", P).unwrap();
    fs.rename(d, "kept", ROOT_INO, "moved-and-lost", NONE)
        .unwrap();
    fs.setattr(f, &SetAttr::new().mode(0)).unwrap();
    drop(fs);
    let fs = TestFs::open(dev).unwrap();
    assert_eq!(names(&fs, d), ["f", "kept"]);
    assert_eq!(fs.getattr(d).unwrap().nlink, 3);
    assert_eq!(fs.getattr(f).unwrap().mode, 0o640);
    // Inode numbers continue after the highest the checkpoint knew.
    let next = fs.create("new").unwrap();
    assert!(next.0 > f.0);
}

// ---------------------------------------------------------------------------------
// The model

/// A deterministic generator (SplitMix64): no dependency, and a seed reproduces a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize].clone()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone)]
struct MInode {
    kind: FileKind,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    data: Vec<u8>,
    /// Allocated file blocks.
    blocks: BTreeSet<u64>,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    parent: Ino,
    entries: BTreeMap<String, Ino>,
}

#[derive(Debug, Clone)]
struct Model {
    inodes: BTreeMap<Ino, MInode>,
    next_ino: u64,
}

type MResult<T> = Result<T, i32>;

/// `.` and `..`: each call answers them as Linux's path walk does.
fn is_dot(n: &str) -> bool {
    n == "." || n == ".."
}

fn check_name(n: &str) -> MResult<()> {
    if n.is_empty() {
        Err(libc::ENOENT)
    } else if n.len() > 255 {
        Err(libc::ENAMETOOLONG)
    } else if n == "." || n == ".." || n.contains(['/', '\0']) {
        Err(libc::EINVAL)
    } else {
        Ok(())
    }
}

impl Model {
    fn new(root: Perm, now: SystemTime) -> Model {
        let mut inodes = BTreeMap::new();
        inodes.insert(ROOT_INO, Model::node(FileKind::Dir, root, ROOT_INO, now));
        Model {
            inodes,
            next_ino: 2,
        }
    }

    fn node(kind: FileKind, p: Perm, parent: Ino, now: SystemTime) -> MInode {
        MInode {
            kind,
            mode: p.mode,
            uid: p.uid,
            gid: p.gid,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            data: Vec::new(),
            blocks: BTreeSet::new(),
            atime: now,
            mtime: now,
            ctime: now,
            parent,
            entries: BTreeMap::new(),
        }
    }

    fn dir(&self, ino: Ino) -> MResult<&MInode> {
        let i = self.inodes.get(&ino).ok_or(libc::ENOENT)?;
        if i.kind == FileKind::Dir {
            Ok(i)
        } else {
            Err(libc::ENOTDIR)
        }
    }

    fn is_dir(&self, ino: Ino) -> bool {
        self.inodes[&ino].kind == FileKind::Dir
    }

    fn stamp_dir(&mut self, d: Ino, now: SystemTime) {
        let i = self.inodes.get_mut(&d).unwrap();
        i.mtime = now;
        i.ctime = now;
    }

    fn within(&self, mut d: Ino, top: Ino) -> bool {
        loop {
            if d == top {
                return true;
            }
            if d == ROOT_INO {
                return false;
            }
            d = self.inodes[&d].parent;
        }
    }

    fn add(
        &mut self,
        p: Ino,
        n: &str,
        perm: Perm,
        kind: FileKind,
        now: SystemTime,
    ) -> MResult<Ino> {
        if is_dot(n) {
            return Err(libc::EEXIST);
        }
        check_name(n)?;
        let pd = self.dir(p)?;
        if pd.entries.contains_key(n) {
            return Err(libc::EEXIST);
        }
        let ino = Ino(self.next_ino);
        self.next_ino += 1;
        self.inodes.insert(ino, Model::node(kind, perm, p, now));
        let pd = self.inodes.get_mut(&p).unwrap();
        pd.entries.insert(n.to_string(), ino);
        if kind == FileKind::Dir {
            pd.nlink += 1;
        }
        self.stamp_dir(p, now);
        Ok(ino)
    }

    fn link(&mut self, ino: Ino, p: Ino, n: &str, now: SystemTime) -> MResult<()> {
        if is_dot(n) {
            return Err(libc::EEXIST);
        }
        check_name(n)?;
        let kind = self.inodes.get(&ino).ok_or(libc::ENOENT)?.kind;
        if self.dir(p)?.entries.contains_key(n) {
            return Err(libc::EEXIST);
        }
        if kind == FileKind::Dir {
            return Err(libc::EPERM);
        }
        self.inodes
            .get_mut(&p)
            .unwrap()
            .entries
            .insert(n.to_string(), ino);
        let i = self.inodes.get_mut(&ino).unwrap();
        i.nlink += 1;
        i.ctime = now;
        self.stamp_dir(p, now);
        Ok(())
    }

    /// Drops a link of file `ino` whose entry is gone.
    fn drop_link(&mut self, ino: Ino, now: SystemTime) {
        let i = self.inodes.get_mut(&ino).unwrap();
        i.nlink -= 1;
        i.ctime = now;
        if i.nlink == 0 {
            self.inodes.remove(&ino);
        }
    }

    fn unlink(&mut self, p: Ino, n: &str, now: SystemTime) -> MResult<()> {
        if is_dot(n) {
            return Err(libc::EISDIR);
        }
        check_name(n)?;
        let ino = *self.dir(p)?.entries.get(n).ok_or(libc::ENOENT)?;
        if self.is_dir(ino) {
            return Err(libc::EISDIR);
        }
        self.inodes.get_mut(&p).unwrap().entries.remove(n);
        self.stamp_dir(p, now);
        self.drop_link(ino, now);
        Ok(())
    }

    fn rmdir(&mut self, p: Ino, n: &str, now: SystemTime) -> MResult<()> {
        match n {
            "." => return Err(libc::EINVAL),
            ".." => return Err(libc::ENOTEMPTY),
            _ => check_name(n)?,
        }
        let ino = *self.dir(p)?.entries.get(n).ok_or(libc::ENOENT)?;
        if !self.dir(ino)?.entries.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        let pd = self.inodes.get_mut(&p).unwrap();
        pd.entries.remove(n);
        pd.nlink -= 1;
        self.stamp_dir(p, now);
        self.inodes.remove(&ino);
        Ok(())
    }

    fn move_dir(&mut self, ino: Ino, from: Ino, to: Ino) {
        if from != to && self.is_dir(ino) {
            self.inodes.get_mut(&ino).unwrap().parent = to;
            self.inodes.get_mut(&from).unwrap().nlink -= 1;
            self.inodes.get_mut(&to).unwrap().nlink += 1;
        }
    }

    fn rename(
        &mut self,
        p: Ino,
        n: &str,
        np: Ino,
        nn: &str,
        flags: RenameFlags,
        now: SystemTime,
    ) -> MResult<()> {
        let ex = flags.contains(RenameFlags::EXCHANGE);
        if flags.contains(RenameFlags::EXCHANGE | RenameFlags::NOREPLACE) {
            return Err(libc::EINVAL);
        }
        if is_dot(n) {
            return Err(libc::EBUSY);
        }
        if is_dot(nn) {
            return Err(if flags.contains(RenameFlags::NOREPLACE) {
                libc::EEXIST
            } else {
                libc::EBUSY
            });
        }
        check_name(n)?;
        check_name(nn)?;
        self.dir(p)?;
        self.dir(np)?;
        let src = *self.dir(p)?.entries.get(n).ok_or(libc::ENOENT)?;
        let tgt = self.dir(np)?.entries.get(nn).copied();
        if flags.contains(RenameFlags::NOREPLACE) && tgt.is_some() {
            return Err(libc::EEXIST);
        }
        if ex && tgt.is_none() {
            return Err(libc::ENOENT);
        }
        let sd = self.is_dir(src);
        let td = tgt.is_some_and(|t| self.is_dir(t));
        if sd && self.within(np, src) {
            return Err(libc::EINVAL);
        }
        if let Some(t) = tgt
            && td
            && self.within(p, t)
        {
            return Err(if ex { libc::EINVAL } else { libc::ENOTEMPTY });
        }
        if tgt == Some(src) {
            return Ok(());
        }
        if let (Some(t), false) = (tgt, ex) {
            if sd && !td {
                return Err(libc::ENOTDIR);
            }
            if !sd && td {
                return Err(libc::EISDIR);
            }
            if td && !self.inodes[&t].entries.is_empty() {
                return Err(libc::ENOTEMPTY);
            }
        }
        if ex {
            let t = tgt.unwrap();
            self.inodes.get_mut(&p).unwrap().entries.insert(n.into(), t);
            self.inodes
                .get_mut(&np)
                .unwrap()
                .entries
                .insert(nn.into(), src);
            self.move_dir(src, p, np);
            self.move_dir(t, np, p);
            self.inodes.get_mut(&t).unwrap().ctime = now;
        } else {
            self.inodes.get_mut(&p).unwrap().entries.remove(n);
            if let Some(t) = tgt {
                self.inodes.get_mut(&np).unwrap().entries.remove(nn);
                if td {
                    self.inodes.get_mut(&np).unwrap().nlink -= 1;
                    self.inodes.remove(&t);
                } else {
                    self.drop_link(t, now);
                }
            }
            self.inodes
                .get_mut(&np)
                .unwrap()
                .entries
                .insert(nn.into(), src);
            self.move_dir(src, p, np);
        }
        self.inodes.get_mut(&src).unwrap().ctime = now;
        self.stamp_dir(p, now);
        self.stamp_dir(np, now);
        Ok(())
    }

    fn resize(i: &mut MInode, size: u64) {
        i.data.resize(size as usize, 0);
        let keep = size.div_ceil(B);
        i.blocks.retain(|&b| b < keep);
    }

    fn setattr(&mut self, ino: Ino, s: &SetAttr, now: SystemTime) -> MResult<()> {
        let i = self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        if s.size.is_some() && i.kind == FileKind::Dir {
            return Err(libc::EISDIR);
        }
        if let Some(size) = s.size {
            Model::resize(i, size);
            i.mtime = now;
        }
        if let Some(m) = s.mode {
            i.mode = m & 0o7777;
        }
        if let Some(u) = s.uid {
            i.uid = u;
        }
        if let Some(g) = s.gid {
            i.gid = g;
        }
        if let Some(a) = s.atime {
            i.atime = a;
        }
        if let Some(m) = s.mtime {
            i.mtime = m;
        }
        if !s.is_empty() {
            i.ctime = now;
        }
        Ok(())
    }

    fn write(&mut self, ino: Ino, pos: u64, data: &[u8], now: SystemTime) -> MResult<()> {
        let i = self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        if i.kind == FileKind::Dir {
            return Err(libc::EISDIR);
        }
        let end = pos as usize + data.len();
        if i.data.len() < end {
            i.data.resize(end, 0);
        }
        i.data[pos as usize..end].copy_from_slice(data);
        i.blocks.extend(pos / B..(end as u64).div_ceil(B));
        i.mtime = now;
        i.ctime = now;
        Ok(())
    }

    fn dirs(&self) -> Vec<Ino> {
        self.inodes
            .iter()
            .filter(|(_, i)| i.kind == FileKind::Dir)
            .map(|(&n, _)| n)
            .collect()
    }
}

/// Compares the whole filesystem with the model; `skip_data` names files whose
/// contents are not compared (written after the checkpoint a crash went back to).
fn check(fs: &TestFs, m: &Model, skip_data: &BTreeSet<Ino>, ctx: &str) {
    let mut seen = BTreeSet::new();
    let mut todo = vec![ROOT_INO];
    while let Some(d) = todo.pop() {
        let want: Vec<_> = m.inodes[&d]
            .entries
            .iter()
            .map(|(n, &i)| (n.clone(), i, m.inodes[&i].kind))
            .collect();
        let got: Vec<_> = fs
            .readdir(d)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.ino, e.kind))
            .collect();
        assert_eq!(got, want, "{ctx}: entries of {d}");
        assert_eq!(
            fs.parent(d).unwrap(),
            m.inodes[&d].parent,
            "{ctx}: parent of {d}"
        );
        for (n, i, k) in want {
            assert_eq!(fs.lookup_in(d, &n).unwrap(), i, "{ctx}");
            if seen.insert(i) && k == FileKind::Dir {
                todo.push(i);
            }
        }
    }
    assert_eq!(
        seen.len() + 1,
        m.inodes.len(),
        "{ctx}: all inodes reachable"
    );
    for (&ino, i) in &m.inodes {
        let a = fs.getattr(ino).unwrap();
        assert_eq!(
            (a.ino, a.kind, a.mode, a.uid, a.gid, a.nlink),
            (ino, i.kind, i.mode, i.uid, i.gid, i.nlink),
            "{ctx}: attributes of {ino}"
        );
        assert_eq!(
            (a.size, a.blocks),
            (i.data.len() as u64, i.blocks.len() as u64),
            "{ctx}: size and blocks of {ino}"
        );
        assert_eq!(
            (a.atime, a.mtime, a.ctime),
            (i.atime, i.mtime, i.ctime),
            "{ctx}: times of {ino}"
        );
        if i.kind == FileKind::File && !skip_data.contains(&ino) {
            let mut buf = vec![0u8; i.data.len() + 1];
            let n = fs.read(ino, 0, &mut buf).unwrap();
            let first_diff = buf[..n].iter().zip(&i.data).position(|(a, b)| a != b);
            assert_eq!(
                (n, first_diff),
                (i.data.len(), None),
                "{ctx}: data of {ino} (bytes read, first differing offset)"
            );
        }
    }
    let st = fs.statfs();
    let ndirs = m.dirs().len() as u64;
    assert_eq!(
        (st.files, st.dirs),
        (m.inodes.len() as u64 - ndirs, ndirs),
        "{ctx}"
    );
    let flat: Vec<_> = m.inodes[&ROOT_INO]
        .entries
        .iter()
        .map(|(n, &i)| (n.clone(), i))
        .collect();
    assert_eq!(fs.list(), flat, "{ctx}: list()");
}

#[derive(Debug, Clone)]
enum Op {
    Mkdir(Ino, String, Perm),
    Create(Ino, String, Perm),
    Link(Ino, Ino, String),
    Unlink(Ino, String),
    Rmdir(Ino, String),
    Rename(Ino, String, Ino, String, RenameFlags),
    SetAttr(Ino, SetAttr),
    Write(Ino, u64, usize, u8),
    /// A checkpoint: the state a crash returns to.
    Fsync(Ino),
}

const NAMES: [&str; 6] = ["a", "b", "c", "dd", "e", "f"];

fn gen_op(rng: &mut Rng, m: &Model, dead: &[Ino]) -> Op {
    let all: Vec<Ino> = m.inodes.keys().copied().collect();
    let dirs = m.dirs();
    let files: Vec<Ino> = all.iter().copied().filter(|i| !dirs.contains(i)).collect();
    let entries: Vec<(Ino, String)> = dirs
        .iter()
        .flat_map(|&d| m.inodes[&d].entries.keys().map(move |n| (d, n.clone())))
        .collect();
    // Mostly what the call wants (a directory, a file); now and then anything, or a
    // stale number, for ENOTDIR, EISDIR and ENOENT.
    let some = |rng: &mut Rng, want: &[Ino]| {
        let r = rng.below(100);
        if r < 4 && !dead.is_empty() {
            rng.pick(dead)
        } else if r < 12 || want.is_empty() {
            rng.pick(&all)
        } else {
            rng.pick(want)
        }
    };
    let name = |rng: &mut Rng| match rng.below(60) {
        0 => ".".to_string(),
        1 => "x".repeat(256),
        _ => rng.pick(&NAMES).to_string(),
    };
    // An existing entry most of the time, else a directory and a name at random.
    let entry = |rng: &mut Rng, percent| {
        if !entries.is_empty() && rng.chance(percent) {
            rng.pick(&entries)
        } else {
            (some(rng, &dirs), name(rng))
        }
    };
    let perm = |rng: &mut Rng| Perm::new(rng.below(0o10000) as u32, rng.below(3) as u32, 7);
    match rng.below(100) {
        0..=11 => Op::Mkdir(some(rng, &dirs), name(rng), perm(rng)),
        12..=25 => Op::Create(some(rng, &dirs), name(rng), perm(rng)),
        26..=33 => Op::Link(some(rng, &files), some(rng, &dirs), name(rng)),
        34..=41 => {
            let (d, n) = entry(rng, 75);
            Op::Unlink(d, n)
        }
        42..=49 => {
            let empty: Vec<_> = entries
                .iter()
                .filter(|(d, n)| {
                    let i = &m.inodes[&m.inodes[d].entries[n]];
                    i.kind == FileKind::Dir && i.entries.is_empty()
                })
                .cloned()
                .collect();
            let (d, n) = if !empty.is_empty() && rng.chance(50) {
                rng.pick(&empty)
            } else {
                entry(rng, 75)
            };
            Op::Rmdir(d, n)
        }
        50..=71 => {
            let flags = match rng.below(10) {
                0 | 1 => RenameFlags::NOREPLACE,
                2 | 3 => RenameFlags::EXCHANGE,
                4 if rng.chance(20) => RenameFlags::all(),
                _ => RenameFlags::empty(),
            };
            let (p, n) = entry(rng, 85);
            let (np, nn) = entry(rng, 40);
            Op::Rename(p, n, np, nn, flags)
        }
        72..=83 => {
            let mut s = SetAttr::new();
            if rng.chance(40) {
                s = s.mode(rng.below(0o200000) as u32);
            }
            if rng.chance(25) {
                s = s.uid(rng.below(5) as u32);
            }
            if rng.chance(25) {
                s = s.gid(rng.below(5) as u32);
            }
            if rng.chance(30) {
                s = s.size(rng.below(6 * B));
            }
            if rng.chance(20) {
                s = s.atime(t(rng.below(1 << 33), rng.below(1_000_000_000) as u32));
            }
            if rng.chance(20) {
                s = s.mtime(UNIX_EPOCH - Duration::new(rng.below(1 << 20), 3));
            }
            Op::SetAttr(some(rng, &all), s)
        }
        84..=96 => Op::Write(
            some(rng, &files),
            rng.below(5 * B),
            1 + rng.below(2 * B) as usize,
            rng.below(256) as u8,
        ),
        _ => Op::Fsync(some(rng, &all)),
    }
}

/// Runs `op` on the filesystem and on the model at time `now`; asserts both agree on
/// the outcome. Returns whether it succeeded, and the file whose data it changed.
fn apply(fs: &TestFs, m: &mut Model, op: &Op, now: SystemTime, ctx: &str) -> (bool, Option<Ino>) {
    let err = |r: Result<(), DaxError>| r.map_err(|e| e.errno());
    let (got, want, touched) = match op {
        Op::Mkdir(p, n, perm) | Op::Create(p, n, perm) => {
            let kind = if matches!(op, Op::Mkdir(..)) {
                FileKind::Dir
            } else {
                FileKind::File
            };
            let got = if kind == FileKind::Dir {
                fs.mkdir(*p, n, *perm)
            } else {
                fs.create_in(*p, n, *perm)
            };
            let want = m.add(*p, n, *perm, kind, now);
            (
                got.map_err(|e| e.errno()).map(|i| i.0),
                want.map(|i| i.0),
                None,
            )
        }
        Op::Link(i, p, n) => (
            err(fs.link(*i, *p, n)).map(|_| 0),
            m.link(*i, *p, n, now).map(|_| 0),
            None,
        ),
        Op::Unlink(p, n) => (
            err(fs.unlink_in(*p, n)).map(|_| 0),
            m.unlink(*p, n, now).map(|_| 0),
            None,
        ),
        Op::Rmdir(p, n) => (
            err(fs.rmdir(*p, n)).map(|_| 0),
            m.rmdir(*p, n, now).map(|_| 0),
            None,
        ),
        Op::Rename(p, n, np, nn, f) => (
            err(fs.rename(*p, n, *np, nn, *f)).map(|_| 0),
            m.rename(*p, n, *np, nn, *f, now).map(|_| 0),
            None,
        ),
        Op::SetAttr(i, s) => (
            fs.setattr(*i, s).map(|_| 0).map_err(|e| e.errno()),
            m.setattr(*i, s, now).map(|_| 0),
            s.size.map(|_| *i),
        ),
        Op::Write(i, pos, len, seed) => {
            let data = pattern(*seed, *pos, *len);
            (
                fs.write(*i, *pos, &data)
                    .map(|n| n as u64)
                    .map_err(|e| e.errno()),
                m.write(*i, *pos, &data, now).map(|_| *len as u64),
                Some(*i),
            )
        }
        Op::Fsync(i) => {
            let want = if m.inodes.contains_key(i) {
                Ok(0)
            } else {
                Err(libc::ENOENT)
            };
            (err(fs.fsync(*i)).map(|_| 0), want, None)
        }
    };
    assert_eq!(got, want, "{ctx}: {op:?}");
    (got.is_ok(), touched.filter(|_| got.is_ok()))
}

/// One seeded run: `ops` random operations; the whole tree checked every 8; an
/// unmount and remount now and then; a crash (drop without unmount) after some
/// fsyncs, checked against the model as it was at the fsync.
fn run_model(seed: u64, ops: usize) {
    let trace = std::env::var_os("DAX_TESTFS_MODEL_TRACE").is_some();
    let mut rng = Rng(seed);
    let dev = dax_testdev::MemDevice::builder()
        .size(SIZE)
        .build()
        .unwrap();
    let root = Perm::new(0o755, 0, 0);
    let start = t(1_600_000_000, 0);
    let mut fs = TestFs::mkfs_with(dev.clone(), MkfsOptions::new().root(root)).unwrap();
    fs.set_clock(Some(start)).unwrap();
    // mkfs stamped the root with its own clock; adopt that.
    let mut m = Model::new(root, start);
    let ra = fs.getattr(ROOT_INO).unwrap();
    {
        let r = m.inodes.get_mut(&ROOT_INO).unwrap();
        (r.atime, r.mtime, r.ctime) = (ra.atime, ra.mtime, ra.ctime);
    }
    let mut dead: Vec<Ino> = Vec::new();
    // The model at the last checkpoint, and files written since.
    let mut durable = m.clone();
    let mut written_since: BTreeSet<Ino> = BTreeSet::new();
    for k in 0..ops {
        let ctx = format!("seed {seed:#x} op {k}");
        let now = start + Duration::new(k as u64 + 1, (k as u32 * 7919) % 1_000_000_000);
        fs.set_clock(Some(now)).unwrap();
        let op = gen_op(&mut rng, &m, &dead);
        let before: BTreeSet<Ino> = m.inodes.keys().copied().collect();
        if trace {
            eprintln!("{k}: {op:?}");
        }
        let (ok, touched) = apply(&fs, &mut m, &op, now, &ctx);
        written_since.extend(touched);
        dead.extend(before.iter().filter(|i| !m.inodes.contains_key(i)));
        if ok && matches!(op, Op::Fsync(_)) {
            durable = m.clone();
            written_since.clear();
        }
        if k % 8 == 7 {
            check(&fs, &m, &BTreeSet::new(), &ctx);
        }
        match rng.below(100) {
            0..=2 => {
                if trace {
                    eprintln!("{k}: unmount and open");
                }
                fs.unmount().unwrap();
                fs = TestFs::open(dev.clone()).unwrap();
                check(&fs, &m, &BTreeSet::new(), &format!("{ctx} after remount"));
                durable = m.clone();
                written_since.clear();
            }
            3..=5 => {
                if trace {
                    eprintln!("{k}: crash");
                }
                drop(fs); // crash
                fs = TestFs::open(dev.clone()).unwrap();
                m = durable.clone();
                // Data written in place into blocks the checkpoint maps is durable
                // (data is not journaled): those files' contents are whatever the
                // device holds; everything else is exactly the checkpoint.
                check(&fs, &m, &written_since, &format!("{ctx} after crash"));
                for &i in &written_since {
                    if let Some(node) = m.inodes.get_mut(&i) {
                        let mut buf = vec![0u8; node.data.len()];
                        fs.read(i, 0, &mut buf).unwrap();
                        node.data = buf;
                    }
                }
                written_since.clear();
                // That data stays on the device through the next crash too.
                durable = m.clone();
                dead.retain(|i| !m.inodes.contains_key(i));
                // Numbers handed out after the checkpoint may come again: forget them.
                dead.retain(|i| i.0 < m.next_ino);
            }
            _ => {}
        }
    }
    check(&fs, &m, &BTreeSet::new(), &format!("seed {seed:#x} end"));
    fs.unmount().unwrap();
    let fs = TestFs::open(dev).unwrap();
    check(
        &fs,
        &m,
        &BTreeSet::new(),
        &format!("seed {seed:#x} end, remounted"),
    );
}

#[test]
fn model_random_namespace_sequences_match_and_survive_remount_and_crash() {
    // DAX_TESTFS_MODEL_SEED=<n> runs one seed, longer (a failure names its seed);
    // DAX_TESTFS_MODEL_TRACE=1 prints each operation.
    if let Some(seed) = std::env::var("DAX_TESTFS_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_model(seed, 2000);
        return;
    }
    for seed in [1u64, 2, 3, 0xdead_beef] {
        run_model(seed, 400);
    }
}

// ---------------------------------------------------------------------------------
// Damaged payloads

/// Writes `payload` into the checkpoint slot at `slot` with a header whose length and
/// checksums match it: damage only the format's own checks can find.
fn rewrite_slot(dev: &Dev, slot: u64, payload: &[u8]) {
    let mut h = peek(dev, slot, 64);
    h[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    h[32..36].copy_from_slice(&crc32c(payload).to_le_bytes());
    let hcrc = crc32c(&h[..36]);
    h[36..40].copy_from_slice(&hcrc.to_le_bytes());
    poke(dev, slot, &h);
    poke(dev, slot + 64, payload);
}

fn payload(dev: &Dev, slot: u64) -> Vec<u8> {
    let h = peek(dev, slot, 64);
    let len = u64::from_le_bytes(h[24..32].try_into().unwrap());
    peek(dev, slot + 64, len as usize)
}

/// Walks the whole tree (it must be walkable, whatever was accepted).
fn walk(fs: &TestFs) -> Vec<(Ino, String)> {
    let mut out = Vec::new();
    let mut todo = vec![ROOT_INO];
    while let Some(d) = todo.pop() {
        for e in fs.readdir(d).unwrap() {
            fs.getattr(e.ino).unwrap();
            if e.kind == FileKind::Dir {
                assert_eq!(fs.parent(e.ino).unwrap(), d);
                todo.push(e.ino);
            }
            out.push((d, e.name));
        }
    }
    out.sort();
    out
}

#[test]
fn damaged_directory_payloads_fall_back_to_the_other_slot_or_are_euclean() {
    let (dev, fs) = mem_fs(SIZE);
    let r = ROOT_INO;
    let d = fs.mkdir(r, "dir1", P).unwrap();
    let f = fs.create_in(d, "file1", P).unwrap();
    fs.link(f, r, "dupa").unwrap();
    fs.create_in(r, "dupb", P).unwrap();
    fs.sync().unwrap();
    let older = walk(&fs);
    fs.mkdir(d, "zzunique", P).unwrap();
    fs.sync().unwrap();
    let newer = walk(&fs);
    let generation = fs.generation();
    let slots = fs.layout().slot_offsets;
    let newest = slots[(generation % 2) as usize];
    drop(fs);
    let good = payload(&dev, newest);
    let find = |p: &[u8], s: &[u8]| p.windows(s.len()).position(|w| w == s).unwrap();
    let reopen = |what: &str| -> Result<TestFs, DaxError> {
        let r = TestFs::open(dev.clone());
        if let Err(e) = &r {
            assert_eq!(e.errno(), libc::EUCLEAN, "{what}: {e}");
        }
        r
    };

    // Damage that only the tree check can see, each with valid checksums: the newest
    // slot is refused and mount falls back to the previous checkpoint.
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut p = good.clone();
    let at = find(&p, b"zzunique") - 10; // u64 ino, u16 length, name
    p[at..at + 8].copy_from_slice(&0xdead_u64.to_le_bytes());
    cases.push(("dangling entry", p));
    let mut p = good.clone();
    let at = find(&p, b"dupb");
    p[at + 3] = b'a';
    cases.push(("duplicate name", p));
    let mut p = good.clone();
    let at = find(&p, b"dupa") - 10;
    p[at..at + 8].copy_from_slice(&d.0.to_le_bytes());
    cases.push(("directory named twice", p));
    let mut p = good.clone();
    p.truncate(p.len() - 3);
    cases.push(("cut short", p));
    for (what, p) in cases {
        rewrite_slot(&dev, newest, &p);
        let fs = reopen(what).unwrap();
        assert_eq!(fs.generation(), generation - 1, "{what}");
        assert_eq!(walk(&fs), older, "{what}");
        drop(fs);
    }
    // With the older slot damaged too, nothing is left: EUCLEAN.
    let older_slot = slots[((generation - 1) % 2) as usize];
    let keep_older = payload(&dev, older_slot);
    let mut p = keep_older.clone();
    let at = find(&p, b"dupb");
    p[at + 3] = b'a';
    rewrite_slot(&dev, older_slot, &p);
    assert_eq!(errno(TestFs::open(dev.clone())), libc::EUCLEAN);
    rewrite_slot(&dev, older_slot, &keep_older);

    // Random byte changes and cuts with fixed-up checksums: never a panic; either a
    // walkable tree from one of the slots, or EUCLEAN.
    let mut rng = Rng(0x5eed);
    for i in 0..300 {
        let mut p = good.clone();
        if i % 5 == 0 {
            p.truncate(rng.below(p.len() as u64) as usize);
        } else {
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(p.len() as u64) as usize;
                p[at] = rng.next() as u8;
            }
        }
        rewrite_slot(&dev, newest, &p);
        if let Ok(fs) = reopen("random damage") {
            let tree = walk(&fs);
            if fs.generation() == generation - 1 {
                assert_eq!(tree, older);
            }
        }
    }
    // Undamaged again: the newest checkpoint comes back whole.
    rewrite_slot(&dev, newest, &good);
    let fs = TestFs::open(dev.clone()).unwrap();
    assert_eq!((fs.generation(), walk(&fs)), (generation, newer));
}

#[test]
fn a_version_1_superblock_is_refused_with_einval() {
    let (dev, fs) = mem_fs(SIZE);
    drop(fs);
    let mut sb = peek(&dev, 0, 64);
    assert_eq!(u32::from_le_bytes(sb[8..12].try_into().unwrap()), 2);
    sb[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32c(&sb[..40]);
    sb[40..44].copy_from_slice(&crc.to_le_bytes());
    poke(&dev, 0, &sb);
    let e = TestFs::open(dev).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(e.to_string().contains("version 1"), "{e}");
}

// ---------------------------------------------------------------------------------
// Threads

#[test]
fn threads_racing_links_unlinks_renames_and_writes_leave_one_consistent_tree() {
    // Three threads change a small shared tree (many attempts fail, on purpose: the
    // names collide), one writes through handles to files the others unlink. Then the
    // link counts must agree with the entries, every freed block be free again, and
    // the checkpoint decoder (which refuses any other tree) load the result.
    let (dev, fs) = mem_fs(32 << 20);
    let r = ROOT_INO;
    let d1 = fs.mkdir(r, "d1", P).unwrap();
    let d2 = fs.mkdir(r, "d2", P).unwrap();
    let dirs = [r, d1, d2];
    std::thread::scope(|s| {
        for th in 0..3u64 {
            let fs = &fs;
            s.spawn(move || {
                let mut rng = Rng(th + 100);
                for _ in 0..1500 {
                    let d = rng.pick(&dirs);
                    let n = rng.pick(&NAMES);
                    let _ = match rng.below(6) {
                        0 => fs.create_in(d, n, P).map(|_| ()),
                        1 => fs
                            .lookup_in(d, n)
                            .and_then(|i| fs.link(i, rng.pick(&dirs), rng.pick(&NAMES))),
                        2 => fs.unlink_in(d, n),
                        3 => fs.rename(d, n, rng.pick(&dirs), rng.pick(&NAMES), NONE),
                        4 => fs.mkdir(d, n, P).map(|_| ()),
                        _ => fs.rmdir(d, n),
                    };
                }
            });
        }
        let fs = &fs;
        s.spawn(move || {
            let mut rng = Rng(7);
            for i in 0..1000 {
                let d = rng.pick(&dirs);
                if let Ok(ino) = fs.lookup_in(d, rng.pick(&NAMES))
                    && let Ok(h) = fs.inode(ino)
                {
                    // ENOENT once another thread has freed it: fine.
                    let _ = fs.pwrite(&h, rng.below(4) * B, &pattern(i as u8, 0, 2 * B as usize));
                }
            }
        });
    });
    // Every inode reachable, link counts right.
    let mut count: BTreeMap<Ino, u32> = BTreeMap::new();
    let mut blocks = 0;
    let mut todo = vec![r];
    while let Some(d) = todo.pop() {
        let mut subdirs = 0;
        for e in fs.readdir(d).unwrap() {
            if e.kind == FileKind::Dir {
                subdirs += 1;
                todo.push(e.ino);
            } else if *count.entry(e.ino).or_default() == 0 {
                blocks += fs.getattr(e.ino).unwrap().blocks;
                *count.get_mut(&e.ino).unwrap() = 1;
            } else {
                *count.get_mut(&e.ino).unwrap() += 1;
            }
        }
        assert_eq!(fs.getattr(d).unwrap().nlink, 2 + subdirs);
    }
    for (ino, n) in &count {
        assert_eq!(fs.getattr(*ino).unwrap().nlink, *n, "links of {ino}");
    }
    let st = fs.statfs();
    assert_eq!(st.files, count.len() as u64);
    assert_eq!(st.free + st.busy + blocks, st.blocks, "blocks leaked");
    let before = walk(&fs);
    fs.unmount().unwrap();
    let fs = TestFs::open(dev).unwrap();
    assert_eq!(walk(&fs), before);
}

#[test]
fn inode_numbers_are_bounded_in_the_checkpoint_and_when_they_run_out() {
    let (dev, fs) = mem_fs(SIZE);
    fs.create("a").unwrap();
    fs.sync().unwrap();
    let generation = fs.generation();
    let newest = fs.layout().slot_offsets[(generation % 2) as usize];
    drop(fs);
    let good = payload(&dev, newest);
    // The payload starts with the next inode number. One past i64::MAX is the
    // largest a checkpoint may hold: it mounts, and the next create is ENOSPC, not
    // an overflow that would reuse the root's number.
    let mut p = good.clone();
    p[..8].copy_from_slice(&(1u64 << 63).to_le_bytes());
    rewrite_slot(&dev, newest, &p);
    let fs = TestFs::open(dev.clone()).unwrap();
    assert_eq!(fs.generation(), generation);
    assert_eq!(fs.create("b").unwrap_err().errno(), libc::ENOSPC);
    assert_eq!(
        fs.mkdir(ROOT_INO, "d", P).unwrap_err().errno(),
        libc::ENOSPC
    );
    assert_eq!(fs.getattr(ROOT_INO).unwrap().kind, FileKind::Dir);
    drop(fs);
    // Beyond that the slot is corrupt, and mount takes the older checkpoint.
    let mut p = good;
    p[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    rewrite_slot(&dev, newest, &p);
    let fs = TestFs::open(dev.clone()).unwrap();
    assert_eq!(fs.generation(), generation - 1);
}

#[test]
fn namespace_changes_past_what_a_checkpoint_slot_holds_are_enospc_and_the_rest_stays_durable() {
    // An 8 MiB device has a 128 KiB checkpoint slot: a few thousand names fill it.
    // Creates past that must fail (ENOSPC) rather than succeed and leave every later
    // fsync and the unmount unable to checkpoint.
    let (dev, fs) = mem_fs(8 << 20);
    let d = fs.mkdir(ROOT_INO, "d", P).unwrap();
    let name = |i: usize| format!("file-with-a-longish-name-{i:06}");
    let mut made = 0;
    let err = loop {
        match fs.create_in(d, &name(made), P) {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
        assert!(made < 100_000, "creates never ran out");
    };
    assert_eq!(err.errno(), libc::ENOSPC, "{err}");
    assert!(made > 500, "only {made} files fit");
    // Links and longer names are refused the same way; shorter names are fine.
    let f = fs.lookup_in(d, &name(0)).unwrap();
    assert_eq!(
        fs.link(f, ROOT_INO, &"x".repeat(200)).unwrap_err().errno(),
        libc::ENOSPC
    );
    fs.rename(d, &name(1), d, "short", RenameFlags::empty())
        .unwrap();
    // Everything admitted is durable, and there is room left for block maps.
    fs.write(f, 0, &[7; 3 * 4096]).unwrap();
    fs.sync().unwrap();
    fs.unmount().unwrap();
    let fs = TestFs::open(dev).unwrap();
    assert_eq!(fs.readdir(d).unwrap().len(), made);
    // Removing names makes room again.
    for i in 2..50 {
        fs.unlink_in(d, &name(i)).unwrap();
    }
    fs.create_in(d, "again", P).unwrap();
    fs.sync().unwrap();
}

#[test]
fn dot_and_dotdot_get_linuxs_answers_in_every_call() {
    let (_dev, fs) = mem_fs(SIZE);
    let r = ROOT_INO;
    let d = fs.mkdir(r, "d", P).unwrap();
    let f = fs.create_in(d, "f", P).unwrap();
    let none = RenameFlags::empty();
    for dot in [".", ".."] {
        let cases = [
            ("create_in", fs.create_in(d, dot, P).map(drop), libc::EEXIST),
            ("mkdir", fs.mkdir(d, dot, P).map(drop), libc::EEXIST),
            ("link", fs.link(f, d, dot), libc::EEXIST),
            ("unlink_in", fs.unlink_in(d, dot), libc::EISDIR),
            ("rename from", fs.rename(d, dot, r, "x", none), libc::EBUSY),
            ("rename onto", fs.rename(d, "f", d, dot, none), libc::EBUSY),
            (
                "rename onto, NOREPLACE",
                fs.rename(d, "f", d, dot, RenameFlags::NOREPLACE),
                libc::EEXIST,
            ),
        ];
        for (what, got, want) in cases {
            assert_eq!(got.unwrap_err().errno(), want, "{what} {dot:?}");
        }
    }
    assert_eq!(fs.rmdir(d, ".").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(fs.rmdir(d, "..").unwrap_err().errno(), libc::ENOTEMPTY);
    // Nothing changed.
    assert_eq!(fs.readdir(d).unwrap().len(), 1);
    assert_eq!(fs.lookup_in(d, "f").unwrap(), f);
}
