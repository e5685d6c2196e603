//! Sizes and small value types shared by every dax-rs crate (x86-64 geometry).

/// log2 of [`PAGE_SIZE`] (`PAGE_SHIFT`).
pub const PAGE_SHIFT: u32 = 12;
/// The page size DAX works in: 4096 bytes (`PAGE_SIZE`).
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// log2 of [`SECTOR_SIZE`] (`SECTOR_SHIFT`).
pub const SECTOR_SHIFT: u32 = 9;
/// The sector size badblocks counts in: 512 bytes (`SECTOR_SIZE`).
pub const SECTOR_SIZE: usize = 1 << SECTOR_SHIFT;
/// Sectors per page (`PAGE_SECTORS`).
pub const PAGE_SECTORS: u64 = (PAGE_SIZE / SECTOR_SIZE) as u64;
/// Page order of a PMD mapping: 9 (`PMD_ORDER`).
pub const PMD_ORDER: u32 = 9;
/// Size of a PMD mapping: 2 MiB (`PMD_SIZE`).
pub const PMD_SIZE: usize = PAGE_SIZE << PMD_ORDER;
/// Pages per PMD mapping: 512 (`PTRS_PER_PMD`).
pub const PMD_PAGES: u64 = 1 << PMD_ORDER;
/// Size of a CPU cache line on x86-64.
pub const CACHELINE_SIZE: usize = 64;

/// A page frame number of device memory (`pfn_t`).
///
/// In the kernel a pfn names a physical page. In dax-rs a driver's pfn is the
/// process-virtual address of the page shifted right by [`PAGE_SHIFT`]: unique across
/// devices mapped in one process, stable for the device's life, and aligned exactly
/// when the memory is (so the PMD rule "pfn aligned to 512" means what it means in the
/// kernel). A driver may pick another numbering as long as it keeps those properties
/// (see [`DaxOperations`](crate::DaxOperations)'s safety section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The pfn `n` pages after this one (wrapping, as the kernel's `unsigned long`
    /// pfn arithmetic does: a pfn is a number, not a checked address).
    pub const fn add(self, n: u64) -> Pfn {
        Pfn(self.0.wrapping_add(n))
    }

    /// Whether the pfn is aligned to `1 << order` pages (`pfn_t` alignment test used by
    /// the PMD fault path). An order of 64 or more asks for more alignment than a pfn
    /// has bits: only pfn 0 has it.
    pub const fn is_aligned(self, order: u32) -> bool {
        if order >= 64 {
            return self.0 == 0;
        }
        self.0 & ((1u64 << order) - 1) == 0
    }
}
