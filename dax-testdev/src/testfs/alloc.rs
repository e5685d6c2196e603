//! [`Allocator`]: free space, reference counts and busy blocks of the data area.
//!
//! * Free space is a [`RangeSet`] of 4 KiB device blocks.
//! * Every allocated block has a reference count: 1 for a block that one file maps,
//!   more for blocks shared by reflink. Only counts of 2 and more are stored (like XFS's
//!   refcount btree, which records shared extents only).
//! * A block whose last reference goes away while the last durable checkpoint still
//!   references it is *busy*, not free: reusing it before the next checkpoint would let
//!   a crash bring back a file whose blocks hold someone else's data (XFS keeps such
//!   "busy extents" for the same reason). The next checkpoint frees busy blocks.
//! * After a checkpoint fails to commit, nobody knows whether it or the last durable
//!   one is on the media, so both count as durable until a commit succeeds: a block
//!   either references is not reused before then. (The alternative, XFS's, is to shut
//!   the filesystem down on a log I/O error; TestFs keeps working, and an fsync that
//!   succeeds later settles which checkpoint is the durable one.)

use std::collections::BTreeMap;

use dax_device::{DaxError, PMD_PAGES};

use super::rangeset::RangeSet;

/// Blocks per 2 MiB (a PMD).
pub(crate) const PMD_BLOCKS: u64 = PMD_PAGES;

/// Where an allocation should go.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AllocHint {
    /// Try this block first (the block after the file's previous extent).
    pub(crate) goal: Option<u64>,
    /// Prefer a start block congruent to this file block modulo 512, so that
    /// 2 MiB-aligned file ranges land on 2 MiB-aligned device ranges (PMD faults).
    pub(crate) pmd_align_for: Option<u64>,
}

/// The data area's block allocator.
#[derive(Debug, Clone)]
pub(crate) struct Allocator {
    start: u64,
    end: u64,
    free: RangeSet,
    busy: RangeSet,
    durable: RangeSet,
    /// Reference counts >= 2, per block.
    shared: BTreeMap<u64, u32>,
}

fn nospc() -> DaxError {
    DaxError::NoSpace {
        what: "no free blocks left on the TestFs device",
    }
}

impl Allocator {
    /// An allocator for blocks `start .. end`, all free.
    pub(crate) fn new(start: u64, end: u64) -> Self {
        let mut free = RangeSet::new();
        free.insert(start, end);
        Allocator {
            start,
            end,
            free,
            busy: RangeSet::new(),
            durable: RangeSet::new(),
            shared: BTreeMap::new(),
        }
    }

    /// Rebuilds the allocator from a checkpoint's reference-count runs `(start, len,
    /// count)` (validated by the caller: inside the area, sorted, disjoint, count >= 1).
    /// Everything they cover is durable.
    pub(crate) fn from_refcounts(start: u64, end: u64, runs: &[(u64, u64, u32)]) -> Self {
        let mut a = Allocator::new(start, end);
        for &(s, len, count) in runs {
            a.free.remove(s, s + len);
            a.durable.insert(s, s + len);
            if count >= 2 {
                for b in s..s + len {
                    a.shared.insert(b, count);
                }
            }
        }
        a
    }

    /// Blocks in the data area.
    pub(crate) fn total(&self) -> u64 {
        self.end - self.start
    }

    /// Free blocks.
    pub(crate) fn free_blocks(&self) -> u64 {
        self.free.len()
    }

    /// Busy blocks (freed since the last checkpoint, which still references them).
    pub(crate) fn busy_blocks(&self) -> u64 {
        self.busy.len()
    }

    /// Allocates one run of at most `want` (>= 1) blocks with one reference, as long as
    /// possible: returns `(start, len)`, `len` possibly shorter than `want`.
    /// [`DaxError::NoSpace`] when nothing is free.
    pub(crate) fn alloc(&mut self, want: u64, hint: AllocHint) -> Result<(u64, u64), DaxError> {
        let want = want.max(1);
        let (s, len) = self.choose(want, hint).ok_or_else(nospc)?;
        self.free.remove(s, s + len);
        Ok((s, len))
    }

