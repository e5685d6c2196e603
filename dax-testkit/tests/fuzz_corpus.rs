//! The fuzz targets' corpora replayed as ordinary tests on the stable toolchain: every
//! file in `fuzz/corpus/<target>/` (committed, minimized) and a fixed set of seeded
//! pseudo-random inputs per target, through the same harness the libFuzzer targets
//! call (`dax_testkit::fuzz`). A regression the fuzzer once found fails here as soon
//! as its input is in the corpus.
//!
//! Each target runs a fixed number of seeded inputs (enough to mean something with an
//! empty corpus, few enough for a debug build to stay within seconds);
//! `DAX_FUZZ_SEEDS=N` runs N per target instead.

use std::path::PathBuf;

use dax_testkit::fuzz::{TARGETS, seeded};

fn harness(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
        .1
}

fn corpus(name: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Seeded inputs that reproduce an open finding (see `fuzz/findings/<target>/README.md`):
/// skipped so that the suite stays green until the bug is fixed, then removed.
const KNOWN_FINDINGS: &[(&str, u64)] = &[
    // None open. (TestFs's next_ino of 0 or u64::MAX, seeds 17, 236, 727, 732 and
    // 1503 of testfs, was fixed in d5a83b3; its inputs are in the corpus now.)
];

fn replay(name: &str, default_seeds: u64) {
    let run = harness(name);
    let files = corpus(name);
    let seeds = std::env::var("DAX_FUZZ_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_seeds);
    let mut inputs: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    for seed in 0..seeds {
        if KNOWN_FINDINGS.contains(&(name, seed)) {
            eprintln!("{name}: seed {seed} skipped: it reproduces an open finding");
            continue;
        }
        // Lengths from a few bytes to a few KiB: short inputs end early, long ones
        // run every operation the harness allows.
        let len = [16, 64, 256, 1024, 4096][seed as usize % 5];
        inputs.push((
            format!("seed {seed}"),
            seeded(seed ^ name.len() as u64, len),
        ));
    }
    // Every input runs, and the failures are reported together.
    let mut failed = Vec::new();
    for (what, data) in &inputs {
        eprintln!("{name}: {what}");
        if let Err(p) = std::panic::catch_unwind(|| run(data)) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{what}: {msg}"));
        }
    }
    eprintln!(
        "{name}: {} corpus files, {seeds} seeded inputs",
        files.len()
    );
    assert!(
        failed.is_empty(),
        "{name}: {} inputs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn fuzz_corpus_iomap() {
    replay("iomap", 12);
}

#[test]
fn fuzz_corpus_fault() {
    replay("fault", 3);
}

#[test]
fn fuzz_corpus_badblocks() {
    replay("badblocks", 12);
}

#[test]
fn fuzz_corpus_testfs() {
    replay("testfs", 24);
}

#[test]
fn every_target_has_a_replay_test() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.0).collect();
    assert_eq!(names, ["iomap", "fault", "badblocks", "testfs"]);
}

/// The open findings' reproducers (`fuzz/findings/<target>/`) still fail: run with
/// `--ignored` after a fix, then move the inputs into the corpus.
#[test]
#[ignore = "reproduces open findings: fails while they are open"]
fn fuzz_findings_still_reproduce() {
    for (name, run) in TARGETS {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/findings")
            .join(name);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for f in rd.map(|e| e.unwrap().path()) {
            if f.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let data = std::fs::read(&f).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(
                r.is_err(),
                "{} no longer fails: move it to the corpus",
                f.display()
            );
        }
    }
}
