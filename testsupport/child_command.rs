//! The command that re-runs one ignored test of the current test binary in a child
//! process, for tests that watch a child (a hang or a signal then fails one test, not
//! the run). Shared by dax-testdev's `testfs_common` and the sweep harness.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// `current_exe --ignored --exact NAME --nocapture --test-threads=1`, with no stdin,
/// piped stdout and stderr, and no core dump for a child that dies by a signal (those
/// are expected failures, and dumping a large device is slow).
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
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    cmd
}
