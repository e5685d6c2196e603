//! Every `unsafe` operation of the mmu backend: address-space syscalls, the SIGSEGV
//! handler and its chaining, synthesising SIGBUS for the faulting thread, and the
//! futex-based hand-off to the fault-server thread.
//!
//! # What runs in the signal handler
//!
//! The handler runs in the thread whose load or store hit a reserved page of a DAX
//! mapping. It finds the mapping in a fixed table (atomic loads only, no lock, no
//! allocation), and then either resolves the fault itself — the filesystem's fault
//! handler and the engine, which take locks and may allocate — or, when it runs on a
//! small alternate signal stack (Rust installs an 8 KiB one per thread for its
//! stack-overflow report), hands the fault to a server thread and sleeps on a futex.
//!
//! Running that code in a handler is sound here because the signal is synchronous: it
//! interrupts a plain load or store to a DAX mapping, never the middle of `malloc` or
//! of a lock operation. It can deadlock only if the interrupted code itself holds a
//! lock the fault needs — the filesystem's invalidate lock, a mapping-entry lock, its
//! metadata locks. The rule for users is the kernel's: never touch a DAX mapping
//! while holding a lock of the filesystem that backs it. `dax_iomap_rw` with a buffer
//! that is a mapping of the same filesystem is fine: reads and writes hold only the
//! inode's I/O lock, which faults never take.
//!
//! # Syscalls and `errno`
//!
//! The address-space calls (`mmap`, `munmap`, `mremap`, `mprotect`, `madvise`),
//! userfaultfd (creating it, its ioctls) and `fstatfs`, the fault server's futexes,
//! `gettid`, `getpid`, `sched_yield` and [`fatal`]'s `write` go through rustix, whose
//! `linux_raw` backend (the one used on Linux unless the build asks for its libc
//! backend) makes the system call itself: no libc wrapper, no lock, no allocation,
//! and the thread's libc `errno` is never read or written — a failure comes back as
//! the [`Errno`] value in the `Result`. So these calls, made on the handler's path,
//! are async-signal-safe and leave alone the `errno` of the code the signal
//! interrupted.
//!
//! libc is left for what rustix has no API for outside its `runtime` module (which is
//! for programs that do not use libc): signal actions, alternate signal stacks,
//! signal sets, `tgkill` and `rt_tgsigqueueinfo`, `siginfo_t` and `ucontext_t`,
//! `abort`, and `errno` itself. Those calls report failures through `errno`, which
//! [`handler`] saves on entry and restores on exit.

use std::ffi::c_void;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use dax_device::{DaxError, PAGE_SIZE};
use rustix::io::Errno;
use rustix::mm::{self, MapFlags, MprotectFlags, ProtFlags};

use crate::vm::VmFault;

/// `errno` of the last libc call as a [`DaxError`].
fn os_error(what: &'static str) -> DaxError {
    DaxError::Os {
        errno: std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
        what,
    }
}

/// The error of a failed rustix call as a [`DaxError`], for `map_err`.
fn os_err(what: &'static str) -> impl FnOnce(Errno) -> DaxError {
    move |e| DaxError::Os {
        errno: e.raw_os_error(),
        what,
    }
}

