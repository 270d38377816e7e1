//! Payload filters: JSON Pointer paths to conditions, all of which must hold for an event to be
//! delivered to the webhook.
use std::cmp::Ordering as Cmp;

use serde_json::{Map, Value};

use crate::domain::FieldError;

/// The largest filter accepted, as compact JSON.
pub const MAX_FILTER_BYTES: usize = 4096;

/// The most conditions a filter may have.
pub const MAX_CONDITIONS: usize = 20;

/// The operators a condition may use.
const OPERATORS: [&str; 9] = ["$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"];

/// A validated filter: the document as the vendor wrote it, and its conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    source: Map<String, Value>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    path: Vec<Segment>,
    test: Test,
}

/// One step of a path: a member (or, on an array, an index), or `*`, any element of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    AnyElement,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    /// `$gt`, `$gte`, `$lt`, `$lte`: the orderings that satisfy it, and the bound.
    Compare(&'static [Cmp], Value),
    Exists(bool),
}

impl Filter {
    /// Validates a filter as a webhook's body gives it; every refusal names `filter` and the
    /// path or operator at fault.
    pub fn parse(value: &Value) -> Result<Filter, FieldError> {
        let bad = |message: String| FieldError::malformed("filter", format!("filter {message}"));
        let Value::Object(source) = value else {
            return Err(bad("must be an object of JSON Pointer paths to conditions, or null".into()));
        };
        if source.is_empty() {
            return Err(bad("must have at least one condition (null for none)".into()));
        }
        if source.len() > MAX_CONDITIONS {
            return Err(bad(format!(
                "has {} conditions; at most {MAX_CONDITIONS} are allowed",
                source.len()
            )));
        }
        let len = serde_json::to_string(value).map(|s| s.len()).unwrap_or(usize::MAX);
        if len > MAX_FILTER_BYTES {
            return Err(bad(format!("is {len} bytes as JSON; at most {MAX_FILTER_BYTES} are allowed")));
        }
        let conditions = source
            .iter()
            .map(|(pointer, condition)| {
                let path = parse_pointer(pointer).map_err(|why| bad(format!("path {pointer:?} {why}")))?;
                let test = parse_test(condition).map_err(|why| bad(format!("at {pointer:?}: {why}")))?;
                Ok(Condition { path, test })
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(Filter { source: source.clone(), conditions })
    }

    /// The filter as the vendor wrote it.
    pub fn to_value(&self) -> Value {
        Value::Object(self.source.clone())
    }

    /// Whether an event's payload passes: every condition holds.
    pub fn matches(&self, payload: &Value) -> bool {
        self.conditions.iter().all(|c| {
            let mut found = Vec::new();
            resolve(payload, &c.path, &mut found);
            c.test.holds(&found)
        })
    }
}

/// A JSON Pointer (RFC 6901), where a segment `*` stands for any element of an array.
fn parse_pointer(pointer: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("is not a JSON Pointer: it must start with \"/\"".into());
    };
    rest.split('/')
        .map(|raw| {
            if raw == "*" {
                return Ok(Segment::AnyElement);
            }
            let mut key = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    key.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => key.push('~'),
                    Some('1') => key.push('/'),
                    _ => return Err("has a \"~\" that is not \"~0\" or \"~1\"".to_owned()),
                }
            }
            Ok(Segment::Key(key))
        })
        .collect()
}

fn parse_test(condition: &Value) -> Result<Test, String> {
    let Value::Object(map) = condition else { return Ok(Test::Eq(condition.clone())) };
    if !map.keys().any(|k| k.starts_with('$')) {
        return Ok(Test::Eq(condition.clone()));
    }
    let mut entries = map.iter();
    let (Some((op, operand)), None) = (entries.next(), entries.next()) else {
        return Err("a condition with an operator has exactly one key".into());
    };
    let list = || match operand {
        Value::Array(values) => Ok(values.clone()),
        _ => Err(format!("{op} takes an array")),
    };
    let bound = |orderings: &'static [Cmp]| match operand {
        Value::Number(_) | Value::String(_) => Ok(Test::Compare(orderings, operand.clone())),
        _ => Err(format!("{op} takes a number or a string")),
    };
    match op.as_str() {
        "$eq" => Ok(Test::Eq(operand.clone())),
        "$ne" => Ok(Test::Ne(operand.clone())),
        "$in" => list().map(Test::In),
        "$nin" => list().map(Test::Nin),
        "$gt" => bound(&[Cmp::Greater]),
        "$gte" => bound(&[Cmp::Greater, Cmp::Equal]),
        "$lt" => bound(&[Cmp::Less]),
        "$lte" => bound(&[Cmp::Less, Cmp::Equal]),
        "$exists" => match operand {
            Value::Bool(b) => Ok(Test::Exists(*b)),
            _ => Err("$exists takes true or false".into()),
        },
        _ => Err(format!("unknown operator {op:?}; allowed: {}", OPERATORS.join(", "))),
    }
}

/// Every value the path leads to: none if it leads nowhere, several through `*`.
fn resolve<'a>(value: &'a Value, path: &[Segment], found: &mut Vec<&'a Value>) {
    let Some((first, rest)) = path.split_first() else {
        found.push(value);
        return;
    };
    match (first, value) {
        (Segment::AnyElement, Value::Array(items)) => items.iter().for_each(|v| resolve(v, rest, found)),
        (Segment::Key(key), Value::Object(map)) => {
            if let Some(v) = map.get(key) {
                resolve(v, rest, found)
            }
        }
        (Segment::Key(key), Value::Array(items)) => {
            // RFC 6901: an index is digits without leading zeros.
            let index = key.parse::<usize>().ok().filter(|_| key == "0" || !key.starts_with('0'));
            if let Some(v) = index.and_then(|i| items.get(i)) {
                resolve(v, rest, found)
            }
        }
        _ => {}
    }
}

