//! The Linux DAX page-fault engine (`dax_iomap_fault` and friends in `fs/dax.c`), in
//! userspace, over a page-table trait.
//!
//! A filesystem keeps a [`DaxMapping`] per file (its mapping index of entries, the
//! user mappings of the file, its writeback error state) and answers faults on a
//! mapping ([`Vma`], registered with [`DaxMapping::mmap`]) by calling
//! [`dax_iomap_fault`] with its invalidate lock held shared. The engine decides what
//! to map — a PTE or a PMD of device memory, the zero page for holes, a private
//! copy-on-write page — and writes it through a [`PageTable`]: [`sim::SimPageTable`]
//! (a recorded, inspectable simulation) or the real backend [`mmu`] (feature `mmu`).
//!
//! Around it: [`dax_finish_sync_fault`] for MAP_SYNC, [`dax_writeback_mapping_range`]
//! for fsync, [`dax_layout_busy_page_range`] and [`dax_break_layout`] before a
//! block-map change, and [`mf_dax_kill_procs`] / [`dax_memory_failure`] for poison.
//! Results are [`VmFault`] bits with the kernel's values.
//!
//! The root holds what a filesystem calls. Three modules hold what it normally does
//! not: [`index`], the per-file mapping index and its entry-lock protocol (the engine
//! drives it; it is public for inspection and for model tests); [`sim`], the
//! simulated page table; and [`pages`], the per-device-page state (poison, pins) the
//! kernel keeps in `struct page`.
//!
//! The entry-lock protocol (exclusive waiters, wake-one on unlock, wake-all on delete,
//! the wake-next baton) goes through a `sync` module so that a `--cfg loom` build
//! model-checks it.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
// `unsafe` is allowed only in `mmu::sys` (and one documented dereference in
// `mmu::space`).
#![warn(missing_docs)]

mod errseq;
mod failure;
mod fault;
pub mod index;
mod invalidate;
mod layout;
mod mapping;
mod mm;
#[cfg(all(target_os = "linux", feature = "mmu"))]
#[cfg_attr(docsrs, doc(cfg(all(target_os = "linux", feature = "mmu"))))]
pub mod mmu;
mod page_state;
mod pagetable;
mod range;
pub mod sim;
mod sync;
mod vm;
mod writeback;

pub use failure::{MfLock, dax_lock_mapping_entry, dax_memory_failure, mf_dax_kill_procs};
pub use fault::{HUGE_ZERO_PFN, ZERO_PFN, dax_finish_sync_fault, dax_iomap_fault};
pub use invalidate::{
    dax_delete_mapping_entry, dax_delete_mapping_range, dax_invalidate_mapping_entry_sync,
};
pub use layout::{
    BreakLayoutWait, ERESTARTSYS, dax_break_layout, dax_break_layout_final, dax_break_layout_inode,
    dax_break_layout_relocking, dax_layout_busy_page, dax_layout_busy_page_range,
};
pub use mapping::{DaxMapping, FaultStats, MappedVma, VmOps, Vmf};
pub use pagetable::{Inserted, MapTarget, PageTable, PmdSlot, PmdValue, Pte, PteValue};
pub use vm::{FaultFlags, VmFault, Vma};
/// Per-device-page state, as the kernel keeps it in `struct page`: HWPoison
/// (`PageHWPoison`), and references other than page-table mappings, which make a page
/// "busy" for layout breaking: pins, standing in for `get_user_pages` and DMA. Pfns
/// are unique per process, so one table serves every device.
pub mod pages {
    pub use crate::layout::{PagePins, pin_user_pages};
    pub use crate::page_state::{clear_page_hwpoison, page_hwpoison, page_pins, wait_idle};
}
pub use writeback::{SyncMode, WritebackControl, dax_writeback_mapping_range};
