//! Settings: every environment variable a function reads, read once at start-up into one struct
//! (`envy` maps the variables onto its fields), checked there, and handed to what needs them. A
//! malformed value stops the function at start-up with the variable named, never mid-request.
use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::{
    delivery::{self, DeliverySettings, RetrySchedule},
    login_guard::GuardSettings,
};

/// The settings of every function (each uses the part it needs).
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: the DynamoDB table holding vendors, webhooks and attempts (required).
    pub table_name: String,
    /// `ROTATION_GRACE_SECS`: how long a rotated-out signing secret keeps signing (default a day).
    pub rotation_grace_secs: i64,
    /// `EMAIL_SENDER`: the address vendors' emails come from; `None` (unset or empty) turns
    /// emails off.
    pub email_sender: Option<String>,
    /// `EMAIL_CONFIGURATION_SET`: the SES configuration set emails go through (bounces,
    /// complaints).
    pub email_configuration_set: Option<String>,
    /// `DELIVERIES_QUEUE_URL` (required by the functions that queue or consume deliveries).
    pub deliveries_queue_url: Option<String>,
    /// `DEAD_LETTER_QUEUE_URL`: where dispatch parks a delivery after its last attempt.
    pub dead_letter_queue_url: Option<String>,
    /// `SLOW_DELIVERIES_QUEUE_URL`: the slow lane, where retries and the deliveries of failing
    /// webhooks go, consumed apart from the deliveries queue (unset: everything stays in one).
    pub slow_deliveries_queue_url: Option<String>,
    /// `ORDERED_DELIVERIES_QUEUE_URL`: the FIFO queue of the webhooks whose deliveries keep
    /// their order per order (unset: such webhooks are delivered as the others).
    pub ordered_deliveries_queue_url: Option<String>,
    /// `ORDERED_DEAD_LETTER_QUEUE_URL`: the FIFO dead-letter queue of ordered deliveries.
    pub ordered_dead_letter_queue_url: Option<String>,
    /// `GROUPED_DELIVERIES_QUEUE_URL`: the grouped lane, a FIFO queue whose message group is the
    /// webhook, for the deliveries of healthy webhooks whose cap SQS keeps (unset: they take the
    /// deliveries queue, their cap counted in DynamoDB).
    pub grouped_deliveries_queue_url: Option<String>,
    /// `EMAILS_QUEUE_URL`: where emails are asked for; set whenever `EMAIL_SENDER` is.
    pub emails_queue_url: Option<String>,
    /// `RETRY_SCHEDULE`: the delays between delivery attempts (default: the standard schedule),
    /// and `RETRY_AFTER_CAP`: the longest a receiver's `Retry-After` is honoured (default 1 h).
    pub retry_schedule: RetrySchedule,
    /// `AUTO_DISABLE_AFTER`: a webhook whose every delivery has failed this long is disabled
    /// (default 5 days; `off`: never).
    pub auto_disable_after: Option<Duration>,
    /// `CIRCUIT_BREAKER_AFTER` (failed attempts in a row, default 5; `off`) and
    /// `CIRCUIT_PROBE_AFTER` (default 60s): the circuit breaker of each webhook.
    pub circuit: Option<delivery::CircuitBreaker>,
    /// `MAX_IN_FLIGHT_PER_WEBHOOK`: how many deliveries of one webhook may be in flight at once,
    /// across every dispatch instance, unless the webhook sets its own (default 10; `0`: no cap).
    pub max_in_flight_per_webhook: u32,
    /// `MAX_WEBHOOKS_PER_VENDOR`: how many webhooks one vendor may have (default 100), which
    /// bounds what one event fans out to.
    pub max_webhooks_per_vendor: usize,
    /// `DELIVERY_CONNECT_TIMEOUT_MS`, `DELIVERY_TIMEOUT_MS`, `DELIVERY_MAX_RESPONSE_BYTES`,
    /// `EXTRA_CA_FILE`, and `ALLOW_PRIVATE_TARGETS` (which lifts the private-address and
    /// `https`-only rules for local receivers, at registration too; never in production): how
    /// deliveries are made.
    pub delivery: DeliverySettings,
    /// `VERIFIED_LOGIN_TTL`, `LOGIN_FAILURES_ALLOWED` and `LOGIN_FAILURE_WINDOW`: what each
    /// instance remembers of password checks ([`crate::login_guard`]).
    pub login: GuardSettings,
    /// `PORTAL_INSECURE_COOKIES`: the portal's cookies without `Secure`, for the local stack's
    /// plain http on 127.0.0.1 (never in production).
    pub portal_insecure_cookies: bool,
}

