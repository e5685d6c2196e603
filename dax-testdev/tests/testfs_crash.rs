//! Crash consistency of TestFs at every flush point: a workload runs on a
//! [`MemDevice`] recording for power loss (`dax_testdev::power`, which documents the
//! crash model), then for every interval between two points and several subsets of
//! the lines written in it, the crash image is mounted on a fresh device and
//! compared with a model of what each fsync made durable.
//!
//! # The workload and its model
//!
//! The device is filled with pseudo-random bytes before mkfs, so that a crash that
//! exposes a block whose zeroing or data did not land shows bytes no model allows.
//! Operations (creates, mkdir, `write` through `dax_iomap_rw`, fallocate, punch,
//! zero range, truncate, reflink, rename, link, unlink, rmdir, chmod/chown, fsync,
//! sync, stores through a real MAP_SYNC mapping followed by the user's own
//! `persist_range` and a mark, plain shared-mapping stores, and fsyncs whose data or
//! commit flush fails) run on TestFs; the model keeps after each operation the tree,
//! the attributes and every file's bytes (fsx's shadow), and the attributes' times as
//! TestFs reported them (the clock is pinned to a new second per operation). The
//! workload also notes the points each operation made, the checkpoint generations
//! it wrote and what it promised. It does not assume which flush TestFs commits
//! with: a checkpoint is *in progress* from the first point of the operation that
//! writes it and *complete* after its last.
//!
//! # What a crash image must show
//!
//! For a crash between points `k` and `k + 1` (the image at `k` plus a subset of the
//! lines written up to `k + 1`):
//!
//! * it mounts, unless no checkpoint was complete by `k` (a crash inside mkfs), when
//!   the error must be the documented one: `EINVAL` (no superblock) or `EUCLEAN` (no
//!   valid checkpoint);
//! * the generation mounted is the last one a successful operation had completed by
//!   `k`, a later one whose commit flush failed, or one of the operation in progress;
//!   the checkpoint is never torn: the namespace, modes, owners, link counts and
//!   sizes equal the model's state when that checkpoint was written, and the times
//!   TestFs's own before or after the operation that wrote it;
//! * every MAP_SYNC store marked durable by `k` is reachable in that state (its file
//!   exists and is long enough), unless the state is newer than the store;
//! * every byte of every file is a value the model gave it at some time from the
//!   last durability promise covering it (a completed fsync of the file or sync, or
//!   a MAP_SYNC store marked durable by `k`) up to point `k + 1`: fsynced and
//!   MAP_SYNC data is never lost, later writes may or may not be there, and no byte
//!   comes from anywhere else (another file's blocks, stale data).
//!
//! Two views of one recording are swept: the *barrier* log (points at flushes and
//! marks only; per interval: nothing, everything, 4 random subsets, all but one line,
//! one line) and the *prefix* log (a point at every driver call that changed
//! something since the last point, so a crash keeps a prefix of the writes since the
//! last flush, cut at a driver call; per interval: nothing and one random subset).
//! After the sweep, two images broken on purpose (a lost commit, a stale block)
//! must fail the same checks: a check of the checker.
//!
//! Environment: `DAX_CRASH_SEEDS=N` (default 2) random workloads besides the
//! scripted one, from seed `DAX_CRASH_FIRST_SEED` (default 1); `DAX_CRASH_OPS=N`
//! (default 40) operations each; `DAX_CRASH_SUBSETS=N` (default 4) random subsets per
//! barrier interval; `DAX_CRASH_VERBOSE=1` prints each operation with its points
//! and generations; `DAX_CRASH_TIMEOUT_SECS` (default 300) the watchdog.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dax_device::{DaxDevice, DaxError};
use dax_fault::mmu::{MapOptions, prepare_thread};
use dax_testdev::{
    DevOp, FailSchedule, FallocMode, FileKind, Ino, MemDevice, MkfsOptions, Perm, PointCause,
    PowerLog, PowerOptions, RenameFlags, SetAttr, Subset, TestFs,
};
use dax_testkit::child::{ChildRun, run_child_watched};

type Dev = Arc<DaxDevice<MemDevice>>;

const SIZE: u64 = 4 << 20;
const BLOCK: u64 = 4096;
const ROOT: u64 = 1;
const ROOT_PERM: Perm = Perm::new(0o755, 1000, 1000);
const FILE_PERM: Perm = Perm::new(0o644, 1000, 1000);

// ---- the workload's operations ----

#[derive(Debug, Clone)]
enum Op {
    Mkdir(String),
    Create(String),
    /// `write(2)` of `len` pattern bytes (seed) at an offset.
    Write(String, u64, usize, u8),
    Falloc(String, FallocMode, u64, u64),
    Truncate(String, u64),
    Rename(String, String, RenameFlags),
    Link(String, String),
    Unlink(String),
    Rmdir(String),
    Chmod(String, u32),
    Chown(String, u32, u32),
    /// Whole blocks: source, source offset, destination, destination offset, length.
    Reflink(String, u64, String, u64, u64),
    Fsync(String),
    Sync,
    /// An fsync whose first (data) or second (commit) device flush fails.
    FsyncFailing(String, bool),
    /// Stores through a real MAP_SYNC mapping, then `persist_range` and a mark.
    MapSync(String, u64, usize, u8),
    /// Stores through a real shared mapping, nothing flushed.
    MapStore(String, u64, usize, u8),
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(131).wrapping_add(seed) | 1)
        .collect()
}

