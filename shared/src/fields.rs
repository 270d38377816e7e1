//! Typed reading of JSON documents, with errors that name the field.
//!
//! Request bodies and event payloads are read into `#[derive(Deserialize)]` structs through
//! [`serde_path_to_error`], from a [`Value`] that has already passed the duplicate-key check.
//! The deserializer here reports its errors as a [`Problem`] that keeps serde's structure (which
//! field is unknown, which is missing, what was expected) instead of a sentence with a line and
//! column in it, so that every refusal reads `<field> <problem>` and names the field as the
//! client spelled it (`webhook.address`, `payload.items[0].itemQuantity`).
//!
//! - A struct's fields are visited in their declared order, and in a strict read an unknown key is
//!   refused before any value is looked at (`unknown field "x"; allowed: a, b`).
//! - A wrong type reads `must be <what the visitor expects>`: give a struct
//!   `#[serde(expecting = "an object")]`, and a wrapper type its own `expecting`.
//! - [`Error::custom`](serde::de::Error::custom) messages are the problem alone (`must not be
//!   negative`): the field is put in front of them.
use std::fmt;

use serde::{
    de::{
        self, value::MapDeserializer, value::SeqDeserializer, DeserializeOwned, Expected, IntoDeserializer,
        Unexpected, Visitor,
    },
    forward_to_deserialize_any, Deserialize, Deserializer,
};
use serde_json::Value;

use crate::domain::FieldError;

/// Why a document was refused, as serde reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A key the struct does not have, and the ones it has.
    Unknown { field: String, allowed: &'static [&'static str] },
    /// A field the struct needs and the document lacks.
    Missing(&'static str),
    /// A value of the wrong type or out of range: `must be <expected>`.
    Expected(String),
    /// Any other problem, phrased to follow the field's name.
    Other(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unknown { field, .. } => write!(f, "unknown field {field:?}"),
            Problem::Missing(field) => write!(f, "{field} is required"),
            Problem::Expected(what) => write!(f, "must be {what}"),
            Problem::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Problem {}

impl de::Error for Problem {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Problem::Other(msg.to_string())
    }

    fn invalid_type(_: Unexpected, expected: &dyn Expected) -> Self {
        Problem::Expected(expected.to_string())
    }

    fn invalid_value(_: Unexpected, expected: &dyn Expected) -> Self {
        Problem::Expected(expected.to_string())
    }

    fn invalid_length(_: usize, expected: &dyn Expected) -> Self {
        Problem::Expected(expected.to_string())
    }

    fn unknown_field(field: &str, allowed: &'static [&'static str]) -> Self {
        Problem::Unknown { field: field.to_owned(), allowed }
    }

    fn missing_field(field: &'static str) -> Self {
        Problem::Missing(field)
    }
}

/// Reads `value` as a `T`, naming fields under `prefix` (`""` for a request body, `"payload"`
/// for an event's payload). Strict: an object with a key its struct does not declare is refused.
pub fn read<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, FieldError> {
    read_with(value, prefix, true)
}

/// As [`read`], but keys a struct does not declare are ignored (payloads carry more fields than
/// the ones checked).
pub fn read_lenient<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, FieldError> {
    read_with(value, prefix, false)
}

fn read_with<T: DeserializeOwned>(value: &Value, prefix: &str, strict: bool) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(ValueDe { value, strict }).map_err(|e| {
        let mut at = prefix.to_owned();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => at.push_str(&format!("[{index}]")),
                serde_path_to_error::Segment::Map { key } => {
                    if !at.is_empty() {
                        at.push('.');
                    }
                    at.push_str(key);
                }
                serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
            }
        }
        let under = |name: &str| if at.is_empty() { name.to_owned() } else { format!("{at}.{name}") };
        match e.into_inner() {
            Problem::Unknown { field, allowed } => {
                let shown: String = field.chars().take(64).collect();
                let parent = if at.is_empty() { String::new() } else { format!("{at}.") };
                FieldError::malformed(
                    format!("{parent}{shown}"),
                    format!("unknown field {parent}{shown:?}; allowed: {}", allowed.join(", ")),
                )
            }
            Problem::Missing(name) => {
                let field = under(name);
                FieldError::malformed(field.clone(), format!("{field} is required"))
            }
            Problem::Expected(what) => FieldError::malformed(at.clone(), format!("{at} must be {what}")),
            Problem::Other(message) => FieldError::malformed(at.clone(), format!("{at} {message}")),
        }
    })
}

