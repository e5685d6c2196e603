//! [`MemDriver`]: a DAX driver over memory of this process, in the role the kernel's
//! pmem driver (drivers/nvdimm/pmem.c) plays for persistent memory and device-dax
//! (drivers/dax/device.c) for `/dev/daxX.Y`; [`MemOptions`] builds one.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dax_device::{
    DaxAccessMode, DaxDevice, DaxError, DaxOperations, MapSource, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE,
    Pfn, RawAccess, persist,
};
use rustix::fs::{FileType, MemfdFlags, SealFlags};

use crate::probe::{devdax_geometry, shmem_thp_enabled};
use crate::region::Region;

/// What memory a [`MemDriver`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemKind {
    /// Shared anonymous memory ([`MemDriver::anonymous`]).
    Anonymous,
    /// A memfd ([`MemDriver::memfd`]).
    Memfd,
    /// A memfd backed by transparent huge pages ([`MemDriver::shmem_thp`]).
    ShmemThp,
    /// A hugetlb memfd with 2 MiB pages ([`MemDriver::hugetlb`]).
    Hugetlb,
    /// A regular file ([`MemDriver::file`], [`MemDriver::open_file`]).
    File,
    /// A device-dax character device ([`MemDriver::dev_dax`]).
    DevDax,
    /// A descriptor the caller opened ([`MemDriver::from_fd`]).
    Fd,
}

/// Options for making a [`MemDriver`]: set them, then call one of the constructors
/// on the options (`MemOptions::new().populate(true).memfd(size)`), as with
/// memmap2's `MmapOptions`. [`MemDriver`]'s own constructors use the defaults.
#[derive(Debug, Clone, Default)]
pub struct MemOptions {
    populate: bool,
    page_size: Option<usize>,
    limit: Option<u64>,
}

/// Filesystem magic numbers (`f_type` of `fstatfs`) of memory-only filesystems, whose
/// files need no `fdatasync` to be as durable as they get.
const TMPFS_MAGIC: u32 = 0x0102_1994;
const HUGETLBFS_MAGIC: u32 = 0x9584_58f6;
const RAMFS_MAGIC: u32 = 0x8584_58f6;

/// The error for a failed system call.
pub(crate) fn os(what: &'static str, e: rustix::io::Errno) -> DaxError {
    DaxError::from_errno(e.raw_os_error(), what)
}

/// The length of an open device file.
fn file_len(file: &std::fs::File) -> Result<u64, DaxError> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| DaxError::from_io("stat of the device file", &e))
}

/// `size` as a device size: non-zero, a multiple of `unit`, addressable.
fn check_size(size: u64, unit: usize, what: &'static str) -> Result<usize, DaxError> {
    if size == 0 || !size.is_multiple_of(unit as u64) {
        return Err(DaxError::InvalidArgument { what });
    }
    usize::try_from(size).map_err(|_| DaxError::Overflow {
        what: "device size does not fit the address space",
    })
}

const NOT_4K: &str = "device size must be a non-zero multiple of 4096";
const NOT_2M: &str = "device size must be a non-zero multiple of 2 MiB";
const HUGETLB_SHORT: &str = "not enough free 2 MiB hugetlb pages for this size: reserve more \
     with `sysctl vm.nr_hugepages=N` (as root; HugePages_Free in /proc/meminfo)";

impl MemOptions {
    /// The defaults: no prefaulting, page size found from the backing, the whole
    /// backing.
    pub fn new() -> MemOptions {
        MemOptions::default()
    }

    /// Prefault every page when mapping (`MAP_POPULATE`; `MADV_POPULATE_WRITE` for
    /// shmem-THP, after `MADV_HUGEPAGE`), so that the first access to each page does
    /// not pay for allocating it. Default false.
    pub fn populate(mut self, on: bool) -> Self {
        self.populate = on;
        self
    }

