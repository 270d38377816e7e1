//! The library's shape, kept: layers point one way, and no module grows past about 400 lines of
//! code (its tests apart) unless it is split by concern.
use std::path::{Path, PathBuf};

use tests::repo_root;

/// The most lines of code (before its `#[cfg(test)]` tests) one module of `shared` may have.
const MAX_MODULE_LINES: usize = 420;

fn modules(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn shared_modules() -> Vec<(String, String)> {
    let root = repo_root().join("shared/src");
    let mut paths = Vec::new();
    modules(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn no_module_below_the_api_imports_it() {
    let mut found = Vec::new();
    for (name, text) in shared_modules() {
        // The fuzzing harness drives the API from outside, as a test does.
        if name.starts_with("api/") || name == "fuzzing.rs" {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let l = line.trim_start();
            if l.contains("crate::api") || l.starts_with("use super::api") {
                found.push(format!("{name}:{}: {l}", i + 1));
            }
        }
    }
    assert!(found.is_empty(), "modules below the API import it:\n{}", found.join("\n"));
}

#[test]
fn no_module_is_over_about_400_lines_of_code() {
    let mut long = Vec::new();
    for (name, text) in shared_modules() {
        // A module of tests alone (`dispatch/tests.rs`) is not code.
        if name.ends_with("/tests.rs") {
            continue;
        }
        let code = text.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).count();
        if code > MAX_MODULE_LINES {
            long.push(format!("{name}: {code} lines"));
        }
    }
    assert!(long.is_empty(), "split these by concern:\n{}", long.join("\n"));
}

/// The sources of the workspace's binaries that are not a library's: `make test` runs
/// `cargo test --lib --test '*'`, so a unit test in one of them would never run.
fn binary_sources() -> Vec<PathBuf> {
    let root = repo_root();
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(root.join("functions")).unwrap() {
        modules(&entry.unwrap().path().join("src"), &mut paths);
    }
    for dir in ["admin/src", "bench/src", "tests/src/bin"] {
        modules(&root.join(dir), &mut paths);
    }
    paths.push(root.join("devstack/src/main.rs"));
    paths
}

#[test]
fn binaries_hold_no_unit_tests() {
    let sources = binary_sources();
    assert!(sources.len() > 20, "the functions, the CLI, the bench, devstack and the soak: {sources:?}");
    let with_tests: Vec<String> = sources
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.contains("#[test]") || text.contains("#[tokio::test") || text.contains("#[cfg(test)]")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        with_tests.is_empty(),
        "make test does not run a binary's own tests; move these to its library or to tests/:\n{}",
        with_tests.join("\n")
    );
}
