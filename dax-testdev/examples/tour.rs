//! A tour of dax-rs, growing with each capability. Run it with
//! `cargo run --release -p dax-testdev --example tour`.
//!
//! Today: a device, direct access, poison and its recovery, a filesystem doing
//! read/write through `dax_iomap_rw` (holes, copy-on-write, poison), files mapped
//! through the fault engine into a simulated address space (PTE and PMD faults, the
//! zero page, mkwrite, writeback, MAP_SYNC, memory failure), and the device's death.

use dax_device::{DaxAccessMode, DaxError, PAGE_SIZE};
use dax_iomap::Fiemap;
use dax_testdev::{Backing, DevOp, FallocMode, MemDevice, TestFs};

fn main() -> Result<(), DaxError> {
    println!("== dax-rs tour ==\n");

    // 1. A device: 8 MiB of memfd-backed memory behaving like a pmem namespace.
    let dev = MemDevice::builder()
        .size(8 << 20)
        .backing(Backing::Memfd)
        .build()?;
    println!(
        "device: {} MiB, {:?} backing, flags {:?}",
        dev.driver().size() >> 20,
        dev.driver().backing(),
        dev.flags()
    );

    // 2. Direct access: translate device pages into addresses and copy through them.
    {
        let section = dev.read_lock();
        let da = section.direct_access(16, 4, DaxAccessMode::Access)?;
        println!(
            "direct_access(pgoff 16, 4 pages) -> {} pages at {:p}, pfn {:#x}",
            da.pages(),
            da.as_ptr(),
            da.pfn().0
        );
        let n = da.copy_from(0, b"hello, direct access");
        let mut back = [0u8; 20];
        da.copy_to(0, &mut back);
        println!(
            "wrote {n} bytes with a cache-bypassing copy, read back {:?}",
            String::from_utf8_lossy(&back)
        );
    }

    // 3. Poison: the platform reports a bad sector in page 18.
    let bad = 18 * PAGE_SIZE as u64 + 1024;
    dev.driver().poison(bad, 512)?;
    println!("\ninjected poison at device byte {bad}; badblocks now:");
    print!("{}", indent(&dev.driver().badblocks().show(false)));
    {
        let section = dev.read_lock();
        match section.direct_access(16, 4, DaxAccessMode::Access) {
            Err(e) => println!("direct_access over it: {e} (errno {})", e.errno()),
            Ok(_) => println!("direct_access over it unexpectedly succeeded"),
        }
        let rec = section.direct_access(16, 4, DaxAccessMode::RecoveryWrite)?;
        println!(
            "in recovery-write mode it answers {} pages (up to and including the bad one)",
            rec.pages()
        );
        let mut buf = vec![0u8; PAGE_SIZE];
        let n = rec.copy_to(2 * PAGE_SIZE, &mut buf);
        println!("a machine-check-safe read of page 18 stops after {n} bytes");
        let mut block = vec![0u8; 512];
        let e = dev.driver().read(bad, &mut block).unwrap_err();
        println!("a block read of the bad sector: {e}");
        // An unaligned recovery write cannot clear poison: nothing is written.
        println!(
            "recovery_write of 100 bytes inside the bad page -> {} bytes",
            rec.recovery_write(2 * PAGE_SIZE + 100, &[1; 100])
        );
    }

    // 4. Recovery: zeroing the page through the driver clears the poison.
    dev.zero_page_range(18, 1)?;
    println!(
        "\nzero_page_range(18) asked the firmware to clear {} time(s); badblocks empty: {}",
        dev.driver().calls(DevOp::ClearPoison),
        dev.driver().badblocks().is_empty()
    );
    let section = dev.read_lock();
    let da = section.direct_access(16, 4, DaxAccessMode::Access)?;
    println!(
        "direct_access over the page works again: {} pages",
        da.pages()
    );
    drop(section);

    // 5. A filesystem: TestFs on a second device, read/write through dax_iomap_rw.
    filesystem()?;

    // 6. Mappings: the fault engine maps TestFs files into a simulated address space.
    mappings()?;

    // 7. Death: kill waits for readers, then everything answers ENXIO.
    dev.kill();
    let e = dev
        .read_lock()
        .direct_access(0, 1, DaxAccessMode::Access)
        .unwrap_err();
    println!("\nafter kill: direct_access -> {e} (errno {})", e.errno());
    println!("\ntour done");
    Ok(())
}