    /// For [`MemOptions::from_fd`]: the smallest unit the descriptor can be mapped in
    /// ([`MapSource::page_size`]), a power of two of at least 4096. Default: the
    /// device-dax alignment of a character device, the huge page size of a
    /// hugetlbfs file, 4096 otherwise. The other constructors know their page size
    /// and ignore this.
    pub fn page_size(mut self, bytes: usize) -> Self {
        self.page_size = Some(bytes);
        self
    }

    /// Where the size comes from the backing ([`MemOptions::dev_dax`],
    /// [`MemOptions::open_file`], [`MemOptions::from_fd`] without a size), use only
    /// its first `bytes`. More than the backing has is `EINVAL`.
    pub fn limit(mut self, bytes: u64) -> Self {
        self.limit = Some(bytes);
        self
    }

    /// The backing's own size, or the limit if one is set and fits.
    fn limited(&self, backing: u64) -> Result<u64, DaxError> {
        match self.limit {
            None => Ok(backing),
            Some(l) if l <= backing => Ok(l),
            Some(_) => Err(DaxError::InvalidArgument {
                what: "the size limit is larger than the backing",
            }),
        }
    }

    /// [`MemDriver::anonymous`] with these options.
    pub fn anonymous(&self, size: u64) -> Result<MemDriver, DaxError> {
        let len = check_size(size, PAGE_SIZE, NOT_4K)?;
        let region = Region::map(None, len, PMD_SIZE, self.populate, false)?;
        Ok(MemDriver::new(
            region,
            MemKind::Anonymous,
            PAGE_SIZE,
            None,
            false,
        ))
    }

    /// [`MemDriver::memfd`] with these options.
    pub fn memfd(&self, size: u64) -> Result<MemDriver, DaxError> {
        let len = check_size(size, PAGE_SIZE, NOT_4K)?;
        let fd = sealed_memfd("dax-drivers", MemfdFlags::empty(), size)?;
        let region = Region::map(Some(fd), len, PMD_SIZE, self.populate, false)?;
        Ok(MemDriver::new(
            region,
            MemKind::Memfd,
            PAGE_SIZE,
            None,
            false,
        ))
    }

    /// [`MemDriver::shmem_thp`] with these options.
    pub fn shmem_thp(&self, size: u64) -> Result<MemDriver, DaxError> {
        let len = check_size(size, PMD_SIZE, NOT_2M)?;
        if !shmem_thp_enabled() {
            return Err(DaxError::NotSupported {
                what: "shmem transparent huge pages are off: write advise to \
                       /sys/kernel/mm/transparent_hugepage/shmem_enabled (as root)",
            });
        }
        let fd = sealed_memfd("dax-drivers-thp", MemfdFlags::empty(), size)?;
        let region = Region::map(Some(fd), len, PMD_SIZE, self.populate, true)?;
        Ok(MemDriver::new(
            region,
            MemKind::ShmemThp,
            PAGE_SIZE,
            None,
            false,
        ))
    }

    /// [`MemDriver::hugetlb`] with these options.
    pub fn hugetlb(&self, size: u64) -> Result<MemDriver, DaxError> {
        let len = check_size(size, PMD_SIZE, NOT_2M)?;
        let fd = sealed_memfd(
            "dax-drivers-hugetlb",
            MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB,
            size,
        )?;
        // A shared hugetlb mapping reserves its pages when it is made, so a short
        // pool fails here, not with SIGBUS at the first touch.
        let region = Region::map(Some(fd), len, PMD_SIZE, self.populate, false).map_err(|e| {
            if e.errno() == libc::ENOMEM {
                DaxError::OutOfMemory {
                    what: HUGETLB_SHORT,
                }
            } else {
                e
            }
        })?;
        Ok(MemDriver::new(
            region,
            MemKind::Hugetlb,
            PMD_SIZE,
            None,
            false,
        ))
    }

