//! Local-stack tooling: reads the resources of `template.yaml` and creates them in the
//! emulator, so the local table is the deployed table, attribute for attribute.
pub mod bridge;
pub mod leading_keys;
pub mod runtime;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_dynamodb::{
    types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    },
    Client,
};
use serde_yaml::Value;
use shared::{
    clock::now,
    domain::{EventType, Vendor, Webhook, WebhookSpec},
    ids,
    store::{ApiToken, Conflict, DynamoStore, StoreError, TokenStore, WebhookStore},
};

/// The demo vendor's id on the local stack, fixed so that the sample events can name it.
pub const DEMO_VENDOR_ID: &str = "ven_demo";

/// The id of the demo vendor's webhook that the sample events in `events/` act on.
pub const DEMO_WEBHOOK_ID: u64 = 1000;

/// The demo vendor's bearer token on the local stack (the sample events use it). Local only:
/// real tokens are random, issued by `webhooks-admin token create`.
pub const DEMO_TOKEN: &str = "vwt_local-demo-token-do-not-use-in-production";

/// Issues the demo token if it is not there; true if it was created.
pub async fn ensure_demo_token(store: &DynamoStore, demo: &Vendor) -> Result<bool> {
    let record = ApiToken {
        token_id: "tok_localdemo".into(),
        vendor: demo.clone(),
        label: Some("local stack demo token".into()),
        created_at: now(),
    };
    match store.create_token(&record, &shared::auth::token_hash(DEMO_TOKEN)).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(anyhow!(shared::error::chain(&e))),
    }
}

/// Creates the demo webhook if it is not there; true if it was created.
pub async fn ensure_demo_webhook(store: &DynamoStore, demo: &Vendor) -> Result<bool> {
    let spec = WebhookSpec {
        event_type: EventType::NewOrder,
        url: "https://example.com/webhooks/demo".into(),
        authentication: None,
        max_in_flight: None,
        options: Default::default(),
    };
    let webhook = Webhook::new(DEMO_WEBHOOK_ID, &demo.vendor_id, spec, ids::signing_secret(), now());
    match store.insert_webhook(&webhook).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(Conflict::IdTaken | Conflict::DuplicateEndpoint)) => Ok(false),
        Err(e) => Err(anyhow!(shared::error::chain(&e))),
    }
}

/// The table definition taken from the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    pub logical_id: String,
    pub attributes: Vec<(String, String)>,
    pub key_schema: Vec<(String, String)>,
    pub ttl_attribute: Option<String>,
    pub indexes: Vec<IndexDefinition>,
}

/// A global secondary index of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefinition {
    pub name: String,
    /// (attribute, `HASH` or `RANGE`)
    pub key_schema: Vec<(String, String)>,
    /// `ALL` or `KEYS_ONLY`.
    pub projection: String,
}

/// Parses `template.yaml` (CloudFormation tags such as `!Ref` are kept as tagged values).
pub fn parse_template(text: &str) -> Result<Value> {
    serde_yaml::from_str(text).context("template.yaml is not valid YAML")
}

/// The resources of a given `Type`, as (logical id, properties).
pub fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    let Some(resources) = template.get("Resources").and_then(Value::as_mapping) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
        .filter_map(|(id, r)| Some((id.as_str()?.to_owned(), r.get("Properties")?)))
        .collect()
}

