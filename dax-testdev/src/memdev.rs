//! [`MemDevice`]: a DAX driver over real memory that behaves like the kernel's pmem
//! driver (drivers/nvdimm/pmem.c), with poison you can inject and clear.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dax_device::badblocks::BadblocksCheck;
use dax_device::{
    Badblocks, CACHELINE_SIZE, DaxAccessMode, DaxDevice, DaxError, DaxOperations, MapSource,
    MfFlags, PAGE_SECTORS, PAGE_SIZE, Pfn, RawAccess, SECTOR_SIZE,
};
use dax_drivers::{MemDriver, MemOptions};
use parking_lot::Mutex;

use crate::counters::{CallCounts, N_COUNTERS};
use crate::heap::HeapMemory;
use crate::power::{PointCause, PowerLog, PowerOptions, Recorder};

/// Where a [`MemDevice`]'s memory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backing {
    /// Private anonymous memory (`mmap(MAP_ANONYMOUS)`). It has no file descriptor, so
    /// it cannot be mapped again elsewhere ([`DaxOperations::map_source`] is `None`).
    Anonymous,
    /// A memfd (`memfd_create`), mapped `MAP_SHARED`: 4 KiB pages, and a descriptor
    /// the `mmu` backend can map. The default.
    Memfd,
    /// A memfd whose memory the kernel backs with transparent huge pages
    /// (`madvise(MADV_HUGEPAGE)` on shmem): it maps in 2 MiB pages where a mapping is
    /// 2 MiB aligned, and any 4 KiB of it can still be mapped alone, so it serves PMD
    /// and PTE faults alike: the PMD-capable device to use by default. Needs shmem THP
    /// enabled for `advise` (as root: `echo advise >
    /// /sys/kernel/mm/transparent_hugepage/shmem_enabled`), or
    /// [`MemDeviceBuilder::build`] fails with `EOPNOTSUPP` naming that file; the size
    /// must be a multiple of 2 MiB.
    ShmemThp,
    /// A hugetlb memfd (`memfd_create(MFD_HUGETLB | MFD_HUGE_2MB)`): 2 MiB pages only,
    /// as device-dax has them (a 4 KiB piece of it cannot be mapped alone). The
    /// size must be a multiple of 2 MiB and the pages must be reserved
    /// (`sysctl vm.nr_hugepages`), or [`MemDeviceBuilder::build`] fails with `ENOMEM`.
    HugetlbMemfd,
    /// A regular file, created if missing and extended to the device size: its bytes
    /// survive the process, so a device can be reopened and read back. So does its
    /// poison: the hardware poison is kept in `FILE.poison` beside it and reported
    /// again at the next open (hardware poison and known bad sectors both, as a real
    /// pmem platform's scrub reports it after a reboot).
    File(PathBuf),
    /// A device-dax character device (`/dev/daxX.Y`); the size and alignment come from
    /// sysfs.
    DevDax(PathBuf),
    /// Memory from the Rust allocator (zeroed, 2 MiB aligned), reached with no system
    /// call at all: no descriptor (so, as [`Backing::Anonymous`], it cannot be mapped
    /// again elsewhere), no `mmap`. It is the backing that runs under Miri, and the
    /// default there.
    Heap,
}

/// Operations of a [`MemDevice`] that can be counted and made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DevOp {
    /// [`DaxOperations::direct_access`].
    DirectAccess,
    /// [`DaxOperations::zero_page_range`].
    ZeroPageRange,
    /// [`DaxOperations::recovery_write`].
    RecoveryWrite,
    /// The firmware poison clear ([`MemDevice::clear_poison`]).
    ClearPoison,
    /// Block-path reads ([`MemDevice::read`]).
    Read,
    /// Block-path writes ([`MemDevice::write`]).
    Write,
    /// [`DaxOperations::flush`].
    Flush,
}

const N_OPS: usize = 7;
const _: () = assert!(N_OPS <= N_COUNTERS);

impl DevOp {
    fn index(self) -> usize {
        match self {
            DevOp::DirectAccess => 0,
            DevOp::ZeroPageRange => 1,
            DevOp::RecoveryWrite => 2,
            DevOp::ClearPoison => 3,
            DevOp::Read => 4,
            DevOp::Write => 5,
            DevOp::Flush => 6,
        }
    }
}

/// Parses a size as a command line gives it: digits with an optional `K`, `M`, `G`
/// or `T` suffix, powers of 1024, in any case (`KiB`, `MB`, `b` are accepted too).
/// `None` when it is not a size or does not fit in a `u64`. The callers (the tour,
/// `daxfs-fuse`) check what sizes they accept.
///
/// ```
/// use dax_testdev::parse_size;
/// assert_eq!(parse_size("1G"), Some(1 << 30));
/// assert_eq!(parse_size(" 512MiB "), Some(512 << 20));
/// assert_eq!(parse_size("4096"), Some(4096));
/// assert_eq!(parse_size("1Q"), None);
/// assert_eq!(parse_size("M"), None);
/// assert_eq!(parse_size("99999999999T"), None);
/// ```
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Builder for a [`MemDevice`] wrapped in a [`DaxDevice`].
///
/// ```
/// use dax_testdev::{Backing, MemDevice};
/// let dev = MemDevice::builder().size(4 << 20).backing(Backing::Memfd).build()?;
/// assert_eq!(dev.driver().size(), 4 << 20);
/// assert!(dev.synchronous() && dev.write_cache_enabled());
/// # Ok::<(), dax_device::DaxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemDeviceBuilder {
    size: Option<u64>,
    backing: Backing,
    write_cache: bool,
    synchronous: bool,
    clear_unit: u64,
    populate: bool,
    nocache: bool,
}