/// The scripted workload: every kind of operation, fsyncs between them, a MAP_SYNC
/// store into a hole (its fault checkpoints) and into written blocks, freed blocks
/// that must not be reused before the next checkpoint, failing flushes.
fn script() -> Vec<Op> {
    use Op::*;
    let s = |x: &str| x.to_string();
    let k = FallocMode::KEEP_SIZE;
    vec![
        Mkdir(s("d")),
        Create(s("d/a")),
        Write(s("d/a"), 0, 10_000, 1),
        Create(s("b")),
        Write(s("b"), 4096, 9000, 2),
        Fsync(s("d/a")),
        Write(s("d/a"), 5000, 3000, 3),   // in place, not synced
        Write(s("d/a"), 20_000, 5000, 4), // new blocks past EOF
        Chmod(s("b"), 0o600),
        Fsync(s("b")),
        Truncate(s("d/a"), 6000), // frees blocks the checkpoint maps
        Create(s("c")),
        Write(s("c"), 0, 40_000, 5), // must not reuse d/a's freed blocks
        Link(s("c"), s("d/c2")),
        Rename(s("b"), s("d/b"), RenameFlags::empty()),
        Sync,
        MapSync(s("c"), 100, 200, 6), // written blocks: no fault checkpoint
        Truncate(s("d/b"), 64 << 10),
        MapSync(s("d/b"), 40_000, 5000, 7), // a hole: the fault checkpoints
        MapStore(s("c"), 8000, 300, 8),
        Falloc(s("c"), FallocMode::PUNCH_HOLE | k, 4096, 12_288),
        Falloc(s("d/b"), FallocMode::ZERO_RANGE, 3000, 10_000),
        Falloc(s("d/a"), FallocMode::empty(), 6000, 30_000),
        Fsync(s("c")),
        Reflink(s("c"), 16_384, s("d/a"), 8192, 8192),
        Write(s("d/a"), 9000, 100, 9), // copy on write
        Unlink(s("c")),
        Mkdir(s("e")),
        Rename(s("d"), s("e/d"), RenameFlags::empty()),
        FsyncFailing(s("e/d/a"), true), // the commit flush fails
        Truncate(s("e/d/a"), 0),
        Create(s("f")),
        Write(s("f"), 0, 30_000, 10),
        FsyncFailing(s("f"), false), // the data flush fails
        Chown(s("f"), 7, 8),
        Create(s("g")),
        Rename(s("f"), s("g"), RenameFlags::EXCHANGE),
        Fsync(s("g")),
        Unlink(s("e/d/c2")), // c's last name: its blocks are freed
        Rename(s("e/d/a"), s("e/a"), RenameFlags::NOREPLACE),
        Unlink(s("e/d/b")),
        Rmdir(s("e/d")),
        Falloc(s("g"), FallocMode::ZERO_RANGE | k, 0, 8192),
        Fsync(s("e/a")),
        Create(s("h")),
        Write(s("h"), 0, 20_000, 11), // reuses freed blocks now that they are free
        MapSync(s("h"), 5000, 3000, 12),
        // A reflink partner drops its reference after a checkpoint: the blocks are
        // no longer shared, but the durable checkpoint still has them in both files,
        // so a write must not go in place.
        Create(s("p")),
        Write(s("p"), 0, 16_384, 14),
        Create(s("q")),
        Reflink(s("p"), 0, s("q"), 0, 16_384),
        Sync,
        Truncate(s("q"), 0),
        Write(s("p"), 4096, 100, 15),
        MapStore(s("p"), 9000, 50, 16),
        // The other way: the durable checkpoint gives the blocks to `p` alone, the
        // reflink and the drop come after it.
        Reflink(s("p"), 12_288, s("q"), 0, 4096),
        Truncate(s("p"), 12_288),
        Write(s("q"), 10, 20, 17),
        Fsync(s("h")),
        Write(s("g"), 100, 50, 13), // unsynced at the end
    ]
}

// ---- the model ----

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: FileKind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Directories: the parent and the entries.
    parent: u64,
    entries: BTreeMap<String, u64>,
}

type Times = [SystemTime; 3];

#[derive(Clone)]
struct State {
    nodes: Arc<BTreeMap<u64, Node>>,
    /// Every file ever created: its bytes (an unlinked file keeps its last ones).
    data: BTreeMap<u64, Arc<Vec<u8>>>,
    times: Arc<BTreeMap<u64, Times>>,
}

impl State {
    fn resolve(&self, path: &str) -> Option<u64> {
        let mut ino = ROOT;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            ino = *self.nodes.get(&ino)?.entries.get(c)?;
        }
        Some(ino)
    }

    fn split<'a>(&self, path: &'a str) -> (u64, &'a str) {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        (self.resolve(dir).expect("parent exists"), name)
    }

    fn nlink(&self, ino: u64) -> u32 {
        let n = &self.nodes[&ino];
        match n.kind {
            FileKind::Dir => {
                2 + n
                    .entries
                    .values()
                    .filter(|i| self.nodes[i].kind == FileKind::Dir)
                    .count() as u32
            }
            _ => self
                .nodes
                .values()
                .flat_map(|d| d.entries.values())
                .filter(|&&i| i == ino)
                .count() as u32,
        }
    }

    fn file_mut(&mut self, ino: u64) -> &mut Vec<u8> {
        Arc::make_mut(self.data.get_mut(&ino).expect("a file"))
    }

    /// Removes a name; the inode goes when it has no name left.
    fn remove_name(&mut self, dir: u64, name: &str) {
        let nodes = Arc::make_mut(&mut self.nodes);
        let ino = nodes.get_mut(&dir).unwrap().entries.remove(name).unwrap();
        let named = nodes
            .values()
            .any(|d| d.entries.values().any(|&i| i == ino));
        if !named {
            nodes.remove(&ino);
        }
    }
}

/// What each checkpoint recorded: its generation, the state index it captured, the
/// first and last point of the operation that wrote it (which says nothing about
/// which flush TestFs commits with: it is in progress from its first point, complete
/// after its last), and whether that operation succeeded.
#[derive(Debug, Clone)]
struct Gen {
    generation: u64,
    state: usize,
    first: usize,
    last: usize,
    ok: bool,
}

/// A durability promise: bytes of `ino` (all of them, or a range) as of `state`, from
/// point `effective` on.
#[derive(Debug, Clone)]
struct Promise {
    ino: Option<u64>,
    range: Option<(u64, u64)>,
    state: usize,
    effective: usize,
}

