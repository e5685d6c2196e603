//! Fault injection on TestFs (issue 15): a seeded workload of write, read, truncate,
//! fallocate (allocate, keep-size, punch hole, zero range, unshare), reflink, fsync,
//! sync, loads and stores through a simulated page table and through real mappings
//! (`MmuMapping::load`/`store`), msync and poison, on three files, while the device
//! fails `direct_access`, `zero_page_range`, `recovery_write` or `flush`
//! (`MemDevice::inject`), or TestFs's own `iomap_begin`/`iomap_end` fail
//! (`TestFs::inject_iomap`), every Nth call or at random from a seed.
//!
//! After every operation:
//! * it returned: an error or a completion (the whole run is in a child process under
//!   a watchdog, so a hang fails the test and names the stuck threads);
//! * no lock is left held and no mapping entry locked (`TestFs::held_locks`);
//! * every file's bytes, read from the device through its extent map (no device
//!   operation, so no injection) match the model: exactly, after a completion (a short
//!   count moves the model by exactly that many bytes); byte by byte the old or the
//!   new value, and the old or the new size, after an error; the model then takes what
//!   is there;
//! * no mapping points at freed blocks: every REAL entry maps the file's written
//!   block at its index (reference count at least 1), every ZERO entry a hole or an
//!   unwritten block, no entry reaches past EOF; every device PTE and PMD of the
//!   simulated and of the real mappings is backed by such an entry with the same pfn,
//!   every zero-page mapping by a ZERO entry.
//!
//! At the end of each run, with injection off: each file's handle opened at the start
//! reports an error from its fsync exactly when one was recorded for that file
//! (errseq), once; a failed fsync or sync recorded one; nothing did if none failed.
//! Then the filesystem is unmounted (even seeds) or synced and crashed (odd seeds),
//! mounted again, and every file read back through the engine must equal the model:
//! what was reported written is readable after a reopen.
//!
//! A second sweep is the kernel's `fail-nth` method: 18 scenarios (a setup, then one
//! operation: a write across every kind of extent, a copy-on-write write, truncate
//! into a shared block, zero range and punch with partial edges, unshare, reflink
//! over a mapped file, fsync, sync and msync with dirty mapped pages, PTE and PMD
//! write faults on holes (mapped with the zero page or not), copy-on-write faults
//! through both kinds of mapping, a recovery write over poison, a read across
//! extents); for each of the six targets
//! the operation's calls are counted, then it is run again with its `n`th call
//! failing (`FailSchedule::After`), every `n` up to `DAX_FAIL_NTH_DENSE` (default 3),
//! then about 1.5 times apart, and the last; each case gets all the checks above.
//! `DAX_FAIL_NTH_DENSE=100000` fails every call.
//!
//! Default: each of 7 targets (the four device operations, the two iomap hooks, all
//! six at once) with an every-Nth and a random schedule, one seed each, 60 operations
//! per run: 840 operations, a few seconds. Longer:
//! `DAX_INJECT_SEEDS=50 DAX_INJECT_OPS=300 cargo nextest run --release -p dax-testdev
//! --test testfs_inject` (`DAX_INJECT_SEED` moves the first seed;
//! `DAX_INJECT_TIMEOUT_SECS`, default 300, is the watchdog). A failure prints the
//! target, schedule, seed and operation number; `DAX_INJECT_ONLY=target/schedule/seed`
//! (as printed) reruns one run, and `DAX_INJECT_TRACE=1` prints each operation and
//! its outcome.
#![allow(clippy::too_many_lines)]

mod testfs_common;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use dax_device::{DaxError, PMD_SIZE};
use dax_fault::index::{EntryInfo, EntryKind};
use dax_fault::mmu::{MapOptions, MmuMapping};
use dax_fault::sim::SimPageTable;
use dax_fault::{MappedVma, PmdSlot, Pte, Vma};
use dax_testdev::{
    DevOp, ExtentInfo, FailSchedule, FallocMode, FileHandle, Ino, IomapHook, MemDevice, TestFs,
};
use dax_testkit::child::run_child_watched;
use dax_testkit::sweep::signal_name;
use testfs_common::{B, Dev};

const PMD: u64 = PMD_SIZE as u64;
const FILES: usize = 3;
/// Largest offset an operation starts at: files reach past 2 MiB, so PMD faults and
/// 2 MiB extents happen.
const MAX_OFF: u64 = 2 * PMD + PMD / 8;
/// Each file's mappings show its first 4 MiB.
const MAP_LEN: u64 = 2 * PMD + PMD;
const DEV_SIZE: u64 = 64 << 20;
/// Where the simulated mappings live: file `f` at `SIM_BASE + f * MAP_SLOT`.
const SIM_BASE: u64 = 0x7000_0000_0000;
const MAP_SLOT: u64 = 8 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

// ---- the seeded generator ----

/// SplitMix64: small, fast, and one seed gives one workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    /// An offset: anywhere, block aligned, or the last byte of a block.
    fn offset(&mut self, max: u64) -> u64 {
        match self.below(3) {
            0 => self.below(max),
            1 => self.below(max / B) * B,
            _ => self.below(max / B) * B + B - 1,
        }
    }

    /// A length: bytes, a few blocks, up to 2 MiB.
    fn length(&mut self) -> u64 {
        match self.below(5) {
            0 => 1 + self.below(64),
            1 => 1 + self.below(3 * B),
            2 => (1 + self.below(64)) * B,
            3 => PMD,
            _ => 1 + self.below(300_000),
        }
    }
}

// ---- what fails, and when ----

/// What the injection targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Dev(DevOp),
    Iomap(IomapHook),
    /// All six at once, each with its own schedule.
    All,
}

const TARGETS: [Target; 7] = [
    Target::Dev(DevOp::DirectAccess),
    Target::Dev(DevOp::ZeroPageRange),
    Target::Dev(DevOp::RecoveryWrite),
    Target::Dev(DevOp::Flush),
    Target::Iomap(IomapHook::Begin),
    Target::Iomap(IomapHook::End),
    Target::All,
];

const DEV_OPS: [DevOp; 4] = [
    DevOp::DirectAccess,
    DevOp::ZeroPageRange,
    DevOp::RecoveryWrite,
    DevOp::Flush,
];
const HOOKS: [IomapHook; 2] = [IomapHook::Begin, IomapHook::End];

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Dev(op) => write!(f, "{op:?}"),
            Target::Iomap(h) => write!(f, "iomap_{}", format!("{h:?}").to_lowercase()),
            Target::All => write!(f, "all"),
        }
    }
}

/// The kind of schedule; its parameters come from the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    EveryNth,
    Random,
}

/// One run: a target, a kind of schedule, a seed (which also drives the workload).
#[derive(Debug, Clone, Copy)]
struct RunSpec {
    target: Target,
    kind: Kind,
    seed: u64,
}

impl fmt::Display for RunSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match self.kind {
            Kind::EveryNth => "every-nth",
            Kind::Random => "random",
        };
        write!(f, "{}/{k}/{}", self.target, self.seed)
    }
}

/// A schedule of `kind` for one operation, drawn from `rng`: every 2nd to 24th call,
/// or one call in 3 to 24 from a seed; for `recovery_write` (`rare`: it is called
/// only for writes over poison), every 2nd to 4th or one in 3 to 4.
fn schedule(kind: Kind, rare: bool, rng: &mut Rng) -> FailSchedule {
    let (lo, span) = if rare { (2, 3) } else { (2, 23) };
    match kind {
        Kind::EveryNth => FailSchedule::EveryNth(lo + rng.below(span) as u32),
        Kind::Random => FailSchedule::Random {
            seed: rng.next() | 1,
            one_in: lo + 1 + rng.below(span - 1) as u32,
        },
    }
}

