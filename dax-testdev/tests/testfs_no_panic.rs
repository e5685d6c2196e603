//! Caller input at the edges of the number range never panics TestFs: every call with
//! boundary offsets and lengths (0, 1, page edges, i64::MAX, u64::MAX, ...) returns a
//! result, errors carry the errnos a caller can expect, and the filesystem stays
//! usable afterwards.

use dax_device::DaxDevice;
use dax_iomap::Fiemap;
use dax_testdev::{FallocMode, MemDevice, TestFs};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn edge() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(4095),
        Just(4096),
        Just(4097),
        Just(1 << 20),
        Just((1u64 << 31) - 1),
        Just(i64::MAX as u64 - 4096),
        Just(i64::MAX as u64 - 1),
        Just(i64::MAX as u64),
        Just(i64::MAX as u64 + 1),
        Just(u64::MAX - 4096),
        Just(u64::MAX),
        0u64..(2 << 20),
    ]
}

const EXPECTED: [i32; 9] = [
    libc::EINVAL,
    libc::EFBIG,
    libc::ENOSPC,
    libc::EOPNOTSUPP,
    libc::ENXIO,
    libc::EBADE,
    libc::ENOENT,
    libc::EOVERFLOW,
    libc::EISDIR,
];

fn check<T>(what: &str, r: Result<T, dax_device::DaxError>) {
    if let Err(e) = r {
        assert!(
            EXPECTED.contains(&e.errno()),
            "{what}: unexpected {e:?} (errno {})",
            e.errno()
        );
    }
}

proptest! {
    #![proptest_config(dax_testkit::miri::proptest_config(
        Config { cases: 300, failure_persistence: None, ..Config::default() }
    ))]

    #[test]
    fn testfs_calls_at_number_edges_never_panic(
        op in 0u8..9, a in edge(), b in edge(), mode in 0u32..0x80,
    ) {
        let dev: std::sync::Arc<DaxDevice> = MemDevice::builder().size(8 << 20).build().unwrap();
        let fs = TestFs::mkfs(dev).unwrap();
        let f = fs.create("f").unwrap();
        let g = fs.create("g").unwrap();
        fs.write(f, 0, &[7u8; 10000]).unwrap();
        let len = (b % (64 << 10)) as usize;
        match op {
            0 => check("write", fs.write(f, a, &vec![1u8; len])),
            1 => check("read", fs.read(f, a, &mut vec![0u8; len])),
            2 => check("truncate", fs.truncate(f, a)),
            3 => check("fallocate", fs.fallocate(f, FallocMode::from_bits_retain(mode), a, b)),
            4 => check("reflink", fs.reflink(f, a, g, b, a ^ b)),
            5 => check("dedupe", fs.dedupe(f, a, g, b, a.wrapping_add(b))),
            6 => {
                let mut fm = Fiemap { extents_max: 4, ..Fiemap::default() };
                check("fiemap", fs.fiemap(f, &mut fm, a, b));
            }
            7 => check("seek_hole", fs.seek_hole(f, a as i64)),
            _ => check("seek_data", fs.seek_data(f, b as i64)),
        }
        // Still usable. A fallocate that ran out of space may keep what it allocated
        // (as Linux's does), so give the space back first.
        fs.truncate(f, 0).unwrap();
        fs.write(g, 0, b"ok").unwrap();
        let mut buf = [0u8; 2];
        fs.read(g, 0, &mut buf).unwrap();
        prop_assert_eq!(&buf, b"ok");
        fs.fsync(f).unwrap();
    }
}
