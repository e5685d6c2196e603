//! An SRCU-like read-side section: the writer waits for every section that began
//! before it (`srcu_read_lock`/`srcu_read_unlock`/`synchronize_srcu`, as used by
//! `dax_read_lock` and `kill_dax` in drivers/dax/super.c).
//!
//! # Read side: per-thread counters, no locked instruction
//!
//! As the kernel keeps per-CPU `srcu_lock_count[2]`/`srcu_unlock_count[2]`, every
//! thread that uses an [`Srcu`] owns a slot of four counters: sections begun and
//! sections ended, for each of the two indices. Only the owner writes a slot, so a
//! count is a plain load and store, never a locked read-modify-write. `read_lock`
//! takes the index from the epoch's low bit, counts a lock there, then runs the light
//! fence A; `read_unlock` runs the light fence C, then counts an unlock under the
//! section's index in the slot of the thread it runs on, which need not be the thread
//! that began the section (guards are `Send`).
//!
//! A thread finds its slot in a thread-local cache of (Srcu id, slot pointer) pairs,
//! `HOT_ENTRIES` long, read with plain loads: ids are never reused, so a matching id
//! names a live Srcu, whose registry owns the slot. On a miss it searches its list of
//! slots, and for a Srcu it has not used before takes the Srcu's registry lock and
//! reuses a slot left by an exited thread or allocates one. When a thread exits, its
//! slots go back to their registries' free lists with their counts, so a registry
//! holds at most as many slots as threads used the Srcu at one time. The list holds
//! the registry weakly, so dropping the Srcu frees it; the entries of dropped Srcus
//! are pruned the next time the thread registers a slot. Counts made while the
//! thread's list is unavailable (from other thread-local destructors at thread exit)
//! go to one shared slot with atomic read-modify-writes.
//!
//! Signals: a section may begin or end in a signal handler (dax-fault's `mmu` backend
//! is to resolve faults in a SIGSEGV handler). A synchronous fault cannot interrupt an
//! increment, which touches no device memory; a handler for an asynchronous signal
//! that uses the same Srcu could, in principle, land between an increment's load and
//! store and have its own count overwritten (x86 builds compile the pair to one
//! non-locked `inc`, which a signal cannot split). The cache is updated so that a
//! handler never sees a half-written entry, and a handler that finds the list
//! borrowed counts in the shared slot.
//!
//! # Fences
//!
//! Asymmetric, as in liburcu's membarrier flavour: the light fence is a compiler fence
//! only; the writer's heavy fence is `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`
//! (registered once per process with `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED`),
//! which makes every running thread of the process execute a full barrier before the
//! call returns, threads not running having passed one at their last context switch.
//! The effect is that each light fence acts as a `SeqCst` fence ordered before or after
//! each heavy fence. Where membarrier is unavailable (not Linux, Linux before 4.14,
//! refused by a seccomp filter), and always under Miri, both fences are
//! `fence(SeqCst)`: the read side then costs one full fence per lock and per unlock,
//! still with no locked read-modify-write. The choice is made once per process, before
//! any Srcu exists, and a given Srcu never changes it.
//!
//! `tests/loom_srcu.rs` model-checks both flavours: the fallback as is, and the
//! asymmetric one with the compiler fence invisible to loom and `membarrier` simulated
//! by a barrier each other thread runs, at a point loom chooses, before the call
//! returns (the kernel's IPIs; see `loom_membarrier.rs` for the model and why it is
//! faithful).
//!
//! # Writer
//!
//! [`Srcu::synchronize`] advances the epoch twice; after each advance it checks the
//! index in use before it until it is drained: sum that index's unlocks over all
//! slots, heavy fence B, sum its locks; equal sums mean drained, otherwise back off and
//! check again (the registry lock is held during a check, so the set of slots is
//! fixed).
//!
//! # What the device relies on, and why it holds
//!
//! A writer clears ALIVE (a `SeqCst` read-modify-write), then calls `synchronize`.
//! When that returns, every section that could still see ALIVE set has ended, and
//! its accesses happen before the return. Reason about one passing check of index `i`
//! and its fence B; read each light fence as a `SeqCst` fence placed before or after
//! B (the membarrier guarantee; with the fallback it is literally one):
//!
//! 1. *Lock counted or ALIVE seen clear.* A section of index `i` counts its lock `a`,
//!    runs A, loads the flags. If A precedes B, the lock sum (after B) reads `a` or a
//!    later value of that counter; if B precedes A, the flags load sees the clear
//!    (sequenced before B) or later (the `SeqCst` fence rules of C++20
//!    \[atomics.order\]).
//! 2. *Unlock counted ⇒ lock counted.* If the unlock sum (before B) read the
//!    section's unlock count `u` or later, then C (sequenced before `u`) precedes B
//!    (coherence-ordered before, fence form); `a` happens before C (same thread, or
//!    through whatever moved the guard), so the lock sum after B counts `a`.
//! 3. *Equal sums ⇒ the counted sections have ended.* Each section adds one to one
//!    lock counter and one to one unlock counter of its index; by 2 the sections whose
//!    unlock was counted are among those whose lock was counted, so lock sum − unlock
//!    sum (mod 2^64) is the number counted as begun and not as ended.
//! 4. *Their accesses happen before the return.* C then the relaxed `u`, the read of
//!    `u` then B: fence-to-fence synchronisation.
//! 5. The two advances make the two passing checks cover both indices, both after the
//!    clear; a section that saw ALIVE set is therefore counted by the passing check of
//!    its index (1), has ended (3), and its accesses are over (4).
//!
//! Nothing here depends on which slot a count lands in (per thread instead of per
//! CPU), only on every count being one increment in its counter's modification order:
//! a slot has one writer at a time, handed over under the registry lock, and the
//! shared slot uses read-modify-writes. The epoch only buys progress: once the epoch
//! advance is visible (at the latest after the first B), new sections use the other
//! index, so a drained check waits only for sections that already chose the index, and
//! new readers never delay the writer.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::compiler_fence;
use std::sync::{Arc, Weak};

