//! A bounded soak of TestFs with real mappings: several threads write, read, store
//! and load through shared `mmap_real` mappings, punch holes, zero ranges, msync and
//! fsync, while a coordinator truncates, syncs and, with everyone paused, verifies
//! every byte, syncs and truncates deep into everyone's data; at the end the
//! filesystem is unmounted, mounted again and verified once more. Every byte is
//! checked against a model.
//!
//! Off by default (the test prints how to run it). `DAX_SOAK_MINUTES=N` runs it for
//! N minutes in a watched child process (the watchdog allows N minutes plus a fifth,
//! at least 5 minutes, for the final checks). Release builds do far more work per
//! minute:
//!
//! ```text
//! DAX_SOAK_MINUTES=30 cargo nextest run --release -p dax-testdev --test soak
//! ```
//!
//! Knobs: `DAX_SOAK_THREADS` (default 4) worker threads; `DAX_SOAK_SEED` (default 1)
//! their generators; `DAX_SOAK_DEVICE=memfd` a memfd device with 4 KiB mappings
//! instead of shmem THP with 2 MiB ones; `DAX_SOAK_SKIP=kind,kind` leaves kinds of
//! operation out (names as the report prints them), to narrow a failure down.
//!
//! # What it found
//!
//! A store through a mapping that kept faulting at a page whose shadow in the `mmu`
//! backend said writable while the kernel's page was not, until the handler took it
//! for a fault not its own (SIGBUS): writeback changed the kernel's protection
//! before the shadow, and a store in between, its writer preempted, saw the shadow
//! allow what the kernel refused. `child_store_punch_fsync_race` below reproduces it
//! alone; the `mmu` module docs give the ordering rule that fixed it.
//!
//! # The model: ownership keeps concurrent operations checkable
//!
//! Each file (`FILES` of `FILE_SIZE` bytes) is cut into 64 KiB chunks; worker `t`
//! owns chunk `c` when `c % threads == t`, except the last `TAIL_CHUNKS`, which the
//! coordinator owns. Chunks are block-aligned, so no operation on one owner's bytes
//! touches another's blocks, and each owner's model of its bytes is exact whatever the
//! others do. What *does* race is everything the operations do to shared state: the
//! engine's mapping entries, layout breaking (a punch, zero range or truncate
//! anywhere unmaps the whole file from every mapping, and the other threads fault
//! back in), writeback of dirty entries (fsync, msync), the allocator and the
//! checkpoint. The coordinator's tail truncates change the file size while workers
//! store into the same mappings below it. The only operation that changes other
//! owners' bytes, a truncate into the middle of the file (then back up), runs with
//! the workers paused at a barrier, and updates every model.
//!
//! The coordinator paces itself on the workers' progress (one tail operation per
//! `WORKER_OPS_PER_TAIL_OP` worker operations, a pause per `WORKER_OPS_PER_PAUSE`),
//! not on time; time only bounds the run.
//!
//! Errors are counted, not fatal at once: a model mismatch (each mismatching range
//! once), an operation that fails, a fault a mapping access could not have. The
//! child prints operations done per kind and errors found, then fails if there was
//! any error. A signal kills it (the parent reports which, the child where).
#![allow(unsafe_code)] // plain stores through the mappings; sigreport's handler

mod sigreport;
mod testfs_common;

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use dax_fault::mmu::{MapOptions, MmuMapping, prepare_thread};
use dax_testdev::{Backing, FallocMode, Ino, MemDevice, TestFs};
use dax_testkit::child::{ChildRun, run_child_watched};
use sigreport::{install_signal_report, track};
use testfs_common::Dev;

const FILES: usize = 3;
const FILE_SIZE: usize = 8 << 20;
const CHUNK: usize = 64 << 10;
const CHUNKS: usize = FILE_SIZE / CHUNK;
const TAIL_CHUNKS: usize = 2;
/// Where the coordinator's tail starts.
const TAIL: usize = FILE_SIZE - TAIL_CHUNKS * CHUNK;
const WORKER_OPS_PER_TAIL_OP: u64 = 40;

