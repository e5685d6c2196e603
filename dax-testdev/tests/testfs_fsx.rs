//! fsx's method on TestFs + dax-iomap: random sequences of write, read, truncate,
//! fallocate (allocate, keep-size, punch hole, zero range with and without keep-size),
//! reflink and fsync on a
//! few files, each checked against a `Vec<u8>` shadow. After every step the file
//! size and the whole contents (so also the zeroed tail past an old EOF) must equal
//! the shadow. A failure prints the shrunk operation sequence and proptest's seed.
//!
//! Default: 128 sequences of up to 80 operations (a few seconds). Long mode:
//! `DAX_FSX_CASES=2000 cargo nextest run -p dax-testdev --test testfs_fsx`.

use std::sync::Arc;

use dax_device::DaxDevice;
use dax_testdev::{FallocMode, Ino, MemDevice, TestFs};
use proptest::prelude::*;
use proptest::test_runner::Config;

const BLOCK: u64 = 4096;
const FILES: usize = 3;
/// Largest offset an operation touches: files stay under 1 MiB + a block.
const MAX_OFF: u64 = 1 << 20;

#[derive(Debug, Clone)]
enum Op {
    Write {
        f: usize,
        pos: u64,
        len: u64,
        seed: u8,
    },
    Read {
        f: usize,
        pos: u64,
        len: u64,
    },
    Truncate {
        f: usize,
        size: u64,
    },
    Falloc {
        f: usize,
        mode: u8,
        pos: u64,
        len: u64,
    },
    Reflink {
        src: usize,
        dst: usize,
        src_blk: u64,
        dst_blk: u64,
        blocks: u64,
    },
    Fsync {
        f: usize,
    },
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..MAX_OFF,
        (0..MAX_OFF / BLOCK).prop_map(|b| b * BLOCK),
        (0..MAX_OFF / BLOCK).prop_map(|b| b * BLOCK + BLOCK - 1),
    ]
}

fn length() -> impl Strategy<Value = u64> {
    prop_oneof![
        1u64..64,
        1u64..3 * BLOCK,
        (1u64..64).prop_map(|b| b * BLOCK),
        1u64..300_000
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0..FILES;
    prop_oneof![
        4 => (f.clone(), offset(), length(), any::<u8>())
            .prop_map(|(f, pos, len, seed)| Op::Write { f, pos, len, seed }),
        2 => (f.clone(), offset(), length()).prop_map(|(f, pos, len)| Op::Read { f, pos, len }),
        2 => (f.clone(), offset()).prop_map(|(f, size)| Op::Truncate { f, size }),
        3 => (f.clone(), 0u8..5, offset(), length())
            .prop_map(|(f, mode, pos, len)| Op::Falloc { f, mode, pos, len }),
        2 => (f.clone(), f.clone(), 0u64..200, 0u64..200, 1u64..40).prop_map(
            |(src, dst, src_blk, dst_blk, blocks)| Op::Reflink { src, dst, src_blk, dst_blk, blocks }
        ),
        1 => f.prop_map(|f| Op::Fsync { f }),
    ]
}

fn data(len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(131).wrapping_add(seed) | 1)
        .collect()
}

struct World {
    fs: TestFs,
    inos: Vec<Ino>,
    shadow: Vec<Vec<u8>>,
}

impl World {
    fn new() -> Self {
        let dev: Arc<DaxDevice> = MemDevice::builder().size(48 << 20).build().unwrap();
        let fs = TestFs::mkfs(dev).unwrap();
        let inos = (0..FILES)
            .map(|i| fs.create(&format!("f{i}")).unwrap())
            .collect();
        World {
            fs,
            inos,
            shadow: vec![Vec::new(); FILES],
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Write { f, pos, len, seed } => {
                let d = data(len, seed);
                let n = self.fs.write(self.inos[f], pos, &d).unwrap();
                assert_eq!(n as u64, len);
                let s = &mut self.shadow[f];
                let end = (pos + len) as usize;
                if s.len() < end {
                    s.resize(end, 0);
                }
                s[pos as usize..end].copy_from_slice(&d);
            }
            Op::Read { f, pos, len } => {
                let mut buf = vec![0xEEu8; len as usize];
                let n = self.fs.read(self.inos[f], pos, &mut buf).unwrap();
                let s = &self.shadow[f];
                let want = s.len().saturating_sub(pos as usize).min(len as usize);
                assert_eq!(
                    n,
                    want,
                    "short read at {pos}+{len} of a {}-byte file",
                    s.len()
                );
                if n > 0 {
                    assert!(
                        buf[..n] == s[pos as usize..pos as usize + n],
                        "read data differs"
                    );
                }
            }
            Op::Truncate { f, size } => {
                self.fs.truncate(self.inos[f], size).unwrap();
                self.shadow[f].resize(size as usize, 0);
            }
            Op::Falloc { f, mode, pos, len } => {
                let s = &mut self.shadow[f];
                let end = (pos + len) as usize;
                let m = match mode {
                    0 => FallocMode::empty(),
                    1 => FallocMode::KEEP_SIZE,
                    2 => FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
                    3 => FallocMode::ZERO_RANGE,
                    _ => FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE,
                };
                self.fs.fallocate(self.inos[f], m, pos, len).unwrap();
                match mode {
                    0 | 3 if s.len() < end => s.resize(end, 0),
                    _ => {}
                }
                if mode >= 2 {
                    let stop = end.min(s.len());
                    if (pos as usize) < stop {
                        s[pos as usize..stop].fill(0);
                    }
                }
            }
            Op::Reflink {
                src,
                dst,
                src_blk,
                dst_blk,
                blocks,
            } => {
                let (so, d_o, len) = (src_blk * BLOCK, dst_blk * BLOCK, blocks * BLOCK);
                // Only requests the generic checks accept: whole blocks inside the source,
                // distinct files.
                if src == dst || so + len > self.shadow[src].len() as u64 {
                    return;
                }
                let n = self
                    .fs
                    .reflink(self.inos[src], so, self.inos[dst], d_o, len)
                    .unwrap();
                assert_eq!(n, len);
                let bytes = self.shadow[src][so as usize..(so + len) as usize].to_vec();
                let s = &mut self.shadow[dst];
                let end = (d_o + len) as usize;
                if s.len() < end {
                    s.resize(end, 0);
                }
                s[d_o as usize..end].copy_from_slice(&bytes);
            }
            Op::Fsync { f } => self.fs.fsync(self.inos[f]).unwrap(),
        }
    }

    fn check(&self) {
        for (f, s) in self.shadow.iter().enumerate() {
            let st = self.fs.stat(self.inos[f]).unwrap();
            assert_eq!(st.size, s.len() as u64, "size of file {f}");
            let mut all = vec![0xEEu8; s.len() + 100];
            let n = self.fs.read(self.inos[f], 0, &mut all).unwrap();
            assert_eq!(n, s.len(), "whole-file read of file {f}");
            if all[..n] != s[..] {
                let i = (0..n).find(|&i| all[i] != s[i]).unwrap_or(n);
                panic!("file {f} differs from its shadow first at byte {i}");
            }
            let mut past = [0u8; 16];
            assert_eq!(
                self.fs
                    .read(self.inos[f], s.len() as u64, &mut past)
                    .unwrap(),
                0
            );
        }
    }
}

fn cases() -> u32 {
    std::env::var("DAX_FSX_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(Config { cases: cases(), max_shrink_iters: 2000, ..Config::default() })]

    #[test]
    fn fsx_testfs_matches_its_shadow(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        for op in &ops {
            w.step(op);
            w.check();
        }
    }
}
