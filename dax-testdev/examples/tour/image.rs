//! The main device (memory or an image file), its filesystem, and the marker a run leaves on an image.

use super::*;

// The main device and its filesystem

/// The marker a run leaves on an image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Marker {
    pub(crate) run: u64,
    pub(crate) written: u64,
    pub(crate) len: u64,
    pub(crate) checksum: u64,
    /// Whether the payload's checksum matches.
    pub(crate) intact: bool,
}

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `len` bytes that depend on `seed` (xorshift64*).
pub(crate) fn payload(seed: u64, len: u64) -> Vec<u8> {
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
pub(crate) fn write_marker(fs: &TestFs, run: u64) -> Result<Marker, TourError> {
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
pub(crate) fn read_marker(fs: &TestFs) -> Result<Option<Marker>, TourError> {
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
pub(crate) struct Main {
    pub(crate) dev: Arc<DaxDevice<MemDevice>>,
    pub(crate) fs: TestFs,
    /// What the image held when it was opened (`None`: new or memory).
    pub(crate) found: Option<Result<Option<Marker>, TourError>>,
}

pub(crate) fn open_main(opts: &Options, r: &mut Report<'_>) -> Result<Main, TourError> {
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
