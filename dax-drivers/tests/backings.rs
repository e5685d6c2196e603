//! Every MemDriver backing: constructed, written and read back through a DaxDevice,
//! mapped again through its map_source, and refused with the right errno when asked
//! for something it cannot be. Tests that need a kernel feature (hugetlb pages, shmem
//! THP, a /dev/dax node) probe for it and print why they skip.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use dax_device::{
    DaxAccessMode, DaxDevice, DaxError, DaxOperations, PAGE_SIZE, PMD_PAGES, PMD_SIZE,
};
use dax_drivers::{
    MemDriver, MemKind, MemOptions, dev_dax_nodes, hugetlb_pages_available, shmem_thp_enabled,
};

const ACCESS: DaxAccessMode = DaxAccessMode::Access;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect()
}

/// Writes a pattern over 3 pages at `pgoff` through direct access, reads it back the
/// same way and through the block path.
fn round_trip(dev: &DaxDevice<MemDriver>, pgoff: u64, seed: u8) {
    let data = pattern(3 * PAGE_SIZE, seed);
    let s = dev.read_lock();
    let da = s.direct_access(pgoff, 3, ACCESS).unwrap();
    assert_eq!(da.pages(), 3);
    assert_eq!(da.copy_from(0, &data), data.len());
    let mut back = vec![0u8; data.len()];
    assert_eq!(da.copy_to(0, &mut back), data.len());
    assert_eq!(back, data);
    drop(s);
    let mut block = vec![0u8; data.len()];
    dev.driver()
        .read(pgoff * PAGE_SIZE as u64, &mut block)
        .unwrap();
    assert_eq!(block, data);
}

/// Page 0 and page 512 are 2 MiB apart in pfns, and page 0's pfn is 512-aligned.
fn assert_2m_aligned(dev: &DaxDevice<MemDriver>) {
    let s = dev.read_lock();
    let pfn = s.direct_access(0, 1, ACCESS).unwrap().pfn();
    assert!(pfn.is_aligned(9), "page 0 not 2 MiB aligned");
    assert_eq!(pfn, dev.driver().base_pfn());
    if dev.driver().nr_pages() > PMD_PAGES {
        let pfn512 = s.direct_access(PMD_PAGES, 1, ACCESS).unwrap().pfn();
        assert_eq!(pfn512, pfn.add(PMD_PAGES));
    }
}

/// A second, independent mapping of the device's descriptor (what `dax_fault::mmu`
/// makes for files): unmapped on drop.
struct Remap {
    addr: *mut u8,
    len: usize,
}

impl Remap {
    fn new(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Remap {
        use rustix::mm::{MapFlags, ProtFlags};
        // SAFETY: a fresh shared mapping at an address the kernel chooses; it
        // overlaps nothing of ours. Its length is a multiple of the descriptor's page
        // size, as the callers pass whole devices.
        let addr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                offset,
            )
        }
        .expect("mapping the device's descriptor again");
        Remap {
            addr: addr.cast(),
            len,
        }
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= self.len);
        // SAFETY: in bounds of our own mapping (checked above); `buf` is a Rust buffer
        // that cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(self.addr.add(offset), buf.as_mut_ptr(), buf.len()) }
    }

    fn write(&self, offset: usize, buf: &[u8]) {
        assert!(offset + buf.len() <= self.len);
        // SAFETY: as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.addr.add(offset), buf.len()) }
    }
}

impl Drop for Remap {
    fn drop(&mut self) {
        // SAFETY: our own mapping, made in `new`; nothing points into it any more.
        let _ = unsafe { rustix::mm::munmap(self.addr.cast(), self.len) };
    }
}

