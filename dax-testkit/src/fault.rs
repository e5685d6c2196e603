//! Test doubles for the fault-engine conformance tests:
//!
//! * [`device`]: the memory-backed test device ([`device_with`]: under a driver of the
//!   test's, such as dax-fault's `fault_conformance` recording device);
//! * [`ScriptedFs`]: a scripted filesystem (`IomapOps` + `DaxInode`) whose block map
//!   is a list of [`Ext`]s — holes, unwritten and mapped extents with flags, reflinked
//!   extents that copy on write, allocation on WRITE — with every `iomap_begin` /
//!   `iomap_end` recorded, injected `iomap_begin` failures, an observer and a one-shot
//!   gate that holds a thread inside `iomap_begin`;
//! * [`Space`]: a `SimPageTable` with an observer and a one-shot gate on any of its
//!   operations.
//!
//! Not a real filesystem (see `dax_testdev::TestFs` for that).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use dax_device::{DaxAccessMode, DaxDevice, DaxError, DaxOperations, PAGE_SIZE, PMD_SIZE, Pfn};
use dax_fault::index::{Entry, EntryInfo, Marks};
use dax_fault::sim::SimPageTable;
use dax_fault::{
    DaxMapping, FaultFlags, Inserted, MappedVma, PageTable, PmdSlot, PmdValue, Pte, PteValue,
    VmFault, Vma, Vmf, dax_iomap_fault,
};
use dax_iomap::{
    DaxInode, IOMAP_NULL_ADDR, Iomap, IomapFlags, IomapOps, IomapType, IterFlags, MappingOps,
};
use dax_testdev::MemDevice;
use parking_lot::Mutex;

pub use crate::{PAGE, pattern};
/// [`PMD_SIZE`] as a `u64`.
pub const PMD: u64 = PMD_SIZE as u64;
/// One MiB.
pub const MIB: u64 = 1 << 20;
/// Where tests place their mappings: 2 MiB aligned.
pub const BASE: u64 = 0x4000_0000;

/// The flags a read fault passes to the filesystem.
pub const RD: IterFlags = IterFlags::DAX.union(IterFlags::FAULT);
/// The flags a shared write fault passes to the filesystem.
pub const WR: IterFlags = RD.union(IterFlags::WRITE);

// ---------------------------------------------------------------------------------
// The device

/// A driver a [`ScriptedFs`] runs on: a [`MemDevice`], or a driver over one that a
/// test defines (such as one that records its `direct_access` calls).
pub trait FaultDriver: DaxOperations + Sized + 'static {
    /// The memory device underneath: what [`ScriptedFs::poke`] and
    /// [`ScriptedFs::peek`] write and read, and where allocation zeroes.
    fn mem(&self) -> &MemDevice;
}

impl FaultDriver for MemDevice {
    fn mem(&self) -> &MemDevice {
        self
    }
}

/// A live, synchronous device with a write cache of `bytes` bytes.
pub fn device(bytes: u64) -> Arc<DaxDevice<MemDevice>> {
    device_with(bytes, |mem| mem)
}

/// [`device`] with the driver `wrap(mem)` over the new memory device `mem`.
pub fn device_with<D: FaultDriver>(
    bytes: u64,
    wrap: impl FnOnce(MemDevice) -> D,
) -> Arc<DaxDevice<D>> {
    let mem = Arc::try_unwrap(MemDevice::builder().size(bytes).build().unwrap())
        .expect("a fresh device has one owner")
        .into_driver();
    let dev = DaxDevice::new(wrap(mem));
    dev.set_nocache();
    dev.set_nomc();
    dev.set_write_cache(true);
    dev.set_synchronous();
    dev
}

// ---------------------------------------------------------------------------------
// The filesystem

