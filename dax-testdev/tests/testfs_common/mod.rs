//! Helpers shared by the `testfs_*` integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dax_device::DaxDevice;
use dax_iomap::IterFlags;
use dax_testdev::{Backing, MemDevice, TestFs};

pub const B: u64 = 4096;
pub const W: IterFlags = IterFlags::DAX.union(IterFlags::WRITE);
pub const R: IterFlags = IterFlags::DAX;

pub type Dev = Arc<DaxDevice<MemDevice>>;

/// A memfd device of `size` bytes with a fresh TestFs on it.
pub fn mem_fs(size: u64) -> (Dev, TestFs) {
    let dev = MemDevice::builder().size(size).build().unwrap();
    let fs = TestFs::mkfs(dev.clone()).unwrap();
    (dev, fs)
}

/// A device file in the temp directory, removed on drop.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(
            std::env::temp_dir().join(format!("dax-testfs-{tag}-{}-{n}.img", std::process::id())),
        )
    }

    pub fn device(&self, size: Option<u64>) -> Dev {
        let mut b = MemDevice::builder().backing(Backing::File(self.0.clone()));
        if let Some(s) = size {
            b = b.size(s);
        }
        b.build().unwrap()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        // The poison list a file-backed device keeps beside its image.
        let mut poison = self.0.clone().into_os_string();
        poison.push(".poison");
        let _ = std::fs::remove_file(poison);
    }
}

pub fn poke(dev: &Dev, addr: u64, data: &[u8]) {
    dev.driver().poke(addr, data).unwrap();
}

pub fn peek(dev: &Dev, addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    dev.driver().peek(addr, &mut v).unwrap();
    v
}

/// A deterministic byte pattern for `seed` at file offset `off`.
pub fn pattern(seed: u8, off: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((off + i).wrapping_mul(31) as u8) ^ seed)
        .collect()
}
