//! Reading what a request carries: its JSON body and its path id, with clear 4xx errors.
use lambda_http::{http::header, Request};
use serde_json::{Map, Value};

use crate::{error::ApiError, ids::MAX_WEBHOOK_ID};

/// The largest registration request body accepted.
pub const MAX_REGISTRATION_BODY: usize = 16 * 1024;

/// The body's bytes, declared as JSON: `415` if declared as something else, `413` above
/// `limit`, `400` if absent.
pub fn json_bytes(req: &Request, limit: usize) -> Result<&[u8], ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let media = ct.split(';').next().unwrap_or("").trim();
        if media != "application/json" && !media.ends_with("+json") {
            return Err(ApiError::unsupported_media_type());
        }
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > limit {
        return Err(ApiError::too_large(limit));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid_json", "request body is required: a JSON object"));
    }
    crate::json::check_no_duplicate_keys(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("request body is not valid JSON: {e}")))?;
    Ok(bytes)
}

/// Reads the body as a JSON object: `415` if declared as something else, `413` above `limit`,
/// `400` if absent, not JSON or not an object.
pub fn json_object(req: &Request, limit: usize) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(json_bytes(req, limit)?) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("invalid_json", "request body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request("invalid_json", format!("request body is not valid JSON: {e}"))),
    }
}

/// Refuses fields outside `allowed`, naming the first unknown one and the allowed ones.
pub fn only_fields(map: &Map<String, Value>, prefix: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let shown: String = unknown.chars().take(64).collect();
        let mut e = ApiError::bad_request(
            "invalid_field",
            format!("unknown field {prefix}{shown:?}; allowed: {}", allowed.join(", ")),
        );
        e.field = Some(format!("{prefix}{shown}"));
        return Err(e);
    }
    Ok(())
}

/// A required string field.
pub fn required_str<'a>(map: &'a Map<String, Value>, prefix: &str, name: &str) -> Result<&'a str, ApiError> {
    match map.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(field_error(prefix, name, "must be a string")),
        None => Err(field_error(prefix, name, "is required")),
    }
}

/// An optional string field; `null` counts as absent.
pub fn optional_str<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(field_error(prefix, name, "must be a string or null")),
    }
}

/// A required JSON object field.
pub fn required_object<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
    name: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    match map.get(name) {
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(field_error(prefix, name, "must be an object")),
        None => Err(field_error(prefix, name, "is required")),
    }
}

/// A required webhook id in a body: a JSON integer in `1..2^53`.
pub fn required_id(map: &Map<String, Value>, prefix: &str, name: &str) -> Result<u64, ApiError> {
    match map.get(name) {
        None => Err(field_error(prefix, name, "is required")),
        Some(v) => v
            .as_u64()
            .filter(|id| (1..=MAX_WEBHOOK_ID).contains(id))
            .ok_or_else(|| field_error(prefix, name, "must be a positive integer below 2^53")),
    }
}

fn field_error(prefix: &str, name: &str, problem: &str) -> ApiError {
    let field = format!("{prefix}{name}");
    let mut e = ApiError::bad_request("invalid_field", format!("{field} {problem}"));
    e.field = Some(field);
    e
}

/// Parses a webhook id from the path: a positive integer below 2^53, digits only.
pub fn webhook_id(raw: Option<&str>, name: &str) -> Result<u64, ApiError> {
    raw.filter(|s| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|id| (1..=MAX_WEBHOOK_ID).contains(id))
        .ok_or_else(|| {
            let mut e =
                ApiError::bad_request("invalid_id", format!("{name} must be a positive integer below 2^53"));
            e.field = Some(name.to_owned());
            e
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_must_be_positive_integers_below_2_pow_53() {
        assert_eq!(webhook_id(Some("42"), "webhookId").unwrap(), 42);
        assert_eq!(webhook_id(Some("9007199254740991"), "webhookId").unwrap(), MAX_WEBHOOK_ID);
        for bad in ["0", "-1", "1.5", "abc", "", "9007199254740992", "99999999999999999999", "+1", " 1"] {
            let e = webhook_id(Some(bad), "webhookId").unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
        assert!(webhook_id(None, "webhookId").is_err());
    }
}
