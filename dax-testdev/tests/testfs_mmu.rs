//! TestFs files mapped into this process for real (`dax_fault::mmu`): ordinary loads
//! and stores on the pointer, faults served by the engine through a SIGSEGV handler.
#![allow(unsafe_code)]

mod testfs_common;

use dax_device::PMD_SIZE;
use dax_fault::index::{EntryKind, Marks};
use dax_fault::mmu::{MapOptions, MmuMapping};
use testfs_common::*;

const PMD: u64 = PMD_SIZE as u64;

fn rw() -> MapOptions {
    MapOptions::new().writable(true)
}

/// A TestFs on a 16 MiB memory device that is not synchronous (no MAP_SYNC).
fn async_fs() -> dax_testdev::TestFs {
    let dev = dax_testdev::MemDevice::builder()
        .size(16 << 20)
        .synchronous(false)
        .build()
        .unwrap();
    dax_testdev::TestFs::mkfs(dev).unwrap()
}

/// A load through the raw pointer (the access the handler must serve).
fn peek_at(m: &MmuMapping, off: usize) -> u8 {
    assert!(off < m.len());
    // SAFETY: inside the mapping, which outlives the call; a fault is served by the
    // handler (or kills the test, which is then a failure).
    unsafe { m.as_ptr().add(off).read_volatile() }
}

/// A store through the raw pointer.
fn poke_at(m: &MmuMapping, off: usize, v: u8) {
    assert!(off < m.len());
    // SAFETY: as in `peek_at`, on a writable mapping.
    unsafe { m.as_ptr().add(off).write_volatile(v) }
}

#[test]
fn loads_and_stores_through_the_pointer_reach_the_file() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(1, 0, 3 * B as usize);
    fs.write(ino, 0, &data).unwrap();
    let m = fs.mmap_real(ino, 0, 4 * B, rw()).unwrap();
    assert_eq!(m.as_ptr() as u64 % PMD, 0, "2 MiB aligned");
    assert_eq!(peek_at(&m, 5000), data[5000]);
    poke_at(&m, 5001, 0xa5);
    let mut b = [0u8; 2];
    fs.read(ino, 5000, &mut b).unwrap();
    assert_eq!(b, [data[5000], 0xa5]);
    // write(2) is seen through the mapping.
    fs.write(ino, 100, b"syscall").unwrap();
    assert_eq!(peek_at(&m, 100), b's');
    let e = m.vma().mapping().index().lookup(1).unwrap();
    assert_eq!((e.entry.kind, e.marks), (EntryKind::Real, Marks::DIRTY));
    // msync writes back and write-protects: the next store faults (mkwrite) again.
    m.msync(0, m.len()).unwrap();
    assert!(
        m.vma()
            .mapping()
            .index()
            .lookup(1)
            .unwrap()
            .marks
            .is_empty()
    );
    poke_at(&m, 5002, 1);
    assert_eq!(
        m.vma().mapping().index().lookup(1).unwrap().marks,
        Marks::DIRTY
    );
    // A fresh mapping sees the stores.
    let m2 = fs.mmap_real(ino, 0, 4 * B, MapOptions::default()).unwrap();
    assert_eq!(peek_at(&m2, 5001), 0xa5);
    let s = m.stats();
    assert!(s.pte >= 2, "{s:?}");
}

#[test]
fn holes_read_zero_then_a_store_allocates() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.truncate(ino, 8 * B).unwrap();
    let m = fs.mmap_real(ino, 0, 8 * B, rw()).unwrap();
    assert_eq!(peek_at(&m, 3 * B as usize + 7), 0);
    assert_eq!(fs.stat(ino).unwrap().blocks, 0);
    poke_at(&m, 3 * B as usize + 7, 42);
    assert_eq!(fs.stat(ino).unwrap().blocks, 1);
    let mut b = [0u8; 1];
    fs.read(ino, 3 * B + 7, &mut b).unwrap();
    assert_eq!(b[0], 42);
}

#[test]
fn an_aligned_2m_extent_is_one_pmd_fault() {
    let (_dev, fs) = mem_fs(32 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(2, 0, 2 * PMD as usize)).unwrap();
    let m = fs.mmap_real(ino, 0, 2 * PMD, rw()).unwrap();
    let mut sum = 0u64;
    for off in (0..m.len()).step_by(B as usize) {
        sum += peek_at(&m, off) as u64;
    }
    assert!(sum > 0);
    let s = m.stats();
    assert_eq!((s.pmd, s.pte, s.fallback), (2, 0, 0), "{s:?}");
}

#[test]
fn kernel_accesses_work_after_populate() {
    let (_dev, fs) = mem_fs(16 << 20);
    let src = fs.create("src").unwrap();
    let data = pattern(3, 0, 2 * B as usize);
    fs.write(src, 0, &data).unwrap();
    let m = fs.mmap_real(src, 0, 2 * B, rw()).unwrap();
    m.populate(0, m.len(), false).unwrap();
    // write(2) from the mapping into a pipe... here: a memfd.
    let fd = rustix::fs::memfd_create("sink", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: the range is populated (mapped readable) and lives across the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), m.as_ptr().cast(), m.len()) };
    assert_eq!(n, m.len() as isize);
    let mut back = vec![0u8; m.len()];
    rustix::io::pread(&fd, &mut back, 0).unwrap();
    assert_eq!(back, data);
    // read(2) into a populated writable mapping.
    m.populate(0, B as usize, true).unwrap();
    rustix::io::pwrite(&fd, b"from the kernel", 0).unwrap();
    // SAFETY: populated writable, lives across the call.
    let n = unsafe { libc::pread(fd.as_raw_fd(), m.as_ptr().cast(), 15, 0) };
    assert_eq!(n, 15);
    let mut b = [0u8; 15];
    fs.read(src, 0, &mut b).unwrap();
    assert_eq!(&b, b"from the kernel");
}

