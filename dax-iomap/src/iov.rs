//! [`IovIter`]: the caller's buffers for a read or write (`struct iov_iter`).
//!
//! A read fills destination buffers, a write drains source buffers, possibly several
//! (vectored I/O). Device memory is reached only through
//! [`DirectAccess`](dax_device::DirectAccess)'s copies.
//!
//! A user buffer in the kernel can fault part-way; [`IovIter::fault_after`] models
//! that for tests (the copy stops there, as `copy_to_user` comes up short).

use std::io::{IoSlice, IoSliceMut};

use dax_device::{DaxOperations, DirectAccess};

/// Destination buffers of a read: one slice, or the caller's `IoSliceMut`s (borrowed,
/// never copied into an allocation).
enum ReadBufs<'a> {
    One(&'a mut [u8]),
    Many(&'a mut [IoSliceMut<'a>]),
}

/// Source buffers of a write, as [`ReadBufs`].
enum WriteBufs<'a> {
    One(&'a [u8]),
    Many(&'a [IoSlice<'a>]),
}

impl ReadBufs<'_> {
    fn seg(&mut self, i: usize) -> Option<&mut [u8]> {
        match self {
            ReadBufs::One(b) => (i == 0).then_some(&mut **b),
            ReadBufs::Many(v) => v.get_mut(i).map(|b| &mut **b),
        }
    }

    fn seg_len(&self, i: usize) -> Option<usize> {
        match self {
            ReadBufs::One(b) => (i == 0).then_some(b.len()),
            ReadBufs::Many(v) => v.get(i).map(|b| b.len()),
        }
    }

    fn total(&self) -> usize {
        match self {
            ReadBufs::One(b) => b.len(),
            ReadBufs::Many(v) => v.iter().map(|b| b.len()).sum(),
        }
    }
}

impl WriteBufs<'_> {
    fn seg(&self, i: usize) -> Option<&[u8]> {
        match self {
            WriteBufs::One(b) => (i == 0).then_some(*b),
            WriteBufs::Many(v) => v.get(i).map(|b| &**b),
        }
    }

    fn total(&self) -> usize {
        match self {
            WriteBufs::One(b) => b.len(),
            WriteBufs::Many(v) => v.iter().map(|b| b.len()).sum(),
        }
    }
}

enum Bufs<'a> {
    /// Destination buffers of a read.
    Read(ReadBufs<'a>),
    /// Source buffers of a write.
    Write(WriteBufs<'a>),
}

/// The caller's buffers and the position in them (`struct iov_iter`). It borrows the
/// buffers and allocates nothing (a recovery write that spans several source
/// buffers gathers them into one, the driver's `recovery_write` needing its data in
/// one piece).
///
/// ```
/// use std::io::{IoSlice, IoSliceMut};
/// use dax_iomap::IovIter;
///
/// let (mut a, mut b) = ([0u8; 3], [0u8; 5]);
/// let mut bufs = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)];
/// let it = IovIter::read(&mut bufs);
/// assert_eq!((it.count(), it.is_write()), (8, false));
/// let srcs = [IoSlice::new(b"ab"), IoSlice::new(b"cde")];
/// assert_eq!(IovIter::write(&srcs).count(), 5);
/// ```
pub struct IovIter<'a> {
    bufs: Bufs<'a>,
    seg: usize,
    seg_off: usize,
    count: usize,
    accessible: usize,
}

impl std::fmt::Debug for IovIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IovIter")
            .field("write", &self.is_write())
            .field("count", &self.count)
            .field("accessible", &self.accessible)
            .finish()
    }
}