/// One extent of the scripted block map.
#[derive(Debug, Clone)]
pub struct Ext {
    /// First file byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Its type.
    pub kind: IomapType,
    /// Device byte address (MAPPED, UNWRITTEN).
    pub addr: u64,
    /// Flags answered for every request.
    pub flags: IomapFlags,
    /// Flags added when the request is a WRITE (e.g. DIRTY: uncommitted metadata).
    pub write_flags: IomapFlags,
    /// A WRITE over this HOLE/UNWRITTEN extent allocates it at this device address:
    /// it becomes MAPPED, zeroed, and that one answer carries NEW.
    pub alloc: Option<u64>,
    /// Reflinked: a WRITE answers a SHARED destination at `cow.dest` with this extent
    /// as its source map; an `iomap_end` with progress then remaps the extent there.
    pub cow: Option<Cow>,
}

/// The copy-on-write side of a reflinked [`Ext`].
#[derive(Debug, Clone, Copy)]
pub struct Cow {
    /// Where a write puts the new copy (device byte address).
    pub dest: u64,
    /// The source map's length, when shorter than the extent.
    pub src_len: Option<u64>,
    /// The old data was a hole: no source map (the destination is zero-filled).
    pub src_hole: bool,
}

impl Ext {
    fn new(kind: IomapType, offset: u64, len: u64, addr: u64) -> Ext {
        Ext {
            offset,
            len,
            kind,
            addr,
            flags: IomapFlags::empty(),
            write_flags: IomapFlags::empty(),
            alloc: None,
            cow: None,
        }
    }

    /// A hole.
    pub fn hole(offset: u64, len: u64) -> Ext {
        Ext::new(IomapType::Hole, offset, len, IOMAP_NULL_ADDR)
    }

    /// Written data at device byte `addr`.
    pub fn mapped(offset: u64, len: u64, addr: u64) -> Ext {
        Ext::new(IomapType::Mapped, offset, len, addr)
    }

    /// Allocated, unwritten storage at device byte `addr`.
    pub fn unwritten(offset: u64, len: u64, addr: u64) -> Ext {
        Ext::new(IomapType::Unwritten, offset, len, addr)
    }

    /// A kind DAX cannot map (INLINE, DELALLOC), with no device.
    pub fn other(kind: IomapType, offset: u64, len: u64) -> Ext {
        Ext::new(kind, offset, len, IOMAP_NULL_ADDR)
    }

    /// Reflinked data at `addr` (reported SHARED), copied to `dest` on write.
    pub fn reflink(offset: u64, len: u64, addr: u64, dest: u64) -> Ext {
        Ext {
            flags: IomapFlags::SHARED,
            cow: Some(Cow {
                dest,
                src_len: None,
                src_hole: false,
            }),
            ..Ext::mapped(offset, len, addr)
        }
    }

    /// Adds flags answered for every request.
    pub fn flags(mut self, f: IomapFlags) -> Ext {
        self.flags |= f;
        self
    }

    /// Adds flags answered for WRITE requests.
    pub fn on_write(mut self, f: IomapFlags) -> Ext {
        self.write_flags |= f;
        self
    }

    /// A WRITE allocates this extent at device byte `addr` (see the field `alloc`).
    pub fn alloc(mut self, addr: u64) -> Ext {
        self.alloc = Some(addr);
        self
    }

    /// A reflinked extent's source map is `len` bytes long.
    pub fn src_len(mut self, len: u64) -> Ext {
        self.cow.as_mut().expect("a reflinked extent").src_len = Some(len);
        self
    }

    /// A reflinked extent's old data was a hole: no source map.
    pub fn src_hole(mut self) -> Ext {
        self.cow.as_mut().expect("a reflinked extent").src_hole = true;
        self
    }

    fn end(&self) -> u64 {
        self.offset + self.len
    }

    /// The part of this extent over file bytes `from .. to` (inside it).
    fn slice(&self, from: u64, to: u64) -> Ext {
        let d = from - self.offset;
        let shift = |a: u64| if a == IOMAP_NULL_ADDR { a } else { a + d };
        Ext {
            offset: from,
            len: to - from,
            addr: shift(self.addr),
            alloc: self.alloc.map(shift),
            cow: self.cow.map(|c| Cow {
                dest: c.dest + d,
                src_len: c.src_len.map(|l| l.saturating_sub(d).min(to - from)),
                ..c
            }),
            ..self.clone()
        }
    }
}

