//! The iomap model and the file I/O half of the Linux DAX core (`fs/iomap/*`,
//! `dax_iomap_rw` in `fs/dax.c`).
//!
//! Not yet implemented: this crate reserves the name and its place in the workspace.
