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

use std::ffi::c_void;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use dax_core::{DaxError, PAGE_SIZE};

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

/// Reserves `len` bytes of address space aligned to `align` (a power of two), with no
/// access: every touch faults until something is mapped there.
pub(crate) fn reserve(len: usize, align: usize) -> Result<u64, DaxError> {
    let total = len + align;
    // SAFETY: a fresh anonymous PROT_NONE mapping at an address of the kernel's
    // choosing; it aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_error("reserving address space for a DAX mapping"));
    }
    let start = p as usize;
    let aligned = start.next_multiple_of(align);
    // SAFETY: the head and tail trimmed here are parts of the mapping just created,
    // which nothing else knows about.
    unsafe {
        if aligned > start {
            libc::munmap(p, aligned - start);
        }
        let tail = start + total - (aligned + len);
        if tail > 0 {
            libc::munmap((aligned + len) as *mut c_void, tail);
        }
    }
    Ok(aligned as u64)
}

/// Returns `addr .. addr + len` (inside a reservation owned by the caller) to the
/// no-access reserved state.
pub(crate) fn reset(addr: u64, len: u64) -> Result<(), DaxError> {
    // SAFETY: the caller owns this range of its reservation; MAP_FIXED replaces only
    // the pages of that range.
    let p = unsafe {
        libc::mmap(
            addr as *mut c_void,
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_error("resetting part of a DAX mapping"));
    }
    Ok(())
}

/// Releases a whole reservation.
pub(crate) fn release(addr: u64, len: u64) {
    // SAFETY: the caller owns the reservation and no longer uses any address in it.
    unsafe { libc::munmap(addr as *mut c_void, len as usize) };
}

fn prot(writable: bool) -> libc::c_int {
    if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
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
    use std::os::fd::AsRawFd;
    // SAFETY: replaces pages of the caller's own reservation with a shared mapping of
    // device memory; nothing in the process holds references into that range.
    let p = unsafe {
        libc::mmap(
            addr as *mut c_void,
            len as usize,
            prot(writable),
            libc::MAP_SHARED | libc::MAP_FIXED | if populate { libc::MAP_POPULATE } else { 0 },
            fd.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_error("mapping device memory"));
    }
    Ok(())
}

/// Maps anonymous zero-filled memory at `addr` (inside the caller's reservation):
/// read-only for the zero page, writable for a private copy.
pub(crate) fn map_anon(addr: u64, len: u64, writable: bool) -> Result<(), DaxError> {
    // SAFETY: as in `map_fd`, over the caller's own reservation.
    let p = unsafe {
        libc::mmap(
            addr as *mut c_void,
            len as usize,
            prot(writable),
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_error("mapping anonymous memory"));
    }
    Ok(())
}

/// Maps a private writable page at `addr` holding `data`.
pub(crate) fn map_anon_copy(addr: u64, data: &[u8; PAGE_SIZE]) -> Result<(), DaxError> {
    map_anon(addr, PAGE_SIZE as u64, true)?;
    // SAFETY: the page was just mapped writable at `addr` and is ours alone.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, PAGE_SIZE) };
    Ok(())
}

/// Replaces the readable page at `addr` by a private writable copy of its contents,
/// atomically (a fresh page elsewhere, copied, then moved over it with `mremap`).
pub(crate) fn cow_page(addr: u64) -> Result<(), DaxError> {
    let len = PAGE_SIZE;
    // SAFETY: a fresh private page of our own.
    let tmp = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if tmp == libc::MAP_FAILED {
        return Err(os_error("allocating a copy-on-write page"));
    }
    // SAFETY: `addr` is a readable page of the caller's mapping (it checked its state)
    // and `tmp` the fresh page; the moved page replaces `addr` in the caller's own
    // reservation.
    unsafe {
        std::ptr::copy_nonoverlapping(addr as *const u8, tmp as *mut u8, len);
        let p = libc::mremap(
            tmp,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            addr as *mut c_void,
        );
        if p == libc::MAP_FAILED {
            libc::munmap(tmp, len);
            return Err(os_error("moving a copy-on-write page into place"));
        }
    }
    Ok(())
}

/// Changes the protection of `addr .. addr + len` (inside the caller's reservation).
pub(crate) fn protect(addr: u64, len: u64, writable: bool) -> Result<(), DaxError> {
    // SAFETY: only the protection of the caller's own pages changes; a thread storing
    // to them concurrently faults and is resolved by the handler.
    let r = unsafe { libc::mprotect(addr as *mut c_void, len as usize, prot(writable)) };
    if r != 0 {
        return Err(os_error("changing the protection of a DAX mapping"));
    }
    Ok(())
}

/// Copies `buf.len()` bytes from address `addr`, which the caller has made readable.
pub(crate) fn load(addr: u64, buf: &mut [u8]) {
    // SAFETY: the caller resolved the fault for every page of the range, so it is
    // mapped readable; a volatile-free copy is fine for a snapshot of shared memory
    // that other threads may change (no reference to it is formed).
    unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
}