/// Maps the device again through its map_source and checks both ways: bytes written
/// through direct access show in the second mapping, and the reverse.
fn remap_sees_the_same_memory(dev: &DaxDevice<MemDriver>, pgoff: u64) {
    let drv = dev.driver();
    let src = drv.map_source().expect("this backing has a descriptor");
    assert_eq!(src.offset, 0);
    assert_eq!(src.page_size, drv.page_size());
    let map = Remap::new(src.fd, src.offset, drv.size() as usize);
    let at = pgoff as usize * PAGE_SIZE + 77;
    let data = pattern(5000, 0x5a);
    {
        let s = dev.read_lock();
        let da = s.direct_access(pgoff, 2, ACCESS).unwrap();
        assert_eq!(da.copy_from(77, &data), data.len());
    }
    let mut seen = vec![0u8; data.len()];
    map.read(at, &mut seen);
    assert_eq!(seen, data, "the second mapping sees direct-access stores");
    let other = pattern(5000, 0xa5);
    map.write(at, &other);
    let mut back = vec![0u8; other.len()];
    assert_eq!(
        dev.read_lock()
            .direct_access(pgoff, 2, ACCESS)
            .unwrap()
            .copy_to(77, &mut back),
        other.len()
    );
    assert_eq!(
        back, other,
        "direct access sees the second mapping's stores"
    );
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dax-drivers-{}-{}", std::process::id(), name))
}

/// Removes a file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pmem_flags_without_sync(dev: &Arc<DaxDevice<MemDriver>>) {
    use dax_device::DaxFlags;
    let f = dev.flags();
    assert!(
        f.contains(DaxFlags::ALIVE | DaxFlags::WRITE_CACHE | DaxFlags::NOCACHE | DaxFlags::NOMC)
    );
}

#[test]
fn anonymous_round_trips_and_has_no_map_source() {
    let dev = MemDriver::anonymous(4 << 20).unwrap().into_device();
    assert_eq!(dev.driver().kind(), MemKind::Anonymous);
    assert_eq!(dev.driver().size(), 4 << 20);
    assert_eq!(dev.driver().nr_pages(), 1024);
    round_trip(&dev, 0, 1);
    round_trip(&dev, 1021, 2);
    assert_2m_aligned(&dev);
    assert!(dev.driver().map_source().is_none());
    assert!(dev.driver().fd().is_none());
    pmem_flags_without_sync(&dev);
    assert!(dev.synchronous());
}

#[test]
fn memfd_round_trips_and_maps_again() {
    let dev = MemDriver::memfd(4 << 20).unwrap().into_device();
    assert_eq!(dev.driver().kind(), MemKind::Memfd);
    assert_eq!(dev.driver().page_size(), PAGE_SIZE);
    round_trip(&dev, 0, 3);
    round_trip(&dev, 700, 4);
    assert_2m_aligned(&dev);
    remap_sees_the_same_memory(&dev, 9);
    pmem_flags_without_sync(&dev);
    assert!(dev.synchronous() && dev.driver().is_synchronous());
    dev.flush().unwrap();
}

#[test]
fn a_memfd_cannot_be_shrunk_under_its_mappings() {
    let drv = MemDriver::memfd(1 << 20).unwrap();
    let fd = drv.fd().unwrap();
    let e = rustix::fs::ftruncate(fd, 0).unwrap_err();
    assert_eq!(e, rustix::io::Errno::PERM, "F_SEAL_SHRINK refuses it");
    // No other seal can be added either (F_SEAL_SEAL), e.g. one that would forbid
    // the writable mappings the fault engine makes.
    assert!(rustix::fs::fcntl_add_seals(fd, rustix::fs::SealFlags::FUTURE_WRITE).is_err());
    // Growing is harmless and allowed; the device keeps its size.
    rustix::fs::ftruncate(fd, 2 << 20).unwrap();
    assert_eq!(drv.size(), 1 << 20);
}

#[test]
fn populate_prefaults_and_behaves_the_same() {
    let opts = MemOptions::new().populate(true);
    for drv in [
        opts.memfd(1 << 20).unwrap(),
        opts.anonymous(1 << 20).unwrap(),
    ] {
        let dev = drv.into_device();
        round_trip(&dev, 10, 5);
    }
}

