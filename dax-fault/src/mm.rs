//! The memory manager's side of a fault (`handle_mm_fault` as far as DAX mappings are
//! concerned), shared by the simulated address space and the real `mmu` backend: it
//! decides which fault the filesystem's handler gets, retries, and turns the final
//! result into "the access may proceed" or the signal that kills it.

use dax_device::{PMD_ORDER, PMD_SIZE};

use crate::mapping::MappedVma;
use crate::mapping::Vmf;
use crate::pagetable::{PageTable, PmdSlot};
use crate::vm::{FaultFlags, VmFault};

const PMD: u64 = PMD_SIZE as u64;

/// How many faults one access may take before it is declared stuck.
pub(crate) const MAX_FAULTS_PER_ACCESS: usize = 32;

/// What the fault dispatch needs from an address space beyond [`PageTable`].
pub(crate) trait FaultSpace: PageTable {
    /// Whether `addr` is mapped (`Some`), and whether stores pass without a fault.
    fn present(&self, addr: u64) -> Option<bool>;

    /// The memory manager's own copy-on-write of the read-only page at `addr` in a
    /// private mapping (`wp_page_copy`): replace it with a writable private copy.
    fn cow_private(&self, vma: &MappedVma, addr: u64) -> Result<(), VmFault>;

    /// Counts a PMD fault at `addr` that fell back to PTEs (for statistics).
    fn note_fallback(&self, _addr: u64) {}
}

/// Makes one access to `addr` in `vma` possible (§2.7.1 of the reference): a PMD fault
/// first when the mapping allows huge pages and the PMD slot is empty, PTE faults
/// after a FALLBACK; a store to a read-only page of a shared mapping goes to the
/// handler as a `MKWRITE` write fault, one to a private mapping is copied by the
/// memory manager without the handler; NOPAGE, DONE_COW and 0 retry.
///
/// Errors are the fault result that kills the access: SIGSEGV outside the mapping or
/// for a store to a read-only one, the handler's error bits, SIGBUS for a NEEDDSYNC
/// the handler did not finish, for a mapping without a handler, or for an access that
/// still faults after [`MAX_FAULTS_PER_ACCESS`] tries.
pub(crate) fn handle_mm_fault(
    space: &dyn FaultSpace,
    vma: &MappedVma,
    addr: u64,
    write: bool,
) -> Result<(), VmFault> {
    match handle_mm_fault_retrying(space, vma, addr, write) {
        Err(VmFault::RETRY) => Err(VmFault::SIGBUS),
        r => r,
    }
}

/// [`handle_mm_fault`] for a real address space: an access that still faults after
/// [`MAX_FAULTS_PER_ACCESS`] tries is `Err(VmFault::RETRY)`, and the caller lets the
/// hardware retry it, as the kernel does after NOPAGE (other threads keep changing
/// the mapping under a contended access; it is never given up with a signal).
pub(crate) fn handle_mm_fault_retrying(
    space: &dyn FaultSpace,
    vma: &MappedVma,
    addr: u64,
    write: bool,
) -> Result<(), VmFault> {
    let v = vma.vma();
    if !v.contains(addr) || (write && !v.is_writable()) {
        return Err(VmFault::SIGSEGV);
    }
    let Some(ops) = vma.ops() else {
        return Err(VmFault::SIGBUS);
    };
    let pmd = addr & !(PMD - 1);
    let wflags = if write {
        FaultFlags::WRITE
    } else {
        FaultFlags::empty()
    };
    let call = |flags: FaultFlags, order: u32| -> VmFault {
        match Vmf::new(vma, addr, flags | FaultFlags::USER) {
            Ok(vmf) => ops.fault(&vmf, order),
            Err(_) => VmFault::SIGSEGV,
        }
    };
    for _ in 0..MAX_FAULTS_PER_ACCESS {
        let ret = match space.present(addr) {
            Some(writable) if !write || writable => return Ok(()),
            Some(_) => {
                let huge = space.pmd(addr).is_huge();
                if !v.is_shared() {
                    if huge {
                        space.split_pmd(pmd);
                    } else {
                        space.cow_private(vma, addr)?;
                    }
                    continue;
                }
                if huge {
                    let r = call(FaultFlags::WRITE | FaultFlags::MKWRITE, PMD_ORDER);
                    if r != VmFault::FALLBACK {
                        r
                    } else {
                        space.note_fallback(addr);
                        space.split_pmd(pmd);
                        call(FaultFlags::WRITE, 0)
                    }
                } else {
                    call(FaultFlags::WRITE | FaultFlags::MKWRITE, 0)
                }
            }
            None => {
                if v.is_huge() && space.pmd(addr) == PmdSlot::Empty {
                    let r = call(wflags, PMD_ORDER);
                    if r != VmFault::FALLBACK {
                        r
                    } else {
                        space.note_fallback(addr);
                        call(wflags, 0)
                    }
                } else {
                    call(wflags, 0)
                }
            }
        };
        if ret.is_error() {
            return Err(ret & VmFault::ERROR);
        }
        if ret.contains(VmFault::NEEDDSYNC) {
            return Err(VmFault::SIGBUS);
        }
    }
    Err(VmFault::RETRY)
}
