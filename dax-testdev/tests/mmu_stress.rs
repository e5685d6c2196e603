//! Stress tests of real DAX mappings (`dax_fault::mmu`): several threads load and
//! store through `MmuMapping::as_ptr` while others write(2), store through a second
//! mapping or copy-on-write, modelled on xfstests' holetest (generic/344, 346, 354),
//! t_mmap_cow_race (generic/437) and generic/428, plus a run that needs more kernel
//! mappings than `vm.max_map_count` allows if every page were its own.
//!
//! # Harness
//!
//! Each scenario is a pair: an ignored `child_<name>` test doing the work, and a
//! normal `<name>` test that runs it in a child process of this test binary under a
//! watchdog. The child can die by a signal (SIGBUS from the engine, SIGSEGV), hang
//! (a fault that never resolves re-faults forever) or panic on a model mismatch;
//! the parent turns each into a failure naming what happened, with the child's
//! output. Every child checks every byte of the file (`fs.read`) and of the mapping
//! (loads through the pointer) against a model computed from what each thread did.
//!
//! Environment:
//! * `DAX_STRESS_TIMEOUT_SECS` (default 120): the watchdog's deadline per child.
//! * `DAX_STRESS_SCALE` (default 1): multiplies sizes and rounds, for longer local
//!   runs.
//! * `DAX_STRESS_ITERS` (default 4): how many times scenarios 1 to 3 repeat on a
//!   fresh file.
//! * `DAX_STRESS_FLIP_MODEL=<offset>`: every model comparison expects the byte at
//!   that offset (of each compared region) flipped, so every test must then fail
//!   with a mismatch. A check of the checkers (of the final comparisons; scenario
//!   3's in-flight old-or-new check of loads is not covered).
//!
//! A child reports on stderr where a SIGBUS (or a SIGSEGV the engine passed on) hit:
//! address, mapping and page. A SIGSEGV without that line was raised inside the
//! engine's own handler (the kernel kills at once). On a timeout the parent prints the
//! child's threads and their states before killing it.
//!
//! 2 MiB variants get their device from [`pmd_device`] (a shmem-THP memfd); when it
//! cannot be built they print "skipping: ..." and pass. Scenario 4 is about hugetlb
//! itself and uses [`hugetlb_device`].
#![allow(unsafe_code)]

mod sigreport;
mod testfs_common;

use std::os::unix::process::ExitStatusExt;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dax_device::PMD_SIZE;
use dax_fault::mmu::{MapOptions, MmuMapping, prepare_thread};
use dax_testdev::{Backing, Ino, MemDevice, TestFs};
use dax_testkit::child::{ChildRun, run_child_watched};
use dax_testkit::sweep::signal_name;
use sigreport::{install_signal_report, track};
use testfs_common::{Dev, pattern};

const PAGE: usize = 4096;
const PMD: usize = PMD_SIZE;

// ---- harness: parent side ----

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// `DAX_STRESS_SCALE`, at least 1.
fn scale() -> usize {
    env_u64("DAX_STRESS_SCALE", 1).max(1) as usize
}

/// How many times the race scenarios (1 to 3) repeat, each on a fresh file and
/// mapping: `DAX_STRESS_ITERS`, default 4.
fn iterations() -> usize {
    env_u64("DAX_STRESS_ITERS", 4).max(1) as usize
}

/// Runs the ignored test `child_<name>` of this binary in a child process with a
/// watchdog, and fails unless it passed.
fn run_child(name: &str) {
    let child_name = format!("child_{name}");
    let limit = Duration::from_secs(env_u64("DAX_STRESS_TIMEOUT_SECS", 120));
    let ChildRun {
        status,
        output,
        hung_threads,
        took,
    } = run_child_watched(&child_name, limit);
    let Some(status) = status else {
        panic!(
            "{child_name}: hung (livelock or deadlock): still running after {} s \
             (DAX_STRESS_TIMEOUT_SECS), killed. Its threads then (R: running, a livelock; \
             S: sleeping, a deadlock):\n{hung_threads}\n{output}",
            limit.as_secs()
        );
    };
    if let Some(sig) = status.signal() {
        let note = if sig == libc::SIGSEGV && !output.contains("SIGSEGV at") {
            " (not reported by the child's handler: most likely a fault inside the \
             engine's own SIGSEGV handler, which the kernel forces as a kill)"
        } else {
            ""
        };
        panic!(
            "{child_name}: died by {} ({sig}){note} after {:.2} s.\n{output}",
            signal_name(sig),
            took.as_secs_f64()
        );
    }
    if !status.success() {
        panic!(
            "{child_name}: failed (exit status {:?}) after {:.2} s.\n{output}",
            status.code(),
            took.as_secs_f64()
        );
    }
    assert!(
        output.contains("1 passed"),
        "{child_name}: the child ran no test (wrong name?).\n{output}"
    );
    if let Some(line) = output.lines().find(|l| l.contains("skipping:")) {
        println!("{child_name}: SKIPPED ({})", line.trim());
    }
    println!(
        "{child_name}: passed in {:.2} s\n{output}",
        took.as_secs_f64()
    );
}