impl Test {
    /// Whether it holds for any of the values the path led to; a path that led nowhere
    /// satisfies only `{"$exists": false}`.
    fn holds(&self, found: &[&Value]) -> bool {
        match self {
            Test::Exists(wanted) => found.is_empty() != *wanted,
            Test::Eq(x) => found.iter().any(|v| same(v, x)),
            Test::Ne(x) => found.iter().any(|v| !same(v, x)),
            Test::In(xs) => found.iter().any(|v| xs.iter().any(|x| same(v, x))),
            Test::Nin(xs) => found.iter().any(|v| !xs.iter().any(|x| same(v, x))),
            Test::Compare(orderings, bound) => {
                found.iter().any(|v| compare(v, bound).is_some_and(|o| orderings.contains(&o)))
            }
        }
    }
}

/// JSON equality, where numbers are equal by value (`2` is `2.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Cmp::Equal),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

/// Numbers with numbers, strings with strings (by code point, so RFC 3339 times in one zone
/// order as times); anything else does not compare.
fn compare(a: &Value, b: &Value) -> Option<Cmp> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order() -> Value {
        json!({"orderNo": "1000-4612", "type": "new_order", "items": [
            {"skuNr": "NHCBDFSJ&P20027-1", "itemQuantity": 1, "itemPrice": 60.0},
            {"skuNr": "SKU-2", "itemQuantity": 3, "itemPrice": 5}
        ], "a/b": {"~": true}})
    }

    fn matches(filter: Value) -> bool {
        Filter::parse(&filter).unwrap().matches(&order())
    }

    #[test]
    fn the_issues_example_checks_each_condition_on_its_own() {
        let f =
            json!({"/items/*/skuNr": {"$in": ["NHCBDFSJ&P20027-1"]}, "/items/*/itemQuantity": {"$gte": 2}});
        assert!(matches(f), "one item has the SKU, another a quantity of 3");
        assert!(!matches(json!({"/items/*/skuNr": {"$in": ["NOPE"]}, "/items/*/itemQuantity": {"$gte": 2}})));
    }

    #[test]
    fn each_operator() {
        for (filter, expected) in [
            (json!({"/orderNo": "1000-4612"}), true),
            (json!({"/orderNo": {"$eq": "1000-4613"}}), false),
            (json!({"/orderNo": {"$ne": "1000-4613"}}), true),
            (json!({"/type": {"$nin": ["new_order", "x"]}}), false),
            (json!({"/items/0/itemPrice": {"$gt": 59.5}}), true),
            (json!({"/items/0/itemPrice": {"$gt": 60}}), false),
            (json!({"/items/0/itemPrice": 60}), true),
            (json!({"/items/1/itemPrice": {"$lte": 5.0}}), true),
            (json!({"/items/1/itemPrice": {"$lt": 5}}), false),
            (json!({"/orderNo": {"$gte": "1000-4612"}}), true),
            (json!({"/orderNo": {"$lt": 2000}}), false),
            (json!({"/items/2": {"$exists": false}}), true),
            (json!({"/items/01": {"$exists": true}}), false),
            (json!({"/a~1b/~0": true}), true),
            (json!({"/missing": {"$ne": 1}}), false),
            (json!({"/missing": {"$exists": false}}), true),
            (json!({"/items/1": {"skuNr": "SKU-2", "itemQuantity": 3.0, "itemPrice": 5}}), true),
            (json!({"/items/*": {"$exists": true}, "/type": {"$in": ["new_order"]}}), true),
        ] {
            assert_eq!(matches(filter.clone()), expected, "{filter}");
        }
    }

    #[test]
    fn refusals_name_filter_and_the_bad_part() {
        for (filter, message) in [
            (json!([]), "filter must be an object of JSON Pointer paths to conditions, or null"),
            (json!({}), "filter must have at least one condition (null for none)"),
            (json!({"items": 1}), "filter path \"items\" is not a JSON Pointer: it must start with \"/\""),
            (json!({"/a~2": 1}), "filter path \"/a~2\" has a \"~\" that is not \"~0\" or \"~1\""),
            (
                json!({"/a": {"$gtx": 1}}),
                "filter at \"/a\": unknown operator \"$gtx\"; allowed: $eq, $ne, $in, $nin, $gt, $gte, \
                 $lt, $lte, $exists",
            ),
            (json!({"/a": {"$in": 1}}), "filter at \"/a\": $in takes an array"),
            (json!({"/a": {"$gt": [1]}}), "filter at \"/a\": $gt takes a number or a string"),
            (json!({"/a": {"$exists": "yes"}}), "filter at \"/a\": $exists takes true or false"),
            (
                json!({"/a": {"$eq": 1, "$ne": 2}}),
                "filter at \"/a\": a condition with an operator has exactly one key",
            ),
        ] {
            let e = Filter::parse(&filter).unwrap_err();
            assert_eq!((e.field.as_str(), e.message.as_str()), ("filter", message), "{filter}");
        }
        let many: Map<String, Value> = (0..21).map(|i| (format!("/k{i}"), json!(i))).collect();
        let e = Filter::parse(&Value::Object(many)).unwrap_err();
        assert_eq!(e.message, "filter has 21 conditions; at most 20 are allowed");
        let big = json!({"/a": {"$in": ["x".repeat(4100)]}});
        assert!(Filter::parse(&big).unwrap_err().message.contains("at most 4096 are allowed"));
    }

    #[test]
    fn a_filter_keeps_the_vendors_document() {
        let f = json!({"/items/*/skuNr": {"$in": ["A"]}, "/orderNo": "1"});
        assert_eq!(Filter::parse(&f).unwrap().to_value(), f);
    }
}