impl Default for MemDeviceBuilder {
    fn default() -> Self {
        MemDeviceBuilder {
            size: None,
            // Miri can neither create a memfd nor map one: there the default memory
            // comes from the heap, so the tests that only need *a* device run.
            backing: if cfg!(miri) {
                Backing::Heap
            } else {
                Backing::Memfd
            },
            write_cache: true,
            synchronous: true,
            clear_unit: SECTOR_SIZE as u64,
            populate: false,
            nocache: true,
        }
    }
}

impl MemDeviceBuilder {
    /// Device size in bytes; must be a multiple of 4096 (2 MiB for hugetlb). Optional
    /// for [`Backing::File`] (an existing file's size) and [`Backing::DevDax`] (the
    /// device's size).
    pub fn size(mut self, bytes: u64) -> Self {
        self.size = Some(bytes);
        self
    }

    /// Where the memory comes from (default [`Backing::Memfd`]; [`Backing::Heap`] under
    /// Miri).
    pub fn backing(mut self, backing: Backing) -> Self {
        self.backing = backing;
        self
    }

    /// Whether the device has a write cache to flush: sets `DAXDEV_WRITE_CACHE` (pmem's
    /// "region has cache"). Default true.
    pub fn write_cache(mut self, on: bool) -> Self {
        self.write_cache = on;
        self
    }

    /// Whether the device is synchronous: sets `DAXDEV_SYNC`, allowing MAP_SYNC (pmem
    /// regions are, virtio-pmem is not). Default true.
    pub fn synchronous(mut self, on: bool) -> Self {
        self.synchronous = on;
        self
    }

    /// The platform's poison clear unit in bytes (a power of two, at most 4096;
    /// default 512): firmware clears must be aligned to it, or fail with `ENXIO`
    /// (`nvdimm_clear_poison`).
    pub fn clear_unit(mut self, bytes: u64) -> Self {
        self.clear_unit = bytes;
        self
    }

    /// Whether writes through the device bypass the CPU cache: sets `DAXDEV_NOCACHE`
    /// (pmem always does, so data written by `dax_iomap_rw` has left the cache on
    /// return). Default true; false models memory whose contents need no cache
    /// write-back (volatile CXL or DRAM-backed `/dev/dax`), where writes are ordinary
    /// stores.
    pub fn nocache(mut self, on: bool) -> Self {
        self.nocache = on;
        self
    }

    /// Prefault every page when mapping (`MAP_POPULATE`). Default false.
    pub fn populate(mut self, on: bool) -> Self {
        self.populate = on;
        self
    }

    /// Creates the device and wraps it in a live [`DaxDevice`] with the flags pmem sets
    /// at attach (`pmem_attach_disk`): NOMC always, NOCACHE unless turned off, SYNC and
    /// WRITE_CACHE as configured.
    pub fn build(self) -> Result<Arc<DaxDevice<MemDevice>>, DaxError> {
        let (write_cache, synchronous, nocache) =
            (self.write_cache, self.synchronous, self.nocache);
        let dev = DaxDevice::new(self.build_driver()?);
        if nocache {
            dev.set_nocache();
        }
        dev.set_nomc();
        dev.set_write_cache(write_cache);
        if synchronous {
            dev.set_synchronous();
        }
        Ok(dev)
    }

    fn build_driver(self) -> Result<MemDevice, DaxError> {
        if !self.clear_unit.is_power_of_two() || self.clear_unit > PAGE_SIZE as u64 {
            return Err(DaxError::InvalidArgument {
                what: "clear unit must be a power of two no larger than 4096",
            });
        }
        let opts = MemOptions::new().populate(self.populate);
        let mem = match &self.backing {
            Backing::Heap => Memory::Heap(HeapMemory::new(self.require_size()?)?),
            Backing::Anonymous => Memory::Mapped(opts.anonymous(self.require_size()?)?),
            Backing::Memfd => Memory::Mapped(opts.memfd(self.require_size()?)?),
            Backing::ShmemThp => Memory::Mapped(opts.shmem_thp(self.require_size()?)?),
            Backing::HugetlbMemfd => Memory::Mapped(opts.hugetlb(self.require_size()?)?),
            Backing::File(path) => Memory::Mapped(match self.size {
                Some(size) => opts.file(path, size)?,
                None if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) => {
                    opts.open_file(path)?
                }
                None => {
                    return Err(DaxError::InvalidArgument {
                        what: "a new device file needs a size",
                    });
                }
            }),
            Backing::DevDax(path) => Memory::Mapped(match self.size {
                Some(size) => opts.limit(size).dev_dax(path)?,
                None => opts.dev_dax(path)?,
            }),
        };
        let dev = MemDevice {
            nr_pages: mem.nr_pages(),
            mem,
            backing: self.backing,
            badblocks: Badblocks::new(),
            hw: Mutex::new(BTreeMap::new()),
            hw_any: AtomicBool::new(false),
            clear_unit: self.clear_unit,
            inject: Mutex::new(Injections::default()),
            injecting: AtomicBool::new(false),
            calls: CallCounts::new(),
            power: Mutex::new(None),
            recording: AtomicBool::new(false),
        };
        dev.load_poison()?;
        Ok(dev)
    }

    fn require_size(&self) -> Result<u64, DaxError> {
        self.size.ok_or(DaxError::InvalidArgument {
            what: "this backing needs a size",
        })
    }
}

/// When injected failures of an operation happen (see [`MemDevice::inject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailSchedule {
    /// Let `skip` calls through, then fail `count` calls, then stop failing.
    After {
        /// Calls let through first.
        skip: u32,
        /// Calls that fail after those.
        count: u32,
    },
    /// Fail every `n`th call (the `n`th, the `2n`th, ...), until cleared; `n` of 0 or
    /// 1 fails every call.
    EveryNth(u32),
    /// Fail each call with probability `1 / one_in`, drawn from a generator seeded
    /// with `seed` (the same seed and the same call order give the same failures);
    /// until cleared. `one_in` of 0 or 1 fails every call.
    Random {
        /// Seed of the generator (xorshift64*; 0 is replaced by a fixed constant).
        seed: u64,
        /// One call in this many fails, on average.
        one_in: u32,
    },
}

