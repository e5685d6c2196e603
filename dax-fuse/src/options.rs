//! The command line of `daxfs-fuse`: [`Options::parse`] and [`USAGE`].
//!
//! Hand-parsed, so that every mistake is one line (`daxfs-fuse: --size: ...`).

use std::ffi::OsString;
use std::path::PathBuf;

/// The help text (`--help`).
pub const USAGE: &str = "\
Usage: daxfs-fuse [OPTIONS] MOUNTPOINT

Serves TestFs, the dax-rs example filesystem, on a DAX device through FUSE.
Reads and writes go through dax_iomap_rw to the device memory. Ctrl-C or
SIGTERM unmounts: the filesystem is checkpointed and the mount goes away.

Device (one of):
      --size SIZE        memory-backed (memfd) device of SIZE bytes (default 1G);
                         suffixes K, M, G, T (powers of 1024)
      --image PATH       file-backed device: a new or empty file is sized to
                         --size (default 1G) and formatted; an existing one is
                         mounted from its last checkpoint
      --hugetlb          memory from 2 MiB hugetlb pages (vm.nr_hugepages)
      --thp              memory from shmem transparent huge pages
                         (shmem_enabled=advise)

FUSE:
      --cache MODE       direct (default): every read and write reaches
                         dax_iomap_rw, no kernel page cache (as DAX);
                         page: the kernel caches reads, writes go through;
                         writeback: the kernel also caches writes
      --threads N        FUSE worker threads (default 2)
      --allow-other      let other users use the mount (allow_other)
  -h, --help             this text
";

/// How the kernel caches file data on the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// `FOPEN_DIRECT_IO`: each `read(2)`/`write(2)` becomes a FUSE READ/WRITE served
    /// by `dax_iomap_rw`; no page cache, as with DAX. `mmap` is allowed
    /// (`FUSE_DIRECT_IO_ALLOW_MMAP`) and goes through the page cache.
    Direct,
    /// `FOPEN_KEEP_CACHE`: reads are cached by the kernel, writes go through to the
    /// server at once (write-through).
    Page,
    /// `FUSE_WRITEBACK_CACHE`: the kernel caches writes too and sends them later.
    Writeback,
}

/// Where the device memory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memory {
    /// A memfd (`memfd_create`), 4 KiB pages.
    Memfd,
    /// A shmem memfd with transparent huge pages (`MADV_HUGEPAGE`).
    Thp,
    /// A hugetlb memfd (`MFD_HUGETLB | MFD_HUGE_2MB`).
    Hugetlb,
    /// A regular file (persistent).
    Image(PathBuf),
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// Where the device memory comes from.
    pub memory: Memory,
    /// `--size`, when given.
    pub size: Option<u64>,
    /// `--cache`.
    pub cache: CacheMode,
    /// `--threads`.
    pub threads: usize,
    /// `--allow-other`.
    pub allow_other: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print [`USAGE`] and exit 0.
    Help,
    /// Mount.
    Mount(Options),
}

/// The default device size: 1 GiB.
pub const DEFAULT_SIZE: u64 = 1 << 30;

/// Parses a size: digits with an optional K, M, G or T suffix (powers of 1024; `KiB`,
/// `MB` ... are accepted as the same).
pub fn parse_size(s: &str) -> Result<u64, String> {
    fsdax::testing::parse_size(s)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?} is not a size between 1 byte and 16 EiB (e.g. 1G, 512M)"))
}

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
        let mut args = args.into_iter();
        let mut mountpoint = None;
        let mut image = None;
        let mut size = None;
        let (mut hugetlb, mut thp) = (false, false);
        let mut cache = CacheMode::Direct;
        let mut threads = 2;
        let mut allow_other = false;
        while let Some(arg) = args.next() {
            let Some(a) = arg.to_str() else {
                if mountpoint.replace(PathBuf::from(arg)).is_some() {
                    return Err("more than one MOUNTPOINT given".into());
                }
                continue;
            };
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (a.to_owned(), None),
            };
            let mut value = |what: &str| -> Result<String, String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => args
                        .next()
                        .and_then(|v| v.into_string().ok())
                        .ok_or_else(|| format!("{what} needs a value")),
                }
            };
            match name.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--size" => {
                    size = Some(parse_size(&value("--size")?).map_err(|e| format!("--size: {e}"))?)
                }
                "--image" => image = Some(PathBuf::from(value("--image")?)),
                "--hugetlb" => hugetlb = true,
                "--thp" => thp = true,
                "--cache" => {
                    cache = match value("--cache")?.as_str() {
                        "direct" => CacheMode::Direct,
                        "page" => CacheMode::Page,
                        "writeback" => CacheMode::Writeback,
                        other => {
                            return Err(format!(
                                "--cache: {other:?} is not one of direct, page, writeback"
                            ));
                        }
                    }
                }
                "--threads" => {
                    let v = value("--threads")?;
                    threads = v
                        .parse()
                        .ok()
                        .filter(|&n| (1..=64).contains(&n))
                        .ok_or_else(|| format!("--threads: {v:?} is not a number from 1 to 64"))?;
                }
                "--allow-other" => allow_other = true,
                s if s.starts_with('-') && s.len() > 1 => {
                    return Err(format!("unknown option {s} (see --help)"));
                }
                _ => {
                    if mountpoint.replace(PathBuf::from(a)).is_some() {
                        return Err("more than one MOUNTPOINT given".into());
                    }
                }
            }
        }
        let mountpoint = mountpoint.ok_or("no MOUNTPOINT given (see --help)")?;
        let memory = match (image, hugetlb, thp) {
            (None, false, false) => Memory::Memfd,
            (None, true, false) => Memory::Hugetlb,
            (None, false, true) => Memory::Thp,
            (Some(p), false, false) => Memory::Image(p),
            _ => return Err("choose one of --image, --hugetlb and --thp".into()),
        };
        Ok(Command::Mount(Options {
            mountpoint,
            memory,
            size,
            cache,
            threads,
            allow_other,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Command, String> {
        Options::parse(s.split_whitespace().map(OsString::from))
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1Q").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn command_lines() {
        let Ok(Command::Mount(o)) = parse("--image /tmp/i --size=64M --cache page /mnt") else {
            panic!()
        };
        assert_eq!(o.memory, Memory::Image("/tmp/i".into()));
        assert_eq!((o.size, o.cache), (Some(64 << 20), CacheMode::Page));
        assert_eq!(parse("-h /mnt"), Ok(Command::Help));
        assert!(parse("--hugetlb --thp /mnt").is_err());
        assert!(parse("--size").is_err());
        assert!(parse("/a /b").is_err());
        assert!(parse("--bogus /a").is_err());
        assert!(parse("").is_err());
    }
}