/// What the workers do, with weights.
const WORKER_MIX: &[(Kind, usize)] = &[
    (Kind::Write, 20),
    (Kind::Read, 15),
    (Kind::MapStore, 10),
    (Kind::MapLoad, 8),
    (Kind::RawStore, 10),
    (Kind::RawLoad, 7),
    (Kind::Punch, 7),
    (Kind::ZeroRange, 7),
    (Kind::Msync, 11),
    (Kind::Fsync, 5),
];

/// What the coordinator does between pauses, with weights.
const COORDINATOR_MIX: &[(Kind, usize)] = &[
    (Kind::TailWrite, 4),
    (Kind::TailTruncate, 4),
    (Kind::TailCheck, 1),
    (Kind::Sync, 1),
];
const WORKER_OPS_PER_PAUSE: u64 = 20_000;

/// The kinds of operation counted.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Write,
    Read,
    MapStore,
    MapLoad,
    /// A plain store through the mapping's pointer, as a program makes.
    RawStore,
    /// A plain load through the mapping's pointer.
    RawLoad,
    Punch,
    ZeroRange,
    Msync,
    Fsync,
    TailWrite,
    TailTruncate,
    TailCheck,
    Sync,
    PausedSync,
    PausedTruncate,
    Verify,
}

const KINDS: [Kind; 17] = [
    Kind::Write,
    Kind::Read,
    Kind::MapStore,
    Kind::MapLoad,
    Kind::RawStore,
    Kind::RawLoad,
    Kind::Punch,
    Kind::ZeroRange,
    Kind::Msync,
    Kind::Fsync,
    Kind::TailWrite,
    Kind::TailTruncate,
    Kind::TailCheck,
    Kind::Sync,
    Kind::PausedSync,
    Kind::PausedTruncate,
    Kind::Verify,
];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

// ---- parent ----

/// The soak, when `DAX_SOAK_MINUTES` is set.
#[test]
fn soak() {
    let Some(minutes) = env_u64("DAX_SOAK_MINUTES") else {
        println!(
            "soak: off. Run it with DAX_SOAK_MINUTES=N (N minutes of racing threads on \
             real mappings, every byte checked), preferably in release:\n  \
             DAX_SOAK_MINUTES=30 cargo nextest run --release -p dax-testdev --test soak"
        );
        return;
    };
    let margin = (minutes * 60 / 5).max(300);
    run_child("child_soak", Duration::from_secs(minutes * 60 + margin));
}

/// Runs the ignored test `name` in a watched child process and fails unless it
/// passed.
fn run_child(name: &str, limit: Duration) {
    let ChildRun {
        status,
        output,
        hung_threads,
        took,
    } = run_child_watched(name, limit);
    let Some(status) = status else {
        panic!(
            "{name}: hung, killed after {limit:?}; its threads (R: running, S: \
             sleeping):\n{hung_threads}\n{output}"
        );
    };
    if let Some(sig) = status.signal() {
        panic!("{name}: died by signal {sig} after {took:?}\n{output}");
    }
    assert!(
        status.success() && output.contains("1 passed"),
        "{name}: failed ({status:?}) after {took:?}\n{output}"
    );
    println!("{name}: passed in {:.1} s\n{output}", took.as_secs_f64());
}

// ---- child ----

/// One owner's model: the bytes of the chunks it owns, per file.
struct Model {
    /// `chunks[f][i]`: the `i`-th owned chunk of file `f`.
    chunks: Vec<Vec<Vec<u8>>>,
    /// The chunk numbers owned, ascending.
    owned: Vec<usize>,
}

impl Model {
    fn new(owned: Vec<usize>) -> Model {
        Model {
            chunks: (0..FILES)
                .map(|_| owned.iter().map(|_| vec![0u8; CHUNK]).collect())
                .collect(),
            owned,
        }
    }

    /// Zeroes every modelled byte at or past `size` in file `f`.
    fn truncate(&mut self, f: usize, size: usize) {
        for (i, &c) in self.owned.iter().enumerate() {
            let start = c * CHUNK;
            if start + CHUNK > size {
                let from = size.saturating_sub(start);
                self.chunks[f][i][from..].fill(0);
            }
        }
    }

