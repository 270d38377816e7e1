//! Cold start: a function binary started against a minimal Lambda Runtime API on 127.0.0.1,
//! timed from exec to its first `GET /2018-06-01/runtime/invocation/next`, then its first
//! invocation from the event handed over to the answer posted back; and its peak memory.
use std::{
    convert::Infallible,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::mpsc};

/// What the runtime API saw.
#[derive(Debug)]
enum Seen {
    Next(Instant),
    Answer(Instant, Bytes),
}

/// One start of `binary` with `env`, given `event`: (to first poll, first invocation, the answer,
/// peak RSS in KiB).
pub async fn start_once(
    binary: &Path,
    env: &[(String, String)],
    event: &Bytes,
) -> anyhow::Result<(Duration, Duration, Bytes, u64)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handed = Arc::new(Mutex::new(false));
    let event = event.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (tx, handed, event) = (tx.clone(), handed.clone(), event.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (tx, handed, event) = (tx.clone(), handed.clone(), event.clone());
                    async move {
                        let now = Instant::now();
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        if path.ends_with("/invocation/next") {
                            let _ = tx.send(Seen::Next(now));
                            let first = !std::mem::replace(&mut *handed.lock().unwrap(), true);
                            if !first {
                                // One invocation per start: later polls wait until the process is killed.
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap()
                                .as_millis();
                            let r = Response::builder()
                                .header("lambda-runtime-aws-request-id", "bench-1")
                                .header("lambda-runtime-deadline-ms", deadline.to_string())
                                .header(
                                    "lambda-runtime-invoked-function-arn",
                                    "arn:aws:lambda:us-east-1:123456789012:function:bench",
                                )
                                .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
                                .body(Full::new(event))
                                .unwrap();
                            return Ok::<_, Infallible>(r);
                        }
                        let _ = tx.send(Seen::Answer(now, body));
                        Ok(Response::builder().status(202).body(Full::new(Bytes::new())).unwrap())
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });

    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let Some(Seen::Next(polled)) = next_seen(&mut rx).await else {
        anyhow::bail!("{} never polled", binary.display())
    };
    let (answered, answer) = loop {
        match next_seen(&mut rx).await {
            Some(Seen::Answer(at, body)) => break (at, body),
            Some(Seen::Next(_)) => continue,
            None => anyhow::bail!("{} never answered", binary.display()),
        }
    };
    // The next poll means the invocation is over; the process's high-water mark is final enough.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Some(Seen::Answer(..)) = rx.recv().await {}
    })
    .await;
    let peak_kib = peak_rss_kib(pid);
    let _ = child.kill().await;
    server.abort();
    Ok((polled - started, answered - polled, answer, peak_kib))
}

async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Option<Seen> {
    tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.ok().flatten()
}

/// VmHWM of a live process, in KiB (0 if unreadable).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The median of durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
