//! [`DaxError`]: every failure in dax-rs, with the Linux errno it stands for.
//!
//! The kernel reports DAX failures as negative errno values; dax-rs reports them as
//! variants that carry the numbers a caller needs (which page, which sector, how many
//! bytes were cleared), and [`DaxError::errno`] gives back the exact Linux value, so a
//! FUSE server or a differential test can hand it on unchanged; [`errno_name`] (and
//! [`DaxError::errno_name`]) names it (`EIO`, `EHWPOISON`) for messages people read.

/// An error from the DAX core, a driver or a filesystem, with its Linux errno.
///
/// Mirrors the negative `errno` returns of `drivers/dax/super.c`, `fs/dax.c` and the
/// pmem driver. [`DaxError::errno`] is the positive errno value (`libc::EIO`, ...).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaxError {
    /// The device has been killed (`kill_dax`) or was never alive: `ENXIO`.
    #[error("DAX device is not alive")]
    Dead,
    /// An argument is out of its domain: `EINVAL`.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// Which argument, and why.
        what: &'static str,
    },
    /// The driver answered 0 pages for `pgoff` (past the end of the device): `ERANGE`.
    ///
    /// Mirrors `dax_direct_access` turning a driver result of 0 into `-ERANGE`.
    #[error("page offset {pgoff} is outside the device ({dev_pages} pages)")]
    OutOfRange {
        /// The device page offset that was asked for.
        pgoff: u64,
        /// The number of pages the device has.
        dev_pages: u64,
    },
    /// Known poison in the requested pages, seen through a memory-like path:
    /// `EHWPOISON`.
    ///
    /// Mirrors pmem's `direct_access` in `DAX_ACCESS` mode over a bad sector.
    #[error("hardware poison in device pages {pgoff}..{end}", end = pgoff.saturating_add(*nr_pages))]
    HwPoison {
        /// First page of the request.
        pgoff: u64,
        /// Pages in the request.
        nr_pages: u64,
    },
    /// Poison seen through a block-like path (read/write/zero): `EIO`.
    ///
    /// This is what `dax_mem2blk_err` makes of [`DaxError::HwPoison`].
    #[error("media error in device pages {pgoff}..{end}", end = pgoff.saturating_add(*nr_pages))]
    MediaError {
        /// First page of the request.
        pgoff: u64,
        /// Pages in the request.
        nr_pages: u64,
    },
    /// The platform did not clear all the poison asked for: `EIO`.
    ///
    /// Mirrors `pmem_clear_poison` failing the block write when `cleared < len`.
    #[error("poison clear at device byte {offset} cleared {cleared} of {len} bytes")]
    PoisonNotCleared {
        /// Device byte offset of the clear.
        offset: u64,
        /// Bytes asked to clear.
        len: u64,
        /// Bytes the platform reports cleared (0 on failure).
        cleared: u64,
    },
    /// A generic I/O error: `EIO`.
    #[error("I/O error: {what}")]
    Io {
        /// What failed.
        what: &'static str,
    },
    /// The operation is not supported by this device or holder: `EOPNOTSUPP`.
    #[error("operation not supported: {what}")]
    NotSupported {
        /// What is missing.
        what: &'static str,
    },
    /// No space left (for instance a full badblocks table): `ENOSPC`.
    #[error("no space: {what}")]
    NoSpace {
        /// What is full.
        what: &'static str,
    },
    /// A bad address, or no bytes could be moved: `EFAULT`.
    #[error("bad address: {what}")]
    Fault {
        /// What could not be accessed.
        what: &'static str,
    },
    /// The operation would block (`IOCB_NOWAIT`/`IOMAP_NOWAIT`): `EAGAIN`.
    #[error("operation would block")]
    WouldBlock,
    /// The resource is busy: `EBUSY`.
    #[error("busy: {what}")]
    Busy {
        /// What is busy.
        what: &'static str,
    },
    /// An offset or length computation overflowed: `EOVERFLOW`.
    #[error("arithmetic overflow: {what}")]
    Overflow {
        /// Which computation.
        what: &'static str,
    },
    /// A filesystem's `iomap_begin` returned a mapping the DAX core cannot use: zero
    /// length, not covering `pos`, an address not page-aligned with the file offset,
    /// past the end of the device, no device where one is needed, a source map where
    /// none may be, a STALE flag: `EIO`.
    ///
    /// The kernel only warns about most of these and carries on; dax-rs refuses the
    /// mapping so that a buggy filesystem can never make it loop or write outside the
    /// extent.
    #[error(
        "invalid mapping for file position {pos}: {reason} (offset {offset}, length {length}, addr {addr:#x})"
    )]
    InvalidMapping {
        /// The file position the mapping was asked for.
        pos: u64,
        /// The mapping's file offset.
        offset: u64,
        /// The mapping's length.
        length: u64,
        /// The mapping's device address.
        addr: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A fatal signal (or the caller's cancellation) stopped the operation: `EINTR`.
    #[error("interrupted")]
    Interrupted,
    /// A position or size beyond what the file may reach: `EFBIG`.
    #[error("file too big: {what}")]
    FileTooBig {
        /// What is too big.
        what: &'static str,
    },
    /// Memory could not be allocated: `ENOMEM` (a fault answers it with
    /// `VM_FAULT_OOM`).
    #[error("out of memory: {what}")]
    OutOfMemory {
        /// What could not be allocated.
        what: &'static str,
    },
    /// A filesystem's own error: no such file or directory, `ENOENT`.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: &'static str,
    },
    /// A filesystem's own error: the name exists already, `EEXIST`.
    #[error("already exists: {what}")]
    Exists {
        /// What exists.
        what: &'static str,
    },
    /// A filesystem's own error: a name longer than the filesystem allows,
    /// `ENAMETOOLONG`.
    #[error("name too long: {what}")]
    NameTooLong {
        /// Which name, and the limit.
        what: &'static str,
    },
    /// A filesystem's own error: a directory was needed, `ENOTDIR`.
    #[error("not a directory: {what}")]
    NotDirectory {
        /// What is not a directory.
        what: &'static str,
    },
    /// A filesystem's own error: the operation does not apply to a directory, `EISDIR`.
    #[error("is a directory: {what}")]
    IsDirectory {
        /// What is a directory.
        what: &'static str,
    },
    /// A filesystem's own error: the directory is not empty, `ENOTEMPTY`.
    #[error("directory not empty: {what}")]
    NotEmpty {
        /// Which directory.
        what: &'static str,
    },
    /// A filesystem's own error: access denied by permissions, `EACCES`.
    #[error("permission denied: {what}")]
    PermissionDenied {
        /// What was refused.
        what: &'static str,
    },
    /// A filesystem's own error: the operation is not permitted at all (immutable
    /// file, missing privilege), `EPERM`.
    #[error("operation not permitted: {what}")]
    NotPermitted {
        /// What was refused.
        what: &'static str,
    },
    /// A filesystem's own error: the filesystem is read-only, `EROFS`.
    #[error("read-only filesystem: {what}")]
    ReadOnly {
        /// What would have written.
        what: &'static str,
    },
    /// A filesystem's own error: the operation would cross filesystems, `EXDEV`.
    #[error("cross-device operation: {what}")]
    CrossDevice {
        /// Which operation.
        what: &'static str,
    },
    /// A filesystem's own error: too many links to one inode, `EMLINK`.
    #[error("too many links: {what}")]
    TooManyLinks {
        /// Which inode.
        what: &'static str,
    },
    /// A filesystem's own error: its metadata is corrupt, `EUCLEAN` (the value ext4
    /// and XFS return as `EFSCORRUPTED`).
    #[error("filesystem corrupted: {what}")]
    Corrupted {
        /// What is corrupt.
        what: &'static str,
    },
    /// An errno from the operating system, or one injected by a test device.
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*errno))]
    Os {
        /// The positive Linux errno value.
        errno: i32,
        /// What was being done.
        what: &'static str,
    },
}

