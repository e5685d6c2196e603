//! The media-error table of a device (`block/badblocks.c`, `include/linux/badblocks.h`).
//!
//! A [`Badblocks`] table remembers which sectors (512-byte units) of a device are known
//! to be unreadable, e.g. because the platform reported poison in persistent memory.
//! The pmem driver consults it on every `direct_access`, read and write, so a
//! filesystem sees `EIO`/`EHWPOISON` instead of a machine check, and clears records
//! when a write repairs the media. This module is a behavioural reimplementation of
//! the Linux 6.15.4 table: the same record format, the same limits, the same record
//! layouts after every operation, and the same flags.
//!
//! # The table
//!
//! * At most [`MAX_BADBLOCKS`] (512) records, each covering 1 to [`BB_MAX_LEN`] (512)
//!   consecutive sectors, sorted by start and never overlapping. Longer ranges are
//!   stored as several records. Adjacent records exist when they cannot be merged
//!   (different acknowledgement, or more than 512 sectors together).
//! * Each record is *acknowledged* (the bad range is recorded in persistent metadata:
//!   pmem's platform list, the sysfs `badblocks` file, md's superblock) or
//!   *unacknowledged* (md: found at run time, not yet persisted). An unacknowledged set
//!   never downgrades acknowledged sectors; an acknowledged set overwrites
//!   unacknowledged ones, splitting records as needed.
//! * [`Badblocks::changed`] is raised by every successful set or clear and only
//!   cleared by the owner ([`Badblocks::clear_changed`], as md does after writing its
//!   metadata). [`Badblocks::unacked_exist`] is a hint that unacknowledged records may
//!   exist; it is never false while one does.
//! * The packed 64-bit record format ([`encode`]/[`decode`]) is the kernel's; some
//!   users persist it.
//!
//! | bits  | meaning                |
//! |-------|------------------------|
//! | 63    | acknowledged           |
//! | 62..9 | start sector (54 bits) |
//! | 8..0  | length − 1             |
//!
//! A full table cannot grow: [`Badblocks::set`] then fails (even for sectors already
//! recorded, as in the kernel), keeping whatever head of the range it managed to record;
//! [`Badblocks::clear`] abandons a clear that would have to split a record.
//!
//! # Reading it
//!
//! [`Badblocks::check`] answers "is anything in `[s, s + sectors)` bad?" with the
//! lowest overlapping record *in full*: its start may lie before `s` and its length is
//! not clipped to the query (as in the kernel; pmem's recovery sizing depends on it). A caller
//! that wants the bad part inside its own range must clip it itself.
//!
//! Readers never take a lock. When the table is empty, `check` is a single atomic
//! load. Otherwise the records are published under a sequence counter (a
//! [`SeqCount`], as the kernel's `seqlock_t`): writers serialise on a mutex, edit a private copy, and copy
//! the result into an array of atomics with the counter odd; readers (`check`, `show`,
//! `records`) retry when the counter moved under them, so they always see a table that
//! existed between two writes.
//!
//! # Sector space and overflow
//!
//! A record start has 54 bits, so only sectors below [`BB_SECTOR_LIMIT`] (2^54) can be
//! recorded. `set` records the part of a range below the limit and returns false when
//! it had to drop anything (an `s + sectors` that overflows `u64` included); `clear`
//! and `check` treat everything at or above the limit as clean (a `check` range end
//! saturates at `u64::MAX`). No input panics.
//!
//! # Kernel quirks kept
//!
//! * **No rounding to the shift.** In 6.15.4 the rounding of a range to `2^shift`
//!   sectors in set/clear/check computes a value and discards it, so a table with a
//!   shift records exactly the sectors it is given; only `show` applies the shift. A
//!   fix (assign the rounded values: round out for set and check, in for clear) was
//!   posted to linux-block/stable, but no upstream tree available to this project
//!   carries it, so dax-rs keeps the 6.15.4 behaviour. Irrelevant for shift 0 (pmem).
//! * **A full table refuses every `set`**, even one of a range already recorded.
//! * **`check` reports whole records:** the first overlapping record's full extent.
//!
//! # Deliberate differences
//!
//! * Ranges reaching past [`BB_SECTOR_LIMIT`] are cut there (see above); the kernel
//!   would corrupt the record. [`Badblocks::store`] refuses such a range with
//!   `EINVAL` instead of recording part of it.
//! * `show(unack = true)` clears `unacked_exist` only if no writer ran since the
//!   records it printed were read; the kernel clears it before its retry check and can
//!   lose the hint.
//!
//! # Example
//!
//! ```
//! use dax_device::badblocks::{BadRange, Badblocks, BadblocksCheck};
//!
//! let bb = Badblocks::new();
//! assert!(bb.set(100, 8, true)); // sectors 100..108 are poisoned, known to the platform
//! assert_eq!(
//!     bb.check(96, 8),
//!     BadblocksCheck::Acknowledged { first_bad: 100, bad_sectors: 8 }
//! );
//! assert!(bb.clear(100, 4)); // a write repaired the first four
//! assert_eq!(bb.records(), vec![BadRange { start: 104, len: 4, acknowledged: true }]);
//! assert_eq!(bb.show(false), "104 4\n");
//! ```