/// A call the engine made to the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the calls' arguments of the same names
pub enum Call {
    /// `iomap_begin`.
    Begin {
        pos: u64,
        len: u64,
        flags: IterFlags,
    },
    /// `iomap_end`.
    End {
        pos: u64,
        len: u64,
        written: u64,
        flags: IterFlags,
    },
}

/// The `iomap_begin` call with these arguments.
pub fn begin(pos: u64, len: u64, flags: IterFlags) -> Call {
    Call::Begin { pos, len, flags }
}

/// The `iomap_end` call with these arguments.
pub fn end(pos: u64, len: u64, written: u64, flags: IterFlags) -> Call {
    Call::End {
        pos,
        len,
        written,
        flags,
    }
}

/// Holds one thread inside an operation until released.
pub struct Gate {
    entered: Receiver<()>,
    release: Sender<()>,
}

/// The thread side of a [`Gate`].
struct GateSide {
    entered: Sender<()>,
    release: Receiver<()>,
}

fn gate_pair() -> (Gate, GateSide) {
    let (etx, erx) = mpsc::channel();
    let (rtx, rrx) = mpsc::channel();
    (
        Gate {
            entered: erx,
            release: rtx,
        },
        GateSide {
            entered: etx,
            release: rrx,
        },
    )
}

impl GateSide {
    fn hold(self) {
        let _ = self.entered.send(());
        let _ = self.release.recv();
    }
}

impl Gate {
    /// Waits until a thread is held (panics after [`WATCHDOG`]).
    pub fn wait_entered(&self) {
        self.entered
            .recv_timeout(WATCHDOG)
            .expect("no thread reached the gate");
    }

    /// Lets the held thread go.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

type CallObserver = Arc<dyn Fn(&Call) + Send + Sync>;

/// A scripted filesystem with one file, on a device whose driver is `D`.
pub struct ScriptedFs<D: FaultDriver = MemDevice> {
    /// The device.
    pub dev: Arc<DaxDevice<D>>,
    /// The file's mapping (its entry index).
    pub mapping: Arc<DaxMapping>,
    /// The pfn of device page 0.
    base: Pfn,
    size: Mutex<u64>,
    exts: Mutex<Vec<Ext>>,
    log: Mutex<Vec<(ThreadId, Call)>>,
    begins: Mutex<usize>,
    fail_at: Mutex<Vec<(usize, DaxError)>>,
    gate: Mutex<Option<GateSide>>,
    observer: Mutex<Option<CallObserver>>,
    fsyncs: Mutex<Vec<(u64, u64)>>,
    fsync_err: Mutex<Option<DaxError>>,
}

impl ScriptedFs {
    /// A file of `size` bytes, all hole, on a new device of `dev_bytes` bytes
    /// ([`device`]).
    pub fn new(dev_bytes: u64, size: u64) -> Arc<ScriptedFs> {
        ScriptedFs::on(device(dev_bytes), size)
    }
}

impl<D: FaultDriver> ScriptedFs<D> {
    /// A file of `size` bytes, all hole, on `dev` (another file, if `dev` has one).
    pub fn on(dev: Arc<DaxDevice<D>>, size: u64) -> Arc<ScriptedFs<D>> {
        let base = dev
            .driver()
            .mem()
            .direct_access(0, 1, DaxAccessMode::Access)
            .expect("page 0 is there")
            .pfn;
        assert!(base.is_aligned(9), "device memory is 2 MiB aligned");
        let mapping = DaxMapping::new(dev.clone());
        Arc::new(ScriptedFs {
            dev,
            mapping,
            base,
            size: Mutex::new(size),
            exts: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            begins: Mutex::new(0),
            fail_at: Mutex::new(Vec::new()),
            gate: Mutex::new(None),
            observer: Mutex::new(None),
            fsyncs: Mutex::new(Vec::new()),
            fsync_err: Mutex::new(None),
        })
    }