/// How many of `calls` calls a schedule failed (the schedule's own rule and
/// generator, replayed: `MemDevice` and TestFs use xorshift64* from the seed).
fn failed_calls(s: FailSchedule, calls: u64) -> u64 {
    match s {
        FailSchedule::EveryNth(n) => calls / u64::from(n.max(1)),
        FailSchedule::Random { seed, one_in } => {
            let mut x = if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            };
            (0..calls)
                .filter(|_| {
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
                        .is_multiple_of(u64::from(one_in.max(1)))
                })
                .count() as u64
        }
        FailSchedule::After { skip, count } => {
            calls.saturating_sub(u64::from(skip)).min(u64::from(count))
        }
        _ => unreachable!("a schedule this test does not use"),
    }
}

fn eio() -> DaxError {
    DaxError::Io {
        what: "injected device failure",
    }
}

fn iomap_err(h: IomapHook) -> DaxError {
    match h {
        IomapHook::End => DaxError::Io {
            what: "injected iomap_end failure",
        },
        _ => DaxError::NoSpace {
            what: "injected iomap_begin failure",
        },
    }
}

// ---- the workload ----

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
    Sync,
    /// A store through the simulated page table: one page at most.
    SimStore {
        f: usize,
        pos: u64,
        len: u64,
        seed: u8,
    },
    SimLoad {
        f: usize,
        pos: u64,
        len: u64,
    },
    /// A store through a real mapping (`MmuMapping::store`): up to three pages.
    RealStore {
        f: usize,
        pos: u64,
        len: u64,
        seed: u8,
    },
    RealLoad {
        f: usize,
        pos: u64,
        len: u64,
    },
    Msync {
        f: usize,
    },
    /// Poisons one sector of a written block of the file, if it has one there.
    Poison {
        f: usize,
        pos: u64,
    },
    /// Poisons the first sector of file block `fb` (which must be written).
    PoisonPage {
        f: usize,
        fb: u64,
    },
    /// Writes whole pages over one of the last two pages poisoned (`which` picks), as an
    /// application repairing it would: the write goes through `recovery_write`.
    Rewrite {
        which: u64,
        pages: u64,
        seed: u8,
    },
}

fn gen_op(rng: &mut Rng) -> Op {
    let f = rng.below(FILES as u64) as usize;
    let seed = rng.next() as u8;
    match rng.below(45) {
        0..=7 => Op::Write {
            f,
            pos: rng.offset(MAX_OFF),
            len: rng.length(),
            seed,
        },
        8..=10 => Op::Read {
            f,
            pos: rng.offset(MAX_OFF),
            len: rng.length(),
        },
        11..=12 => Op::Truncate {
            f,
            size: rng.offset(MAX_OFF),
        },
        13..=17 => Op::Falloc {
            f,
            mode: rng.below(7) as u8,
            pos: rng.offset(MAX_OFF),
            len: rng.length(),
        },
        18..=20 => {
            let most = if rng.chance(4) { 600 } else { 40 };
            Op::Reflink {
                src: f,
                dst: rng.below(FILES as u64) as usize,
                src_blk: rng.below(MAX_OFF / B),
                dst_blk: rng.below(MAX_OFF / B),
                blocks: 1 + rng.below(most),
            }
        }
        21..=22 => Op::Fsync { f },
        23 => Op::Sync,
        24..=27 => Op::SimStore {
            f,
            pos: rng.offset(MAX_OFF),
            len: 1 + rng.below(B),
            seed,
        },
        28..=29 => Op::SimLoad {
            f,
            pos: rng.offset(MAX_OFF),
            len: 1 + rng.below(B),
        },
        30..=33 => Op::RealStore {
            f,
            pos: rng.offset(MAX_OFF),
            len: 1 + rng.below(3 * B),
            seed,
        },
        34..=35 => Op::RealLoad {
            f,
            pos: rng.offset(MAX_OFF),
            len: 1 + rng.below(3 * B),
        },
        36 => Op::Msync { f },
        37..=39 => Op::Poison {
            f,
            pos: rng.offset(MAX_OFF),
        },
        _ => Op::Rewrite {
            which: rng.next(),
            pages: 1 + rng.below(2),
            seed,
        },
    }
}

/// `len` bytes for `seed`, never 0 (so a zeroed byte is never taken for data): a
/// 256-byte period, tiled with copies (a debug build's per-byte loops are slow).
fn data(len: u64, seed: u8) -> Vec<u8> {
    let period: Vec<u8> = (0..=255u8)
        .map(|i| i.wrapping_mul(131).wrapping_add(seed) | 1)
        .collect();
    let mut v = vec![0u8; len as usize];
    for chunk in v.chunks_mut(256) {
        chunk.copy_from_slice(&period[..chunk.len()]);
    }
    v
}

/// `old` with `bytes` written at `pos` (zeros fill a gap past its end).
fn written(old: &[u8], pos: u64, bytes: &[u8]) -> Vec<u8> {
    let end = pos as usize + bytes.len();
    let mut v = resized(old, old.len().max(end) as u64);
    v[pos as usize..end].copy_from_slice(bytes);
    v
}

/// `old` with `pos .. end` (clipped to its size) zeroed.
fn zeroed(old: &[u8], pos: u64, end: u64) -> Vec<u8> {
    let mut v = old.to_vec();
    let stop = (end as usize).min(v.len());
    if (pos as usize) < stop {
        v[pos as usize..stop].fill(0);
    }
    v
}

/// `old` cut or zero-extended to `size` bytes (zeroed allocation and one copy: a
/// debug build's `resize` moves a byte at a time).
fn resized(old: &[u8], size: u64) -> Vec<u8> {
    let mut v = vec![0u8; size as usize];
    let keep = old.len().min(v.len());
    v[..keep].copy_from_slice(&old[..keep]);
    v
}

/// What a file may look like after an operation.
enum Expect {
    /// Exactly this (a completion).
    Exact(Vec<u8>),
    /// The old or the new size, and each byte the old or the new value (an error).
    Either(Vec<u8>, Vec<u8>),
}

/// The outcome of an operation, for the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Done,
    Short,
    Error(i32),
    Skipped,
}