/// One pending injection: its schedule, its progress and the error. `MemDevice`
/// keeps one per operation, TestFs's iomap hooks one per hook: one seed gives one
/// sequence in both.
#[derive(Debug)]
pub(crate) struct Injected {
    schedule: FailSchedule,
    /// Calls seen since the injection was set (`After`, `EveryNth`), or the
    /// generator's state (`Random`).
    state: u64,
    pub(crate) err: DaxError,
}

impl Injected {
    /// `schedule` failing with `err`, from its first call.
    pub(crate) fn new(schedule: FailSchedule, err: DaxError) -> Self {
        let state = match schedule {
            FailSchedule::Random { seed, .. } if seed != 0 => seed,
            FailSchedule::Random { .. } => 0x9E37_79B9_7F4A_7C15,
            _ => 0,
        };
        Injected {
            schedule,
            state,
            err,
        }
    }

    /// Whether this call fails, and whether the injection is used up.
    pub(crate) fn next(&mut self) -> (bool, bool) {
        match self.schedule {
            FailSchedule::After { skip, count } => {
                self.state += 1;
                let n = self.state;
                (n > u64::from(skip), n >= u64::from(skip) + u64::from(count))
            }
            FailSchedule::EveryNth(n) => {
                self.state += 1;
                (self.state.is_multiple_of(u64::from(n.max(1))), false)
            }
            FailSchedule::Random { one_in, .. } => {
                // xorshift64* (Vigna): enough to spread failures, and reproducible.
                let mut x = self.state;
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                self.state = x;
                let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
                (r.is_multiple_of(u64::from(one_in.max(1))), false)
            }
        }
    }
}

/// What the next firmware poison clears do (see [`MemDevice::inject_partial_clear`]).
#[derive(Debug, Default)]
struct Injections {
    /// Per operation: the pending injection.
    errors: [Option<Injected>; N_OPS],
    partial_clear: Option<(u32, u64)>,
}

/// The memory under a [`MemDevice`]: the production driver's mapping, or the heap.
pub(crate) enum Memory {
    /// Mapped memory ([`MemDriver`]): every backing but [`Backing::Heap`].
    Mapped(MemDriver),
    /// [`Backing::Heap`].
    Heap(HeapMemory),
}

impl Memory {
    /// The size in bytes.
    pub(crate) fn size(&self) -> u64 {
        match self {
            Memory::Mapped(m) => m.size(),
            Memory::Heap(h) => h.len() as u64,
        }
    }

    fn nr_pages(&self) -> u64 {
        match self {
            Memory::Mapped(m) => m.nr_pages(),
            Memory::Heap(h) => h.nr_pages(),
        }
    }

    fn page_size(&self) -> usize {
        match self {
            Memory::Mapped(m) => m.page_size(),
            Memory::Heap(_) => PAGE_SIZE,
        }
    }

    fn base_pfn(&self) -> Pfn {
        match self {
            Memory::Mapped(m) => m.base_pfn(),
            Memory::Heap(h) => h.base_pfn(),
        }
    }

    fn offset_of(&self, addr: *const u8) -> Option<u64> {
        match self {
            Memory::Mapped(m) => m.offset_of(addr),
            Memory::Heap(h) => h.offset_of(addr),
        }
    }

    pub(crate) fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DaxError> {
        match self {
            Memory::Mapped(m) => m.read(offset, buf),
            Memory::Heap(h) => h.read(offset, buf),
        }
    }

    fn write(&self, offset: u64, buf: &[u8]) -> Result<(), DaxError> {
        match self {
            Memory::Mapped(m) => m.write(offset, buf),
            Memory::Heap(h) => h.write(offset, buf),
        }
    }

    fn write_cached(&self, offset: u64, buf: &[u8]) -> Result<(), DaxError> {
        match self {
            Memory::Mapped(m) => m.write_cached(offset, buf),
            Memory::Heap(h) => h.write_cached(offset, buf),
        }
    }

    fn zero(&self, offset: u64, len: u64) -> Result<(), DaxError> {
        match self {
            Memory::Mapped(m) => m.zero(offset, len),
            Memory::Heap(h) => h.zero(offset, len),
        }
    }

    /// Every page from `pgoff` to the end, or none past it.
    fn direct_access(
        &self,
        pgoff: u64,
        nr_pages: u64,
        mode: DaxAccessMode,
    ) -> Result<RawAccess, DaxError> {
        match self {
            Memory::Mapped(m) => m.direct_access(pgoff, nr_pages, mode),
            Memory::Heap(h) => Ok(h.direct_access(pgoff)),
        }
    }

    fn flush(&self) -> Result<(), DaxError> {
        match self {
            Memory::Mapped(m) => m.flush(),
            Memory::Heap(_) => {
                dax_device::persist::drain();
                Ok(())
            }
        }
    }

    fn map_source(&self) -> Option<MapSource<'_>> {
        match self {
            Memory::Mapped(m) => m.map_source(),
            Memory::Heap(_) => None,
        }
    }
}