    /// [`MemDriver::file`] with these options.
    pub fn file(&self, path: impl AsRef<Path>, size: u64) -> Result<MemDriver, DaxError> {
        let path = path.as_ref();
        let len = check_size(size, PAGE_SIZE, NOT_4K)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| DaxError::from_io("opening the device file", &e))?;
        let cur = file_len(&file)?;
        if cur < size {
            file.set_len(size)
                .map_err(|e| DaxError::from_io("extending the device file", &e))?;
        }
        self.file_driver(file, len, path)
    }

    /// [`MemDriver::open_file`] with these options.
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<MemDriver, DaxError> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| DaxError::from_io("opening the device file", &e))?;
        let cur = file_len(&file)?;
        let size = self.limited(cur)?;
        let len = check_size(
            size,
            PAGE_SIZE,
            "the device file is empty or its size is not a multiple of 4096",
        )?;
        self.file_driver(file, len, path)
    }

    /// The driver over an open regular file of `len` bytes at `path` (for `file` and
    /// `open_file`): mapped whole, with `fdatasync` on flush unless the file lives in
    /// memory (tmpfs, hugetlbfs, ramfs).
    fn file_driver(
        &self,
        file: std::fs::File,
        len: usize,
        path: &Path,
    ) -> Result<MemDriver, DaxError> {
        let fd = OwnedFd::from(file);
        let needs_fsync = !on_memory_fs(&fd)?;
        let region = Region::map(Some(fd), len, PMD_SIZE, self.populate, false)?;
        Ok(MemDriver::new(
            region,
            MemKind::File,
            PAGE_SIZE,
            Some(path.to_path_buf()),
            needs_fsync,
        ))
    }

    /// [`MemDriver::dev_dax`] with these options.
    pub fn dev_dax(&self, path: impl AsRef<Path>) -> Result<MemDriver, DaxError> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| DaxError::from_io("opening the device-dax node", &e))?;
        let (dev_size, align) = devdax_geometry(&file)?;
        let size = self.limited(dev_size)?;
        let len = check_size(
            size,
            align,
            "device-dax size is not a non-zero multiple of its alignment",
        )?;
        let region = Region::map(Some(file.into()), len, align, self.populate, false)?;
        Ok(MemDriver::new(
            region,
            MemKind::DevDax,
            align,
            Some(path.to_path_buf()),
            false,
        ))
    }

    /// [`MemDriver::from_fd`] with these options.
    pub fn from_fd(&self, fd: OwnedFd, size: Option<u64>) -> Result<MemDriver, DaxError> {
        if let Some(p) = self.page_size
            && (!p.is_power_of_two() || p < PAGE_SIZE)
        {
            return Err(DaxError::InvalidArgument {
                what: "page size must be a power of two of at least 4096",
            });
        }
        let st = rustix::fs::fstat(&fd).map_err(|e| os("fstat of the descriptor", e))?;
        let (backing, found_page, needs_fsync) = match FileType::from_raw_mode(st.st_mode) {
            FileType::CharacterDevice => {
                let (dev_size, align) = devdax_geometry(&fd)?;
                (dev_size, align, false)
            }
            FileType::RegularFile => {
                let fs =
                    rustix::fs::fstatfs(&fd).map_err(|e| os("fstatfs of the descriptor", e))?;
                let page = if fs_magic(&fs) == HUGETLBFS_MAGIC {
                    usize::try_from(fs.f_bsize).unwrap_or(PMD_SIZE)
                } else {
                    PAGE_SIZE
                };
                let memory = [TMPFS_MAGIC, HUGETLBFS_MAGIC, RAMFS_MAGIC].contains(&fs_magic(&fs));
                (u64::try_from(st.st_size).unwrap_or(0), page, !memory)
            }
            _ => {
                return Err(DaxError::NotSupported {
                    what: "only regular files, memfds and device-dax nodes can be mapped",
                });
            }
        };
        // A smaller unit than the memory really maps in would under-reserve: the kernel
        // rounds a hugetlb mapping up to its page size, past the reservation.
        let page_size = match self.page_size {
            Some(p) if p < found_page => {
                return Err(DaxError::InvalidArgument {
                    what: "page size is smaller than the unit the descriptor's memory maps in (hugetlb, device-dax alignment)",
                });
            }
            Some(p) => p,
            None => found_page,
        };
        let size = match size {
            Some(s) if s > backing => {
                return Err(DaxError::InvalidArgument {
                    what: "size runs past the end of the descriptor's file",
                });
            }
            Some(s) => s,
            None => self.limited(backing)?,
        };
        let len = check_size(
            size,
            page_size,
            "size must be a non-zero multiple of the page size",
        )?;
        let region = Region::map(Some(fd), len, page_size, self.populate, false)?;
        Ok(MemDriver::new(
            region,
            MemKind::Fd,
            page_size,
            None,
            needs_fsync,
        ))
    }
}