/// Counts over all runs.
#[derive(Default)]
struct Figures {
    runs: u64,
    ops: u64,
    by_outcome: BTreeMap<(&'static str, Outcome), u64>,
    /// Injected failures per target, replayed from the schedules.
    injected: BTreeMap<String, u64>,
    calls: BTreeMap<String, u64>,
    reported_at_end: u64,
}

struct World {
    spec: RunSpec,
    /// What a failure message names: the run (`DAX_INJECT_ONLY=...`) or the sweep case.
    label: String,
    dev: Dev,
    fs: Option<TestFs>,
    inos: Vec<Ino>,
    model: Vec<Vec<u8>>,
    sim_pt: Arc<SimPageTable>,
    sim: Vec<Arc<MappedVma>>,
    real: Vec<MmuMapping>,
    /// Per file: the handle fsync operations use, and one opened at the start that
    /// only the final check uses, with the mapping cursor sampled with it.
    fsync_handles: Vec<FileHandle>,
    end_handles: Vec<FileHandle>,
    cursors: Vec<u64>,
    /// Device byte ranges poisoned, healed before the final read-back.
    poisoned: Vec<u64>,
    /// (file, file block) of each poisoning.
    poisoned_pages: Vec<(usize, u64)>,
    /// Any fsync, sync or msync failed.
    sync_failed: bool,
    /// Files whose own fsync failed.
    fsync_failed: Vec<bool>,
    /// (schedule, calls before) per armed device operation and hook.
    armed_dev: Vec<(DevOp, FailSchedule, u64)>,
    armed_iomap: Vec<(IomapHook, FailSchedule, u64)>,
    step: usize,
}

fn name(f: usize) -> String {
    format!("f{f}")
}

impl World {
    fn new(spec: RunSpec) -> World {
        let dev: Dev = MemDevice::builder().size(DEV_SIZE).build().unwrap();
        let fs = TestFs::mkfs(dev.clone()).unwrap();
        let inos: Vec<Ino> = (0..FILES).map(|f| fs.create(&name(f)).unwrap()).collect();
        let sim_pt = Arc::new(SimPageTable::new());
        let sim = inos
            .iter()
            .enumerate()
            .map(|(f, &ino)| {
                let vma = Vma::new(SIM_BASE + f as u64 * MAP_SLOT, MAP_LEN, 0)
                    .unwrap()
                    .shared(true)
                    .writable(true)
                    .huge(true);
                fs.mmap(ino, vma, sim_pt.clone()).unwrap()
            })
            .collect();
        let real = inos
            .iter()
            .map(|&ino| {
                fs.mmap_real(ino, 0, MAP_LEN, MapOptions::new().writable(true))
                    .unwrap()
            })
            .collect();
        let fsync_handles = inos.iter().map(|&i| fs.open_file(i).unwrap()).collect();
        let end_handles = inos.iter().map(|&i| fs.open_file(i).unwrap()).collect();
        let cursors = inos
            .iter()
            .map(|&i| fs.inode(i).unwrap().dax_mapping().sample_wb_err())
            .collect();
        World {
            spec,
            label: format!("run {spec} (DAX_INJECT_ONLY={spec})"),
            dev,
            fs: Some(fs),
            inos,
            model: vec![Vec::new(); FILES],
            sim_pt,
            sim,
            real,
            fsync_handles,
            end_handles,
            cursors,
            poisoned: Vec::new(),
            poisoned_pages: Vec::new(),
            sync_failed: false,
            fsync_failed: vec![false; FILES],
            armed_dev: Vec::new(),
            armed_iomap: Vec::new(),
            step: 0,
        }
    }

    fn fs(&self) -> &TestFs {
        self.fs.as_ref().expect("mounted")
    }

    fn ctx(&self) -> String {
        format!("{}, op {}", self.label, self.step)
    }

    /// Runs `op` and every check after it; returns what it was and how it ended.
    fn exec(&mut self, op: &Op) -> (&'static str, Outcome) {
        let (expects, what, out) = self.apply(op);
        let touched: Vec<usize> = expects.iter().map(|(f, _)| *f).collect();
        for (f, e) in &expects {
            self.check_file(*f, e);
        }
        for f in 0..FILES {
            if !touched.contains(&f) {
                self.check_unchanged(f);
            }
        }
        self.check_invariants();
        (what, out)
    }

    /// Arms one injection: `target` (a single operation or hook) on `schedule`.
    fn arm_one(&mut self, target: Target, schedule: FailSchedule) {
        match target {
            Target::Dev(op) => {
                let before = self.dev.driver().calls(op);
                self.dev.driver().inject(op, schedule, eio());
                self.armed_dev.push((op, schedule, before));
            }
            Target::Iomap(h) => {
                let before = self.fs().iomap_calls(h);
                self.fs().inject_iomap(h, schedule, iomap_err(h));
                self.armed_iomap.push((h, schedule, before));
            }
            Target::All => unreachable!("one target at a time"),
        }
    }

    /// Calls of `target` so far.
    fn calls(&self, target: Target) -> u64 {
        match target {
            Target::Dev(op) => self.dev.driver().calls(op),
            Target::Iomap(h) => self.fs().iomap_calls(h),
            Target::All => unreachable!("one target at a time"),
        }
    }

    /// Arms the run's injections, with schedules drawn from `rng`.
    fn arm(&mut self, rng: &mut Rng) {
        let kind = self.spec.kind;
        let (devs, hooks): (Vec<DevOp>, Vec<IomapHook>) = match self.spec.target {
            Target::Dev(op) => (vec![op], vec![]),
            Target::Iomap(h) => (vec![], vec![h]),
            Target::All => (DEV_OPS.to_vec(), HOOKS.to_vec()),
        };
        for op in devs {
            let s = schedule(kind, op == DevOp::RecoveryWrite, rng);
            let before = self.dev.driver().calls(op);
            self.dev.driver().inject(op, s, eio());
            self.armed_dev.push((op, s, before));
        }
        for h in hooks {
            let s = schedule(kind, false, rng);
            let before = self.fs().iomap_calls(h);
            self.fs().inject_iomap(h, s, iomap_err(h));
            self.armed_iomap.push((h, s, before));
        }
    }

    /// Turns injection off and adds what it did to the figures.
    fn disarm(&mut self, fig: &mut Figures) {
        self.dev.driver().clear_injections();
        self.fs().clear_iomap_injections();
        for (op, s, before) in std::mem::take(&mut self.armed_dev) {
            let calls = self.dev.driver().calls(op) - before;
            *fig.calls.entry(format!("{op:?}")).or_default() += calls;
            *fig.injected.entry(format!("{op:?}")).or_default() += failed_calls(s, calls);
        }
        for (h, s, before) in std::mem::take(&mut self.armed_iomap) {
            let calls = self.fs().iomap_calls(h) - before;
            let k = format!("{}", Target::Iomap(h));
            *fig.calls.entry(k.clone()).or_default() += calls;
            *fig.injected.entry(k).or_default() += failed_calls(s, calls);
        }
    }

