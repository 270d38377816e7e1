//! Publishing: what the platform sends to `POST /events`, and the payload schema of each event
//! type, taken from the two documents (required fields, types, non-negative amounts).
#[cfg(test)]
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{value::RawValue, Value};

use crate::{
    domain::{EventType, FieldError},
    fields::{self, Amount, AnyObject, Integer, List, Text},
};

/// The largest event accepted (an SQS message is at most 256 KiB).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The longest idempotency key a publisher may send.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// A validated event from the platform.
#[derive(Debug)]
pub struct PublishRequest {
    /// The publisher's idempotency key, if it sent one.
    pub id: Option<String>,
    pub vendor_id: String,
    pub event_type: EventType,
    /// The payload's bytes exactly as published: what receivers get and what is signed.
    pub payload: Box<RawValue>,
    /// The payload as a value, read once when it was validated: what filters, order keys and the
    /// idempotency fingerprint look at.
    pub value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(rename = "vendorId", default, borrow)]
    vendor_id: Option<&'a RawValue>,
    #[serde(rename = "type", default, borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

/// Why a publish request was refused: malformed JSON, or a field.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishError {
    Json(String),
    Field(FieldError),
}

impl From<FieldError> for PublishError {
    fn from(e: FieldError) -> Self {
        PublishError::Field(e)
    }
}

/// Parses and validates `{"id"?, "vendorId", "type", "payload"}`.
pub fn parse_publish(body: &[u8]) -> Result<PublishRequest, PublishError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(PublishError::Json("request body must be a JSON object".into()));
    }
    let raw: RawPublish = serde_json::from_slice(body).map_err(|e| PublishError::Json(e.to_string()))?;
    let string = |v: Option<&RawValue>, field: &str| -> Result<Option<String>, FieldError> {
        match v.map(|v| serde_json::from_str::<Value>(v.get())) {
            None | Some(Ok(Value::Null)) => Ok(None),
            Some(Ok(Value::String(s))) => Ok(Some(s)),
            _ => Err(FieldError::malformed(field, format!("{field} must be a string"))),
        }
    };
    let id = string(raw.id, "id")?;
    if let Some(id) = &id {
        let ok = (1..=MAX_EVENT_ID_LEN).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !ok {
            return Err(FieldError::malformed(
                "id",
                format!("id must be 1-{MAX_EVENT_ID_LEN} characters of letters, digits and - _ . :"),
            )
            .into());
        }
    }
    let vendor_id = string(raw.vendor_id, "vendorId")?
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .ok_or_else(|| FieldError::malformed("vendorId", "vendorId is required: the vendor's id (ven_…)"))?;
    let type_name = string(raw.event_type, "type")?.unwrap_or_default();
    let event_type = EventType::parse(&type_name).ok_or_else(|| {
        let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        FieldError::malformed("type", format!("type must be one of: {}", all.join(", ")))
    })?;
    let payload = raw.payload.ok_or_else(|| FieldError::malformed("payload", "payload is required"))?;
    let value: Value = serde_json::from_str(payload.get()).map_err(|e| PublishError::Json(e.to_string()))?;
    validate_payload(event_type, &value)?;
    Ok(PublishRequest { id, vendor_id, event_type, payload: payload.to_owned(), value })
}

/// The payload of a test event (`POST /basic/webhooks/{id}/test`): the type's shape, with values
/// that say it is a test.
pub fn test_payload(event_type: EventType) -> Value {
    use serde_json::json;
    match event_type {
        EventType::NewOrder | EventType::OrderCancellation => json!({
            "orderNo": "TEST-0000",
            "type": event_type.as_str(),
            "items": [{
                "skuNr": "TEST-SKU-1",
                "itemName": "Test item: this is a test event",
                "itemQuantity": 1,
                "itemPrice": 1.0,
                "itemTotal": 1.0
            }]
        }),
        EventType::OrdersCreated | EventType::OrdersUpdated | EventType::OrdersCancelled => json!({
            "orderId": 0,
            "channel": "test",
            "total": 1.0,
            "currency": "MXN",
            "comments": "This is a test event",
            "items": [{"title": "Test item", "price": 1.0, "itemQuantity": 1, "total": 1.0, "sku": "TEST-SKU-1"}]
        }),
        EventType::BillsCreated => json!({
            "orderId": 0,
            "billingDate": "2000-01-01T00:00:00",
            "message": "This is a test event",
            "total": 1.0,
            "customer": {"name": "Test", "businessName": "Test customer"}
        }),
        EventType::ProductsCreated | EventType::ProductsUpdated | EventType::ProductsDeleted => json!({
            "productId": 0,
            "sku": "TEST-SKU-1",
            "price": 1.0,
            "title": "Test product: this is a test event"
        }),
    }
}

