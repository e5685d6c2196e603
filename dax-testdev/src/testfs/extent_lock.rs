//! [`ExtentLock`]: an inode's extent lock, plus a copy of small extent maps that reads
//! can use without taking it; and [`Blocks`], what the lock protects (the block map,
//! its change counter and the inode's dirty state).
//!
//! The lock is an ordinary reader-writer lock around [`Blocks`] (XFS's ILOCK, ext4's
//! `i_data_sem`). Every writer changes the map under [`ExtentLock::write`], whose guard
//! republishes the map when it is dropped: if the map has at most [`SNAP_EXTENTS`]
//! extents, they are copied into fixed atomic slots under a sequence counter
//! ([`SeqCount`], the seqlock dax-device's bad-block table uses too). A read-type `iomap_begin` first tries [`ExtentLock::lookup_unlocked`]:
//! it reads the slots between two loads of the counter and uses the answer only if the
//! counter was even (no writer inside) and unchanged, so it saw one whole version of
//! the map. Otherwise, or for a larger map, it takes the lock shared as before.
//!
//! Why: a read then executes no locked instruction for the extent lookup (one shared
//! acquire and release of a `RwLock` are two), which matters for small DAX reads,
//! whose cost beyond the copy is a few tens of nanoseconds. Kernel filesystems get the
//! same effect from RCU-walked or per-CPU structures; a seqlock is the smallest
//! userspace equivalent. The price: a second protocol, and writers copy up to
//! [`SNAP_EXTENTS`] extents each time they release the lock.
//!
//! [`SeqCount`]'s docs give the memory ordering. All slots are atomics: no torn
//! values and no data race, only stale ones, which the counter rejects.

use std::ops::{Deref, DerefMut};

use super::extent::{Extent, ExtentMap, Lookup};
use dax_device::SeqCount;

use super::sync::{AtomicU64, Ordering, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A file's block map, its change counter and its dirty state: what the extent lock
/// protects.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    /// File block → device block runs.
    pub(crate) map: ExtentMap,
    /// Bumped on every change of the map (handed out as `validity_cookie`).
    pub(crate) seq: u64,
    /// The inode has metadata (blocks, size, CoW reservations) that no checkpoint has
    /// made durable yet: writes get `IomapFlags::DIRTY`. Kept here rather than under
    /// the metadata lock so that an overwrite can read it with the extent lock alone.
    pub(crate) dirty: bool,
}

impl Blocks {
    /// Records a change of the map: a new validity cookie, and dirty until the next
    /// checkpoint.
    pub(crate) fn changed(&mut self) {
        self.seq += 1;
        self.dirty = true;
    }
}

/// The largest extent map published for lock-free reads.
pub(crate) const SNAP_EXTENTS: usize = 8;

/// `count` when the map has more than [`SNAP_EXTENTS`] extents: readers take the lock.
const TOO_MANY: u64 = u64::MAX;

const UNWRITTEN: u64 = 1 << 63;
const SHARED: u64 = 1 << 62;
const LEN_MASK: u64 = SHARED - 1;

/// One published extent: file block, device block, length with the two state bits.
struct SeqSlot {
    start: AtomicU64,
    dev: AtomicU64,
    len_flags: AtomicU64,
}

/// The extent lock and the published copy of small maps.
pub(crate) struct ExtentLock {
    lock: RwLock<Blocks>,
    /// Whether the slots hold one version of the map, or a writer is changing it.
    seq: SeqCount,
    /// Extents published in `slots`, in file order, or [`TOO_MANY`].
    count: AtomicU64,
    /// `Blocks::seq` of the published version (the validity cookie).
    cookie: AtomicU64,
    slots: [SeqSlot; SNAP_EXTENTS],
}

impl ExtentLock {
    pub(crate) fn new(blocks: Blocks) -> Self {
        let l = ExtentLock {
            lock: RwLock::new(Blocks::default()),
            seq: SeqCount::new(),
            count: AtomicU64::new(0),
            cookie: AtomicU64::new(0),
            slots: std::array::from_fn(|_| SeqSlot {
                start: AtomicU64::new(0),
                dev: AtomicU64::new(0),
                len_flags: AtomicU64::new(0),
            }),
        };
        *l.write() = blocks;
        l
    }

    /// Takes the lock shared.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Blocks> {
        self.lock.read()
    }

    /// Takes the lock shared if no writer holds it.
    pub(crate) fn try_read(&self) -> Option<RwLockReadGuard<'_, Blocks>> {
        self.lock.try_read()
    }

    /// Takes the lock exclusively; the published copy is marked as changing until the
    /// guard is dropped, which republishes it.
    pub(crate) fn write(&self) -> ExtentWriteGuard<'_> {
        self.begin_write(self.lock.write())
    }

    /// [`write`](Self::write) if no one holds the lock.
    pub(crate) fn try_write(&self) -> Option<ExtentWriteGuard<'_>> {
        self.lock.try_write().map(|g| self.begin_write(g))
    }

    fn begin_write<'a>(&'a self, guard: RwLockWriteGuard<'a, Blocks>) -> ExtentWriteGuard<'a> {
        // The write lock serialises the counter's writers.
        self.seq.write_begin();
        ExtentWriteGuard { guard, lock: self }
    }

    /// What file block `fb` is, and the validity cookie, from the published copy;
    /// `None` when a writer is inside, the copy changed while it was read, or the map
    /// is too large to be published. `also` is evaluated inside the read section (its
    /// value belongs to the same version: use it for state changed under the lock,
    /// such as the unlinked flag).
    pub(crate) fn lookup_unlocked<T>(
        &self,
        fb: u64,
        also: impl FnOnce() -> T,
    ) -> Option<(Lookup, u64, T)> {
        let token = self.seq.try_begin()?;
        let count = self.count.load(Ordering::Relaxed);
        if count == TOO_MANY {
            return None;
        }
        let mut found = Lookup::Hole { len: None };
        for slot in self
            .slots
            .iter()
            .take(count.min(SNAP_EXTENTS as u64) as usize)
        {
            let start = slot.start.load(Ordering::Relaxed);
            if start > fb {
                found = Lookup::Hole {
                    len: Some(start - fb),
                };
                break;
            }
            let lf = slot.len_flags.load(Ordering::Relaxed);
            let len = lf & LEN_MASK;
            if fb - start < len {
                let skip = fb - start;
                found = Lookup::Extent(Extent {
                    dev: slot.dev.load(Ordering::Relaxed).wrapping_add(skip),
                    len: len - skip,
                    unwritten: lf & UNWRITTEN != 0,
                    shared: lf & SHARED != 0,
                });
                break;
            }
        }
        let cookie = self.cookie.load(Ordering::Relaxed);
        let extra = also();
        if self.seq.retry(token) {
            return None;
        }
        Some((found, cookie, extra))
    }
}