#[test]
fn shmem_thp_round_trips_4k_and_2m() {
    if !shmem_thp_enabled() {
        let e = MemDriver::shmem_thp(4 << 20).unwrap_err();
        assert_eq!(e.errno(), libc::EOPNOTSUPP);
        assert!(
            e.to_string()
                .contains("/sys/kernel/mm/transparent_hugepage/shmem_enabled"),
            "{e}"
        );
        eprintln!(
            "SKIP shmem_thp_round_trips_4k_and_2m: shmem THP is off ({}); as root: echo advise > {}",
            std::fs::read_to_string(dax_drivers::SHMEM_THP_SWITCH)
                .unwrap_or_default()
                .trim(),
            dax_drivers::SHMEM_THP_SWITCH
        );
        return;
    }
    let dev = MemOptions::new()
        .populate(true)
        .shmem_thp(4 << 20)
        .unwrap()
        .into_device();
    assert_eq!(dev.driver().kind(), MemKind::ShmemThp);
    // 4 KiB mappings of it are allowed: the page size is 4 KiB.
    assert_eq!(dev.driver().page_size(), PAGE_SIZE);
    round_trip(&dev, 0, 6);
    round_trip(&dev, 511, 7);
    assert_2m_aligned(&dev);
    remap_sees_the_same_memory(&dev, 600);
}

#[test]
fn shmem_thp_and_hugetlb_sizes_must_be_2m_multiples() {
    for size in [0, 4096, (2 << 20) + 4096, 3 << 20] {
        let e = MemDriver::shmem_thp(size).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "THP size {size}");
        let e = MemDriver::hugetlb(size).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "hugetlb size {size}");
    }
}

#[test]
fn needs_hugetlb_round_trips_with_2m_pages() {
    const SIZE: u64 = 4 * PMD_SIZE as u64;
    let free = hugetlb_pages_available();
    if free < 4 {
        eprintln!(
            "SKIP needs_hugetlb_round_trips_with_2m_pages: needs 4 free 2 MiB hugetlb pages \
             ({free} available); as root: sysctl vm.nr_hugepages=N"
        );
        return;
    }
    let dev = MemDriver::hugetlb(SIZE).unwrap().into_device();
    assert_eq!(dev.driver().kind(), MemKind::Hugetlb);
    assert_eq!(dev.driver().page_size(), PMD_SIZE);
    assert_eq!(dev.driver().map_source().unwrap().page_size, PMD_SIZE);
    round_trip(&dev, 0, 8);
    round_trip(&dev, 1000, 9);
    assert_2m_aligned(&dev);
    remap_sees_the_same_memory(&dev, 513);
}

