//! [`IomapMock`], the scripted filesystem of the dax-iomap conformance tests: its
//! extents are set by the test, every `iomap_begin`/`iomap_end` call is recorded, and
//! failures can be injected; with [`RecordingMapping`], a mapping index that records
//! what it is asked to do. Not a real filesystem (see `dax_testdev::TestFs` for that).

use std::sync::Arc;

use dax_device::{DaxDevice, DaxError};
use dax_iomap::{DaxInode, Iomap, IomapFlags, IomapOps, IomapType, IterFlags, MappingOps};
use dax_testdev::MemDevice;
use parking_lot::Mutex;

pub use crate::{PAGE, pattern};

/// One `iomap_end` call seen by an [`IomapMock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndCall {
    /// Its `pos`.
    pub pos: u64,
    /// Its `length`.
    pub length: u64,
    /// Its `written`.
    pub written: u64,
    /// Its `flags`.
    pub flags: IterFlags,
}

/// One scripted extent: a mapping and an optional source map. Their devices, if
/// any, must be the IomapMock's own (see [`IomapMock::push`]).
#[derive(Clone, Copy)]
pub struct Extent<'a> {
    /// The mapping `iomap_begin` answers.
    pub map: Iomap<'a>,
    /// The source map answered with it (copy on write).
    pub src: Option<Iomap<'a>>,
}

/// An extent as stored: the maps without their device borrow (a map borrows the
/// filesystem that answers it, so the filesystem cannot hold one) and whether each
/// had the IomapMock's device, reattached by `iomap_begin`.
#[derive(Clone, Copy)]
pub struct StoredExtent {
    map: Iomap<'static>,
    map_dev: bool,
    src: Option<(Iomap<'static>, bool)>,
}

/// `m` without its device, and whether it had one (which must be `dev`).
fn strip(m: Iomap<'_>, dev: &DaxDevice) -> (Iomap<'static>, bool) {
    let had = m.dax_dev.is_some_and(|d| {
        assert!(
            std::ptr::addr_eq(d, dev),
            "IomapMock extents use the IomapMock's device"
        );
        true
    });
    (Iomap { dax_dev: None, ..m }, had)
}

/// A scripted filesystem (`IomapOps` + `DaxInode`) over a [`MemDevice`]: the test sets
/// its extents and size, and reads back every `iomap_begin`/`iomap_end` call.
pub struct IomapMock {
    /// The device every mapped extent is on.
    pub dev: Arc<DaxDevice<MemDevice>>,
    /// The file size (`i_size`).
    pub size: Mutex<u64>,
    /// The extents, sorted by file offset.
    pub extents: Mutex<Vec<StoredExtent>>,
    /// Every `iomap_begin` call as `(pos, length, flags)`, oldest first.
    pub begins: Mutex<Vec<(u64, u64, IterFlags)>>,
    /// Every `iomap_end` call, oldest first.
    pub ends: Mutex<Vec<EndCall>>,
    /// Fail the begin call number N (0-based) with this error.
    pub fail_begin: Mutex<Option<(usize, DaxError)>>,
    /// Every iomap_end answers this.
    pub end_result: Mutex<Result<(), DaxError>>,
    /// The mapping `DaxInode::mapping` answers (`None`: no mapping).
    pub mapping: Option<RecordingMapping>,
}

impl IomapMock {
    /// A file of `size` bytes with no extents (all hole) and no mapping, on a new
    /// device of `dev_pages` pages.
    pub fn new(dev_pages: u64, size: u64) -> Self {
        let dev = MemDevice::builder().size(dev_pages * PAGE).build().unwrap();
        IomapMock {
            dev,
            size: Mutex::new(size),
            extents: Mutex::new(Vec::new()),
            begins: Mutex::new(Vec::new()),
            ends: Mutex::new(Vec::new()),
            fail_begin: Mutex::new(None),
            end_result: Mutex::new(Ok(())),
            mapping: None,
        }
    }

    /// A file of two pages, each its own MAPPED extent: file page 0 at device page 10,
    /// file page 1 at device page 11.
    pub fn two_single_page_extents(dev_pages: u64) -> Self {
        let fs = IomapMock::new(dev_pages, 2 * PAGE);
        fs.map(IomapType::Mapped, 0, PAGE, 10 * PAGE, IomapFlags::empty());
        fs.map(
            IomapType::Mapped,
            PAGE,
            PAGE,
            11 * PAGE,
            IomapFlags::empty(),
        );
        fs
    }

    /// This filesystem with a [`RecordingMapping`].
    pub fn with_mapping(mut self) -> Self {
        self.mapping = Some(RecordingMapping::default());
        self
    }

    /// The device, as the `&DaxDevice` an [`Iomap`] holds.
    pub fn dyn_dev(&self) -> &DaxDevice {
        &*self.dev
    }

    /// Adds a mapping of file `[offset, offset+len)` to device byte `addr`.
    pub fn map(&self, kind: IomapType, offset: u64, len: u64, addr: u64, flags: IomapFlags) {
        let map = Iomap {
            addr,
            offset,
            length: len,
            kind,
            flags,
            dax_dev: Some(self.dyn_dev()),
            ..Iomap::default()
        };
        self.push(Extent { map, src: None });
    }