/// Reserves `len` bytes of address space aligned to `align` (a power of two), with no
/// access: every touch faults until something is mapped there.
pub(crate) fn reserve(len: usize, align: usize) -> Result<u64, DaxError> {
    let total = len + align;
    // SAFETY: a fresh anonymous PROT_NONE mapping at an address of the kernel's
    // choosing; it aliases nothing.
    let p = unsafe {
        mm::mmap_anonymous(
            std::ptr::null_mut(),
            total,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .map_err(os_err("reserving address space for a DAX mapping"))?;
    let start = p as usize;
    let aligned = start.next_multiple_of(align);
    // SAFETY: the head and tail trimmed here are parts of the mapping just created,
    // which nothing else knows about. A failed trim only leaves more reserved.
    unsafe {
        if aligned > start {
            let _ = mm::munmap(p, aligned - start);
        }
        let tail = start + total - (aligned + len);
        if tail > 0 {
            let _ = mm::munmap((aligned + len) as *mut c_void, tail);
        }
    }
    Ok(aligned as u64)
}

/// Returns `addr .. addr + len` (inside a reservation owned by the caller) to the
/// no-access reserved state.
pub(crate) fn reset(addr: u64, len: u64) -> Result<(), DaxError> {
    // SAFETY: the caller owns this range of its reservation; MAP_FIXED replaces only
    // the pages of that range.
    unsafe {
        mm::mmap_anonymous(
            addr as *mut c_void,
            len as usize,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED,
        )
    }
    .map_err(os_err("resetting part of a DAX mapping"))?;
    Ok(())
}

/// Releases a whole reservation.
pub(crate) fn release(addr: u64, len: u64) {
    // SAFETY: the caller owns the reservation and no longer uses any address in it.
    let _ = unsafe { mm::munmap(addr as *mut c_void, len as usize) };
}

/// Protection for `mmap`: read-only, or readable and writable.
fn prot(writable: bool) -> ProtFlags {
    if writable {
        ProtFlags::READ | ProtFlags::WRITE
    } else {
        ProtFlags::READ
    }
}

/// The same protection for `mprotect` (rustix gives it its own type).
fn mprot(writable: bool) -> MprotectFlags {
    if writable {
        MprotectFlags::READ | MprotectFlags::WRITE
    } else {
        MprotectFlags::READ
    }
}

/// Maps `len` bytes of `fd` from `offset` at `addr` (inside the caller's reservation),
/// shared, readable and writable if asked, filling the page-table entries at once if
/// `populate`.
///
/// 4 KiB runs are not populated: letting the kernel fill their entries on first
/// touch (its own fault-around maps 16 per exception) measured faster than
/// `MAP_POPULATE` (340 against 206 ns per page). A 2 MiB page is populated: one
/// entry, and the access that returns from our handler then does not take a second
/// exception to install it (the gain, about 1 µs per 2 MiB at best, is within this
/// machine's run-to-run noise; see docs/benchmarks.md).
pub(crate) fn map_fd(
    addr: u64,
    len: u64,
    fd: std::os::fd::BorrowedFd<'_>,
    offset: u64,
    writable: bool,
    populate: bool,
) -> Result<(), DaxError> {
    let populate = if populate {
        MapFlags::POPULATE
    } else {
        MapFlags::empty()
    };
    // SAFETY: replaces pages of the caller's own reservation with a shared mapping of
    // device memory; nothing in the process holds references into that range.
    unsafe {
        mm::mmap(
            addr as *mut c_void,
            len as usize,
            prot(writable),
            MapFlags::SHARED | MapFlags::FIXED | populate,
            fd,
            offset,
        )
    }
    .map_err(os_err("mapping device memory"))?;
    Ok(())
}

/// Maps anonymous zero-filled memory at `addr` (inside the caller's reservation):
/// read-only for the zero page, writable for a private copy.
pub(crate) fn map_anon(addr: u64, len: u64, writable: bool) -> Result<(), DaxError> {
    // SAFETY: as in `map_fd`, over the caller's own reservation.
    unsafe {
        mm::mmap_anonymous(
            addr as *mut c_void,
            len as usize,
            prot(writable),
            MapFlags::PRIVATE | MapFlags::FIXED,
        )
    }
    .map_err(os_err("mapping anonymous memory"))?;
    Ok(())
}

/// Maps a private writable page holding `data` at `addr` (inside the caller's
/// reservation) in one step: the page is filled elsewhere, then moved over `addr` with
/// `mremap`, so no thread ever sees it empty or half-copied.
pub(crate) fn map_private_copy(addr: u64, data: &[u8; PAGE_SIZE]) -> Result<(), DaxError> {
    let len = PAGE_SIZE;
    // SAFETY: a fresh private page of our own, at an address of the kernel's choosing.
    let tmp = unsafe {
        mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .map_err(os_err("allocating a copy-on-write page"))?;
    // SAFETY: `tmp` is the fresh writable page above, which nothing else knows about;
    // `data` is an ordinary Rust buffer. The moved page then replaces `addr` in the
    // caller's own reservation (`mremap_fixed` adds MREMAP_FIXED, which unmaps what
    // was there first, atomically).
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), tmp as *mut u8, len);
        if let Err(e) =
            mm::mremap_fixed(tmp, len, len, mm::MremapFlags::MAYMOVE, addr as *mut c_void)
        {
            let _ = mm::munmap(tmp, len);
            return Err(os_err("moving a copy-on-write page into place")(e));
        }
    }
    Ok(())
}

/// Fills the kernel's page-table entries of `addr .. addr + len` (inside the caller's
/// reservation, already mapped) for loads or stores (`MADV_POPULATE_READ`/`_WRITE`),
/// best effort: a range that is no longer mapped whole just stays as it is.
pub(crate) fn populate(addr: u64, len: u64, write: bool) {
    let advice = if write {
        mm::Advice::LinuxPopulateWrite
    } else {
        mm::Advice::LinuxPopulateRead
    };
    // SAFETY: advice over the caller's own mapped range; it only prefaults pages.
    let _ = unsafe { mm::madvise(addr as *mut c_void, len as usize, advice) };
}