/// A parent test `$name` and its child `$child` doing `$body`.
macro_rules! stress {
    ($(#[$doc:meta])* $name:ident, $child:ident, $body:expr) => {
        #[test]
        #[ignore = concat!("run in a child process by ", stringify!($name))]
        fn $child() {
            install_signal_report();
            let t = Instant::now();
            $body;
            println!("child work took {:.2} s", t.elapsed().as_secs_f64());
        }

        $(#[$doc])*
        #[test]
        fn $name() {
            run_child(stringify!($name));
        }
    };
}

// ---- harness: child side ----

/// A load through the raw pointer (the access the SIGSEGV handler must serve).
fn peek(m: &MmuMapping, off: usize) -> u8 {
    assert!(off < m.len());
    // SAFETY: inside the mapping, which outlives the call; a fault is served by the
    // handler, or kills the child (a failure the parent reports).
    unsafe { m.as_ptr().add(off).read_volatile() }
}

/// A store through the raw pointer.
fn poke(m: &MmuMapping, off: usize, v: u8) {
    assert!(off < m.len());
    // SAFETY: as in `peek`, on a writable mapping.
    unsafe { m.as_ptr().add(off).write_volatile(v) }
}

/// An aligned 8-byte load through the raw pointer.
fn peek_u64(m: &MmuMapping, off: usize) -> u64 {
    assert!(off.is_multiple_of(8) && off + 8 <= m.len());
    // SAFETY: as in `peek`; the mapping is page-aligned and `off` 8-aligned.
    unsafe { m.as_ptr().add(off).cast::<u64>().read_volatile() }
}

/// An aligned 8-byte store through the raw pointer.
fn poke_u64(m: &MmuMapping, off: usize, v: u64) {
    assert!(off.is_multiple_of(8) && off + 8 <= m.len());
    // SAFETY: as in `poke`; the mapping is page-aligned and `off` 8-aligned.
    unsafe { m.as_ptr().add(off).cast::<u64>().write_volatile(v) }
}

/// Loads `buf.len()` bytes from `off` of the mapping (8 bytes at a time where
/// aligned).
fn load_range(m: &MmuMapping, off: usize, buf: &mut [u8]) {
    let mut i = 0;
    while i < buf.len() {
        if (off + i).is_multiple_of(8) && i + 8 <= buf.len() {
            buf[i..i + 8].copy_from_slice(&peek_u64(m, off + i).to_le_bytes());
            i += 8;
        } else {
            buf[i] = peek(m, off + i);
            i += 1;
        }
    }
}

/// Stores `data` at `off` of the mapping (8 bytes at a time where aligned).
fn store_range(m: &MmuMapping, off: usize, data: &[u8]) {
    let mut i = 0;
    while i < data.len() {
        if (off + i).is_multiple_of(8) && i + 8 <= data.len() {
            poke_u64(
                m,
                off + i,
                u64::from_le_bytes(data[i..i + 8].try_into().unwrap()),
            );
            i += 8;
        } else {
            poke(m, off + i, data[i]);
            i += 1;
        }
    }
}

/// Differences between a model and what was found, accumulated over chunks.
struct Diff {
    what: String,
    count: u64,
    first: Vec<(usize, u8, u8)>,
    flip: Option<usize>,
}

impl Diff {
    fn new(what: impl Into<String>) -> Diff {
        let flip = std::env::var("DAX_STRESS_FLIP_MODEL")
            .ok()
            .map(|v| v.trim().parse().unwrap_or(0));
        Diff {
            what: what.into(),
            count: 0,
            first: Vec::new(),
            flip,
        }
    }

    /// Compares `got` with `want`, both at offset `base` of the region.
    fn compare(&mut self, base: usize, want: &[u8], got: &[u8]) {
        assert_eq!(want.len(), got.len());
        let flip = self
            .flip
            .filter(|&f| f >= base && f < base + want.len())
            .map(|f| f - base);
        if flip.is_none() && want == got {
            return;
        }
        for (i, (&w, &g)) in want.iter().zip(got).enumerate() {
            let w = if flip == Some(i) { !w } else { w };
            if w != g {
                self.count += 1;
                if self.first.len() < 6 {
                    self.first.push((base + i, w, g));
                }
            }
        }
    }

    fn report(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let (off, w, g) = self.first[0];
        let more: Vec<String> = self.first[1..]
            .iter()
            .map(|(o, w, g)| format!("{o:#x}: {w:#04x}/{g:#04x}"))
            .collect();
        Some(format!(
            "{}: {} byte(s) differ from the model; first at offset {off:#x} (page {}, byte {}): \
             expected {w:#04x}, found {g:#04x}; next (offset: expected/found): [{}]",
            self.what,
            self.count,
            off / PAGE,
            off % PAGE,
            more.join(", ")
        ))
    }
}

/// Panics with every non-empty report.
fn finish(diffs: &[&Diff]) {
    let msgs: Vec<String> = diffs.iter().filter_map(|d| d.report()).collect();
    if !msgs.is_empty() {
        panic!("model mismatch:\n{}", msgs.join("\n"));
    }
    for d in diffs {
        println!("{}: every byte matches the model", d.what);
    }
}

/// Compares all of the file and all of the mapping with their models.
fn verify(fs: &TestFs, ino: Ino, m: &MmuMapping, file_model: &[u8], map_model: &[u8]) {
    let mut file = vec![0u8; file_model.len()];
    let n = fs.read(ino, 0, &mut file).unwrap();
    assert_eq!(n, file.len(), "short read of the file");
    let mut fd = Diff::new("file (fs.read)");
    fd.compare(0, file_model, &file);
    drop(file);
    let mut mapped = vec![0u8; map_model.len()];
    load_range(m, 0, &mut mapped);
    let mut md = Diff::new("mapping (loads through the pointer)");
    md.compare(0, map_model, &mapped);
    finish(&[&fd, &md]);
}

/// Sets a flag when dropped (also when the thread panics), so the threads waiting
/// on it do not spin forever.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Counts up when dropped.
struct CountOnDrop<'a>(&'a AtomicUsize);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

// ---- devices and files ----

/// Page granularity of a variant: 4 KiB PTE mappings on a memfd device, or 2 MiB PMD
/// mappings on [`pmd_device`] with 2 MiB-aligned extents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gran {
    K4,
    M2,
}

