//! `MemDevice::inject` schedules: which calls fail, reproducibly.

use dax_device::{DaxAccessMode, DaxError};
use dax_testdev::{DevOp, FailSchedule, MemDevice};

fn eio() -> DaxError {
    DaxError::Io { what: "injected" }
}

/// The outcome of `n` `direct_access` calls on a device with `schedule`.
fn outcomes(schedule: FailSchedule, n: usize) -> Vec<bool> {
    let dev = MemDevice::builder().size(1 << 20).build().unwrap();
    dev.driver().inject(DevOp::DirectAccess, schedule, eio());
    let g = dev.read_lock();
    (0..n)
        .map(|_| g.direct_access(0, 1, DaxAccessMode::Access).is_ok())
        .collect()
}

#[test]
fn after_lets_calls_through_then_fails_a_count_then_stops() {
    let got = outcomes(FailSchedule::After { skip: 2, count: 3 }, 8);
    assert_eq!(got, [true, true, false, false, false, true, true, true]);
    assert!(
        outcomes(FailSchedule::After { skip: 1, count: 0 }, 4)
            .iter()
            .all(|&ok| ok)
    );
}

#[test]
fn every_nth_fails_the_nth_calls_until_cleared() {
    let got = outcomes(FailSchedule::EveryNth(4), 12);
    let want: Vec<bool> = (1..=12).map(|i| i % 4 != 0).collect();
    assert_eq!(got, want);
    assert!(outcomes(FailSchedule::EveryNth(0), 3).iter().all(|&ok| !ok));

    let dev = MemDevice::builder().size(1 << 20).build().unwrap();
    dev.driver()
        .inject(DevOp::ZeroPageRange, FailSchedule::EveryNth(1), eio());
    assert!(dev.zero_page_range(0, 1).is_err());
    dev.driver().clear_injections();
    assert!(dev.zero_page_range(0, 1).is_ok());
}

#[test]
fn random_is_reproducible_per_seed_and_near_its_rate() {
    let a = outcomes(
        FailSchedule::Random {
            seed: 7,
            one_in: 10,
        },
        5000,
    );
    let b = outcomes(
        FailSchedule::Random {
            seed: 7,
            one_in: 10,
        },
        5000,
    );
    let c = outcomes(
        FailSchedule::Random {
            seed: 8,
            one_in: 10,
        },
        5000,
    );
    assert_eq!(a, b, "same seed, same failures");
    assert_ne!(a, c, "another seed, other failures");
    let failed = a.iter().filter(|&&ok| !ok).count();
    // 500 expected; a binomial(5000, 0.1) is within 400..600 with overwhelming odds.
    assert!((400..600).contains(&failed), "{failed} of 5000 failed");
    // Seed 0 is allowed (replaced by a constant), and one_in 1 fails every call.
    assert!(
        outcomes(FailSchedule::Random { seed: 0, one_in: 2 }, 100)
            .iter()
            .any(|&ok| !ok)
    );
    assert!(
        outcomes(FailSchedule::Random { seed: 1, one_in: 1 }, 10)
            .iter()
            .all(|&ok| !ok)
    );
}

#[test]
fn recovery_write_on_a_schedule_writes_nothing() {
    let dev = MemDevice::builder().size(1 << 20).build().unwrap();
    dev.driver().poison(0, 4096).unwrap();
    dev.driver().inject(
        DevOp::RecoveryWrite,
        FailSchedule::After { skip: 0, count: 1 },
        eio(),
    );
    let g = dev.read_lock();
    let da = g.direct_access(0, 1, DaxAccessMode::RecoveryWrite).unwrap();
    assert_eq!(da.recovery_write(0, &[1; 4096]), 0);
    assert!(
        dev.driver().is_poisoned(0, 4096),
        "a failed recovery clears nothing"
    );
    assert_eq!(da.recovery_write(0, &[1; 4096]), 4096);
    assert!(!dev.driver().is_poisoned(0, 4096));
}
