//! A tour of dax-rs: what a DAX device, a filesystem on it and mappings of its files
//! do, printed as a report a person can read. Run it with
//! `cargo run --release -p dax-testdev --example tour` (`-- --help` for options).
//!
//! It shows a device handing out its pages as addresses (direct access), a media
//! error (poison) and its recovery, a filesystem (TestFs) doing read/write through
//! `dax_iomap_rw` (holes, unwritten extents, copy-on-write, poison), files mapped
//! through the fault engine into a simulated address space (4 KiB and 2 MiB faults,
//! the zero page, mkwrite, writeback, memory failure) and into this process for real,
//! read and write throughput, durability (with `--image`, across runs), and the
//! device's death. It ends with a summary of what happened and the figures seen.
//!
//! The whole tour is [`run`], which writes the report to any `Write`: `main` gives it
//! stdout, and the tests at the bottom (this example is built as a test too, see
//! `dax-testdev/Cargo.toml`) read the report back.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dax_device::persist::{self, CopyImpl, FlushImpl};
use dax_device::{DaxAccessMode, DaxDevice, DaxError, PAGE_SIZE, PMD_SIZE, SECTOR_SIZE};
use dax_fault::mmu::{MapOptions, MmuStats};
use dax_fault::sim::{SimPageTable, SimTarget};
use dax_fault::{PageTable, PmdSlot, Pte, VmFault, Vma};
use dax_iomap::{Fiemap, FiemapExtentFlags};
use dax_testdev::{Backing, DevOp, FallocMode, Ino, MemDevice, TestFs};

const K: u64 = 4096;
const MIB: u64 = 1 << 20;
/// The main device's size without `--size`.
const DEFAULT_SIZE: u64 = 256 * MIB;
/// The smallest main device the tour's files fit on.
const MIN_SIZE: u64 = 16 * MIB;
/// The marker file that shows durability: it outlives the run.
const MARKER: &str = "tour-marker";
/// The marker's payload length.
const MARKER_LEN: u64 = MIB;
/// Files the tour makes and removes again start with this.
const DEMO_PREFIX: &str = "demo-";
/// The width of the label column.
const LABEL: usize = 16;

const USAGE: &str = "\
usage: tour [--image PATH] [--size SIZE]

A tour of dax-rs: a DAX device, a filesystem (TestFs) on it, files mapped through
the fault engine, media errors and their recovery, throughput and durability,
printed as a report.

options:
  --image PATH   put the filesystem on the file PATH (a file-backed device) instead
                 of memory. The first run formats it and leaves a marker file in it;
                 later runs find the marker and show that it survived. An existing
                 image keeps its size; a new one is created with --size.
  --size SIZE    size of the device: a number of bytes with an optional K, M or G
                 suffix (powers of 1024), a multiple of 4 KiB, at least 16 MiB.
                 Default 256M.
  -h, --help     print this help.

Progress of the longer steps is shown on stderr when it is a terminal.
";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let opts = match Options::parse(&args) {
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(opts)) => opts,
        Err(e) => {
            eprintln!("tour: {e} (see --help)");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = io::stdout().lock();
    let progress = io::stderr().is_terminal();
    match run(&opts, &mut stdout, progress) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = stdout.flush();
            eprintln!("tour: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------
// Options and errors

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
struct Options {
    /// `--image PATH`: a file-backed device.
    image: Option<PathBuf>,
    /// `--size SIZE`.
    size: Option<u64>,
}

impl Options {
    /// The options, or `None` for `--help`. Arguments are `OsString`s so that a path
    /// need not be UTF-8; `--name=value` works as well as `--name value`.
    fn parse(args: &[OsString]) -> Result<Option<Options>, TourError> {
        let mut opts = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(arg) = arg.to_str() else {
                return Err(TourError(format!(
                    "unknown argument '{}'",
                    arg.to_string_lossy()
                )));
            };
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(OsString::from(v))),
                _ => (arg, None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| TourError(format!("{name} needs a value")))
            };
            match name {
                "-h" | "--help" => return Ok(None),
                "--image" => opts.image = Some(PathBuf::from(value("--image")?)),
                "--size" => {
                    let v = value("--size")?;
                    opts.size = Some(parse_size(&v.to_string_lossy())?);
                }
                other => return Err(TourError(format!("unknown argument '{other}'"))),
            }
        }
        Ok(Some(opts))
    }
}

/// `SIZE`: bytes, with an optional K, M, G or T suffix (powers of 1024; `KiB`, `kb`
/// and the like are accepted too), a multiple of 4 KiB and at least [`MIN_SIZE`].
fn parse_size(s: &str) -> Result<u64, TourError> {
    let bad = || {
        TourError(format!(
            "--size: '{s}' is not a size (a number with an optional K, M or G suffix, e.g. 1G)"
        ))
    };
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| TourError(format!("--size: '{s}' is too large")))?;
    if bytes < MIN_SIZE || !bytes.is_multiple_of(K) {
        return Err(TourError(format!(
            "--size: {s} is not a multiple of 4 KiB of at least 16 MiB"
        )));
    }
    Ok(bytes)
}

/// Why the tour stopped: one line for a person.
#[derive(Debug)]
struct TourError(String);

impl fmt::Display for TourError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<DaxError> for TourError {
    fn from(e: DaxError) -> Self {
        TourError(errno_text(&e))
    }
}

impl From<io::Error> for TourError {
    fn from(e: io::Error) -> Self {
        TourError(format!("writing the report: {e}"))
    }
}

/// Adds what was being done to an error.
trait Context<T> {
    fn ctx(self, what: impl fmt::Display) -> Result<T, TourError>;
}

impl<T> Context<T> for Result<T, DaxError> {
    fn ctx(self, what: impl fmt::Display) -> Result<T, TourError> {
        self.map_err(|e| TourError(format!("{what}: {}", errno_text(&e))))
    }
}

impl<T> Context<T> for Result<T, VmFault> {
    fn ctx(self, what: impl fmt::Display) -> Result<T, TourError> {
        self.map_err(|f| TourError(format!("{what}: {}", fault_text(f))))
    }
}

/// `EIO (media error in device pages 18..19)`: the errno by name, then what happened.
fn errno_text(e: &DaxError) -> String {
    match e.errno_name() {
        Some(name) => format!("{name} ({e})"),
        None => format!("errno {} ({e})", e.errno()),
    }
}

/// A failed mapped access as the process sees it: the signal, and why.
fn fault_text(f: VmFault) -> String {
    let names: Vec<String> = f
        .iter_names()
        .map(|(n, _)| format!("VM_FAULT_{n}"))
        .collect();
    let signal = if f.contains(VmFault::SIGSEGV) {
        "SIGSEGV"
    } else {
        "SIGBUS"
    };
    let why = if f.intersects(VmFault::HWPOISON | VmFault::HWPOISON_LARGE) {
        "hardware poison"
    } else if f.contains(VmFault::OOM) {
        "out of memory"
    } else {
        "the fault could not be served"
    };
    format!("{signal}, {why} ({})", names.join(" | "))
}

// ---------------------------------------------------------------------------------
// Formatting