/// Stops the process after a page-table change that must not fail did: writes
/// `dax-rs mmu: <what> failed: <error>` to stderr with `write(2)` alone (this may run in
/// the signal handler) and aborts.
pub(crate) fn fatal(what: &str, err: &DaxError) -> ! {
    let mut buf = [0u8; 256];
    let mut n = 0;
    for part in [
        "dax-rs mmu: ".as_bytes(),
        what.as_bytes(),
        b" failed (errno ",
        itoa(err.errno(), &mut [0u8; 12]),
        b"); stopping rather than leave a stale or untracked mapping\n",
    ] {
        let take = part.len().min(buf.len() - n);
        buf[n..n + take].copy_from_slice(&part[..take]);
        n += take;
    }
    // Nothing more can be done if even this write fails.
    let _ = rustix::io::write(rustix::stdio::stderr(), &buf[..n]);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// `v` in decimal, in `buf`, without allocating.
fn itoa(v: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut i = buf.len();
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Changes the protection of `addr .. addr + len` (inside the caller's reservation).
pub(crate) fn protect(addr: u64, len: u64, writable: bool) -> Result<(), DaxError> {
    // SAFETY: only the protection of the caller's own pages changes; a thread storing
    // to them concurrently faults and is resolved by the handler.
    unsafe { mm::mprotect(addr as *mut c_void, len as usize, mprot(writable)) }
        .map_err(os_err("changing the protection of a DAX mapping"))
}

/// Write tracking with userfaultfd write-protect: a store to a write-protected page
/// of a registered range raises SIGBUS in the storing thread (`UFFD_FEATURE_SIGBUS`),
/// and clearing or setting the protection changes the page-table entry alone, not
/// the kernel's VMA, so any number of pages can differ from their neighbours without
/// splitting the mapping (`mprotect` would split it, and past `vm.max_map_count`,
/// 65530 by default, the next split fails).
///
/// Works on shmem and hugetlbfs (memfd devices), Linux 5.19 and later. Probed once;
/// `DAX_MMU_NO_UFFD=1` in the environment turns it off (the backend then uses
/// `mprotect`).
pub(crate) mod uffd {
    use super::*;
    use rustix::ioctl::{Opcode, Updater, ioctl, opcode};
    use rustix::mm::UserfaultfdFlags;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::sync::OnceLock;

    const UFFD_API: u64 = 0xaa;
    /// `UFFD_USER_MODE_ONLY`, which rustix does not name.
    const USER_MODE_ONLY: UserfaultfdFlags = UserfaultfdFlags::from_bits_retain(1);
    const FEATURE_SIGBUS: u64 = 1 << 7;
    const FEATURE_WP_HUGETLBFS_SHMEM: u64 = 1 << 12;
    const FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
    /// The ioctl group of userfaultfd (`UFFDIO`).
    const UFFDIO: u8 = 0xaa;
    // `_IOWR(UFFDIO, nr, T)`: the argument's size is part of the opcode, taken here
    // from the struct itself.
    const IOC_API: Opcode = opcode::read_write::<Api>(UFFDIO, 0x3f);
    const IOC_REGISTER: Opcode = opcode::read_write::<Register>(UFFDIO, 0x00);
    const IOC_WRITEPROTECT: Opcode = opcode::read_write::<WriteProtect>(UFFDIO, 0x06);
    // The kernel's values (linux/userfaultfd.h on x86-64 and aarch64; architectures
    // with other ioctl direction bits compute their own through `opcode`).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    const _: () = assert!(
        IOC_API == 0xc018_aa3f && IOC_REGISTER == 0xc020_aa00 && IOC_WRITEPROTECT == 0xc018_aa06
    );
    const REGISTER_MODE_WP: u64 = 1 << 1;
    const WRITEPROTECT_MODE_WP: u64 = 1 << 0;

    #[repr(C)]
    struct Api {
        api: u64,
        features: u64,
        ioctls: u64,
    }

    #[repr(C)]
    struct Range {
        start: u64,
        len: u64,
    }

    #[repr(C)]
    struct Register {
        range: Range,
        mode: u64,
        ioctls: u64,
    }

    #[repr(C)]
    struct WriteProtect {
        range: Range,
        mode: u64,
    }

    static FD: OnceLock<Option<OwnedFd>> = OnceLock::new();

    fn open() -> Option<OwnedFd> {
        if std::env::var_os("DAX_MMU_NO_UFFD").is_some_and(|v| v != "0") {
            return None;
        }
        // WP_UNPOPULATED (6.4) also protects pages not yet touched; without it the
        // kernel still protects shmem pages through its page-table markers.
        handshake(FEATURE_SIGBUS | FEATURE_WP_HUGETLBFS_SHMEM | FEATURE_WP_UNPOPULATED)
            .or_else(|| handshake(FEATURE_SIGBUS | FEATURE_WP_HUGETLBFS_SHMEM))
    }

    /// A new userfaultfd that agreed to `features` (a refused `UFFDIO_API` leaves a
    /// descriptor unusable, so each attempt opens its own).
    fn handshake(features: u64) -> Option<OwnedFd> {
        // SAFETY: the call itself is safe; what the descriptor can do to this
        // process's memory is only what this module asks of it: write-protect ranges
        // of its own reservations (faults come as SIGBUS, never as events to read).
        let fd = unsafe {
            rustix::mm::userfaultfd(
                UserfaultfdFlags::CLOEXEC | UserfaultfdFlags::NONBLOCK | USER_MODE_ONLY,
            )
        }
        .ok()?;
        let mut api = Api {
            api: UFFD_API,
            features,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API, whose argument is an `Api` (the kernel's layout), live
        // for the call.
        let ok = unsafe { ioctl(&fd, Updater::<IOC_API, Api>::new(&mut api)) }.is_ok();
        // Older kernels accept a feature they cannot provide and clear it in the
        // answer (write-protect of shmem without page-table markers): every feature
        // asked for must come back.
        (ok && api.features & features == features).then_some(fd)
    }

    /// Whether the kernel can write-protect mappings of `fd` page by page: shmem
    /// (a memfd, tmpfs) and hugetlbfs files.
    pub(crate) fn trackable(fd: BorrowedFd<'_>) -> bool {
        use rustix::fs::FsWord;
        // Typed as `f_type` (`__fsword_t`, signed on most targets) and holding the
        // unsigned constant's bits, as the kernel stores them (rustix defines its own
        // magic numbers this way).
        const TMPFS_MAGIC: FsWord = 0x0102_1994;
        const HUGETLBFS_MAGIC: FsWord = 0x9584_58f6_u32 as FsWord;
        rustix::fs::fstatfs(fd).is_ok_and(|st| matches!(st.f_type, TMPFS_MAGIC | HUGETLBFS_MAGIC))
    }

    /// Whether write tracking with userfaultfd is available (probed on the first call,
    /// which must not be made from a signal handler).
    pub(crate) fn available() -> bool {
        FD.get_or_init(open).is_some()
    }

    fn fd() -> Result<BorrowedFd<'static>, DaxError> {
        match FD.get() {
            Some(Some(fd)) => Ok(fd.as_fd()),
            _ => Err(DaxError::NotSupported {
                what: "userfaultfd write-protect",
            }),
        }
    }

    /// Registers `addr .. addr + len` (a shared mapping of a memfd inside the caller's
    /// reservation) for write-protect tracking. A new `mmap` over a range drops its
    /// registration, so every mapping made for a tracked range is registered anew.
    pub(crate) fn register(addr: u64, len: u64) -> Result<(), DaxError> {
        let mut reg = Register {
            range: Range { start: addr, len },
            mode: REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER, whose argument is a `Register`, live for the call; it
        // changes only the tracking of the caller's own range.
        unsafe { ioctl(fd()?, Updater::<IOC_REGISTER, Register>::new(&mut reg)) }
            .map_err(os_err("registering a DAX mapping for write tracking"))
    }

    /// Write-protects (`wp`) or unprotects the pages of a registered range.
    pub(crate) fn protect(addr: u64, len: u64, wp: bool) -> Result<(), DaxError> {
        let mut arg = WriteProtect {
            range: Range { start: addr, len },
            mode: if wp { WRITEPROTECT_MODE_WP } else { 0 },
        };
        // SAFETY: UFFDIO_WRITEPROTECT, whose argument is a `WriteProtect`, live for the
        // call, over the caller's own registered range; a thread storing there
        // concurrently either gets through (before) or takes the SIGBUS the handler
        // serves (after).
        unsafe {
            ioctl(
                fd()?,
                Updater::<IOC_WRITEPROTECT, WriteProtect>::new(&mut arg),
            )
        }
        .map_err(os_err("changing the write protection of a DAX mapping"))
    }
}

// Device memory is shared with other threads, other mappings and other processes, so
// it is only ever read and written with volatile accesses (as vm-memory's
// `VolatileSlice` does): the compiler may not assume it unchanged between two reads,
// nor merge, split or drop a store. Words where the address allows, bytes at the edges.

/// Copies `buf.len()` bytes from address `addr` (volatile loads).
///
/// # Safety
/// `addr .. addr + buf.len()` is mapped readable for the duration of the call (or
/// faults that this process's handler resolves).
unsafe fn volatile_read(addr: usize, buf: &mut [u8]) {
    let mut i = 0;
    while i < buf.len() {
        let a = addr + i;
        if a.is_multiple_of(8) && buf.len() - i >= 8 {
            // SAFETY: inside the caller's readable range, 8-aligned.
            let w = unsafe { std::ptr::read_volatile(a as *const u64) };
            buf[i..i + 8].copy_from_slice(&w.to_ne_bytes());
            i += 8;
        } else {
            // SAFETY: inside the caller's readable range.
            buf[i] = unsafe { std::ptr::read_volatile(a as *const u8) };
            i += 1;
        }
    }
}

/// Copies `data` to address `addr` (volatile stores).
///
/// # Safety
/// `addr .. addr + data.len()` is mapped writable for the duration of the call (or
/// faults that this process's handler resolves).
unsafe fn volatile_write(addr: usize, data: &[u8]) {
    let mut i = 0;
    while i < data.len() {
        let a = addr + i;
        if a.is_multiple_of(8) && data.len() - i >= 8 {
            let w = u64::from_ne_bytes(data[i..i + 8].try_into().expect("8 bytes"));
            // SAFETY: inside the caller's writable range, 8-aligned.
            unsafe { std::ptr::write_volatile(a as *mut u64, w) };
            i += 8;
        } else {
            // SAFETY: inside the caller's writable range.
            unsafe { std::ptr::write_volatile(a as *mut u8, data[i]) };
            i += 1;
        }
    }
}

/// Copies `buf.len()` bytes from address `addr` with volatile loads. The caller
/// faults the pages in for loads first, so that no signal is needed (a page a racing
/// truncate unmaps meanwhile faults again and is served by the handler like any other
/// access).
///
/// # Safety
///
/// `addr .. addr + buf.len()` lies inside one DAX mapping's address reservation,
/// which stays reserved until this returns (the caller borrows the mapping).
pub(crate) unsafe fn load(addr: u64, buf: &mut [u8]) {
    // SAFETY: the range is inside a live reservation (the caller's promise): every
    // access there is either served by a page or by the fault handler. No reference
    // to it is formed.
    unsafe { volatile_read(addr as usize, buf) }
}

/// Copies `data` to address `addr` with volatile stores; the caller faults the pages
/// in for stores first.
///
/// # Safety
///
/// As for [`load`].
pub(crate) unsafe fn store(addr: u64, data: &[u8]) {
    // SAFETY: as in `load`, for stores.
    unsafe { volatile_write(addr as usize, data) }
}

/// Stores `byte` into `addr .. addr + len` (volatile); the caller faults the pages in
/// for stores first.
///
/// # Safety
///
/// As for [`load`], for `addr .. addr + len`.
pub(crate) unsafe fn fill(addr: u64, len: usize, byte: u8) {
    let chunk = [byte; 4096];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        // SAFETY: as in `store`.
        unsafe { volatile_write(addr as usize + done, &chunk[..n]) };
        done += n;
    }
}

// ---- signals ----

/// What the faulting access was, as far as the handler can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A load (SIGSEGV, x86-64 error code without the write bit).
    Load,
    /// A store (SIGSEGV with the write bit).
    Store,
    /// A SIGSEGV whose direction this architecture does not report.
    Unknown,
    /// An instruction fetch (x86-64 error code bit 4): never served, the mappings are
    /// not executable.
    Fetch,
    /// A store to a write-protected page of a range tracked with userfaultfd (SIGBUS
    /// with `BUS_ADRERR`); the resolver decides whether it really was one.
    TrackedStore,
}

/// The resolver the handler calls: `(address, access) -> Ok or the fault result`, or
/// `None` when the fault is not ours (the previous action then gets the signal).
pub(crate) type Resolver = fn(u64, Access) -> Option<Result<(), VmFault>>;

static RESOLVER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// A signal action that was installed before ours.
struct Prev(std::cell::UnsafeCell<libc::sigaction>);
// SAFETY: written once inside `INSTALL` before our handler is installed, then only read.
unsafe impl Sync for Prev {}
static PREV_SEGV: Prev = Prev(std::cell::UnsafeCell::new(
    // SAFETY: `sigaction` is plain data; all zeros is SIG_DFL with no flags.
    unsafe { std::mem::zeroed() },
));
static PREV_BUS: Prev = Prev(std::cell::UnsafeCell::new(
    // SAFETY: as above.
    unsafe { std::mem::zeroed() },
));
static INSTALL: Once = Once::new();

thread_local! {
    /// Set while a SIGBUS this thread queued for itself (the engine's answer to a
    /// fault) is on its way, so our SIGBUS handler passes it on instead of taking it
    /// for a write-tracking fault.
    static QUEUED_SIGBUS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn prev_for(sig: libc::c_int) -> &'static Prev {
    if sig == libc::SIGBUS {
        &PREV_BUS
    } else {
        &PREV_SEGV
    }
}

/// Installs the SIGSEGV and SIGBUS handlers once per process, remembering the
/// previous actions to chain to for faults that are not ours. A SIGBUS handler the
/// program installs later replaces ours and breaks write tracking: install yours
/// before the first mapping, and ours passes it every SIGBUS that is not ours.
pub(crate) fn install(resolver: Resolver) -> Result<(), DaxError> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        RESOLVER.store(resolver as *mut (), Ordering::Release);
        for sig in [libc::SIGBUS, libc::SIGSEGV] {
            // SAFETY: querying and then setting the process's action with valid
            // pointers; the previous action is saved before ours can read it.
            unsafe {
                if libc::sigaction(sig, std::ptr::null(), prev_for(sig).0.get()) != 0 {
                    result = Err(os_error("reading a signal action"));
                    return;
                }
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = handler as *const () as usize;
                // SA_NODEFER: a handler we chain to runs inside ours, and its own
                // loads and stores to a DAX mapping must be able to fault again (a
                // pmem poison handler repairing data through the mapping does).
                act.sa_flags =
                    libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART | libc::SA_NODEFER;
                // Asynchronous signals wait while a fault is resolved, so that their
                // handlers cannot run in the middle of it (holding its locks) and
                // fault on a DAX mapping themselves.
                libc::sigfillset(&mut act.sa_mask);
                for s in [
                    libc::SIGSEGV,
                    libc::SIGBUS,
                    libc::SIGILL,
                    libc::SIGFPE,
                    libc::SIGTRAP,
                ] {
                    libc::sigdelset(&mut act.sa_mask, s);
                }
                if libc::sigaction(sig, &act, std::ptr::null_mut()) != 0 {
                    result = Err(os_error("installing a fault handler"));
                    return;
                }
            }
        }
    });
    result
}

