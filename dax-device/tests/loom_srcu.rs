//! Loom model of the read-section protocol behind `DaxDevice::read_lock` and
//! `DaxDevice::kill` (`dax_read_lock`, `kill_dax`): per-thread counters, the epoch,
//! the writer's drain check, in both fence flavours:
//!
//! * the fallback (`fence(SeqCst)` on both sides), the models named `fallback_*`;
//! * the membarrier flavour real Linux builds use, the models named `membarrier_*`:
//!   the readers' light fences are compiler fences, which loom does not see at all,
//!   and the writer's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` is simulated as
//!   the kernel implements it: every other running thread executes `fence(SeqCst)` at
//!   a point loom chooses between two of its own operations (before any atomic
//!   operation of dax-device, at a light fence, or where the test calls
//!   `dax_device::loom_membarrier::ipi_point`), and the call returns once each has
//!   acknowledged or is seen not running. `dax-device/src/loom_membarrier.rs`
//!   explains the model and why it is neither weaker nor stronger than the kernel's
//!   guarantee. With the writer's simulated barrier removed, these models fail.
//!
//! Every section that finds the device alive writes a loom `UnsafeCell`; the killer
//! reads it once `kill` returns. Loom reports a data race if any such section is not
//! over, with its write happening before that read: so `kill` returning while a
//! section that began before it is open, or a section begun after the ALIVE clear
//! that still sees the device alive, both fail the model.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release -p
//! dax-device --test loom_srcu` (normal builds compile this file to nothing).
#![cfg(loom)]

use std::sync::Arc;

use loom::cell::UnsafeCell;
use loom::thread;

use dax_device::{DaxAccessMode, DaxDevice, DaxError, DaxOperations, RawAccess};

/// A driver with no memory: the model only exercises lifecycle and sections.
struct NoMemory;

// SAFETY: `direct_access` never answers any page, so there is no address to promise
// anything about.
unsafe impl DaxOperations for NoMemory {
    fn nr_pages(&self) -> u64 {
        0
    }

    fn direct_access(&self, _: u64, _: u64, _: DaxAccessMode) -> Result<RawAccess, DaxError> {
        Ok(RawAccess::none())
    }

    fn zero_page_range(&self, _: u64, _: u64) -> Result<(), DaxError> {
        Ok(())
    }
}

/// Preemptions loom explores per execution in the three-thread models unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise (unbounded, they run for hours); the
/// two-thread fallback models are explored exhaustively.
const PREEMPTIONS: usize = 3;

/// The same for the two-thread membarrier models, whose every atomic operation and
/// light fence is also a point where the simulated membarrier may land: unbounded,
/// one runs for more than a quarter of an hour; at 5 each takes seconds.
const MEMBARRIER_PREEMPTIONS: usize = 5;

/// Which fences the device's read sections use.
#[derive(Clone, Copy)]
enum Flavour {
    /// `fence(SeqCst)` on both sides.
    Fallback,
    /// Compiler fences in readers, simulated membarrier in the writer.
    Membarrier,
}

/// A device and the "device memory" sections touch while they find it alive. Leaked
/// so that guards (which borrow the device) can move between threads.
struct World {
    flavour: Flavour,
    dev: Arc<DaxDevice<NoMemory>>,
    /// One cell per reader thread (readers may overlap each other).
    memory: [UnsafeCell<u32>; 2],
}

// SAFETY: `memory` is only accessed by sections that found the device alive and by
// the killer after `kill` returned; loom checks that those never overlap.
unsafe impl Sync for World {}

/// Runs `model` on a fresh world, then frees it, with at most `preemptions` (unless
/// `LOOM_MAX_PREEMPTIONS` is set). `model` must join every thread it spawns and drop
/// every guard before it returns.
fn with_world(
    flavour: Flavour,
    preemptions: Option<usize>,
    model: impl Fn(&'static World) + Sync + Send + 'static,
) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemptions;
    }
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = executions.clone();
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dev = match flavour {
            Flavour::Fallback => DaxDevice::new(NoMemory),
            Flavour::Membarrier => DaxDevice::new_with_simulated_membarrier(NoMemory),
        };
        let w: &'static World = Box::leak(Box::new(World {
            flavour,
            dev,
            memory: [UnsafeCell::new(0), UnsafeCell::new(0)],
        }));
        model(w);
        // SAFETY: `w` came from `Box::leak` above, and `model` joined every thread
        // and dropped every guard that borrowed it, so nothing refers to it any more.
        drop(unsafe { Box::from_raw(std::ptr::from_ref(w).cast_mut()) });
    });
    // What was explored, for the record (`--nocapture` shows it).
    println!(
        "{} executions",
        executions.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// `thread::spawn` of a thread that uses `w`'s device.
///
/// In the membarrier flavour the thread first opens and closes a section of its own,
/// so that its counters exist and the sections of `f` take the fast path (plain
/// counter stores): a thread's first section registers its counters under the
/// registry lock, around which the simulated membarrier puts full barriers (see
/// `loom_membarrier::lock`) that would hide a missing one. That section races with
/// the writer too. (The fallback models keep the first-use path, as they always
/// have: their fences are real, and the extra section multiplies their executions.)
/// Last, the thread leaves the simulated membarrier's CPUs
/// (`dax_device::loom_membarrier::exit_thread`; nothing in the fallback flavour).
fn spawn<T: Send + 'static>(
    w: &'static World,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::spawn(move || {
        if matches!(w.flavour, Flavour::Membarrier) {
            drop(w.dev.read_lock());
        }
        let r = f();
        dax_device::loom_membarrier::exit_thread();
        r
    })
}