mod table;
mod text;

use crate::seqcount::{SeqCount, SeqToken};
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use std::fmt;

use crate::sync::Mutex;

use crate::DaxError;
use table::Flags;

/// Maximum number of records in a table (`MAX_BADBLOCKS`: one 4 KiB page of 8-byte
/// records).
pub const MAX_BADBLOCKS: usize = 512;

/// Maximum length of one record in sectors (`BB_MAX_LEN`).
pub const BB_MAX_LEN: u64 = 512;

/// First sector that cannot be recorded: record starts have 54 bits (`BB_OFFSET`).
pub const BB_SECTOR_LIMIT: u64 = 1 << 54;

/// Packs a record in the kernel's format (`BB_MAKE`): bit 63 acknowledged, bits 62..9
/// start sector, bits 8..0 `len - 1`.
///
/// Returns `None` when `start >= 2^54` or `len` is not in `1..=512`, which the format
/// cannot hold.
///
/// ```
/// use dax_device::badblocks::{decode, encode, BadRange};
/// let raw = encode(100, 8, true).unwrap();
/// assert_eq!(raw, (1 << 63) | (100 << 9) | 7);
/// assert_eq!(decode(raw), BadRange { start: 100, len: 8, acknowledged: true });
/// ```
pub fn encode(start: u64, len: u64, acknowledged: bool) -> Option<u64> {
    (start < BB_SECTOR_LIMIT && (1..=BB_MAX_LEN).contains(&len))
        .then(|| table::make(start, len, acknowledged))
}

/// Unpacks a record in the kernel's format (`BB_OFFSET`, `BB_LEN`, `BB_ACK`).
///
/// Every 64-bit value decodes to a valid range (1..=512 sectors below
/// 2^54 + 512).
pub fn decode(raw: u64) -> BadRange {
    BadRange {
        start: table::start(raw),
        len: table::len(raw),
        acknowledged: table::acked(raw),
    }
}

/// One record of the table: sectors `start..start + len` (one `u64` entry of
/// `bb->page`, decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BadRange {
    /// First bad sector (`BB_OFFSET`).
    pub start: u64,
    /// Number of bad sectors, 1..=512 (`BB_LEN`).
    pub len: u64,
    /// Recorded in persistent metadata (`BB_ACK`).
    pub acknowledged: bool,
}

impl BadRange {
    /// The first sector after the range (`BB_END`).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    /// The packed kernel form of this range ([`encode`]); `None` if it does not fit.
    pub fn encode(&self) -> Option<u64> {
        encode(self.start, self.len, self.acknowledged)
    }
}

