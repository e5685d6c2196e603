//! Fuzz target `testfs`: TestFs's on-device format. Opening a fuzzed image must give
//! a clear error or a consistent filesystem that survives use: never a panic, never a
//! write by a failed open, never a write outside the filesystem.
//!
//! **The image.** Raw bytes rarely get past the superblock's CRC-32C, so most inputs
//! start from a real image: mkfs on a small device (96 blocks, checkpoint slots of 2,
//! 4 or 8 blocks), files created, written, fallocated, reflinked (shared blocks),
//! truncated and unlinked by operations decoded from the input, then unmounted, or
//! checkpointed and then crashed (both slots hold generations). The harness then
//! edits the image: byte edits in the superblock and both checkpoint slots (header
//! fields set to edge values, payload bytes changed), or a whole checkpoint payload
//! synthesised from the input (inode records with fuzzed numbers, sizes, names and
//! extents, reference counts derived from the extents or fuzzed), written into a slot
//! with any generation. Checksums are then recomputed (the on-device format is
//! documented in `dax_testdev::testfs`), except when the input says not to, so that
//! the structural checks behind them run. A few inputs use the raw bytes as the image.
//!
//! **Canaries / "outside the device".** The image is copied to the start of a larger
//! device (128 blocks) whose tail is filled with canaries. The filesystem is what the
//! superblock says (`total_blocks` may be fuzzed up to the device size); every byte
//! past its end must keep its canary through open, use, unmount and reopen. A failed
//! open must not change any byte of the device, and a successful one must not write
//! either (mount only reads). Memory outside the `MemDevice` is out of reach by
//! construction: every access goes through `DaxDevice::direct_access`, which the
//! driver bounds to the device.
//!
//! **After a successful open**, fsck-like checks through the public API: names and
//! inode numbers agree (`list`, `lookup`, `stat`); every extent lies in the data area;
//! reference counts equal the extent maps' references; `stat` blocks and `statfs`
//! agree with the extents; every file reads (a prefix and the last page before EOF) as
//! its extents say (device bytes for written blocks, zeros for holes and unwritten
//! blocks). Then operations (write and read back, truncate, punch, create, unlink,
//! fsync), each followed by the same checks and an isolation check: files an
//! operation does not touch read as before. Finally unmount, which must succeed
//! unless the metadata no longer fits a slot, and reopen, which must then succeed and
//! show the same files, sizes and contents.

use std::collections::BTreeMap;
use std::sync::Arc;

use dax_device::{DaxDevice, DaxError};
use dax_testdev::{FallocMode, Ino, MemDevice, MkfsOptions, TestFs};

use super::{Input, assert_canaries, fill_canaries};

const B: u64 = 4096;
/// Blocks of the filesystem mkfs makes.
const FS_BLOCKS: u64 = 96;
/// Blocks of the device the image is opened on: the rest is the canary guard.
const DEV_BLOCKS: u64 = 128;
const DEV_BYTES: u64 = DEV_BLOCKS * B;
/// Bytes of a file read and compared by the checks: a prefix, and a page before EOF.
const WINDOW: u64 = 64 * 1024;
/// Operations after a successful open.
const MAX_OPS: usize = 12;

/// CRC-32C (Castagnoli), as the format uses.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn dev(blocks: u64) -> Arc<DaxDevice<MemDevice>> {
    MemDevice::builder().size(blocks * B).build().unwrap()
}

