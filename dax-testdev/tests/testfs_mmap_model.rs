//! fsx's method on TestFs mappings: random sequences of loads and stores through
//! several user mappings of one file (shared and private, PMD-capable and not,
//! overlapping file ranges), `read(2)`/`write(2)`, truncate up and down, fallocate
//! (allocate, keep-size, punch hole, zero range), fsync and munmap + mmap, run on
//! TestFs + [`SimPageTable`] against a shadow of the file and of each private
//! mapping's copied pages.
//!
//! The shadow of the file is its *page view*: the file's bytes padded to a page with
//! what a store through a shared mapping left past EOF in the last page (Linux keeps
//! those bytes in the page and zeroes them when the file grows over them). Private
//! pages are copies of the page view taken at the first store, dropped by a truncate
//! that passes them (`truncate_pagecache` unmaps private copies too) but kept by punch
//! hole and zero range (`truncate_pagecache_range` does not: "hole-punching should not
//! remove private COWed pages").
//!
//! After every step, without faulting anything in:
//! * size and whole-file `read(2)` equal the shadow;
//! * every populated page-table slot lies inside a live mapping and inside EOF, and
//!   shows what the shadow says: device pages and zero pages the page view, private
//!   pages their private copy (and every private copy is mapped);
//! * every device page mapped is the block the extent map has at that file offset, and
//!   that block is written (not unwritten): no mapping points at a freed, reused or
//!   stale block; a zero page only stands for a hole or an unwritten block;
//! * a writable device mapping is in a shared writable mapping, and its entry is REAL
//!   with the same page and DIRTY (or fsync would miss the store); only writable slots
//!   are dirty;
//! * entries match the extent map, lie inside EOF, and `nrpages` is the sum of their
//!   sizes;
//! * right after fsync, no slot of a shared mapping is writable or dirty and no entry
//!   is DIRTY.
//!
//! Loads and stores check what they return: data from the shadow, SIGBUS from the
//! first page at or past EOF, SIGSEGV for stores to read-only mappings.
//!
//! Default: 64 sequences of up to 60 operations (about 15 s in a debug build). Long
//! mode, in a release build because nextest stops a test after 5 minutes:
//! `DAX_MMAP_MODEL_CASES=2000 cargo test --release -p dax-testdev --test testfs_mmap_model`
//! (about 2.5 minutes).
//! A failure prints the shrunk case (mappings and operations) and proptest's seed.

mod testfs_common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use dax_device::{PAGE_SIZE, PMD_SIZE};
use dax_fault::index::{EntryKind, Marks};
use dax_fault::sim::{SimPageTable, SimTarget};
use dax_fault::{MappedVma, PageTable, PmdSlot, Pte, VmFault, Vma};
use dax_testdev::{FallocMode, Ino, TestFs};
use proptest::prelude::*;
use proptest::test_runner::Config;
use testfs_common::*;

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;
/// Where the mappings live: mapping `i` in its own 16 MiB slot from here.
const BASE: u64 = 0x7000_0000_0000;
const SLOT: u64 = 16 << 20;
/// Largest offset a file operation starts at: files stay under ~5 MiB, so two PMDs.
const MAX_OFF: u64 = 2 * PMD + PMD / 4;
/// Largest mapping: 4 MiB.
const MAX_PAGES: u64 = 2 * PMD / PAGE;

/// One user mapping of the file.
#[derive(Debug, Clone, Copy)]
struct VSpec {
    /// Which of the two address spaces.
    pt: usize,
    shared: bool,
    writable: bool,
    /// `VM_HUGEPAGE`: PMD faults are tried (and succeed only when `shift == 0` and
    /// `pgoff` is 512-aligned).
    huge: bool,
    /// First file page shown.
    pgoff: u64,
    pages: u64,
    /// Pages the start is moved off 2 MiB alignment.
    shift: u64,
}

fn vspec() -> impl Strategy<Value = VSpec> {
    (
        0..2usize,
        any::<bool>(),
        prop::bool::weighted(0.85),
        any::<bool>(),
        prop_oneof![Just(0u64), Just(512), 1u64..700],
        prop_oneof![Just(MAX_PAGES), Just(512), 1u64..MAX_PAGES],
        prop_oneof![3 => Just(0u64), 1 => 1u64..512],
    )
        .prop_map(|(pt, shared, writable, huge, pgoff, pages, shift)| VSpec {
            pt,
            shared,
            writable,
            huge,
            pgoff,
            pages,
            shift,
        })
}

