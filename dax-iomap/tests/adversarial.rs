//! An adversarial filesystem: `iomap_begin` answers random, often invalid mappings
//! (zero or huge lengths, offsets not covering the position, misaligned or
//! out-of-device addresses, missing devices, stray source maps, STALE flags, every
//! type) and `iomap_end` fails at random. Every entry point must then finish without
//! panicking or hanging, change no device byte outside what the mappings it accepted
//! allow, and fail only with the errnos a caller can expect.

use std::sync::Arc;

use dax_device::{DaxDevice, DaxError, PAGE_SIZE};
use dax_iomap::{
    DaxInode, Fiemap, Iomap, IomapFlags, IomapOps, IomapType, IovIter, IterFlags, Kiocb,
    dax_dedupe_file_range_compare, dax_file_unshare, dax_iomap_rw, dax_truncate_page,
    dax_zero_range, iomap_fiemap, iomap_seek_data, iomap_seek_hole,
};
use dax_testdev::MemDevice;
use parking_lot::Mutex;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRng};

const PAGE: u64 = PAGE_SIZE as u64;
const DEV_PAGES: u64 = 64;
/// A begin call count that means the engine is looping.
const HANG: usize = 20_000;

struct Adversary {
    dev: Arc<DaxDevice<MemDevice>>,
    rng: Mutex<TestRng>,
    size: u64,
    calls: Mutex<usize>,
    /// Device byte ranges the engine may have written: page-rounded pieces of every
    /// returned mapping (and source) with storage.
    allowed: Mutex<Vec<(u64, u64)>>,
}

impl Adversary {
    fn pick<T: Copy>(&self, xs: &[T]) -> T {
        let i = self.rng.lock().random_range(0..xs.len());
        xs[i]
    }

    fn num(&self, max: u64) -> u64 {
        self.rng.lock().random_range(0..=max)
    }

    /// A valid mapping for `pos`, then 0 (40%), 1 (40%) or 2-4 (20%) corruptions.
    fn random_map(&self, pos: u64, len: u64) -> Iomap<'_> {
        let dev: &DaxDevice = &*self.dev;
        let offset = pos / PAGE * PAGE;
        let pages = 1 + self.num(8);
        let mut m = Iomap {
            addr: self.num(DEV_PAGES - pages) * PAGE,
            offset,
            length: pages * PAGE,
            kind: self.pick(&[
                IomapType::Mapped,
                IomapType::Mapped,
                IomapType::Hole,
                IomapType::Unwritten,
            ]),
            flags: IomapFlags::empty(),
            dax_dev: Some(dev),
            ..Iomap::default()
        };
        let corruptions = match self.num(9) {
            0..=3 => 0,
            4..=7 => 1,
            _ => 2 + self.num(2),
        };
        for _ in 0..corruptions {
            match self.num(11) {
                0 => m.length = 0,
                1 => m.length = u64::MAX - self.num(10),
                2 => m.length = 1 + self.num(100),
                3 => m.length = len.max(1),
                4 => m.offset = pos.saturating_sub(self.num(3 * PAGE)),
                5 => m.offset = pos + 1 + self.num(PAGE),
                6 => m.addr = self.pick(&[u64::MAX, DEV_PAGES * PAGE, self.num(DEV_PAGES * PAGE)]),
                7 => m.addr = (DEV_PAGES - 1) * PAGE,
                8 => m.dax_dev = None,
                9 => {
                    m.kind = self.pick(&[
                        IomapType::Hole,
                        IomapType::Delalloc,
                        IomapType::Unwritten,
                        IomapType::Inline,
                    ])
                }
                _ => {
                    m.flags |= self.pick(&[
                        IomapFlags::NEW,
                        IomapFlags::SHARED,
                        IomapFlags::STALE,
                        IomapFlags::DIRTY,
                    ])
                }
            }
        }
        m
    }

    /// The device bytes the engine may write through `m` asked for at `pos`: from the
    /// page holding `pos` (copy-around fills the head of that page; never before the
    /// extent) to exactly the extent's end.
    fn allow(&self, m: &Iomap<'_>, pos: u64) {
        if m.addr == u64::MAX || m.length == 0 || pos < m.offset {
            return;
        }
        let from = (pos / PAGE * PAGE).max(m.offset);
        let start = m.addr.wrapping_add(from - m.offset);
        let end = m.addr.saturating_add(m.length);
        self.allowed.lock().push((start.min(end), end));
    }
}

impl IomapOps for Adversary {
    fn iomap_begin(
        &self,
        pos: u64,
        len: u64,
        _flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        {
            let mut c = self.calls.lock();
            *c += 1;
            assert!(*c < HANG, "the engine keeps asking for mappings: a hang");
        }
        match self.num(12) {
            0 => return Err(DaxError::NoSpace { what: "adversary" }),
            1 => return Err(DaxError::WouldBlock),
            _ => {}
        }
        let map = self.random_map(pos, len);
        let src = (self.num(4) == 0).then(|| self.random_map(pos, len));
        self.allow(&map, pos);
        if let Some(s) = &src {
            self.allow(s, pos);
        }
        Ok((map, src))
    }

    fn iomap_end(
        &self,
        _pos: u64,
        _length: u64,
        _written: u64,
        _flags: IterFlags,
        _iomap: &Iomap<'_>,
    ) -> Result<(), DaxError> {
        if self.num(8) == 0 {
            Err(DaxError::Io {
                what: "adversary end",
            })
        } else {
            Ok(())
        }
    }
}