/// A DAX driver over real memory with the pmem driver's behaviour
/// (drivers/nvdimm/pmem.c), built on a [`dax_drivers::MemDriver`] that owns the
/// memory: `direct_access` answers as `__pmem_direct_access` does
/// around known bad sectors, writes through the driver (`zero_page_range`,
/// `recovery_write`, [`MemDevice::write`]) clear poison through a modelled firmware
/// call and update the [`Badblocks`] table, and reads stop at hardware poison.
///
/// Poison has two layers, as on a real platform: *hardware poison* (cache lines whose
/// reads would machine-check; [`DaxOperations::first_poisoned_byte`] reports them) and
/// the *badblocks table* of known bad sectors (what the platform told the driver).
/// [`MemDevice::poison`] sets both, [`MemDevice::poison_latent`] only the first.
///
/// Deliberate differences from pmem 6.15: `direct_access` never answers
/// pages past the end of the device (pmem returns the requested count even past the
/// end when bad blocks exist elsewhere, and wraps for offsets past the end); an offset
/// past the end answers 0 pages, which dax-device reports as `ERANGE`.
pub struct MemDevice {
    /// The memory: its mapping (or heap allocation), copies and flush.
    mem: Memory,
    nr_pages: u64,
    backing: Backing,
    badblocks: Badblocks,
    /// Hardware-poisoned cache lines as a map of line-range start → end (byte offsets,
    /// 64-byte aligned, merged).
    hw: Mutex<BTreeMap<u64, u64>>,
    hw_any: AtomicBool,
    clear_unit: u64,
    inject: Mutex<Injections>,
    /// Whether any injection was ever made: lets every call skip the mutex on a device
    /// nobody injects into (the common case, and the hot path of every read and
    /// fault). Sticky: resetting it could race with a concurrent injection.
    injecting: AtomicBool,
    /// Per-operation call counts, kept per thread (no shared atomic per call).
    calls: CallCounts,
    /// The power-loss recorder, while recording ([`MemDevice::record_power_loss`]).
    power: Mutex<Option<Recorder>>,
    /// Whether `power` holds a recorder: lets every call skip its mutex otherwise.
    recording: AtomicBool,
}

impl fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemDevice")
            .field("size", &self.size())
            .field("backing", &self.backing)
            .field("page_size", &self.mem.page_size())
            .field("bad_records", &self.badblocks.count())
            .finish_non_exhaustive()
    }
}

impl MemDevice {
    /// A builder with the defaults: memfd backing, write cache and synchronous, clear
    /// unit 512 bytes.
    pub fn builder() -> MemDeviceBuilder {
        MemDeviceBuilder::default()
    }

    /// Device size in bytes.
    pub fn size(&self) -> u64 {
        self.nr_pages * PAGE_SIZE as u64
    }

    /// The backing memory.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The path of a file or device-dax backing.
    pub fn path(&self) -> Option<&Path> {
        match &self.backing {
            Backing::File(p) | Backing::DevDax(p) => Some(p),
            _ => None,
        }
    }

    /// The table of known bad sectors (sector 0 = device byte 0).
    pub fn badblocks(&self) -> &Badblocks {
        &self.badblocks
    }

    /// How many times `op` has been called (injected failures included).
    ///
    /// Counted per thread (so that counting costs no shared atomic operation per
    /// call) and summed here: exact for calls made by this thread and by threads it
    /// has joined; a snapshot while other threads are still calling.
    pub fn calls(&self, op: DevOp) -> u64 {
        self.calls.get(op.index())
    }

    /// Makes the next `count` calls of `op` fail with `err` (for
    /// [`DevOp::RecoveryWrite`], return 0 bytes). A later call replaces the setting.
    pub fn inject_error(&self, op: DevOp, count: u32, err: DaxError) {
        self.inject_error_after(op, 0, count, err);
    }

    /// Lets the next `skip` calls of `op` through, then makes `count` calls fail with
    /// `err` (for example the second flush of a checkpoint: its commit, after the data
    /// flush). A later call replaces the setting.
    pub fn inject_error_after(&self, op: DevOp, skip: u32, count: u32, err: DaxError) {
        if count == 0 {
            self.inject.lock().errors[op.index()] = None;
            return;
        }
        self.inject(op, FailSchedule::After { skip, count }, err);
    }

    /// Makes calls of `op` fail with `err` on `schedule` (for
    /// [`DevOp::RecoveryWrite`], return 0 bytes): a fault-injection plan such as
    /// "every 7th `zero_page_range`" or "one `direct_access` in 50, seed 3". A later
    /// call for the same `op` replaces it; [`clear_injections`](Self::clear_injections)
    /// removes all.
    ///
    /// ```
    /// use dax_device::{DaxAccessMode, DaxError};
    /// use dax_testdev::{DevOp, FailSchedule, MemDevice};
    /// let dev = MemDevice::builder().size(1 << 20).build()?;
    /// let eio = DaxError::Io { what: "injected" };
    /// dev.driver().inject(DevOp::DirectAccess, FailSchedule::EveryNth(3), eio);
    /// let g = dev.read_lock();
    /// let ok: Vec<bool> = (0..6)
    ///     .map(|_| g.direct_access(0, 1, DaxAccessMode::Access).is_ok())
    ///     .collect();
    /// assert_eq!(ok, [true, true, false, true, true, false]);
    /// # Ok::<(), DaxError>(())
    /// ```
    pub fn inject(&self, op: DevOp, schedule: FailSchedule, err: DaxError) {
        self.inject.lock().errors[op.index()] = Some(Injected::new(schedule, err));
        self.injecting.store(true, Ordering::SeqCst);
    }

    /// Makes the next `count` firmware clears report only `cleared` bytes cleared
    /// (clamped to the request); the poison beyond stays.
    pub fn inject_partial_clear(&self, count: u32, cleared: u64) {
        self.inject.lock().partial_clear = (count > 0).then_some((count, cleared));
        self.injecting.store(true, Ordering::SeqCst);
    }

    /// Removes every pending injection.
    pub fn clear_injections(&self) {
        *self.inject.lock() = Injections::default();
    }

