//! Edge-value sweep of dax-iomap's public API: every function or method that takes a
//! position, offset, length, count or block number, called with 0, 1, the largest
//! valid value (`MAX_FILE_SIZE` = `i64::MAX`), the first invalid one, `u64::MAX`, and
//! pairs whose sum overflows. Each call must return (no panic, no hang), write nothing
//! outside its range (the whole device is compared with a model after every call),
//! and give the kernel's answer (`rw_verify_area`'s EINVAL, fiemap's EINVAL/EFBIG,
//! SEEK_HOLE's ENXIO, ...) or a typed `DaxError`.
//!
//! Swept: `IomapIter::{new, next, advance, advance_full, length, remaining,
//! processed}` (over a plain filesystem and over adversarial mappings at the edges),
//! `Iomap::{hole, mapped, end, pgoff}`, `IomapType::from_value`, `IovIter::{read,
//! write, fault_after, zero, copy_to_iter, copy_from_iter}`, `dax_iomap_read`,
//! `dax_iomap_write`, `dax_iomap_rw` (`Kiocb` positions), `dax_zero_range`,
//! `dax_truncate_page`, `dax_file_unshare`, `dax_iomap_copy_around`,
//! `dax_dedupe_file_range_compare`, `dax_remap_file_range_prep`, `iomap_fiemap`,
//! `iomap_seek_hole`, `iomap_seek_data`, `iomap_bmap`, with inode sizes at the edges
//! too.
//!
//! The harness is `dax_testkit::sweep`: the test fails listing every finding.

use std::io::{IoSlice, IoSliceMut};
use std::sync::Arc;

use dax_device::{DaxAccessMode, DaxDevice, DaxError, PAGE_SIZE};
use dax_iomap::{
    DaxInode, Fiemap, IOMAP_NULL_ADDR, Iomap, IomapFlags, IomapIter, IomapOps, IomapType, IovIter,
    IterFlags, Kiocb, MAX_FILE_SIZE, MappingOps, RemapFile, RemapFlags,
    dax_dedupe_file_range_compare, dax_file_unshare, dax_iomap_copy_around, dax_iomap_read,
    dax_iomap_rw, dax_iomap_write, dax_remap_file_range_prep, dax_truncate_page, dax_zero_range,
    iomap_bmap, iomap_fiemap, iomap_seek_data, iomap_seek_hole,
};
use dax_testdev::MemDevice;

use dax_testkit::{sweep, sweep::*};

// =====================================================================================
// The sweeps.
// =====================================================================================

const PAGE: u64 = PAGE_SIZE as u64;
const MAX: u64 = MAX_FILE_SIZE;
/// Device pages of every test device.
const DEV_PAGES: u64 = 64;
/// The file offset of the extent at the top of the file space: its last page holds
/// byte `i64::MAX`.
const TOP: u64 = MAX + 1 - 4 * PAGE;

/// Positions and lengths at the edges.
const POS: [u64; 11] = [
    0,
    1,
    PAGE - 1,
    PAGE,
    MAX - PAGE,
    MAX - 10,
    MAX - 1,
    MAX,
    MAX + 1,
    u64::MAX - 10,
    u64::MAX,
];
const LEN: [u64; 8] = [0, 1, 10, PAGE, MAX, MAX + 1, u64::MAX - 1, u64::MAX];

// ---- a filesystem with extents anywhere, holes elsewhere ----

#[derive(Clone, Copy, Debug)]
struct Ext {
    off: u64,
    len: u64,
    kind: IomapType,
    addr: u64,
    flags: IomapFlags,
    /// For a SHARED extent on a write/zero/unshare: the old data (kind, device address).
    src: Option<(IomapType, u64)>,
}

impl Ext {
    fn mapped(off: u64, len: u64, addr: u64) -> Ext {
        Ext {
            off,
            len,
            kind: IomapType::Mapped,
            addr,
            flags: IomapFlags::empty(),
            src: None,
        }
    }

    fn end(&self) -> u64 {
        self.off.saturating_add(self.len)
    }
}

/// Records what the engine asks of the mapping index.
#[derive(Default)]
struct Rec(std::sync::Mutex<Vec<String>>);