/// A shared and a private PMD-capable mapping of the first 4 MiB, and up to three
/// more of any kind.
fn vspecs() -> impl Strategy<Value = Vec<VSpec>> {
    prop::collection::vec(vspec(), 0..4).prop_map(|extra| {
        let whole = |pt, shared| VSpec {
            pt,
            shared,
            writable: true,
            huge: true,
            pgoff: 0,
            pages: MAX_PAGES,
            shift: 0,
        };
        let mut v = vec![whole(0, true), whole(1, false)];
        v.extend(extra);
        v
    })
}

#[derive(Debug, Clone)]
enum Op {
    /// Load `len` bytes through mapping `v` (modulo the number of mappings) at byte
    /// `off` of page `page` (modulo its pages).
    MapRead {
        v: usize,
        page: u64,
        off: u64,
        len: u64,
    },
    /// Store `len` bytes there.
    MapWrite {
        v: usize,
        page: u64,
        off: u64,
        len: u64,
        seed: u8,
    },
    Write {
        pos: u64,
        len: u64,
        seed: u8,
    },
    Read {
        pos: u64,
        len: u64,
    },
    Truncate {
        size: u64,
    },
    /// 0 allocate, 1 allocate keep-size, 2 punch hole, 3 zero range, 4 zero range
    /// keep-size.
    Falloc {
        mode: u8,
        pos: u64,
        len: u64,
    },
    Fsync,
    /// munmap and mmap mapping `v` again (its private copies go).
    Remap {
        v: usize,
    },
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        // PMD-aligned: whole 2 MiB extents and holes, for PMD faults.
        (0u64..2).prop_map(|k| k * PMD),
        0..MAX_OFF,
        (0..MAX_OFF / PAGE).prop_map(|b| b * PAGE),
        (0..MAX_OFF / PAGE).prop_map(|b| b * PAGE + PAGE - 1),
        // Around the PMD boundaries.
        (0u64..3, 0u64..2 * PAGE).prop_map(|(k, d)| (k * PMD + d).saturating_sub(PAGE)),
    ]
}

fn length() -> impl Strategy<Value = u64> {
    prop_oneof![
        1u64..64,
        1u64..3 * PAGE,
        (1u64..64).prop_map(|b| b * PAGE),
        1u64..600_000,
        Just(PMD),
        Just(2 * PMD),
    ]
}

fn map_len() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..64, 1u64..3 * PAGE, 1u64..40 * PAGE]
}

fn in_page() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0..PAGE]
}

fn op() -> impl Strategy<Value = Op> {
    let page = prop_oneof![0u64..MAX_PAGES, 500u64..530];
    // The first two mappings (shared and private, PMD-capable) get half the accesses.
    let v = prop_oneof![0..2usize, 0..8usize];
    prop_oneof![
        5 => (v.clone(), page.clone(), in_page(), map_len(), any::<u8>())
            .prop_map(|(v, page, off, len, seed)| Op::MapWrite { v, page, off, len, seed }),
        4 => (v, page, in_page(), map_len())
            .prop_map(|(v, page, off, len)| Op::MapRead { v, page, off, len }),
        3 => (offset(), length(), any::<u8>()).prop_map(|(pos, len, seed)| Op::Write { pos, len, seed }),
        1 => (offset(), length()).prop_map(|(pos, len)| Op::Read { pos, len }),
        2 => offset().prop_map(|size| Op::Truncate { size }),
        3 => (0u8..5, offset(), length()).prop_map(|(mode, pos, len)| Op::Falloc { mode, pos, len }),
        2 => Just(Op::Fsync),
        1 => (0..8usize).prop_map(|v| Op::Remap { v }),
    ]
}

/// Non-zero bytes that depend on the file position and the seed.
fn data(pos: u64, len: u64, seed: u8) -> Vec<u8> {
    (pos..pos + len)
        .map(|i| ((i.wrapping_mul(0x9E37_79B9) >> 11) as u8 ^ seed) | 1)
        .collect()
}

/// One block of the extent map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Hole,
    Unwritten(u64),
    Written(u64),
}

struct Extents(BTreeMap<u64, (u64, u64, bool)>);

