//! The on-device format: superblock and checkpoint slots (see the module docs of
//! [`crate::testfs`] for the layout), CRC-32C, and a bounds-checked decoder that turns
//! every malformed byte into an error rather than a panic, and every payload that does
//! not describe one directory tree (dangling entries, a directory named twice, a
//! cycle, a wrong link count) into `EUCLEAN` ([`check_tree`]).
//!
//! Locks: none.

use std::collections::{BTreeMap, BTreeSet};

use dax_device::DaxError;

use super::extent::{Extent, ExtentMap};
use super::rangeset::RangeSet;
use super::time::{Times, Timespec};
use super::{BLOCK_SIZE, MAX_FILE_BLOCKS, MAX_NAME_LEN, ROOT};
use dax_iomap::MAX_FILE_SIZE;

/// The largest inode number TestFs hands out: `ino_t` as userspace sees it is signed
/// in places (`off_t`-like uses, `stat` in 32-bit emulations aside), so stay within
/// `i64`. A checkpoint whose next number lies beyond is corrupt; running out is
/// `ENOSPC`.
pub(crate) const MAX_INO: u64 = i64::MAX as u64;
/// Encoded bytes of one inode record without extents or entries: number, kind, mode,
/// uid, gid, nlink, three times, and the file's size and extent count or the
/// directory's parent and entry count (see [`Image::encode`]).
pub(crate) const INODE_BYTES: u64 = 8 + 1 + 4 * 4 + 3 * (8 + 4) + (8 + 4);

/// Encoded bytes of one directory entry named `name`: inode number, name length,
/// name.
pub(crate) fn entry_bytes(name: &str) -> u64 {
    8 + 2 + name.len() as u64
}

/// Superblock magic.
pub(crate) const SB_MAGIC: [u8; 8] = *b"DAXRSTFS";
/// Checkpoint slot magic.
pub(crate) const CKPT_MAGIC: [u8; 8] = *b"TFSCKPT1";
/// Format version: 2 since TestFs has a directory tree and attributes. Version 1
/// (one flat namespace, no attributes) is refused at mount with `EINVAL`.
pub(crate) const VERSION: u32 = 2;
/// Bytes of a checkpoint slot header (the payload follows).
pub(crate) const CKPT_HEADER: usize = 64;
/// Bytes of the superblock that carry data (the rest of block 0 is zero).
pub(crate) const SB_LEN: usize = 64;

const EXT_UNWRITTEN: u8 = 1 << 0;
const EXT_SHARED: u8 = 1 << 1;

/// Inode kinds in a checkpoint record.
const KIND_FILE: u8 = 1;
const KIND_DIR: u8 = 2;

/// CRC-32C (Castagnoli, reflected, as used by ext4 and XFS metadata).
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// A corrupt or foreign structure: `EUCLEAN` (the kernel's `EFSCORRUPTED`).
pub(crate) fn corrupt(what: &'static str) -> DaxError {
    DaxError::Corrupted { what }
}

/// Block 0: what mkfs decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Superblock {
    /// Random identity of this mkfs; checkpoints carry it.
    pub(crate) fs_id: u64,
    /// Device blocks the filesystem spans.
    pub(crate) total_blocks: u64,
    /// Blocks per checkpoint slot.
    pub(crate) slot_blocks: u64,
}

impl Superblock {
    /// First block of slot `i` (0 or 1).
    pub(crate) fn slot_start(&self, i: u64) -> u64 {
        1 + i * self.slot_blocks
    }

    /// First data block.
    pub(crate) fn data_start(&self) -> u64 {
        1 + 2 * self.slot_blocks
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(SB_LEN);
        w.extend_from_slice(&SB_MAGIC);
        put_u32(&mut w, VERSION);
        put_u32(&mut w, BLOCK_SIZE as u32);
        put_u64(&mut w, self.fs_id);
        put_u64(&mut w, self.total_blocks);
        put_u64(&mut w, self.slot_blocks);
        let crc = crc32c(&w);
        put_u32(&mut w, crc);
        w.resize(SB_LEN, 0);
        w
    }