// ---- SIGBUS, in a child process ----

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

static BUS_ADDR: AtomicU64 = AtomicU64::new(0);
static BUS_CODE: AtomicI32 = AtomicI32::new(0);
static BUS_LSB: AtomicI32 = AtomicI32::new(-1);

/// A SIGBUS handler that records the address and code, then "recovers" by mapping a
/// fresh zero page over the faulting page so the access can complete.
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGBUS.
    let (addr, code) = unsafe { ((*info).si_addr() as u64, (*info).si_code) };
    BUS_ADDR.store(addr, Ordering::SeqCst);
    BUS_CODE.store(code, Ordering::SeqCst);
    // SAFETY: si_addr_lsb, a short at offset 24 of the x86-64/aarch64 siginfo_t, part
    // of the fault fields the kernel (and our handler) fill for SIGBUS.
    let lsb = unsafe { *((info as *const u8).add(24) as *const i16) };
    BUS_LSB.store(lsb as i32, Ordering::SeqCst);
    let page = addr & !(B - 1);
    // SAFETY: replaces one page of the test's own mapping with anonymous memory.
    unsafe {
        libc::mmap(
            page as *mut libc::c_void,
            B as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        );
    }
}

fn install_sigbus_handler() {
    // SAFETY: installing a SA_SIGINFO handler with a valid action.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sigbus as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()), 0);
    }
}

/// Runs the ignored test `name` of this binary in a child process and returns its
/// exit status and output.
fn run_child(name: &str) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

#[test]
#[ignore = "run by sigbus_on_poison_is_delivered_and_recoverable in a child process"]
fn child_poison() {
    install_sigbus_handler();
    let (dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(4, 0, 2 * B as usize);
    fs.write(ino, 0, &data).unwrap();
    let blk = fs.extents(ino).unwrap()[0].dev_block;
    dev.driver().poison((blk + 1) * B + 512, 512).unwrap();
    let m = fs.mmap_real(ino, 0, 2 * B, MapOptions::default()).unwrap();
    assert_eq!(peek_at(&m, 10), data[10], "the clean page maps");
    let v = peek_at(&m, B as usize + 100);
    let want = m.as_ptr() as u64 + B + 100;
    println!(
        "CHILD sigbus addr_ok={} code={} lsb={} value={v}",
        BUS_ADDR.load(Ordering::SeqCst) == want,
        BUS_CODE.load(Ordering::SeqCst),
        BUS_LSB.load(Ordering::SeqCst)
    );
    drop(m);
    // Clear the poison with a whole-page write; a new mapping works again.
    fs.write(ino, B, &pattern(5, 0, B as usize)).unwrap();
    let m = fs.mmap_real(ino, 0, 2 * B, MapOptions::default()).unwrap();
    println!(
        "CHILD after-clear ok={}",
        peek_at(&m, B as usize + 100) == pattern(5, 0, 101)[100]
    );
}

#[test]
fn sigbus_on_poison_is_delivered_and_recoverable() {
    let (status, out) = run_child("child_poison");
    assert!(status.success(), "child failed: {out}");
    assert!(
        out.contains(&format!(
            // si_addr_lsb: the poisoned unit is one 4 KiB page (PAGE_SHIFT).
            "CHILD sigbus addr_ok=true code={} lsb=12 value=0",
            libc::BUS_MCEERR_AR
        )),
        "{out}"
    );
    assert!(out.contains("CHILD after-clear ok=true"), "{out}");
}

#[test]
#[ignore = "run by sigbus_past_eof_after_truncate in a child process"]
fn child_past_eof() {
    install_sigbus_handler();
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(6, 0, 4 * B as usize)).unwrap();
    let m = fs.mmap_real(ino, 0, 4 * B, rw()).unwrap();
    poke_at(&m, 3 * B as usize, 1);
    fs.truncate(ino, B).unwrap();
    let v = peek_at(&m, 3 * B as usize + 5);
    let want = m.as_ptr() as u64 + 3 * B + 5;
    println!(
        "CHILD eof addr_ok={} code={} value={v} inside={}",
        BUS_ADDR.load(Ordering::SeqCst) == want,
        BUS_CODE.load(Ordering::SeqCst),
        peek_at(&m, 5) == pattern(6, 0, 6)[5]
    );
}

#[test]
fn sigbus_past_eof_after_truncate() {
    let (status, out) = run_child("child_past_eof");
    assert!(status.success(), "child failed: {out}");
    assert!(
        out.contains(&format!(
            "CHILD eof addr_ok=true code={} value=0 inside=true",
            libc::BUS_ADRERR
        )),
        "{out}"
    );
}

#[test]
fn a_write_syscall_whose_source_is_a_mapping_of_the_same_file_works() {
    // xfstests' mmap-rw-fault: dax_iomap_rw copies from a buffer that is itself a
    // DAX mapping of the same file; the copy faults inside the engine.
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(7, 0, 4 * B as usize);
    fs.write(ino, 0, &data).unwrap();
    let m = fs.mmap_real(ino, 0, 4 * B, rw()).unwrap();
    // SAFETY: the mapping lives across the borrow and nothing writes it meanwhile
    // except the call below, which writes other pages of the file than it reads.
    let src = unsafe { std::slice::from_raw_parts(m.as_ptr(), 2 * B as usize) };
    assert_eq!(fs.write(ino, 2 * B, src).unwrap(), 2 * B as usize);
    let mut back = vec![0u8; 2 * B as usize];
    fs.read(ino, 2 * B, &mut back).unwrap();
    assert_eq!(back, data[..2 * B as usize]);
    // And read(2) into a mapping of the same file.
    let m2 = fs.mmap_real(ino, 0, 4 * B, rw()).unwrap();
    // SAFETY: as above; the read fills pages 0..1 of the mapping from pages 2..3.
    let dst = unsafe { std::slice::from_raw_parts_mut(m2.as_ptr(), B as usize) };
    assert_eq!(fs.read(ino, 3 * B, dst).unwrap(), B as usize);
    let mut page0 = vec![0u8; B as usize];
    fs.read(ino, 0, &mut page0).unwrap();
    assert_eq!(page0, data[B as usize..2 * B as usize]);
}