/// A device that can serve 2 MiB (PMD) mappings, or `None` (after printing why) when
/// this machine cannot build one. Every 2 MiB variant gets its device here.
fn pmd_device(size: usize) -> Option<Dev> {
    let size = size.next_multiple_of(PMD);
    match MemDevice::builder()
        .size(size as u64)
        .backing(Backing::ShmemThp)
        .build()
    {
        Ok(d) => Some(d),
        Err(e) => {
            println!(
                "skipping: no PMD-capable (shmem-THP memfd) device of {} MiB ({e})",
                size >> 20
            );
            None
        }
    }
}

/// A hugetlb-backed device specifically (scenario 4 is about hugetlb), or `None`
/// after printing why.
fn hugetlb_device(size: usize) -> Option<Dev> {
    let size = size.next_multiple_of(PMD);
    match MemDevice::builder()
        .size(size as u64)
        .backing(Backing::HugetlbMemfd)
        .build()
    {
        Ok(d) => Some(d),
        Err(e) => {
            println!(
                "skipping: no hugetlb memfd device of {} MiB ({e}); \
                 reserve 2 MiB pages with `sysctl vm.nr_hugepages=256`",
                size >> 20
            );
            None
        }
    }
}

/// A fresh TestFs with room for a `len`-byte file of granularity `gran`.
fn fs_for(gran: Gran, len: usize) -> Option<TestFs> {
    // Room for the metadata (two checkpoint slots of up to 1/64 of the device each).
    let size = len + len / 16 + (16 << 20);
    let dev = match gran {
        Gran::K4 => MemDevice::builder()
            .size(size.next_multiple_of(PAGE) as u64)
            .build()
            .unwrap(),
        Gran::M2 => pmd_device(size)?,
    };
    Some(TestFs::mkfs(dev).unwrap())
}

/// Writes `data` from offset 0 with `fs.write` in 2 MiB chunks (so the extents are 2
/// MiB aligned where the allocator can).
fn write_in_2m_chunks(fs: &TestFs, ino: Ino, data: &[u8]) {
    for (i, c) in data.chunks(PMD).enumerate() {
        assert_eq!(fs.write(ino, (i * PMD) as u64, c).unwrap(), c.len());
    }
}

/// Setup check for 2 MiB variants: every extent is 2 MiB aligned on the device and a
/// whole number of 2 MiB blocks.
fn assert_pmd_extents(fs: &TestFs, ino: Ino) {
    let ext = fs.extents(ino).unwrap();
    let blocks = (PMD / PAGE) as u64;
    assert!(
        ext.iter().all(|e| e.file_block.is_multiple_of(blocks)
            && e.dev_block.is_multiple_of(blocks)
            && e.len.is_multiple_of(blocks)),
        "setup: the file's extents are not 2 MiB aligned: {ext:?}"
    );
}

fn map_opts(gran: Gran, shared: bool) -> MapOptions {
    MapOptions::new()
        .shared(shared)
        .writable(true)
        .huge(gran == Gran::M2)
}

// ---- 1. write(2) racing stores to the same pages (holetest -w, generic/344, 346) ----

const WR_STORERS: usize = 3;

/// The 8 bytes storer `t` stores into page `p` in round `r` (no zero byte).
fn wr_marker(t: usize, r: usize, p: usize) -> u64 {
    splitmix(((t as u64) << 56) | ((r as u64) << 32) | p as u64) | 0x0101_0101_0101_0101
}

/// Byte `k` of the upper half of page `p` as write(2) round `w` writes it (non-zero).
fn wr_byte(w: usize, p: usize, k: usize) -> u8 {
    ((w * 131 + p * 7 + k * 3) % 255 + 1) as u8
}

fn write_races_stores(gran: Gran, prefault: bool, data: bool, small_stack: bool) {
    for it in 0..iterations() {
        println!("iteration {it}");
        if write_races_stores_once(gran, prefault, data, small_stack).is_none() {
            return;
        }
    }
}