struct Run {
    ops: Vec<Op>,
    /// `states[i]`: after `i` operations (`states[0]`: after mkfs).
    states: Vec<State>,
    /// Per point of the log: the last state whose bytes its lines may hold.
    point_hi: Vec<usize>,
    gens: Vec<Gen>,
    promises: Vec<Promise>,
    log: PowerLog,
    final_fs: Option<TestFs>,
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn errno(e: &DaxError) -> i32 {
    e.errno()
}

/// What one operation did: the points it made (`n0 .. n1`), the generations before
/// and after, and whether it succeeded.
struct OpRec {
    n0: usize,
    n1: usize,
    g0: u64,
    g1: u64,
    ok: bool,
    /// The point index of its mark (MAP_SYNC), taken after it.
    mark: Option<usize>,
}

/// Runs `ops` on a fresh recording device and returns what the checks need.
fn run_workload(ops: Vec<Op>) -> Run {
    prepare_thread().unwrap();
    let dev: Dev = MemDevice::builder().size(SIZE).build().unwrap();
    let drv = dev.driver();
    // Stale data everywhere, so that a crash exposing a block whose zeroing or data
    // did not land shows bytes no model allows.
    let mut x = 0x5eed_u64;
    let garbage: Vec<u8> = (0..SIZE)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect();
    drv.poke(0, &garbage).unwrap();
    drop(garbage);
    drv.record_power_loss(PowerOptions::new().driver_calls(true))
        .unwrap();
    let fs = TestFs::mkfs_with(dev.clone(), MkfsOptions::new().root(ROOT_PERM)).unwrap();
    assert_eq!(fs.generation(), 1);
    let mkfs = OpRec {
        n0: 0,
        n1: drv.power_points(),
        g0: 0,
        g1: 1,
        ok: true,
        mark: None,
    };
    let mut state = State {
        nodes: Arc::new(BTreeMap::from([(
            ROOT,
            Node {
                kind: FileKind::Dir,
                mode: ROOT_PERM.mode,
                uid: ROOT_PERM.uid,
                gid: ROOT_PERM.gid,
                parent: ROOT,
                entries: BTreeMap::new(),
            },
        )])),
        data: BTreeMap::new(),
        times: Arc::new(BTreeMap::new()),
    };
    capture(&fs, &mut state);
    let mut states = vec![state.clone()];
    let mut recs = vec![mkfs];
    let mut failed_flush_before = false;
    for (i, op) in ops.iter().enumerate() {
        let i = i + 1;
        fs.set_clock(Some(t0() + Duration::from_secs(i as u64)))
            .unwrap();
        let (n0, g0) = (drv.power_points(), fs.generation());
        let result = apply(&fs, &dev, &mut state, op);
        let (n1, g1) = (drv.power_points(), fs.generation());
        let ok = match (op, &result) {
            (Op::FsyncFailing(..), Err(_)) => false,
            (_, Ok(())) => true,
            // errseq: a failed commit is recorded in every inode, and a file that has
            // not heard of it yet is told at its next fsync (`fsync_file`), even when
            // that fsync's own commit worked. Counted as no promise: weaker, never
            // wrong.
            (Op::Fsync(..), Err(e)) if failed_flush_before && e.errno() == libc::EIO => false,
            (op, Err(e)) => panic!("op {i} {op:?} failed: {e}"),
        };
        failed_flush_before |= matches!((op, &result), (Op::FsyncFailing(..), Err(_)));
        let mark = matches!(op, Op::MapSync(..)).then(|| {
            drv.power_mark("MAP_SYNC store persisted").unwrap();
            n1
        });
        if std::env::var_os("DAX_CRASH_VERBOSE").is_some() {
            println!(
                "op {i} {op:?}: points {n0}..{n1}, generation {g0} -> {g1}, ok {}",
                result.is_ok()
            );
        }
        recs.push(OpRec {
            n0,
            n1,
            g0,
            g1,
            ok,
            mark,
        });
        capture(&fs, &mut state);
        states.push(state.clone());
    }
    let log = drv.take_power_log().unwrap();
    let points = log.points();
    // Which state each point's lines may reach, which generation each checkpoint
    // committed where, and what each operation promised.
    let mut point_hi = vec![0; points.len()];
    let mut gens = Vec::new();
    let mut promises = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let op = i.checked_sub(1).map(|j| &ops[j]);
        // Operations that store nothing (fsync, sync) show only the state before
        // them at their points; others may be anywhere inside. (A MAP_SYNC store's
        // faults, each of which may checkpoint, interleave with its stores page by
        // page.)
        let stores_nothing = matches!(
            op,
            None | Some(Op::Fsync(_) | Op::Sync | Op::FsyncFailing(..))
        );
        let checkpoints = stores_nothing || matches!(op, Some(Op::MapSync(..)));
        let before = i.saturating_sub(1);
        for h in &mut point_hi[r.n0..r.n1] {
            *h = if stores_nothing { before } else { i };
        }
        if let Some(m) = r.mark {
            point_hi[m] = i;
        }
        let made = r.g1 - r.g0;
        assert!(
            made == 0 || checkpoints,
            "op {i} {op:?} checkpointed ({} -> {}) unexpectedly",
            r.g0,
            r.g1
        );
        let flushed = (r.n0..r.n1).any(|p| points[p].cause == PointCause::Flush);
        assert!(
            made == 0 || flushed,
            "op {i} {op:?} checkpointed without a flush"
        );
        // (A MAP_SYNC store may checkpoint once per page it faults in: each
        // checkpoint captured the state before the store.)
        let made_gen = |generation, ok| Gen {
            generation,
            state: before,
            first: r.n0,
            last: r.n1 - 1,
            ok,
        };
        gens.extend((r.g0 + 1..=r.g1).map(|g| made_gen(g, r.ok)));
        if let (Some(Op::FsyncFailing(_, true)), false) = (op, r.ok) {
            // Its checkpoint was written whole but not known flushed: it may come
            // back after a crash.
            gens.push(made_gen(r.g0 + 1, false));
        }
        match (op, r.ok) {
            (Some(Op::Fsync(p)), true) => promises.push(Promise {
                ino: Some(states[before].resolve(p).unwrap()),
                range: None,
                state: before,
                effective: r.n1 - 1,
            }),
            (Some(Op::Sync), true) => promises.push(Promise {
                ino: None,
                range: None,
                state: before,
                effective: r.n1 - 1,
            }),
            (Some(Op::MapSync(p, off, len, _)), true) => promises.push(Promise {
                ino: Some(states[before].resolve(p).unwrap()),
                range: Some((*off, off + *len as u64)),
                state: i,
                effective: r.mark.unwrap(),
            }),
            _ => {}
        }
    }
    verify_live(&fs, &state);
    Run {
        ops,
        states,
        point_hi,
        gens,
        promises,
        log,
        final_fs: Some(fs),
    }
}

