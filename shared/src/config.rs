//! Settings read once, at start-up, from the environment.
use std::env;

/// Runtime settings shared by the functions.
#[derive(Debug, Clone)]
pub struct Config {
    /// The DynamoDB table holding vendors, webhooks and attempts.
    pub table_name: String,
    /// Lifts the private-address and `https`-only rules for local receivers (never in production).
    pub allow_private_targets: bool,
    /// `ROTATION_GRACE_SECS`: how long a rotated-out signing secret keeps signing (default a day).
    pub rotation_grace_secs: i64,
    /// `EMAIL_SENDER`: the address vendors' emails come from; `None` (unset or empty) turns
    /// emails off.
    pub email_sender: Option<String>,
}

/// A setting that is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}: {problem}")]
pub struct ConfigError {
    name: &'static str,
    problem: String,
}

impl ConfigError {
    /// A problem with a named setting.
    pub fn new(name: &'static str, problem: impl Into<String>) -> Self {
        Self { name, problem: problem.into() }
    }
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let table_name = env::var("TABLE_NAME")
            .map_err(|_| ConfigError { name: "TABLE_NAME", problem: "is not set".into() })?;
        let rotation_grace_secs = match env::var("ROTATION_GRACE_SECS") {
            Err(_) => 24 * 3600,
            Ok(v) => v.parse().map_err(|_| {
                ConfigError::new("ROTATION_GRACE_SECS", format!("expected seconds, got {v:?}"))
            })?,
        };
        Ok(Self {
            table_name,
            allow_private_targets: flag("ALLOW_PRIVATE_TARGETS")?,
            rotation_grace_secs,
            email_sender: email_sender(),
        })
    }
}

/// `EMAIL_SENDER`, trimmed: the address vendors' emails come from; `None` (unset or empty) when
/// emails are off.
pub fn email_sender() -> Option<String> {
    env::var("EMAIL_SENDER").ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `EMAILS_QUEUE_URL`, where vendors' emails are asked for: required when emails are on
/// (`EMAIL_SENDER` set), `None` when they are off.
pub fn emails_queue_url() -> Result<Option<String>, ConfigError> {
    if email_sender().is_none() {
        return Ok(None);
    }
    match env::var("EMAILS_QUEUE_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(Some(url)),
        _ => Err(ConfigError::new("EMAILS_QUEUE_URL", "must be set when EMAIL_SENDER is")),
    }
}

/// Reads a boolean flag; unset means false, anything but a clear yes or no is an error.
pub fn flag(name: &'static str) -> Result<bool, ConfigError> {
    match env::var(name) {
        Err(_) => Ok(false),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "" | "0" | "false" | "no" | "off" => Ok(false),
            other => Err(ConfigError { name, problem: format!("expected true or false, got {other:?}") }),
        },
    }
}
