//! Power-loss simulation for [`MemDevice`](crate::MemDevice): a recorder of what the
//! device held at each *point* of a workload, and the crash images a power failure
//! between two points could leave.
//!
//! # What is recorded
//!
//! Stores reach device memory through raw pointers (the engine's copies, mappings
//! made with the `mmu` backend), so the device cannot see them one by one. What it
//! can see is its own operations. While recording
//! ([`MemDevice::record_power_loss`](crate::MemDevice::record_power_loss)), the
//! device compares its whole memory with the previous point's copy, 64-byte cache
//! line by line, at every point:
//!
//! * every successful [`DaxOperations::flush`](dax_device::DaxOperations::flush)
//!   ([`PointCause::Flush`]: what `DaxDevice::flush`, `nvdimm_flush`, a filesystem's
//!   `REQ_PREFLUSH` or `fdatasync` reaches). A flush that fails (an injected error)
//!   is not a point: its lines stay in flight until the next one;
//! * every [`MemDevice::power_mark`](crate::MemDevice::power_mark)
//!   ([`PointCause::Mark`]): the caller says "what I stored so far is durable now",
//!   typically after its own CLWB + SFENCE (`persist_range`) on a MAP_SYNC mapping,
//!   which the device cannot see;
//! * with [`PowerOptions::driver_calls`], also at the start of every other driver
//!   call (`direct_access`, `zero_page_range`, `recovery_write`, block writes:
//!   [`PointCause::Call`]), which cuts the time between two flushes into the pieces
//!   each driver call began (points where nothing changed are not kept).
//!
//! A point keeps only the lines that changed since the previous one, with their new
//! values, so a log costs two copies of the device (the first image and the running
//! copy) plus the lines written. [`PowerLog::barriers_only`] folds the `Call` points
//! into the next flush or mark.
//!
//! # What a crash image is, and what this model claims
//!
//! A crash *between point `k` and point `k + 1`* leaves the image at point `k` plus a
//! subset of the lines that changed between `k` and `k + 1` ([`Replay::crash_image`]
//! with a [`Subset`]): none of them (unflushed lines dropped), all of them, or a
//! seeded random choice (a torn write-back). With driver-call points and
//! [`Subset::Nothing`] that is a *prefix* of the writes since the last flush, cut at
//! a driver call.
//!
//! The model claims, and tests relying on it assume:
//!
//! 1. **Points are barriers.** Everything stored before a flush or mark point is
//!    durable after it. This is stronger than real persistent memory in one way: the
//!    device flush (`nvdimm_flush`) only makes durable what already left the CPU
//!    caches (non-temporal stores, or stores written back with CLWB/CLFLUSHOPT) and
//!    was fenced. A store that stayed in the cache (a mapped store nobody wrote back)
//!    is counted as durable at the next point here, as if the caches were in the
//!    persistence domain (eADR). So **a missing cache write-back is invisible to
//!    this model**; it checks the order of flushes and what was written between
//!    them, not whether every line was written back.
//! 2. **Between points, anything goes, line by line.** Any subset of the changed
//!    lines may have reached the media. This is weaker than real pmem in the other
//!    direction: on an ADR platform non-temporal stores and written-back lines are
//!    persistent once fenced, without any device flush, so real hardware keeps some
//!    lines this model may drop. A filesystem that promises durability only at fsync
//!    (and MAP_SYNC after the user's own flush, which the user marks) must survive
//!    every such subset.
//! 3. **Lines are atomic, and only their value at the next point is known.** A line
//!    is either the old or the new value, never a mix (x86 only guarantees 8-byte
//!    atomicity, so a line written by several stores can tear inside; a checksum
//!    catches that as it catches a missing line). A line written twice between two
//!    points shows only its last value; an intermediate value, or a line written and
//!    then restored, is not seen unless driver-call points fall between the writes.
//! 4. **Nothing else is part of an image**: poison, the badblocks table and the call
//!    counters are not recorded.
//!
//! Points are taken while other threads may be storing: a recording is meant for
//! workloads whose stores are ordered with the device's operations (one thread, or
//! threads that join before each flush); a store racing a point lands on either side.

use std::sync::Arc;

use dax_device::{CACHELINE_SIZE, DaxError};

use crate::memdev::{DevOp, Memory};

/// The line size the recorder compares and a crash keeps or drops: 64 bytes.
pub const LINE_SIZE: usize = CACHELINE_SIZE;

/// Bytes compared per chunk of the device; a page that did not change is skipped
/// with one comparison.
const CHUNK: usize = 256 << 10;
const PAGE: usize = 4096;