/// Copies `data` to address `addr`, which the caller has made writable.
pub(crate) fn store(addr: u64, data: &[u8]) {
    // SAFETY: the caller resolved a write fault for every page of the range, so it is
    // mapped writable; no reference to the destination is formed.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
}

// ---- signals ----

/// The resolver the handler calls: `(address, is_write if known) -> Ok or the fault
/// result`, or `None` when the address is not in any DAX mapping.
pub(crate) type Resolver = fn(u64, Option<bool>) -> Option<Result<(), VmFault>>;

static RESOLVER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// The SIGSEGV action that was installed before ours.
struct Prev(std::cell::UnsafeCell<libc::sigaction>);
// SAFETY: written once inside `INSTALL` before our handler is installed, then only read.
unsafe impl Sync for Prev {}
static PREV: Prev = Prev(std::cell::UnsafeCell::new(
    // SAFETY: `sigaction` is plain data; all zeros is SIG_DFL with no flags.
    unsafe { std::mem::zeroed() },
));
static INSTALL: Once = Once::new();

/// Installs the SIGSEGV handler once per process, remembering the previous action to
/// chain to for addresses that are not ours.
pub(crate) fn install(resolver: Resolver) -> Result<(), DaxError> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        RESOLVER.store(resolver as *mut (), Ordering::Release);
        // SAFETY: querying and then setting the process's SIGSEGV action with valid
        // pointers; PREV is written before the new handler can read it.
        unsafe {
            if libc::sigaction(libc::SIGSEGV, std::ptr::null(), PREV.0.get()) != 0 {
                result = Err(os_error("reading the SIGSEGV action"));
                return;
            }
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = handler as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            if libc::sigaction(libc::SIGSEGV, &act, std::ptr::null_mut()) != 0 {
                result = Err(os_error("installing the SIGSEGV handler"));
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
unsafe fn is_write(ctx: *mut c_void) -> Option<bool> {
    // SAFETY: per the contract, `ctx` points to the kernel's ucontext_t.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    Some(uc.uc_mcontext.gregs[libc::REG_ERR as usize] & 2 != 0)
}

/// Other architectures: unknown; the resolver treats a fault on a page mapped
/// read-only as a store and anything else as a load first.
///
/// # Safety
/// None needed; kept `unsafe` to match the x86-64 signature.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn is_write(_ctx: *mut c_void) -> Option<bool> {
    None
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

/// A thread's own large alternate signal stack, released when the thread exits.
struct AltStack(*mut c_void);

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: disabling the alternate stack (the thread is exiting and not in a
        // handler) and unmapping the memory we mapped for it.
        unsafe {
            let mut ss: libc::stack_t = std::mem::zeroed();
            ss.ss_flags = libc::SS_DISABLE;
            libc::sigaltstack(&ss, std::ptr::null_mut());
            libc::munmap(self.0, BIG_ALTSTACK);
        }
    }
}

thread_local! {
    static ALTSTACK: std::cell::RefCell<Option<AltStack>> = const { std::cell::RefCell::new(None) };
}

/// Gives the calling thread a 512 KiB alternate signal stack, so that faults on DAX
/// mappings are resolved in its own signal handler instead of being handed to the
/// fault-server thread (Rust's default alternate stack is too small for the engine).
/// Idempotent; must not be called from a signal handler.
pub(crate) fn prepare_thread() -> Result<(), DaxError> {
    ALTSTACK.with(|cell| {
        if cell.borrow().is_some() {
            return Ok(());
        }
        // SAFETY: a fresh private mapping for the stack, then installing it as this
        // thread's alternate signal stack (we are not running on the old one).
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                BIG_ALTSTACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return Err(os_error("allocating an alternate signal stack"));
            }
            let ss = libc::stack_t {
                ss_sp: p,
                ss_flags: 0,
                ss_size: BIG_ALTSTACK,
            };
            if libc::sigaltstack(&ss, std::ptr::null_mut()) != 0 {
                libc::munmap(p, BIG_ALTSTACK);
                return Err(os_error("installing an alternate signal stack"));
            }
            *cell.borrow_mut() = Some(AltStack(p));
        }
        Ok(())
    })
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
    let addr = unsafe { (*info).si_addr() } as u64;
    let resolver = RESOLVER.load(Ordering::Acquire);
    // SAFETY: ctx is the kernel's ucontext.
    let write = unsafe { is_write(ctx) };
    let outcome = if resolver.is_null() {
        None
    } else if altstack_room().is_some_and(|room| room < MIN_HANDLER_STACK) {
        server::request(addr, write)
    } else {
        // SAFETY: RESOLVER only ever holds a `Resolver`.
        let f: Resolver = unsafe { std::mem::transmute::<*mut (), Resolver>(resolver) };
        f(addr, write)
    };
    match outcome {
        Some(Ok(())) => {}
        Some(Err(r)) if r.contains(VmFault::SIGSEGV) => {
            // SAFETY: forwarding the kernel's own arguments.
            unsafe { chain(sig, info, ctx) }
        }
        // SAFETY: ctx is the kernel's ucontext.
        Some(Err(r)) => unsafe { raise_sigbus(addr, r, ctx) },
        // SAFETY: forwarding the kernel's own arguments.
        None => unsafe { chain(sig, info, ctx) },
    }
}