    /// Adds an extent over what was there (the parts of older extents outside it
    /// stay).
    pub fn ext(&self, e: Ext) -> &Self {
        let mut v = self.exts.lock();
        let old = std::mem::take(&mut *v);
        for o in old {
            if o.end() <= e.offset || o.offset >= e.end() {
                v.push(o);
                continue;
            }
            if o.offset < e.offset {
                v.push(o.slice(o.offset, e.offset));
            }
            if o.end() > e.end() {
                v.push(o.slice(e.end(), o.end()));
            }
        }
        v.push(e);
        v.sort_by_key(|e| e.offset);
        self
    }

    /// Sets the file size.
    pub fn set_size(&self, size: u64) {
        *self.size.lock() = size;
    }

    /// The pfn of device byte `dev_addr`.
    pub fn pfn(&self, dev_addr: u64) -> Pfn {
        self.base.add(dev_addr / PAGE)
    }

    /// Writes `data` at device byte `addr` (bypassing poison).
    pub fn poke(&self, addr: u64, data: &[u8]) {
        self.dev.driver().mem().poke(addr, data).unwrap();
    }

    /// The `len` device bytes at `addr` (bypassing poison).
    pub fn peek(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.dev.driver().mem().peek(addr, &mut v).unwrap();
        v
    }

    /// Maps the file with `vma` into `space`.
    pub fn mmap(&self, vma: Vma, space: &Arc<Space>) -> Arc<MappedVma> {
        self.mapping
            .mmap(vma, space.clone() as Arc<dyn PageTable>)
            .unwrap()
    }

    /// A shared, writable mapping of the whole of `len` bytes at [`BASE`] in a new
    /// address space.
    pub fn map_rw(&self, len: u64) -> (Arc<Space>, Arc<MappedVma>) {
        let space = Space::new();
        let vma = self.mmap(Vma::new(BASE, len, 0).unwrap().writable(true), &space);
        (space, vma)
    }

    /// Makes `iomap_begin` call number `n` (0-based, counting every call) fail.
    pub fn fail_begin_at(&self, n: usize, err: DaxError) {
        self.fail_at.lock().push((n, err));
    }

    /// Makes the next `iomap_begin` fail.
    pub fn fail_next_begin(&self, err: DaxError) {
        let n = *self.begins.lock();
        self.fail_begin_at(n, err);
    }

    /// Holds the next `iomap_begin` until the gate is released.
    pub fn gate_next_begin(&self) -> Gate {
        let (gate, side) = gate_pair();
        *self.gate.lock() = Some(side);
        gate
    }

    /// Calls `f` for every begin and end, from the calling thread.
    pub fn observe(&self, f: impl Fn(&Call) + Send + Sync + 'static) {
        *self.observer.lock() = Some(Arc::new(f));
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().iter().map(|(_, c)| c.clone()).collect()
    }

    /// The calls so far with the thread that made each.
    pub fn calls_by_thread(&self) -> Vec<(ThreadId, Call)> {
        self.log.lock().clone()
    }

    /// The calls so far, forgetting them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.log.lock())
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    }

