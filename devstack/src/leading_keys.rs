//! The template's `dynamodb:LeadingKeys` against what the functions did: the emulator
//! (scripts/moto_server.py with `DYNAMO_ACCESS_LOG`) records each DynamoDB item operation with the
//! function that made it and the partition keys it touched; every key must match a pattern the
//! function's grant allows, and every grant must be narrowed.
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_yaml::Value;

/// One recorded operation.
#[derive(Debug, Deserialize)]
pub struct Access {
    pub app: Option<String>,
    pub op: String,
    pub keys: Vec<Option<String>>,
}

/// Each function binary's `dynamodb:LeadingKeys` patterns on the table, from its policy
/// statements with DynamoDB actions; a statement without the condition is an error.
pub fn grants(template: &Value) -> Result<BTreeMap<String, Vec<String>>> {
    let mut grants = BTreeMap::new();
    for (id, props) in crate::resources_of_type(template, "AWS::Serverless::Function") {
        let binary = template["Resources"][id.as_str()]["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .with_context(|| format!("{id}: no Metadata.BuildProperties.Binary"))?
            .to_owned();
        let mut patterns = Vec::new();
        for policy in props["Policies"].as_sequence().into_iter().flatten() {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let actions: Vec<&str> = match &statement["Action"] {
                    Value::Sequence(a) => a.iter().filter_map(Value::as_str).collect(),
                    Value::String(a) => vec![a.as_str()],
                    _ => Vec::new(),
                };
                if !actions.iter().any(|a| a.starts_with("dynamodb:")) {
                    continue;
                }
                let keys = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                let keys = keys
                    .as_sequence()
                    .with_context(|| format!("{id}: a DynamoDB grant without dynamodb:LeadingKeys"))?;
                patterns.extend(keys.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        if !patterns.is_empty() {
            grants.insert(binary, patterns);
        }
    }
    Ok(grants)
}

/// IAM's `StringLike`: `*` any run of characters, `?` any one.
pub fn like(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

/// The accesses no grant allows, one line each (function, operation, key); and the functions
/// seen, so a check that saw nothing can say so.
pub fn violations(
    grants: &BTreeMap<String, Vec<String>>,
    accesses: &[Access],
) -> (Vec<String>, BTreeSet<String>) {
    let mut found = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for a in accesses {
        // The tests' and tools' own calls name no function.
        let Some(app) = &a.app else { continue };
        seen.insert(app.clone());
        let Some(patterns) = grants.get(app) else {
            found.insert(format!("{app}: {} with no DynamoDB grant in the template", a.op));
            continue;
        };
        for key in &a.keys {
            match key {
                Some(k) if patterns.iter().any(|p| like(p, k)) => {}
                Some(k) => {
                    let prefix: String = k.chars().take_while(|c| *c != '#').collect();
                    found.insert(format!("{app}: {} on a {prefix}# key, outside {patterns:?}", a.op));
                }
                None => {
                    found.insert(format!("{app}: {} without a partition key (a scan?)", a.op));
                }
            }
        }
    }
    (found.into_iter().collect(), seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_like_matches_as_iam_does() {
        assert!(like("VENDOR#*", "VENDOR#ven_1"));
        assert!(like("VENDORS", "VENDORS"));
        assert!(!like("VENDOR#*", "VENDORS"));
        assert!(like("EVT#*", "EVT#"));
        assert!(like("A?C", "ABC") && !like("A?C", "AC"));
    }

    #[test]
    fn keys_outside_a_grant_and_unnarrowed_grants_are_found() {
        let template = crate::parse_template(
            r#"
Resources:
  Get:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: get-webhook}}
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:GetItem]
              Resource: !GetAtt Table.Arn
              Condition:
                ForAllValues:StringLike:
                  dynamodb:LeadingKeys: ["VENDOR#*", "USERNAME#*"]
"#,
        )
        .unwrap();
        let grants = grants(&template).unwrap();
        let access = |app: &str, key: &str| Access {
            app: Some(app.into()),
            op: "get_item".into(),
            keys: vec![Some(key.into())],
        };
        let (bad, seen) =
            violations(&grants, &[access("get-webhook", "VENDOR#v"), access("get-webhook", "EVT#v#e")]);
        assert_eq!(bad, ["get-webhook: get_item on a EVT# key, outside [\"VENDOR#*\", \"USERNAME#*\"]"]);
        assert_eq!(seen.len(), 1);
        let (bad, _) = violations(&grants, &[access("dispatch", "VENDOR#v")]);
        assert_eq!(bad, ["dispatch: get_item with no DynamoDB grant in the template"]);

        let unnarrowed = crate::parse_template(
            "Resources:\n  Get:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: g}}\n    Properties:\n      Policies:\n        - Statement:\n            - {Effect: Allow, Action: [dynamodb:GetItem], Resource: '*'}\n",
        )
        .unwrap();
        assert!(super::grants(&unnarrowed).is_err());
    }
}