    /// Copies the model into `whole` (a whole file's image).
    fn paint(&self, f: usize, whole: &mut [u8]) {
        for (i, &c) in self.owned.iter().enumerate() {
            whole[c * CHUNK..(c + 1) * CHUNK].copy_from_slice(&self.chunks[f][i]);
        }
    }
}

/// What every thread checks against and reports to.
struct Check {
    inos: Vec<Ino>,
    /// Per worker, then the coordinator's (the tail) last.
    models: Vec<Mutex<Model>>,
    counts: Vec<AtomicU64>,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

/// What the threads share while they run.
struct Shared<'a> {
    fs: &'a TestFs,
    maps: &'a [MmuMapping],
    ck: &'a Check,
    inos: &'a [Ino],
    models: &'a [Mutex<Model>],
    worker_ops: AtomicU64,
    pause: AtomicBool,
    stop: AtomicBool,
    paused: Barrier,
    resumed: Barrier,
    skip: Vec<bool>,
}

impl Shared<'_> {
    fn count(&self, k: Kind) {
        self.ck.count(k);
    }

    fn error(&self, msg: String) {
        self.ck.error(msg);
    }

    fn compare(&self, what: &str, f: usize, at: usize, want: &[u8], got: &[u8]) {
        self.ck.compare(what, f, at, want, got);
    }
}

impl Check {
    fn count(&self, k: Kind) {
        self.counts[k as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::SeqCst);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 20 {
            first.push(msg);
        }
    }

    /// Compares `got` with `want` (file `f` from byte `at`), reporting one error for
    /// a mismatch.
    fn compare(&self, what: &str, f: usize, at: usize, want: &[u8], got: &[u8]) {
        if want != got {
            let i = (0..want.len()).find(|&i| want[i] != got[i]).unwrap();
            let n = (0..want.len()).filter(|&i| want[i] != got[i]).count();
            self.error(format!(
                "{what}: file {f}, {n} byte(s) of {}..{} differ from the model; first at \
                 byte {} (page {}): expected {:#04x}, found {:#04x}",
                at,
                at + want.len(),
                at + i,
                (at + i) / 4096,
                want[i],
                got[i]
            ));
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

struct Rng(u64);

/// A kind from `mix` by weight, leaving out the skipped ones (`fallback`, a check,
/// when all are).
fn pick(rng: &mut Rng, mix: &[(Kind, usize)], skip: &[bool], fallback: Kind) -> Kind {
    let on: Vec<(Kind, usize)> = mix
        .iter()
        .copied()
        .filter(|(k, _)| !skip[*k as usize])
        .collect();
    let total: usize = on.iter().map(|e| e.1).sum();
    let mut r = rng.below(total);
    for (k, w) in on {
        if r < w {
            return k;
        }
        r -= w;
    }
    fallback
}

/// `DAX_SOAK_SKIP`: kinds of operation to leave out (comma-separated names as the
/// report prints them, case-insensitive), to narrow a failure down.
fn skipped() -> Vec<bool> {
    let list = std::env::var("DAX_SOAK_SKIP").unwrap_or_default();
    let mut skip = vec![false; KINDS.len()];
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let k = KINDS
            .iter()
            .find(|k| format!("{k:?}").eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("DAX_SOAK_SKIP: unknown kind {name:?}; kinds: {KINDS:?}"));
        skip[*k as usize] = true;
    }
    skip
}

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = splitmix(self.0);
        (self.0 % n.max(1) as u64) as usize
    }

    /// Non-zero pattern bytes.
    fn fill(&mut self, buf: &mut [u8]) {
        self.0 = splitmix(self.0);
        let mut x = self.0;
        for b in buf {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *b = (x >> 56) as u8 | 1;
        }
    }

    /// A range inside one chunk: offset in the chunk and length (1 .. 16 KiB, or the
    /// whole chunk now and then).
    fn range(&mut self) -> (usize, usize) {
        if self.below(16) == 0 {
            return (0, CHUNK);
        }
        let off = self.below(CHUNK);
        let len = 1 + self.below((CHUNK - off).min(16 << 10));
        (off, len)
    }
}