    /// The `fsync` a filesystem passes to `dax_finish_sync_fault`: records the range.
    pub fn fsync(&self, start: u64, end: u64) -> Result<(), DaxError> {
        self.fsyncs.lock().push((start, end));
        match self.fsync_err.lock().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Makes every later `fsync` fail with `err` (`None`: succeed again).
    pub fn fail_fsync(&self, err: Option<DaxError>) {
        *self.fsync_err.lock() = err;
    }

    /// The ranges [`Self::fsync`] was called with, oldest first.
    pub fn fsyncs(&self) -> Vec<(u64, u64)> {
        self.fsyncs.lock().clone()
    }

    /// Every entry as (first page, entry, marks), checking none is locked.
    pub fn ents(&self) -> Vec<(u64, Entry, Marks)> {
        let v = self.mapping.index().entries();
        assert!(
            v.iter().all(|e| !e.locked),
            "an entry is still locked: {v:?}"
        );
        v.iter().map(|e| (e.start, e.entry, e.marks)).collect()
    }

    /// The entry covering page `index`.
    pub fn entry(&self, index: u64) -> Option<EntryInfo> {
        self.mapping.index().lookup(index)
    }

    /// The index's page count.
    pub fn nrpages(&self) -> u64 {
        self.mapping.index().nrpages()
    }

    fn record(&self, call: Call) {
        self.log
            .lock()
            .push((std::thread::current().id(), call.clone()));
        let obs = self.observer.lock().clone();
        if let Some(f) = obs {
            f(&call);
        }
    }

    fn answer(&self, e: &Ext, write: bool, new: bool) -> (Iomap<'_>, Option<Iomap<'_>>) {
        let dev: &DaxDevice = &*self.dev;
        let mut flags = e.flags;
        if write {
            flags |= e.write_flags;
        }
        if new {
            flags |= IomapFlags::NEW;
        }
        if write && let Some(c) = e.cow {
            let map = Iomap {
                addr: c.dest,
                offset: e.offset,
                length: e.len,
                kind: IomapType::Mapped,
                flags: flags | IomapFlags::SHARED,
                dax_dev: Some(dev),
                ..Iomap::default()
            };
            let src = (!c.src_hole).then(|| Iomap {
                addr: e.addr,
                offset: e.offset,
                length: c.src_len.unwrap_or(e.len),
                kind: e.kind,
                dax_dev: Some(dev),
                ..Iomap::default()
            });
            return (map, src);
        }
        let storage = matches!(e.kind, IomapType::Mapped | IomapType::Unwritten);
        let map = Iomap {
            addr: if storage { e.addr } else { IOMAP_NULL_ADDR },
            offset: e.offset,
            length: e.len,
            kind: e.kind,
            flags,
            dax_dev: (storage || flags.contains(IomapFlags::SHARED)).then_some(dev),
            ..Iomap::default()
        };
        (map, None)
    }
}

impl<D: FaultDriver> Drop for ScriptedFs<D> {
    fn drop(&mut self) {
        // Drop the device-page ownership the file's entries hold, as eviction's
        // `dax_break_layout_final` would: the table is process-wide, and a later
        // device may reuse these addresses when tests share a process.
        self.mapping.index().delete_range(0, u64::MAX / PAGE);
    }
}

impl<D: FaultDriver> IomapOps for ScriptedFs<D> {
    fn iomap_begin(
        &self,
        pos: u64,
        length: u64,
        flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        let n = {
            let mut b = self.begins.lock();
            *b += 1;
            *b - 1
        };
        self.record(begin(pos, length, flags));
        let gate = self.gate.lock().take();
        if let Some(g) = gate {
            g.hold();
        }
        {
            let mut f = self.fail_at.lock();
            if let Some(i) = f.iter().position(|(at, _)| *at == n) {
                return Err(f.remove(i).1);
            }
        }
        let write = flags.contains(IterFlags::WRITE);
        let mut exts = self.exts.lock();
        let Some(e) = exts.iter_mut().find(|e| e.offset <= pos && pos < e.end()) else {
            let next = exts
                .iter()
                .map(|e| e.offset)
                .find(|&o| o > pos)
                .unwrap_or(pos + (1 << 40));
            return Ok((Iomap::hole(pos, next - pos), None));
        };
        let mut new = false;
        if write
            && matches!(e.kind, IomapType::Hole | IomapType::Unwritten)
            && let Some(a) = e.alloc.take()
        {
            e.kind = IomapType::Mapped;
            e.addr = a;
            new = true;
            self.dev
                .driver()
                .mem()
                .poke(a, &vec![0u8; e.len as usize])
                .unwrap();
        }
        let e = e.clone();
        drop(exts);
        Ok(self.answer(&e, write, new))
    }

    fn iomap_end(
        &self,
        pos: u64,
        length: u64,
        written: u64,
        flags: IterFlags,
        _iomap: &Iomap<'_>,
    ) -> Result<(), DaxError> {
        self.record(end(pos, length, written, flags));
        if flags.contains(IterFlags::WRITE) && written > 0 {
            let mut exts = self.exts.lock();
            if let Some(e) = exts.iter_mut().find(|e| e.offset <= pos && pos < e.end())
                && let Some(c) = e.cow.take()
            {
                e.addr = c.dest;
                e.kind = IomapType::Mapped;
                e.flags.remove(IomapFlags::SHARED);
            }
        }
        Ok(())
    }
}

impl<D: FaultDriver> DaxInode for ScriptedFs<D> {
    fn i_size(&self) -> u64 {
        *self.size.lock()
    }