use crate::sync::{AtomicUsize, Mutex, Ordering, Wait, backoff, fence, thread_local};

/// Counter index of the locks of index 0 (1 for index 1) in a [`ReaderSlot`].
const LOCK: usize = 0;
/// Counter index of the unlocks of index 0 (3 for index 1) in a [`ReaderSlot`].
const UNLOCK: usize = 2;

/// One thread's counters for one Srcu: locks of index 0 and 1, unlocks of index 0 and
/// 1. Padded to its own pair of cache lines so readers never share a line.
#[repr(align(128))]
#[derive(Default)]
struct ReaderSlot {
    counts: [AtomicUsize; 4],
}

impl ReaderSlot {
    /// Counts one event in counter `k` of a slot only this thread writes: a plain
    /// load and store, no locked instruction.
    #[inline]
    fn count_owned(&self, k: usize) {
        let c = &self.counts[k & 3];
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Registry {
    /// Every slot ever handed out, in use or free: the writer sums them all.
    slots: Vec<Arc<ReaderSlot>>,
    /// Slots of exited threads, ready for reuse.
    free: Vec<Arc<ReaderSlot>>,
}

/// The part of an Srcu that thread-local lists refer to (weakly).
#[derive(Default)]
struct SrcuState {
    registry: Mutex<Registry>,
    /// Counts made where the thread's list is unavailable, with atomic RMWs.
    orphan: ReaderSlot,
}

impl SrcuState {
    fn take_slot(&self) -> Arc<ReaderSlot> {
        let mut reg = self.registry.lock();
        if let Some(slot) = reg.free.pop() {
            return slot;
        }
        let slot = Arc::new(ReaderSlot::default());
        reg.slots.push(slot.clone());
        slot
    }
}

/// One entry of a thread's list: the Srcu's id, its shared part, this thread's slot.
struct ThreadEntry {
    id: u64,
    owner: Weak<SrcuState>,
    slot: Arc<ReaderSlot>,
}

/// A thread's slots, most recently registered or missed first.
struct Local {
    entries: RefCell<Vec<ThreadEntry>>,
}

impl Drop for Local {
    /// The thread exits: return each slot, counts intact, to its Srcu's free list.
    /// (Not while unwinding from a panic: the slots then stay in their registries,
    /// still summed, just never reused.)
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // Forget the cached pointers before the slots can go to another thread (a
        // later thread-local destructor that begins a section then takes the slow
        // path, finds this list gone and counts in the shared slot).
        let _ = HOT.try_with(Hot::clear);
        for e in self.entries.get_mut().drain(..) {
            if let Some(shared) = e.owner.upgrade() {
                shared.registry.lock().free.push(e.slot);
            }
        }
    }
}

impl Local {
    const fn new() -> Local {
        Local {
            entries: RefCell::new(Vec::new()),
        }
    }
}

#[cfg(not(loom))]
thread_local! {
    static LOCAL: Local = const { Local::new() };
}

// loom's thread_local! has no const form.
#[cfg(loom)]
thread_local! {
    static LOCAL: Local = Local::new();
}

/// How many (Srcu id, slot) pairs a thread keeps where `read_lock` finds them without
/// touching its list (a thread using a few devices at once, e.g. the source and the
/// destination of a dedupe, stays on the fast path).
const HOT_ENTRIES: usize = 4;

/// A thread's most recently used slots, as raw pointers: plain `Cell`s, no destructor
/// and no borrow flag, so the fast path is a few loads and one store. Id 0 is empty.
///
/// Invariant: `(id, p)` is present only while `p` is this thread's slot in the
/// registry of the live Srcu `id` (ids are never reused), which owns the slot for as
/// long as it lives; entries are installed by [`Srcu::count_slow`] from this thread's
/// list and cleared by `Local::drop` before the slots go back.
struct Hot {
    ids: [Cell<u64>; HOT_ENTRIES],
    slots: [Cell<Option<NonNull<ReaderSlot>>>; HOT_ENTRIES],
}

impl Hot {
    const fn new() -> Hot {
        Hot {
            ids: [const { Cell::new(0) }; HOT_ENTRIES],
            slots: [const { Cell::new(None) }; HOT_ENTRIES],
        }
    }