/// A memfd of `size` bytes that can never shrink (`F_SEAL_SHRINK`, then `F_SEAL_SEAL`
/// so that no other seal can be added): whoever gets hold of the descriptor cannot
/// truncate the device under its mappings.
fn sealed_memfd(name: &str, flags: MemfdFlags, size: u64) -> Result<OwnedFd, DaxError> {
    let fd = rustix::fs::memfd_create(
        name,
        flags | MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| os("memfd_create", e))?;
    rustix::fs::ftruncate(&fd, size).map_err(|e| os("ftruncate of the memfd", e))?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::SEAL)
        .map_err(|e| os("sealing the memfd against shrinking", e))?;
    Ok(fd)
}

/// The filesystem magic number of `fs`, as the 32 bits the kernel defines.
fn fs_magic(fs: &rustix::fs::StatFs) -> u32 {
    // The field is a signed long on some targets; the magic numbers are 32-bit
    // patterns, so keep the low 32 bits whatever the width.
    #[allow(clippy::unnecessary_cast)]
    let raw = fs.f_type as u64;
    raw as u32
}

/// Whether `fd`'s file lives on a memory-only filesystem (tmpfs, hugetlbfs, ramfs).
fn on_memory_fs(fd: &OwnedFd) -> Result<bool, DaxError> {
    let fs = rustix::fs::fstatfs(fd).map_err(|e| os("fstatfs of the device file", e))?;
    Ok([TMPFS_MAGIC, HUGETLBFS_MAGIC, RAMFS_MAGIC].contains(&fs_magic(&fs)))
}

