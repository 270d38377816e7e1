//! `template.yaml` is what the local stack serves: the same routes to the same functions, the
//! same table; and it keeps the deployment rules of the design.
use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;
use shared::{
    api::{routes::fallback_for, Operation, ROUTES},
    domain::Dialect,
};
use tests::repo_root;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const PORTAL: &str = shared::portal::BASE;

fn template() -> Value {
    devstack::parse_template(&std::fs::read_to_string(repo_root().join("template.yaml")).unwrap()).unwrap()
}

fn cargo_toml() -> toml::Value {
    toml::from_str(&std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap()).unwrap()
}

/// (method, path) -> function binary, from the template's HttpApi events.
fn template_routes(t: &Value) -> BTreeMap<(String, String), String> {
    let mut routes = BTreeMap::new();
    for (id, props) in devstack::resources_of_type(t, "AWS::Serverless::Function") {
        let binary =
            t["Resources"][id.as_str()]["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned();
        for (_, event) in props["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() == Some("HttpApi") {
                let p = &event["Properties"];
                let key = (p["Method"].as_str().unwrap().to_owned(), p["Path"].as_str().unwrap().to_owned());
                assert!(routes.insert(key.clone(), binary.clone()).is_none(), "{key:?} routed twice");
            }
        }
    }
    routes
}

/// The function the template sends (method, path) to, with `ANY` as API Gateway applies it.
fn template_target<'a>(
    routes: &'a BTreeMap<(String, String), String>,
    method: &str,
    path: &str,
) -> Option<&'a String> {
    routes
        .get(&(method.to_owned(), path.to_owned()))
        .or_else(|| routes.get(&("ANY".to_owned(), path.to_owned())))
}

/// (method, path) -> function, from the `cargo lambda watch` router in Cargo.toml.
fn watch_routes() -> BTreeMap<(String, String), String> {
    let cargo = cargo_toml();
    let router = cargo["workspace"]["metadata"]["lambda"]["watch"]["router"].as_table().unwrap().clone();
    let mut routes = BTreeMap::new();
    for (path, entries) in router {
        if let Some(function) = entries.as_str() {
            // One function for every method of the path.
            for method in METHODS {
                routes.insert((method.to_owned(), path.clone()), function.to_owned());
            }
            continue;
        }
        for e in entries.as_array().unwrap() {
            let key = (e["method"].as_str().unwrap().to_owned(), path.clone());
            assert!(
                routes.insert(key.clone(), e["function"].as_str().unwrap().to_owned()).is_none(),
                "{key:?} twice"
            );
        }
    }
    routes
}

#[test]
fn the_template_the_local_router_and_the_code_route_alike() {
    let t = template();
    let template = template_routes(&t);
    let watch = watch_routes();
    let paths: BTreeSet<&str> = ROUTES.iter().map(|r| r.path).collect();
    for path in &paths {
        for method in METHODS {
            let expected = ROUTES
                .iter()
                .find(|r| r.path == *path && r.method == method)
                .map(|r| r.operation)
                .or_else(|| fallback_for(path))
                .unwrap()
                .function_name();
            let key = (method.to_owned(), path.to_string());
            assert_eq!(
                template_target(&template, method, path).map(String::as_str),
                Some(expected),
                "template: {key:?}"
            );
            assert_eq!(watch.get(&key).map(String::as_str), Some(expected), "Cargo.toml router: {key:?}");
        }
    }
    // The portal's pages: every method of /portal and below, to the portal function.
    let portal = |p: &str| p == PORTAL || p.starts_with("/portal/");
    for path in ["/portal", "/portal/{proxy+}"] {
        assert_eq!(template_target(&template, "ANY", path).map(String::as_str), Some("portal"), "{path}");
    }
    for path in ["/portal", "/portal/", "/portal/{*path}"] {
        for method in METHODS {
            let key = (method.to_owned(), path.to_owned());
            assert_eq!(watch.get(&key).map(String::as_str), Some("portal"), "Cargo.toml router: {key:?}");
        }
    }
    for (method, path) in template.keys().filter(|(_, p)| !portal(p)) {
        assert!(
            paths.contains(path.as_str()),
            "template routes {method} {path}, which the code does not know"
        );
    }
    for (method, path) in watch.keys().filter(|(_, p)| !portal(p)) {
        assert!(
            paths.contains(path.as_str()),
            "the local router routes {method} {path}, which the code does not know"
        );
    }
}

