//! CloudWatch metrics as Embedded Metric Format lines on stdout: Lambda ships stdout to
//! CloudWatch Logs, which extracts the metrics; no API call, no extra latency.

use serde_json::{json, Map, Value};

/// The namespace every metric of the service is in.
pub const NAMESPACE: &str = "OrderWebhooks";

/// One EMF record: metrics with a unit, under one `Function` dimension.
pub struct Record {
    function: &'static str,
    metrics: Vec<(&'static str, &'static str, Value)>,
}

impl Record {
    /// A record for a function.
    pub fn new(function: &'static str) -> Self {
        Self { function, metrics: Vec::new() }
    }

    /// Adds a count.
    pub fn count(mut self, name: &'static str, n: u64) -> Self {
        self.metrics.push((name, "Count", json!(n)));
        self
    }

    /// Adds a set of durations in milliseconds (CloudWatch keeps each as a sample).
    pub fn millis(mut self, name: &'static str, samples: Vec<f64>) -> Self {
        if !samples.is_empty() {
            self.metrics.push((name, "Milliseconds", json!(samples)));
        }
        self
    }

    /// The EMF JSON line.
    pub fn to_line(&self) -> String {
        let timestamp = crate::clock::now_ms();
        let definitions: Vec<Value> =
            self.metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("Function".into(), json!(self.function));
        for (name, _, value) in &self.metrics {
            root.insert((*name).into(), value.clone());
        }
        Value::Object(root).to_string()
    }

    /// Prints the line (stdout, where Lambda's log agent takes it from).
    pub fn emit(&self) {
        println!("{}", self.to_line());
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(v["Delivered"], 3);
        assert_eq!(v["AttemptLatency"], json!([1.5, 20.0]));
        assert!(v["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        let empty = Record::new("x").millis("AttemptLatency", vec![]).to_line();
        assert!(!empty.contains("AttemptLatency"), "no empty distributions");
    }
}
