//! The on-device format: superblock and checkpoint slots (see the module docs of
//! [`crate::testfs`] for the layout), CRC-32C, and a bounds-checked decoder that turns
//! every malformed byte into an error rather than a panic.

use std::collections::{BTreeMap, BTreeSet};

use dax_device::DaxError;

use super::extent::{Extent, ExtentMap};
use super::rangeset::RangeSet;
use super::{BLOCK_SIZE, MAX_FILE_BLOCKS, MAX_NAME_LEN};
use dax_iomap::MAX_FILE_SIZE;

/// Superblock magic.
pub(crate) const SB_MAGIC: [u8; 8] = *b"DAXRSTFS";
/// Checkpoint slot magic.
pub(crate) const CKPT_MAGIC: [u8; 8] = *b"TFSCKPT1";
/// Format version.
pub(crate) const VERSION: u32 = 1;
/// Bytes of a checkpoint slot header (the payload follows).
pub(crate) const CKPT_HEADER: usize = 64;
/// Bytes of the superblock that carry data (the rest of block 0 is zero).
pub(crate) const SB_LEN: usize = 64;

const EXT_UNWRITTEN: u8 = 1 << 0;
const EXT_SHARED: u8 = 1 << 1;

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
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) extents: ExtentMap,
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
            put_u64(&mut p, i.size);
            put_u16(&mut p, i.name.len() as u16);
            p.extend_from_slice(i.name.as_bytes());
            put_u32(&mut p, i.extents.count() as u32);
            for (fb, e) in i.extents.iter() {
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

    /// Decodes and validates a payload for a data area `data_start .. total_blocks`.
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
        let n = r.u32()?;
        let mut inodes = Vec::new();
        let mut inos = BTreeSet::new();
        let mut names = BTreeSet::new();
        for _ in 0..n {
            let ino = r.u64()?;
            let size = r.u64()?;
            let name_len = r.u16()? as usize;
            let name = std::str::from_utf8(r.bytes(name_len)?)
                .map_err(|_| corrupt("checkpoint file name is not UTF-8"))?
                .to_owned();
            if super::check_name(&name).is_err() || name.len() > MAX_NAME_LEN {
                return Err(corrupt("checkpoint file name is invalid"));
            }
            if ino == 0 || ino >= next_ino || !inos.insert(ino) || !names.insert(name.clone()) {
                return Err(corrupt("checkpoint inode number or name is duplicated"));
            }
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
            inodes.push(InodeRecord {
                ino,
                name,
                size,
                extents,
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
        if derive_refcounts(inodes.iter().map(|i| &i.extents)) != refcounts {
            return Err(corrupt(
                "checkpoint reference counts disagree with the extent maps",
            ));
        }
        Ok(Image {
            next_ino,
            inodes,
            refcounts,
        })
    }
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
            InodeRecord {
                ino: 1,
                name: "a".into(),
                size: 5000,
                extents: a,
            },
            InodeRecord {
                ino: 2,
                name: "b".into(),
                size: 16384,
                extents: b,
            },
        ];
        let refcounts = derive_refcounts(inodes.iter().map(|i| &i.extents));
        assert_eq!(refcounts, vec![(100, 4, 2), (200, 2, 1)]);
        Image {
            next_ino: 3,
            inodes,
            refcounts,
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
        img.inodes[0].extents.insert(
            20,
            Extent {
                dev: 5,
                len: 1,
                unwritten: false,
                shared: false,
            },
        );
        img.refcounts = derive_refcounts(img.inodes.iter().map(|i| &i.extents));
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
