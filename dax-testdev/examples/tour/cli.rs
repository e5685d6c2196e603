//! The command line, and errors as one clear line each.

use super::*;

// Options and errors

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// `--image PATH`: a file-backed device.
    pub(crate) image: Option<PathBuf>,
    /// `--size SIZE`.
    pub(crate) size: Option<u64>,
}

impl Options {
    /// The options, or `None` for `--help`. Arguments are `OsString`s so that a path
    /// need not be UTF-8; `--name=value` works as well as `--name value`.
    pub(crate) fn parse(args: &[OsString]) -> Result<Option<Options>, TourError> {
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
pub(crate) fn parse_size(s: &str) -> Result<u64, TourError> {
    let bad = || {
        TourError(format!(
            "--size: '{s}' is not a size (a number with an optional K, M or G suffix, e.g. 1G, below 16 EiB)"
        ))
    };
    let bytes = dax_testdev::parse_size(s).ok_or_else(bad)?;
    if bytes < MIN_SIZE || !bytes.is_multiple_of(K) {
        return Err(TourError(format!(
            "--size: {s} is not a multiple of 4 KiB of at least 16 MiB"
        )));
    }
    Ok(bytes)
}

/// Why the tour stopped: one line for a person.
#[derive(Debug)]
pub(crate) struct TourError(pub(crate) String);

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
pub(crate) trait Context<T> {
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
pub(crate) fn errno_text(e: &DaxError) -> String {
    match e.errno_name() {
        Some(name) => format!("{name} ({e})"),
        None => format!("errno {} ({e})", e.errno()),
    }
}

/// A failed mapped access as the process sees it: the signal, and why.
pub(crate) fn fault_text(f: VmFault) -> String {
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