    /// Runs `op`; returns what each file may now be, and the outcome.
    fn apply(&mut self, op: &Op) -> (Vec<(usize, Expect)>, &'static str, Outcome) {
        let fs = self.fs.as_ref().unwrap();
        let done = |short: bool| if short { Outcome::Short } else { Outcome::Done };
        match *op {
            Op::Write { f, pos, len, seed } => {
                let d = data(len, seed);
                let old = &self.model[f];
                let r = fs.write(self.inos[f], pos, &d);
                let e = match &r {
                    Ok(n) => Expect::Exact(written(old, pos, &d[..*n])),
                    Err(_) => Expect::Either(old.clone(), written(old, pos, &d)),
                };
                let o = match r {
                    Ok(n) => done((n as u64) < len),
                    Err(e) => Outcome::Error(e.errno()),
                };
                (vec![(f, e)], "write", o)
            }
            Op::Read { f, pos, len } => {
                let mut buf = vec![0u8; len as usize];
                buf.fill(0xEE);
                let r = fs.read(self.inos[f], pos, &mut buf);
                let m = &self.model[f];
                let want = m.len().saturating_sub(pos as usize).min(len as usize);
                let o = match r {
                    Ok(n) => {
                        assert!(
                            n <= want,
                            "{}: read {n} bytes, the file has {want}",
                            self.ctx()
                        );
                        assert!(
                            n == 0 || buf[..n] == m[pos as usize..pos as usize + n],
                            "{}: read data differs from the model",
                            self.ctx()
                        );
                        done(n < want)
                    }
                    Err(e) => Outcome::Error(e.errno()),
                };
                (vec![], "read", o)
            }
            Op::Truncate { f, size } => {
                let old = &self.model[f];
                let new = resized(old, size);
                let r = fs.truncate(self.inos[f], size);
                self.outcome_of(f, old.clone(), new, r, "truncate")
            }
            Op::Falloc { f, mode, pos, len } => {
                let old = self.model[f].clone();
                let end = pos + len;
                let grow = |v: &[u8]| {
                    if (v.len() as u64) < end {
                        resized(v, end)
                    } else {
                        v.to_vec()
                    }
                };
                let (m, new, what) = match mode {
                    0 => (FallocMode::empty(), grow(&old), "fallocate"),
                    1 => (FallocMode::KEEP_SIZE, old.clone(), "fallocate keep-size"),
                    2 => (
                        FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
                        zeroed(&old, pos, end),
                        "punch hole",
                    ),
                    3 => (
                        FallocMode::ZERO_RANGE,
                        zeroed(&grow(&old), pos, end),
                        "zero range",
                    ),
                    4 => (
                        FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE,
                        zeroed(&old, pos, end),
                        "zero range keep-size",
                    ),
                    5 => (FallocMode::UNSHARE_RANGE, grow(&old), "unshare"),
                    _ => (
                        FallocMode::UNSHARE_RANGE | FallocMode::KEEP_SIZE,
                        old.clone(),
                        "unshare keep-size",
                    ),
                };
                let r = fs.fallocate(self.inos[f], m, pos, len);
                self.outcome_of(f, old, new, r, what)
            }
            Op::Reflink {
                src,
                dst,
                src_blk,
                dst_blk,
                blocks,
            } => {
                let (so, d_o, len) = (src_blk * B, dst_blk * B, blocks * B);
                if src == dst || so + len > self.model[src].len() as u64 {
                    return (vec![], "reflink", Outcome::Skipped);
                }
                let old = self.model[dst].clone();
                let bytes = self.model[src][so as usize..(so + len) as usize].to_vec();
                let new = written(&old, d_o, &bytes);
                let r = fs.reflink(self.inos[src], so, self.inos[dst], d_o, len);
                if let Ok(n) = r {
                    assert_eq!(n, len, "{}: reflink length", self.ctx());
                }
                self.outcome_of(dst, old, new, r.map(|_| ()), "reflink")
            }
            Op::Fsync { f } => {
                let r = fs.fsync_file(&self.fsync_handles[f]);
                if r.is_err() {
                    self.sync_failed = true;
                    self.fsync_failed[f] = true;
                }
                (vec![], "fsync", outcome(&r))
            }
            Op::Sync => {
                let r = fs.sync();
                self.sync_failed |= r.is_err();
                (vec![], "sync", outcome(&r))
            }
            Op::SimStore { f, pos, len, seed } => {
                // One page, inside EOF (stores past EOF in the last page are not
                // part of the file's bytes).
                let len = len.min(B - pos % B);
                let old = self.model[f].clone();
                if pos + len > old.len() as u64 || pos + len > MAP_LEN {
                    return (vec![], "sim store", Outcome::Skipped);
                }
                let d = data(len, seed);
                let addr = SIM_BASE + f as u64 * MAP_SLOT + pos;
                let r = self.sim_pt.write(&self.sim[f], addr, &d);
                let new = written(&old, pos, &d);
                match r {
                    Ok(()) => (vec![(f, Expect::Exact(new))], "sim store", Outcome::Done),
                    Err(v) => (
                        vec![(f, Expect::Either(old, new))],
                        "sim store",
                        Outcome::Error(v.bits() as i32),
                    ),
                }
            }
            Op::SimLoad { f, pos, len } => {
                let len = len.min(B - pos % B);
                let m = &self.model[f];
                if pos + len > m.len() as u64 || pos + len > MAP_LEN {
                    return (vec![], "sim load", Outcome::Skipped);
                }
                let mut buf = vec![0u8; len as usize];
                let addr = SIM_BASE + f as u64 * MAP_SLOT + pos;
                let o = match self.sim_pt.read(&self.sim[f], addr, &mut buf) {
                    Ok(()) => {
                        assert!(
                            buf[..] == m[pos as usize..(pos + len) as usize],
                            "{}: a load through the simulated mapping differs",
                            self.ctx()
                        );
                        Outcome::Done
                    }
                    Err(v) => Outcome::Error(v.bits() as i32),
                };
                (vec![], "sim load", o)
            }
            Op::RealStore { f, pos, len, seed } => {
                let old = self.model[f].clone();
                if pos + len > old.len() as u64 || pos + len > MAP_LEN {
                    return (vec![], "mmu store", Outcome::Skipped);
                }
                let d = data(len, seed);
                // `store` faults every page in first, then stores: a fault that
                // fails stores nothing.
                match self.real[f].store(pos as usize, &d) {
                    Ok(()) => (
                        vec![(f, Expect::Exact(written(&old, pos, &d)))],
                        "mmu store",
                        Outcome::Done,
                    ),
                    Err(v) => (
                        vec![(f, Expect::Exact(old))],
                        "mmu store",
                        Outcome::Error(v.bits() as i32),
                    ),
                }
            }
            Op::RealLoad { f, pos, len } => {
                let m = &self.model[f];
                if pos + len > m.len() as u64 || pos + len > MAP_LEN {
                    return (vec![], "mmu load", Outcome::Skipped);
                }
                let mut buf = vec![0u8; len as usize];
                let o = match self.real[f].load(pos as usize, &mut buf) {
                    Ok(()) => {
                        assert!(
                            buf[..] == m[pos as usize..(pos + len) as usize],
                            "{}: a load through the real mapping differs",
                            self.ctx()
                        );
                        Outcome::Done
                    }
                    Err(v) => Outcome::Error(v.bits() as i32),
                };
                (vec![], "mmu load", o)
            }
            Op::Msync { f } => {
                let r = self.real[f].msync(0, MAP_LEN as usize);
                self.sync_failed |= r.is_err();
                (vec![], "msync", outcome(&r))
            }
            Op::Poison { f, pos } => {
                // A sector of a written block of the file: `pos` picks which.
                let ext: Vec<ExtentInfo> = fs
                    .extents(self.inos[f])
                    .unwrap()
                    .into_iter()
                    .filter(|e| !e.unwritten && e.file_block * B < self.model[f].len() as u64)
                    .collect();
                let total: u64 = ext.iter().map(|e| e.len).sum();
                if total == 0 {
                    return (vec![], "poison", Outcome::Skipped);
                }
                let mut k = (pos / 512) % total;
                let e = ext
                    .iter()
                    .find(|e| {
                        let hit = k < e.len;
                        if !hit {
                            k -= e.len;
                        }
                        hit
                    })
                    .unwrap();
                let fb = e.file_block + k;
                let at = (e.dev_block + k) * B + (pos % 8) * 512;
                self.dev.driver().poison(at, 512).unwrap();
                self.poisoned.push(at);
                self.poisoned_pages.push((f, fb));
                (vec![], "poison", Outcome::Done)
            }
            Op::PoisonPage { f, fb } => {
                let e = fs
                    .extents(self.inos[f])
                    .unwrap()
                    .into_iter()
                    .find(|e| !e.unwritten && fb >= e.file_block && fb < e.file_block + e.len)
                    .expect("PoisonPage names a written block");
                let at = (e.dev_block + fb - e.file_block) * B;
                self.dev.driver().poison(at, 512).unwrap();
                self.poisoned.push(at);
                self.poisoned_pages.push((f, fb));
                (vec![], "poison", Outcome::Done)
            }
            Op::Rewrite { which, pages, seed } => {
                if self.poisoned_pages.is_empty() {
                    return (vec![], "rewrite poisoned", Outcome::Skipped);
                }
                // One of the last two poisoned (earlier ones are likely rewritten).
                let n = self.poisoned_pages.len();
                let (f, fb) = self.poisoned_pages[n - 1 - (which % n.min(2) as u64) as usize];
                let (pos, len) = (fb * B, pages * B);
                let d = data(len, seed);
                let old = self.model[f].clone();
                let r = fs.write(self.inos[f], pos, &d);
                let (e, o) = match r {
                    Ok(n) => (
                        Expect::Exact(written(&old, pos, &d[..n])),
                        done((n as u64) < len),
                    ),
                    Err(e) => (
                        Expect::Either(old.clone(), written(&old, pos, &d)),
                        Outcome::Error(e.errno()),
                    ),
                };
                (vec![(f, e)], "rewrite poisoned", o)
            }
        }
    }