    fn clear(&self) {
        for id in &self.ids {
            id.set(0);
        }
    }

    /// Makes `(id, slot)` the first entry, moving the others down (the last drops).
    ///
    /// Each entry is emptied before its pointer changes and named after, with compiler
    /// fences between, so a signal handler on this thread never sees an id paired
    /// with another Srcu's slot.
    fn install(&self, id: u64, slot: &Arc<ReaderSlot>) {
        let set = |i: usize, id: u64, slot: Option<NonNull<ReaderSlot>>| {
            self.ids[i].set(0);
            compiler_fence(Ordering::SeqCst);
            self.slots[i].set(slot);
            compiler_fence(Ordering::SeqCst);
            self.ids[i].set(id);
        };
        for i in (1..HOT_ENTRIES).rev() {
            set(i, self.ids[i - 1].get(), self.slots[i - 1].get());
        }
        set(0, id, Some(NonNull::from(&**slot)));
    }
}

#[cfg(not(loom))]
thread_local! {
    static HOT: Hot = const { Hot::new() };
}

#[cfg(loom)]
thread_local! {
    static HOT: Hot = Hot::new();
}

/// Which fences a Srcu uses (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fences {
    /// Readers: compiler fence; writer: `membarrier`.
    Asymmetric,
    /// Both: `fence(SeqCst)`.
    Symmetric,
}