#[test]
#[ignore = "run by stack_overflow_report_survives_the_handler in a child process"]
fn child_stack_overflow() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &[1u8; 4096]).unwrap();
    let m = fs.mmap_real(ino, 0, B, MapOptions::default()).unwrap();
    assert_eq!(peek_at(&m, 0), 1, "the handler is installed and serving");
    #[allow(unconditional_recursion)]
    fn deep(n: u64) -> u64 {
        let buf = [n as u8; 1024];
        std::hint::black_box(&buf);
        deep(n + 1) + buf[0] as u64
    }
    std::thread::spawn(|| deep(0)).join().unwrap();
}

#[test]
fn stack_overflow_report_survives_the_handler() {
    // SIGSEGVs that are not ours go to the previous handler: Rust's own report.
    let (status, out) = run_child("child_stack_overflow");
    assert!(!status.success());
    assert!(out.contains("has overflowed its stack"), "{out}");
}

#[test]
fn misaligned_or_fragmented_files_fall_back_to_ptes_within_extents() {
    let (_dev, fs) = mem_fs(32 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(8, 0, PMD as usize);
    // Fragment: the two halves of the 2 MiB land in different places because another
    // file takes the blocks after the first half.
    let half = PMD as usize / 2;
    fs.write(ino, 0, &data[..half]).unwrap();
    let other = fs.create("other").unwrap();
    fs.write(other, 0, &data[..half]).unwrap();
    fs.write(ino, half as u64, &data[half..]).unwrap();
    let ext = fs.extents(ino).unwrap();
    assert!(ext.len() >= 2, "fragmented: {ext:?}");
    let m = fs.mmap_real(ino, 0, PMD, MapOptions::default()).unwrap();
    for p in 0..512usize {
        assert_eq!(
            peek_at(&m, p * B as usize + 9),
            data[p * B as usize + 9],
            "page {p}"
        );
    }
    let s = m.stats();
    assert_eq!((s.pmd, s.pte), (0, 512), "{s:?}");
    assert!(s.fallback >= 1);

    // Misaligned: file page 1 at a 2 MiB-aligned address (colour mismatch).
    let g = fs.create("g").unwrap();
    fs.write(g, 0, &pattern(9, 0, 2 * PMD as usize)).unwrap();
    let m = fs.mmap_real(g, 1, PMD, MapOptions::default()).unwrap();
    assert_eq!(peek_at(&m, 0), pattern(9, 0, B as usize + 1)[B as usize]);
    let s = m.stats();
    // One fault: the PMD falls back, and the PTE fault maps the rest of the extent
    // inside this 2 MiB block of addresses (fault-around) with one kernel mapping.
    assert_eq!((s.pmd, s.pte, s.fallback), (0, 512, 1), "{s:?}");
    assert_eq!(
        peek_at(&m, PMD as usize - 1),
        pattern(9, 0, PMD as usize + B as usize)[PMD as usize + B as usize - 1]
    );
}

/// A TestFs on a hugetlb-backed device (2 MiB pages only), or a printed reason to
/// skip.
fn hugetlb_fs(size: u64) -> Option<dax_testdev::TestFs> {
    fs_on(
        dax_testdev::Backing::HugetlbMemfd,
        size,
        "hugetlb-backed device; reserve 2 MiB pages with sysctl vm.nr_hugepages",
    )
}

/// A TestFs on a fresh device of `backing`, or `None` after printing why it could not
/// be built (`what` names it).
fn fs_on(backing: dax_testdev::Backing, size: u64, what: &str) -> Option<dax_testdev::TestFs> {
    match dax_testdev::MemDevice::builder()
        .size(size)
        .backing(backing)
        .build()
    {
        Ok(d) => Some(dax_testdev::TestFs::mkfs(d).unwrap()),
        Err(e) => {
            println!("skipping: no {what} ({e})");
            None
        }
    }
}

#[test]
fn needs_hugetlb_aligned_file_is_served_by_pmd_faults_only() {
    let Some(fs) = hugetlb_fs(128 << 20) else {
        return;
    };
    let ino = fs.create("f").unwrap();
    let len = 64u64 << 20;
    let blocks: Vec<Vec<u8>> = (0..len / PMD)
        .map(|i| pattern(i as u8, 0, PMD as usize))
        .collect();
    for (i, b) in blocks.iter().enumerate() {
        fs.write(ino, i as u64 * PMD, b).unwrap();
    }
    let m = fs.mmap_real(ino, 0, len, rw()).unwrap();
    for off in (0..len as usize).step_by(B as usize) {
        let want = blocks[off / PMD as usize][off % PMD as usize];
        assert_eq!(peek_at(&m, off), want, "offset {off}");
    }
    let s = m.stats();
    assert_eq!((s.pmd, s.pte, s.fallback), (32, 0, 0), "{s:?}");
}

#[test]
fn map_sync_stores_survive_a_crash_without_fsync() {
    // Reopen a file-backed device after a crash: data stored through a MAP_SYNC
    // mapping whose fault returned is there, and so is the block allocation that
    // made it reachable, without any fsync.
    let path = TempPath::new("mapsync");
    let dev = path.device(Some(16 << 20));
    let fs = dax_testdev::TestFs::mkfs(dev).unwrap();
    let ino = fs.create("f").unwrap();
    fs.truncate(ino, 4 * B).unwrap();
    fs.sync().unwrap();
    let m = fs
        .mmap_real(ino, 0, 4 * B, MapOptions::new().writable(true).sync(true))
        .unwrap();
    poke_at(&m, 2 * B as usize + 3, 0x5c);
    // Make the store itself durable (a MAP_SYNC user flushes its stores with
    // CLWB/SFENCE; the filesystem's part is the metadata, done by the fault).
    // SAFETY: the whole range is mapped (page 2 writable, the rest faulted or not:
    // cache write-back of an unmapped reserved page would fault, so flush only page 2).
    unsafe { dax_device::persist::flush_range(m.as_ptr().add(2 * B as usize), B as usize) };
    drop(m);
    drop(fs); // crash: no fsync, no unmount
    let fs = dax_testdev::TestFs::open(path.device(None)).unwrap();
    let ino = fs.lookup("f").unwrap();
    let mut b = [0u8; 1];
    fs.read(ino, 2 * B + 3, &mut b).unwrap();
    assert_eq!(b[0], 0x5c);
}

#[test]
fn threads_store_while_another_truncates_punches_and_fsyncs() {
    use std::sync::Arc;
    const F: u64 = 1 << 20;
    let (_dev, fs) = mem_fs(64 << 20);
    let fs = Arc::new(fs);
    let files: Vec<_> = (0..4)
        .map(|i| {
            let ino = fs.create(&format!("f{i}")).unwrap();
            fs.write(ino, 0, &vec![0u8; F as usize]).unwrap();
            ino
        })
        .collect();
    let maps: Arc<Vec<MmuMapping>> = Arc::new(
        files
            .iter()
            .map(|&ino| fs.mmap_real(ino, 0, F, rw()).unwrap())
            .collect(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two storers own alternate 4 KiB pages of the first half of every file.
    let storers: Vec<_> = (0..2u64)
        .map(|t| {
            let (maps, stop) = (maps.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = std::collections::HashMap::new();
                let mut x = 0x9e3779b97f4a7c15u64 ^ t;
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) || rounds < 2000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let f = (x % 4) as usize;
                    let page = ((x >> 8) % (F / 2 / B / 2)) * 2 + t;
                    let off = (page * B + (x >> 40) % B) as usize;
                    let _ = peek_at(&maps[f], off);
                    let v = (rounds % 251) as u8 + 1;
                    poke_at(&maps[f], (page * B) as usize, v);
                    last.insert((f, page), v);
                    rounds += 1;
                }
                last
            })
        })
        .collect();
    // The third thread works on the second half only.
    let fs2 = fs.clone();
    let files2 = files.clone();
    let churn = std::thread::spawn(move || {
        for i in 0..200u64 {
            let ino = files2[(i % 4) as usize];
            match i % 3 {
                0 => fs2.truncate(ino, F / 2 + (i % 7) * B).unwrap(),
                1 => fs2
                    .fallocate(
                        ino,
                        dax_testdev::FallocMode::PUNCH_HOLE | dax_testdev::FallocMode::KEEP_SIZE,
                        F / 2,
                        4 * B,
                    )
                    .unwrap(),
                _ => fs2.fsync(ino).unwrap(),
            }
            if fs2.stat(ino).unwrap().size < F {
                fs2.truncate(ino, F).unwrap();
            }
        }
    });
    churn.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut last = std::collections::HashMap::new();
    for s in storers {
        last.extend(s.join().unwrap());
    }
    // Every first-half page holds the last byte stored to it through the mapping.
    for (f, &ino) in files.iter().enumerate() {
        let mut file = vec![0u8; (F / 2) as usize];
        fs.read(ino, 0, &mut file).unwrap();
        for page in 0..F / 2 / B {
            let want = last.get(&(f, page)).copied().unwrap_or(0);
            assert_eq!(
                file[(page * B) as usize],
                want,
                "file {f} page {page}: lost store"
            );
        }
        let mut mapped = vec![0u8; (F / 2) as usize];
        maps[f].load(0, &mut mapped).unwrap();
        assert_eq!(file, mapped, "file {f}: mapping and read(2) agree");
        let tail = {
            let mut t = vec![1u8; (F / 2) as usize];
            fs.read(ino, F / 2, &mut t).unwrap();
            t
        };
        assert!(tail.iter().all(|&b| b == 0), "the churned half reads zeros");
    }
}