/// Passes a SIGSEGV that is not ours to the previous action.
///
/// # Safety
/// The arguments are the kernel's, unchanged.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: PREV was written before our handler was installed.
    let prev = unsafe { &*PREV.0.get() };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the default action and return: the access faults again and the
        // kernel applies it (terminate with a core dump), as without us.
        // SAFETY: a valid default action.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut());
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

/// Queues SIGBUS for the current thread with `si_addr = addr` (`BUS_MCEERR_AR` for
/// poison, `BUS_ADRERR` otherwise), and unblocks it in the mask restored when the
/// handler returns, so it is delivered at once, as the kernel's `force_sig_fault` does.
///
/// # Safety
/// `ctx` is the kernel's ucontext for this handler invocation.
unsafe fn raise_sigbus(addr: u64, r: VmFault, ctx: *mut c_void) {
    let code = if r.intersects(VmFault::HWPOISON | VmFault::HWPOISON_LARGE) {
        libc::BUS_MCEERR_AR
    } else {
        libc::BUS_ADRERR
    };
    // SAFETY: siginfo_t is plain data; the x86-64/aarch64 layout puts si_signo, si_errno
    // and si_code first and the fault address at offset 16.
    unsafe {
        let mut si: libc::siginfo_t = std::mem::zeroed();
        let p = &mut si as *mut libc::siginfo_t as *mut u8;
        *(p as *mut libc::c_int) = libc::SIGBUS;
        *(p.add(8) as *mut libc::c_int) = code;
        *(p.add(16) as *mut u64) = addr;
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            libc::getpid(),
            libc::gettid(),
            libc::SIGBUS,
            &si as *const libc::siginfo_t,
        );
        let uc = &mut *(ctx as *mut libc::ucontext_t);
        libc::sigdelset(&mut uc.uc_sigmask, libc::SIGBUS);
    }
}

/// The fault-server thread: resolves faults for threads whose handler runs on a stack
/// too small for the engine. Requests go through a fixed table and futexes, so the
/// handler side allocates nothing and takes no lock.
pub(crate) mod server {
    use super::*;

    const SLOTS: usize = 64;
    const FREE: u32 = 0;
    const CLAIMED: u32 = 1;
    const PENDING: u32 = 2;
    const TAKEN: u32 = 3;
    const DONE: u32 = 4;

    struct Req {
        state: AtomicU32,
        addr: AtomicU64,
        /// 0 load, 1 store, 2 unknown.
        write: AtomicU32,
        /// 0 ok, 1 not ours, else `VmFault` bits << 2.
        result: AtomicU32,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const REQ: Req = Req {
        state: AtomicU32::new(FREE),
        addr: AtomicU64::new(0),
        write: AtomicU32::new(0),
        result: AtomicU32::new(0),
    };
    static REQS: [Req; SLOTS] = [REQ; SLOTS];
    static BELL: AtomicU32 = AtomicU32::new(0);
    static START: Once = Once::new();

    fn futex_wait(word: &AtomicU32, val: u32) {
        // SAFETY: a private futex wait on a live static word.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                val,
                std::ptr::null::<libc::timespec>(),
            );
        }
    }

    fn futex_wake(word: &AtomicU32) {
        // SAFETY: a private futex wake on a live static word.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            );
        }
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
                let write = match r.write.load(Ordering::Relaxed) {
                    0 => Some(false),
                    1 => Some(true),
                    _ => None,
                };
                let f = RESOLVER.load(Ordering::Acquire);
                let out = if f.is_null() {
                    None
                } else {
                    // SAFETY: RESOLVER only ever holds a `Resolver`.
                    let f: Resolver = unsafe { std::mem::transmute::<*mut (), Resolver>(f) };
                    f(addr, write)
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

    /// Hands a fault to the server and waits for its answer (signal-handler side).
    pub(crate) fn request(addr: u64, write: Option<bool>) -> Option<Result<(), VmFault>> {
        let r = loop {
            if let Some(r) = REQS.iter().find(|r| {
                r.state
                    .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            }) {
                break r;
            }
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        };
        r.addr.store(addr, Ordering::Relaxed);
        r.write.store(
            match write {
                Some(false) => 0,
                Some(true) => 1,
                None => 2,
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
