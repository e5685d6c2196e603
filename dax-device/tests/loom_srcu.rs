//! Loom model of the read-section protocol behind `DaxDevice::read_lock` and
//! `DaxDevice::kill` (`dax_read_lock`, `kill_dax`): per-thread counters, the epoch,
//! the writer's drain check, with the fence fallback (`fence(SeqCst)` on both sides;
//! loom cannot model membarrier).
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

/// Preemptions loom explores per execution in the three-thread model unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise (unbounded, it runs for hours); the
/// two-thread models are explored exhaustively.
const PREEMPTIONS: usize = 3;

/// A device and the "device memory" sections touch while they find it alive. Leaked
/// so that guards (which borrow the device) can move between threads.
struct World {
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
fn with_world(preemptions: Option<usize>, model: impl Fn(&'static World) + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemptions;
    }
    builder.check(move || {
        let w: &'static World = Box::leak(Box::new(World {
            dev: DaxDevice::new(NoMemory),
            memory: [UnsafeCell::new(0), UnsafeCell::new(0)],
        }));
        model(w);
        // SAFETY: `w` came from `Box::leak` above, and `model` joined every thread
        // and dropped every guard that borrowed it, so nothing refers to it any more.
        drop(unsafe { Box::from_raw(std::ptr::from_ref(w).cast_mut()) });
    });
}

/// What reader `t`'s section does with device memory when it finds the device alive.
///
/// The yield lets loom switch threads between the ALIVE check and the access, as
/// real work there would: loom runs code between two of its operations as one step,
/// and orders `SeqCst` fences by when they run, so without it an access right after
/// the check always lands before the killer's fences and races go unseen.
fn touch(w: &World, t: usize, alive: bool) {
    if alive {
        thread::yield_now();
        w.memory[t].with_mut(|m| {
            // SAFETY: see `World`'s Sync; loom reports the access if it races.
            unsafe { *m += 1 }
        });
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

#[test]
fn kill_waits_for_sections_that_saw_the_device_alive() {
    with_world(None, |w| {
        let reader = thread::spawn(move || {
            let section = w.dev.read_lock();
            touch(w, 0, section.alive());
            drop(section);
        });
        w.dev.kill();
        let seen = after_kill(w);
        assert!(!w.dev.read_lock().alive());
        reader.join().unwrap();
        assert_eq!(seen, after_kill(w), "a section touched memory after kill");
    });
}

#[test]
fn kill_after_run_waits_for_sections_on_either_index() {
    // The first kill leaves the epoch advanced; a section that begins then and sees
    // the device alive again after `run` may sit on either index: the second kill
    // must wait for it whichever it is.
    with_world(None, |w| {
        let reader = thread::spawn(move || {
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
    });
}

#[test]
fn kill_waits_for_a_guard_dropped_on_another_thread() {
    with_world(None, |w| {
        // Begun on this thread, before kill; ended on another one.
        let section = w.dev.read_lock();
        let mover = thread::spawn(move || {
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
    });
}

#[test]
fn two_readers_with_nested_sections_against_kill() {
    with_world(Some(PREEMPTIONS), |w| {
        let readers: Vec<_> = (0..2)
            .map(|t| {
                thread::spawn(move || {
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
    });
}