/// TestFs: files, holes, unwritten extents, reflink with copy-on-write, poison.
fn filesystem() -> Result<(), DaxError> {
    const K: u64 = 4096;
    println!("\n-- TestFs on a 16 MiB device --");
    let dev = MemDevice::builder().size(16 << 20).build()?;
    let fs = TestFs::mkfs(dev.clone())?;
    let a = fs.create("a")?;
    fs.write(a, 0, &[b'A'; 3 * 4096])?;
    fs.write(a, 5 * K + 100, b"after a hole")?;
    let mut buf = [0xFFu8; 8];
    fs.read(a, 4 * K, &mut buf)?;
    println!(
        "wrote 12 KiB, then 12 bytes at 20580: size {} bytes; the hole reads {:?}",
        fs.stat(a)?.size,
        buf
    );
    fs.fallocate(a, FallocMode::KEEP_SIZE, 8 * K, 2 * K)?;
    let mut fm = Fiemap {
        extents_max: 8,
        ..Fiemap::default()
    };
    fs.fiemap(a, &mut fm, 0, u64::MAX >> 2)?;
    for e in &fm.extents {
        println!(
            "  extent: file {:>6}..{:<6} -> device {:#8x}  {:?}",
            e.logical,
            e.logical + e.length,
            e.physical,
            e.flags
        );
    }
    let b = fs.create("b")?;
    fs.reflink(a, 0, b, 0, 3 * K)?;
    fs.write(b, K + 10, b"copy-on-write")?;
    let (mut from_a, mut from_b) = ([0u8; 13], [0u8; 13]);
    fs.read(a, K + 10, &mut from_a)?;
    fs.read(b, K + 10, &mut from_b)?;
    println!(
        "reflinked a -> b, wrote into b: a still reads {:?}, b reads {:?}",
        String::from_utf8_lossy(&from_a),
        String::from_utf8_lossy(&from_b)
    );
    // Poison under a file: a read of it fails with EIO; an aligned overwrite
    // recovers it through the driver's recovery_write.
    let c = fs.create("c")?;
    fs.write(c, 0, &[b'C'; 4096])?;
    let blk = fs.extents(c)?[0].dev_block;
    dev.driver().poison(blk * K + 512, 512)?;
    let e = fs.read(c, 100, &mut buf).unwrap_err();
    println!(
        "poisoned the block under c[0..4096): read -> {e} (errno {})",
        e.errno()
    );
    fs.write(c, 0, &[b'R'; 4096])?;
    fs.read(c, 100, &mut buf)?;
    println!(
        "a page-aligned 4 KiB write recovered it: reads {:?}, badblocks empty: {}",
        String::from_utf8_lossy(&buf),
        dev.driver().badblocks().is_empty()
    );
    fs.fsync(a)?;
    Ok(())
}