    /// Decodes block 0 of a device of `dev_blocks` blocks.
    pub(crate) fn decode(b: &[u8], dev_blocks: u64) -> Result<Superblock, DaxError> {
        let mut r = Reader::new(b);
        if r.bytes(8)? != SB_MAGIC {
            return Err(DaxError::InvalidArgument {
                what: "not a TestFs device (bad superblock magic)",
            });
        }
        let version = r.u32()?;
        let bs = r.u32()?;
        let fs_id = r.u64()?;
        let total_blocks = r.u64()?;
        let slot_blocks = r.u64()?;
        let body = r.pos;
        let crc = r.u32()?;
        if crc != crc32c(&b[..body]) {
            return Err(corrupt("TestFs superblock checksum mismatch"));
        }
        if version == 1 {
            return Err(DaxError::InvalidArgument {
                what: "TestFs format version 1 (flat namespace, no attributes) is no longer supported: mkfs the device again",
            });
        }
        if version != VERSION || bs as usize != BLOCK_SIZE {
            return Err(DaxError::InvalidArgument {
                what: "unsupported TestFs version or block size",
            });
        }
        let sb = Superblock {
            fs_id,
            total_blocks,
            slot_blocks,
        };
        let data_start = slot_blocks
            .checked_mul(2)
            .and_then(|x| x.checked_add(1))
            .ok_or(corrupt("TestFs superblock geometry overflows"))?;
        if slot_blocks == 0 || data_start >= total_blocks || total_blocks > dev_blocks {
            return Err(corrupt(
                "TestFs superblock geometry does not fit the device",
            ));
        }
        Ok(sb)
    }
}

/// One inode as a checkpoint records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InodeRecord {
    pub(crate) ino: u64,
    /// Permission bits (at most `0o7777`).
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) nlink: u32,
    pub(crate) times: Times,
    pub(crate) body: Body,
}

/// What a file or a directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// A regular file: its size and block map.
    File { size: u64, extents: ExtentMap },
    /// A directory: its parent and its entries (name, inode), sorted by name.
    Dir {
        parent: u64,
        entries: Vec<(String, u64)>,
    },
}

impl InodeRecord {
    /// The block map of a file, `None` for a directory.
    pub(crate) fn extents(&self) -> Option<&ExtentMap> {
        match &self.body {
            Body::File { extents, .. } => Some(extents),
            Body::Dir { .. } => None,
        }
    }
}

/// The whole metadata image a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Image {
    pub(crate) next_ino: u64,
    pub(crate) inodes: Vec<InodeRecord>,
    /// `(start, len, count)` runs covering every referenced block, sorted, disjoint.
    pub(crate) refcounts: Vec<(u64, u64, u32)>,
}

/// The reference-count runs of every block the extent maps reference.
pub(crate) fn derive_refcounts<'a>(
    maps: impl Iterator<Item = &'a ExtentMap>,
) -> Vec<(u64, u64, u32)> {
    // Sweep over +1/-1 events at extent starts and ends.
    let mut events: BTreeMap<u64, i64> = BTreeMap::new();
    for m in maps {
        for (_, e) in m.iter() {
            *events.entry(e.dev).or_default() += 1;
            *events.entry(e.dev + e.len).or_default() -= 1;
        }
    }
    let mut out: Vec<(u64, u64, u32)> = Vec::new();
    let mut depth: i64 = 0;
    let mut prev = 0;
    for (&at, &delta) in &events {
        if depth > 0 && at > prev {
            let count = u32::try_from(depth).unwrap_or(u32::MAX);
            match out.last_mut() {
                Some(last) if last.0 + last.1 == prev && last.2 == count => last.1 += at - prev,
                _ => out.push((prev, at - prev, count)),
            }
        }
        depth += delta;
        prev = at;
    }
    out
}

