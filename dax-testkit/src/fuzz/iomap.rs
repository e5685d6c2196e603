//! Fuzz target `iomap`: the iomap iterator ([`IomapIter`]) and [`dax_iomap_rw`] over an
//! [`IomapOps`] whose every answer comes from the input.
//!
//! Each `iomap_begin` decodes an answer from the input: an error, or a mapping (any
//! type, offset, length, address, flags, with or without the device) and sometimes a
//! source map, biased towards answers a real filesystem gives and towards the edges
//! of the iterator's validation (zero length, not covering the position, overflowing
//! ends, misaligned or out-of-device addresses, STALE, sub-page copy-on-write
//! extents). Each `iomap_end` may fail too. Once the input runs out every
//! `iomap_begin` fails, so every operation ends.
//!
//! Operations: `dax_iomap_rw` reads and writes (one or several buffers, a buffer that
//! faults part way, NOWAIT, an interrupted call), raw iterations whose body advances,
//! marks the mapping stale, fails or walks away, and poisoning or killing the device.
//!
//! Checked, from the calls the filesystem saw:
//! * the iterator accepts exactly the answers its documented rules allow (restated
//!   here from `IomapIter`'s docs) and gives every accepted mapping exactly one
//!   `iomap_end` with the bytes processed, and a rejected one `iomap_end(pos, 0, 0)`;
//! * each `iomap_begin` asks for the position and length left after the bytes
//!   processed so far; `length()` is what is left of the mapping (and source map);
//! * an operation returns the bytes processed (and advances `Kiocb::pos` by them);
//! * a read returns, for every byte processed, zero for a hole or unwritten extent and
//!   the device byte the mapping names otherwise, and leaves the rest of the buffer
//!   alone;
//! * **canaries / shadow**: the device starts filled with canaries and a shadow copy is
//!   kept; a read must not change any device byte; a write must change only the bytes
//!   it reports written (at the address its mapping gives) and, for a copy-on-write
//!   destination, the rest of the destination pages it covered (copy-around), which
//!   are the only bytes the shadow does not predict. Every other device byte must
//!   still equal the shadow after every operation.

use std::cell::{Cell, RefCell};
use std::io::{IoSlice, IoSliceMut};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use dax_device::{DaxDevice, DaxError, PAGE_SIZE};
use dax_iomap::{
    DaxInode, IOMAP_NULL_ADDR, Iomap, IomapFlags, IomapIter, IomapOps, IomapType, IovIter,
    IterFlags, Kiocb, MAX_FILE_SIZE, MappingOps, dax_iomap_rw,
};
use dax_testdev::MemDevice;

use super::{Input, fill_canaries};
use crate::iomap::RecordingMapping;

const PAGE: u64 = PAGE_SIZE as u64;
/// Device size in pages.
const DEV_PAGES: u64 = 64;
const DEV_BYTES: u64 = DEV_PAGES * PAGE;
/// Operations per input at most.
const MAX_OPS: usize = 12;

/// A map without its device borrow, and whether it had the device.
#[derive(Debug, Clone, Copy)]
struct Owned {
    map: Iomap<'static>,
    dev: bool,
}

impl Owned {
    fn base(&self) -> u64 {
        // addr - offset, the device byte of file byte 0 (mod 2^64).
        self.map.addr.wrapping_sub(self.map.offset)
    }
}

/// One call the filesystem saw.
#[derive(Debug, Clone)]
enum Event {
    Begin {
        pos: u64,
        len: u64,
        flags: IterFlags,
        answer: Option<(Owned, Option<Owned>)>,
    },
    End {
        pos: u64,
        length: u64,
        written: u64,
    },
}

/// The scripted filesystem.
struct Fs<'a> {
    dev: Arc<DaxDevice<MemDevice>>,
    script: RefCell<Input<'a>>,
    size: Cell<u64>,
    mapping: Option<RecordingMapping>,
    log: RefCell<Vec<Event>>,
}

