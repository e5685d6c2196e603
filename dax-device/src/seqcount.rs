//! [`SeqCount`]: a sequence counter for data published in atomics, read without a
//! lock (the kernel's `seqcount_t`: `read_seqcount_begin`, `read_seqcount_retry`,
//! `write_seqcount_begin`, `write_seqcount_end`).
//!
//! Writers, serialised by a lock of their own, bracket each change with
//! [`SeqCount::write_begin`] and [`SeqCount::write_end`]; the counter is odd in
//! between. Readers take a [`SeqToken`] with [`SeqCount::begin`] (or
//! [`SeqCount::try_begin`], which declines instead of waiting while a writer is
//! inside), load the data, and keep what they read only if [`SeqCount::retry`] says
//! no writer started since. The data itself must live in atomics, loaded and stored
//! with `Relaxed` ordering: then a racing reader sees stale values, never torn ones,
//! and the counter rejects them. There is no data race and no `unsafe`.
//!
//! Memory ordering is the seqlock recipe for a language memory model (Boehm, "Can
//! seqlocks get along with programming language memory models?", 2012): the writer
//! makes the counter odd, issues a release fence, stores the data, and stores the next
//! even value with release; the reader loads the counter with acquire, loads the data,
//! issues an acquire fence and loads the counter again. If the reader saw any value
//! stored after the writer's fence, the fences synchronise and its second load sees
//! the odd counter or a later one.
//!
//! # Flag bits
//!
//! The low `FLAGS` bits of the counter's word are not part of the sequence: they
//! hold up to two flags that belong to the published state (the bad-block table keeps
//! `changed` and `unacked_exist` there), so a reader gets the flags and the data it
//! read under one load, and [`SeqCount::clear_flags_if_unchanged`] can clear a flag
//! only if no writer came in since a given read. Writers set the flags with
//! [`SeqCount::write_end`]; a flag change outside a write section
//! ([`SeqCount::clear_flags`]) does not move the sequence, so readers do not retry
//! for it.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
//! use dax_device::SeqCount;
//! use std::sync::Mutex;
//!
//! // A pair that readers must never see half-updated.
//! struct Pair { seq: SeqCount, a: AtomicU64, b: AtomicU64, writer: Mutex<()> }
//!
//! impl Pair {
//!     fn set(&self, a: u64, b: u64) {
//!         let _w = self.writer.lock().unwrap(); // writers serialise among themselves
//!         let flags = self.seq.write_begin();
//!         self.a.store(a, Relaxed);
//!         self.b.store(b, Relaxed);
//!         self.seq.write_end(flags);
//!     }
//!     fn get(&self) -> (u64, u64) {
//!         loop {
//!             let t = self.seq.begin();
//!             let v = (self.a.load(Relaxed), self.b.load(Relaxed));
//!             if !self.seq.retry(t) {
//!                 return v;
//!             }
//!         }
//!     }
//! }
//!
//! let p = Pair { seq: SeqCount::new(), a: 0.into(), b: 0.into(), writer: Mutex::new(()) };
//! p.set(1, 2);
//! assert_eq!(p.get(), (1, 2));
//! ```

use crate::sync::{AtomicU64, Ordering, Wait, backoff, fence};

/// A sequence counter whose word also holds `FLAGS` (0, 1 or 2) flag bits in its low
/// bits (`seqcount_t`). See the [module docs](self).
pub struct SeqCount<const FLAGS: u32 = 0> {
    /// Flag bits `0..FLAGS`; the sequence above them, whose lowest bit is set while a
    /// writer is inside.
    word: AtomicU64,
}

/// What a reader took at the start of a read section: the counter's whole word (even
/// sequence and the flags), for [`SeqCount::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a read section is only valid if `retry` says so"]
pub struct SeqToken<const FLAGS: u32 = 0>(u64);