impl Extents {
    fn of(fs: &TestFs, ino: Ino) -> Extents {
        Extents(
            fs.extents(ino)
                .unwrap()
                .into_iter()
                .map(|e| (e.file_block, (e.dev_block, e.len, e.unwritten)))
                .collect(),
        )
    }

    fn block(&self, fb: u64) -> Block {
        match self.0.range(..=fb).next_back() {
            Some((&start, &(dev, len, unwritten))) if fb < start + len => {
                let d = dev + (fb - start);
                if unwritten {
                    Block::Unwritten(d)
                } else {
                    Block::Written(d)
                }
            }
            _ => Block::Hole,
        }
    }
}

struct World {
    dev: Dev,
    fs: TestFs,
    ino: Ino,
    pts: [Arc<SimPageTable>; 2],
    specs: Vec<VSpec>,
    vmas: Vec<Option<Arc<MappedVma>>>,
    /// File size.
    size: u64,
    /// The page view: `size` bytes of file, then the rest of the last page.
    view: Vec<u8>,
    /// Private copies per mapping, by file page.
    privs: Vec<BTreeMap<u64, Vec<u8>>>,
    /// The last step was an fsync.
    synced: bool,
}

fn range(v: &[u8], from: u64, to: u64) -> std::ops::Range<usize> {
    let len = v.len() as u64;
    from.min(len) as usize..to.min(len) as usize
}

impl World {
    fn new(specs: &[VSpec]) -> World {
        let (dev, fs) = mem_fs(48 << 20);
        let ino = fs.create("f").unwrap();
        let mut w = World {
            dev,
            fs,
            ino,
            pts: [Arc::new(SimPageTable::new()), Arc::new(SimPageTable::new())],
            specs: specs.to_vec(),
            vmas: vec![None; specs.len()],
            size: 0,
            view: Vec::new(),
            privs: vec![BTreeMap::new(); specs.len()],
            synced: false,
        };
        for i in 0..specs.len() {
            w.map(i);
        }
        w
    }

    fn map(&mut self, i: usize) {
        let s = self.specs[i];
        let start = BASE + i as u64 * SLOT + s.shift * PAGE;
        let vma = Vma::new(start, s.pages * PAGE, s.pgoff)
            .unwrap()
            .shared(s.shared)
            .writable(s.writable)
            .huge(s.huge);
        let pt: Arc<dyn PageTable> = self.pts[s.pt].clone();
        self.vmas[i] = Some(self.fs.mmap(self.ino, vma, pt).unwrap());
    }

    fn vma(&self, i: usize) -> &Arc<MappedVma> {
        self.vmas[i].as_ref().unwrap()
    }

    fn eof_pages(&self) -> u64 {
        self.size.div_ceil(PAGE)
    }

    /// What page `idx` of the file reads as through mapping `v`.
    fn expected(&self, v: usize, idx: u64) -> &[u8] {
        match self.privs[v].get(&idx) {
            Some(p) => p,
            None => &self.view[(idx * PAGE) as usize..((idx + 1) * PAGE) as usize],
        }
    }

    /// The file grows from `size` to `end` over zeros (`zero_gap` + i_size update):
    /// bytes from the old EOF to `end` are zeroed, what lies past `end` in its page
    /// stays.
    fn grow(&mut self, end: u64) {
        if end <= self.size {
            return;
        }
        let r = range(&self.view, self.size, end);
        self.view[r].fill(0);
        self.size = end;
        self.view.resize((end.div_ceil(PAGE) * PAGE) as usize, 0);
    }

    /// The pages of `v` that byte range `addr .. addr + len` (clipped to the mapping)
    /// touches, as (address, bytes) pieces.
    fn pieces(&self, v: usize, page: u64, off: u64, len: u64) -> Vec<(u64, usize)> {
        let vm = *self.vma(v).vma();
        let start = vm.start() + (page % vm.pages()) * PAGE + off;
        let end = start.saturating_add(len).min(vm.end());
        let mut out = Vec::new();
        let mut a = start;
        while a < end {
            let n = ((a & !(PAGE - 1)) + PAGE).min(end) - a;
            out.push((a, n as usize));
            a += n;
        }
        out
    }

