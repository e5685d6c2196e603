//! The fuzz harnesses: one `run(data: &[u8])` per target, called both by the
//! libFuzzer targets in the repository's `fuzz/` crate (nightly, `cargo fuzz run
//! <target>`) and by `dax-testkit/tests/fuzz_corpus.rs`, which replays the committed
//! corpus and a fixed set of seeded inputs on the stable toolchain. One copy of each
//! target's logic, so a crash the fuzzer finds is a failing stable test once its input
//! is in the corpus.
//!
//! | target | module | what it checks |
//! |---|---|---|
//! | `iomap` | [`iomap`] | `IomapIter` and `dax_iomap_rw` over an `IomapOps` whose answers come from the input, against the iterator's documented validation rules and a shadow of the device |
//! | `fault` | [`fault`] | the fault engine on `SimPageTable` under TestFs: loads, stores, read/write, truncate, punch, zero range, fsync (writeback), remap and memory failure against a byte model and an allocation model of the file |
//! | `badblocks` | [`badblocks`] | the badblocks table (set/clear/ack/check/show and the sysfs `store` parser) against a run-length model of the bad sectors |
//! | `testfs` | [`testfs`] | opening a fuzzed TestFs image: a clear error or a consistent filesystem that survives use, never a panic, never a write outside the filesystem |
//!
//! Every input is valid: [`Input`] decodes bytes into choices and answers zeros once
//! the bytes run out, so the fuzzer's mutations always reach the code under test.
//!
//! **Canaries.** Device memory a target may not legitimately write is filled with
//! [`canary`] bytes (position dependent, never zero, so a zero fill, a copy from the
//! wrong place and a copy to the wrong place all show) before the run and checked
//! after it. What "may not write" means is target specific and documented on each
//! target's `run`.
//!
//! Panics are the failure signal (libFuzzer reports them as crashes; the replay test
//! fails). A failing check names the step and what differed.

pub mod badblocks;
pub mod fault;
pub mod iomap;
pub mod testfs;

use dax_device::{DaxAccessMode, DaxDevice, Pfn};
use dax_testdev::MemDevice;

/// A target's harness.
pub type Harness = fn(&[u8]);

/// The fuzz targets, by the name of their `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/`, with their harness.
pub const TARGETS: &[(&str, Harness)] = &[
    ("iomap", iomap::run),
    ("fault", fault::run),
    ("badblocks", badblocks::run),
    ("testfs", testfs::run),
];

/// A byte-string decoder that never fails: past the end of the input every read
/// answers zero (so every input, however short, is a complete test case).
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A decoder over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// The next `N` bytes.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.u8())
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start + n;
        &self.data[start..end]
    }

    /// A bit.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// A value in `0..n` (`n` > 0), from as few bytes as `n` needs.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let v = if n <= 1 << 8 {
            u64::from(self.u8())
        } else if n <= 1 << 16 {
            u64::from(self.u16())
        } else if n <= 1 << 32 {
            u64::from(self.u32())
        } else {
            self.u64()
        };
        v % n.max(1)
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.u64(),
        }
    }

    /// One of `items` (non-empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// True with probability about `num / 256`.
    pub fn chance(&mut self, num: u8) -> bool {
        self.u8() < num
    }

    /// A 64-bit value biased to the edges arithmetic goes wrong at: 0, 1, page and PMD
    /// sizes and their neighbours, `i64::MAX`, `u64::MAX`, or any value.
    pub fn edge_u64(&mut self) -> u64 {
        const EDGES: [u64; 12] = [
            0,
            1,
            4095,
            4096,
            4097,
            (2 << 20) - 1,
            2 << 20,
            i64::MAX as u64 - 4095,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX - 4095,
            u64::MAX,
        ];
        if self.bool() {
            self.pick(&EDGES)
        } else {
            self.u64()
        }
    }
}

