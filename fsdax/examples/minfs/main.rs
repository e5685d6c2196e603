//! minfs in action: `cargo run -p fsdax --example minfs`.
//!
//! Creates a file, writes and reads it, maps it and stores through the mapping
//! (4 KiB and 2 MiB faults), fsyncs, truncates and punches a hole. The filesystem
//! itself is `fs.rs`.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

mod fs;

use std::sync::Arc;

use fsdax::prelude::*;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = PAGE_SIZE as u64;

fn main() -> Result<(), DaxError> {
    // Shared memory with transparent huge pages gives real 2 MiB pages for PMD
    // faults; a plain memfd when the machine has shmem THP off.
    let dev: Arc<DaxDevice> = match MemDriver::shmem_thp(64 * MIB) {
        Ok(d) => d.into_device(),
        Err(_) => MemDriver::memfd(64 * MIB)?.into_device(),
    };
    let fs = fs::Fs::new(dev);
    let free0 = fs.free_pages();
    let (ino, file) = fs.create();
    assert!(Arc::ptr_eq(&file, &fs.open(ino).expect("inode table")));

    // write(2) and read(2): the core copies straight to and from device memory.
    let greeting = b"hello from minfs";
    file.write(0, greeting)?;
    file.write(3 * MIB, &vec![0xab; MIB as usize])?; // a 4 MiB file: 2 MiB extents
    let mut buf = vec![0u8; greeting.len()];
    file.read(0, &mut buf)?;
    println!(
        "inode {ino}: size {} MiB, read back {:?}",
        file.i_size() / MIB,
        String::from_utf8_lossy(&buf)
    );

    // mmap: loads and stores through the mapping fault into our VmOps::fault.
    let map = file.mmap(0, file.i_size(), true)?;
    let fault = |e| DaxError::Io {
        what: if e == VmFault::SIGBUS {
            "SIGBUS"
        } else {
            "fault"
        },
    };
    map.load(0, &mut buf).map_err(fault)?;
    assert_eq!(&buf, greeting);
    map.store(8192, b"stored through the mapping")
        .map_err(fault)?;
    map.fill(2 * MIB as usize, MIB as usize, 0x5a)
        .map_err(fault)?; // a hole in a 2 MiB extent
    let mut back = vec![0u8; 26];
    file.read(8192, &mut back)?;
    println!(
        "read(2) sees the store: {:?}",
        String::from_utf8_lossy(&back)
    );
    let s = map.stats();
    println!(
        "faults: {} x 4 KiB, {} x 2 MiB ({} fell back), {} write-enables",
        s.pte, s.pmd, s.fallback, s.mkwrite
    );

    // fsync: write back the stored cache lines, then fence.
    file.fsync()?;
    println!("fsync done; {} of {} pages free", fs.free_pages(), free0);

    // truncate to 5000 bytes: the tail of block 1 is zeroed, every later block freed.
    drop(map); // a mapping past the new EOF would SIGBUS there
    file.truncate(5000)?;
    let mut tail = [1u8; 4];
    let n = file.read(4998, &mut tail)?;
    println!(
        "truncated to {} bytes ({n} readable at 4998); {} pages free",
        file.i_size(),
        fs.free_pages()
    );

    // punch a hole over bytes 6..9000 of a regrown file: partial blocks zeroed, whole
    // blocks freed, the size kept.
    file.truncate(3 * BLOCK)?;
    file.write(0, &[7u8; 3 * BLOCK as usize])?;
    file.punch_hole(6, 9000)?;
    let mut all = vec![0u8; 3 * BLOCK as usize];
    file.read(0, &mut all)?;
    let zeros = all.iter().filter(|&&b| b == 0).count();
    println!(
        "punched 6..9006: {zeros} zero bytes, size {}, {} pages free",
        file.i_size(),
        fs.free_pages()
    );
    assert_eq!(zeros, 9000);
    Ok(())
}