    /// Counts a call of `op` and returns the injected error for it, if one is due;
    /// then, while recording with driver-call points, takes the point of a call that
    /// may write (see [`crate::power`]).
    fn enter(&self, op: DevOp) -> Result<(), DaxError> {
        self.calls.count(op.index());
        self.check_injected(op)?;
        if self.recording.load(Ordering::SeqCst)
            && matches!(
                op,
                DevOp::DirectAccess | DevOp::ZeroPageRange | DevOp::RecoveryWrite | DevOp::Write
            )
        {
            self.power_point(PointCause::Call(op), true)?;
        }
        Ok(())
    }

    /// The injected error for this call of `op`, if one is due.
    fn check_injected(&self, op: DevOp) -> Result<(), DaxError> {
        if !self.injecting.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut inj = self.inject.lock();
        let slot = &mut inj.errors[op.index()];
        let Some(injected) = slot else {
            return Ok(());
        };
        let (fail, used_up) = injected.next();
        let err = fail.then(|| injected.err.clone());
        if used_up {
            *slot = None;
        }
        err.map_or(Ok(()), Err)
    }

    /// Starts recording for power-loss simulation (see [`crate::power`] for the model
    /// and what it claims): the device's contents now become the log's base, and
    /// every flush (and, with [`PowerOptions::driver_calls`], every driver call that
    /// may write) becomes a point keeping the 64-byte lines changed since the previous
    /// one. A recording already under way is replaced. Each point reads the whole
    /// device: meant for small devices (a few MiB).
    ///
    /// ```
    /// use dax_testdev::{MemDevice, PowerOptions, Subset};
    /// let dev = MemDevice::builder().size(1 << 20).build()?;
    /// dev.driver().record_power_loss(PowerOptions::new())?;
    /// dev.driver().poke(0, b"durable")?;
    /// dev.flush()?; // point 0
    /// dev.driver().poke(4096, b"in flight")?;
    /// let log = dev.driver().take_power_log().unwrap();
    /// let mut replay = log.replay();
    /// assert!(replay.advance()); // after point 0: its lines are durable
    /// let lost = replay.crash_image(Subset::Nothing);
    /// assert_eq!((&lost[..7], &lost[4096..4105]), (&b"durable"[..], &[0u8; 9][..]));
    /// let kept = replay.crash_image(Subset::Everything);
    /// assert_eq!(&kept[4096..4105], b"in flight");
    /// # Ok::<(), dax_device::DaxError>(())
    /// ```
    pub fn record_power_loss(&self, opts: PowerOptions) -> Result<(), DaxError> {
        let rec = Recorder::start(&self.mem, opts)?;
        *self.power.lock() = Some(rec);
        self.recording.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// A durability point of the caller's ([`PointCause::Mark`]): what was stored so
    /// far counts as durable from here on, as after the user's own cache write-back
    /// and fence (`persist_range`) through a MAP_SYNC mapping, which the device
    /// cannot see. Does nothing when not recording.
    pub fn power_mark(&self, label: &str) -> Result<(), DaxError> {
        self.power_point(PointCause::Mark(label.into()), false)
    }

    /// Points recorded so far (0 when not recording): lets a workload tell which
    /// points its operations made.
    pub fn power_points(&self) -> usize {
        self.power.lock().as_ref().map_or(0, Recorder::points)
    }

    /// Stops recording and returns the log, with the lines changed since the last
    /// point as its tail; `None` when not recording.
    pub fn take_power_log(&self) -> Option<PowerLog> {
        let rec = self.power.lock().take()?;
        self.recording.store(false, Ordering::SeqCst);
        rec.finish(&self.mem).ok()
    }

    /// Takes a point while recording; a driver-call point (`call`) only with
    /// [`PowerOptions::driver_calls`].
    fn power_point(&self, cause: PointCause, call: bool) -> Result<(), DaxError> {
        if !self.recording.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut power = self.power.lock();
        match power.as_mut() {
            Some(rec) if !call || rec.driver_calls() => rec.point(&self.mem, cause),
            _ => Ok(()),
        }
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), DaxError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size() => Ok(()),
            _ => Err(DaxError::InvalidArgument {
                what: "byte range runs past the end of the device",
            }),
        }
    }

    /// Marks device bytes `offset .. offset + len` poisoned as the platform would
    /// report them: the covering cache lines become hardware poison and the covering
    /// sectors are added to the badblocks table as acknowledged records (pmem
    /// populates its table from the platform's poison list that way).
    pub fn poison(&self, offset: u64, len: u64) -> Result<(), DaxError> {
        self.poison_latent(offset, len)?;
        if len > 0 {
            let first = offset / SECTOR_SIZE as u64;
            let end = (offset + len).div_ceil(SECTOR_SIZE as u64);
            if !self.badblocks.set(first, end - first, true) {
                return Err(DaxError::NoSpace {
                    what: "the badblocks table is full",
                });
            }
        }
        Ok(())
    }

    /// Marks device bytes poisoned in hardware only: the driver does not know yet
    /// (no badblocks record), but a machine-check-safe read stops there.
    pub fn poison_latent(&self, offset: u64, len: u64) -> Result<(), DaxError> {
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let line = CACHELINE_SIZE as u64;
        let start = offset / line * line;
        let end = (offset + len).div_ceil(line) * line;
        let mut hw = self.hw.lock();
        range_insert(&mut hw, start, end);
        self.hw_any.store(true, Ordering::Release);
        self.save_poison(&hw)
    }

    /// Where a file-backed device keeps its poison between opens: `IMAGE.poison` beside
    /// the image, one `start end` byte range (hexadecimal) a line.
    fn poison_path(&self) -> Option<PathBuf> {
        match &self.backing {
            Backing::File(p) => {
                let mut name = p.as_os_str().to_owned();
                name.push(".poison");
                Some(PathBuf::from(name))
            }
            _ => None,
        }
    }

    /// Records the hardware poison of a file-backed device beside its image (written
    /// whole to a temporary file, then renamed over the old list; removed when there is
    /// none), so that a later open reports it again, as real pmem does after a reboot.
    fn save_poison(&self, hw: &BTreeMap<u64, u64>) -> Result<(), DaxError> {
        let Some(path) = self.poison_path() else {
            return Ok(());
        };
        let io = |e: std::io::Error| DaxError::from_io("recording the device's poison", &e);
        if hw.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            };
        }
        let text: String = hw.iter().map(|(s, e)| format!("{s:x} {e:x}\n")).collect();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// At open, the poison a file-backed device recorded: hardware poison again, and,
    /// as the platform's address range scrub would find it at probe, known bad sectors
    /// in the badblocks table too (latent poison included). A list that does not parse
    /// or runs past the device is `EIO`.
    fn load_poison(&self) -> Result<(), DaxError> {
        let Some(path) = self.poison_path() else {
            return Ok(());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(DaxError::from_io("reading the device's poison", &e)),
        };
        let bad = || DaxError::Io {
            what: "the device's poison list is damaged",
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut it = line.split_whitespace().map(|w| u64::from_str_radix(w, 16));
            let (Some(Ok(start)), Some(Ok(end)), None) = (it.next(), it.next(), it.next()) else {
                return Err(bad());
            };
            if start >= end || end > self.size() {
                return Err(bad());
            }
            self.poison(start, end - start)?;
        }
        Ok(())
    }

    /// Whether any byte of `offset .. offset + len` is hardware-poisoned.
    pub fn is_poisoned(&self, offset: u64, len: u64) -> bool {
        self.first_poison(offset, len).is_some()
    }

    /// The hardware-poisoned byte ranges (cache-line granular), in order.
    pub fn poisoned_ranges(&self) -> Vec<std::ops::Range<u64>> {
        self.hw.lock().iter().map(|(&s, &e)| s..e).collect()
    }

    /// Device offset of the first hardware-poisoned byte in `offset .. offset + len`.
    fn first_poison(&self, offset: u64, len: u64) -> Option<u64> {
        if !self.hw_any.load(Ordering::Acquire) || len == 0 {
            return None;
        }
        let end = offset.saturating_add(len);
        let hw = self.hw.lock();
        // The last range starting at or before `offset` may cover it; otherwise the
        // first range starting inside the query.
        if let Some((_, &e)) = hw.range(..=offset).next_back()
            && e > offset
        {
            return Some(offset);
        }
        hw.range(offset..end).next().map(|(&s, _)| s)
    }

    /// The firmware's poison clear (`nvdimm_clear_poison` as pmem's
    /// `__pmem_clear_poison` uses it): both `offset` and `len` must be aligned to the
    /// clear unit, else `ENXIO`; returns the bytes cleared. Cleared bytes lose their
    /// hardware poison, and each whole page cleared its `PageHWPoison` flag
    /// ([`dax_fault::pages::page_hwpoison`]); the badblocks table is left to the caller, as
    /// in the kernel.
    pub fn clear_poison(&self, offset: u64, len: u64) -> Result<u64, DaxError> {
        self.enter(DevOp::ClearPoison)?;
        self.check_range(offset, len)?;
        if !offset.is_multiple_of(self.clear_unit) || !len.is_multiple_of(self.clear_unit) {
            return Err(DaxError::Os {
                errno: libc::ENXIO,
                what: "poison clear not aligned to the clear unit",
            });
        }
        let cleared = {
            let mut inj = self.inject.lock();
            match &mut inj.partial_clear {
                Some((n, bytes)) => {
                    let c = (*bytes).min(len);
                    *n -= 1;
                    if *n == 0 {
                        inj.partial_clear = None;
                    }
                    c
                }
                None => len,
            }
        };
        if cleared > 0 {
            let mut hw = self.hw.lock();
            range_remove(&mut hw, offset, offset + cleared);
            if hw.is_empty() {
                self.hw_any.store(false, Ordering::Release);
            }
            self.save_poison(&hw)?;
            drop(hw);
            // The pages' HWPoison flags go with the poison, as `pmem_clear_hwpoison`
            // clears them: from the page holding `offset`, one per whole page cleared.
            let base = self.mem.base_pfn().0;
            let first = offset / PAGE_SIZE as u64;
            for p in first..first + cleared / PAGE_SIZE as u64 {
                dax_fault::pages::clear_page_hwpoison(dax_device::Pfn(base + p));
            }
        }
        Ok(cleared)
    }

    /// pmem's block-path clear (`pmem_clear_poison`): firmware clear, then the cleared
    /// sectors leave the badblocks table; `EIO` unless all of `len` was cleared.
    fn clear_poison_block(&self, offset: u64, len: u64) -> Result<(), DaxError> {
        let not_cleared = |cleared| DaxError::PoisonNotCleared {
            offset,
            len,
            cleared,
        };
        let cleared = self.clear_poison(offset, len).map_err(|_| not_cleared(0))?;
        if cleared > 0 {
            self.badblocks
                .clear(offset / SECTOR_SIZE as u64, cleared / SECTOR_SIZE as u64);
        }
        if cleared < len {
            return Err(not_cleared(cleared));
        }
        Ok(())
    }

    /// Whether the badblocks table has a record overlapping the sectors that cover
    /// `offset .. offset + len`.
    fn has_bad_sectors(&self, offset: u64, len: u64) -> bool {
        if self.badblocks.is_empty() || len == 0 {
            return false;
        }
        let first = offset / SECTOR_SIZE as u64;
        let end = (offset + len).div_ceil(SECTOR_SIZE as u64);
        self.badblocks.check(first, end - first).is_bad()
    }

    fn media_error(offset: u64, len: u64) -> DaxError {
        let pgoff = offset / PAGE_SIZE as u64;
        DaxError::MediaError {
            pgoff,
            nr_pages: (offset + len).div_ceil(PAGE_SIZE as u64) - pgoff,
        }
    }

    /// Reads device bytes through the block path (`pmem_do_read`): `EIO` if any
    /// covering sector is in the badblocks table (no memory is touched), or if the
    /// machine-check-safe copy meets hardware poison.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DaxError> {
        self.enter(DevOp::Read)?;
        let len = buf.len() as u64;
        self.check_range(offset, len)?;
        if self.has_bad_sectors(offset, len) || self.is_poisoned(offset, len) {
            return Err(Self::media_error(offset, len));
        }
        self.mem.read(offset, buf)
    }

    /// Writes device bytes through the block path (`pmem_do_write`): if any covering
    /// sector is bad, the whole range's poison is cleared first (it must then be
    /// sector aligned, as a block write is; a partial or failed clear is `EIO` and
    /// nothing is written), then the data is written bypassing the cache.
    pub fn write(&self, offset: u64, buf: &[u8]) -> Result<(), DaxError> {
        self.enter(DevOp::Write)?;
        let len = buf.len() as u64;
        self.check_range(offset, len)?;
        if self.has_bad_sectors(offset, len) {
            if !offset.is_multiple_of(SECTOR_SIZE as u64) || !len.is_multiple_of(SECTOR_SIZE as u64)
            {
                return Err(DaxError::Io {
                    what: "partial-sector write over a bad sector",
                });
            }
            self.clear_poison_block(offset, len)?;
        }
        self.mem.write(offset, buf)
    }

    /// Reads device bytes ignoring poison and the badblocks table (for tests and
    /// tools that inspect the medium).
    pub fn peek(&self, offset: u64, buf: &mut [u8]) -> Result<(), DaxError> {
        self.check_range(offset, buf.len() as u64)?;
        self.mem.read(offset, buf)
    }

    /// Writes device bytes with ordinary stores, ignoring poison and the table (for
    /// tests that set up contents; it clears nothing).
    pub fn poke(&self, offset: u64, buf: &[u8]) -> Result<(), DaxError> {
        self.check_range(offset, buf.len() as u64)?;
        self.mem.write_cached(offset, buf)
    }
}