impl Fs<'_> {
    fn dyn_dev(&self) -> &DaxDevice {
        &*self.dev
    }

    fn decode_map(&self, i: &mut Input<'_>, pos: u64, length: u64, source: bool) -> Owned {
        let kind = if source {
            i.pick(&[
                IomapType::Mapped,
                IomapType::Mapped,
                IomapType::Unwritten,
                IomapType::Hole,
            ])
        } else {
            i.pick(&[
                IomapType::Mapped,
                IomapType::Mapped,
                IomapType::Mapped,
                IomapType::Hole,
                IomapType::Unwritten,
                IomapType::Delalloc,
                IomapType::Inline,
            ])
        };
        let page_start = pos & !(PAGE - 1);
        let offset = match i.below(10) {
            0..=3 => pos,
            4..=6 => page_start,
            7 => page_start.saturating_sub(PAGE * i.below(4)),
            8 => pos.saturating_sub(i.below(3 * PAGE)),
            _ => match i.below(3) {
                0 => pos.wrapping_add(1),
                1 => i.edge_u64(),
                _ => pos.wrapping_sub(i.edge_u64()),
            },
        };
        let want_end = pos.saturating_add(length);
        let end = match i.below(10) {
            0..=2 => want_end,
            3 | 4 => pos.saturating_add(i.range(1, 3 * PAGE)),
            5 | 6 => (pos / PAGE + i.range(1, 4)) * PAGE,
            7 => want_end.div_ceil(PAGE).saturating_mul(PAGE),
            8 => pos,
            _ => offset.wrapping_add(i.edge_u64()),
        };
        let len = end.wrapping_sub(offset);
        let addr = if matches!(kind, IomapType::Mapped | IomapType::Unwritten) || i.chance(20) {
            let in_page = offset % PAGE;
            match i.below(12) {
                0..=8 => i.below(DEV_PAGES) * PAGE + in_page,
                9 => (DEV_PAGES - i.below(3)) * PAGE + in_page,
                10 => i.below(DEV_BYTES),
                _ if i.bool() => IOMAP_NULL_ADDR,
                _ => i.edge_u64(),
            }
        } else {
            IOMAP_NULL_ADDR
        };
        let mut flags = IomapFlags::empty();
        for (f, p) in [
            (IomapFlags::NEW, 50u8),
            (IomapFlags::DIRTY, 30),
            (IomapFlags::SHARED, if source { 6 } else { 70 }),
        ] {
            if i.chance(p) {
                flags |= f;
            }
        }
        if i.chance(8) {
            flags |= IomapFlags::from_bits_retain(i.u16());
        }
        let dev = !i.chance(12);
        Owned {
            map: Iomap {
                addr,
                offset,
                length: len,
                kind,
                flags,
                dax_dev: None,
                validity_cookie: 0,
                private: 0,
            },
            dev,
        }
    }

    fn attach(&self, o: Owned) -> Iomap<'_> {
        Iomap {
            dax_dev: o.dev.then(|| self.dyn_dev()),
            ..o.map
        }
    }
}

fn injected(i: &mut Input<'_>) -> DaxError {
    match i.below(4) {
        0 => DaxError::Io {
            what: "injected by the fuzzer",
        },
        1 => DaxError::WouldBlock,
        2 => DaxError::NoSpace {
            what: "injected by the fuzzer",
        },
        _ => DaxError::Corrupted {
            what: "injected by the fuzzer",
        },
    }
}

impl IomapOps for Fs<'_> {
    fn iomap_begin(
        &self,
        pos: u64,
        length: u64,
        flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        let mut i = self.script.borrow_mut();
        let answer = if i.is_empty() {
            Err(DaxError::Io {
                what: "the fuzz input is used up",
            })
        } else if i.chance(6) {
            Err(injected(&mut i))
        } else {
            let map = self.decode_map(&mut i, pos, length, false);
            let src = i
                .chance(60)
                .then(|| self.decode_map(&mut i, pos, length, true));
            Ok((map, src))
        };
        self.log.borrow_mut().push(Event::Begin {
            pos,
            len: length,
            flags,
            answer: answer.as_ref().ok().copied(),
        });
        let (map, src) = answer?;
        Ok((self.attach(map), src.map(|s| self.attach(s))))
    }

    fn iomap_end(
        &self,
        pos: u64,
        length: u64,
        written: u64,
        _flags: IterFlags,
        _iomap: &Iomap<'_>,
    ) -> Result<(), DaxError> {
        self.log.borrow_mut().push(Event::End {
            pos,
            length,
            written,
        });
        let mut i = self.script.borrow_mut();
        if i.chance(10) {
            return Err(injected(&mut i));
        }
        Ok(())
    }
}

