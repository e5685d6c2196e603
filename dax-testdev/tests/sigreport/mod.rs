//! A report of where a SIGBUS or SIGSEGV hit, for tests whose children touch real
//! mappings (the parent of a watched child sees only the signal number): the
//! address, `si_code`, and the mapping, offset and page when it lies in one the test
//! registered with [`track`]. Then the process dies by the signal as it would have
//! without the handler. Shared by `mmu_stress.rs` and `soak.rs` (`mod sigreport;`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use dax_fault::mmu::MmuMapping;

const PAGE: usize = 4096;

/// How many mappings [`track`] can name.
pub const TRACKED: usize = 4;
static TRACK_BASE: [AtomicUsize; TRACKED] = [const { AtomicUsize::new(0) }; TRACKED];
static TRACK_LEN: [AtomicUsize; TRACKED] = [const { AtomicUsize::new(0) }; TRACKED];

/// Records mapping `m` as number `i` for the SIGBUS report.
pub fn track(i: usize, m: &MmuMapping) {
    TRACK_LEN[i].store(m.len(), Ordering::SeqCst);
    TRACK_BASE[i].store(m.as_ptr() as usize, Ordering::SeqCst);
}

/// Appends `v` in hex to `buf` at `*n` (no allocation: used in a signal handler).
fn put_hex(buf: &mut [u8], n: &mut usize, v: usize) {
    for s in b"0x" {
        buf[*n] = *s;
        *n += 1;
    }
    let digits = (usize::BITS - v.leading_zeros()).div_ceil(4).max(1);
    for d in (0..digits).rev() {
        buf[*n] = b"0123456789abcdef"[(v >> (4 * d)) & 15];
        *n += 1;
    }
}

/// Appends `v` in decimal.
fn put_dec(buf: &mut [u8], n: &mut usize, v: usize) {
    let digits = v.checked_ilog10().unwrap_or(0) + 1;
    for d in (0..digits).rev() {
        buf[*n] = b'0' + (v / 10usize.pow(d) % 10) as u8;
        *n += 1;
    }
}

fn put_str(buf: &mut [u8], n: &mut usize, s: &[u8]) {
    buf[*n..*n + s.len()].copy_from_slice(s);
    *n += s.len();
}

/// Prints where a SIGBUS (or a SIGSEGV the engine passed on) hit: address, si_code,
/// offset and page in a tracked mapping; then dies by it as without the handler.
extern "C" fn report_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel (or the engine's rt_tgsigqueueinfo) passes a valid siginfo.
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    let mut buf = [0u8; 200];
    let mut n = 0;
    put_str(
        &mut buf,
        &mut n,
        if sig == libc::SIGBUS {
            b"\nSIGBUS at "
        } else {
            b"\nSIGSEGV at "
        },
    );
    put_hex(&mut buf, &mut n, addr);
    put_str(&mut buf, &mut n, b" si_code ");
    put_dec(&mut buf, &mut n, code as usize);
    for i in 0..TRACKED {
        let (b, l) = (
            TRACK_BASE[i].load(Ordering::SeqCst),
            TRACK_LEN[i].load(Ordering::SeqCst),
        );
        if addr >= b && addr < b + l {
            put_str(&mut buf, &mut n, b": mapping #");
            put_dec(&mut buf, &mut n, i);
            put_str(&mut buf, &mut n, b" offset ");
            put_hex(&mut buf, &mut n, addr - b);
            put_str(&mut buf, &mut n, b" page ");
            put_dec(&mut buf, &mut n, (addr - b) / PAGE);
        }
    }
    put_str(&mut buf, &mut n, b"\n");
    // SAFETY: write(2), sigaction and raise are async-signal-safe; the default action
    // is restored and SIGBUS, blocked while this handler runs, is delivered on return.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// Installs [`report_signal`] for SIGBUS, and for SIGSEGV before the engine installs
/// its handler, which passes faults that are not its own (or that it answers with
/// SIGSEGV) to it. In the child only: it replaces Rust's stack-overflow report.
pub fn install_signal_report() {
    for sig in [libc::SIGBUS, libc::SIGSEGV] {
        // SAFETY: installing a SA_SIGINFO handler with a valid action, on the
        // alternate stack when the thread has one.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = report_signal as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            assert_eq!(libc::sigaction(sig, &act, std::ptr::null_mut()), 0);
        }
    }
}