#[test]
fn a_read_fault_maps_the_rest_of_its_extent_run_at_once() {
    let (_dev, fs) = mem_fs(32 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(10, 0, 2 * PMD as usize);
    fs.write(ino, 0, &data).unwrap();
    let m = fs
        .mmap_real(ino, 0, 2 * PMD, MapOptions::new().huge(false))
        .unwrap();
    assert_eq!(peek_at(&m, 3 * B as usize), data[3 * B as usize]);
    // One fault mapped pages 3..511 (to the end of the 2 MiB block), each with its
    // own clean REAL entry.
    assert_eq!(m.stats().pte, 509, "{:?}", m.stats());
    let ix = m.vma().mapping().index();
    assert_eq!(ix.nrpages(), 509);
    let e = ix.lookup(300).unwrap();
    assert_eq!((e.entry.kind, e.marks), (EntryKind::Real, Marks::empty()));
    for p in (3..512usize).step_by(61) {
        assert_eq!(peek_at(&m, p * B as usize + 1), data[p * B as usize + 1]);
    }
    assert_eq!(m.stats().pte, 509, "no further faults inside the run");
}

#[test]
fn private_mappings_keep_their_stores_and_map_sync_needs_a_synchronous_device() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(11, 0, 2 * B as usize);
    fs.write(ino, 0, &data).unwrap();
    let private = MapOptions::new().shared(false).writable(true);
    let m = fs.mmap_real(ino, 0, 2 * B, private).unwrap();
    // Store to an unmapped page (DAX fills a private copy) and to a page read first
    // (the memory manager copies it).
    poke_at(&m, 10, 0xee);
    assert_eq!(peek_at(&m, B as usize + 10), data[B as usize + 10]);
    poke_at(&m, B as usize + 10, 0xdd);
    assert_eq!(
        (peek_at(&m, 10), peek_at(&m, B as usize + 10)),
        (0xee, 0xdd)
    );
    let mut file = vec![0u8; 2 * B as usize];
    fs.read(ino, 0, &mut file).unwrap();
    assert_eq!(file, data, "the file never sees private stores");
    // Punch keeps private copies (truncate_pagecache_range does not touch them).
    fs.fallocate(
        ino,
        dax_testdev::FallocMode::PUNCH_HOLE | dax_testdev::FallocMode::KEEP_SIZE,
        0,
        2 * B,
    )
    .unwrap();
    assert_eq!(peek_at(&m, 10), 0xee);

    let fs = async_fs();
    let ino = fs.create("g").unwrap();
    let err = fs
        .mmap_real(ino, 0, B, MapOptions::new().sync(true).writable(true))
        .unwrap_err();
    assert_eq!(err.errno(), libc::EOPNOTSUPP);
}