impl DaxInode for Fs<'_> {
    fn i_size(&self) -> u64 {
        self.size.get()
    }

    fn mapping(&self) -> Option<&dyn MappingOps> {
        self.mapping.as_ref().map(|m| m as &dyn MappingOps)
    }
}

/// Operations that may carry a source map (restated from `IomapIter`'s docs).
fn copies(flags: IterFlags) -> bool {
    flags.intersects(IterFlags::WRITE | IterFlags::ZERO | IterFlags::UNSHARE | IterFlags::FAULT)
}

/// Whether `m` is an acceptable mapping for `pos` under `flags`, per the rules listed
/// in `IomapIter`'s docs.
fn valid_map(pos: u64, m: &Owned, flags: IterFlags, source: bool) -> bool {
    let m_ = &m.map;
    let Some(end) = m_.offset.checked_add(m_.length) else {
        return false;
    };
    if m_.length == 0 || m_.offset > pos || end <= pos || m_.flags.contains(IomapFlags::STALE) {
        return false;
    }
    let dax = flags.contains(IterFlags::DAX);
    if dax
        && copies(flags)
        && (m_.flags.contains(IomapFlags::SHARED) || source)
        && (!m_.offset.is_multiple_of(PAGE) || !end.is_multiple_of(PAGE))
    {
        return false;
    }
    let storage = matches!(m_.kind, IomapType::Mapped | IomapType::Unwritten)
        || m_.flags.contains(IomapFlags::SHARED);
    if dax && storage {
        if !m.dev || m_.addr == IOMAP_NULL_ADDR || m_.addr % PAGE != m_.offset % PAGE {
            return false;
        }
        if m_.addr.checked_add(m_.length).is_none_or(|e| e > DEV_BYTES) {
            return false;
        }
    }
    true
}

/// Whether the answer `(map, src)` for `pos` is acceptable.
fn valid_answer(pos: u64, map: &Owned, src: Option<&Owned>, flags: IterFlags) -> bool {
    if !valid_map(pos, map, flags, false) {
        return false;
    }
    match src {
        None => true,
        Some(s) if s.map.kind == IomapType::Hole => true,
        Some(s) => {
            copies(flags)
                && map.map.flags.contains(IomapFlags::SHARED)
                && !s.map.flags.contains(IomapFlags::SHARED)
                && valid_map(pos, s, flags, true)
        }
    }
}

/// The bytes of the current mapping left from `pos` with `remaining` bytes to go.
fn expected_length(pos: u64, remaining: u64, map: &Owned, src: Option<&Owned>) -> u64 {
    let mut end = map.map.offset + map.map.length;
    if let Some(s) = src.filter(|s| s.map.kind != IomapType::Hole) {
        end = end.min(s.map.offset + s.map.length);
    }
    (end - pos).min(remaining)
}

/// One accepted mapping and what was done with it: `(map, src, pos, covered, written)`.
type Used = (Owned, Option<Owned>, u64, u64, u64);

/// Checks the call sequence of one operation over `start .. start + total` that
/// returned after processing `processed` bytes; returns the accepted mappings.
fn check_calls(log: &[Event], start: u64, total: u64, flags: IterFlags) -> (Vec<Used>, u64) {
    let mut used = Vec::new();
    let mut pos = start;
    let mut k = 0;
    while k < log.len() {
        let Event::Begin {
            pos: bpos,
            len,
            flags: bflags,
            answer,
        } = log[k].clone()
        else {
            panic!("iomap_end without iomap_begin at call {k}: {log:?}");
        };
        assert_eq!(bpos, pos, "iomap_begin {k} position");
        assert_eq!(len, total - (pos - start), "iomap_begin {k} length");
        assert_eq!(bflags, flags, "iomap_begin {k} flags");
        k += 1;
        let Some((map, src)) = answer else {
            assert!(
                k == log.len(),
                "calls after a failed iomap_begin: {:?}",
                &log[k..]
            );
            break;
        };
        let ok = valid_answer(pos, &map, src.as_ref(), flags);
        let Some(Event::End {
            pos: epos,
            length,
            written,
        }) = log.get(k).cloned()
        else {
            panic!("iomap_begin {} at {pos} has no iomap_end: {log:?}", k - 1);
        };
        k += 1;
        assert_eq!(epos, pos, "iomap_end position");
        if !ok {
            assert_eq!(
                (length, written),
                (0, 0),
                "the iterator took {map:?} / {src:?} at {pos}, which its rules reject"
            );
            assert!(k == log.len(), "calls after a rejected mapping");
            break;
        }
        let want = expected_length(pos, total - (pos - start), &map, src.as_ref());
        assert!(
            length == want,
            "iomap_end length {length} for {map:?} / {src:?} at {pos}: expected {want} \
             (rejected? the rules accept it)"
        );
        assert!(written <= length, "written {written} > length {length}");
        used.push((map, src, pos, length, written));
        pos += written;
    }
    (used, pos - start)
}