/// The answer of [`Badblocks::check`] (`badblocks_check`'s return value and its
/// `first_bad`/`bad_sectors` outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadblocksCheck {
    /// No record overlaps the range (kernel result 0; outputs untouched).
    Clean,
    /// Only acknowledged records overlap (kernel result 1).
    Acknowledged {
        /// Start of the lowest overlapping record (may precede the query).
        first_bad: u64,
        /// Full length of that record (not clipped to the query).
        bad_sectors: u64,
    },
    /// At least one unacknowledged record overlaps (kernel result -1).
    Unacknowledged {
        /// Start of the lowest overlapping record (may precede the query).
        first_bad: u64,
        /// Full length of that record (not clipped to the query).
        bad_sectors: u64,
    },
}

impl BadblocksCheck {
    /// The kernel's `int` result of `badblocks_check`: 0, 1 or -1.
    pub fn kernel_result(&self) -> i32 {
        match self {
            BadblocksCheck::Clean => 0,
            BadblocksCheck::Acknowledged { .. } => 1,
            BadblocksCheck::Unacknowledged { .. } => -1,
        }
    }

    /// True unless [`BadblocksCheck::Clean`] (`badblocks_check(...) != 0`).
    pub fn is_bad(&self) -> bool {
        !matches!(self, BadblocksCheck::Clean)
    }

    /// The `(first_bad, bad_sectors)` outputs, when any record overlapped.
    pub fn first_bad(&self) -> Option<(u64, u64)> {
        match *self {
            BadblocksCheck::Clean => None,
            BadblocksCheck::Acknowledged {
                first_bad,
                bad_sectors,
            }
            | BadblocksCheck::Unacknowledged {
                first_bad,
                bad_sectors,
            } => Some((first_bad, bad_sectors)),
        }
    }
}

// The two flags live in the low bits of the sequence counter's word
// (`SeqCount<2>`), so that `show` can clear `unacked_exist` only if no writer
// intervened, and a reader gets flags and records from one load.
const UNACKED: u64 = 1 << 0;
const CHANGED: u64 = 1 << 1;

fn flags_of(word: u64) -> Flags {
    Flags {
        changed: word & CHANGED != 0,
        unacked_exist: word & UNACKED != 0,
    }
}

fn flag_bits(f: Flags) -> u64 {
    (if f.changed { CHANGED } else { 0 }) | (if f.unacked_exist { UNACKED } else { 0 })
}

/// The bad-sector table of a device (`struct badblocks`).
///
/// All methods take `&self`: writers (`set`, `clear`, `ack_all`, `clear_changed`)
/// serialise on an internal mutex; readers (`check`, `show`, `records`, the flag and
/// count getters) never lock. See the [module docs](self) for the semantics.
pub struct Badblocks {
    /// `bb->shift`: `None` when the table is disabled (kernel shift -1).
    shift: Option<u32>,
    /// Sequence counter, with `changed` and `unacked_exist` in its flag bits.
    seq: SeqCount<2>,
    /// Published record count (`bb->count`).
    count: AtomicUsize,
    /// Published records (`bb->page`); slots at and past `count` are stale.
    slots: Box<[AtomicU64; MAX_BADBLOCKS]>,
    /// The authoritative records, edited by one writer at a time.
    writer: Mutex<Vec<u64>>,
}

impl Default for Badblocks {
    /// Same as [`Badblocks::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Badblocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Badblocks")
            .field("shift", &self.shift)
            .field("changed", &self.changed())
            .field("unacked_exist", &self.unacked_exist())
            .field("records", &self.records())
            .finish()
    }
}

impl Badblocks {
    fn with_state(shift: Option<u32>) -> Self {
        Badblocks {
            shift,
            seq: SeqCount::new(),
            count: AtomicUsize::new(0),
            slots: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            writer: Mutex::new(Vec::with_capacity(MAX_BADBLOCKS + 2)),
        }
    }

    /// An empty, enabled table with shift 0 (`badblocks_init(bb, 1)`,
    /// `devm_init_badblocks`).
    pub fn new() -> Self {
        Self::with_state(Some(0))
    }

