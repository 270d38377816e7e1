//! The one place errors become HTTP responses: a status, a stable code, a message for the
//! client, and the cause in the log, never in the body.
use std::error::Error as StdError;

use lambda_http::{
    http::{header, HeaderValue, StatusCode},
    Body, Response,
};
use serde::Serialize;
use serde_json::json;

use crate::{
    domain::FieldError,
    store::{Conflict, StoreError},
};

/// An error answer of the API: `{"error": {"code", "message"[, "field"]}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a status, a code and a client-facing message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, headers: Vec::new() }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// Adds `Retry-After: <seconds>`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.headers.push((header::RETRY_AFTER, HeaderValue::from(secs)));
        self
    }

    /// `400` for a request that is not what the route expects.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `401` with the challenge of the dialect's scheme.
    pub fn unauthorized(challenge: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid credentials")
            .with_header(header::WWW_AUTHENTICATE, challenge)
    }

    /// `429` for a username with too many failed sign-ins (never saying whether it exists).
    pub fn too_many_sign_ins(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sign_ins",
            format!("too many failed sign-ins for this username; try again in {retry_after_secs} s"),
        )
        .with_retry_after(retry_after_secs)
    }

    /// `404`: also the answer for another vendor's webhook, so existence never leaks.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// `405` with the methods the path does allow.
    pub fn method_not_allowed(allow: &[&str]) -> Self {
        let allow = allow.join(", ");
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this path allows only: {allow}"),
        );
        if let Ok(v) = HeaderValue::from_str(&allow) {
            e.headers.push((header::ALLOW, v));
        }
        e
    }

    /// `413` naming the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body must be at most {limit} bytes"),
        )
    }

    /// `415` for a body that is not JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request body must be JSON (Content-Type: application/json)",
        )
    }

    /// `500`: the client learns nothing of the cause, which is logged here.
    pub fn internal(cause: &(dyn StdError + 'static)) -> Self {
        tracing::error!(error = %chain(cause), "internal error");
        Self::internal_error()
    }

    /// `500` with nothing of the cause (which the caller logs).
    pub fn internal_error() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error, please retry later")
    }

    /// Turns the error into the JSON response.
    pub fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status, &self.body());
        response.headers_mut().extend(self.headers);
        response
    }

    /// The answer's body: `{"error": {"code", "message"[, "field"]}}`.
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = &self.field {
            error["field"] = json!(field);
        }
        json!({ "error": error })
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        let (status, code) = if e.not_allowed {
            (StatusCode::UNPROCESSABLE_ENTITY, "not_allowed")
        } else {
            (StatusCode::BAD_REQUEST, "invalid_field")
        };
        let mut api = Self::new(status, code, e.message);
        api.field = Some(e.field);
        api
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(Conflict::DuplicateEndpoint) => Self::new(
                StatusCode::CONFLICT,
                "duplicate",
                "a webhook for this event type and URL already exists",
            ),
            StoreError::Conflict(Conflict::UsernameTaken) => {
                Self::new(StatusCode::CONFLICT, "duplicate", "this username is taken")
            }
            StoreError::Conflict(Conflict::Concurrent) => Self::new(
                StatusCode::CONFLICT,
                "concurrent_update",
                "the webhook was changed at the same time; retry",
            ),
            other => Self::internal(&other),
        }
    }
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error and its sources on one line, for the log.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
