//! The floor under a 4 KiB first touch through any userspace fault server built like
//! the mmu backend: N first touches (one load per 4 KiB page) of a 1 GiB populated
//! memfd through a `PROT_NONE` reservation whose SIGSEGV handler does nothing but map
//! the faulting 2 MiB block of the memfd with one `mmap(MAP_FIXED)` (one signal and
//! one `mmap` per block, no engine), against the same loads through a plain
//! `MAP_SHARED` mapping of the memfd (the kernel's own faults):
//! `fault_floor 10` and `fault_floor 10 kernel`. Only the loads are timed.
#![allow(missing_docs)]
use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const LEN: usize = 1 << 30;
const PAGE: usize = 4096;
const PMD: usize = 2 << 20;

static FD: AtomicI32 = AtomicI32::new(-1);
static BASE: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_segv(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo with the fault address for SIGSEGV.
    let addr = unsafe { (*info).si_addr() } as usize;
    let base = BASE.load(Ordering::Relaxed);
    let off = (addr - base) & !(PMD - 1);
    // SAFETY: replaces one 2 MiB block of our own PROT_NONE reservation (nothing
    // refers into it) with a shared read-only mapping of our memfd.
    let p = unsafe {
        libc::mmap(
            (base + off) as *mut libc::c_void,
            PMD,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_FIXED,
            FD.load(Ordering::Relaxed),
            off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        std::process::abort();
    }
}

fn touch(p: *const u8) -> u64 {
    let mut sum = 0u64;
    for off in (0..LEN).step_by(PAGE) {
        // SAFETY: `p .. p + LEN` is a live mapping (or reservation served by
        // `on_segv`) for the duration of the call.
        sum += unsafe { p.add(off).read_volatile() } as u64;
    }
    sum
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let kernel = std::env::args().nth(2).as_deref() == Some("kernel");
    // SAFETY: plain system calls on a memfd and mappings this function owns.
    unsafe {
        let fd = libc::memfd_create(c"fault-floor".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0 && libc::ftruncate(fd, LEN as libc::off_t) == 0);
        FD.store(fd, Ordering::Relaxed);
        // Allocate every page of the memfd once, untimed.
        let p = libc::mmap(
            ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        ptr::write_bytes(p.cast::<u8>(), 1, LEN);
        libc::munmap(p, LEN);
        let stack = vec![0u8; 1 << 20].leak();
        let ss = libc::stack_t {
            ss_sp: stack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: stack.len(),
        };
        assert_eq!(libc::sigaltstack(&ss, ptr::null_mut()), 0);
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_segv as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        assert_eq!(libc::sigaction(libc::SIGSEGV, &sa, ptr::null_mut()), 0);
    }
    let mut total = Duration::ZERO;
    for _ in 0..n {
        // SAFETY: fresh mappings of our own memfd or a fresh reservation, unmapped
        // below; only `touch` and `on_segv` use them in between.
        unsafe {
            let p = if kernel {
                libc::mmap(
                    ptr::null_mut(),
                    LEN,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    FD.load(Ordering::Relaxed),
                    0,
                )
            } else {
                libc::mmap(
                    ptr::null_mut(),
                    LEN,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            // A reservation is 4 KiB-aligned; the handler's blocks are counted from
            // its start, so the file offsets match the kernel case.
            BASE.store(p as usize, Ordering::Relaxed);
            let t = Instant::now();
            black_box(touch(p.cast()));
            total += t.elapsed();
            libc::munmap(p, LEN);
        }
    }
    let per = total.as_nanos() as f64 / (n * LEN / PAGE) as f64;
    println!(
        "{per:.1} ns per page ({})",
        if kernel { "kernel" } else { "signal + mmap" }
    );
}