fn meminfo(key: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn needs_hugetlb_a_short_pool_is_enomem_naming_nr_hugepages() {
    let overcommit = std::fs::read_to_string("/proc/sys/vm/nr_overcommit_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let Some(total) = meminfo("HugePages_Total:") else {
        eprintln!("SKIP needs_hugetlb_a_short_pool_is_enomem_naming_nr_hugepages: no hugetlb");
        return;
    };
    if overcommit > 0 {
        eprintln!(
            "SKIP needs_hugetlb_a_short_pool_is_enomem_naming_nr_hugepages: \
             vm.nr_overcommit_hugepages = {overcommit} lets the pool grow"
        );
        return;
    }
    // One page more than the whole pool: no reservation can succeed.
    let e = MemDriver::hugetlb((total + 1) * PMD_SIZE as u64).unwrap_err();
    if e.errno() == libc::EINVAL && total == 0 {
        eprintln!(
            "SKIP needs_hugetlb_a_short_pool_is_enomem_naming_nr_hugepages: hugetlb memfds \
             unsupported here ({e})"
        );
        return;
    }
    assert_eq!(e.errno(), libc::ENOMEM, "{e}");
    assert!(matches!(e, DaxError::OutOfMemory { .. }));
    assert!(e.to_string().contains("vm.nr_hugepages"), "{e}");
}

#[test]
fn file_persists_across_reopen_and_flushes() {
    let tmp = TempFile(temp_path("persist.img"));
    let data = pattern(10_000, 0x33);
    {
        let dev = MemDriver::file(&tmp.0, 1 << 20).unwrap().into_device();
        assert_eq!(dev.driver().kind(), MemKind::File);
        assert_eq!(dev.driver().path(), Some(tmp.0.as_path()));
        round_trip(&dev, 100, 10);
        let s = dev.read_lock();
        let da = s.direct_access(7, 3, ACCESS).unwrap();
        assert_eq!(da.copy_from(123, &data), data.len());
        da.flush(123, data.len());
        drop(s);
        dev.driver().write(0, b"superblock").unwrap();
        dev.flush().unwrap(); // fdatasync on a disk
        remap_sees_the_same_memory(&dev, 200);
        dev.kill();
    }
    assert_eq!(std::fs::metadata(&tmp.0).unwrap().len(), 1 << 20);
    // Reopened without a size: the file's size is the device size.
    let dev = MemDriver::open_file(&tmp.0).unwrap().into_device();
    assert_eq!(dev.driver().size(), 1 << 20);
    let mut back = vec![0u8; data.len()];
    assert_eq!(
        dev.read_lock()
            .direct_access(7, 3, ACCESS)
            .unwrap()
            .copy_to(123, &mut back),
        data.len()
    );
    assert_eq!(back, data);
    let mut sb = [0u8; 10];
    dev.driver().read(0, &mut sb).unwrap();
    assert_eq!(&sb, b"superblock");
    drop(dev);
    // Opened again with a smaller size: the first bytes, the file untouched.
    let small = MemDriver::file(&tmp.0, 64 << 10).unwrap();
    assert_eq!(small.size(), 64 << 10);
    small.read(0, &mut sb).unwrap();
    assert_eq!(&sb, b"superblock");
    drop(small);
    assert_eq!(std::fs::metadata(&tmp.0).unwrap().len(), 1 << 20);
    // A limit does the same for open_file; more than the file has is EINVAL.
    let limited = MemOptions::new().limit(8192).open_file(&tmp.0).unwrap();
    assert_eq!(limited.size(), 8192);
    let e = MemOptions::new()
        .limit(2 << 20)
        .open_file(&tmp.0)
        .unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
}

#[test]
fn a_file_on_a_disk_is_not_synchronous_but_one_on_tmpfs_is() {
    let tmp = TempFile(temp_path("sync.img"));
    let on_disk = rustix::fs::statfs(std::env::temp_dir())
        .map(|fs| fs.f_type as u64 as u32 != 0x0102_1994)
        .unwrap_or(true);
    let dev = MemDriver::file(&tmp.0, 64 << 10).unwrap().into_device();
    assert_eq!(dev.synchronous(), !on_disk);
    assert_eq!(dev.driver().is_synchronous(), !on_disk);
    assert!(dev.write_cache_enabled());
    if std::path::Path::new("/dev/shm").is_dir() {
        let shm = TempFile(PathBuf::from(format!(
            "/dev/shm/dax-drivers-{}",
            std::process::id()
        )));
        if let Ok(drv) = MemDriver::file(&shm.0, 64 << 10) {
            assert!(drv.is_synchronous(), "a file on tmpfs needs no fdatasync");
        }
    }
}

#[test]
fn file_errors() {
    let tmp = TempFile(temp_path("errors.img"));
    for size in [0, 100, 4095, 4097] {
        let e = MemDriver::file(&tmp.0, size).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "size {size}");
    }
    assert!(
        !tmp.0.exists(),
        "a bad size is refused before creating the file"
    );
    let e = MemDriver::open_file(&tmp.0).unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT, "open_file does not create");
    std::fs::write(&tmp.0, b"").unwrap();
    let e = MemDriver::open_file(&tmp.0).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "an empty file");
    std::fs::write(&tmp.0, [0u8; 5000]).unwrap();
    let e = MemDriver::open_file(&tmp.0).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "not a multiple of 4096");
}

#[test]
fn bad_sizes_are_einval_for_memory_backings() {
    for size in [0, 100, 4095, 4097] {
        assert_eq!(
            MemDriver::memfd(size).unwrap_err().errno(),
            libc::EINVAL,
            "memfd {size}"
        );
        assert_eq!(
            MemDriver::anonymous(size).unwrap_err().errno(),
            libc::EINVAL,
            "anonymous {size}"
        );
    }
}