struct World<'a> {
    fs: Fs<'a>,
    shadow: Vec<u8>,
    killed: bool,
}

impl World<'_> {
    fn device_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; DEV_BYTES as usize];
        self.fs.dev.driver().peek(0, &mut v).unwrap();
        v
    }

    /// Every device byte equals the shadow except those in `unknown` (which the
    /// shadow then takes from the device).
    fn check_device(&mut self, unknown: &[(u64, u64)], what: &str) {
        let dev = self.device_bytes();
        if unknown.is_empty() && dev == self.shadow {
            return;
        }
        let mut skip = vec![false; dev.len()];
        for &(s, e) in unknown {
            for b in &mut skip[s as usize..e as usize] {
                *b = true;
            }
        }
        if let Some(at) = (0..dev.len()).find(|&i| !skip[i] && dev[i] != self.shadow[i]) {
            panic!(
                "{what}: device byte {at:#x} is {:#04x}, expected {:#04x}",
                dev[at], self.shadow[at]
            );
        }
        self.shadow = dev;
    }

    fn rw(&mut self, i: &mut Input<'_>, write: bool) {
        let pos = match i.below(8) {
            0..=4 => i.below(20 * PAGE),
            5 => i.below(20) * PAGE,
            6 => MAX_FILE_SIZE - i.below(3 * PAGE),
            _ => i.edge_u64(),
        };
        let len = match i.below(8) {
            0..=3 => i.range(1, 64),
            4 | 5 => i.range(1, 3 * PAGE),
            6 => i.range(1, DEV_BYTES),
            _ => i.range(0, 2 * PAGE),
        } as usize;
        let segs = if i.chance(60) {
            i.range(2, 3) as usize
        } else {
            1
        };
        let fault_at = i.chance(30).then(|| i.below(len as u64 + 1) as usize);
        let nowait = i.chance(20);
        let stop = AtomicBool::new(i.chance(10));
        self.fs.size.set(match i.below(4) {
            0 => MAX_FILE_SIZE,
            1 => i.below(24 * PAGE),
            _ => pos.saturating_add(i.below(4 * PAGE)),
        });
        let data: Vec<u8> = super::seeded(i.u64(), len);
        let mut buf = vec![0xEEu8; len];
        let cut: Vec<usize> = {
            let mut c: Vec<usize> = (1..segs)
                .map(|_| i.below(len as u64 + 1) as usize)
                .collect();
            c.push(0);
            c.push(len);
            c.sort_unstable();
            c
        };
        let mut iocb = Kiocb {
            pos,
            nowait,
            interrupted: Some(&stop),
        };
        self.fs.log.borrow_mut().clear();
        let ret = if write {
            let slices: Vec<IoSlice<'_>> = cut
                .windows(2)
                .map(|w| IoSlice::new(&data[w[0]..w[1]]))
                .collect();
            let mut it = IovIter::write(&slices);
            if let Some(n) = fault_at {
                it = it.fault_after(n);
            }
            dax_iomap_rw(&self.fs, &self.fs, &mut iocb, &mut it)
        } else {
            let mut rest: &mut [u8] = &mut buf;
            let mut slices: Vec<IoSliceMut<'_>> = Vec::new();
            for w in cut.windows(2) {
                let (a, b) = rest.split_at_mut(w[1] - w[0]);
                slices.push(IoSliceMut::new(a));
                rest = b;
            }
            let mut it = IovIter::read(&mut slices);
            if let Some(n) = fault_at {
                it = it.fault_after(n);
            }
            dax_iomap_rw(&self.fs, &self.fs, &mut iocb, &mut it)
        };
        let what = format!(
            "{} of {len} bytes at {pos} (size {}) returned {ret:?}",
            if write { "write" } else { "read" },
            self.fs.size.get()
        );
        let log = self.fs.log.borrow().clone();
        let mut flags = IterFlags::DAX;
        if write {
            flags |= IterFlags::WRITE;
        }
        if nowait {
            flags |= IterFlags::NOWAIT;
        }
        let bad_range = pos > MAX_FILE_SIZE || len as u64 > MAX_FILE_SIZE - pos;
        if len == 0 || bad_range {
            assert!(log.is_empty(), "{what}: called the filesystem");
            if len == 0 {
                assert!(matches!(ret, Ok(0)), "{what}");
            } else {
                assert!(
                    matches!(ret, Err(DaxError::InvalidArgument { .. })),
                    "{what}"
                );
            }
            self.check_device(&[], &what);
            return;
        }
        let (used, done) = check_calls(&log, pos, len as u64, flags);
        match &ret {
            Ok(n) => assert_eq!(*n as u64, done, "{what}: bytes processed"),
            Err(_) => assert_eq!(done, 0, "{what}: an error after progress"),
        }
        assert_eq!(iocb.pos, pos + done, "{what}: kiocb position");
        if let Some(n) = fault_at {
            assert!(
                done as usize <= n,
                "{what}: moved bytes past the buffer fault"
            );
        }
        let mut unknown = Vec::new();
        for &(map, _src, p, covered, w) in &used {
            let lo = (p - pos) as usize;
            let hi = lo + w as usize;
            let m = map.map;
            let zeros = !write && matches!(m.kind, IomapType::Hole | IomapType::Unwritten);
            if write {
                let base = map.base();
                if m.flags.contains(IomapFlags::SHARED) && covered > 0 {
                    let first = (p & !(PAGE - 1)).wrapping_add(base);
                    let last = (p + covered)
                        .div_ceil(PAGE)
                        .wrapping_mul(PAGE)
                        .wrapping_add(base);
                    unknown.push((first.min(DEV_BYTES), last.min(DEV_BYTES)));
                }
                for (q, &b) in data.iter().enumerate().take(hi).skip(lo) {
                    let at = base.wrapping_add(pos + q as u64) as usize;
                    self.shadow[at] = b;
                }
            } else if zeros {
                assert!(
                    buf[lo..hi].iter().all(|&b| b == 0),
                    "{what}: a hole or unwritten extent at {p} did not read as zeros"
                );
            } else {
                let base = map.base();
                for (q, &b) in buf.iter().enumerate().take(hi).skip(lo) {
                    let at = base.wrapping_add(pos + q as u64) as usize;
                    assert_eq!(
                        b,
                        self.shadow[at],
                        "{what}: file byte {} read from the wrong place (device {at:#x})",
                        pos + q as u64
                    );
                }
            }
        }
        if !write {
            let rest = &buf[done as usize..];
            assert!(
                rest.iter().all(|&b| b == 0xEE),
                "{what}: the buffer past the bytes read was written"
            );
        }
        if write {
            // Bytes written twice (aliasing mappings) are what the last write left,
            // and a later mapping's copy-around may cover an earlier one's bytes: the
            // unknown ranges are the only bytes allowed to differ.
            self.check_device(&unknown, &what);
        } else {
            self.check_device(&[], &what);
        }
    }

    fn iterate(&mut self, i: &mut Input<'_>) {
        let pos = match i.below(4) {
            0 | 1 => i.below(20 * PAGE),
            2 => MAX_FILE_SIZE - i.below(2 * PAGE),
            _ => i.edge_u64(),
        };
        let len = match i.below(4) {
            0 | 1 => i.range(1, 4 * PAGE),
            2 => i.range(0, 64),
            _ => i.edge_u64(),
        };
        let flags = IterFlags::from_bits_retain(u32::from(i.u16()) & 0x7ff)
            | if i.chance(200) {
                IterFlags::DAX
            } else {
                IterFlags::empty()
            };
        self.fs.log.borrow_mut().clear();
        let what = format!("iteration over {len} bytes at {pos} with {flags:?}");
        let mut it = match IomapIter::new(&self.fs, pos, len, flags) {
            Ok(it) => it,
            Err(e) => {
                assert!(
                    pos > MAX_FILE_SIZE || len > MAX_FILE_SIZE - pos,
                    "{what}: refused with {e:?}"
                );
                assert!(
                    matches!(e, DaxError::InvalidArgument { .. }),
                    "{what}: {e:?}"
                );
                return;
            }
        };
        assert!(
            pos <= MAX_FILE_SIZE && len <= MAX_FILE_SIZE - pos,
            "{what}: accepted"
        );
        let mut processed = 0u64;
        let mut abandoned = false;
        let mut steps = 0u32;
        let result = loop {
            match it.next() {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
            steps += 1;
            assert!(steps < 100_000, "{what}: iteration does not end");
            assert_eq!(it.pos(), pos + processed, "{what}: position");
            assert_eq!(it.processed(), processed, "{what}: processed");
            assert_eq!(it.remaining(), len - processed, "{what}: remaining");
            let Some(Event::Begin {
                answer: Some((map, src)),
                ..
            }) = self.fs.log.borrow().last().cloned()
            else {
                panic!("{what}: a body runs without an accepted mapping");
            };
            assert!(
                valid_answer(it.pos(), &map, src.as_ref(), flags),
                "{what}: body runs on {map:?} / {src:?}, which the rules reject"
            );
            let n = it.length();
            assert_eq!(
                n,
                expected_length(it.pos(), it.remaining(), &map, src.as_ref()),
                "{what}: length()"
            );
            // A zero-length iteration still asks once, as the kernel's does.
            assert!(
                n > 0 || len == 0,
                "{what}: an accepted mapping with nothing left"
            );
            match i.below(10) {
                0..=4 => it.advance(n).unwrap(),
                5 => it.advance(i.below(n + 1)).unwrap(),
                6 => {
                    let before = it.pos();
                    assert!(
                        it.advance(n + 1).is_err(),
                        "{what}: advance past the mapping"
                    );
                    assert_eq!(it.pos(), before, "{what}: a refused advance moved");
                }
                7 => {
                    if i.bool() {
                        it.advance(i.below(n + 1)).unwrap();
                    }
                    it.mark_stale();
                }
                8 => it.set_status(Err(injected(i))),
                _ => {
                    abandoned = true;
                    processed = it.processed();
                    break Ok(());
                }
            }
            processed = it.processed();
        };
        drop(it);
        let log = self.fs.log.borrow().clone();
        let (_, done) = check_calls(&log, pos, len, flags);
        assert_eq!(
            done, processed,
            "{what}: iomap_end's written vs the advances"
        );
        if !abandoned && result.is_ok() && !log.is_empty() {
            // A clean end: the range is done, or the last mapping made no progress.
            if let Some(Event::End { written, .. }) = log.last() {
                assert!(
                    processed == len || *written == 0,
                    "{what}: stopped early after progress"
                );
            }
        }
        self.check_device(&[], &what);
    }

    fn poison(&mut self, i: &mut Input<'_>) {
        let off = i.below(DEV_BYTES);
        let len = i.range(1, 2 * PAGE).min(DEV_BYTES - off);
        // A full badblocks table refuses more: that is fine here.
        let _ = self.fs.dev.driver().poison(off, len);
    }
}

