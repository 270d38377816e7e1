//! Sending email: the port `send-email` uses, and its Amazon SES (v2) adapter.
use std::{future::Future, time::Duration};

use aws_sdk_sesv2::{
    config::timeout::TimeoutConfig,
    error::{ProvideErrorMetadata, SdkError},
    operation::send_email::SendEmailError,
    types::{Body, Content, Destination, EmailContent, Message, MessageTag},
    Client,
};

use crate::notify::Mail;

/// Why an email was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Refused for good (the address is invalid, unverified or suppressed, the message rejected):
    /// sending it again would be refused again.
    #[error("refused: {0}")]
    Refused(String),
    /// The service could not take it now (throttled, unreachable, paused): try again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Refused for the operator's reason, not the vendor's: the sender is not a verified
    /// identity. No vendor address is to blame; the email waits (and ends in the dead-letter
    /// queue, for a replay) until the operator verifies the sender.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

/// Sends one email; the answer is the provider's message id.
pub trait Mailer: Send + Sync {
    fn send(&self, mail: &Mail) -> impl Future<Output = Result<String, MailError>> + Send;
}

/// The SES implementation: simple content (SES builds the multipart/alternative message, text
/// and HTML, UTF-8) from one verified sender address.
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    from: String,
    /// The configuration set whose event destination reports bounces and complaints.
    configuration_set: Option<String>,
}

impl SesMailer {
    /// Wraps a client and the sender address (an SES identity, or an address of one).
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self { client, from: from.into(), configuration_set: None }
    }

    /// Sends through `name`: SES then reports bounces and complaints to its event destination.
    pub fn with_configuration_set(self, name: Option<String>) -> Self {
        Self { configuration_set: name.filter(|n| !n.trim().is_empty()), ..self }
    }

    /// The mailer of the settings: `EMAIL_SENDER` names the sender; unset or empty, emails are
    /// off (`None`). `EMAIL_CONFIGURATION_SET`, if set, is sent through (bounces, complaints).
    /// Calls are bounded (5 s each), so that an email never holds a batch for long.
    pub fn from_config(config: &crate::config::Config, aws: &aws_config::SdkConfig) -> Option<Self> {
        let from = config.email_sender.clone()?;
        let sdk = aws_sdk_sesv2::config::Builder::from(aws)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .operation_timeout(Duration::from_secs(10))
                    .build(),
            )
            .build();
        let client = Client::from_conf(sdk);
        Some(Self::new(client, from).with_configuration_set(config.email_configuration_set.clone()))
    }
}

fn utf8(data: &str) -> Result<Content, MailError> {
    Content::builder().data(data).charset("UTF-8").build().map_err(|e| MailError::Refused(e.to_string()))
}

impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let content = EmailContent::builder()
            .simple(
                Message::builder()
                    .subject(utf8(&mail.subject)?)
                    .body(Body::builder().text(utf8(&mail.text)?).html(utf8(&mail.html)?).build())
                    .build(),
            )
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(content)
            .set_configuration_set_name(self.configuration_set.clone())
            .email_tags(
                MessageTag::builder()
                    .name(crate::email_events::VENDOR_TAG)
                    .value(&mail.vendor_id)
                    .build()
                    .map_err(|e| MailError::Refused(e.to_string()))?,
            )
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.message_id().unwrap_or_default().to_owned()),
            Err(SdkError::ServiceError(e)) => Err(classify(e.err(), &self.from)),
            Err(e) => Err(MailError::Unavailable(crate::error::chain(&e))),
        }
    }
}

/// Refusals that are about this message or its address are for good; the account's or the
/// service's state (throttling, a paused or suspended account, an unverified sending domain)
/// can change, so those are retried, within the queue's bounded attempts.
fn classify(e: &SendEmailError, sender: &str) -> MailError {
    let message = e.message().unwrap_or("no reason given").to_owned();
    // SES names the identities that failed its check: the sender among them is the operator's
    // to fix, whatever else is wrong.
    if message.to_ascii_lowercase().contains(&sender.to_ascii_lowercase()) {
        return MailError::Misconfigured(format!("{}: {message}", e.code().unwrap_or("MessageRejected")));
    }
    match e {
        SendEmailError::MessageRejected(_) | SendEmailError::BadRequestException(_) => {
            MailError::Refused(format!("{}: {message}", e.code().unwrap_or("MessageRejected")))
        }
        _ if matches!(
            e.code(),
            Some("MessageRejected" | "InvalidParameterValue" | "BadRequestException")
        ) =>
        {
            MailError::Refused(format!("{}: {message}", e.code().unwrap_or_default()))
        }
        _ => MailError::Unavailable(format!("{}: {message}", e.code().unwrap_or("error"))),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sesv2::types::error::MessageRejected;

    use super::*;

    fn rejected(message: &str) -> SendEmailError {
        let meta =
            aws_sdk_sesv2::error::ErrorMetadata::builder().code("MessageRejected").message(message).build();
        SendEmailError::MessageRejected(MessageRejected::builder().message(message).meta(meta).build())
    }

    #[test]
    fn an_unverified_sender_is_the_operators_error_and_a_recipient_the_vendors() {
        let sender = "notifications@webhooks.example";
        let e = rejected("Email address is not verified. The following identities failed the check in region US-EAST-1: Notifications@webhooks.example");
        assert!(matches!(classify(&e, sender), MailError::Misconfigured(_)));
        let e = rejected("Email address is not verified. The following identities failed the check in region US-EAST-1: vendor@shop.example");
        assert!(matches!(classify(&e, sender), MailError::Refused(_)));
    }
}
