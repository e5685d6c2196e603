//! Steps 4-8, on the main device's filesystem: read/write, simulated and real mappings, throughput, durability.

use super::*;

/// The names the tour's files get.
pub(crate) fn demo(name: &str) -> String {
    format!("{DEMO_PREFIX}{name}")
}

/// Step 4: TestFs: holes, unwritten extents, reflink with copy-on-write, poison.
pub(crate) fn filesystem(r: &mut Report<'_>, m: &Main) -> Result<String, TourError> {
    let fs = &m.fs;
    let a = fs.create(&demo("a")).ctx("creating demo-a")?;
    fs.write(a, 0, &[b'A'; 3 * 4096]).ctx("writing demo-a")?;
    fs.write(a, 5 * K + 100, b"after a hole")
        .ctx("writing demo-a")?;
    let st = fs.stat(a).ctx("stat of demo-a")?;
    r.line(
        "demo-a",
        format!(
            "12 KiB at 0, then 12 bytes at 20580: size {} bytes, {} blocks of 4 KiB",
            st.size, st.blocks
        ),
    )?;
    let mut buf = [0xFFu8; 8];
    fs.read(a, 4 * K, &mut buf).ctx("reading demo-a")?;
    r.line(
        "the hole",
        format!(
            "at 16384..20480 is not allocated; 8 bytes read there are {}",
            if buf == [0; 8] {
                "all zero"
            } else {
                "NOT zero"
            }
        ),
    )?;
    if buf != [0; 8] {
        r.failed("a hole read as non-zero bytes".to_owned())?;
    }
    fs.fallocate(a, FallocMode::KEEP_SIZE, 8 * K, 2 * K)
        .ctx("fallocate on demo-a")?;
    r.line(
        "preallocated",
        "8 KiB at 32768, past the end (fallocate, KEEP_SIZE)",
    )?;
    let mut fm = Fiemap {
        extents_max: 8,
        ..Fiemap::default()
    };
    fs.fiemap(a, &mut fm, 0, u64::MAX >> 2)
        .ctx("fiemap of demo-a")?;
    let mut lines = Vec::new();
    for e in &fm.extents {
        let mut kind = vec![if e.flags.contains(FiemapExtentFlags::UNWRITTEN) {
            "unwritten (allocated, reads as zeros)"
        } else {
            "written"
        }];
        if e.flags.contains(FiemapExtentFlags::SHARED) {
            kind.push("shared");
        }
        if e.flags.contains(FiemapExtentFlags::LAST) {
            kind.push("last");
        }
        lines.push(format!(
            "file {:>5}..{:<5} -> device {:#9x}  {:>6}  {}",
            e.logical,
            e.logical + e.length,
            e.physical,
            size_text(e.length),
            kind.join(", ")
        ));
    }
    r.line("extents", lines.join("\n"))?;

    let b = fs.create(&demo("b")).ctx("creating demo-b")?;
    fs.reflink(a, 0, b, 0, 3 * K)
        .ctx("reflink demo-a -> demo-b")?;
    let shared = |ino: Ino| -> Result<u64, TourError> {
        Ok(fs
            .extents(ino)
            .ctx("extents")?
            .iter()
            .filter(|e| e.shared)
            .map(|e| e.len)
            .sum())
    };
    r.line(
        "reflink",
        format!(
            "demo-a's first 12 KiB into demo-b: {} blocks shared, no data copied",
            shared(b)?
        ),
    )?;
    fs.write(b, K + 10, b"copy-on-write")
        .ctx("writing demo-b")?;
    let (mut from_a, mut from_b) = ([0u8; 13], [0u8; 13]);
    fs.read(a, K + 10, &mut from_a).ctx("reading demo-a")?;
    fs.read(b, K + 10, &mut from_b).ctx("reading demo-b")?;
    r.line(
        "copy-on-write",
        format!(
            "13 bytes written into demo-b's block 1 gave it its own copy ({} blocks still shared)\n\
             demo-a reads {}, demo-b reads {}",
            shared(b)?,
            quoted(&from_a),
            quoted(&from_b)
        ),
    )?;
    if &from_a != b"AAAAAAAAAAAAA" || &from_b != b"copy-on-write" {
        r.failed("copy-on-write changed the wrong file".to_owned())?;
    }

    // Poison under a file: a read fails with EIO; a page-aligned overwrite recovers.
    let c = fs.create(&demo("c")).ctx("creating demo-c")?;
    fs.write(c, 0, &[b'C'; 4096]).ctx("writing demo-c")?;
    let Some(blk) = fs
        .extents(c)
        .ctx("extents of demo-c")?
        .first()
        .map(|e| e.dev_block)
    else {
        return Err(TourError("demo-c has no block after a write".to_owned()));
    };
    m.dev
        .driver()
        .poison(blk * K + 512, 512)
        .ctx("injecting poison")?;
    r.line(
        "poison",
        format!("512 bytes under demo-c's only block (device block {blk})"),
    )?;
    let mut seen = "no error";
    match fs.read(c, 100, &mut buf) {
        Err(e) => {
            r.line("read", format!("of demo-c failed: {}", errno_text(&e)))?;
            seen = e.errno_name().unwrap_or("an error");
        }
        Ok(_) => r.failed("a read over poison succeeded".to_owned())?,
    }
    fs.write(c, 0, &[b'R'; 4096]).ctx("rewriting demo-c")?;
    fs.read(c, 100, &mut buf)
        .ctx("reading demo-c after the rewrite")?;
    let cleared = m.dev.driver().badblocks().is_empty();
    r.line(
        "rewrite",
        format!(
            "a 4 KiB write at 0: rewrote 4 KiB, {}; demo-c reads {}",
            if cleared {
                "poison cleared"
            } else {
                "poison still there"
            },
            quoted(&buf)
        ),
    )?;
    if !cleared {
        r.failed("a page-aligned write over poison left it".to_owned())?;
    }
    fs.fsync(a).ctx("fsync of demo-a")?;
    Ok(format!(
        "hole, unwritten extent, copy-on-write; poison read {seen}, then rewritten"
    ))
}