    fn choose(&self, want: u64, hint: AllocHint) -> Option<(u64, u64)> {
        // 1. Continue the file's previous extent (keeps extents long and aligned).
        if let Some(goal) = hint.goal
            && let Some((_, e)) = self.free.run_containing(goal)
        {
            return Some((goal, want.min(e - goal)));
        }
        // 2. A run starting congruent to the file block modulo 512 with room for a
        //    whole PMD (or all that is wanted).
        if let Some(fb) = hint.pmd_align_for {
            let residue = fb % PMD_BLOCKS;
            let need = want.min(PMD_BLOCKS);
            for (s, e) in self.free.iter() {
                let a = s + (residue + PMD_BLOCKS - s % PMD_BLOCKS) % PMD_BLOCKS;
                if a < e && e - a >= need {
                    return Some((a, want.min(e - a)));
                }
            }
        }
        // 3. First fit, 4. else the longest run.
        if let Some((s, _)) = self.free.iter().find(|&(s, e)| e - s >= want) {
            return Some((s, want));
        }
        self.free
            .iter()
            .max_by_key(|&(s, e)| (e - s, std::cmp::Reverse(s)))
            .map(|(s, e)| (s, e - s))
    }

    /// Reference count of block `b` (0 when free or busy).
    pub(crate) fn refcount(&self, b: u64) -> u32 {
        if b < self.start || b >= self.end || self.free.contains(b) || self.busy.contains(b) {
            0
        } else {
            self.shared.get(&b).copied().unwrap_or(1)
        }
    }

    /// Adds one reference to each block of `start .. start + len` (reflink).
    pub(crate) fn add_ref(&mut self, start: u64, len: u64) {
        for b in start..start + len {
            let c = self.shared.get(&b).copied().unwrap_or(1);
            self.shared.insert(b, c.saturating_add(1));
        }
    }

    /// Drops one reference from each block of `start .. start + len`; blocks left
    /// without references become free, or busy when the durable checkpoint still uses
    /// them.
    pub(crate) fn release(&mut self, start: u64, len: u64) {
        let end = start + len;
        let keys: Vec<u64> = self.shared.range(start..end).map(|(&k, _)| k).collect();
        let mut cur = start;
        for k in keys {
            self.drop_last_ref(cur, k);
            match self.shared.get(&k).copied() {
                Some(c) if c > 2 => {
                    self.shared.insert(k, c - 1);
                }
                _ => {
                    self.shared.remove(&k);
                }
            }
            cur = k + 1;
        }
        self.drop_last_ref(cur, end);
    }

    fn drop_last_ref(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut cur = start;
        for (s, e) in self.durable.intersect(start, end) {
            self.free.insert(cur, s);
            self.busy.insert(s, e);
            cur = e;
        }
        self.free.insert(cur, end);
    }

    /// Whether the blocks from `start` on are shared: `(shared, n)` where the first `n`
    /// (1 ..= `len`) blocks all are, or all are not.
    pub(crate) fn shared_prefix(&self, start: u64, len: u64) -> (bool, u64) {
        let first = self.shared.contains_key(&start);
        let mut n = 1;
        if first {
            while n < len && self.shared.contains_key(&(start + n)) {
                n += 1;
            }
        } else {
            n = match self.shared.range(start..start + len).next() {
                Some((&k, _)) => k - start,
                None => len,
            };
        }
        (first, n.max(1))
    }

    /// Whether a write to blocks `start ..` of an extent flagged shared must copy
    /// them first, as [`shared_prefix`](Self::shared_prefix) answers it: `(true, n)`
    /// for the first `n` blocks if they are shared now, *or* if a checkpoint that may
    /// come back after a crash references them (the durable set): such a checkpoint
    /// may map them into another file, or at another offset — the reflink partner
    /// that has dropped its reference since still has them there — and a write in
    /// place would change that file's durable contents. `(false, n)` for blocks
    /// neither shared nor durable, which no crash can show anywhere else.
    ///
    /// Conservative: a block the durable checkpoint gives to this file alone is
    /// copied once too (the copy is neither shared nor durable, so later writes go in
    /// place).
    pub(crate) fn cow_prefix(&self, start: u64, len: u64) -> (bool, u64) {
        let (shared, n) = self.shared_prefix(start, len);
        if shared {
            return (true, n);
        }
        match self.durable.run_containing(start) {
            Some((_, e)) => (true, (e - start).min(n)),
            None => match self.durable.intersect(start, start + n).first() {
                Some(&(s, _)) => (false, s - start),
                None => (false, n),
            },
        }
    }