/// Records the times TestFs reports for every inode of the model, and checks the
/// other attributes against the model.
fn capture(fs: &TestFs, state: &mut State) {
    let mut times = BTreeMap::new();
    for (&ino, n) in state.nodes.iter() {
        let a = fs.getattr(Ino(ino)).unwrap();
        let size = match n.kind {
            FileKind::Dir => 0,
            _ => state.data[&ino].len() as u64,
        };
        assert_eq!(
            (a.kind, a.mode, a.uid, a.gid, a.nlink, a.size),
            (n.kind, n.mode, n.uid, n.gid, state.nlink(ino), size),
            "live attributes of inode {ino}"
        );
        times.insert(ino, [a.atime, a.mtime, a.ctime]);
    }
    state.times = Arc::new(times);
}

/// The live filesystem equals the model: the model is right before it judges
/// crashes.
fn verify_live(fs: &TestFs, state: &State) {
    if let Err(e) = compare_tree(fs, state, state) {
        panic!("live filesystem differs from the model: {e}");
    }
    for (&ino, n) in state.nodes.iter() {
        if n.kind == FileKind::Dir {
            continue;
        }
        let want = &state.data[&ino];
        let mut got = vec![0u8; want.len()];
        assert_eq!(fs.read(Ino(ino), 0, &mut got).unwrap(), want.len());
        assert!(got == **want, "live data of inode {ino} differs");
    }
}

fn apply(fs: &TestFs, dev: &Dev, st: &mut State, op: &Op) -> Result<(), DaxError> {
    match op {
        Op::Mkdir(p) | Op::Create(p) => {
            let (dir, name) = st.split(p);
            let is_dir = matches!(op, Op::Mkdir(_));
            let perm = if is_dir { ROOT_PERM } else { FILE_PERM };
            let ino = if is_dir {
                fs.mkdir(Ino(dir), name, perm)?
            } else {
                fs.create_in(Ino(dir), name, perm)?
            };
            let nodes = Arc::make_mut(&mut st.nodes);
            nodes
                .get_mut(&dir)
                .unwrap()
                .entries
                .insert(name.into(), ino.0);
            nodes.insert(
                ino.0,
                Node {
                    kind: if is_dir {
                        FileKind::Dir
                    } else {
                        FileKind::File
                    },
                    mode: perm.mode,
                    uid: perm.uid,
                    gid: perm.gid,
                    parent: dir,
                    entries: BTreeMap::new(),
                },
            );
            if !is_dir {
                st.data.insert(ino.0, Arc::new(Vec::new()));
            }
        }
        Op::Write(p, off, len, seed) => {
            let ino = st.resolve(p).unwrap();
            let d = data(*len, *seed);
            assert_eq!(fs.write(Ino(ino), *off, &d)?, d.len());
            let f = st.file_mut(ino);
            let end = *off as usize + d.len();
            if f.len() < end {
                f.resize(end, 0);
            }
            f[*off as usize..end].copy_from_slice(&d);
        }
        Op::Truncate(p, size) => {
            let ino = st.resolve(p).unwrap();
            fs.truncate(Ino(ino), *size)?;
            st.file_mut(ino).resize(*size as usize, 0);
        }
        Op::Falloc(p, mode, pos, len) => {
            let ino = st.resolve(p).unwrap();
            fs.fallocate(Ino(ino), *mode, *pos, *len)?;
            let f = st.file_mut(ino);
            let end = (pos + len) as usize;
            let keep = mode.contains(FallocMode::KEEP_SIZE);
            if !keep && f.len() < end {
                f.resize(end, 0);
            }
            if mode.intersects(FallocMode::PUNCH_HOLE | FallocMode::ZERO_RANGE) {
                let stop = end.min(f.len());
                if (*pos as usize) < stop {
                    f[*pos as usize..stop].fill(0);
                }
            }
        }
        Op::Reflink(src, so, dst, d_o, len) => {
            let (s, d) = (st.resolve(src).unwrap(), st.resolve(dst).unwrap());
            assert_eq!(fs.reflink(Ino(s), *so, Ino(d), *d_o, *len)?, *len);
            let bytes = st.data[&s][*so as usize..(so + len) as usize].to_vec();
            let f = st.file_mut(d);
            let end = (d_o + len) as usize;
            if f.len() < end {
                f.resize(end, 0);
            }
            f[*d_o as usize..end].copy_from_slice(&bytes);
        }
        Op::Rename(from, to, flags) => {
            let (sd, sn) = st.split(from);
            let (dd, dn) = st.split(to);
            fs.rename(Ino(sd), sn, Ino(dd), dn, *flags)?;
            let src = st.nodes[&sd].entries[sn];
            if flags.contains(RenameFlags::EXCHANGE) {
                let dst = st.nodes[&dd].entries[dn];
                let nodes = Arc::make_mut(&mut st.nodes);
                nodes.get_mut(&sd).unwrap().entries.insert(sn.into(), dst);
                nodes.get_mut(&dd).unwrap().entries.insert(dn.into(), src);
                if nodes[&src].kind == FileKind::Dir {
                    nodes.get_mut(&src).unwrap().parent = dd;
                }
                if nodes[&dst].kind == FileKind::Dir {
                    nodes.get_mut(&dst).unwrap().parent = sd;
                }
            } else {
                if st.nodes[&dd].entries.contains_key(dn) {
                    st.remove_name(dd, dn);
                }
                let nodes = Arc::make_mut(&mut st.nodes);
                nodes.get_mut(&sd).unwrap().entries.remove(sn);
                nodes.get_mut(&dd).unwrap().entries.insert(dn.into(), src);
                if nodes[&src].kind == FileKind::Dir {
                    nodes.get_mut(&src).unwrap().parent = dd;
                }
            }
        }
        Op::Link(from, to) => {
            let ino = st.resolve(from).unwrap();
            let (dd, dn) = st.split(to);
            fs.link(Ino(ino), Ino(dd), dn)?;
            Arc::make_mut(&mut st.nodes)
                .get_mut(&dd)
                .unwrap()
                .entries
                .insert(dn.into(), ino);
        }
        Op::Unlink(p) => {
            let (d, n) = st.split(p);
            fs.unlink_in(Ino(d), n)?;
            st.remove_name(d, n);
        }
        Op::Rmdir(p) => {
            let (d, n) = st.split(p);
            fs.rmdir(Ino(d), n)?;
            st.remove_name(d, n);
        }
        Op::Chmod(p, mode) => {
            let ino = st.resolve(p).unwrap();
            fs.setattr(Ino(ino), &SetAttr::new().mode(*mode))?;
            Arc::make_mut(&mut st.nodes).get_mut(&ino).unwrap().mode = *mode;
        }
        Op::Chown(p, uid, gid) => {
            let ino = st.resolve(p).unwrap();
            fs.setattr(Ino(ino), &SetAttr::new().uid(*uid).gid(*gid))?;
            let n = Arc::make_mut(&mut st.nodes).get_mut(&ino).unwrap();
            (n.uid, n.gid) = (*uid, *gid);
        }
        Op::Fsync(p) => fs.fsync(Ino(st.resolve(p).unwrap()))?,
        Op::Sync => fs.sync()?,
        Op::FsyncFailing(p, commit) => {
            let eio = DaxError::Io {
                what: "injected flush failure",
            };
            let skip = u32::from(*commit);
            dev.driver()
                .inject(DevOp::Flush, FailSchedule::After { skip, count: 1 }, eio);
            let r = fs.fsync(Ino(st.resolve(p).unwrap()));
            dev.driver().clear_injections();
            match r {
                Ok(()) => panic!("the injected flush failure was not seen"),
                Err(e) => return Err(e),
            }
        }
        Op::MapSync(p, off, len, seed) | Op::MapStore(p, off, len, seed) => {
            let ino = st.resolve(p).unwrap();
            let sync = matches!(op, Op::MapSync(..));
            let d = data(*len, *seed);
            let first = off / BLOCK;
            let map_len = (off + *len as u64).div_ceil(BLOCK) * BLOCK - first * BLOCK;
            let opts = MapOptions::new()
                .shared(true)
                .writable(true)
                .huge(false)
                .sync(sync);
            let m = fs.mmap_real(Ino(ino), first, map_len, opts)?;
            let at = (off - first * BLOCK) as usize;
            m.store(at, &d)
                .unwrap_or_else(|f| panic!("store through the mapping: {f:?}"));
            if sync {
                // SAFETY: `at .. at + len` lies inside the mapping (map_len covers
                // it), which stays mapped while `m` lives; the pages were faulted in
                // by the store just made.
                unsafe { dax_device::persist::persist_range(m.as_ptr().add(at), d.len()) };
            }
            drop(m);
            st.file_mut(ino)[*off as usize..*off as usize + d.len()].copy_from_slice(&d);
        }
    }
    Ok(())
}

