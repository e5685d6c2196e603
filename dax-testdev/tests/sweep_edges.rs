//! Edge-value sweep of dax-testdev's public API (extends `testfs_no_panic.rs`, which
//! checks random edge inputs only for "no panic, an expected errno"): here each call
//! at an edge gets the exact answer Linux gives (`rw_verify_area`, `vfs_fallocate`,
//! `do_truncate`, `remap_verify_area`, `fiemap_prep`, `SEEK_HOLE`, `do_mmap`, ...),
//! file contents are checked against a model after every call, and free device blocks
//! hold canary bytes that must survive. `MemDevice`'s byte-range methods are checked
//! against a model of the whole device.
//!
//! Swept: `MemDeviceBuilder::{size, clear_unit}` + `build`, `MemDevice::{poison,
//! poison_latent, is_poisoned, clear_poison, read, write, peek, poke}`, its
//! `direct_access`/`zero_page_range` around bad blocks, `memory_failure` (pfn and page
//! count edges), `TestFs::{mkfs_with, write, read, pwrite, pread, truncate, fallocate,
//! fiemap, seek_hole, seek_data, reflink, dedupe, block_refcount, inode, stat}`,
//! `TestFs::mmap` with faults through `SimPageTable` at the top of the file space, and
//! `TestFs::mmap_real` (`MmuMapping::map`) with its `populate`, `load`, `store`,
//! `munmap`, `madvise_dontneed`, `mremap`, `msync` at offset and length edges.
//!
//! The harness is `dax_testkit::sweep`: the test fails listing every finding.
#![allow(unsafe_code)]

mod testfs_common;

use std::sync::{Arc, Mutex};

use dax_device::{DaxAccessMode, DaxDevice, DaxError, DaxHolder, MfFlags, Pfn};
use dax_fault::Vma;
use dax_fault::mmu::MapOptions;
use dax_fault::sim::SimPageTable;
use dax_iomap::{Fiemap, MAX_FILE_SIZE};
use dax_testdev::{Backing, FallocMode, Ino, MemDevice, MkfsOptions, TestFs};
use testfs_common::{Dev, mem_fs};

use dax_testkit::{sweep, sweep::*};

// =====================================================================================
// The sweeps.
// =====================================================================================

const PAGE: u64 = 4096;
const MAX: u64 = MAX_FILE_SIZE;
const CANARY: u8 = 0xA5;
const POS: [u64; 12] = [
    0,
    1,
    PAGE - 1,
    PAGE,
    MAX - PAGE,
    MAX - 100,
    MAX - 10,
    MAX - 1,
    MAX,
    MAX + 1,
    u64::MAX - 10,
    u64::MAX,
];

// ---- MemDevice ----