/// Whether the fault was a store (x86-64: bit 1 of the page-fault error code).
///
/// # Safety
/// `ctx` is the `ucontext_t` the kernel passed to the handler.
#[cfg(target_arch = "x86_64")]
unsafe fn access_of(ctx: *mut c_void) -> Access {
    // SAFETY: per the contract, `ctx` points to the kernel's ucontext_t.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    let err = uc.uc_mcontext.gregs[libc::REG_ERR as usize];
    if err & 0x10 != 0 {
        // An instruction fetch: DAX mappings here are never executable.
        Access::Fetch
    } else if err & 2 != 0 {
        Access::Store
    } else {
        Access::Load
    }
}

/// Other architectures: unknown; the resolver treats a fault on a page mapped
/// read-only as a store and anything else as a load first.
///
/// # Safety
/// None needed; kept `unsafe` to match the x86-64 signature.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn access_of(_ctx: *mut c_void) -> Access {
    Access::Unknown
}

/// Bytes of stack left below the current frame when running on the alternate signal
/// stack, `None` when on the thread's ordinary stack.
fn altstack_room() -> Option<usize> {
    // SAFETY: querying the current alternate stack into a local.
    let mut ss: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer, null new stack.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut ss) } != 0 {
        return None;
    }
    if ss.ss_flags & libc::SS_ONSTACK == 0 {
        return None;
    }
    let here = &ss as *const _ as usize;
    Some(here.saturating_sub(ss.ss_sp as usize))
}

