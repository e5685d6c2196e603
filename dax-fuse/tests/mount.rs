//! `daxfs-fuse` mounted for real, used with ordinary tools: cp, dd, cat, truncate,
//! fallocate, sha256sum, stat, df, cmp and fio (verify=crc32c), and mkdir, mv, ln,
//! chmod, chown, touch, rm -r and find for the tree and its attributes; then SIGINT,
//! and a second mount of the same image shows the same files and tree, byte for byte.
//!
//! Needs root and `/dev/fuse`; without them each test prints why and returns. Every
//! subprocess, every wait and every system call on the mount has a deadline, so a hang
//! fails a test instead of stalling the run, and a guard unmounts (`umount -l`) and
//! kills the server on every way out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_daxfs-fuse");
/// How long a tool may run (debug builds of the server are slow, the machine is
/// shared).
const TOOL_DEADLINE: Duration = Duration::from_secs(120);
/// How long mounting and unmounting may take.
const MOUNT_DEADLINE: Duration = Duration::from_secs(30);

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (mounting FUSE as a user needs fusermount3 set up)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    None
}

macro_rules! skip_unless_fuse {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("daxfs-fuse-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `mnt` is a mount point now (`/proc/self/mountinfo`, field 5).
fn is_mounted(mnt: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mnt.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

/// Polls `cond` every 20 ms until it holds; false if `deadline` passes first.
fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit, killing it after `deadline` (`None` then).
fn wait_child(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(deadline, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        // Not `wait()`: a tool whose request the server never answers sits in an
        // uninterruptible wait that SIGKILL does not end until the server dies, which
        // the `Server` guard sees to once this returns. Reap it if it goes quickly.
        wait_until(Duration::from_secs(2), || {
            child.try_wait().ok().flatten().is_some()
        });
    }
    status
}

/// Runs `f` on another thread and returns its result, or panics after `deadline`
/// (a system call on a hung mount must fail the test, not hang it; the [`Server`]
/// guard then kills the server, which releases the stuck call).
fn within<T: Send + 'static>(deadline: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(deadline)
        .unwrap_or_else(|_| panic!("a call on the mount took more than {deadline:?}"))
}

/// A running `daxfs-fuse`; dropping it without [`Server::stop`] unmounts lazily and
/// kills it.
struct Server {
    child: Option<Child>,
    mnt: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts `daxfs-fuse ARGS MNT` and waits for the mount to appear.
    fn start(mnt: &Path, log: &Path, args: &[&str]) -> Server {
        std::fs::create_dir_all(mnt).unwrap();
        let mnt = mnt.canonicalize().unwrap();
        assert!(!is_mounted(&mnt), "{} is mounted already", mnt.display());
        let child = Command::new(BIN)
            .args(args)
            .arg(&mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap())
            .spawn()
            .expect("spawning daxfs-fuse");
        let mut s = Server {
            child: Some(child),
            mnt,
            log: log.to_owned(),
        };
        // Mounted, and the server has said so (it prints its line just after the
        // mount appears, so a test reading the log must wait for both).
        let log_path = s.log.clone();
        let up = wait_until(MOUNT_DEADLINE, || {
            (is_mounted(&s.mnt)
                && std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains(" mounted on ")))
                || s.child.as_mut().unwrap().try_wait().unwrap().is_some()
        });
        assert!(
            up && is_mounted(&s.mnt),
            "daxfs-fuse did not mount within {MOUNT_DEADLINE:?}: {}",
            s.log_text()
        );
        s
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// SIGINT, then waits for a clean exit (status 0) and for the mount to go.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
        let status = wait_child(&mut child, MOUNT_DEADLINE);
        assert!(
            status.is_some(),
            "daxfs-fuse did not exit within {MOUNT_DEADLINE:?} of SIGINT: {}",
            self.log_text()
        );
        assert!(
            status.unwrap().success(),
            "daxfs-fuse exited with {status:?}: {}",
            self.log_text()
        );
        assert!(
            wait_until(MOUNT_DEADLINE, || !is_mounted(&self.mnt)),
            "{} still mounted after daxfs-fuse exited",
            self.mnt.display()
        );
        let log = self.log_text();
        assert!(log.contains("checkpointed"), "{log}");
    }

    /// Kills the server without unmounting TestFs (a crash), then removes the
    /// mount.
    fn crash(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = wait_child(&mut child, MOUNT_DEADLINE);
        force_unmount(&self.mnt);
    }
}

fn force_unmount(mnt: &Path) {
    if is_mounted(mnt) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        force_unmount(&self.mnt);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = wait_child(&mut c, MOUNT_DEADLINE);
        }
    }
}

