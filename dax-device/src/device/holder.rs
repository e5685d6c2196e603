//! The holder of a device (`struct dax_holder_operations`): the one filesystem or
//! stacking driver told about media failures ([`DaxHolder`], [`MfFlags`]), its claim
//! and release (`fs_dax_get_by_bdev`, `fs_put_dax`, `dax_holder_notify_failure`), and
//! the filesystem's handle on a partition of the device ([`FsDax`]).

use std::fmt;
use std::sync::Arc;

use super::{DaxDevice, DaxOperations};
use crate::{DaxError, PAGE_SIZE};

bitflags::bitflags! {
    /// Memory-failure flags passed to [`DaxHolder::notify_failure`] (`MF_*` in
    /// include/linux/mm.h, same values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MfFlags: u32 {
        /// `MF_COUNT_INCREASED`.
        const COUNT_INCREASED = 1 << 0;
        /// `MF_ACTION_REQUIRED`: the failure was consumed synchronously.
        const ACTION_REQUIRED = 1 << 1;
        /// `MF_MUST_KILL`.
        const MUST_KILL = 1 << 2;
        /// `MF_SOFT_OFFLINE`.
        const SOFT_OFFLINE = 1 << 3;
        /// `MF_UNPOISON`.
        const UNPOISON = 1 << 4;
        /// `MF_SW_SIMULATED`: injected by software.
        const SW_SIMULATED = 1 << 5;
        /// `MF_NO_RETRY`.
        const NO_RETRY = 1 << 6;
        /// `MF_MEM_PRE_REMOVE`: the whole device is about to go away (sent by
        /// [`DaxDevice::kill`](crate::DaxDevice::kill)), not a poison event.
        const MEM_PRE_REMOVE = 1 << 7;
    }
}

/// The holder of a device (a filesystem or a stacking driver), told about media
/// failures (`struct dax_holder_operations`).
pub trait DaxHolder: Send + Sync {
    /// Device bytes `offset .. offset + len` failed (`notify_failure`). `len ==
    /// u64::MAX` with `offset == 0` means the whole device (sent with
    /// [`MfFlags::MEM_PRE_REMOVE`] before removal). Return
    /// [`DaxError::NotSupported`] to let the generic memory-failure path handle it.
    fn notify_failure(&self, offset: u64, len: u64, flags: MfFlags) -> Result<(), DaxError>;
}

impl<D: ?Sized + DaxOperations> DaxDevice<D> {
    /// Registers `holder` if the device has none (the holder half of
    /// `fs_dax_get_by_bdev`). Fails with [`DaxError::Busy`] when another holder (even
    /// the same one) is registered, with [`DaxError::Dead`] when the device is dead.
    pub fn claim_holder(&self, holder: Arc<dyn DaxHolder>) -> Result<(), DaxError> {
        let section = self.read_lock();
        if !section.alive() {
            return Err(DaxError::Dead);
        }
        let mut slot = self.holder.lock();
        if slot.is_some() {
            return Err(DaxError::Busy {
                what: "the DAX device already has a holder",
            });
        }
        *slot = Some(holder);
        Ok(())
    }

    /// Releases the holder claim if `holder` is the registered holder (the holder half
    /// of `fs_put_dax`); returns whether it was.
    pub fn release_holder(&self, holder: &Arc<dyn DaxHolder>) -> bool {
        let mut slot = self.holder.lock();
        match &*slot {
            Some(h) if same_holder(h, holder) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    /// The registered holder, if any (`dax_holder`).
    pub fn holder(&self) -> Option<Arc<dyn DaxHolder>> {
        self.holder.lock().clone()
    }

    /// Tells the holder that device bytes `offset .. offset + len` failed
    /// (`dax_holder_notify_failure`): [`DaxError::Dead`] if the device is dead,
    /// [`DaxError::NotSupported`] without a holder, else the holder's answer.
    pub fn holder_notify_failure(
        &self,
        offset: u64,
        len: u64,
        flags: MfFlags,
    ) -> Result<(), DaxError> {
        let section = self.read_lock();
        if !section.alive() {
            return Err(DaxError::Dead);
        }
        let holder = self.holder.lock().clone();
        match holder {
            None => Err(DaxError::NotSupported {
                what: "the DAX device has no holder",
            }),
            Some(h) => h.notify_failure(offset, len, flags),
        }
    }
}

impl<D: ?Sized + DaxOperations> DaxDevice<D> {
    /// Opens the device for a filesystem on a partition that starts `part_start` bytes
    /// into it and is `part_len` bytes long, optionally claiming it for `holder`
    /// (`fs_dax_get_by_bdev`). Dropping the returned [`FsDax`] releases the claim
    /// (`fs_put_dax`).
    ///
    /// Fails with [`DaxError::InvalidArgument`] when the partition start or size is not
    /// a multiple of 4096 ("unaligned partition for dax") or runs past the device,
    /// [`DaxError::Dead`] when the device is dead, and [`DaxError::Busy`] when `holder`
    /// is given and the device already has one. (The kernel answers NULL for all of
    /// these, and leaks a reference on the holder failure; here nothing
    /// leaks.)
    pub fn fs_dax_get(
        self: &Arc<Self>,
        part_start: u64,
        part_len: u64,
        holder: Option<Arc<dyn DaxHolder>>,
    ) -> Result<FsDax<D>, DaxError> {
        let page = PAGE_SIZE as u64;
        if !part_start.is_multiple_of(page) || !part_len.is_multiple_of(page) {
            return Err(DaxError::InvalidArgument {
                what: "unaligned partition for dax",
            });
        }
        let end = part_start.checked_add(part_len);
        if end.is_none_or(|e| e > self.ops.nr_pages().saturating_mul(page)) {
            return Err(DaxError::InvalidArgument {
                what: "partition runs past the end of the DAX device",
            });
        }
        if !self.read_lock().alive() {
            return Err(DaxError::Dead);
        }
        if let Some(h) = &holder {
            self.claim_holder(h.clone())?;
        }
        Ok(FsDax {
            dev: self.clone(),
            start_off: part_start,
            holder,
        })
    }
}

/// A filesystem's handle on a DAX device, from [`DaxDevice::fs_dax_get`]: the
/// device, the partition's byte offset into it (added to every `iomap.addr`, as ext4
/// and XFS add `s_dax_part_off`/`bt_dax_part_off`), and the holder claim, released on
/// drop (`fs_put_dax`).
pub struct FsDax<D: ?Sized + DaxOperations = dyn DaxOperations> {
    dev: Arc<DaxDevice<D>>,
    start_off: u64,
    holder: Option<Arc<dyn DaxHolder>>,
}

impl<D: ?Sized + DaxOperations> FsDax<D> {
    /// The device.
    pub fn device(&self) -> &Arc<DaxDevice<D>> {
        &self.dev
    }

    /// Byte offset of the partition within the device.
    pub fn start_off(&self) -> u64 {
        self.start_off
    }
}

impl<D: ?Sized + DaxOperations> fmt::Debug for FsDax<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsDax")
            .field("start_off", &self.start_off)
            .field("holds", &self.holder.is_some())
            .finish_non_exhaustive()
    }
}

impl<D: ?Sized + DaxOperations> Drop for FsDax<D> {
    fn drop(&mut self) {
        if let Some(h) = &self.holder {
            // Only releases the claim if it is still ours (a kill may have cleared it).
            self.dev.release_holder(h);
        }
    }
}

fn same_holder(a: &Arc<dyn DaxHolder>, b: &Arc<dyn DaxHolder>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}