/// A DAX driver over memory mapped into this process: anonymous memory, a memfd
/// (plain, transparent-huge-page or hugetlb), a regular file, a device-dax node or a
/// descriptor of your own.
///
/// It plays the part of the kernel's pmem driver (drivers/nvdimm/pmem.c) for a
/// filesystem: [`DaxOperations::direct_access`] answers the address and pfn of any
/// page and the pages from there to the end of the device, as `pmem_dax_direct_access`
/// does on a device without bad blocks; [`DaxOperations::zero_page_range`] writes
/// zeros bypassing the cache (`pmem_dax_zero_page_range`); [`DaxOperations::flush`]
/// makes writes durable (`nvdimm_flush`; an `fdatasync` of the file for a file on a
/// disk, as virtio-pmem asks its host to `fsync`). Over `/dev/daxX.Y` it also does
/// what device-dax (drivers/dax/device.c) does for `mmap`: the mapping keeps the
/// device's alignment. Its [`map_source`](DaxOperations::map_source) lets
/// `dax_fault::mmu` map the same memory into files a filesystem serves.
///
/// It reports no poison: memory of a process has no badblocks list to read, so
/// `recovery_write` and `first_poisoned_byte` keep their defaults. (For poison
/// injection use the test device of `dax-testdev`, which wraps this driver.)
///
/// The memory is mapped at a 2 MiB-aligned address (the device-dax alignment when
/// larger), so the pfns of 2 MiB-aligned device offsets are 512-aligned, as 2 MiB
/// (PMD) faults require. It is reached only through raw copies, never as `&[u8]`:
/// other threads, mappings and processes may change it at any time. If the memory
/// itself goes away under the mapping (a file truncated by someone else, memory the
/// kernel cannot allocate at first touch) an access raises `SIGBUS`, as in the
/// kernel; memfds are sealed against shrinking so that cannot happen to them.
///
/// Wrap it in a [`DaxDevice`] with [`MemDriver::into_device`] (the flags a pmem
/// region gets) or [`DaxDevice::new`] (your own flags).
///
/// ```
/// use dax_device::{DaxAccessMode, DaxError};
/// use dax_drivers::MemDriver;
///
/// let dev = MemDriver::memfd(2 << 20)?.into_device();
/// let section = dev.read_lock();
/// let pages = section.direct_access(3, 2, DaxAccessMode::Access)?;
/// assert_eq!(pages.copy_from(100, b"stored in a memfd"), 17);
/// let mut back = [0u8; 17];
/// assert_eq!(pages.copy_to(100, &mut back), 17);
/// assert_eq!(&back, b"stored in a memfd");
/// # Ok::<(), DaxError>(())
/// ```
pub struct MemDriver {
    region: Region,
    nr_pages: u64,
    page_size: usize,
    kind: MemKind,
    path: Option<PathBuf>,
    /// Whether writes are durable only after an `fdatasync` of the file.
    needs_fsync: bool,
}

