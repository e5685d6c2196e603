//! Device removal while busy (issue 15, part 2): `DaxDevice::kill` while threads read
//! and write files through `dax_iomap_rw`, load and store through real mappings
//! (`TestFs::mmap_real`, with the `MmuMapping::load`/`store` accessors, which return
//! the fault result instead of raising SIGBUS), and write back (fsync, msync).
//!
//! `kill` first tells the device's holder, TestFs, that the device is going away
//! (`notify_failure(MEM_PRE_REMOVE)`): TestFs shuts down and unmaps every file from
//! every mapping; then the device stops answering (ENXIO) and `kill` waits for every
//! read section begun before.
//!
//! What is checked, in a child process under a watchdog (a hang fails the test and
//! prints the child's threads; nothing here measures time):
//! * an operation that ended before `kill` began succeeded, and returned exactly the
//!   model's bytes;
//! * an operation that began after `kill` returned failed, with ENXIO or EIO (SIGBUS
//!   for a load or store through a mapping): no load or store reached the device's
//!   memory after its removal;
//! * an operation that overlapped `kill` either succeeded with the model's bytes or
//!   failed that way;
//! * every worker finishes: after `kill`, each does a few more operations, all
//!   failing, and exits;
//! * afterwards, every byte the writers and mappers were told they wrote is in the
//!   device's memory (read through extents recorded before the kill; a block whose
//!   write was in flight holds the old or one of the tried bytes); then every handle
//!   is dropped and the device with it (its memory unmapped), which is checked
//!   through a weak reference: nothing still holds it.
//!
//! Each round runs twice: on a memfd `MemDevice` with real mappings, and on a
//! [`FreeDev`] whose memory is made inaccessible (`PROT_NONE`) the moment `kill`
//! returns, while the workers (mappers through a simulated page table there) go on:
//! any access to a removed device's memory by any path is then a SIGSEGV, and the
//! driver itself fails the test if `direct_access` or `zero_page_range` reach it.
//!
//! A mapper's access can overlap the kill: the accessors then fault the page in again
//! and return SIGBUS, never raising it (a SIGBUS in this child fails it).
//!
//! A second child stores through a real mapping's raw pointer while the device is
//! killed and after: it must die by SIGBUS, reported by a handler that says the kill
//! had begun (its first store after the kill returned, at the latest).
//!
//! `DAX_REMOVAL_ROUNDS` (default 1) repeats the first scenario on fresh devices;
//! `DAX_REMOVAL_TIMEOUT_SECS` (default 120) is the watchdog.
#![allow(unsafe_code)]

mod testfs_common;

use std::os::unix::process::ExitStatusExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Weak};
use std::time::Duration;

use dax_device::{DaxAccessMode, DaxDevice, DaxError, DaxOperations, Pfn, RawAccess};
use dax_fault::mmu::{MapOptions, MmuMapping, prepare_thread};
use dax_fault::sim::SimPageTable;
use dax_fault::{MappedVma, VmFault, Vma};
use dax_testdev::{ExtentInfo, Ino, MemDevice, TestFs};
use dax_testkit::child::run_child_watched;
use dax_testkit::sweep::signal_name;

const B: u64 = 4096;
/// Pages per file: 2 MiB, so PMD mappings happen too.
const PAGES: u64 = 512;
const READERS: usize = 2;
const WRITERS: usize = 2;
const MAPPERS: usize = 2;
const SYNCERS: usize = 1;
const WORKERS: usize = READERS + WRITERS + MAPPERS + SYNCERS;
/// Operations each worker completes before the kill is allowed.
const BEFORE_KILL: u64 = 25;
/// Operations each worker does after it saw the kill.
const AFTER_KILL: u64 = 20;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The byte a write of generation `generation` puts in every byte of block `block` of
/// worker `w`'s file (never 0; generation 0 is the initial contents).
fn stamp(w: usize, block: u64, generation: u64) -> u8 {
    (splitmix(((w as u64) << 48) ^ (block << 20) ^ generation) % 255 + 1) as u8
}