#[test]
fn from_fd_takes_a_memfd_or_file_the_caller_opened() {
    let memfd = rustix::fs::memfd_create("mine", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, 3 << 20).unwrap();
    let mine: OwnedFd = memfd.try_clone().unwrap();
    let dev = MemDriver::from_fd(memfd, None).unwrap().into_device();
    assert_eq!(dev.driver().kind(), MemKind::Fd);
    assert_eq!(dev.driver().size(), 3 << 20);
    assert_eq!(dev.driver().page_size(), PAGE_SIZE);
    assert!(dev.synchronous(), "a memfd needs no fdatasync");
    round_trip(&dev, 513, 11);
    assert_2m_aligned(&dev);
    // The caller's own descriptor sees the device's bytes.
    dev.driver().write(4096 * 600, b"visible to pread").unwrap();
    let mut buf = [0u8; 16];
    rustix::io::pread(mine.as_fd(), &mut buf, 4096 * 600).unwrap();
    assert_eq!(&buf, b"visible to pread");
    remap_sees_the_same_memory(&dev, 3);
    drop(dev);

    // A size smaller than the file; larger is EINVAL; so is a bad page size or a
    // size that is not a multiple of it.
    let part = MemDriver::from_fd(mine.try_clone().unwrap(), Some(1 << 20)).unwrap();
    assert_eq!(part.size(), 1 << 20);
    let e = MemDriver::from_fd(mine.try_clone().unwrap(), Some(4 << 20)).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    for (page, size) in [(1000, 1 << 20), (8192, 4096), (PMD_SIZE, 1 << 20)] {
        let e = MemOptions::new()
            .page_size(page)
            .from_fd(mine.try_clone().unwrap(), Some(size))
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "page size {page}, size {size}");
    }
    let two_m = MemOptions::new()
        .page_size(PMD_SIZE)
        .from_fd(mine.try_clone().unwrap(), Some(2 << 20))
        .unwrap();
    assert_eq!(two_m.map_source().unwrap().page_size, PMD_SIZE);
    let e = MemDriver::from_fd(mine, Some(0)).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);

    // A regular file.
    let tmp = TempFile(temp_path("fromfd.img"));
    std::fs::write(&tmp.0, pattern(8192, 1)).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tmp.0)
        .unwrap();
    let drv = MemDriver::from_fd(file.into(), None).unwrap();
    let mut back = vec![0u8; 8192];
    drv.read(0, &mut back).unwrap();
    assert_eq!(back, pattern(8192, 1));
    drv.flush().unwrap();

    // A read-only descriptor cannot be mapped writable; a socket cannot be mapped.
    let ro = std::fs::File::open(&tmp.0).unwrap();
    let e = MemDriver::from_fd(ro.into(), None).unwrap_err();
    assert_eq!(e.errno(), libc::EACCES, "{e}");
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let e = MemDriver::from_fd(sock.into(), Some(4096)).unwrap_err();
    assert_eq!(e.errno(), libc::EOPNOTSUPP, "{e}");
}

#[test]
fn needs_hugetlb_from_fd_finds_the_huge_page_size() {
    if hugetlb_pages_available() < 1 {
        eprintln!(
            "SKIP needs_hugetlb_from_fd_finds_the_huge_page_size: no free 2 MiB hugetlb page; \
             as root: sysctl vm.nr_hugepages=N"
        );
        return;
    }
    let flags = rustix::fs::MemfdFlags::HUGETLB | rustix::fs::MemfdFlags::HUGE_2MB;
    let fd = rustix::fs::memfd_create("mine-huge", flags).unwrap();
    rustix::fs::ftruncate(&fd, 2 << 20).unwrap();
    // A smaller unit than hugetlb's would under-reserve (the kernel rounds the
    // mapping up to 2 MiB, past the reservation): refused.
    let small = rustix::io::dup(&fd).unwrap();
    let e = dax_drivers::MemOptions::new()
        .page_size(PAGE_SIZE)
        .from_fd(small, Some(PAGE_SIZE as u64))
        .unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "{e}");
    let dev = MemDriver::from_fd(fd, None).unwrap().into_device();
    assert_eq!(dev.driver().page_size(), PMD_SIZE);
    round_trip(&dev, 100, 12);
}