/// How many webhooks a vendor may have unless `MAX_WEBHOOKS_PER_VENDOR` says otherwise.
pub const DEFAULT_MAX_WEBHOOKS_PER_VENDOR: usize = 100;

/// A setting that is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}: {problem}")]
pub struct ConfigError {
    name: String,
    problem: String,
}

impl ConfigError {
    /// A problem with a named setting.
    pub fn new(name: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { name: name.into(), problem: problem.into() }
    }
}

/// The variables as `envy` reads them: names are the fields' in upper case.
#[derive(Deserialize)]
struct Vars {
    table_name: Option<String>,
    allow_private_targets: Option<String>,
    rotation_grace_secs: Option<String>,
    email_sender: Option<String>,
    email_configuration_set: Option<String>,
    deliveries_queue_url: Option<String>,
    dead_letter_queue_url: Option<String>,
    slow_deliveries_queue_url: Option<String>,
    ordered_deliveries_queue_url: Option<String>,
    ordered_dead_letter_queue_url: Option<String>,
    grouped_deliveries_queue_url: Option<String>,
    emails_queue_url: Option<String>,
    retry_schedule: Option<String>,
    retry_after_cap: Option<String>,
    max_webhooks_per_vendor: Option<String>,
    max_in_flight_per_webhook: Option<String>,
    circuit_breaker_after: Option<String>,
    circuit_probe_after: Option<String>,
    auto_disable_after: Option<String>,
    delivery_connect_timeout_ms: Option<String>,
    delivery_timeout_ms: Option<String>,
    delivery_max_response_bytes: Option<String>,
    extra_ca_file: Option<String>,
    verified_login_ttl: Option<String>,
    login_failures_allowed: Option<String>,
    login_failure_window: Option<String>,
    portal_insecure_cookies: Option<String>,
}

/// A set, non-blank value.
fn set(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A number, or the default when unset.
fn number<T: std::str::FromStr>(
    name: &str,
    v: Option<String>,
    unit: &str,
    default: T,
) -> Result<T, ConfigError> {
    match set(v) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConfigError::new(name, format!("expected {unit}, got {v:?}"))),
    }
}