/// One run; `None` when the device could not be built (skipped).
fn write_races_stores_once(
    gran: Gran,
    prefault: bool,
    data: bool,
    small_stack: bool,
) -> Option<()> {
    let pages = 1024 * scale();
    let len = pages * PAGE;
    let fs = fs_for(gran, len)?;
    let ino = fs.create("f").unwrap();
    let initial = if data {
        pattern(0x5a, 0, len)
    } else {
        vec![0u8; len]
    };
    if data {
        write_in_2m_chunks(&fs, ino, &initial);
        if gran == Gran::M2 {
            assert_pmd_extents(&fs, ino);
        }
    } else {
        fs.truncate(ino, len as u64).unwrap();
    }
    let m = fs
        .mmap_real(ino, 0, len as u64, map_opts(gran, true))
        .unwrap();
    track(0, &m);
    if prefault {
        for p in 0..pages {
            assert_eq!(peek(&m, p * PAGE + 100), initial[p * PAGE + 100]);
        }
        println!("prefaulted: {:?}", m.stats());
    }
    let (min_store_rounds, min_write_rounds) = (4 * scale(), 2);
    let storers_done = AtomicUsize::new(0);
    let writer_gone = AtomicBool::new(false);
    let write_rounds = AtomicUsize::new(0);
    let start = Barrier::new(WR_STORERS + 1);
    let (store_rounds, writes) = std::thread::scope(|s| {
        let storers: Vec<_> = (0..WR_STORERS)
            .map(|t| {
                let (m, storers_done, writer_gone, write_rounds, start) =
                    (&m, &storers_done, &writer_gone, &write_rounds, &start);
                s.spawn(move || {
                    let _done = CountOnDrop(storers_done);
                    if !small_stack {
                        prepare_thread().unwrap();
                    }
                    start.wait();
                    let mut r = 0;
                    while r < min_store_rounds
                        || (write_rounds.load(Ordering::SeqCst) < min_write_rounds
                            && !writer_gone.load(Ordering::SeqCst))
                    {
                        for i in 0..pages {
                            let p = (i + t * pages / WR_STORERS) % pages;
                            poke_u64(m, p * PAGE + t * 8, wr_marker(t, r, p));
                        }
                        r += 1;
                    }
                    r
                })
            })
            .collect();
        let writer = s.spawn(|| {
            let _gone = SetOnDrop(&writer_gone);
            let mut buf = vec![0u8; PAGE / 2];
            start.wait();
            let mut w = 0;
            while w < min_write_rounds || storers_done.load(Ordering::SeqCst) < WR_STORERS {
                for p in 0..pages {
                    for (k, b) in buf.iter_mut().enumerate() {
                        *b = wr_byte(w, p, k);
                    }
                    let n = fs.write(ino, (p * PAGE + PAGE / 2) as u64, &buf).unwrap();
                    assert_eq!(n, buf.len());
                }
                w += 1;
                write_rounds.store(w, Ordering::SeqCst);
            }
            w
        });
        let rounds: Vec<usize> = storers
            .into_iter()
            .map(|h| h.join().expect("a storer thread panicked"))
            .collect();
        (rounds, writer.join().expect("the writer thread panicked"))
    });
    println!(
        "store rounds {store_rounds:?}, write(2) rounds {writes}, faults {:?}",
        m.stats()
    );
    let mut model = initial;
    for p in 0..pages {
        let page = &mut model[p * PAGE..(p + 1) * PAGE];
        for (t, &r) in store_rounds.iter().enumerate() {
            page[t * 8..t * 8 + 8].copy_from_slice(&wr_marker(t, r - 1, p).to_le_bytes());
        }
        for k in 0..PAGE / 2 {
            page[PAGE / 2 + k] = wr_byte(writes - 1, p, k);
        }
    }
    verify(&fs, ino, &m, &model, &model);
    Some(())
}

stress!(
    /// 4 KiB, every page loaded first, file with data.
    write_races_stores_4k_prefault_data,
    child_write_races_stores_4k_prefault_data,
    write_races_stores(Gran::K4, true, true, false)
);
stress!(
    /// 4 KiB, every page loaded first (zero pages), sparse file.
    write_races_stores_4k_prefault_sparse,
    child_write_races_stores_4k_prefault_sparse,
    write_races_stores(Gran::K4, true, false, false)
);
stress!(
    /// 4 KiB, no prefault, file with data.
    write_races_stores_4k_cold_data,
    child_write_races_stores_4k_cold_data,
    write_races_stores(Gran::K4, false, true, false)
);
stress!(
    /// 4 KiB, no prefault, sparse file (holetest -w).
    write_races_stores_4k_cold_sparse,
    child_write_races_stores_4k_cold_sparse,
    write_races_stores(Gran::K4, false, false, false)
);
stress!(
    /// 2 MiB, every page loaded first, file with data.
    write_races_stores_2m_prefault_data,
    child_write_races_stores_2m_prefault_data,
    write_races_stores(Gran::M2, true, true, false)
);
stress!(
    /// 2 MiB, every page loaded first (huge zero pages), sparse file.
    write_races_stores_2m_prefault_sparse,
    child_write_races_stores_2m_prefault_sparse,
    write_races_stores(Gran::M2, true, false, false)
);
stress!(
    /// 2 MiB, no prefault, file with data.
    write_races_stores_2m_cold_data,
    child_write_races_stores_2m_cold_data,
    write_races_stores(Gran::M2, false, true, false)
);
stress!(
    /// 2 MiB, no prefault, sparse file.
    write_races_stores_2m_cold_sparse,
    child_write_races_stores_2m_cold_sparse,
    write_races_stores(Gran::M2, false, false, false)
);
stress!(
    /// As `write_races_stores_4k_cold_sparse`, but the storers keep Rust's small
    /// alternate signal stack: their faults go through the fault-server hand-off.
    write_races_stores_4k_cold_sparse_small_stack,
    child_write_races_stores_4k_cold_sparse_small_stack,
    write_races_stores(Gran::K4, false, false, true)
);
stress!(
    /// As `write_races_stores_4k_prefault_data`, storers on the small signal stack
    /// (fault-server hand-off for every mkwrite).
    write_races_stores_4k_prefault_data_small_stack,
    child_write_races_stores_4k_prefault_data_small_stack,
    write_races_stores(Gran::K4, true, true, true)
);

