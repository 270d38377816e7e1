//! `webhooks-bench`: the performance figures of the README, measured in one run each, as ratios
//! against a baseline of the same run (these machines are noisy). `scripts/bench.sh` runs them
//! all from a fresh clone; see the README's Performance section.
mod allocs;
mod cold;
mod cpu_share;
mod dispatch;
mod dispatch_share;
mod doubles;
mod log_lines;
mod receiver;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "webhooks-bench", about = "Benchmarks of the webhook functions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Dispatch against the bare-client ceiling, to one local receiver (figures on stderr;
    /// stdout carries dispatch's own metric lines, as in Lambda).
    Dispatch {
        #[arg(long, default_value_t = 10_000)]
        deliveries: usize,
        /// Requests in flight at once (dispatch: this many / 10 invocations of ten).
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Distinct webhooks the deliveries go to.
        #[arg(long, default_value_t = 100)]
        webhooks: usize,
        /// Also through the DynamoDB store on the emulator at $AWS_ENDPOINT_URL, table $TABLE_NAME.
        #[arg(long)]
        dynamo: bool,
        /// Measure this run alone (a, a2, a3, a4, b, b1, b2, b0 or b20; with `--dynamo`, c, c1, c2 or c3): the
        /// process then spends its measured time in it, for a profiler (`perf record`).
        #[arg(long, value_parser = ["a", "a2", "a3", "a4", "b", "b1", "b2", "b0", "b20", "c", "c1", "c2", "c3"])]
        only: Option<String>,
    },
    /// Each function's release binary: exec to first poll, first invocation, peak memory.
    ColdStart {
        /// Where the release binaries are.
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Deliveries in the batch dispatch gets (to a local receiver, webhooks in $TABLE_NAME).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Only these functions (by name; all of them if none is given).
        #[arg(long = "function")]
        functions: Vec<String>,
    },
    /// A password-authenticated `GET /basic/webhooks` (list-webhooks, on the emulator's table)
    /// with the function held to the CPU share Lambda gives each memory size (a cgroup CPU
    /// quota: needs root), beside a wrong password and no credentials at all.
    AuthCpu {
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
        /// The memory sizes (MB) whose CPU share to hold the function to.
        #[arg(long, value_delimiter = ',', default_value = "128,256,512,1024,1769")]
        memory: Vec<u32>,
        /// Invocations per size and case (after one to warm the process up).
        #[arg(long, default_value_t = 20)]
        invocations: usize,
    },
    /// dispatch's release binary as deployed, held to the CPU share of each memory size (a
    /// cgroup CPU quota: needs root), warm, invoked with batches of ten from the grouped lane:
    /// its webhooks and attempt records on the emulator's table, deliveries to a local receiver.
    DispatchShare {
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
        /// The memory sizes (MB) whose CPU share to hold dispatch to.
        #[arg(long, value_delimiter = ',', default_value = "128,1769")]
        memory: Vec<u32>,
        /// Invocations per size and case (after one to warm the process up).
        #[arg(long, default_value_t = 40)]
        invocations: usize,
    },
    /// What the functions' log lines weigh, by kind, in a log of their JSON lines (as `make
    /// test` leaves in `.stack/test/watch.log`).
    LogLines { file: PathBuf },
    /// The receiver process the measurements send to (internal).
    #[command(hide = true)]
    Receiver,
}

#[global_allocator]
static ALLOCATOR: allocs::Counting = allocs::Counting;

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Receiver => receiver::serve().await,
        Command::Dispatch { deliveries, concurrency, webhooks, dynamo, only } => {
            // dispatch's runs log as the deployed function logs: its JSON lines, to stdout.
            shared::telemetry::init();
            run_dispatch(deliveries, concurrency, webhooks, dynamo, only.as_deref()).await
        }
        Command::ColdStart { bin_dir, runs, batch, functions } => {
            run_cold_start(&bin_dir, runs, batch, &functions).await
        }
        Command::AuthCpu { bin_dir, memory, invocations } => {
            run_auth_cpu(&bin_dir, &memory, invocations).await
        }
        Command::DispatchShare { bin_dir, memory, invocations } => {
            run_dispatch_share(&bin_dir, &memory, invocations).await
        }
        Command::LogLines { file } => log_lines::run(&file),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