/// The set of blocks `runs` covers.
pub(crate) fn referenced_set(runs: &[(u64, u64, u32)]) -> RangeSet {
    let mut s = RangeSet::new();
    for &(start, len, _) in runs {
        s.insert(start, start + len);
    }
    s
}

impl Image {
    /// The slot bytes (header and payload) for generation `generation`.
    pub(crate) fn encode(&self, fs_id: u64, generation: u64) -> Vec<u8> {
        let mut p = Vec::new();
        put_u64(&mut p, self.next_ino);
        put_u32(&mut p, self.inodes.len() as u32);
        for i in &self.inodes {
            put_u64(&mut p, i.ino);
            p.push(match i.body {
                Body::File { .. } => KIND_FILE,
                Body::Dir { .. } => KIND_DIR,
            });
            put_u32(&mut p, i.mode);
            put_u32(&mut p, i.uid);
            put_u32(&mut p, i.gid);
            put_u32(&mut p, i.nlink);
            for t in [i.times.atime, i.times.mtime, i.times.ctime] {
                put_u64(&mut p, t.sec as u64);
                put_u32(&mut p, t.nsec);
            }
            match &i.body {
                Body::File { size, extents } => {
                    put_u64(&mut p, *size);
                    put_u32(&mut p, extents.count() as u32);
                    for (fb, e) in extents.iter() {
                        put_u64(&mut p, fb);
                        put_u64(&mut p, e.dev);
                        put_u64(&mut p, e.len);
                        let mut f = 0;
                        if e.unwritten {
                            f |= EXT_UNWRITTEN;
                        }
                        if e.shared {
                            f |= EXT_SHARED;
                        }
                        p.push(f);
                    }
                }
                Body::Dir { parent, entries } => {
                    put_u64(&mut p, *parent);
                    put_u32(&mut p, entries.len() as u32);
                    for (name, ino) in entries {
                        put_u64(&mut p, *ino);
                        put_u16(&mut p, name.len() as u16);
                        p.extend_from_slice(name.as_bytes());
                    }
                }
            }
        }
        put_u32(&mut p, self.refcounts.len() as u32);
        for &(s, len, c) in &self.refcounts {
            put_u64(&mut p, s);
            put_u64(&mut p, len);
            put_u32(&mut p, c);
        }
        let mut h = Vec::with_capacity(CKPT_HEADER + p.len());
        h.extend_from_slice(&CKPT_MAGIC);
        put_u64(&mut h, fs_id);
        put_u64(&mut h, generation);
        put_u64(&mut h, p.len() as u64);
        put_u32(&mut h, crc32c(&p));
        let hcrc = crc32c(&h);
        put_u32(&mut h, hcrc);
        h.resize(CKPT_HEADER, 0);
        h.extend_from_slice(&p);
        h
    }

    /// Decodes a slot header: `(generation, payload_len)` if it is a valid header of
    /// filesystem `fs_id` whose payload fits in `max_payload` bytes.
    pub(crate) fn decode_header(
        h: &[u8],
        fs_id: u64,
        max_payload: u64,
    ) -> Result<(u64, u64, u32), DaxError> {
        let mut r = Reader::new(h);
        if r.bytes(8)? != CKPT_MAGIC {
            return Err(corrupt("checkpoint slot has no checkpoint"));
        }
        let id = r.u64()?;
        let generation = r.u64()?;
        let len = r.u64()?;
        let pcrc = r.u32()?;
        let body = r.pos;
        let hcrc = r.u32()?;
        if hcrc != crc32c(&h[..body]) {
            return Err(corrupt("checkpoint header checksum mismatch"));
        }
        if id != fs_id {
            return Err(corrupt("checkpoint belongs to another mkfs"));
        }
        if len > max_payload || generation == 0 {
            return Err(corrupt("checkpoint header out of range"));
        }
        Ok((generation, len, pcrc))
    }