/// A shmem-THP device (the PMD-capable device that also maps 4 KiB pages), or a
/// printed reason to skip.
fn thp_fs(size: u64) -> Option<dax_testdev::TestFs> {
    fs_on(dax_testdev::Backing::ShmemThp, size, "shmem-THP device")
}

/// Bytes of the mapping at `addr` that the kernel maps with 2 MiB shmem entries
/// (`ShmemPmdMapped` in /proc/self/smaps), summed over the VMAs inside `addr .. addr + len`.
fn shmem_pmd_mapped(addr: u64, len: u64) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    let mut total = 0;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((lo, hi)) = range.split_once('-')
            && let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
        {
            inside = lo < addr + len && hi > addr;
            continue;
        }
        if inside && let Some(v) = line.strip_prefix("ShmemPmdMapped:") {
            total += v
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse::<u64>()
                .unwrap()
                << 10;
        }
    }
    total
}

#[test]
fn a_shmem_thp_device_maps_2m_pages_and_any_4k_page_alone() {
    let Some(fs) = thp_fs(32 << 20) else {
        return;
    };
    let ino = fs.create("f").unwrap();
    let data = pattern(11, 0, 2 * PMD as usize);
    fs.write(ino, 0, &data).unwrap();
    let m = fs.mmap_real(ino, 0, 2 * PMD, rw()).unwrap();
    for off in (0..m.len()).step_by(B as usize) {
        assert_eq!(peek_at(&m, off), data[off], "offset {off}");
    }
    let s = m.stats();
    assert_eq!((s.pmd, s.pte, s.fallback), (2, 0, 0), "{s:?}");
    assert_eq!(
        shmem_pmd_mapped(m.as_ptr() as u64, m.len() as u64),
        2 * PMD,
        "the kernel maps the device with 2 MiB entries"
    );
    // A 12-byte file on the same device: one 4 KiB page, mapped alone.
    let small = fs.create("small").unwrap();
    fs.write(small, 0, b"hello, world").unwrap();
    let m = fs.mmap_real(small, 0, PMD, rw()).unwrap();
    assert_eq!(peek_at(&m, 7), b'w');
    poke_at(&m, 0, b'H');
    let mut b = [0u8; 12];
    fs.read(small, 0, &mut b).unwrap();
    assert_eq!(&b, b"Hello, world");
    let s = m.stats();
    assert_eq!((s.pmd, s.pte, s.fallback), (0, 1, 1), "{s:?}");
}

#[test]
fn a_hugetlb_device_refuses_up_front_what_would_need_4k_pages() {
    let Some(fs) = hugetlb_fs(16 << 20) else {
        return;
    };
    let small = fs.create("small").unwrap();
    fs.write(small, 0, b"hello, world").unwrap();
    let e = fs.mmap_real(small, 0, PMD, rw()).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "{e}");
    let whole = fs.create("whole").unwrap();
    fs.write(whole, 0, &pattern(12, 0, PMD as usize)).unwrap();
    let private = rw().shared(false);
    let e = fs.mmap_real(whole, 0, PMD, private).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "{e}");
    let e = fs.mmap_real(whole, 0, B, rw()).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "{e}");
    // What it does map works with 2 MiB faults only.
    let m = fs.mmap_real(whole, 0, PMD, rw()).unwrap();
    assert_eq!(peek_at(&m, 4097), pattern(12, 0, 4098)[4097]);
    poke_at(&m, 4097, 1);
    assert_eq!(m.stats().pmd, 1);
}