/// Files mapped through `dax_iomap_fault` into a `SimPageTable`.
fn mappings() -> Result<(), DaxError> {
    use std::sync::Arc;

    use dax_fault::sim::{SimPageTable, SimTarget};
    use dax_fault::{PageTable, Vma};

    const K: u64 = 4096;
    const BASE: u64 = 0x7000_0000_0000;
    println!("\n-- mappings: TestFs files faulted into a simulated address space --");
    let dev = MemDevice::builder().size(32 << 20).build()?;
    let fs = TestFs::mkfs(dev.clone())?;
    let pt = Arc::new(SimPageTable::new());
    let slot = |addr: u64| match (pt.pmd(addr), pt.pte(addr)) {
        (p, _) if p.is_huge() => format!("{p:?}"),
        (_, Some(p)) => format!("{p:?}"),
        _ => "empty".to_owned(),
    };

    // A small file with a hole: the hole maps the zero page until a store.
    let f = fs.create("small")?;
    fs.write(f, 0, b"hello, mapping")?;
    fs.truncate(f, 4 * K)?;
    fs.fallocate(f, FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE, K, K)?;
    let vma = fs.mmap(f, Vma::new(BASE, 4 * K, 0)?.writable(true), pt.clone())?;
    let mut buf = [0u8; 14];
    pt.read(&vma, BASE, &mut buf).map_err(fault_err)?;
    println!(
        "load from page 0 reads {:?}; slot {}",
        String::from_utf8_lossy(&buf),
        slot(BASE)
    );
    pt.write(&vma, BASE, b"HELLO").map_err(fault_err)?;
    println!("store to page 0 (mkwrite in place): slot {}", slot(BASE));
    pt.read(&vma, BASE + K, &mut buf).map_err(fault_err)?;
    println!("load from the hole at page 1: slot {}", slot(BASE + K));
    pt.write(&vma, BASE + K, b"filled").map_err(fault_err)?;
    println!(
        "store into the hole allocates a block: slot {}, file blocks {}",
        slot(BASE + K),
        fs.stat(f)?.blocks
    );
    for e in vma.mapping().index().entries() {
        println!(
            "  index entry at page {}: {:?} order {} marks {:?}",
            e.start, e.entry.kind, e.entry.order, e.marks
        );
    }
    fs.fsync(f)?;
    println!(
        "after fsync: slot {} (write-protected, entries clean)",
        slot(BASE)
    );

    // A 2 MiB-aligned file: one PMD fault maps all of it.
    let big = fs.create("big")?;
    fs.write(big, 0, &vec![b'B'; 2 << 20])?;
    let vb = fs.mmap(big, Vma::new(BASE + (4 << 20), 2 << 20, 0)?, pt.clone())?;
    pt.read(&vb, BASE + (4 << 20) + 12345, &mut buf[..1])
        .map_err(fault_err)?;
    println!(
        "load from a 2 MiB file: slot {}; nrpages {}",
        slot(BASE + (4 << 20)),
        vb.mapping().index().nrpages()
    );

    // Memory failure: poison under a mapped page, reported by the device.
    let Some(SimTarget::Device { pfn, pgoff, .. }) = pt.resolve(BASE) else {
        unreachable!("page 0 is mapped");
    };
    dev.driver().poison(pgoff * K, K)?;
    dax_testdev::memory_failure(&dev, pfn, 1, dax_device::MfFlags::empty())?;
    println!(
        "memory failure at pfn {:#x}: SIGBUS sent for {:x?}; slot now {}; next load -> {:?}",
        pfn.0,
        vma.take_signals(),
        slot(BASE),
        pt.read(&vma, BASE, &mut buf).unwrap_err()
    );
    println!("fault counters: {:?}", vma.mapping().stats());

    // The same engine behind a real mapping of this process (dax_fault::mmu).
    let real = fs.create("real")?;
    fs.write(real, 0, &vec![b'r'; 4 << 20])?;
    let m = fs.mmap_real(
        real,
        0,
        4 << 20,
        dax_fault::mmu::MapOptions::new().writable(true),
    )?;
    m.store(12345, b"stored through the pointer")
        .map_err(fault_err)?;
    let mut back = [0u8; 26];
    fs.read(real, 12345, &mut back)?;
    println!(
        "real mapping at {:p}: a store through it, read back with read(2): {:?}; faults served {:?}",
        m.as_ptr(),
        String::from_utf8_lossy(&back),
        m.stats()
    );
    Ok(())
}

fn fault_err(r: dax_fault::VmFault) -> DaxError {
    DaxError::Io {
        what: if r.contains(dax_fault::VmFault::HWPOISON) {
            "a mapped access hit poison (SIGBUS)"
        } else {
            "a mapped access failed (SIGBUS)"
        },
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