fn sweep_memdev(s: &mut Sweep) {
    let sizes = [
        0u64,
        1,
        4095,
        4096,
        4097,
        1 << 46,
        (u64::MAX >> 1) & !4095,
        !4095,
        u64::MAX,
    ];
    for &size in &sizes {
        for anon in [false, true] {
            s.probe(
                format!(
                    "MemDevice::builder().size({size}).backing({}).build()",
                    if anon { "Anonymous" } else { "Memfd" }
                ),
                || {
                    let b = MemDevice::builder().size(size).backing(if anon {
                        Backing::Anonymous
                    } else {
                        Backing::Memfd
                    });
                    let r = b.build();
                    let mut f = Fails::default();
                    if size == 0 || !size.is_multiple_of(PAGE) {
                        f.errno("bad size", &r.map(|_| ()), libc::EINVAL);
                    } else if size < 1 << 46 {
                        f.that(r.as_ref().is_ok_and(|d| d.driver().size() == size), || {
                            format!("{:?}", r.as_ref().err())
                        });
                    }
                    f.done()
                },
            );
        }
    }
    for unit in [0u64, 1, 3, 512, 4096, 8192, u64::MAX] {
        s.probe(format!("MemDevice::builder().clear_unit({unit})"), || {
            let r = MemDevice::builder().size(1 << 20).clear_unit(unit).build();
            let mut f = Fails::default();
            if unit.is_power_of_two() && unit <= 4096 {
                f.that(r.is_ok(), || format!("{:?}", r.err()));
            } else {
                f.errno("bad clear unit", &r.map(|_| ()), libc::EINVAL);
            }
            f.done()
        });
    }
    let size = 64 * PAGE;
    let offs = [
        0u64,
        1,
        511,
        512,
        size - 1,
        size,
        size + 1,
        u64::MAX - 10,
        u64::MAX,
    ];
    let lens = [0u64, 1, 512, PAGE, size, size + 1, u64::MAX - 1, u64::MAX];
    for &off in &offs {
        for &len in &lens {
            s.probe(format!("MemDevice::{{poison, poison_latent, is_poisoned, clear_poison}}(offset {off}, len {len}) on a {size}-byte device"), || {
                on_memdev(size, |dev, _model, f| {
                    let d = dev.driver();
                    let fits = off.checked_add(len).is_some_and(|e| e <= size);
                    for (what, r) in [("poison_latent", d.poison_latent(off, len)), ("poison", d.poison(off, len))] {
                        if fits {
                            f.that(r.is_ok(), || format!("{what}: {r:?}"));
                        } else {
                            f.errno(what, &r, libc::EINVAL);
                        }
                    }
                    f.eq("is_poisoned", d.is_poisoned(off, len), fits && len > 0);
                    let r = d.clear_poison(off, len);
                    if !fits {
                        f.errno("clear_poison past the end", &r, libc::EINVAL);
                    } else if !off.is_multiple_of(512) || !len.is_multiple_of(512) {
                        f.errno("clear_poison unaligned (nvdimm_clear_poison)", &r, libc::ENXIO);
                    } else {
                        f.eq("clear_poison", r.map_err(|e| e.errno()), Ok(len));
                    }
                })
            });
        }
    }
    for &off in &offs {
        for len in [0usize, 1, 512, size as usize, size as usize + 1] {
            s.probe(
                format!("MemDevice::{{read, write, peek, poke}}(offset {off}, {len} bytes)"),
                || {
                    on_memdev(size, |dev, model, f| {
                        let d = dev.driver();
                        let fits = off.checked_add(len as u64).is_some_and(|e| e <= size);
                        let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x3C).collect();
                        let mut buf = vec![0u8; len];
                        for (what, r) in
                            [("write", d.write(off, &data)), ("poke", d.poke(off, &data))]
                        {
                            if fits {
                                f.that(r.is_ok(), || format!("{what}: {r:?}"));
                            } else {
                                f.errno(what, &r, libc::EINVAL);
                            }
                        }
                        if fits {
                            model[off as usize..off as usize + len].copy_from_slice(&data);
                        }
                        for (what, r) in [
                            ("read", d.read(off, &mut buf)),
                            ("peek", d.peek(off, &mut buf)),
                        ] {
                            if fits {
                                f.that(r.is_ok(), || format!("{what}: {r:?}"));
                            } else {
                                f.errno(what, &r, libc::EINVAL);
                            }
                        }
                        if fits {
                            f.that(buf == data, || "read back other bytes".into());
                        }
                    })
                },
            );
        }
    }
    let n = 64u64;
    for pgoff in [0u64, 1, 3, n - 1, n, u64::MAX] {
        for nr in [0u64, 1, 3, n, i64::MAX as u64, u64::MAX] {
            s.probe(format!("MemDevice direct_access(pgoff {pgoff}, nr_pages {nr}) with sector 24 (page 3) bad, and zero_page_range(pgoff, 1)"), || {
                on_memdev(n * PAGE, |dev, model, f| {
                    dev.driver().poison(3 * PAGE, 512).unwrap();
                    let g = dev.read_lock();
                    let r = g.direct_access(pgoff, nr, DaxAccessMode::Access).map(|d| d.pages());
                    if nr > i64::MAX as u64 {
                        f.errno("negative long", &r, libc::EINVAL);
                    } else if pgoff >= n {
                        f.errno("past the end", &r, libc::ERANGE);
                    } else if nr == 0 {
                        // pmem answers nr_pages (0) when bad blocks exist anywhere, and
                        // dax_direct_access turns 0 into ERANGE.
                        f.errno("0 pages with bad blocks on the device", &r, libc::ERANGE);
                    } else if pgoff <= 3 && pgoff.saturating_add(nr) > 3 {
                        f.errno("over the bad sector", &r, libc::EHWPOISON);
                    } else {
                        f.eq("pages", r.map_err(|e| e.errno()), Ok(nr.min(n - pgoff)));
                    }
                    let r = g.direct_access(pgoff, nr, DaxAccessMode::RecoveryWrite).map(|d| d.pages());
                    if nr <= i64::MAX as u64 && pgoff < n && nr > 0 {
                        f.that(r.as_ref().is_ok_and(|&p| p <= nr.min(n - pgoff)), || format!("recovery mode: {r:?}"));
                    }
                    drop(g);
                    let r = dev.zero_page_range(pgoff, 1);
                    if pgoff >= n {
                        f.errno("zero past the end", &r, libc::ERANGE);
                    } else {
                        f.that(r.is_ok(), || format!("zero_page_range: {r:?}"));
                        model[(pgoff * PAGE) as usize..((pgoff + 1) * PAGE) as usize].fill(0);
                    }
                })
            });
        }
    }
    for (dp, nr) in [
        (0i64, 0u64),
        (0, 1),
        (63, 1),
        (63, u64::MAX),
        (64, 1),
        (-1, 1),
        (i64::MIN, 1),
    ] {
        s.probe(
            format!("memory_failure(device pfn base{dp:+}, nr_pages {nr})"),
            || {
                on_memdev(64 * PAGE, |dev, _m, f| {
                    let base = dev
                        .read_lock()
                        .direct_access(0, 1, DaxAccessMode::Access)
                        .unwrap()
                        .pfn()
                        .0;
                    let pfn = Pfn(base.wrapping_add_signed(dp));
                    let inside = (0..64).contains(&dp);
                    let r = dax_testdev::memory_failure(dev, pfn, nr, MfFlags::empty());
                    if inside {
                        f.errno("no holder", &r, libc::EOPNOTSUPP);
                    } else {
                        f.errno("pfn outside the device", &r, libc::EINVAL);
                    }
                    let rec = Arc::new(Recorder::default());
                    dev.claim_holder(rec.clone()).unwrap();
                    let r = dax_testdev::memory_failure(dev, pfn, nr, MfFlags::empty());
                    if inside {
                        f.that(r.is_ok(), || format!("{r:?}"));
                        f.eq(
                            "holder saw",
                            rec.0.lock().unwrap().clone(),
                            vec![(dp as u64 * PAGE, nr.saturating_mul(PAGE))],
                        );
                    } else {
                        f.errno("pfn outside the device", &r, libc::EINVAL);
                    }
                    for pfn in [Pfn(0), Pfn(u64::MAX)] {
                        let r = dax_testdev::memory_failure(dev, pfn, u64::MAX, MfFlags::empty());
                        f.errno("pfn 0 / u64::MAX", &r, libc::EINVAL);
                    }
                })
            },
        );
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(u64, u64)>>);