pub(crate) struct Srcu {
    /// Never reused within the process: the key of this Srcu in thread-local lists.
    id: u64,
    epoch: AtomicUsize,
    fences: Fences,
    shared: Arc<SrcuState>,
    writer: Mutex<()>,
    /// Loom builds: the simulated membarrier of an asymmetric Srcu.
    #[cfg(loom)]
    _membarrier: Option<Arc<crate::loom_membarrier::Model>>,
}

impl Default for Srcu {
    fn default() -> Self {
        Srcu::with_fences(if heavy::available() {
            Fences::Asymmetric
        } else {
            Fences::Symmetric
        })
    }
}

impl Srcu {
    fn with_fences(fences: Fences) -> Srcu {
        // A plain std atomic: ids only need to be unique, also across loom runs.
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Srcu {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            epoch: AtomicUsize::new(0),
            fences,
            shared: Arc::default(),
            writer: Mutex::new(()),
            #[cfg(loom)]
            _membarrier: (fences == Fences::Asymmetric).then(crate::loom_membarrier::new_model),
        }
    }

    /// Begins a section; the returned index must be passed to [`Srcu::read_unlock`].
    #[inline]
    pub(crate) fn read_lock(&self) -> usize {
        let idx = self.epoch.load(Ordering::Relaxed) & 1;
        self.count(LOCK + idx);
        self.light_fence(); // A
        idx
    }

    /// Ends a section begun with [`Srcu::read_lock`], on any thread.
    #[inline]
    pub(crate) fn read_unlock(&self, idx: usize) {
        self.light_fence(); // C
        self.count(UNLOCK + (idx & 1));
    }

    /// Waits until every section that began before this call has ended.
    pub(crate) fn synchronize(&self) {
        let _serialize = self.writer.lock();
        for _ in 0..2 {
            let old = self.epoch.fetch_add(1, Ordering::SeqCst) & 1;
            let mut spins = 0u32;
            while !self.drained(old) {
                backoff(&mut spins, Wait::Long);
            }
        }
    }

    /// One check of index `idx` (the kernel's `srcu_readers_active_idx_check`).
    fn drained(&self, idx: usize) -> bool {
        let reg = self.shared.registry.lock();
        let unlocks = self.sum(&reg, UNLOCK + idx);
        self.heavy_fence(); // B
        let locks = self.sum(&reg, LOCK + idx);
        locks == unlocks
    }

    fn sum(&self, reg: &Registry, k: usize) -> usize {
        reg.slots
            .iter()
            .map(|s| s.counts[k].load(Ordering::Relaxed))
            .fold(
                self.shared.orphan.counts[k].load(Ordering::Relaxed),
                usize::wrapping_add,
            )
    }

    #[inline]
    fn light_fence(&self) {
        match self.fences {
            Fences::Asymmetric => {
                compiler_fence(Ordering::SeqCst);
                // Loom sees no compiler fence; a membarrier may land here as anywhere.
                #[cfg(loom)]
                crate::loom_membarrier::ipi_point();
            }
            Fences::Symmetric => fence(Ordering::SeqCst),
        }
    }

    fn heavy_fence(&self) {
        fence(Ordering::SeqCst);
        if self.fences == Fences::Asymmetric {
            heavy::barrier();
            fence(Ordering::SeqCst);
        }
    }

    /// Counts one event in counter `k` of this thread's slot.
    #[inline]
    fn count(&self, k: usize) {
        let hit = HOT.try_with(|hot| {
            for i in 0..HOT_ENTRIES {
                if hot.ids[i].get() == self.id
                    && let Some(slot) = hot.slots[i].get()
                {
                    // SAFETY: by `Hot`'s invariant, the slot belongs to this thread in
                    // the registry of the Srcu with this id, which is `self`, alive
                    // for this call; the registry keeps the slot allocated while the
                    // Srcu lives.
                    unsafe { slot.as_ref() }.count_owned(k);
                    return true;
                }
            }
            false
        });
        if !matches!(hit, Ok(true)) {
            self.count_slow(k);
        }
    }

