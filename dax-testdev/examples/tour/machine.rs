//! The machine: page sizes available, persistence instructions, device flags.

use super::*;

// The machine

/// The bracketed choice of a sysfs switch (`always [advise] never` → `advise`).
pub(crate) fn sysfs_choice(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let start = s.find('[')? + 1;
    let end = start + s[start..].find(']')?;
    Some(s[start..end].to_owned())
}

pub(crate) fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The CPU's cache write-back instruction, in words.
pub(crate) fn flush_text(f: FlushImpl) -> String {
    match f {
        FlushImpl::Clwb => "CLWB".to_owned(),
        FlushImpl::Clflushopt => "CLFLUSHOPT".to_owned(),
        FlushImpl::Clflush => "CLFLUSH (the slow one)".to_owned(),
        FlushImpl::None => "none (caches count as persistent, or nothing is)".to_owned(),
        other => other.name().to_uppercase(),
    }
}

/// The copy kernel for persistent copies, in words.
pub(crate) fn copy_text(c: CopyImpl) -> String {
    match c {
        CopyImpl::Avx512 => "AVX-512 non-temporal stores".to_owned(),
        CopyImpl::Avx2 => "AVX2 non-temporal stores".to_owned(),
        CopyImpl::Sse2 => "SSE2 non-temporal stores".to_owned(),
        CopyImpl::Portable => "ordinary copies followed by cache write-back".to_owned(),
        other => format!("{} copies", other.name()),
    }
}

pub(crate) fn machine(r: &mut Report<'_>) -> Result<(), TourError> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    r.line(
        "machine",
        format!(
            "Linux {kernel}, {cpus} CPU{}, base page {}",
            if cpus == 1 { "" } else { "s" },
            size_text(rustix::param::page_size() as u64)
        ),
    )?;
    let thp = match sysfs_choice(dax_drivers::SHMEM_THP_SWITCH) {
        Some(mode) if dax_testdev::shmem_thp_enabled() => {
            format!("shmem THP mode '{mode}': memfds that ask get 2 MiB pages")
        }
        Some(mode) => format!(
            "shmem THP mode '{mode}': memfds get 4 KiB pages only\n(as root: echo advise > {})",
            dax_drivers::SHMEM_THP_SWITCH
        ),
        None => "no transparent huge pages on shmem (no THP switch in sysfs)".to_owned(),
    };
    r.line("2 MiB pages", thp)?;
    let pool = read_u64("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").unwrap_or(0);
    let hugetlb = if pool == 0 {
        "hugetlb: no pages reserved (as root: sysctl vm.nr_hugepages=N); the tour needs none"
            .to_owned()
    } else {
        format!(
            "hugetlb: {pool} pages reserved (vm.nr_hugepages), {} free; the tour uses none",
            dax_drivers::hugetlb_pages_available()
        )
    };
    r.line("", hugetlb)?;
    r.line(
        "persistence",
        format!(
            "cache write-back: {}; persistent copies: {}\n(DAX_RS_FLUSH_IMPL and DAX_RS_COPY_IMPL choose others)",
            flush_text(persist::flush_impl()),
            copy_text(persist::copy_impl())
        ),
    )?;
    Ok(())
}

/// The device's flags, in words.
pub(crate) fn flags_text<D: dax_device::DaxOperations + ?Sized>(dev: &DaxDevice<D>) -> String {
    let mut v = Vec::new();
    if dev.write_cache_enabled() {
        v.push("behind a CPU cache (flushes needed)");
    }
    if dev.synchronous() {
        v.push("synchronous (MAP_SYNC allowed)");
    } else {
        v.push("not synchronous (no MAP_SYNC)");
    }
    let f = dev.flags();
    if f.contains(dax_device::DaxFlags::NOCACHE) {
        v.push("writes bypass the cache");
    }
    v.join(", ")
}
