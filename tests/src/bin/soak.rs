//! The soak: N events (10,000 by default) through the whole local stack with faults injected, then
//! every (event, webhook) pair accounted for: delivered (a 2xx seen by its receiver), parked in the
//! dead-letter queue, dropped on purpose (recorded in the attempt log), or never enqueued because
//! its webhook was disabled when the event was published. Exits non-zero if any pair is none of
//! these. Run by `scripts/soak.sh`, which starts a stack of its own (see the README).
//!
//! Faults: 30 % of receivers' answers are 500s; one receiver is down for good, one answers after
//! the delivery timeout, one redirects, one answers `410 Gone`, one fails until halfway through;
//! the dispatch process is killed twice mid-run (a local Lambda restarts it, as Lambda does); the
//! emulator is unreachable for several seconds, through a TCP proxy in front of it that every
//! function talks to.
use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aws_sdk_sqs::types::QueueAttributeName;
use reqwest::Method;
use serde_json::json;
use shared::{
    delivery::DeliveryMessage,
    domain::EventType,
    store::{AttemptLog, DynamoStore, WebhookStore},
};
use tests::{
    fixture, new_token, new_vendor,
    receiver::{Receiver, Reply},
    stack_var, Api, TestVendor,
};
use tokio::{net::TcpListener, sync::watch};

const VENDORS: usize = 20;
const WEBHOOKS_PER_VENDOR: usize = 5;
const DISPATCHERS: usize = 6;
/// Of the dispatchers, how many the slow lane feeds (the first ones), and how many the
/// deliveries queue (the next ones): the others, the grouped lane, which has most first attempts.
const SLOW_LANE_DISPATCHERS: usize = 2;
const DELIVERIES_QUEUE_DISPATCHERS: usize = 1;

/// An accepted event: (vendor index, type, when its publishing began, deliveries enqueued).
type Published = (usize, EventType, Instant, u64);

/// How a webhook's receiver behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Behaviour {
    Flaky,
    Down,
    Slow,
    Redirect,
    Gone,
    Recovers,
}

struct Hook {
    id: u64,
    vendor: usize,
    event_type: EventType,
    behaviour: Behaviour,
    receiver: Option<Receiver>,
}

/// A TCP proxy to the emulator that can be made unreachable: refuses nothing, but closes every
/// connection at once (and cuts those open) while down.
async fn proxy(listen: u16, upstream: String, down: watch::Receiver<bool>) -> Result<()> {
    let listener =
        TcpListener::bind(("127.0.0.1", listen)).await.with_context(|| format!("port {listen}"))?;
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                // Out of file descriptors, most likely: wait for some to close.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let (upstream, mut down) = (upstream.clone(), down.clone());
            tokio::spawn(async move {
                if *down.borrow() {
                    return; // dropped: the caller sees the connection closed
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = async {
                        loop {
                            if down.changed().await.is_err() {
                                // The soak is over: no outage to come.
                                std::future::pending::<()>().await;
                            }
                            if *down.borrow() {
                                return;
                            }
                        }
                    } => {}
                }
            });
        }
    });
    Ok(())
}

fn payload(t: EventType) -> String {
    let file = match t {
        EventType::NewOrder | EventType::OrderCancellation => "ecomnow/new-order.json",
        EventType::OrdersCreated | EventType::OrdersUpdated | EventType::OrdersCancelled => {
            "ventiapp/order.json"
        }
        EventType::BillsCreated => "ventiapp/bill.json",
        _ => "ventiapp/product.json",
    };
    let p = fixture(file).trim_end().to_owned();
    if t == EventType::OrderCancellation {
        p.replace("\"new_order\"", "\"order_cancellation\"")
    } else {
        p
    }
}

async fn register(api: &Api, v: &TestVendor, token: &str, t: EventType, url: &str) -> Result<u64> {
    if t.dialect() == shared::domain::Dialect::Ecomnow {
        let body = json!({"webhookType": t.as_str(), "url": url});
        let a = api.vendor(v, Method::POST, "/basic/webhooks", Some(&body)).await;
        if a.status != 201 {
            bail!("register: {}", a.text);
        }
        Ok(a.json()["webhookId"].as_u64().unwrap())
    } else {
        let body = json!({"webhook": {"topic": t.as_str(), "address": url}}).to_string();
        let a = api.bearer(token, Method::POST, "/api/webhooks/create", Some(&body)).await;
        if a.status != 201 {
            bail!("register: {}", a.text);
        }
        Ok(a.json()["webhook"]["id"].as_u64().unwrap())
    }
}