/// Where the kill is: not begun, under way, returned.
#[derive(Default)]
struct Phase {
    killing: AtomicBool,
    killed: AtomicBool,
}

/// Where an operation lay relative to the kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// It ended before the kill began: it must have succeeded.
    Before,
    /// It began after the kill returned: it must have failed.
    After,
    /// It overlapped the kill: either.
    During,
}

impl Phase {
    fn start(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    fn end(&self, started_after: bool) -> When {
        if started_after {
            When::After
        } else if !self.killing.load(Ordering::SeqCst) {
            When::Before
        } else {
            When::During
        }
    }
}

/// Checks a file operation's result against where it lay.
fn check_io<T: std::fmt::Debug>(who: &str, when: When, r: &Result<T, DaxError>) {
    match (when, r) {
        (When::Before, Err(e)) => panic!("{who}: failed before the kill: {e}"),
        (When::After, Ok(v)) => panic!("{who}: succeeded after the kill returned: {v:?}"),
        (_, Err(e)) => assert!(
            matches!(e.errno(), libc::ENXIO | libc::EIO),
            "{who}: failed with {} ({e}), not ENXIO or EIO",
            e.errno_name().unwrap_or("?")
        ),
        _ => {}
    }
}

/// Checks a mapped access's result against where it lay.
fn check_access(who: &str, when: When, r: Result<(), VmFault>) {
    match (when, r) {
        (When::Before, Err(v)) => panic!("{who}: faulted before the kill: {v:?}"),
        (When::After, Ok(())) => panic!(
            "{who}: a load or store through a mapping reached the device after the kill \
             returned"
        ),
        (_, Err(v)) => assert!(
            v.contains(VmFault::SIGBUS),
            "{who}: faulted with {v:?}, not SIGBUS"
        ),
        _ => {}
    }
}

/// Per block of a writer's or mapper's file: the generation last acknowledged, and
/// those tried since that failed or are in flight (each may have landed in part: a
/// write or store cut short by the kill).
#[derive(Clone, Default)]
struct BlockModel {
    acked: u64,
    tried: Vec<u64>,
}

impl BlockModel {
    /// Whether `byte` may be in block `block` of worker `w`'s file.
    fn allows(&self, w: usize, block: u64, byte: u8) -> bool {
        byte == stamp(w, block, self.acked)
            || self.tried.iter().any(|&g| byte == stamp(w, block, g))
    }
}

/// A device whose memory the test can take away: anonymous memory the driver makes
/// inaccessible (`PROT_NONE`, never reused for anything else) when told, right after
/// `kill` returned, while the workers go on calling. Any access to it from then on,
/// by any path (reads, writes, writeback, faults, the checkpoint), is a SIGSEGV that
/// kills the child, which the parent reports; under AddressSanitizer, its SEGV report.
/// This is the "memory behind the device is unmapped" half of the issue: the engine
/// must never reach a device's memory after `kill`.
struct FreeDev {
    base: usize,
    len: usize,
    revoked: AtomicBool,
}

impl FreeDev {
    fn new(len: usize) -> FreeDev {
        // SAFETY: a fresh private anonymous mapping; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of the device memory");
        FreeDev {
            base: p as usize,
            len,
            revoked: AtomicBool::new(false),
        }
    }

    /// Makes the memory inaccessible (after `kill` returned), or accessible again
    /// (after every worker was joined, to check the bytes).
    fn set_access(&self, on: bool) {
        self.revoked.store(!on, Ordering::SeqCst);
        let prot = if on {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_NONE
        };
        // SAFETY: the whole mapping made in `new`, still mapped (unmapped in drop).
        let r = unsafe { libc::mprotect(self.base as *mut libc::c_void, self.len, prot) };
        assert_eq!(r, 0, "mprotect of the device memory");
    }

