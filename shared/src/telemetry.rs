//! Structured logging: JSON lines on stdout, which CloudWatch stores as they are.
use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};

/// Installs the global subscriber. `RUST_LOG` sets the levels, as `info` or
/// `info,shared::dispatch=debug` (targets and levels: no regular expressions, which keeps a
/// megabyte of regex engine out of every binary); default `info`.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .with_max_level(tracing::Level::TRACE)
        .finish()
        .with(filter)
        .try_init();
}

/// Adds `item` to `list`, a log field that lists several things in one line (a request's
/// events, a batch's deliveries), each `/`-separated fields, the items space-separated: one
/// line rather than one per item, since every line repeats its invocation's request id and
/// trace, and CloudWatch Logs bills each byte.
pub fn list_item(list: &mut String, item: std::fmt::Arguments<'_>) {
    use std::fmt::Write as _;
    if !list.is_empty() {
        list.push(' ');
    }
    let _ = list.write_fmt(item);
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::filter::Targets;

    #[test]
    fn rust_log_parses_as_levels_and_targets() {
        let t: Targets = "debug".parse().unwrap();
        assert!(t.would_enable("shared::api", &tracing::Level::DEBUG));
        let t: Targets = "warn,shared::dispatch=debug".parse().unwrap();
        assert!(t.would_enable("shared::dispatch", &tracing::Level::DEBUG));
        assert!(!t.would_enable("shared::api", &tracing::Level::INFO));
    }
}