/// What a slot of the simulated page table holds, in words.
pub(crate) fn slot_text(pt: &SimPageTable, addr: u64) -> String {
    let rw = |writable: bool, dirty: bool| match (writable, dirty) {
        (true, true) => "writable, dirty",
        (true, false) => "writable, clean",
        (false, true) => "read-only, dirty",
        (false, false) => "read-only, clean",
    };
    match pt.pmd(addr) {
        PmdSlot::Huge {
            pfn,
            writable,
            dirty,
        } => format!("2 MiB mapping of pfn {:#x}, {}", pfn.0, rw(writable, dirty)),
        PmdSlot::HugeZero => "the huge zero page (2 MiB, read-only)".to_owned(),
        _ => match pt.pte(addr) {
            Some(Pte::Page {
                pfn,
                writable,
                dirty,
            }) => format!("4 KiB mapping of pfn {:#x}, {}", pfn.0, rw(writable, dirty)),
            Some(Pte::Zero) => "the shared zero page (4 KiB, read-only)".to_owned(),
            Some(Pte::Private { .. }) => "a private copy (4 KiB)".to_owned(),
            None => "nothing mapped".to_owned(),
        },
    }
}

/// Step 5: files mapped through `dax_iomap_fault` into a `SimPageTable`.
pub(crate) fn mappings(r: &mut Report<'_>, m: &Main) -> Result<String, TourError> {
    const BASE: u64 = 0x7000_0000_0000;
    let (fs, dev) = (&m.fs, &m.dev);
    let pt = Arc::new(SimPageTable::new());

    // A small file with a hole: the hole maps the zero page until a store.
    let f = fs.create(&demo("small")).ctx("creating demo-small")?;
    fs.write(f, 0, b"hello, mapping")
        .ctx("writing demo-small")?;
    fs.truncate(f, 4 * K).ctx("truncate")?;
    fs.fallocate(f, FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE, K, K)
        .ctx("punching a hole")?;
    r.line(
        "demo-small",
        "16 KiB, with a hole punched at page 1; mapped at 0x700000000000",
    )?;
    let vma = fs
        .mmap(
            f,
            Vma::new(BASE, 4 * K, 0).ctx("vma")?.writable(true),
            pt.clone(),
        )
        .ctx("mmap of demo-small")?;
    let mut buf = [0u8; 14];
    pt.read(&vma, BASE, &mut buf).ctx("load from page 0")?;
    r.line(
        "load page 0",
        format!("reads {}: {}", quoted(&buf), slot_text(&pt, BASE)),
    )?;
    pt.write(&vma, BASE, b"HELLO").ctx("store to page 0")?;
    r.line(
        "store page 0",
        format!("made writable in place (mkwrite): {}", slot_text(&pt, BASE)),
    )?;
    pt.read(&vma, BASE + K, &mut buf)
        .ctx("load from the hole")?;
    r.line(
        "load page 1",
        format!("a hole: {}", slot_text(&pt, BASE + K)),
    )?;
    pt.write(&vma, BASE + K, b"filled")
        .ctx("store into the hole")?;
    r.line(
        "store page 1",
        format!(
            "allocated a block: {}; the file has {} blocks now",
            slot_text(&pt, BASE + K),
            fs.stat(f).ctx("stat")?.blocks
        ),
    )?;
    let entries: Vec<String> = vma
        .mapping()
        .index()
        .entries()
        .iter()
        .map(|e| {
            format!(
                "page {}: {} entry{}",
                e.start,
                size_text(K << e.entry.order),
                if e.marks.contains(dax_fault::index::Marks::DIRTY) {
                    ", dirty"
                } else {
                    ", clean"
                }
            )
        })
        .collect();
    r.line("index", entries.join("; "))?;
    fs.fsync(f).ctx("fsync of demo-small")?;
    let clean = vma
        .mapping()
        .index()
        .entries()
        .iter()
        .all(|e| !e.marks.contains(dax_fault::index::Marks::DIRTY));
    r.line(
        "fsync",
        format!(
            "wrote the dirty pages back: {}; entries {}",
            slot_text(&pt, BASE),
            if clean { "clean" } else { "still dirty" }
        ),
    )?;

    // A 2 MiB-aligned file: one PMD fault maps all of it.
    let big = fs.create(&demo("big")).ctx("creating demo-big")?;
    fs.write(big, 0, &vec![b'B'; 2 << 20])
        .ctx("writing demo-big")?;
    let big_at = BASE + (4 << 20);
    let vb = fs
        .mmap(big, Vma::new(big_at, 2 << 20, 0).ctx("vma")?, pt.clone())
        .ctx("mmap of demo-big")?;
    pt.read(&vb, big_at + 12345, &mut buf[..1])
        .ctx("load from demo-big")?;
    r.line(
        "demo-big",
        format!(
            "2 MiB; one load: {} ({} pages in the index)",
            slot_text(&pt, big_at),
            vb.mapping().index().nrpages()
        ),
    )?;

    // Memory failure: poison under a mapped page, reported by the device.
    let Some(SimTarget::Device { pfn, pgoff, .. }) = pt.resolve(BASE) else {
        return Err(TourError("page 0 of demo-small is not mapped".to_owned()));
    };
    dev.driver().poison(pgoff * K, K).ctx("injecting poison")?;
    dax_testdev::memory_failure(dev, pfn, 1, dax_device::MfFlags::empty()).ctx("memory failure")?;
    let signals: Vec<String> = vma
        .take_signals()
        .iter()
        .map(|a| format!("{a:#x}"))
        .collect();
    r.line(
        "memory failure",
        format!(
            "at pfn {:#x} (demo-small page 0): SIGBUS queued for address {}\n\
             the page is unmapped: {}",
            pfn.0,
            if signals.is_empty() {
                "none".to_owned()
            } else {
                signals.join(", ")
            },
            slot_text(&pt, BASE)
        ),
    )?;
    match pt.read(&vma, BASE, &mut buf) {
        Err(f) => r.line("next load", fault_text(f))?,
        Ok(()) => r.failed("a load from a poisoned page succeeded".to_owned())?,
    }
    let mut page = [0u8; PAGE_SIZE];
    page[..9].copy_from_slice(b"recovered");
    fs.write(f, 0, &page).ctx("rewriting demo-small page 0")?;
    let cleared = !dev.driver().is_poisoned(pgoff * K, K);
    pt.read(&vma, BASE, &mut buf[..9])
        .ctx("load after the rewrite")?;
    r.line(
        "rewrite",
        format!(
            "page 0 with write(2): rewrote 4 KiB, {}; a load reads {}",
            if cleared {
                "poison cleared"
            } else {
                "poison still there"
            },
            quoted(&buf[..9])
        ),
    )?;
    if !cleared {
        r.failed("rewriting a poisoned page left the poison".to_owned())?;
    }
    let (sa, sb) = (vma.mapping().stats(), vb.mapping().stats());
    let (pte, pmd, fb) = (
        sa.pte_faults() + sb.pte_faults(),
        sa.pmd_faults() + sb.pmd_faults(),
        sa.fallbacks() + sb.fallbacks(),
    );
    r.line(
        "faults",
        format!(
            "{}; {} allocated storage\n(fault calls: a 2 MiB fault that cannot map 2 MiB falls back to 4 KiB)",
            faults_text(pte, pmd, fb),
            sa.major() + sb.major()
        ),
    )?;
    r.figure("faults, simulated", faults_text(pte, pmd, fb));
    r.sim_faults = (pte, pmd, fb);
    Ok(format!(
        "{pte} x 4 KiB and {pmd} x 2 MiB faults, zero page, mkwrite, writeback, memory failure"
    ))
}