impl fmt::Debug for MemDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemDriver")
            .field("kind", &self.kind)
            .field("size", &self.size())
            .field("page_size", &self.page_size)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl MemDriver {
    fn new(
        region: Region,
        kind: MemKind,
        page_size: usize,
        path: Option<PathBuf>,
        needs_fsync: bool,
    ) -> MemDriver {
        MemDriver {
            nr_pages: (region.len() / PAGE_SIZE) as u64,
            region,
            page_size,
            kind,
            path,
            needs_fsync,
        }
    }

    /// Options (prefaulting, page size, size limit) for the constructors below.
    pub fn options() -> MemOptions {
        MemOptions::new()
    }

    /// `size` bytes of shared anonymous memory (`mmap(MAP_SHARED | MAP_ANONYMOUS)`),
    /// zero-filled; 4 KiB pages. It has no descriptor, so it cannot be mapped again
    /// ([`DaxOperations::map_source`] is `None`): a filesystem on it serves `read` and
    /// `write` but not `mmap`. `size`: a non-zero multiple of 4096, else `EINVAL`.
    pub fn anonymous(size: u64) -> Result<MemDriver, DaxError> {
        MemOptions::new().anonymous(size)
    }

    /// A memfd of `size` bytes (`memfd_create`), zero-filled, sealed against
    /// shrinking; 4 KiB pages. Its descriptor can be mapped again, so a filesystem
    /// on it serves `mmap` too. `size`: a non-zero multiple of 4096, else `EINVAL`.
    pub fn memfd(size: u64) -> Result<MemDriver, DaxError> {
        MemOptions::new().memfd(size)
    }

    /// A memfd of `size` bytes whose memory the kernel backs with transparent huge
    /// pages (`madvise(MADV_HUGEPAGE)` on shmem): it maps in 2 MiB pages where a
    /// mapping is 2 MiB aligned, and any 4 KiB of it can still be mapped alone, so it
    /// serves 2 MiB (PMD) and 4 KiB (PTE) faults alike.
    ///
    /// `size` must be a non-zero multiple of 2 MiB (else `EINVAL`), and shmem THP
    /// must be enabled for `advise` (as root: `echo advise >
    /// /sys/kernel/mm/transparent_hugepage/shmem_enabled`), else
    /// [`DaxError::NotSupported`] (`EOPNOTSUPP`) naming that file. See
    /// [`shmem_thp_enabled`](crate::shmem_thp_enabled).
    pub fn shmem_thp(size: u64) -> Result<MemDriver, DaxError> {
        MemOptions::new().shmem_thp(size)
    }

    /// A hugetlb memfd of `size` bytes (`memfd_create(MFD_HUGETLB | MFD_HUGE_2MB)`):
    /// 2 MiB pages only, as device-dax has them (a 4 KiB piece of it cannot be mapped
    /// alone, so [`MapSource::page_size`] is 2 MiB).
    ///
    /// `size` must be a non-zero multiple of 2 MiB (else `EINVAL`), and that many
    /// pages must be free in the hugetlb pool, else [`DaxError::OutOfMemory`]
    /// (`ENOMEM`) saying to raise `vm.nr_hugepages`. The pages are reserved here, so
    /// no later access can find them missing. See
    /// [`hugetlb_pages_available`](crate::hugetlb_pages_available).
    pub fn hugetlb(size: u64) -> Result<MemDriver, DaxError> {
        MemOptions::new().hugetlb(size)
    }

    /// The first `size` bytes of the regular file at `path`, created if missing and
    /// extended (with zeros) if shorter; 4 KiB pages. Its bytes outlive the process:
    /// open it again ([`MemDriver::open_file`]) and they are there.
    ///
    /// Stores land in the page cache; [`DaxOperations::flush`] makes them durable
    /// with `fdatasync` (none is needed on tmpfs), so a filesystem on it gets
    /// crash consistency from its usual flushes, and [`MemDriver::into_device`] does
    /// not mark it synchronous (no `MAP_SYNC`), like virtio-pmem. `size`: a non-zero
    /// multiple of 4096, else `EINVAL`. Do not truncate the file while it is mapped:
    /// accesses past its end raise `SIGBUS`.
    pub fn file(path: impl AsRef<Path>, size: u64) -> Result<MemDriver, DaxError> {
        MemOptions::new().file(path, size)
    }

    /// The regular file at `path`, which must exist, as a device of its own size
    /// (see [`MemOptions::limit`]); otherwise as [`MemDriver::file`]. A missing file
    /// is `ENOENT`; an empty one, or one whose size is not a multiple of 4096, is
    /// `EINVAL`.
    pub fn open_file(path: impl AsRef<Path>) -> Result<MemDriver, DaxError> {
        MemOptions::new().open_file(path)
    }

    /// A device-dax character device (`/dev/daxX.Y`, drivers/dax/device.c), whole
    /// (see [`MemOptions::limit`]): its size and alignment come from sysfs
    /// (`/sys/dev/char/MAJ:MIN/size` and `align`), the mapping is aligned to the
    /// device's alignment, and that alignment is its page size. A missing node is
    /// `ENOENT`; anything else, [`DaxError::NotSupported`]. See
    /// [`dev_dax_nodes`](crate::dev_dax_nodes).
    pub fn dev_dax(path: impl AsRef<Path>) -> Result<MemDriver, DaxError> {
        MemOptions::new().dev_dax(path)
    }

    /// A descriptor you opened: a regular file or memfd (mapped from offset 0 for
    /// `size` bytes, which must not run past its end; `None`: its whole size from
    /// `fstat`) or a device-dax node (size from sysfs). The page size is 4096 unless
    /// the descriptor says otherwise (a hugetlbfs file, a device-dax node) or
    /// [`MemOptions::page_size`] tells; the size must be a non-zero multiple of it.
    /// The descriptor must be open for reading and writing (else the mapping fails
    /// with `EACCES`). Whoever else can shrink the file can make accesses raise
    /// `SIGBUS`.
    pub fn from_fd(fd: OwnedFd, size: Option<u64>) -> Result<MemDriver, DaxError> {
        MemOptions::new().from_fd(fd, size)
    }

    /// Wraps the driver in a live [`DaxDevice`] with the flags the pmem driver gives a
    /// region at attach (`pmem_attach_disk`): `DAXDEV_NOCACHE` (writes through the
    /// device bypass the CPU cache), `DAXDEV_NOMC`, `DAXDEV_WRITE_CACHE` (CPU stores
    /// must be written back), and `DAXDEV_SYNC` (`MAP_SYNC` allowed) when a cache
    /// write-back is all durability takes: everywhere but files on a disk, which need
    /// [`DaxOperations::flush`] (see [`MemDriver::is_synchronous`]).
    pub fn into_device(self) -> Arc<DaxDevice<MemDriver>> {
        let synchronous = self.is_synchronous();
        let dev = DaxDevice::new(self);
        dev.set_nocache();
        dev.set_nomc();
        dev.set_write_cache(true);
        if synchronous {
            dev.set_synchronous();
        }
        dev
    }

    /// Whether writing back CPU caches is enough to make stores durable (as durable
    /// as the memory is), i.e. no `fdatasync` is needed: false only for a file on a
    /// disk (not tmpfs, hugetlbfs or ramfs). What [`MemDriver::into_device`] sets
    /// `DAXDEV_SYNC` from (`is_nvdimm_sync` in the kernel).
    pub fn is_synchronous(&self) -> bool {
        !self.needs_fsync
    }

    /// What the memory is.
    pub fn kind(&self) -> MemKind {
        self.kind
    }

    /// The path of a file or device-dax backing.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Device size in bytes.
    pub fn size(&self) -> u64 {
        self.region.len() as u64
    }

    /// The smallest unit the memory can be mapped in ([`MapSource::page_size`]):
    /// 4096, or 2 MiB for hugetlb, or the device-dax alignment.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The descriptor of the memory, if it has one (the one
    /// [`map_source`](DaxOperations::map_source) answers).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.region.fd().map(|fd| fd.as_fd())
    }

    /// The pfn of device page 0 (pmem's `PHYS_PFN(phys_addr)`): its process-virtual
    /// address >> 12, 512-aligned. Page `n` has pfn `base_pfn() + n`.
    pub fn base_pfn(&self) -> Pfn {
        Pfn(self.region.base_addr() as u64 >> PAGE_SHIFT)
    }

    /// The device byte offset of `addr`, if it points into the device (as an address
    /// from [`DaxOperations::direct_access`] does).
    pub fn offset_of(&self, addr: *const u8) -> Option<u64> {
        self.region.offset_of(addr).map(|o| o as u64)
    }

    fn range(&self, offset: u64, len: usize) -> Result<usize, DaxError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size() => Ok(offset as usize),
            _ => Err(DaxError::InvalidArgument {
                what: "byte range runs past the end of the device",
            }),
        }
    }

    /// Copies device bytes at `offset` into `buf` with ordinary loads (the block
    /// path's `pmem_do_read` on a device without poison). `EINVAL` if the range runs
    /// past the end.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DaxError> {
        let off = self.range(offset, buf.len())?;
        self.region.read(off, buf)
    }

    /// Copies `buf` to device bytes at `offset` bypassing the CPU cache, then fences
    /// (the block path's `pmem_do_write`, with `memcpy_flushcache`): on return the
    /// bytes have left the cache. `EINVAL` if the range runs past the end.
    pub fn write(&self, offset: u64, buf: &[u8]) -> Result<(), DaxError> {
        let off = self.range(offset, buf.len())?;
        self.region.write_persist(off, buf)
    }

    /// Copies `buf` to device bytes at `offset` with ordinary stores, which stay in
    /// the CPU cache until written back (as stores through a mapping do). `EINVAL` if
    /// the range runs past the end.
    pub fn write_cached(&self, offset: u64, buf: &[u8]) -> Result<(), DaxError> {
        let off = self.range(offset, buf.len())?;
        self.region.write_plain(off, buf)
    }

    /// Sets `len` device bytes at `offset` to zero bypassing the CPU cache, then
    /// fences (what `pmem_dax_zero_page_range` does for a page). `EINVAL` if the
    /// range runs past the end.
    pub fn zero(&self, offset: u64, len: u64) -> Result<(), DaxError> {
        let len = usize::try_from(len).map_err(|_| DaxError::Overflow {
            what: "zeroing length does not fit the address space",
        })?;
        let off = self.range(offset, len)?;
        self.region.fill_persist(off, 0, len)
    }
}

