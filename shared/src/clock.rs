//! The one clock of the service, and the one way its times are written (RFC 3339, UTC).
use std::time::{SystemTime, UNIX_EPOCH};

use time::{format_description::well_known::Rfc3339, OffsetDateTime};

/// The current time in unix seconds.
pub fn now() -> i64 {
    since_epoch().as_secs() as i64
}

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    since_epoch().as_millis() as i64
}

fn since_epoch() -> std::time::Duration {
    // A clock before 1970 is a broken host; 0 keeps every caller's arithmetic defined.
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Unix seconds in RFC 3339, UTC (`Z`).
pub fn rfc3339(unix: i64) -> String {
    rfc3339_nanos(unix as i128 * 1_000_000_000)
}

/// Unix milliseconds in RFC 3339, UTC (`Z`), with fractions only where the time has them.
pub fn rfc3339_ms(ms: i64) -> String {
    rfc3339_nanos(ms as i128 * 1_000_000)
}

/// Reads an RFC 3339 time (any offset) as unix seconds, a fraction dropped.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(OffsetDateTime::unix_timestamp)
}

/// RFC 3339 in UTC (`Z`), with fractions only where the time has them.
fn rfc3339_nanos(nanos: i128) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_fractions_only_when_present() {
        assert_eq!(rfc3339(1_583_343_384), "2020-03-04T17:36:24Z");
        assert_eq!(rfc3339_ms(1_583_343_384_000), "2020-03-04T17:36:24Z");
        assert_eq!(rfc3339_ms(1_583_343_384_250), "2020-03-04T17:36:24.25Z");
    }

    #[test]
    fn rfc3339_reads_back_in_any_offset() {
        assert_eq!(parse_rfc3339("2020-03-04T17:36:24Z"), Some(1_583_343_384));
        assert_eq!(parse_rfc3339("2020-03-04T18:36:24.9+01:00"), Some(1_583_343_384));
        assert_eq!(parse_rfc3339("2020-03-04 17:36:24"), None);
    }

    #[test]
    fn the_clock_reads_in_seconds_and_milliseconds_alike() {
        let (s, ms) = (now(), now_ms());
        assert!(s > 1_600_000_000 && (ms / 1000 - s).abs() <= 1);
    }
}