/// One worker: operations on the chunks it owns, checked against its model.
fn worker(sh: &Shared, t: usize, seed: u64) {
    prepare_thread().unwrap();
    let mut rng = Rng(splitmix(seed ^ ((t as u64 + 1) * 0x1234_5678)));
    let mut buf = vec![0u8; CHUNK];
    let mut got = vec![0u8; CHUNK];
    loop {
        if sh.pause.load(Ordering::SeqCst) {
            sh.paused.wait();
            sh.resumed.wait();
        }
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        let f = rng.below(FILES);
        let mut model = sh.models[t].lock().unwrap();
        let i = rng.below(model.owned.len());
        let c = model.owned[i];
        let (off, len) = rng.range();
        let at = c * CHUNK + off;
        let (ino, m) = (sh.inos[f], &sh.maps[f]);
        match pick(&mut rng, WORKER_MIX, &sh.skip, Kind::Read) {
            Kind::Write => {
                rng.fill(&mut buf[..len]);
                match sh.fs.write(ino, at as u64, &buf[..len]) {
                    Ok(n) if n == len => {}
                    r => sh.error(format!("write file {f} at {at}+{len}: {r:?}")),
                }
                model.chunks[f][i][off..off + len].copy_from_slice(&buf[..len]);
                sh.count(Kind::Write);
            }
            Kind::Read => {
                match sh.fs.read(ino, at as u64, &mut got[..len]) {
                    Ok(n) if n == len => sh.compare(
                        "read",
                        f,
                        at,
                        &model.chunks[f][i][off..off + len],
                        &got[..len],
                    ),
                    r => sh.error(format!("read file {f} at {at}+{len}: {r:?}")),
                }
                sh.count(Kind::Read);
            }
            Kind::MapStore => {
                rng.fill(&mut buf[..len]);
                if let Err(e) = m.store(at, &buf[..len]) {
                    sh.error(format!("store to file {f} at {at}+{len}: {e:?}"));
                }
                model.chunks[f][i][off..off + len].copy_from_slice(&buf[..len]);
                sh.count(Kind::MapStore);
            }
            Kind::MapLoad => {
                match m.load(at, &mut got[..len]) {
                    Ok(()) => sh.compare(
                        "load",
                        f,
                        at,
                        &model.chunks[f][i][off..off + len],
                        &got[..len],
                    ),
                    Err(e) => sh.error(format!("load from file {f} at {at}+{len}: {e:?}")),
                }
                sh.count(Kind::MapLoad);
            }
            Kind::RawStore => {
                rng.fill(&mut buf[..len]);
                // SAFETY: `at + len` lies in a chunk this worker owns, below every
                // size the file takes while workers run, inside the mapping (which
                // outlives the workers); the mapping's handler serves the faults.
                unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), m.as_ptr().add(at), len) };
                model.chunks[f][i][off..off + len].copy_from_slice(&buf[..len]);
                sh.count(Kind::RawStore);
            }
            Kind::RawLoad => {
                // SAFETY: as for RawStore; only this worker writes these bytes.
                unsafe { std::ptr::copy_nonoverlapping(m.as_ptr().add(at), got.as_mut_ptr(), len) };
                sh.compare(
                    "raw load",
                    f,
                    at,
                    &model.chunks[f][i][off..off + len],
                    &got[..len],
                );
                sh.count(Kind::RawLoad);
            }
            Kind::Punch => {
                let mode = FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE;
                if let Err(e) = sh.fs.fallocate(ino, mode, at as u64, len as u64) {
                    sh.error(format!("punch file {f} at {at}+{len}: {e}"));
                }
                model.chunks[f][i][off..off + len].fill(0);
                sh.count(Kind::Punch);
            }
            Kind::ZeroRange => {
                let mode = FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE;
                if let Err(e) = sh.fs.fallocate(ino, mode, at as u64, len as u64) {
                    sh.error(format!("zero range file {f} at {at}+{len}: {e}"));
                }
                model.chunks[f][i][off..off + len].fill(0);
                sh.count(Kind::ZeroRange);
            }
            Kind::Msync => {
                if let Err(e) = m.msync(at, len) {
                    sh.error(format!("msync file {f} at {at}+{len}: {e}"));
                }
                sh.count(Kind::Msync);
            }
            _ => {
                drop(model);
                if let Err(e) = sh.fs.fsync(ino) {
                    sh.error(format!("fsync file {f}: {e}"));
                }
                sh.count(Kind::Fsync);
            }
        }
        sh.worker_ops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Reads every file (through `read` and through its mapping) and compares it with
