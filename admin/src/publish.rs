//! `webhooks-admin publish`: an event to `POST /events`, signed with SigV4 as the deployed API's
//! IAM authorizer requires, with the caller's AWS credentials: the platform's first publish needs
//! no tool of its own.
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context, Result};
use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::{
    http_request::{sign, SignableBody, SignableRequest, SigningSettings},
    sign::v4,
};

/// Signs `body` for `POST <api>/events` (service `execute-api`, the configuration's region) and
/// sends it; the API's status and answer.
pub async fn publish(aws: &SdkConfig, api: &str, body: Vec<u8>) -> Result<(u16, String)> {
    let url = format!("{}/events", api.trim_end_matches('/'));
    let provider = aws.credentials_provider().context("no AWS credentials are configured")?;
    let credentials = provider.provide_credentials().await.map_err(|e| anyhow!("AWS credentials: {e}"))?;
    let identity = credentials.into();
    let region = aws.region().map(|r| r.to_string()).context("no AWS region is configured")?;
    let params: aws_sigv4::http_request::SigningParams = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("execute-api")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| anyhow!("signing parameters: {e}"))?
        .into();
    let parsed = url::Url::parse(&url)?;
    let host = parsed.host_str().context("the API URL has no host")?;
    let host = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let headers = [("content-type", "application/json"), ("host", host.as_str())];
    let signable =
        SignableRequest::new("POST", url.as_str(), headers.into_iter(), SignableBody::Bytes(&body))
            .map_err(|e| anyhow!("the request cannot be signed: {e}"))?;
    let (instructions, _) = sign(signable, &params).map_err(|e| anyhow!("signing: {e}"))?.into_parts();
    let mut request =
        reqwest::Client::builder().no_proxy().build()?.post(&url).header("content-type", "application/json");
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let response = request.body(body).send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    if !(200..300).contains(&status) {
        bail!("{url} answered {status}: {text}");
    }
    Ok((status, text))
}