    /// A disabled table (`badblocks_init(bb, 0)`, shift -1): `set` and `clear` return
    /// false, `show` prints nothing, `check` reports clean.
    pub fn disabled() -> Self {
        Self::with_state(None)
    }

    /// An empty, enabled table whose `show` output is in units of `2^shift` sectors
    /// (`bb->shift`).
    ///
    /// As in 6.15.4 (see the module docs), set, clear and check do not round
    /// their ranges to `2^shift`. `show` shifts start and length left by `shift` with
    /// the kernel's integer widths (64-bit start, 32-bit length; bits shifted out are
    /// lost, a shift at or past the width gives 0).
    pub fn with_shift(shift: u32) -> Self {
        Self::with_state(Some(shift))
    }

    /// `bb->shift`, or `None` when the table is disabled (shift < 0).
    pub fn shift(&self) -> Option<u32> {
        self.shift
    }

    /// True when no record is present (`badblocks_empty`). One atomic load.
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// Number of records (`bb->count`).
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// `bb->changed`: raised by every set or clear that did something (a set whose
    /// range was already covered by same-ack records counts), cleared only by
    /// [`Badblocks::clear_changed`].
    pub fn changed(&self) -> bool {
        self.seq.flags() & CHANGED != 0
    }

    /// Clears `bb->changed`, as md does after persisting its bad-block log. Needed
    /// before [`Badblocks::ack_all`] can do anything.
    pub fn clear_changed(&self) {
        let _w = self.writer.lock();
        self.seq.clear_flags(CHANGED);
    }

    /// `bb->unacked_exist`: a hint that unacknowledged records may exist. It is true
    /// whenever one does; it may stay true after the last one went away until a set,
    /// clear, [`Badblocks::ack_all`] or `show(true)` notices.
    pub fn unacked_exist(&self) -> bool {
        self.seq.flags() & UNACKED != 0
    }

    /// Runs `read` on a consistent view of the published records and returns its
    /// result together with the token (flags and sequence) it was read under.
    fn read<R>(&self, mut read: impl FnMut(&[AtomicU64]) -> R) -> (R, SeqToken<2>) {
        loop {
            let token = self.seq.begin();
            let n = self.count.load(Ordering::Relaxed).min(MAX_BADBLOCKS);
            let out = read(&self.slots[..n]);
            if !self.seq.retry(token) {
                return (out, token);
            }
        }
    }

    /// Runs `edit` on the authoritative records as the only writer and publishes the
    /// result.
    fn write<R>(&self, edit: impl FnOnce(&mut Vec<u64>, &mut Flags) -> R) -> R {
        self.publish(&mut self.writer.lock(), edit)
    }

    /// The body of [`Self::write`] for a caller that already holds the writer lock.
    fn publish<R>(
        &self,
        recs: &mut Vec<u64>,
        edit: impl FnOnce(&mut Vec<u64>, &mut Flags) -> R,
    ) -> R {
        // The writer lock is held, so this is the only write section; flag bits change
        // otherwise only under that lock or (by `show`) conditionally on an unchanged
        // word, which fails while this section is open.
        let mut flags = flags_of(self.seq.write_begin());
        let out = edit(recs, &mut flags);
        for (slot, &r) in self.slots.iter().zip(recs.iter()) {
            if slot.load(Ordering::Relaxed) != r {
                slot.store(r, Ordering::Relaxed);
            }
        }
        self.count.store(recs.len(), Ordering::Relaxed);
        self.seq.write_end(flag_bits(flags));
        out
    }

