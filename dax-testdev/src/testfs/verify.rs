//! The argument checks the VFS makes before a file operation reaches a filesystem
//! (`rw_verify_area`, `remap_verify_area`, `generic_write_check_limits`), and the
//! error helpers TestFs's operations share. Pure functions: no state, no locks.

use dax_device::DaxError;
use dax_iomap::MAX_FILE_SIZE;

/// `EINVAL`, saying `what`.
pub(crate) fn einval(what: &'static str) -> DaxError {
    DaxError::InvalidArgument { what }
}

/// `EFBIG`, saying `what`.
pub(crate) fn efbig(what: &'static str) -> DaxError {
    DaxError::FileTooBig { what }
}

/// Checks a file position and length as `loff_t`s: `EINVAL` when either is negative
/// as a signed 64-bit value, `EFBIG` when the end passes [`MAX_FILE_SIZE`].
pub(crate) fn check_range(pos: u64, len: u64) -> Result<u64, DaxError> {
    if pos > i64::MAX as u64 || len > i64::MAX as u64 {
        return Err(einval("offset or length is negative as a loff_t"));
    }
    match pos.checked_add(len) {
        Some(end) if end <= MAX_FILE_SIZE => Ok(end),
        _ => Err(efbig("range ends past the largest file size")),
    }
}

/// `rw_verify_area` and `remap_verify_area`: a position or a length that is negative
/// as a `loff_t`, or a range whose end overflows one, is `EINVAL` (checked before
/// anything else, a zero length included, as `pread64`/`pwrite64` check a negative
/// position first).
pub(crate) fn verify_area(pos: u64, len: u64) -> Result<(), DaxError> {
    let max = i64::MAX as u64;
    if pos > max || len > max || pos + len > max {
        return Err(einval(
            "offset, length or their sum is negative as a loff_t",
        ));
    }
    Ok(())
}

/// How many bytes of `buf` a write at `pos` may take (`generic_write_check_limits`):
/// `EINVAL` for a negative offset, `EFBIG` at the largest file size, else the count
/// cut to stay below it.
pub(crate) fn count_at(pos: u64, buf: &[u8]) -> Result<usize, DaxError> {
    check_range(pos, 0)?;
    if pos >= MAX_FILE_SIZE {
        return Err(efbig("write at the largest file size"));
    }
    Ok(buf
        .len()
        .min(usize::try_from(MAX_FILE_SIZE - pos).unwrap_or(usize::MAX)))
}
