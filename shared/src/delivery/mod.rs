//! Delivery: the message between publish and dispatch, signatures, the retry schedule, and the
//! HTTP sender.
use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;

use crate::domain::{EventType, Webhook};

mod http;
pub use http::{DeliverySettings, HttpDeliverer};

/// The version of [`DeliveryMessage`] this code writes; dispatch refuses others.
pub const MESSAGE_VERSION: u32 = 1;

/// One SQS message: one event for one webhook. The contract between publish and dispatch.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryMessage {
    /// Always [`MESSAGE_VERSION`] for now.
    pub v: u32,
    /// The event id: the `webhook-id` header, the same on every attempt.
    pub event_id: String,
    pub event_type: EventType,
    pub vendor_id: String,
    pub webhook_id: u64,
    /// Unix seconds.
    pub published_at: i64,
    /// The payload exactly as published: the bytes that are sent and signed.
    pub payload: Box<RawValue>,
}

/// Why a signing secret could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the signing secret is not whsec_ and base64")]
pub struct BadSecret;

/// The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`
/// under the secret's key bytes.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).map_err(|_| BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header of a delivery: the webhook's secret's signature, and during a
/// rotation's grace period the former secret's too, space-separated as Standard Webhooks has it,
/// so that receivers can change secrets without missing a delivery.
pub fn signature_header(
    webhook: &Webhook,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let current = sign(&webhook.secret, msg_id, timestamp, body)?;
    match &webhook.previous_secret {
        Some((old, until)) if *until > timestamp => {
            Ok(format!("{current} {}", sign(old, msg_id, timestamp, body)?))
        }
        _ => Ok(current),
    }
}

/// Parses a duration: a whole number with `s`, `m`, `h` or `d` (seconds when bare).
pub fn parse_duration(d: &str) -> Result<Duration, String> {
    let d = d.trim();
    let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
    let n: u64 = n.parse().map_err(|_| format!("bad duration {d:?}"))?;
    let unit_secs = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("bad unit in {d:?}: use s, m, h or d")),
    };
    n.checked_mul(unit_secs).map(Duration::from_secs).ok_or_else(|| format!("{d} is too long"))
}

/// The delays between attempts; one more attempt than delays, then the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about 28 hours.
    pub fn standard() -> Self {
        Self::parse("5s,5m,30m,2h,5h,10h,10h").expect("the standard schedule parses")
    }

    /// Parses `5s,5m,2h`: durations (see [`parse_duration`]), at most 12 h each (SQS's
    /// visibility cap).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let delays = spec
            .split(',')
            .map(|d| {
                let delay = parse_duration(d)?;
                if delay > Duration::from_secs(12 * 3600) {
                    return Err(format!("{} is over SQS's 12 h visibility limit", d.trim()));
                }
                Ok(delay)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err("the schedule needs at least one delay".into());
        }
        Ok(Self { delays })
    }

    /// How many attempts a delivery gets: the queue's `maxReceiveCount`.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The wait after failed attempt `attempt` (1-based): the scheduled delay scaled by `jitter`
    /// (0.8 to 1.2 in production, against thundering herds), or a receiver's `Retry-After`
    /// when it falls between one and two times the scheduled delay. `None` after the last.
    pub fn delay_after(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
        let scheduled = *self.delays.get(attempt.checked_sub(1)? as usize)?;
        if let Some(asked) = retry_after {
            if asked >= scheduled && asked <= scheduled * 2 {
                return Some(asked);
            }
        }
        Some(scheduled.mul_f64(jitter.clamp(0.5, 1.5)))
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Delivered { status: u16 },
    /// Any other status (a 3xx included: redirects are not followed).
    Rejected { status: u16, retry_after: Option<Duration> },
    /// No HTTP answer: the class says why.
    Failed { class: Failure },
}

impl Outcome {
    /// The receiver's status, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status } | Outcome::Rejected { status, .. } => Some(*status),
            Outcome::Failed { .. } => None,
        }
    }

    /// How the attempt log and the API name it: `delivered`, `rejected`, or the failure's class.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Failed { class } => class.as_str(),
        }
    }
}

/// Why an attempt got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the delivery timeout.
    Timeout,
    /// No connection (refused, unreachable, TLS handshake failed).
    Connect,
    /// The URL resolved to an address deliveries may not go to.
    RefusedAddress,
    /// A redirect the client would not follow.
    Redirect,
    /// The answer broke off or could not be read.
    Response,
    /// The stored `authentication` value cannot be sent as a header (registration refuses
    /// such values; this guards older records).
    BadAuthentication,
    /// Anything else on the way.
    Network,
}

