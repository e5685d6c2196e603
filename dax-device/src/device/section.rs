//! Read sections (`dax_read_lock` .. `dax_read_unlock`): [`DaxReadGuard`], the only
//! way to reach device memory, and what may be done inside one (`dax_alive`,
//! `dax_direct_access`, `dax_zero_page_range`).

use std::fmt;

use super::{DaxAccessMode, DaxDevice, DaxFlags, DaxOperations, DirectAccess};
use crate::DaxError;

/// A read section of a [`DaxDevice`] (`dax_read_lock` .. `dax_read_unlock`).
///
/// Everything that reaches device memory goes through a guard; [`DaxDevice::kill`]
/// waits until the guards that existed when it cleared ALIVE are dropped.
#[must_use = "the section ends when the guard is dropped"]
pub struct DaxReadGuard<'a, D: ?Sized + DaxOperations = dyn DaxOperations> {
    dev: &'a DaxDevice<D>,
    idx: usize,
}

impl<'a, D: ?Sized + DaxOperations> DaxReadGuard<'a, D> {
    /// Begins a section of `dev` (the body of [`DaxDevice::read_lock`]).
    pub(super) fn begin(dev: &'a DaxDevice<D>) -> Self {
        DaxReadGuard {
            dev,
            idx: dev.srcu.read_lock(),
        }
    }
}

impl<D: ?Sized + DaxOperations> Drop for DaxReadGuard<'_, D> {
    fn drop(&mut self) {
        self.dev.srcu.read_unlock(self.idx);
    }
}

impl<D: ?Sized + DaxOperations> fmt::Debug for DaxReadGuard<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaxReadGuard")
            .field("alive", &self.alive())
            .finish()
    }
}

impl<'a, D: ?Sized + DaxOperations> DaxReadGuard<'a, D> {
    /// The device this section belongs to.
    pub fn device(&self) -> &'a DaxDevice<D> {
        self.dev
    }

    /// Whether the device is alive (`dax_alive`; the kernel allows it only inside a
    /// section, which the guard enforces).
    pub fn alive(&self) -> bool {
        self.dev.flags().contains(DaxFlags::ALIVE)
    }

    /// Translates device page `pgoff` for up to `nr_pages` pages (`dax_direct_access`).
    ///
    /// Checks in the kernel's order: dead → [`DaxError::Dead`]; `nr_pages >
    /// i64::MAX` (a negative `long` in the kernel) → [`DaxError::InvalidArgument`];
    /// then the driver, whose errors pass through unchanged (e.g.
    /// [`DaxError::HwPoison`]); a driver answer of 0 pages → [`DaxError::OutOfRange`]
    /// (`ERANGE`); otherwise `min(answer, nr_pages)` pages, so `nr_pages == 0` gives an
    /// empty [`DirectAccess`] rather than an error.
    ///
    /// Deliberate difference: on failure the kernel still fills `kaddr`/`pfn`; here an
    /// error carries no address (fs/dax.c never uses it: it asks again in
    /// [`DaxAccessMode::RecoveryWrite`]).
    pub fn direct_access(
        &self,
        pgoff: u64,
        nr_pages: u64,
        mode: DaxAccessMode,
    ) -> Result<DirectAccess<'_, D>, DaxError> {
        DirectAccess::translate(self, pgoff, nr_pages, mode)
    }

    /// [`DaxDevice::zero_page_range`] inside this section.
    pub fn zero_page_range(&self, pgoff: u64, nr_pages: u64) -> Result<(), DaxError> {
        if !self.alive() {
            return Err(DaxError::Dead);
        }
        if nr_pages != 1 {
            return Err(DaxError::Io {
                what: "dax_zero_page_range supports exactly one page",
            });
        }
        self.dev
            .ops
            .zero_page_range(pgoff, nr_pages)
            .map_err(DaxError::mem2blk)
    }
}