    fn peek(&self, offset: u64, buf: &mut [u8]) {
        assert!(!self.revoked.load(Ordering::SeqCst));
        assert!(offset as usize + buf.len() <= self.len);
        // SAFETY: inside the mapping, accessible; no worker is running any more.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (self.base + offset as usize) as *const u8,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
    }
}

impl Drop for FreeDev {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; nothing uses it once the driver is dropped.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

// SAFETY: `direct_access` answers addresses inside the mapping made in `new`, page
// aligned, with pfn = address >> 12 (distinct for distinct pages of the process),
// never as a slice. The memory stays mapped until the driver is dropped; it is made
// inaccessible after `kill` returned, when dax-device no longer reaches it (no read
// section begun before the kill is left, and every later one sees the device dead):
// the property this test checks, whose violation is a SIGSEGV, never silent.
unsafe impl DaxOperations for FreeDev {
    fn nr_pages(&self) -> u64 {
        (self.len as u64) / B
    }

    fn direct_access(
        &self,
        pgoff: u64,
        _nr_pages: u64,
        _mode: DaxAccessMode,
    ) -> Result<RawAccess, DaxError> {
        assert!(
            !self.revoked.load(Ordering::SeqCst),
            "direct_access on a killed device reached the driver"
        );
        if pgoff >= self.nr_pages() {
            return Ok(RawAccess::none());
        }
        let addr = self.base + (pgoff * B) as usize;
        Ok(RawAccess {
            addr: NonNull::new(addr as *mut u8).expect("mapped"),
            pfn: Pfn(addr as u64 >> 12),
            pages: self.nr_pages() - pgoff,
        })
    }

    fn zero_page_range(&self, pgoff: u64, _nr_pages: u64) -> Result<(), DaxError> {
        assert!(
            !self.revoked.load(Ordering::SeqCst),
            "zero_page_range on a killed device reached the driver"
        );
        if pgoff >= self.nr_pages() {
            return Err(DaxError::OutOfRange {
                pgoff,
                dev_pages: self.nr_pages(),
            });
        }
        // SAFETY: one page inside the mapping, through a raw pointer.
        unsafe {
            std::ptr::write_bytes((self.base + (pgoff * B) as usize) as *mut u8, 0, B as usize)
        };
        Ok(())
    }
}

/// The device of a round: a memfd MemDevice (real mappings possible) or a
/// [`FreeDev`] (its memory taken away after the kill; mappings are simulated).
enum Memory {
    Memfd(Arc<DaxDevice<MemDevice>>),
    Freeable(Arc<DaxDevice<FreeDev>>),
}

impl Memory {
    fn dev(&self) -> Arc<DaxDevice> {
        match self {
            Memory::Memfd(d) => d.clone(),
            Memory::Freeable(d) => d.clone(),
        }
    }

    /// `kill`, and for a [`FreeDev`] the memory taken away right after.
    fn kill(&self) {
        match self {
            Memory::Memfd(d) => d.kill(),
            Memory::Freeable(d) => {
                d.kill();
                d.driver().set_access(false);
            }
        }
    }

    /// After every worker was joined: the memory readable again for the checks.
    fn after_join(&self) {
        if let Memory::Freeable(d) = self {
            d.driver().set_access(true);
        }
    }

