//! CloudWatch metrics as Embedded Metric Format lines on stdout: Lambda ships stdout to
//! CloudWatch Logs, which extracts the metrics; no API call, no extra latency.

use serde::{ser::SerializeMap, Serialize, Serializer};

/// The namespace every metric of the service is in.
pub const NAMESPACE: &str = "OrderWebhooks";

/// Room for the metrics of a record: dispatch's batch has fourteen.
const METRICS_PER_LINE: usize = 16;

/// Room for a line: dispatch's, a batch of ten's latencies in it, is about 950 bytes.
const LINE_BYTES: usize = 1024;

/// One EMF record: metrics with a unit, under one `Function` dimension.
pub struct Record {
    function: &'static str,
    metrics: Vec<(&'static str, Value)>,
}

/// A metric's value: a count, or samples in milliseconds.
enum Value {
    Count(u64),
    Millis(Vec<f64>),
}

impl Value {
    fn unit(&self) -> &'static str {
        match self {
            Value::Count(_) => "Count",
            Value::Millis(_) => "Milliseconds",
        }
    }
}

impl Record {
    /// A record for a function.
    pub fn new(function: &'static str) -> Self {
        Self { function, metrics: Vec::with_capacity(METRICS_PER_LINE) }
    }

    /// Adds a count.
    pub fn count(mut self, name: &'static str, n: u64) -> Self {
        self.metrics.push((name, Value::Count(n)));
        self
    }

    /// Adds a set of durations in milliseconds (CloudWatch keeps each as a sample).
    pub fn millis(mut self, name: &'static str, samples: Vec<f64>) -> Self {
        if !samples.is_empty() {
            self.metrics.push((name, Value::Millis(samples)));
        }
        self
    }

    /// The EMF JSON line, written straight from the record (dispatch writes one per batch).
    pub fn to_line(&self) -> String {
        let line = Line { record: self, timestamp: crate::clock::now_ms() };
        let mut out = Vec::with_capacity(LINE_BYTES);
        // A map of strings and finite numbers: serialising it cannot fail, and it writes UTF-8.
        let _ = serde_json::to_writer(&mut out, &line);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Prints the line (stdout, where Lambda's log agent takes it from).
    pub fn emit(&self) {
        println!("{}", self.to_line());
    }
}

struct Line<'a> {
    record: &'a Record,
    timestamp: i64,
}

impl Serialize for Line<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Aws<'a> {
            timestamp: i64,
            cloud_watch_metrics: [Directive<'a>; 1],
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Directive<'a> {
            namespace: &'static str,
            dimensions: [[&'static str; 1]; 1],
            metrics: Definitions<'a>,
        }
        struct Definitions<'a>(&'a [(&'static str, Value)]);
        impl Serialize for Definitions<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                #[derive(Serialize)]
                #[serde(rename_all = "PascalCase")]
                struct Definition {
                    name: &'static str,
                    unit: &'static str,
                }
                s.collect_seq(self.0.iter().map(|(name, v)| Definition { name, unit: v.unit() }))
            }
        }
        let r = self.record;
        let mut m = s.serialize_map(Some(r.metrics.len() + 2))?;
        m.serialize_entry(
            "_aws",
            &Aws {
                timestamp: self.timestamp,
                cloud_watch_metrics: [Directive {
                    namespace: NAMESPACE,
                    dimensions: [["Function"]],
                    metrics: Definitions(&r.metrics),
                }],
            },
        )?;
        m.serialize_entry("Function", r.function)?;
        for (name, value) in &r.metrics {
            match value {
                Value::Count(n) => m.serialize_entry(name, n)?,
                Value::Millis(samples) => m.serialize_entry(name, samples)?,
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn records_are_embedded_metric_format() {
        let line = Record::new("dispatch")
            .count("Delivered", 3)
            .count("Failed", 1)
            .millis("AttemptLatency", vec![1.5, 20.0])
            .to_line();
        let v: Value = serde_json::from_str(&line).unwrap();
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], NAMESPACE);
        assert_eq!(cw["Dimensions"], json!([["Function"]]));
        assert_eq!(v["Function"], "dispatch");
        for m in cw["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(v[name].is_number() || v[name].is_array(), "{name} has a value");
        }
        assert_eq!(cw["Metrics"][0], json!({"Name": "Delivered", "Unit": "Count"}));
        assert_eq!(cw["Metrics"][2], json!({"Name": "AttemptLatency", "Unit": "Milliseconds"}));
        assert_eq!(v["Delivered"], 3);
        assert_eq!(v["AttemptLatency"], json!([1.5, 20.0]));
        assert!(v["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        let empty = Record::new("x").millis("AttemptLatency", vec![]).to_line();
        assert!(!empty.contains("AttemptLatency"), "no empty distributions");
    }
}