/// `len` pseudo-random bytes from `seed` (splitmix64): the seeded inputs the replay test
/// runs so that it means something with an empty corpus.
pub fn seeded(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The canary byte at device offset `off`: depends on the offset (so bytes copied
/// from or to the wrong place show) and is never zero (so zeroing shows).
pub fn canary(off: u64) -> u8 {
    let w = (off >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xCA4A_12D5_0BAD_F00D;
    ((w >> ((off & 7) * 8)) as u8) | 0x01
}

/// The canary bytes of device offsets `start .. start + len`.
pub fn canaries(start: u64, len: usize) -> Vec<u8> {
    if !start.is_multiple_of(8) {
        return (start..start + len as u64).map(canary).collect();
    }
    // A word at a time: the same bytes as `canary`, eight for one multiply.
    let mut v = Vec::with_capacity(len + 8);
    let mut w = start >> 3;
    while v.len() < len {
        let x = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xCA4A_12D5_0BAD_F00D;
        v.extend_from_slice(&(x | 0x0101_0101_0101_0101).to_le_bytes());
        w += 1;
    }
    v.truncate(len);
    v
}

/// Fills device bytes `start .. end` of `dev` with canaries (bypassing poison).
pub fn fill_canaries(dev: &MemDevice, start: u64, end: u64) {
    const CHUNK: u64 = 1 << 16;
    let mut at = start;
    while at < end {
        let n = (end - at).min(CHUNK);
        dev.poke(at, &canaries(at, n as usize))
            .expect("canary fill inside the device");
        at += n;
    }
}

/// The first device offset in `start .. end` whose byte is not its canary.
pub fn first_bad_canary(dev: &MemDevice, start: u64, end: u64) -> Option<u64> {
    const CHUNK: u64 = 1 << 16;
    let mut at = start;
    let mut buf = vec![0u8; end.saturating_sub(start).min(CHUNK) as usize];
    while at < end {
        let n = (end - at).min(CHUNK) as usize;
        dev.peek(at, &mut buf[..n])
            .expect("canary check inside the device");
        let want = canaries(at, n);
        if buf[..n] != want[..] {
            let i = (0..n).find(|&i| buf[i] != want[i]).unwrap();
            return Some(at + i as u64);
        }
        at += n as u64;
    }
    None
}

/// Panics naming `what` if a canary of `start .. end` changed.
pub fn assert_canaries(dev: &MemDevice, start: u64, end: u64, what: &str) {
    if let Some(at) = first_bad_canary(dev, start, end) {
        let mut b = [0u8; 1];
        dev.peek(at, &mut b).unwrap();
        panic!(
            "stray write: device byte {at:#x} is {:#04x}, canary {:#04x} ({what})",
            b[0],
            canary(at)
        );
    }
}

/// The pfn of page 0 of `dev` (a fresh device: no poison yet).
pub fn base_pfn(dev: &DaxDevice<MemDevice>) -> Pfn {
    dev.read_lock()
        .direct_access(0, 1, DaxAccessMode::Access)
        .expect("page 0 of a fresh device")
        .pfn()
}

/// Forgets the process-wide page state (`PageHWPoison`) memory failure left on the
/// pages of a device of `bytes` bytes from pfn `base`: pfns are addresses, and a later
/// device in the same process (the next fuzz input) may be mapped at the same ones.
pub fn forget_page_state(base: Pfn, bytes: u64) {
    for p in 0..bytes / crate::PAGE {
        dax_fault::pages::clear_page_hwpoison(base.add(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_answers_zero_past_the_end() {
        let mut i = Input::new(&[7, 1, 2]);
        assert_eq!(i.u8(), 7);
        assert_eq!(i.u16(), 0x0201);
        assert!(i.is_empty());
        assert_eq!((i.u64(), i.below(10), i.bytes(4)), (0, 0, &[][..]));
    }

    #[test]
    fn canaries_are_never_zero_and_depend_on_the_offset() {
        let c = canaries(0, 4096);
        assert_eq!(c, (0..4096).map(canary).collect::<Vec<u8>>());
        assert_eq!(
            canaries(4093, 30),
            (4093..4123).map(canary).collect::<Vec<u8>>()
        );
        assert!(c.iter().all(|&b| b != 0));
        assert_ne!(canaries(0, 64), canaries(4096, 64));
    }

    #[test]
    fn seeded_is_deterministic() {
        assert_eq!(seeded(3, 100), seeded(3, 100));
        assert_ne!(seeded(3, 100), seeded(4, 100));
        assert_eq!(seeded(3, 13).len(), 13);
    }
}