// ---- 2. private mappings lose stores (holetest -p, generic/354) ----

const PV_STORERS: usize = 4;

fn pv_marker(t: usize, r: usize, p: usize) -> u64 {
    splitmix(0xc0c0 ^ ((t as u64) << 56) ^ ((r as u64) << 32) ^ p as u64) | 0x0101_0101_0101_0101
}

fn private_stores(gran: Gran, prefault: bool) {
    for it in 0..iterations() {
        println!("iteration {it}");
        if private_stores_once(gran, prefault).is_none() {
            return;
        }
    }
}

/// One run; `None` when skipped.
fn private_stores_once(gran: Gran, prefault: bool) -> Option<()> {
    let pages = 1024 * scale();
    let len = pages * PAGE;
    let fs = fs_for(gran, len)?;
    let ino = fs.create("f").unwrap();
    let data = pattern(0x3c, 0, len);
    write_in_2m_chunks(&fs, ino, &data);
    if gran == Gran::M2 {
        assert_pmd_extents(&fs, ino);
    }
    let m = fs
        .mmap_real(ino, 0, len as u64, map_opts(gran, false))
        .unwrap();
    track(0, &m);
    if prefault {
        for p in 0..pages {
            assert_eq!(peek(&m, p * PAGE + 200), data[p * PAGE + 200]);
        }
        println!("prefaulted: {:?}", m.stats());
    }
    let rounds = 2 * scale();
    // Each thread visits every page, walking the file in groups of 8 pages together
    // with the others (so that they often fault on the same page at once, as holetest's
    // threads do), in its own order inside each group.
    let order = |t: usize, i: usize| (i & !7) | ((i + 3 * t) & 7);
    let start = Barrier::new(PV_STORERS);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..PV_STORERS)
            .map(|t| {
                let (m, start) = (&m, &start);
                s.spawn(move || {
                    prepare_thread().unwrap();
                    start.wait();
                    for r in 0..rounds {
                        for i in 0..pages {
                            let p = order(t, i);
                            poke_u64(m, p * PAGE + t * 8, pv_marker(t, r, p));
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("a storer thread panicked");
        }
    });
    println!("faults {:?}", m.stats());
    let mut map_model = data.clone();
    for p in 0..pages {
        for t in 0..PV_STORERS {
            map_model[p * PAGE + t * 8..p * PAGE + t * 8 + 8]
                .copy_from_slice(&pv_marker(t, rounds - 1, p).to_le_bytes());
        }
    }
    verify(&fs, ino, &m, &data, &map_model);
    Some(())
}

stress!(
    /// 4 KiB private mapping, every page loaded first (the memory manager's CoW).
    private_stores_4k_prefault,
    child_private_stores_4k_prefault,
    private_stores(Gran::K4, true)
);
stress!(
    /// 4 KiB private mapping, no prefault (DAX's CoW fault fills the copies).
    private_stores_4k_cold,
    child_private_stores_4k_cold,
    private_stores(Gran::K4, false)
);
stress!(
    /// 2 MiB private mapping, every page loaded first (PMD split, then CoW).
    private_stores_2m_prefault,
    child_private_stores_2m_prefault,
    private_stores(Gran::M2, true)
);
stress!(
    /// 2 MiB private mapping, no prefault.
    private_stores_2m_cold,
    child_private_stores_2m_cold,
    private_stores(Gran::M2, false)
);

// ---- 3. private CoW over an extent while a shared mapping writes (generic/437) ----

/// The file's old content: 1..=0x7f, never zero.
fn cow_old(i: usize) -> u8 {
    ((i.wrapping_mul(31) ^ (i >> 12)) % 127 + 1) as u8
}

/// The new content written through the shared mapping: 0x80..=0xfe.
fn cow_new(i: usize) -> u8 {
    (0x80 + (i.wrapping_mul(17) ^ (i >> 12)) % 127) as u8
}

/// Bytes `0 .. COW_MARK_LEN` of a CoW'd page hold this (neither old nor new).
const COW_MARK: u8 = 0xff;
const COW_MARK_LEN: usize = 16;

fn is_cow_page(p: usize) -> bool {
    p % 4 == 1
}

fn is_shared_write_page(p: usize) -> bool {
    p % 4 == 3
}

fn private_cow_vs_shared_writer(gran: Gran) {
    for it in 0..iterations() {
        println!("iteration {it}");
        if private_cow_vs_shared_writer_once(gran).is_none() {
            return;
        }
    }
}

/// One run; `None` when skipped.
fn private_cow_vs_shared_writer_once(gran: Gran) -> Option<()> {
    let pages = 1024 * scale();
    let len = pages * PAGE;
    let fs = fs_for(gran, len)?;
    let ino = fs.create("f").unwrap();
    let old: Vec<u8> = (0..len).map(cow_old).collect();
    write_in_2m_chunks(&fs, ino, &old);
    if gran == Gran::M2 {
        assert_pmd_extents(&fs, ino);
    }
    let private = fs
        .mmap_real(ino, 0, len as u64, map_opts(gran, false))
        .unwrap();
    let shared = fs
        .mmap_real(ino, 0, len as u64, map_opts(gran, true))
        .unwrap();
    track(0, &private);
    track(1, &shared);
    const READERS: usize = 2;
    let min_passes = 2 * scale();
    let writers_done = AtomicUsize::new(0);
    let readers_started = AtomicUsize::new(0);
    let violations = std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|t| {
                let (private, writers_done, readers_started) =
                    (&private, &writers_done, &readers_started);
                s.spawn(move || {
                    prepare_thread().unwrap();
                    readers_started.fetch_add(1, Ordering::SeqCst);
                    let mut buf = vec![0u8; PAGE];
                    let (mut bad, mut first) = (0u64, Vec::new());
                    let mut pass = 0;
                    let mut x = 0x1234_5678 + t as u64;
                    while pass < min_passes || writers_done.load(Ordering::SeqCst) < 2 {
                        for _ in 0..pages {
                            x = splitmix(x);
                            let p = (x % pages as u64) as usize;
                            load_range(private, p * PAGE, &mut buf);
                            for (k, &b) in buf.iter().enumerate() {
                                let i = p * PAGE + k;
                                let ok = b == cow_old(i)
                                    || (is_shared_write_page(p) && b == cow_new(i))
                                    || (is_cow_page(p) && k < COW_MARK_LEN && b == COW_MARK);
                                if !ok {
                                    bad += 1;
                                    if first.len() < 4 {
                                        first.push(format!(
                                            "reader {t} pass {pass}: offset {i:#x} (page {p}, \
                                             byte {k}) loaded {b:#04x}, old {:#04x}, new {:#04x}",
                                            cow_old(i),
                                            cow_new(i)
                                        ));
                                    }
                                }
                            }
                        }
                        pass += 1;
                    }
                    println!("reader {t}: {pass} passes, {bad} bad bytes");
                    (bad, first)
                })
            })
            .collect();
        while readers_started.load(Ordering::SeqCst) < READERS {
            std::thread::yield_now();
        }
        // The copy-on-write thread: markers into the private mapping.
        let cow = s.spawn(|| {
            let _done = CountOnDrop(&writers_done);
            prepare_thread().unwrap();
            for p in (0..pages).filter(|&p| is_cow_page(p)) {
                store_range(&private, p * PAGE, &[COW_MARK; COW_MARK_LEN]);
            }
        });
        // The shared writer: new data into other pages through the shared mapping.
        let writer = s.spawn(|| {
            let _done = CountOnDrop(&writers_done);
            prepare_thread().unwrap();
            let mut buf = vec![0u8; PAGE];
            for p in (0..pages).filter(|&p| is_shared_write_page(p)) {
                for (k, b) in buf.iter_mut().enumerate() {
                    *b = cow_new(p * PAGE + k);
                }
                store_range(&shared, p * PAGE, &buf);
            }
        });
        cow.join().expect("the copy-on-write thread panicked");
        writer.join().expect("the shared writer panicked");
        readers
            .into_iter()
            .map(|h| h.join().expect("a reader thread panicked"))
            .collect::<Vec<_>>()
    });
    println!(
        "private faults {:?}, shared faults {:?}",
        private.stats(),
        shared.stats()
    );
    // The file: old content with the shared writes; private stores never reach it.
    let mut file_model = old.clone();
    for p in (0..pages).filter(|&p| is_shared_write_page(p)) {
        for k in 0..PAGE {
            file_model[p * PAGE + k] = cow_new(p * PAGE + k);
        }
    }
    // The private mapping: CoW'd pages hold the marker and the content they were
    // copied from (always old: the shared writer never touches them); all other
    // pages show the file as it is now.
    let mut private_model = file_model.clone();
    for p in (0..pages).filter(|&p| is_cow_page(p)) {
        private_model[p * PAGE..p * PAGE + COW_MARK_LEN].fill(COW_MARK);
    }
    let mut mapped = vec![0u8; len];
    load_range(&shared, 0, &mut mapped);
    let mut sd = Diff::new("shared mapping (loads through the pointer)");
    sd.compare(0, &file_model, &mapped);
    drop(mapped);
    let bad: u64 = violations.iter().map(|v| v.0).sum();
    if bad > 0 {
        let lines: Vec<&String> = violations.iter().flat_map(|v| &v.1).collect();
        let more = sd.report().unwrap_or_default();
        panic!(
            "readers of the private mapping loaded {bad} byte(s) that are neither old nor \
             new content (nor a marker):\n{}\n{more}",
            lines
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let mut file = vec![0u8; len];
    fs.read(ino, 0, &mut file).unwrap();
    let mut fd = Diff::new("file (fs.read)");
    fd.compare(0, &file_model, &file);
    drop(file);
    let mut mapped = vec![0u8; len];
    load_range(&private, 0, &mut mapped);
    let mut pd = Diff::new("private mapping (loads through the pointer)");
    pd.compare(0, &private_model, &mapped);
    finish(&[&fd, &sd, &pd]);
    Some(())
}

stress!(
    /// 2 MiB-aligned extents, PMD mappings (generic/437).
    private_cow_vs_shared_writer_2m,
    child_private_cow_vs_shared_writer_2m,
    private_cow_vs_shared_writer(Gran::M2)
);
stress!(
    /// The same with 4 KiB mappings on a memfd device.
    private_cow_vs_shared_writer_4k,
    child_private_cow_vs_shared_writer_4k,
    private_cow_vs_shared_writer(Gran::K4)
);

// ---- 4. a hugetlb-backed device and 4 KiB needs (generic/428 on hugetlb) ----
//
// The wanted behaviour is "never a surprise SIGBUS": either the access works and
// returns the right bytes, or `mmap_real` refuses up front. A signal or wrong bytes
// fail.

/// Maps with `opts`, or returns `None` after printing that `mmap_real` refused.
/// Asserts that mapping `len` bytes of `ino` with `opts` is refused up front with
/// `EINVAL` (never a mapping that would answer SIGBUS at the first access), and that
/// the file still reads back as `data` through `read`.
fn assert_refused(fs: &TestFs, ino: Ino, len: usize, opts: MapOptions, data: &[u8]) {
    match fs.mmap_real(ino, 0, len as u64, opts) {
        Ok(m) => panic!("mapped ({:?}); expected EINVAL up front", m.stats()),
        Err(e) => {
            assert_eq!(e.errno(), libc::EINVAL, "{e}");
            println!("outcome: mmap_real refused up front: {e}");
        }
    }
    let mut back = vec![0u8; data.len()];
    assert_eq!(fs.read(ino, 0, &mut back).unwrap(), data.len());
    assert!(
        back == data,
        "the file no longer reads back what was written"
    );
}

fn hugetlb_small_file() {
    let Some(dev) = hugetlb_device(16 << 20) else {
        return;
    };
    let fs = TestFs::mkfs(dev).unwrap();
    let ino = fs.create("f").unwrap();
    let data = b"twelve bytes";
    fs.write(ino, 0, data).unwrap();
    assert_refused(&fs, ino, PAGE, MapOptions::default(), data);
}

fn hugetlb_one_4k_extent() {
    let Some(dev) = hugetlb_device(16 << 20) else {
        return;
    };
    let fs = TestFs::mkfs(dev).unwrap();
    let ino = fs.create("f").unwrap();
    let data = pattern(0x77, 0, PAGE);
    fs.write(ino, 0, &data).unwrap();
    println!("extents {:?}", fs.extents(ino).unwrap());
    let opts = MapOptions::new().writable(true);
    assert_refused(&fs, ino, PAGE, opts, &data);
}

fn hugetlb_private_refused() {
    let Some(dev) = hugetlb_device(16 << 20) else {
        return;
    };
    let fs = TestFs::mkfs(dev).unwrap();
    let ino = fs.create("f").unwrap();
    let data = pattern(0x19, 0, PMD);
    fs.write(ino, 0, &data).unwrap();
    assert_pmd_extents(&fs, ino);
    let opts = MapOptions::new().shared(false).writable(true);
    assert_refused(&fs, ino, PMD, opts, &data);
}

// A device that maps only whole 2 MiB pages (hugetlb, device-dax) cannot give a 4 KiB
// piece of itself, so anything that would need one is refused when it is mapped, not
// answered with SIGBUS at the first access. (A private store splitting a 2 MiB
// mapping is tested on shmem THP above, where it can be done.)
stress!(
    /// (a) A 12-byte file on a hugetlb device: mapping it is refused with EINVAL.
    hugetlb_small_file_is_refused,
    child_hugetlb_small_file_is_refused,
    hugetlb_small_file()
);
stress!(
    /// (b) A file of one 4 KiB extent on a hugetlb device: refused with EINVAL.
    hugetlb_one_4k_extent_is_refused,
    child_hugetlb_one_4k_extent_is_refused,
    hugetlb_one_4k_extent()
);
stress!(
    /// (c) A private mapping of a 2 MiB file on a hugetlb device: refused with EINVAL,
    /// as device-dax refuses private mappings.
    hugetlb_private_mapping_is_refused,
    child_hugetlb_private_mapping_is_refused,
    hugetlb_private_refused()
);

// ---- 5. more stored pages than vm.max_map_count (65530) ----

/// Stored pages: 100,000 in release builds, 70,000 in debug builds (still above
/// vm.max_map_count), times `DAX_STRESS_SCALE`.
fn scale_stored_pages() -> usize {
    let base = if cfg!(debug_assertions) {
        70_000
    } else {
        100_000
    };
    base * scale()
}

/// Initial content of page `p`: its number in the first 8 bytes, then a fill byte.
fn scale_initial(p: usize, page: &mut [u8]) {
    page.fill((p % 251) as u8 + 1);
    page[..8].copy_from_slice(&(p as u64).to_le_bytes());
}

const SCALE_MARK_AT: usize = 64;

fn scale_marker(p: usize) -> u64 {
    splitmix(0x5ca1e ^ p as u64) | 1
}

/// Kernel mappings (lines of /proc/self/maps) overlapping `base .. base + len`.
fn vmas_overlapping(base: usize, len: usize) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|l| {
            let range = l.split_whitespace().next().unwrap_or("");
            let Some((a, b)) = range.split_once('-') else {
                return false;
            };
            let a = usize::from_str_radix(a, 16).unwrap_or(usize::MAX);
            let b = usize::from_str_radix(b, 16).unwrap_or(0);
            a < base + len && b > base
        })
        .count()
}