/// The kernel's page size behind `addr .. addr + len`, from /proc/self/smaps: 2 MiB
/// where it maps shmem or file memory with PMDs, else the VMAs' KernelPageSize.
/// Returns the page size and how much of the range is mapped with 2 MiB pages.
pub(crate) fn kernel_page_text(addr: usize, len: usize) -> Option<(String, String)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    let (mut kps, mut pmd_kb) = (None, 0u64);
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            inside = lo < addr.saturating_add(len) && addr < hi;
            continue;
        }
        if !inside {
            continue;
        }
        let kb = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        };
        match first {
            "KernelPageSize:" => kps = kps.max(kb()),
            "ShmemPmdMapped:" | "FilePmdMapped:" => pmd_kb += kb().unwrap_or(0),
            _ => {}
        }
    }
    let kps = kps?;
    Some(if pmd_kb > 0 {
        ("2 MiB pages".to_owned(), size_text(pmd_kb * 1024))
    } else {
        (
            format!("{} pages", size_text(kps * 1024)),
            "none".to_owned(),
        )
    })
}

/// Step 6: the same engine behind a real mapping of this process (`dax_fault::mmu`).
pub(crate) fn real_mapping(r: &mut Report<'_>, m: &Main) -> Result<String, TourError> {
    let fs = &m.fs;
    let real = fs.create(&demo("real")).ctx("creating demo-real")?;
    fs.write(real, 0, &vec![b'r'; 4 << 20])
        .ctx("writing demo-real")?;
    let map = fs
        .mmap_real(real, 0, 4 << 20, MapOptions::new().writable(true))
        .ctx("mmap of demo-real")?;
    r.line(
        "demo-real",
        format!("4 MiB, mapped at {:p}, shared and writable", map.as_ptr()),
    )?;
    let mut one = [0u8; 1];
    map.load(3 << 20, &mut one).ctx("load at 3 MiB")?;
    r.line("load at 3 MiB", format!("reads {}", quoted(&one)))?;
    let msg = b"stored through the pointer";
    map.store(12345, msg).ctx("store at 12345")?;
    let mut back = [0u8; 26];
    fs.read(real, 12345, &mut back)
        .ctx("read(2) of demo-real")?;
    r.line(
        "store at 12345",
        format!(
            "{} bytes; read(2) of the file then sees {}",
            msg.len(),
            quoted(&back)
        ),
    )?;
    if &back != msg {
        r.failed("read(2) does not see a store made through the mapping".to_owned())?;
    }
    let MmuStats {
        pte,
        pmd,
        fallback,
        mkwrite,
        write_tracking,
        ..
    } = map.stats();
    r.line(
        "faults",
        format!(
            "{}; {mkwrite} later stores made a read-only mapping writable",
            faults_text(pte, pmd, fallback)
        ),
    )?;
    r.line(
        "write tracking",
        if write_tracking {
            "userfaultfd write-protect (no kernel VMA per written page)"
        } else {
            "mprotect"
        },
    )?;
    let kernel = match kernel_page_text(map.as_ptr() as usize, map.len()) {
        Some((pages, huge)) => {
            r.line(
                "kernel pages",
                format!(
                    "{pages} behind the mapping ({huge} of it in 2 MiB pages, by /proc/self/smaps)"
                ),
            )?;
            pages
        }
        None => {
            r.line("kernel pages", "unknown (no /proc/self/smaps)")?;
            "pages of unknown size".to_owned()
        }
    };
    r.figure("faults, real mapping", faults_text(pte, pmd, fallback));
    let (spte, spmd, sfb) = r.sim_faults;
    let sizes = |pte: u64, pmd: u64| match (pte > 0, pmd > 0) {
        (true, true) => "4 KiB and 2 MiB",
        (false, true) => "2 MiB",
        (true, false) => "4 KiB",
        (false, false) => "none",
    };
    r.figure(
        "page sizes used",
        format!(
            "simulated: {}; real mapping: {} per fault, {kernel} underneath",
            sizes(spte, spmd.saturating_sub(sfb)),
            sizes(pte, pmd)
        ),
    );
    Ok("a store through the pointer is seen by read(2)".to_owned())
}