    #[cold]
    #[inline(never)]
    fn count_slow(&self, k: usize) {
        let counted = LOCAL.try_with(|local| {
            let Ok(mut entries) = local.entries.try_borrow_mut() else {
                return false;
            };
            let pos = match entries.iter().position(|e| e.id == self.id) {
                Some(pos) => pos,
                None => {
                    entries.retain(|e| e.owner.strong_count() > 0);
                    entries.push(ThreadEntry {
                        id: self.id,
                        owner: Arc::downgrade(&self.shared),
                        slot: self.shared.take_slot(),
                    });
                    entries.len() - 1
                }
            };
            entries[..=pos].rotate_right(1);
            entries[0].slot.count_owned(k);
            let _ = HOT.try_with(|hot| hot.install(self.id, &entries[0].slot));
            true
        });
        if !matches!(counted, Ok(true)) {
            self.shared.orphan.counts[k & 3].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer's heavy fence: `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`.
#[cfg(all(not(loom), not(miri), any(target_os = "linux", target_os = "android")))]
mod heavy {
    use rustix::io::Errno;
    use rustix::thread::{MembarrierCommand, membarrier, membarrier_query};
    use std::sync::OnceLock;

    /// Whether the expedited private membarrier can be used; the first call probes
    /// (`MEMBARRIER_CMD_QUERY`) and registers the process
    /// (`MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED`).
    pub(super) fn available() -> bool {
        static READY: OnceLock<bool> = OnceLock::new();
        *READY.get_or_init(|| {
            membarrier_query().contains_command(MembarrierCommand::PrivateExpedited)
                && membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
        })
    }

    /// Makes every running thread of the process execute a full memory barrier.
    ///
    /// # Panics
    ///
    /// If the kernel refuses the call for a reason other than a transient one
    /// (`ENOMEM`, `EAGAIN`, `EINTR`: retried) after registration succeeded, which its
    /// documentation rules out: readers rely on this barrier, so going on would be
    /// unsound. `EPERM` (not registered, should the registration be lost) registers
    /// again once.
    pub(super) fn barrier() {
        let mut reregistered = false;
        loop {
            match membarrier(MembarrierCommand::PrivateExpedited) {
                Ok(()) => return,
                Err(Errno::PERM) if !reregistered => {
                    reregistered = true;
                    let _ = membarrier(MembarrierCommand::RegisterPrivateExpedited);
                }
                Err(Errno::NOMEM | Errno::AGAIN | Errno::INTR) => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!(
                    "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration: {e}"
                ),
            }
        }
    }
}

/// No membarrier here (not Linux, or Miri, which cannot issue the system call): every
/// Srcu uses symmetric fences.
#[cfg(all(
    not(loom),
    not(all(not(miri), any(target_os = "linux", target_os = "android")))
))]
mod heavy {
    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn barrier() {
        unreachable!("asymmetric fences are never chosen without membarrier")
    }
}

/// Under loom: Srcus use symmetric fences unless built with [`Srcu::asymmetric`],
/// whose heavy fence is the simulated membarrier of [`crate::loom_membarrier`].
#[cfg(loom)]
mod heavy {
    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn barrier() {
        crate::loom_membarrier::barrier();
    }
}

#[cfg(loom)]
impl Srcu {
    /// Loom builds: an Srcu with the asymmetric fences, the heavy one simulated
    /// ([`crate::loom_membarrier`]), as real Linux builds choose them.
    pub(crate) fn asymmetric() -> Srcu {
        Srcu::with_fences(Fences::Asymmetric)
    }
}

#[cfg(all(test, not(loom)))]
impl Srcu {
    /// Slots in the registry (in use or free).
    fn registered_slots(&self) -> usize {
        self.shared.registry.lock().slots.len()
    }

