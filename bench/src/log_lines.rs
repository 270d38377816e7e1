//! What the functions' log lines weigh: CloudWatch Logs bills every byte it ingests. Reads a log
//! of the functions' JSON lines (as `make test` leaves in `.stack/test/watch.log`) and prints,
//! for each kind of line (its message, or the metric line of its function), how many there are
//! and their mean size; for a line that counts what it lists (`published`, `delivered`: a
//! `count` field), the size as a fixed part and a part per item listed, fitted by least squares.
use std::{collections::BTreeMap, path::Path};

use anyhow::Result;
use serde_json::Value;

/// One kind of line: the (count, bytes) of each, `count` 0 for a line without one.
type Sizes = Vec<(f64, f64)>;

/// The kind of a line: its message and the function that wrote it, where the line says.
fn kind(line: &Value) -> Option<String> {
    if line.get("_aws").is_some() {
        return Some(format!("metric line of {}", line["Function"].as_str().unwrap_or("?")));
    }
    let message = line["fields"]["message"].as_str()?;
    let function = line["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find_map(|s| s["function"].as_str()))
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    Some(format!("{message}{function}"))
}

/// The fixed part and the part per item of `sizes`, if their counts differ.
fn fit(sizes: &Sizes) -> Option<(f64, f64)> {
    let n = sizes.len() as f64;
    let (mx, my) = sizes.iter().fold((0.0, 0.0), |(x, y), (c, b)| (x + c / n, y + b / n));
    let sxx: f64 = sizes.iter().map(|(c, _)| (c - mx) * (c - mx)).sum();
    let sxy: f64 = sizes.iter().map(|(c, b)| (c - mx) * (b - my)).sum();
    (sxx > 0.0).then(|| (my - sxy / sxx * mx, sxy / sxx))
}

pub fn run(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut kinds: BTreeMap<String, Sizes> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let Ok(value) = serde_json::from_str::<Value>(line) else { continue };
        let Some(kind) = kind(&value) else { continue };
        let count = value["fields"]["count"].as_f64().unwrap_or(0.0);
        // The newline is written too.
        kinds.entry(kind).or_default().push((count, line.len() as f64 + 1.0));
    }
    eprintln!("| line | lines | mean bytes | bytes per line, per item it lists |");
    eprintln!("|---|---|---|---|");
    for (kind, sizes) in &kinds {
        let mean = sizes.iter().map(|(_, b)| b).sum::<f64>() / sizes.len() as f64;
        let fitted = fit(sizes).map_or("-".to_owned(), |(a, b)| format!("{a:.0} + {b:.1} per item"));
        eprintln!("| {kind} | {} | {mean:.0} | {fitted} |", sizes.len());
    }
    Ok(())
}