impl DaxError {
    /// The positive Linux errno value of this error (`libc::EIO`, `libc::ENXIO`, ...).
    pub fn errno(&self) -> i32 {
        match self {
            DaxError::Dead => libc::ENXIO,
            DaxError::InvalidArgument { .. } => libc::EINVAL,
            DaxError::OutOfRange { .. } => libc::ERANGE,
            DaxError::HwPoison { .. } => libc::EHWPOISON,
            DaxError::MediaError { .. }
            | DaxError::PoisonNotCleared { .. }
            | DaxError::Io { .. } => libc::EIO,
            DaxError::NotSupported { .. } => libc::EOPNOTSUPP,
            DaxError::NoSpace { .. } => libc::ENOSPC,
            DaxError::Fault { .. } => libc::EFAULT,
            DaxError::WouldBlock => libc::EAGAIN,
            DaxError::Busy { .. } => libc::EBUSY,
            DaxError::Overflow { .. } => libc::EOVERFLOW,
            DaxError::InvalidMapping { .. } => libc::EIO,
            DaxError::Interrupted => libc::EINTR,
            DaxError::FileTooBig { .. } => libc::EFBIG,
            DaxError::OutOfMemory { .. } => libc::ENOMEM,
            DaxError::NotFound { .. } => libc::ENOENT,
            DaxError::Exists { .. } => libc::EEXIST,
            DaxError::NameTooLong { .. } => libc::ENAMETOOLONG,
            DaxError::NotDirectory { .. } => libc::ENOTDIR,
            DaxError::IsDirectory { .. } => libc::EISDIR,
            DaxError::NotEmpty { .. } => libc::ENOTEMPTY,
            DaxError::PermissionDenied { .. } => libc::EACCES,
            DaxError::NotPermitted { .. } => libc::EPERM,
            DaxError::ReadOnly { .. } => libc::EROFS,
            DaxError::CrossDevice { .. } => libc::EXDEV,
            DaxError::TooManyLinks { .. } => libc::EMLINK,
            DaxError::Corrupted { .. } => libc::EUCLEAN,
            DaxError::Os { errno, .. } => *errno,
        }
    }

