//! Real threads racing page faults on TestFs mappings against truncate, hole punch,
//! fsync writeback and each other (`LCK-01`, `LCK-02`, `LCK-04`, `LCK-05`, §2.11 of the
//! reference). Every iteration lines the threads up on a barrier so the operations
//! overlap, then checks once they are joined:
//! * no deadlock: a watchdog fails the test when an iteration makes no progress for
//!   60 s (nothing else is timed);
//! * no mapping points at a freed or foreign block: every device page mapped is the
//!   file's written block at that offset, every entry agrees with the extent map, a
//!   writable mapping has a DIRTY entry, `nrpages` adds up;
//! * no lost write: every byte a store or `write(2)` put at its own offset is in the
//!   file unless a truncate or punch that may have come later covered it (then it is
//!   that or zero), and no store failed that should not have.

mod testfs_common;

use std::collections::BTreeMap;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use dax_device::{PAGE_SIZE, PMD_SIZE};
use dax_fault::index::{EntryKind, Marks};
use dax_fault::sim::{SimPageTable, SimTarget};
use dax_fault::{MappedVma, PageTable, PmdSlot, Pte, VmFault, Vma};
use dax_testdev::{FallocMode, Ino, TestFs};
use testfs_common::*;

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;
const FILE: u64 = 2 * PMD;
const BASE: u64 = 0x7000_0000_0000;
const PUNCH: FallocMode = FallocMode::PUNCH_HOLE.union(FallocMode::KEEP_SIZE);

/// Runs `body` on its own thread; `body` calls its argument after every iteration.
/// Fails the test if no iteration finishes for 60 s (a deadlock); passes the body's
/// own panic on.
fn watched(name: &'static str, body: impl FnOnce(&dyn Fn()) + Send + 'static) {
    let (tx, rx) = channel::<()>();
    let worker = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let tick = || {
                let _ = tx.send(());
            };
            body(&tick);
        })
        .unwrap();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => {}
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("{name}: no progress for 60 s, deadlock"),
        }
    }
    if let Err(p) = worker.join() {
        std::panic::resume_unwind(p);
    }
}

