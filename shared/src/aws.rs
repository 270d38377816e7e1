//! The AWS SDK configuration every binary uses, on the one HTTPS client of [`crate::https`].
//!
//! Deployed functions read it from the Lambda environment alone ([`lambda_sdk_config`]): Lambda
//! hands every function its region and its role's credentials as environment variables, and
//! `AWS_ENDPOINT_URL` points the clients at an emulator locally. The operator's tools take the
//! SDK's whole default chain ([`sdk_config`]: profiles, SSO, instance roles), which the
//! functions do not need and would carry in every binary.
use std::time::Duration;

use aws_config::{
    environment::credentials::EnvironmentVariableCredentialsProvider, retry::RetryConfig,
    timeout::TimeoutConfig, BehaviorVersion, Region, SdkConfig,
};
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::TokioSleep;

use crate::https::SdkHttpClient;

fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    SdkHttpClient::shared()
}

/// The SDK configuration of the default chain, for the operator's tools.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).load().await
}

/// How long one AWS call may take, its retries included: less than the shortest function time
/// limit (10 s), so that a hung DynamoDB, SQS or SES call ends in an error the function
/// handles, never in the function being killed mid-request.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// How long one try of a call may take before it is retried.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Tries per call: the SDK's standard retries, with their backoff, within [`OPERATION_TIMEOUT`].
pub const MAX_ATTEMPTS: u32 = 3;

/// The SDK configuration of a Lambda function: the region of `AWS_REGION` (or
/// `AWS_DEFAULT_REGION`), credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL` if set, the SDK's standard retries, and deadlines on
/// every call.
pub fn lambda_sdk_config() -> SdkConfig {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).map(Region::new);
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .http_client(http_client())
        .sleep_impl(TokioSleep::new())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                // The connect timeout the default chain would set.
                .connect_timeout(Duration::from_millis(3100))
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
    builder.set_endpoint_url(env("AWS_ENDPOINT_URL"));
    // The function names itself in every call's user agent (`app/<name>`): CloudTrail shows who
    // called, and the local emulator records which keys each function reads and writes, to
    // check the template's per-function `dynamodb:LeadingKeys` against (scripts/test.sh).
    builder.set_app_name(env("AWS_LAMBDA_FUNCTION_NAME").and_then(|n| aws_config::AppName::new(n).ok()));
    builder.build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lambda_configuration_is_read_from_the_environment() {
        // Only this test touches these variables in this process.
        std::env::set_var("AWS_REGION", "eu-west-3");
        std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:4566");
        let c = super::lambda_sdk_config();
        assert_eq!(c.region().map(|r| r.as_ref()), Some("eu-west-3"));
        assert_eq!(c.endpoint_url(), Some("http://127.0.0.1:4566"));
        assert!(c.credentials_provider().is_some() && c.sleep_impl().is_some());
        let timeouts = c.timeout_config().unwrap();
        assert_eq!(timeouts.operation_timeout(), Some(super::OPERATION_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(super::ATTEMPT_TIMEOUT));
        assert_eq!(c.retry_config().unwrap().max_attempts(), super::MAX_ATTEMPTS);
    }

    /// An endpoint that takes connections and never answers: a call ends in an error within
    /// its deadline instead of waiting for ever.
    #[tokio::test]
    async fn a_call_to_an_endpoint_that_never_answers_fails_within_its_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let config = super::lambda_sdk_config()
            .into_builder()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::for_tests(),
            ))
            .endpoint_url(url)
            .build();
        let client = aws_sdk_dynamodb::Client::new(&config);
        let started = std::time::Instant::now();
        let out = client
            .get_item()
            .table_name("t")
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
            .send()
            .await;
        let took = started.elapsed();
        assert!(out.is_err(), "no answer is an error");
        assert!(took <= super::OPERATION_TIMEOUT + std::time::Duration::from_secs(1), "{took:?}");
        held.abort();
    }
}