/// What [`MemDevice::record_power_loss`](crate::MemDevice::record_power_loss)
/// records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PowerOptions {
    /// Also a point at the start of every driver call other than `flush`
    /// ([`PointCause::Call`]). Default false: flushes and marks only. Each point
    /// compares the whole device (about a millisecond per 4 MiB), so keep devices
    /// small.
    pub driver_calls: bool,
}

impl PowerOptions {
    /// Flushes and marks only.
    pub fn new() -> Self {
        PowerOptions::default()
    }

    /// Sets [`PowerOptions::driver_calls`].
    pub fn driver_calls(mut self, on: bool) -> Self {
        self.driver_calls = on;
        self
    }
}

/// Why a point was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PointCause {
    /// A successful [`DaxOperations::flush`](dax_device::DaxOperations::flush).
    Flush,
    /// [`MemDevice::power_mark`](crate::MemDevice::power_mark), with its label.
    Mark(Arc<str>),
    /// The start of a driver call ([`PowerOptions::driver_calls`]).
    Call(DevOp),
}

impl PointCause {
    /// Whether what was stored before the point is durable after it: flushes and
    /// marks; a driver call only cuts time.
    pub fn is_barrier(&self) -> bool {
        matches!(self, PointCause::Flush | PointCause::Mark(_))
    }
}

/// One 64-byte line of the device and a value it took.
#[derive(Clone, PartialEq, Eq)]
pub struct Line {
    /// Device byte offset (a multiple of [`LINE_SIZE`]).
    pub offset: u64,
    /// The line's bytes.
    pub data: [u8; LINE_SIZE],
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Line({:#x})", self.offset)
    }
}

impl Line {
    /// Writes the line into `image` (a whole-device image).
    pub fn apply(&self, image: &mut [u8]) {
        let o = self.offset as usize;
        image[o..o + LINE_SIZE].copy_from_slice(&self.data);
    }
}

/// A recorded point: its cause and the lines that changed since the previous point
/// (ascending by offset, with their values at this point).
#[derive(Debug, Clone)]
pub struct PowerPoint {
    /// Why it was taken.
    pub cause: PointCause,
    /// The lines that changed since the previous point.
    pub lines: Vec<Line>,
}

/// What a recording saw: the device at its start, each point, and the lines changed
/// after the last point (the *tail*, up to
/// [`MemDevice::take_power_log`](crate::MemDevice::take_power_log)).
#[derive(Clone)]
pub struct PowerLog {
    base: Vec<u8>,
    points: Vec<PowerPoint>,
    tail: Vec<Line>,
}

impl std::fmt::Debug for PowerLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerLog")
            .field("size", &self.base.len())
            .field("points", &self.points.len())
            .field("lines", &self.lines())
            .field("tail", &self.tail.len())
            .finish()
    }
}

impl PowerLog {
    /// The device's contents when recording started.
    pub fn base(&self) -> &[u8] {
        &self.base
    }

    /// The points, in order.
    pub fn points(&self) -> &[PowerPoint] {
        &self.points
    }

    /// Lines changed after the last point.
    pub fn tail(&self) -> &[Line] {
        &self.tail
    }

    /// Lines recorded in all (points and tail).
    pub fn lines(&self) -> usize {
        self.points.iter().map(|p| p.lines.len()).sum::<usize>() + self.tail.len()
    }

    /// The same log with only the barrier points (flushes, marks): the lines of each
    /// driver-call point fold into the next barrier (a later value of a line
    /// replacing an earlier one), those after the last barrier into the tail.
    /// Returns, beside it, for each new point the index of the point it was in the
    /// original log.
    pub fn barriers_only(&self) -> (PowerLog, Vec<usize>) {
        let mut points = Vec::new();
        let mut index = Vec::new();
        let mut acc: std::collections::BTreeMap<u64, [u8; LINE_SIZE]> = Default::default();
        let drain = |acc: &mut std::collections::BTreeMap<u64, [u8; LINE_SIZE]>| {
            std::mem::take(acc)
                .into_iter()
                .map(|(offset, data)| Line { offset, data })
                .collect::<Vec<_>>()
        };
        for (i, p) in self.points.iter().enumerate() {
            for l in &p.lines {
                acc.insert(l.offset, l.data);
            }
            if p.cause.is_barrier() {
                points.push(PowerPoint {
                    cause: p.cause.clone(),
                    lines: drain(&mut acc),
                });
                index.push(i);
            }
        }
        for l in &self.tail {
            acc.insert(l.offset, l.data);
        }
        let log = PowerLog {
            base: self.base.clone(),
            points,
            tail: drain(&mut acc),
        };
        (log, index)
    }