/// The extent lock held exclusively; dropping it republishes the map.
pub(crate) struct ExtentWriteGuard<'a> {
    guard: RwLockWriteGuard<'a, Blocks>,
    lock: &'a ExtentLock,
}

impl Deref for ExtentWriteGuard<'_> {
    type Target = Blocks;
    fn deref(&self) -> &Blocks {
        &self.guard
    }
}

impl DerefMut for ExtentWriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut Blocks {
        &mut self.guard
    }
}

impl Drop for ExtentWriteGuard<'_> {
    fn drop(&mut self) {
        let l = self.lock;
        let map = &self.guard.map;
        let count = if map.len() > SNAP_EXTENTS {
            TOO_MANY
        } else {
            for ((start, e), slot) in map.iter().zip(&l.slots) {
                let flags =
                    if e.unwritten { UNWRITTEN } else { 0 } | if e.shared { SHARED } else { 0 };
                slot.start.store(start, Ordering::Relaxed);
                slot.dev.store(e.dev, Ordering::Relaxed);
                slot.len_flags.store(e.len | flags, Ordering::Relaxed);
            }
            map.len() as u64
        };
        l.count.store(count, Ordering::Relaxed);
        l.cookie.store(self.guard.seq, Ordering::Relaxed);
        l.seq.write_end(0);
        // `guard` is dropped after this body: the lock is released last.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lock_with(runs: &[(u64, u64, u64, bool, bool)]) -> ExtentLock {
        let mut map = ExtentMap::default();
        for &(fb, dev, len, unwritten, shared) in runs {
            map.insert(
                fb,
                Extent {
                    dev,
                    len,
                    unwritten,
                    shared,
                },
            );
        }
        ExtentLock::new(Blocks {
            map,
            seq: 7,
            dirty: false,
        })
    }

    proptest! {
        #![proptest_config(dax_testkit::miri::proptest_config(ProptestConfig::default()))]

        /// The published copy answers exactly what the map does, for maps small
        /// enough to publish, and declines larger ones.
        #[test]
        fn unlocked_lookup_matches_the_map(
            runs in proptest::collection::vec((0u64..64, 1u64..8, any::<bool>(), any::<bool>()), 0..12),
            probes in proptest::collection::vec(0u64..80, 1..40),
        ) {
            let mut fb = 0;
            let mut dev = 1000;
            let mut spec = Vec::new();
            for (gap, len, unwritten, shared) in runs {
                fb += gap;
                spec.push((fb, dev, len, unwritten, shared));
                fb += len;
                dev += len + 3; // never contiguous on the device: no merging
            }
            let l = lock_with(&spec);
            let blocks = l.read();
            let n = blocks.map.len();
            drop(blocks);
            for p in probes {
                let want = l.read().map.lookup(p);
                match l.lookup_unlocked(p, || ()) {
                    Some((got, cookie, ())) => {
                        prop_assert!(n <= SNAP_EXTENTS);
                        prop_assert_eq!(got, want);
                        prop_assert_eq!(cookie, 7);
                    }
                    None => prop_assert!(n > SNAP_EXTENTS),
                }
            }
        }
    }

    #[test]
    fn a_change_inside_the_read_section_is_rejected() {
        // `also` runs between the reader's slot loads and its second counter load:
        // a whole write section there must make the answer unusable.
        let l = lock_with(&[(0, 100, 4, false, false)]);
        let r = l.lookup_unlocked(1, || {
            let mut w = l.write();
            w.map.remove(0, 4);
            w.changed();
        });
        assert!(r.is_none(), "a stale answer was used: {r:?}");
        let (found, _, ()) = l.lookup_unlocked(1, || ()).unwrap();
        assert_eq!(found, Lookup::Hole { len: None });
    }

    #[test]
    fn a_writer_inside_sends_readers_to_the_lock() {
        let l = lock_with(&[(0, 100, 4, false, false)]);
        assert!(l.lookup_unlocked(1, || ()).is_some());
        let mut w = l.write();
        assert!(l.lookup_unlocked(1, || ()).is_none());
        w.map.remove(0, 4);
        w.changed();
        drop(w);
        let (found, cookie, ()) = l.lookup_unlocked(1, || ()).unwrap();
        assert_eq!(found, Lookup::Hole { len: None });
        assert_eq!(cookie, 8);
    }
}