/// `4 KiB`, `1 MiB`, `20592 bytes`, `1.5 GiB`.
fn size_text(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (MIB, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    for (unit, name) in UNITS {
        if bytes >= 10 * unit {
            return format!("{:.1} {name}", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes} bytes")
}

/// `1 sector` / `3 sectors`.
fn sectors_text(n: u64) -> String {
    if n == 1 {
        "1 sector".to_owned()
    } else {
        format!("{n} sectors")
    }
}

/// `N x 4 KiB, N x 2 MiB, N fallbacks`.
fn faults_text(pte: u64, pmd: u64, fallbacks: u64) -> String {
    let fb = if fallbacks == 1 {
        "1 fallback from 2 MiB to 4 KiB".to_owned()
    } else {
        format!("{fallbacks} fallbacks from 2 MiB to 4 KiB")
    };
    format!("{pte} x 4 KiB, {pmd} x 2 MiB, {fb}")
}

/// Bytes as text when they are text, shown in quotes.
fn quoted(bytes: &[u8]) -> String {
    format!("\"{}\"", String::from_utf8_lossy(bytes))
}

/// `2026-08-07 12:34:56 UTC` for seconds since 1970.
fn utc_text(secs: u64) -> String {
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Throughput in GiB/s.
fn gib_per_s(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64().max(1e-9);
    format!("{:.2} GiB/s", bytes as f64 / secs / (1u64 << 30) as f64)
}

/// The report: numbered steps of aligned `label  text` lines, then a summary.
struct Report<'a> {
    out: &'a mut dyn Write,
    /// Show progress on stderr.
    progress: bool,
    /// One row per step: its title and what happened.
    steps: Vec<(String, String)>,
    /// Figures for the summary: label and value.
    figures: Vec<(String, String)>,
    /// Checks that failed without stopping the tour.
    failures: Vec<String>,
    /// The simulated mapping step's 4 KiB faults, 2 MiB faults and fallbacks.
    sim_faults: (u64, u64, u64),
    /// When progress was last shown.
    last_progress: std::cell::Cell<Option<Instant>>,
}

impl Report<'_> {
    fn title(&mut self, n: usize, title: &str) -> Result<(), TourError> {
        writeln!(self.out, "\n{n}. {title}")?;
        Ok(())
    }

    /// One line: a label, then text. A text with line breaks continues under itself.
    fn line(&mut self, label: &str, text: impl fmt::Display) -> Result<(), TourError> {
        let text = text.to_string();
        let mut lines = text.lines();
        writeln!(
            self.out,
            "   {label:<LABEL$} {}",
            lines.next().unwrap_or_default()
        )?;
        for more in lines {
            writeln!(self.out, "   {:<LABEL$} {more}", "")?;
        }
        Ok(())
    }

    fn done(&mut self, step: &str, what: impl fmt::Display) {
        self.steps.push((step.to_owned(), what.to_string()));
    }

    fn figure(&mut self, label: &str, value: impl fmt::Display) {
        self.figures.push((label.to_owned(), value.to_string()));
    }

    /// `what` turned out wrong: said in the report, and the tour fails at the end.
    fn failed(&mut self, what: String) -> Result<(), TourError> {
        self.line("CHECK FAILED", &what)?;
        self.failures.push(what);
        Ok(())
    }

    /// An in-place counter on stderr (only when stderr is a terminal).
    /// At most ten updates a second, so that it costs the measurement nothing.
    fn progress(&self, what: &str, done: u64, total: u64) {
        let due = self
            .last_progress
            .get()
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if self.progress && due {
            self.last_progress.set(Some(Instant::now()));
            eprint!(
                "\r\x1b[2K   {what}: {} of {}",
                size_text(done.min(total)),
                size_text(total)
            );
        }
    }

    fn progress_end(&self) {
        if self.progress {
            self.last_progress.set(None);
            eprint!("\r\x1b[2K");
        }
    }

    fn summary(&mut self) -> Result<(), TourError> {
        writeln!(self.out, "\nSummary")?;
        let w = self
            .steps
            .iter()
            .chain(&self.figures)
            .map(|(l, _)| l.len())
            .max()
            .unwrap_or(0);
        writeln!(self.out, "   {:<w$}  what happened", "step")?;
        for (l, v) in &self.steps {
            writeln!(self.out, "   {l:<w$}  {v}")?;
        }
        writeln!(self.out, "\n   {:<w$}  value", "figure")?;
        for (l, v) in &self.figures {
            writeln!(self.out, "   {l:<w$}  {v}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// The machine

/// The bracketed choice of a sysfs switch (`always [advise] never` → `advise`).
fn sysfs_choice(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let start = s.find('[')? + 1;
    let end = start + s[start..].find(']')?;
    Some(s[start..end].to_owned())
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The CPU's cache write-back instruction, in words.
fn flush_text(f: FlushImpl) -> String {
    match f {
        FlushImpl::Clwb => "CLWB".to_owned(),
        FlushImpl::Clflushopt => "CLFLUSHOPT".to_owned(),
        FlushImpl::Clflush => "CLFLUSH (the slow one)".to_owned(),
        FlushImpl::None => "none (caches count as persistent, or nothing is)".to_owned(),
        other => other.name().to_uppercase(),
    }
}

/// The copy kernel for persistent copies, in words.
fn copy_text(c: CopyImpl) -> String {
    match c {
        CopyImpl::Avx512 => "AVX-512 non-temporal stores".to_owned(),
        CopyImpl::Avx2 => "AVX2 non-temporal stores".to_owned(),
        CopyImpl::Sse2 => "SSE2 non-temporal stores".to_owned(),
        CopyImpl::Portable => "ordinary copies followed by cache write-back".to_owned(),
        other => format!("{} copies", other.name()),
    }
}

fn machine(r: &mut Report<'_>) -> Result<(), TourError> {
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
fn flags_text<D: dax_device::DaxOperations + ?Sized>(dev: &DaxDevice<D>) -> String {
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

// ---------------------------------------------------------------------------------
// The main device and its filesystem

/// The marker a run leaves on an image.
#[derive(Debug, Clone, PartialEq)]
struct Marker {
    run: u64,
    written: u64,
    len: u64,
    checksum: u64,
    /// Whether the payload's checksum matches.
    intact: bool,
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `len` bytes that depend on `seed` (xorshift64*).
fn payload(seed: u64, len: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len as usize);
    while (v.len() as u64) < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len as usize);
    v
}

/// Writes the marker of run `run` (a 4 KiB text header, then the payload) and makes
/// it durable.
fn write_marker(fs: &TestFs, run: u64) -> Result<Marker, TourError> {
    let ino = match fs.lookup(MARKER) {
        Ok(ino) => {
            fs.truncate(ino, 0).ctx("emptying the old marker")?;
            ino
        }
        Err(DaxError::NotFound { .. }) => fs.create(MARKER).ctx("creating the marker")?,
        Err(e) => return Err(e).ctx("looking up the marker"),
    };
    let written = now_secs();
    let data = payload(
        run.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ written,
        MARKER_LEN,
    );
    let checksum = fnv1a(&data);
    let mut header = format!(
        "dax-rs tour marker\nrun {run}\nwritten {written}\nlength {MARKER_LEN}\nchecksum {checksum:016x}\n"
    )
    .into_bytes();
    header.resize(K as usize, 0);
    fs.write(ino, 0, &header).ctx("writing the marker")?;
    fs.write(ino, K, &data).ctx("writing the marker")?;
    fs.fsync(ino).ctx("fsync of the marker")?;
    Ok(Marker {
        run,
        written,
        len: MARKER_LEN,
        checksum,
        intact: true,
    })
}

/// The marker on `fs`, if there is one; `Err` with a reason when it is damaged.
fn read_marker(fs: &TestFs) -> Result<Option<Marker>, TourError> {
    let ino = match fs.lookup(MARKER) {
        Ok(ino) => ino,
        Err(DaxError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e).ctx("looking up the marker"),
    };
    let mut header = vec![0u8; K as usize];
    let n = fs.read(ino, 0, &mut header).ctx("reading the marker")?;
    let text = String::from_utf8_lossy(&header[..n]);
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| {
                if name == "checksum" {
                    u64::from_str_radix(v.trim(), 16).ok()
                } else {
                    v.trim().parse().ok()
                }
            })
    };
    let (Some(run), Some(written), Some(len), Some(checksum)) = (
        field("run"),
        field("written"),
        field("length"),
        field("checksum"),
    ) else {
        return Err(TourError(format!(
            "{MARKER} is there but its header does not parse"
        )));
    };
    if len > 64 * MIB {
        return Err(TourError(format!(
            "{MARKER} claims a length of {len} bytes"
        )));
    }
    let mut data = vec![0u8; len as usize];
    let got = fs.read(ino, K, &mut data).ctx("reading the marker")?;
    Ok(Some(Marker {
        run,
        written,
        len,
        checksum,
        intact: got as u64 == len && fnv1a(&data) == checksum,
    }))
}

/// The main device: memory or an image file, with the filesystem on it.
struct Main {
    dev: Arc<DaxDevice<MemDevice>>,
    fs: TestFs,
    /// What the image held when it was opened (`None`: new or memory).
    found: Option<Result<Option<Marker>, TourError>>,
}

fn open_main(opts: &Options, r: &mut Report<'_>) -> Result<Main, TourError> {
    let Some(path) = &opts.image else {
        let size = opts.size.unwrap_or(DEFAULT_SIZE);
        let thp = dax_testdev::shmem_thp_enabled() && size.is_multiple_of(PMD_SIZE as u64);
        let backing = if thp {
            Backing::ShmemThp
        } else {
            Backing::Memfd
        };
        let dev = MemDevice::builder()
            .size(size)
            .backing(backing)
            .build()
            .ctx(format!("making a {} memory device", size_text(size)))?;
        let kind = if thp {
            "a memfd on 2 MiB transparent huge pages"
        } else if dax_testdev::shmem_thp_enabled() {
            "a memfd on 4 KiB pages (the size is not a multiple of 2 MiB)"
        } else {
            "a memfd on 4 KiB pages (shmem THP is off)"
        };
        r.line(
            "main device",
            format!(
                "{} of memory, {kind}; gone when the tour ends",
                size_text(size)
            ),
        )?;
        r.line("device flags", flags_text(&dev))?;
        let fs = TestFs::mkfs(dev.clone()).ctx("mkfs")?;
        r.line("filesystem", "TestFs, new (mkfs)")?;
        return Ok(Main {
            dev,
            fs,
            found: None,
        });
    };
    let existing = std::fs::metadata(path).ok().filter(|m| m.len() > 0);
    let shown = path.display();
    let builder = MemDevice::builder()
        .backing(Backing::File(path.clone()))
        .synchronous(false);
    let (dev, new) = match (existing, opts.size) {
        (Some(m), Some(size)) if m.len() != size => {
            return Err(TourError(format!(
                "{shown} is {}, not {}: leave out --size to use it, or give a new path",
                size_text(m.len()),
                size_text(size)
            )));
        }
        (Some(_), _) => (builder.build(), false),
        (None, size) => (builder.size(size.unwrap_or(DEFAULT_SIZE)).build(), true),
    };
    let dev = dev.ctx(format!("opening the image {shown}"))?;
    let size = dev.driver().size();
    r.line(
        "main device",
        format!(
            "{} image file {shown}, {}\nits flush is an fdatasync of the file",
            size_text(size),
            if new {
                "created now"
            } else {
                "from an earlier run"
            },
        ),
    )?;
    r.line("device flags", flags_text(&dev))?;
    if new {
        let fs = TestFs::mkfs(dev.clone()).ctx("mkfs on the image")?;
        r.line("filesystem", "TestFs, new (mkfs)")?;
        return Ok(Main {
            dev,
            fs,
            found: None,
        });
    }
    let fs = TestFs::open(dev.clone()).map_err(|e| {
        TourError(format!(
            "{shown} holds no TestFs this tour can mount: {} (give a new path to start over)",
            errno_text(&e)
        ))
    })?;
    let files = fs.list();
    let stale: Vec<String> = files
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n.starts_with(DEMO_PREFIX))
        .collect();
    for name in &stale {
        fs.unlink(name).ctx(format!("removing {name}"))?;
    }
    r.line(
        "filesystem",
        format!(
            "TestFs mounted from its last checkpoint (generation {}), {} file{}",
            fs.generation(),
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        ),
    )?;
    if !stale.is_empty() {
        r.line(
            "",
            format!(
                "removed {} demo file(s) an interrupted run left behind",
                stale.len()
            ),
        )?;
    }
    // Poison an interrupted run left (kept beside the image, as a platform reports
    // it again after a reboot): rewritten with zeros through the block path, which
    // clears it, so that this run does not trip over it.
    let bad = dev.driver().badblocks().records();
    for rec in &bad {
        let (off, len) = (rec.start * SECTOR_SIZE as u64, rec.len * SECTOR_SIZE as u64);
        dev.driver()
            .write(off, &vec![0; len as usize])
            .ctx(format!("clearing the poison at device byte {off}"))?;
    }
    if !bad.is_empty() {
        r.line(
            "",
            format!(
                "cleared {} poisoned range(s) an interrupted run left (recorded in {shown}.poison)",
                bad.len()
            ),
        )?;
    }
    let found = read_marker(&fs);
    Ok(Main {
        dev,
        fs,
        found: Some(found),
    })
}

// ---------------------------------------------------------------------------------
// The tour

/// Runs the tour, writing the report to `out`; progress goes to stderr if `progress`.
fn run(opts: &Options, out: &mut dyn Write, progress: bool) -> Result<(), TourError> {
    let mut r = Report {
        out,
        progress,
        steps: Vec::new(),
        figures: Vec::new(),
        failures: Vec::new(),
        sim_faults: (0, 0, 0),
        last_progress: std::cell::Cell::new(None),
    };
    writeln!(r.out, "dax-rs tour")?;
    machine(&mut r)?;
    // A small device for the raw device steps, which write anywhere on it.
    let scratch = MemDevice::builder()
        .size(8 * MIB)
        .backing(Backing::Memfd)
        .build()
        .ctx("making the scratch device")?;
    r.line(
        "scratch device",
        "8 MiB memfd for the raw device steps (1-3 and 9)",
    )?;
    let main = open_main(opts, &mut r)?;

    // Each step prints its title and lines, and returns one phrase for the summary;
    // an error stops the tour, named with its step.
    fn step<T>(
        r: &mut Report<'_>,
        n: usize,
        short: &str,
        title: &str,
        f: impl FnOnce(&mut Report<'_>, T) -> Result<String, TourError>,
        arg: T,
    ) -> Result<(), TourError> {
        r.title(n, title)?;
        let what = f(r, arg).map_err(|e| TourError(format!("step {n} ({short}): {e}")))?;
        r.done(&format!("{n} {short}"), what);
        Ok(())
    }
    let s = &*scratch;
    step(
        &mut r,
        1,
        "direct access",
        "Direct access: device pages as addresses",
        direct_access,
        s,
    )?;
    step(
        &mut r,
        2,
        "poison",
        "Poison: the platform reports a bad sector",
        poison,
        s,
    )?;
    step(
        &mut r,
        3,
        "recovery",
        "Recovery: rewriting the bad page clears the poison",
        recovery,
        s,
    )?;
    step(
        &mut r,
        4,
        "filesystem",
        "A filesystem: TestFs, read and write through dax_iomap_rw",
        filesystem,
        &main,
    )?;
    step(
        &mut r,
        5,
        "simulated mapping",
        "Mappings: files faulted into a simulated address space (dax_iomap_fault)",
        mappings,
        &main,
    )?;
    step(
        &mut r,
        6,
        "real mapping",
        "A real mapping: load and store through a pointer in this process",
        real_mapping,
        &main,
    )?;
    step(
        &mut r,
        7,
        "throughput",
        "Throughput: read and write through dax_iomap_rw in 1 MiB calls",
        throughput,
        &main,
    )?;
    step(
        &mut r,
        8,
        "durability",
        "Durability: a marker file that outlives the run",
        durability,
        main,
    )?;
    step(
        &mut r,
        9,
        "device death",
        "Death: the scratch device is killed",
        death,
        s,
    )?;

    r.summary()?;
    match r.failures.len() {
        0 => Ok(()),
        1 => Err(TourError(format!("a check failed: {}", r.failures[0]))),
        n => Err(TourError(format!(
            "{n} checks failed, the first: {}",
            r.failures[0]
        ))),
    }
}

/// Step 1: `dax_direct_access` and copies through the address it answers.
fn direct_access(r: &mut Report<'_>, dev: &DaxDevice<MemDevice>) -> Result<String, TourError> {
    let section = dev.read_lock();
    let da = section
        .direct_access(16, 4, DaxAccessMode::Access)
        .ctx("direct_access")?;
    r.line(
        "asked for",
        "4 pages from device page 16 (dax_direct_access)",
    )?;
    r.line(
        "got",
        format!(
            "{} pages at address {:p}, pfn {:#x}",
            da.pages(),
            da.as_ptr(),
            da.pfn().0
        ),
    )?;
    let msg = b"hello, direct access";
    let n = da.copy_from(0, msg);
    let mut back = [0u8; 20];
    da.copy_to(0, &mut back);
    r.line(
        "copied in",
        format!("{n} bytes with stores that bypass the CPU cache"),
    )?;
    r.line("read back", quoted(&back))?;
    if &back != msg {
        r.failed("the bytes read back differ from the bytes written".to_owned())?;
    }
    Ok(format!(
        "{} pages at pfn {:#x}, {n} bytes written and read back",
        da.pages(),
        da.pfn().0
    ))
}

/// Step 2: poison in page 18, as each path sees it.
fn poison(r: &mut Report<'_>, dev: &DaxDevice<MemDevice>) -> Result<String, TourError> {
    let bad = 18 * K + 1024;
    dev.driver().poison(bad, 512).ctx("injecting poison")?;
    r.line(
        "injected",
        format!("512 bytes of poison at device byte {bad} (page 18, byte 1024)"),
    )?;
    for rec in dev.driver().badblocks().records() {
        r.line(
            "badblocks",
            format!(
                "sector {}, {} ({})",
                rec.start,
                sectors_text(rec.len),
                size_text(rec.len * SECTOR_SIZE as u64)
            ),
        )?;
    }
    let section = dev.read_lock();
    let mut seen = Vec::new();
    match section.direct_access(16, 4, DaxAccessMode::Access) {
        Err(e) => {
            r.line(
                "direct access",
                format!("of pages 16..20 refused: {}", errno_text(&e)),
            )?;
            seen.extend(e.errno_name());
        }
        Ok(_) => r.failed("direct access over the poisoned page succeeded".to_owned())?,
    }
    let rec = section
        .direct_access(16, 4, DaxAccessMode::RecoveryWrite)
        .ctx("direct_access in recovery-write mode")?;
    r.line(
        "recovery mode",
        format!(
            "direct access answers {} pages: up to and including the bad one",
            rec.pages()
        ),
    )?;
    let mut buf = vec![0u8; PAGE_SIZE];
    let n = rec.copy_to(2 * PAGE_SIZE, &mut buf);
    r.line(
        "safe read",
        format!("of page 18 stopped after {n} bytes, where the poison starts"),
    )?;
    let mut block = vec![0u8; 512];
    match dev.driver().read(bad, &mut block) {
        Err(e) => {
            r.line(
                "block read",
                format!("of the bad sector failed: {}", errno_text(&e)),
            )?;
            seen.extend(e.errno_name());
        }
        Ok(()) => r.failed("a block read of the bad sector succeeded".to_owned())?,
    }
    let wrote = rec.recovery_write(2 * PAGE_SIZE + 100, &[1; 100]);
    if wrote == 0 {
        r.line(
            "small rewrite",
            "recovery_write of 100 bytes inside page 18 wrote nothing:\n\
             poison is cleared only by rewriting whole aligned sectors",
        )?;
    } else {
        r.failed(format!(
            "an unaligned recovery_write of 100 bytes wrote {wrote} bytes over poison"
        ))?;
    }
    Ok(format!(
        "seen as {} by direct access and the block path",
        seen.join(" and ")
    ))
}

/// Step 3: the two ways a driver clears poison: zeroing and a recovery write.
fn recovery(r: &mut Report<'_>, dev: &DaxDevice<MemDevice>) -> Result<String, TourError> {
    let clears = dev.driver().calls(DevOp::ClearPoison);
    dev.zero_page_range(18, 1)
        .ctx("zero_page_range of page 18")?;
    let asked = dev.driver().calls(DevOp::ClearPoison) - clears;
    let ok = dev.driver().badblocks().is_empty() && !dev.driver().is_poisoned(18 * K, K);
    r.line(
        "zero page 18",
        format!(
            "zeroed 4 KiB, asking the firmware to clear poison {}; {}",
            if asked == 1 {
                "once".to_owned()
            } else {
                format!("{asked} times")
            },
            if ok {
                "poison cleared"
            } else {
                "poison still there"
            }
        ),
    )?;
    if !ok {
        r.failed("zero_page_range left the poison".to_owned())?;
    }
    let records = dev.driver().badblocks().count();
    r.line(
        "badblocks",
        if records == 0 {
            "empty".to_owned()
        } else {
            format!("{records} record(s) left")
        },
    )?;
    {
        let section = dev.read_lock();
        let da = section
            .direct_access(16, 4, DaxAccessMode::Access)
            .ctx("direct_access after the clear")?;
        r.line(
            "direct access",
            format!("of pages 16..20 works again: {} pages", da.pages()),
        )?;
    }
    // Poison again, in page 19, and rewrite the whole page through recovery_write.
    dev.driver()
        .poison(19 * K + 2048, 512)
        .ctx("injecting poison")?;
    let section = dev.read_lock();
    let rec = section
        .direct_access(19, 1, DaxAccessMode::RecoveryWrite)
        .ctx("direct_access in recovery-write mode")?;
    let wrote = rec.recovery_write(0, &[b'R'; PAGE_SIZE]);
    drop(section);
    let cleared = dev.driver().badblocks().is_empty() && !dev.driver().is_poisoned(19 * K, K);
    let text = if wrote == PAGE_SIZE && cleared {
        format!("rewrote {}, poison cleared", size_text(wrote as u64))
    } else {
        format!("wrote {wrote} bytes, poison still there")
    };
    r.line(
        "rewrite page 19",
        format!("poisoned it, then recovery_write of the whole page: {text}"),
    )?;
    if wrote != PAGE_SIZE || !cleared {
        r.failed("recovery_write of a whole page did not clear its poison".to_owned())?;
    }
    Ok("poison cleared by zeroing and by a recovery write".to_owned())
}

/// The names the tour's files get.
fn demo(name: &str) -> String {
    format!("{DEMO_PREFIX}{name}")
}

/// Step 4: TestFs: holes, unwritten extents, reflink with copy-on-write, poison.
fn filesystem(r: &mut Report<'_>, m: &Main) -> Result<String, TourError> {
    let fs = &m.fs;
    let a = fs.create(&demo("a")).ctx("creating demo-a")?;
    fs.write(a, 0, &[b'A'; 3 * 4096]).ctx("writing demo-a")?;
    fs.write(a, 5 * K + 100, b"after a hole")
        .ctx("writing demo-a")?;
    let st = fs.stat(a).ctx("stat of demo-a")?;
    r.line(
        "demo-a",
        format!(
            "12 KiB at 0, then 12 bytes at 20580: size {} bytes, {} blocks of 4 KiB",
            st.size, st.blocks
        ),
    )?;
    let mut buf = [0xFFu8; 8];
    fs.read(a, 4 * K, &mut buf).ctx("reading demo-a")?;
    r.line(
        "the hole",
        format!(
            "at 16384..20480 is not allocated; 8 bytes read there are {}",
            if buf == [0; 8] {
                "all zero"
            } else {
                "NOT zero"
            }
        ),
    )?;
    if buf != [0; 8] {
        r.failed("a hole read as non-zero bytes".to_owned())?;
    }
    fs.fallocate(a, FallocMode::KEEP_SIZE, 8 * K, 2 * K)
        .ctx("fallocate on demo-a")?;
    r.line(
        "preallocated",
        "8 KiB at 32768, past the end (fallocate, KEEP_SIZE)",
    )?;
    let mut fm = Fiemap {
        extents_max: 8,
        ..Fiemap::default()
    };
    fs.fiemap(a, &mut fm, 0, u64::MAX >> 2)
        .ctx("fiemap of demo-a")?;
    let mut lines = Vec::new();
    for e in &fm.extents {
        let mut kind = vec![if e.flags.contains(FiemapExtentFlags::UNWRITTEN) {
            "unwritten (allocated, reads as zeros)"
        } else {
            "written"
        }];
        if e.flags.contains(FiemapExtentFlags::SHARED) {
            kind.push("shared");
        }
        if e.flags.contains(FiemapExtentFlags::LAST) {
            kind.push("last");
        }
        lines.push(format!(
            "file {:>5}..{:<5} -> device {:#9x}  {:>6}  {}",
            e.logical,
            e.logical + e.length,
            e.physical,
            size_text(e.length),
            kind.join(", ")
        ));
    }
    r.line("extents", lines.join("\n"))?;

    let b = fs.create(&demo("b")).ctx("creating demo-b")?;
    fs.reflink(a, 0, b, 0, 3 * K)
        .ctx("reflink demo-a -> demo-b")?;
    let shared = |ino: Ino| -> Result<u64, TourError> {
        Ok(fs
            .extents(ino)
            .ctx("extents")?
            .iter()
            .filter(|e| e.shared)
            .map(|e| e.len)
            .sum())
    };
    r.line(
        "reflink",
        format!(
            "demo-a's first 12 KiB into demo-b: {} blocks shared, no data copied",
            shared(b)?
        ),
    )?;
    fs.write(b, K + 10, b"copy-on-write")
        .ctx("writing demo-b")?;
    let (mut from_a, mut from_b) = ([0u8; 13], [0u8; 13]);
    fs.read(a, K + 10, &mut from_a).ctx("reading demo-a")?;
    fs.read(b, K + 10, &mut from_b).ctx("reading demo-b")?;
    r.line(
        "copy-on-write",
        format!(
            "13 bytes written into demo-b's block 1 gave it its own copy ({} blocks still shared)\n\
             demo-a reads {}, demo-b reads {}",
            shared(b)?,
            quoted(&from_a),
            quoted(&from_b)
        ),
    )?;
    if &from_a != b"AAAAAAAAAAAAA" || &from_b != b"copy-on-write" {
        r.failed("copy-on-write changed the wrong file".to_owned())?;
    }

    // Poison under a file: a read fails with EIO; a page-aligned overwrite recovers.
    let c = fs.create(&demo("c")).ctx("creating demo-c")?;
    fs.write(c, 0, &[b'C'; 4096]).ctx("writing demo-c")?;
    let Some(blk) = fs
        .extents(c)
        .ctx("extents of demo-c")?
        .first()
        .map(|e| e.dev_block)
    else {
        return Err(TourError("demo-c has no block after a write".to_owned()));
    };
    m.dev
        .driver()
        .poison(blk * K + 512, 512)
        .ctx("injecting poison")?;
    r.line(
        "poison",
        format!("512 bytes under demo-c's only block (device block {blk})"),
    )?;
    let mut seen = "no error";
    match fs.read(c, 100, &mut buf) {
        Err(e) => {
            r.line("read", format!("of demo-c failed: {}", errno_text(&e)))?;
            seen = e.errno_name().unwrap_or("an error");
        }
        Ok(_) => r.failed("a read over poison succeeded".to_owned())?,
    }
    fs.write(c, 0, &[b'R'; 4096]).ctx("rewriting demo-c")?;
    fs.read(c, 100, &mut buf)
        .ctx("reading demo-c after the rewrite")?;
    let cleared = m.dev.driver().badblocks().is_empty();
    r.line(
        "rewrite",
        format!(
            "a 4 KiB write at 0: rewrote 4 KiB, {}; demo-c reads {}",
            if cleared {
                "poison cleared"
            } else {
                "poison still there"
            },
            quoted(&buf)
        ),
    )?;
    if !cleared {
        r.failed("a page-aligned write over poison left it".to_owned())?;
    }
    fs.fsync(a).ctx("fsync of demo-a")?;
    Ok(format!(
        "hole, unwritten extent, copy-on-write; poison read {seen}, then rewritten"
    ))
}

/// What a slot of the simulated page table holds, in words.
fn slot_text(pt: &SimPageTable, addr: u64) -> String {
    let rw = |writable: bool, dirty: bool| match (writable, dirty) {
        (true, true) => "writable, dirty",
        (true, false) => "writable, clean",
        (false, true) => "read-only, dirty",
        (false, false) => "read-only, clean",
    };
    match pt.pmd(addr) {
        PmdSlot::Huge {
            pfn,
            writable,
            dirty,
        } => format!("2 MiB mapping of pfn {:#x}, {}", pfn.0, rw(writable, dirty)),
        PmdSlot::HugeZero => "the huge zero page (2 MiB, read-only)".to_owned(),
        _ => match pt.pte(addr) {
            Some(Pte::Page {
                pfn,
                writable,
                dirty,
            }) => format!("4 KiB mapping of pfn {:#x}, {}", pfn.0, rw(writable, dirty)),
            Some(Pte::Zero) => "the shared zero page (4 KiB, read-only)".to_owned(),
            Some(Pte::Private { .. }) => "a private copy (4 KiB)".to_owned(),
            None => "nothing mapped".to_owned(),
        },
    }
}

/// Step 5: files mapped through `dax_iomap_fault` into a `SimPageTable`.
fn mappings(r: &mut Report<'_>, m: &Main) -> Result<String, TourError> {
    const BASE: u64 = 0x7000_0000_0000;
    let (fs, dev) = (&m.fs, &m.dev);
    let pt = Arc::new(SimPageTable::new());

    // A small file with a hole: the hole maps the zero page until a store.
    let f = fs.create(&demo("small")).ctx("creating demo-small")?;
    fs.write(f, 0, b"hello, mapping")
        .ctx("writing demo-small")?;
    fs.truncate(f, 4 * K).ctx("truncate")?;
    fs.fallocate(f, FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE, K, K)
        .ctx("punching a hole")?;
    r.line(
        "demo-small",
        "16 KiB, with a hole punched at page 1; mapped at 0x700000000000",
    )?;
    let vma = fs
        .mmap(
            f,
            Vma::new(BASE, 4 * K, 0).ctx("vma")?.writable(true),
            pt.clone(),
        )
        .ctx("mmap of demo-small")?;
    let mut buf = [0u8; 14];
    pt.read(&vma, BASE, &mut buf).ctx("load from page 0")?;
    r.line(
        "load page 0",
        format!("reads {}: {}", quoted(&buf), slot_text(&pt, BASE)),
    )?;
    pt.write(&vma, BASE, b"HELLO").ctx("store to page 0")?;
    r.line(
        "store page 0",
        format!("made writable in place (mkwrite): {}", slot_text(&pt, BASE)),
    )?;
    pt.read(&vma, BASE + K, &mut buf)
        .ctx("load from the hole")?;
    r.line(
        "load page 1",
        format!("a hole: {}", slot_text(&pt, BASE + K)),
    )?;
    pt.write(&vma, BASE + K, b"filled")
        .ctx("store into the hole")?;
    r.line(
        "store page 1",
        format!(
            "allocated a block: {}; the file has {} blocks now",
            slot_text(&pt, BASE + K),
            fs.stat(f).ctx("stat")?.blocks
        ),
    )?;
    let entries: Vec<String> = vma
        .mapping()
        .index()
        .entries()
        .iter()
        .map(|e| {
            format!(
                "page {}: {} entry{}",
                e.start,
                size_text(K << e.entry.order),
                if e.marks.contains(dax_fault::index::Marks::DIRTY) {
                    ", dirty"
                } else {
                    ", clean"
                }
            )
        })
        .collect();
    r.line("index", entries.join("; "))?;
    fs.fsync(f).ctx("fsync of demo-small")?;
    let clean = vma
        .mapping()
        .index()
        .entries()
        .iter()
        .all(|e| !e.marks.contains(dax_fault::index::Marks::DIRTY));
    r.line(
        "fsync",
        format!(
            "wrote the dirty pages back: {}; entries {}",
            slot_text(&pt, BASE),
            if clean { "clean" } else { "still dirty" }
        ),
    )?;

    // A 2 MiB-aligned file: one PMD fault maps all of it.
    let big = fs.create(&demo("big")).ctx("creating demo-big")?;
    fs.write(big, 0, &vec![b'B'; 2 << 20])
        .ctx("writing demo-big")?;
    let big_at = BASE + (4 << 20);
    let vb = fs
        .mmap(big, Vma::new(big_at, 2 << 20, 0).ctx("vma")?, pt.clone())
        .ctx("mmap of demo-big")?;
    pt.read(&vb, big_at + 12345, &mut buf[..1])
        .ctx("load from demo-big")?;
    r.line(
        "demo-big",
        format!(
            "2 MiB; one load: {} ({} pages in the index)",
            slot_text(&pt, big_at),
            vb.mapping().index().nrpages()
        ),
    )?;

    // Memory failure: poison under a mapped page, reported by the device.
    let Some(SimTarget::Device { pfn, pgoff, .. }) = pt.resolve(BASE) else {
        return Err(TourError("page 0 of demo-small is not mapped".to_owned()));
    };
    dev.driver().poison(pgoff * K, K).ctx("injecting poison")?;
    dax_testdev::memory_failure(dev, pfn, 1, dax_device::MfFlags::empty()).ctx("memory failure")?;
    let signals: Vec<String> = vma
        .take_signals()
        .iter()
        .map(|a| format!("{a:#x}"))
        .collect();
    r.line(
        "memory failure",
        format!(
            "at pfn {:#x} (demo-small page 0): SIGBUS queued for address {}\n\
             the page is unmapped: {}",
            pfn.0,
            if signals.is_empty() {
                "none".to_owned()
            } else {
                signals.join(", ")
            },
            slot_text(&pt, BASE)
        ),
    )?;
    match pt.read(&vma, BASE, &mut buf) {
        Err(f) => r.line("next load", fault_text(f))?,
        Ok(()) => r.failed("a load from a poisoned page succeeded".to_owned())?,
    }
    let mut page = [0u8; PAGE_SIZE];
    page[..9].copy_from_slice(b"recovered");
    fs.write(f, 0, &page).ctx("rewriting demo-small page 0")?;
    let cleared = !dev.driver().is_poisoned(pgoff * K, K);
    pt.read(&vma, BASE, &mut buf[..9])
        .ctx("load after the rewrite")?;
    r.line(
        "rewrite",
        format!(
            "page 0 with write(2): rewrote 4 KiB, {}; a load reads {}",
            if cleared {
                "poison cleared"
            } else {
                "poison still there"
            },
            quoted(&buf[..9])
        ),
    )?;
    if !cleared {
        r.failed("rewriting a poisoned page left the poison".to_owned())?;
    }
    let (sa, sb) = (vma.mapping().stats(), vb.mapping().stats());
    let (pte, pmd, fb) = (
        sa.pte_faults() + sb.pte_faults(),
        sa.pmd_faults() + sb.pmd_faults(),
        sa.fallbacks() + sb.fallbacks(),
    );
    r.line(
        "faults",
        format!(
            "{}; {} allocated storage\n(fault calls: a 2 MiB fault that cannot map 2 MiB falls back to 4 KiB)",
            faults_text(pte, pmd, fb),
            sa.major() + sb.major()
        ),
    )?;
    r.figure("faults, simulated", faults_text(pte, pmd, fb));
    r.sim_faults = (pte, pmd, fb);
    Ok(format!(
        "{pte} x 4 KiB and {pmd} x 2 MiB faults, zero page, mkwrite, writeback, memory failure"
    ))
}

/// The kernel's page size behind `addr .. addr + len`, from /proc/self/smaps: 2 MiB
/// where it maps shmem or file memory with PMDs, else the VMAs' KernelPageSize.
/// Returns the page size and how much of the range is mapped with 2 MiB pages.
fn kernel_page_text(addr: usize, len: usize) -> Option<(String, String)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    let (mut kps, mut pmd_kb) = (None, 0u64);
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            inside = lo < addr.saturating_add(len) && addr < hi;
            continue;
        }
        if !inside {
            continue;
        }
        let kb = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        };
        match first {
            "KernelPageSize:" => kps = kps.max(kb()),
            "ShmemPmdMapped:" | "FilePmdMapped:" => pmd_kb += kb().unwrap_or(0),
            _ => {}
        }
    }
    let kps = kps?;
    Some(if pmd_kb > 0 {
        ("2 MiB pages".to_owned(), size_text(pmd_kb * 1024))
    } else {
        (
            format!("{} pages", size_text(kps * 1024)),
            "none".to_owned(),
        )
    })
}

/// Step 6: the same engine behind a real mapping of this process (`dax_fault::mmu`).
fn real_mapping(r: &mut Report<'_>, m: &Main) -> Result<String, TourError> {
    let fs = &m.fs;
    let real = fs.create(&demo("real")).ctx("creating demo-real")?;
    fs.write(real, 0, &vec![b'r'; 4 << 20])
        .ctx("writing demo-real")?;
    let map = fs
        .mmap_real(real, 0, 4 << 20, MapOptions::new().writable(true))
        .ctx("mmap of demo-real")?;
    r.line(
        "demo-real",
        format!("4 MiB, mapped at {:p}, shared and writable", map.as_ptr()),
    )?;
    let mut one = [0u8; 1];
    map.load(3 << 20, &mut one).ctx("load at 3 MiB")?;
    r.line("load at 3 MiB", format!("reads {}", quoted(&one)))?;
    let msg = b"stored through the pointer";
    map.store(12345, msg).ctx("store at 12345")?;
    let mut back = [0u8; 26];
    fs.read(real, 12345, &mut back)
        .ctx("read(2) of demo-real")?;
    r.line(
        "store at 12345",
        format!(
            "{} bytes; read(2) of the file then sees {}",
            msg.len(),
            quoted(&back)
        ),
    )?;
    if &back != msg {
        r.failed("read(2) does not see a store made through the mapping".to_owned())?;
    }
    let MmuStats {
        pte,
        pmd,
        fallback,
        mkwrite,
        write_tracking,
        ..
    } = map.stats();
    r.line(
        "faults",
        format!(
            "{}; {mkwrite} later stores made a read-only mapping writable",
            faults_text(pte, pmd, fallback)
        ),
    )?;
    r.line(
        "write tracking",
        if write_tracking {
            "userfaultfd write-protect (no kernel VMA per written page)"
        } else {
            "mprotect"
        },
    )?;
    let kernel = match kernel_page_text(map.as_ptr() as usize, map.len()) {
        Some((pages, huge)) => {
            r.line(
                "kernel pages",
                format!(
                    "{pages} behind the mapping ({huge} of it in 2 MiB pages, by /proc/self/smaps)"
                ),
            )?;
            pages
        }
        None => {
            r.line("kernel pages", "unknown (no /proc/self/smaps)")?;
            "pages of unknown size".to_owned()
        }
    };
    r.figure("faults, real mapping", faults_text(pte, pmd, fallback));
    let (spte, spmd, sfb) = r.sim_faults;
    let sizes = |pte: u64, pmd: u64| match (pte > 0, pmd > 0) {
        (true, true) => "4 KiB and 2 MiB",
        (false, true) => "2 MiB",
        (true, false) => "4 KiB",
        (false, false) => "none",
    };
    r.figure(
        "page sizes used",
        format!(
            "simulated: {}; real mapping: {} per fault, {kernel} underneath",
            sizes(spte, spmd.saturating_sub(sfb)),
            sizes(pte, pmd)
        ),
    );
    Ok("a store through the pointer is seen by read(2)".to_owned())
}

/// Step 7: read and write throughput through `dax_iomap_rw` on one file.
fn throughput(r: &mut Report<'_>, m: &Main) -> Result<String, TourError> {
    const CHUNK: u64 = MIB;
    let fs = &m.fs;
    let size = (m.dev.driver().size() / 4).clamp(MIB, 64 * MIB) / MIB * MIB;
    let ino = fs
        .create(&demo("throughput"))
        .ctx("creating demo-throughput")?;
    let mut buf = vec![0x5au8; CHUNK as usize];
    // One pass of 1 MiB calls over the file; `write` or read.
    let mut pass = |r: &Report<'_>, what: &str, write: bool| -> Result<Duration, TourError> {
        let t = Instant::now();
        let mut pos = 0;
        while pos < size {
            if write {
                fs.write(ino, pos, &buf).ctx(format!("{what} at {pos}"))?;
            } else {
                fs.read(ino, pos, &mut buf)
                    .ctx(format!("{what} at {pos}"))?;
            }
            pos += CHUNK;
            r.progress(what, pos, size);
        }
        Ok(t.elapsed())
    };
    let first = pass(r, "first write", true)?;
    // Then as many passes as fit in about 0.3 s each way, at least one.
    let mut timed = |what: &str, write: bool| -> Result<(u64, Duration), TourError> {
        let (mut n, mut total) = (0, Duration::ZERO);
        while n == 0 || (total < Duration::from_millis(300) && n < 32) {
            total += pass(r, what, write)?;
            n += 1;
        }
        Ok((n, total))
    };
    let (wn, wt) = timed("write", true)?;
    let (rn, rt) = timed("read", false)?;
    r.progress_end();
    let passes = |n: u64| {
        if n == 1 {
            "1 pass".to_owned()
        } else {
            format!("{n} passes")
        }
    };
    r.line(
        "file",
        format!("demo-throughput, {}, in 1 MiB calls", size_text(size)),
    )?;
    r.line(
        "first write",
        format!(
            "{} (allocates blocks; first touch of the memory)",
            gib_per_s(size, first)
        ),
    )?;
    let (w, rd) = (gib_per_s(size * wn, wt), gib_per_s(size * rn, rt));
    r.line("overwrite", format!("{w} ({})", passes(wn)))?;
    r.line("read", format!("{rd} ({})", passes(rn)))?;
    r.figure(
        "write throughput",
        format!(
            "{w}, {} file in 1 MiB writes (first write {})",
            size_text(size),
            gib_per_s(size, first)
        ),
    );
    r.figure(
        "read throughput",
        format!("{rd}, {} file in 1 MiB reads", size_text(size)),
    );
    Ok(format!("write {w}, read {rd} over {}", size_text(size)))
}

/// `found tour-marker written by run 1 at ..., 1 MiB, checksum ok`.
fn marker_text(mk: &Marker) -> String {
    format!(
        "{MARKER} written by run {} at {}, {}, checksum {}",
        mk.run,
        utc_text(mk.written),
        size_text(mk.len),
        if mk.intact { "ok" } else { "MISMATCH" }
    )
}

/// Step 8: the demo files go, a marker is written and made durable, and found again
/// after a remount (memory) or by the next run (image).
fn durability(r: &mut Report<'_>, m: Main) -> Result<String, TourError> {
    let Main { dev, fs, found } = m;
    let demos: Vec<String> = fs
        .list()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with(DEMO_PREFIX))
        .collect();
    for name in &demos {
        fs.unlink(name).ctx(format!("removing {name}"))?;
    }
    r.line(
        "cleaned up",
        format!("removed the {} demo files", demos.len()),
    )?;
    let image = dev.driver().path().map(Path::to_path_buf);
    let mut outcome = String::new();
    let run = match found {
        None => 1,
        Some(Ok(None)) => {
            r.line("earlier run", format!("none: no {MARKER} on this image"))?;
            1
        }
        Some(Ok(Some(mk))) => {
            r.line("earlier run", format!("found {}", marker_text(&mk)))?;
            outcome = format!(
                "found run {}'s marker, checksum {}; ",
                mk.run,
                if mk.intact { "ok" } else { "MISMATCH" }
            );
            if !mk.intact {
                r.failed(format!("{MARKER} of run {} did not survive intact", mk.run))?;
            }
            mk.run + 1
        }
        Some(Err(e)) => {
            r.failed(format!("{e}; writing a new one"))?;
            1
        }
    };
    let mk = write_marker(&fs, run)?;
    r.line(
        "wrote",
        format!(
            "{MARKER} for run {run}: {}, checksum {:016x}; fsync made it durable",
            size_text(mk.len),
            mk.checksum
        ),
    )?;
    fs.unmount().ctx("unmount")?;
    match image {
        Some(path) => {
            r.line(
                "unmounted",
                format!(
                    "run the tour again with --image {} to find it",
                    path.display()
                ),
            )?;
            outcome.push_str(&format!("left run {run}'s marker on the image"));
        }
        None => {
            let fs = TestFs::open(dev.clone()).ctx("mounting again")?;
            let again = read_marker(&fs)?;
            match &again {
                Some(got) if got.intact && got.run == run && got.checksum == mk.checksum => {
                    r.line("remounted", format!("found {}", marker_text(got)))?;
                }
                Some(got) => r.failed(format!("after a remount: {}", marker_text(got)))?,
                None => r.failed(format!("after a remount {MARKER} is gone"))?,
            }
            r.line(
                "",
                "memory is gone when the tour ends: with --image PATH it survives the run",
            )?;
            fs.unmount().ctx("unmount")?;
            outcome.push_str("marker found again after unmount and mount");
        }
    }
    Ok(outcome)
}