// ---- checking a crash image ----

/// Where a crash happens: after point `after` (None: before the first) with some of
/// the lines up to `next` (None: the end of the recording).
#[derive(Debug, Clone, Copy)]
struct At {
    after: Option<usize>,
    /// The point ending the interval; the number of points for the end.
    next: usize,
}

#[derive(Default, Debug)]
struct Tally {
    images: u64,
    mounted: u64,
    refused: u64,
    older_generation: u64,
    failed: Vec<String>,
}

impl Run {
    /// The checkpoints a crash may show: the last one an operation that had
    /// completed by the crash wrote successfully, later ones whose commit failed, and
    /// those of the operation in progress.
    fn candidates(&self, at: At) -> Vec<&Gen> {
        let complete = |g: &Gen| at.after.is_some_and(|k| g.last <= k);
        let floor = self
            .gens
            .iter()
            .filter(|g| g.ok && complete(g))
            .map(|g| g.last)
            .max();
        self.gens
            .iter()
            .filter(|g| {
                (complete(g) && floor.is_some_and(|f| g.last >= f))
                    || (!complete(g) && g.first <= at.next)
            })
            .collect()
    }

    fn hi(&self, at: At) -> usize {
        self.point_hi
            .get(at.next)
            .copied()
            .unwrap_or(self.states.len() - 1)
    }

    /// The promises covering `ino` that are effective by the crash: the state of the
    /// last whole-file one, and the byte ranges of MAP_SYNC ones with their states.
    fn promised(&self, at: At, ino: u64) -> (usize, Vec<(u64, u64, usize)>) {
        let effective = self
            .promises
            .iter()
            .filter(|p| at.after.is_some_and(|k| p.effective <= k))
            .filter(|p| p.ino.is_none_or(|i| i == ino));
        let whole = effective
            .clone()
            .filter(|p| p.range.is_none())
            .map(|p| p.state)
            .max()
            .unwrap_or(0);
        let ranges = effective
            .filter_map(|p| p.range.map(|(s, e)| (s, e, p.state)))
            .collect();
        (whole, ranges)
    }

    /// Mounts `img` on `dev` and checks it; `Err` says what is wrong.
    fn check(&self, dev: &Dev, img: &[u8], at: At, tally: &mut Tally) -> Result<(), String> {
        dev.driver().poke(0, img).unwrap();
        let cands = self.candidates(at);
        let fs = match TestFs::open(dev.clone()) {
            Err(e) => {
                let before_mkfs = !self
                    .gens
                    .iter()
                    .any(|g| g.ok && at.after.is_some_and(|k| g.last <= k));
                if before_mkfs && [libc::EINVAL, libc::EUCLEAN].contains(&errno(&e)) {
                    tally.refused += 1;
                    return Ok(());
                }
                return Err(format!("mount failed: {e} (errno {})", errno(&e)));
            }
            Ok(fs) => fs,
        };
        tally.mounted += 1;
        let g = fs.generation();
        let mut why = Vec::new();
        for c in cands.iter().filter(|c| c.generation == g) {
            let st = &self.states[c.state];
            let next = &self.states[(c.state + 1).min(self.states.len() - 1)];
            let r = compare_tree(&fs, st, next)
                .and_then(|()| self.reachable(c.state, at))
                .and_then(|()| self.compare_data(&fs, st, at));
            match r {
                Ok(()) => {
                    if cands.iter().any(|o| o.generation > g) {
                        tally.older_generation += 1;
                    }
                    return Ok(());
                }
                Err(e) => why.push(format!("vs state {} (op {}): {e}", c.state, c.state)),
            }
        }
        Err(format!(
            "mounted generation {g}; allowed: {:?}; {}",
            cands
                .iter()
                .map(|c| (c.generation, c.state))
                .collect::<Vec<_>>(),
            why.join("; ")
        ))
    }

