//! `dax_iomap_rw` racing `DaxDevice::kill`, made deterministic: the driver holds the
//! copier inside `direct_access` (in its read section) until `kill` has cleared
//! ALIVE, so the copy that follows finds the device dead. It moves nothing, and the
//! answer must be ENXIO (the kernel's `dax_iomap_iter` says EFAULT, "bad address", for
//! any chunk that moves nothing; dax-rs tells a removal apart).
//!
//! No test here sleeps or asserts a time: threads wait for each other's visible
//! progress, and a watchdog only turns a hang into a failure.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dax_device::{
    DaxAccessMode, DaxDevice, DaxError, DaxFlags, DaxOperations, MapSource, RawAccess,
};
use dax_iomap::{
    DaxInode, Iomap, IomapOps, IterFlags, MappingOps, dax_iomap_read, dax_iomap_write,
};
use dax_testdev::MemDevice;

const PAGE: u64 = 4096;

/// A [`MemDevice`] whose `direct_access`, once armed, waits (inside the caller's read
/// section) until the test releases it.
struct GateDev {
    mem: MemDevice,
    armed: AtomicBool,
    entered: AtomicBool,
    release: AtomicBool,
}

// SAFETY: every answer is the inner MemDevice's, for the same arguments; waiting
// before answering changes nothing the trait promises.
unsafe impl DaxOperations for GateDev {
    fn nr_pages(&self) -> u64 {
        self.mem.nr_pages()
    }

    fn direct_access(
        &self,
        pgoff: u64,
        nr_pages: u64,
        mode: DaxAccessMode,
    ) -> Result<RawAccess, DaxError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.entered.store(true, Ordering::SeqCst);
            until("the test releases direct_access", || {
                self.release.load(Ordering::SeqCst)
            });
        }
        self.mem.direct_access(pgoff, nr_pages, mode)
    }

    fn zero_page_range(&self, pgoff: u64, nr_pages: u64) -> Result<(), DaxError> {
        self.mem.zero_page_range(pgoff, nr_pages)
    }

    unsafe fn recovery_write(&self, pgoff: u64, addr: NonNull<u8>, src: &[u8]) -> Option<usize> {
        // SAFETY: the caller's promise is the one the inner driver needs: the range
        // came from its direct_access, inside a read section.
        unsafe { self.mem.recovery_write(pgoff, addr, src) }
    }

    fn flush(&self) -> Result<(), DaxError> {
        self.mem.flush()
    }

    fn map_source(&self) -> Option<MapSource<'_>> {
        self.mem.map_source()
    }
}

/// Spins (yielding) until `cond` holds; panics after a minute (a hang, never a
/// measured time).
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never happened: {what}"
        );
        std::thread::yield_now();
    }
}

/// A one-extent file: file bytes `0 .. size` are device bytes `0 .. size`.
struct File {
    dev: Arc<DaxDevice<GateDev>>,
    size: u64,
}

impl IomapOps for File {
    fn iomap_begin(
        &self,
        pos: u64,
        length: u64,
        _flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        let _ = (pos, length);
        Ok((Iomap::mapped(0, self.size, 0, &*self.dev), None))
    }
}

impl DaxInode for File {
    fn i_size(&self) -> u64 {
        self.size
    }

    fn mapping(&self) -> Option<&dyn MappingOps> {
        None
    }
}

fn file() -> File {
    let mem = Arc::try_unwrap(MemDevice::builder().size(64 * PAGE).build().unwrap())
        .expect("a fresh device has one owner")
        .into_driver();
    File {
        dev: DaxDevice::new(GateDev {
            mem,
            armed: AtomicBool::new(false),
            entered: AtomicBool::new(false),
            release: AtomicBool::new(false),
        }),
        size: 16 * PAGE,
    }
}

/// Runs `io` with its `direct_access` held until `kill` has cleared ALIVE, then
/// returns its result (and lets the kill finish).
fn racing_kill<T: Send>(f: &File, io: impl FnOnce(&File) -> T + Send) -> T {
    f.dev.driver().armed.store(true, Ordering::SeqCst);
    std::thread::scope(|s| {
        let io = s.spawn(|| io(f));
        until("the I/O is inside direct_access", || {
            f.dev.driver().entered.load(Ordering::SeqCst)
        });
        // kill clears ALIVE, then waits for the I/O's read section.
        let killer = s.spawn(|| f.dev.kill());
        until("kill has cleared ALIVE", || {
            !f.dev.flags().contains(DaxFlags::ALIVE)
        });
        f.dev.driver().release.store(true, Ordering::SeqCst);
        let r = io.join().unwrap();
        killer.join().unwrap();
        r
    })
}

#[test]
fn a_write_racing_kill_is_enxio_not_efault() {
    let f = file();
    let r = racing_kill(&f, |f| dax_iomap_write(f, f, 100, &[7u8; 300]));
    assert_eq!(r.unwrap_err().errno(), libc::ENXIO);
    let mut back = vec![0u8; 300];
    f.dev.driver().mem.peek(100, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0), "nothing was written");
}

#[test]
fn a_read_racing_kill_is_enxio_not_efault() {
    let f = file();
    let mut buf = vec![0xEEu8; 300];
    let r = racing_kill(&f, |f| dax_iomap_read(f, f, 100, &mut buf));
    assert_eq!(r.unwrap_err().errno(), libc::ENXIO);
}