    fn step(&mut self, op: &Op) {
        self.synced = false;
        match *op {
            Op::MapRead { v, page, off, len } => {
                let v = v % self.specs.len();
                let m = self.vma(v).clone();
                let pt = self.pts[self.specs[v].pt].clone();
                for (a, n) in self.pieces(v, page, off, len) {
                    let idx = m.vma().page_index(a);
                    let mut buf = vec![0xEEu8; n];
                    let r = pt.read(&m, a, &mut buf);
                    if idx >= self.eof_pages() {
                        assert_eq!(
                            r,
                            Err(VmFault::SIGBUS),
                            "load of file page {idx} past EOF {} through mapping {v}",
                            self.size
                        );
                        return;
                    }
                    r.unwrap_or_else(|e| panic!("load of file page {idx} via {v}: {e:?}"));
                    let o = (a % PAGE) as usize;
                    assert!(
                        buf[..] == self.expected(v, idx)[o..o + n],
                        "load of file page {idx} (+{o}, {n} bytes) through mapping {v} differs"
                    );
                }
            }
            Op::MapWrite {
                v,
                page,
                off,
                len,
                seed,
            } => {
                let v = v % self.specs.len();
                let m = self.vma(v).clone();
                let pt = self.pts[self.specs[v].pt].clone();
                for (a, n) in self.pieces(v, page, off, len) {
                    let idx = m.vma().page_index(a);
                    let o = (a % PAGE) as usize;
                    let d = data(idx * PAGE + o as u64, n as u64, seed);
                    let r = pt.write(&m, a, &d);
                    if !self.specs[v].writable {
                        assert_eq!(r, Err(VmFault::SIGSEGV), "store to read-only mapping {v}");
                        return;
                    }
                    if idx >= self.eof_pages() {
                        assert_eq!(
                            r,
                            Err(VmFault::SIGBUS),
                            "store to file page {idx} past EOF {} through mapping {v}",
                            self.size
                        );
                        return;
                    }
                    r.unwrap_or_else(|e| panic!("store to file page {idx} via {v}: {e:?}"));
                    if self.specs[v].shared {
                        let at = (idx * PAGE) as usize + o;
                        self.view[at..at + n].copy_from_slice(&d);
                    } else {
                        let copy = self.expected(v, idx).to_vec();
                        let p = self.privs[v].entry(idx).or_insert(copy);
                        p[o..o + n].copy_from_slice(&d);
                    }
                }
            }
            Op::Write { pos, len, seed } => {
                let d = data(pos, len, seed);
                let n = self.fs.write(self.ino, pos, &d).unwrap();
                assert_eq!(n as u64, len, "short write");
                self.grow(pos);
                self.grow(pos + len);
                self.view[pos as usize..(pos + len) as usize].copy_from_slice(&d);
            }
            Op::Read { pos, len } => {
                let mut buf = vec![0xEEu8; len as usize];
                let n = self.fs.read(self.ino, pos, &mut buf).unwrap();
                let want = self.size.saturating_sub(pos).min(len) as usize;
                assert_eq!(n, want, "read at {pos}+{len} of a {}-byte file", self.size);
                assert!(
                    n == 0 || buf[..n] == self.view[pos as usize..pos as usize + n],
                    "read at {pos}+{len} differs"
                );
            }
            Op::Truncate { size } => {
                self.fs.truncate(self.ino, size).unwrap();
                if size < self.size {
                    // The tail of the new last page is zeroed, everything past it
                    // goes, private copies included (`truncate_pagecache`).
                    self.view.truncate((size.div_ceil(PAGE) * PAGE) as usize);
                    self.view[size as usize..].fill(0);
                    self.size = size;
                    let keep = self.eof_pages();
                    for p in &mut self.privs {
                        p.retain(|&idx, _| idx < keep);
                    }
                } else {
                    self.grow(size);
                }
            }
            Op::Falloc { mode, pos, len } => {
                let m = match mode {
                    0 => FallocMode::empty(),
                    1 => FallocMode::KEEP_SIZE,
                    2 => FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
                    3 => FallocMode::ZERO_RANGE,
                    _ => FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE,
                };
                self.fs.fallocate(self.ino, m, pos, len).unwrap();
                if mode >= 2 {
                    // Private copies stay (`truncate_pagecache_range`).
                    let r = range(&self.view, pos, pos + len);
                    self.view[r].fill(0);
                }
                if mode == 0 || mode == 3 {
                    self.grow(pos + len);
                }
            }
            Op::Fsync => {
                self.fs.fsync(self.ino).unwrap();
                self.synced = true;
            }
            Op::Remap { v } => {
                let v = v % self.specs.len();
                self.vmas[v] = None;
                self.privs[v].clear();
                self.map(v);
            }
        }
    }