    fn outcome_of(
        &self,
        f: usize,
        old: Vec<u8>,
        new: Vec<u8>,
        r: Result<(), DaxError>,
        what: &'static str,
    ) -> (Vec<(usize, Expect)>, &'static str, Outcome) {
        match r {
            Ok(()) => (vec![(f, Expect::Exact(new))], what, Outcome::Done),
            Err(e) => (
                vec![(f, Expect::Either(old, new))],
                what,
                Outcome::Error(e.errno()),
            ),
        }
    }

    /// The file's bytes as the device holds them, through its extent map (holes and
    /// unwritten blocks read as zeros), without any device operation.
    fn disk_view(&self, f: usize) -> Vec<u8> {
        let fs = self.fs();
        let size = fs.stat(self.inos[f]).unwrap().size as usize;
        let mut v = vec![0u8; size];
        for e in fs.extents(self.inos[f]).unwrap() {
            if e.unwritten {
                continue;
            }
            let start = (e.file_block * B) as usize;
            if start >= size {
                continue;
            }
            let end = (((e.file_block + e.len) * B) as usize).min(size);
            self.dev
                .driver()
                .peek(e.dev_block * B, &mut v[start..end])
                .unwrap();
        }
        v
    }

    /// Checks that file `f` still equals the model, extent by extent through a small
    /// buffer (the same check as [`World::check_file`] with the model expected,
    /// without a copy of the whole file).
    fn check_unchanged(&self, f: usize) {
        static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
        let fs = self.fs();
        let m = &self.model[f];
        let size = fs.stat(self.inos[f]).unwrap().size as usize;
        let changed = |what: String| -> ! {
            let got = self.disk_view(f);
            panic!(
                "{}: file {f}, which the operation did not touch, changed ({what}): {}",
                self.ctx(),
                first_diff(m, &got)
            )
        };
        if size != m.len() {
            changed(format!("size {size}"));
        }
        let mut buf = vec![0u8; 1 << 16];
        let mut at = 0usize; // bytes checked so far
        let zeros_to = |at: &mut usize, end: usize| {
            while *at < end {
                let n = (end - *at).min(ZEROS.len());
                if m[*at..*at + n] != ZEROS[..n] {
                    changed(format!("a hole or unwritten range near {at}"));
                }
                *at += n;
            }
        };
        for e in fs.extents(self.inos[f]).unwrap() {
            let start = ((e.file_block * B) as usize).min(size);
            let end = (((e.file_block + e.len) * B) as usize).min(size);
            zeros_to(&mut at, start);
            if e.unwritten {
                zeros_to(&mut at, end);
                continue;
            }
            while at < end {
                let n = (end - at).min(buf.len());
                let dev = e.dev_block * B + (at - e.file_block as usize * B as usize) as u64;
                self.dev.driver().peek(dev, &mut buf[..n]).unwrap();
                if buf[..n] != m[at..at + n] {
                    changed(format!("written data near {at}"));
                }
                at += n;
            }
        }
        zeros_to(&mut at, size);
    }

    /// Checks file `f` against `expect`, then takes what is there as the model.
    fn check_file(&mut self, f: usize, expect: &Expect) {
        let got = self.disk_view(f);
        match expect {
            Expect::Exact(m) => {
                if got != *m {
                    panic!(
                        "{}: file {f} differs from the model after a completion: {}",
                        self.ctx(),
                        first_diff(m, &got)
                    );
                }
            }
            Expect::Either(old, new) => {
                assert!(
                    got.len() == old.len() || got.len() == new.len(),
                    "{}: file {f} is {} bytes after an error, neither the old {} nor the new {}",
                    self.ctx(),
                    got.len(),
                    old.len(),
                    new.len()
                );
                // Most bytes are equal to one side: compare in blocks, bytes only where
                // neither block matches.
                for (i, chunk) in got.chunks(B as usize).enumerate() {
                    let at = i * B as usize;
                    let (o, n) = (side(old, at, chunk.len()), side(new, at, chunk.len()));
                    if chunk == &*o || chunk == &*n {
                        continue;
                    }
                    for (j, &x) in chunk.iter().enumerate() {
                        assert!(
                            x == o[j] || x == n[j],
                            "{}: file {f} byte {} is {x:#04x} after an error, neither the \
                             old {:#04x} nor the new {:#04x}",
                            self.ctx(),
                            at + j,
                            o[j],
                            n[j]
                        );
                    }
                }
            }
        }
        self.model[f] = got;
    }

    /// The invariants that hold after every operation.
    fn check_invariants(&self) {
        let fs = self.fs();
        let held = fs.held_locks();
        assert!(held.is_empty(), "{}: locks left held: {held:?}", self.ctx());
        for f in 0..FILES {
            self.check_mappings(f);
        }
    }

    /// No entry or page-table slot of file `f` points at a block the file does not
    /// have written there.
    fn check_mappings(&self, f: usize) {
        let fs = self.fs();
        let ino = self.inos[f];
        let size = fs.stat(ino).unwrap().size;
        let eof = size.div_ceil(B);
        let extents: BTreeMap<u64, ExtentInfo> = fs
            .extents(ino)
            .unwrap()
            .into_iter()
            .map(|e| (e.file_block, e))
            .collect();
        // The device block file block `idx` has written there, if any.
        let written = |idx: u64| {
            extents
                .range(..=idx)
                .next_back()
                .map(|(_, e)| *e)
                .filter(|e| idx < e.file_block + e.len && !e.unwritten)
                .map(|e| e.dev_block + (idx - e.file_block))
        };
        let mapping = self.sim[f].mapping().clone();
        let index = mapping.index();
        for e in index.entries() {
            let n = e.entry.pages();
            assert!(
                !e.locked,
                "{}: file {f} entry {e:?} left locked",
                self.ctx()
            );
            assert!(
                e.start + n <= eof,
                "{}: file {f} entry {e:?} reaches past EOF page {eof}",
                self.ctx()
            );
            for i in 0..n {
                match e.entry.kind {
                    EntryKind::Real => {
                        let want = e.pgoff + i;
                        assert_eq!(
                            written(e.start + i),
                            Some(want),
                            "{}: file {f} REAL entry {e:?} page {} is not the file's written \
                             block there",
                            self.ctx(),
                            e.start + i
                        );
                        assert!(
                            fs.block_refcount(want) >= 1,
                            "{}: file {f} entry {e:?} maps freed block {want}",
                            self.ctx()
                        );
                    }
                    EntryKind::Zero => assert!(
                        written(e.start + i).is_none(),
                        "{}: file {f} ZERO entry {e:?} over written block at page {}",
                        self.ctx(),
                        e.start + i
                    ),
                    EntryKind::Empty => {}
                }
            }
        }
        let entries: BTreeMap<u64, EntryInfo> =
            index.entries().into_iter().map(|e| (e.start, e)).collect();
        let covering = |i: u64| {
            entries
                .range(..=i)
                .next_back()
                .map(|(_, e)| *e)
                .filter(|e| i < e.start + e.entry.pages())
        };
        // The simulated page table lists what it holds.
        let sim_base = SIM_BASE + f as u64 * MAP_SLOT;
        let in_sim = |a: u64| a >= sim_base && a < sim_base + MAP_LEN;
        for (addr, slot) in self.sim_pt.huge() {
            if in_sim(addr) {
                self.check_pmd(f, "simulated", (addr - sim_base) / B, slot, eof, &covering);
            }
        }
        for (addr, pte) in self.sim_pt.ptes() {
            if in_sim(addr) {
                self.check_pte(f, "simulated", (addr - sim_base) / B, pte, eof, &covering);
            }
        }
        // The real one is asked slot by slot.
        let real = &self.real[f];
        let pt = real.vma().page_table();
        let base = real.as_ptr() as u64;
        for block in 0..MAP_LEN / PMD {
            let addr = base + block * PMD;
            let idx = block * PMD / B;
            match pt.pmd(addr) {
                PmdSlot::Empty => {}
                PmdSlot::Table => {
                    for p in 0..PMD / B {
                        if let Some(pte) = pt.pte(addr + p * B) {
                            self.check_pte(f, "real", idx + p, pte, eof, &covering);
                        }
                    }
                }
                slot => self.check_pmd(f, "real", idx, slot, eof, &covering),
            }
        }
    }