    /// Checks `[s, s + sectors)` for bad sectors (`badblocks_check`).
    ///
    /// Returns whether any overlapping record is unacknowledged (-1), only
    /// acknowledged ones overlap (1), or none does (0), with the start and *full*
    /// length of the lowest overlapping record (not clipped to the query, as in the
    /// kernel). Never blocks; on an empty table it is one atomic load.
    ///
    /// Like the kernel (which warns and goes on), a zero-length query asks about the
    /// single sector `s`. The range end saturates at `u64::MAX`. As in 6.15.4 no
    /// rounding to `2^shift` happens. A disabled table is always clean.
    pub fn check(&self, s: u64, sectors: u64) -> BadblocksCheck {
        if self.count.load(Ordering::Acquire) == 0 {
            return BadblocksCheck::Clean;
        }
        let e = s.saturating_add(sectors.max(1));
        let (scan, _) =
            self.read(|slots| table::scan(slots.len(), |i| slots[i].load(Ordering::Relaxed), s, e));
        match scan {
            None => BadblocksCheck::Clean,
            Some((unacked, r)) => {
                let (first_bad, bad_sectors) = (table::start(r), table::len(r));
                if unacked {
                    BadblocksCheck::Unacknowledged {
                        first_bad,
                        bad_sectors,
                    }
                } else {
                    BadblocksCheck::Acknowledged {
                        first_bad,
                        bad_sectors,
                    }
                }
            }
        }
    }

    /// Marks `[s, s + sectors)` bad (`badblocks_set`); returns true iff every sector
    /// was handled.
    ///
    /// Sectors already covered by a record of the same acknowledgement are skipped (a
    /// touching record grows, up to 512 sectors); an unacknowledged set leaves
    /// acknowledged sectors alone; an acknowledged set overwrites unacknowledged
    /// sectors, splitting records. Afterwards the last touched record is merged with
    /// its successor when they touch, agree and fit.
    ///
    /// False when the table is disabled, `sectors == 0`, `s >= 2^54`, or the table
    /// was (or became) full before the range was done: then the handled head of the
    /// range stays recorded (as in the kernel, a full table refuses even a no-op). A range
    /// reaching past [`BB_SECTOR_LIMIT`] (or past `u64::MAX`) is recorded up to the
    /// limit and reported false.
    ///
    /// If any step recorded, extended, merged or skipped-as-covered something,
    /// `changed` is raised; then an unacknowledged set raises `unacked_exist`, an
    /// acknowledged one clears it if no unacknowledged record is left.
    pub fn set(&self, s: u64, sectors: u64, acknowledged: bool) -> bool {
        if self.shift.is_none() || sectors == 0 || s >= BB_SECTOR_LIMIT {
            return false;
        }
        let end = s.saturating_add(sectors).min(BB_SECTOR_LIMIT);
        let cut = end - s < sectors;
        let done = self.write(|recs, flags| table::set(recs, flags, s, end - s, acknowledged));
        done && !cut
    }

    /// Marks `[s, s + sectors)` good again (`badblocks_clear`); returns true iff at
    /// least one step succeeded.
    ///
    /// Records are shrunk, deleted or split; the surviving pieces keep their
    /// acknowledgement and nothing is merged. Clearing clean space succeeds. When the
    /// table is full and the range lies strictly inside one record (a split would
    /// need a slot), the clear is abandoned and returns false. False also
    /// when disabled or `sectors == 0`. Sectors at or past [`BB_SECTOR_LIMIT`]
    /// (including an `s + sectors` past `u64::MAX`) are clean space.
    ///
    /// On success `unacked_exist` is recomputed and `changed` raised.
    pub fn clear(&self, s: u64, sectors: u64) -> bool {
        if self.shift.is_none() || sectors == 0 {
            return false;
        }
        // Nothing at or past the limit can be recorded, so cutting the range there
        // changes neither the table nor the result.
        let end = s.saturating_add(sectors).min(BB_SECTOR_LIMIT);
        if s >= end {
            // Wholly clean space: a successful clear, as in the kernel.
            self.write(|recs, flags| table::cleared_clean_space(recs, flags));
            return true;
        }
        self.write(|recs, flags| table::clear(recs, flags, s, end - s))
    }

    /// Acknowledges every record (`ack_all_badblocks`), only when `changed` is clear
    /// and `unacked_exist` set; then touching records that fit together are merged and
    /// `unacked_exist` is cleared. `changed` is not raised.
    pub fn ack_all(&self) {
        if self.shift.is_none() || self.changed() {
            return;
        }
        let mut recs = self.writer.lock();
        // Checked again under the lock, as the kernel does.
        let flags = flags_of(self.seq.flags());
        if flags.changed || !flags.unacked_exist {
            return;
        }
        self.publish(&mut recs, table::ack_all);
    }

