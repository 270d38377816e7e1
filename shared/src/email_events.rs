//! What SES learns after accepting an email: a permanent bounce (the mailbox does not exist) or a
//! complaint (the recipient marked it as spam). Both arrive later, through the configuration set's
//! SNS topic, and both mark the vendor's address refused, as a synchronous refusal does: nothing
//! more is sent to it until the vendor sets it again. Sending on to a dead mailbox would bounce
//! forever, and SES suspends accounts whose bounce or complaint rates stay high.
use aws_lambda_events::sns::SnsEvent;
use serde::Deserialize;

use crate::store::{NotifyStore, StoreError};

/// The email tag that names the vendor an email was for (see `SesMailer`).
pub const VENDOR_TAG: &str = "vendor";

/// An SES event, as the configuration set publishes it (the fields used here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesEvent {
    /// `Bounce`, `Complaint`, … (`notificationType` in identity notifications).
    #[serde(alias = "notificationType")]
    event_type: String,
    #[serde(default)]
    bounce: Option<Bounce>,
    #[serde(default)]
    complaint: Option<Complaint>,
    mail: MailInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: String,
    #[serde(default)]
    bounced_recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    #[serde(default)]
    complained_recipients: Vec<Recipient>,
    #[serde(default)]
    complaint_feedback_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
    #[serde(default)]
    diagnostic_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MailInfo {
    #[serde(default)]
    tags: std::collections::HashMap<String, Vec<String>>,
}

/// An address to mark refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub vendor_id: String,
    pub email: String,
    pub reason: String,
}

/// The refusals an SES event carries: none for a transient bounce, a delivery or an event that
/// is not about one of our vendors' emails.
pub fn refusals(message: &str) -> Result<Vec<Refusal>, serde_json::Error> {
    let event: SesEvent = serde_json::from_str(message)?;
    let Some(vendor_id) = event.mail.tags.get(VENDOR_TAG).and_then(|v| v.first()).cloned() else {
        return Ok(Vec::new());
    };
    let refused = |r: &Recipient, reason: String| Refusal {
        vendor_id: vendor_id.clone(),
        email: r.email_address.clone(),
        reason,
    };
    Ok(match (event.event_type.as_str(), &event.bounce, &event.complaint) {
        ("Bounce", Some(b), _) if b.bounce_type == "Permanent" => b
            .bounced_recipients
            .iter()
            .map(|r| {
                let detail = r.diagnostic_code.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
                refused(r, format!("the address bounced ({}){detail}", b.bounce_sub_type))
            })
            .collect(),
        ("Complaint", _, Some(c)) => c
            .complained_recipients
            .iter()
            .map(|r| {
                let kind = c.complaint_feedback_type.as_deref().unwrap_or("complaint");
                refused(r, format!("the recipient reported an email as unwanted ({kind})"))
            })
            .collect(),
        _ => Vec::new(),
    })
}

/// Handles one SNS delivery of SES events; the answer is how many refusals they carried (an
/// address the vendor has changed since is left as it is). A message that is not an SES event is
/// logged and skipped (SNS would only deliver it again); a store failure fails the invocation, so
/// that Lambda retries it.
pub async fn handle<S: NotifyStore>(store: &S, event: &SnsEvent, now: i64) -> Result<usize, StoreError> {
    let mut marked = 0;
    for record in &event.records {
        let found = match refusals(&record.sns.message) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, message_id = %record.sns.message_id, "not an SES event: skipped");
                continue;
            }
        };
        for r in found {
            tracing::warn!(vendor = %r.vendor_id, reason = %r.reason, "the vendor's address is refused from now on");
            store.refuse_email(&r.vendor_id, &r.email, now, &r.reason).await?;
            marked += 1;
        }
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounce(kind: &str) -> String {
        format!(
            r#"{{"eventType":"Bounce","bounce":{{"bounceType":"{kind}","bounceSubType":"General",
            "bouncedRecipients":[{{"emailAddress":"v@vendors.example","diagnosticCode":"smtp; 550 5.1.1 user unknown"}}],
            "timestamp":"2026-11-24T10:00:00.000Z","feedbackId":"x"}},
            "mail":{{"timestamp":"2026-11-24T09:59:59.000Z","source":"notifications@webhooks.example",
            "messageId":"m1","destination":["v@vendors.example"],"tags":{{"vendor":["ven_abc"],"ses:configuration-set":["x"]}}}}}}"#
        )
    }

    #[test]
    fn a_permanent_bounce_refuses_the_address_with_its_diagnostic() {
        let r = refusals(&bounce("Permanent")).unwrap();
        assert_eq!(
            r,
            vec![Refusal {
                vendor_id: "ven_abc".into(),
                email: "v@vendors.example".into(),
                reason: "the address bounced (General): smtp; 550 5.1.1 user unknown".into()
            }]
        );
        assert!(refusals(&bounce("Transient")).unwrap().is_empty(), "a full mailbox is not a refusal");
    }

    #[test]
    fn a_complaint_refuses_and_other_events_do_not() {
        let complaint = r#"{"eventType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"v@vendors.example"}],
            "complaintFeedbackType":"abuse"},"mail":{"tags":{"vendor":["ven_abc"]}}}"#;
        assert_eq!(
            refusals(complaint).unwrap()[0].reason,
            "the recipient reported an email as unwanted (abuse)"
        );
        let delivery = r#"{"eventType":"Delivery","delivery":{},"mail":{"tags":{"vendor":["ven_abc"]}}}"#;
        assert!(refusals(delivery).unwrap().is_empty());
        let untagged = bounce("Permanent").replace(r#""vendor":["ven_abc"],"#, "");
        assert!(refusals(&untagged).unwrap().is_empty(), "not one of our vendors' emails");
        assert!(refusals("{}").is_err() && refusals("not json").is_err());
    }
}