fn peek(d: &MemDevice, off: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    d.peek(off, &mut v).unwrap();
    v
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Names the generator uses: valid ones, and the ones the format must refuse.
fn name(i: &mut Input<'_>) -> Vec<u8> {
    match i.below(10) {
        0..=5 => vec![b'a' + i.below(4) as u8],
        6 => b"..".to_vec(),
        7 => Vec::new(),
        8 => vec![b'n'; 255 + i.below(3) as usize],
        _ => {
            let n = i.below(6) as usize;
            i.bytes(n).to_vec()
        }
    }
}

/// Builds a real image with TestFs on a fresh `FS_BLOCKS` device; returns its bytes.
fn build_image(i: &mut Input<'_>) -> Vec<u8> {
    let d = dev(FS_BLOCKS);
    let slot = i.pick(&[2u64, 4, 8]);
    let fs = TestFs::mkfs_with(d.clone(), MkfsOptions::new().checkpoint_blocks(slot)).unwrap();
    let mut inos: Vec<Ino> = Vec::new();
    let ops = i.below(10);
    for _ in 0..ops {
        match i.below(8) {
            0 | 1 => {
                let n = String::from_utf8_lossy(&name(i)).into_owned();
                if let Ok(ino) = fs.create(&n) {
                    inos.push(ino);
                }
            }
            _ if inos.is_empty() => {}
            2 | 3 => {
                let ino = i.pick(&inos);
                let pos = i.below(20 * B);
                let data = super::seeded(i.u64(), i.range(1, 3 * B) as usize);
                let _ = fs.write(ino, pos, &data);
            }
            4 => {
                let ino = i.pick(&inos);
                let mode = i.pick(&[
                    FallocMode::empty(),
                    FallocMode::KEEP_SIZE,
                    FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
                ]);
                let _ = fs.fallocate(ino, mode, i.below(16 * B), i.range(1, 8 * B));
            }
            5 => {
                let (a, b) = (i.pick(&inos), i.pick(&inos));
                let _ = fs.reflink(a, i.below(8) * B, b, i.below(8) * B, i.range(1, 4) * B);
            }
            6 => {
                let _ = fs.truncate(i.pick(&inos), i.below(24 * B));
            }
            _ => {
                let _ = fs.fsync(i.pick(&inos));
            }
        }
    }
    if i.bool() {
        fs.unmount().unwrap();
    } else {
        // A crash after at least one more checkpoint: both slots hold generations.
        let _ = fs.sync();
        if let Some(&ino) = inos.first() {
            let _ = fs.write(ino, 0, b"after the checkpoint");
        }
        drop(fs);
    }
    peek(d.driver(), 0, (FS_BLOCKS * B) as usize)
}

/// A checkpoint payload synthesised from the input (see the module docs), with its
/// data area `data_start .. total` to aim extents at.
fn synth_payload(i: &mut Input<'_>, data_start: u64, total: u64) -> Vec<u8> {
    let mut p = Vec::new();
    let n = i.below(5);
    let next_ino = match i.below(4) {
        0 => i.edge_u64(),
        _ => n + 1 + i.below(3),
    };
    p.extend_from_slice(&next_ino.to_le_bytes());
    p.extend_from_slice(&(n as u32).to_le_bytes());
    let mut maps: Vec<(u64, u64)> = Vec::new(); // (dev, len) of every extent
    for k in 0..n {
        let ino = match i.below(6) {
            0 => i.edge_u64(),
            1 => i.below(n + 2),
            _ => k + 1,
        };
        let size = match i.below(4) {
            0 => i.edge_u64(),
            1 => i.below(4 * B),
            _ => i.below(40 * B),
        };
        let nm = match i.below(4) {
            0 => name(i),
            _ => format!("f{k}").into_bytes(),
        };
        p.extend_from_slice(&ino.to_le_bytes());
        p.extend_from_slice(&size.to_le_bytes());
        p.extend_from_slice(&(nm.len() as u16).to_le_bytes());
        p.extend_from_slice(&nm);
        let ne = i.below(4);
        p.extend_from_slice(&(ne as u32).to_le_bytes());
        let mut fb = 0u64;
        for _ in 0..ne {
            fb = match i.below(5) {
                0 => i.edge_u64(),
                1 => fb.saturating_sub(i.below(3)),
                _ => fb.saturating_add(i.below(6)),
            };
            let len = match i.below(5) {
                0 => i.edge_u64(),
                _ => i.range(1, 8),
            };
            let d = match i.below(6) {
                0 => i.edge_u64(),
                1 => data_start.saturating_sub(1 + i.below(2)),
                2 => total.saturating_sub(i.below(4)),
                _ => data_start + i.below(total.saturating_sub(data_start).max(1)),
            };
            let flags = match i.below(6) {
                0 => i.u8(),
                k => (k as u8 - 1) & 3,
            };
            p.extend_from_slice(&fb.to_le_bytes());
            p.extend_from_slice(&d.to_le_bytes());
            p.extend_from_slice(&len.to_le_bytes());
            p.push(flags);
            maps.push((d, len));
            fb = fb.saturating_add(len);
        }
    }
    let runs = if i.chance(200) {
        derive_refcounts(&maps)
    } else {
        (0..i.below(4))
            .map(|_| {
                (
                    data_start + i.below(total.saturating_sub(data_start).max(1)),
                    i.range(1, 8),
                    i.range(0, 3) as u32,
                )
            })
            .collect()
    };
    p.extend_from_slice(&(runs.len() as u32).to_le_bytes());
    for (s, l, c) in runs {
        p.extend_from_slice(&s.to_le_bytes());
        p.extend_from_slice(&l.to_le_bytes());
        p.extend_from_slice(&c.to_le_bytes());
    }
    p
}

/// The reference-count runs the extents `(dev, len)` imply, merged as the format
/// stores them.
fn derive_refcounts(maps: &[(u64, u64)]) -> Vec<(u64, u64, u32)> {
    let mut ev: BTreeMap<u64, i64> = BTreeMap::new();
    for &(d, l) in maps {
        let Some(e) = d.checked_add(l) else { continue };
        *ev.entry(d).or_default() += 1;
        *ev.entry(e).or_default() -= 1;
    }
    let (mut out, mut depth, mut prev): (Vec<(u64, u64, u32)>, i64, u64) = (Vec::new(), 0, 0);
    for (&at, &delta) in &ev {
        if depth > 0 && at > prev {
            let c = depth as u32;
            match out.last_mut() {
                Some(l) if l.0 + l.1 == prev && l.2 == c => l.1 += at - prev,
                _ => out.push((prev, at - prev, c)),
            }
        }
        depth += delta;
        prev = at;
    }
    out
}

/// Recomputes the superblock's and both slots' checksums in `img` (as far as their
/// headers can be read).
fn fix_checksums(img: &mut [u8]) {
    let crc = crc32c(&img[..40]);
    img[40..44].copy_from_slice(&crc.to_le_bytes());
    let slot_blocks = le64(img, 32);
    for s in 0..2u64 {
        let Some(off) = s
            .checked_mul(slot_blocks)
            .and_then(|x| x.checked_add(1))
            .and_then(|x| x.checked_mul(B))
            .filter(|&o| o + 64 <= img.len() as u64)
        else {
            continue;
        };
        let off = off as usize;
        let len = le64(img, off + 24);
        let end = (off as u64 + 64).saturating_add(len).min(img.len() as u64) as usize;
        let pcrc = crc32c(&img[off + 64..end]);
        img[off + 32..off + 36].copy_from_slice(&pcrc.to_le_bytes());
        let hcrc = crc32c(&img[off..off + 36]);
        img[off + 36..off + 40].copy_from_slice(&hcrc.to_le_bytes());
    }
}

/// Applies the input's edits to a built image.
fn edit(i: &mut Input<'_>, img: &mut [u8]) {
    let slot_blocks = le64(img, 32);
    let data_start = 1 + 2 * slot_blocks;
    let fs_id = le64(img, 16);
    let slot_off = |s: u64| ((1 + s * slot_blocks) * B) as usize;
    if i.chance(60) {
        // A synthesised checkpoint.
        let total = match i.below(4) {
            0 => DEV_BLOCKS,
            _ => FS_BLOCKS,
        };
        let payload = synth_payload(i, data_start, total);
        let generation = match i.below(4) {
            0 => i.edge_u64(),
            _ => 2 + i.below(4),
        };
        let s = if i.chance(230) {
            generation % 2
        } else {
            1 - generation % 2
        };
        let off = slot_off(s);
        let room = (slot_blocks * B) as usize - 64;
        if payload.len() <= room {
            img[off..off + 8].copy_from_slice(b"TFSCKPT1");
            img[off + 8..off + 16].copy_from_slice(&fs_id.to_le_bytes());
            img[off + 16..off + 24].copy_from_slice(&generation.to_le_bytes());
            img[off + 24..off + 32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
            img[off + 40..off + 64].fill(0);
            img[off + 64..off + 64 + payload.len()].copy_from_slice(&payload);
        }
        if total == DEV_BLOCKS {
            img[24..32].copy_from_slice(&DEV_BLOCKS.to_le_bytes());
        }
    }
    let edits = i.below(6);
    for _ in 0..edits {
        // Where: the superblock, a slot header, or a slot payload.
        let at = match i.below(4) {
            0 => i.below(64) as usize,
            1 => slot_off(i.below(2)) + i.below(64) as usize,
            _ => {
                let s = i.below(2);
                let len = le64(img, slot_off(s) + 24).min(slot_blocks * B - 64);
                slot_off(s) + 64 + i.below(len.max(1)) as usize
            }
        };
        match i.below(4) {
            0 => img[at] ^= 1 << i.below(8),
            1 => img[at] = i.u8(),
            _ => {
                // An 8-byte field (superblock and header fields are 8-byte aligned).
                let at = at & !7;
                let v = match i.below(4) {
                    0 => i.edge_u64(),
                    1 => le64(img, at).wrapping_add(1),
                    2 => le64(img, at).wrapping_sub(1),
                    _ => i.below(2 * DEV_BLOCKS),
                };
                img[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    if !i.chance(20) {
        fix_checksums(img);
    }
}

/// What the checks read of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileView {
    ino: Ino,
    size: u64,
    /// `(pos, bytes)` windows read.
    windows: Vec<(u64, Vec<u8>)>,
}

struct Checker<'a> {
    fs: &'a TestFs,
    mem: &'a MemDevice,
    data_start: u64,
    total: u64,
    /// The device before open.
    before: &'a [u8],
}

impl Checker<'_> {
    /// Panics if a byte past the filesystem's end (image bytes past a fuzzed
    /// `total_blocks`, then the canary guard) changed since before open.
    fn untouched_past_end(&self, what: &str) {
        untouched_past_end(self.mem, self.before, self.total, what);
    }

    /// fsck through the public API; returns what every file reads as.
    fn check(&self, what: &str) -> BTreeMap<String, FileView> {
        let fs = self.fs;
        let list = fs.list();
        let mut out = BTreeMap::new();
        let mut refs: BTreeMap<u64, u32> = BTreeMap::new();
        let mut names = std::collections::BTreeSet::new();
        for (name, ino) in &list {
            assert!(names.insert(ino.0), "{what}: inode {ino} listed twice");
            assert_eq!(fs.lookup(name).ok(), Some(*ino), "{what}: lookup({name:?})");
            let st = fs
                .stat(*ino)
                .unwrap_or_else(|e| panic!("{what}: stat {ino}: {e:?}"));
            let ext = fs.extents(*ino).unwrap();
            let mut blocks = 0;
            for e in &ext {
                assert!(
                    e.dev_block >= self.data_start
                        && e.dev_block
                            .checked_add(e.len)
                            .is_some_and(|x| x <= self.total),
                    "{what}: {name:?} has extent {e:?} outside the data area {}..{}",
                    self.data_start,
                    self.total
                );
                blocks += e.len;
                for b in e.dev_block..e.dev_block + e.len {
                    *refs.entry(b).or_default() += 1;
                }
            }
            assert_eq!(st.blocks, blocks, "{what}: {name:?} stat blocks vs extents");
            out.insert(name.clone(), self.view(*ino, st.size, &ext, what));
        }
        for (&b, &n) in &refs {
            assert_eq!(
                fs.block_refcount(b),
                n,
                "{what}: reference count of block {b}"
            );
        }
        let sf = fs.statfs();
        assert_eq!(sf.files, list.len() as u64, "{what}: statfs files");
        assert_eq!(
            sf.blocks,
            self.total - self.data_start,
            "{what}: statfs blocks"
        );
        assert_eq!(
            sf.free + sf.busy + refs.len() as u64,
            sf.blocks,
            "{what}: free + busy + referenced blocks vs the data area"
        );
        out
    }

    /// Reads a file's windows and checks them against its extents and the device.
    fn view(&self, ino: Ino, size: u64, ext: &[dax_testdev::ExtentInfo], what: &str) -> FileView {
        let mut windows = Vec::new();
        let tail = size.saturating_sub(B);
        for (pos, len) in [(0, size.min(WINDOW)), (tail, size - tail)] {
            if len == 0 || windows.iter().any(|(p, _)| *p == pos) {
                continue;
            }
            let mut buf = vec![0xEEu8; len as usize];
            let n = self
                .fs
                .read(ino, pos, &mut buf)
                .unwrap_or_else(|e| panic!("{what}: read of inode {ino} at {pos}: {e:?}"));
            assert_eq!(n as u64, len, "{what}: short read of inode {ino} at {pos}");
            // What the extents say these bytes are.
            let mut at = pos;
            while at < pos + len {
                let fb = at / B;
                let in_block = (at % B) as usize;
                let n = (B as usize - in_block).min((pos + len - at) as usize);
                let want = match ext
                    .iter()
                    .find(|e| e.file_block <= fb && fb - e.file_block < e.len)
                {
                    Some(e) if !e.unwritten => {
                        let d = (e.dev_block + (fb - e.file_block)) * B + in_block as u64;
                        peek(self.mem, d, n)
                    }
                    _ => vec![0u8; n],
                };
                let got = &buf[(at - pos) as usize..(at - pos) as usize + n];
                assert!(
                    got == &want[..],
                    "{what}: inode {ino} byte {at}.. reads differently from its extents"
                );
                at += n as u64;
            }
            windows.push((pos, buf));
        }
        FileView { ino, size, windows }
    }
}

fn untouched_past_end(mem: &MemDevice, before: &[u8], total: u64, what: &str) {
    let start = total * B;
    let now = peek(mem, start, (DEV_BYTES - start) as usize);
    if now[..] != before[start as usize..] {
        let k = (0..now.len())
            .find(|&k| now[k] != before[start as usize + k])
            .unwrap();
        panic!(
            "stray write: device byte {:#x} past the filesystem's end ({} blocks) changed ({what})",
            start + k as u64,
            total
        );
    }
}

/// Errors a fuzzed filesystem may answer an operation with.
fn allowed(e: &DaxError) -> bool {
    matches!(
        e,
        DaxError::NoSpace { .. }
            | DaxError::FileTooBig { .. }
            | DaxError::InvalidArgument { .. }
            | DaxError::NotFound { .. }
            | DaxError::Exists { .. }
            | DaxError::NameTooLong { .. }
            | DaxError::NotSupported { .. }
    )
}

fn use_fs(i: &mut Input<'_>, c: &Checker<'_>, mut views: BTreeMap<String, FileView>) {
    let fs = c.fs;
    for step in 0..MAX_OPS {
        if i.is_empty() {
            break;
        }
        let names: Vec<String> = views.keys().cloned().collect();
        let target =
            (!names.is_empty()).then(|| names[i.below(names.len() as u64) as usize].clone());
        let ino = target.as_ref().map(|n| views[n].ino);
        let what = format!("op {step}");
        let touched: Option<String> = match (i.below(8), ino) {
            (0..=2, Some(ino)) => {
                let size = views[target.as_ref().unwrap()].size;
                let pos = match i.below(3) {
                    0 => i.below(size.min(1 << 20) + 1),
                    1 => size.saturating_sub(i.below(B)),
                    _ => i.edge_u64() % (1 << 40),
                };
                let data = super::seeded(i.u64(), i.range(1, 2 * B) as usize);
                match fs.write(ino, pos, &data) {
                    Ok(n) => {
                        let mut back = vec![0u8; n];
                        assert_eq!(
                            fs.read(ino, pos, &mut back).unwrap(),
                            n,
                            "{what}: read back"
                        );
                        assert!(
                            back == data[..n],
                            "{what}: wrote {n} bytes at {pos}, read others"
                        );
                    }
                    Err(e) => assert!(allowed(&e), "{what}: write at {pos}: {e:?}"),
                }
                target
            }
            (3, Some(ino)) => {
                if let Err(e) = fs.truncate(ino, i.below(24 * B)) {
                    assert!(allowed(&e), "{what}: truncate: {e:?}");
                }
                target
            }
            (4, Some(ino)) => {
                let mode = FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE;
                if let Err(e) = fs.fallocate(ino, mode, i.below(24 * B), i.range(1, 8 * B)) {
                    assert!(allowed(&e), "{what}: punch: {e:?}");
                }
                target
            }
            (5, Some(_)) => {
                let n = target.unwrap();
                fs.unlink(&n)
                    .unwrap_or_else(|e| panic!("{what}: unlink {n:?}: {e:?}"));
                None
            }
            (6, _) => {
                let n = format!("new{step}");
                match fs.create(&n) {
                    Ok(ino) => {
                        if let Err(e) = fs.write(ino, i.below(8 * B), &super::seeded(i.u64(), 5000))
                        {
                            assert!(allowed(&e), "{what}: write to a new file: {e:?}");
                        }
                    }
                    Err(e) => assert!(allowed(&e), "{what}: create: {e:?}"),
                }
                None
            }
            (_, Some(ino)) => {
                if let Err(e) = fs.fsync(ino) {
                    assert!(allowed(&e), "{what}: fsync: {e:?}");
                }
                None
            }
            _ => None,
        };
        c.untouched_past_end(&what);
        let now = c.check(&what);
        for (n, v) in &views {
            if Some(n) == touched.as_ref() || !now.contains_key(n) {
                continue;
            }
            assert!(
                now[n] == *v,
                "{what}: file {n:?} changed though the operation did not touch it"
            );
        }
        views = now;
    }
}

/// The fuzz target (see the module docs).
pub fn run(data: &[u8]) {
    let mut i = Input::new(data);
    let mut img = if i.chance(12) {
        let mut v = i.bytes(3 * B as usize).to_vec();
        v.resize((FS_BLOCKS * B) as usize, 0);
        v
    } else {
        let mut img = build_image(&mut i);
        edit(&mut i, &mut img);
        img
    };
    img.truncate((FS_BLOCKS * B) as usize);
    let d = dev(DEV_BLOCKS);
    let mem = d.driver();
    mem.poke(0, &img).unwrap();
    fill_canaries(mem, FS_BLOCKS * B, DEV_BYTES);
    let before = peek(mem, 0, DEV_BYTES as usize);
    let opened = TestFs::open(d.clone());
    let after = peek(mem, 0, DEV_BYTES as usize);
    let fs = match opened {
        Err(e) => {
            assert!(
                matches!(
                    e,
                    DaxError::Corrupted { .. } | DaxError::InvalidArgument { .. }
                ),
                "open failed with {e:?}: not a clear format error"
            );
            assert!(before == after, "a failed open wrote to the device");
            return;
        }
        Ok(fs) => fs,
    };
    assert!(before == after, "mount wrote to the device");
    let layout = fs.layout();
    let total = layout.total_blocks;
    assert!(
        total <= DEV_BLOCKS && layout.data_start < total,
        "{layout:?}"
    );
    let c = Checker {
        fs: &fs,
        mem,
        data_start: layout.data_start,
        total,
        before: &before,
    };
    let views = c.check("after open");
    use_fs(&mut i, &c, views);
    let last = c.check("before unmount");
    let unmounted = fs.unmount();
    untouched_past_end(mem, &before, total, "unmount");
    if let Err(e) = unmounted {
        // The metadata may have outgrown a fuzzed slot.
        assert!(matches!(e, DaxError::NoSpace { .. }), "unmount: {e:?}");
        return;
    }
    let fs = TestFs::open(d.clone()).unwrap_or_else(|e| panic!("reopen after unmount: {e:?}"));
    let c = Checker {
        fs: &fs,
        mem,
        data_start: layout.data_start,
        total,
        before: &before,
    };
    let again = c.check("after reopen");
    if again != last {
        let diff: Vec<&String> = last
            .keys()
            .chain(again.keys())
            .filter(|n| {
                last.get(*n).map(|v| (v.ino, v.size)) != again.get(*n).map(|v| (v.ino, v.size))
            })
            .collect();
        panic!("reopen shows other files or contents (files differing in inode or size: {diff:?})");
    }
    drop(fs);
    untouched_past_end(mem, &before, total, "reopen");
    // The guard past the image still holds its canaries.
    assert_canaries(mem, FS_BLOCKS.max(total) * B, DEV_BYTES, "the guard");
}
