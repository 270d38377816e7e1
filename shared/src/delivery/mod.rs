//! Delivery: the message between publish and dispatch, signatures, the retry schedule, and the
//! HTTP sender.
use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;

use crate::domain::{EventType, Webhook};

mod connections;
mod http;
pub use http::{DeliverySettings, HttpDeliverer, USER_AGENT};

/// The version of [`DeliveryMessage`] this code writes; dispatch refuses others.
pub const MESSAGE_VERSION: u32 = 1;

/// One SQS message: one event for one webhook. The contract between publish and dispatch.
/// Its payload is owned where a message is made (`Box<RawValue>`), and borrowed from the SQS
/// record where dispatch reads one (`&RawValue`: the payload is not copied to be sent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryMessage<P = Box<RawValue>> {
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
    pub payload: P,
    /// Which attempt this message is for, from 1. dispatch counts attempts itself: a retry is a
    /// new message with the next number, so a crash, a timeout or a throttled batch (which SQS
    /// counts as receives) never uses one up.
    #[serde(default = "first_attempt", skip_serializing_if = "is_first_attempt")]
    pub attempt: u32,
    /// Not to be attempted before this time (Unix milliseconds): a retry's backoff, which may
    /// outlast the 15 minutes SQS can delay a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<i64>,
}

fn first_attempt() -> u32 {
    1
}

fn is_first_attempt(n: &u32) -> bool {
    *n == 1
}

/// A message as dispatch reads it, its payload borrowed from the SQS record.
pub type ReceivedMessage<'a> = DeliveryMessage<&'a RawValue>;

impl DeliveryMessage {
    /// The first attempt's message of an event for a webhook.
    pub fn first(
        event_id: String,
        event_type: EventType,
        vendor_id: String,
        webhook_id: u64,
        published_at: i64,
        payload: Box<RawValue>,
    ) -> Self {
        Self {
            v: MESSAGE_VERSION,
            event_id,
            event_type,
            vendor_id,
            webhook_id,
            published_at,
            payload,
            attempt: 1,
            not_before_ms: None,
        }
    }

    /// The longest any message of this event can be, in bytes: with the longest webhook id,
    /// attempt number and wait, as a retry carries them, and a payload of `payload_len` bytes
    /// (the payload is embedded as it is, so only its length counts).
    pub fn longest_body_len(
        event_id: &str,
        event_type: EventType,
        vendor_id: &str,
        payload_len: usize,
    ) -> usize {
        let mut longest = Self::first(
            event_id.to_owned(),
            event_type,
            vendor_id.to_owned(),
            u64::MAX,
            i64::MIN,
            RawValue::from_string("0".to_owned()).expect("0 is JSON"),
        );
        (longest.attempt, longest.not_before_ms) = (u32::MAX, Some(i64::MIN));
        longest.to_body().len() - 1 + payload_len
    }
}

impl<P: Serialize> DeliveryMessage<P> {
    /// The message as it goes on the queue.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a delivery message serialises")
    }
}

/// Why a signing secret could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the signing secret is not whsec_ and base64")]
pub struct BadSecret;

/// The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`
/// under the secret's key bytes.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    // The key on the stack (Standard Webhooks' secrets are 24 to 64 bytes), a longer one on the heap.
    let mut buf = [0u8; 64];
    let longer;
    let key = match STANDARD.decode_slice(encoded, &mut buf) {
        Ok(n) => &buf[..n],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            longer = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
            &longer[..]
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => return Err(BadSecret),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| BadSecret)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    let mut digits = [0u8; 20];
    let len = {
        let mut rest = &mut digits[..];
        std::io::Write::write_fmt(&mut rest, format_args!("{timestamp}")).map_err(|_| BadSecret)?;
        20 - rest.len()
    };
    mac.update(&digits[..len]);
    mac.update(b".");
    mac.update(body);
    let mut signature = String::with_capacity(47);
    signature.push_str("v1,");
    STANDARD.encode_string(mac.finalize().into_bytes(), &mut signature);
    Ok(signature)
}