/// Non-zero bytes unique to (iteration, thread, store).
fn tag(it: u64, t: u64, k: u64, len: usize) -> Vec<u8> {
    let h = (it << 40) ^ (t << 20) ^ k;
    (0..len as u64)
        .map(|i| ((h.wrapping_add(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8) | 1)
        .collect()
}

/// The two mappings every test uses: `a`, shared, writable and PMD-capable over the
/// whole file (4 MiB at a 2 MiB-aligned address), in one address space; `b`, shared,
/// writable and PTE-only over file pages 256..768 (straddling the first 2 MiB), in
/// another.
struct Maps {
    pa: Arc<SimPageTable>,
    pb: Arc<SimPageTable>,
    a: Arc<MappedVma>,
    b: Arc<MappedVma>,
}

const B_PGOFF: u64 = 256;
const B_PAGES: u64 = 512;
const BASE_B: u64 = BASE + 64 * PMD;

impl Maps {
    fn new(fs: &TestFs, ino: Ino) -> Maps {
        let pa = Arc::new(SimPageTable::new());
        let pb = Arc::new(SimPageTable::new());
        let va = Vma::new(BASE, FILE, 0).unwrap().writable(true);
        let vb = Vma::new(BASE_B, B_PAGES * PAGE, B_PGOFF)
            .unwrap()
            .writable(true)
            .huge(false);
        let a = fs.mmap(ino, va, pa.clone() as Arc<dyn PageTable>).unwrap();
        let b = fs.mmap(ino, vb, pb.clone() as Arc<dyn PageTable>).unwrap();
        Maps { pa, pb, a, b }
    }

    /// Stores `data` at file offset `pos` through `a` (`via_b == false`) or, when the
    /// range lies inside it, `b`.
    fn store(&self, pos: u64, data: &[u8], via_b: bool) -> Result<(), VmFault> {
        let b_range = B_PGOFF * PAGE..(B_PGOFF + B_PAGES) * PAGE;
        if via_b && b_range.contains(&pos) && b_range.contains(&(pos + data.len() as u64 - 1)) {
            self.pb.write(&self.b, BASE_B + pos - b_range.start, data)
        } else {
            self.pa.write(&self.a, BASE + pos, data)
        }
    }

    fn load(&self, pos: u64, buf: &mut [u8], via_b: bool) -> Result<(), VmFault> {
        let b_range = B_PGOFF * PAGE..(B_PGOFF + B_PAGES) * PAGE;
        if via_b && b_range.contains(&pos) && b_range.contains(&(pos + buf.len() as u64 - 1)) {
            self.pb.read(&self.b, BASE_B + pos - b_range.start, buf)
        } else {
            self.pa.read(&self.a, BASE + pos, buf)
        }
    }

    /// The structural checks, with every thread joined: see the module docs. With
    /// `clean`, also that no slot is writable or dirty and no entry DIRTY (right after
    /// an fsync).
    fn check(&self, fs: &TestFs, ino: Ino, clean: bool) {
        let mut ext = BTreeMap::new();
        for e in fs.extents(ino).unwrap() {
            for i in 0..e.len {
                ext.insert(e.file_block + i, (e.dev_block + i, e.unwritten));
            }
        }
        let written = |idx: u64| match ext.get(&idx) {
            Some(&(dev, false)) => Some(dev),
            _ => None,
        };
        let eof = fs.stat(ino).unwrap().size.div_ceil(PAGE);
        let index = self.a.mapping().index();
        let entries = index.entries();
        assert_eq!(
            index.nrpages(),
            entries.iter().map(|e| e.entry.pages()).sum::<u64>(),
            "nrpages vs the entries"
        );
        for e in &entries {
            assert!(!e.locked, "entry left locked: {e:?}");
            assert!(e.start + e.entry.pages() <= eof, "entry past EOF: {e:?}");
            assert!(
                !clean || !e.marks.contains(Marks::DIRTY),
                "DIRTY after fsync: {e:?}"
            );
            for i in 0..e.entry.pages() {
                match e.entry.kind {
                    EntryKind::Real => assert_eq!(
                        written(e.start + i),
                        Some(e.pgoff + i),
                        "REAL entry {e:?} vs the extent map at page {}",
                        e.start + i
                    ),
                    EntryKind::Zero => assert_eq!(
                        written(e.start + i),
                        None,
                        "ZERO entry {e:?} over a written block"
                    ),
                    EntryKind::Empty => {}
                }
            }
        }
        let device = |idx: u64, pgoff: u64, writable: bool, dirty: bool| {
            assert!(idx < eof, "page {idx} mapped past EOF page {eof}");
            assert_eq!(
                written(idx),
                Some(pgoff),
                "file page {idx} mapped to device page {pgoff}, not its written block"
            );
            let e = index.lookup(idx).expect("a mapped page has an entry");
            assert_eq!(e.entry.kind, EntryKind::Real, "page {idx}: {e:?}");
            assert_eq!(e.pgoff + (idx - e.start), pgoff, "page {idx}: {e:?}");
            assert!(!dirty || writable, "page {idx} dirty but read-only");
            if writable {
                assert!(e.marks.contains(Marks::DIRTY), "page {idx} writable, {e:?}");
                assert!(!clean, "page {idx} writable after fsync");
            }
        };
        for (m, pt) in [(&self.a, &self.pa), (&self.b, &self.pb)] {
            let v = *m.vma();
            for (addr, slot) in pt.huge() {
                assert!(v.holds_pmd(addr), "PMD at {addr:#x} outside its mapping");
                let idx = v.page_index(addr);
                match slot {
                    PmdSlot::Huge {
                        writable, dirty, ..
                    } => {
                        let Some(SimTarget::Device { pgoff, .. }) = pt.resolve(addr) else {
                            panic!("huge slot at {addr:#x} not on the device");
                        };
                        for i in 0..512 {
                            device(idx + i, pgoff + i, writable, dirty);
                        }
                    }
                    _ => {
                        for i in 0..512 {
                            assert!(idx + i < eof, "huge zero page past EOF");
                            assert_eq!(written(idx + i), None, "huge zero page over data");
                        }
                    }
                }
            }
            for (addr, pte) in pt.ptes() {
                assert!(v.contains(addr), "PTE at {addr:#x} outside its mapping");
                let idx = v.page_index(addr);
                match pte {
                    Pte::Page {
                        writable, dirty, ..
                    } => {
                        let Some(SimTarget::Device { pgoff, .. }) = pt.resolve(addr) else {
                            panic!("PTE at {addr:#x} not on the device");
                        };
                        device(idx, pgoff, writable, dirty);
                    }
                    Pte::Zero => {
                        assert!(idx < eof, "zero page past EOF");
                        assert_eq!(written(idx), None, "zero page over data at page {idx}");
                    }
                    Pte::Private { .. } => panic!("private page in a shared mapping"),
                }
            }
        }
    }
}

/// The pieces this iteration's stores and writes put in the file, in order.
#[derive(Default)]
struct Wrote(Vec<(u64, Vec<u8>)>);

impl Wrote {
    fn new() -> Wrote {
        Wrote::default()
    }

    /// Records a piece; whether it overlaps none recorded before.
    fn insert(&mut self, pos: u64, data: &[u8]) -> bool {
        let end = pos + data.len() as u64;
        let fresh = self
            .0
            .iter()
            .all(|(p, d)| end <= *p || p + d.len() as u64 <= pos);
        self.0.push((pos, data.to_vec()));
        fresh
    }

    /// What the last piece covering byte `p` put there.
    fn get(&self, p: u64) -> Option<u8> {
        self.0
            .iter()
            .rev()
            .find(|(q, d)| (*q..q + d.len() as u64).contains(&p))
            .map(|(q, d)| d[(p - q) as usize])
    }

    /// Every byte set, in order (later ones win).
    fn iter(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        self.0
            .iter()
            .flat_map(|(q, d)| d.iter().enumerate().map(move |(i, &b)| (q + i as u64, b)))
    }
}

fn read_all(fs: &TestFs, ino: Ino) -> Vec<u8> {
    let mut v = vec![0u8; fs.stat(ino).unwrap().size as usize];
    assert_eq!(fs.read(ino, 0, &mut v).unwrap(), v.len());
    v
}

/// One store of the racing threads: where, what, and how it went.
struct Store {
    pos: u64,
    data: Vec<u8>,
    result: Result<(), VmFault>,
}

/// Thread `t` of `threads` stores `per` tagged pieces in pages of its own: piece `k`
/// in page `(t + (k % cycle) * threads) * stride % pages` (so with a small `cycle` it
/// comes back to its pages), at an offset inside the page that depends on the
/// iteration, alternately through `a` and `b`.
fn stores(
    maps: &Maps,
    it: u64,
    t: u64,
    threads: u64,
    per: u64,
    stride: u64,
    cycle: u64,
) -> Vec<Store> {
    let pages = FILE / PAGE;
    (0..per)
        .map(|k| {
            let page = ((t + (k % cycle) * threads) * stride) % pages;
            let len = 8 + ((it + k) % 56) as usize;
            let pos = page * PAGE + (it * 97 + t * 13) % (PAGE - len as u64);
            let data = tag(it, t, k, len);
            let result = maps.store(pos, &data, (k + it) % 2 == 1);
            Store { pos, data, result }
        })
        .collect()
}

fn setup(size: u64) -> (Dev, TestFs, Ino, Maps) {
    let (dev, fs) = mem_fs(64 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(7, 0, size as usize)).unwrap();
    let maps = Maps::new(&fs, ino);
    (dev, fs, ino, maps)
}

#[test]
fn faults_racing_truncate_lose_no_write_and_map_no_freed_block() {
    watched("faults vs truncate", |tick| {
        let (_dev, fs, ino, maps) = setup(FILE);
        let mut shadow = read_all(&fs, ino);
        const T: u64 = 4;
        for it in 0..150u64 {
            // Somewhere in the second half (so PMD faults of the first 2 MiB keep
            // working), page aligned every third time.
            let mut size = PMD + (it * 0x1_2345) % PMD;
            if it % 3 == 0 {
                size &= !(PAGE - 1);
            }
            let barrier = Barrier::new(T as usize + 1);
            let all: Vec<Vec<Store>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..T)
                    .map(|t| {
                        let (maps, barrier) = (&maps, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            stores(maps, it, t, T, 24, 7, 24)
                        })
                    })
                    .collect();
                barrier.wait();
                fs.truncate(ino, size).unwrap();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let eof_page = size.div_ceil(PAGE);
            for st in all.iter().flatten() {
                match st.result {
                    Ok(()) => {
                        let end = (st.pos + st.data.len() as u64).min(size);
                        if st.pos < end {
                            let n = (end - st.pos) as usize;
                            shadow[st.pos as usize..end as usize].copy_from_slice(&st.data[..n]);
                        }
                    }
                    Err(e) => {
                        assert_eq!(e, VmFault::SIGBUS, "store at {}", st.pos);
                        assert!(
                            st.pos / PAGE >= eof_page,
                            "store at {} inside EOF {size} got SIGBUS",
                            st.pos
                        );
                    }
                }
            }
            shadow.truncate(size as usize);
            let file = read_all(&fs, ino);
            if file != shadow {
                let i = (0..file.len()).find(|&i| file[i] != shadow[i]).unwrap();
                panic!("iteration {it}: a write was lost at byte {i} (truncated to {size})");
            }
            maps.check(&fs, ino, false);
            // Back to full size with zeros; the checkpoint frees the truncated blocks
            // while nothing races.
            fs.truncate(ino, FILE).unwrap();
            shadow.resize(FILE as usize, 0);
            fs.fsync(ino).unwrap();
            maps.check(&fs, ino, true);
            tick();
        }
    });
}