    fn peek(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Memory::Memfd(d) => d.driver().peek(offset, buf).unwrap(),
            Memory::Freeable(d) => d.driver().peek(offset, buf),
        }
    }
}

struct Setup {
    mem: Memory,
    fs: TestFs,
    /// One file per worker (the syncer's too: it fsyncs them all).
    inos: Vec<Ino>,
    /// Each file's extents, recorded before the kill (the block maps do not change:
    /// every block is written before the workers start, and they only overwrite).
    extents: Vec<Vec<ExtentInfo>>,
}

const DEV_SIZE: u64 = 64 << 20;

fn setup(freeable: bool) -> Setup {
    let mem = if freeable {
        let dev = DaxDevice::new(FreeDev::new(DEV_SIZE as usize));
        dev.set_write_cache(true);
        Memory::Freeable(dev)
    } else {
        Memory::Memfd(MemDevice::builder().size(DEV_SIZE).build().unwrap())
    };
    let fs = TestFs::mkfs(mem.dev()).unwrap();
    let mut inos = Vec::new();
    for w in 0..WORKERS {
        let ino = fs.create(&format!("w{w}")).unwrap();
        let mut data = vec![0u8; (PAGES * B) as usize];
        for b in 0..PAGES {
            data[(b * B) as usize..((b + 1) * B) as usize].fill(stamp(w, b, 0));
        }
        // In 2 MiB writes, so the extent is one 2 MiB-aligned run where the allocator
        // can: PMD faults then map it.
        assert_eq!(fs.write(ino, 0, &data).unwrap(), data.len());
        inos.push(ino);
    }
    fs.sync().unwrap();
    let extents = inos.iter().map(|&i| fs.extents(i).unwrap()).collect();
    Setup {
        mem,
        fs,
        inos,
        extents,
    }
}

/// The device bytes of block `block` of a file with `extents`.
fn peek_block(mem: &Memory, extents: &[ExtentInfo], block: u64) -> Vec<u8> {
    let e = extents
        .iter()
        .find(|e| block >= e.file_block && block < e.file_block + e.len)
        .expect("every block is written");
    let mut v = vec![0u8; B as usize];
    mem.peek((e.dev_block + block - e.file_block) * B, &mut v);
    v
}

/// How a mapper reaches its file: a real mapping (its accessors), or a mapping in a
/// simulated page table (on a [`FreeDev`], which cannot be mapped for real).
enum Mapper {
    Real(MmuMapping),
    Sim {
        pt: Arc<SimPageTable>,
        vma: Arc<MappedVma>,
    },
}

/// Where the simulated mappings start (mapper `k` at `SIM_BASE + k * 8 MiB`).
const SIM_BASE: u64 = 0x7000_0000_0000;

impl Mapper {
    fn new(s: &Setup, k: usize) -> Mapper {
        let ino = s.inos[READERS + WRITERS + k];
        match s.mem {
            Memory::Memfd(_) => Mapper::Real(
                s.fs.mmap_real(ino, 0, PAGES * B, MapOptions::new().writable(true))
                    .unwrap(),
            ),
            Memory::Freeable(_) => {
                let pt = Arc::new(SimPageTable::new());
                let vma = Vma::new(SIM_BASE + k as u64 * (8 << 20), PAGES * B, 0)
                    .unwrap()
                    .shared(true)
                    .writable(true)
                    .huge(true);
                let vma = s.fs.mmap(ino, vma, pt.clone()).unwrap();
                Mapper::Sim { pt, vma }
            }
        }
    }

    /// Stores `byte` into the whole page at `off`.
    fn fill(&self, off: u64, byte: u8) -> Result<(), VmFault> {
        match self {
            Mapper::Real(m) => m.fill(off as usize, B as usize, byte),
            Mapper::Sim { pt, vma } => pt.write(vma, vma.vma().start() + off, &[byte; B as usize]),
        }
    }

    /// Loads the page at `off`.
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), VmFault> {
        match self {
            Mapper::Real(m) => m.load(off as usize, buf),
            Mapper::Sim { pt, vma } => pt.read(vma, vma.vma().start() + off, buf),
        }
    }

    /// msync of the whole mapping (a real one only).
    fn msync(&self) -> Option<Result<(), DaxError>> {
        match self {
            Mapper::Real(m) => Some(m.msync(0, (PAGES * B) as usize)),
            Mapper::Sim { .. } => None,
        }
    }
}