    /// Decodes and validates a payload for a data area `data_start .. total_blocks`:
    /// every field in range, and the directory tree whole (see [`check_tree`]).
    pub(crate) fn decode_payload(
        p: &[u8],
        crc: u32,
        data_start: u64,
        total_blocks: u64,
    ) -> Result<Image, DaxError> {
        if crc32c(p) != crc {
            return Err(corrupt("checkpoint payload checksum mismatch"));
        }
        let mut r = Reader::new(p);
        let next_ino = r.u64()?;
        if next_ino > MAX_INO + 1 {
            return Err(corrupt("checkpoint's next inode number is out of range"));
        }
        let n = r.u32()?;
        let mut inodes = Vec::new();
        let mut inos = BTreeSet::new();
        for _ in 0..n {
            let ino = r.u64()?;
            if ino == 0 || ino >= next_ino || !inos.insert(ino) {
                return Err(corrupt(
                    "checkpoint inode number is out of range or duplicated",
                ));
            }
            let kind = r.u8()?;
            let (mode, uid, gid, nlink) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            if mode & !0o7777 != 0 {
                return Err(corrupt("checkpoint inode mode has bits past 0o7777"));
            }
            let mut t = [Timespec::default(); 3];
            for t in &mut t {
                *t = Timespec {
                    sec: r.u64()? as i64,
                    nsec: r.u32()?,
                };
                if t.to_system().is_none() {
                    return Err(corrupt("checkpoint timestamp is out of range"));
                }
            }
            let times = Times {
                atime: t[0],
                mtime: t[1],
                ctime: t[2],
            };
            let body = match kind {
                KIND_FILE => Self::decode_file(&mut r, data_start, total_blocks)?,
                KIND_DIR => Self::decode_dir(&mut r)?,
                _ => return Err(corrupt("checkpoint inode kind is unknown")),
            };
            inodes.push(InodeRecord {
                ino,
                mode,
                uid,
                gid,
                nlink,
                times,
                body,
            });
        }
        let nr = r.u32()?;
        let mut refcounts = Vec::new();
        let mut prev_end = data_start;
        for _ in 0..nr {
            let s = r.u64()?;
            let len = r.u64()?;
            let c = r.u32()?;
            let ok = len > 0
                && c > 0
                && s >= prev_end
                && s.checked_add(len).is_some_and(|e| e <= total_blocks);
            if !ok {
                return Err(corrupt("checkpoint reference count run is out of range"));
            }
            prev_end = s + len;
            match refcounts.last_mut() {
                Some((ls, ll, lc)) if *ls + *ll == s && *lc == c => *ll += len,
                _ => refcounts.push((s, len, c)),
            }
        }
        if r.pos != p.len() {
            return Err(corrupt("checkpoint payload has trailing bytes"));
        }
        if derive_refcounts(inodes.iter().filter_map(InodeRecord::extents)) != refcounts {
            return Err(corrupt(
                "checkpoint reference counts disagree with the extent maps",
            ));
        }
        check_tree(&inodes)?;
        Ok(Image {
            next_ino,
            inodes,
            refcounts,
        })
    }

    /// A file's size and extents.
    fn decode_file(
        r: &mut Reader<'_>,
        data_start: u64,
        total_blocks: u64,
    ) -> Result<Body, DaxError> {
        let size = r.u64()?;
        if size > MAX_FILE_SIZE {
            return Err(corrupt("checkpoint file size is too large"));
        }
        let ne = r.u32()?;
        let mut extents = ExtentMap::new();
        let mut prev_end = 0u64;
        for _ in 0..ne {
            let fb = r.u64()?;
            let dev = r.u64()?;
            let len = r.u64()?;
            let f = r.u8()?;
            let fend = fb.checked_add(len);
            let dend = dev.checked_add(len);
            let ok = len > 0
                && fb >= prev_end
                && fend.is_some_and(|e| e <= MAX_FILE_BLOCKS)
                && dev >= data_start
                && dend.is_some_and(|e| e <= total_blocks)
                && f & !(EXT_UNWRITTEN | EXT_SHARED) == 0;
            if !ok {
                return Err(corrupt("checkpoint extent is out of range or unordered"));
            }
            prev_end = fb + len;
            // Inserting one by one may merge what a sloppy writer split: harmless.
            extents.insert(
                fb,
                Extent {
                    dev,
                    len,
                    unwritten: f & EXT_UNWRITTEN != 0,
                    shared: f & EXT_SHARED != 0,
                },
            );
        }
        Ok(Body::File { size, extents })
    }