/// Inserts `[start, end)` into a merged range map.
fn range_insert(map: &mut BTreeMap<u64, u64>, mut start: u64, mut end: u64) {
    if let Some((&s, &e)) = map.range(..=start).next_back()
        && e >= start
    {
        start = s;
        end = end.max(e);
    }
    let overlapping: Vec<u64> = map.range(start..=end).map(|(&s, _)| s).collect();
    for s in overlapping {
        let e = map.remove(&s).unwrap_or(s);
        end = end.max(e);
    }
    map.insert(start, end);
}

/// Removes `[start, end)` from a merged range map, splitting ranges as needed.
fn range_remove(map: &mut BTreeMap<u64, u64>, start: u64, end: u64) {
    let mut touched: Vec<(u64, u64)> = map.range(start..end).map(|(&s, &e)| (s, e)).collect();
    if let Some((&s, &e)) = map.range(..start).next_back()
        && e > start
    {
        touched.push((s, e));
    }
    for (s, e) in touched {
        map.remove(&s);
        if s < start {
            map.insert(s, start);
        }
        if e > end {
            map.insert(end, e);
        }
    }
}

// The promise below is the only unsafe thing here; no unsafe operation happens in the impl.
#[allow(unsafe_code)]
// SAFETY: every address and pfn handed out is the one the inner memory answered for
// the same `pgoff`, with a page count no larger than its answer, which stops at the
// end of the device. For a `MemDriver` its own `DaxOperations` promise covers them
// (mapped until the driver, owned by this device, is dropped; stable; pfn(pgoff + i) =
// pfn(pgoff) + i; never exposed as a slice). For `HeapMemory`: the address is
// `base + pgoff * 4096` inside one live read-write allocation, page aligned (the
// allocation is 2 MiB aligned), freed only when this device is dropped; the pfn is
// that address >> 12, so it is stable, pfn(pgoff + i) = pfn(pgoff) + i, and distinct
// from every other live device page's (allocations and mappings of the process never
// share an address); `HeapMemory` has no method that forms a slice over it.
// `recovery_write` writes only through the inner memory's bounds-checked copies.
unsafe impl DaxOperations for MemDevice {
    fn nr_pages(&self) -> u64 {
        self.nr_pages
    }