/// The one DynamoDB table of the template.
pub fn table_definition(template: &Value) -> Result<TableDefinition> {
    let tables = resources_of_type(template, "AWS::DynamoDB::Table");
    let [(logical_id, props)] = tables.as_slice() else {
        bail!("template.yaml must define exactly one AWS::DynamoDB::Table, found {}", tables.len());
    };
    let pairs_of = |props: &Value, key: &str, a: &str, b: &str| -> Result<Vec<(String, String)>> {
        props
            .get(key)
            .and_then(Value::as_sequence)
            .ok_or_else(|| anyhow!("table {logical_id} has no {key}"))?
            .iter()
            .map(|e| {
                let get = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
                Ok((get(a).context(a.to_owned())?, get(b).context(b.to_owned())?))
            })
            .collect()
    };
    let pairs = |key: &str, a: &str, b: &str| pairs_of(props, key, a, b);
    let mut indexes = Vec::new();
    for index in props.get("GlobalSecondaryIndexes").and_then(Value::as_sequence).into_iter().flatten() {
        let name = index.get("IndexName").and_then(Value::as_str).context("an index without IndexName")?;
        let projection =
            index.get("Projection").and_then(|p| p.get("ProjectionType")).and_then(Value::as_str);
        let Some(projection @ ("ALL" | "KEYS_ONLY")) = projection else {
            bail!("index {name}: the local stack makes indexes that project ALL or KEYS_ONLY");
        };
        let key_schema = pairs_of(index, "KeySchema", "AttributeName", "KeyType")?;
        indexes.push(IndexDefinition {
            name: name.to_owned(),
            key_schema,
            projection: projection.to_owned(),
        });
    }
    let ttl = props.get("TimeToLiveSpecification");
    let ttl_enabled = ttl.and_then(|t| t.get("Enabled")).and_then(Value::as_bool) == Some(true);
    Ok(TableDefinition {
        logical_id: logical_id.clone(),
        attributes: pairs("AttributeDefinitions", "AttributeName", "AttributeType")?,
        key_schema: pairs("KeySchema", "AttributeName", "KeyType")?,
        ttl_attribute: ttl
            .filter(|_| ttl_enabled)
            .and_then(|t| t.get("AttributeName"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        indexes,
    })
}

/// A queue of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDefinition {
    pub logical_id: String,
    pub visibility_timeout: Option<i64>,
    pub retention: Option<i64>,
    pub maximum_message_size: Option<i64>,
    /// (dead-letter queue's logical id, maxReceiveCount)
    pub redrive: Option<(String, i64)>,
    /// A FIFO queue (its local name ends in `.fifo`, as SQS requires).
    pub fifo: bool,
}

/// Resolves a number that may be a literal or `!Ref` to a parameter's default.
fn number(template: &Value, v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        Value::Tagged(t) if t.tag == "Ref" => {
            let name = t.value.as_str()?;
            number(template, template.get("Parameters")?.get(name)?.get("Default")?)
        }
        _ => None,
    }
}

/// The template's SQS queues.
pub fn queue_definitions(template: &Value) -> Result<Vec<QueueDefinition>> {
    resources_of_type(template, "AWS::SQS::Queue")
        .into_iter()
        .map(|(logical_id, props)| {
            let redrive = match props.get("RedrivePolicy") {
                None => None,
                Some(r) => {
                    let target = match r.get("deadLetterTargetArn") {
                        Some(Value::Tagged(t)) if t.tag == "GetAtt" => {
                            t.value.as_str().and_then(|s| s.strip_suffix(".Arn")).map(str::to_owned)
                        }
                        _ => None,
                    }
                    .with_context(|| {
                        format!("{logical_id}: deadLetterTargetArn must be !GetAtt <Queue>.Arn")
                    })?;
                    let max = r
                        .get("maxReceiveCount")
                        .and_then(|v| number(template, v))
                        .with_context(|| format!("{logical_id}: maxReceiveCount"))?;
                    Some((target, max))
                }
            };
            Ok(QueueDefinition {
                visibility_timeout: props.get("VisibilityTimeout").and_then(|v| number(template, v)),
                retention: props.get("MessageRetentionPeriod").and_then(|v| number(template, v)),
                maximum_message_size: props.get("MaximumMessageSize").and_then(|v| number(template, v)),
                fifo: props.get("FifoQueue").and_then(Value::as_bool) == Some(true),
                logical_id,
                redrive,
            })
        })
        .collect()
}

/// A queue as created: its URL and ARN.
#[derive(Debug, Clone)]
pub struct LocalQueue {
    pub url: String,
    pub arn: String,
}