/// One round: workers, a killer, the checks.
fn removal_round(round: u64, freeable: bool) {
    let s = setup(freeable);
    let phase = Phase::default();
    let progress: Vec<AtomicU64> = (0..WORKERS).map(|_| AtomicU64::new(0)).collect();
    let finished = AtomicUsize::new(0);
    let start = Barrier::new(WORKERS + 1);
    // Mappings are made before the threads start (each thread prepares itself).
    let maps: Vec<Mapper> = (0..MAPPERS).map(|k| Mapper::new(&s, k)).collect();
    let models: Vec<parking_lot::Mutex<Vec<BlockModel>>> = (0..WORKERS)
        .map(|_| parking_lot::Mutex::new(vec![BlockModel::default(); PAGES as usize]))
        .collect();
    let post_kill_errors = AtomicU64::new(0);

    std::thread::scope(|sc| {
        // Readers: pread of random ranges of their own file, every byte checked.
        for r in 0..READERS {
            let (s, phase, progress, start, finished, pke) =
                (&s, &phase, &progress, &start, &finished, &post_kill_errors);
            sc.spawn(move || {
                let w = r;
                let inode = s.fs.inode(s.inos[w]).unwrap();
                start.wait();
                let mut x = splitmix(round * 100 + w as u64);
                let mut after = 0;
                while after < AFTER_KILL {
                    x = splitmix(x);
                    let pos = x % (PAGES * B);
                    let len = (1 + (x >> 32) % (3 * B)).min(PAGES * B - pos);
                    let mut buf = vec![0u8; len as usize];
                    let a = phase.start();
                    let res = s.fs.pread(&inode, pos, &mut buf);
                    let when = phase.end(a);
                    check_io(&format!("reader {w}"), when, &res);
                    if let Ok(n) = res {
                        if when == When::Before {
                            assert_eq!(n as u64, len, "reader {w}: short read before the kill");
                        }
                        for (i, &byte) in buf[..n].iter().enumerate() {
                            let at = pos + i as u64;
                            assert_eq!(
                                byte,
                                stamp(w, at / B, 0),
                                "reader {w}: byte {at} differs from the file"
                            );
                        }
                    }
                    if a {
                        after += 1;
                        pke.fetch_add(u64::from(res.is_err()), Ordering::Relaxed);
                    }
                    progress[w].fetch_add(1, Ordering::SeqCst);
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Writers: whole blocks of their own file, each a new generation.
        for k in 0..WRITERS {
            let (s, phase, progress, start, finished, models, pke) = (
                &s,
                &phase,
                &progress,
                &start,
                &finished,
                &models,
                &post_kill_errors,
            );
            sc.spawn(move || {
                let w = READERS + k;
                let inode = s.fs.inode(s.inos[w]).unwrap();
                start.wait();
                let mut x = splitmix(round * 100 + w as u64);
                let mut after = 0;
                let mut generation = 0;
                while after < AFTER_KILL {
                    x = splitmix(x);
                    generation += 1;
                    let block = x % PAGES;
                    let buf = vec![stamp(w, block, generation); B as usize];
                    models[w].lock()[block as usize].tried.push(generation);
                    let a = phase.start();
                    let res = s.fs.pwrite(&inode, block * B, &buf);
                    let when = phase.end(a);
                    check_io(&format!("writer {w}"), when, &res);
                    {
                        let mut m = models[w].lock();
                        let b = &mut m[block as usize];
                        match res {
                            Ok(n) if n as u64 == B => {
                                *b = BlockModel {
                                    acked: generation,
                                    tried: Vec::new(),
                                }
                            }
                            Ok(n) => {
                                assert_ne!(when, When::Before, "writer {w}: short write {n}");
                            }
                            Err(_) => {}
                        }
                    }
                    if a {
                        after += 1;
                        pke.fetch_add(u64::from(res.is_err()), Ordering::Relaxed);
                    }
                    progress[w].fetch_add(1, Ordering::SeqCst);
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Mappers: a store of a whole page, then a load of another, through a real
        // mapping; msync now and then.
        for (k, map) in maps.iter().enumerate() {
            let (phase, progress, start, finished, models, pke) = (
                &phase,
                &progress,
                &start,
                &finished,
                &models,
                &post_kill_errors,
            );
            sc.spawn(move || {
                let w = READERS + WRITERS + k;
                prepare_thread().unwrap();
                start.wait();
                let mut x = splitmix(round * 100 + w as u64);
                let mut after = 0;
                let mut generation = 0;
                while after < AFTER_KILL {
                    x = splitmix(x);
                    generation += 1;
                    let block = x % PAGES;
                    let byte = stamp(w, block, generation);
                    models[w].lock()[block as usize].tried.push(generation);
                    let a = phase.start();
                    let r = map.fill(block * B, byte);
                    let when = phase.end(a);
                    check_access(&format!("mapper {w} store"), when, r);
                    if r.is_ok() {
                        models[w].lock()[block as usize] = BlockModel {
                            acked: generation,
                            tried: Vec::new(),
                        };
                    }
                    // A load of another page, checked against what was acknowledged.
                    let other = (x >> 32) % PAGES;
                    let mut buf = vec![0u8; B as usize];
                    let a2 = phase.start();
                    let r2 = map.load(other * B, &mut buf);
                    let when2 = phase.end(a2);
                    check_access(&format!("mapper {w} load"), when2, r2);
                    if r2.is_ok() {
                        let m = models[w].lock()[other as usize].clone();
                        if let Some(i) = buf.iter().position(|&b| !m.allows(w, other, b)) {
                            let odd = buf[i];
                            let zeros = buf.iter().filter(|&&b| b == 0).count();
                            panic!(
                                "mapper {w}: a load of page {other} ({when2:?} the kill) shows \
                                 byte {odd:#04x} at {i}, never given: acknowledged generation \
                                 {} ({:#04x}), tried since {:?}; {zeros} zero bytes; \
                                 generations of this page that write {odd:#04x}: {:?}",
                                m.acked,
                                stamp(w, other, m.acked),
                                m.tried,
                                (0..=generation)
                                    .filter(|&g| stamp(w, other, g) == odd)
                                    .take(4)
                                    .collect::<Vec<_>>()
                            );
                        }
                    }
                    if x.is_multiple_of(8) {
                        // msync: after the kill it fails (ENXIO) when dirty pages could
                        // not be written back; with nothing dirty there is nothing to
                        // lose and it succeeds, as the kernel's writeback does.
                        if let Some(Err(e)) = &map.msync() {
                            assert!(
                                matches!(e.errno(), libc::ENXIO | libc::EIO),
                                "mapper {w}: msync failed with {e}"
                            );
                        }
                    }
                    if a {
                        after += 1;
                        pke.fetch_add(u64::from(r.is_err()), Ordering::Relaxed);
                    }
                    progress[w].fetch_add(1, Ordering::SeqCst);
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        // The syncer: fsync of every file in turn, and sync.
        for k in 0..SYNCERS {
            let (s, phase, progress, start, finished, pke) =
                (&s, &phase, &progress, &start, &finished, &post_kill_errors);
            sc.spawn(move || {
                let w = READERS + WRITERS + MAPPERS + k;
                start.wait();
                let mut after = 0;
                let mut i = 0usize;
                while after < AFTER_KILL {
                    i += 1;
                    let a = phase.start();
                    let res = if i.is_multiple_of(5) {
                        s.fs.sync()
                    } else {
                        s.fs.fsync(s.inos[i % WORKERS])
                    };
                    let when = phase.end(a);
                    check_io(&format!("syncer {w}"), when, &res);
                    if a {
                        after += 1;
                        pke.fetch_add(u64::from(res.is_err()), Ordering::Relaxed);
                    }
                    progress[w].fetch_add(1, Ordering::SeqCst);
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        // The killer: once every worker has done its share (progress, not time).
        let (s, phase, progress, start) = (&s, &phase, &progress, &start);
        sc.spawn(move || {
            start.wait();
            while progress
                .iter()
                .any(|p| p.load(Ordering::SeqCst) < BEFORE_KILL)
            {
                std::thread::yield_now();
            }
            phase.killing.store(true, Ordering::SeqCst);
            s.mem.kill();
            phase.killed.store(true, Ordering::SeqCst);
        });
    });
    assert_eq!(finished.load(Ordering::SeqCst), WORKERS);
    s.mem.after_join();

    // Every acknowledged byte is in the device's memory.
    for (w, model) in models
        .iter()
        .enumerate()
        .take(READERS + WRITERS + MAPPERS)
        .skip(READERS)
    {
        let m = model.lock();
        for b in 0..PAGES {
            let got = peek_block(&s.mem, &s.extents[w], b);
            let bm = &m[b as usize];
            assert!(
                got.iter().all(|&x| bm.allows(w, b, x)),
                "file of worker {w}, block {b}: bytes other than the acknowledged generation \
                 {} (or one tried since, {:?})",
                bm.acked,
                bm.tried
            );
        }
    }
    let total: u64 = progress.iter().map(|p| p.load(Ordering::SeqCst)).sum();
    println!(
        "round {round} ({}): {WORKERS} workers ({READERS} readers, {WRITERS} writers, \
         {MAPPERS} mappers, {SYNCERS} syncer) and a killer; {total} operations, {} of them \
         failing after the kill returned; every acknowledged byte found",
        if freeable {
            "memory taken away after the kill, simulated mappings"
        } else {
            "memfd device, real mappings"
        },
        post_kill_errors.load(Ordering::Relaxed)
    );

    // Nothing may keep the device: drop every holder, then it (its memory unmapped).
    let weak: Weak<DaxDevice> = Arc::downgrade(&s.mem.dev());
    drop(maps);
    drop(s);
    assert!(
        weak.upgrade().is_none(),
        "something still holds the killed device"
    );
}

// ---- no SIGBUS in a mapper ----
//
// `MmuMapping::load`/`store`/`fill` fault pages in (returning the fault's result),
// then copy under each block's page-table lock: a kill that unmaps a page between the
// two steps makes them fault it again, never raise a signal. A SIGBUS in this child
// is therefore a failure; the handler says so and dies by it.

extern "C" fn no_sigbus(sig: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let msg = b"\nSIGBUS: an accessor raised a signal instead of returning the fault\n";
    // SAFETY: write(2), sigaction and raise are async-signal-safe; the default
    // action is restored and the signal delivered on return.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        libc::raise(sig);
    }
}

fn install_sigbus_report() {
    // SAFETY: a SA_SIGINFO handler with a valid action, installed before the first
    // mapping so the engine's handler passes the SIGBUS it raises to it.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = no_sigbus as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()), 0);
    }
}

#[test]
#[ignore = "run in a child process by removal_while_busy_fails_everything_after_it_and_hangs_nothing"]
fn child_removal_while_busy() {
    install_sigbus_report();
    let rounds = env_u64("DAX_REMOVAL_ROUNDS", 1);
    for round in 0..rounds {
        removal_round(round, false);
        removal_round(round, true);
    }
}

// ---- a raw store after the kill dies by SIGBUS ----

/// Set just before `kill` (a SIGBUS from then on is the expected one), and after it.
static KILL_BEGUN: AtomicBool = AtomicBool::new(false);
static KILL_DONE: AtomicBool = AtomicBool::new(false);

/// Says whether the kill had begun, then dies by the signal as without a handler.
extern "C" fn report_sigbus(sig: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let msg: &[u8] = if KILL_BEGUN.load(Ordering::SeqCst) {
        b"\nSIGBUS after the kill began\n"
    } else {
        b"\nSIGBUS before the kill\n"
    };
    // SAFETY: write(2), sigaction and raise are async-signal-safe; the default action
    // is restored and the signal, blocked while this runs, is delivered on return.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        libc::raise(sig);
    }
}

#[test]
#[ignore = "run in a child process by a_raw_store_after_removal_dies_by_sigbus"]
fn child_raw_store_after_kill() {
    // SAFETY: a SA_SIGINFO handler with a valid action, installed before the first
    // mapping so the engine's handler passes the SIGBUS it raises to it.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = report_sigbus as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()), 0);
    }
    let s = setup(false);
    let map =
        s.fs.mmap_real(s.inos[0], 0, PAGES * B, MapOptions::new().writable(true))
            .unwrap();
    let stores = AtomicU64::new(0);
    std::thread::scope(|sc| {
        let (stores, map) = (&stores, &map);
        // Stores through the raw pointer until the kill has returned: one that
        // overlaps the kill may already die by SIGBUS (after the kill began: fine).
        sc.spawn(move || {
            prepare_thread().unwrap();
            let base = map.as_ptr();
            let mut x = 1u64;
            while !KILL_DONE.load(Ordering::SeqCst) {
                x = splitmix(x);
                let off = (x % (PAGES * B)) as usize;
                // SAFETY: inside the mapping, which outlives the thread; a fault is
                // served by the engine's handler.
                unsafe { base.add(off).write_volatile(1) };
                stores.fetch_add(1, Ordering::SeqCst);
            }
        });
        while stores.load(Ordering::SeqCst) < 1000 {
            std::thread::yield_now();
        }
        KILL_BEGUN.store(true, Ordering::SeqCst);
        s.mem.kill();
        KILL_DONE.store(true, Ordering::SeqCst);
    });
    eprintln!("killed; storing through the mapping");
    let base = map.as_ptr();
    for p in 0..PAGES {
        // SAFETY: inside the mapping; after the kill the engine answers the fault
        // with SIGBUS, which kills the process (what the parent expects).
        unsafe { base.add((p * B) as usize).write_volatile(2) };
    }
    eprintln!("every store after the kill went through");
}

// ---- parents ----

fn timeout() -> Duration {
    Duration::from_secs(env_u64("DAX_REMOVAL_TIMEOUT_SECS", 120))
}

/// Runs the ignored test `child` in a child process; returns its exit status (panics
/// if it hung).
fn watched(child: &str) -> (std::process::ExitStatus, String) {
    let run = run_child_watched(child, timeout());
    let Some(status) = run.status else {
        panic!(
            "{child}: hung: still running after {} s (DAX_REMOVAL_TIMEOUT_SECS), killed. \
             Its threads (R: running, a livelock; S: sleeping, a deadlock):\n{}\n{}",
            timeout().as_secs(),
            run.hung_threads,
            run.output
        );
    };
    (status, run.output)
}

/// `kill` while readers, writers, mappers and a syncer are busy: everything after it
/// fails with ENXIO, EIO or SIGBUS, nothing hangs, every acknowledged byte stays.
#[test]
fn removal_while_busy_fails_everything_after_it_and_hangs_nothing() {
    let (status, output) = watched("child_removal_while_busy");
    if let Some(sig) = status.signal() {
        panic!("the child died by {} ({sig}).\n{output}", signal_name(sig));
    }
    assert!(
        status.success() && output.contains("1 passed"),
        "the child failed ({status:?}):\n{output}"
    );
    println!("{output}");
}

/// A store through a raw pointer into a mapping of a removed device: SIGBUS (at the
/// first store after the kill, or at one that overlapped it).
#[test]
fn a_raw_store_after_removal_dies_by_sigbus() {
    let (status, output) = watched("child_raw_store_after_kill");
    assert_eq!(
        status.signal(),
        Some(libc::SIGBUS),
        "the child should die by SIGBUS at its first store after the kill ({status:?}).\n{output}"
    );
    assert!(
        output.contains("SIGBUS after the kill began")
            && !output.contains("SIGBUS before the kill")
            && !output.contains("every store after the kill went through"),
        "the SIGBUS did not come from a store during or after the kill:\n{output}"
    );
}