impl<'a> IovIter<'a> {
    /// Destination buffers for a read (`ITER_DEST` over an iovec, as `readv`).
    pub fn read(bufs: &'a mut [IoSliceMut<'a>]) -> Self {
        Self::new(Bufs::Read(ReadBufs::Many(bufs)))
    }

    /// One destination buffer for a read (`ITER_UBUF`).
    pub fn read_one(buf: &'a mut [u8]) -> Self {
        Self::new(Bufs::Read(ReadBufs::One(buf)))
    }

    /// Source buffers for a write (`ITER_SOURCE` over an iovec, as `writev`).
    pub fn write(bufs: &'a [IoSlice<'a>]) -> Self {
        Self::new(Bufs::Write(WriteBufs::Many(bufs)))
    }

    /// One source buffer for a write (`ITER_UBUF`).
    pub fn write_one(buf: &'a [u8]) -> Self {
        Self::new(Bufs::Write(WriteBufs::One(buf)))
    }

    fn new(bufs: Bufs<'a>) -> Self {
        let count = match &bufs {
            Bufs::Read(b) => b.total(),
            Bufs::Write(b) => b.total(),
        };
        IovIter {
            bufs,
            seg: 0,
            seg_off: 0,
            count,
            accessible: count,
        }
    }

    /// Makes the buffers "fault" after `n` more bytes: copies stop there, as a user
    /// buffer with an unmapped page does.
    pub fn fault_after(mut self, n: usize) -> Self {
        self.accessible = n.min(self.count);
        self
    }

    /// Whether this is a write (the buffers are the source).
    pub fn is_write(&self) -> bool {
        matches!(self.bufs, Bufs::Write(_))
    }

    /// Bytes left (`iov_iter_count`).
    pub fn count(&self) -> usize {
        self.count
    }

    fn consume(&mut self, n: usize) {
        self.count -= n;
        self.accessible -= n;
        self.seg_off += n;
        let seg_len = |s: &Self, i: usize| match &s.bufs {
            Bufs::Read(b) => b.seg_len(i),
            Bufs::Write(b) => b.seg(i).map(<[u8]>::len),
        };
        while let Some(l) = seg_len(self, self.seg) {
            if self.seg_off < l {
                break;
            }
            self.seg += 1;
            self.seg_off = 0;
        }
    }

    /// Copies up to `n` device bytes at `offset` of `da` into the destination
    /// buffers (`dax_copy_to_iter`); returns bytes copied (short at poison, at the end
    /// of `da`, or where the buffer faults).
    pub fn copy_to_iter<D: DaxOperations + ?Sized>(
        &mut self,
        da: &DirectAccess<'_, D>,
        offset: usize,
        n: usize,
    ) -> usize {
        self.fill_dest(n, |done, buf| da.copy_to(offset + done, buf))
    }

    /// Copies up to `n` bytes from the source buffers to device bytes at `offset` of
    /// `da` (`dax_copy_from_iter`), or through the driver's recovery write when
    /// `recovery` is set (`dax_recovery_write`); returns bytes copied.
    pub fn copy_from_iter<D: DaxOperations + ?Sized>(
        &mut self,
        da: &DirectAccess<'_, D>,
        offset: usize,
        n: usize,
        recovery: bool,
    ) -> usize {
        let want = n.min(self.accessible);
        if recovery {
            // The driver clears poison for the whole range at once, so it needs the data
            // in one piece: the current buffer when it holds it all, else a copy.
            let got = match &self.bufs {
                Bufs::Write(b) => match b.seg(self.seg) {
                    Some(buf) if buf.len() - self.seg_off >= want => {
                        da.recovery_write(offset, &buf[self.seg_off..self.seg_off + want])
                    }
                    _ => da.recovery_write(offset, &self.gather(want)),
                },
                Bufs::Read(_) => 0,
            };
            self.consume(got);
            return got;
        }
        let mut done = 0;
        let mut left = want;
        while left > 0 {
            let (seg, off) = (self.seg, self.seg_off);
            let Bufs::Write(bufs) = &self.bufs else {
                return done;
            };
            let Some(buf) = bufs.seg(seg) else {
                break;
            };
            let piece = (buf.len() - off).min(left);
            let got = da.copy_from(offset + done, &buf[off..off + piece]);
            self.consume(got);
            done += got;
            left -= got;
            if got < piece {
                break;
            }
        }
        done
    }

    /// The next `n` source bytes as one buffer (without consuming them).
    fn gather(&self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        if let Bufs::Write(bufs) = &self.bufs {
            let (mut seg, mut off) = (self.seg, self.seg_off);
            while out.len() < n {
                let Some(buf) = bufs.seg(seg) else {
                    break;
                };
                let piece = (buf.len() - off).min(n - out.len());
                out.extend_from_slice(&buf[off..off + piece]);
                seg += 1;
                off = 0;
            }
        }
        out
    }

    /// Writes `n` zero bytes into the destination buffers (`iov_iter_zero`); returns
    /// bytes zeroed (short where the buffer faults).
    pub fn zero(&mut self, n: usize) -> usize {
        self.fill_dest(n, |_, buf| {
            buf.fill(0);
            buf.len()
        })
    }

    /// Walks up to `n` accessible destination bytes segment by segment, letting `fill`
    /// write each piece (given the bytes done so far) and report how many it wrote;
    /// stops at the first short piece. Returns the bytes written.
    fn fill_dest(&mut self, n: usize, mut fill: impl FnMut(usize, &mut [u8]) -> usize) -> usize {
        let mut done = 0;
        let mut want = n.min(self.accessible);
        while want > 0 {
            let (seg, off) = (self.seg, self.seg_off);
            let Bufs::Read(bufs) = &mut self.bufs else {
                return done;
            };
            let Some(buf) = bufs.seg(seg) else {
                break;
            };
            let piece = (buf.len() - off).min(want);
            let got = fill(done, &mut buf[off..off + piece]).min(piece);
            self.consume(got);
            done += got;
            want -= got;
            if got < piece {
                break;
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_walks_segments_and_stops_at_the_fault() {
        let (mut a, mut b) = ([1u8; 3], [1u8; 5]);
        let mut bufs = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)];
        let mut it = IovIter::read(&mut bufs).fault_after(6);
        assert_eq!(it.count(), 8);
        assert_eq!(it.zero(10), 6);
        assert_eq!(it.count(), 2);
        assert_eq!(it.zero(1), 0);
        assert_eq!((a, b), ([0; 3], [0, 0, 0, 1, 1]));
    }

    #[test]
    fn gather_spans_segments() {
        let srcs = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")];
        let it = IovIter::write(&srcs);
        assert!(it.is_write());
        assert_eq!(it.gather(4), b"abcd");
        assert_eq!(it.gather(10), b"abcde");
    }
}