impl MappingOps for Rec {
    fn clear_dirty_range(&self, pages: std::ops::RangeInclusive<u64>) {
        let (first, last) = pages.into_inner();
        self.0
            .lock()
            .unwrap()
            .push(format!("clear_dirty {first}..={last}"));
    }
    fn invalidate_range(&self, pages: std::ops::RangeInclusive<u64>) -> Result<(), DaxError> {
        let (first, last) = pages.into_inner();
        self.0
            .lock()
            .unwrap()
            .push(format!("invalidate {first}..={last}"));
        Ok(())
    }
    fn write_and_wait_range(&self, bytes: std::ops::RangeInclusive<u64>) -> Result<(), DaxError> {
        let (start, end) = bytes.into_inner();
        self.0
            .lock()
            .unwrap()
            .push(format!("writeback {start}..={end}"));
        Ok(())
    }
    fn next_entry(&self, pages: std::ops::RangeInclusive<u64>) -> Option<(u64, u64)> {
        let (_first, _last) = pages.into_inner();
        None
    }
}

struct EdgeFs {
    dev: Arc<DaxDevice<MemDevice>>,
    size: u64,
    exts: Vec<Ext>,
    rec: Rec,
}

impl EdgeFs {
    fn new(size: u64, exts: Vec<Ext>) -> EdgeFs {
        let dev = MemDevice::builder().size(DEV_PAGES * PAGE).build().unwrap();
        let image: Vec<u8> = (0..DEV_PAGES * PAGE)
            .map(|i| (i.wrapping_mul(131) >> 5) as u8 ^ 0x5C)
            .collect();
        dev.driver().poke(0, &image).unwrap();
        EdgeFs {
            dev,
            size,
            exts,
            rec: Rec::default(),
        }
    }

    fn image(&self) -> Vec<u8> {
        let mut v = vec![0u8; (DEV_PAGES * PAGE) as usize];
        self.dev.driver().peek(0, &mut v).unwrap();
        v
    }

    fn find(&self, pos: u64) -> Option<&Ext> {
        self.exts.iter().find(|e| e.off <= pos && pos < e.end())
    }
}

impl IomapOps for EdgeFs {
    fn iomap_begin(
        &self,
        pos: u64,
        _length: u64,
        flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        let dev: &DaxDevice = &*self.dev;
        if let Some(e) = self.find(pos) {
            let storage = matches!(e.kind, IomapType::Mapped | IomapType::Unwritten)
                || e.flags.contains(IomapFlags::SHARED);
            let map = Iomap {
                addr: if storage { e.addr } else { IOMAP_NULL_ADDR },
                offset: e.off,
                length: e.len,
                kind: e.kind,
                flags: e.flags,
                dax_dev: storage.then_some(dev),
                ..Iomap::default()
            };
            let copies = flags.intersects(IterFlags::WRITE | IterFlags::ZERO | IterFlags::UNSHARE);
            let src = e.src.filter(|_| copies).map(|(kind, addr)| Iomap {
                addr,
                offset: e.off,
                length: e.len,
                kind,
                dax_dev: Some(dev),
                ..Iomap::default()
            });
            return Ok((map, src));
        }
        let next = self
            .exts
            .iter()
            .map(|e| e.off)
            .filter(|&o| o > pos)
            .min()
            .unwrap_or(u64::MAX);
        Ok((Iomap::hole(pos, next - pos), None))
    }
}

impl DaxInode for EdgeFs {
    fn i_size(&self) -> u64 {
        self.size
    }
    fn mapping(&self) -> Option<&dyn MappingOps> {
        Some(&self.rec)
    }
}

/// Where the extents of a layout are.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// 4 pages at file offset 0 → device page 8.
    Low,
    /// 4 pages at [`TOP`] → device page 16 (its last page holds byte `i64::MAX`).
    Top,
}

fn layout_fs(l: Layout) -> EdgeFs {
    match l {
        Layout::Low => EdgeFs::new(4 * PAGE, vec![Ext::mapped(0, 4 * PAGE, 8 * PAGE)]),
        Layout::Top => EdgeFs::new(MAX, vec![Ext::mapped(TOP, 4 * PAGE, 16 * PAGE)]),
    }
}

/// Runs `f` on `fs` with a model of the device; afterwards every device byte must
/// match the model.
fn with_model(fs: &EdgeFs, f: impl FnOnce(&mut Vec<u8>, &mut Fails)) -> Check {
    let mut model = fs.image();
    let mut fails = Fails::default();
    f(&mut model, &mut fails);
    if let Err(e) = same_bytes(
        "device (offsets from device byte 0)",
        &fs.image(),
        &model,
        0,
    ) {
        fails.0.push(format!("OUT-OF-RANGE WRITE: {e}"));
    }
    fails.done()
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect()
}

/// `rw_verify_area` and the iterator: a range that reaches past `i64::MAX`.
fn bad_range(pos: u64, len: u64) -> bool {
    pos > MAX || len > MAX - pos
}