    /// Snapshot of all records in table order.
    pub fn records(&self) -> Vec<BadRange> {
        self.read(|slots| {
            slots
                .iter()
                .map(|s| decode(s.load(Ordering::Relaxed)))
                .collect()
        })
        .0
    }

    /// Snapshot of all records in the kernel's packed form (`bb->page[0..count]`),
    /// e.g. to persist them.
    pub fn raw_records(&self) -> Vec<u64> {
        self.read(|slots| slots.iter().map(|s| s.load(Ordering::Relaxed)).collect())
            .0
    }

    /// The sysfs text of the table (`badblocks_show`).
    ///
    /// One line `"<start> <len>\n"` per record in table order, both in decimal and
    /// shifted left by `shift`; with `unack` only unacknowledged records, and if none
    /// is printed `unacked_exist` is cleared. Like the kernel's one-page buffer, the
    /// text stops once a page's worth has been generated and holds at most 4095 bytes
    /// (the bounded print keeps a byte for its NUL, so the last line may be cut
    /// short). A disabled table gives an empty string.
    pub fn show(&self, unack: bool) -> String {
        let Some(shift) = self.shift else {
            return String::new();
        };
        let mut buf = Vec::with_capacity(MAX_BADBLOCKS);
        loop {
            let ((), token) = self.read(|slots| {
                buf.clear();
                buf.extend(slots.iter().map(|s| s.load(Ordering::Relaxed)));
            });
            let text = text::show(&buf, shift, unack);
            if unack && text.is_empty() && token.flags() & UNACKED != 0 {
                // Clear the hint only if nothing (no writer, no flag change) happened
                // since the records were read; otherwise read again.
                if !self.seq.clear_flags_if_unchanged(token, UNACKED) {
                    continue;
                }
            }
            return text;
        }
    }

    /// Parses one sysfs line and records it (`badblocks_store`).
    ///
    /// Accepts `"<start> <length>"` optionally followed by exactly one `'\n'` (bytes
    /// after it are ignored), with the kernel's `sscanf("%llu %d%c")` rules: leading
    /// and separating whitespace allowed, unsigned start, signed `int` length, text
    /// ends at a NUL byte. The range is set acknowledged unless `unack`; lengths over
    /// 512 are split. Returns the whole input length on success.
    ///
    /// # Errors
    ///
    /// * [`DaxError::InvalidArgument`] (`EINVAL`): fewer than two numbers, another
    ///   character right after the length, a length ≤ 0, or (a dax-rs limit) a range
    ///   reaching past [`BB_SECTOR_LIMIT`].
    /// * [`DaxError::NoSpace`] (`ENOSPC`): [`Badblocks::set`] failed, i.e. the table
    ///   is full (even if the range was already recorded, as in the kernel) or disabled.
    pub fn store(&self, text: &[u8], unack: bool) -> Result<usize, DaxError> {
        let (start, length) = text::parse_store(text).map_err(|e| match e {
            text::ParseError::Syntax => DaxError::InvalidArgument {
                what: "badblocks store expects \"<sector> <length>\" with an optional newline",
            },
            text::ParseError::Length => DaxError::InvalidArgument {
                what: "badblocks store length must be positive",
            },
        })?;
        // length > 0 was checked by the parser.
        let length = u64::from(length.unsigned_abs());
        if start
            .checked_add(length)
            .is_none_or(|end| end > BB_SECTOR_LIMIT)
        {
            return Err(DaxError::InvalidArgument {
                what: "badblocks store range reaches past sector 2^54",
            });
        }
        if !self.set(start, length, !unack) {
            return Err(DaxError::NoSpace {
                what: "badblocks table is full",
            });
        }
        Ok(text.len())
    }
}