    /// The mapping `pt`'s slot at `addr` belongs to.
    fn owner(&self, pt: usize, addr: u64) -> usize {
        (0..self.specs.len())
            .find(|&i| self.specs[i].pt == pt && self.vma(i).vma().contains(addr))
            .unwrap_or_else(|| {
                panic!("slot at {addr:#x} of address space {pt} outside any mapping")
            })
    }

    fn check(&self) {
        let st = self.fs.stat(self.ino).unwrap();
        assert_eq!(st.size, self.size, "file size");
        let mut all = vec![0xEEu8; self.size as usize];
        assert_eq!(self.fs.read(self.ino, 0, &mut all).unwrap(), all.len());
        if all[..] != self.view[..all.len()] {
            let i = (0..all.len()).find(|&i| all[i] != self.view[i]).unwrap();
            panic!("file differs from its shadow first at byte {i}");
        }
        let ext = Extents::of(&self.fs, self.ino);
        let mapping = self.vma(0).mapping().clone();
        let index = mapping.index();
        let entries = index.entries();
        let eof = self.eof_pages();

        // Entries.
        let total: u64 = entries.iter().map(|e| e.entry.pages()).sum();
        assert_eq!(index.nrpages(), total, "nrpages vs the entries' sizes");
        for e in &entries {
            let (s, n) = (e.start, e.entry.pages());
            assert!(!e.locked, "entry at {s} left locked");
            assert!(s + n <= eof, "entry {e:?} reaches past EOF page {eof}");
            if self.synced {
                assert!(
                    !e.marks.contains(Marks::DIRTY),
                    "DIRTY entry after fsync: {e:?}"
                );
            }
            if e.entry.kind != EntryKind::Real {
                assert!(e.marks.is_empty(), "marks on a non-REAL entry: {e:?}");
            }
            for i in 0..n {
                let b = ext.block(s + i);
                match e.entry.kind {
                    EntryKind::Real => assert_eq!(
                        b,
                        Block::Written(e.pgoff + i),
                        "REAL entry {e:?} page {} vs the extent map",
                        s + i
                    ),
                    EntryKind::Zero => assert!(
                        !matches!(b, Block::Written(_)),
                        "ZERO entry {e:?} over written block {b:?} at page {}",
                        s + i
                    ),
                    EntryKind::Empty => {}
                }
            }
        }

        // Page-table slots.
        let mut seen_private: Vec<Vec<u64>> = vec![Vec::new(); self.specs.len()];
        for (pi, pt) in self.pts.iter().enumerate() {
            for (addr, slot) in pt.huge() {
                let v = self.owner(pi, addr);
                let vm = *self.vma(v).vma();
                assert!(
                    vm.holds_pmd(addr),
                    "PMD at {addr:#x} sticks out of mapping {v}"
                );
                let idx = vm.page_index(addr);
                assert_eq!(
                    idx % 512,
                    0,
                    "PMD at {addr:#x} maps misaligned file page {idx}"
                );
                let (pgoff, writable, dirty) = match slot {
                    PmdSlot::Huge {
                        writable, dirty, ..
                    } => match pt.resolve(addr) {
                        Some(SimTarget::Device { pgoff, .. }) => (Some(pgoff), writable, dirty),
                        t => panic!("huge slot resolves to {t:?}"),
                    },
                    PmdSlot::HugeZero => (None, false, false),
                    s => panic!("huge() listed {s:?}"),
                };
                let mut bytes = vec![0u8; PMD as usize];
                if let Some(p) = pgoff {
                    self.dev.driver().peek(p * PAGE, &mut bytes).unwrap();
                }
                for i in 0..512 {
                    let got = &bytes[(i * PAGE) as usize..((i + 1) * PAGE) as usize];
                    self.check_slot(&ext, v, idx + i, pgoff.map(|p| p + i), writable, dirty, got);
                }
            }
            for (addr, pte) in pt.ptes() {
                let v = self.owner(pi, addr);
                let idx = self.vma(v).vma().page_index(addr);
                let mut got = vec![0u8; PAGE as usize];
                match pte {
                    Pte::Page {
                        writable, dirty, ..
                    } => {
                        let Some(SimTarget::Device { pgoff, .. }) = pt.resolve(addr) else {
                            panic!("device PTE at {addr:#x} does not resolve to the device");
                        };
                        self.dev.driver().peek(pgoff * PAGE, &mut got).unwrap();
                        self.check_slot(&ext, v, idx, Some(pgoff), writable, dirty, &got);
                    }
                    Pte::Zero => self.check_slot(&ext, v, idx, None, false, false, &got),
                    Pte::Private { .. } => {
                        assert!(!self.specs[v].shared, "private page in shared mapping {v}");
                        assert!(idx < eof, "private page {idx} of mapping {v} past EOF");
                        assert!(pt.read_private(addr, 0, &mut got));
                        let want = self.privs[v].get(&idx).unwrap_or_else(|| {
                            panic!(
                                "mapping {v} has a private page at file page {idx} the model lacks"
                            )
                        });
                        assert!(got == *want, "private page {idx} of mapping {v} differs");
                        seen_private[v].push(idx);
                    }
                }
            }
        }
        for (v, p) in self.privs.iter().enumerate() {
            let want: Vec<u64> = p.keys().copied().collect();
            seen_private[v].sort_unstable();
            assert_eq!(seen_private[v], want, "private pages of mapping {v}");
        }
    }