// ---- IomapIter ----

/// Answers the same mapping (and source map) for every position.
struct OneMap {
    dev: Arc<DaxDevice<MemDevice>>,
    map: (u64, u64, IomapType, u64, IomapFlags),
    src: Option<(u64, u64, IomapType, u64)>,
}

impl IomapOps for OneMap {
    fn iomap_begin(
        &self,
        _pos: u64,
        _length: u64,
        _flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        let dev: &DaxDevice = &*self.dev;
        let (offset, length, kind, addr, flags) = self.map;
        let map = Iomap {
            addr,
            offset,
            length,
            kind,
            flags,
            dax_dev: Some(dev),
            ..Iomap::default()
        };
        let src = self.src.map(|(offset, length, kind, addr)| Iomap {
            addr,
            offset,
            length,
            kind,
            dax_dev: Some(dev),
            ..Iomap::default()
        });
        Ok((map, src))
    }
}

fn sweep_iter(s: &mut Sweep) {
    for &pos in &POS {
        for &len in &LEN {
            s.probe(format!("IomapIter::new(pos {pos}, len {len}) over holes, then next/advance/advance_full"), || {
                let fs = EdgeFs::new(MAX, vec![]);
                let mut f = Fails::default();
                let r = IomapIter::new(&fs, pos, len, IterFlags::REPORT);
                if bad_range(pos, len) {
                    f.errno("new", &r.map(|_| ()), libc::EINVAL);
                    return f.done();
                }
                let mut it = match r {
                    Ok(it) => it,
                    Err(e) => return Err(format!("new: got {e:?}, expected Ok")),
                };
                let mut rounds = 0;
                while rounds < 4 {
                    match it.next() {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            f.0.push(format!("next: {e:?}"));
                            break;
                        }
                    }
                    rounds += 1;
                    let l = it.length();
                    f.that(l <= it.remaining(), || format!("length {l} > remaining {}", it.remaining()));
                    f.errno("advance(u64::MAX)", &it.advance(u64::MAX), libc::EIO);
                    if l < u64::MAX {
                        f.errno("advance(length + 1)", &it.advance(l + 1), libc::EIO);
                    }
                    f.that(it.advance(0).is_ok(), || "advance(0) failed".into());
                    let before = it.pos();
                    if rounds % 2 == 0 {
                        it.advance_full();
                    } else {
                        f.that(it.advance(l).is_ok(), || "advance(length) failed".into());
                    }
                    f.eq("pos after advancing the mapping", it.pos(), before + l);
                    f.eq("processed", it.processed(), it.pos() - pos);
                }
                f.that(len == 0 || rounds > 0, || "no mapping for a non-empty range".into());
                f.done()
            });
        }
    }
    // Adversarial mappings at the edges: (offset, length, kind, addr, flags), a source.
    let dp = DEV_PAGES * PAGE;
    #[allow(clippy::type_complexity)]
    let maps: Vec<(
        (u64, u64, IomapType, u64, IomapFlags),
        Option<(u64, u64, IomapType, u64)>,
    )> = vec![
        (
            (
                0,
                u64::MAX,
                IomapType::Hole,
                IOMAP_NULL_ADDR,
                IomapFlags::empty(),
            ),
            None,
        ),
        (
            (0, u64::MAX, IomapType::Mapped, 0, IomapFlags::empty()),
            None,
        ),
        (
            (
                u64::MAX - 10,
                100,
                IomapType::Hole,
                IOMAP_NULL_ADDR,
                IomapFlags::empty(),
            ),
            None,
        ),
        (
            (0, 0, IomapType::Hole, IOMAP_NULL_ADDR, IomapFlags::empty()),
            None,
        ),
        (
            (
                0,
                MAX,
                IomapType::Mapped,
                u64::MAX - PAGE + 1,
                IomapFlags::empty(),
            ),
            None,
        ),
        ((0, dp, IomapType::Mapped, 0, IomapFlags::empty()), None),
        ((0, dp + 1, IomapType::Mapped, 0, IomapFlags::empty()), None),
        (
            (0, PAGE, IomapType::Mapped, dp - PAGE, IomapFlags::empty()),
            None,
        ),
        ((0, PAGE, IomapType::Mapped, dp, IomapFlags::empty()), None),
        (
            (
                0,
                PAGE,
                IomapType::Mapped,
                IOMAP_NULL_ADDR,
                IomapFlags::empty(),
            ),
            None,
        ),
        (
            (0, u64::MAX, IomapType::Mapped, 0, IomapFlags::SHARED),
            Some((0, u64::MAX, IomapType::Mapped, 0)),
        ),
        (
            (0, PAGE, IomapType::Mapped, 0, IomapFlags::SHARED),
            Some((0, u64::MAX, IomapType::Mapped, u64::MAX - 10)),
        ),
        (
            (0, 2 * PAGE, IomapType::Mapped, 0, IomapFlags::SHARED),
            Some((0, 1, IomapType::Mapped, PAGE)),
        ),
        (
            (0, 2 * PAGE, IomapType::Mapped, 0, IomapFlags::SHARED),
            Some((u64::MAX - 10, 100, IomapType::Mapped, PAGE)),
        ),
        ((0, MAX, IomapType::Mapped, 0, IomapFlags::all()), None),
    ];
    for (map, src) in maps {
        for flags in [
            IterFlags::DAX,
            IterFlags::DAX | IterFlags::WRITE,
            IterFlags::REPORT,
            IterFlags::DAX | IterFlags::ZERO,
        ] {
            for (pos, len) in [(0, 1), (0, MAX), (PAGE, PAGE), (MAX - 1, 1)] {
                s.probe(format!("IomapIter(pos {pos}, len {len}, {flags:?}) over the mapping {map:?} with source {src:?}"), || {
                    let ops = OneMap {
                        dev: MemDevice::builder().size(dp).build().unwrap(),
                        map,
                        src,
                    };
                    let mut it = IomapIter::new(&ops, pos, len, flags).map_err(|e| format!("new: {e:?}"))?;
                    let mut f = Fails::default();
                    for _ in 0..3 {
                        match it.next() {
                            Ok(true) => {
                                let l = it.length();
                                f.that(l <= it.remaining(), || format!("length {l} > remaining {}", it.remaining()));
                                let _ = it.srcmap().pgoff(it.pos());
                                let _ = it.iomap().end();
                                let _ = it.want_unshare();
                                it.advance_full();
                            }
                            Ok(false) | Err(_) => break,
                        }
                    }
                    f.done()
                });
            }
        }
    }
    s.probe(
        "Iomap::{hole, mapped, end, pgoff} and IomapType::from_value at the edges",
        || {
            let fs = EdgeFs::new(0, vec![]);
            let dev: &DaxDevice = &*fs.dev;
            let mut f = Fails::default();
            for &a in &POS {
                for &b in &POS {
                    let h = Iomap::hole(a, b);
                    f.eq("hole end", h.end(), a.saturating_add(b));
                    let m = Iomap::mapped(a, b, b, dev);
                    let _ = m.pgoff(a);
                    let _ = m.pgoff(u64::MAX);
                    let _ = m.end();
                }
            }
            for v in [5u16, 255, u16::MAX] {
                f.eq(&format!("from_value({v})"), IomapType::from_value(v), None);
            }
            f.done()
        },
    );
}