#[test]
fn faults_and_writes_racing_punch_hole_lose_no_write_and_map_no_freed_block() {
    watched("faults vs punch", |tick| {
        let (_dev, fs, ino, maps) = setup(FILE);
        let mut shadow = read_all(&fs, ino);
        const T: u64 = 4;
        for it in 0..150u64 {
            let pstart = (it * 0x3_1415) % (FILE - PAGE);
            let plen = (1 + (it * 0x2_7183) % (PMD + PMD / 2)).min(FILE - pstart);
            let punched = pstart..pstart + plen;
            let barrier = Barrier::new(T as usize + 2);
            let (all, writes, loads) = std::thread::scope(|s| {
                let hs: Vec<_> = (0..T)
                    .map(|t| {
                        let (maps, barrier) = (&maps, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            stores(maps, it, t, T + 1, 24, 5, 24)
                        })
                    })
                    .collect();
                // write(2) at pieces of its own (thread number T in the same scheme),
                // and loads anywhere.
                let (fs, maps, barrier) = (&fs, &maps, &barrier);
                let wh = s.spawn(move || {
                    barrier.wait();
                    let mut out = Vec::new();
                    let mut loads = Vec::new();
                    for k in 0..16u64 {
                        let page = ((T + k * (T + 1)) * 5) % (FILE / PAGE);
                        let pos = page * PAGE + (it * 31 + k) % 2048;
                        let data = tag(it, T, k, 100);
                        assert_eq!(fs.write(ino, pos, &data).unwrap(), data.len());
                        out.push((pos, data));
                        let at = (it * 0x5_0001 + k * 0x1_8000) % (FILE - 64);
                        let mut buf = vec![0u8; 64];
                        maps.load(at, &mut buf, k % 2 == 0).unwrap();
                        loads.push((at, buf));
                    }
                    (out, loads)
                });
                barrier.wait();
                fs.fallocate(ino, PUNCH, pstart, plen).unwrap();
                let all: Vec<Vec<Store>> = hs.into_iter().map(|h| h.join().unwrap()).collect();
                let (writes, loads) = wh.join().unwrap();
                (all, writes, loads)
            });
            // What each byte may be now: written this iteration → that (or zero if in
            // the punched range); else the old byte (or zero in the punched range).
            let mut wrote = Wrote::new();
            for st in all.iter().flatten() {
                assert_eq!(st.result, Ok(()), "store at {} inside EOF failed", st.pos);
                assert!(wrote.insert(st.pos, &st.data), "pieces overlap");
            }
            for (pos, data) in &writes {
                assert!(wrote.insert(*pos, data), "pieces overlap");
            }
            for (at, buf) in &loads {
                for (i, &got) in buf.iter().enumerate() {
                    let p = at + i as u64;
                    let ok = got == shadow[p as usize] || got == 0 || wrote.get(p) == Some(got);
                    assert!(
                        ok,
                        "iteration {it}: load at byte {p} saw {got}, never there"
                    );
                }
            }
            let file = read_all(&fs, ino);
            assert_eq!(file.len() as u64, FILE);
            // Outside the punched range: the old bytes with this iteration's writes.
            let mut want = shadow.clone();
            for (p, b) in wrote.iter() {
                want[p as usize] = b;
            }
            let (ps, pe) = (punched.start as usize, punched.end as usize);
            assert!(
                file[..ps] == want[..ps] && file[pe..] == want[pe..],
                "iteration {it}: a write outside the punched range {punched:?} was lost"
            );
            // Inside: zeros, except what was written there after the punch.
            let mut inside = file[ps..pe].to_vec();
            for (p, b) in wrote.iter() {
                if punched.contains(&p) && file[p as usize] == b {
                    inside[p as usize - ps] = 0;
                }
            }
            assert!(
                inside == vec![0u8; pe - ps],
                "iteration {it}: a byte in the punched range {punched:?} is neither zero \
                 nor written after the punch"
            );
            shadow = file;
            maps.check(&fs, ino, false);
            fs.fsync(ino).unwrap();
            maps.check(&fs, ino, true);
            tick();
        }
    });
}