    /// A directory's parent and entries: valid names, strictly ascending (so no name
    /// twice).
    fn decode_dir(r: &mut Reader<'_>) -> Result<Body, DaxError> {
        let parent = r.u64()?;
        let ne = r.u32()?;
        let mut entries: Vec<(String, u64)> = Vec::new();
        for _ in 0..ne {
            let ino = r.u64()?;
            let name_len = r.u16()? as usize;
            let name = std::str::from_utf8(r.bytes(name_len)?)
                .map_err(|_| corrupt("checkpoint file name is not UTF-8"))?
                .to_owned();
            if super::check_name(&name).is_err() || name.len() > MAX_NAME_LEN {
                return Err(corrupt("checkpoint file name is invalid"));
            }
            if entries.last().is_some_and(|(last, _)| *last >= name) {
                return Err(corrupt(
                    "checkpoint directory entries are duplicated or unsorted",
                ));
            }
            entries.push((name, ino));
        }
        Ok(Body::Dir { parent, entries })
    }
}

/// Checks that the inodes form one directory tree rooted at inode [`ROOT`]: the root
/// is a directory and its own parent; every entry names an inode that exists and is
/// not the root; a directory is named by exactly one entry, of the directory its
/// parent field names, so no directory is reachable twice; every inode is reachable
/// from the root, so there is no cycle (a cycle would be cut off from the root); a
/// file's link count is the number of entries naming it, a directory's 2 plus its
/// subdirectories. Anything else is `EUCLEAN`.
pub(crate) fn check_tree(inodes: &[InodeRecord]) -> Result<(), DaxError> {
    let by_ino: BTreeMap<u64, &InodeRecord> = inodes.iter().map(|i| (i.ino, i)).collect();
    match by_ino.get(&ROOT).map(|r| &r.body) {
        Some(Body::Dir { parent, .. }) if *parent == ROOT => {}
        _ => return Err(corrupt("checkpoint has no root directory")),
    }
    // How many entries name each inode.
    let mut refs: BTreeMap<u64, u64> = BTreeMap::new();
    for rec in inodes {
        let Body::Dir { entries, .. } = &rec.body else {
            continue;
        };
        let mut subdirs = 0u64;
        for (_, child) in entries {
            let Some(c) = by_ino.get(child) else {
                return Err(corrupt("checkpoint directory entry names no inode"));
            };
            if *child == ROOT {
                return Err(corrupt("checkpoint directory entry names the root"));
            }
            let named = refs.entry(*child).or_insert(0);
            *named += 1;
            if let Body::Dir { parent, .. } = &c.body {
                subdirs += 1;
                if *named > 1 {
                    return Err(corrupt("checkpoint directory is named twice"));
                }
                if *parent != rec.ino {
                    return Err(corrupt(
                        "checkpoint directory's parent is not the directory naming it",
                    ));
                }
            }
        }
        if u64::from(rec.nlink) != subdirs + 2 {
            return Err(corrupt(
                "checkpoint directory link count disagrees with its entries",
            ));
        }
    }
    for rec in inodes {
        let named = refs.get(&rec.ino).copied().unwrap_or(0);
        match rec.body {
            Body::File { .. } if named != u64::from(rec.nlink) || named == 0 => {
                return Err(corrupt(
                    "checkpoint file link count disagrees with its entries",
                ));
            }
            Body::Dir { .. } if rec.ino != ROOT && named != 1 => {
                return Err(corrupt("checkpoint directory is not named exactly once"));
            }
            _ => {}
        }
    }
    // Reachability from the root: each directory is named once by its parent, so a
    // walk down the entries visits each at most once; one it never visits hangs in a
    // cycle of its own.
    let mut seen = BTreeSet::from([ROOT]);
    let mut todo = vec![ROOT];
    while let Some(d) = todo.pop() {
        if let Some(Body::Dir { entries, .. }) = by_ino.get(&d).map(|r| &r.body) {
            for (_, child) in entries {
                if seen.insert(*child) {
                    todo.push(*child);
                }
            }
        }
    }
    if seen.len() != by_ino.len() {
        return Err(corrupt(
            "checkpoint has inodes unreachable from the root (a cycle or an orphan)",
        ));
    }
    Ok(())
}