// The promise below is the only unsafe thing here; no unsafe operation happens in the
// impl.
#[allow(unsafe_code)]
// SAFETY: every address handed out is `Region::ptr_at(pgoff * PAGE_SIZE)` with
// `pgoff < nr_pages`, with a page count that stops at the end of the region; the
// region is one read-write mapping that stays mapped until the MemDriver (and so the
// region) is dropped. The pfn is the address >> 12: stable, unique in the process
// (no two live mappings share an address), and pfn(pgoff + i) = pfn(pgoff) + i
// because the region is virtually contiguous. The region is never exposed as a
// slice: `Region` has no method that returns one.
unsafe impl DaxOperations for MemDriver {
    fn nr_pages(&self) -> u64 {
        self.nr_pages
    }

    /// pmem's `pmem_dax_direct_access` (`__pmem_direct_access`) on a device without
    /// bad blocks: the address and pfn of `pgoff` and every page from there to the
    /// end; an offset past the end answers 0 pages (`ERANGE` from the core).
    fn direct_access(
        &self,
        pgoff: u64,
        _nr_pages: u64,
        _mode: DaxAccessMode,
    ) -> Result<RawAccess, DaxError> {
        if pgoff >= self.nr_pages {
            return Ok(RawAccess::none());
        }
        // pgoff < nr_pages, so pgoff * PAGE_SIZE < region length: fits usize.
        let Some(addr) = self.region.ptr_at(pgoff as usize * PAGE_SIZE) else {
            return Ok(RawAccess::none());
        };
        Ok(RawAccess {
            addr,
            pfn: Pfn(addr.as_ptr() as u64 >> PAGE_SHIFT),
            pages: self.nr_pages - pgoff,
        })
    }