    /// The error for a Linux errno: the variant that stands for it where one needs
    /// nothing but a description (`ENOENT` → [`DaxError::NotFound`], `EIO` →
    /// [`DaxError::Io`], ...), [`DaxError::Os`] otherwise (`ERANGE`, `EHWPOISON` and
    /// the rest). `errno` may be positive (`libc::ENOENT`) or negated, as the kernel
    /// returns it (`-libc::ENOENT`); 0, which is no error, gives `EIO`. Always
    /// `DaxError::from_errno(e, what).errno() == e.abs()` for a non-zero `e`.
    ///
    /// ```
    /// use dax_device::DaxError;
    ///
    /// let e = DaxError::from_errno(-libc::ENOENT, "lookup of a.txt");
    /// assert!(matches!(e, DaxError::NotFound { .. }));
    /// assert_eq!(e.errno(), libc::ENOENT);
    /// assert_eq!(DaxError::from_errno(libc::ERANGE, "x").errno(), libc::ERANGE);
    /// ```
    pub fn from_errno(errno: i32, what: &'static str) -> Self {
        match errno.checked_abs().unwrap_or(libc::EIO) {
            0 => DaxError::Io { what },
            libc::ENXIO => DaxError::Dead,
            libc::EINVAL => DaxError::InvalidArgument { what },
            libc::EIO => DaxError::Io { what },
            libc::EOPNOTSUPP => DaxError::NotSupported { what },
            libc::ENOSPC => DaxError::NoSpace { what },
            libc::EFAULT => DaxError::Fault { what },
            libc::EAGAIN => DaxError::WouldBlock,
            libc::EBUSY => DaxError::Busy { what },
            libc::EOVERFLOW => DaxError::Overflow { what },
            libc::EINTR => DaxError::Interrupted,
            libc::EFBIG => DaxError::FileTooBig { what },
            libc::ENOMEM => DaxError::OutOfMemory { what },
            libc::ENOENT => DaxError::NotFound { what },
            libc::EEXIST => DaxError::Exists { what },
            libc::ENAMETOOLONG => DaxError::NameTooLong { what },
            libc::ENOTDIR => DaxError::NotDirectory { what },
            libc::EISDIR => DaxError::IsDirectory { what },
            libc::ENOTEMPTY => DaxError::NotEmpty { what },
            libc::EACCES => DaxError::PermissionDenied { what },
            libc::EPERM => DaxError::NotPermitted { what },
            libc::EROFS => DaxError::ReadOnly { what },
            libc::EXDEV => DaxError::CrossDevice { what },
            libc::EMLINK => DaxError::TooManyLinks { what },
            libc::EUCLEAN => DaxError::Corrupted { what },
            errno => DaxError::Os { errno, what },
        }
    }