    /// A walk over the log: first the state before point 0, then after each point.
    pub fn replay(&self) -> Replay<'_> {
        Replay {
            log: self,
            image: self.base.clone(),
            after: None,
        }
    }
}

/// Which of the lines in flight a crash keeps ([`Replay::crash_image`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subset {
    /// None: every line written since the last point is lost.
    Nothing,
    /// All of them: the image of the next point (or the device at the end).
    Everything,
    /// Each line kept with probability 1/2, drawn from a generator seeded with `seed`
    /// (the same seed and lines give the same subset).
    Random(u64),
    /// All but the line at this index of [`Replay::pending`] (modulo their number).
    AllBut(usize),
    /// Only the line at this index of [`Replay::pending`] (modulo their number).
    Only(usize),
}

impl Subset {
    /// Which of `n` lines this subset keeps.
    pub fn keeps(self, n: usize) -> Vec<bool> {
        match self {
            Subset::Nothing => vec![false; n],
            Subset::Everything => vec![true; n],
            Subset::Random(seed) => {
                let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
                (0..n)
                    .map(|_| {
                        x = splitmix(x);
                        x & 1 == 1
                    })
                    .collect()
            }
            Subset::AllBut(i) => {
                let mut v = vec![true; n];
                if n > 0 {
                    v[i % n] = false;
                }
                v
            }
            Subset::Only(i) => {
                let mut v = vec![false; n];
                if n > 0 {
                    v[i % n] = true;
                }
                v
            }
        }
    }
}

/// SplitMix64's output function applied to `x + golden ratio`.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A position in a [`PowerLog`]: the durable image after some point (or the base),
/// and the lines in flight until the next point.
pub struct Replay<'a> {
    log: &'a PowerLog,
    image: Vec<u8>,
    /// The last point applied to `image`; `None` for the base.
    after: Option<usize>,
}

impl Replay<'_> {
    /// The last point whose lines are in [`durable`](Self::durable); `None` before
    /// point 0.
    pub fn after(&self) -> Option<usize> {
        self.after
    }

    /// The index of the point that ends the interval in flight; `None` when that is
    /// the end of the recording (the tail).
    pub fn next_point(&self) -> Option<usize> {
        let n = self.after.map_or(0, |a| a + 1);
        (n < self.log.points.len()).then_some(n)
    }

    /// The image every crash from here on keeps at least.
    pub fn durable(&self) -> &[u8] {
        &self.image
    }

    /// The lines written between [`after`](Self::after) and the next point (or the
    /// end): a crash now keeps a subset of them.
    pub fn pending(&self) -> &[Line] {
        match self.next_point() {
            Some(n) => &self.log.points[n].lines,
            None => &self.log.tail,
        }
    }

    /// The device a crash now leaves: [`durable`](Self::durable) plus the `subset` of
    /// [`pending`](Self::pending).
    pub fn crash_image(&self, subset: Subset) -> Vec<u8> {
        let mut img = self.image.clone();
        let pending = self.pending();
        for (l, keep) in pending.iter().zip(subset.keeps(pending.len())) {
            if keep {
                l.apply(&mut img);
            }
        }
        img
    }

    /// Moves past the next point; false at the end (after the tail's interval).
    pub fn advance(&mut self) -> bool {
        let Some(n) = self.next_point() else {
            return false;
        };
        for l in &self.log.points[n].lines {
            l.apply(&mut self.image);
        }
        self.after = Some(n);
        true
    }
}

/// The recording state of one device.
pub(crate) struct Recorder {
    opts: PowerOptions,
    base: Vec<u8>,
    /// The device at the last point.
    prev: Vec<u8>,
    points: Vec<PowerPoint>,
    scratch: Vec<u8>,
}

impl Recorder {
    pub(crate) fn start(mem: &Memory, opts: PowerOptions) -> Result<Recorder, DaxError> {
        let size = usize::try_from(mem.size()).map_err(|_| DaxError::Overflow {
            what: "device too large to record",
        })?;
        let mut base = vec![0u8; size];
        mem.read(0, &mut base)?;
        Ok(Recorder {
            opts,
            prev: base.clone(),
            base,
            points: Vec::new(),
            scratch: vec![0u8; CHUNK.min(size)],
        })
    }

    pub(crate) fn driver_calls(&self) -> bool {
        self.opts.driver_calls
    }

    pub(crate) fn points(&self) -> usize {
        self.points.len()
    }

