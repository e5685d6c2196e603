//! The Linux DAX page-fault engine (`dax_iomap_fault` and friends in `fs/dax.c`) and
//! its `mmu` backend.
//!
//! Not yet implemented: this crate reserves the name and its place in the workspace.
