//! `DAX_RS_COPY_IMPL` / `DAX_RS_FLUSH_IMPL` parsing and the selection they drive,
//! tested through the pure functions detection uses (the process environment is never
//! mutated: tests run on several threads).

use dax_device::persist::{self, CopyImpl, FlushImpl};

#[test]
fn copy_impl_names_parse_case_insensitively() {
    for c in CopyImpl::ALL {
        assert_eq!(c.name().parse::<CopyImpl>(), Ok(c));
        assert_eq!(c.name().to_uppercase().parse::<CopyImpl>(), Ok(c));
        assert_eq!(format!("  {c}\n").parse::<CopyImpl>(), Ok(c));
    }
    assert_eq!("AVX512".parse::<CopyImpl>(), Ok(CopyImpl::Avx512));
    assert_eq!("Portable".parse::<CopyImpl>(), Ok(CopyImpl::Portable));
}

#[test]
fn flush_impl_names_parse_case_insensitively() {
    for f in FlushImpl::ALL {
        assert_eq!(f.name().parse::<FlushImpl>(), Ok(f));
        assert_eq!(f.name().to_uppercase().parse::<FlushImpl>(), Ok(f));
    }
    assert_eq!("ClFlushOpt".parse::<FlushImpl>(), Ok(FlushImpl::Clflushopt));
}

#[test]
fn unknown_names_are_errors_that_list_the_choices() {
    let e = "avx1024".parse::<CopyImpl>().unwrap_err();
    assert_eq!(e.name, "avx1024");
    assert!(
        e.to_string().contains("avx512, avx2, sse2, portable"),
        "{e}"
    );
    let e = "".parse::<FlushImpl>().unwrap_err();
    assert!(
        e.to_string().contains("clwb, clflushopt, clflush, none"),
        "{e}"
    );
    assert!("clwb2".parse::<FlushImpl>().is_err());
}

#[test]
fn unset_or_bad_value_selects_the_best_supported() {
    let best_copy = CopyImpl::ALL
        .into_iter()
        .find(|c| c.is_supported())
        .unwrap();
    let best_flush = FlushImpl::ALL
        .into_iter()
        .find(|f| f.is_supported())
        .unwrap();
    assert_eq!(CopyImpl::detect_with(None), best_copy);
    assert_eq!(CopyImpl::detect_with(Some("nonsense")), best_copy);
    assert_eq!(FlushImpl::detect_with(None), best_flush);
    assert_eq!(FlushImpl::detect_with(Some("")), best_flush);
}

#[test]
fn override_to_an_always_available_impl_is_honoured() {
    assert_eq!(CopyImpl::detect_with(Some("portable")), CopyImpl::Portable);
    assert_eq!(FlushImpl::detect_with(Some("none")), FlushImpl::None);
    assert_eq!(FlushImpl::detect_with(Some("NONE ")), FlushImpl::None);
}

#[test]
fn override_to_each_supported_impl_is_honoured_and_unsupported_is_ignored() {
    let best_copy = CopyImpl::detect_with(None);
    for c in CopyImpl::ALL {
        let got = CopyImpl::detect_with(Some(c.name()));
        if c.is_supported() {
            assert_eq!(got, c);
        } else {
            eprintln!("{c} not supported here: checking the override falls back");
            assert_eq!(got, best_copy);
        }
    }
    let best_flush = FlushImpl::detect_with(None);
    for f in FlushImpl::ALL {
        let got = FlushImpl::detect_with(Some(f.name()));
        if f.is_supported() {
            assert_eq!(got, f);
        } else {
            eprintln!("{f} not supported here: checking the override falls back");
            assert_eq!(got, best_flush);
        }
    }
}

#[test]
fn cached_selection_agrees_with_the_environment() {
    // Whatever this test process was started with, the cached choice is what
    // detection computes from it.
    let env_copy = std::env::var("DAX_RS_COPY_IMPL").ok();
    let env_flush = std::env::var("DAX_RS_FLUSH_IMPL").ok();
    assert_eq!(
        persist::copy_impl(),
        CopyImpl::detect_with(env_copy.as_deref())
    );
    assert_eq!(
        persist::flush_impl(),
        FlushImpl::detect_with(env_flush.as_deref())
    );
    // Stable across calls.
    assert_eq!(persist::copy_impl(), persist::copy_impl());
}