/// Step 7: read and write throughput through `dax_iomap_rw` on one file.
pub(crate) fn throughput(r: &mut Report<'_>, m: &Main) -> Result<String, TourError> {
    const CHUNK: u64 = MIB;
    let fs = &m.fs;
    let size = (m.dev.driver().size() / 4).clamp(MIB, 64 * MIB) / MIB * MIB;
    let ino = fs
        .create(&demo("throughput"))
        .ctx("creating demo-throughput")?;
    let mut buf = vec![0x5au8; CHUNK as usize];
    // One pass of 1 MiB calls over the file; `write` or read.
    let mut pass = |r: &Report<'_>, what: &str, write: bool| -> Result<Duration, TourError> {
        let t = Instant::now();
        let mut pos = 0;
        while pos < size {
            if write {
                fs.write(ino, pos, &buf).ctx(format!("{what} at {pos}"))?;
            } else {
                fs.read(ino, pos, &mut buf)
                    .ctx(format!("{what} at {pos}"))?;
            }
            pos += CHUNK;
            r.progress(what, pos, size);
        }
        Ok(t.elapsed())
    };
    let first = pass(r, "first write", true)?;
    // Then as many passes as fit in about 0.3 s each way, at least one.
    let mut timed = |what: &str, write: bool| -> Result<(u64, Duration), TourError> {
        let (mut n, mut total) = (0, Duration::ZERO);
        while n == 0 || (total < Duration::from_millis(300) && n < 32) {
            total += pass(r, what, write)?;
            n += 1;
        }
        Ok((n, total))
    };
    let (wn, wt) = timed("write", true)?;
    let (rn, rt) = timed("read", false)?;
    r.progress_end();
    let passes = |n: u64| {
        if n == 1 {
            "1 pass".to_owned()
        } else {
            format!("{n} passes")
        }
    };
    r.line(
        "file",
        format!("demo-throughput, {}, in 1 MiB calls", size_text(size)),
    )?;
    r.line(
        "first write",
        format!(
            "{} (allocates blocks; first touch of the memory)",
            gib_per_s(size, first)
        ),
    )?;
    let (w, rd) = (gib_per_s(size * wn, wt), gib_per_s(size * rn, rt));
    r.line("overwrite", format!("{w} ({})", passes(wn)))?;
    r.line("read", format!("{rd} ({})", passes(rn)))?;
    r.figure(
        "write throughput",
        format!(
            "{w}, {} file in 1 MiB writes (first write {})",
            size_text(size),
            gib_per_s(size, first)
        ),
    );
    r.figure(
        "read throughput",
        format!("{rd}, {} file in 1 MiB reads", size_text(size)),
    );
    Ok(format!("write {w}, read {rd} over {}", size_text(size)))
}