/// Runs a tool with a deadline (`LC_ALL=C`); returns its stdout. Panics with its
/// stderr when it fails or runs too long.
fn tool(dir: &Scratch, prog: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let (ok, out, err) = tool_status(dir, prog, args);
    assert!(
        ok,
        "{prog} {:?} failed: {err}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>()
    );
    out
}

/// Runs a tool with a deadline; returns (success, stdout, stderr).
fn tool_status(
    dir: &Scratch,
    prog: &str,
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> (bool, String, String) {
    let (out_p, err_p) = (dir.path("tool.out"), dir.path("tool.err"));
    let mut cmd = Command::new(prog);
    for a in args {
        cmd.arg(a);
    }
    // In the scratch directory: fio leaves its verify state file in the current one.
    let mut child = cmd
        .current_dir(&dir.0)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(File::create(&out_p).unwrap())
        .stderr(File::create(&err_p).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    let status = wait_child(&mut child, TOOL_DEADLINE)
        .unwrap_or_else(|| panic!("{prog} ran longer than {TOOL_DEADLINE:?}"));
    (
        status.success(),
        std::fs::read_to_string(out_p).unwrap_or_default(),
        std::fs::read_to_string(err_p).unwrap_or_default(),
    )
}

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Deterministic bytes (xorshift64*).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// `sha256sum` of every file on the mount, and its size (`stat`): name → (sum, size).
fn sums(dir: &Scratch, s: &Server) -> BTreeMap<String, (String, u64)> {
    let names: Vec<String> = {
        let mnt = s.mnt.clone();
        within(TOOL_DEADLINE, move || {
            let mut v: Vec<String> = std::fs::read_dir(&mnt)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        })
    };
    let mut out = BTreeMap::new();
    for n in names {
        let p = s.path(&n);
        let sum = tool(dir, "sha256sum", &[&p]);
        let sum = sum.split_whitespace().next().unwrap().to_owned();
        let size = tool(dir, "stat", &[&"-c", &"%s", &p])
            .trim()
            .parse()
            .unwrap();
        out.insert(n, (sum, size));
    }
    out
}

/// What a file on the mount must hold: written to the scratch directory and compared
/// with `cmp`, and its size with `stat`.
fn check(dir: &Scratch, s: &Server, name: &str, want: &[u8]) {
    let exp = dir.path(&format!("expect.{}", name.replace('/', "_")));
    std::fs::write(&exp, want).unwrap();
    let got = s.path(name);
    let (same, out, err) = tool_status(dir, "cmp", &[&exp, &got]);
    assert!(same, "{name} differs from what was written: {out}{err}");
    let size: u64 = tool(dir, "stat", &[&"-c", &"%s", &got])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(size, want.len() as u64, "{name}: size");
}

/// Allocated bytes of a file on the mount (`stat %b` × 512).
fn allocated(dir: &Scratch, s: &Server, name: &str) -> u64 {
    let b: u64 = tool(dir, "stat", &[&"-c", &"%b", &s.path(name)])
        .trim()
        .parse()
        .unwrap();
    b * 512
}

#[test]
fn tools_work_and_a_second_mount_sees_the_same_files() {
    skip_unless_fuse!();
    let dir = Scratch::new("tools");
    let img = dir.path("image");
    let mnt = dir.path("mnt");
    let s = Server::start(
        &mnt,
        &dir.path("log1"),
        &["--image", img.to_str().unwrap(), "--size", "256M"],
    );

    // cp and cat.
    let src_bytes = pattern(3 * 1024 * 1024 + 123, 1);
    let src = dir.path("src");
    std::fs::write(&src, &src_bytes).unwrap();
    tool(&dir, "cp", &[&src, &s.path("copy")]);
    check(&dir, &s, "copy", &src_bytes);
    let catted = dir.path("cat.out");
    let mut cat = Command::new("cat")
        .arg(s.path("copy"))
        .stdin(Stdio::null())
        .stdout(File::create(&catted).unwrap())
        .spawn()
        .unwrap();
    assert!(wait_child(&mut cat, TOOL_DEADLINE).unwrap().success());
    assert!(
        std::fs::read(&catted).unwrap() == src_bytes,
        "cat read other bytes"
    );

    // dd: a copy, an overwrite in place (conv=notrunc, with fsync), a write past EOF
    // (seek) that leaves a hole.
    let mut dd_want = src_bytes.clone();
    tool(
        &dir,
        "dd",
        &[
            &format!("if={}", src.display()),
            &format!("of={}", s.path("dd.bin").display()),
            &"bs=64K",
            &"status=none",
        ],
    );
    tool(
        &dir,
        "dd",
        &[
            &"if=/dev/zero",
            &format!("of={}", s.path("dd.bin").display()),
            &"bs=4K",
            &"seek=10",
            &"count=3",
            &"conv=notrunc,fsync",
            &"status=none",
        ],
    );
    dd_want[40960..53248].fill(0);
    check(&dir, &s, "dd.bin", &dd_want);
    tool(
        &dir,
        "dd",
        &[
            &format!("if={}", src.display()),
            &format!("of={}", s.path("sparse").display()),
            &"bs=4096",
            &"seek=1000",
            &"count=2",
            &"status=none",
        ],
    );
    let mut sparse_want = vec![0u8; 1000 * 4096];
    sparse_want.extend_from_slice(&src_bytes[..8192]);
    check(&dir, &s, "sparse", &sparse_want);
    assert!(
        allocated(&dir, &s, "sparse") <= 64 * 1024,
        "dd seek should leave a hole"
    );

    // truncate: grow (zeros) and shrink to a partial block.
    let mut copy_want = src_bytes.clone();
    tool(&dir, "truncate", &[&"-s", &"5M", &s.path("copy")]);
    copy_want.resize(5 << 20, 0);
    check(&dir, &s, "copy", &copy_want);
    tool(&dir, "truncate", &[&"-s", &"1000000", &s.path("dd.bin")]);
    dd_want.truncate(1_000_000);
    check(&dir, &s, "dd.bin", &dd_want);
    // Growing again must show zeros past the old EOF, not the old bytes.
    tool(&dir, "truncate", &[&"-s", &"1100000", &s.path("dd.bin")]);
    dd_want.resize(1_100_000, 0);
    check(&dir, &s, "dd.bin", &dd_want);

    // fallocate: allocate (size grows, reads zeros), keep-size, punch a hole and zero
    // a range (both read zeros there, size unchanged).
    tool(&dir, "fallocate", &[&"-l", &"2M", &s.path("falloc")]);
    check(&dir, &s, "falloc", &vec![0u8; 2 << 20]);
    assert!(allocated(&dir, &s, "falloc") >= 2 << 20);
    tool(&dir, "touch", &[&s.path("keep")]);
    tool(&dir, "fallocate", &[&"-n", &"-l", &"1M", &s.path("keep")]);
    check(&dir, &s, "keep", &[]);
    assert!(
        allocated(&dir, &s, "keep") >= 1 << 20,
        "KEEP_SIZE allocates"
    );
    let before = allocated(&dir, &s, "copy");
    tool(
        &dir,
        "fallocate",
        &[
            &"--punch-hole",
            &"-o",
            &"4096",
            &"-l",
            &"65536",
            &s.path("copy"),
        ],
    );
    copy_want[4096..4096 + 65536].fill(0);
    check(&dir, &s, "copy", &copy_want);
    assert!(
        allocated(&dir, &s, "copy") < before,
        "punch-hole frees blocks"
    );
    tool(
        &dir,
        "fallocate",
        &[
            &"--zero-range",
            &"-o",
            &"100000",
            &"-l",
            &"50000",
            &s.path("dd.bin"),
        ],
    );
    dd_want[100_000..150_000].fill(0);
    check(&dir, &s, "dd.bin", &dd_want);

    // stat and df.
    let st = tool(&dir, "stat", &[&"-c", &"%F %s %h %a", &s.path("copy")]);
    assert_eq!(st.trim(), format!("regular file {} 1 644", 5 << 20));
    let df = tool(&dir, "df", &[&"-T", &"-B1", &s.mnt]);
    let line = df.lines().nth(1).expect("df output");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[1], "fuse.daxfs", "{df}");
    let total: u64 = cols[2].parse().unwrap();
    let avail: u64 = cols[4].parse().unwrap();
    assert!(total > 240 << 20 && total <= 256 << 20, "{df}");
    assert!(avail < total && avail > 200 << 20, "{df}");

    // fio with crc32c verification (skipped without fio).
    if have("fio") {
        let out = tool(
            &dir,
            "fio",
            &[
                &"--name=verify",
                &format!("--filename={}", s.path("fio.dat").display()),
                &"--size=8M",
                &"--bs=4k",
                &"--rw=randwrite",
                &"--ioengine=psync",
                &"--direct=0",
                &"--verify=crc32c",
                &"--do_verify=1",
                &"--verify_fatal=1",
                &"--verify_state_save=0",
                &"--output-format=json",
            ],
        );
        assert!(out.contains("\"error\" : 0"), "fio: {out}");
    } else {
        eprintln!("fio skipped: fio is not installed");
    }

    // Record, stop with SIGINT, mount the image again, compare.
    let first = sums(&dir, &s);
    assert!(first.len() >= 6, "{first:?}");
    assert_eq!(first["copy"].1, 5 << 20);
    s.stop();
    let s = Server::start(&mnt, &dir.path("log2"), &["--image", img.to_str().unwrap()]);
    assert!(s.log_text().contains("existing"), "{}", s.log_text());
    let second = sums(&dir, &s);
    assert_eq!(first, second, "the second mount shows other files");
    check(&dir, &s, "dd.bin", &dd_want);
    s.stop();
}

#[test]
fn fsync_is_durable_across_a_crash() {
    skip_unless_fuse!();
    let dir = Scratch::new("crash");
    let img = dir.path("image");
    let mnt = dir.path("mnt");
    let s = Server::start(
        &mnt,
        &dir.path("log1"),
        &["--image", img.to_str().unwrap(), "--size", "64M"],
    );
    let bytes = pattern(300_000, 7);
    let src = dir.path("src");
    std::fs::write(&src, &bytes).unwrap();
    tool(
        &dir,
        "dd",
        &[
            &format!("if={}", src.display()),
            &format!("of={}", s.path("synced").display()),
            &"bs=64K",
            &"conv=fsync",
            &"status=none",
        ],
    );
    // Written after the last fsync: a crash loses it (so the crash was real).
    tool(&dir, "cp", &[&src, &s.path("unsynced")]);
    s.crash();
    let s = Server::start(&mnt, &dir.path("log2"), &["--image", img.to_str().unwrap()]);
    check(&dir, &s, "synced", &bytes);
    let p = s.path("unsynced");
    assert_eq!(
        within(TOOL_DEADLINE, move || errno_of(std::fs::metadata(p))),
        libc::ENOENT
    );
    s.stop();
}

/// The errno a call on the mount failed with.
fn errno_of<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.raw_os_error().expect("an OS error"),
    }
}