/// Creates the template's queues (idempotently), dead-letter queues first. `visibility`
/// overrides the template's value, so tests can compress time.
pub async fn ensure_queues(
    client: &aws_sdk_sqs::Client,
    prefix: &str,
    defs: &[QueueDefinition],
    visibility: Option<i64>,
) -> Result<std::collections::BTreeMap<String, LocalQueue>> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let mut made = std::collections::BTreeMap::new();
    let mut order: Vec<&QueueDefinition> = defs.iter().filter(|d| d.redrive.is_none()).collect();
    order.extend(defs.iter().filter(|d| d.redrive.is_some()));
    for def in order {
        let suffix = if def.fifo { ".fifo" } else { "" };
        let name = format!("{prefix}-{}{suffix}", def.logical_id);
        let mut req = client.create_queue().queue_name(&name);
        if def.fifo {
            req = req.attributes(A::FifoQueue, "true");
        }
        if let Some(v) = visibility.or(def.visibility_timeout) {
            req = req.attributes(A::VisibilityTimeout, v.to_string());
        }
        if let Some(r) = def.retention {
            req = req.attributes(A::MessageRetentionPeriod, r.to_string());
        }
        if let Some(m) = def.maximum_message_size {
            req = req.attributes(A::MaximumMessageSize, m.to_string());
        }
        if let Some((dlq, max)) = &def.redrive {
            let target: &LocalQueue = made.get(dlq).with_context(|| format!("no queue {dlq}"))?;
            let policy = format!(r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":{}}}"#, target.arn, max);
            req = req.attributes(A::RedrivePolicy, policy);
        }
        let url = req
            .send()
            .await
            .map_err(|e| anyhow!(shared::error::chain(&e)))
            .with_context(|| format!("creating queue {name}"))?
            .queue_url
            .context("no queue URL")?;
        let attrs = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(A::QueueArn)
            .send()
            .await
            .map_err(|e| anyhow!(shared::error::chain(&e)))?;
        let arn = attrs.attributes().and_then(|a| a.get(&A::QueueArn)).cloned().context("no queue ARN")?;
        made.insert(def.logical_id.clone(), LocalQueue { url, arn });
    }
    Ok(made)
}

/// Creates the table if it does not exist (idempotent), with its TTL setting.
pub async fn ensure_table(client: &Client, name: &str, def: &TableDefinition) -> Result<bool> {
    let keys = |schema: &[(String, String)]| -> Result<Vec<KeySchemaElement>> {
        schema
            .iter()
            .map(|(n, k)| {
                Ok(KeySchemaElement::builder()
                    .attribute_name(n)
                    .key_type(KeyType::from(k.as_str()))
                    .build()?)
            })
            .collect()
    };
    let attributes = def
        .attributes
        .iter()
        .map(|(n, t)| {
            Ok(AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::from(t.as_str()))
                .build()?)
        })
        .collect::<Result<Vec<_>>>()?;
    let index = |i: &IndexDefinition| {
        let projection =
            Projection::builder().projection_type(ProjectionType::from(i.projection.as_str())).build();
        Ok::<_, anyhow::Error>(
            GlobalSecondaryIndex::builder()
                .index_name(&i.name)
                .set_key_schema(Some(keys(&i.key_schema)?))
                .projection(projection)
                .build()?,
        )
    };
    if client.describe_table().table_name(name).send().await.is_ok() {
        return Ok(false);
    }
    let indexes = def.indexes.iter().map(index).collect::<Result<Vec<_>>>()?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(keys(&def.key_schema)?))
        .set_global_secondary_indexes(Some(indexes).filter(|i| !i.is_empty()))
        .send()
        .await
        .map_err(|e| anyhow!(shared::error::chain(&e)))
        .context("creating the table")?;
    if let Some(attr) = &def.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().attribute_name(attr).enabled(true).build()?,
            )
            .send()
            .await
            .map_err(|e| anyhow!(shared::error::chain(&e)))
            .context("enabling TTL")?;
    }
    Ok(true)
}

/// Makes a throwaway CA and a certificate for `localhost` and `127.0.0.1` signed by it, for
/// https receivers on the local stack (dispatch trusts the CA through `EXTRA_CA_FILE`). Keeps
/// what `dir` already holds.
pub fn ensure_local_tls(dir: &std::path::Path) -> Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let (ca_file, cert_file, key_file) = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    if ca_file.exists() && cert_file.exists() && key_file.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "order-webhooks local test CA");
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;
    std::fs::write(&ca_file, ca_cert.pem())?;
    std::fs::write(&cert_file, leaf_cert.pem())?;
    std::fs::write(&key_file, leaf_key.serialize_pem())?;
    Ok(())
}