// ---- reads and writes ----

/// What a write of `len` bytes at `pos` does on `fs` (the EdgeFs rules): the bytes
/// that land in extents, and the result.
fn expect_write(fs: &EdgeFs, pos: u64, len: u64) -> Result<u64, i32> {
    if len == 0 {
        return Ok(0);
    }
    if bad_range(pos, len) {
        return Err(libc::EINVAL);
    }
    let mut n = 0;
    while n < len {
        let Some(e) = fs.find(pos + n) else { break };
        n += e.end().min(pos + len) - (pos + n);
    }
    if n == 0 { Err(libc::EIO) } else { Ok(n) }
}

fn sweep_rw(s: &mut Sweep) {
    let lens = [0u64, 1, 10, PAGE, 4 * PAGE + 1];
    for layout in [Layout::Low, Layout::Top] {
        let base = match layout {
            Layout::Low => 0,
            Layout::Top => TOP,
        };
        let mut positions: Vec<u64> = POS.to_vec();
        positions.extend([
            base + 1,
            base + 4 * PAGE - 1,
            base + 4 * PAGE,
            base.wrapping_sub(1),
        ]);
        positions.sort_unstable();
        positions.dedup();
        for &pos in &positions {
            for &len in &lens {
                s.probe(
                    format!("dax_iomap_write(pos {pos}, len {len}) on {layout:?}"),
                    || {
                        let fs = layout_fs(layout);
                        with_model(&fs, |model, f| {
                            let buf = data(len as usize, 0x31);
                            let r = dax_iomap_write(&fs, &fs, pos, &buf);
                            match expect_write(&fs, pos, len) {
                                Err(e) => f.errno("write", &r, e),
                                Ok(n) => {
                                    f.eq(
                                        "written",
                                        r.clone().map_err(|e| e.errno()),
                                        Ok(n as usize),
                                    );
                                    if let Ok(got) = r {
                                        for i in 0..got as u64 {
                                            let e = fs.find(pos + i).unwrap();
                                            model[(e.addr + pos + i - e.off) as usize] =
                                                buf[i as usize];
                                        }
                                    }
                                }
                            }
                        })
                    },
                );
                s.probe(
                    format!("dax_iomap_read(pos {pos}, len {len}) on {layout:?}"),
                    || {
                        let fs = layout_fs(layout);
                        with_model(&fs, |model, f| {
                            let mut buf = vec![0x77u8; len as usize];
                            let r = dax_iomap_read(&fs, &fs, pos, &mut buf);
                            if len == 0 {
                                f.eq("read of nothing", r.map_err(|e| e.errno()), Ok(0));
                            } else if bad_range(pos, len) {
                                f.errno("read", &r, libc::EINVAL);
                            } else {
                                let n = fs.size.saturating_sub(pos).min(len);
                                f.eq("read", r.map_err(|e| e.errno()), Ok(n as usize));
                                let mut want = vec![0x77u8; len as usize];
                                for i in 0..n {
                                    want[i as usize] = fs
                                        .find(pos + i)
                                        .map_or(0, |e| model[(e.addr + pos + i - e.off) as usize]);
                                }
                                if let Err(e) = same_bytes("read buffer", &buf, &want, 0) {
                                    f.0.push(e);
                                }
                            }
                        })
                    },
                );
            }
        }
    }
    for &pos in &POS {
        s.probe(format!("dax_iomap_rw: Kiocb {{ pos: {pos} }} with vectored buffers (empty segments, fault_after edges)"), || {
            let fs = layout_fs(Layout::Low);
            with_model(&fs, |model, f| {
                for fault in [0usize, 1, 5, usize::MAX] {
                    let (a, b, c) = (data(3, 1), Vec::<u8>::new(), data(4, 2));
                    let srcs = [IoSlice::new(&a), IoSlice::new(&b), IoSlice::new(&c)];
                    let mut it = IovIter::write(&srcs).fault_after(fault);
                    let mut iocb = Kiocb::new(pos);
                    let r = dax_iomap_rw(&fs, &fs, &mut iocb, &mut it);
                    let want = expect_write(&fs, pos, 7).map(|n| n.min(fault as u64));
                    let want = match want {
                        Ok(0) => Err(libc::EFAULT),
                        w => w,
                    };
                    f.eq(&format!("write fault_after({fault})"), r.clone().map_err(|e| e.errno()), want.map(|n| n as usize));
                    if let Ok(n) = r {
                        f.eq("kiocb pos", iocb.pos, pos + n as u64);
                        let all: Vec<u8> = a.iter().chain(c.iter()).copied().collect();
                        for i in 0..n as u64 {
                            let e = fs.find(pos + i).unwrap();
                            model[(e.addr + pos + i - e.off) as usize] = all[i as usize];
                        }
                    } else {
                        f.eq("kiocb pos after a failure", iocb.pos, pos);
                    }
                    let (mut x, mut y) = (vec![0u8; 2], vec![0u8; 0]);
                    let mut dsts = [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)];
                    let mut it = IovIter::read(&mut dsts).fault_after(fault);
                    let mut iocb = Kiocb::new(pos);
                    let _ = dax_iomap_rw(&fs, &fs, &mut iocb, &mut it);
                }
            })
        });
    }
    s.probe(
        "IovIter::{zero, count, fault_after} and the device copies at offset/count edges",
        || {
            let fs = layout_fs(Layout::Low);
            with_model(&fs, |model, f| {
                let g = fs.dev.read_lock();
                let da = g
                    .direct_access(DEV_PAGES - 2, 2, DaxAccessMode::Access)
                    .unwrap();
                let at = ((DEV_PAGES - 2) * PAGE) as usize;
                let dl = 2 * PAGE_SIZE;
                for off in [0usize, 1, dl - 1, dl, dl + 1, usize::MAX - 1, usize::MAX] {
                    for n in [0usize, 1, 100, dl, usize::MAX] {
                        let src = data(300, 9);
                        let mut it = IovIter::write_one(&src);
                        let got = it.copy_from_iter(&da, off, n, false);
                        let want = dl.saturating_sub(off).min(n).min(300);
                        f.eq(&format!("copy_from_iter(offset {off}, n {n})"), got, want);
                        model[at + off.min(dl)..at + off.min(dl) + want]
                            .copy_from_slice(&src[..want]);
                        f.eq("count after", it.count(), 300 - want);
                        let mut it = IovIter::write_one(&src);
                        let got = it.copy_from_iter(&da, off, n, true);
                        f.eq(
                            &format!("recovery copy_from_iter(offset {off}, n {n})"),
                            got,
                            want,
                        );
                        let mut dst = vec![0u8; 300];
                        let mut it = IovIter::read_one(&mut dst);
                        let got = it.copy_to_iter(&da, off, n);
                        f.eq(&format!("copy_to_iter(offset {off}, n {n})"), got, want);
                        let mut it = IovIter::read_one(&mut dst).fault_after(usize::MAX);
                        f.eq("zero(usize::MAX)", it.zero(usize::MAX), 300);
                    }
                }
            })
        },
    );
}