/// Stack the in-handler resolution may need; below it the fault goes to the server.
const MIN_HANDLER_STACK: usize = 128 << 10;

/// Size of the alternate signal stack [`prepare_thread`] gives a thread.
const BIG_ALTSTACK: usize = 512 << 10;

/// The inaccessible page under it, so that an overflow faults instead of writing
/// over whatever lies below.
const GUARD: usize = PAGE_SIZE;

/// A thread's own large alternate signal stack, released when the thread exits.
struct AltStack(*mut c_void);

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: disabling the alternate stack (the thread is exiting and not in a
        // handler) and unmapping the memory we mapped for it, guard page included.
        unsafe {
            let mut ss: libc::stack_t = std::mem::zeroed();
            ss.ss_flags = libc::SS_DISABLE;
            libc::sigaltstack(&ss, std::ptr::null_mut());
            let _ = mm::munmap(self.0, GUARD + BIG_ALTSTACK);
        }
    }
}

thread_local! {
    static ALTSTACK: std::cell::RefCell<Option<AltStack>> = const { std::cell::RefCell::new(None) };
}

/// Gives the calling thread a 512 KiB alternate signal stack (with a guard page under
/// it), so that faults on DAX mappings are resolved in its own signal handler instead
/// of being handed to the fault-server thread (Rust's default alternate stack is too
/// small for the engine). Idempotent; must not be called from a signal handler.
pub(crate) fn prepare_thread() -> Result<(), DaxError> {
    ALTSTACK.with(|cell| {
        if cell.borrow().is_some() {
            return Ok(());
        }
        // SAFETY: a fresh private mapping for the stack, its lowest page made
        // inaccessible, then installed as this thread's alternate signal stack (we are
        // not running on the old one).
        unsafe {
            let p = mm::mmap_anonymous(
                std::ptr::null_mut(),
                GUARD + BIG_ALTSTACK,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::STACK,
            )
            .map_err(os_err("allocating an alternate signal stack"))?;
            if let Err(e) = mm::mprotect(p, GUARD, MprotectFlags::empty()) {
                let _ = mm::munmap(p, GUARD + BIG_ALTSTACK);
                return Err(os_err("guarding an alternate signal stack")(e));
            }
            let ss = libc::stack_t {
                ss_sp: (p as *mut u8).add(GUARD).cast(),
                ss_flags: 0,
                ss_size: BIG_ALTSTACK,
            };
            if libc::sigaltstack(&ss, std::ptr::null_mut()) != 0 {
                let e = os_error("installing an alternate signal stack");
                let _ = mm::munmap(p, GUARD + BIG_ALTSTACK);
                return Err(e);
            }
            *cell.borrow_mut() = Some(AltStack(p));
        }
        Ok(())
    })
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // The interrupted code may be between a failed call and its read of errno: keep it.
    // SAFETY: __errno_location returns this thread's errno, always valid.
    let saved = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel's own arguments, for the signal they came with.
    unsafe { handle(sig, info, ctx) };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// The body of [`handler`].
///
/// # Safety
/// The arguments are the kernel's, unchanged.
unsafe fn handle(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV and SIGBUS.
    let code = unsafe { (*info).si_code };
    if code <= 0 {
        // Sent, not raised by a fault (kill, raise, sigqueue): not ours. Its fields
        // are no fault's, and it does not come back by itself.
        // SAFETY: forwarding the kernel's own arguments.
        return unsafe { chain(sig, info, ctx, true) };
    }
    // SAFETY: a fault's siginfo carries the fault address.
    let addr = unsafe { (*info).si_addr() } as u64;
    let access = if sig == libc::SIGBUS {
        if QUEUED_SIGBUS.with(|q| q.replace(false)) {
            // Our own answer to a fault: the program's action gets it.
            // SAFETY: forwarding the arguments our queued signal came with.
            return unsafe { chain(sig, info, ctx, true) };
        }
        if code != libc::BUS_ADRERR {
            // No write-tracking fault (poison, a truncated file): not ours. Only a
            // fault raised by the access itself comes back when the handler returns;
            // an asynchronous machine-check report (BUS_MCEERR_AO) does not.
            let recurs = matches!(
                code,
                libc::BUS_ADRALN | libc::BUS_OBJERR | libc::BUS_MCEERR_AR
            );
            // SAFETY: forwarding the kernel's own arguments.
            return unsafe { chain(sig, info, ctx, !recurs) };
        }
        Access::TrackedStore
    } else {
        // SAFETY: ctx is the kernel's ucontext.
        unsafe { access_of(ctx) }
    };
    let resolver = RESOLVER.load(Ordering::Acquire);
    let outcome = if resolver.is_null() {
        None
    } else if altstack_room().is_some_and(|room| room < MIN_HANDLER_STACK) {
        server::request(addr, access)
    } else {
        // SAFETY: RESOLVER only ever holds a `Resolver`.
        let f: Resolver = unsafe { std::mem::transmute::<*mut (), Resolver>(resolver) };
        f(addr, access)
    };
    match outcome {
        Some(Ok(())) => {}
        Some(Err(r)) if r.contains(VmFault::SIGSEGV) => {
            // SAFETY: forwarding the kernel's own arguments.
            unsafe { chain(sig, info, ctx, false) }
        }
        // SAFETY: ctx is the kernel's ucontext.
        Some(Err(r)) => unsafe { raise_sigbus(addr, r, ctx) },
        // SAFETY: forwarding the kernel's own arguments.
        None => unsafe { chain(sig, info, ctx, false) },
    }
}

/// Passes a signal that is not ours to the action installed before ours. `queued`:
/// the signal is one we queued ourselves, which (unlike a fault) does not come back
/// when the handler returns.
///
/// # Safety
/// The arguments are the kernel's, unchanged.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void, queued: bool) {
    // SAFETY: the previous actions were saved before our handler was installed.
    let prev = unsafe { &*prev_for(sig).0.get() };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the default action. A fault the hardware raised comes back when the
        // access is retried and the kernel applies it (terminate with a core dump),
        // as without us; a signal we queued ourselves is sent again for that.
        // SAFETY: a valid default action.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
            if queued {
                libc::syscall(libc::SYS_tgkill, getpid(), gettid(), sig);
            }
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: a SA_SIGINFO handler has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain handler has this signature.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// This process's id, for `tgkill` and `rt_tgsigqueueinfo`.
fn getpid() -> libc::pid_t {
    rustix::process::getpid().as_raw_pid()
}

/// The calling thread's id.
fn gettid() -> libc::pid_t {
    rustix::thread::gettid().as_raw_pid()
}

/// Queues SIGBUS for the current thread with `si_addr = addr` (`BUS_MCEERR_AR` with
/// `si_addr_lsb` set to the poisoned page's shift for poison, `BUS_ADRERR`
/// otherwise), and unblocks it in the mask restored when the handler returns, so it
/// is delivered at once, as the kernel's `force_sig_fault` / `force_sig_mceerr` do.
/// If the signal cannot be queued, the process is killed by SIGBUS, as an unhandled
/// fault would be: never a silent retry.
///
/// # Safety
/// `ctx` is the kernel's ucontext for this handler invocation.
unsafe fn raise_sigbus(addr: u64, r: VmFault, ctx: *mut c_void) {
    let (code, lsb) = if r.contains(VmFault::HWPOISON_LARGE) {
        (libc::BUS_MCEERR_AR, 21)
    } else if r.contains(VmFault::HWPOISON) {
        (libc::BUS_MCEERR_AR, 12)
    } else {
        (libc::BUS_ADRERR, 0)
    };
    // SAFETY: siginfo_t is plain data; the x86-64/aarch64 layout puts si_signo, si_errno
    // and si_code first, the fault address at offset 16 and si_addr_lsb (a short) at
    // offset 24. The ucontext is the kernel's.
    unsafe {
        let mut si: libc::siginfo_t = std::mem::zeroed();
        let p = &mut si as *mut libc::siginfo_t as *mut u8;
        *(p as *mut libc::c_int) = libc::SIGBUS;
        *(p.add(8) as *mut libc::c_int) = code;
        *(p.add(16) as *mut u64) = addr;
        *(p.add(24) as *mut libc::c_short) = lsb;
        QUEUED_SIGBUS.with(|q| q.set(true));
        let r = libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            getpid(),
            gettid(),
            libc::SIGBUS,
            &si as *const libc::siginfo_t,
        );
        if r != 0 {
            QUEUED_SIGBUS.with(|q| q.set(false));
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
            libc::syscall(libc::SYS_tgkill, getpid(), gettid(), libc::SIGBUS);
        }
        let uc = &mut *(ctx as *mut libc::ucontext_t);
        libc::sigdelset(&mut uc.uc_sigmask, libc::SIGBUS);
    }
}

