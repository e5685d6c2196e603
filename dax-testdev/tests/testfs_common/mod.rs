//! Helpers shared by the `testfs_*` integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dax_device::DaxDevice;
use dax_iomap::IterFlags;
use dax_testdev::{Backing, MemDevice, TestFs};

pub const B: u64 = 4096;
pub const W: IterFlags = IterFlags::DAX.union(IterFlags::WRITE);
pub const R: IterFlags = IterFlags::DAX;

pub type Dev = Arc<DaxDevice<MemDevice>>;

/// A memfd device of `size` bytes with a fresh TestFs on it.
pub fn mem_fs(size: u64) -> (Dev, TestFs) {
    let dev = MemDevice::builder().size(size).build().unwrap();
    let fs = TestFs::mkfs(dev.clone()).unwrap();
    (dev, fs)
}

/// A device file in the temp directory, removed on drop.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(
            std::env::temp_dir().join(format!("dax-testfs-{tag}-{}-{n}.img", std::process::id())),
        )
    }

    pub fn device(&self, size: Option<u64>) -> Dev {
        let mut b = MemDevice::builder().backing(Backing::File(self.0.clone()));
        if let Some(s) = size {
            b = b.size(s);
        }
        b.build().unwrap()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        // The poison list a file-backed device keeps beside its image.
        let mut poison = self.0.clone().into_os_string();
        poison.push(".poison");
        let _ = std::fs::remove_file(poison);
    }
}

pub fn poke(dev: &Dev, addr: u64, data: &[u8]) {
    dev.driver().poke(addr, data).unwrap();
}

pub fn peek(dev: &Dev, addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    dev.driver().peek(addr, &mut v).unwrap();
    v
}

/// A deterministic byte pattern for `seed` at file offset `off`.
pub fn pattern(seed: u8, off: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((off + i).wrapping_mul(31) as u8) ^ seed)
        .collect()
}

// The sweep harness includes the same file where both are in one test binary.
#[allow(clippy::duplicate_mod)]
#[path = "../../../testsupport/child_command.rs"]
mod child_command;

/// What a watched child process did ([`run_child_watched`]).
pub struct ChildRun {
    /// Its exit status; `None` when it was killed for running past the limit.
    pub status: Option<std::process::ExitStatus>,
    /// Its stdout and stderr.
    pub output: String,
    /// Its threads' states at the moment it was killed (empty otherwise): `R` for a
    /// livelock, `S` with a wait channel for a deadlock.
    pub hung_threads: String,
    /// How long it ran.
    pub took: std::time::Duration,
}

/// Runs the ignored test `name` of this test binary in a child process (without core
/// dumps: children killed by a signal are expected failures) and kills it if it runs
/// past `limit`, so that a hang fails one test and not the whole run.
pub fn run_child_watched(name: &str, limit: std::time::Duration) -> ChildRun {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let mut cmd = child_command::child_command(name);
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawning the test binary");
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let mut hung_threads = String::new();
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for the child") {
            break Some(st);
        }
        if started.elapsed() >= limit {
            hung_threads = thread_states(child.id());
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ChildRun {
        status,
        output: format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            out.join().unwrap(),
            err.join().unwrap()
        ),
        hung_threads,
        took: started.elapsed(),
    }
}

/// The name, state and kernel wait channel of each thread of process `pid`.
fn thread_states(pid: u32) -> String {
    let mut out = String::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let path = t.path();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let wchan = std::fs::read_to_string(path.join("wchan")).unwrap_or_default();
        // "tid (comm) state ...": the state follows the last ')'.
        let (head, tail) = stat.rsplit_once(')').unwrap_or((&stat, ""));
        let state = tail.split_whitespace().next().unwrap_or("?");
        out += &format!("  {head}) {state} wchan={wchan}\n");
    }
    out
}