    /// Slots of exited threads waiting for reuse.
    fn free_slots(&self) -> usize {
        self.shared.registry.lock().free.len()
    }

    /// Events counted in the shared slot (counter `k`).
    fn orphan_count(&self, k: usize) -> usize {
        self.shared.orphan.counts[k].load(Ordering::SeqCst)
    }
}

/// Entries in this thread's list.
#[cfg(all(test, not(loom)))]
fn local_entries() -> usize {
    LOCAL.with(|l| l.entries.borrow().len())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
    use std::sync::mpsc;
    use std::time::Duration;

    /// Every fence flavour this machine can run: symmetric always, asymmetric where
    /// membarrier works.
    fn flavours() -> Vec<Fences> {
        let mut v = vec![Fences::Symmetric];
        if heavy::available() {
            v.push(Fences::Asymmetric);
        }
        v
    }

    /// Runs `synchronize` on another thread, lets it run for a while, then calls
    /// `end` (which must end the sections that began before); returns whether the
    /// writer saw them ended when it returned.
    fn writer_waits_for(s: &Arc<Srcu>, end: impl FnOnce()) -> bool {
        let ended = Arc::new(AtomicBool::new(false));
        let (s2, e2) = (s.clone(), ended.clone());
        let writer = std::thread::spawn(move || {
            s2.synchronize();
            e2.load(Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(20));
        ended.store(true, Ordering::SeqCst);
        end();
        writer.join().unwrap()
    }

    #[test]
    fn synchronize_without_readers_returns() {
        for f in flavours() {
            let s = Srcu::with_fences(f);
            s.synchronize();
            s.synchronize();
        }
    }

    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[cfg_attr(miri, ignore = "Miri cannot issue membarrier(2)")]
    fn asymmetric_fences_are_chosen_where_membarrier_works() {
        use rustix::thread::{MembarrierCommand, membarrier_query};
        if !membarrier_query().contains_command(MembarrierCommand::PrivateExpedited) {
            eprintln!("skipped: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) unsupported");
            return;
        }
        assert_eq!(Srcu::default().fences, Fences::Asymmetric);
    }

    #[test]
    fn synchronize_waits_for_earlier_section_but_not_later_ones() {
        let s = Arc::new(Srcu::default());
        let idx = s.read_lock();
        let ended = Arc::new(AtomicBool::new(false));
        let (s2, e2) = (s.clone(), ended.clone());
        let writer = std::thread::spawn(move || {
            s2.synchronize();
            e2.load(Ordering::SeqCst)
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        // A section begun now (after the writer started) must not be waited for
        // indefinitely: keep it open while the earlier one ends.
        let late = s.read_lock();
        ended.store(true, Ordering::SeqCst);
        s.read_unlock(idx);
        // The writer may or may not wait for `late` (it began concurrently); it must
        // finish once the early section is over and `late` is released.
        s.read_unlock(late);
        assert!(
            writer.join().unwrap(),
            "synchronize returned before the section ended"
        );
    }

    #[test]
    fn a_section_ended_on_another_thread_is_waited_for_and_counted_there() {
        for f in flavours() {
            let s = Arc::new(Srcu::with_fences(f));
            let idx = s.read_lock();
            let (go, wait) = mpsc::channel::<()>();
            let s2 = s.clone();
            let ender = std::thread::spawn(move || {
                wait.recv().unwrap();
                s2.read_unlock(idx);
            });
            let waited = writer_waits_for(&s, || go.send(()).unwrap());
            ender.join().unwrap();
            assert!(
                waited,
                "{f:?}: synchronize returned before the moved section ended"
            );
            // The lock was counted in this thread's slot, the unlock in the ender's.
            assert_eq!(s.registered_slots(), 2);
            s.synchronize();
        }
    }

    #[test]
    fn nested_sections_end_in_any_order() {
        for f in flavours() {
            let s = Arc::new(Srcu::with_fences(f));
            let a = s.read_lock();
            let b = s.read_lock();
            s.read_unlock(a);
            let c = s.read_lock();
            s.read_unlock(c);
            s.read_unlock(b);
            s.synchronize();

            // An outer section from before the writer, an inner one begun while it
            // waits (possibly on the other index), the outer ended first.
            let outer = s.read_lock();
            let waited = writer_waits_for(&s, || {
                let inner = s.read_lock();
                s.read_unlock(outer);
                s.read_unlock(inner);
            });
            assert!(
                waited,
                "{f:?}: synchronize returned inside the outer section"
            );
        }
    }

    #[test]
    fn sections_on_many_threads_while_synchronize_repeats() {
        // `gen` plays the device's ALIVE flag: the writer publishes a new generation,
        // then synchronizes; afterwards no section that read an older generation may
        // still be inside (each section marks itself with the generation it read).
        const READERS: usize = 3;
        for f in flavours() {
            let s = Arc::new(Srcu::with_fences(f));
            let generation = Arc::new(AtomicU64::new(0));
            let inside: Arc<Vec<AtomicU64>> =
                Arc::new((0..READERS).map(|_| AtomicU64::new(0)).collect());
            let stop = Arc::new(AtomicBool::new(false));
            let running = Arc::new(AtomicUsize::new(0));
            let readers: Vec<_> = (0..READERS)
                .map(|t| {
                    let (s, generation, inside, stop, running) = (
                        s.clone(),
                        generation.clone(),
                        inside.clone(),
                        stop.clone(),
                        running.clone(),
                    );
                    std::thread::spawn(move || {
                        let mut sections = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let idx = s.read_lock();
                            // Every third section nests another one.
                            let nested = sections.is_multiple_of(3).then(|| s.read_lock());
                            let g = generation.load(Ordering::SeqCst);
                            inside[t].store(g + 1, Ordering::SeqCst);
                            for _ in 0..(sections % 64) {
                                std::hint::spin_loop();
                            }
                            inside[t].store(0, Ordering::SeqCst);
                            if let Some(n) = nested {
                                s.read_unlock(n);
                            }
                            s.read_unlock(idx);
                            if sections == 0 {
                                running.fetch_add(1, Ordering::SeqCst);
                            }
                            sections += 1;
                        }
                        sections
                    })
                })
                .collect();
            while running.load(Ordering::SeqCst) < READERS {
                std::thread::yield_now();
            }
            // Under Miri (which checks these threads for data races, 100 to 1000
            // times slower) a few rounds.
            for _ in 0..if cfg!(miri) { 4 } else { 200 } {
                let g = generation.fetch_add(1, Ordering::SeqCst) + 1;
                s.synchronize();
                for (t, mark) in inside.iter().enumerate() {
                    let m = mark.load(Ordering::SeqCst);
                    assert!(
                        m == 0 || m > g,
                        "{f:?}: reader {t} still inside a section of generation {} \
                         after synchronize for generation {g}",
                        m - 1
                    );
                }
            }
            stop.store(true, Ordering::Relaxed);
            for r in readers {
                assert!(r.join().unwrap() > 0);
            }
        }
    }

    #[test]
    fn exited_threads_leave_their_slot_for_the_next_thread() {
        for f in flavours() {
            let s = Arc::new(Srcu::with_fences(f));
            for _ in 0..if cfg!(miri) { 5 } else { 50 } {
                let s2 = s.clone();
                std::thread::spawn(move || {
                    let idx = s2.read_lock();
                    s2.read_unlock(idx);
                })
                .join()
                .unwrap();
            }
            assert_eq!(
                s.registered_slots(),
                1,
                "{f:?}: thread churn grew the registry"
            );
            assert_eq!(s.free_slots(), 1);

            // A thread exits inside a section: its count stays in the freed slot.
            let s2 = s.clone();
            let open = std::thread::spawn(move || s2.read_lock()).join().unwrap();
            assert_eq!((s.registered_slots(), s.free_slots()), (1, 1));
            // The next thread takes that slot over and counts on from there.
            let s2 = s.clone();
            std::thread::spawn(move || {
                let idx = s2.read_lock();
                s2.read_unlock(idx);
            })
            .join()
            .unwrap();
            let waited = writer_waits_for(&s, || s.read_unlock(open));
            assert!(
                waited,
                "{f:?}: the exited thread's open section was forgotten"
            );
            // This thread's unlock took the free slot.
            assert_eq!((s.registered_slots(), s.free_slots()), (1, 0), "{f:?}");
        }
    }

    #[test]
    fn a_dropped_srcu_is_freed_and_its_threads_move_on() {
        type Job = Box<dyn FnOnce() + Send>;
        let (jobs, rx) = mpsc::channel::<Job>();
        let worker = std::thread::spawn(move || {
            for job in rx {
                job();
            }
        });
        let run = |job: Job| {
            let (done, wait) = mpsc::channel();
            jobs.send(Box::new(move || {
                job();
                done.send(()).unwrap();
            }))
            .unwrap();
            wait.recv().unwrap();
        };
        let old = Arc::new(Srcu::default());
        let shared = Arc::downgrade(&old.shared);
        let o = old.clone();
        run(Box::new(move || {
            let idx = o.read_lock();
            o.read_unlock(idx);
            drop(o);
        }));
        drop(old);
        assert_eq!(
            shared.strong_count(),
            0,
            "a thread-local kept the Srcu alive"
        );

        // The worker, still alive, uses a new Srcu; the dead entry goes.
        let new = Arc::new(Srcu::default());
        let (entries, wait) = mpsc::channel();
        let n = new.clone();
        run(Box::new(move || {
            let idx = n.read_lock();
            entries.send(local_entries()).unwrap();
            n.read_unlock(idx);
        }));
        assert_eq!(
            wait.recv().unwrap(),
            1,
            "the dropped Srcu's entry was not pruned"
        );
        let n = new.clone();
        let (opened, open) = mpsc::channel();
        let (finish, finished) = mpsc::channel::<()>();
        jobs.send(Box::new(move || {
            let idx = n.read_lock();
            opened.send(()).unwrap();
            finished.recv().unwrap();
            n.read_unlock(idx);
        }))
        .unwrap();
        open.recv().unwrap();
        let waited = writer_waits_for(&new, || finish.send(()).unwrap());
        assert!(waited, "the new Srcu did not wait for the worker's section");
        drop(jobs);
        worker.join().unwrap();
    }

    #[test]
    fn sections_begun_by_late_thread_local_destructors_still_count() {
        // A thread-local registered before the Srcu's own list is destroyed after it
        // (destructors run in reverse order): its section goes to the shared slot.
        struct Late(RefCell<Option<(Arc<Srcu>, mpsc::Sender<usize>)>>);
        impl Drop for Late {
            fn drop(&mut self) {
                if let Some((s, out)) = self.0.borrow_mut().take() {
                    out.send(s.read_lock()).unwrap();
                }
            }
        }
        std::thread_local!(static LATE: Late = const { Late(RefCell::new(None)) });
        for f in flavours() {
            let s = Arc::new(Srcu::with_fences(f));
            let (tx, rx) = mpsc::channel();
            let s2 = s.clone();
            std::thread::spawn(move || {
                LATE.with(|l| *l.0.borrow_mut() = Some((s2.clone(), tx)));
                let idx = s2.read_lock();
                s2.read_unlock(idx);
            })
            .join()
            .unwrap();
            let open = rx.recv().unwrap();
            assert_eq!(s.orphan_count(LOCK + open), 1, "{f:?}: not the shared slot");
            let waited = writer_waits_for(&s, || s.read_unlock(open));
            assert!(
                waited,
                "{f:?}: a section begun in a late destructor was forgotten"
            );
        }
    }
}