impl DaxHolder for Recorder {
    fn notify_failure(&self, offset: u64, len: u64, _flags: MfFlags) -> Result<(), DaxError> {
        self.0.lock().unwrap().push((offset, len));
        Ok(())
    }
}

/// Runs `f` on a fresh memfd device of `size` bytes filled with a pattern and a model
/// of it; afterwards every byte must match the model.
fn on_memdev(
    size: u64,
    f: impl FnOnce(&Arc<DaxDevice<MemDevice>>, &mut Vec<u8>, &mut Fails),
) -> Check {
    let dev = MemDevice::builder().size(size).build().unwrap();
    let image: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(131) >> 3) as u8 ^ 0x5C)
        .collect();
    dev.driver().poke(0, &image).unwrap();
    let mut model = image;
    let mut fails = Fails::default();
    f(&dev, &mut model, &mut fails);
    let mut now = vec![0u8; size as usize];
    dev.driver().peek(0, &mut now).unwrap();
    if let Err(e) = same_bytes("device", &now, &model, 0) {
        fails.0.push(format!("OUT-OF-RANGE WRITE: {e}"));
    }
    fails.done()
}

// ---- TestFs ----

/// A TestFs on an 8 MiB device with file `f` (10000 bytes of 7) and `g` ("ok" + 4094
/// bytes of 3); every free data block holds canary bytes.
struct World {
    dev: Dev,
    fs: TestFs,
    f: Ino,
    g: Ino,
    /// Expected contents of f and g.
    mf: Vec<u8>,
    mg: Vec<u8>,
    /// Sparse content of f beyond `mf` (offset → bytes), for writes far away.
    far: Vec<(u64, Vec<u8>)>,
    size_f: u64,
    free: Vec<u64>,
}

impl World {
    fn new() -> World {
        let (dev, fs) = mem_fs(8 << 20);
        let f = fs.create("f").unwrap();
        let g = fs.create("g").unwrap();
        let mf = vec![7u8; 10000];
        fs.write(f, 0, &mf).unwrap();
        let mut mg = b"ok".to_vec();
        mg.extend(vec![3u8; 4094]);
        fs.write(g, 0, &mg).unwrap();
        fs.fsync(f).unwrap();
        let l = fs.layout();
        let free: Vec<u64> = (l.data_start..l.total_blocks)
            .filter(|&b| fs.block_refcount(b) == 0)
            .collect();
        for &b in &free {
            dev.driver()
                .poke(b * PAGE, &[CANARY; PAGE as usize])
                .unwrap();
        }
        World {
            dev,
            fs,
            f,
            g,
            size_f: mf.len() as u64,
            mf,
            mg,
            far: Vec::new(),
            free,
        }
    }