    /// The symbolic name of this error's errno ([`errno_name`]): `"EIO"` for a
    /// [`DaxError::MediaError`], `"EHWPOISON"` for a [`DaxError::HwPoison`], ...;
    /// `None` only for a [`DaxError::Os`] carrying a value Linux does not define.
    /// For messages a person reads, where `-5` or `errno 5` says little.
    ///
    /// ```
    /// use dax_device::DaxError;
    ///
    /// let e = DaxError::MediaError { pgoff: 18, nr_pages: 1 };
    /// assert_eq!(e.errno_name(), Some("EIO"));
    /// assert_eq!(format!("{e} ({})", e.errno_name().unwrap()),
    ///            "media error in device pages 18..19 (EIO)");
    /// ```
    pub fn errno_name(&self) -> Option<&'static str> {
        errno_name(self.errno())
    }

    /// The error as the kernel returns it: the negated errno (`-libc::EIO`, ...).
    pub fn to_kernel_errno(&self) -> i32 {
        -self.errno()
    }

    /// The [`std::io::ErrorKind`] of this error's errno, as the standard library
    /// classifies it.
    pub fn kind(&self) -> std::io::ErrorKind {
        std::io::Error::from_raw_os_error(self.errno()).kind()
    }

    /// The error for a [`std::io::Error`], described by `what`: by its OS error code
    /// when it has one ([`DaxError::from_errno`]), otherwise by its kind (`NotFound` →
    /// `ENOENT`, ...; a kind with no errno of its own gives `EIO`).
    pub fn from_io(what: &'static str, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let errno = err.raw_os_error().unwrap_or(match err.kind() {
            K::NotFound => libc::ENOENT,
            K::PermissionDenied => libc::EACCES,
            K::AlreadyExists => libc::EEXIST,
            K::WouldBlock => libc::EAGAIN,
            K::InvalidInput => libc::EINVAL,
            K::Interrupted => libc::EINTR,
            K::Unsupported => libc::EOPNOTSUPP,
            K::OutOfMemory => libc::ENOMEM,
            K::StorageFull => libc::ENOSPC,
            K::NotADirectory => libc::ENOTDIR,
            K::IsADirectory => libc::EISDIR,
            K::DirectoryNotEmpty => libc::ENOTEMPTY,
            K::ReadOnlyFilesystem => libc::EROFS,
            K::CrossesDevices => libc::EXDEV,
            K::TooManyLinks => libc::EMLINK,
            K::InvalidFilename => libc::ENAMETOOLONG,
            K::FileTooLarge => libc::EFBIG,
            K::ResourceBusy => libc::EBUSY,
            K::Deadlock => libc::EDEADLK,
            K::TimedOut => libc::ETIMEDOUT,
            _ => libc::EIO,
        });
        DaxError::from_errno(errno, what)
    }

    /// The block-device personality of an error: [`DaxError::HwPoison`] becomes
    /// [`DaxError::MediaError`] (`EIO`), everything else is unchanged.
    ///
    /// Mirrors `dax_mem2blk_err` (include/linux/dax.h): DAX reports poison as
    /// `EHWPOISON` where it behaves like memory and as `EIO` where it behaves like a
    /// block device.
    pub fn mem2blk(self) -> Self {
        match self {
            DaxError::HwPoison { pgoff, nr_pages } => DaxError::MediaError { pgoff, nr_pages },
            other => other,
        }
    }
}