    /// A huge slot showing file page `idx` (2 MiB aligned) is backed by a PMD entry of
    /// file `f` that shows the same thing.
    fn check_pmd(
        &self,
        f: usize,
        what: &str,
        idx: u64,
        slot: PmdSlot,
        eof: u64,
        covering: &dyn Fn(u64) -> Option<EntryInfo>,
    ) {
        let e = covering(idx);
        assert!(
            idx + PMD / B <= eof,
            "{}: file {f} {what} {slot:?} at page {idx} reaches past EOF page {eof}",
            self.ctx()
        );
        let ok = match slot {
            PmdSlot::Huge { pfn, .. } => e.is_some_and(|e| {
                e.entry.kind == EntryKind::Real
                    && e.entry.order == 9
                    && e.start == idx
                    && e.entry.pfn == pfn
            }),
            PmdSlot::HugeZero => {
                e.is_some_and(|e| e.entry.kind == EntryKind::Zero && e.entry.order == 9)
            }
            _ => true,
        };
        assert!(
            ok,
            "{}: file {f} {what} {slot:?} at page {idx} has entry {e:?}",
            self.ctx()
        );
    }

    /// A PTE showing file page `i` is backed by an entry of file `f` that shows the
    /// same thing.
    fn check_pte(
        &self,
        f: usize,
        what: &str,
        i: u64,
        pte: Pte,
        eof: u64,
        covering: &dyn Fn(u64) -> Option<EntryInfo>,
    ) {
        assert!(
            i < eof,
            "{}: file {f} {what} page {i} mapped past EOF page {eof}: {pte:?}",
            self.ctx()
        );
        let e = covering(i);
        let ok = match pte {
            Pte::Page { pfn, .. } => e.is_some_and(|e| {
                e.entry.kind == EntryKind::Real && e.entry.pfn.add(i - e.start) == pfn
            }),
            Pte::Zero => e.is_some_and(|e| e.entry.kind == EntryKind::Zero),
            Pte::Private { .. } => false,
        };
        assert!(
            ok,
            "{}: file {f} {what} {pte:?} at page {i} has entry {e:?}",
            self.ctx()
        );
    }

    /// Injection off: errseq answers, then unmount (or sync and crash), mount again
    /// and read everything back through the engine.
    fn finish(mut self, fig: &mut Figures) {
        self.disarm(fig);
        for &at in &self.poisoned {
            let d = self.dev.driver();
            d.clear_poison(at, 512).unwrap();
            d.badblocks().clear(at / 512, 1);
        }
        let fs = self.fs.take().unwrap();
        let mut any_recorded = false;
        for f in 0..FILES {
            let mapping = self.sim[f].mapping().clone();
            let recorded = mapping.check_wb_err(self.cursors[f]);
            any_recorded |= recorded;
            if self.fsync_failed[f] {
                assert!(
                    recorded,
                    "{}: file {f}'s fsync failed but recorded nothing",
                    self.ctx()
                );
            }
            // The handle opened at the start: told once, exactly when something was
            // recorded for its file.
            let r = fs.fsync_file(&self.end_handles[f]);
            assert_eq!(
                r.is_err(),
                recorded,
                "{}: file {f}: fsync through a handle open all run answered {r:?}, \
                 recorded since it opened: {recorded}",
                self.ctx()
            );
            fig.reported_at_end += u64::from(r.is_err());
            fs.fsync_file(&self.end_handles[f])
                .unwrap_or_else(|e| panic!("{}: file {f}: second fsync: {e}", self.ctx()));
        }
        assert!(
            any_recorded || !self.sync_failed,
            "{}: an fsync, sync or msync failed and no file recorded an error",
            self.ctx()
        );
        assert!(
            !any_recorded || self.sync_failed,
            "{}: an error was recorded but no fsync, sync or msync failed",
            self.ctx()
        );
        // Everything that holds the mount goes before it is mounted again.
        self.sim.clear();
        self.real.clear();
        self.fsync_handles.clear();
        self.end_handles.clear();
        let crash = self.spec.seed % 2 == 1;
        if crash {
            fs.sync().unwrap();
            drop(fs);
        } else {
            fs.unmount().unwrap();
        }
        let fs = TestFs::open(self.dev.clone()).unwrap();
        for f in 0..FILES {
            let ino = fs.lookup(&name(f)).unwrap();
            assert_eq!(
                fs.stat(ino).unwrap().size,
                self.model[f].len() as u64,
                "{}: file {f} size after {}",
                self.ctx(),
                if crash { "sync and a crash" } else { "unmount" }
            );
            let mut back = vec![0u8; self.model[f].len()];
            back.fill(0xEE);
            assert_eq!(fs.read(ino, 0, &mut back).unwrap(), back.len());
            if back != self.model[f] {
                panic!(
                    "{}: file {f} read back after a remount differs: {}",
                    self.ctx(),
                    first_diff(&self.model[f], &back)
                );
            }
        }
        assert!(fs.held_locks().is_empty());
    }
}

/// `v[at .. at + len]`, with zeros past the end of `v`.
fn side(v: &[u8], at: usize, len: usize) -> Cow<'_, [u8]> {
    match v.get(at..at + len) {
        Some(s) => Cow::Borrowed(s),
        None => {
            let mut p = v.get(at..).unwrap_or(&[]).to_vec();
            p.resize(len, 0);
            Cow::Owned(p)
        }
    }
}

fn outcome(r: &Result<(), DaxError>) -> Outcome {
    match r {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Error(e.errno()),
    }
}

fn first_diff(want: &[u8], got: &[u8]) -> String {
    if want.len() != got.len() {
        return format!("size {} instead of {}", got.len(), want.len());
    }
    let i = (0..want.len()).find(|&i| want[i] != got[i]).unwrap_or(0);
    let n = (0..want.len()).filter(|&i| want[i] != got[i]).count();
    format!(
        "{n} byte(s) differ, first at {i} (page {}): expected {:#04x}, found {:#04x}",
        i as u64 / B,
        want[i],
        got[i]
    )
}

