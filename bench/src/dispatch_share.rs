//! dispatch as deployed, at the CPU share Lambda gives a memory size: the release binary, warm,
//! in a cgroup held to that share (`cpu_share`), invoked again and again under a minimal Runtime
//! API with a batch of ten from the grouped lane (a healthy webhook's deliveries), its webhooks
//! read from and its attempts written to the emulator's table, delivering to a local receiver.
//!
//! What it reports is what a deployed dispatch spends on a delivery, its AWS calls included:
//! each invocation's time, and the process's CPU time per delivery (every thread's time on a
//! CPU, from `/proc/<pid>/task/*/schedstat`, in nanoseconds), over the invocations after the
//! first.
use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use aws_lambda_events::sqs::SqsMessage;
use bytes::Bytes;

use crate::cpu_share;

/// One measured case: each warm invocation's time, the CPU per delivery, and what dispatch
/// wrote to its log (stdout, which Lambda sends to CloudWatch Logs) per delivery.
pub struct Measured {
    pub times: Vec<Duration>,
    pub cpu_per_delivery: Duration,
    pub log: LogVolume,
}

/// Log lines and their bytes (newlines included) per delivery.
#[derive(Clone, Copy, Default)]
pub struct LogVolume {
    pub lines: f64,
    pub bytes: f64,
}

impl LogVolume {
    /// What CloudWatch Logs ingests per delivery: each line's bytes and 26 bytes for each event.
    pub fn ingested_bytes(&self) -> f64 {
        self.bytes + 26.0 * self.lines
    }
}

/// The lines and bytes in `text` so far.
fn count(text: &[u8]) -> (usize, usize) {
    (text.iter().filter(|&&b| b == b'\n').count(), text.len())
}

/// The grouped lane's records of `batch` deliveries (`records`), as its event source hands them
/// to dispatch: the lane's ARN, from `GROUPED_DELIVERIES_QUEUE_URL`'s queue name.
pub fn grouped_event(records: Vec<SqsMessage>) -> Result<Bytes> {
    let url =
        std::env::var("GROUPED_DELIVERIES_QUEUE_URL").context("needs the stack's queues (queues.env)")?;
    let lane = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = records;
    let mut events = crate::dispatch::in_lane(vec![event], &lane);
    Ok(Bytes::from(serde_json::to_vec(&events.remove(0))?))
}

/// Starts `binary` with `env` in `mb`'s CPU share and invokes it `n + 1` times with `event`, a
/// batch of `deliveries`; every answer must be a batch with no failure.
pub async fn measure(
    binary: &Path,
    env: &[(String, String)],
    mb: u32,
    event: &Bytes,
    deliveries: usize,
    n: usize,
) -> Result<Measured> {
    let share = cpu_share::CpuShare::new(mb)?;
    let log_path = std::env::temp_dir().join(format!("dispatch-share-{}-{mb}.log", std::process::id()));
    let log = std::fs::File::create(&log_path)?;
    let mut run = cpu_share::start_in(binary, env, mb, Some(&share), event, n + 1, Some(log)).await?;
    let pid = run.child.id().context("the child has no pid")?;
    let (mut times, mut cpu_at_first, mut log_at_first) = (Vec::with_capacity(n), Duration::ZERO, (0, 0));
    for i in 0..=n {
        let (time, answer) = cpu_share::next_answer(&mut run, binary).await?;
        let failures: serde_json::Value = serde_json::from_slice(&answer)?;
        anyhow::ensure!(
            failures["batchItemFailures"] == serde_json::json!([]),
            "dispatch failed: {failures}"
        );
        // The first invocation opens the connections: the warm ones are measured.
        if i == 0 {
            cpu_at_first = cpu_time(pid)?;
            log_at_first = count(&std::fs::read(&log_path)?);
        } else {
            times.push(time);
        }
    }
    let cpu = cpu_time(pid)?.saturating_sub(cpu_at_first);
    let _ = run.child.kill().await;
    // Each line is written whole before the invocation's answer is posted.
    let (lines, bytes) = count(&std::fs::read(&log_path)?);
    if std::env::var_os("KEEP_LOG").is_none() {
        let _ = std::fs::remove_file(&log_path);
    }
    let measured = (n * deliveries).max(1);
    let per_delivery = |v: usize, at_first: usize| (v - at_first) as f64 / measured as f64;
    let log =
        LogVolume { lines: per_delivery(lines, log_at_first.0), bytes: per_delivery(bytes, log_at_first.1) };
    Ok(Measured { times, cpu_per_delivery: cpu / measured as u32, log })
}

/// Every thread of `pid`'s time on a CPU so far (the first field of each thread's `schedstat`).
fn cpu_time(pid: u32) -> Result<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        ns += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(Duration::from_nanos(ns))
}