    /// pmem's `__pmem_direct_access`, clipped to the device (pmem is not; see the type's docs).
    fn direct_access(
        &self,
        pgoff: u64,
        nr_pages: u64,
        mode: DaxAccessMode,
    ) -> Result<RawAccess, DaxError> {
        self.enter(DevOp::DirectAccess)?;
        // The memory answers every page from `pgoff` to the end, or none past it.
        let raw = self.mem.direct_access(pgoff, nr_pages, mode)?;
        if raw.pages == 0 {
            return Ok(RawAccess::none());
        }
        let to_end = raw.pages;
        let answer = |pages: u64| Ok(RawAccess { pages, ..raw });
        if self.badblocks.is_empty() {
            return answer(to_end);
        }
        let sector = pgoff * PAGE_SECTORS;
        let num = nr_pages.saturating_mul(PAGE_SECTORS);
        let hit = if num == 0 {
            BadblocksCheck::Clean
        } else {
            self.badblocks.check(sector, num)
        };
        let first_bad = match hit {
            BadblocksCheck::Clean => return answer(nr_pages.min(to_end)),
            BadblocksCheck::Acknowledged { first_bad, .. }
            | BadblocksCheck::Unacknowledged { first_bad, .. } => first_bad,
        };
        match mode {
            DaxAccessMode::Access => Err(DaxError::HwPoison { pgoff, nr_pages }),
            DaxAccessMode::RecoveryWrite => {
                // Pages up to the one holding the first bad record's start, rounded up;
                // a record that began before the request answers the whole request (the
                // kernel's unsigned wrap, clipped by dax_direct_access).
                let pages = if first_bad < sector {
                    nr_pages
                } else {
                    ((first_bad - sector) * SECTOR_SIZE as u64).div_ceil(PAGE_SIZE as u64)
                };
                answer(pages.max(1).min(to_end))
            }
        }
    }