    /// One mapped file page `idx` of mapping `v`: device page `pgoff` (None: the zero
    /// page) whose contents are `got`.
    #[allow(clippy::too_many_arguments)]
    fn check_slot(
        &self,
        ext: &Extents,
        v: usize,
        idx: u64,
        pgoff: Option<u64>,
        writable: bool,
        dirty: bool,
        got: &[u8],
    ) {
        let spec = self.specs[v];
        let what = |s: &str| {
            let mut m = String::new();
            let _ = write!(m, "mapping {v} ({spec:?}) file page {idx}: {s}");
            m
        };
        assert!(idx < self.eof_pages(), "{}", what("mapped past EOF"));
        assert!(
            !self.privs[v].contains_key(&idx),
            "{}",
            what("the model has a private copy, the page table a shared page")
        );
        let entry = self.vma(v).mapping().index().lookup(idx);
        match pgoff {
            Some(p) => {
                assert_eq!(
                    ext.block(idx),
                    Block::Written(p),
                    "{}",
                    what("device page is not the file's written block there")
                );
                let e = entry.unwrap_or_else(|| panic!("{}", what("mapped without an entry")));
                assert!(
                    e.entry.kind == EntryKind::Real && e.pgoff + (idx - e.start) == p,
                    "{}",
                    what(&format!("entry {e:?} does not map the page"))
                );
                assert!(!dirty || writable, "{}", what("dirty but read-only"));
                if writable {
                    assert!(
                        spec.shared && spec.writable,
                        "{}",
                        what("writable, not shared rw")
                    );
                    assert!(
                        e.marks.contains(Marks::DIRTY),
                        "{}",
                        what("writable but its entry is not DIRTY")
                    );
                    assert!(!self.synced, "{}", what("writable right after fsync"));
                }
            }
            None => {
                assert!(
                    !matches!(ext.block(idx), Block::Written(_)),
                    "{}",
                    what("zero page over a written block")
                );
                assert!(
                    entry.is_some_and(|e| e.entry.kind == EntryKind::Zero),
                    "{}",
                    what(&format!("zero page with entry {entry:?}"))
                );
            }
        }
        if got != self.expected(v, idx) {
            let i = (0..got.len())
                .find(|&i| got[i] != self.expected(v, idx)[i])
                .unwrap();
            panic!(
                "{}",
                what(&format!("mapped data differs from the shadow at byte {i}"))
            );
        }
    }
}

fn cases() -> u32 {
    std::env::var("DAX_MMAP_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(Config { cases: cases(), max_shrink_iters: 4000, ..Config::default() })]

    #[test]
    fn mapped_testfs_matches_its_shadow(
        specs in vspecs(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut w = World::new(&specs);
        w.check();
        for op in &ops {
            w.step(op);
            w.check();
        }
    }
}
