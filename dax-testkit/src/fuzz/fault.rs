//! Fuzz target `fault`: the fault engine (`dax_iomap_fault` through
//! `SimPageTable::access`) under TestFs on a simulated page table, with random
//! sequences of loads and stores through several mappings, `read(2)`/`write(2)`,
//! truncate, punch hole, zero range, allocation, fsync (writeback), munmap + mmap and
//! memory failure, checked against a model after every step.
//!
//! The mappings: a shared and a private PMD-capable mapping of the first 4 MiB (the
//! shared one MAP_SYNC when the input says so), and one more of any kind (shared or
//! private, read-only or not, PMD-capable or not, any file offset, off 2 MiB alignment
//! or not). The shadow semantics are those of `dax-testdev/tests/testfs_mmap_model.rs`:
//! the file's *page view* (stores past EOF in the last page stay in the page and are
//! zeroed when the file grows over them), private copies taken at the first store and
//! dropped by a truncate past them but not by punch or zero range.
//!
//! The models:
//! * **bytes**: size and page view (what `read(2)` and shared loads must see) and each
//!   private mapping's copies; loads and stores check what they return, SIGBUS past
//!   EOF, SIGSEGV for stores to read-only mappings;
//! * **allocation**: which file blocks are allocated and whether written or unwritten,
//!   predicted per operation (write(2) writes its blocks, a shared store writes its
//!   block and may write the rest of its 2 MiB unit for a PMD fault, truncate frees past
//!   EOF, punch frees whole blocks, zero range makes them unwritten, fallocate makes
//!   holes unwritten, loads never allocate) and compared with `TestFs::extents`;
//! * **poison**: file pages whose block memory failure hit (`MemDevice::poison` then
//!   `memory_failure`, which TestFs's holder answers with `mf_dax_kill_procs`). Right
//!   after, no page table maps the block; later accesses to such a page may fail (and
//!   only accesses that touch one may), and whatever they return must match the
//!   model. A write covering the whole page clears it; truncate and punch free it.
//!
//! After every step (without faulting anything in): size and file contents equal the
//! model; entries lie inside EOF and match the extent map, `nrpages` is their sum;
//! every populated page-table slot lies in a live mapping, inside EOF, maps the
//! file's written block there (or the zero page over a hole or unwritten block) and
//! shows the model's bytes; a writable device mapping is in a shared writable mapping
//! and its entry is DIRTY; right after fsync no slot of a shared mapping is writable
//! and no entry is DIRTY.
//!
//! **Canaries**: the device is filled with canaries before mkfs. A data block no extent
//! map has ever referenced (checked after every step) must still hold its canaries at
//! the end: neither the engine nor TestFs may write a block the file does not own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dax_device::{DaxDevice, MfFlags, PAGE_SIZE, PMD_SIZE, Pfn};
use dax_fault::index::{EntryKind, Marks};
use dax_fault::sim::{SimPageTable, SimTarget};
use dax_fault::{MappedVma, PageTable, PmdSlot, Pte, VmFault, Vma};
use dax_testdev::{FallocMode, Ino, MemDevice, TestFs, memory_failure};

use super::{Input, base_pfn, fill_canaries, first_bad_canary, forget_page_state};

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;
/// The device: room for a 2.5 MiB file with a 2 MiB-aligned free run after mkfs.
const DEV_BYTES: u64 = 6 << 20;
/// Where the mappings live: mapping `i` in its own 16 MiB slot from here.
const BASE: u64 = 0x7000_0000_0000;
const SLOT: u64 = 16 << 20;
/// Largest offset an operation starts at.
const MAX_OFF: u64 = PMD + PMD / 4;
/// Largest end of an operation: the file stays within 3 MiB (one PMD-mappable unit
/// and a half), which the device holds with room to spare (no ENOSPC).
const MAX_END: u64 = PMD + PMD / 2;
/// Pages of the first two mappings (4 MiB).
const MAX_PAGES: u64 = 2 * PMD / PAGE;
/// Operations per input at most.
const MAX_OPS: usize = 24;