/// The fault-server thread: resolves faults for threads whose handler runs on a stack
/// too small for the engine. Requests go through a fixed table and futexes, so the
/// handler side allocates nothing and takes no lock.
pub(crate) mod server {
    use super::*;
    use rustix::thread::futex;

    const SLOTS: usize = 64;
    const FREE: u32 = 0;
    const CLAIMED: u32 = 1;
    const PENDING: u32 = 2;
    const TAKEN: u32 = 3;
    const DONE: u32 = 4;

    struct Req {
        state: AtomicU32,
        addr: AtomicU64,
        /// 0 load, 1 store, 2 unknown, 3 tracked store, 4 fetch.
        access: AtomicU32,
        /// 0 ok, 1 not ours, else `VmFault` bits << 2.
        result: AtomicU32,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const REQ: Req = Req {
        state: AtomicU32::new(FREE),
        addr: AtomicU64::new(0),
        access: AtomicU32::new(0),
        result: AtomicU32::new(0),
    };
    static REQS: [Req; SLOTS] = [REQ; SLOTS];
    static BELL: AtomicU32 = AtomicU32::new(0);
    static START: Once = Once::new();

    /// Sleeps while `word` holds `val` (a private futex, no timeout). Callers re-check
    /// their condition, so a wake-up for any reason (EAGAIN, EINTR) is fine.
    fn futex_wait(word: &AtomicU32, val: u32) {
        let _ = futex::wait(word, futex::Flags::PRIVATE, val, None);
    }