async fn run_dispatch(
    n: usize,
    concurrency: usize,
    webhooks: usize,
    dynamo: bool,
    only: Option<&str>,
) -> Result<()> {
    let wanted = |run: &str| only.is_none_or(|o| o == run);
    let receiver = receiver::spawn().await?;
    let hooks = dispatch::webhooks(receiver.port, webhooks, "ven_bench", 900_000_000);
    // Warm both paths (connections, allocator) before measuring.
    dispatch::ceiling(receiver.port, 500, concurrency).await;
    let memory = shared::store::MemoryStore::with(&hooks);
    dispatch::through_dispatch("warm-up", memory, dispatch::batches(&hooks, 500), concurrency).await;

    let mut runs = Vec::new();
    if wanted("a") {
        runs.push(dispatch::ceiling(receiver.port, n, concurrency).await);
    }
    if wanted("a2") {
        runs.push(dispatch::sender_alone(receiver.port, n, concurrency).await);
    }
    if wanted("a3") {
        runs.push(dispatch::sender_in_batches(receiver.port, n, concurrency).await);
    }
    if wanted("a4") {
        runs.push(tokio::task::block_in_place(|| {
            dispatch::ceiling_in_instances(receiver.port, n, concurrency)
        }));
    }
    // dispatch on the in-memory store, over these batches.
    let in_memory = |name, events| {
        dispatch::through_dispatch(name, shared::store::MemoryStore::with(&hooks), events, concurrency)
    };
    if wanted("b") {
        runs.push(in_memory("b. dispatch, in-memory store", dispatch::batches(&hooks, n)).await);
    }
    // As a healthy webhook's deliveries are dispatched, in the grouped lane: no slot taken.
    if wanted("b1") {
        let events = dispatch::in_grouped_lane(dispatch::batches(&hooks, n));
        runs.push(in_memory("b1. as b, through the grouped lane", events).await);
    }
    // As dispatch is deployed: each invocation an instance of its own, on one thread.
    if wanted("b2") {
        let events = dispatch::in_grouped_lane(dispatch::batches(&hooks, n));
        let name = "b2. as b1, each invocation an instance on a thread of its own (as deployed)";
        runs.push(tokio::task::block_in_place(|| {
            dispatch::through_instances(name, &hooks, events, concurrency)
        }));
    }
    if wanted("b20") {
        let events = dispatch::in_grouped_lane(dispatch::batches(&hooks, n));
        let name = "b20. as b2, with an instant 200 (no network): the handler as deployed";
        runs.push(tokio::task::block_in_place(|| {
            dispatch::through_instances_with(name, &hooks, || doubles::Answers200, events, concurrency)
        }));
    }
    if wanted("b0") {
        let memory = shared::store::MemoryStore::with(&hooks);
        runs.push(
            dispatch::through_dispatch_with(
                "b0. dispatch's handler alone (an instant 200, no network)",
                memory,
                doubles::Answers200,
                dispatch::batches(&hooks, n),
                concurrency,
            )
            .await,
        );
    }
    if dynamo && only.is_none_or(|o| o.starts_with('c')) {
        let table = std::env::var("TABLE_NAME").context("--dynamo needs TABLE_NAME")?;
        let aws = shared::aws::sdk_config().await;
        let store = shared::store::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
        dispatch::stored(&store, &hooks).await?;
        if wanted("c") {
            runs.push(
                dispatch::through_dispatch(
                    "c. dispatch, DynamoDB store on the emulator",
                    store.clone(),
                    dispatch::batches(&hooks, n),
                    concurrency,
                )
                .await,
            );
        }
        // A vendor's stream: each batch's ten deliveries to one webhook, whose slots in flight
        // the batch takes together (ten webhooks, so that the five invocations at a time are
        // each another webhook's, as its cap of ten would have it).
        let streams = dispatch::webhooks(receiver.port, 10, "ven_bench_stream", 900_100_000);
        dispatch::stored(&store, &streams).await?;
        let stream_batches = || dispatch::batches_with(&streams, n.min(2_000), |i| (i / 10) % streams.len());
        if wanted("c1") {
            runs.push(
                dispatch::through_dispatch(
                    "c1. as c, each batch to one webhook (a vendor's stream)",
                    store.clone(),
                    stream_batches(),
                    concurrency,
                )
                .await,
            );
        }
        // The same two through the grouped lane, as deployed: the cap kept by SQS's message
        // groups, no slot written.
        if wanted("c2") {
            runs.push(
                dispatch::through_dispatch(
                    "c2. as c, through the grouped lane (SQS keeps the cap)",
                    store.clone(),
                    dispatch::in_grouped_lane(dispatch::batches(&hooks, n.min(2_000))),
                    concurrency,
                )
                .await,
            );
        }
        if wanted("c3") {
            runs.push(
                dispatch::through_dispatch(
                    "c3. as c1, through the grouped lane",
                    store,
                    dispatch::in_grouped_lane(stream_batches()),
                    concurrency,
                )
                .await,
            );
        }
    }
    // The ratio is to the bare client's run, when there is one (not with `--only`).
    let ceiling = runs.iter().find(|r| r.name.starts_with("a.")).map(dispatch::Run::per_second);
    eprintln!(
        "{n} deliveries of 1 KiB, {concurrency} in flight, {webhooks} webhooks, one receiver on 127.0.0.1"
    );
    eprintln!("| run | deliveries/s | ratio to a | p50 ms | p99 ms | our CPU ms/delivery | allocations / delivery | store reads, writes / delivery |");
    eprintln!("|---|---|---|---|---|---|---|---|");
    for r in &runs {
        let requests = r
            .requests
            .map(|(reads, writes, _)| {
                let n = r.deliveries as f64;
                format!("{:.2}, {:.2}", reads as f64 / n, writes as f64 / n)
            })
            .unwrap_or_else(|| "-".into());
        eprintln!(
            "| {} | {:.0} | {} | {} | {} | {:.4} | {:.1} | {} |",
            r.name,
            r.per_second(),
            ceiling.map_or("-".to_owned(), |c| format!("{:.2}", r.per_second() / c)),
            ms(r.percentile(0.5)),
            ms(r.percentile(0.99)),
            // To a tenth of a microsecond: these runs differ by less than the millisecond's
            // thousandth.
            r.cpu_per_delivery().as_secs_f64() * 1000.0,
            r.allocations_per_delivery(),
            requests,
        );
    }
    // What dispatch costs per delivery, from the runs on the emulator (c, and c1 for a vendor's
    // stream), or without it from b: the Lambda time a batch bills, and the store requests.
    let priced = |prefix: &str| {
        let r = runs.iter().find(|r| r.name.starts_with(prefix))?;
        let (reads, writes, _) = r.requests?;
        let n = r.deliveries as f64;
        let ms_per_batch =
            r.wall.as_secs_f64() * 1000.0 / r.batches as f64 * (concurrency / 10).max(1) as f64;
        Some(Dispatched { reads: reads as f64 / n, writes: writes as f64 / n, ms_per_batch })
    };
    if let Some(spread) = priced("c2.").or_else(|| priced("b.")) {
        let stream = priced("c3.").unwrap_or(spread);
        eprintln!();
        eprintln!(
            "dispatch: {:.1} ms per batch of 10 (Lambda bills this, at 128 MB); {:.1} ms in a stream's",
            spread.ms_per_batch, stream.ms_per_batch
        );
        let grouped = cost_table(spread, stream, FIFO, true)?;
        // Without the grouped lane: every cap counted in DynamoDB (runs c and c1), on standard
        // queues.
        if let (Some(spread), Some(stream)) = (priced("c."), priced("c1.")) {
            let counted = cost_table(spread, stream, STANDARD, false)?;
            eprintln!(
                "without the grouped lane (c, c1: slots counted in DynamoDB, standard queues): {}",
                counted.map(|t| format!("{t:.2}")).join(", ")
            );
            eprintln!(
                "the grouped lane saves: {}",
                counted
                    .iter()
                    .zip(grouped)
                    .map(|(c, g)| format!("{:.2}", c - g))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

/// What dispatch did per delivery in a run: store reads and writes, and the Lambda time of a
/// batch of ten.
#[derive(Clone, Copy)]
struct Dispatched {
    reads: f64,
    writes: f64,
    ms_per_batch: f64,
}

/// SQS's price per million requests (of 64 KiB each): standard queues, and FIFO queues (the
/// grouped lane's).
const STANDARD: f64 = 0.40;
const FIFO: f64 = 0.50;

/// What a million deliveries cost at us-east-1 list prices (arm64 Lambda, on-demand DynamoDB,
/// SQS at `sqs` per million requests, HTTP API), from the requests counted in this run: for an event going to one
/// webhook (the worst case: nothing shared), to ten, to one when the platform publishes in
/// batches of 100 (`POST /events/batch`; each event another vendor's, and each batch dispatch
/// gets ten webhooks'), and to one in batches of a vendor's stream (its events to its webhook:
/// the vendor's reads shared by a batch, and each batch dispatch gets one webhook's, `stream`).
/// Printed as a table if `print`; the four totals.
fn cost_table(spread: Dispatched, stream: Dispatched, sqs: f64, print: bool) -> Result<[f64; 4]> {
    const RRU: f64 = 0.125; // per million read request units (an eventually consistent read of <= 4 KB is 0.5)
    const WRU: f64 = 0.625; // per million write request units (a write of <= 1 KB is 1)
    const LAMBDA_REQ: f64 = 0.20; // per million invocations
    const LAMBDA_GBS: f64 = 0.000_013_333_4; // per GB-second, arm64
    const HTTP_API: f64 = 1.00; // per million requests
    let gb = 128.0 / 1024.0;
    // The kept event's write units, from the item the store writes for this run's payload (an
    // event every webhook of its type is sent: out of the timeline).
    let kept = shared::store::kept_event_write_units(&shared::store::StoredEvent {
        event_id: "evt_0123456789abcdefghijklmn".into(),
        vendor_id: "ven_0123456789abcdefghij".into(),
        event_type: shared::domain::EventType::NewOrder,
        payload: dispatch::payload(),
        published_at: 1_795_510_800,
        in_timeline: false,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))? as f64;
    struct Column {
        fan_out: f64,
        batch: f64,
        /// Events per vendor read (its account, webhooks and email settings).
        per_vendor: f64,
        dispatch: Dispatched,
    }
    let columns = [
        Column { fan_out: 1.0, batch: 1.0, per_vendor: 1.0, dispatch: spread },
        Column { fan_out: 10.0, batch: 1.0, per_vendor: 1.0, dispatch: spread },
        Column { fan_out: 1.0, batch: 100.0, per_vendor: 1.0, dispatch: spread },
        Column { fan_out: 1.0, batch: 100.0, per_vendor: 100.0, dispatch: stream },
    ];
    if print {
        eprintln!("kept event: {kept} write unit(s) for a {} B payload", dispatch::payload().len());
        eprintln!(
            "| per million deliveries, USD | an event to 1 webhook | an event to 10 webhooks | to 1 webhook, published in batches of 100 | to 1 webhook, batches of a vendor's stream |"
        );
        eprintln!("|---|---|---|---|---|");
    }
    let mut totals = [0.0f64; 4];
    let mut line = |what: &str, f: &dyn Fn(&Column) -> f64| {
        let v = columns.each_ref().map(f);
        for (total, v) in totals.iter_mut().zip(v) {
            *total += v;
        }
        if print {
            eprintln!("| {what} | {:.3} | {:.3} | {:.3} | {:.3} |", v[0], v[1], v[2], v[3]);
        }
    };
    // Publishing, per event, shared by its deliveries: the API request and the function (about
    // 10 ms, and 1 ms more per event of a batch) shared by a batch's events; the vendor's three
    // reads (account, webhooks, email settings) per vendor in the request; the event kept for
    // redelivery and recovery; one SendMessageBatch per ten deliveries, a batch's events'
    // deliveries packed together.
    line("publish: API Gateway + Lambda", &|c| {
        (HTTP_API + LAMBDA_REQ + (10.0 + c.batch) / 1000.0 * gb * LAMBDA_GBS * 1e6) / (c.fan_out * c.batch)
    });
    line("publish: DynamoDB (the vendor's reads, the kept event)", &|c| {
        (3.0 * 0.5 * RRU / c.per_vendor + kept * WRU) / c.fan_out
    });
    line("SQS SendMessageBatch", &|c| sqs * (c.fan_out * c.batch / 10.0).ceil() / (c.fan_out * c.batch));
    // Dispatch, per delivery: the event source mapping's receive and delete per batch of ten,
    // one invocation per batch, its billed time, the store requests counted.
    line("SQS receive + delete (event source mapping)", &|_| sqs * 2.0 / 10.0);
    line("dispatch Lambda (requests + GB-s at 128 MB)", &|c| {
        (LAMBDA_REQ + c.dispatch.ms_per_batch / 1000.0 * gb * LAMBDA_GBS * 1e6) / 10.0
    });
    line("dispatch DynamoDB (webhook read, slots in flight, attempt record)", &|c| {
        c.dispatch.reads * 0.5 * RRU + c.dispatch.writes * WRU
    });
    if print {
        eprintln!(
            "| **total** | **{:.2}** | **{:.2}** | **{:.2}** | **{:.2}** |",
            totals[0], totals[1], totals[2], totals[3]
        );
    }
    Ok(totals)
}

/// The functions and, for each, an event that runs it without touching AWS: an HTTP function
/// answers a method its route does not take (405) before any store call (the portal, which
/// takes every method, its stylesheet); dispatch gets a batch; the email consumers an empty batch.
const FUNCTIONS: &[(&str, &str)] = &[
    ("create-webhook", "/basic/webhooks"),
    ("get-webhook", "/basic/webhooks/1"),
    ("update-webhook", "/basic/webhooks/1"),
    ("delete-webhook", "/basic/webhooks/1"),
    ("list-webhooks", "/basic/webhooks"),
    ("list-deliveries", "/basic/webhooks/1/deliveries"),
    ("enable-webhook", "/basic/webhooks/1/enable"),
    ("rotate-secret", "/basic/webhooks/1/rotate-secret"),
    ("redeliver-event", "/basic/webhooks/1/redeliver"),
    ("test-webhook", "/basic/webhooks/1/test"),
    ("get-notifications", "/basic/notifications"),
    ("update-notifications", "/basic/notifications"),
    ("publish-event", "/events"),
    ("portal", "/portal/static/portal.css"),
    ("dispatch", ""),
    ("send-email", ""),
    ("email-events", ""),
];

fn http_event(path: &str) -> Bytes {
    http_request_event("PATCH", path, serde_json::json!({"accept": "application/json"}))
}

fn http_request_event(method: &str, path: &str, headers: serde_json::Value) -> Bytes {
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "127.0.0.1",
            "domainPrefix": "bench", "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "bench"}, "requestId": "bench", "routeKey": "$default",
            "stage": "$default", "time": "24/Nov/2026:09:00:00 +0000", "timeEpoch": 1795510800000u64},
        "isBase64Encoded": false
    });
    Bytes::from(event.to_string())
}

/// The AWS settings of the functions under measurement, from this process's environment.
fn function_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "TABLE_NAME",
        // dispatch's queues, as the template gives them (the local stack's, from queues.env).
        "DELIVERIES_QUEUE_URL",
        "SLOW_DELIVERIES_QUEUE_URL",
        "DEAD_LETTER_QUEUE_URL",
        "ORDERED_DELIVERIES_QUEUE_URL",
        "ORDERED_DEAD_LETTER_QUEUE_URL",
        "GROUPED_DELIVERIES_QUEUE_URL",
        "EMAILS_QUEUE_URL",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
    .collect();
    env.push(("ALLOW_PRIVATE_TARGETS".into(), "true".into()));
    env.push(("RUST_LOG".into(), "info".into()));
    env
}