/// Checks a payload against the schema of its event type; the error names the field by its
/// path (`payload.items[0].itemQuantity`). Fields beyond the schema's are kept and not checked.
pub fn validate_payload(event_type: EventType, payload: &Value) -> Result<(), FieldError> {
    match event_type {
        EventType::NewOrder | EventType::OrderCancellation => {
            let order: EcomnowOrder = fields::read_lenient(payload, "payload")?;
            if order.kind.0 != event_type.as_str() {
                return Err(FieldError::malformed(
                    "payload.type",
                    format!("payload.type must be {:?}, the event's type", event_type.as_str()),
                ));
            }
            if order.items.0.is_empty() {
                return Err(FieldError::malformed("payload.items", "payload.items must not be empty"));
            }
            for (i, item) in order.items.0.iter().enumerate() {
                if item.item_quantity.0 <= 0 {
                    return Err(item_error(i, "itemQuantity", "must be greater than 0"));
                }
            }
        }
        EventType::OrdersCreated | EventType::OrdersUpdated | EventType::OrdersCancelled => {
            let order: VentiappOrder = fields::read_lenient(payload, "payload")?;
            for (i, item) in order.items.0.iter().enumerate() {
                if item.item_quantity.0 < 0 {
                    return Err(item_error(i, "itemQuantity", "must not be negative"));
                }
            }
        }
        EventType::BillsCreated => {
            fields::read_lenient::<Bill>(payload, "payload")?;
        }
        EventType::ProductsCreated | EventType::ProductsUpdated | EventType::ProductsDeleted => {
            fields::read_lenient::<Product>(payload, "payload")?;
        }
    }
    Ok(())
}

/// The JSON Schema (draft 2020-12) of an event type's payload, as published in
/// `events/schemas/` (which the portal shows). A test derives each from the structs
/// [`validate_payload`] reads payloads into, with the rules it checks beyond their types (an
/// order's `type` is its event's, its items are not empty, quantities positive or not negative),
/// and fails if a file differs: the schemas cannot drift from the validation.
pub fn payload_schema(event_type: EventType) -> &'static str {
    match event_type {
        EventType::NewOrder => include_str!("../../events/schemas/new_order.json"),
        EventType::OrderCancellation => include_str!("../../events/schemas/order_cancellation.json"),
        EventType::OrdersCreated => include_str!("../../events/schemas/orders-created.json"),
        EventType::OrdersUpdated => include_str!("../../events/schemas/orders-updated.json"),
        EventType::OrdersCancelled => include_str!("../../events/schemas/orders-cancelled.json"),
        EventType::BillsCreated => include_str!("../../events/schemas/bills-created.json"),
        EventType::ProductsCreated => include_str!("../../events/schemas/products-created.json"),
        EventType::ProductsUpdated => include_str!("../../events/schemas/products-updated.json"),
        EventType::ProductsDeleted => include_str!("../../events/schemas/products-deleted.json"),
    }
}

fn item_error(index: usize, field: &str, problem: &str) -> FieldError {
    let path = format!("payload.items[{index}].{field}");
    FieldError::malformed(path.clone(), format!("{path} {problem}"))
}

/// eComNow's `new_order` and `order_cancellation`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(rename_all = "camelCase", expecting = "a JSON object")]
struct EcomnowOrder {
    #[serde(rename = "orderNo")]
    _order_no: Text,
    #[serde(rename = "type")]
    kind: Text,
    #[cfg_attr(test, schemars(extend("minItems" = 1)))]
    items: List<EcomnowItem>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(rename_all = "camelCase", expecting = "an object")]