/// The symbolic name of a Linux errno (`"EIO"` for `libc::EIO`, `"EHWPOISON"`, ...),
/// as `strerrorname_np(3)` gives it; `errno` may be positive or negated, as the
/// kernel returns it. `None` for 0 and for values Linux does not define. Where Linux
/// has two names for one value, the first one is given: `EAGAIN` (not
/// `EWOULDBLOCK`), `EDEADLK` (not `EDEADLOCK`), `EOPNOTSUPP` (not `ENOTSUP`).
///
/// ```
/// assert_eq!(dax_device::errno_name(libc::EIO), Some("EIO"));
/// assert_eq!(dax_device::errno_name(-libc::ENXIO), Some("ENXIO"));
/// assert_eq!(dax_device::errno_name(0), None);
/// ```
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno.checked_abs()? {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::ENOTBLK => "ENOTBLK",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::EDOM => "EDOM",
        libc::ERANGE => "ERANGE",
        libc::EDEADLK => "EDEADLK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOLCK => "ENOLCK",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENOMSG => "ENOMSG",
        libc::EIDRM => "EIDRM",
        libc::ECHRNG => "ECHRNG",
        libc::EL2NSYNC => "EL2NSYNC",
        libc::EL3HLT => "EL3HLT",
        libc::EL3RST => "EL3RST",
        libc::ELNRNG => "ELNRNG",
        libc::EUNATCH => "EUNATCH",
        libc::ENOCSI => "ENOCSI",
        libc::EL2HLT => "EL2HLT",
        libc::EBADE => "EBADE",
        libc::EBADR => "EBADR",
        libc::EXFULL => "EXFULL",
        libc::ENOANO => "ENOANO",
        libc::EBADRQC => "EBADRQC",
        libc::EBADSLT => "EBADSLT",
        libc::EBFONT => "EBFONT",
        libc::ENOSTR => "ENOSTR",
        libc::ENODATA => "ENODATA",
        libc::ETIME => "ETIME",
        libc::ENOSR => "ENOSR",
        libc::ENONET => "ENONET",
        libc::ENOPKG => "ENOPKG",
        libc::EREMOTE => "EREMOTE",
        libc::ENOLINK => "ENOLINK",
        libc::EADV => "EADV",
        libc::ESRMNT => "ESRMNT",
        libc::ECOMM => "ECOMM",
        libc::EPROTO => "EPROTO",
        libc::EMULTIHOP => "EMULTIHOP",
        libc::EDOTDOT => "EDOTDOT",
        libc::EBADMSG => "EBADMSG",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOTUNIQ => "ENOTUNIQ",
        libc::EBADFD => "EBADFD",
        libc::EREMCHG => "EREMCHG",
        libc::ELIBACC => "ELIBACC",
        libc::ELIBBAD => "ELIBBAD",
        libc::ELIBSCN => "ELIBSCN",
        libc::ELIBMAX => "ELIBMAX",
        libc::ELIBEXEC => "ELIBEXEC",
        libc::EILSEQ => "EILSEQ",
        libc::ERESTART => "ERESTART",
        libc::ESTRPIPE => "ESTRPIPE",
        libc::EUSERS => "EUSERS",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EDESTADDRREQ => "EDESTADDRREQ",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EPFNOSUPPORT => "EPFNOSUPPORT",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENETRESET => "ENETRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOBUFS => "ENOBUFS",
        libc::EISCONN => "EISCONN",
        libc::ENOTCONN => "ENOTCONN",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::ETOOMANYREFS => "ETOOMANYREFS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ESTALE => "ESTALE",
        libc::EUCLEAN => "EUCLEAN",
        libc::ENOTNAM => "ENOTNAM",
        libc::ENAVAIL => "ENAVAIL",
        libc::EISNAM => "EISNAM",
        libc::EREMOTEIO => "EREMOTEIO",
        libc::EDQUOT => "EDQUOT",
        libc::ENOMEDIUM => "ENOMEDIUM",
        libc::EMEDIUMTYPE => "EMEDIUMTYPE",
        libc::ECANCELED => "ECANCELED",
        libc::ENOKEY => "ENOKEY",
        libc::EKEYEXPIRED => "EKEYEXPIRED",
        libc::EKEYREVOKED => "EKEYREVOKED",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::EOWNERDEAD => "EOWNERDEAD",
        libc::ENOTRECOVERABLE => "ENOTRECOVERABLE",
        libc::ERFKILL => "ERFKILL",
        libc::EHWPOISON => "EHWPOISON",
        _ => return None,
    })
}