/// the union of the models. Only while nobody else changes anything.
fn verify_all(sh: &Check, fs: &TestFs, maps: Option<&[MmuMapping]>, what: &str) {
    let mut want = vec![0u8; FILE_SIZE];
    let mut got = vec![0u8; FILE_SIZE];
    for f in 0..FILES {
        for m in &sh.models {
            m.lock().unwrap().paint(f, &mut want);
        }
        match fs.read(sh.inos[f], 0, &mut got) {
            Ok(n) if n == FILE_SIZE => sh.compare(&format!("{what} read"), f, 0, &want, &got),
            r => sh.error(format!("{what}: read of file {f}: {r:?}")),
        }
        if let Some(maps) = maps {
            match maps[f].load(0, &mut got) {
                Ok(()) => sh.compare(&format!("{what} load"), f, 0, &want, &got),
                Err(e) => sh.error(format!("{what}: load of file {f}: {e:?}")),
            }
        }
    }
    sh.count(Kind::Verify);
}

/// The coordinator: tail operations paced on the workers' progress, and paused
/// deep truncates with a full verification, until `deadline`.
fn coordinator(sh: &Shared, deadline: Instant, seed: u64) -> u64 {
    let tail = sh.models.len() - 1;
    let mut rng = Rng(splitmix(seed ^ 0xc00d));
    let mut buf = vec![0u8; TAIL_CHUNKS * CHUNK];
    let mut got = vec![0u8; TAIL_CHUNKS * CHUNK];
    let (mut next_tail, mut next_pause) = (WORKER_OPS_PER_TAIL_OP, WORKER_OPS_PER_PAUSE);
    let mut pauses = 0;
    while Instant::now() < deadline {
        let done = sh.worker_ops.load(Ordering::SeqCst);
        if done < next_tail {
            std::thread::yield_now();
            continue;
        }
        next_tail = done + WORKER_OPS_PER_TAIL_OP;
        let f = rng.below(FILES);
        let ino = sh.inos[f];
        let mut model = sh.models[tail].lock().unwrap();
        match pick(&mut rng, COORDINATOR_MIX, &sh.skip, Kind::TailCheck) {
            Kind::TailWrite => {
                // A write into the tail (model chunk index = tail chunk number).
                let off = rng.below(TAIL_CHUNKS * CHUNK);
                let len = 1 + rng.below((TAIL_CHUNKS * CHUNK - off).min(32 << 10));
                rng.fill(&mut buf[..len]);
                match sh.fs.write(ino, (TAIL + off) as u64, &buf[..len]) {
                    Ok(n) if n == len => {}
                    r => sh.error(format!("tail write file {f}: {r:?}")),
                }
                for (k, b) in buf[..len].iter().enumerate() {
                    let o = off + k;
                    model.chunks[f][o / CHUNK][o % CHUNK] = *b;
                }
                sh.count(Kind::TailWrite);
            }
            Kind::TailTruncate => {
                // Truncate into the tail, racing the workers' stores below it, then
                // back to the full size.
                let size = TAIL + rng.below(TAIL_CHUNKS * CHUNK);
                let r = sh
                    .fs
                    .truncate(ino, size as u64)
                    .and_then(|()| sh.fs.truncate(ino, FILE_SIZE as u64));
                if let Err(e) = r {
                    sh.error(format!("tail truncate file {f} to {size}: {e}"));
                }
                model.truncate(f, size);
                sh.count(Kind::TailTruncate);
            }
            Kind::TailCheck => {
                match sh.fs.read(ino, TAIL as u64, &mut got) {
                    Ok(n) if n == got.len() => {
                        let mut want = vec![0u8; got.len()];
                        for k in 0..TAIL_CHUNKS {
                            want[k * CHUNK..(k + 1) * CHUNK].copy_from_slice(&model.chunks[f][k]);
                        }
                        sh.compare("tail read", f, TAIL, &want, &got);
                    }
                    r => sh.error(format!("tail read file {f}: {r:?}")),
                }
                sh.count(Kind::TailCheck);
            }
            _ => {
                if let Err(e) = sh.fs.sync() {
                    sh.error(format!("sync: {e}"));
                }
                sh.count(Kind::Sync);
            }
        }
        drop(model); // verify_all takes every model
        if done >= next_pause {
            next_pause = done + WORKER_OPS_PER_PAUSE;
            pauses += 1;
            sh.pause.store(true, Ordering::SeqCst);
            sh.paused.wait();
            verify_all(sh.ck, sh.fs, Some(sh.maps), "paused check");
            // Writeback and a checkpoint that race nothing (see the module docs).
            if let Err(e) = sh.fs.sync() {
                sh.error(format!("paused sync: {e}"));
            }
            sh.count(Kind::PausedSync);
            let f = rng.below(FILES);
            let size = if sh.skip[Kind::PausedTruncate as usize] {
                FILE_SIZE
            } else {
                rng.below(FILE_SIZE)
            };
            let r = sh
                .fs
                .truncate(sh.inos[f], size as u64)
                .and_then(|()| sh.fs.truncate(sh.inos[f], FILE_SIZE as u64));
            if let Err(e) = r {
                sh.error(format!("paused truncate of file {f} to {size}: {e}"));
            }
            for m in sh.models {
                m.lock().unwrap().truncate(f, size);
            }
            sh.count(Kind::PausedTruncate);
            sh.pause.store(false, Ordering::SeqCst);
            sh.resumed.wait();
        }
    }
    pauses
}