    /// Checks both files against the model and the canaries of blocks free before and
    /// after.
    /// Recomputes the free blocks and writes canaries into them (after a probe's setup
    /// allocated or freed some).
    fn refresh_free(&mut self) {
        let l = self.fs.layout();
        self.free = (l.data_start..l.total_blocks)
            .filter(|&b| self.fs.block_refcount(b) == 0)
            .collect();
        for &b in &self.free {
            self.dev
                .driver()
                .poke(b * PAGE, &[CANARY; PAGE as usize])
                .unwrap();
        }
    }

    fn check(&self, fails: &mut Fails) {
        let st = self.fs.stat(self.f).map(|s| s.size);
        fails.eq("size of f", st.map_err(|e| e.errno()), Ok(self.size_f));
        let n = (self.mf.len() as u64).min(self.size_f) as usize;
        let mut buf = vec![0u8; n];
        let _ = self.fs.read(self.f, 0, &mut buf);
        let mut want = self.mf[..n].to_vec();
        want.resize(n, 0);
        if let Err(e) = same_bytes("contents of f", &buf, &want, 0) {
            fails.0.push(e);
        }
        for (off, data) in &self.far {
            if *off >= self.size_f {
                continue;
            }
            let mut b = vec![0u8; data.len().min((self.size_f - off) as usize)];
            let r = self.fs.read(self.f, *off, &mut b);
            fails.that(r.is_ok() && b[..] == data[..b.len()], || {
                format!("contents of f at {off}: {r:?} {:?}", &b[..b.len().min(8)])
            });
        }
        let mut buf = vec![0u8; self.mg.len()];
        let _ = self.fs.read(self.g, 0, &mut buf);
        if let Err(e) = same_bytes("contents of g", &buf, &self.mg, 0) {
            fails.0.push(e);
        }
        let mut blk = vec![0u8; PAGE as usize];
        for &b in &self.free {
            if self.fs.block_refcount(b) != 0 {
                continue;
            }
            self.dev.driver().peek(b * PAGE, &mut blk).unwrap();
            if blk.iter().any(|&x| x != CANARY) {
                fails.0.push(format!(
                    "OUT-OF-RANGE WRITE: free device block {b} was written"
                ));
                break;
            }
        }
    }
}

/// Runs `f` on a fresh [`World`], then checks it.
fn world(f: impl FnOnce(&mut World, &mut Fails)) -> Check {
    let mut w = World::new();
    let mut fails = Fails::default();
    f(&mut w, &mut fails);
    w.check(&mut fails);
    fails.done()
}

/// `rw_verify_area`: a negative position, or one whose end is past `LLONG_MAX`.
fn rw_bad(pos: u64, len: u64) -> bool {
    pos > MAX || len > MAX - pos
}

