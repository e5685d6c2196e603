//! The storage behind [`MappingIndex`](super::MappingIndex): an ordered sparse map
//! from page index to value, kept in chunks of [`CHUNK`] consecutive indices.
//!
//! A `BTreeMap<u64, V>` costs a tree insertion per page, and fault-around creates up
//! to 511 entries at once: that was most of what a first touch through a real
//! mapping spent in dax-rs rather than in the kernel. Here a run of consecutive pages
//! costs one tree lookup per chunk ([`SparseMap::insert_sorted`]) and a store per
//! page, in the spirit of the kernel's xarray (a radix tree of 64-slot nodes). The
//! chunk is small (16 slots) so that a file mapped one page in a thousand does not
//! pay much more than a plain tree would.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// log2 of the indices per chunk.
const SHIFT: u32 = 4;
/// Indices per chunk.
pub(super) const CHUNK: usize = 1 << SHIFT;
const MASK: u64 = CHUNK as u64 - 1;

struct Chunk<V> {
    vals: [Option<V>; CHUNK],
    /// How many of `vals` are `Some` (a chunk with none is removed).
    used: u8,
}

impl<V: Copy> Chunk<V> {
    fn new() -> Box<Self> {
        Box::new(Chunk {
            vals: [None; CHUNK],
            used: 0,
        })
    }

    /// Stores `v` at `i`, returning what was there.
    fn put(&mut self, i: usize, v: V) -> Option<V> {
        let old = self.vals[i].replace(v);
        if old.is_none() {
            self.used += 1;
        }
        old
    }
}

/// An ordered map from `u64` to `V` over chunks of [`CHUNK`] consecutive keys (the
/// subset of `BTreeMap`'s interface the index uses, plus [`insert_sorted`]).
///
/// [`insert_sorted`]: SparseMap::insert_sorted
pub(super) struct SparseMap<V> {
    chunks: BTreeMap<u64, Box<Chunk<V>>>,
    len: usize,
}

impl<V> Default for SparseMap<V> {
    fn default() -> Self {
        SparseMap {
            chunks: BTreeMap::new(),
            len: 0,
        }
    }
}

fn split(key: u64) -> (u64, usize) {
    (key >> SHIFT, (key & MASK) as usize)
}

/// The slots of chunk `c` that lie in `lo ..= hi` (which overlaps the chunk), as an
/// inclusive pair. Keys never overflow: the last chunk's last key is `u64::MAX`.
fn within(c: u64, lo: u64, hi: u64) -> (usize, usize) {
    let from = if c == lo >> SHIFT { lo & MASK } else { 0 };
    let to = if c == hi >> SHIFT { hi & MASK } else { MASK };
    (from as usize, to as usize)
}

impl<V: Copy> SparseMap<V> {
    /// How many keys hold a value.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether no key holds a value.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value at `key`.
    pub(super) fn get(&self, key: u64) -> Option<&V> {
        let (c, i) = split(key);
        self.chunks.get(&c)?.vals[i].as_ref()
    }