#[test]
fn faults_racing_fsync_keep_dirty_tracking_and_lose_no_write() {
    watched("faults vs fsync", |tick| {
        let (_dev, fs, ino, maps) = setup(FILE);
        let mut shadow = read_all(&fs, ino);
        const T: u64 = 4;
        for it in 0..150u64 {
            if it % 8 == 7 {
                // Fresh holes now and then, so the racing stores allocate again.
                fs.fallocate(ino, PUNCH, 0, FILE).unwrap();
                shadow.fill(0);
            }
            let barrier = Barrier::new(T as usize + 1);
            let all: Vec<Vec<Store>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..T)
                    .map(|t| {
                        let (maps, barrier) = (&maps, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            // Six pages each, eight stores to each: a store after an
                            // fsync takes a mkwrite fault that races the next writeback.
                            stores(maps, it, t, T, 48, 1 + it % 3, 6)
                        })
                    })
                    .collect();
                barrier.wait();
                for _ in 0..6 {
                    fs.fsync(ino).unwrap();
                    std::thread::yield_now();
                }
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for st in all.iter().flatten() {
                assert_eq!(st.result, Ok(()), "store at {}", st.pos);
            }
            // A store after the last fsync must still be tracked: every writable slot
            // has a DIRTY entry (checked here), and the next fsync cleans it all.
            maps.check(&fs, ino, false);
            fs.fsync(ino).unwrap();
            maps.check(&fs, ino, true);
            // Each thread has pages of its own and comes back to them: its stores, in
            // order, give what the file must hold.
            for st in all.iter().flatten() {
                let p = st.pos as usize;
                shadow[p..p + st.data.len()].copy_from_slice(&st.data);
            }
            let file = read_all(&fs, ino);
            if file != shadow {
                let i = (0..file.len()).find(|&i| file[i] != shadow[i]).unwrap();
                panic!(
                    "iteration {it}: byte {i} is {}, want {}",
                    file[i], shadow[i]
                );
            }
            tick();
        }
    });
}