/// One run: a fresh filesystem, the injections armed, `ops` operations each followed
/// by the checks, then the final checks.
fn run(spec: RunSpec, ops: u64, fig: &mut Figures) {
    let mut rng = Rng(spec.seed);
    let mut w = World::new(spec);
    // A few operations without injection first, so that files have data to lose.
    let mut warm = Rng(spec.seed ^ 0x5555);
    for _ in 0..8 {
        let op = Op::Write {
            f: warm.below(FILES as u64) as usize,
            pos: warm.offset(MAX_OFF),
            len: warm.length(),
            seed: warm.next() as u8,
        };
        let (expects, _, _) = w.apply(&op);
        for (f, e) in expects {
            w.check_file(f, &e);
        }
    }
    w.arm(&mut rng);
    let trace = std::env::var_os("DAX_INJECT_TRACE").is_some();
    for step in 0..ops {
        w.step = step as usize;
        let op = gen_op(&mut rng);
        if trace {
            println!("op {step}: {op:?}");
        }
        let (what, out) = w.exec(&op);
        if trace {
            println!("    -> {what} {out:?}");
        }
        fig.ops += 1;
        *fig.by_outcome.entry((what, out)).or_default() += 1;
    }
    w.finish(fig);
    fig.runs += 1;
}

fn print_figures(fig: &Figures, seeds: u64, ops: u64, first: u64) {
    println!(
        "fault injection: {} runs ({} targets x 2 schedules x {seeds} seed(s) from {first}), \
         {ops} operations each, {} operations checked",
        fig.runs,
        TARGETS.len(),
        fig.ops
    );
    println!("calls while armed, and injected failures (replayed from the schedules):");
    for (k, calls) in &fig.calls {
        println!("  {k:>14}: {calls:>7} calls, {:>6} failed", fig.injected[k]);
    }
    let mut by_what: BTreeMap<&str, (u64, u64, u64, u64)> = BTreeMap::new();
    for (&(what, out), &n) in &fig.by_outcome {
        let e = by_what.entry(what).or_default();
        match out {
            Outcome::Done => e.0 += n,
            Outcome::Short => e.1 += n,
            Outcome::Error(_) => e.2 += n,
            Outcome::Skipped => e.3 += n,
        }
    }
    println!("operations: completed / short / error / not applicable:");
    for (what, (d, s, e, k)) in by_what {
        println!("  {what:>22}: {d:>6} {s:>6} {e:>6} {k:>6}");
    }
    println!(
        "handles open all run whose final fsync reported a recorded error: {}",
        fig.reported_at_end
    );
}

#[test]
#[ignore = "run in a child process by fault_injection_keeps_every_invariant"]
fn child_fault_injection() {
    let seeds = env_u64("DAX_INJECT_SEEDS", 1);
    let ops = env_u64("DAX_INJECT_OPS", 60);
    let first = env_u64("DAX_INJECT_SEED", 1);
    let only = std::env::var("DAX_INJECT_ONLY").ok();
    let mut fig = Figures::default();
    for target in TARGETS {
        for kind in [Kind::EveryNth, Kind::Random] {
            for s in 0..seeds {
                let spec = RunSpec {
                    target,
                    kind,
                    seed: first + s,
                };
                if only.as_ref().is_some_and(|o| *o != spec.to_string()) {
                    continue;
                }
                run(spec, ops, &mut fig);
            }
        }
    }
    assert!(fig.runs > 0, "DAX_INJECT_ONLY matched no run");
    print_figures(&fig, seeds, ops, first);
}

// ---- fail-nth: every single failure point of one operation ----

/// One operation under test after a setup: the sweep fails its `n`th call of each
/// target, for every `n` up to the calls it makes (the kernel's `fail-nth` method).
struct Scenario {
    name: &'static str,
    setup: Vec<Op>,
    op: Op,
}

fn w(f: usize, pos: u64, len: u64, seed: u8) -> Op {
    Op::Write { f, pos, len, seed }
}

/// f1's blocks 0..n shared into f0 at 0 (f0 and f1 written first).
fn shared_setup(n: u64) -> Vec<Op> {
    vec![
        w(0, 0, n * B, 1),
        w(1, 0, n * B, 2),
        Op::Reflink {
            src: 1,
            dst: 0,
            src_blk: 0,
            dst_blk: 0,
            blocks: n,
        },
    ]
}

fn scenarios() -> Vec<Scenario> {
    let mixed = vec![
        w(0, 0, 4 * B, 1),
        Op::Falloc {
            f: 0,
            mode: 1,
            pos: 8 * B,
            len: 4 * B,
        },
        w(1, 0, 4 * B, 2),
        Op::Reflink {
            src: 1,
            dst: 0,
            src_blk: 0,
            dst_blk: 12,
            blocks: 4,
        },
        Op::Truncate { f: 0, size: 20 * B },
    ];
    let big_shared = vec![
        Op::Truncate {
            f: 0,
            size: 2 * PMD,
        },
        w(1, 0, 2 * PMD, 3),
        Op::Reflink {
            src: 1,
            dst: 0,
            src_blk: PMD / B,
            dst_blk: PMD / B,
            blocks: PMD / B,
        },
    ];
    let with = |mut v: Vec<Op>, more: Vec<Op>| {
        v.extend(more);
        v
    };
    vec![
        Scenario {
            name: "write across written, hole, unwritten and shared blocks",
            setup: mixed.clone(),
            op: w(0, 2 * B + 100, 14 * B, 9),
        },
        Scenario {
            name: "copy-on-write write inside shared pages",
            setup: shared_setup(8),
            op: w(0, 3 * B + 7, 2 * B, 9),
        },
        Scenario {
            name: "truncate down into a shared block",
            setup: shared_setup(8),
            op: Op::Truncate {
                f: 0,
                size: 5 * B + 123,
            },
        },
        Scenario {
            name: "zero range with partial edges",
            setup: vec![w(0, 0, 16 * B, 1)],
            op: Op::Falloc {
                f: 0,
                mode: 3,
                pos: B + 5,
                len: 9 * B,
            },
        },
        Scenario {
            name: "punch hole with partial edges",
            setup: vec![w(0, 0, 16 * B, 1)],
            op: Op::Falloc {
                f: 0,
                mode: 2,
                pos: 2 * B - 1,
                len: 5 * B + 2,
            },
        },
        Scenario {
            name: "unshare a reflinked range",
            setup: shared_setup(8),
            op: Op::Falloc {
                f: 0,
                mode: 5,
                pos: 0,
                len: 8 * B,
            },
        },
        Scenario {
            name: "reflink over a mapped destination",
            setup: vec![
                w(0, 0, 8 * B, 1),
                Op::SimStore {
                    f: 0,
                    pos: B,
                    len: 10,
                    seed: 4,
                },
                w(1, 0, 8 * B, 2),
            ],
            op: Op::Reflink {
                src: 1,
                dst: 0,
                src_blk: 0,
                dst_blk: 0,
                blocks: 8,
            },
        },
        Scenario {
            name: "fsync with dirty mapped pages",
            setup: vec![
                w(0, 0, 4 * B, 1),
                Op::SimStore {
                    f: 0,
                    pos: 5,
                    len: 100,
                    seed: 4,
                },
                Op::RealStore {
                    f: 0,
                    pos: B + 3,
                    len: 2 * B,
                    seed: 5,
                },
            ],
            op: Op::Fsync { f: 0 },
        },
        Scenario {
            name: "sync with dirty mapped pages in two files",
            setup: vec![
                w(0, 0, 4 * B, 1),
                w(1, 0, 4 * B, 2),
                Op::SimStore {
                    f: 0,
                    pos: 5,
                    len: 100,
                    seed: 4,
                },
                Op::RealStore {
                    f: 1,
                    pos: B + 3,
                    len: 2 * B,
                    seed: 5,
                },
            ],
            op: Op::Sync,
        },
        Scenario {
            name: "msync of a real mapping",
            setup: vec![
                w(0, 0, 4 * B, 1),
                Op::RealStore {
                    f: 0,
                    pos: 3,
                    len: 3 * B,
                    seed: 5,
                },
            ],
            op: Op::Msync { f: 0 },
        },
        Scenario {
            name: "PTE write fault on a hole (simulated mapping)",
            setup: vec![Op::Truncate { f: 0, size: 8 * B }],
            op: Op::SimStore {
                f: 0,
                pos: 3 * B,
                len: 100,
                seed: 6,
            },
        },
        Scenario {
            name: "PMD write fault on a hole (simulated mapping)",
            setup: vec![Op::Truncate {
                f: 0,
                size: 2 * PMD,
            }],
            op: Op::SimStore {
                f: 0,
                pos: PMD + 5,
                len: 10,
                seed: 6,
            },
        },
        Scenario {
            name: "write fault on a hole mapped with the zero page",
            setup: vec![
                Op::Truncate { f: 0, size: 8 * B },
                Op::SimLoad {
                    f: 0,
                    pos: 3 * B,
                    len: 10,
                },
            ],
            op: Op::SimStore {
                f: 0,
                pos: 3 * B + 7,
                len: 100,
                seed: 6,
            },
        },
        Scenario {
            name: "write fault on a hole mapped with the huge zero page",
            setup: vec![
                Op::Truncate {
                    f: 0,
                    size: 2 * PMD,
                },
                Op::SimLoad {
                    f: 0,
                    pos: PMD + 5,
                    len: 10,
                },
            ],
            op: Op::SimStore {
                f: 0,
                pos: PMD + 5,
                len: 10,
                seed: 6,
            },
        },
        Scenario {
            name: "copy-on-write fault on a shared page (simulated mapping)",
            setup: shared_setup(8),
            op: Op::SimStore {
                f: 0,
                pos: 2 * B + 1,
                len: 50,
                seed: 6,
            },
        },
        Scenario {
            name: "copy-on-write PMD fault on a shared 2 MiB (real mapping)",
            setup: big_shared,
            op: Op::RealStore {
                f: 0,
                pos: PMD + 10,
                len: 100,
                seed: 7,
            },
        },
        Scenario {
            name: "whole-page write over a poisoned page (recovery write)",
            setup: vec![w(0, 0, 4 * B, 1), Op::PoisonPage { f: 0, fb: 1 }],
            op: w(0, B, 2 * B, 8),
        },
        Scenario {
            name: "read across written, hole, unwritten and shared blocks",
            setup: with(mixed, vec![]),
            op: Op::Read {
                f: 0,
                pos: 0,
                len: 20 * B,
            },
        },
    ]
}