    /// The value at `key`, mutable.
    pub(super) fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        let (c, i) = split(key);
        self.chunks.get_mut(&c)?.vals[i].as_mut()
    }

    /// Whether `key` holds a value.
    pub(super) fn contains_key(&self, key: u64) -> bool {
        self.get(key).is_some()
    }

    /// Stores `v` at `key`, returning the value it replaces.
    pub(super) fn insert(&mut self, key: u64, v: V) -> Option<V> {
        let (c, i) = split(key);
        let old = self.chunks.entry(c).or_insert_with(Chunk::new).put(i, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Stores every `(key, value)` of `items`, whose keys must ascend strictly: one
    /// tree lookup per chunk touched rather than per key.
    pub(super) fn insert_sorted(&mut self, items: impl IntoIterator<Item = (u64, V)>) {
        let mut cur: Option<(u64, &mut Box<Chunk<V>>)> = None;
        let mut added = 0;
        for (key, v) in items {
            let (c, i) = split(key);
            let chunk = match cur {
                Some((at, chunk)) if at == c => chunk,
                _ => self.chunks.entry(c).or_insert_with(Chunk::new),
            };
            if chunk.put(i, v).is_none() {
                added += 1;
            }
            cur = Some((c, chunk));
        }
        self.len += added;
    }

    /// Calls `f` with keys `first, first + 1, ...` (at most `n`, never past
    /// `u64::MAX`) and their values, or `None` for a key without one, until `f`
    /// returns false; returns how many keys `f` accepted. One tree lookup per chunk:
    /// the scan fault-around makes over up to 511 pages.
    pub(super) fn visit_run(
        &self,
        first: u64,
        n: u64,
        mut f: impl FnMut(u64, Option<&V>) -> bool,
    ) -> u64 {
        if n == 0 {
            return 0;
        }
        let last = first.saturating_add(n - 1);
        let mut chunks = self.chunks.range(first >> SHIFT..=last >> SHIFT).peekable();
        let mut key = first;
        loop {
            let c = key >> SHIFT;
            let chunk = chunks.next_if(|&(&at, _)| at == c).map(|(_, ch)| &**ch);
            let end = last.min((c << SHIFT) | MASK);
            match chunk {
                None => {
                    for k in key..=end {
                        if !f(k, None) {
                            return k - first;
                        }
                    }
                }
                Some(ch) => {
                    let vals = &ch.vals[(key & MASK) as usize..=(end & MASK) as usize];
                    for (k, v) in (key..=end).zip(vals) {
                        if !f(k, v.as_ref()) {
                            return k - first;
                        }
                    }
                }
            }
            if end == last {
                return last - first + 1;
            }
            key = end + 1;
        }
    }

    /// Removes the value at `key`, returning it.
    pub(super) fn remove(&mut self, key: u64) -> Option<V> {
        let (c, i) = split(key);
        let chunk = self.chunks.get_mut(&c)?;
        let old = chunk.vals[i].take()?;
        chunk.used -= 1;
        if chunk.used == 0 {
            self.chunks.remove(&c);
        }
        self.len -= 1;
        Some(old)
    }

    /// The keys in `range` that hold a value, ascending, with their values.
    pub(super) fn range(&self, range: RangeInclusive<u64>) -> impl Iterator<Item = (u64, &V)> {
        let (lo, hi) = range.into_inner();
        let chunks = (lo <= hi).then(|| self.chunks.range(lo >> SHIFT..=hi >> SHIFT));
        chunks.into_iter().flatten().flat_map(move |(&c, chunk)| {
            let (from, to) = within(c, lo, hi);
            chunk.vals[from..=to]
                .iter()
                .zip(from..)
                .filter_map(move |(v, i)| v.as_ref().map(|v| ((c << SHIFT) | i as u64, v)))
        })
    }

    /// [`range`](Self::range) with mutable values.
    pub(super) fn range_mut(
        &mut self,
        range: RangeInclusive<u64>,
    ) -> impl Iterator<Item = (u64, &mut V)> {
        let (lo, hi) = range.into_inner();
        let chunks = (lo <= hi).then(|| self.chunks.range_mut(lo >> SHIFT..=hi >> SHIFT));
        chunks.into_iter().flatten().flat_map(move |(&c, chunk)| {
            let (from, to) = within(c, lo, hi);
            chunk.vals[from..=to]
                .iter_mut()
                .zip(from..)
                .filter_map(move |(v, i)| v.as_mut().map(|v| ((c << SHIFT) | i as u64, v)))
        })
    }

    /// Every key that holds a value, ascending, with its value.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.range(0..=u64::MAX)
    }
}

impl<V: Copy> std::ops::Index<u64> for SparseMap<V> {
    type Output = V;