    /// Wakes every waiter on `word`. `i32::MAX`, not `u32::MAX`: the kernel reads the
    /// count as an `int`, and -1 would wake just one.
    fn futex_wake(word: &AtomicU32) {
        let _ = futex::wake(word, futex::Flags::PRIVATE, i32::MAX as u32);
    }

    /// Starts the server thread once (outside any signal handler).
    pub(crate) fn start() {
        START.call_once(|| {
            std::thread::Builder::new()
                .name("dax-mmu-faults".into())
                .spawn(run)
                .expect("spawning the DAX fault-server thread");
        });
    }

    fn run() {
        // The server's own faults on DAX mappings (none are expected: the engine never
        // touches a mapping's addresses) must be resolved in its own handler: handed
        // to itself, it would wait for itself forever (`request` refuses that, with
        // SIGBUS, if the stack could not be had).
        let _ = prepare_thread();
        SERVER_TID.store(gettid() as u32, Ordering::Release);
        loop {
            let bell = BELL.load(Ordering::Acquire);
            let mut served = false;
            for r in &REQS {
                if r.state
                    .compare_exchange(PENDING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    continue;
                }
                served = true;
                let addr = r.addr.load(Ordering::Relaxed);
                let access = match r.access.load(Ordering::Relaxed) {
                    0 => Access::Load,
                    1 => Access::Store,
                    2 => Access::Unknown,
                    3 => Access::TrackedStore,
                    _ => Access::Fetch,
                };
                let f = RESOLVER.load(Ordering::Acquire);
                let out = if f.is_null() {
                    None
                } else {
                    // SAFETY: RESOLVER only ever holds a `Resolver`.
                    let f: Resolver = unsafe { std::mem::transmute::<*mut (), Resolver>(f) };
                    // A panic in the engine must not take the server down with the
                    // requester still waiting (every later hand-off would hang): the
                    // fault gets SIGBUS.
                    std::panic::catch_unwind(|| f(addr, access))
                        .unwrap_or(Some(Err(VmFault::SIGBUS)))
                };
                let code = match out {
                    None => 1,
                    Some(Ok(())) => 0,
                    Some(Err(v)) => v.bits() << 2,
                };
                r.result.store(code, Ordering::Relaxed);
                r.state.store(DONE, Ordering::Release);
                futex_wake(&r.state);
            }
            if !served {
                futex_wait(&BELL, bell);
            }
        }
    }