    /// Adds a SHARED destination at `addr` with the old data at `src_addr` (or no
    /// source map when `src_addr` is None: the old data was a hole).
    pub fn cow(&self, offset: u64, len: u64, addr: u64, src: Option<(IomapType, u64)>) {
        let map = Iomap {
            addr,
            offset,
            length: len,
            kind: IomapType::Mapped,
            flags: IomapFlags::SHARED,
            dax_dev: Some(self.dyn_dev()),
            ..Iomap::default()
        };
        let src = src.map(|(kind, a)| Iomap {
            addr: a,
            offset,
            length: len,
            kind,
            dax_dev: Some(self.dyn_dev()),
            ..Iomap::default()
        });
        self.push(Extent { map, src });
    }

    /// Adds an extent; its maps' devices, if any, must be [`Self::dyn_dev`].
    pub fn push(&self, e: Extent<'_>) {
        let (map, map_dev) = strip(e.map, self.dyn_dev());
        let src = e.src.map(|s| strip(s, self.dyn_dev()));
        let mut v = self.extents.lock();
        v.push(StoredExtent { map, map_dev, src });
        v.sort_by_key(|e| e.map.offset);
    }

    /// Writes `data` at device byte `addr` (bypassing poison).
    pub fn poke(&self, addr: u64, data: &[u8]) {
        self.dev.driver().poke(addr, data).unwrap();
    }

    /// The `len` device bytes at `addr` (bypassing poison).
    pub fn peek(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.dev.driver().peek(addr, &mut v).unwrap();
        v
    }

    /// Sets the file size.
    pub fn set_size(&self, size: u64) {
        *self.size.lock() = size;
    }
}

impl IomapOps for IomapMock {
    fn iomap_begin(
        &self,
        pos: u64,
        length: u64,
        flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        let n = {
            let mut b = self.begins.lock();
            b.push((pos, length, flags));
            b.len() - 1
        };
        if let Some((at, err)) = self.fail_begin.lock().clone()
            && at == n
        {
            return Err(err);
        }
        let ext = self.extents.lock();
        if let Some(e) = ext
            .iter()
            .find(|e| e.map.offset <= pos && pos < e.map.end())
        {
            let dev = |(m, has_dev): (Iomap<'static>, bool)| Iomap {
                dax_dev: has_dev.then(|| self.dyn_dev()),
                ..m
            };
            return Ok((dev((e.map, e.map_dev)), e.src.map(dev)));
        }
        // A hole up to the next extent (or a long way).
        let next = ext
            .iter()
            .map(|e| e.map.offset)
            .find(|&o| o > pos)
            .unwrap_or(pos + (1 << 40));
        Ok((Iomap::hole(pos, next - pos), None))
    }

    fn iomap_end(
        &self,
        pos: u64,
        length: u64,
        written: u64,
        flags: IterFlags,
        _iomap: &Iomap<'_>,
    ) -> Result<(), DaxError> {
        self.ends.lock().push(EndCall {
            pos,
            length,
            written,
            flags,
        });
        self.end_result.lock().clone()
    }
}

impl DaxInode for IomapMock {
    fn i_size(&self) -> u64 {
        *self.size.lock()
    }

    fn mapping(&self) -> Option<&dyn MappingOps> {
        self.mapping.as_ref().map(|m| m as &dyn MappingOps)
    }
}

/// A mapping index that only records what it was asked to do.
#[derive(Default)]
pub struct RecordingMapping {
    /// Every call, as text (`clear_dirty 0..=3`, `invalidate ...`, `writeback ...`).
    pub calls: Mutex<Vec<String>>,
    /// Index entries as (first page, pages), for seek probes.
    pub entries: Mutex<Vec<(u64, u64)>>,
}

impl MappingOps for RecordingMapping {
    fn clear_dirty_range(&self, pages: std::ops::RangeInclusive<u64>) {
        let (first, last) = pages.into_inner();
        self.calls
            .lock()
            .push(format!("clear_dirty {first}..={last}"));
    }

    fn invalidate_range(&self, pages: std::ops::RangeInclusive<u64>) -> Result<(), DaxError> {
        let (first, last) = pages.into_inner();
        self.calls
            .lock()
            .push(format!("invalidate {first}..={last}"));
        Ok(())
    }

    fn write_and_wait_range(&self, bytes: std::ops::RangeInclusive<u64>) -> Result<(), DaxError> {
        let (start, end) = bytes.into_inner();
        self.calls.lock().push(format!("writeback {start}..={end}"));
        Ok(())
    }

    fn next_entry(&self, pages: std::ops::RangeInclusive<u64>) -> Option<(u64, u64)> {
        let (first, last) = pages.into_inner();
        self.entries
            .lock()
            .iter()
            .copied()
            .filter(|&(s, n)| s <= last && s + n > first)
            .min()
    }
}