/// The `webhook-signature` header of a delivery: the webhook's secret's signature, and each
/// former secret's while it is within its grace period, space-separated as Standard Webhooks
/// has it, so that receivers can change secrets without missing a delivery.
pub fn signature_header(
    webhook: &Webhook,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let mut header = sign(&webhook.secret, msg_id, timestamp, body)?;
    for (old, until) in &webhook.previous_secrets {
        if *until > timestamp {
            header.push(' ');
            header.push_str(&sign(old, msg_id, timestamp, body)?);
        }
    }
    Ok(header)
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
    /// The longest a receiver's `Retry-After` is waited for.
    retry_after_cap: Duration,
}

/// The longest wait between two attempts: SQS's 12-hour visibility limit, so that a message
/// waits out any backoff in at most two receives (a 15-minute delay, then one hiding).
pub const MAX_BACKOFF: Duration = Duration::from_secs(12 * 3600);

/// How long a `Retry-After` is honoured by default: an hour.
pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

impl RetrySchedule {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about 28 hours.
    pub fn standard() -> Self {
        Self::parse("5s,5m,30m,2h,5h,10h,10h").expect("the standard schedule parses")
    }

    /// Parses `5s,5m,2h`: durations (see [`parse_duration`]), from 1 s to 12 h each
    /// ([`MAX_BACKOFF`]).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let delays = spec
            .split(',')
            .map(|d| {
                let delay = parse_duration(d)?;
                if delay > MAX_BACKOFF {
                    return Err(format!("{} is over the 12 h a message can wait between attempts", d.trim()));
                }
                if delay.is_zero() {
                    return Err("a delay of 0 would retry at once: use 1s or more".to_owned());
                }
                Ok(delay)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err("the schedule needs at least one delay".into());
        }
        Ok(Self { delays, retry_after_cap: DEFAULT_RETRY_AFTER_CAP })
    }

    /// Honours a receiver's `Retry-After` up to `cap` (at most [`MAX_BACKOFF`]).
    pub fn with_retry_after_cap(self, cap: Duration) -> Result<Self, String> {
        if cap > MAX_BACKOFF {
            return Err("over the 12 h a message can wait between attempts".into());
        }
        Ok(Self { retry_after_cap: cap, ..self })
    }

    /// How many attempts a delivery gets.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// How long after the first attempt attempt `attempt` is due, without jitter (attempt 1 at
    /// zero); `None` past the last. What a delivery that waits in place (an ordered one) keeps
    /// time by: its number is where its age falls in the schedule.
    pub fn due_after_first(&self, attempt: u32) -> Option<Duration> {
        let steps = attempt.checked_sub(1)? as usize;
        (steps < self.max_attempts() as usize).then(|| self.delays[..steps].iter().sum())
    }

    /// The attempt a delivery first tried `age` ago is at: the last whose time has come, a
    /// quarter of a second's slack allowed between SQS's clock and ours.
    pub fn attempt_at(&self, age: Duration) -> u32 {
        let age = age + Duration::from_millis(250);
        (2..=self.max_attempts())
            .take_while(|&n| self.due_after_first(n).is_some_and(|due| due <= age))
            .last()
            .unwrap_or(1)
    }

    /// The wait after failed attempt `attempt` (1-based): the scheduled delay scaled by `jitter`
    /// (0.8 to 1.2 in production, against thundering herds), or longer if the receiver's
    /// `Retry-After` asks for longer, up to the cap; never over [`MAX_BACKOFF`]. `None` after
    /// the last.
    pub fn delay_after(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
        let scheduled = self.delays.get(attempt.checked_sub(1)? as usize)?.mul_f64(jitter.clamp(0.5, 1.5));
        let asked = retry_after.unwrap_or_default().min(self.retry_after_cap);
        Some(scheduled.max(asked).min(MAX_BACKOFF))
    }
}

/// A webhook's circuit breaker: after `after` failed attempts in a row its deliveries wait,
/// unattempted, and every `probe_after` (doubling up to eight times as the failures go on) one
/// of them tries the receiver; the first success closes the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    after: u32,
    probe_after: Duration,
}

