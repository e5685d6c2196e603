//! The minfs example filesystem (`examples/minfs/fs.rs`) against a model: every
//! operation is applied to a `Vec<u8>` too, and every byte of the file is compared
//! through `read` and through a mapping.
#![cfg(all(target_os = "linux", feature = "mmu", feature = "drivers"))]
#![allow(missing_docs)]

#[path = "../examples/minfs/fs.rs"]
mod fs;

use std::sync::Arc;

use fsdax::prelude::*;

const MIB: usize = 1 << 20;
const PAGE: usize = PAGE_SIZE;

/// A shmem-THP device (real 2 MiB pages) when the machine allows, else a memfd;
/// and whether it is the former.
fn device() -> (Arc<DaxDevice>, bool) {
    match MemDriver::shmem_thp(64 * MIB as u64) {
        Ok(d) => (d.into_device(), true),
        Err(_) => (
            MemDriver::memfd(64 * MIB as u64).unwrap().into_device(),
            false,
        ),
    }
}

/// Deterministic bytes (an LCG), different for every `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

fn write(file: &fs::Inode, model: &mut Vec<u8>, pos: usize, data: &[u8]) {
    assert_eq!(file.write(pos as u64, data).unwrap(), data.len());
    if model.len() < pos + data.len() {
        model.resize(pos + data.len(), 0);
    }
    model[pos..pos + data.len()].copy_from_slice(data);
}

/// Every byte through `read(2)`, plus the size.
fn check_read(file: &fs::Inode, model: &[u8]) {
    assert_eq!(file.i_size(), model.len() as u64);
    let mut buf = vec![0xeeu8; model.len() + 100];
    assert_eq!(file.read(0, &mut buf).unwrap(), model.len());
    let bad = buf[..model.len()]
        .iter()
        .zip(model)
        .position(|(a, b)| a != b);
    assert_eq!(bad, None, "read(2) differs from the model");
}

/// Every byte through a fresh mapping's loads.
fn check_map(file: &Arc<fs::Inode>, model: &[u8]) {
    let map = file.mmap(0, model.len() as u64, false).unwrap();
    let mut buf = vec![0xeeu8; model.len()];
    map.load(0, &mut buf).unwrap();
    let bad = buf.iter().zip(model).position(|(a, b)| a != b);
    assert_eq!(bad, None, "the mapping differs from the model");
}

#[test]
fn minfs_matches_a_model_through_read_write_mmap_truncate_and_punch() {
    let (dev, thp) = device();
    let fs = fs::Fs::new(dev);
    let free0 = fs.free_pages();
    let (ino, file) = fs.create();
    assert!(Arc::ptr_eq(&fs.open(ino).unwrap(), &file));
    let mut model = Vec::new();

    // Writes: small, unaligned, past EOF (leaving holes), and big (2 MiB extents).
    write(&file, &mut model, 100, &pattern(1, 5000));
    write(&file, &mut model, 3 * PAGE + 7, &pattern(2, 123));
    write(&file, &mut model, 2 * MIB + 11, &pattern(3, 3 * MIB));
    write(&file, &mut model, 7 * MIB - 5, &pattern(4, 4 * PAGE + 9));
    check_read(&file, &model);
    check_map(&file, &model);

    // Two threads store through one shared mapping, each into its own pages (odd or
    // even), holes included, and load their stores back.
    let len = model.len();
    let map = Arc::new(file.mmap(0, len as u64, true).unwrap());
    let stores: Vec<(usize, Vec<u8>)> = (0..2)
        .map(|t| {
            let map = map.clone();
            std::thread::spawn(move || {
                let mut done = Vec::new();
                for (i, page) in (t..len / PAGE).step_by(2).enumerate() {
                    if i % 7 != 0 && page % 3 != 0 {
                        continue;
                    }
                    let off = page * PAGE + (i * 37) % 2000;
                    let data = pattern(1000 + page as u64, 1500);
                    map.store(off, &data).unwrap();
                    let mut back = vec![0u8; data.len()];
                    map.load(off, &mut back).unwrap();
                    assert_eq!(back, data);
                    done.push((off, data));
                }
                done
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    for (off, data) in &stores {
        model[*off..off + data.len()].copy_from_slice(data);
    }
    let stats = map.stats();
    assert!(stats.pte + stats.pmd > 0, "{stats:?}");
    // The file is large, so its blocks past the first 2 MiB are 2 MiB extents.
    assert!(!thp || stats.pmd > 0, "no PMD fault: {stats:?}");
    file.fsync().unwrap();
    check_read(&file, &model);
    check_map(&file, &model);
    // write(2) is visible through the live mapping too.
    write(&file, &mut model, 5 * MIB + 3, &pattern(5, 10_000));
    let mut buf = vec![0u8; 10_000];
    map.load(5 * MIB + 3, &mut buf).unwrap();
    assert_eq!(buf, &model[5 * MIB + 3..5 * MIB + 10_003]);

    // Truncate down to an unaligned size while the mapping lives: past the new EOF
    // it faults with SIGBUS, before it the data stays.
    let used = free0 - fs.free_pages();
    file.truncate(3 * MIB as u64 + 1234).unwrap();
    model.truncate(3 * MIB + 1234);
    assert!(free0 - fs.free_pages() < used, "truncate freed nothing");
    assert_eq!(map.load(4 * MIB, &mut buf[..1]), Err(VmFault::SIGBUS));
    map.load(3 * MIB, &mut buf[..1234]).unwrap();
    assert_eq!(buf[..1234], model[3 * MIB..]);
    drop(map);
    check_read(&file, &model);
    // Growing again shows zeros past the old EOF, never old data.
    file.truncate(4 * MIB as u64 + 5).unwrap();
    model.resize(4 * MIB + 5, 0);
    check_read(&file, &model);
    check_map(&file, &model);

    // Punch holes: unaligned edges, within one block, across a 2 MiB extent.
    for (pos, len) in [
        (1000, 10),
        (5, 3 * PAGE),
        (PAGE - 1, 2),
        (MIB + 3, 2 * MIB),
        (3 * MIB, 2 * PAGE),
    ] {
        let before = fs.free_pages();
        file.punch_hole(pos as u64, len as u64).unwrap();
        model[pos..pos + len].fill(0);
        assert!(fs.free_pages() >= before);
        check_read(&file, &model);
    }
    check_map(&file, &model);

    // Store into the punched range through a new mapping (write faults allocate
    // again), then write and read around it.
    let map = file.mmap(0, model.len() as u64, true).unwrap();
    let data = pattern(6, 3 * PAGE);
    map.store(MIB + 5 * PAGE + 1, &data).unwrap();
    model[MIB + 5 * PAGE + 1..MIB + 8 * PAGE + 1].copy_from_slice(&data);
    drop(map);
    file.fsync().unwrap();
    check_read(&file, &model);
    check_map(&file, &model);

    // Truncating to zero gives back every block.
    file.truncate(0).unwrap();
    assert_eq!(fs.free_pages(), free0);
}
