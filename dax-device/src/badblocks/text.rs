//! The sysfs text format: `badblocks_show` output and `badblocks_store` parsing.

use super::table::{acked, len, start};

/// One page: the size of the buffer sysfs hands to `badblocks_show`.
pub(super) const PAGE_SIZE: usize = 4096;

/// `x << shift` on a 64-bit unsigned value, bits shifted out are lost; a shift of
/// 64 or more gives 0 (where C leaves it undefined).
fn shl64(x: u64, shift: u32) -> u64 {
    x.checked_shl(shift).unwrap_or(0)
}

/// Same on the 32-bit `unsigned int` the kernel prints the length as.
fn shl32(x: u32, shift: u32) -> u32 {
    x.checked_shl(shift).unwrap_or(0)
}

/// Formats `records` the way `badblocks_show` fills its page. Returns the text and
/// whether nothing was printed.
pub(super) fn show(records: &[u64], shift: u32, unack: bool) -> String {
    let mut out = String::new();
    // `produced` is the kernel's running total of would-be output: each bounded
    // print adds its full line length even when it was cut short, and generation
    // stops once the total reaches one page.
    let mut produced = 0usize;
    for &r in records {
        if produced >= PAGE_SIZE {
            break;
        }
        if unack && acked(r) {
            continue;
        }
        // len() <= 512, so the cast is exact.
        let line = format!(
            "{} {}\n",
            shl64(start(r), shift),
            shl32(len(r) as u32, shift)
        );
        // The bounded print keeps one byte of the page for its terminating NUL.
        let room = PAGE_SIZE - 1 - produced.min(PAGE_SIZE - 1);
        out.push_str(&line[..line.len().min(room)]);
        produced += line.len();
    }
    out
}

/// The kernel's `isspace` (its ctype table also counts 0xA0, no-break space).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn at(&self, k: usize) -> Option<u8> {
        self.text.get(self.pos + k).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// Decimal digits as the kernel's `simple_strntoull` reads them: as many as
    /// there are, the value wrapping modulo 2^64 on overflow.
    fn digits(&mut self) -> u64 {
        let mut v = 0u64;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            v = v.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.pos += 1;
        }
        v
    }
}

/// Why a store line was refused (both map to `EINVAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ParseError {
    /// Fewer than two numbers, or a character other than a newline right after the
    /// length.
    Syntax,
    /// The length parsed to zero or a negative `int`.
    Length,
}

/// Parses `"<u64 start> <int length>"` with an optional single `'\n'` right after
/// the length, exactly as `sscanf(page, "%llu %d%c", ...)` does in the kernel: the
/// text ends at the first NUL byte, whitespace (kernel `isspace`) may precede each
/// number and separate them, the start takes no sign, the length takes an optional
/// `-`, digits wrap on overflow and the length keeps the low 32 bits of its value
/// (as the store into an `int` does). Bytes after the newline are ignored.
pub(super) fn parse_store(text: &[u8]) -> Result<(u64, i32), ParseError> {
    let text = match text.iter().position(|&b| b == 0) {
        Some(nul) => &text[..nul],
        None => text,
    };
    let mut c = Cursor { text, pos: 0 };

    // %llu
    c.skip_spaces();
    if !c.peek().is_some_and(|b| b.is_ascii_digit()) {
        return Err(ParseError::Syntax);
    }
    let sector = c.digits();

    // ' ' in the format: any amount of whitespace, including none.
    c.skip_spaces();

    // %d
    let negative = c.peek() == Some(b'-');
    let first_digit = if negative { c.at(1) } else { c.peek() };
    if !first_digit.is_some_and(|b| b.is_ascii_digit()) {
        return Err(ParseError::Syntax);
    }
    if negative {
        c.pos += 1;
    }
    let magnitude = c.digits();
    let value = if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    // Truncation to the low 32 bits is the point: the kernel stores into an int.
    let length = value as u32 as i32;

    // %c: absent is fine; present must be a newline.
    if c.peek().is_some_and(|ch| ch != b'\n') {
        return Err(ParseError::Syntax);
    }
    if length <= 0 {
        return Err(ParseError::Length);
    }
    Ok((sector, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_kernel_forms() {
        assert_eq!(parse_store(b"10 8"), Ok((10, 8)));
        assert_eq!(parse_store(b"10 8\n"), Ok((10, 8)));
        assert_eq!(parse_store(b"  10\t\n 8\njunk"), Ok((10, 8)));
        assert_eq!(parse_store(b"10 8\0junk"), Ok((10, 8)));
        assert_eq!(parse_store(b"10 4294967297"), Ok((10, 1)));
        assert_eq!(parse_store(b"10 -4294967295"), Ok((10, 1)));
        assert_eq!(parse_store(b"18446744073709551626 3"), Ok((10, 3)));
        assert_eq!(parse_store(b"\xa010\xa03"), Ok((10, 3)));
    }

    #[test]
    fn parse_rejects() {
        for bad in [
            &b"10 8 "[..],
            b"10 8x",
            b"x",
            b"10\n",
            b"10",
            b"",
            b"+10 8",
            b"10 +8",
            b"-10 8",
            b"10 -",
            b"10 --8",
            b"10\x008",
        ] {
            assert_eq!(parse_store(bad), Err(ParseError::Syntax), "{bad:?}");
        }
        for bad in [&b"10 0"[..], b"10 -3", b"10 2147483648", b"10 4294967296"] {
            assert_eq!(parse_store(bad), Err(ParseError::Length), "{bad:?}");
        }
    }

    #[test]
    fn show_caps_at_one_page_minus_nul() {
        // 4-byte lines "N 1\n" for N < 10: 1024 lines would be exactly a page.
        let recs: Vec<u64> = (0..512u64)
            .map(|i| super::super::table::make(i % 10, 1, true))
            .collect();
        let text = show(&recs, 0, false);
        assert_eq!(text.len(), 512 * 4);
        let long: Vec<u64> = (0..512u64)
            .map(|i| super::super::table::make(10_000_000_000 + i * 2, 512, true))
            .collect();
        let text = show(&long, 0, false);
        assert_eq!(text.len(), PAGE_SIZE - 1);
    }
}
