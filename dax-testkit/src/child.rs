//! Re-running one ignored test of the current test binary in a child process, for
//! tests that watch a child (a hang or a signal then fails one test, not the run):
//! the command ([`child_command`]), its spawning without core dumps ([`spawn_child`]),
//! and a watchdog run that reports what the child did ([`run_child_watched`]). The
//! sweep harness ([`sweep`](mod@crate::sweep)) and dax-testdev's `testfs_*` tests use
//! it.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Resource, Rlimit, prlimit};

/// `current_exe --ignored --exact NAME --nocapture --test-threads=1`, with no stdin
/// and piped stdout and stderr. Spawn it with [`spawn_child`], which turns core dumps
/// off.
pub fn child_command(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// Spawns `cmd` and sets the child's core-dump limit to 0 (soft and hard): children
/// that die by a signal are expected failures, and dumping a large device is slow.
///
/// The limit is set with prlimit(2) right after the exec, which needs no `unsafe`
/// `pre_exec` hook; the child runs its test only after libtest has started, so a dump
/// before the limit is in place would need a crash during start-up (and would only
/// cost time).
pub fn spawn_child(cmd: &mut Command) -> std::io::Result<Child> {
    let child = cmd.spawn()?;
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = prlimit(Some(Pid::from_child(&child)), Resource::Core, none);
    Ok(child)
}

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
    pub took: Duration,
}

/// Runs the ignored test `name` of this test binary in a child process (without core
/// dumps: children killed by a signal are expected failures) and kills it if it runs
/// past `limit`, so that a hang fails one test and not the whole run.
pub fn run_child_watched(name: &str, limit: Duration) -> ChildRun {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let mut cmd = child_command(name);
    let started = Instant::now();
    let mut child = spawn_child(&mut cmd).expect("spawning the test binary");
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