/// A deserializer over a [`Value`] whose errors are [`Problem`]s.
#[derive(Clone, Copy)]
struct ValueDe<'a> {
    value: &'a Value,
    strict: bool,
}

impl<'a> ValueDe<'a> {
    fn at(self, value: &'a Value) -> Self {
        ValueDe { value, strict: self.strict }
    }
}

impl<'de, 'a> IntoDeserializer<'de, Problem> for ValueDe<'a> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de, 'a> Deserializer<'de> for ValueDe<'a> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(|v| self.at(v)));
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Value::Object(map) => {
                visitor.visit_map(MapDeserializer::new(map.iter().map(|(k, v)| (k.as_str(), self.at(v)))))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Problem> {
        // Only an object: serde's structs would also take an array, field by position.
        let Value::Object(map) = self.value else {
            let unexpected = match self.value {
                Value::Null => Unexpected::Unit,
                Value::Bool(b) => Unexpected::Bool(*b),
                Value::Number(_) => Unexpected::Other("a number"),
                Value::String(s) => Unexpected::Str(s),
                _ => Unexpected::Seq,
            };
            return Err(de::Error::invalid_type(unexpected, &visitor));
        };
        if self.strict {
            if let Some(unknown) = map.keys().find(|k| !fields.contains(&k.as_str())) {
                return Err(Problem::Unknown { field: unknown.clone(), allowed: fields });
            }
        }
        // The declared fields first, in the struct's order: the first refusal is the first field
        // a reader of the struct would check.
        let declared = fields.iter().filter_map(|f| map.get_key_value(*f));
        let rest = map.iter().filter(|(k, _)| !fields.contains(&k.as_str()));
        visitor.visit_map(MapDeserializer::new(declared.chain(rest).map(|(k, v)| (k.as_str(), self.at(v)))))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// A string or `null` (which reads as `None`); the refusal says both are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NullableString(pub Option<String>);

impl<'de> Deserialize<'de> for NullableString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NullableString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<NullableString, E> {
                Ok(NullableString(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<NullableString, E> {
                Ok(NullableString(None))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<NullableString, E> {
                Ok(NullableString(Some(s.to_owned())))
            }
        }
        d.deserialize_any(V)
    }
}

/// For a field whose `null` means something other than its absence: with
/// `#[serde(default, deserialize_with = "fields::present")]`, an absent key is `None` and any
/// value present (`null` included) is read as a `T`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A value that must be there: `null` reads as missing (`is required`), as in event payloads.
macro_rules! required_value {
    ($(#[$doc:meta])* $name:ident($inner:ty), $expecting:literal, $($visit:item)*) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<$name, E> {
                        Err(E::custom("is required"))
                    }
                    $($visit)*
                }
                d.deserialize_any(V)
            }
        }
    };
}

required_value!(
    /// A string that must be present and not `null`.
    Text(String),
    "a string",
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
        Ok(Text(s.to_owned()))
    }
);

