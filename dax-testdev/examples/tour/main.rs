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

mod cli;
mod device_steps;
mod fs_steps;
mod image;
mod machine;
mod report;

use cli::*;
use device_steps::*;
use fs_steps::*;
use image::*;
use machine::*;
use report::*;

pub(crate) const K: u64 = 4096;
pub(crate) const MIB: u64 = 1 << 20;
/// The main device's size without `--size`.
pub(crate) const DEFAULT_SIZE: u64 = 256 * MIB;
/// The smallest main device the tour's files fit on.
pub(crate) const MIN_SIZE: u64 = 16 * MIB;
/// The marker file that shows durability: it outlives the run.
pub(crate) const MARKER: &str = "tour-marker";
/// The marker's payload length.
pub(crate) const MARKER_LEN: u64 = MIB;
/// Files the tour makes and removes again start with this.
pub(crate) const DEMO_PREFIX: &str = "demo-";
/// The width of the label column.
pub(crate) const LABEL: usize = 16;

pub(crate) const USAGE: &str = "\
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
