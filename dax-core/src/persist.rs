//! Cache write-back and persistent copies. Temporary portable stand-in with the final
//! signatures; the measured hardware paths replace it.
#![allow(missing_docs, clippy::missing_safety_doc)]

/// Writes back cache lines overlapping the range (stand-in: fence only).
pub unsafe fn flush_range(_addr: *const u8, _len: usize) {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}
/// Store fence.
pub fn drain() {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}
/// memcpy_flushcache stand-in.
pub unsafe fn copy_flushcache(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: forwarded caller contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}