// ---- zeroing ----

fn sweep_zero(s: &mut Sweep) {
    for layout in [Layout::Low, Layout::Top] {
        for &pos in &POS {
            for &len in &LEN {
                s.probe(format!("dax_zero_range(pos {pos}, len {len}) on {layout:?}"), || {
                    let fs = layout_fs(layout);
                    with_model(&fs, |model, f| {
                        let r = dax_zero_range(&fs, &fs, pos, len);
                        if pos > MAX {
                            f.errno("zero at a negative position", &r, libc::EINVAL);
                            return;
                        }
                        // The kernel's iomap_zero_range takes any u64 length (iter->len
                        // is u64): a length past the end zeroes to the end.
                        let end = pos.saturating_add(len).min(MAX);
                        let e = &fs.exts[0];
                        let (lo, hi) = (pos.max(e.off), end.min(e.end()));
                        match r {
                            Ok(did) => {
                                // A zero-length call over a mapped extent reports
                                // did_zero as the kernel's do-while loop does.
                                if len > 0 {
                                    f.eq("did_zero", did, lo < hi);
                                }
                                if lo < hi {
                                    let a = (e.addr + lo - e.off) as usize;
                                    model[a..a + (hi - lo) as usize].fill(0);
                                }
                            }
                            Err(err) => f.0.push(format!("got {err:?}, expected Ok (zero bytes {pos}..{end}, to the end of the file space)")),
                        }
                    })
                });
            }
            s.probe(format!("dax_truncate_page(pos {pos}) on {layout:?}"), || {
                let fs = layout_fs(layout);
                with_model(&fs, |model, f| {
                    let r = dax_truncate_page(&fs, &fs, pos);
                    if pos.is_multiple_of(PAGE) {
                        f.eq("aligned", r.map_err(|e| e.errno()), Ok(false));
                        return;
                    }
                    if pos > MAX {
                        f.errno("negative position", &r, libc::EINVAL);
                        return;
                    }
                    let end = pos.next_multiple_of(PAGE).min(MAX);
                    let e = &fs.exts[0];
                    let (lo, hi) = (pos.max(e.off), end.min(e.end()));
                    match r {
                        Ok(did) => {
                            f.eq("did_zero", did, lo < hi);
                            if lo < hi {
                                let a = (e.addr + lo - e.off) as usize;
                                model[a..a + (hi - lo) as usize].fill(0);
                            }
                        }
                        Err(err) => f.0.push(format!("got {err:?}, the kernel zeroes {pos}..{end} (the rest of its block)")),
                    }
                })
            });
        }
    }
}