    /// The server thread's id, once it runs.
    static SERVER_TID: AtomicU32 = AtomicU32::new(0);

    /// Whether the calling thread is the server itself.
    pub(crate) fn on_server() -> bool {
        SERVER_TID.load(Ordering::Acquire) == gettid() as u32
    }

    /// Hands a fault to the server and waits for its answer (signal-handler side).
    /// The server never hands a fault to itself: it answers SIGBUS instead of waiting
    /// for itself.
    pub(crate) fn request(addr: u64, access: Access) -> Option<Result<(), VmFault>> {
        if on_server() {
            return Some(Err(VmFault::SIGBUS));
        }
        let r = loop {
            if let Some(r) = REQS.iter().find(|r| {
                r.state
                    .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            }) {
                break r;
            }
            rustix::thread::sched_yield();
        };
        r.addr.store(addr, Ordering::Relaxed);
        r.access.store(
            match access {
                Access::Load => 0,
                Access::Store => 1,
                Access::Unknown => 2,
                Access::TrackedStore => 3,
                Access::Fetch => 4,
            },
            Ordering::Relaxed,
        );
        r.state.store(PENDING, Ordering::Release);
        BELL.fetch_add(1, Ordering::AcqRel);
        futex_wake(&BELL);
        loop {
            let s = r.state.load(Ordering::Acquire);
            if s == DONE {
                break;
            }
            futex_wait(&r.state, s);
        }
        let code = r.result.load(Ordering::Relaxed);
        r.state.store(FREE, Ordering::Release);
        match code {
            0 => Some(Ok(())),
            1 => None,
            c => Some(Err(VmFault::from_bits_truncate(c >> 2))),
        }
    }
}
