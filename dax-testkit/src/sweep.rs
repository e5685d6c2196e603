//! The harness of the edge-value sweeps (`*/tests/sweep_edges.rs`), one copy for all
//! four crates' sweeps, each of which imports it with
//! `use dax_testkit::{sweep, sweep::*};` (the module and the [`sweep!`](crate::sweep!)
//! macro).

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dax_device::DaxError;

use crate::child::{child_command, spawn_child};

// =====================================================================================
// Harness (the same for every crate's sweep_edges.rs).
//
// Each sweep is a pair of tests: an ignored `child_<name>` that runs the probes, and
// `<name>`, which runs the child in a child process of this test binary (the pattern of
// dax-testdev/tests/mmu_stress.rs) and watches it. The child announces each probe on
// stdout before running it (`@@PROBE n what`) and its outcome after (`@@OK n`,
// `@@FINDING n what: ...`). A probe's panic is caught (with the first stack frame in a
// project `src/` file) and recorded, so one bug does not hide the next. A probe that
// hangs (no outcome within PROBE_LIMIT) or kills the child (an abort, a signal) is
// recorded by the parent, which then starts the child again after that probe
// (SWEEP_RESUME). At the end the parent fails with one assertion listing every finding.
// =====================================================================================

/// A probe that has not returned after this long is a hang.
pub const PROBE_LIMIT: Duration = Duration::from_secs(10);
/// The most a whole sweep (all its child runs) may take.
pub const SWEEP_LIMIT: Duration = Duration::from_secs(240);

/// The outcome of one probe: `Ok`, or the checks that failed.
pub type Check = Result<(), String>;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The first frame of a backtrace in a project crate's `src/`, as `crate/src/file.rs:line`.
pub fn first_project_frame() -> Option<String> {
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    bt.lines().find_map(|l| {
        let path = l.trim().strip_prefix("at ")?;
        let path = path.strip_prefix("./").unwrap_or(path);
        let rel = if path.starts_with("dax-") {
            path
        } else {
            &path[path.find("/dax-")? + 1..]
        };
        let in_src = rel.contains("/src/") && !rel.contains("/tests/");
        let project = [
            "dax-device/",
            "dax-drivers/",
            "dax-iomap/",
            "dax-fault/",
            "dax-testdev/",
        ]
        .iter()
        .any(|c| rel.starts_with(c));
        (in_src && project).then(|| rel.rsplit_once(':').map_or(rel, |(p, _)| p).to_string())
    })
}

/// Installs the panic hook that records a probe's panic (message, location and first
/// project frame) for [`Sweep::probe`] to report.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string payload)".into());
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let frame = first_project_frame()
            .filter(|f| !loc.ends_with(f.as_str()) && !f.starts_with(&loc))
            .map(|f| format!(" (first project frame {f})"))
            .unwrap_or_default();
        let text = format!("PANIC '{msg}' at {loc}{frame}");
        LAST_PANIC.with(|l| *l.borrow_mut() = Some(text));
    }));
}

/// The child side: numbered probes, run in order.
pub struct Sweep {
    /// The number of the next probe.
    pub next: usize,
    /// The first probe to run (`SWEEP_RESUME`): the ones before it ran in an earlier
    /// child.
    pub resume: usize,
}

impl Sweep {
    /// The child side of a sweep: installs the panic hook and reads `SWEEP_RESUME`.
    #[allow(clippy::new_without_default)] // it installs a panic hook: not a default value
    pub fn new() -> Sweep {
        install_panic_hook();
        let resume = std::env::var("SWEEP_RESUME")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Sweep { next: 0, resume }
    }

    /// Runs probe `what`: `f` returns `Ok` or the checks that failed.
    pub fn probe(&mut self, what: impl AsRef<str>, f: impl FnOnce() -> Check) {
        let n = self.next;
        self.next += 1;
        if n < self.resume {
            return;
        }
        let what = what.as_ref().replace('\n', " ");
        emit(&format!("@@PROBE {n} {what}"));
        LAST_PANIC.with(|l| l.borrow_mut().take());
        let r = std::panic::catch_unwind(AssertUnwindSafe(f));
        let bad = match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(
                LAST_PANIC
                    .with(|l| l.borrow_mut().take())
                    .unwrap_or_else(|| "PANIC (no message)".into()),
            ),
        };
        match bad {
            None => emit(&format!("@@OK {n}")),
            Some(e) => emit(&format!("@@FINDING {n} {what}: {}", e.replace('\n', " | "))),
        }
    }

    /// Announces the end of the sweep and its probe count to the parent.
    pub fn done(self) {
        emit(&format!("@@DONE {}", self.next));
    }
}

/// Writes `line` to stdout at once (the parent reads the child's stdout line by line).
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The name of a signal that killed a child.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGBUS => "SIGBUS",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTRAP => "SIGTRAP",
        _ => "a signal",
    }
}