// ---- copy-on-write, unshare, dedupe, remap ----

fn sweep_share(s: &mut Sweep) {
    let aligns = [
        0u64,
        1,
        PAGE - 1,
        PAGE,
        PAGE + 1,
        2 << 20,
        1 << 62,
        1 << 63,
        u64::MAX,
    ];
    for &align in &aligns {
        for &pos in &POS {
            for len in [0u64, 1, PAGE, u64::MAX - 1, u64::MAX] {
                s.probe(format!("dax_iomap_copy_around(pos {pos}, length {len}, align {align}) into 2 device pages"), || {
                    let fs = EdgeFs::new(MAX, vec![]);
                    with_model(&fs, |model, f| {
                        let dev: &DaxDevice = &*fs.dev;
                        // The source covers every aligned block from file offset 0.
                        let src = Iomap::mapped(0, u64::MAX, 8 * PAGE, dev);
                        let g = fs.dev.read_lock();
                        let da = g.direct_access(4, 2, DaxAccessMode::Access).unwrap();
                        let r = dax_iomap_copy_around(pos, len, align, &src, &da);
                        if align < PAGE || !align.is_power_of_two() {
                            f.errno("bad alignment", &r, libc::EINVAL);
                        } else if pos.checked_add(len).is_none_or(|e| e.checked_next_multiple_of(align).is_none()) {
                            f.errno("range past u64::MAX", &r, libc::EOVERFLOW);
                        }
                        // Only the destination's two pages may change.
                        let now = fs.image();
                        let (a, b) = ((4 * PAGE) as usize, (6 * PAGE) as usize);
                        model[a..b].copy_from_slice(&now[a..b]);
                    })
                });
            }
        }
    }
    for &pos in &POS {
        for &len in &LEN {
            s.probe(
                format!("dax_file_unshare(pos {pos}, len {len}) of a reflinked extent at the top"),
                || {
                    let mut e = Ext::mapped(TOP, 4 * PAGE, 16 * PAGE);
                    e.flags = IomapFlags::SHARED;
                    e.src = Some((IomapType::Mapped, 16 * PAGE));
                    let fs = EdgeFs::new(MAX, vec![e]);
                    with_model(&fs, |_m, f| {
                        let r = dax_file_unshare(&fs, &fs, pos, len);
                        f.that(r.is_ok(), || {
                            format!(
                                "got {r:?}, expected Ok (nothing past EOF, the range clipped to it)"
                            )
                        });
                    })
                },
            );
        }
    }
    for &a in &POS {
        for &b in &[0, PAGE, TOP, MAX - 1, u64::MAX] {
            for &len in &LEN {
                s.probe(
                    format!("dax_dedupe_file_range_compare(srcoff {a}, dstoff {b}, len {len})"),
                    || {
                        let fs = layout_fs(Layout::Top);
                        with_model(&fs, |_m, f| {
                            let r = dax_dedupe_file_range_compare(&fs, a, &fs, b, len);
                            if bad_range(a, len) || bad_range(b, len) {
                                f.errno("range past i64::MAX", &r, libc::EINVAL);
                            }
                        })
                    },
                );
            }
        }
    }
    let sizes = [0u64, 1, PAGE, 4 * PAGE, MAX - 1, MAX, MAX + 1, u64::MAX];
    for &size_in in &sizes {
        for &pos_in in &[0, PAGE, TOP, MAX - PAGE + 1, !(PAGE - 1)] {
            for &len in &[0, PAGE, 4 * PAGE, MAX, u64::MAX] {
                for flags in [
                    RemapFlags::empty(),
                    RemapFlags::DEDUP,
                    RemapFlags::CAN_SHORTEN,
                ] {
                    s.probe(format!("dax_remap_file_range_prep(pos_in {pos_in}, pos_out {PAGE}, len {len}, {flags:?}), source size {size_in}"), || {
                        let src = EdgeFs::new(size_in, vec![]);
                        let dst = EdgeFs::new(8 * PAGE, vec![]);
                        let (si, di) = (remap_side(&src), remap_side(&dst));
                        let r = dax_remap_file_range_prep(&si, pos_in, &di, PAGE, len, flags);
                        let mut f = Fails::default();
                        // generic_remap_checks: "Ensure offsets don't wrap" → EINVAL.
                        if len != 0 && bad_range(pos_in, len) {
                            f.errno("range past i64::MAX", &r, libc::EINVAL);
                        }
                        if let Ok(n) = r {
                            f.that(n <= len.max(size_in), || format!("remap length {n} larger than asked"));
                        }
                        f.done()
                    });
                }
            }
        }
    }
}

