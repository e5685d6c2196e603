//! Loom builds only: `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` simulated, so
//! that loom checks the asymmetric-fence flavour of [`crate::srcu`] (the one real
//! Linux builds use) and not only the `fence(SeqCst)` fallback.
//!
//! # What is modelled
//!
//! In the asymmetric flavour a reader's light fence is a compiler fence only: it
//! keeps the compiler from moving the reader's memory accesses across it, and
//! nothing more. A writer's `membarrier` call returns only once every thread of the
//! process that was running during the call has executed a full barrier (`smp_mb`)
//! in an inter-processor interrupt, and threads that were not running passed one at
//! their last context switch. The kernel implements it with an IPI to each CPU whose
//! current task shares the caller's mm, waiting for the IPI's completion (the
//! cross-call lock, released by the target after its barrier), with a full barrier
//! on the calling CPU before and after; a task switching in executes a full barrier
//! between becoming `rq->curr` and returning to user space.
//!
//! A loom `fence(SeqCst)` executed by the *writer* orders nothing in another thread,
//! so the barrier has to run in each reader thread, at a point between two of its own
//! operations that the model chooses. That is what this module does, as the kernel
//! does it, with loom atomics:
//!
//! * Every thread that takes part (any thread that performs an atomic operation of
//!   dax-device, or calls [`ipi_point`]) owns a simulated CPU: `running` and the last
//!   request it acknowledged. Joining (a thread's first operation, or waking from a
//!   blocking lock) stores `running = true` and then runs a `SeqCst` fence (the
//!   scheduler's barrier after a switch in); leaving (thread exit, blocking on a
//!   contended lock) runs a `SeqCst` fence and then stores `running = false`.
//! * Before each of its atomic operations (the `sync` module's loom atomics call
//!   [`ipi_point`] first) and at each light fence, a thread checks for a pending
//!   request; if there is one it runs `fence(SeqCst)` (the IPI's `smp_mb`) and
//!   acknowledges. Loom explores every interleaving, so the barrier lands between
//!   any two atomic operations of the reader; the tests add an [`ipi_point`] next to
//!   their non-atomic accesses.
//! * The writer ([`barrier`], called between the heavy fence's two `fence(SeqCst)`)
//!   publishes a new request and waits until every other CPU has acknowledged it or
//!   is seen not running.
//!
//! Why this is faithful: a reader's acknowledging fence is ordered after the
//! writer's first fence (the request it read) and before its second (the writer read
//! its acknowledgement), so it sits between them in the `SeqCst` order, which is what
//! an IPI barrier does; the release/acquire edges of the handshake are the IPI's own
//! (the request written before the IPI is sent, the completion awaited). A CPU seen
//! not running was either never running during the call or has left: the fence
//! before `running = false` and the writer's fence after its load order its accesses
//! before the writer's next ones, and a CPU joining after the writer looked has run a
//! fence after `running = true` that the writer's first fence precedes (or the writer
//! would have seen it running), as with `rq->curr`. Requests published while a CPU
//! was away count as acknowledged by the fence it ran when it joined. Nothing is
//! stronger than the kernel's guarantee, so a model that passes here cannot pass
//! only because of an extra barrier; and removing the writer's [`barrier`] makes the
//! models of `tests/loom_srcu.rs` fail.
//!
//! The model exists only in executions that created an asymmetric Srcu (which owns
//! it); in every other execution (the seqcount and fallback-flavour models) the hooks
//! do nothing and cost no loom operation.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

/// Threads that can take part in one model execution (loom's own limit is 5).
const CPUS: usize = 5;

/// One simulated CPU, owned by one loom thread.
struct Cpu {
    running: AtomicBool,
    /// The last request this CPU executed a barrier for (or joined after).
    acked: AtomicUsize,
}

/// The simulated membarrier of one loom execution, owned by the asymmetric Srcu
/// created in it.
pub(crate) struct Model {
    /// The number of membarrier calls made (the current request).
    request: AtomicUsize,
    /// The next CPU to hand out.
    next: AtomicUsize,
    cpus: [Cpu; CPUS],
}

std::thread_local! {
    /// The model of the execution running on this OS thread, if any: loom runs all
    /// the threads of a model as coroutines on the test's OS thread, so an ordinary
    /// thread-local is shared by them and by nobody else, and finding the model costs
    /// no loom operation. Weak: it dies with the Srcu at the end of the execution, so
    /// later executions (and other models run on this OS thread) see none.
    static CURRENT: RefCell<Weak<Model>> = const { RefCell::new(Weak::new()) };
}

/// A new model for this execution, current until the returned `Arc` (kept by the
/// Srcu) is dropped.
pub(crate) fn new_model() -> Arc<Model> {
    let model = Arc::new(Model {
        request: AtomicUsize::new(0),
        next: AtomicUsize::new(0),
        cpus: std::array::from_fn(|_| Cpu {
            running: AtomicBool::new(false),
            acked: AtomicUsize::new(0),
        }),
    });
    CURRENT.with(|c| *c.borrow_mut() = Arc::downgrade(&model));
    model
}

fn current() -> Option<Arc<Model>> {
    CURRENT.try_with(|c| c.borrow().upgrade()).ok().flatten()
}