    /// The lines that differ between the device and `prev`, which is brought up to
    /// date.
    fn diff(&mut self, mem: &Memory) -> Result<Vec<Line>, DaxError> {
        let mut lines = Vec::new();
        let size = self.prev.len();
        let mut at = 0usize;
        while at < size {
            let n = self.scratch.len().min(size - at);
            mem.read(at as u64, &mut self.scratch[..n])?;
            for p in (0..n).step_by(PAGE) {
                let pe = (p + PAGE).min(n);
                let (now, old) = (&self.scratch[p..pe], &mut self.prev[at + p..at + pe]);
                if now == old {
                    continue;
                }
                for l in (0..pe - p).step_by(LINE_SIZE) {
                    let le = (l + LINE_SIZE).min(pe - p);
                    if now[l..le] != old[l..le] {
                        let mut data = [0u8; LINE_SIZE];
                        data[..le - l].copy_from_slice(&now[l..le]);
                        old[l..le].copy_from_slice(&now[l..le]);
                        lines.push(Line {
                            offset: (at + p + l) as u64,
                            data,
                        });
                    }
                }
            }
            at += n;
        }
        Ok(lines)
    }

    /// Takes a point. A driver-call point where nothing changed is not kept.
    pub(crate) fn point(&mut self, mem: &Memory, cause: PointCause) -> Result<(), DaxError> {
        let lines = self.diff(mem)?;
        if lines.is_empty() && !cause.is_barrier() {
            return Ok(());
        }
        self.points.push(PowerPoint { cause, lines });
        Ok(())
    }

    pub(crate) fn finish(mut self, mem: &Memory) -> Result<PowerLog, DaxError> {
        let tail = self.diff(mem)?;
        Ok(PowerLog {
            base: self.base,
            points: self.points,
            tail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DevOp, FailSchedule, MemDevice};

    fn poke(dev: &dax_device::DaxDevice<MemDevice>, at: u64, b: &[u8]) {
        dev.driver().poke(at, b).unwrap();
    }

    #[test]
    fn points_keep_changed_lines_and_a_failed_flush_is_none() {
        let dev = MemDevice::builder().size(64 << 10).build().unwrap();
        let drv = dev.driver();
        drv.record_power_loss(PowerOptions::new().driver_calls(true))
            .unwrap();
        poke(&dev, 0, b"a");
        poke(&dev, 100, b"b"); // lines 0 and 64
        dev.flush().unwrap();
        poke(&dev, 4096, b"c");
        dev.zero_page_range(2, 1).unwrap(); // a driver-call point; zeros change nothing
        let eio = DaxError::Io { what: "test" };
        drv.inject(DevOp::Flush, FailSchedule::After { skip: 0, count: 1 }, eio);
        assert!(dev.flush().is_err());
        drv.power_mark("user persist").unwrap();
        poke(&dev, 8192, b"d");
        let log = drv.take_power_log().unwrap();
        let causes: Vec<_> = log.points().iter().map(|p| p.cause.clone()).collect();
        assert_eq!(
            causes,
            [
                PointCause::Flush,
                PointCause::Call(DevOp::ZeroPageRange),
                PointCause::Mark("user persist".into())
            ]
        );
        let offsets = |l: &[Line]| l.iter().map(|l| l.offset).collect::<Vec<_>>();
        assert_eq!(offsets(&log.points()[0].lines), [0, 64]);
        assert_eq!(offsets(&log.points()[1].lines), [4096]);
        assert!(log.points()[2].lines.is_empty());
        assert_eq!(offsets(log.tail()), [8192]);
        let (b, index) = log.barriers_only();
        assert_eq!(index, [0, 2]);
        assert_eq!(offsets(&b.points()[1].lines), [4096]);
        // Replaying: the image after point 0, then crashes before the mark.
        let mut r = b.replay();
        assert_eq!((r.after(), r.next_point()), (None, Some(0)));
        assert!(r.advance());
        assert_eq!(r.durable()[0], b'a');
        assert_eq!(r.crash_image(Subset::Nothing)[4096], 0);
        assert_eq!(r.crash_image(Subset::Everything)[4096], b'c');
        assert!(r.advance() && !r.advance());
        assert_eq!(r.next_point(), None);
        assert_eq!(r.crash_image(Subset::Only(0))[8192], b'd');
        assert!(drv.take_power_log().is_none(), "recording stopped");
    }

    #[test]
    fn subsets_choose_the_lines_they_say() {
        assert_eq!(Subset::AllBut(5).keeps(3), [true, true, false]);
        assert_eq!(Subset::Only(1).keeps(3), [false, true, false]);
        assert_eq!(Subset::Nothing.keeps(0), Vec::<bool>::new());
        let r = Subset::Random(7).keeps(64);
        assert_eq!(r, Subset::Random(7).keeps(64), "seeded");
        assert!(r.iter().any(|&k| k) && r.iter().any(|&k| !k));
    }
}