/// The OS error of the same errno, so `raw_os_error()` gives it back (what a FUSE
/// server replies with); the description is not kept.
impl From<DaxError> for std::io::Error {
    fn from(err: DaxError) -> Self {
        std::io::Error::from_raw_os_error(err.errno())
    }
}

/// [`DaxError::from_io`] with a generic description.
impl From<std::io::Error> for DaxError {
    fn from(err: std::io::Error) -> Self {
        DaxError::from_io("I/O", &err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_errno_round_trips_every_errno() {
        for e in 1..=libc::EHWPOISON {
            let err = DaxError::from_errno(e, "round trip");
            assert_eq!(err.errno(), e, "{err:?}");
            assert_eq!(DaxError::from_errno(-e, "negated").errno(), e);
            assert_eq!(err.to_kernel_errno(), -e);
            let io: std::io::Error = err.clone().into();
            assert_eq!(io.raw_os_error(), Some(e));
            assert_eq!(DaxError::from(io).errno(), e);
        }
        assert_eq!(DaxError::from_errno(0, "none").errno(), libc::EIO);
        assert_eq!(DaxError::from_errno(i32::MIN, "min").errno(), libc::EIO);
    }

    #[test]
    fn filesystem_errors_have_their_own_variants() {
        for (e, want) in [
            (libc::ENOENT, DaxError::NotFound { what: "w" }),
            (libc::EEXIST, DaxError::Exists { what: "w" }),
            (libc::ENAMETOOLONG, DaxError::NameTooLong { what: "w" }),
            (libc::ENOTDIR, DaxError::NotDirectory { what: "w" }),
            (libc::EISDIR, DaxError::IsDirectory { what: "w" }),
            (libc::ENOTEMPTY, DaxError::NotEmpty { what: "w" }),
            (libc::EACCES, DaxError::PermissionDenied { what: "w" }),
            (libc::EPERM, DaxError::NotPermitted { what: "w" }),
            (libc::EROFS, DaxError::ReadOnly { what: "w" }),
            (libc::EXDEV, DaxError::CrossDevice { what: "w" }),
            (libc::EMLINK, DaxError::TooManyLinks { what: "w" }),
            (libc::EUCLEAN, DaxError::Corrupted { what: "w" }),
            (libc::ENOMEM, DaxError::OutOfMemory { what: "w" }),
            (libc::ENOSPC, DaxError::NoSpace { what: "w" }),
        ] {
            assert_eq!(DaxError::from_errno(e, "w"), want);
        }
    }

    #[test]
    fn io_errors_without_an_os_code_convert_by_kind() {
        use std::io::{Error, ErrorKind};
        let e = DaxError::from(Error::new(ErrorKind::NotFound, "gone"));
        assert_eq!(e.errno(), libc::ENOENT);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = DaxError::from(Error::other("something"));
        assert_eq!(e.errno(), libc::EIO);
        assert_eq!(
            DaxError::from(Error::new(ErrorKind::StorageFull, "full")),
            DaxError::NoSpace { what: "I/O" }
        );
    }

    #[test]
    fn errno_values_are_linux_x86_64() {
        assert_eq!(DaxError::Dead.errno(), 6);
        assert_eq!(DaxError::InvalidArgument { what: "" }.errno(), 22);
        assert_eq!(
            DaxError::OutOfRange {
                pgoff: 0,
                dev_pages: 0
            }
            .errno(),
            34
        );
        assert_eq!(
            DaxError::HwPoison {
                pgoff: 0,
                nr_pages: 1
            }
            .errno(),
            133
        );
        assert_eq!(
            DaxError::MediaError {
                pgoff: 0,
                nr_pages: 1
            }
            .errno(),
            5
        );
        assert_eq!(DaxError::NotSupported { what: "" }.errno(), 95);
        assert_eq!(DaxError::NoSpace { what: "" }.errno(), 28);
        assert_eq!(DaxError::Fault { what: "" }.errno(), 14);
        assert_eq!(DaxError::WouldBlock.errno(), 11);
        assert_eq!(DaxError::Busy { what: "" }.errno(), 16);
        assert_eq!(DaxError::Overflow { what: "" }.errno(), 75);
        assert_eq!(
            DaxError::Os {
                errno: 61,
                what: ""
            }
            .errno(),
            61
        );
    }

    #[test]
    fn every_linux_errno_has_its_name() {
        let mut seen = std::collections::BTreeSet::new();
        for e in 1..=libc::EHWPOISON {
            let name = errno_name(e);
            // 41 and 58 are unused on Linux (the old EWOULDBLOCK and EDEADLOCK slots).
            if e == 41 || e == 58 {
                assert_eq!(name, None, "errno {e}");
                continue;
            }
            let name = name.unwrap_or_else(|| panic!("errno {e} has no name"));
            assert!(name.starts_with('E'), "{name}");
            assert!(seen.insert(name), "{name} given twice");
            assert_eq!(errno_name(-e), Some(name));
            assert_eq!(DaxError::from_errno(e, "x").errno_name(), Some(name));
        }
        assert_eq!(errno_name(libc::EIO), Some("EIO"));
        assert_eq!(errno_name(libc::EHWPOISON), Some("EHWPOISON"));
        assert_eq!(errno_name(libc::EWOULDBLOCK), Some("EAGAIN"));
        assert_eq!(errno_name(libc::ENOTSUP), Some("EOPNOTSUPP"));
        for none in [0, libc::EHWPOISON + 1, i32::MAX, i32::MIN] {
            assert_eq!(errno_name(none), None, "{none}");
        }
    }

    #[test]
    fn every_variant_names_its_errno() {
        assert_eq!(DaxError::Dead.errno_name(), Some("ENXIO"));
        assert_eq!(
            DaxError::HwPoison {
                pgoff: 0,
                nr_pages: 1
            }
            .errno_name(),
            Some("EHWPOISON")
        );
        assert_eq!(
            DaxError::MediaError {
                pgoff: 0,
                nr_pages: 1
            }
            .errno_name(),
            Some("EIO")
        );
        assert_eq!(
            DaxError::Corrupted { what: "" }.errno_name(),
            Some("EUCLEAN")
        );
        assert_eq!(
            DaxError::Os {
                errno: 4095,
                what: ""
            }
            .errno_name(),
            None
        );
    }

    #[test]
    fn mem2blk_converts_only_hwpoison() {
        // dax_mem2blk_err
        let p = DaxError::HwPoison {
            pgoff: 3,
            nr_pages: 2,
        };
        assert_eq!(
            p.mem2blk(),
            DaxError::MediaError {
                pgoff: 3,
                nr_pages: 2
            }
        );
        assert_eq!(DaxError::Dead.mem2blk(), DaxError::Dead);
        assert_eq!(
            DaxError::MediaError {
                pgoff: 3,
                nr_pages: 2
            }
            .mem2blk()
            .errno(),
            libc::EIO
        );
    }

    #[test]
    fn converts_to_io_error_with_same_errno() {
        let e: std::io::Error = DaxError::HwPoison {
            pgoff: 0,
            nr_pages: 1,
        }
        .into();
        assert_eq!(e.raw_os_error(), Some(libc::EHWPOISON));
    }
}