    /// A checkpoint that references `referenced` failed to commit, and may or may not
    /// be on the media: after a crash either it or the last durable one comes back.
    /// Until a commit succeeds, blocks either references are kept from reuse (the
    /// durable set grows by `referenced`, so blocks freed meanwhile become busy).
    pub(crate) fn checkpoint_failed(&mut self, referenced: RangeSet) {
        for (s, e) in referenced.iter() {
            self.durable.insert(s, e);
        }
    }

    /// A checkpoint that references exactly `referenced` is durable: busy blocks it
    /// does not reference become free, and it is the new durable set.
    pub(crate) fn checkpoint_committed(&mut self, referenced: RangeSet) {
        let busy = std::mem::take(&mut self.busy);
        for (s, e) in busy.iter() {
            let mut cur = s;
            for (a, b) in referenced.intersect(s, e) {
                self.free.insert(cur, a);
                self.busy.insert(a, b);
                cur = b;
            }
            self.free.insert(cur, e);
        }
        self.durable = referenced;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_then_longest_then_enospc() {
        let mut a = Allocator::new(10, 20);
        assert_eq!(a.alloc(4, AllocHint::default()).unwrap(), (10, 4));
        assert_eq!(a.alloc(4, AllocHint::default()).unwrap(), (14, 4));
        assert_eq!(a.alloc(4, AllocHint::default()).unwrap(), (18, 2));
        assert_eq!(
            a.alloc(1, AllocHint::default()).unwrap_err().errno(),
            libc::ENOSPC
        );
        a.release(12, 2);
        assert_eq!(a.free_blocks(), 2);
        assert_eq!(a.refcount(12), 0);
        assert_eq!(a.refcount(11), 1);
    }

    #[test]
    fn pmd_alignment_is_congruent_to_the_file_block() {
        let mut a = Allocator::new(17, 4096);
        let hint = AllocHint {
            goal: None,
            pmd_align_for: Some(0),
        };
        assert_eq!(a.alloc(512, hint).unwrap(), (512, 512));
        let hint = AllocHint {
            goal: None,
            pmd_align_for: Some(515),
        };
        let (s, _) = a.alloc(1, hint).unwrap();
        assert_eq!(s % 512, 3);
    }

    #[test]
    fn shared_refcounts_and_busy_blocks() {
        let mut a = Allocator::new(0, 100);
        let (s, n) = a.alloc(10, AllocHint::default()).unwrap();
        let mut durable = RangeSet::new();
        durable.insert(s, s + n);
        a.checkpoint_committed(durable);
        a.add_ref(s + 2, 3);
        assert_eq!(a.refcount(s + 2), 2);
        assert_eq!(a.shared_prefix(s, 10), (false, 2));
        assert_eq!(a.shared_prefix(s + 2, 8), (true, 3));
        a.release(s, 10);
        assert_eq!(a.refcount(s + 2), 1);
        assert_eq!(a.refcount(s), 0);
        // The durable checkpoint still references the freed blocks: busy, not free.
        assert_eq!(a.busy_blocks(), 7);
        assert_eq!(a.free_blocks(), 90);
        let mut still = RangeSet::new();
        still.insert(s + 2, s + 5);
        a.checkpoint_committed(still);
        assert_eq!((a.busy_blocks(), a.free_blocks()), (0, 97));
    }

    #[test]
    fn blocks_a_durable_checkpoint_references_are_copied_on_write() {
        let mut a = Allocator::new(0, 100);
        let (s, _) = a.alloc(10, AllocHint::default()).unwrap();
        let mut durable = RangeSet::new();
        durable.insert(s + 4, s + 6);
        a.checkpoint_committed(durable);
        a.add_ref(s, 2);
        // Shared now, then durable, then neither.
        assert_eq!(a.cow_prefix(s, 10), (true, 2));
        assert_eq!(a.cow_prefix(s + 2, 8), (false, 2));
        assert_eq!(a.cow_prefix(s + 4, 6), (true, 2));
        assert_eq!(a.cow_prefix(s + 6, 4), (false, 4));
        // The partner drops its reference: not shared, still not to be written in
        // place while the durable checkpoint may come back.
        a.release(s + 4, 2);
        assert_eq!(a.cow_prefix(s + 4, 2), (true, 2));
    }
}