impl Failure {
    /// The name the attempt log, the API and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connect => "connect",
            Failure::RefusedAddress => "refused_address",
            Failure::Redirect => "redirect",
            Failure::Response => "response",
            Failure::BadAuthentication => "bad_authentication",
            Failure::Network => "network",
        }
    }
}

/// What one attempt did, for the log and the retry decision.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcome: Outcome,
    pub duration: Duration,
    /// The first KiB of the response body, lossily as text.
    pub response_excerpt: String,
}

/// A delivery to make: the target and what to send.
pub struct DeliveryRequest<'a> {
    pub url: &'a str,
    pub authentication: Option<&'a str>,
    pub event_id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// The port that sends a delivery.
pub trait Deliverer: Send + Sync {
    /// Makes one attempt; never fails, the outcome says what happened.
    fn deliver(&self, req: &DeliveryRequest<'_>) -> impl std::future::Future<Output = Attempt> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(sign("whsec_!!!", "m", 1, b"").is_err());
    }

    #[test]
    fn the_standard_schedule_is_eight_attempts_over_28_hours() {
        let s = RetrySchedule::standard();
        assert_eq!(s.max_attempts(), 8);
        let total: Duration = (1..8).map(|a| s.delay_after(a, None, 1.0).unwrap()).sum();
        assert_eq!(total, Duration::from_secs(5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000));
        assert_eq!(s.delay_after(8, None, 1.0), None);
        assert_eq!(s.delay_after(0, None, 1.0), None);
    }

    #[test]
    fn jitter_scales_and_retry_after_is_honoured_within_bounds() {
        let s = RetrySchedule::parse("10s,1m").unwrap();
        assert_eq!(s.delay_after(1, None, 0.8), Some(Duration::from_secs(8)));
        assert_eq!(s.delay_after(1, Some(Duration::from_secs(15)), 0.8), Some(Duration::from_secs(15)));
        assert_eq!(s.delay_after(1, Some(Duration::from_secs(25)), 1.0), Some(Duration::from_secs(10)));
        assert_eq!(s.delay_after(1, Some(Duration::from_secs(2)), 1.0), Some(Duration::from_secs(10)));
        assert_eq!(s.delay_after(2, None, 1.0), Some(Duration::from_secs(60)));
    }

    #[test]
    fn durations_parse_with_their_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 5d "), Ok(Duration::from_secs(5 * 86400)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "d", "5w", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rotated_out_secret_signs_beside_the_new_one_until_its_time() {
        let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let mut w = crate::domain::tests::webhook();
        w.previous_secret = Some((old.to_owned(), 1_000));
        let header = signature_header(&w, "msg", 999, b"{}").unwrap();
        let expected = format!(
            "{} {}",
            sign(&w.secret, "msg", 999, b"{}").unwrap(),
            sign(old, "msg", 999, b"{}").unwrap()
        );
        assert_eq!(header, expected);
        assert_eq!(
            signature_header(&w, "msg", 1_000, b"{}").unwrap(),
            sign(&w.secret, "msg", 1_000, b"{}").unwrap()
        );
    }

    #[test]
    fn schedules_parse_and_refuse_nonsense() {
        assert_eq!(RetrySchedule::parse("1s, 2s,3").unwrap().max_attempts(), 4);
        for bad in ["", "x", "5d", "13h", "1s,,2s"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_sample_messages_in_events_are_valid_messages() {
        let sample: DeliveryMessage =
            serde_json::from_str(include_str!("../../../events/delivery-message.json")).unwrap();
        assert_eq!((sample.v, sample.event_type), (MESSAGE_VERSION, EventType::NewOrder));
        let batch: aws_lambda_events::sqs::SqsEvent =
            serde_json::from_str(include_str!("../../../events/dispatch-batch.json")).unwrap();
        for record in batch.records {
            let m: DeliveryMessage = serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
            assert_eq!(m.v, MESSAGE_VERSION);
            assert_eq!(record.attributes["ApproximateReceiveCount"], "1");
        }
    }

    #[test]
    fn messages_keep_the_payload_bytes_and_refuse_unknown_fields() {
        let payload = RawValue::from_string(r#"{ "orderNo" : "1000-4612",  "x": 1.50 }"#.into()).unwrap();
        let m = DeliveryMessage {
            v: MESSAGE_VERSION,
            event_id: "evt_1".into(),
            event_type: EventType::NewOrder,
            vendor_id: "ven_1".into(),
            webhook_id: 7,
            published_at: 1,
            payload,
        };
        let text = serde_json::to_string(&m).unwrap();
        let back: DeliveryMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back.payload.get(), r#"{ "orderNo" : "1000-4612",  "x": 1.50 }"#);
        assert!(serde_json::from_str::<DeliveryMessage>(&text.replace("\"v\":1", "\"v\":1,\"z\":2")).is_err());
    }
}