impl CircuitBreaker {
    /// A breaker opening after `after` failures (at least 1), probing every `probe_after`
    /// (1 s to 1 h); the setting at fault if not.
    pub fn new(after: u32, probe_after: Duration) -> Result<Self, (&'static str, String)> {
        if after == 0 {
            return Err(("CIRCUIT_BREAKER_AFTER", "must be 1 or more (or off)".into()));
        }
        if probe_after < Duration::from_secs(1) || probe_after > Duration::from_secs(3600) {
            return Err(("CIRCUIT_PROBE_AFTER", "must be from 1s to 1h".into()));
        }
        Ok(Self { after, probe_after })
    }

    /// How long the circuit stays open after `failures` failed attempts in a row; `None` below
    /// the threshold.
    pub fn open_for(&self, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.after)?;
        Some(self.probe_after * (1 << beyond.min(3)))
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (IMF-fixdate, as RFC 9110 has
/// senders write it) read against `now` (Unix seconds). `None` for anything else, and the
/// schedule applies; a date in the past asks for no wait.
pub fn parse_retry_after(value: &str, now: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format).ok()?.assume_utc().unix_timestamp();
    Some(Duration::from_secs(at.saturating_sub(now).max(0) as u64))
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
    /// A stored header of the webhook's own cannot be sent (registration refuses such headers;
    /// this guards older records).
    BadHeader,
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
            Failure::BadHeader => "bad_header",
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
    /// The webhook's own headers, sent before the signature's (which they cannot replace).
    pub headers: &'a [(String, String)],
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
        // A key longer than the stack's buffer, and a negative timestamp, signed as HMAC has it.
        let key: Vec<u8> = (0..100u8).collect();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(b"msg_1.-1614265330.{}");
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(
            sign(&format!("whsec_{}", STANDARD.encode(&key)), "msg_1", -1614265330, b"{}").unwrap(),
            expected
        );
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
    fn an_ordered_deliverys_attempt_is_where_its_age_falls_in_the_schedule() {
        let s = RetrySchedule::parse("10s,1m").unwrap();
        assert_eq!(s.due_after_first(1), Some(Duration::ZERO));
        assert_eq!(s.due_after_first(3), Some(Duration::from_secs(70)));
        assert_eq!(s.due_after_first(4), None);
        assert_eq!(s.attempt_at(Duration::ZERO), 1);
        assert_eq!(s.attempt_at(Duration::from_millis(9_800)), 2, "a moment early is on time");
        assert_eq!(s.attempt_at(Duration::from_secs(9)), 1);
        assert_eq!(s.attempt_at(Duration::from_secs(30)), 2);
        assert_eq!(s.attempt_at(Duration::from_secs(70)), 3);
        assert_eq!(s.attempt_at(Duration::from_secs(86_400)), 3, "never past the last");
    }

    #[test]
    fn jitter_scales_and_retry_after_is_honoured_up_to_its_cap() {
        let s = RetrySchedule::parse("10s,1m").unwrap();
        assert_eq!(s.delay_after(1, None, 0.8), Some(Duration::from_secs(8)));
        assert_eq!(s.delay_after(1, Some(Duration::from_secs(15)), 0.8), Some(Duration::from_secs(15)));
        assert_eq!(s.delay_after(1, Some(Duration::from_secs(60)), 1.0), Some(Duration::from_secs(60)));
        assert_eq!(
            s.delay_after(1, Some(Duration::from_secs(2)), 1.0),
            Some(Duration::from_secs(10)),
            "never sooner"
        );
        assert_eq!(s.delay_after(2, None, 1.0), Some(Duration::from_secs(60)));
        assert_eq!(s.delay_after(1, Some(Duration::from_secs(86_400)), 1.0), Some(DEFAULT_RETRY_AFTER_CAP));
        let capped = s.clone().with_retry_after_cap(Duration::from_secs(30)).unwrap();
        assert_eq!(capped.delay_after(1, Some(Duration::from_secs(600)), 1.0), Some(Duration::from_secs(30)));
        assert!(s.clone().with_retry_after_cap(Duration::from_secs(13 * 3600)).is_err());
        let long = RetrySchedule::parse("12h").unwrap();
        assert_eq!(long.delay_after(1, None, 1.2), Some(MAX_BACKOFF), "jitter never takes a wait past 12 h");
    }

    #[test]
    fn the_circuit_opens_at_its_threshold_and_probes_less_often_as_failures_go_on() {
        let c = CircuitBreaker::new(5, Duration::from_secs(60)).unwrap();
        assert_eq!(c.open_for(4), None);
        assert_eq!(c.open_for(5), Some(Duration::from_secs(60)));
        assert_eq!(c.open_for(6), Some(Duration::from_secs(120)));
        assert_eq!(c.open_for(8), Some(Duration::from_secs(480)));
        assert_eq!(c.open_for(80), Some(Duration::from_secs(480)), "eight times at most");
        assert!(CircuitBreaker::new(0, Duration::from_secs(60)).is_err());
        assert!(CircuitBreaker::new(5, Duration::from_secs(7200)).is_err());
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = 784_111_717; // Sun, 06 Nov 1994 08:48:37 GMT
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:47:37 GMT", now), Some(Duration::ZERO));
        for bad in
            ["", "-5", "1.5", "soon", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 +0100"]
        {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
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
        w.previous_secrets = vec![(old.to_owned(), 1_000)];
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
        for bad in ["", "x", "5d", "13h", "1s,,2s", "0s", "1s,0"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_sample_messages_in_events_are_valid_messages() {
        let sample: DeliveryMessage =
            serde_json::from_str(include_str!("../../../events/delivery-message.json")).unwrap();
        assert_eq!((sample.v, sample.event_type), (MESSAGE_VERSION, EventType::NewOrder));
        let batch: crate::sqs_batch::SqsEvent =
            serde_json::from_str(include_str!("../../../events/dispatch-batch.json")).unwrap();
        for record in batch.records {
            let m: DeliveryMessage = serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
            assert_eq!(m.v, MESSAGE_VERSION);
            assert!(record.message_id.is_some() && record.receipt_handle.is_some());
        }
    }

    #[test]
    fn messages_keep_the_payload_bytes_and_refuse_unknown_fields() {
        let payload = RawValue::from_string(r#"{ "orderNo" : "1000-4612",  "x": 1.50 }"#.into()).unwrap();
        let mut m =
            DeliveryMessage::first("evt_1".into(), EventType::NewOrder, "ven_1".into(), 7, 1, payload);
        let text = m.to_body();
        assert!(!text.contains("attempt") && !text.contains("notBeforeMs"), "{text}");
        let back: DeliveryMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back.payload.get(), r#"{ "orderNo" : "1000-4612",  "x": 1.50 }"#);
        assert!(serde_json::from_str::<DeliveryMessage>(&text.replace("\"v\":1", "\"v\":1,\"z\":2")).is_err());
        assert_eq!((back.attempt, back.not_before_ms), (1, None));

        (m.attempt, m.not_before_ms) = (3, Some(1_795_510_800_000));
        let retry: DeliveryMessage = serde_json::from_str(&m.to_body()).unwrap();
        assert_eq!((retry.attempt, retry.not_before_ms), (3, Some(1_795_510_800_000)));
        assert!(
            m.to_body().len()
                <= DeliveryMessage::longest_body_len(
                    "evt_1",
                    EventType::NewOrder,
                    "ven_1",
                    m.payload.get().len()
                )
        );
        (m.webhook_id, m.attempt, m.not_before_ms, m.published_at) =
            (u64::MAX, u32::MAX, Some(i64::MIN), i64::MIN);
        let exact =
            DeliveryMessage::longest_body_len("evt_1", EventType::NewOrder, "ven_1", m.payload.get().len());
        assert_eq!(m.to_body().len(), exact, "the longest message, measured without its payload");
    }
}