    /// Each MAP_SYNC store marked durable by the crash is reachable in the state a
    /// checkpoint captured (index `s`) if that state is older than the store: its file
    /// exists there and is long enough. (A checkpoint captured after the store may
    /// have legitimately truncated or unlinked it since.)
    fn reachable(&self, s: usize, at: At) -> Result<(), String> {
        for p in &self.promises {
            let (Some(ino), Some((_, end))) = (p.ino, p.range) else {
                continue;
            };
            if at.after.is_none_or(|k| p.effective > k) || s >= p.state {
                continue;
            }
            let size = self.states[s]
                .nodes
                .contains_key(&ino)
                .then(|| self.states[s].data[&ino].len() as u64);
            if size.is_none_or(|n| n < end) {
                return Err(format!(
                    "a MAP_SYNC store to inode {ino} up to byte {end}, durable since point \
                     {}, is not reachable: the file's size there is {size:?}",
                    p.effective
                ));
            }
        }
        Ok(())
    }

    fn compare_data(&self, fs: &TestFs, st: &State, at: At) -> Result<(), String> {
        let hi = self.hi(at);
        for (&ino, n) in st.nodes.iter() {
            if n.kind == FileKind::Dir {
                continue;
            }
            let size = st.data[&ino].len();
            let mut got = vec![0u8; size];
            let r = fs
                .read(Ino(ino), 0, &mut got)
                .map_err(|e| format!("read of {ino}: {e}"))?;
            if r != size {
                return Err(format!("short read of inode {ino}: {r} of {size}"));
            }
            let latest = self.states[hi].data.get(&ino);
            let versions: Vec<Option<&Arc<Vec<u8>>>> = self.states[..=hi]
                .iter()
                .map(|st| st.data.get(&ino))
                .collect();
            let value_at = |t: usize, o: usize| -> Option<u8> {
                versions[t].map(|d| d.get(o).copied().unwrap_or(0))
            };
            // The first state from which a byte must hold a value the model gave it:
            // the last promise covering it.
            let (whole, ranges) = self.promised(at, ino);
            let lo = |o: u64| {
                ranges
                    .iter()
                    .filter(|(s, e, _)| (*s..*e).contains(&o))
                    .map(|r| r.2)
                    .fold(whole, usize::max)
            };
            // Bytes equal to the latest model value are fine; look closer only at
            // 64-byte chunks that differ from it.
            let mut want = latest.map_or_else(Vec::new, |d| d.to_vec());
            want.resize(size, 0);
            let odd = got
                .chunks(64)
                .zip(want.chunks(64))
                .enumerate()
                .filter(|(_, (g, w))| g != w)
                .flat_map(|(c, (g, w))| {
                    (0..g.len())
                        .filter(move |&j| g[j] != w[j])
                        .map(move |j| c * 64 + j)
                });
            for o in odd {
                let b = got[o];
                let lo = lo(o as u64);
                if !(lo..=hi).any(|t| value_at(t, o) == Some(b)) {
                    let want: Vec<String> = (lo..=hi)
                        .filter_map(|t| value_at(t, o))
                        .map(|v| format!("{v:#04x}"))
                        .collect();
                    return Err(format!(
                        "inode {ino} byte {o} (block {}) is {b:#04x}; the model allows \
                         (states {lo}..={hi}) only {}",
                        o as u64 / BLOCK,
                        dedup(want).join(" ")
                    ));
                }
            }
        }
        Ok(())
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.dedup();
    v
}

/// The mounted tree and attributes equal `st`'s; times may be `st`'s or `next`'s
/// (a checkpoint written inside an operation, after it stamped a time).
fn compare_tree(fs: &TestFs, st: &State, next: &State) -> Result<(), String> {
    let mut seen = BTreeMap::new();
    let mut todo = vec![ROOT];
    while let Some(dir) = todo.pop() {
        let entries = fs
            .readdir(Ino(dir))
            .map_err(|e| format!("readdir {dir}: {e}"))?;
        let got: BTreeMap<String, u64> =
            entries.iter().map(|e| (e.name.clone(), e.ino.0)).collect();
        let want = &st
            .nodes
            .get(&dir)
            .ok_or(format!("directory {dir} is not in the model"))?
            .entries;
        if &got != want {
            return Err(format!("directory {dir}: entries {got:?}, model {want:?}"));
        }
        for e in &entries {
            if e.kind == FileKind::Dir {
                let parent = fs.parent(e.ino).map_err(|e| e.to_string())?;
                if parent.0 != dir {
                    return Err(format!("{} has parent {parent}, not {dir}", e.ino));
                }
                todo.push(e.ino.0);
            }
            seen.insert(e.ino.0, ());
        }
    }
    seen.insert(ROOT, ());
    let model: Vec<u64> = st.nodes.keys().copied().collect();
    let found: Vec<u64> = seen.keys().copied().collect();
    if model != found {
        return Err(format!("inodes {found:?}, model {model:?}"));
    }
    for (&ino, n) in st.nodes.iter() {
        let a = fs
            .getattr(Ino(ino))
            .map_err(|e| format!("getattr {ino}: {e}"))?;
        let size = match n.kind {
            FileKind::Dir => 0,
            _ => st.data[&ino].len() as u64,
        };
        let got = (a.kind, a.mode, a.uid, a.gid, a.nlink, a.size);
        let want = (n.kind, n.mode, n.uid, n.gid, st.nlink(ino), size);
        if got != want {
            return Err(format!("inode {ino}: attributes {got:?}, model {want:?}"));
        }
        let t = [a.atime, a.mtime, a.ctime];
        let ok = [st.times.get(&ino), next.times.get(&ino)]
            .iter()
            .any(|w| w.is_some_and(|w| *w == t));
        if !ok {
            return Err(format!(
                "inode {ino}: times {t:?}, model {:?} or {:?}",
                st.times.get(&ino),
                next.times.get(&ino)
            ));
        }
    }
    Ok(())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
        .unwrap_or(default)
}

/// Sweeps both views of the run's log; returns the tally.
fn sweep(run: &Run, label: &str) -> Tally {
    let dev: Dev = MemDevice::builder().size(SIZE).build().unwrap();
    let subsets = env_usize("DAX_CRASH_SUBSETS", 4);
    let mut tally = Tally::default();
    let check = |img: Vec<u8>, at: At, what: String, tally: &mut Tally| {
        tally.images += 1;
        let r = catch_unwind(AssertUnwindSafe(|| run.check(&dev, &img, at, tally))).unwrap_or_else(
            |p| {
                Err(format!(
                    "panicked: {}",
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                ))
            },
        );
        if let Err(e) = r
            && tally.failed.len() < 20
        {
            tally.failed.push(format!("{label} {what}: {e}"));
        }
    };
    // The barrier view.
    let (barriers, index) = run.log.barriers_only();
    let mut r = barriers.replay();
    let mut intervals = 0;
    loop {
        let at = At {
            after: r.after().map(|a| index[a]),
            next: r.next_point().map_or(run.log.points().len(), |n| index[n]),
        };
        let n = r.pending().len();
        let mut sets = vec![Subset::Nothing];
        if n > 0 {
            sets.push(Subset::Everything);
        }
        if n > 1 {
            sets.extend(
                (0..subsets as u64)
                    .map(|s| Subset::Random(s * 7919 + at.after.map_or(0, |a| a as u64))),
            );
            sets.push(Subset::AllBut(n / 2));
            sets.push(Subset::Only(n / 3));
        }
        intervals += 1;
        for s in sets {
            let cause = r
                .next_point()
                .map(|p| format!("{:?}", barriers.points()[p].cause))
                .unwrap_or("end".into());
            check(
                r.crash_image(s),
                at,
                format!(
                    "barrier interval {:?}..{:?} ({cause}, {n} lines) {s:?}",
                    at.after, at.next
                ),
                &mut tally,
            );
        }
        if !r.advance() {
            break;
        }
    }
    // The prefix view: a point at every driver call.
    let mut r = run.log.replay();
    let mut prefixes = 0;
    loop {
        let at = At {
            after: r.after(),
            next: r.next_point().unwrap_or(run.log.points().len()),
        };
        let n = r.pending().len();
        let mut sets = vec![Subset::Nothing];
        if n > 1 {
            sets.push(Subset::Random(at.after.map_or(0, |a| a as u64) ^ 0xabc));
        }
        prefixes += 1;
        for s in sets {
            check(
                r.crash_image(s),
                at,
                format!(
                    "prefix interval {:?}..{:?} ({n} lines) {s:?}",
                    at.after, at.next
                ),
                &mut tally,
            );
        }
        if !r.advance() {
            break;
        }
    }
    println!(
        "{label}: {} ops, {} points ({} barriers: {} flushes, {} marks), {} lines; \
         {intervals} barrier intervals, {prefixes} prefix intervals; {} images checked: \
         {} mounted ({} on an older generation than the newest allowed), {} refused as \
         documented (inside mkfs); {} failures",
        run.ops.len(),
        run.log.points().len(),
        barriers.points().len(),
        barriers
            .points()
            .iter()
            .filter(|p| p.cause == PointCause::Flush)
            .count(),
        barriers
            .points()
            .iter()
            .filter(|p| matches!(p.cause, PointCause::Mark(_)))
            .count(),
        run.log.lines(),
        tally.images,
        tally.mounted,
        tally.older_generation,
        tally.refused,
        tally.failed.len(),
    );
    tally
}

/// A random valid workload of `n` operations from `seed`, generated against a model
/// of the paths it creates.
fn random_ops(seed: u64, n: usize) -> Vec<Op> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m.max(1)
    };
    // Paths and sizes the generator knows: files (path, size) and directories.
    let mut files: Vec<(String, u64)> = Vec::new();
    let mut dirs: Vec<String> = vec![String::new()];
    let mut ops = Vec::new();
    let mut next_name = 0;
    let join = |d: &str, n: &str| {
        if d.is_empty() {
            n.to_string()
        } else {
            format!("{d}/{n}")
        }
    };
    while ops.len() < n {
        let k = rnd(20);
        let op = match k {
            0 if dirs.len() < 4 => {
                let d = dirs[rnd(dirs.len() as u64) as usize].clone();
                next_name += 1;
                let p = join(&d, &format!("d{next_name}"));
                dirs.push(p.clone());
                Op::Mkdir(p)
            }
            0..=1 if files.len() < 6 => {
                let d = dirs[rnd(dirs.len() as u64) as usize].clone();
                next_name += 1;
                let p = join(&d, &format!("f{next_name}"));
                files.push((p.clone(), 0));
                Op::Create(p)
            }
            _ if files.is_empty() => continue,
            2..=5 => {
                let i = rnd(files.len() as u64) as usize;
                let off = rnd(96 << 10);
                let max = if rnd(2) == 0 { 200 } else { 20_000 };
                let len = 1 + rnd(max) as usize;
                files[i].1 = files[i].1.max(off + len as u64);
                Op::Write(files[i].0.clone(), off, len, rnd(256) as u8)
            }
            6 => {
                let i = rnd(files.len() as u64) as usize;
                let size = rnd(100 << 10);
                files[i].1 = size;
                Op::Truncate(files[i].0.clone(), size)
            }
            7 => {
                let i = rnd(files.len() as u64) as usize;
                let (pos, len) = (rnd(96 << 10), 1 + rnd(30_000));
                let mode = match rnd(5) {
                    0 => FallocMode::empty(),
                    1 => FallocMode::KEEP_SIZE,
                    2 => FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
                    3 => FallocMode::ZERO_RANGE,
                    _ => FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE,
                };
                if !mode.contains(FallocMode::KEEP_SIZE) {
                    files[i].1 = files[i].1.max(pos + len);
                }
                Op::Falloc(files[i].0.clone(), mode, pos, len)
            }
            8..=10 => Op::Fsync(files[rnd(files.len() as u64) as usize].0.clone()),
            11 => Op::Sync,
            12 | 13 => {
                let i = rnd(files.len() as u64) as usize;
                let size = files[i].1;
                if size == 0 {
                    continue;
                }
                let off = rnd(size);
                let len = 1 + rnd((size - off).min(6000)) as usize;
                let seed = rnd(256) as u8;
                if k == 12 {
                    Op::MapSync(files[i].0.clone(), off, len, seed)
                } else {
                    Op::MapStore(files[i].0.clone(), off, len, seed)
                }
            }
            14 => {
                // Rename a file to a new name in some directory.
                let i = rnd(files.len() as u64) as usize;
                let d = dirs[rnd(dirs.len() as u64) as usize].clone();
                next_name += 1;
                let to = join(&d, &format!("r{next_name}"));
                let from = std::mem::replace(&mut files[i].0, to.clone());
                Op::Rename(from, to, RenameFlags::NOREPLACE)
            }
            15 if files.len() > 2 => {
                let i = rnd(files.len() as u64) as usize;
                let (p, _) = files.remove(i);
                Op::Unlink(p)
            }
            16 if files.len() > 1 => {
                let s = rnd(files.len() as u64) as usize;
                let d = (s + 1 + rnd(files.len() as u64 - 1) as usize) % files.len();
                let blocks = files[s].1 / BLOCK;
                if blocks == 0 {
                    continue;
                }
                let sb = rnd(blocks);
                let len = 1 + rnd((blocks - sb).min(8));
                let db = rnd(24);
                files[d].1 = files[d].1.max((db + len) * BLOCK);
                Op::Reflink(
                    files[s].0.clone(),
                    sb * BLOCK,
                    files[d].0.clone(),
                    db * BLOCK,
                    len * BLOCK,
                )
            }
            17 => Op::Chmod(
                files[rnd(files.len() as u64) as usize].0.clone(),
                0o600 + rnd(0o100) as u32,
            ),
            18 => Op::FsyncFailing(
                files[rnd(files.len() as u64) as usize].0.clone(),
                rnd(2) == 0,
            ),
            _ => continue,
        };
        ops.push(op);
    }
    ops
}