/// A device that maps 2 MiB pages where it can (shmem THP), else (or with
/// `DAX_SOAK_DEVICE=memfd`) a memfd.
fn device(size: u64) -> (Dev, bool) {
    if std::env::var("DAX_SOAK_DEVICE").is_ok_and(|d| d == "memfd") {
        return (MemDevice::builder().size(size).build().unwrap(), false);
    }
    match MemDevice::builder()
        .size(size)
        .backing(Backing::ShmemThp)
        .build()
    {
        Ok(d) => (d, true),
        Err(e) => {
            println!("no shmem-THP device ({e}); 4 KiB mappings only");
            (MemDevice::builder().size(size).build().unwrap(), false)
        }
    }
}

#[test]
#[ignore = "run in a child process by soak"]
fn child_soak() {
    let minutes = env_u64("DAX_SOAK_MINUTES").unwrap_or(1);
    let threads = env_u64("DAX_SOAK_THREADS").unwrap_or(4).max(1) as usize;
    let seed = env_u64("DAX_SOAK_SEED").unwrap_or(1);
    install_signal_report();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(minutes * 60);
    // Room for the files, twice over (blocks freed since the last checkpoint stay
    // busy until the next one), and the checkpoint slots.
    let (dev, huge) =
        device(((FILES * FILE_SIZE * 2) as u64 + (32 << 20)).next_multiple_of(2 << 20));
    let fs = TestFs::mkfs(dev.clone()).unwrap();
    let inos: Vec<Ino> = (0..FILES)
        .map(|f| {
            let ino = fs.create(&format!("f{f}")).unwrap();
            fs.truncate(ino, FILE_SIZE as u64).unwrap();
            ino
        })
        .collect();
    let opts = MapOptions::new().shared(true).writable(true).huge(huge);
    let maps: Vec<MmuMapping> = inos
        .iter()
        .map(|&ino| fs.mmap_real(ino, 0, FILE_SIZE as u64, opts).unwrap())
        .collect();
    for (f, m) in maps.iter().enumerate() {
        track(f, m);
    }
    let worker_chunks = CHUNKS - TAIL_CHUNKS;
    let mut models: Vec<Mutex<Model>> = (0..threads)
        .map(|t| Mutex::new(Model::new((t..worker_chunks).step_by(threads).collect())))
        .collect();
    // The coordinator's tail: its model's chunk k is tail chunk k.
    models.push(Mutex::new(Model::new((worker_chunks..CHUNKS).collect())));
    let ck = Check {
        inos,
        models,
        counts: KINDS.iter().map(|_| AtomicU64::new(0)).collect(),
        errors: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
    };
    println!(
        "soak: {minutes} min, {threads} workers + a coordinator, {FILES} files of {} MiB \
         on a {} MiB {} device, {} mappings, seed {seed}",
        FILE_SIZE >> 20,
        dev.driver().size() >> 20,
        if huge { "shmem-THP" } else { "memfd" },
        if huge { "2 MiB + 4 KiB" } else { "4 KiB" },
    );
    let sh = Shared {
        fs: &fs,
        maps: &maps,
        ck: &ck,
        inos: &ck.inos,
        models: &ck.models,
        worker_ops: AtomicU64::new(0),
        pause: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        paused: Barrier::new(threads + 1),
        resumed: Barrier::new(threads + 1),
        skip: skipped(),
    };
    let pauses = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let sh = &sh;
                s.spawn(move || worker(sh, t, seed))
            })
            .collect();
        let pauses = coordinator(&sh, deadline, seed);
        sh.stop.store(true, Ordering::SeqCst);
        for h in handles {
            if h.join().is_err() {
                sh.error("a worker panicked".into());
            }
        }
        pauses
    });
    let ran = started.elapsed();
    let worker_ops = sh.worker_ops.load(Ordering::Relaxed);
    drop(sh);
    verify_all(&ck, &fs, Some(&maps), "final check");
    let stats: Vec<String> = maps.iter().map(|m| format!("{:?}", m.stats())).collect();
    // Durable after unmount: mount again and compare once more.
    drop(maps);
    match fs.unmount().and_then(|()| TestFs::open(dev.clone())) {
        Ok(fs) => verify_all(&ck, &fs, None, "after unmount and mount"),
        Err(e) => ck.error(format!("unmount and mount: {e}")),
    }
    let total: u64 = ck.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    println!(
        "soak: ran {:.1} min: {total} operations ({worker_ops} by workers), {pauses} \
         pauses with a full check",
        ran.as_secs_f64() / 60.0,
    );
    for (k, c) in KINDS.iter().zip(&ck.counts) {
        println!("  {k:?}: {}", c.load(Ordering::Relaxed));
    }
    println!("  mapping faults: {}", stats.join("; "));
    let errors = ck.errors.load(Ordering::SeqCst);
    println!("soak: errors found: {errors}");
    if errors > 0 {
        panic!(
            "{errors} error(s); first:\n{}",
            ck.first_errors.lock().unwrap().join("\n")
        );
    }
}

