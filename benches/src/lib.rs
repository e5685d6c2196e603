//! Shared helpers for the dax-rs benchmarks: sizes, prefaulted page-aligned buffers,
//! the TestFs file and random offsets of the I/O benches, and PMDK's `pmem_memcpy_persist` loaded at
//! run time (the persistent-copy baseline).

use std::ffi::c_void;
use std::ptr;

use dax_device::persist::{self, PersistFlags};
use dax_device::{DaxDevice, DaxError};
use dax_testdev::{MemDeviceBuilder, TestFs, TestInode};

/// 1 KiB.
pub const KIB: usize = 1 << 10;
/// 1 MiB.
pub const MIB: usize = 1 << 20;
/// The copy sizes the persistent-copy benches measure, 4 KiB to 64 MiB.
pub const SIZES: [usize; 8] = [
    4 * KIB,
    16 * KIB,
    64 * KIB,
    256 * KIB,
    MIB,
    4 * MIB,
    16 * MIB,
    64 * MIB,
];

/// TestFs on a device built by `builder` (twice `len` bytes, prefaulted), with one file
/// of `len` bytes written in full from repeats of `chunk` (whose length divides
/// `len`): allocated and touched before any timing. Returns the filesystem and an
/// inode handle on the file.
pub fn testfs_file(
    builder: MemDeviceBuilder,
    chunk: &[u8],
    len: usize,
) -> Result<(TestFs, TestInode), DaxError> {
    let dev: std::sync::Arc<DaxDevice> = builder.size(2 * len as u64).populate(true).build()?;
    let fs = TestFs::mkfs(dev)?;
    let ino = fs.create("bench")?;
    let file = fs.inode(ino)?;
    for off in (0..len).step_by(chunk.len()) {
        assert_eq!(fs.pwrite(&file, off as u64, chunk)?, chunk.len());
    }
    Ok((fs, file))
}

/// 4096 random page-aligned offsets below `span` bytes, from a fixed xorshift
/// sequence: every variant of an I/O bench reads the same pages in the same order.
pub fn random_page_offsets(span: usize) -> Vec<u64> {
    const PAGE: u64 = 4096;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (span as u64 / PAGE)) * PAGE
        })
        .collect()
}

/// A page-aligned heap buffer, every byte written at creation so that no first-touch
/// page fault lands in a timing (very slow on these VMs).
pub struct Buf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Buf {
    /// Allocates `len` bytes (page aligned) filled with `fill`.
    pub fn new(len: usize, fill: u8) -> Buf {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: `layout` has non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null(), "allocation of {len} bytes failed");
        // SAFETY: `ptr` is valid for `len` bytes of writes.
        unsafe { ptr::write_bytes(ptr, fill, len) };
        Buf { ptr, layout }
    }

    /// The start of the buffer, valid for its whole length while `self` lives.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// The C signature of PMDK's `pmem_memcpy_persist`.
pub type PmemMemcpyPersist = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void;

/// PMDK's `pmem_memcpy_persist`, if `libpmem.so.1` can be loaded (a note is printed
/// when it cannot). Unless a `PMEM_*` variable is set already, sets `PMEM_AVX512F=1`
/// first (libpmem reads its configuration when loaded): PMDK's best configuration on
/// the reference machine, see `docs/benchmarks.md`.
///
/// # Safety
///
/// No other thread may read or write the environment while this runs (it may call
/// `std::env::set_var`): call it from `main`'s thread before starting any.
pub unsafe fn load_pmdk() -> Option<PmemMemcpyPersist> {
    let any_pmem_env = std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("PMEM_"));
    if !any_pmem_env {
        // SAFETY: the caller guarantees no concurrent environment access.
        unsafe { std::env::set_var("PMEM_AVX512F", "1") };
    }
    let config: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PMEM_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // SAFETY: a NUL-terminated library name; RTLD_NOW resolves all symbols up front.
    let handle = unsafe { libc::dlopen(c"libpmem.so.1".as_ptr(), libc::RTLD_NOW) };
    if handle.is_null() {
        eprintln!(
            "note: libpmem.so.1 not found (apt-get install libpmem1): skipping the PMDK baseline"
        );
        return None;
    }
    // SAFETY: `handle` is a live handle from dlopen; the name is NUL-terminated.
    let sym = unsafe { libc::dlsym(handle, c"pmem_memcpy_persist".as_ptr()) };
    if sym.is_null() {
        eprintln!("note: libpmem.so.1 has no pmem_memcpy_persist: skipping the PMDK baseline");
        return None;
    }
    eprintln!("PMDK baseline: libpmem.so.1 with {}", config.join(" "));
    // The handle is deliberately never closed: the function stays valid for the run.
    // SAFETY: `pmem_memcpy_persist` has this C signature (libpmem.h:
    // `void *pmem_memcpy_persist(void *pmemdest, const void *src, size_t len)`).
    Some(unsafe { std::mem::transmute::<*mut c_void, PmemMemcpyPersist>(sym) })
}

/// Which persistent copy a bench runs.
#[derive(Clone, Copy)]
pub enum Which {
    /// `dax_device::persist::memcpy_persist` with no flags.
    Ours,
    /// The baseline: `copy_nonoverlapping`, then `flush_range` and `drain`.
    CopyFlush,
    /// PMDK's `pmem_memcpy_persist`.
    Pmdk(PmemMemcpyPersist),
}

/// One persistent copy of `len` bytes from `src` to `dst` with `which`.
///
/// # Safety
///
/// `src` is valid for `len` bytes of reads and `dst` for `len` bytes of writes; they
/// do not overlap.
#[inline(always)]
pub unsafe fn copy_once(which: Which, dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract is each copy's contract.
    unsafe {
        match which {
            Which::Ours => persist::memcpy_persist(dst, src, len, PersistFlags::empty()),
            Which::CopyFlush => {
                ptr::copy_nonoverlapping(src, dst, len);
                persist::flush_range(dst, len);
                persist::drain();
            }
            Which::Pmdk(f) => {
                f(dst.cast(), src.cast(), len);
            }
        }
    }
}
