//! `errseq_t` (lib/errseq.c): an error and a counter in one word, so that each
//! observer (an open file's cursor) is told about an error once, and observers that
//! arrive after someone saw it are not told at all.
//!
//! The word, as the kernel lays it out: the low 12 bits hold the latest errno
//! (positive here; the kernel keeps `-errno` in the same bits), bit 12 is SEEN (the
//! latest error was reported to someone), and the bits above count errors.
//! [`DaxMapping`](crate::DaxMapping) keeps one for its writeback errors; its docs give
//! the rules as a filesystem sees them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The errno bits (`MAX_ERRNO`).
const ERRNO_MASK: u64 = 4095;
/// `ERRSEQ_SEEN`.
const SEEN: u64 = 1 << 12;
/// `ERRSEQ_CTR_INC`.
const CTR_INC: u64 = 1 << 13;

/// `errseq_set`: records `errno` (1 ..= 4095; anything else is recorded as `EIO`, as
/// the kernel refuses bad values). The counter moves on only if the previous error
/// was seen; otherwise the new errno replaces the unseen one.
pub(crate) fn set(word: &AtomicU64, errno: i32) {
    let errno = match u64::try_from(errno) {
        Ok(e) if (1..=ERRNO_MASK).contains(&e) => e,
        _ => libc::EIO as u64,
    };
    let mut old = word.load(Ordering::Acquire);
    loop {
        let mut new = (old & !(ERRNO_MASK | SEEN)) | errno;
        if old & SEEN != 0 {
            new = new.wrapping_add(CTR_INC);
        }
        if new == old {
            return;
        }
        match word.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => old = now,
        }
    }
}

/// `errseq_sample`: the current value if its error was seen (or there never was
/// one), else 0, so that the sampler is told about the unseen error.
pub(crate) fn sample(word: &AtomicU64) -> u64 {
    let old = word.load(Ordering::Acquire);
    if old & SEEN == 0 { 0 } else { old }
}

/// `errseq_check`: whether an error was recorded since `since`.
pub(crate) fn check(word: &AtomicU64, since: u64) -> bool {
    let cur = word.load(Ordering::Acquire);
    cur & ERRNO_MASK != 0 && cur != since
}

/// `errseq_check_and_advance`: the errno recorded since `*since` (0 for none); moves
/// `*since` to the current value and marks the error seen.
pub(crate) fn check_and_advance(word: &AtomicU64, since: &mut u64) -> i32 {
    let old = word.load(Ordering::Acquire);
    if old == *since {
        return 0;
    }
    let new = old | SEEN;
    if new != old {
        // A failed exchange means someone set a new error or marked this one seen;
        // either way this caller reports what it read, as the kernel does.
        let _ = word.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire);
    }
    *since = new;
    (new & ERRNO_MASK) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const EIO: i32 = libc::EIO;
    const ENOSPC: i32 = libc::ENOSPC;

    #[test]
    fn no_error_is_reported_to_nobody() {
        let w = AtomicU64::new(0);
        let mut a = sample(&w);
        assert_eq!(check_and_advance(&w, &mut a), 0);
        assert!(!check(&w, a));
    }

    #[test]
    fn each_cursor_is_told_once() {
        let w = AtomicU64::new(0);
        let (mut a, mut b) = (sample(&w), sample(&w));
        set(&w, EIO);
        assert!(check(&w, a));
        assert_eq!(check_and_advance(&w, &mut a), EIO);
        assert_eq!(check_and_advance(&w, &mut a), 0, "once per cursor");
        assert_eq!(check_and_advance(&w, &mut b), EIO, "b was open before");
        assert_eq!(check_and_advance(&w, &mut b), 0);
    }

    #[test]
    fn an_unseen_error_is_told_to_a_later_opener_a_seen_one_is_not() {
        let w = AtomicU64::new(0);
        set(&w, EIO);
        let mut late = sample(&w);
        assert_eq!(late, 0, "unseen: sample 0");
        assert_eq!(check_and_advance(&w, &mut late), EIO);
        let mut later = sample(&w);
        assert_eq!(check_and_advance(&w, &mut later), 0, "seen: not reported");
    }

    #[test]
    fn errors_nobody_saw_coalesce_into_the_latest_and_seen_ones_count_again() {
        let w = AtomicU64::new(0);
        let mut a = sample(&w);
        set(&w, EIO);
        set(&w, ENOSPC);
        assert_eq!(check_and_advance(&w, &mut a), ENOSPC, "the latest");
        assert_eq!(check_and_advance(&w, &mut a), 0, "both reported as one");
        set(&w, ENOSPC); // the same error again, after it was seen: a new event
        assert_eq!(check_and_advance(&w, &mut a), ENOSPC);
        // The same unseen error twice does not change the word.
        let before = w.load(Ordering::Relaxed);
        set(&w, EIO);
        let once = w.load(Ordering::Relaxed);
        set(&w, EIO);
        assert_eq!(w.load(Ordering::Relaxed), once);
        assert_ne!(before, once);
    }

    #[test]
    fn bad_errnos_are_recorded_as_eio() {
        for bad in [0, -5, 4096, i32::MAX] {
            let w = AtomicU64::new(0);
            let mut a = sample(&w);
            set(&w, bad);
            assert_eq!(check_and_advance(&w, &mut a), EIO, "{bad}");
        }
    }
}