/// The queue's visible, in-flight and delayed messages.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await?;
    let a = out.attributes().context("attributes")?;
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Delayed: a retry waiting out its backoff is a message too.
    Ok(n(QueueAttributeName::ApproximateNumberOfMessages)
        + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        + n(QueueAttributeName::ApproximateNumberOfMessagesDelayed))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<()> {
    let events: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let proxy_port: u16 = stack_var("SOAK_PROXY_PORT").parse()?;
    let upstream = stack_var("AWS_ENDPOINT_URL").trim_start_matches("http://").to_owned();
    let (down_tx, down_rx) = watch::channel(false);
    proxy(proxy_port, upstream, down_rx).await?;

    let aws = shared::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), stack_var("TABLE_NAME"));
    let (queue_url, dlq_url) = (stack_var("DELIVERIES_QUEUE_URL"), stack_var("DEAD_LETTER_QUEUE_URL"));
    let slow_url = stack_var("SLOW_DELIVERIES_QUEUE_URL");
    let (grouped_url, grouped_dlq_url) =
        (stack_var("GROUPED_DELIVERIES_QUEUE_URL"), stack_var("GROUPED_DEAD_LETTER_QUEUE_URL"));
    let api = Api::new();

    // dispatch under a local Lambda that restarts it, fed by the bridge; AWS through the proxy.
    let mut env: Vec<(String, String)> =
        std::fs::read_to_string(format!("{}/functions.env", stack_var("STACK_DIR")))?
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .filter(|(k, _)| k != "AWS_ENDPOINT_URL" && k != "RUST_LOG")
            .collect();
    env.push(("AWS_ENDPOINT_URL".into(), format!("http://127.0.0.1:{proxy_port}")));
    env.push(("RUST_LOG".into(), "warn".into()));
    // Concurrent instances, as the event source mappings scale Lambda, each with its poller:
    // two on the slow lane, one on the deliveries queue, three on the grouped lane.
    let log = std::path::PathBuf::from(stack_var("STACK_DIR")).join("dispatch.log");
    let mut lambdas = Vec::new();
    for i in 0..DISPATCHERS {
        let binary = tests::target_bin("dispatch");
        let lambda =
            devstack::runtime::LocalLambda::start_logged("dispatch", binary, env.clone(), Some(log.clone()))
                .await?;
        let source = match i {
            i if i < SLOW_LANE_DISPATCHERS => &slow_url,
            i if i < SLOW_LANE_DISPATCHERS + DELIVERIES_QUEUE_DISPATCHERS => &queue_url,
            _ => &grouped_url,
        };
        let bridge =
            devstack::bridge::Bridge::for_queue(sqs.clone(), source.clone(), lambda.invoke_url("dispatch"))
                .await?;
        tokio::spawn(async move { bridge.run().await });
        lambdas.push(lambda);
    }
    let lambdas = Arc::new(lambdas);

    // Vendors, webhooks and their receivers.
    let started = Instant::now();
    let estimate = Duration::from_millis(events as u64 * 8).max(Duration::from_secs(20));
    let mut vendors = Vec::new();
    let mut hooks: Vec<Hook> = Vec::new();
    for v in 0..VENDORS {
        let vendor = new_vendor(&store).await;
        let (_, token) = new_token(&store, &vendor.vendor).await;
        for w in 0..WEBHOOKS_PER_VENDOR {
            let n = v * WEBHOOKS_PER_VENDOR + w;
            let event_type = EventType::ALL[n % EventType::ALL.len()];
            let behaviour = match n {
                10 => Behaviour::Down,
                11 => Behaviour::Slow,
                12 => Behaviour::Redirect,
                13 => Behaviour::Gone,
                14 => Behaviour::Recovers,
                _ => Behaviour::Flaky,
            };
            let https = event_type.dialect() == shared::domain::Dialect::Ventiapp;
            let start = |script: Vec<Reply>, then: Reply| async move {
                if https {
                    Receiver::start_tls(script, then).await
                } else {
                    Receiver::start(script, then).await
                }
            };
            let receiver = match behaviour {
                Behaviour::Flaky => Some(start(Vec::new(), Reply::Flaky(0.3)).await),
                Behaviour::Down => None,
                Behaviour::Slow => Some(start(Vec::new(), Reply::Slow(Duration::from_secs(3), 200)).await),
                Behaviour::Redirect => {
                    Some(start(Vec::new(), Reply::Redirect("https://example.com/".into())).await)
                }
                Behaviour::Gone => Some(start(Vec::new(), Reply::Status(410)).await),
                Behaviour::Recovers => {
                    Some(start(Vec::new(), Reply::FailUntil(started + estimate / 2, 503)).await)
                }
            };
            let url = match &receiver {
                Some(r) => format!("{}/{n}", r.url),
                None => {
                    // Port 1, where nothing listens: connections are refused. (A port that was
                    // free a moment ago could be taken by another receiver later in the run.)
                    let scheme = if https { "https" } else { "http" };
                    format!("{scheme}://127.0.0.1:1/hook/{n}")
                }
            };
            let id = register(&api, &vendor, &token, event_type, &url).await?;
            hooks.push(Hook { id, vendor: v, event_type, behaviour, receiver });
        }
        vendors.push(vendor);
    }
    eprintln!("soak: {} vendors, {} webhooks; publishing {events} events", vendors.len(), hooks.len());

    // Publishing, with the faults on the way.
    let published: Arc<std::sync::Mutex<HashMap<String, Published>>> = Default::default();
    let next = Arc::new(AtomicUsize::new(0));
    let stop_faults = Arc::new(AtomicBool::new(false));
    let run = shared::ids::event_id()[4..12].to_owned();
    let types: Arc<Vec<Vec<EventType>>> = Arc::new(
        (0..VENDORS)
            .map(|v| hooks.iter().filter(|h| h.vendor == v).map(|h| h.event_type).collect())
            .collect(),
    );
    let publishers: Vec<_> = (0..8)
        .map(|_| {
            let (api, vendors, published, next, run, types) =
                (api.clone(), vendors.clone(), published.clone(), next.clone(), run.clone(), types.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= events {
                        return;
                    }
                    let v = i % VENDORS;
                    // Each vendor publishes the types its webhooks take, in turn: every event has a
                    // webhook, and all nine types are published.
                    let t = types[v][(i / VENDORS) % types[v].len()];
                    let id = format!("soak-{run}-{i}");
                    let body = format!(
                        r#"{{"id": "{id}", "vendorId": "{}", "type": "{}", "payload": {}}}"#,
                        vendors[v].vendor.vendor_id,
                        t.as_str(),
                        payload(t)
                    );
                    // Retried, same id, until accepted: publishing is idempotent.
                    loop {
                        let at = Instant::now();
                        let a = api
                            .send(
                                Method::POST,
                                "/events",
                                &[("Content-Type", "application/json")],
                                Some(body.clone().into_bytes()),
                            )
                            .await;
                        if a.status == 202 {
                            let n = a.json()["deliveries"].as_u64().unwrap_or(0);
                            published.lock().unwrap().insert(id, (v, t, at, n));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        })
        .collect();
    let faults = {
        let (next, stop, killer) = (next.clone(), stop_faults.clone(), lambdas.clone());
        let lambda_kill = move || killer.iter().for_each(|l| l.kill());
        tokio::spawn(async move {
            let mut done = [false; 3];
            while !stop.load(Ordering::SeqCst) {
                let i = next.load(Ordering::SeqCst);
                if !done[0] && i >= events / 4 {
                    done[0] = true;
                    eprintln!("soak: killing dispatch ({i} published)");
                    lambda_kill();
                }
                if !done[1] && i >= events / 2 {
                    done[1] = true;
                    eprintln!("soak: the emulator is unreachable for 5 s ({i} published)");
                    let _ = down_tx.send(true);
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let _ = down_tx.send(false);
                }
                if !done[2] && i >= events * 3 / 4 {
                    done[2] = true;
                    eprintln!("soak: killing dispatch again ({i} published)");
                    lambda_kill();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for p in publishers {
        p.await?;
    }
    let published_in = started.elapsed();
    stop_faults.store(true, Ordering::SeqCst);
    let _ = faults.await;
    eprintln!("soak: published in {:.1} s; waiting for the queue to drain", published_in.as_secs_f64());

    // Quiet: the deliveries queue and the two lanes empty for three seconds in a row.
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut quiet = 0;
    while quiet < 3 {
        if Instant::now() > deadline {
            bail!("the deliveries queue and its lanes did not drain in 15 minutes");
        }
        let depth = queue_depth(&sqs, &queue_url).await?
            + queue_depth(&sqs, &slow_url).await?
            + queue_depth(&sqs, &grouped_url).await?;
        quiet = if depth == 0 { quiet + 1 } else { 0 };
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let drained = started.elapsed();

    // The dead-letter queues, read whole (this stack is thrown away afterwards): dispatch's,
    // and the grouped lane's (SQS's redrive, for what kept failing without an attempt).
    let mut parked: HashSet<(String, u64)> = HashSet::new();
    for dlq_url in [&dlq_url, &grouped_dlq_url] {
        let mut empty = 0;
        while empty < 3 {
            let out = sqs
                .receive_message()
                .queue_url(dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(600)
                .send()
                .await?;
            let messages = out.messages.unwrap_or_default();
            empty = if messages.is_empty() { empty + 1 } else { 0 };
            for m in messages {
                let d: DeliveryMessage = serde_json::from_str(m.body().unwrap_or_default())?;
                parked.insert((d.event_id, d.webhook_id));
            }
        }
    }

    // Account for every pair.
    let published = published.lock().unwrap().clone();
    let mut seen: HashMap<(String, u64), Vec<(u16, Instant)>> = HashMap::new();
    for h in &hooks {
        if let Some(r) = &h.receiver {
            for got in r.received() {
                if let Some(id) = got.header("webhook-id") {
                    seen.entry((id.to_owned(), h.id)).or_default().push((got.status, got.at));
                }
            }
        }
    }
    let mut dropped: HashSet<(String, u64)> = HashSet::new();
    let mut disabled_at: HashMap<u64, i64> = HashMap::new();
    for h in &hooks {
        if let Some(w) = store.get_webhook(&vendors[h.vendor].vendor.vendor_id, h.id).await? {
            if let Some((at, _)) = w.disabled {
                disabled_at.insert(h.id, at);
                let mut after = None;
                loop {
                    let (page, next) = store.attempts_page(h.id, 100, after.as_deref()).await?;
                    for a in page.into_iter().filter(|a| a.outcome.starts_with("dropped")) {
                        dropped.insert((a.event_id, h.id));
                    }
                    match next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
            }
        }
    }
    let mut table: HashMap<(Behaviour, &str), usize> = HashMap::new();
    let (mut duplicates, mut unaccounted, mut latencies) = (0usize, Vec::new(), Vec::new());
    for (event_id, (v, t, at, enqueued)) in &published {
        let matching: Vec<&Hook> = hooks.iter().filter(|h| h.vendor == *v && h.event_type == *t).collect();
        let skipped = matching.len() as u64 - (*enqueued).min(matching.len() as u64);
        for h in matching {
            let key = (event_id.clone(), h.id);
            let ok: Vec<Instant> = seen
                .get(&key)
                .map(|s| s.iter().filter(|(st, _)| (200..300).contains(st)).map(|(_, at)| *at).collect())
                .unwrap_or_default();
            let gone = seen.get(&key).is_some_and(|s| s.iter().any(|(st, _)| *st == 410));
            let outcome = if let Some(first) = ok.iter().min() {
                duplicates += ok.len() - 1;
                latencies.push(first.saturating_duration_since(*at));
                "delivered"
            } else if gone {
                "410 Gone, webhook disabled"
            } else if parked.contains(&key) {
                "in the DLQ"
            } else if dropped.contains(&key) {
                "dropped, webhook disabled"
            } else if skipped > 0 && disabled_at.contains_key(&h.id) {
                "not enqueued, webhook disabled"
            } else {
                unaccounted.push(format!("{event_id} -> webhook {} ({:?})", h.id, h.behaviour));
                "UNACCOUNTED"
            };
            *table.entry((h.behaviour, outcome)).or_default() += 1;
        }
    }
    latencies.sort();
    let delivered = latencies.len();
    let mut rows: Vec<_> = table.into_iter().collect();
    rows.sort();
    println!("| receiver | outcome | pairs |");
    println!("|---|---|---|");
    let mut total = 0;
    for ((behaviour, outcome), n) in &rows {
        total += n;
        println!("| {behaviour:?} | {outcome} | {n} |");
    }
    println!();
    println!(
        "{events} events, {total} (event, webhook) pairs: {delivered} delivered, {} unaccounted; {duplicates} duplicate deliveries (same webhook-id, receivers can drop them)",
        unaccounted.len()
    );
    println!(
        "published in {:.1} s, drained in {:.1} s: {:.0} deliveries/s; publish to first 2xx p50 {:.0} ms, p99 {:.0} ms",
        published_in.as_secs_f64(),
        drained.as_secs_f64(),
        delivered as f64 / drained.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    let starts: u32 = lambdas.iter().map(|l| l.starts()).sum();
    println!("dispatch processes were started {starts} times ({DISPATCHERS} instances, all killed twice)");
    if !unaccounted.is_empty() {
        for u in unaccounted.iter().take(20) {
            eprintln!("unaccounted: {u}");
        }
        bail!("{} pairs unaccounted for", unaccounted.len());
    }
    Ok(())
}