#[test]
fn errors_reach_callers_as_the_right_errno() {
    skip_unless_fuse!();
    let dir = Scratch::new("errno");
    let s = Server::start(&dir.path("mnt"), &dir.path("log"), &["--size", "16M"]);
    let d = Duration::from_secs(60);

    let p = s.path("nonexistent");
    assert_eq!(within(d, move || errno_of(std::fs::read(p))), libc::ENOENT);

    let p = s.path(&"n".repeat(300));
    assert_eq!(
        within(d, move || errno_of(File::create(p))),
        libc::ENAMETOOLONG
    );

    // Modes TestFs (and the kernel's FUSE client) do not do: EOPNOTSUPP.
    let p = s.path("f");
    let e = within(d, move || {
        use nix::fcntl::{FallocateFlags as F, fallocate};
        let f = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(p)
            .unwrap();
        f.set_len(1 << 20).unwrap();
        let collapse = fallocate(&f, F::FALLOC_FL_COLLAPSE_RANGE, 0, 4096);
        let punch_no_keep = fallocate(&f, F::FALLOC_FL_PUNCH_HOLE, 0, 4096);
        let ok = fallocate(
            &f,
            F::FALLOC_FL_PUNCH_HOLE | F::FALLOC_FL_KEEP_SIZE,
            0,
            4096,
        );
        (collapse, punch_no_keep, ok)
    });
    assert_eq!(e.0, Err(nix::errno::Errno::EOPNOTSUPP));
    assert_eq!(e.1, Err(nix::errno::Errno::EOPNOTSUPP));
    assert_eq!(e.2, Ok(()));

    // SEEK_DATA at EOF: ENXIO; SEEK_DATA finds the data after the punched hole.
    let p = s.path("f");
    let (past, data) = within(d, move || {
        use nix::unistd::{Whence, lseek};
        use std::os::unix::fs::FileExt;
        let f = File::options().read(true).write(true).open(p).unwrap();
        f.write_all_at(&[1u8; 4096], 1 << 20).unwrap();
        let past = lseek(&f, 1 << 21, Whence::SeekData);
        let data = lseek(&f, 0, Whence::SeekData);
        (past, data)
    });
    assert_eq!(past, Err(nix::errno::Errno::ENXIO));
    assert_eq!(data, Ok(1 << 20));

    // A 16 MiB filesystem cannot take 32 MiB: ENOSPC from TestFs's allocator.
    let p = s.path("big");
    let e = within(d, move || {
        let mut f = File::create(p).unwrap();
        let chunk = vec![0xa5u8; 1 << 20];
        (0..32).try_for_each(|_| f.write_all(&chunk)).map(|_| ())
    });
    assert_eq!(errno_of(e), libc::ENOSPC);
    s.stop();
}