    fn index(&self, key: u64) -> &V {
        self.get(key).expect("no value at this key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation against a `BTreeMap` model, over keys that straddle chunk
    /// boundaries and the top of the key space.
    #[test]
    fn behaves_like_a_btreemap() {
        let keys: Vec<u64> = [0, 1, 15, 16, 17, 31, 32, 100, 511, 512, 513]
            .into_iter()
            .chain([u64::MAX - 16, u64::MAX - 15, u64::MAX - 1, u64::MAX])
            .collect();
        let mut m = SparseMap::default();
        let mut model = BTreeMap::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Under Miri, 100 to 1000 times slower, 2,000 steps.
        for step in 0..if cfg!(miri) { 2_000 } else { 20_000u64 } {
            let k = keys[(rand() % keys.len() as u64) as usize];
            match rand() % 5 {
                0 | 1 => assert_eq!(m.insert(k, step), model.insert(k, step)),
                2 => assert_eq!(m.remove(k), model.remove(&k)),
                3 => {
                    if let Some(v) = m.get_mut(k) {
                        *v += 1;
                    }
                    if let Some(v) = model.get_mut(&k) {
                        *v += 1;
                    }
                }
                _ => {
                    let a = keys[(rand() % keys.len() as u64) as usize];
                    let b = keys[(rand() % keys.len() as u64) as usize];
                    let got: Vec<_> = m.range(a..=b).map(|(k, &v)| (k, v)).collect();
                    let want: Vec<_> = if a <= b {
                        model.range(a..=b).map(|(&k, &v)| (k, v)).collect()
                    } else {
                        Vec::new()
                    };
                    assert_eq!(got, want, "range {a}..={b}");
                    for (_, v) in m.range_mut(a..=b) {
                        *v += 2;
                    }
                    if a <= b {
                        for (_, v) in model.range_mut(a..=b) {
                            *v += 2;
                        }
                    }
                }
            }
            assert_eq!(m.len(), model.len());
            assert_eq!(m.is_empty(), model.is_empty());
            assert_eq!(m.get(k), model.get(&k));
            assert_eq!(m.contains_key(k), model.contains_key(&k));
        }
        let all: Vec<_> = m.iter().map(|(k, &v)| (k, v)).collect();
        assert_eq!(all, model.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn visit_run_sees_gaps_and_values_and_stops_where_told() {
        let mut m = SparseMap::default();
        for k in [3u64, 16, 17, 40] {
            m.insert(k, k * 10);
        }
        let mut seen = Vec::new();
        let n = m.visit_run(2, 100, |k, v| {
            seen.push((k, v.copied()));
            k < 40
        });
        assert_eq!(n, 38);
        assert_eq!(seen.len(), 39);
        assert_eq!(seen[1], (3, Some(30)));
        assert_eq!(seen[14], (16, Some(160)));
        assert_eq!(seen[38], (40, Some(400)));
        assert!(
            seen.iter()
                .all(|&(k, v)| v.is_some() == [3, 16, 17, 40].contains(&k))
        );
        assert_eq!(m.visit_run(5, 0, |_, _| true), 0);
        // At the top of the key space the run ends at u64::MAX.
        m.insert(u64::MAX, 1);
        let mut top = Vec::new();
        assert_eq!(
            m.visit_run(u64::MAX - 1, 10, |k, v| {
                top.push((k, v.copied()));
                true
            }),
            2
        );
        assert_eq!(top, [(u64::MAX - 1, None), (u64::MAX, Some(1))]);
    }

    #[test]
    fn insert_sorted_fills_across_chunks_and_counts_only_new_keys() {
        let mut m = SparseMap::default();
        m.insert(20, 0u64);
        m.insert_sorted((10..60).map(|k| (k, k)));
        assert_eq!(m.len(), 50);
        assert_eq!(m[20], 20);
        assert_eq!(
            m.range(0..=u64::MAX).map(|(k, _)| k).collect::<Vec<_>>(),
            (10..60).collect::<Vec<_>>()
        );
        m.insert_sorted([(u64::MAX - 1, 1), (u64::MAX, 2)]);
        assert_eq!(m.len(), 52);
        for k in 10..60 {
            assert_eq!(m.remove(k), Some(k));
        }
        assert_eq!(m.len(), 2);
        assert_eq!(m.chunks.len(), 1);
    }
}