/// One user mapping of the file.
#[derive(Debug, Clone, Copy)]
struct VSpec {
    shared: bool,
    writable: bool,
    huge: bool,
    sync: bool,
    pgoff: u64,
    pages: u64,
    /// Pages the start is moved off 2 MiB alignment.
    shift: u64,
}

/// One block of the file as the allocation model has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Hole,
    Unwritten(u64),
    Written(u64),
}

fn extents(fs: &TestFs, ino: Ino) -> BTreeMap<u64, (u64, u64, bool)> {
    fs.extents(ino)
        .unwrap()
        .into_iter()
        .map(|e| (e.file_block, (e.dev_block, e.len, e.unwritten)))
        .collect()
}

fn block_of(ext: &BTreeMap<u64, (u64, u64, bool)>, fb: u64) -> Block {
    match ext.range(..=fb).next_back() {
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

/// Allocated file blocks: `true` written, `false` unwritten.
type Alloc = BTreeMap<u64, bool>;

fn alloc_of(ext: &BTreeMap<u64, (u64, u64, bool)>) -> Alloc {
    let mut a = Alloc::new();
    for (&fb, &(_, len, unwritten)) in ext {
        for b in fb..fb + len {
            a.insert(b, !unwritten);
        }
    }
    a
}

/// Bytes that depend on the file position and the seed, never zero.
fn data(pos: u64, len: u64, seed: u8) -> Vec<u8> {
    (pos..pos + len)
        .map(|i| ((i.wrapping_mul(0x9E37_79B9) >> 11) as u8 ^ seed) | 1)
        .collect()
}

fn clip(v: &[u8], from: u64, to: u64) -> std::ops::Range<usize> {
    let len = v.len() as u64;
    from.min(len) as usize..to.min(len) as usize
}

struct World {
    dev: Arc<DaxDevice<MemDevice>>,
    base: Pfn,
    fs: TestFs,
    ino: Ino,
    pt: Arc<SimPageTable>,
    specs: Vec<VSpec>,
    vmas: Vec<Option<Arc<MappedVma>>>,
    size: u64,
    view: Vec<u8>,
    privs: Vec<BTreeMap<u64, Vec<u8>>>,
    alloc: Alloc,
    poisoned: BTreeSet<u64>,
    /// Device blocks some extent map has referenced.
    ever: BTreeSet<u64>,
    synced: bool,
}

impl World {
    fn mem(&self) -> &MemDevice {
        self.dev.driver()
    }

    fn map(&mut self, v: usize) {
        let s = self.specs[v];
        let start = BASE + v as u64 * SLOT + s.shift * PAGE;
        let vma = Vma::new(start, s.pages * PAGE, s.pgoff)
            .unwrap()
            .shared(s.shared)
            .writable(s.writable)
            .huge(s.huge)
            .sync(s.sync);
        let pt: Arc<dyn PageTable> = self.pt.clone();
        self.vmas[v] = Some(self.fs.mmap(self.ino, vma, pt).unwrap());
    }

    fn vma(&self, v: usize) -> &Arc<MappedVma> {
        self.vmas[v].as_ref().unwrap()
    }

    fn eof_pages(&self) -> u64 {
        self.size.div_ceil(PAGE)
    }

    fn expected(&self, v: usize, idx: u64) -> &[u8] {
        match self.privs[v].get(&idx) {
            Some(p) => p,
            None => &self.view[(idx * PAGE) as usize..((idx + 1) * PAGE) as usize],
        }
    }

    fn grow(&mut self, end: u64) {
        if end <= self.size {
            return;
        }
        let r = clip(&self.view, self.size, end);
        self.view[r].fill(0);
        self.size = end;
        self.view.resize((end.div_ceil(PAGE) * PAGE) as usize, 0);
    }

    fn touches_poison(&self, pos: u64, len: u64) -> bool {
        len > 0
            && self
                .poisoned
                .range(pos / PAGE..=(pos + len - 1) / PAGE)
                .next()
                .is_some()
    }

    /// Whether growing the file to `end` must zero the tail of a poisoned EOF page
    /// (which fails).
    fn growth_hits_poison(&self, end: u64) -> bool {
        end > self.size
            && !self.size.is_multiple_of(PAGE)
            && self.poisoned.contains(&(self.size / PAGE))
    }

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

    /// The allocation after the step, given the model's prediction `want` and the
    /// blocks `free` (file block range, and what may happen there) the step may have
    /// allocated on its own: only holes or unwritten blocks turning written.
    fn settle_alloc(&mut self, want: Alloc, free: Option<(u64, u64)>, what: &str) {
        let actual = alloc_of(&extents(&self.fs, self.ino));
        let mut want = want;
        if let Some((lo, hi)) = free {
            for b in lo..hi {
                if want.get(&b) != Some(&true) && actual.get(&b) == Some(&true) {
                    want.insert(b, true);
                }
            }
        }
        if actual != want {
            let b = want
                .keys()
                .chain(actual.keys())
                .find(|b| want.get(b) != actual.get(b))
                .unwrap();
            panic!(
                "{what}: file block {b} is {:?} (true: written), the model says {:?}",
                actual.get(b),
                want.get(b)
            );
        }
        self.alloc = actual;
    }

    fn step(&mut self, i: &mut Input<'_>) {
        self.synced = false;
        let nv = self.specs.len();
        match i.below(20) {
            0..=3 => {
                let v = i.below(nv as u64) as usize;
                let (page, off, len) = self.map_range(i);
                self.map_read(v, page, off, len);
            }
            4..=8 => {
                let v = i.below(nv as u64) as usize;
                let (page, off, len) = self.map_range(i);
                let seed = i.u8();
                self.map_write(v, page, off, len, seed);
            }
            9 | 10 => {
                let (pos, len) = range(i);
                self.write(pos, len, i.u8());
            }
            11 => {
                let (pos, len) = range(i);
                self.read(pos, len);
            }
            12 | 13 => {
                let size = offset(i);
                self.truncate(size);
            }
            14 | 15 => {
                let mode = i.below(5) as u8;
                let (pos, len) = range(i);
                self.falloc(mode, pos, len);
            }
            16 => {
                self.fs.fsync(self.ino).unwrap();
                self.synced = true;
            }
            17 => {
                let v = i.below(nv as u64) as usize;
                self.vmas[v] = None;
                self.privs[v].clear();
                self.map(v);
            }
            _ => self.memory_failure(i),
        }
    }

    fn map_range(&self, i: &mut Input<'_>) -> (u64, u64, u64) {
        let page = if i.chance(50) {
            i.range(500, 530)
        } else {
            i.below(MAX_PAGES)
        };
        let off = if i.bool() { 0 } else { i.below(PAGE) };
        let len = match i.below(3) {
            0 => i.range(1, 64),
            1 => i.range(1, 3 * PAGE),
            _ => i.range(1, 40 * PAGE),
        };
        (page, off, len)
    }

    fn map_read(&mut self, v: usize, page: u64, off: u64, len: u64) {
        let m = self.vma(v).clone();
        for (a, n) in self.pieces(v, page, off, len) {
            let idx = m.vma().page_index(a);
            let mut buf = vec![0xEEu8; n];
            let r = self.pt.read(&m, a, &mut buf);
            let what = format!("load of file page {idx} through mapping {v}");
            if idx >= self.eof_pages() {
                assert_eq!(r, Err(VmFault::SIGBUS), "{what} past EOF {}", self.size);
                return;
            }
            if let Err(e) = r {
                assert!(
                    self.poisoned.contains(&idx) && !self.privs[v].contains_key(&idx),
                    "{what}: {e:?}"
                );
                return;
            }
            let o = (a % PAGE) as usize;
            assert!(
                buf[..] == self.expected(v, idx)[o..o + n],
                "{what} (+{o}, {n} bytes) differs from the model"
            );
        }
    }

    fn map_write(&mut self, v: usize, page: u64, off: u64, len: u64, seed: u8) {
        let m = self.vma(v).clone();
        let spec = self.specs[v];
        for (a, n) in self.pieces(v, page, off, len) {
            let idx = m.vma().page_index(a);
            let o = (a % PAGE) as usize;
            let d = data(idx * PAGE + o as u64, n as u64, seed);
            let before = self.alloc.clone();
            let r = self.pt.write(&m, a, &d);
            let what = format!("store to file page {idx} through mapping {v} ({spec:?})");
            if !spec.writable {
                assert_eq!(r, Err(VmFault::SIGSEGV), "{what}");
                return;
            }
            if idx >= self.eof_pages() {
                assert_eq!(r, Err(VmFault::SIGBUS), "{what} past EOF {}", self.size);
                return;
            }
            if let Err(e) = r {
                assert!(
                    self.poisoned.contains(&idx) && !self.privs[v].contains_key(&idx),
                    "{what}: {e:?}"
                );
                self.settle_alloc(before, None, &what);
                return;
            }
            if spec.shared {
                let at = (idx * PAGE) as usize + o;
                self.view[at..at + n].copy_from_slice(&d);
                let mut want = before;
                want.insert(idx, true);
                // A PMD write fault allocates its whole 2 MiB unit.
                let unit = idx / 512 * 512;
                self.settle_alloc(want, spec.huge.then_some((unit, unit + 512)), &what);
            } else {
                let copy = self.expected(v, idx).to_vec();
                let p = self.privs[v].entry(idx).or_insert(copy);
                p[o..o + n].copy_from_slice(&d);
                self.settle_alloc(before, None, &what);
            }
        }
    }

    fn write(&mut self, pos: u64, len: u64, seed: u8) {
        let d = data(pos, len, seed);
        let what = format!("write of {len} bytes at {pos}");
        let r = self.fs.write(self.ino, pos, &d);
        let n = match r {
            Ok(n) => n as u64,
            Err(ref e) => {
                assert!(
                    self.touches_poison(pos, len) || self.growth_hits_poison(pos),
                    "{what}: {e:?}"
                );
                0
            }
        };
        if n < len {
            assert!(
                self.touches_poison(pos, len) || self.growth_hits_poison(pos),
                "{what}: short ({n})"
            );
        }
        let (lo, hi) = (pos / PAGE, (pos + len).div_ceil(PAGE));
        let mut want = self.alloc.clone();
        if n > 0 {
            self.grow(pos);
            self.grow(pos + n);
            self.view[pos as usize..(pos + n) as usize].copy_from_slice(&d[..n as usize]);
            for b in pos / PAGE..(pos + n).div_ceil(PAGE) {
                want.insert(b, true);
            }
            // Pages the write covered whole are repaired (recovery write).
            let (first, end) = (pos.div_ceil(PAGE), (pos + n) / PAGE);
            let whole: Vec<u64> = self
                .poisoned
                .range(first..end.max(first))
                .copied()
                .collect();
            for p in whole {
                self.poisoned.remove(&p);
            }
        }
        // A short write may have allocated past what it wrote.
        let free = (n < len).then_some((lo, hi));
        self.settle_alloc(want, free, &what);
    }

    fn read(&mut self, pos: u64, len: u64) {
        let mut buf = vec![0xEEu8; len as usize];
        let what = format!("read of {len} bytes at {pos} (size {})", self.size);
        let want = self.size.saturating_sub(pos).min(len) as usize;
        match self.fs.read(self.ino, pos, &mut buf) {
            Ok(n) => {
                assert!(
                    n == want || (n < want && self.touches_poison(pos, want as u64)),
                    "{what}: returned {n}, expected {want}"
                );
                assert!(
                    n == 0 || buf[..n] == self.view[pos as usize..pos as usize + n],
                    "{what}: differs from the model"
                );
            }
            Err(e) => assert!(self.touches_poison(pos, want as u64), "{what}: {e:?}"),
        }
    }

    fn truncate(&mut self, size: u64) {
        let what = format!("truncate from {} to {size}", self.size);
        if let Err(e) = self.fs.truncate(self.ino, size) {
            // Zeroing the tail of a poisoned EOF block fails (the new one when
            // shrinking, the old one when growing).
            assert!(
                (size < self.size
                    && !size.is_multiple_of(PAGE)
                    && self.poisoned.contains(&(size / PAGE)))
                    || self.growth_hits_poison(size),
                "{what}: {e:?}"
            );
            let before = self.alloc.clone();
            self.settle_alloc(before, None, &what);
            return;
        }
        let mut want = self.alloc.clone();
        if size < self.size {
            self.view.truncate((size.div_ceil(PAGE) * PAGE) as usize);
            self.view[size as usize..].fill(0);
            self.size = size;
            let keep = self.eof_pages();
            for p in &mut self.privs {
                p.retain(|&idx, _| idx < keep);
            }
            want.retain(|&b, _| b < keep);
            self.poisoned.retain(|&p| p < keep);
        } else {
            self.grow(size);
        }
        self.settle_alloc(want, None, &what);
    }

    fn falloc(&mut self, mode: u8, pos: u64, len: u64) {
        let m = match mode {
            0 => FallocMode::empty(),
            1 => FallocMode::KEEP_SIZE,
            2 => FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
            3 => FallocMode::ZERO_RANGE,
            _ => FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE,
        };
        let what = format!("fallocate {m:?} of {len} bytes at {pos}");
        let end = pos + len;
        let (b_in, b_out) = (pos.div_ceil(PAGE), end / PAGE);
        if let Err(e) = self.fs.fallocate(self.ino, m, pos, len) {
            // Zeroing a partial block that is poisoned fails.
            let edge = |p: u64| self.poisoned.contains(&(p / PAGE));
            let grows = (mode == 0 || mode == 3) && self.growth_hits_poison(end);
            assert!(
                grows
                    || (mode >= 2
                        && ((!pos.is_multiple_of(PAGE) && edge(pos))
                            || (!end.is_multiple_of(PAGE) && edge(end)))),
                "{what}: {e:?}"
            );
            // Nothing is known about what it did before failing: take the file as
            // it now reads (but never a poisoned page).
            self.resync(&what);
            return;
        }
        let mut want = self.alloc.clone();
        if mode >= 2 {
            let r = clip(&self.view, pos, end);
            self.view[r].fill(0);
            for b in b_in..b_out.max(b_in) {
                if mode == 2 {
                    want.remove(&b);
                } else {
                    want.insert(b, false);
                }
                self.poisoned.remove(&b);
            }
        } else {
            for b in pos / PAGE..end.div_ceil(PAGE) {
                want.entry(b).or_insert(false);
            }
        }
        if mode == 0 || mode == 3 {
            self.grow(end);
        }
        self.settle_alloc(want, None, &what);
    }

    /// Takes size, allocation and the readable bytes from the filesystem.
    fn resync(&mut self, what: &str) {
        let size = self.fs.stat(self.ino).unwrap().size;
        self.view.resize((size.div_ceil(PAGE) * PAGE) as usize, 0);
        self.size = size;
        for p in 0..self.eof_pages() {
            if self.poisoned.contains(&p) {
                continue;
            }
            let n = (size - p * PAGE).min(PAGE) as usize;
            let at = (p * PAGE) as usize;
            let got = self.fs.read(self.ino, p * PAGE, &mut self.view[at..at + n]);
            assert!(got.is_ok(), "{what}: page {p} unreadable after: {got:?}");
        }
        self.alloc = alloc_of(&extents(&self.fs, self.ino));
    }

    fn memory_failure(&mut self, i: &mut Input<'_>) {
        let ext = extents(&self.fs, self.ino);
        let written: Vec<(u64, u64)> = (0..self.eof_pages())
            .filter_map(|p| match block_of(&ext, p) {
                Block::Written(d) => Some((p, d)),
                _ => None,
            })
            .collect();
        let (idx, block) = if !written.is_empty() && i.chance(220) {
            let (p, d) = written[i.below(written.len() as u64) as usize];
            (Some(p), d)
        } else {
            // A free data block: later allocations must clear its poison.
            let b = i.range(DEV_BYTES / PAGE / 2, DEV_BYTES / PAGE - 1);
            if self.ever.contains(&b) {
                return;
            }
            (None, b)
        };
        if self.mem().poison(block * PAGE, PAGE).is_err() {
            return; // badblocks table full
        }
        let r = memory_failure(&self.dev, self.base.add(block), 1, MfFlags::ACTION_REQUIRED);
        assert!(r.is_ok(), "memory failure of block {block}: {r:?}");
        if let Some(p) = idx {
            self.poisoned.insert(p);
            let pfn = self.base.add(block);
            for (addr, pte) in self.pt.ptes() {
                if let Pte::Page { pfn: f, .. } = pte {
                    assert_ne!(f, pfn, "poisoned block {block} still mapped at {addr:#x}");
                }
            }
            for (addr, slot) in self.pt.huge() {
                if let PmdSlot::Huge { pfn: h, .. } = slot {
                    assert!(
                        pfn.0.wrapping_sub(h.0) >= 512,
                        "poisoned block {block} still mapped by the PMD at {addr:#x}"
                    );
                }
            }
        }
    }

    fn owner(&self, addr: u64) -> usize {
        (0..self.specs.len())
            .find(|&v| self.vma(v).vma().contains(addr))
            .unwrap_or_else(|| panic!("slot at {addr:#x} outside any mapping"))
    }

    fn check(&mut self, what: &str) {
        let st = self.fs.stat(self.ino).unwrap();
        assert_eq!(st.size, self.size, "{what}: file size");
        // The file in runs between poisoned pages, one read each.
        let mut at = 0;
        while at < self.size {
            let p = at / PAGE;
            if self.poisoned.contains(&p) {
                at = (p + 1) * PAGE;
                continue;
            }
            let end = match self.poisoned.range(p..).next() {
                Some(&q) => (q * PAGE).min(self.size),
                None => self.size,
            };
            let mut buf = vec![0xEEu8; (end - at) as usize];
            assert_eq!(
                self.fs.read(self.ino, at, &mut buf).ok(),
                Some(buf.len()),
                "{what}: read of {at}..{end}"
            );
            let want = &self.view[at as usize..end as usize];
            if buf[..] != want[..] {
                let k = (0..buf.len()).find(|&k| buf[k] != want[k]).unwrap();
                panic!(
                    "{what}: file byte {} differs from the model",
                    at as usize + k
                );
            }
            at = end;
        }
        let ext = extents(&self.fs, self.ino);
        assert_eq!(alloc_of(&ext), self.alloc, "{what}: allocation");
        for (_, &(d, len, _)) in ext.iter() {
            self.ever.extend(d..d + len);
        }
        let mapping = self.vma(0).mapping().clone();
        let index = mapping.index();
        let entries = index.entries();
        let eof = self.eof_pages();
        let total: u64 = entries.iter().map(|e| e.entry.pages()).sum();
        assert_eq!(index.nrpages(), total, "{what}: nrpages");
        for e in &entries {
            let (s, n) = (e.start, e.entry.pages());
            assert!(!e.locked, "{what}: entry at {s} left locked");
            assert!(s + n <= eof, "{what}: entry {e:?} past EOF page {eof}");
            if self.synced {
                assert!(
                    !e.marks.contains(Marks::DIRTY),
                    "{what}: DIRTY after fsync: {e:?}"
                );
            }
            for k in 0..n {
                let b = block_of(&ext, s + k);
                match e.entry.kind {
                    EntryKind::Real => assert_eq!(
                        b,
                        Block::Written(e.pgoff + k),
                        "{what}: REAL entry {e:?} page {} vs the extent map",
                        s + k
                    ),
                    EntryKind::Zero => assert!(
                        !matches!(b, Block::Written(_)),
                        "{what}: ZERO entry {e:?} over a written block"
                    ),
                    EntryKind::Empty => {}
                }
            }
        }
        let mut seen_private: Vec<Vec<u64>> = vec![Vec::new(); self.specs.len()];
        for (addr, slot) in self.pt.huge() {
            let v = self.owner(addr);
            let vm = *self.vma(v).vma();
            assert!(
                vm.holds_pmd(addr),
                "{what}: PMD at {addr:#x} sticks out of mapping {v}"
            );
            let idx = vm.page_index(addr);
            let (pgoff, writable, dirty) = match slot {
                PmdSlot::Huge {
                    writable, dirty, ..
                } => match self.pt.resolve(addr) {
                    Some(SimTarget::Device { pgoff, .. }) => (Some(pgoff), writable, dirty),
                    t => panic!("{what}: huge slot resolves to {t:?}"),
                },
                PmdSlot::HugeZero => (None, false, false),
                s => panic!("{what}: huge() listed {s:?}"),
            };
            let mut bytes = vec![0u8; PMD as usize];
            if let Some(p) = pgoff {
                self.mem().peek(p * PAGE, &mut bytes).unwrap();
            }
            for k in 0..512 {
                let got = &bytes[(k * PAGE) as usize..((k + 1) * PAGE) as usize];
                self.check_slot(
                    &ext,
                    v,
                    idx + k,
                    pgoff.map(|p| p + k),
                    writable,
                    dirty,
                    got,
                    what,
                );
            }
        }
        for (addr, pte) in self.pt.ptes() {
            let v = self.owner(addr);
            let idx = self.vma(v).vma().page_index(addr);
            let mut got = vec![0u8; PAGE as usize];
            match pte {
                Pte::Page {
                    writable, dirty, ..
                } => {
                    let Some(SimTarget::Device { pgoff, .. }) = self.pt.resolve(addr) else {
                        panic!("{what}: device PTE at {addr:#x} does not resolve");
                    };
                    self.mem().peek(pgoff * PAGE, &mut got).unwrap();
                    self.check_slot(&ext, v, idx, Some(pgoff), writable, dirty, &got, what);
                }
                Pte::Zero => self.check_slot(&ext, v, idx, None, false, false, &got, what),
                Pte::Private { .. } => {
                    assert!(
                        !self.specs[v].shared,
                        "{what}: private page in shared mapping {v}"
                    );
                    assert!(
                        idx < eof,
                        "{what}: private page {idx} of mapping {v} past EOF"
                    );
                    assert!(self.pt.read_private(addr, 0, &mut got));
                    let want = self.privs[v]
                        .get(&idx)
                        .unwrap_or_else(|| panic!("{what}: unmodelled private page {idx} in {v}"));
                    assert!(
                        got == *want,
                        "{what}: private page {idx} of mapping {v} differs"
                    );
                    seen_private[v].push(idx);
                }
            }
        }
        for (v, p) in self.privs.iter().enumerate() {
            let want: Vec<u64> = p.keys().copied().collect();
            seen_private[v].sort_unstable();
            assert_eq!(
                seen_private[v], want,
                "{what}: private pages of mapping {v}"
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_slot(
        &self,
        ext: &BTreeMap<u64, (u64, u64, bool)>,
        v: usize,
        idx: u64,
        pgoff: Option<u64>,
        writable: bool,
        dirty: bool,
        got: &[u8],
        what: &str,
    ) {
        let spec = self.specs[v];
        let at = format!("{what}: mapping {v} ({spec:?}) file page {idx}");
        assert!(idx < self.eof_pages(), "{at}: mapped past EOF");
        assert!(
            !self.privs[v].contains_key(&idx),
            "{at}: model has a private copy"
        );
        let entry = self.vma(v).mapping().index().lookup(idx);
        match pgoff {
            Some(p) => {
                assert_eq!(
                    block_of(ext, idx),
                    Block::Written(p),
                    "{at}: not the file's block"
                );
                assert!(
                    !self.poisoned.contains(&idx),
                    "{at}: a poisoned page is mapped"
                );
                let e = entry.unwrap_or_else(|| panic!("{at}: mapped without an entry"));
                assert!(
                    e.entry.kind == EntryKind::Real && e.pgoff + (idx - e.start) == p,
                    "{at}: entry {e:?} does not map the page"
                );
                assert!(!dirty || writable, "{at}: dirty but read-only");
                if writable {
                    assert!(
                        spec.shared && spec.writable,
                        "{at}: writable, not shared rw"
                    );
                    assert!(
                        e.marks.contains(Marks::DIRTY),
                        "{at}: writable, entry not DIRTY"
                    );
                    assert!(!self.synced, "{at}: writable right after fsync");
                }
            }
            None => {
                assert!(
                    !matches!(block_of(ext, idx), Block::Written(_)),
                    "{at}: zero page over a written block"
                );
                assert!(
                    entry.is_some_and(|e| e.entry.kind == EntryKind::Zero),
                    "{at}: zero page with entry {entry:?}"
                );
            }
        }
        if got != self.expected(v, idx) {
            let k = (0..got.len())
                .find(|&k| got[k] != self.expected(v, idx)[k])
                .unwrap();
            panic!("{at}: mapped data differs from the model at byte {k}");
        }
    }
}

fn offset(i: &mut Input<'_>) -> u64 {
    match i.below(5) {
        0 => i.below(2) * PMD,
        1 => i.below(MAX_OFF),
        2 => i.below(MAX_OFF / PAGE) * PAGE,
        3 => i.below(MAX_OFF / PAGE) * PAGE + PAGE - 1,
        _ => (i.below(3) * PMD + i.below(2 * PAGE))
            .saturating_sub(PAGE)
            .min(MAX_END - PAGE),
    }
}

/// An operation's `(pos, len)`, ending by [`MAX_END`].
fn range(i: &mut Input<'_>) -> (u64, u64) {
    let pos = offset(i);
    (pos, length(i).min(MAX_END - pos))
}

fn length(i: &mut Input<'_>) -> u64 {
    match i.below(6) {
        0 => i.range(1, 63),
        1 => i.range(1, 3 * PAGE - 1),
        2 => i.range(1, 63) * PAGE,
        3 => i.range(1, 300_000),
        4 => PMD,
        _ => i.range(1, 2 * PMD),
    }
}

fn vspec(i: &mut Input<'_>) -> VSpec {
    VSpec {
        shared: i.bool(),
        writable: !i.chance(40),
        huge: i.bool(),
        sync: false,
        pgoff: match i.below(3) {
            0 => 0,
            1 => 512,
            _ => i.below(700),
        },
        pages: match i.below(3) {
            0 => MAX_PAGES,
            1 => 512,
            _ => i.range(1, MAX_PAGES - 1),
        },
        shift: if i.chance(64) { i.range(1, 511) } else { 0 },
    }
}

/// The fuzz target (see the module docs).
pub fn run(data: &[u8]) {
    let mut i = Input::new(data);
    let dev = MemDevice::builder().size(DEV_BYTES).build().unwrap();
    let base = base_pfn(&dev);
    fill_canaries(dev.driver(), 0, DEV_BYTES);
    let fs = TestFs::mkfs(dev.clone()).unwrap();
    let data_start = fs.layout().data_start;
    let ino = fs.create("f").unwrap();
    let whole = |shared| VSpec {
        shared,
        writable: true,
        huge: true,
        sync: false,
        pgoff: 0,
        pages: MAX_PAGES,
        shift: 0,
    };
    let mut specs = vec![whole(true), whole(false)];
    specs[0].sync = i.chance(60);
    if i.bool() {
        specs.push(vspec(&mut i));
    }
    let n = specs.len();
    let mut w = World {
        dev: dev.clone(),
        base,
        fs,
        ino,
        pt: Arc::new(SimPageTable::new()),
        specs,
        vmas: vec![None; n],
        size: 0,
        view: Vec::new(),
        privs: vec![BTreeMap::new(); n],
        alloc: Alloc::new(),
        poisoned: BTreeSet::new(),
        ever: BTreeSet::new(),
        synced: false,
    };
    for v in 0..n {
        w.map(v);
    }
    w.check("at the start");
    for k in 0..MAX_OPS {
        if i.is_empty() {
            break;
        }
        w.step(&mut i);
        w.check(&format!("after step {k}"));
    }
    // No block the file never owned may have been written.
    let blocks = DEV_BYTES / PAGE;
    let mut b = data_start;
    while b < blocks {
        // The next run of blocks the file never owned.
        if w.ever.contains(&b) {
            b += 1;
            continue;
        }
        let end = w.ever.range(b..).next().copied().unwrap_or(blocks);
        if let Some(at) = first_bad_canary(w.mem(), b * PAGE, end * PAGE) {
            panic!(
                "stray write: device byte {at:#x} of block {}, which the file never owned",
                at / PAGE
            );
        }
        b = end;
    }
    drop(w);
    forget_page_state(base, DEV_BYTES);
}