required_value!(
    /// A whole number (within `i64`) that must be present.
    Integer(i64),
    "an integer",
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Integer, E> {
        Ok(Integer(n))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Integer, E> {
        i64::try_from(n).map(Integer).map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
    }
);

required_value!(
    /// An amount of money: a number, not negative.
    Amount(f64),
    "a number",
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Amount, E> {
        if n < 0.0 {
            return Err(E::custom("must not be negative"));
        }
        Ok(Amount(n))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Amount, E> {
        self.visit_f64(n as f64)
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Amount, E> {
        self.visit_f64(n as f64)
    }
);

required_value!(
    /// Any JSON object, not looked into.
    AnyObject(()),
    "an object",
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<AnyObject, A::Error> {
        while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
        Ok(AnyObject(()))
    }
);

/// An array that must be present, of elements read as `T` (their errors name their index).
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_unit<E: de::Error>(self) -> Result<List<T>, E> {
                Err(E::custom("is required"))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(List(items))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The JSON Schema of each kind of value above, for the schemas derived from the structs that
/// read event payloads (`crate::events::payload_schema`, checked by its test).
#[cfg(test)]
mod schema {
    use std::borrow::Cow;

    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

    use super::{Amount, AnyObject, Integer, List, Text};

    macro_rules! inline_schema {
        ($name:ty, $schema:tt) => {
            impl JsonSchema for $name {
                fn inline_schema() -> bool {
                    true
                }
                fn schema_name() -> Cow<'static, str> {
                    stringify!($name).into()
                }
                fn json_schema(_: &mut SchemaGenerator) -> Schema {
                    json_schema!($schema)
                }
            }
        };
    }

    inline_schema!(Text, {"type": "string"});
    inline_schema!(Integer, {"type": "integer"});
    inline_schema!(Amount, {"type": "number", "minimum": 0});
    inline_schema!(AnyObject, {"type": "object"});

    impl<T: JsonSchema> JsonSchema for List<T> {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            format!("List_of_{}", T::schema_name()).into()
        }
        fn json_schema(generator: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "array", "items": generator.subschema_for::<T>()})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(expecting = "an object")]
    #[allow(dead_code)]
    struct Inner {
        name: String,
        #[serde(default)]
        note: NullableString,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        #[serde(default)]
        items: Option<List<Inner>>,
    }

    fn refusal<T: DeserializeOwned + fmt::Debug>(v: Value) -> (String, String) {
        let e = read::<T>(&v, "").unwrap_err();
        (e.field, e.message)
    }

    #[test]
    fn refusals_name_the_field_and_say_what_it_must_be() {
        assert_eq!(
            refusal::<Outer>(json!({"inner": {"name": 5}})),
            ("inner.name".into(), "inner.name must be a string".into())
        );
        assert_eq!(
            refusal::<Outer>(json!({"inner": {"name": "a", "note": 1}})),
            ("inner.note".into(), "inner.note must be a string or null".into())
        );
        assert_eq!(
            refusal::<Outer>(json!({"inner": []})),
            ("inner".into(), "inner must be an object".into())
        );
        assert_eq!(
            refusal::<Outer>(json!({"inner": {}})),
            ("inner.name".into(), "inner.name is required".into())
        );
        assert_eq!(refusal::<Outer>(json!({})), ("inner".into(), "inner is required".into()));
        assert_eq!(
            refusal::<Outer>(json!({"inner": {"name": "a"}, "items": [{"name": "b"}, {"name": null}]})),
            ("items[1].name".into(), "items[1].name must be a string".into())
        );
    }

    #[test]
    fn unknown_keys_are_refused_first_with_the_allowed_ones() {
        // "inner" is wrong too, but the unknown key is what the client is told about.
        assert_eq!(
            refusal::<Outer>(json!({"inner": 1, "zzz": true})),
            ("zzz".into(), "unknown field \"zzz\"; allowed: inner, items".into())
        );
        assert_eq!(
            refusal::<Outer>(json!({"inner": {"name": "a", "x": 1}})),
            ("inner.x".into(), "unknown field inner.\"x\"; allowed: name, note".into())
        );
        // A lenient read ignores them.
        assert!(read_lenient::<Outer>(&json!({"inner": {"name": "a", "x": 1}, "y": 2}), "").is_ok());
    }

    #[test]
    fn payload_values_treat_null_as_missing_and_check_ranges() {
        #[derive(Debug, Deserialize)]
        #[serde(expecting = "a JSON object")]
        #[allow(dead_code)]
        struct P {
            n: Integer,
            a: Amount,
            o: AnyObject,
            t: Text,
        }
        let ok = json!({"n": 1, "a": 2, "o": {}, "t": "x"});
        assert!(read_lenient::<P>(&ok, "payload").is_ok());
        let with = |k: &str, v: Value| {
            let mut doc = ok.clone();
            doc[k] = v;
            let e = read_lenient::<P>(&doc, "payload").unwrap_err();
            format!("{}: {}", e.field, e.message)
        };
        assert_eq!(with("n", json!(1.5)), "payload.n: payload.n must be an integer");
        assert_eq!(with("n", json!(u64::MAX)), "payload.n: payload.n must be an integer");
        assert_eq!(with("a", json!(-0.5)), "payload.a: payload.a must not be negative");
        assert_eq!(with("a", json!("1")), "payload.a: payload.a must be a number");
        assert_eq!(with("o", json!([])), "payload.o: payload.o must be an object");
        assert_eq!(with("t", Value::Null), "payload.t: payload.t is required");
        let e = read_lenient::<P>(&json!([1]), "payload").unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("payload", "payload must be a JSON object"));
    }

    #[test]
    fn present_tells_null_from_absent() {
        #[derive(Debug, Deserialize)]
        struct N {
            #[serde(default, deserialize_with = "present")]
            email: Option<NullableString>,
        }
        assert_eq!(read::<N>(&json!({}), "").unwrap().email, None);
        assert_eq!(read::<N>(&json!({"email": null}), "").unwrap().email, Some(NullableString(None)));
        assert_eq!(
            read::<N>(&json!({"email": "a@b.c"}), "").unwrap().email,
            Some(NullableString(Some("a@b.c".into())))
        );
    }
}