#[test]
#[ignore = "run by a_partial_munmap_leaves_the_rest_working in a child process"]
fn child_partial_munmap() {
    let Some(fs) = thp_fs(16 << 20) else {
        println!("rest works (skipped)");
        std::process::exit(0);
    };
    let ino = fs.create("f").unwrap();
    let data = pattern(13, 0, PMD as usize);
    fs.write(ino, 0, &data).unwrap();
    let m = fs.mmap_real(ino, 0, PMD, rw()).unwrap();
    // A 2 MiB mapping first, then a hole in it: the rest faults back in with PTEs.
    assert_eq!(peek_at(&m, 0), data[0]);
    assert_eq!(m.stats().pmd, 1);
    let b = B as usize;
    assert_eq!(m.munmap(1, b).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(m.munmap(b, 0).unwrap_err().errno(), libc::EINVAL);
    // The length is rounded up to whole pages, as the kernel's munmap does.
    m.munmap(b, 2 * b - 100).unwrap();
    poke_at(&m, 0, 0x5a);
    assert_eq!(peek_at(&m, 3 * b + 1), data[3 * b + 1]);
    assert_eq!(peek_at(&m, PMD as usize - 1), data[PMD as usize - 1]);
    let mut one = [0u8];
    fs.read(ino, 0, &mut one).unwrap();
    assert_eq!(one[0], 0x5a);
    assert_eq!(m.load(b, &mut one), Err(dax_fault::VmFault::SIGSEGV));
    // mremap: the same length is fine, growing is refused, shrinking unmaps the tail.
    m.mremap(m.len()).unwrap();
    assert_eq!(m.mremap(m.len() + b).unwrap_err().errno(), libc::EOPNOTSUPP);
    m.mremap(PMD as usize - b).unwrap();
    assert_eq!(
        m.load(PMD as usize - b, &mut one),
        Err(dax_fault::VmFault::SIGSEGV)
    );
    println!("rest works");
    // A load in the hole: SIGSEGV, as after the kernel's munmap.
    peek_at(&m, b + 5);
    println!("not reached");
}

#[test]
fn a_partial_munmap_leaves_the_rest_working() {
    let (status, out) = run_child("child_partial_munmap");
    assert!(out.contains("rest works"), "{out}");
    if out.contains("(skipped)") {
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{out}");
    assert!(!out.contains("not reached"), "{out}");
}

#[test]
fn madvise_dontneed_zaps_a_range_and_drops_private_copies() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    let data = pattern(14, 0, 4 * B as usize);
    fs.write(ino, 0, &data).unwrap();
    let b = B as usize;
    // Private: the copy goes, the file shows through again.
    let private = rw().shared(false);
    let p = fs.mmap_real(ino, 0, 4 * B, private).unwrap();
    poke_at(&p, b + 1, !data[b + 1]);
    assert_eq!(peek_at(&p, b + 1), !data[b + 1]);
    p.madvise_dontneed(b, b).unwrap();
    assert_eq!(peek_at(&p, b + 1), data[b + 1]);
    assert_eq!(
        p.madvise_dontneed(b, 5 * b).unwrap_err().errno(),
        libc::EINVAL
    );
    // Shared: the stores are in the file; the zapped page faults in again.
    let s = fs.mmap_real(ino, 0, 4 * B, rw()).unwrap();
    poke_at(&s, 2 * b, 0x77);
    let before = s.stats().pte;
    s.madvise_dontneed(0, 4 * b).unwrap();
    assert_eq!(peek_at(&s, 2 * b), 0x77);
    assert!(s.stats().pte > before, "{:?}", s.stats());
}

#[test]
fn map_populate_and_the_mmap_flag_rules() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(15, 0, 8 * B as usize)).unwrap();
    let o = MapOptions::from_mmap(libc::PROT_READ, libc::MAP_SHARED | libc::MAP_POPULATE).unwrap();
    assert!(o.populate && o.shared && !o.writable && !o.sync && o.huge);
    let m = fs.mmap_real(ino, 0, 8 * B, o).unwrap();
    assert_eq!(m.stats().pte, 8, "populated before any access");
    // MAP_STACK means VM_NOHUGEPAGE.
    assert!(
        !MapOptions::from_mmap(libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_STACK)
            .unwrap()
            .huge
    );
    // Unknown flags: ignored with MAP_SHARED, refused with MAP_SHARED_VALIDATE.
    assert!(MapOptions::from_mmap(libc::PROT_READ, libc::MAP_SHARED | 0x0020_0000).is_ok());
    let e = MapOptions::from_mmap(libc::PROT_READ, libc::MAP_SHARED_VALIDATE | 0x0020_0000);
    assert_eq!(e.unwrap_err().errno(), libc::EOPNOTSUPP);
    let e = MapOptions::from_mmap(libc::PROT_READ, 0);
    assert_eq!(e.unwrap_err().errno(), libc::EINVAL);
    // MAP_SYNC through MAP_SHARED_VALIDATE: honoured on this (synchronous) device,
    // refused on one that is not.
    let o = MapOptions::from_mmap(
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
    )
    .unwrap();
    assert!(
        fs.mmap_real(ino, 0, 8 * B, o)
            .unwrap()
            .vma()
            .vma()
            .is_sync()
    );
    let fs = async_fs();
    let ino = fs.create("f").unwrap();
    fs.truncate(ino, 8 * B).unwrap();
    assert_eq!(
        fs.mmap_real(ino, 0, 8 * B, o).unwrap_err().errno(),
        libc::EOPNOTSUPP
    );
}