/// The bound the fixed design must meet: a mapping costs the process a bounded number
/// of kernel mappings (VMAs), far below vm.max_map_count (65530) whatever its access
/// pattern, rather than two per isolated written page.
const MAX_VMAS_PER_MAPPING: usize = 4096;

fn many_vmas(load_first: bool) {
    let stored = scale_stored_pages();
    let pages = 2 * stored;
    let len = pages * PAGE;
    let fs = fs_for(Gran::K4, len).unwrap();
    let ino = fs.create("f").unwrap();
    let t0 = Instant::now();
    let mut chunk = vec![0u8; PMD];
    for c in 0..len.div_ceil(PMD) {
        let n = (len - c * PMD).min(PMD);
        for (i, page) in chunk[..n].chunks_mut(PAGE).enumerate() {
            scale_initial(c * (PMD / PAGE) + i, page);
        }
        assert_eq!(fs.write(ino, (c * PMD) as u64, &chunk[..n]).unwrap(), n);
    }
    println!(
        "wrote {pages} pages ({} MiB) in {:.2} s",
        len >> 20,
        t0.elapsed().as_secs_f64()
    );
    let opts = MapOptions::new().writable(true).huge(false);
    let m = fs.mmap_real(ino, 0, len as u64, opts).unwrap();
    track(0, &m);
    let base = m.as_ptr() as usize;
    // Which pages get a store: every second one, or a random half.
    let targets: Vec<usize> = if load_first {
        let t = Instant::now();
        for p in 0..pages {
            assert_eq!(peek(&m, p * PAGE), p as u8, "page {p}");
        }
        println!(
            "loaded every page in {:.2} s: faults {:?}, {} VMAs",
            t.elapsed().as_secs_f64(),
            m.stats(),
            vmas_overlapping(base, len)
        );
        (0..pages).step_by(2).collect()
    } else {
        let mut all: Vec<usize> = (0..pages).collect();
        let mut x = 0xdecaf;
        for i in (1..all.len()).rev() {
            x = splitmix(x);
            all.swap(i, (x % (i as u64 + 1)) as usize);
        }
        all.truncate(stored);
        all
    };
    const STORERS: usize = 2;
    let t = Instant::now();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..STORERS)
            .map(|th| {
                let (m, targets) = (&m, &targets);
                s.spawn(move || {
                    prepare_thread().unwrap();
                    for &p in targets.iter().skip(th).step_by(STORERS) {
                        poke_u64(m, p * PAGE + SCALE_MARK_AT, scale_marker(p));
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("a storer thread panicked");
        }
    });
    let vmas_after_stores = vmas_overlapping(base, len);
    println!(
        "stored into {} pages in {:.2} s: faults {:?}, {vmas_after_stores} VMAs",
        targets.len(),
        t.elapsed().as_secs_f64(),
        m.stats()
    );
    let mut is_target = vec![false; pages];
    for &p in &targets {
        is_target[p] = true;
    }
    drop(targets);
    // Compare chunk by chunk (the model of a 2 MiB chunk is cheap to rebuild).
    let t = Instant::now();
    let (mut fd, mut md) = (
        Diff::new("file (fs.read)"),
        Diff::new("mapping (loads through the pointer)"),
    );
    let mut want = vec![0u8; PMD];
    let mut got = vec![0u8; PMD];
    for c in 0..len.div_ceil(PMD) {
        let n = (len - c * PMD).min(PMD);
        for (i, page) in want[..n].chunks_mut(PAGE).enumerate() {
            let p = c * (PMD / PAGE) + i;
            scale_initial(p, page);
            if is_target[p] {
                page[SCALE_MARK_AT..SCALE_MARK_AT + 8]
                    .copy_from_slice(&scale_marker(p).to_le_bytes());
            }
        }
        assert_eq!(fs.read(ino, (c * PMD) as u64, &mut got[..n]).unwrap(), n);
        fd.compare(c * PMD, &want[..n], &got[..n]);
        load_range(&m, c * PMD, &mut got[..n]);
        md.compare(c * PMD, &want[..n], &got[..n]);
    }
    let vmas_end = vmas_overlapping(base, len);
    println!(
        "checked in {:.2} s: faults {:?}, {vmas_end} VMAs after loading everything",
        t.elapsed().as_secs_f64(),
        m.stats()
    );
    finish(&[&fd, &md]);
    let vmas = vmas_after_stores.max(vmas_end);
    assert!(
        vmas <= MAX_VMAS_PER_MAPPING,
        "the mapping uses {vmas} kernel mappings (after the stores: {vmas_after_stores}, \
         after the check: {vmas_end}); the design must keep it at most {MAX_VMAS_PER_MAPPING}"
    );
}

stress!(
    /// Every page loaded (mapped read-only in runs), then a store into every second
    /// page.
    many_vmas_every_second_page_after_loads,
    child_many_vmas_every_second_page_after_loads,
    many_vmas(true)
);
stress!(
    /// Stores into a random half of the pages, nothing loaded first.
    many_vmas_scattered_stores_cold,
    child_many_vmas_scattered_stores_cold,
    many_vmas(false)
);