fn report(tallies: &[Tally]) {
    let failed: Vec<&String> = tallies.iter().flat_map(|t| &t.failed).collect();
    let images: u64 = tallies.iter().map(|t| t.images).sum();
    println!("crash images checked: {images}");
    if !failed.is_empty() {
        panic!(
            "{} crash image(s) failed (first {}):\n{}",
            tallies.iter().map(|t| t.failed.len()).sum::<usize>(),
            failed.len(),
            failed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

// ---- the tests, each run in a watched child ----

fn run_child(name: &str) {
    let child = format!("child_{name}");
    let limit = Duration::from_secs(env_usize("DAX_CRASH_TIMEOUT_SECS", 300) as u64);
    let ChildRun {
        status,
        output,
        hung_threads,
        took,
    } = run_child_watched(&child, limit);
    let Some(status) = status else {
        panic!("{child}: hung, killed after {limit:?}; threads:\n{hung_threads}\n{output}");
    };
    if let Some(sig) = status.signal() {
        panic!("{child}: died by signal {sig} after {took:?}\n{output}");
    }
    assert!(
        status.success() && output.contains("1 passed"),
        "{child}: failed ({status:?}) after {took:?}\n{output}"
    );
    println!("{child}: passed in {:.2} s\n{output}", took.as_secs_f64());
}

/// A check of the checker: images broken on purpose after the scripted workload
/// must fail. (a) The newest checkpoint's header is lost although the fsync that
/// wrote it returned: the mount falls back to the previous generation. (b) A block
/// of a file whose data was fsynced holds stale bytes (the last written extent of
/// `g`: its first block was unwritten at the last checkpoint, and reads as zeros
/// whatever it holds).
fn checker_flags_broken_images(run: &Run) {
    let fs = run.final_fs.as_ref().unwrap();
    let mut r = run.log.replay();
    while r.advance() {}
    let end = r.crash_image(Subset::Everything);
    let at = At {
        after: r.after(),
        next: run.log.points().len(),
    };
    let dev: Dev = MemDevice::builder().size(SIZE).build().unwrap();
    let mut tally = Tally::default();
    run.check(&dev, &end, at, &mut tally)
        .expect("the unbroken final image passes");
    let mut lost_commit = end.clone();
    let slot = fs.layout().slot_offsets[(fs.generation() % 2) as usize] as usize;
    lost_commit[slot..slot + 64].fill(0);
    let e = run
        .check(&dev, &lost_commit, at, &mut tally)
        .expect_err("a lost fsync must be flagged");
    println!("checker check (a), lost commit: {e}");
    let g = fs.lookup("g").unwrap();
    let first = *fs
        .extents(g)
        .unwrap()
        .iter()
        .rfind(|e| !e.unwritten)
        .expect("g has written blocks");
    let mut stale = end;
    let at_block = (first.dev_block * BLOCK) as usize;
    stale[at_block..at_block + BLOCK as usize].fill(0xee);
    let e = run
        .check(&dev, &stale, at, &mut tally)
        .expect_err("stale data in an fsynced file must be flagged");
    println!("checker check (b), stale block: {e}");
}

#[test]
#[ignore = "run in a child process by scripted_workload_survives_every_crash"]
fn child_scripted_workload_survives_every_crash() {
    let run = run_workload(script());
    report(&[sweep(&run, "scripted")]);
    checker_flags_broken_images(&run);
}

/// The scripted workload, every barrier interval with 8 subsets and every driver-call
/// prefix.
#[test]
fn scripted_workload_survives_every_crash() {
    run_child("scripted_workload_survives_every_crash");
}

#[test]
#[ignore = "run in a child process by random_workloads_survive_every_crash"]
fn child_random_workloads_survive_every_crash() {
    let seeds = env_usize("DAX_CRASH_SEEDS", 2) as u64;
    let first = env_usize("DAX_CRASH_FIRST_SEED", 1) as u64;
    let n = env_usize("DAX_CRASH_OPS", 40);
    let mut tallies = Vec::new();
    for seed in first..first + seeds {
        let run = run_workload(random_ops(seed, n));
        tallies.push(sweep(&run, &format!("seed {seed}")));
    }
    report(&tallies);
}

/// Random valid workloads (`DAX_CRASH_SEEDS`, `DAX_CRASH_OPS`).
#[test]
fn random_workloads_survive_every_crash() {
    run_child("random_workloads_survive_every_crash");
}