impl<const FLAGS: u32> SeqToken<FLAGS> {
    /// The flags as they were when the read section began (always 0 for a counter
    /// without flag bits).
    pub fn flags(self) -> u64 {
        self.0 & SeqCount::<FLAGS>::FLAG_MASK
    }
}

impl<const FLAGS: u32> Default for SeqCount<FLAGS> {
    /// Same as [`SeqCount::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<const FLAGS: u32> std::fmt::Debug for SeqCount<FLAGS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.word.load(Ordering::Relaxed);
        f.debug_struct("SeqCount")
            .field("sequence", &(w >> FLAGS))
            .field("flags", &(w & Self::FLAG_MASK))
            .finish()
    }
}

impl<const FLAGS: u32> SeqCount<FLAGS> {
    const CHECK: () = assert!(FLAGS <= 2, "SeqCount keeps at most two flag bits");
    /// The flag bits of the word.
    pub const FLAG_MASK: u64 = (1 << FLAGS) - 1;
    /// The sequence's lowest bit: set while a writer is inside.
    const WRITING: u64 = 1 << FLAGS;

    /// A counter at sequence 0 with every flag clear (`seqcount_init`).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        let () = Self::CHECK;
        SeqCount {
            word: AtomicU64::new(0),
        }
    }

    /// A counter at sequence 0 with every flag clear (`seqcount_init`).
    #[cfg(loom)]
    pub fn new() -> Self {
        let () = Self::CHECK;
        SeqCount {
            word: AtomicU64::new(0),
        }
    }

    /// Starts a read section, waiting (spinning, then yielding; never sleeping) while
    /// a writer is inside (`read_seqcount_begin`).
    pub fn begin(&self) -> SeqToken<FLAGS> {
        let mut spins = 0;
        loop {
            if let Some(t) = self.try_begin() {
                return t;
            }
            backoff(&mut spins, Wait::Short);
        }
    }

    /// Starts a read section, or `None` while a writer is inside (for a reader that
    /// has a locked path to fall back on rather than wait).
    pub fn try_begin(&self) -> Option<SeqToken<FLAGS>> {
        let w = self.word.load(Ordering::Acquire);
        (w & Self::WRITING == 0).then_some(SeqToken(w))
    }

    /// Ends a read section: true if a writer started since `token` was taken, so what
    /// was read must be thrown away (`read_seqcount_retry`). Flag changes made outside
    /// write sections do not count.
    #[must_use = "what was read is only valid if this is false"]
    pub fn retry(&self, token: SeqToken<FLAGS>) -> bool {
        // Orders the data loads of the section before the re-read of the counter.
        fence(Ordering::Acquire);
        let now = self.word.load(Ordering::Relaxed);
        (now ^ token.0) & !Self::FLAG_MASK != 0
    }

    /// The flags now (the low `FLAGS` bits of the word).
    pub fn flags(&self) -> u64 {
        self.word.load(Ordering::Acquire) & Self::FLAG_MASK
    }

    /// Enters a write section and returns the flags, for [`SeqCount::write_end`]
    /// (`write_seqcount_begin`). The caller serialises writers with a lock of its
    /// own; two writers inside at once would leave the counter wrong (readers would
    /// retry forever or accept a mix; no memory is at risk, all data being atomics).
    pub fn write_begin(&self) -> u64 {
        let begin = self.word.fetch_add(Self::WRITING, Ordering::Relaxed);
        debug_assert_eq!(begin & Self::WRITING, 0, "two SeqCount writers at once");
        // Orders the odd counter before the data stores that follow.
        fence(Ordering::Release);
        begin & Self::FLAG_MASK
    }

    /// Leaves a write section, publishing `flags` (masked to the flag bits) with the
    /// next even sequence (`write_seqcount_end`).
    pub fn write_end(&self, flags: u64) {
        let w = self.word.load(Ordering::Relaxed);
        debug_assert_ne!(w & Self::WRITING, 0, "write_end without write_begin");
        let seq = (w & !Self::FLAG_MASK).wrapping_add(Self::WRITING);
        self.word
            .store(seq | (flags & Self::FLAG_MASK), Ordering::Release);
    }

    /// Clears the flags in `mask` without moving the sequence. The caller holds the
    /// writers' lock (the change must not land inside a write section, whose
    /// `write_end` would undo it).
    pub fn clear_flags(&self, mask: u64) {
        self.word
            .fetch_and(!(mask & Self::FLAG_MASK), Ordering::AcqRel);
    }

    /// Clears the flags in `mask` only if the word is still what `token` saw: no
    /// writer started and no flag changed since the read section began. Returns
    /// whether it did. Needs no lock.
    pub fn clear_flags_if_unchanged(&self, token: SeqToken<FLAGS>, mask: u64) -> bool {
        self.word
            .compare_exchange(
                token.0,
                token.0 & !(mask & Self::FLAG_MASK),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64 as StdU64, Ordering::Relaxed};

    #[test]
    fn a_write_section_sends_readers_back() {
        let s = SeqCount::<0>::new();
        let t = s.begin();
        assert!(!s.retry(t));
        let f = s.write_begin();
        assert!(s.try_begin().is_none());
        assert!(s.retry(t));
        s.write_end(f);
        assert!(
            s.retry(t),
            "a finished write still invalidates older readers"
        );
        assert!(!s.retry(s.begin()));
    }

    #[test]
    fn flags_ride_with_the_sequence() {
        const A: u64 = 1;
        const B: u64 = 2;
        let s = SeqCount::<2>::new();
        let f = s.write_begin();
        assert_eq!(f, 0);
        s.write_end(A | B);
        assert_eq!(s.flags(), A | B);
        let t = s.begin();
        assert_eq!(t.flags(), A | B);
        // A flag change outside a write section does not invalidate readers...
        s.clear_flags(B);
        assert!(!s.retry(t));
        assert_eq!(s.flags(), A);
        // ...but it does make a conditional clear based on the older read fail.
        assert!(!s.clear_flags_if_unchanged(t, A));
        let t = s.begin();
        assert!(s.clear_flags_if_unchanged(t, A));
        assert_eq!(s.flags(), 0);
        // write_begin hands back the flags; write_end can change them.
        s.clear_flags(0);
        let f = s.write_begin();
        s.write_end(f | B);
        assert_eq!(s.flags(), B);
    }

    #[test]
    fn sequence_bits_never_spill_into_flags() {
        let s = SeqCount::<2>::new();
        for _ in 0..1000 {
            let f = s.write_begin();
            s.write_end(f);
        }
        assert_eq!(s.flags(), 0);
    }

    /// Two threads hammer a pair that must always read equal; any accepted read of a
    /// mixed pair fails the test.
    #[test]
    fn readers_never_accept_a_torn_pair() {
        struct P {
            s: SeqCount<1>,
            a: StdU64,
            b: StdU64,
        }
        let p = Arc::new(P {
            s: SeqCount::new(),
            a: StdU64::new(0),
            b: StdU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Relaxed) {
                    i += 1;
                    let f = p.s.write_begin();
                    p.a.store(i, Relaxed);
                    std::hint::spin_loop();
                    p.b.store(i, Relaxed);
                    p.s.write_end(f ^ 1);
                }
            })
        };
        let mut accepted = 0;
        // Under Miri, which checks the pair's accesses for data races at 100 to 1000
        // times the cost, a few hundred.
        while accepted < if cfg!(miri) { 300 } else { 200_000 } {
            let t = p.s.begin();
            let (a, b) = (p.a.load(Relaxed), p.b.load(Relaxed));
            if !p.s.retry(t) {
                assert_eq!(a, b, "accepted a torn read");
                accepted += 1;
            }
        }
        stop.store(true, Relaxed);
        w.join().unwrap();
    }
}