    fn mapping(&self) -> Option<&dyn MappingOps> {
        Some(&*self.mapping)
    }
}

// ---------------------------------------------------------------------------------
// The address space

/// The [`PageTable`] operations a [`Space`] can observe and hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // named after the PageTable operations they stand for
pub enum PtOp {
    MapPte,
    MapZeroPte,
    MkwritePte,
    MapPmd,
    MapHugeZero,
    MkwritePmd,
    MapPrivate,
    SplitPmd,
    Unmap,
    Wrprotect,
}

type PtObserver = Arc<dyn Fn(PtOp, u64) + Send + Sync>;

/// A simulated address space with an observer and a one-shot gate.
#[derive(Default)]
pub struct Space {
    sim: SimPageTable,
    gate: Mutex<Option<(PtOp, GateSide)>>,
    observer: Mutex<Option<PtObserver>>,
}

impl Deref for Space {
    type Target = SimPageTable;

    fn deref(&self) -> &SimPageTable {
        &self.sim
    }
}

impl Space {
    /// An empty address space.
    pub fn new() -> Arc<Space> {
        Arc::new(Space::default())
    }

    /// Holds the next `op` (before it takes effect) until the gate is released.
    pub fn gate_next(&self, op: PtOp) -> Gate {
        let (gate, side) = gate_pair();
        *self.gate.lock() = Some((op, side));
        gate
    }

    /// Calls `f(op, addr)` before every operation, from the calling thread.
    pub fn observe(&self, f: impl Fn(PtOp, u64) + Send + Sync + 'static) {
        *self.observer.lock() = Some(Arc::new(f));
    }

    fn enter(&self, op: PtOp, addr: u64) {
        let obs = self.observer.lock().clone();
        if let Some(f) = obs {
            f(op, addr);
        }
        let side = {
            let mut g = self.gate.lock();
            match g.take() {
                Some((o, side)) if o == op => Some(side),
                other => {
                    *g = other;
                    None
                }
            }
        };
        if let Some(side) = side {
            side.hold();
        }
    }
}

impl PageTable for Space {
    fn pte(&self, addr: u64) -> Option<Pte> {
        self.sim.pte(addr)
    }

    fn pmd(&self, addr: u64) -> PmdSlot {
        self.sim.pmd(addr)
    }

    fn insert_pte(
        &self,
        addr: u64,
        value: PteValue<'_>,
        write: bool,
        writable: bool,
    ) -> Result<Inserted, DaxError> {
        // Named by what the insertion will do, as the old per-kind calls were.
        let op = match (self.sim.pte(addr).is_some(), value) {
            (true, _) if write => PtOp::MkwritePte,
            (_, PteValue::Zero) => PtOp::MapZeroPte,
            _ => PtOp::MapPte,
        };
        self.enter(op, addr);
        self.sim.insert_pte(addr, value, write, writable)
    }

    fn insert_pmd(
        &self,
        addr: u64,
        value: PmdValue<'_>,
        write: bool,
        writable: bool,
    ) -> Result<Inserted, DaxError> {
        let op = match (self.sim.pmd(addr).is_huge(), value) {
            (_, PmdValue::Zero) => PtOp::MapHugeZero,
            (true, _) if write => PtOp::MkwritePmd,
            _ => PtOp::MapPmd,
        };
        self.enter(op, addr);
        self.sim.insert_pmd(addr, value, write, writable)
    }

    fn insert_private(&self, addr: u64, data: &[u8; PAGE_SIZE]) -> Result<Inserted, DaxError> {
        self.enter(PtOp::MapPrivate, addr);
        self.sim.insert_private(addr, data)
    }

    fn split_pmd(&self, addr: u64) {
        self.enter(PtOp::SplitPmd, addr);
        self.sim.split_pmd(addr)
    }