/// A yes-or-no flag; unset means no, anything but a clear yes or no is an error.
fn flag(name: &str, v: Option<String>) -> Result<bool, ConfigError> {
    match v.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(other) => Err(ConfigError::new(name, format!("expected true or false, got {other:?}"))),
    }
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings from these variables.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let v: Vars = envy::from_iter(vars).map_err(|e| ConfigError::new("(environment)", e.to_string()))?;
        let table_name = set(v.table_name).ok_or_else(|| ConfigError::new("TABLE_NAME", "is not set"))?;
        let email_sender = set(v.email_sender);
        let emails_queue_url = set(v.emails_queue_url);
        if email_sender.is_some() && emails_queue_url.is_none() {
            return Err(ConfigError::new("EMAILS_QUEUE_URL", "must be set when EMAIL_SENDER is"));
        }
        let retry_schedule = match set(v.retry_schedule) {
            None => RetrySchedule::standard(),
            Some(spec) => RetrySchedule::parse(&spec).map_err(|e| ConfigError::new("RETRY_SCHEDULE", e))?,
        };
        let retry_schedule = match set(v.retry_after_cap) {
            None => retry_schedule,
            Some(spec) => delivery::parse_duration(&spec)
                .and_then(|cap| retry_schedule.with_retry_after_cap(cap))
                .map_err(|e| ConfigError::new("RETRY_AFTER_CAP", e))?,
        };
        let auto_disable_after = match set(v.auto_disable_after).as_deref() {
            None => Some(Duration::from_secs(5 * 86400)),
            Some("off") => None,
            Some(spec) => {
                Some(delivery::parse_duration(spec).map_err(|e| ConfigError::new("AUTO_DISABLE_AFTER", e))?)
            }
        };
        let d = DeliverySettings::default();
        let ms = |name: &str, v: Option<String>, default: Duration| {
            number(name, v, "milliseconds", default.as_millis() as u64).map(Duration::from_millis)
        };
        let delivery = DeliverySettings {
            connect_timeout: ms(
                "DELIVERY_CONNECT_TIMEOUT_MS",
                v.delivery_connect_timeout_ms,
                d.connect_timeout,
            )?,
            timeout: ms("DELIVERY_TIMEOUT_MS", v.delivery_timeout_ms, d.timeout)?,
            max_response_bytes: number(
                "DELIVERY_MAX_RESPONSE_BYTES",
                v.delivery_max_response_bytes,
                "bytes",
                d.max_response_bytes,
            )?,
            extra_ca_file: set(v.extra_ca_file).map(PathBuf::from),
            allow_private_targets: flag("ALLOW_PRIVATE_TARGETS", v.allow_private_targets)?,
        };
        let duration = |name: &str, v: Option<String>, default: Duration| match set(v) {
            None => Ok(default),
            Some(spec) => delivery::parse_duration(&spec).map_err(|e| ConfigError::new(name, e)),
        };
        let g = GuardSettings::default();
        let login = GuardSettings {
            verified_for: duration("VERIFIED_LOGIN_TTL", v.verified_login_ttl, g.verified_for)?,
            failures: number(
                "LOGIN_FAILURES_ALLOWED",
                v.login_failures_allowed,
                "a number of failures",
                g.failures,
            )?,
            window: duration("LOGIN_FAILURE_WINDOW", v.login_failure_window, g.window)?,
        };
        Ok(Self {
            login,
            portal_insecure_cookies: flag("PORTAL_INSECURE_COOKIES", v.portal_insecure_cookies)?,
            table_name,
            rotation_grace_secs: number("ROTATION_GRACE_SECS", v.rotation_grace_secs, "seconds", 24 * 3600)?,
            email_sender,
            email_configuration_set: set(v.email_configuration_set),
            deliveries_queue_url: set(v.deliveries_queue_url),
            dead_letter_queue_url: set(v.dead_letter_queue_url),
            slow_deliveries_queue_url: set(v.slow_deliveries_queue_url),
            ordered_deliveries_queue_url: set(v.ordered_deliveries_queue_url),
            ordered_dead_letter_queue_url: set(v.ordered_dead_letter_queue_url),
            grouped_deliveries_queue_url: set(v.grouped_deliveries_queue_url),
            emails_queue_url,
            retry_schedule,
            auto_disable_after,
            circuit: match set(v.circuit_breaker_after).as_deref() {
                Some("off") => None,
                after => {
                    let after =
                        number("CIRCUIT_BREAKER_AFTER", after.map(str::to_owned), "a number of failures", 5)?;
                    let probe_after = match set(v.circuit_probe_after) {
                        None => Duration::from_secs(60),
                        Some(d) => delivery::parse_duration(&d)
                            .map_err(|e| ConfigError::new("CIRCUIT_PROBE_AFTER", e))?,
                    };
                    Some(
                        delivery::CircuitBreaker::new(after, probe_after)
                            .map_err(|(name, e)| ConfigError::new(name, e))?,
                    )
                }
            },
            max_in_flight_per_webhook: number(
                "MAX_IN_FLIGHT_PER_WEBHOOK",
                v.max_in_flight_per_webhook,
                "a number of deliveries",
                10,
            )?,
            max_webhooks_per_vendor: number(
                "MAX_WEBHOOKS_PER_VENDOR",
                v.max_webhooks_per_vendor,
                "a number of webhooks",
                DEFAULT_MAX_WEBHOOKS_PER_VENDOR,
            )?,
            delivery,
        })
    }

    /// `DELIVERIES_QUEUE_URL`, for the functions that cannot run without it.
    pub fn require_deliveries_queue(&self) -> Result<&str, ConfigError> {
        self.deliveries_queue_url
            .as_deref()
            .ok_or_else(|| ConfigError::new("DELIVERIES_QUEUE_URL", "is not set"))
    }

    /// `DEAD_LETTER_QUEUE_URL`, which dispatch cannot run without.
    pub fn require_dead_letter_queue(&self) -> Result<&str, ConfigError> {
        self.dead_letter_queue_url
            .as_deref()
            .ok_or_else(|| ConfigError::new("DEAD_LETTER_QUEUE_URL", "is not set"))
    }

    /// The settings of a test or a benchmark: this table, everything else at its default.
    pub fn for_table(table_name: impl Into<String>) -> Self {
        let mut config =
            Self::from_vars([("TABLE_NAME".to_owned(), "t".to_owned())]).expect("defaults are valid");
        config.table_name = table_name.into();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_fill_what_is_unset() {
        let c = Config::from_vars(vars(&[("TABLE_NAME", "webhooks"), ("EMAIL_SENDER", " ")])).unwrap();
        assert_eq!(c.table_name, "webhooks");
        assert!(
            !c.delivery.allow_private_targets && c.email_sender.is_none() && c.deliveries_queue_url.is_none()
        );
        assert_eq!(c.rotation_grace_secs, 86400);
        assert_eq!(c.retry_schedule.max_attempts(), 8);
        assert_eq!(c.auto_disable_after, Some(Duration::from_secs(5 * 86400)));
        assert_eq!(c.delivery.timeout, Duration::from_secs(10));
        assert!(c.require_deliveries_queue().is_err());
    }

    #[test]
    fn every_setting_is_read_once_into_its_field() {
        let c = Config::from_vars(vars(&[
            ("TABLE_NAME", "t"),
            ("ALLOW_PRIVATE_TARGETS", "yes"),
            ("ROTATION_GRACE_SECS", "4"),
            ("EMAIL_SENDER", "n@example.com"),
            ("EMAILS_QUEUE_URL", "http://q/emails"),
            ("DELIVERIES_QUEUE_URL", "http://q/deliveries"),
            ("RETRY_SCHEDULE", "1s,1s"),
            ("AUTO_DISABLE_AFTER", "off"),
            ("DELIVERY_TIMEOUT_MS", "2000"),
            ("EXTRA_CA_FILE", "/tmp/ca.pem"),
        ]))
        .unwrap();
        assert!(c.delivery.allow_private_targets);
        assert_eq!((c.rotation_grace_secs, c.retry_schedule.max_attempts()), (4, 3));
        assert_eq!(c.auto_disable_after, None);
        assert_eq!(c.delivery.timeout, Duration::from_millis(2000));
        assert_eq!(c.require_deliveries_queue().unwrap(), "http://q/deliveries");
        assert_eq!(c.delivery.extra_ca_file, Some(PathBuf::from("/tmp/ca.pem")));
    }

    #[test]
    fn a_bad_or_missing_setting_names_its_variable() {
        for (pairs, name) in [
            (vec![], "TABLE_NAME"),
            (vec![("ALLOW_PRIVATE_TARGETS", "maybe")], "ALLOW_PRIVATE_TARGETS"),
            (vec![("ROTATION_GRACE_SECS", "a day")], "ROTATION_GRACE_SECS"),
            (vec![("RETRY_SCHEDULE", "5s,13h")], "RETRY_SCHEDULE"),
            (vec![("RETRY_SCHEDULE", "0s")], "RETRY_SCHEDULE"),
            (vec![("RETRY_AFTER_CAP", "2d")], "RETRY_AFTER_CAP"),
            (vec![("AUTO_DISABLE_AFTER", "soon")], "AUTO_DISABLE_AFTER"),
            (vec![("DELIVERY_TIMEOUT_MS", "10s")], "DELIVERY_TIMEOUT_MS"),
            (vec![("MAX_WEBHOOKS_PER_VENDOR", "many")], "MAX_WEBHOOKS_PER_VENDOR"),
            (vec![("CIRCUIT_BREAKER_AFTER", "0")], "CIRCUIT_BREAKER_AFTER"),
            (vec![("CIRCUIT_PROBE_AFTER", "2h")], "CIRCUIT_PROBE_AFTER"),
            (vec![("EMAIL_SENDER", "n@example.com")], "EMAILS_QUEUE_URL"),
        ] {
            let mut all = vars(&pairs);
            if name != "TABLE_NAME" {
                all.push(("TABLE_NAME".into(), "t".into()));
            }
            let e = Config::from_vars(all).unwrap_err().to_string();
            assert!(e.contains(name), "{name}: {e}");
        }
    }
}