/// What reader `t`'s section does with device memory when it finds the device alive.
///
/// The yield lets loom switch threads between the ALIVE check and the access, as
/// real work there would: loom runs code between two of its operations as one step,
/// and orders `SeqCst` fences by when they run, so without it an access right after
/// the check always lands before the killer's fences and races go unseen.
///
/// The IPI points let a simulated membarrier land just before and just after the
/// access (it is not an atomic operation, which get one of their own).
fn touch(w: &World, t: usize, alive: bool) {
    if alive {
        thread::yield_now();
        dax_device::loom_membarrier::ipi_point();
        w.memory[t].with_mut(|m| {
            // SAFETY: see `World`'s Sync; loom reports the access if it races.
            unsafe { *m += 1 }
        });
        dax_device::loom_membarrier::ipi_point();
    }
}

/// After `kill` returns: reads the memory every earlier section wrote (the sum of the
/// cells).
fn after_kill(w: &World) -> u32 {
    w.memory
        .iter()
        // SAFETY: see `World`'s Sync; loom reports the access if it races.
        .map(|c| c.with(|m| unsafe { *m }))
        .sum()
}

fn kill_waits_for_sections_that_saw_the_device_alive(w: &'static World) {
    let reader = spawn(w, move || {
        let section = w.dev.read_lock();
        touch(w, 0, section.alive());
        drop(section);
    });
    w.dev.kill();
    let seen = after_kill(w);
    assert!(!w.dev.read_lock().alive());
    reader.join().unwrap();
    assert_eq!(seen, after_kill(w), "a section touched memory after kill");
}

fn kill_after_run_waits_for_sections_on_either_index(w: &'static World) {
    // The first kill leaves the epoch advanced; a section that begins then and sees
    // the device alive again after `run` may sit on either index: the second kill
    // must wait for it whichever it is.
    let reader = spawn(w, move || {
        let section = w.dev.read_lock();
        touch(w, 0, section.alive());
        drop(section);
    });
    w.dev.kill();
    w.dev.run();
    w.dev.kill();
    let seen = after_kill(w);
    reader.join().unwrap();
    assert_eq!(seen, after_kill(w), "a section touched memory after kill");
}

fn kill_waits_for_a_guard_dropped_on_another_thread(w: &'static World) {
    // Begun on this thread, before kill; ended on another one.
    let section = w.dev.read_lock();
    let mover = spawn(w, move || {
        // Inside a section begun before kill: memory is still valid here.
        touch(w, 0, true);
        drop(section);
    });
    w.dev.kill();
    assert_eq!(
        after_kill(w),
        1,
        "the section began while the device was alive"
    );
    mover.join().unwrap();
}

fn two_readers_with_nested_sections_against_kill(w: &'static World) {
    let readers: Vec<_> = (0..2)
        .map(|t| {
            spawn(w, move || {
                let outer = w.dev.read_lock();
                let inner = w.dev.read_lock();
                // Ends the outer section first: the inner one must still count.
                drop(outer);
                touch(w, t, inner.alive());
                drop(inner);
            })
        })
        .collect();
    w.dev.kill();
    let seen = after_kill(w);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(seen, after_kill(w), "a section touched memory after kill");
}

#[test]
fn fallback_kill_waits_for_sections_that_saw_the_device_alive() {
    with_world(
        Flavour::Fallback,
        None,
        kill_waits_for_sections_that_saw_the_device_alive,
    );
}

#[test]
fn membarrier_kill_waits_for_sections_that_saw_the_device_alive() {
    with_world(
        Flavour::Membarrier,
        Some(MEMBARRIER_PREEMPTIONS),
        kill_waits_for_sections_that_saw_the_device_alive,
    );
}

#[test]
fn fallback_kill_after_run_waits_for_sections_on_either_index() {
    with_world(
        Flavour::Fallback,
        None,
        kill_after_run_waits_for_sections_on_either_index,
    );
}

#[test]
fn membarrier_kill_after_run_waits_for_sections_on_either_index() {
    with_world(
        Flavour::Membarrier,
        Some(MEMBARRIER_PREEMPTIONS),
        kill_after_run_waits_for_sections_on_either_index,
    );
}

#[test]
fn fallback_kill_waits_for_a_guard_dropped_on_another_thread() {
    with_world(
        Flavour::Fallback,
        None,
        kill_waits_for_a_guard_dropped_on_another_thread,
    );
}

#[test]
fn membarrier_kill_waits_for_a_guard_dropped_on_another_thread() {
    with_world(
        Flavour::Membarrier,
        Some(MEMBARRIER_PREEMPTIONS),
        kill_waits_for_a_guard_dropped_on_another_thread,
    );
}

#[test]
fn fallback_two_readers_with_nested_sections_against_kill() {
    with_world(
        Flavour::Fallback,
        Some(PREEMPTIONS),
        two_readers_with_nested_sections_against_kill,
    );
}

#[test]
fn membarrier_two_readers_with_nested_sections_against_kill() {
    with_world(
        Flavour::Membarrier,
        Some(PREEMPTIONS),
        two_readers_with_nested_sections_against_kill,
    );
}
