//! Reads and writes on DAX files (`dax_iomap_rw`, fs/dax.c).

use std::sync::atomic::AtomicBool;

use dax_core::DaxError;

use crate::iomap::{DaxInode, IomapOps};
use crate::iov::IovIter;

/// The I/O control block of a read or write (`struct kiocb`): where it starts and how
/// it behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kiocb<'a> {
    /// File position (`ki_pos`); advanced by the bytes transferred.
    pub pos: u64,
    /// Do not block (`IOCB_NOWAIT`): `IOMAP_NOWAIT` is passed to the filesystem.
    pub nowait: bool,
    /// Set to stop the operation at the next chunk boundary with `EINTR`, as a fatal
    /// signal does in the kernel.
    pub interrupted: Option<&'a AtomicBool>,
}

impl Kiocb<'_> {
    /// A control block at `pos` with default behaviour.
    pub fn new(pos: u64) -> Self {
        Kiocb {
            pos,
            ..Kiocb::default()
        }
    }
}

/// Reads into or writes from `iter` at `iocb.pos` (`dax_iomap_rw`); returns the bytes
/// transferred (advancing `iocb.pos` by them) if any, else the error.
pub fn dax_iomap_rw<I, O>(
    inode: &I,
    ops: &O,
    iocb: &mut Kiocb<'_>,
    iter: &mut IovIter<'_>,
) -> Result<usize, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    let _ = (inode, ops, iocb, iter);
    Err(DaxError::NotSupported {
        what: "dax_iomap_rw is not implemented yet",
    })
}

/// Reads into `buf` at `pos`: [`dax_iomap_rw`] with one destination buffer.
pub fn dax_iomap_read<I, O>(inode: &I, ops: &O, pos: u64, buf: &mut [u8]) -> Result<usize, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    dax_iomap_rw(
        inode,
        ops,
        &mut Kiocb::new(pos),
        &mut IovIter::read(vec![buf]),
    )
}

/// Writes `buf` at `pos`: [`dax_iomap_rw`] with one source buffer.
pub fn dax_iomap_write<I, O>(inode: &I, ops: &O, pos: u64, buf: &[u8]) -> Result<usize, DaxError>
where
    I: DaxInode + ?Sized,
    O: IomapOps + ?Sized,
{
    dax_iomap_rw(
        inode,
        ops,
        &mut Kiocb::new(pos),
        &mut IovIter::write(vec![buf]),
    )
}