fn sweep_testfs_io(s: &mut Sweep) {
    for &pos in &POS {
        for len in [0u64, 1, 10, 100, PAGE] {
            for handle in [false, true] {
                let api = if handle { "pwrite" } else { "write" };
                s.probe(format!("TestFs::{api}(pos {pos}, {len} bytes)"), || {
                    world(|w, f| {
                        let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x5A).collect();
                        let r = if handle {
                            let i = w.fs.inode(w.f).unwrap();
                            w.fs.pwrite(&i, pos, &data)
                        } else {
                            w.fs.write(w.f, pos, &data)
                        };
                        if pos > MAX || rw_bad(pos, len) {
                            // pwrite64: pos < 0 → EINVAL (even for 0 bytes);
                            // rw_verify_area: pos + count past LLONG_MAX → EINVAL.
                            f.errno("range past LLONG_MAX", &r, libc::EINVAL);
                        } else if len == 0 {
                            f.eq("empty write", r.clone().map_err(|e| e.errno()), Ok(0));
                        } else {
                            f.eq(
                                "written",
                                r.clone().map_err(|e| e.errno()),
                                Ok(len as usize),
                            );
                        }
                        if let Ok(n) = r
                            && n > 0
                        {
                            let end = pos + n as u64;
                            if pos < w.mf.len() as u64 {
                                let e = (end as usize).min(w.mf.len());
                                w.mf[pos as usize..e].copy_from_slice(&data[..e - pos as usize]);
                                if end as usize > w.mf.len() {
                                    w.mf.extend_from_slice(&data[e - pos as usize..n]);
                                }
                            } else {
                                w.far.push((pos, data[..n].to_vec()));
                            }
                            w.size_f = w.size_f.max(end);
                        }
                    })
                });
                let api = if handle { "pread" } else { "read" };
                s.probe(
                    format!("TestFs::{api}(pos {pos}, {len} bytes) of a 10000-byte file"),
                    || {
                        world(|w, f| {
                            let mut buf = vec![0xEEu8; len as usize];
                            let r = if handle {
                                let i = w.fs.inode(w.f).unwrap();
                                w.fs.pread(&i, pos, &mut buf)
                            } else {
                                w.fs.read(w.f, pos, &mut buf)
                            };
                            if pos > MAX || rw_bad(pos, len) {
                                f.errno("range past LLONG_MAX", &r, libc::EINVAL);
                            } else {
                                let n = 10000u64.saturating_sub(pos).min(len);
                                f.eq("read", r.map_err(|e| e.errno()), Ok(n as usize));
                            }
                        })
                    },
                );
            }
        }
    }
    // Data in the last page of the file space, then shrinking within that page.
    for (wpos, tsize) in [
        (MAX - 100, MAX - 50),
        (MAX - 100, MAX - 99),
        (MAX - 100, MAX - PAGE),
        (MAX - 1, MAX - 1),
        (MAX - 1, 0),
    ] {
        s.probe(format!("TestFs: 1 byte... at {wpos} (file size up to {}), then truncate({tsize})", wpos + 90), || {
            world(|w, f| {
                let n = (MAX - wpos).min(90);
                let data = vec![0x42u8; n as usize];
                let r = w.fs.write(w.f, wpos, &data);
                f.eq("write at the top", r.map_err(|e| e.errno()), Ok(n as usize));
                w.refresh_free();
                let r = w.fs.truncate(w.f, tsize);
                f.that(r.is_ok(), || format!("truncate({tsize}) of a file whose last page has data: {r:?} (do_truncate succeeds)"));
                if r.is_ok() {
                    w.size_f = tsize;
                    if tsize < w.mf.len() as u64 {
                        w.mf.truncate(tsize as usize);
                    }
                    if tsize > wpos {
                        w.far.push((wpos, data[..(tsize - wpos) as usize].to_vec()));
                    }
                } else {
                    w.size_f = wpos + n;
                    w.far.push((wpos, data));
                }
            })
        });
    }
    for &size in &POS {
        s.probe(format!("TestFs::truncate({size})"), || {
            world(|w, f| {
                let r = w.fs.truncate(w.f, size);
                if size > MAX {
                    f.errno("negative length (do_sys_truncate)", &r, libc::EINVAL);
                } else {
                    f.that(r.is_ok(), || format!("{r:?}"));
                    w.size_f = size;
                    if size < w.mf.len() as u64 {
                        w.mf.truncate(size as usize);
                    }
                }
            })
        });
    }
    let modes = [
        FallocMode::empty(),
        FallocMode::KEEP_SIZE,
        FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE,
        FallocMode::ZERO_RANGE,
        FallocMode::ZERO_RANGE | FallocMode::KEEP_SIZE,
        FallocMode::UNSHARE_RANGE,
        FallocMode::PUNCH_HOLE,
        FallocMode::from_bits_retain(0x80),
        FallocMode::from_bits_retain(u32::MAX),
    ];
    let lens = [0u64, 1, PAGE, MAX - 1, MAX, MAX + 1, u64::MAX];
    for mode in modes {
        for &pos in &[0u64, 1, 9000, MAX - PAGE, MAX - 1, MAX, MAX + 1, u64::MAX] {
            for &len in &lens {
                s.probe(
                    format!("TestFs::fallocate({mode:?}, pos {pos}, len {len})"),
                    || {
                        world(|w, f| {
                            let r = w.fs.fallocate(w.f, mode, pos, len);
                            let op = mode.bits() & !FallocMode::KEEP_SIZE.bits();
                            let known =
                                [0, 0x02, 0x10, 0x40].contains(&op) && mode.bits() & !0x7b == 0;
                            let valid_combo =
                                known && (op != 0x02 || mode.contains(FallocMode::KEEP_SIZE));
                            if pos > MAX || len == 0 || len > MAX {
                                f.errno("offset < 0 || len <= 0", &r, libc::EINVAL);
                            } else if !valid_combo {
                                f.errno("mode", &r, libc::EOPNOTSUPP);
                            } else if pos + len > MAX {
                                f.errno("offset + len > s_maxbytes", &r, libc::EFBIG);
                            } else {
                                f.that(
                                    r.is_ok()
                                        || r.as_ref().is_err_and(|e| e.errno() == libc::ENOSPC),
                                    || format!("{r:?}"),
                                );
                            }
                            // The model: what the file reads as now.
                            let end = pos.saturating_add(len);
                            if r.is_ok() {
                                if matches!(op, 0x02 | 0x10) {
                                    for i in pos.min(w.mf.len() as u64)..end.min(w.mf.len() as u64)
                                    {
                                        w.mf[i as usize] = 0;
                                    }
                                }
                                if !mode.contains(FallocMode::KEEP_SIZE) {
                                    w.size_f = w.size_f.max(end);
                                }
                            } else {
                                // A failed allocation may keep what it allocated (as Linux's
                                // does) and may have grown nothing.
                                w.size_f = w.fs.stat(w.f).map(|s| s.size).unwrap_or(w.size_f);
                                if matches!(op, 0x02 | 0x10) {
                                    let mut b = vec![0u8; w.mf.len()];
                                    let _ = w.fs.read(w.f, 0, &mut b);
                                    w.mf = b;
                                }
                            }
                        })
                    },
                );
            }
        }
    }
}