impl DaxInode for Adversary {
    fn i_size(&self) -> u64 {
        self.size
    }
}

const CANARY: u8 = 0xA5;

fn allowed_errno(e: &DaxError) -> bool {
    [
        libc::EIO,
        libc::EFAULT,
        libc::EINVAL,
        libc::ENOSPC,
        libc::EAGAIN,
        libc::ERANGE,
        libc::ENXIO,
        libc::EFBIG,
    ]
    .contains(&e.errno())
}

/// Runs one operation; returns (device bytes changed, whether it succeeded).
fn run(seed: u64, op: u8, pos: u64, len: u64) -> (usize, bool) {
    let dev = MemDevice::builder().size(DEV_PAGES * PAGE).build().unwrap();
    dev.driver()
        .poke(0, &vec![CANARY; (DEV_PAGES * PAGE) as usize])
        .unwrap();
    let fs = Adversary {
        dev: dev.clone(),
        rng: Mutex::new(TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &{
                let mut s = [0u8; 32];
                s[..8].copy_from_slice(&seed.to_le_bytes());
                s
            },
        )),
        size: 32 * PAGE,
        calls: Mutex::new(0),
        allowed: Mutex::new(Vec::new()),
    };
    let len = len as usize;
    let result: Result<(), DaxError> = match op {
        0 => {
            let mut buf = vec![0u8; len];
            let mut it = IovIter::read_one(&mut buf);
            dax_iomap_rw(&fs, &fs, &mut Kiocb::new(pos), &mut it).map(drop)
        }
        1 => {
            let buf = vec![0x5Au8; len];
            let mut it = IovIter::write_one(&buf);
            dax_iomap_rw(&fs, &fs, &mut Kiocb::new(pos), &mut it).map(drop)
        }
        2 => dax_zero_range(&fs, &fs, pos, len as u64).map(drop),
        3 => dax_truncate_page(&fs, &fs, pos).map(drop),
        4 => dax_file_unshare(&fs, &fs, pos, len as u64),
        5 => {
            let mut fm = Fiemap {
                extents_max: 4,
                ..Fiemap::default()
            };
            iomap_fiemap(&fs, &fs, &mut fm, pos, len as u64)
        }
        6 => iomap_seek_hole(&fs, &fs, pos as i64).map(drop),
        7 => iomap_seek_data(&fs, &fs, pos as i64).map(drop),
        _ => dax_dedupe_file_range_compare(&fs, pos, &fs, pos / 2, len as u64).map(drop),
    };
    if let Err(e) = &result {
        assert!(
            allowed_errno(e),
            "unexpected error {e:?} (errno {})",
            e.errno()
        );
    }
    // No byte outside what accepted-or-not mappings cover may have changed.
    let mut mem = vec![0u8; (DEV_PAGES * PAGE) as usize];
    dev.driver().peek(0, &mut mem).unwrap();
    let allowed = fs.allowed.lock().clone();
    let mut changed = 0;
    // Whole untouched pages are skipped with one comparison (a `memcmp`, which Miri
    // runs natively rather than byte by byte).
    let canary = [CANARY; PAGE as usize];
    for (p, page) in mem.chunks(PAGE as usize).enumerate() {
        if page == canary {
            continue;
        }
        for (i, &b) in page.iter().enumerate() {
            if b != CANARY {
                changed += 1;
                let a = p as u64 * PAGE + i as u64;
                assert!(
                    allowed.iter().any(|&(s, e)| s <= a && a < e),
                    "device byte {a} changed outside every mapping handed out: {allowed:?}"
                );
            }
        }
    }
    (changed, result.is_ok())
}

proptest! {
    #![proptest_config(dax_testkit::miri::proptest_config(
        Config { cases: 600, failure_persistence: None, ..Config::default() }
    ))]

    #[test]
    fn adversarial_mappings_never_panic_hang_or_stray(
        seed in any::<u64>(),
        op in 0u8..9,
        pos in prop_oneof![0u64..40 * PAGE, Just(0u64), (0u64..40).prop_map(|p| p * PAGE)],
        len in prop_oneof![0u64..3 * PAGE, Just(PAGE), 1u64..20],
    ) {
        run(seed, op, pos, len);
    }
}

#[test]
fn adversary_smoke_all_ops_with_fixed_seeds() {
    // Keep a deterministic slice of the space in every run, and make sure the
    // adversary's mappings are accepted often enough for the test to mean something.
    let (mut writes_landed, mut successes) = (0, 0);
    // Under Miri, 4 of the 40 seeds (36 runs): 10, 13 and 26 are three of the five
    // whose accepted mappings write device bytes (seeds 0 to 9 write none).
    let seeds: Vec<u64> = if cfg!(miri) {
        vec![0, 10, 13, 26]
    } else {
        (0..40).collect()
    };
    for &seed in &seeds {
        for op in 0..9 {
            let (changed, ok) = run(seed, op, (seed % 7) * PAGE + seed, PAGE + seed * 13);
            writes_landed += usize::from(changed > 0);
            successes += usize::from(ok);
        }
    }
    eprintln!(
        "{writes_landed} runs changed device bytes, {successes} of {} succeeded",
        seeds.len() * 9
    );
    assert!(
        writes_landed >= seeds.len() / 4,
        "only {writes_landed} runs wrote anything"
    );
    assert!(
        successes >= seeds.len() * 3 / 2,
        "only {successes} runs succeeded"
    );
}