struct EcomnowItem {
    #[serde(rename = "skuNr")]
    _sku_nr: Text,
    #[serde(rename = "itemName")]
    _item_name: Text,
    #[cfg_attr(test, schemars(extend("exclusiveMinimum" = 0)))]
    item_quantity: Integer,
    #[serde(rename = "itemPrice")]
    _item_price: Amount,
    #[serde(rename = "itemTotal")]
    _item_total: Amount,
}

/// Ventiapp's `orders/created`, `orders/updated` and `orders/cancelled`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(expecting = "a JSON object")]
struct VentiappOrder {
    #[serde(rename = "orderId")]
    _order_id: Integer,
    #[serde(rename = "channel")]
    _channel: Text,
    #[serde(rename = "total")]
    _total: Amount,
    #[serde(rename = "currency")]
    _currency: Text,
    items: List<VentiappItem>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(rename_all = "camelCase", expecting = "an object")]
struct VentiappItem {
    #[serde(rename = "title")]
    _title: Text,
    #[serde(rename = "price")]
    _price: Amount,
    #[cfg_attr(test, schemars(extend("minimum" = 0)))]
    item_quantity: Integer,
    #[serde(rename = "total")]
    _total: Amount,
}

/// Ventiapp's `bills/created`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(expecting = "a JSON object")]
struct Bill {
    #[serde(rename = "orderId")]
    _order_id: Integer,
    #[serde(rename = "billingDate")]
    _billing_date: Text,
    #[serde(rename = "total")]
    _total: Amount,
    #[serde(rename = "customer")]
    _customer: AnyObject,
}

