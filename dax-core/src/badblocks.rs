//! Media-error table (`block/badblocks.c`). Placeholder: being written.

/// The bad-sector table of a device (`struct badblocks`).
#[derive(Debug, Default)]
pub struct Badblocks {}
