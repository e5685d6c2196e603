//! Temporary stand-in with the agreed API; the exact block/badblocks.c port replaces it.
#![allow(missing_docs)]
use parking_lot::Mutex;

/// Result of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadblocksCheck {
    Clean,
    Acknowledged { first_bad: u64, bad_sectors: u64 },
    Unacknowledged { first_bad: u64, bad_sectors: u64 },
}
impl BadblocksCheck {
    pub fn is_bad(&self) -> bool {
        !matches!(self, BadblocksCheck::Clean)
    }
}

/// Stand-in table.
#[derive(Debug, Default)]
pub struct Badblocks {
    recs: Mutex<Vec<(u64, u64, bool)>>,
}
impl Badblocks {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn records(&self) -> Vec<BadRange> {
        self.recs
            .lock()
            .iter()
            .map(|&(start, len, acknowledged)| BadRange {
                start,
                len,
                acknowledged,
            })
            .collect()
    }
    pub fn show(&self, _unack: bool) -> String {
        self.recs
            .lock()
            .iter()
            .map(|(a, l, _)| format!("{a} {l}\n"))
            .collect()
    }
    pub fn is_empty(&self) -> bool {
        self.recs.lock().is_empty()
    }
    pub fn count(&self) -> usize {
        self.recs.lock().len()
    }
    pub fn check(&self, s: u64, n: u64) -> BadblocksCheck {
        let r = self.recs.lock();
        let mut res = BadblocksCheck::Clean;
        for &(a, l, ack) in r.iter() {
            if a < s + n && s < a + l {
                if !ack {
                    return BadblocksCheck::Unacknowledged {
                        first_bad: a,
                        bad_sectors: l,
                    };
                }
                if res == BadblocksCheck::Clean {
                    res = BadblocksCheck::Acknowledged {
                        first_bad: a,
                        bad_sectors: l,
                    };
                }
            }
        }
        res
    }
    pub fn set(&self, s: u64, n: u64, ack: bool) -> bool {
        let mut r = self.recs.lock();
        r.push((s, n, ack));
        r.sort();
        true
    }
    pub fn clear(&self, s: u64, n: u64) -> bool {
        let mut r = self.recs.lock();
        let old = std::mem::take(&mut *r);
        for (a, l, ack) in old {
            let e = a + l;
            if a < s {
                r.push((a, e.min(s) - a, ack));
            }
            if e > s + n {
                let b = a.max(s + n);
                r.push((b, e - b, ack));
            }
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRange {
    pub start: u64,
    pub len: u64,
    pub acknowledged: bool,
}