fn put_u16(w: &mut Vec<u8>, v: u16) {
    w.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_le_bytes());
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DaxError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(corrupt("metadata record is truncated"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DaxError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DaxError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DaxError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DaxError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DaxError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_answer() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    fn t(sec: i64) -> Times {
        Times {
            atime: Timespec { sec, nsec: 1 },
            mtime: Timespec {
                sec: -sec,
                nsec: 999_999_999,
            },
            ctime: Timespec { sec: 3, nsec: 0 },
        }
    }

    fn file(ino: u64, nlink: u32, size: u64, extents: ExtentMap) -> InodeRecord {
        InodeRecord {
            ino,
            mode: 0o644,
            uid: 1000,
            gid: 100,
            nlink,
            times: t(ino as i64),
            body: Body::File { size, extents },
        }
    }

    fn dir(ino: u64, parent: u64, nlink: u32, entries: &[(&str, u64)]) -> InodeRecord {
        InodeRecord {
            ino,
            mode: 0o755,
            uid: 0,
            gid: 0,
            nlink,
            times: t(7),
            body: Body::Dir {
                parent,
                entries: entries.iter().map(|&(n, i)| (n.to_owned(), i)).collect(),
            },
        }
    }

    /// `/a` (ino 2, also linked as `/d/a2`), `/b` (3), `/d` (4), `/d/e` (5, empty).
    fn sample() -> Image {
        let mut a = ExtentMap::new();
        a.insert(
            0,
            Extent {
                dev: 100,
                len: 4,
                unwritten: false,
                shared: true,
            },
        );
        a.insert(
            10,
            Extent {
                dev: 200,
                len: 2,
                unwritten: true,
                shared: false,
            },
        );
        let mut b = ExtentMap::new();
        b.insert(
            0,
            Extent {
                dev: 100,
                len: 4,
                unwritten: false,
                shared: true,
            },
        );
        let inodes = vec![
            dir(ROOT, ROOT, 3, &[("a", 2), ("b", 3), ("d", 4)]),
            file(2, 2, 5000, a),
            file(3, 1, 16384, b),
            dir(4, ROOT, 3, &[("a2", 2), ("e", 5)]),
            dir(5, 4, 2, &[]),
        ];
        let refcounts = derive_refcounts(inodes.iter().filter_map(InodeRecord::extents));
        assert_eq!(refcounts, vec![(100, 4, 2), (200, 2, 1)]);
        Image {
            next_ino: 6,
            inodes,
            refcounts,
        }
    }

    /// The costs admission charges are exactly what an empty file, an empty
    /// directory and an entry add to the encoded checkpoint.
    #[test]
    fn admission_costs_match_the_encoding() {
        let base = sample();
        let len = |img: &Image| img.encode(7, 1).len() as u64;
        let mut img = sample();
        img.inodes.push(file(6, 1, 0, ExtentMap::new()));
        assert_eq!(len(&img) - len(&base), INODE_BYTES);
        let mut img = sample();
        img.inodes.push(dir(6, ROOT, 2, &[]));
        assert_eq!(len(&img) - len(&base), INODE_BYTES);
        let mut img = sample();
        if let Body::Dir { entries, .. } = &mut img.inodes[0].body {
            entries.push(("a-longer-name".to_owned(), 3));
        }
        assert_eq!(len(&img) - len(&base), entry_bytes("a-longer-name"));
    }

    /// Encodes `img` with valid checksums and decodes it again.
    fn reencode(img: &Image) -> Result<Image, DaxError> {
        let bytes = img.encode(7, 1);
        let (_, len, crc) = Image::decode_header(&bytes[..CKPT_HEADER], 7, 1 << 20).unwrap();
        Image::decode_payload(
            &bytes[CKPT_HEADER..CKPT_HEADER + len as usize],
            crc,
            17,
            1000,
        )
    }

    #[test]
    fn malformed_trees_are_euclean_even_with_good_checksums() {
        type Edit = fn(&mut Image);
        fn entries(img: &mut Image, ino: u64) -> &mut Vec<(String, u64)> {
            let rec = img.inodes.iter_mut().find(|r| r.ino == ino).unwrap();
            match &mut rec.body {
                Body::Dir { entries, .. } => entries,
                Body::File { .. } => panic!("not a directory"),
            }
        }
        fn rec(img: &mut Image, ino: u64) -> &mut InodeRecord {
            img.inodes.iter_mut().find(|r| r.ino == ino).unwrap()
        }
        let cases: [(&str, Edit); 15] = [
            ("dangling entry", |i| entries(i, ROOT)[1].1 = 42),
            ("entry naming the root", |i| {
                entries(i, 5).push(("r".into(), ROOT))
            }),
            ("directory named twice", |i| {
                entries(i, 5).push(("again".into(), 4));
            }),
            ("cycle cut off from the root", |i| {
                // d/e becomes a directory holding d, and d leaves the root.
                entries(i, ROOT).retain(|(n, _)| n != "d");
                rec(i, ROOT).nlink = 2;
                entries(i, 5).push(("d".into(), 4));
                rec(i, 5).nlink = 3;
                if let Body::Dir { parent, .. } = &mut rec(i, 4).body {
                    *parent = 5;
                }
            }),
            ("file link count too high", |i| rec(i, 3).nlink = 2),
            ("file link count too low", |i| rec(i, 2).nlink = 1),
            ("directory link count", |i| rec(i, 4).nlink = 2),
            ("parent that is a file", |i| {
                if let Body::Dir { parent, .. } = &mut rec(i, 5).body {
                    *parent = 3;
                }
            }),
            ("duplicate names", |i| {
                let e = entries(i, ROOT);
                e[1].0 = "a".into();
            }),
            ("unsorted names", |i| entries(i, ROOT).swap(0, 1)),
            ("orphan file", |i| {
                entries(i, ROOT).retain(|(n, _)| n != "b");
                i.refcounts = vec![(100, 4, 2), (200, 2, 1)];
            }),
            ("root is a file", |i| {
                rec(i, ROOT).body = Body::File {
                    size: 0,
                    extents: ExtentMap::new(),
                };
            }),
            ("root with another parent", |i| {
                if let Body::Dir { parent, .. } = &mut rec(i, ROOT).body {
                    *parent = 4;
                }
            }),
            ("mode with file type bits", |i| rec(i, 3).mode = 0o100644),
            ("no root", |i| i.inodes.retain(|r| r.ino != ROOT)),
        ];
        assert_eq!(reencode(&sample()).unwrap(), sample());
        for (what, edit) in cases {
            let mut img = sample();
            edit(&mut img);
            let err = reencode(&img).expect_err(what);
            assert_eq!(err.errno(), libc::EUCLEAN, "{what}: {err}");
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "decodes every prefix of the payload: minutes under Miri (safe code only)"
    )]
    fn every_truncation_of_the_payload_is_an_error() {
        let bytes = sample().encode(7, 1);
        let p = &bytes[CKPT_HEADER..];
        for cut in 0..p.len() {
            let q = &p[..cut];
            let r = Image::decode_payload(q, crc32c(q), 17, 1000);
            assert_eq!(r.unwrap_err().errno(), libc::EUCLEAN, "cut at {cut}");
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "decodes the payload 10 times per byte: minutes under Miri (safe code only)"
    )]
    fn every_byte_change_with_a_fixed_checksum_decodes_or_is_euclean() {
        // The checksum stops random damage; this checks that the decoder itself never
        // panics on any value of any byte, and that what it accepts is a tree.
        let bytes = sample().encode(7, 1);
        let p = &bytes[CKPT_HEADER..];
        for i in 0..p.len() {
            for v in [
                0u8,
                1,
                2,
                3,
                6,
                0x7f,
                0x80,
                0xff,
                p[i] ^ 1,
                p[i].wrapping_add(1),
            ] {
                let mut q = p.to_vec();
                q[i] = v;
                match Image::decode_payload(&q, crc32c(&q), 17, 1000) {
                    Ok(img) => check_tree(&img.inodes).unwrap(),
                    Err(e) => assert_eq!(e.errno(), libc::EUCLEAN, "byte {i} = {v}"),
                }
            }
        }
    }

    #[test]
    fn round_trip() {
        let img = sample();
        let bytes = img.encode(7, 9);
        let (generation, len, crc) =
            Image::decode_header(&bytes[..CKPT_HEADER], 7, 1 << 20).unwrap();
        assert_eq!(generation, 9);
        let back = Image::decode_payload(
            &bytes[CKPT_HEADER..CKPT_HEADER + len as usize],
            crc,
            17,
            1000,
        )
        .unwrap();
        assert_eq!(back, img);
        assert!(Image::decode_header(&bytes[..CKPT_HEADER], 8, 1 << 20).is_err());
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "decodes the checkpoint 3 times per byte: minutes under Miri (safe code only)"
    )]
    fn every_single_byte_corruption_is_detected_without_panic() {
        let bytes = sample().encode(7, 9);
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let r = Image::decode_header(&b[..CKPT_HEADER], 7, 1 << 20).and_then(
                    |(_, len, crc)| {
                        let end = (CKPT_HEADER as u64 + len).min(b.len() as u64) as usize;
                        Image::decode_payload(&b[CKPT_HEADER..end], crc, 17, 1000)
                    },
                );
                // Bytes of the zero padding in the header are not covered.
                if (36 + 4..CKPT_HEADER).contains(&i) {
                    continue;
                }
                assert!(r.is_err(), "corruption at byte {i} went unnoticed");
            }
        }
    }

    #[test]
    fn payload_checks_reject_bad_geometry_even_with_a_good_crc() {
        let mut img = sample();
        let Body::File { extents, .. } = &mut img.inodes[1].body else {
            unreachable!()
        };
        extents.insert(
            20,
            Extent {
                dev: 5,
                len: 1,
                unwritten: false,
                shared: false,
            },
        );
        img.refcounts = derive_refcounts(img.inodes.iter().filter_map(InodeRecord::extents));
        let bytes = img.encode(7, 1);
        let (_, len, crc) = Image::decode_header(&bytes[..CKPT_HEADER], 7, 1 << 20).unwrap();
        let err = Image::decode_payload(
            &bytes[CKPT_HEADER..CKPT_HEADER + len as usize],
            crc,
            17,
            1000,
        )
        .unwrap_err();
        assert_eq!(err.errno(), libc::EUCLEAN);
    }

    #[test]
    fn superblock_round_trip_and_rejections() {
        let sb = Superblock {
            fs_id: 42,
            total_blocks: 1024,
            slot_blocks: 8,
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b, 1024).unwrap(), sb);
        assert_eq!(
            Superblock::decode(&b, 1000).unwrap_err().errno(),
            libc::EUCLEAN
        );
        assert_eq!(
            Superblock::decode(&[0u8; 64], 1024).unwrap_err().errno(),
            libc::EINVAL
        );
        let mut c = b.clone();
        c[20] ^= 1;
        assert_eq!(
            Superblock::decode(&c, 1024).unwrap_err().errno(),
            libc::EUCLEAN
        );
    }
}