/// The route table is the source of truth; every other place that names a route is checked
/// against every field of it: the dialect (by path, and the template's authoriser: IAM for the
/// platform, none for vendors, who authenticate in the function), the function that serves it
/// (whose `main` wires that operation's handler and no other), and `openapi.yaml`.
#[test]
fn every_field_of_every_route_agrees_with_the_template_the_mains_and_openapi() {
    let t = template();
    for route in ROUTES {
        let by_path = if route.path.starts_with("/basic/") {
            Dialect::Ecomnow
        } else if route.path.starts_with("/api/") {
            Dialect::Ventiapp
        } else {
            Dialect::Platform
        };
        assert_eq!(route.dialect, by_path, "{} {}", route.method, route.path);
    }
    for (id, props) in devstack::resources_of_type(&t, "AWS::Serverless::Function") {
        for (name, event) in props["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let path = event["Properties"]["Path"].as_str().unwrap();
            let authorizer = event["Properties"]["Auth"]["Authorizer"].as_str();
            let platform = ROUTES.iter().any(|r| r.path == path && r.dialect == Dialect::Platform);
            assert_eq!(authorizer, platform.then_some("AWS_IAM"), "{id} {name:?}: {path}");
        }
    }
    for op in Operation::ALL {
        let name = op.function_name();
        let main =
            std::fs::read_to_string(repo_root().join(format!("functions/{name}/src/main.rs"))).unwrap();
        let handler = name.replace('-', "_");
        assert!(
            main.contains(&format!("Operation::{op:?}, {handler}::handle)")),
            "functions/{name}/src/main.rs must run Operation::{op:?} with handlers::{handler}"
        );
        let code: String = main.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
        let handlers = code.matches("handlers::").count();
        assert_eq!(handlers, 1, "functions/{name}/src/main.rs wires one handler");
    }
    let openapi: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo_root().join("openapi.yaml")).unwrap()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap().to_ascii_uppercase();
            if METHODS.contains(&method.as_str()) {
                documented.insert((method, path.as_str().unwrap().to_owned()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    assert_eq!(documented, routed, "openapi.yaml documents every route and no other");
}

#[test]
fn every_function_crate_is_deployed_and_built_the_lambda_way() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["Handler"], "bootstrap");
    let mut deployed = BTreeSet::new();
    for (id, _) in devstack::resources_of_type(&t, "AWS::Serverless::Function") {
        let meta = &t["Resources"][id.as_str()]["Metadata"];
        assert_eq!(meta["BuildMethod"], "rust-cargolambda", "{id}");
        deployed.insert(meta["BuildProperties"]["Binary"].as_str().unwrap().to_owned());
    }
    let crates: BTreeSet<String> = std::fs::read_dir(repo_root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(deployed, crates, "one template function per crate under functions/");
    let members: Vec<String> = cargo_toml()["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    for c in &crates {
        assert!(members.contains(&format!("functions/{c}")), "{c} is not a workspace member");
    }
}

#[test]
fn the_table_and_the_api_keep_the_deployment_rules() {
    let t = template();
    let def = devstack::table_definition(&t).unwrap();
    assert_eq!(def.key_schema, [("pk".to_owned(), "HASH".to_owned()), ("sk".to_owned(), "RANGE".to_owned())]);
    assert_eq!(def.ttl_attribute.as_deref(), Some("expiresAt"));
    let table = &t["Resources"][def.logical_id.as_str()]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    let api = devstack::resources_of_type(&t, "AWS::Serverless::HttpApi");
    assert_eq!(api.len(), 1);
    let throttle = &api[0].1["DefaultRouteSettings"];
    assert!(!throttle["ThrottlingRateLimit"].is_null() && !throttle["ThrottlingBurstLimit"].is_null());
    assert!(!t["Outputs"]["ApiUrl"]["Value"].is_null());
}

#[test]
fn functions_get_only_the_table_actions_they_use() {
    let t = template();
    let expected: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("list-webhooks", &["dynamodb:GetItem", "dynamodb:Query"][..]),
        ("get-webhook", &["dynamodb:GetItem"][..]),
        ("list-deliveries", &["dynamodb:GetItem", "dynamodb:Query"][..]),
        ("enable-webhook", &["dynamodb:GetItem", "dynamodb:PutItem"][..]),
        ("rotate-secret", &["dynamodb:GetItem", "dynamodb:PutItem"][..]),
        (
            "redeliver-event",
            &["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "sqs:SendMessage"][..],
        ),
        ("test-webhook", &["dynamodb:GetItem", "dynamodb:PutItem"][..]),
        ("get-notifications", &["dynamodb:GetItem"][..]),
        ("update-notifications", &["dynamodb:GetItem", "dynamodb:PutItem"][..]),
        ("email-events", &["dynamodb:UpdateItem"][..]),
        (
            "portal",
            &[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "dynamodb:UpdateItem",
                "dynamodb:Query",
                "sqs:SendMessage",
            ][..],
        ),
        ("create-webhook", &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"][..]),
        ("update-webhook", &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"][..]),
        ("delete-webhook", &["dynamodb:GetItem", "dynamodb:DeleteItem"][..]),
        (
            "publish-event",
            &[
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:BatchWriteItem",
                "sqs:SendMessage",
            ][..],
        ),
        (
            "dispatch",
            &[
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
                "sqs:SendMessage",
                "sqs:SendMessage",
            ][..],
        ),
        (
            "send-email",
            &[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "ses:SendEmail",
            ][..],
        ),
    ]);
    for (id, props) in devstack::resources_of_type(&t, "AWS::Serverless::Function") {
        let binary = t["Resources"][id.as_str()]["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let actions: Vec<&str> = props["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|p| p["Statement"].as_sequence().unwrap())
            .flat_map(|s| s["Action"].as_sequence().unwrap())
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(actions, expected[binary], "{binary}");
    }
}

#[test]
fn the_queues_keep_nothing_from_being_lost() {
    let t = template();
    let queues = devstack::queue_definitions(&t).unwrap();
    let deliveries = queues.iter().find(|q| q.logical_id == "DeliveriesQueue").unwrap();
    let (dlq, max_receive) = deliveries.redrive.clone().expect("a redrive policy");
    assert_eq!(dlq, "DeadLetterQueue");
    // dispatch counts attempts itself; the redrive parks only what keeps failing without one.
    // A message is received at most twice per attempt (a 15-minute delay, then one hiding), so
    // the redrive must leave room for that and a few crashes.
    assert!(max_receive >= 5, "maxReceiveCount {max_receive}");
    assert!(t["Parameters"].get("MaxAttempts").is_none(), "attempts come from the schedule alone");
    let schedule = t["Parameters"]["RetrySchedule"]["Default"].as_str().unwrap();
    shared::delivery::RetrySchedule::parse(schedule).expect("the default schedule is one dispatch takes");
    let dispatch = &t["Resources"]["DispatchFunction"]["Properties"];
    let env = &dispatch["Environment"]["Variables"];
    for name in ["DEAD_LETTER_QUEUE_URL", "RETRY_SCHEDULE", "RETRY_AFTER_CAP"] {
        assert!(env.get(name).is_some(), "dispatch is given {name}");
    }
    for queue in [&deliveries.logical_id, "DeadLetterQueue"] {
        let q = queues.iter().find(|q| q.logical_id == queue).unwrap();
        assert_eq!(q.maximum_message_size, Some(shared::queue::MAX_MESSAGE_BYTES as i64), "{queue}");
    }
    let timeout = dispatch["Timeout"].as_i64().unwrap();
    assert!(
        deliveries.visibility_timeout.unwrap() >= 6 * timeout,
        "visibility at least 6x the dispatch timeout"
    );
    let dead = queues.iter().find(|q| q.logical_id == "DeadLetterQueue").unwrap();
    assert_eq!(dead.retention, Some(14 * 24 * 3600));
    let source = &dispatch["Events"]["Deliveries"]["Properties"];
    assert_eq!(source["FunctionResponseTypes"][0], "ReportBatchItemFailures");

    // The slow lane: a queue of its own, consumed with a concurrency of its own, kept and parked
    // as the deliveries queue is; dispatch knows it, reads it and sends to it.
    let slow = queues.iter().find(|q| q.logical_id == "SlowDeliveriesQueue").expect("a slow lane");
    assert_eq!(slow.redrive, deliveries.redrive);
    assert_eq!(
        (slow.maximum_message_size, slow.visibility_timeout, slow.retention),
        (deliveries.maximum_message_size, deliveries.visibility_timeout, deliveries.retention)
    );
    assert_eq!(tagged(&env["SLOW_DELIVERIES_QUEUE_URL"]), Some(("Ref".into(), "SlowDeliveriesQueue".into())));
    let slow_source = &dispatch["Events"]["SlowDeliveries"]["Properties"];
    assert_eq!(tagged(&slow_source["Queue"]), Some(("GetAtt".into(), "SlowDeliveriesQueue.Arn".into())));
    assert_eq!(slow_source["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    let concurrency = |p: &Value| p["ScalingConfig"]["MaximumConcurrency"].as_i64().unwrap();
    assert!(
        concurrency(slow_source) < concurrency(source),
        "the slow lane cannot take the fast lane's share"
    );
    let statements: Vec<&Value> = dispatch["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|p| p["Statement"].as_sequence().unwrap())
        .collect();
    // Whether dispatch may take `action` on `queue`.
    let may = |action: &str, queue: &str| {
        statements.iter().any(|s| {
            s["Action"].as_sequence().unwrap().iter().any(|a| a == action)
                && serde_yaml::to_string(&s["Resource"]).unwrap().contains(&format!("{queue}.Arn"))
        })
    };
    let lane_actions = ["sqs:ReceiveMessage", "sqs:SendMessage", "sqs:ChangeMessageVisibility"];
    for action in lane_actions {
        assert!(may(action, "SlowDeliveriesQueue"), "dispatch may {action} on the slow lane");
    }
    let alarms = devstack::resources_of_type(&t, "AWS::CloudWatch::Alarm");
    assert!(alarms.iter().any(|(_, a)| a["MetricName"] == "ApproximateNumberOfMessagesVisible"));

    // The grouped lane: FIFO, kept as the deliveries queue is, parked in a FIFO dead-letter
    // queue an alarm watches; its event source's batch is the group's cap (shared::grouped);
    // publish sends to it, dispatch reads it and moves deliveries to it.
    let grouped = queues.iter().find(|q| q.logical_id == "GroupedDeliveriesQueue").expect("a grouped lane");
    assert!(grouped.fifo);
    assert_eq!(
        (grouped.maximum_message_size, grouped.visibility_timeout, grouped.retention),
        (deliveries.maximum_message_size, deliveries.visibility_timeout, deliveries.retention)
    );
    let (grouped_dlq, grouped_receives) = grouped.redrive.clone().expect("a redrive policy");
    assert_eq!((grouped_dlq.as_str(), grouped_receives), ("GroupedDeadLetterQueue", max_receive));
    assert!(queues.iter().any(|q| q.logical_id == "GroupedDeadLetterQueue" && q.fifo));
    assert!(alarms.iter().any(|(_, a)| format!("{:?}", a["Dimensions"]).contains("GroupedDeadLetterQueue")));
    let grouped_source = &dispatch["Events"]["GroupedDeliveries"]["Properties"];
    assert_eq!(
        tagged(&grouped_source["Queue"]),
        Some(("GetAtt".into(), "GroupedDeliveriesQueue.Arn".into()))
    );
    assert_eq!(grouped_source["BatchSize"].as_u64(), Some(u64::from(shared::grouped::GROUP_BATCH)));
    assert_eq!(grouped_source["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    let publish_env = &t["Resources"]["PublishEventFunction"]["Properties"]["Environment"]["Variables"];
    for env in [env, publish_env] {
        assert_eq!(
            tagged(&env["GROUPED_DELIVERIES_QUEUE_URL"]),
            Some(("Ref".into(), "GroupedDeliveriesQueue".into()))
        );
    }
    for action in lane_actions {
        assert!(may(action, "GroupedDeliveriesQueue"), "dispatch may {action} on the grouped lane");
    }
    let publish_timeout = t["Resources"]["PublishEventFunction"]["Properties"]["Timeout"]
        .as_i64()
        .or_else(|| t["Globals"]["Function"]["Timeout"].as_i64())
        .unwrap();
    assert!(
        publish_timeout * 3 <= shared::api::publish::FAN_OUT_LEASE_SECS,
        "a fan-out's lease outlasts the publish function's time limit"
    );
    let publish = &t["Resources"]["PublishEventFunction"]["Properties"]["Events"]["Publish"]["Properties"];
    assert_eq!(publish["Auth"]["Authorizer"], "AWS_IAM", "publishing is for the platform only");

    // Emails: their own queue, redriven to their own dead-letter queue, which an alarm watches.
    let emails = queues.iter().find(|q| q.logical_id == "EmailsQueue").unwrap();
    assert_eq!(emails.redrive.as_ref().map(|r| r.0.as_str()), Some("EmailsDeadLetterQueue"));
    let sender = &t["Resources"]["SendEmailFunction"]["Properties"];
    assert!(emails.visibility_timeout.unwrap() >= 6 * sender["Timeout"].as_i64().unwrap());
    assert_eq!(
        sender["Events"]["Emails"]["Properties"]["FunctionResponseTypes"][0],
        "ReportBatchItemFailures"
    );
    let parked = queues.iter().find(|q| q.logical_id == "EmailsDeadLetterQueue").unwrap();
    assert_eq!(parked.retention, Some(14 * 24 * 3600));
    assert!(alarms.iter().any(|(_, a)| format!("{:?}", a["Dimensions"]).contains("EmailsDeadLetterQueue")));
}

#[test]
fn emails_come_from_one_sender_identity_and_are_off_without_one() {
    let t = template();
    let sender = &t["Parameters"]["NotificationSender"];
    assert_eq!(sender["Default"].as_str(), Some(""), "emails are off unless a sender is given");
    let identities = devstack::resources_of_type(&t, "AWS::SES::EmailIdentity");
    assert_eq!(identities.len(), 1);
    let (id, props) = &identities[0];
    assert_eq!(t["Resources"][id.as_str()]["Condition"].as_str(), Some("EmailsOn"));
    assert!(format!("{:?}", props["EmailIdentity"]).contains("NotificationSender"));

    // Only send-email sends, only SendEmail, only from that identity and address.
    for (id, props) in devstack::resources_of_type(&t, "AWS::Serverless::Function") {
        let statements: Vec<&Value> = props["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|p| p["Statement"].as_sequence().unwrap())
            .filter(|s| {
                s["Action"].as_sequence().unwrap().iter().any(|a| a.as_str().unwrap().starts_with("ses:"))
            })
            .collect();
        let binary = t["Resources"][id.as_str()]["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let env = &props["Environment"]["Variables"]["EMAIL_SENDER"];
        if binary == "send-email" {
            assert_eq!(statements.len(), 1);
            let resource = format!("{:?}", statements[0]["Resource"]);
            assert!(resource.contains(":identity/${NotificationSender}"), "{resource}");
            assert!(resource.contains(":configuration-set/${AWS::StackName}-emails"), "{resource}");
            assert!(!resource.contains('*'), "{resource}");
            let from = &statements[0]["Condition"]["StringEquals"]["ses:FromAddress"];
            assert!(format!("{from:?}").contains("NotificationSender"));
        } else {
            assert!(statements.is_empty(), "{binary} may not send email");
        }
        if ["dispatch", "publish-event", "send-email"].contains(&binary) {
            assert!(format!("{env:?}").contains("NotificationSender"), "{binary} needs EMAIL_SENDER");
        }
        if binary == "dispatch" || binary == "publish-event" {
            let queue = &props["Environment"]["Variables"]["EMAILS_QUEUE_URL"];
            assert!(
                format!("{queue:?}").contains("EmailsQueue"),
                "{binary} asks for emails on the emails queue"
            );
        }
    }
}

#[test]
fn bounces_and_complaints_reach_the_function_that_refuses_addresses() {
    let t = template();
    let sets = devstack::resources_of_type(&t, "AWS::SES::ConfigurationSet");
    assert_eq!(sets.len(), 1);
    assert!(
        format!("{:?}", sets[0].1["Name"]).contains("${AWS::StackName}-emails"),
        "dispatch's policy names it so"
    );
    let destinations = devstack::resources_of_type(&t, "AWS::SES::ConfigurationSetEventDestination");
    assert_eq!(destinations.len(), 1);
    let destination = &destinations[0].1["EventDestination"];
    let types: Vec<&str> = destination["MatchingEventTypes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(types, ["bounce", "complaint"]);
    let topic = format!("{:?}", destination["SnsDestination"]["TopicARN"]);
    assert!(topic.contains("EmailEventsTopic"), "{topic}");

    let function = &t["Resources"]["EmailEventsFunction"];
    assert_eq!(function["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("email-events"));
    assert_eq!(function["Condition"].as_str(), Some("EmailsOn"));
    let event = &function["Properties"]["Events"]["SesEvents"];
    assert_eq!(event["Type"].as_str(), Some("SNS"));
    assert!(format!("{:?}", event["Properties"]["Topic"]).contains("EmailEventsTopic"));
    for id in ["EmailConfigurationSet", "EmailEventsTopic", "EmailEventsTopicPolicy", "EmailEventDestination"]
    {
        assert_eq!(
            t["Resources"][id]["Condition"].as_str(),
            Some("EmailsOn"),
            "{id}: nothing of email without a sender"
        );
    }
    let env = format!(
        "{:?}",
        t["Resources"]["SendEmailFunction"]["Properties"]["Environment"]["Variables"]
            ["EMAIL_CONFIGURATION_SET"]
    );
    assert!(env.contains("EmailConfigurationSet"), "{env}");
}

/// `!Ref X` or `!GetAtt X.Y` as (tag, target).
fn tagged(v: &Value) -> Option<(String, String)> {
    match v {
        Value::Tagged(t) => {
            Some((t.tag.to_string().trim_start_matches('!').to_owned(), t.value.as_str()?.to_owned()))
        }
        _ => None,
    }
}

#[test]
fn every_alarm_reaches_a_person_and_says_when_it_is_over() {
    let t = template();
    let resources = &t["Resources"];
    // The topic's key lets CloudWatch publish (the AWS-managed SNS key would not).
    let topic = &resources["AlarmTopic"]["Properties"];
    assert_eq!(tagged(&topic["KmsMasterKeyId"]), Some(("Ref".into(), "AlarmKey".into())));
    let key = &resources["AlarmKey"];
    assert_eq!(key["Type"], "AWS::KMS::Key");
    let statements = key["Properties"]["KeyPolicy"]["Statement"].as_sequence().unwrap();
    let cloudwatch = statements
        .iter()
        .find(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com")
        .expect("CloudWatch may use the key");
    let actions: Vec<&str> =
        cloudwatch["Action"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(actions.contains(&"kms:Decrypt") && actions.contains(&"kms:GenerateDataKey*"), "{actions:?}");
    // Someone is subscribed.
    let subscription = &resources["AlarmSubscription"]["Properties"];
    assert_eq!(tagged(&subscription["TopicArn"]), Some(("Ref".into(), "AlarmTopic".into())));
    assert_eq!(tagged(&subscription["Endpoint"]), Some(("Ref".into(), "AlarmEmail".into())));
    assert_eq!(subscription["Protocol"], "email");

    let alarms = devstack::resources_of_type(&t, "AWS::CloudWatch::Alarm");
    for needed in [
        "DeadLetterAlarm",
        "DeadLetterArrivalsAlarm",
        "DeliveriesBacklogAlarm",
        "DispatchErrorsAlarm",
        "DispatchThrottlesAlarm",
        "ApiServerErrorsAlarm",
        "PublishErrorsAlarm",
        "EmailEventsErrorsAlarm",
        "EmailsDeadLetterAlarm",
        "DeliveryFailureAlarm",
    ] {
        assert!(alarms.iter().any(|(id, _)| id == needed), "{needed} is missing");
    }
    let arrivals = &resources["DeadLetterArrivalsAlarm"]["Properties"];
    assert_eq!(
        (arrivals["MetricName"].as_str(), arrivals["Statistic"].as_str()),
        (Some("NumberOfMessagesSent"), Some("Sum")),
        "fires again for new arrivals"
    );
    for (id, alarm) in &alarms {
        for actions in ["AlarmActions", "OKActions"] {
            let targets: Vec<_> = alarm[actions]
                .as_sequence()
                .unwrap_or_else(|| panic!("{id}: no {actions}"))
                .iter()
                .map(tagged)
                .collect();
            assert_eq!(targets, [Some(("Ref".into(), "AlarmTopic".into()))], "{id}: {actions}");
        }
    }
}

#[test]
fn every_log_is_kept_as_long_as_the_parameter_says_and_the_access_log_holds_no_credentials() {
    let t = template();
    let resources = &t["Resources"];
    for (id, function) in devstack::resources_of_type(&t, "AWS::Serverless::Function") {
        let group =
            tagged(&function["LoggingConfig"]["LogGroup"]).unwrap_or_else(|| panic!("{id}: no log group"));
        let group_resource = &resources[group.1.as_str()];
        assert_eq!(group_resource["Type"], "AWS::Logs::LogGroup", "{id}");
        assert_eq!(
            tagged(&group_resource["Properties"]["RetentionInDays"]),
            Some(("Ref".into(), "LogRetentionDays".into())),
            "{id}"
        );
        assert_eq!(
            group_resource["Condition"],
            resources[id.as_str()]["Condition"],
            "{id}: made when its function is"
        );
    }
    assert_eq!(t["Parameters"]["LogRetentionDays"]["Default"].as_i64(), Some(30));

    let access = &resources["Api"]["Properties"]["AccessLogSettings"];
    let (_, group) = tagged(&access["DestinationArn"]).expect("the API has an access log");
    assert!(group.starts_with("ApiAccessLogs"));
    assert_eq!(
        tagged(&resources["ApiAccessLogs"]["Properties"]["RetentionInDays"]),
        Some(("Ref".into(), "LogRetentionDays".into()))
    );
    let format = access["Format"].as_str().unwrap();
    let line: serde_json::Value = serde_json::from_str(format).expect("one JSON object a request");
    assert!(line.get("status").is_some() && line.get("route").is_some(), "{line}");
    for leak in ["header", "querystring", "authorizer", "identity.user", "requestOverride"] {
        assert!(!format.contains(leak), "the access log could carry a credential: {leak}");
    }
}

#[test]
fn publishing_is_throttled_apart_and_nothing_is_lost_at_the_edges() {
    let t = template();
    let resources = &t["Resources"];
    let api = &resources["Api"]["Properties"];
    for route in ["POST /events", "ANY /events"] {
        let settings = &api["RouteSettings"][route];
        assert_eq!(
            tagged(&settings["ThrottlingRateLimit"]),
            Some(("Ref".into(), "PublishThrottlingRateLimit".into())),
            "{route}"
        );
        assert_eq!(
            tagged(&settings["ThrottlingBurstLimit"]),
            Some(("Ref".into(), "PublishThrottlingBurstLimit".into())),
            "{route}"
        );
    }
    assert_eq!(
        tagged(&api["DefaultRouteSettings"]["ThrottlingRateLimit"]),
        Some(("Ref".into(), "ThrottlingRateLimit".into()))
    );
    assert_eq!(resources["Table"]["Properties"]["DeletionProtectionEnabled"], Value::Bool(true));
    // What SNS cannot hand email-events is kept, in a queue SNS (that topic only) may write to.
    let sns = &resources["EmailEventsFunction"]["Properties"]["Events"]["SesEvents"]["Properties"];
    assert_eq!(
        tagged(&sns["RedrivePolicy"]["deadLetterTargetArn"]),
        Some(("GetAtt".into(), "EmailEventsDeadLetterQueue.Arn".into()))
    );
    let policy =
        &resources["EmailEventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(policy["Principal"]["Service"], "sns.amazonaws.com");
    assert_eq!(
        tagged(&policy["Condition"]["ArnEquals"]["aws:SourceArn"]),
        Some(("Ref".into(), "EmailEventsTopic".into()))
    );
}

#[test]
fn the_dashboard_shows_deliveries_queues_the_api_and_every_function() {
    let t = template();
    let body = match &t["Resources"]["Dashboard"]["Properties"]["DashboardBody"] {
        Value::Tagged(sub) => sub.value.as_str().unwrap().to_owned(),
        other => panic!("the body is a !Sub: {other:?}"),
    };
    // The substitutions as CloudFormation would fill them, then the JSON CloudWatch reads.
    let mut filled = String::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("${") {
        filled.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        filled.push('x');
        rest = &rest[end + 1..];
    }
    filled.push_str(rest);
    let dashboard: serde_json::Value = serde_json::from_str(&filled).expect("the dashboard body is JSON");
    let text = dashboard.to_string();
    for shown in [
        r#""OrderWebhooks","Delivered""#,
        r#""OrderWebhooks","FailedTimeout""#,
        r#""OrderWebhooks","FailedConnect""#,
        r#""OrderWebhooks","FailedRejected""#,
        r#""OrderWebhooks","MovedToGroupedLane""#,
        r#""AttemptLatency","Function","dispatch",{"stat":"p50""#,
        r#""AttemptLatency","Function","dispatch",{"stat":"p99""#,
        r#""ApproximateAgeOfOldestMessage""#,
        r#""ApproximateNumberOfMessagesVisible""#,
        r#""AWS/ApiGateway","4xx""#,
        r#""AWS/ApiGateway","5xx""#,
        r#""AWS/ApiGateway","Latency""#,
        r#"MetricName=\"Duration\""#,
        r#"MetricName=\"Errors\""#,
        r#"MetricName=\"Throttles\""#,
    ] {
        assert!(text.contains(shown), "{shown} is not on the dashboard");
    }
    let url = &t["Outputs"]["DashboardUrl"]["Value"];
    assert!(matches!(url, Value::Tagged(sub) if sub.value.as_str().unwrap().contains("${Dashboard}")));
}

#[test]
fn each_dead_letter_queue_takes_only_the_queues_that_park_in_it() {
    let t = template();
    let queues = devstack::queue_definitions(&t).unwrap();
    let sub = |v: &Value| match v {
        Value::Tagged(tag) if tag.tag == "Sub" => tag.value.as_str().map(str::to_owned),
        _ => None,
    };
    for dead in queues
        .iter()
        .filter(|q| queues.iter().any(|s| s.redrive.as_ref().map(|r| &r.0) == Some(&q.logical_id)))
    {
        let sources: BTreeSet<String> = queues
            .iter()
            .filter(|s| s.redrive.as_ref().map(|r| &r.0) == Some(&dead.logical_id))
            .map(|s| {
                let name = sub(&t["Resources"][s.logical_id.as_str()]["Properties"]["QueueName"])
                    .unwrap_or_else(|| {
                        panic!("{} is named, for {}'s policy to name it", s.logical_id, dead.logical_id)
                    });
                format!("arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}")
            })
            .collect();
        let policy = &t["Resources"][dead.logical_id.as_str()]["Properties"]["RedriveAllowPolicy"];
        assert_eq!(policy["redrivePermission"], "byQueue", "{}", dead.logical_id);
        let allowed: BTreeSet<String> =
            policy["sourceQueueArnList"].as_sequence().unwrap().iter().map(|v| sub(v).unwrap()).collect();
        assert_eq!(allowed, sources, "{}", dead.logical_id);
    }
    // A queue nothing redrives into takes nothing.
    let sns_dead = &t["Resources"]["EmailEventsDeadLetterQueue"]["Properties"]["RedriveAllowPolicy"];
    assert_eq!(sns_dead["redrivePermission"], "denyAll");
    // Every name stays within SQS's 80 characters for a stack name of up to 64.
    for q in &queues {
        if let Some(name) = sub(&t["Resources"][q.logical_id.as_str()]["Properties"]["QueueName"]) {
            assert!(name.replace("${AWS::StackName}", &"s".repeat(64)).len() <= 80, "{name}");
        }
    }
}

#[test]
fn every_function_is_traced() {
    assert_eq!(template()["Globals"]["Function"]["Tracing"], "Active");
}

/// checkov runs in `make test` with no failed check; what it skips is written in the template,
/// each with its reason, and never what the issue forbids skipping: the API's access log and
/// the encryption that lets alarms be delivered. A function SNS invokes (asynchronously) may not
/// skip the dead-letter check: it needs one.
#[test]
fn checkov_skips_are_inline_with_reasons_and_never_the_forbidden_ones() {
    const NEVER: [&str; 3] = ["CKV_AWS_76", "CKV_AWS_95", "CKV_AWS_26"];
    let t = template();
    let mut skipped = 0;
    for (id, resource) in t["Resources"].as_mapping().unwrap() {
        let id = id.as_str().unwrap();
        let skips = resource["Metadata"]["checkov"]["skip"].as_sequence().cloned().unwrap_or_default();
        let invoked_by_sns = resource["Properties"]["Events"]
            .as_mapping()
            .is_some_and(|events| events.values().any(|e| e["Type"].as_str() == Some("SNS")));
        for skip in skips {
            let check = skip["id"].as_str().unwrap_or_default();
            let reason = skip["comment"].as_str().unwrap_or_default();
            assert!(check.starts_with("CKV_"), "{id}: a skip without a check id: {skip:?}");
            assert!(reason.len() >= 20, "{id}: skipping {check} needs a reason of a sentence");
            assert!(!NEVER.contains(&check), "{id} skips {check}, which must hold");
            assert!(!(invoked_by_sns && check == "CKV_AWS_116"), "{id} is invoked by SNS and needs a DLQ");
            skipped += 1;
        }
    }
    assert!(skipped > 0, "the template's skips were not found");
    let email_events = &t["Resources"]["EmailEventsFunction"]["Properties"]["DeadLetterQueue"];
    assert_eq!(email_events["Type"].as_str(), Some("SQS"));
    assert_eq!(
        tagged(&email_events["TargetArn"]),
        Some(("GetAtt".into(), "EmailEventsDeadLetterQueue.Arn".into()))
    );
}

/// Memory is CPU on Lambda: the functions that check a vendor's password (argon2id; their grant
/// reads `USERNAME#` keys) get the measured size of `VendorApiMemorySize`, the others the
/// global 128 MB.
#[test]
fn functions_that_check_passwords_get_the_memory_measured_for_it() {
    let t = template();
    assert_eq!(t["Parameters"]["VendorApiMemorySize"]["Default"].as_u64(), Some(1024));
    assert_eq!(t["Globals"]["Function"]["MemorySize"].as_u64(), Some(128));
    let mut checking = 0;
    for (id, props) in devstack::resources_of_type(&t, "AWS::Serverless::Function") {
        let grants = serde_yaml::to_string(&props["Policies"]).unwrap();
        if grants.contains("USERNAME#*") {
            checking += 1;
            assert_eq!(
                tagged(&props["MemorySize"]),
                Some(("Ref".into(), "VendorApiMemorySize".into())),
                "{id}"
            );
        } else {
            assert!(props.get("MemorySize").is_none(), "{id} checks no password: the global size");
        }
    }
    assert_eq!(checking, 13, "the eComNow functions, the Ventiapp ones that share them, and the portal");
}