/// The fuzz target: a 64-page device filled with canaries, the scripted filesystem,
/// and up to 12 operations (see the module docs).
pub fn run(data: &[u8]) {
    let dev = MemDevice::builder().size(DEV_BYTES).build().unwrap();
    fill_canaries(dev.driver(), 0, DEV_BYTES);
    let mut head = Input::new(data);
    let with_mapping = head.bool();
    // Operations come from the front of the input and the filesystem's answers from
    // the rest, so that a mutation of one answer does not shift every later operation.
    let share = head.u8() as usize;
    let body = data.get(2..).unwrap_or(&[]);
    let (ops_bytes, script) = body.split_at(body.len() * share / 256);
    let mut ops = Input::new(ops_bytes);
    let fs = Fs {
        dev,
        script: RefCell::new(Input::new(script)),
        size: Cell::new(0),
        mapping: with_mapping.then(RecordingMapping::default),
        log: RefCell::new(Vec::new()),
    };
    let mut w = World {
        shadow: Vec::new(),
        fs,
        killed: false,
    };
    w.shadow = w.device_bytes();
    for _ in 0..MAX_OPS {
        if ops.is_empty() || w.fs.script.borrow().is_empty() {
            break;
        }
        match ops.below(16) {
            0..=5 => w.rw(&mut ops, false),
            6..=11 => w.rw(&mut ops, true),
            12 | 13 => w.iterate(&mut ops),
            14 => w.poison(&mut ops),
            _ => {
                if ops.chance(40) && !w.killed {
                    w.fs.dev.kill();
                    w.killed = true;
                }
            }
        }
    }
    w.check_device(&[], "at the end");
}