#[test]
fn a_read_fault_maps_the_rest_of_its_extent_at_2m_pmd_fault_around() {
    let Some(fs) = thp_fs(64 << 20) else {
        return;
    };
    let ino = fs.create("f").unwrap();
    let units = 8usize;
    let data = pattern(16, 0, units * PMD as usize);
    for u in 0..units {
        let r = u * PMD as usize..(u + 1) * PMD as usize;
        fs.write(ino, r.start as u64, &data[r]).unwrap();
    }
    let ext = fs.extents(ino).unwrap();
    if ext.len() != 1 || ext[0].dev_block % 512 != 0 {
        println!("skipping: the file did not get one aligned extent ({ext:?})");
        return;
    }
    let m = fs.mmap_real(ino, 0, units as u64 * PMD, rw()).unwrap();
    assert_eq!(peek_at(&m, 5), data[5]);
    let s = m.stats();
    assert_eq!((s.pmd, s.pte, s.fallback), (units as u64, 0, 0), "{s:?}");
    // Every unit is now mapped, with a REAL PMD entry of its own.
    let ix = m.vma().mapping().index();
    for u in 0..units as u64 {
        let e = ix.lookup(u * 512).unwrap();
        assert_eq!(
            (e.entry.kind, e.entry.order, e.start),
            (EntryKind::Real, 9, u * 512)
        );
    }
    for off in (0..m.len()).step_by(B as usize) {
        assert_eq!(peek_at(&m, off), data[off], "offset {off}");
    }
    assert_eq!(m.stats().pmd, units as u64, "no more faults");
    // A store to a unit mapped by fault-around upgrades it in place and dirties it.
    poke_at(&m, 3 * PMD as usize + 7, 0x42);
    assert_eq!(m.stats().mkwrite, 1);
    assert_eq!(ix.lookup(3 * 512).unwrap().marks, Marks::DIRTY);
    let mut b = [0u8];
    fs.read(ino, 3 * PMD + 7, &mut b).unwrap();
    assert_eq!(b[0], 0x42);
    // Truncating unmaps the fault-around units too: a load past the new EOF would
    // SIGBUS, and one before it faults again and sees the data.
    fs.truncate(ino, 2 * PMD).unwrap();
    assert_eq!(peek_at(&m, PMD as usize + 1), data[PMD as usize + 1]);
    assert!(ix.lookup(5 * 512).is_none());
}

#[test]
fn mmu_stats_count_pmd_fallbacks_and_mkwrite_faults_as_the_engine_does() {
    let Some(fs) = thp_fs(32 << 20) else {
        return;
    };
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(17, 0, 2 * PMD as usize)).unwrap();
    // 4 KiB only: no PMD fault is tried, so none falls back.
    let small = fs.mmap_real(ino, 0, 2 * PMD, rw().huge(false)).unwrap();
    for off in (0..small.len()).step_by(B as usize) {
        peek_at(&small, off);
    }
    let s = small.stats();
    assert_eq!((s.pmd, s.fallback, s.mkwrite), (0, 0, 0), "{s:?}");
    // Misaligned (file page 1 at a 2 MiB-aligned address): PMD faults fall back.
    let mis = fs.mmap_real(ino, 1, PMD, rw()).unwrap();
    peek_at(&mis, 0);
    assert_eq!(mis.stats().fallback, 1, "{:?}", mis.stats());
    // A store after a load, and again after fsync cleaned the page: two mkwrites.
    poke_at(&small, 100, 1);
    assert_eq!(small.stats().mkwrite, 1);
    poke_at(&small, 101, 2);
    assert_eq!(small.stats().mkwrite, 1, "still writable: no fault");
    fs.fsync(ino).unwrap();
    poke_at(&small, 102, 3);
    assert_eq!(small.stats().mkwrite, 2, "{:?}", small.stats());
    let mut b = [0u8; 3];
    fs.read(ino, 100, &mut b).unwrap();
    assert_eq!(b, [1, 2, 3]);
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse::<u64>()
        .unwrap();
    kb << 10
}

#[test]
fn a_64_tib_mapping_of_a_sparse_file_costs_what_it_maps() {
    // A mapping's own bookkeeping grows with what it maps, not with its length: a
    // one-page file mapped 64 TiB long (before: 128 GiB of page states up front, and
    // the process aborted).
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, b"one page").unwrap();
    fs.truncate(ino, 64 << 40).unwrap();
    let before = rss();
    let m = match fs.mmap_real(ino, 0, 64 << 40, rw()) {
        Ok(m) => m,
        Err(e) => {
            // Refused up front is the other acceptable answer (no address space).
            assert_eq!(e.errno(), libc::ENOMEM, "{e}");
            println!("skipping: no 64 TiB of address space here ({e})");
            return;
        }
    };
    assert_eq!(peek_at(&m, 4), b'p');
    poke_at(&m, 0, b'O');
    // A hole far away: the zero page, then a block allocated by a store.
    let far = (40usize << 40) + 12345;
    assert_eq!(peek_at(&m, far), 0);
    poke_at(&m, far, 9);
    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "the mapping cost {grown} bytes of memory");
    let mut b = [0u8; 1];
    fs.read(ino, far as u64, &mut b).unwrap();
    assert_eq!(b[0], 9);
    fs.read(ino, 0, &mut b).unwrap();
    assert_eq!(b[0], b'O');
}

/// Runs the ignored test `name` in a child process with a watchdog: its exit status
/// and output, or a failure naming the hang.
fn run_child_watched(name: &str, secs: u64) -> (std::process::ExitStatus, String) {
    let run = dax_testkit::child::run_child_watched(name, std::time::Duration::from_secs(secs));
    let Some(status) = run.status else {
        panic!(
            "{name} hung (no answer within {secs} s); its threads:\n{}\n{}",
            run.hung_threads, run.output
        );
    };
    (status, run.output)
}

#[test]
#[ignore = "run by stores_racing_writeback_on_one_page_are_never_killed in a child process"]
fn child_stores_racing_writeback() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &[0u8; 4096]).unwrap();
    let m = fs.mmap_real(ino, 0, B, rw()).unwrap();
    assert!(m.stats().write_tracking, "the race is about tracked stores");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let rounds = 20_000u64;
    let counts: Vec<u64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..12usize)
            .map(|t| {
                let (m, stop) = (&m, &stop);
                s.spawn(move || {
                    dax_fault::mmu::prepare_thread().unwrap();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        // SAFETY: bytes 8t .. 8t + 8 of the live, writable mapping.
                        unsafe { (m.as_ptr().add(8 * t) as *mut u64).write_volatile(n) };
                    }
                    n
                })
            })
            .collect();
        for _ in 0..rounds {
            m.msync(0, m.len()).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut back = [0u8; 96];
    fs.read(ino, 0, &mut back).unwrap();
    for (t, n) in counts.iter().enumerate() {
        let got = u64::from_ne_bytes(back[8 * t..8 * t + 8].try_into().unwrap());
        assert_eq!(got, *n, "thread {t}'s last store");
    }
    println!(
        "CHILD ok: {counts:?} stores, {} mkwrites",
        m.stats().mkwrite
    );
}

