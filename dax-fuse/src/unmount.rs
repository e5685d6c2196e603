//! Ending the mount: [`block_signals`] before any thread starts, then
//! [`spawn_signal_thread`], which waits for SIGINT, SIGTERM or SIGHUP with
//! `sigwait(2)` and [`unmount`]s the mount point. The FUSE session then sees its
//! device close (`ENODEV`), its loop returns, and `main` unmounts TestFs (a
//! checkpoint).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{SigSet, Signal};

/// The signals that end the mount.
fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread and so in every thread it starts
/// afterwards (`pthread_sigmask`), so that only [`spawn_signal_thread`]'s `sigwait`
/// takes them. Call first thing in `main`.
pub fn block_signals() -> Result<(), String> {
    stop_signals()
        .thread_block()
        .map_err(|e| format!("cannot block SIGINT/SIGTERM: {e}"))
}

/// `umount2(mountpoint, 0)` (as root), or `fusermount3 -u` (otherwise). A mount busy
/// with open files is detached instead (`MNT_DETACH` / `fusermount3 -uz`), with a
/// line saying so: it goes away, and the session ends, when the last file closes.
/// A mount point that is no longer mounted is not an error.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), String> {
    let flags = if lazy {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    match umount2(mountpoint, flags) {
        Ok(()) | Err(Errno::EINVAL) => Ok(()),
        Err(Errno::EBUSY) if !lazy => {
            eprintln!(
                "daxfs-fuse: {} is busy; detaching it, the filesystem is unmounted when \
                 its last open file closes",
                mountpoint.display()
            );
            unmount(mountpoint, true)
        }
        Err(Errno::EPERM) => fusermount(mountpoint, lazy),
        Err(e) => Err(format!("unmount of {}: {e}", mountpoint.display())),
    }
}

/// `fusermount3 -u [-z] MOUNTPOINT`, for a mount made by an unprivileged user.
fn fusermount(mountpoint: &Path, lazy: bool) -> Result<(), String> {
    let mut cmd = Command::new("fusermount3");
    cmd.arg(if lazy { "-uz" } else { "-u" })
        .arg("--")
        .arg(mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(_) if !lazy => unmount_lazy_fusermount(mountpoint),
        Ok(s) => Err(format!("fusermount3 -uz {}: {s}", mountpoint.display())),
        Err(e) => Err(format!("fusermount3: {e}")),
    }
}

fn unmount_lazy_fusermount(mountpoint: &Path) -> Result<(), String> {
    eprintln!(
        "daxfs-fuse: {} is busy; detaching it, the filesystem is unmounted when its last \
         open file closes",
        mountpoint.display()
    );
    fusermount(mountpoint, true)
}

/// Starts the thread that waits for SIGINT, SIGTERM or SIGHUP (blocked by
/// [`block_signals`]) and unmounts `mountpoint`; a second signal detaches it lazily.
pub fn spawn_signal_thread(mountpoint: PathBuf) -> Result<(), String> {
    std::thread::Builder::new()
        .name("daxfs-signals".into())
        .spawn(move || {
            let set = stop_signals();
            let mut lazy = false;
            while let Ok(sig) = set.wait() {
                eprintln!("daxfs-fuse: {sig}: unmounting {}", mountpoint.display());
                if let Err(e) = unmount(&mountpoint, lazy) {
                    eprintln!("daxfs-fuse: {e}");
                }
                lazy = true;
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}