#[test]
fn direct_access_and_zeroing_bounds() {
    let dev = MemDriver::memfd(64 << 10).unwrap().into_device();
    let s = dev.read_lock();
    // Pages from pgoff to the end, clipped to what was asked.
    assert_eq!(s.direct_access(10, 100, ACCESS).unwrap().pages(), 6);
    assert_eq!(
        s.direct_access(16, 1, ACCESS).unwrap_err().errno(),
        libc::ERANGE
    );
    assert_eq!(
        s.direct_access(u64::MAX, 1, ACCESS).unwrap_err().errno(),
        libc::ERANGE
    );
    let da = s.direct_access(15, 1, ACCESS).unwrap();
    assert_eq!(da.fill(0, 0xee, PAGE_SIZE), PAGE_SIZE);
    drop(s);
    dev.zero_page_range(15, 1).unwrap();
    let mut page = vec![1u8; PAGE_SIZE];
    dev.driver().read(15 * PAGE_SIZE as u64, &mut page).unwrap();
    assert!(page.iter().all(|&b| b == 0));
    assert!(dev.zero_page_range(16, 1).is_err());
    assert!(dev.driver().zero_page_range(15, 2).is_err());
    assert!(dev.driver().zero_page_range(u64::MAX, 2).is_err());
    // The block path checks its bounds.
    let mut one = [0u8; 1];
    assert_eq!(
        dev.driver().read(64 << 10, &mut one).unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(
        dev.driver().write(u64::MAX, &one).unwrap_err().errno(),
        libc::EINVAL
    );
    dev.driver().write_cached((64 << 10) - 1, &[7]).unwrap();
    dev.driver().read((64 << 10) - 1, &mut one).unwrap();
    assert_eq!(one, [7]);
    assert_eq!(
        dev.driver().zero(60 << 10, 8 << 10).unwrap_err().errno(),
        libc::EINVAL
    );
    // offset_of maps addresses back.
    let s = dev.read_lock();
    let da = s.direct_access(3, 1, ACCESS).unwrap();
    assert_eq!(dev.driver().offset_of(da.as_ptr()), Some(3 * 4096));
    assert_eq!(dev.driver().offset_of(std::ptr::null()), None);
}

#[test]
fn needs_devdax_round_trips() {
    let nodes = dev_dax_nodes();
    let Some(node) = nodes.first() else {
        eprintln!("SKIP needs_devdax_round_trips: no /dev/daxX.Y device on this machine");
        return;
    };
    let drv = match MemDriver::dev_dax(node) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "SKIP needs_devdax_round_trips: {} unusable: {e}",
                node.display()
            );
            return;
        }
    };
    assert_eq!(drv.kind(), MemKind::DevDax);
    assert!(drv.page_size() >= PAGE_SIZE && drv.page_size().is_power_of_two());
    let dev = drv.into_device();
    round_trip(&dev, 0, 13);
    assert_2m_aligned(&dev);
}

#[test]
fn dev_dax_errors() {
    let e = MemDriver::dev_dax("/dev/dax-rs-no-such-node").unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT);
    // A regular file is not a device-dax node, nor is another character device.
    let tmp = TempFile(temp_path("not-devdax"));
    std::fs::write(&tmp.0, [0u8; 4096]).unwrap();
    let e = MemDriver::dev_dax(&tmp.0).unwrap_err();
    assert_eq!(e.errno(), libc::EOPNOTSUPP);
    let e = MemDriver::dev_dax("/dev/null").unwrap_err();
    assert_eq!(e.errno(), libc::EOPNOTSUPP, "{e}");
    for node in dev_dax_nodes() {
        assert!(
            node.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("dax")
        );
    }
}

#[test]
fn a_killed_device_still_drops_cleanly_and_its_driver_comes_back() {
    let dev = MemDriver::memfd(1 << 20).unwrap().into_device();
    dev.kill();
    assert_eq!(
        dev.read_lock().direct_access(0, 1, ACCESS).unwrap_err(),
        DaxError::Dead
    );
    let drv = Arc::into_inner(dev).unwrap().into_driver();
    drv.write(0, b"x").unwrap();
}