fn sweep_testfs_other(s: &mut Sweep) {
    let lens = [0u64, 1, PAGE, MAX - 1, MAX, MAX + 1, u64::MAX];
    for &start in &POS {
        for &len in &lens {
            s.probe(format!("TestFs::fiemap(start {start}, len {len})"), || {
                world(|w, f| {
                    let mut fm = Fiemap {
                        extents_max: 8,
                        ..Fiemap::default()
                    };
                    let r = w.fs.fiemap(w.f, &mut fm, start, len);
                    if len == 0 {
                        f.errno("len 0", &r, libc::EINVAL);
                    } else if start >= MAX {
                        f.errno("start >= s_maxbytes", &r, libc::EFBIG);
                    } else {
                        f.that(r.is_ok(), || format!("{r:?}"));
                    }
                })
            });
        }
    }
    for pos in [i64::MIN, -1, 0, 1, 9999, 10000, i64::MAX - 1, i64::MAX] {
        s.probe(
            format!("TestFs::seek_hole/seek_data({pos}) of a 10000-byte file"),
            || {
                world(|w, f| {
                    let (h, d) = (w.fs.seek_hole(w.f, pos), w.fs.seek_data(w.f, pos));
                    if !(0..10000).contains(&pos) {
                        f.errno("SEEK_HOLE outside", &h, libc::ENXIO);
                        f.errno("SEEK_DATA outside", &d, libc::ENXIO);
                    } else {
                        f.eq("SEEK_HOLE", h.map_err(|e| e.errno()), Ok(10000));
                        f.eq("SEEK_DATA", d.map_err(|e| e.errno()), Ok(pos as u64));
                    }
                })
            },
        );
    }
    let offs = [
        0u64,
        PAGE,
        MAX - PAGE + 1,
        MAX & !(PAGE - 1),
        MAX + 1,
        !(PAGE - 1),
    ];
    let rlens = [0u64, PAGE, 10000, MAX, MAX + 1, !(PAGE - 1), u64::MAX];
    for dedupe in [false, true] {
        for &a in &offs {
            for &b in &offs {
                for &len in &rlens {
                    let api = if dedupe { "dedupe" } else { "reflink" };
                    s.probe(
                        format!("TestFs::{api}(f at {a} → g at {b}, len {len})"),
                        || {
                            world(|w, f| {
                                let r = if dedupe {
                                    w.fs.dedupe(w.f, a, w.g, b, len)
                                } else {
                                    w.fs.reflink(w.f, a, w.g, b, len)
                                };
                                // remap_verify_area: pos < 0, len < 0, pos + len overflowing
                                // loff_t → EINVAL.
                                if a > MAX || b > MAX || len > MAX || a + len > MAX || b + len > MAX
                                {
                                    f.errno("remap_verify_area", &r, libc::EINVAL);
                                }
                                if let Ok(n) = r
                                    && n > 0
                                {
                                    // Reflinked f's bytes into g: the model follows.
                                    let mut g = vec![0u8; (b + n) as usize];
                                    let _ = w.fs.read(w.g, 0, &mut g);
                                    let mut want = w.mg.clone();
                                    want.resize(want.len().max((b + n) as usize), 0);
                                    for i in 0..n {
                                        want[(b + i) as usize] =
                                            w.mf.get((a + i) as usize).copied().unwrap_or(0);
                                    }
                                    w.mg = want;
                                }
                            })
                        },
                    );
                }
            }
        }
    }
    s.probe(
        "TestFs::{block_refcount, inode, stat, extents} at u64::MAX",
        || {
            world(|w, f| {
                for b in [0, 1, u64::MAX - 1, u64::MAX] {
                    let _ = w.fs.block_refcount(b);
                }
                f.errno(
                    "inode",
                    &w.fs.inode(Ino(u64::MAX)).map(|_| ()),
                    libc::ENOENT,
                );
                f.errno("stat", &w.fs.stat(Ino(u64::MAX)), libc::ENOENT);
                f.errno(
                    "read",
                    &w.fs.read(Ino(u64::MAX), 0, &mut [0u8; 1]),
                    libc::ENOENT,
                );
            })
        },
    );
    for cb in [
        Some(0u64),
        Some(1),
        Some(7),
        Some(8),
        Some(1023),
        Some(1024),
        Some(u64::MAX / 2),
        Some(u64::MAX),
        None,
    ] {
        s.probe(
            format!("TestFs::mkfs_with(checkpoint_blocks {cb:?}) on a 2048-block device"),
            || {
                let dev: Arc<DaxDevice> = MemDevice::builder().size(2048 * PAGE).build().unwrap();
                let r = TestFs::mkfs_with(dev, MkfsOptions::new().checkpoint_blocks(cb));
                let mut f = Fails::default();
                match cb {
                    Some(c) if c == 0 || c >= 1024 => {
                        f.errno("too big", &r.map(|_| ()), libc::EINVAL)
                    }
                    _ => f.that(r.is_ok(), || format!("{:?}", r.err())),
                }
                f.done()
            },
        );
    }
}