    fn unmap(&self, addr: u64, len: u64, even_cows: bool) {
        self.enter(PtOp::Unmap, addr);
        self.sim.unmap(addr, len, even_cows)
    }

    fn wrprotect(&self, addr: u64, len: u64, first: Pfn, pages: u64) {
        self.enter(PtOp::Wrprotect, addr);
        self.sim.wrprotect(addr, len, first, pages)
    }

    fn release(&self, addr: u64, len: u64) {
        self.sim.release(addr, len)
    }
}

// ---------------------------------------------------------------------------------
// Faults

/// What one call of `dax_iomap_fault` gave back.
#[derive(Debug)]
pub struct Faulted {
    /// Its return value.
    pub ret: VmFault,
    /// `*pfnp`, if the engine wrote it.
    pub pfn: Option<Pfn>,
    /// `*iomap_errp`, if the engine wrote it.
    pub err: Option<Result<(), DaxError>>,
}

const PFN_UNTOUCHED: Pfn = Pfn(u64::MAX);

fn errp_untouched() -> Result<(), DaxError> {
    Err(DaxError::Os {
        errno: 0,
        what: "iomap_errp untouched",
    })
}

/// A fault of `order` at `addr` in `vma`, with both out-parameters.
pub fn fault<D: FaultDriver>(
    fs: &ScriptedFs<D>,
    vma: &MappedVma,
    addr: u64,
    order: u32,
    flags: FaultFlags,
) -> Faulted {
    let vmf = Vmf::new(vma, addr, flags).expect("a valid fault");
    let mut pfn = PFN_UNTOUCHED;
    let mut err = errp_untouched();
    let ret = dax_iomap_fault(&vmf, order, fs, fs, Some(&mut pfn), Some(&mut err));
    Faulted {
        ret,
        pfn: (pfn != PFN_UNTOUCHED).then_some(pfn),
        err: (err != errp_untouched()).then_some(err),
    }
}

/// A PTE read fault.
pub fn rd<D: FaultDriver>(fs: &ScriptedFs<D>, vma: &MappedVma, addr: u64) -> VmFault {
    fault(fs, vma, addr, 0, FaultFlags::empty()).ret
}

/// A PTE write fault (no PTE present).
pub fn wr<D: FaultDriver>(fs: &ScriptedFs<D>, vma: &MappedVma, addr: u64) -> VmFault {
    fault(fs, vma, addr, 0, FaultFlags::WRITE).ret
}

/// A PTE write fault on a page mapped read-only (`pfn_mkwrite`).
pub fn mkwr<D: FaultDriver>(fs: &ScriptedFs<D>, vma: &MappedVma, addr: u64) -> VmFault {
    fault(fs, vma, addr, 0, FaultFlags::WRITE | FaultFlags::MKWRITE).ret
}

/// A PMD read fault.
pub fn pmd_rd<D: FaultDriver>(fs: &ScriptedFs<D>, vma: &MappedVma, addr: u64) -> VmFault {
    fault(fs, vma, addr, 9, FaultFlags::empty()).ret
}

/// A PMD write fault.
pub fn pmd_wr<D: FaultDriver>(fs: &ScriptedFs<D>, vma: &MappedVma, addr: u64) -> VmFault {
    fault(fs, vma, addr, 9, FaultFlags::WRITE).ret
}

/// A device page PTE.
pub fn page(pfn: Pfn, writable: bool) -> Pte {
    Pte::Page {
        pfn,
        writable,
        dirty: writable,
    }
}

/// A huge device mapping.
pub fn huge(pfn: Pfn, writable: bool) -> PmdSlot {
    PmdSlot::Huge {
        pfn,
        writable,
        dirty: writable,
    }
}

/// How long a test waits for something another thread must do before calling it
/// broken. Never reached by a working engine: it only turns a hang into a failure.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Spins (yielding) until `cond` holds: for waiting on another thread's progress that
/// a probe can see, never for time to pass. Panics with `what` if it does not happen
/// within [`WATCHDOG`].
pub fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WATCHDOG, "never happened: {what}");
        std::thread::yield_now();
    }
}