/// Ventiapp's `products/created`, `products/updated` and `products/deleted`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(expecting = "a JSON object")]
struct Product {
    #[serde(rename = "productId")]
    _product_id: Integer,
    #[serde(rename = "sku")]
    _sku: Text,
    #[serde(rename = "price")]
    _price: Amount,
    #[serde(rename = "title")]
    _title: Text,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The eComNow document's notification body, with its order number quoted (see the seeds'
    /// README: `1000-4612` unquoted is not JSON).
    pub const ECOMNOW_NEW_ORDER: &str = r#"{
    "orderNo": "1000-4612",
    "type": "new_order",
    "items": [
        {
            "skuNr": "NHCBDFSJ&P20027-1",
            "itemName": "NutraHemp CBD Full Spectrum Joint and Pain Balm",
            "itemQuantity": 1,
            "itemPrice": 60.0,
            "itemTotal": 60.0
        }
    ]
}"#;

    fn publish(event_type: &str, payload: &str) -> Result<PublishRequest, PublishError> {
        let body = format!(r#"{{"vendorId": "ven_x", "type": "{event_type}", "payload": {payload}}}"#);
        parse_publish(body.as_bytes())
    }

    fn field_of(r: Result<PublishRequest, PublishError>) -> String {
        match r {
            Err(PublishError::Field(f)) => f.field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_ecomnow_example_is_accepted_and_kept_byte_for_byte() {
        let req = publish("new_order", ECOMNOW_NEW_ORDER).unwrap();
        assert_eq!(req.payload.get(), ECOMNOW_NEW_ORDER);
        assert_eq!(req.event_type, EventType::NewOrder);
        assert_eq!(req.id, None);
        // Its unquoted order number, as printed in the document, is not JSON.
        let as_printed = ECOMNOW_NEW_ORDER.replace("\"1000-4612\"", "1000-4612");
        assert!(matches!(publish("new_order", &as_printed), Err(PublishError::Json(_))));
    }

    #[test]
    fn ecomnow_payload_errors_name_the_field() {
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_str(ECOMNOW_NEW_ORDER).unwrap();
            f(&mut v);
            field_of(publish("new_order", &v.to_string()))
        };
        assert_eq!(with(&|v| v["orderNo"] = json!(1000)), "payload.orderNo");
        assert_eq!(with(&|v| v["type"] = json!("order_cancellation")), "payload.type");
        assert_eq!(with(&|v| v["items"] = json!([])), "payload.items");
        assert_eq!(with(&|v| v["items"][0]["itemQuantity"] = json!(0)), "payload.items[0].itemQuantity");
        assert_eq!(with(&|v| v["items"][0]["itemQuantity"] = json!(1.5)), "payload.items[0].itemQuantity");
        assert_eq!(with(&|v| v["items"][0]["itemPrice"] = json!(-1)), "payload.items[0].itemPrice");
        assert_eq!(with(&|v| v["items"][0]["itemTotal"] = json!("60")), "payload.items[0].itemTotal");
        assert_eq!(
            with(&|v| {
                v["items"][0].as_object_mut().unwrap().remove("skuNr");
            }),
            "payload.items[0].skuNr"
        );
    }

    #[test]
    fn ventiapp_payloads_need_their_key_fields() {
        assert!(publish(
            "products/deleted",
            r#"{"productId": 3182093, "sku": "AA123", "price": 99.99, "title": "Olla"}"#
        )
        .is_ok());
        assert_eq!(
            field_of(publish(
                "products/created",
                r#"{"productId": "3182093", "sku": "AA123", "price": 1, "title": "x"}"#
            )),
            "payload.productId"
        );
        assert!(publish(
            "bills/created",
            r#"{"orderId": 1234, "billingDate": "2018-06-06T00:00:00", "total": 660.0, "customer": {}}"#
        )
        .is_ok());
        assert_eq!(
            field_of(publish(
                "bills/created",
                r#"{"orderId": 1234, "billingDate": "x", "total": -1, "customer": {}}"#
            )),
            "payload.total"
        );
        let order = r#"{"orderId": 1234, "channel": "meli", "total": 660.0, "currency": "MXN",
            "items": [{"title": "Item 1", "price": 460.0, "itemQuantity": 1, "total": 460.0}]}"#;
        assert!(publish("orders/created", order).is_ok());
        assert_eq!(
            field_of(publish("orders/updated", &order.replace("\"MXN\"", "null"))),
            "payload.currency"
        );
    }

    #[test]
    fn test_payloads_are_valid_payloads_of_their_type() {
        for t in EventType::ALL {
            assert_eq!(validate_payload(t, &test_payload(t)), Ok(()), "{t}");
        }
    }

    #[test]
    fn payload_refusals_read_field_then_problem() {
        let message = |t: EventType, v: Value| validate_payload(t, &v).unwrap_err().message;
        let mut order: Value = serde_json::from_str(ECOMNOW_NEW_ORDER).unwrap();
        order["items"][0]["itemQuantity"] = json!(0);
        assert_eq!(
            message(EventType::NewOrder, order.clone()),
            "payload.items[0].itemQuantity must be greater than 0"
        );
        order["items"] = json!([7]);
        assert_eq!(message(EventType::NewOrder, order.clone()), "payload.items[0] must be an object");
        order["items"] = json!({});
        assert_eq!(message(EventType::NewOrder, order.clone()), "payload.items must be an array");
        order["orderNo"] = json!(5);
        assert_eq!(message(EventType::NewOrder, order), "payload.orderNo must be a string");
        let bill = json!({"orderId": 1, "billingDate": "x", "total": 1, "customer": []});
        assert_eq!(message(EventType::BillsCreated, bill), "payload.customer must be an object");
        let product = json!({"productId": 1.5, "sku": "a", "price": 1, "title": "t"});
        assert_eq!(message(EventType::ProductsUpdated, product), "payload.productId must be an integer");
        let product = json!({"productId": 1, "sku": null, "price": -2, "title": "t"});
        assert_eq!(message(EventType::ProductsUpdated, product), "payload.sku is required");
        assert_eq!(message(EventType::ProductsDeleted, json!("x")), "payload must be a JSON object");
    }

    /// An event type's payload schema, derived from the structs that validate its payloads.
    fn derived_schema(event_type: EventType) -> Value {
        let mut schema = match event_type {
            EventType::NewOrder | EventType::OrderCancellation => schemars::schema_for!(EcomnowOrder),
            EventType::OrdersCreated | EventType::OrdersUpdated | EventType::OrdersCancelled => {
                schemars::schema_for!(VentiappOrder)
            }
            EventType::BillsCreated => schemars::schema_for!(Bill),
            EventType::ProductsCreated | EventType::ProductsUpdated | EventType::ProductsDeleted => {
                schemars::schema_for!(Product)
            }
        }
        .to_value();
        if let Some(kind) = schema.pointer_mut("/properties/type") {
            kind["const"] = Value::from(event_type.as_str());
        }
        schema["title"] = Value::from(format!("{} payload", event_type.as_str()));
        schema
    }

    /// `events/schemas/` holds each derived schema; `UPDATE_SCHEMAS=1` writes them again.
    #[test]
    fn the_published_schemas_are_the_ones_derived_from_the_validation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/schemas");
        // Keys sorted, whatever order serde_json keeps maps in (its `preserve_order` feature is
        // on in some builds of the workspace and off in others).
        fn sorted(v: Value) -> Value {
            match v {
                Value::Object(map) => {
                    let map: std::collections::BTreeMap<String, Value> =
                        map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                    Value::Object(map.into_iter().collect())
                }
                Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
                other => other,
            }
        }
        let derived = |t: EventType| sorted(derived_schema(t));
        let path = |t: EventType| dir.join(format!("{}.json", t.as_str().replace('/', "-")));
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            for t in EventType::ALL {
                std::fs::write(path(t), serde_json::to_string_pretty(&derived(t)).unwrap() + "\n").unwrap();
            }
        }
        for t in EventType::ALL {
            let hint = format!("{}: run UPDATE_SCHEMAS=1 cargo test -p shared", path(t).display());
            let published: Value =
                serde_json::from_str(payload_schema(t)).expect("a published schema is JSON");
            assert_eq!(published, derived(t), "{hint}");
        }
        let s: Value = serde_json::from_str(payload_schema(EventType::NewOrder)).unwrap();
        assert_eq!(s["properties"]["type"]["const"], "new_order");
        let required: Vec<&str> =
            s["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(required, ["orderNo", "type", "items"]);
        assert_eq!(s["properties"]["items"]["minItems"], 1);
        let item = &s["properties"]["items"]["items"];
        let item = match item.get("$ref").and_then(Value::as_str) {
            Some(r) => s.pointer(r.trim_start_matches('#')).unwrap(),
            None => item,
        };
        assert_eq!(item["properties"]["itemQuantity"], json!({"type": "integer", "exclusiveMinimum": 0}));
        assert_eq!(item["properties"]["itemPrice"], json!({"type": "number", "minimum": 0}));
        let p: Value = serde_json::from_str(payload_schema(EventType::ProductsDeleted)).unwrap();
        assert_eq!(p["properties"]["productId"], json!({"type": "integer"}));
        assert!(p["properties"].get("type").is_none());
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(field_of(parse_publish(br#"{"type": "new_order", "payload": {}}"#)), "vendorId");
        assert_eq!(
            field_of(parse_publish(br#"{"vendorId": "v", "type": "orders/create", "payload": {}}"#)),
            "type"
        );
        assert_eq!(field_of(parse_publish(br#"{"vendorId": "v", "type": "new_order"}"#)), "payload");
        assert_eq!(
            field_of(parse_publish(br#"{"id": "a b", "vendorId": "v", "type": "new_order", "payload": {}}"#)),
            "id"
        );
        assert_eq!(
            field_of(parse_publish(br#"{"id": 5, "vendorId": "v", "type": "new_order", "payload": {}}"#)),
            "id"
        );
        assert!(
            matches!(parse_publish(br#"{"vendorId": "v", "extra": 1}"#), Err(PublishError::Json(m)) if m.contains("extra"))
        );
        assert!(matches!(parse_publish(b"[]"), Err(PublishError::Json(_))));
        assert_eq!(field_of(publish("new_order", "[1]")), "payload");
    }
}
