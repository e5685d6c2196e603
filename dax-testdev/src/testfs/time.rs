//! Timestamps: [`Timespec`], the `struct timespec64` an inode's atime, mtime and ctime
//! are kept and checkpointed as (seconds since the epoch, signed, and nanoseconds), and
//! its conversions to and from [`SystemTime`]. The clock itself (`current_time`,
//! which a test may pin) belongs to the mounted filesystem: `FsState::now`.
//!
//! Locks: none.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dax_device::DaxError;

/// Nanoseconds per second.
pub(crate) const NSEC_PER_SEC: u32 = 1_000_000_000;

/// A point in time as an inode records it (the kernel's `struct timespec64`): whole
/// seconds since 1970-01-01 UTC, negative before it, and `nsec < 10^9` nanoseconds
/// after that second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Timespec {
    pub(crate) sec: i64,
    pub(crate) nsec: u32,
}

impl Timespec {
    /// `t` as a timespec; `EOVERFLOW` if it lies more than `i64::MAX` seconds from the
    /// epoch (as `utimensat` would, had it a way to be given such a time).
    pub(crate) fn from_system(t: SystemTime) -> Result<Timespec, DaxError> {
        let overflow = || DaxError::Overflow {
            what: "time more than i64::MAX seconds from the epoch",
        };
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Ok(Timespec {
                sec: i64::try_from(d.as_secs()).map_err(|_| overflow())?,
                nsec: d.subsec_nanos(),
            }),
            Err(before) => {
                let d = before.duration();
                // -(s + n/10^9) is -(s + 1) + (10^9 - n)/10^9.
                let (s, n) = (d.as_secs(), d.subsec_nanos());
                let (s, n) = if n == 0 {
                    (s, 0)
                } else {
                    (s.checked_add(1).ok_or_else(overflow)?, NSEC_PER_SEC - n)
                };
                let sec = 0i64.checked_sub_unsigned(s).ok_or_else(overflow)?;
                Ok(Timespec { sec, nsec: n })
            }
        }
    }

    /// The time as a [`SystemTime`], `None` if the platform cannot represent it (or
    /// `nsec` is not below 10^9, which only a corrupt record has).
    pub(crate) fn to_system(self) -> Option<SystemTime> {
        if self.nsec >= NSEC_PER_SEC {
            return None;
        }
        let base = if self.sec >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(self.sec.unsigned_abs()))?
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(self.sec.unsigned_abs()))?
        };
        base.checked_add(Duration::from_nanos(u64::from(self.nsec)))
    }

    /// [`Timespec::to_system`] for a timestamp TestFs recorded itself (they all came
    /// from a `SystemTime`, or were checked by the checkpoint decoder).
    pub(crate) fn system(self) -> SystemTime {
        self.to_system().unwrap_or(UNIX_EPOCH)
    }

    /// The time as nanoseconds since the epoch, if that fits an `i64` (years 1678
    /// to 2262).
    pub(crate) fn as_nanos(self) -> Option<i64> {
        self.sec
            .checked_mul(i64::from(NSEC_PER_SEC))?
            .checked_add(i64::from(self.nsec))
    }

    /// The time `nanos` nanoseconds after the epoch.
    pub(crate) fn from_nanos(nanos: i64) -> Timespec {
        let per = i64::from(NSEC_PER_SEC);
        Timespec {
            sec: nanos.div_euclid(per),
            nsec: nanos.rem_euclid(per) as u32,
        }
    }
}

/// An inode's three timestamps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Times {
    /// Last access (`i_atime`; TestFs is `noatime`: only `setattr` changes it).
    pub(crate) atime: Timespec,
    /// Last data change (`i_mtime`).
    pub(crate) mtime: Timespec,
    /// Last inode change (`i_ctime`).
    pub(crate) ctime: Timespec,
}

impl Times {
    /// All three at `t` (a new inode).
    pub(crate) fn all(t: Timespec) -> Times {
        Times {
            atime: t,
            mtime: t,
            ctime: t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_before_and_after_the_epoch() {
        for (sec, nsec) in [
            (0, 0),
            (1, 5),
            (-1, 0),
            (-1, 999_999_999),
            (-2, 1),
            (1_700_000_000, 123_456_789),
        ] {
            let t = Timespec { sec, nsec };
            let sys = t.to_system().unwrap();
            assert_eq!(Timespec::from_system(sys).unwrap(), t);
            if let Some(n) = t.as_nanos() {
                assert_eq!(Timespec::from_nanos(n), t);
            }
        }
        let before = UNIX_EPOCH - Duration::new(3, 250);
        assert_eq!(
            Timespec::from_system(before).unwrap(),
            Timespec {
                sec: -4,
                nsec: NSEC_PER_SEC - 250
            }
        );
        assert_eq!(
            Timespec {
                sec: 0,
                nsec: NSEC_PER_SEC
            }
            .to_system(),
            None
        );
    }
}
