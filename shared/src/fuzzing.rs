//! The properties the fuzz targets (`fuzz/`) check, one function per target, so that the
//! regression tests (`fuzz/regressions/<target>/`, run by `cargo test`) check the same ones on
//! stable Rust. Each panics when its property does not hold, as libFuzzer wants.
use std::net::IpAddr;

use url::Host;

use crate::{
    api::{request, routes},
    delivery::DeliveryMessage,
    domain::{self, Dialect},
    events, json,
    urls::{self, TargetPolicy},
};

/// A fuzz target's check: panics when its property does not hold for the input.
pub type Check = fn(&[u8]);

/// Every fuzz target: its name and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("publish_request", publish_request),
    ("strict_json", strict_json),
    ("target_url", target_url),
    ("route_and_id", route_and_id),
    ("delivery_message", delivery_message),
    ("authentication", authentication),
];

/// `POST /events` bodies: parsed or refused, never a panic; what is accepted keeps its payload
/// byte for byte and passes its type's schema again.
pub fn publish_request(data: &[u8]) {
    if let Ok(event) = events::parse_publish(data) {
        let payload = event.payload.get();
        let text = String::from_utf8_lossy(data);
        assert!(text.contains(payload), "the payload is a slice of the body");
        let value: serde_json::Value = serde_json::from_str(payload).expect("accepted payloads are JSON");
        assert_eq!(events::validate_payload(event.event_type, &value), Ok(()));
        assert!(!event.vendor_id.is_empty() && event.vendor_id.len() <= 64);
    }
}

/// The strict JSON check accepts nothing serde_json would not parse, and nothing with a key twice.
pub fn strict_json(data: &[u8]) {
    if json::check_no_duplicate_keys(data).is_ok() {
        let value: serde_json::Value = serde_json::from_slice(data).expect("strict JSON is JSON");
        // Parsing into a map keeps one of each key: re-serialised, nothing may have been lost.
        let again = serde_json::to_vec(&value).unwrap();
        assert!(json::check_no_duplicate_keys(&again).is_ok());
    }
}

/// Webhook URLs: whatever is accepted under the production policy is https, has no user-info,
/// is at most 2,048 characters and names no literal internal address.
pub fn target_url(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let policy = TargetPolicy { allow_private: false, allow_http: false };
    if let Ok(url) = urls::validate_target_url("url", raw, policy) {
        assert_eq!(url.scheme(), "https", "{raw:?}");
        assert!(url.username().is_empty() && url.password().is_none(), "{raw:?}");
        assert!(url.as_str().len() <= 2048, "{raw:?}");
        match url.host() {
            Some(Host::Ipv4(ip)) => assert!(!urls::is_forbidden_ip(IpAddr::V4(ip)), "{raw:?}"),
            Some(Host::Ipv6(ip)) => assert!(!urls::is_forbidden_ip(IpAddr::V6(ip)), "{raw:?}"),
            Some(Host::Domain(d)) => assert!(!d.is_empty(), "{raw:?}"),
            None => panic!("accepted without a host: {raw:?}"),
        }
    }
}

/// Routing and path ids: any method and path resolves or not, ids are 1..2^53 or refused.
pub fn route_and_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (method, path) = text.split_once(' ').unwrap_or(("GET", text));
    if let routes::Resolved::Route(route, param) = routes::resolve(method, path) {
        assert_eq!(route.method, method);
        if let Ok(id) = request::webhook_id(param, "webhookId") {
            assert!((1..=crate::ids::MAX_WEBHOOK_ID).contains(&id));
            assert_eq!(Some(id.to_string().as_str()), param.map(|p| p.trim_start_matches('0')));
        }
    }
}

/// SQS bodies as dispatch reads them: decoded or refused, and what decodes re-encodes to itself.
pub fn delivery_message(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<DeliveryMessage>(data) {
        let again = serde_json::to_string(&m).unwrap();
        let back: DeliveryMessage = serde_json::from_str(&again).expect("a message re-reads");
        assert_eq!(
            (back.event_id, back.webhook_id, back.payload.get()),
            (m.event_id, m.webhook_id, m.payload.get())
        );
    }
}

/// `authentication` values: what is accepted is a valid HTTP header value (no CR, LF or
/// control characters: no header injection), and event types parse only to their own names.
pub fn authentication(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(Some(v)) = domain::validate_authentication("authentication", Some(text)) {
        assert!(v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)), "{v:?}");
        assert!(lambda_http::http::HeaderValue::from_str(&v).is_ok(), "{v:?}");
    }
    for dialect in [Dialect::Ecomnow, Dialect::Ventiapp] {
        if let Ok(t) = domain::parse_event_type("type", text, dialect) {
            assert_eq!(t.as_str(), text);
        }
    }
}
