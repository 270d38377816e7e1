//! Reading what a request carries: its JSON body and its path id, with clear 4xx errors.
use lambda_http::{http::header, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{error::ApiError, fields, ids::MAX_WEBHOOK_ID};

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

/// Reads the body, declared as JSON, into `T`: `415` if declared as something else, `413` above
/// `limit`, `400` if absent, not JSON, not an object, or with a field `T` refuses (naming it).
pub fn json_body<T: DeserializeOwned>(req: &Request, limit: usize) -> Result<T, ApiError> {
    match serde_json::from_slice::<Value>(json_bytes(req, limit)?) {
        Ok(value) => object(&value),
        Err(e) => Err(ApiError::bad_request("invalid_json", format!("request body is not valid JSON: {e}"))),
    }
}

/// Reads a request body's JSON into `T` ([`fields::read`]): it must be an object, with only the
/// fields `T` declares.
pub fn object<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::bad_request("invalid_json", "request body must be a JSON object"));
    }
    Ok(fields::read(value, "")?)
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
    use crate::api::{ecomnow, ventiapp};
    use serde_json::json;

    /// Every refusal of a registration body: the field it names and its exact message.
    #[test]
    fn body_refusals_name_the_field_with_a_fixed_message() {
        const LOCAL: crate::urls::TargetPolicy =
            crate::urls::TargetPolicy { allow_private: true, allow_http: true };
        let ecomnow = |v: Value| object(&v).and_then(|b| ecomnow::spec_from_body(b, LOCAL)).map(|_| ());
        let ventiapp = |v: Value| object(&v).and_then(|b| ventiapp::spec_from_body(b, LOCAL)).map(|_| ());
        let delete = |v: Value| object(&v).map(ventiapp::id_from_body).map(|_| ());
        let notifications = |v: Value| object(&v).and_then(ecomnow::notifications_from_body).map(|_| ());
        let ok = json!({"webhookType": "new_order", "url": "http://127.0.0.1:9/"});
        let with = |k: &str, v: Value| {
            let mut b = ok.clone();
            b[k] = v;
            b
        };
        let cases: Vec<(Result<(), ApiError>, &str, &str)> = vec![
            (
                ecomnow(with("hook", json!(1))),
                "hook",
                "unknown field \"hook\"; allowed: authentication, webhookType, url, method, maxInFlight, filter, \
                 ordering, headers",
            ),
            (ecomnow(json!({"url": "http://127.0.0.1:9/"})), "webhookType", "webhookType is required"),
            (ecomnow(with("url", json!(5))), "url", "url must be a string"),
            (ecomnow(with("url", Value::Null)), "url", "url must be a string"),
            (
                ecomnow(with("authentication", json!(1))),
                "authentication",
                "authentication must be a string or null",
            ),
            (ecomnow(with("method", json!([]))), "method", "method must be a string or null"),
            (ecomnow(with("method", json!("GET"))), "method", "method must be POST"),
            (
                ecomnow(with("maxInFlight", json!(0))),
                "maxInFlight",
                "maxInFlight must be a whole number from 1 to 100",
            ),
            (
                ecomnow(with("maxInFlight", json!(101))),
                "maxInFlight",
                "maxInFlight must be a whole number from 1 to 100",
            ),
            (
                ecomnow(with("maxInFlight", json!("3"))),
                "maxInFlight",
                "maxInFlight must be a whole number from 1 to 100",
            ),
            (
                ecomnow(with("maxInFlight", json!(1.5))),
                "maxInFlight",
                "maxInFlight must be a whole number from 1 to 100",
            ),
            (
                ecomnow(with("filter", json!({"/orderNo": {"$regex": "x"}}))),
                "filter",
                "filter at \"/orderNo\": unknown operator \"$regex\"; allowed: $eq, $ne, $in, $nin, $gt, \
                 $gte, $lt, $lte, $exists",
            ),
            (ecomnow(with("filter", json!("x"))), "filter", "filter must be an object of JSON Pointer paths to conditions, or null"),
            (ecomnow(with("ordering", json!("fifo"))), "ordering", "ordering must be one of: none, per_order"),
            (
                ecomnow(with("headers", json!({"Host": "a.example"}))),
                "headers",
                "headers name \"Host\" is reserved: the service sets it",
            ),
            (ventiapp(json!({})), "webhook", "webhook is required"),
            (ventiapp(json!({"webhook": "x"})), "webhook", "webhook must be an object"),
            (ventiapp(json!({"hook": {}})), "hook", "unknown field \"hook\"; allowed: webhook"),
            (
                ventiapp(
                    json!({"webhook": {"topic": "bills/created", "address": "https://a/", "format": "xml"}}),
                ),
                "webhook.format",
                "unknown field webhook.\"format\"; allowed: topic, address",
            ),
            (
                ventiapp(json!({"webhook": {"address": "https://a/"}})),
                "webhook.topic",
                "webhook.topic is required",
            ),
            (
                ventiapp(json!({"webhook": {"topic": 7, "address": "https://a/"}})),
                "webhook.topic",
                "webhook.topic must be a string",
            ),
            (delete(json!({"webhook": {}})), "webhook.id", "webhook.id is required"),
            (
                delete(json!({"webhook": {"id": "7"}})),
                "webhook.id",
                "webhook.id must be a positive integer below 2^53",
            ),
            (
                delete(json!({"webhook": {"id": 9007199254740992u64}})),
                "webhook.id",
                "webhook.id must be a positive integer below 2^53",
            ),
            (
                delete(json!({"webhook": {"id": 7, "url": "x"}})),
                "webhook.url",
                "unknown field webhook.\"url\"; allowed: id, address, topic, created_at, api_version",
            ),
            (notifications(json!({"notify": []})), "email", "email is required (null for none)"),
            (notifications(json!({"email": 5, "notify": []})), "email", "email must be a string or null"),
            (notifications(json!({"email": null})), "notify", "notify is required ([] for none)"),
            (
                notifications(json!({"email": null, "notify": null})),
                "notify",
                "notify must be an array of names",
            ),
            (notifications(json!({"email": null, "notify": [1]})), "notify", "notify must hold strings"),
            (
                notifications(json!({"email": null, "notify": vec!["new_order"; 17]})),
                "notify",
                "notify holds at most 16 names",
            ),
        ];
        for (i, (result, field, message)) in cases.into_iter().enumerate() {
            let e = result.expect_err(message);
            assert_eq!((e.status.as_u16(), e.code), (400, "invalid_field"), "case {i}: {message}");
            assert_eq!((e.field.as_deref(), e.message.as_str()), (Some(field), message), "case {i}");
        }
        let e = object::<ecomnow::WebhookBody>(&json!([ok])).err().unwrap();
        assert_eq!((e.code, e.message.as_str()), ("invalid_json", "request body must be a JSON object"));
    }

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
