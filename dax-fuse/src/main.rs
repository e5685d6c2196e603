//! `daxfs-fuse [OPTIONS] MOUNTPOINT`: TestFs on a DAX device, served through FUSE.
//! See `daxfs-fuse --help` and the crate's README.
#![deny(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use dax_fuse::device::open_fs;
use dax_fuse::options::{CacheMode, Command, Options, USAGE};
use dax_fuse::server::DaxFuse;
use dax_fuse::unmount::{block_signals, spawn_signal_thread};
use fsdax::testing::TestFs;
use fuser::{Config, MountOption, Session, SessionACL};

fn main() -> ExitCode {
    // A panic in a FUSE worker would leave its request unanswered, and the process
    // that made it waiting in the kernel for good (not even SIGKILL ends that wait).
    // Dying instead closes /dev/fuse: the kernel fails every pending request with
    // ENOTCONN and the caller goes on.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("daxfs-fuse: a panic stops the server; the mount answers ENOTCONN");
        std::process::abort();
    }));
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("daxfs-fuse: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Unmounts TestFs: a checkpoint, after which a new mount of the same image shows
/// everything written. If a handle is still alive somewhere (it should not be: the
/// session has dropped the server), a sync gives the same durability.
fn finish(fs: Arc<TestFs>) -> Result<(), String> {
    match Arc::try_unwrap(fs) {
        Ok(fs) => fs.unmount(),
        Err(fs) => fs.sync(),
    }
    .map_err(|e| format!("final checkpoint failed: {e}"))
}

fn run() -> Result<(), String> {
    let opts = match Options::parse(std::env::args_os().skip(1))? {
        Command::Help => {
            print!("{USAGE}");
            return Ok(());
        }
        Command::Mount(o) => o,
    };
    let mnt = opts
        .mountpoint
        .canonicalize()
        .map_err(|e| format!("mount point {}: {e}", opts.mountpoint.display()))?;
    if !mnt.is_dir() {
        return Err(format!("mount point {}: not a directory", mnt.display()));
    }
    block_signals()?;
    let opened = open_fs(&opts.memory, opts.size)?;
    let fs = Arc::new(opened.fs);
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("daxfs".into()),
        // The kernel's own `subtype=` (fuser's Subtype only reaches fusermount): the
        // mount's type reads `fuse.daxfs` in /proc/self/mountinfo and `df -T`.
        MountOption::CUSTOM("subtype=daxfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::RW,
    ];
    config.n_threads = Some(opts.threads);
    config.clone_fd = true;
    if opts.allow_other {
        config.acl = SessionACL::All;
    }
    let server = DaxFuse::new(fs.clone(), opts.cache);
    let session = match Session::new(server, &mnt, &config) {
        Ok(s) => s,
        Err(e) => {
            let _ = finish(fs);
            return Err(format!("cannot mount on {}: {e}", mnt.display()));
        }
    };
    let cache = match opts.cache {
        CacheMode::Direct => "direct",
        CacheMode::Page => "page",
        CacheMode::Writeback => "writeback",
    };
    eprintln!(
        "daxfs-fuse: {} mounted on {} (cache={cache}, {} threads); Ctrl-C unmounts",
        opened.what,
        mnt.display(),
        opts.threads
    );
    spawn_signal_thread(mnt.clone())?;
    let served = session.run();
    let finished = finish(fs);
    served.map_err(|e| format!("FUSE session on {} failed: {e}", mnt.display()))?;
    finished?;
    eprintln!(
        "daxfs-fuse: unmounted {}; TestFs checkpointed",
        mnt.display()
    );
    Ok(())
}