fn remap_side(fs: &EdgeFs) -> RemapFile<'_> {
    RemapFile {
        inode: fs,
        ops: fs,
        regular: true,
        directory: false,
        immutable: false,
        swapfile: false,
    }
}

// ---- reporting ----

fn sweep_report(s: &mut Sweep) {
    for &start in &POS {
        for &len in &LEN {
            for max in [0usize, 1] {
                s.probe(format!("iomap_fiemap(start {start}, len {len}, extents_max {max}) with an extent at the top"), || {
                    let fs = layout_fs(Layout::Top);
                    let mut fm = Fiemap { extents_max: max, ..Fiemap::default() };
                    let r = iomap_fiemap(&fs, &fs, &mut fm, start, len);
                    let mut f = Fails::default();
                    if len == 0 {
                        f.errno("fiemap_prep: len 0", &r, libc::EINVAL);
                    } else if start >= MAX {
                        f.errno("fiemap_prep: start >= s_maxbytes", &r, libc::EFBIG);
                    } else {
                        f.that(r.is_ok(), || format!("got {r:?}"));
                        let hit = start < TOP + 4 * PAGE && start.saturating_add(len).min(MAX) > TOP;
                        f.eq("extents found", fm.mapped, usize::from(hit));
                    }
                    f.done()
                });
            }
        }
    }
    for max in [0xFFFF_FFFF / 56 + 1, usize::MAX] {
        s.probe(
            format!("iomap_fiemap(start 0, len 4096, extents_max {max})"),
            || {
                let fs = layout_fs(Layout::Top);
                let mut fm = Fiemap {
                    extents_max: max,
                    ..Fiemap::default()
                };
                let r = iomap_fiemap(&fs, &fs, &mut fm, 0, PAGE);
                let mut f = Fails::default();
                // ioctl_fiemap: fm_extent_count > FIEMAP_MAX_EXTENTS.
                f.errno(
                    "extent count above FIEMAP_MAX_EXTENTS (UINT_MAX / 56)",
                    &r,
                    libc::EINVAL,
                );
                f.done()
            },
        );
    }
    let seeks: [i64; 9] = [
        i64::MIN,
        -1,
        0,
        1,
        TOP as i64 - 1,
        TOP as i64,
        i64::MAX - 2,
        i64::MAX - 1,
        i64::MAX,
    ];
    for size in [0, TOP + PAGE, MAX] {
        for &pos in &seeks {
            s.probe(
                format!("iomap_seek_hole/iomap_seek_data(pos {pos}), size {size}, data at {TOP}.."),
                || {
                    let mut fs = layout_fs(Layout::Top);
                    fs.size = size;
                    let mut f = Fails::default();
                    let h = iomap_seek_hole(&fs, &fs, pos);
                    let d = iomap_seek_data(&fs, &fs, pos);
                    if pos < 0 || pos as u64 >= size {
                        f.errno("SEEK_HOLE outside the file", &h, libc::ENXIO);
                        f.errno("SEEK_DATA outside the file", &d, libc::ENXIO);
                    } else {
                        let p = pos as u64;
                        let in_data = p >= TOP;
                        f.eq(
                            "SEEK_HOLE",
                            h.map_err(|e| e.errno()),
                            Ok(if in_data { size.max(p) } else { p }),
                        );
                        if in_data {
                            f.eq("SEEK_DATA", d.map_err(|e| e.errno()), Ok(p));
                        } else if TOP < size {
                            f.eq("SEEK_DATA", d.map_err(|e| e.errno()), Ok(TOP));
                        } else {
                            f.errno("SEEK_DATA with no data after", &d, libc::ENXIO);
                        }
                    }
                    f.done()
                },
            );
        }
    }
    let blocks = [
        0,
        1,
        TOP / PAGE - 1,
        TOP / PAGE,
        TOP / PAGE + 3,
        MAX / PAGE,
        MAX / PAGE + 1,
        u64::MAX / PAGE,
        u64::MAX / PAGE + 1,
        u64::MAX,
    ];
    for &b in &blocks {
        s.probe(
            format!(
                "iomap_bmap(block {b}) with 4 blocks at {} → device block 16",
                TOP / PAGE
            ),
            || {
                let fs = layout_fs(Layout::Top);
                let mut f = Fails::default();
                let got = iomap_bmap(&fs, &fs, b);
                let want = if (TOP / PAGE..TOP / PAGE + 4).contains(&b) {
                    16 + b - TOP / PAGE
                } else {
                    0
                };
                f.eq("device block", got, want);
                f.done()
            },
        );
    }
}

sweep!(
    /// `IomapIter` over holes and over adversarial mappings, and the `Iomap` helpers.
    sweep_iomap_iter,
    child_sweep_iomap_iter,
    sweep_iter
);
sweep!(
    /// `dax_iomap_read`, `dax_iomap_write`, `dax_iomap_rw`, `IovIter`.
    sweep_iomap_rw,
    child_sweep_iomap_rw,
    sweep_rw
);
sweep!(
    /// `dax_zero_range`, `dax_truncate_page`.
    sweep_iomap_zero,
    child_sweep_iomap_zero,
    sweep_zero
);
sweep!(
    /// `dax_iomap_copy_around`, `dax_file_unshare`, dedupe compare, remap prep.
    sweep_iomap_share,
    child_sweep_iomap_share,
    sweep_share
);
sweep!(
    /// `iomap_fiemap`, `iomap_seek_hole`, `iomap_seek_data`, `iomap_bmap`.
    sweep_iomap_report,
    child_sweep_iomap_report,
    sweep_report
);