/// A thread's part in the model.
enum Part {
    /// Not seen yet.
    Outside,
    /// Owns this CPU (of a model that the Srcu owns: when it is gone, so is the
    /// model, whatever order loom drops thread-locals in).
    Cpu(Weak<Model>, usize),
    /// Has left for good ([`exit_thread`]).
    Exited,
}

/// This thread's part; leaves its CPU, if it still has one, when loom destroys the
/// thread's thread-locals.
struct Me(RefCell<Part>);

impl Drop for Me {
    fn drop(&mut self) {
        if let Part::Cpu(model, cpu) = std::mem::replace(self.0.get_mut(), Part::Exited)
            && let Some(model) = model.upgrade()
        {
            model.leave(cpu);
        }
    }
}

loom::thread_local! {
    static ME: Me = Me(RefCell::new(Part::Outside));
}

impl Model {
    /// Marks `cpu` running, with the barrier a switch in executes; requests made so
    /// far count as acknowledged by that barrier.
    fn join(&self, cpu: usize) {
        let c = &self.cpus[cpu];
        c.running.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        c.acked
            .store(self.request.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Marks `cpu` not running, with the barrier a switch out executes.
    fn leave(&self, cpu: usize) {
        fence(Ordering::SeqCst);
        self.cpus[cpu].running.store(false, Ordering::SeqCst);
    }
}

/// The model and this thread's CPU in it, joining on first use; `None` when this
/// execution has no model or the thread has left for good (or its thread-locals are
/// being destroyed).
fn me() -> Option<(Arc<Model>, usize)> {
    let model = current()?;
    let (cpu, joined) = ME
        .try_with(|me| {
            let mut part = me.0.borrow_mut();
            match &*part {
                Part::Exited => None,
                Part::Cpu(_, cpu) => Some((*cpu, false)),
                Part::Outside => {
                    let cpu = model.next.fetch_add(1, Ordering::Relaxed);
                    assert!(
                        cpu < CPUS,
                        "more threads than the membarrier model has CPUs"
                    );
                    *part = Part::Cpu(Arc::downgrade(&model), cpu);
                    Some((cpu, true))
                }
            }
        })
        .ok()??;
    if joined {
        model.join(cpu);
    }
    Some((model, cpu))
}

/// Ends this thread's part in the model: it leaves its CPU (the switch out of an
/// exiting thread) and is never waited for again. A model calls it as the last thing
/// each thread it spawns does: loom destroys a finished thread's thread-locals in no
/// particular order, and a destructor that takes a lock (srcu's, returning the
/// thread's counters) could otherwise block on a writer that waits for this thread.
/// The destructors that run after it only hand the thread's counters back under the
/// registry lock.
pub fn exit_thread() {
    if let Ok(Part::Cpu(model, cpu)) = ME.try_with(|me| me.0.replace(Part::Exited))
        && let Some(model) = model.upgrade()
    {
        model.leave(cpu);
    }
}

/// A point where a membarrier IPI may interrupt this thread: if a request is
/// pending, run the barrier and acknowledge it. Called before every atomic operation
/// of dax-device's loom build and at every light fence; a test calls it next to its
/// own non-atomic accesses of data a section protects.
pub fn ipi_point() {
    let Some((model, cpu)) = me() else {
        return;
    };
    let req = model.request.load(Ordering::SeqCst);
    let c = &model.cpus[cpu];
    if req > c.acked.load(Ordering::Relaxed) {
        fence(Ordering::SeqCst);
        c.acked.store(req, Ordering::SeqCst);
    }
}

/// The writer's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: returns once every
/// other CPU has executed a barrier after the request or is not running. The caller
/// runs `fence(SeqCst)` before and after (the kernel's `smp_mb` on the calling CPU).
pub(crate) fn barrier() {
    let (model, me) = me().expect("an asymmetric Srcu has a model");
    let req = model.request.fetch_add(1, Ordering::SeqCst) + 1;
    for (cpu, c) in model.cpus.iter().enumerate() {
        if cpu == me {
            continue;
        }
        while c.running.load(Ordering::SeqCst) && c.acked.load(Ordering::SeqCst) < req {
            loom::thread::yield_now();
        }
    }
}

/// Locks a dax-device mutex with `lock` as a possible context switch: when this
/// execution has a model, the thread leaves its CPU before and joins again after, as
/// a thread that sleeps on a contended lock does, so that a writer that waits for
/// barriers while holding that lock does not wait for it.
///
/// Every acquisition is treated so, contended or not, because loom cannot tell in
/// advance whether a lock will block: it blocks a thread whose next operation is a
/// `try_lock` of a mutex another thread takes, and any check made before the lock
/// can be overtaken. That puts a full barrier before and after each mutex
/// acquisition, which an uncontended lock on a weakly ordered CPU does not have (an
/// x86 lock is a locked read-modify-write, itself a full barrier): where a model goes
/// through a lock, it is that much stronger than the kernel's guarantee. The read
/// sections take a lock only the first time a thread uses an Srcu (to register its
/// counters) and at thread exit; the models make their racing sections take the
/// lock-free path.
pub(crate) fn lock<G>(lock: impl FnOnce() -> G) -> G {
    let Some((model, cpu)) = me() else {
        return lock();
    };
    ipi_point();
    model.leave(cpu);
    let guard = lock();
    model.join(cpu);
    guard
}