/// `found tour-marker written by run 1 at ..., 1 MiB, checksum ok`.
pub(crate) fn marker_text(mk: &Marker) -> String {
    format!(
        "{MARKER} written by run {} at {}, {}, checksum {}",
        mk.run,
        utc_text(mk.written),
        size_text(mk.len),
        if mk.intact { "ok" } else { "MISMATCH" }
    )
}

/// Step 8: the demo files go, a marker is written and made durable, and found again
/// after a remount (memory) or by the next run (image).
pub(crate) fn durability(r: &mut Report<'_>, m: Main) -> Result<String, TourError> {
    let Main { dev, fs, found } = m;
    let demos: Vec<String> = fs
        .list()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with(DEMO_PREFIX))
        .collect();
    for name in &demos {
        fs.unlink(name).ctx(format!("removing {name}"))?;
    }
    r.line(
        "cleaned up",
        format!("removed the {} demo files", demos.len()),
    )?;
    let image = dev.driver().path().map(Path::to_path_buf);
    let mut outcome = String::new();
    let run = match found {
        None => 1,
        Some(Ok(None)) => {
            r.line("earlier run", format!("none: no {MARKER} on this image"))?;
            1
        }
        Some(Ok(Some(mk))) => {
            r.line("earlier run", format!("found {}", marker_text(&mk)))?;
            outcome = format!(
                "found run {}'s marker, checksum {}; ",
                mk.run,
                if mk.intact { "ok" } else { "MISMATCH" }
            );
            if !mk.intact {
                r.failed(format!("{MARKER} of run {} did not survive intact", mk.run))?;
            }
            mk.run + 1
        }
        Some(Err(e)) => {
            r.failed(format!("{e}; writing a new one"))?;
            1
        }
    };
    let mk = write_marker(&fs, run)?;
    r.line(
        "wrote",
        format!(
            "{MARKER} for run {run}: {}, checksum {:016x}; fsync made it durable",
            size_text(mk.len),
            mk.checksum
        ),
    )?;
    fs.unmount().ctx("unmount")?;
    match image {
        Some(path) => {
            r.line(
                "unmounted",
                format!(
                    "run the tour again with --image {} to find it",
                    path.display()
                ),
            )?;
            outcome.push_str(&format!("left run {run}'s marker on the image"));
        }
        None => {
            let fs = TestFs::open(dev.clone()).ctx("mounting again")?;
            let again = read_marker(&fs)?;
            match &again {
                Some(got) if got.intact && got.run == run && got.checksum == mk.checksum => {
                    r.line("remounted", format!("found {}", marker_text(got)))?;
                }
                Some(got) => r.failed(format!("after a remount: {}", marker_text(got)))?,
                None => r.failed(format!("after a remount {MARKER} is gone"))?,
            }
            r.line(
                "",
                "memory is gone when the tour ends: with --image PATH it survives the run",
            )?;
            fs.unmount().ctx("unmount")?;
            outcome.push_str("marker found again after unmount and mount");
        }
    }
    Ok(outcome)
}