/// Step 9: `kill_dax`: waits for readers, then every access answers ENXIO.
fn death(r: &mut Report<'_>, dev: &DaxDevice<MemDevice>) -> Result<String, TourError> {
    dev.kill();
    r.line("killed", "kill waited for readers in their read sections")?;
    match dev.read_lock().direct_access(0, 1, DaxAccessMode::Access) {
        Err(e) => {
            r.line("direct access", format!("now fails: {}", errno_text(&e)))?;
            Ok(format!(
                "direct access fails with {}",
                e.errno_name().unwrap_or("an error")
            ))
        }
        Ok(_) => {
            r.failed("direct access on a killed device succeeded".to_owned())?;
            Ok("direct access still worked".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tour(args: &[&str]) -> (Result<(), TourError>, String) {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let Ok(Some(opts)) = Options::parse(&args) else {
            panic!("bad test arguments {args:?}");
        };
        let mut out = Vec::new();
        let res = run(&opts, &mut out, false);
        (res, String::from_utf8(out).expect("the report is UTF-8"))
    }

    /// What a person should never have to read: Debug output, bare errnos.
    fn assert_readable(report: &str) {
        for bad in [
            "Some(",
            "None",
            "Ok(",
            "Err(",
            "Pfn(",
            "{ ",
            "Flags(",
            "Marks(",
            "VmFault(",
            "Stats {",
            "errno",
            "-> 0 bytes",
        ] {
            assert!(!report.contains(bad), "report contains {bad:?}:\n{report}");
        }
        for (i, w) in report.split_whitespace().enumerate() {
            let neg = w
                .strip_prefix('-')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            assert!(!neg, "word {i} is a negative number {w:?}:\n{report}");
        }
        for name in ["EHWPOISON", "EIO", "ENXIO"] {
            assert!(report.contains(name), "{name} is not named:\n{report}");
        }
        assert!(report.contains("pfn 0x"), "no hex pfn:\n{report}");
        assert!(
            report.contains("sector 146, 1 sector (512 bytes)"),
            "badblocks not described:\n{report}"
        );
        assert!(report.contains("rewrote 4 KiB, poison cleared"), "{report}");
        assert!(report.contains("Summary"), "{report}");
        assert!(report.contains("GiB/s"), "{report}");
    }

    #[test]
    fn memory_tour_reads_well() {
        let (res, report) = tour(&["--size", "32M"]);
        assert!(res.is_ok(), "{}\n{report}", res.unwrap_err());
        assert_readable(&report);
        assert!(
            report.contains("found tour-marker written by run 1"),
            "{report}"
        );
    }

    #[test]
    fn image_tour_finds_the_first_runs_marker() {
        let dir = std::env::temp_dir().join(format!(
            "dax-rs-tour-test-{}-{}",
            std::process::id(),
            now_secs()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("tour.img");
        let img = img.to_str().unwrap();
        let (res, first) = tour(&["--image", img, "--size", "32M"]);
        assert!(res.is_ok(), "{}\n{first}", res.unwrap_err());
        assert_readable(&first);
        assert!(first.contains("created now"), "{first}");
        assert!(first.contains("tour-marker for run 1"), "{first}");
        let (res, second) = tour(&["--image", img]);
        assert!(res.is_ok(), "{}\n{second}", res.unwrap_err());
        assert_readable(&second);
        assert!(second.contains("from an earlier run"), "{second}");
        assert!(
            second.contains("found tour-marker written by run 1 at")
                && second.contains("1 MiB, checksum ok"),
            "{second}"
        );
        assert!(second.contains("tour-marker for run 2"), "{second}");
        let (res, _) = tour(&["--image", img, "--size", "64M"]);
        let e = res.unwrap_err().to_string();
        assert!(e.contains("is 32 MiB, not 64 MiB"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arguments_parse_with_one_line_errors() {
        let parse = |a: &[&str]| Options::parse(&a.iter().map(OsString::from).collect::<Vec<_>>());
        assert!(matches!(parse(&["--help"]), Ok(None)));
        let o = parse(&["--size", "1G", "--image=/x"]).unwrap().unwrap();
        assert_eq!(
            (o.size, o.image),
            (Some(1 << 30), Some(PathBuf::from("/x")))
        );
        // A path need not be UTF-8.
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(b"/tmp/\xff.img".to_vec());
        let o = Options::parse(&["--image".into(), odd.clone()])
            .unwrap()
            .unwrap();
        assert_eq!(o.image, Some(PathBuf::from(odd)));
        assert_eq!(parse_size("8M").ok(), None); // below 16 MiB
        assert_eq!(parse_size("18m").ok(), Some(18 << 20));
        assert_eq!(parse_size("2GiB").ok(), Some(2 << 30));
        assert_eq!(parse_size("16777216").ok(), Some(16 << 20));
        for bad in [
            &["--size", "1X"][..],
            &["--size"],
            &["--frobnicate"],
            &["--size", "99999999999T"],
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad:?}: {e}");
        }
        assert_eq!(size_text(20592), "20.1 KiB");
        assert_eq!(size_text(512), "512 bytes");
        assert_eq!(size_text(3 * MIB), "3 MiB");
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