#[test]
fn faults_and_a_writer_on_one_pmd_range_agree_on_the_blocks() {
    watched("faults vs faults", |tick| {
        let (_dev, fs, ino, maps) = setup(FILE);
        const T: u64 = 6;
        for it in 0..200u64 {
            // The first 2 MiB a hole (or, every fourth time, all of it unwritten), so
            // PMD and PTE faults from both mappings and write(2) race to fill it.
            fs.fallocate(ino, PUNCH, 0, PMD).unwrap();
            if it % 4 == 3 {
                fs.fallocate(ino, FallocMode::KEEP_SIZE, 0, PMD).unwrap();
            }
            fs.fsync(ino).unwrap();
            let barrier = Barrier::new(T as usize);
            let (stored, loads) = std::thread::scope(|s| {
                let hs: Vec<_> = (0..T)
                    .map(|t| {
                        let (fs, maps, barrier) = (&fs, &maps, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            let mut stored = Vec::new();
                            let mut loads = Vec::new();
                            for k in 0..12u64 {
                                // Pages of thread t: t, t + T, ... (mod 512), touched
                                // through `b` on odd steps (PTE-only) and `a` (PMD)
                                // otherwise, by write(2) from the last thread; loads
                                // and stores interleave.
                                let page = (t + (k + it) * T) % 512;
                                let via_b = (k + t) % 2 == 1;
                                if (t + k + it) % 3 == 0 {
                                    let mut buf = vec![0u8; 32];
                                    let at = ((page * 37 + 3) % 512) * PAGE + 100;
                                    maps.load(at, &mut buf, via_b).unwrap();
                                    loads.push((at, buf));
                                } else {
                                    let pos = page * PAGE + t * 64;
                                    let data = tag(it, t, k, 64);
                                    if t == T - 1 {
                                        assert_eq!(fs.write(ino, pos, &data).unwrap(), 64);
                                    } else {
                                        maps.store(pos, &data, via_b).unwrap();
                                    }
                                    stored.push((pos, data));
                                }
                            }
                            (stored, loads)
                        })
                    })
                    .collect();
                let mut stored = Vec::new();
                let mut loads = Vec::new();
                for h in hs {
                    let (st, ld) = h.join().unwrap();
                    stored.extend(st);
                    loads.extend(ld);
                }
                (stored, loads)
            });
            let mut wrote = Wrote::new();
            for (pos, data) in &stored {
                assert!(wrote.insert(*pos, data), "pieces overlap");
            }
            let file = read_all(&fs, ino);
            let mut want = vec![0u8; PMD as usize];
            for (p, b) in wrote.iter() {
                want[p as usize] = b;
            }
            if file[..PMD as usize] != want[..] {
                let i = (0..want.len()).find(|&i| file[i] != want[i]).unwrap();
                panic!("iteration {it}: byte {i} is {}, want {}", file[i], want[i]);
            }
            for (at, buf) in &loads {
                for (i, &got) in buf.iter().enumerate() {
                    let p = at + i as u64;
                    assert!(
                        got == 0 || wrote.get(p) == Some(got),
                        "iteration {it}: load at {p} saw {got}"
                    );
                }
            }
            maps.check(&fs, ino, false);
            fs.fsync(ino).unwrap();
            maps.check(&fs, ino, true);
            tick();
        }
    });
}
