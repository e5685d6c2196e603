//! The Linux DAX page-fault engine (`dax_iomap_fault` and friends in `fs/dax.c`) and
//! its `mmu` backend — being built.
//!
//! Present so far: [`MappingIndex`], the per-file index of DAX mapping entries with
//! the kernel's entry-lock protocol (exclusive waiters, wake-one on unlock, wake-all on
//! delete, the wake-next baton), `grab_mapping_entry`'s PMD/PTE rules and
//! `dax_insert_entry`'s replacement rules. Its locks go through a `sync` module so
//! that a `--cfg loom` build model-checks the protocol.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod index;
mod sync;

pub use index::{Entry, EntryInfo, EntryKind, GrabError, LockedEntry, MappingIndex, Marks, bits};
