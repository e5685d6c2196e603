//! The DAX device: the driver contract [`DaxOperations`] and its safe wrapper
//! [`DaxDevice`] (drivers/dax/super.c, include/linux/dax.h).
//!
//! A driver (a pmem-like region, a `/dev/dax` character device, a test device)
//! implements the `unsafe trait` [`DaxOperations`]. Filesystems never call the driver
//! directly: they hold a [`DaxDevice`], which adds what the kernel's `struct
//! dax_device` adds on top of the driver:
//!
//! * the lifecycle: ALIVE until [`DaxDevice::kill`] (`kill_dax`); every access to
//!   device memory happens inside a read section ([`DaxDevice::read_lock`],
//!   `dax_read_lock`) and `kill` waits for the sections that began before it;
//! * flags: write cache (gates [`DirectAccess::flush`]), synchronous (MAP_SYNC allowed),
//!   NOCACHE (writes bypass the cache), NOMC (reads tolerate poison);
//! * at most one holder (the filesystem) told about media failures
//!   ([`DaxHolder::notify_failure`]) and, before removal, about the whole device going
//!   away;
//! * argument checks and error mapping of `dax_direct_access`,
//!   `dax_zero_page_range`, `dax_recovery_write`, `dax_copy_{from,to}_iter`.
//!
//! Addresses handed out by [`DaxReadGuard::direct_access`] borrow the read guard, so
//! the type system keeps every use of device memory inside its section: after `kill`
//! returns, no thread can still hold one.
//!
//! One concept per module; only `ops` and `access` may use `unsafe`:
//!
//! * `ops`: the driver contract ([`DaxOperations`], [`RawAccess`], [`MapSource`],
//!   [`DaxAccessMode`]);
//! * `lifecycle`: [`DaxDevice`] itself, its [`DaxFlags`], run/kill and the
//!   device-wide operations;
//! * `holder`: the holder ([`DaxHolder`], [`MfFlags`]) and a filesystem's claim on
//!   the device ([`DaxDevice::fs_dax_get`], [`FsDax`]);
//! * `section`: read sections ([`DaxReadGuard`]) and what is allowed inside one;
//! * `access`: [`DirectAccess`], the bounds-checked raw copies, fill, flush and
//!   recovery write over device memory.
//!
//! ```
//! use std::ptr::NonNull;
//! use dax_device::{DaxAccessMode, DaxDevice, DaxError, DaxOperations, Pfn, RawAccess, PAGE_SIZE};
//!
//! /// A toy driver over a leaked, page-aligned buffer of 16 pages at address `base`.
//! struct Toy { base: usize, pages: u64 }
//! // SAFETY: `base` is the address of `pages` pages that live (leaked) for the whole
//! // program; pfns are derived from the address, so they are stable and unique.
//! unsafe impl DaxOperations for Toy {
//!     fn nr_pages(&self) -> u64 { self.pages }
//!     fn direct_access(&self, pgoff: u64, _nr: u64, _mode: DaxAccessMode) -> Result<RawAccess, DaxError> {
//!         if pgoff >= self.pages { return Ok(RawAccess::none()); }
//!         let addr = self.base + pgoff as usize * PAGE_SIZE;
//!         let pfn = Pfn(addr as u64 >> 12);
//!         Ok(RawAccess { addr: NonNull::new(addr as *mut u8).unwrap(), pfn, pages: self.pages - pgoff })
//!     }
//!     fn zero_page_range(&self, pgoff: u64, nr: u64) -> Result<(), DaxError> {
//!         let end = pgoff.checked_add(nr).filter(|&e| e <= self.pages)
//!             .ok_or(DaxError::InvalidArgument { what: "zeroing past the device" })?;
//!         let at = self.base + pgoff as usize * PAGE_SIZE;
//!         // SAFETY: `pgoff .. end` lies inside the live buffer (checked above); no
//!         // reference to it is formed.
//!         unsafe { std::ptr::write_bytes(at as *mut u8, 0, (end - pgoff) as usize * PAGE_SIZE) };
//!         Ok(())
//!     }
//! }
//!
//! let layout = std::alloc::Layout::from_size_align(16 * PAGE_SIZE, PAGE_SIZE).unwrap();
//! // SAFETY: non-zero size.
//! let base = unsafe { std::alloc::alloc_zeroed(layout) } as usize;
//! assert_ne!(base, 0);
//! let dev = DaxDevice::new(Toy { base, pages: 16 });
//! {
//!     let section = dev.read_lock();
//!     let da = section.direct_access(2, 4, DaxAccessMode::Access)?;
//!     assert_eq!(da.pages(), 4);
//!     assert_eq!(da.copy_from(0, b"hello"), 5);
//!     let mut back = [0u8; 5];
//!     assert_eq!(da.copy_to(0, &mut back), 5);
//!     assert_eq!(&back, b"hello");
//! }
//! dev.zero_page_range(2, 1)?; // the toy really zeroes
//! {
//!     let section = dev.read_lock();
//!     let mut back = [1u8; 5];
//!     assert_eq!(section.direct_access(2, 1, DaxAccessMode::Access)?.copy_to(0, &mut back), 5);
//!     assert_eq!(back, [0; 5]);
//! }
//! dev.kill();
//! assert_eq!(dev.read_lock().direct_access(0, 1, DaxAccessMode::Access).unwrap_err(), DaxError::Dead);
//! # Ok::<(), DaxError>(())
//! ```

#[allow(unsafe_code)]
mod access;
mod holder;
mod lifecycle;
#[allow(unsafe_code)]
mod ops;
mod section;

pub use access::DirectAccess;
pub use holder::{DaxHolder, FsDax, MfFlags};
pub use lifecycle::{DaxDevice, DaxFlags};
pub use ops::{DaxAccessMode, DaxOperations, MapSource, RawAccess};
pub use section::DaxReadGuard;