#[test]
fn stores_racing_writeback_on_one_page_are_never_killed() {
    // Threads storing into one page while writeback write-protects it over and over
    // lose the upgrade race to each other all the time; each of those is a tracked
    // SIGBUS that finds the page already writable, and none may be taken for a
    // SIGBUS that is not ours.
    let (status, out) = run_child_watched("child_stores_racing_writeback", 120);
    assert!(status.success(), "{out}");
    assert!(out.contains("CHILD ok"), "{out}");
}

#[test]
#[ignore = "run by executing_from_a_dax_mapping_is_sigsegv_not_a_hang in a child process"]
fn child_exec_from_mapping() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &[0xc3u8; 4096]).unwrap(); // `ret`
    let m = fs.mmap_real(ino, 0, B, MapOptions::default()).unwrap();
    assert_eq!(peek_at(&m, 0), 0xc3, "mapped");
    println!("CHILD jumping");
    // SAFETY: deliberately calls into the (non-executable) mapping: the fetch faults
    // and must end in SIGSEGV, as for any non-executable page.
    let f: extern "C" fn() = unsafe { std::mem::transmute(m.as_ptr()) };
    f();
    println!("CHILD returned");
}

#[test]
fn executing_from_a_dax_mapping_is_sigsegv_not_a_hang() {
    let (status, out) = run_child_watched("child_exec_from_mapping", 60);
    use std::os::unix::process::ExitStatusExt;
    assert!(out.contains("CHILD jumping"), "{out}");
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{out}");
    let e = MapOptions::from_mmap(libc::PROT_READ | libc::PROT_EXEC, libc::MAP_SHARED);
    assert_eq!(e.unwrap_err().errno(), libc::EOPNOTSUPP);
    let e = MapOptions::from_mmap(libc::PROT_READ, libc::MAP_SHARED | libc::MAP_HUGETLB);
    assert_eq!(e.unwrap_err().errno(), libc::EINVAL);
}

/// The volatile accessors (`load`, `store`, `fill`, `copy_within`) against a model:
/// unaligned offsets and lengths, overlapping copies in both directions, a range
/// across a page boundary into a hole; and the refusals (outside the mapping, a
/// store to a read-only mapping, a munmapped span).
#[test]
fn volatile_accessors_match_a_model_and_refuse_what_a_store_could_not_do() {
    use dax_fault::VmFault;
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    let len = 6 * B as usize;
    let data = pattern(7, 0, 4 * B as usize);
    fs.write(ino, 0, &data).unwrap();
    fs.truncate(ino, len as u64).unwrap();
    let mut model = data.clone();
    model.resize(len, 0);
    let m = fs.mmap_real(ino, 0, len as u64, rw()).unwrap();
    let mut buf = vec![0u8; len];
    m.load(0, &mut buf).unwrap();
    assert!(buf == model, "load of the whole file");
    // Unaligned store straddling pages and reaching into the hole past the data.
    let at = 4 * B as usize - 13;
    let src = pattern(9, 0, 4099);
    m.store(at, &src).unwrap();
    model[at..at + src.len()].copy_from_slice(&src);
    m.fill(3, 8190, 0x5a).unwrap();
    model[3..3 + 8190].fill(0x5a);
    // Overlapping copies, up and down, longer than the accessor's chunk.
    m.copy_within(100, 1100, 9000).unwrap();
    model.copy_within(100..9100, 1100);
    m.copy_within(7000, 6001, 5000).unwrap();
    model.copy_within(7000..12000, 6001);
    m.copy_within(0, 0, 0).unwrap();
    let mut got = vec![0u8; len];
    m.load(0, &mut got).unwrap();
    assert!(got == model, "mapping differs from the model");
    let mut file = vec![0u8; len];
    fs.read(ino, 0, &mut file).unwrap();
    assert!(file == model, "file differs from the model");
    // The raw pointer sees the same bytes.
    assert_eq!(peek_at(&m, 1101), model[1101]);

    // Refusals: nothing is written by any of them.
    assert_eq!(m.load(len - 1, &mut [0u8; 2]), Err(VmFault::SIGSEGV));
    assert_eq!(m.store(usize::MAX, &[1]), Err(VmFault::SIGSEGV));
    assert_eq!(m.fill(len, 1, 0), Err(VmFault::SIGSEGV));
    assert_eq!(m.copy_within(0, len - 10, 11), Err(VmFault::SIGSEGV));
    let ro = fs.mmap_real(ino, 0, len as u64, MapOptions::new()).unwrap();
    assert_eq!(ro.store(0, &[1]), Err(VmFault::SIGSEGV));
    assert_eq!(ro.fill(0, 1, 1), Err(VmFault::SIGSEGV));
    m.munmap(B as usize, B as usize).unwrap();
    assert_eq!(m.store(B as usize + 5, &[1]), Err(VmFault::SIGSEGV));
    assert_eq!(m.load(B as usize - 1, &mut [0u8; 2]), Err(VmFault::SIGSEGV));
    let mut again = vec![0u8; len];
    fs.read(ino, 0, &mut again).unwrap();
    assert!(again == model, "a refused access changed the file");
}
