//! The AWS SDK configuration every binary uses, with one HTTP client on rustls and ring.
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
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// The SDK configuration of the default chain, for the operator's tools.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).load().await
}

/// The SDK configuration of a Lambda function: the region of `AWS_REGION` (or
/// `AWS_DEFAULT_REGION`), credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL` if set, and the SDK's standard retries.
pub fn lambda_sdk_config() -> SdkConfig {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).map(Region::new);
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .http_client(http_client())
        .sleep_impl(TokioSleep::new())
        .retry_config(RetryConfig::standard())
        // The connect timeout the default chain would set.
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_millis(3100)).build());
    builder.set_endpoint_url(env("AWS_ENDPOINT_URL"));
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
    }
}
