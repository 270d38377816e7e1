//! The fuzz targets' seeds and past findings (`fuzz/seeds/`, `fuzz/regressions/`), through the
//! same checks the fuzzers run (`shared::fuzzing`), on stable Rust, in every `cargo test`.
use shared::fuzzing::TARGETS;
use tests::repo_root;

#[test]
fn every_seed_and_past_finding_passes_its_targets_check() {
    let mut checked = 0;
    for (target, check) in TARGETS {
        for dir in ["fuzz/seeds", "fuzz/regressions"] {
            let Ok(entries) = std::fs::read_dir(repo_root().join(dir).join(target)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{target}: {} breaks its property", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= TARGETS.len() * 2, "seeds for every target: {checked}");
}