    /// pmem's `pmem_dax_zero_page_range`: the pages written with zeros bypassing the
    /// cache. A range past the end is [`DaxError::OutOfRange`].
    fn zero_page_range(&self, pgoff: u64, nr_pages: u64) -> Result<(), DaxError> {
        let out = DaxError::OutOfRange {
            pgoff,
            dev_pages: self.nr_pages,
        };
        match pgoff.checked_add(nr_pages) {
            Some(end) if end <= self.nr_pages => {}
            _ => return Err(out),
        }
        self.zero(pgoff * PAGE_SIZE as u64, nr_pages * PAGE_SIZE as u64)
    }

    /// `nvdimm_flush`: a store fence, so that cache write-backs and non-temporal
    /// stores issued before are complete; for a file on a disk, then an `fdatasync`
    /// of it (virtio-pmem's flush, which has the host `fsync` its backing file).
    fn flush(&self) -> Result<(), DaxError> {
        persist::drain();
        if self.needs_fsync
            && let Some(fd) = self.region.fd()
        {
            rustix::fs::fdatasync(fd).map_err(|e| os("fdatasync of the device file", e))?;
        }
        Ok(())
    }

    /// The memfd, file or device node at offset 0 with [`MemDriver::page_size`];
    /// `None` for anonymous memory.
    fn map_source(&self) -> Option<MapSource<'_>> {
        self.region.fd().map(|fd| MapSource {
            fd: fd.as_fd(),
            offset: 0,
            page_size: self.page_size,
        })
    }
}