/// A file removed while open stays readable and writable through its descriptor
/// until it is closed (POSIX; the tmpfile idiom), and its space comes back then.
#[test]
fn an_open_file_outlives_its_name_until_closed() {
    skip_unless_fuse!();
    let dir = Scratch::new("orphan");
    let s = Server::start(&dir.path("mnt"), &dir.path("log"), &["--size", "32M"]);
    let d = Duration::from_secs(60);
    let (p, mnt) = (s.path("tmp"), s.path(""));
    let (nlink, data, free_open, free_closed, free_before) = within(d, move || {
        use std::io::{Read, Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        let free = || nix::sys::statvfs::statvfs(&mnt).unwrap().blocks_free();
        let free_before = free();
        let mut f = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        f.write_all(&pattern(4 << 20, 9)).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(std::fs::metadata(&p).is_err(), "the name is gone");
        f.write_all(b"written after the unlink").unwrap();
        f.sync_all().unwrap();
        let nlink = f.metadata().unwrap().nlink();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        let free_open = free();
        drop(f);
        // RELEASE is asynchronous to close(2): wait for the space to come back.
        let mut free_closed = free();
        for _ in 0..200 {
            if free_closed >= free_before {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            free_closed = free();
        }
        (nlink, data, free_open, free_closed, free_before)
    });
    assert_eq!(nlink, 0);
    let mut want = pattern(4 << 20, 9);
    want.extend_from_slice(b"written after the unlink");
    assert!(
        data == want,
        "the data read back through the descriptor differs"
    );
    assert!(
        free_open < free_before,
        "the open file still holds its blocks"
    );
    assert_eq!(
        free_closed, free_before,
        "its blocks are free once it is closed"
    );
    s.stop();
}

/// The tree and its attributes as `find` prints them: path, type, mode, owner, group,
/// link count, size, mtime, one line each, sorted.
fn tree(dir: &Scratch, s: &Server) -> String {
    let out = tool(
        dir,
        "find",
        &[
            &s.mnt,
            &"-mindepth",
            &"1",
            &"-printf",
            &"%P %y %m %U %G %n %s %T@\\n",
        ],
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    lines.join("\n")
}

#[test]
fn directories_links_and_attributes_work_and_survive_a_remount() {
    skip_unless_fuse!();
    let dir = Scratch::new("tree");
    let img = dir.path("image");
    let mnt = dir.path("mnt");
    let s = Server::start(
        &mnt,
        &dir.path("log1"),
        &["--image", img.to_str().unwrap(), "--size", "64M"],
    );
    let bytes = pattern(100_000, 3);
    let src = dir.path("src");
    std::fs::write(&src, &bytes).unwrap();

    tool(&dir, "mkdir", &[&"-p", &s.path("a/b/c"), &s.path("d")]);
    tool(&dir, "cp", &[&src, &s.path("a/b/file")]);
    tool(&dir, "ln", &[&s.path("a/b/file"), &s.path("d/hardlink")]);
    assert_eq!(
        tool(&dir, "stat", &[&"-c", &"%h", &s.path("d/hardlink")]).trim(),
        "2"
    );
    tool(&dir, "mv", &[&s.path("a/b/c"), &s.path("d/c-moved")]);
    tool(&dir, "mv", &[&s.path("a/b/file"), &s.path("a/renamed")]);
    tool(&dir, "chmod", &[&"0640", &s.path("a/renamed")]);
    tool(&dir, "chmod", &[&"0700", &s.path("d")]);
    tool(&dir, "chown", &[&"1234:5678", &s.path("d/hardlink")]);
    tool(
        &dir,
        "touch",
        &[
            &"-m",
            &"-d",
            &"2001-02-03 04:05:06.123456789 UTC",
            &s.path("a/renamed"),
        ],
    );
    // rmdir of a non-empty directory fails (ENOTEMPTY); rm -r removes a whole subtree.
    let (ok, _, err) = tool_status(&dir, "rmdir", &[&s.path("a")]);
    assert!(!ok && err.contains("not empty"), "rmdir a: {err}");
    tool(&dir, "mkdir", &[&"-p", &s.path("gone/x/y")]);
    tool(&dir, "cp", &[&src, &s.path("gone/x/y/f")]);
    tool(&dir, "rm", &[&"-r", &s.path("gone")]);

    let before = tree(&dir, &s);
    let want = [
        "a d 755",
        "a/b d 755",
        "a/renamed f 640 1234 5678 2 100000 981173106.1234567890",
        "d d 700",
        "d/c-moved d 755",
        "d/hardlink f 640 1234 5678 2 100000 981173106.1234567890",
    ];
    let lines: Vec<&str> = before.lines().collect();
    assert_eq!(lines.len(), want.len(), "{before}");
    for (got, want) in lines.iter().zip(want) {
        assert!(
            got.starts_with(want),
            "got {got:?}, want it to start {want:?}\n{before}"
        );
    }
    check(&dir, &s, "d/hardlink", &bytes);

    s.stop();
    let s = Server::start(&mnt, &dir.path("log2"), &["--image", img.to_str().unwrap()]);
    assert_eq!(
        tree(&dir, &s),
        before,
        "the second mount shows another tree"
    );
    check(&dir, &s, "a/renamed", &bytes);
    // Unlinking one name keeps the other.
    tool(&dir, "rm", &[&s.path("a/renamed")]);
    assert_eq!(
        tool(&dir, "stat", &[&"-c", &"%h", &s.path("d/hardlink")]).trim(),
        "1"
    );
    check(&dir, &s, "d/hardlink", &bytes);
    s.stop();
}

#[test]
fn df_counts_directories_rewinddir_sees_changes_and_pre_1970_times_are_exact() {
    skip_unless_fuse!();
    let dir = Scratch::new("edges");
    let mnt = dir.path("mnt");
    let s = Server::start(&mnt, &dir.path("log1"), &["--size", "64M"]);
    // df -i: directories are inodes in use; free inodes are what names still fit.
    let inodes = |s: &Server| -> (u64, u64) {
        let out = tool(&dir, "df", &[&"--output=iused,iavail", &s.mnt]);
        let v: Vec<u64> = out
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (v[0], v[1])
    };
    let (used0, free0) = inodes(&s);
    for i in 0..10 {
        tool(&dir, "mkdir", &[&s.path(&format!("d{i}"))]);
    }
    let (used1, free1) = inodes(&s);
    assert_eq!(
        used1,
        used0 + 10,
        "df -i: {used0}/{free0} then {used1}/{free1}"
    );
    assert!(free1 < free0 && free1 > 1000, "{free0} then {free1}");

    // rewinddir shows the directory as it is now (perl's rewinddir is glibc's).
    tool(&dir, "touch", &[&s.path("d0/a")]);
    let out = tool(
        &dir,
        "perl",
        &[
            &"-e",
            &r#"opendir(D, $ARGV[0]) or die; my @a = sort grep !/^\./, readdir(D);
                unlink("$ARGV[0]/a") or die; open(F, ">", "$ARGV[0]/b") or die; close F;
                rewinddir(D); my @b = sort grep !/^\./, readdir(D);
                print "@a|@b\n";"#,
            &s.path("d0"),
        ],
    );
    assert_eq!(out.trim(), "a|b", "readdir before and after rewinddir");

    // Times before 1970 with a fraction of a second come back as set.
    tool(&dir, "touch", &[&s.path("old")]);
    let out = tool(
        &dir,
        "python3",
        &[
            &"-c",
            &"import os, sys; p = sys.argv[1]; \
              os.utime(p, ns=(-500000000, -2750000000)); st = os.stat(p); \
              print(st.st_atime_ns, st.st_mtime_ns)",
            &s.path("old"),
        ],
    );
    assert_eq!(out.trim(), "-500000000 -2750000000");
    s.stop();
}