    /// pmem's `pmem_dax_zero_page_range`: one zero page written through the block write
    /// path (poison cleared first, badblocks updated), bypassing the cache.
    fn zero_page_range(&self, pgoff: u64, nr_pages: u64) -> Result<(), DaxError> {
        let _ = nr_pages; // pmem ignores it beyond the core's "must be 1" check
        self.enter(DevOp::ZeroPageRange)?;
        if pgoff >= self.nr_pages {
            return Err(DaxError::OutOfRange {
                pgoff,
                dev_pages: self.nr_pages,
            });
        }
        let offset = pgoff * PAGE_SIZE as u64;
        if self.has_bad_sectors(offset, PAGE_SIZE as u64) {
            self.clear_poison_block(offset, PAGE_SIZE as u64)
                .map_err(|_| DaxError::Io {
                    what: "zero_page_range could not clear the poison",
                })?;
        }
        self.mem.zero(offset, PAGE_SIZE as u64)
    }

    /// pmem's `pmem_recovery_write`.
    unsafe fn recovery_write(&self, pgoff: u64, addr: NonNull<u8>, src: &[u8]) -> Option<usize> {
        let _ = pgoff; // the address says where; pgoff is its first page
        if self.enter(DevOp::RecoveryWrite).is_err() {
            return Some(0);
        }
        let Some(offset) = self.mem.offset_of(addr.as_ptr()) else {
            return Some(0);
        };
        let bytes = src.len() as u64;
        if self.check_range(offset, bytes).is_err() {
            return Some(0);
        }
        let in_page = offset % PAGE_SIZE as u64;
        let page_start = offset - in_page;
        let len = (in_page + bytes).div_ceil(PAGE_SIZE as u64) * PAGE_SIZE as u64;
        let len = len.min(self.size() - page_start);
        if !self.has_bad_sectors(page_start, len) {
            return Some(if self.mem.write(offset, src).is_ok() {
                src.len()
            } else {
                0
            });
        }
        if in_page != 0 || !bytes.is_multiple_of(PAGE_SIZE as u64) {
            return Some(0);
        }
        let cleared = match self.clear_poison(page_start, len) {
            Ok(c) if c == 0 || c == len => c,
            _ => return Some(0),
        };
        if self.mem.write(offset, src).is_err() {
            return Some(0);
        }
        // Only after the data is in place, so concurrent readers keep failing until
        // then.
        if cleared > 0 {
            self.badblocks.clear(
                page_start / SECTOR_SIZE as u64,
                cleared / SECTOR_SIZE as u64,
            );
        }
        Some(src.len())
    }

    fn first_poisoned_byte(&self, dev_offset: u64, len: usize) -> Option<usize> {
        self.first_poison(dev_offset, len as u64)
            .map(|p| (p - dev_offset) as usize)
    }

    /// The memory's flush ([`MemDriver`]'s: a fence, and `fdatasync` for a file on a
    /// disk; a fence for the heap).
    ///
    /// While recording for power loss, a successful flush is a point
    /// ([`crate::power`]).
    fn flush(&self) -> Result<(), DaxError> {
        self.enter(DevOp::Flush)?;
        self.power_point(PointCause::Flush, false)?;
        self.mem.flush()
    }

    fn map_source(&self) -> Option<MapSource<'_>> {
        self.mem.map_source()
    }
}

/// Reports a memory failure of `nr_pages` device pages starting at `pfn` to the
/// device's holder, the way pmem's `pmem_pagemap_memory_failure` does: the
/// pfn becomes a device byte offset and `dax_holder_notify_failure` is called with
/// `nr_pages * 4096` bytes. `ENXIO` if the device is dead, `EOPNOTSUPP` without a
/// holder, `EINVAL` for a pfn outside the device.
pub fn memory_failure(
    dev: &DaxDevice<MemDevice>,
    pfn: Pfn,
    nr_pages: u64,
    flags: MfFlags,
) -> Result<(), DaxError> {
    let base = dev.driver().mem.base_pfn().0;
    let pgoff = pfn
        .0
        .checked_sub(base)
        .filter(|p| *p < dev.driver().nr_pages)
        .ok_or(DaxError::InvalidArgument {
            what: "pfn is not a page of this device",
        })?;
    dev.holder_notify_failure(
        pgoff * PAGE_SIZE as u64,
        nr_pages.saturating_mul(PAGE_SIZE as u64),
        flags,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges_and_splits() {
        let mut m = BTreeMap::new();
        range_insert(&mut m, 64, 128);
        range_insert(&mut m, 256, 320);
        range_insert(&mut m, 128, 192);
        assert_eq!(
            m.iter().map(|(&a, &b)| (a, b)).collect::<Vec<_>>(),
            vec![(64, 192), (256, 320)]
        );
        range_insert(&mut m, 0, 1024);
        assert_eq!(
            m.iter().map(|(&a, &b)| (a, b)).collect::<Vec<_>>(),
            vec![(0, 1024)]
        );
        range_remove(&mut m, 64, 128);
        assert_eq!(
            m.iter().map(|(&a, &b)| (a, b)).collect::<Vec<_>>(),
            vec![(0, 64), (128, 1024)]
        );
        range_remove(&mut m, 0, 2048);
        assert!(m.is_empty());
    }
}