/// The parent side: runs `child_<name>` (again, after a probe that hung or killed it)
/// and fails listing every finding.
pub fn run_sweep(name: &str) {
    let child_name = format!("child_{name}");
    let started = Instant::now();
    let mut findings: Vec<String> = Vec::new();
    let mut resume = 0usize;
    let mut total = None;
    let mut runs = 0;
    while total.is_none() {
        runs += 1;
        assert!(
            runs <= 60,
            "{name}: too many child restarts\n{}",
            findings.join("\n")
        );
        let mut cmd = child_command(&child_name);
        cmd.env("SWEEP_RESUME", resume.to_string());
        let mut child = spawn_child(&mut cmd).expect("spawning the test binary");
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut current: Option<(usize, String, Instant)> = None;
        let mut hung = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    // libtest prints "test child_... ... " without a newline first.
                    let line = line.find("@@").map_or("", |i| &line[i..]);
                    if let Some(rest) = line.strip_prefix("@@PROBE ") {
                        let (n, what) = rest.split_once(' ').unwrap_or((rest, ""));
                        current = Some((n.parse().unwrap(), what.to_string(), Instant::now()));
                    } else if line.starts_with("@@OK ") {
                        current = None;
                    } else if let Some(rest) = line.strip_prefix("@@FINDING ") {
                        let (_, text) = rest.split_once(' ').unwrap_or(("", rest));
                        findings.push(text.to_string());
                        current = None;
                    } else if let Some(n) = line.strip_prefix("@@DONE ") {
                        total = Some(n.parse::<usize>().unwrap());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if let Some((n, what, at)) = &current
                && at.elapsed() > PROBE_LIMIT
            {
                findings.push(format!(
                    "{what}: HANG: no return within {} s (child killed)",
                    PROBE_LIMIT.as_secs()
                ));
                resume = n + 1;
                hung = true;
                let _ = child.kill();
                break;
            }
            assert!(
                started.elapsed() < SWEEP_LIMIT,
                "{name}: the sweep took more than {} s; findings so far:\n{}",
                SWEEP_LIMIT.as_secs(),
                findings.join("\n")
            );
        }
        let status = child.wait().expect("waiting for the child");
        let err_text = err_thread.join().unwrap();
        if hung || total.is_some() {
            continue;
        }
        let how = match status.signal() {
            Some(sig) => format!("killed the child by {} ({sig})", signal_name(sig)),
            None => format!("the child exited with {:?}", status.code()),
        };
        let tail: String = err_text
            .lines()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        match current {
            Some((n, what, _)) => {
                findings.push(format!("{what}: CRASH: {how}; stderr: {tail}"));
                resume = n + 1;
            }
            None => panic!("{name}: {how} outside any probe (wrong name?)\n{err_text}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name}: {} probes in {secs:.1} s ({runs} child run(s)), {} finding(s)",
        total.unwrap(),
        findings.len()
    );
    assert!(
        findings.is_empty(),
        "{name}: {} finding(s) in {} probes:\n{}",
        findings.len(),
        total.unwrap(),
        findings
            .iter()
            .map(|f| format!("  - {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A sweep test `$name` running `$body(&mut Sweep)` in its child `$child`.
#[macro_export]
macro_rules! sweep {
    ($(#[$doc:meta])* $name:ident, $child:ident, $body:path) => {
        #[test]
        #[ignore = "run in a child process by the sweep test of the same name"]
        fn $child() {
            let mut s = $crate::sweep::Sweep::new();
            $body(&mut s);
            s.done();
        }

        $(#[$doc])*
        #[test]
        fn $name() {
            $crate::sweep::run_sweep(stringify!($name));
        }
    };
}

/// Failed checks of one probe.
#[derive(Default)]
pub struct Fails(
    /// The failed checks' messages.
    pub Vec<String>,
);

impl Fails {
    /// Records `msg()` unless `ok`.
    pub fn that(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }

    /// Records a mismatch unless `got == want`.
    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.0
                .push(format!("{what}: got {got:?}, expected {want:?}"));
        }
    }

    /// `r` must fail with `errno` (the kernel's answer).
    pub fn errno<T: std::fmt::Debug>(&mut self, what: &str, r: &Result<T, DaxError>, errno: i32) {
        match r {
            Err(e) if e.errno() == errno => {}
            Err(e) => self.0.push(format!(
                "{what}: WRONG ERRNO: got {} ({e:?}), kernel gives {}",
                errno_name(e.errno()),
                errno_name(errno)
            )),
            Ok(v) => self.0.push(format!(
                "{what}: got Ok({v:?}), kernel gives {}",
                errno_name(errno)
            )),
        }
    }

    /// The probe's outcome: `Ok`, or the failed checks joined with `; `.
    pub fn done(self) -> Check {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0.join("; "))
        }
    }
}

/// The name of errno `e` (`EINVAL`, ...), or `errno N`.
pub fn errno_name(e: i32) -> String {
    dax_device::errno_name(e).map_or_else(|| format!("errno {e}"), str::to_owned)
}

/// The first byte where `got` differs from `want`, as a message about `what`.
pub fn same_bytes(what: &str, got: &[u8], want: &[u8], base: i64) -> Check {
    if got == want {
        return Ok(());
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => {
            let last = got.iter().zip(want).rposition(|(a, b)| a != b).unwrap_or(i);
            Err(format!(
                "{what}: bytes {}..={} changed (byte {}: {:#04x}, expected {:#04x})",
                base + i as i64,
                base + last as i64,
                base + i as i64,
                got[i],
                want[i]
            ))
        }
    }
}