// ---- a focused reproducer of what the soak found ----

/// `DAX_RACE_THREADS` threads (default 8: more threads than cores, so that one is
/// preempted inside a change now and then) on one 16 MiB file of a memfd device, 4 KiB
/// mappings: each stores into ranges of its own (64 KiB chunk `c` belongs to thread
/// `c % threads`) with plain stores through the mapping's pointer, as a program does,
/// and through `MmuMapping::store`; punches them (which unmaps the whole file from
/// the mapping) and fsyncs the file (which write-protects every dirty page for
/// writeback, racing the other threads' stores; `DAX_RACE_MSYNC=1`: an msync of the
/// whole mapping instead, the same writeback without the checkpoint). Each thread
/// does `DAX_RACE_OPS` operations (default 20,000; 5,000 in a debug build) and keeps a model of its bytes;
/// afterwards every byte of the file, read back with `read` and through the mapping,
/// must equal its owner's model. A store the engine cannot resolve kills the child.
#[test]
#[ignore = "run in a child process by store_punch_fsync_race"]
fn child_store_punch_fsync_race() {
    install_signal_report();
    let ops = env_u64("DAX_RACE_OPS").unwrap_or(if cfg!(debug_assertions) {
        5_000
    } else {
        20_000
    });
    let msync = env_u64("DAX_RACE_MSYNC").is_some_and(|v| v == 1);
    let threads = env_u64("DAX_RACE_THREADS").unwrap_or(8).max(1) as usize;
    let dev = MemDevice::builder().size(64 << 20).build().unwrap();
    let fs = TestFs::mkfs(dev).unwrap();
    let ino = fs.create("f").unwrap();
    let pages = env_u64("DAX_RACE_PAGES").unwrap_or(4096) as usize;
    let size = pages * 4096;
    fs.truncate(ino, size as u64).unwrap();
    let opts = MapOptions::new().shared(true).writable(true).huge(false);
    let m = fs.mmap_real(ino, 0, size as u64, opts).unwrap();
    track(0, &m);
    let counts = [const { AtomicU64::new(0) }; 4];
    let models: Vec<Vec<u8>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (m, fs, counts) = (&m, &fs, &counts);
                s.spawn(move || {
                    prepare_thread().unwrap();
                    let mut rng = Rng(t as u64 + 1);
                    let mut buf = vec![0u8; 16 * 4096];
                    let mut model = vec![0u8; size];
                    for _ in 0..ops {
                        // Chunks of 16 pages; chunk c belongs to thread c % threads.
                        let c = rng.below(pages / 16 / threads) * threads + t;
                        let off = rng.below(16 * 4096);
                        let len = 1 + rng.below(16 * 4096 - off);
                        let at = c * 16 * 4096 + off;
                        match rng.below(20) {
                            0..7 => {
                                rng.fill(&mut buf[..len]);
                                // SAFETY: `at + len` is inside the mapping, which
                                // outlives this scope; only this thread writes these
                                // bytes; a fault is served by the mapping's handler.
                                unsafe {
                                    std::ptr::copy_nonoverlapping(
                                        buf.as_ptr(),
                                        m.as_ptr().add(at),
                                        len,
                                    )
                                };
                                model[at..at + len].copy_from_slice(&buf[..len]);
                                counts[0].fetch_add(1, Ordering::Relaxed);
                            }
                            7..14 => {
                                rng.fill(&mut buf[..len]);
                                m.store(at, &buf[..len]).unwrap();
                                model[at..at + len].copy_from_slice(&buf[..len]);
                                counts[1].fetch_add(1, Ordering::Relaxed);
                            }
                            14..19 => {
                                let mode = FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE;
                                fs.fallocate(ino, mode, at as u64, len as u64).unwrap();
                                model[at..at + len].fill(0);
                                counts[2].fetch_add(1, Ordering::Relaxed);
                            }
                            _ if msync => {
                                m.msync(0, m.len()).unwrap();
                                counts[3].fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                fs.fsync(ino).unwrap();
                                counts[3].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    model
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    // Every byte against its owner's model, through read(2) and through the mapping.
    let mut by_read = vec![0u8; size];
    assert_eq!(fs.read(ino, 0, &mut by_read).unwrap(), size);
    let mut by_map = vec![0u8; size];
    m.load(0, &mut by_map).unwrap();
    for c in 0..pages / 16 {
        let r = c * 16 * 4096..(c + 1) * 16 * 4096;
        let want = &models[c % threads][r.clone()];
        for (how, got) in [("read", &by_read), ("the mapping", &by_map)] {
            if let Some(i) = (r.start..r.end).find(|&i| got[i] != want[i - r.start]) {
                panic!(
                    "byte {i} (thread {}'s chunk {c}) through {how}: {} where the model has {}",
                    c % threads,
                    got[i],
                    want[i - r.start]
                );
            }
        }
    }
    println!(
        "raw stores {}, accessor stores {}, punches {}, {} {}: every store resolved, \
         every byte as the model",
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
        counts[2].load(Ordering::Relaxed),
        if msync { "msyncs" } else { "fsyncs" },
        counts[3].load(Ordering::Relaxed)
    );
}

/// Stores, punches and whole-file writeback racing on one file (see
/// [`child_store_punch_fsync_race`]) must leave every store resolved and every byte
/// as the model says. The watchdog turns a hang into a failure.
#[test]
fn store_punch_fsync_race() {
    run_child("child_store_punch_fsync_race", Duration::from_secs(240));
}