/// The call numbers to fail, given that the operation makes `calls` calls: all of
/// them up to `dense`, then about 1.5 times apart, and always the last.
fn nth_points(calls: u64, dense: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (1..=calls.min(dense)).collect();
    let mut n = dense.max(1);
    while n < calls {
        n = (n * 3).div_ceil(2);
        if n < calls {
            v.push(n);
        }
    }
    if calls > 0 && v.last() != Some(&calls) {
        v.push(calls);
    }
    v
}

/// One case: scenario `sc`, its `n`th call of `target` fails. Returns the calls of
/// `target` the operation made.
fn fail_nth_case(sc: &Scenario, target: Target, n: u64, fig: &mut Figures) -> u64 {
    let spec = RunSpec {
        target,
        kind: Kind::EveryNth,
        seed: n,
    };
    let mut w = World::new(spec);
    w.label = format!("fail-nth: {} / {target} call {n}", sc.name);
    for op in &sc.setup {
        w.exec(op);
    }
    let before = w.calls(target);
    if n > 0 {
        w.arm_one(
            target,
            FailSchedule::After {
                skip: n as u32 - 1,
                count: 1,
            },
        );
    }
    w.step = 1;
    let (what, out) = w.exec(&sc.op);
    let calls = w.calls(target) - before;
    fig.ops += 1;
    *fig.by_outcome.entry((what, out)).or_default() += 1;
    w.finish(fig);
    fig.runs += 1;
    calls
}

#[test]
#[ignore = "run in a child process by fail_nth_keeps_every_invariant"]
fn child_fail_nth() {
    // Default: the first 3 calls and the last; DAX_FAIL_NTH_DENSE=N for the first N,
    // then about 1.5 times apart.
    let dense = env_u64("DAX_FAIL_NTH_DENSE", 3);
    let mut fig = Figures::default();
    let targets = [
        Target::Dev(DevOp::DirectAccess),
        Target::Dev(DevOp::ZeroPageRange),
        Target::Dev(DevOp::RecoveryWrite),
        Target::Dev(DevOp::Flush),
        Target::Iomap(IomapHook::Begin),
        Target::Iomap(IomapHook::End),
    ];
    let mut cases = 0u64;
    for sc in scenarios() {
        let mut line = format!("{:>58}:", sc.name);
        for target in targets {
            // A run without failure counts the calls.
            let calls = fail_nth_case(&sc, target, 0, &mut fig);
            let points = nth_points(calls, dense);
            for &n in &points {
                fail_nth_case(&sc, target, n, &mut fig);
            }
            cases += points.len() as u64;
            line += &format!(" {target} {}/{calls}", points.len());
        }
        println!("{line}");
    }
    println!(
        "fail-nth: {cases} single-failure cases over {} scenarios (failed/calls per target above)",
        scenarios().len()
    );
}

/// Runs the fail-nth sweep in a child process under a watchdog.
#[test]
fn fail_nth_keeps_every_invariant() {
    let limit = Duration::from_secs(env_u64("DAX_INJECT_TIMEOUT_SECS", 300));
    let run = run_child_watched("child_fail_nth", limit);
    let Some(status) = run.status else {
        panic!(
            "the fail-nth sweep hung: still running after {} s, killed. Its threads:\n{}\n{}",
            limit.as_secs(),
            run.hung_threads,
            run.output
        );
    };
    if let Some(sig) = status.signal() {
        panic!(
            "the fail-nth sweep died by {} ({sig}).\n{}",
            signal_name(sig),
            run.output
        );
    }
    assert!(
        status.success() && run.output.contains("1 passed"),
        "the fail-nth sweep failed ({status:?}):\n{}",
        run.output
    );
    println!("{}", run.output);
}

/// Runs the workload in a child process under a watchdog: a hang fails here and
/// prints the child's threads; a signal, a panic or a model mismatch prints its output.
#[test]
fn fault_injection_keeps_every_invariant() {
    let limit = Duration::from_secs(env_u64("DAX_INJECT_TIMEOUT_SECS", 300));
    let run = run_child_watched("child_fault_injection", limit);
    let Some(status) = run.status else {
        panic!(
            "the fault-injection workload hung: still running after {} s, killed. \
             Its threads:\n{}\n{}",
            limit.as_secs(),
            run.hung_threads,
            run.output
        );
    };
    if let Some(sig) = status.signal() {
        panic!(
            "the fault-injection workload died by {} ({sig}).\n{}",
            signal_name(sig),
            run.output
        );
    }
    assert!(
        status.success() && run.output.contains("1 passed"),
        "the fault-injection workload failed ({status:?}):\n{}",
        run.output
    );
    println!("{}", run.output);
}