async fn run_auth_cpu(bin_dir: &std::path::Path, memory: &[u32], n: usize) -> Result<()> {
    use shared::store::{StoreError, VendorStore};
    const USERNAME: &str = "bench-password-check";
    const PASSWORD: &str = "bench-password-only-for-measuring";
    let aws = shared::aws::sdk_config().await;
    let table = std::env::var("TABLE_NAME").context("auth-cpu needs TABLE_NAME and the emulator")?;
    let store = shared::store::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let vendor = shared::domain::Vendor {
        vendor_id: "ven_bench_auth".into(),
        username: USERNAME.into(),
        created_at: shared::clock::now(),
    };
    let hash = shared::auth::hash_password(PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    match store.create_vendor(&vendor, &hash).await {
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => anyhow::bail!("creating the vendor: {}", shared::error::chain(&e)),
    }
    let binary = bin_dir.join("list-webhooks");
    let env = function_env();
    let right = serde_json::json!({"username": USERNAME, "password": PASSWORD});
    let wrong = serde_json::json!({"username": USERNAME, "password": "not-the-password-at-all"});
    // (case, headers, the statuses it may answer, settings): the defaults remember verified
    // credentials for a minute and throttle a username after five failures; the others switch
    // each off to show what a check costs every time.
    type Case<'a> = (&'a str, &'a serde_json::Value, &'a [u16], &'a [(&'a str, &'a str)]);
    let cases: [Case; 5] = [
        ("right password, remembered", &right, &[200], &[]),
        ("right password, checked every time", &right, &[200], &[("VERIFIED_LOGIN_TTL", "0s")]),
        ("wrong password, checked every time", &wrong, &[401], &[("LOGIN_FAILURES_ALLOWED", "0")]),
        ("wrong password, throttled after five", &wrong, &[401, 429], &[]),
        ("no credentials", &serde_json::json!({"accept": "application/json"}), &[401], &[]),
    ];
    eprintln!(
        "list-webhooks, GET /basic/webhooks, {n} invocations per cell after one to warm up; p50 (p99) ms"
    );
    eprintln!("| memory MB | CPU share | {} |", cases.iter().map(|c| c.0).collect::<Vec<_>>().join(" | "));
    eprintln!("|---|---|{}", "---|".repeat(cases.len()));
    for &mb in memory {
        let share = cpu_share::CpuShare::new(mb)?;
        let mut cells = Vec::new();
        for (name, headers, statuses, settings) in &cases {
            let event = http_request_event("GET", "/basic/webhooks", (*headers).clone());
            let mut env = env.clone();
            env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let runs = cpu_share::invoke_repeatedly(&binary, &env, mb, Some(&share), &event, n + 1).await?;
            for (_, answer) in &runs {
                let a: serde_json::Value = serde_json::from_slice(answer)?;
                let status = a["statusCode"].as_u64().unwrap_or(0) as u16;
                anyhow::ensure!(statuses.contains(&status), "{name} at {mb} MB: {a}");
            }
            let times: Vec<Duration> = runs.iter().skip(1).map(|(t, _)| *t).collect();
            cells.push(format!(
                "{} ({})",
                ms(cpu_share::quantile(&times, 0.5)),
                ms(cpu_share::quantile(&times, 0.99))
            ));
        }
        eprintln!("| {mb} | {:.1}% | {} |", cpu_share::percent_of_a_core(mb), cells.join(" | "));
    }
    Ok(())
}

async fn run_cold_start(bin_dir: &std::path::Path, runs: usize, batch: usize, only: &[String]) -> Result<()> {
    if let Some(unknown) = only.iter().find(|f| !FUNCTIONS.iter().any(|(name, _)| name == f)) {
        anyhow::bail!("--function {unknown}: no such function");
    }
    let receiver = receiver::spawn().await?;
    let env = function_env();
    // dispatch's batch: deliveries to webhooks stored in the table on the emulator.
    let hooks = dispatch::webhooks(receiver.port, 10, "ven_bench_cold", 800_000_000);
    {
        let aws = shared::aws::sdk_config().await;
        let table = std::env::var("TABLE_NAME").context("cold-start needs TABLE_NAME and the emulator")?;
        let store = shared::store::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
        dispatch::stored(&store, &hooks).await?;
    }
    let records: Vec<_> = dispatch::batches(&hooks, batch).into_iter().flat_map(|e| e.records).collect();
    let dispatch_event = Bytes::from(serde_json::json!({"Records": records}).to_string());

    eprintln!("median of {runs} starts; the first invocation: an HTTP function answers a 405 (the portal its stylesheet; no AWS call), dispatch delivers {batch} messages, the email consumers get an empty batch");
    eprintln!("| function | bootstrap MB | exec to first poll ms | first invocation ms | peak RSS MB |");
    eprintln!("|---|---|---|---|---|");
    for (function, path) in
        FUNCTIONS.iter().filter(|(name, _)| only.is_empty() || only.iter().any(|o| o == name))
    {
        let binary = bin_dir.join(function);
        let size = std::fs::metadata(&binary)
            .with_context(|| format!("{}: build it first", binary.display()))?
            .len();
        let event = match *function {
            "dispatch" => dispatch_event.clone(),
            "send-email" | "email-events" => Bytes::from_static(br#"{"Records": []}"#),
            "portal" => http_request_event("GET", path, serde_json::json!({})),
            _ => http_event(path),
        };
        let (mut starts, mut firsts, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (start, first, answer, peak) = cold::start_once(&binary, &env, &event).await?;
            if *function == "email-events" {
                let a: serde_json::Value = serde_json::from_slice(&answer)?;
                anyhow::ensure!(a["refused"] == 0, "email-events: {a}");
            } else if matches!(*function, "dispatch" | "send-email") {
                let failures: serde_json::Value = serde_json::from_slice(&answer)?;
                anyhow::ensure!(
                    failures["batchItemFailures"] == serde_json::json!([]),
                    "{function} failed: {failures}"
                );
            } else {
                let a: serde_json::Value = serde_json::from_slice(&answer)?;
                let expected = if *function == "portal" { 200 } else { 405 };
                anyhow::ensure!(a["statusCode"] == expected, "{function}: {a}");
            }
            starts.push(start);
            firsts.push(first);
            peaks.push(peak);
        }
        peaks.sort();
        eprintln!(
            "| {function} | {:.2} | {} | {} | {:.1} |",
            size as f64 / 1e6,
            ms(cold::median(starts)),
            ms(cold::median(firsts)),
            peaks[peaks.len() / 2] as f64 / 1024.0
        );
    }
    Ok(())
}

async fn run_dispatch_share(bin_dir: &std::path::Path, memory: &[u32], n: usize) -> Result<()> {
    let receiver = receiver::spawn().await?;
    let aws = shared::aws::sdk_config().await;
    let table = std::env::var("TABLE_NAME").context("dispatch-share needs TABLE_NAME and the emulator")?;
    let store = shared::store::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    // Webhook ids of the length the API gives (16 digits): dispatch's log lines carry them.
    let hooks = dispatch::webhooks(receiver.port, 10, "ven_bench_share", 7_000_000_000_000_000);
    dispatch::stored(&store, &hooks).await?;
    // Ten webhooks' deliveries (each read apart), and ten to one webhook (read once).
    let cases = [
        ("ten webhooks", dispatch::batches(&hooks, 10)),
        ("one webhook", dispatch::batches_with(&hooks, 10, |_| 0)),
    ];
    let binary = bin_dir.join("dispatch");
    let env = function_env();
    eprintln!(
        "dispatch, warm, a batch of ten from the grouped lane, {n} invocations per cell after one to warm up"
    );
    eprintln!(
        "| memory MB | CPU share | {} |",
        cases
            .iter()
            .map(|c| format!("{}: p50 (p99) ms, CPU ms / delivery", c.0))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    eprintln!("|---|---|{}", "---|".repeat(cases.len()));
    let mut logs = Vec::new();
    for &mb in memory {
        let mut cells = Vec::new();
        for (case, events) in &cases {
            let records = events.iter().flat_map(|e| e.records.clone()).collect();
            let event = dispatch_share::grouped_event(records)?;
            let m = dispatch_share::measure(&binary, &env, mb, &event, 10, n).await?;
            logs.push((*case, mb, m.log));
            cells.push(format!(
                "{} ({}), {:.3}",
                ms(cpu_share::quantile(&m.times, 0.5)),
                ms(cpu_share::quantile(&m.times, 0.99)),
                m.cpu_per_delivery.as_secs_f64() * 1000.0
            ));
        }
        eprintln!("| {mb} | {:.1}% | {} |", cpu_share::percent_of_a_core(mb), cells.join(" | "));
    }
    // CloudWatch Logs bills what it ingests: each line, and 26 bytes for each log event.
    eprintln!("dispatch's log per delivery (stdout, at the default level):");
    for (case, mb, log) in logs {
        eprintln!(
            "  {case}, {mb} MB: {:.2} lines, {:.0} B; {:.0} B ingested, ${:.3} per million deliveries",
            log.lines,
            log.bytes,
            log.ingested_bytes(),
            log.ingested_bytes() * LOGS_PER_GB / 1e3,
        );
    }
    Ok(())
}

/// CloudWatch Logs' price per GB ingested (standard class, us-east-1): a million deliveries of
/// `b` bytes each are `b` / 1,000 GB.
const LOGS_PER_GB: f64 = 0.50;