// ---- mappings ----

fn sweep_testfs_mmap(s: &mut Sweep) {
    // The last four pages a mapping may show (file_mmap_ok: the mapping must end at or
    // before LLONG_MAX, so the page holding byte LLONG_MAX is never mapped).
    let top = (MAX + 1) / PAGE - 5;
    let vstart = top * PAGE;
    for wpos in [vstart, vstart + 3 * PAGE + 4092, vstart + 2 * PAGE - 2] {
        s.probe(format!("TestFs::mmap of file pages {top}.. (the last 4 mappable); data written at {wpos}; load and store there through SimPageTable"), || {
            world(|w, f| {
                let r = w.fs.write(w.f, wpos, b"top!");
                f.eq("write", r.clone().map_err(|e| e.errno()), Ok(4));
                w.refresh_free();
                w.size_f = wpos + 4;
                w.far.push((wpos, b"top!".to_vec()));
                let pt = Arc::new(SimPageTable::new());
                let base = 0x4000_0000u64;
                let at = base + (wpos - vstart);
                let vma = w.fs.mmap(w.f, Vma::new(base, 4 * PAGE, top).unwrap().writable(true), pt.clone()).unwrap();
                let mut b = [0u8; 4];
                let r = pt.read(&vma, at, &mut b);
                f.that(r.is_ok() && &b == b"top!", || format!("load of file byte {wpos} through the mapping: {r:?} {b:?}"));
                let r = pt.write(&vma, at, b"TOP!");
                f.that(r.is_ok(), || format!("store through the mapping: {r:?}"));
                if r.is_ok() {
                    w.far.pop();
                    w.far.push((wpos, b"TOP!".to_vec()));
                }
                drop(vma);
            })
        });
    }
    let pgoffs = [0u64, MAX / PAGE, MAX / PAGE + 1, u64::MAX / PAGE, u64::MAX];
    let lens = [
        0u64,
        1,
        PAGE - 1,
        PAGE,
        2 << 20,
        64 << 40,
        !(PAGE - 1),
        u64::MAX,
    ];
    for &pgoff in &pgoffs {
        for &len in &lens {
            s.probe(
                format!("TestFs::mmap_real(pgoff {pgoff}, len {len})"),
                || {
                    world(|w, f| {
                        let r = w.fs.mmap_real(w.f, pgoff, len, MapOptions::default());
                        // file_mmap_ok: the mapping must end at or before LLONG_MAX.
                        let over = len
                            .checked_next_multiple_of(PAGE)
                            .and_then(|l| pgoff.checked_mul(PAGE)?.checked_add(l))
                            .is_none_or(|e| e > MAX);
                        if len == 0 {
                            f.errno("len 0", &r.map(|_| ()), libc::EINVAL);
                        } else if len > u64::MAX - PAGE + 1 {
                            // PAGE_ALIGN(len) == 0.
                            f.errno("PAGE_ALIGN(len) wraps", &r.map(|_| ()), libc::ENOMEM);
                        } else if pgoff.checked_add(len.div_ceil(PAGE)).is_none() {
                            f.errno(
                                "pgoff + pages overflows (do_mmap)",
                                &r.map(|_| ()),
                                libc::EOVERFLOW,
                            );
                        } else if len > 1 << 47 {
                            f.errno("no address space", &r.map(|_| ()), libc::ENOMEM);
                        } else if over {
                            f.errno(
                                "past the largest file offset (file_mmap_ok)",
                                &r.map(|_| ()),
                                libc::EOVERFLOW,
                            );
                        } else {
                            match r {
                                Ok(m) => f.eq(
                                    "mapping length (PAGE_ALIGN(len))",
                                    m.len() as u64,
                                    len.next_multiple_of(PAGE),
                                ),
                                Err(e) => f.0.push(format!(
                                    "got {e:?}, kernel maps {} bytes",
                                    len.next_multiple_of(PAGE)
                                )),
                            }
                        }
                    })
                },
            );
        }
    }
    // Two pages: all inside the 10000-byte file.
    let ml = 2 * PAGE as usize;
    let offs = [
        0usize,
        1,
        PAGE as usize,
        ml - 1,
        ml,
        ml + 1,
        usize::MAX - 1,
        usize::MAX,
    ];
    let lens = [0usize, 1, PAGE as usize, ml, ml + 1, usize::MAX];
    for &off in &offs {
        for &len in &lens {
            s.probe(format!("MmuMapping::{{populate, load, store, munmap, madvise_dontneed, msync}}(offset {off}, len {len}) of a 4-page mapping"), || {
                world(|w, f| {
                    let m = w.fs.mmap_real(w.f, 0, ml as u64, MapOptions::new().writable(true)).unwrap();
                    let fits = off.checked_add(len).is_some_and(|e| e <= ml);
                    let r = m.populate(off, len, false);
                    f.that(r.is_ok() == fits, || format!("populate: {r:?}"));
                    if len <= ml + 1 {
                        let mut buf = vec![0u8; len];
                        let r = m.load(off, &mut buf);
                        f.that(r.is_ok() == fits, || format!("load: {r:?}"));
                        if fits {
                            let want: Vec<u8> = (off..off + len).map(|i| w.mf.get(i).copied().unwrap_or(0)).collect();
                            f.that(buf == want, || "load read other bytes".into());
                        }
                        let data = vec![0x99u8; len];
                        let r = m.store(off, &data);
                        f.that(r.is_ok() == fits, || format!("store: {r:?}"));
                        if fits && r.is_ok() {
                            let end = (off + len).min(w.size_f as usize);
                            for i in off..end {
                                if i < w.mf.len() {
                                    w.mf[i] = 0x99;
                                }
                            }
                        }
                    }
                    let r = m.msync(off, len);
                    if !fits {
                        // msync: a range outside the mapping is ENOMEM in the kernel.
                        f.that(r.is_err(), || "msync outside the mapping".into());
                    }
                    // As the kernel's munmap and madvise: the start must be page
                    // aligned, the length is rounded up to whole pages, and a zero
                    // length is EINVAL for munmap and nothing for madvise.
                    let aligned = off.is_multiple_of(PAGE as usize);
                    let rounded = len.checked_next_multiple_of(PAGE as usize);
                    let fits_r = rounded.and_then(|l| off.checked_add(l)).is_some_and(|e| e <= ml);
                    let r = m.madvise_dontneed(off, len);
                    f.that(r.is_ok() == (fits_r && aligned), || format!("madvise_dontneed: {r:?}"));
                    let r = m.munmap(off, len);
                    f.that(r.is_ok() == (fits_r && aligned && len > 0), || format!("munmap: {r:?}"));
                    drop(m);
                })
            });
        }
    }
    for new_len in [
        0usize,
        1,
        PAGE as usize,
        ml,
        ml + PAGE as usize,
        usize::MAX & !4095,
        usize::MAX,
    ] {
        s.probe(
            format!("MmuMapping::mremap({new_len}) of a 4-page mapping"),
            || {
                world(|w, f| {
                    let m =
                        w.fs.mmap_real(w.f, 0, ml as u64, MapOptions::default())
                            .unwrap();
                    let r = m.mremap(new_len);
                    match new_len {
                        0 => f.errno("0", &r, libc::EINVAL),
                        n if n > ml && n.is_multiple_of(PAGE as usize) => {
                            f.errno("grow", &r, libc::EOPNOTSUPP)
                        }
                        n if !n.is_multiple_of(PAGE as usize) && n < ml => {
                            f.that(r.is_ok() || r.is_err(), String::new)
                        }
                        _ => {}
                    }
                    drop(m);
                })
            },
        );
    }
}

sweep!(
    /// `MemDevice`: builder, byte-range methods, direct access around bad blocks,
    /// `memory_failure`.
    sweep_testdev_memdev,
    child_sweep_testdev_memdev,
    sweep_memdev
);
sweep!(
    /// TestFs reads, writes, truncate and fallocate at the edges, against a model.
    sweep_testdev_testfs_io,
    child_sweep_testdev_testfs_io,
    sweep_testfs_io
);
sweep!(
    /// TestFs fiemap, seek, reflink, dedupe, mkfs options and lookups.
    sweep_testdev_testfs_other,
    child_sweep_testdev_testfs_other,
    sweep_testfs_other
);
sweep!(
    /// TestFs mappings: simulated at the top of the file space, and real ones
    /// (`MmuMapping`) with every offset and length edge.
    sweep_testdev_testfs_mmap,
    child_sweep_testdev_testfs_mmap,
    sweep_testfs_mmap
);
