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
pub enum Seen {
    Next(Instant),
    Answer(Instant, Bytes),
}

/// A function process under a minimal Runtime API on 127.0.0.1 that hands it `event` for its
/// first `invocations` polls and then keeps it waiting.
pub struct Running {
    pub child: tokio::process::Child,
    /// Each poll for an event and each answer posted back, as they arrive.
    pub seen: mpsc::UnboundedReceiver<Seen>,
    /// When the process was started.
    pub started: Instant,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts `binary` with `env`, as Lambda would at `memory_mb`, under its own Runtime API; what
/// it writes to stdout (its log lines, which Lambda sends to CloudWatch Logs) goes to `log`, if
/// given, or nowhere.
pub async fn start(
    binary: &Path,
    env: &[(String, String)],
    memory_mb: u32,
    event: &Bytes,
    invocations: usize,
    log: Option<std::fs::File>,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, seen) = mpsc::unbounded_channel();
    let handed = Arc::new(Mutex::new(0usize));
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
                            let given = {
                                let mut h = handed.lock().unwrap();
                                *h += 1;
                                *h
                            };
                            if given > invocations {
                                // Later polls wait until the process is killed.
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap()
                                .as_millis();
                            // A request id and a trace header of the lengths Lambda gives (a UUID;
                            // a sampled trace, as the template's active tracing makes them): the
                            // functions' log lines carry both.
                            let r = Response::builder()
                                .header(
                                    "lambda-runtime-aws-request-id",
                                    format!("00000000-0000-4000-8000-{given:012}"),
                                )
                                .header("lambda-runtime-deadline-ms", deadline.to_string())
                                .header(
                                    "lambda-runtime-invoked-function-arn",
                                    "arn:aws:lambda:us-east-1:123456789012:function:bench",
                                )
                                .header(
                                    "lambda-runtime-trace-id",
                                    "Root=1-6b0ef71d-bb7e325491e4a6eb1caf9347;Parent=2e14302868bdeb6d;Sampled=1",
                                )
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
    // The environment Lambda gives a function, and nothing of this machine's: a variable such as
    // SSL_CERT_DIR (set on many developer machines) changes what a function reads at start.
    let child = tokio::process::Command::new(binary)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "en_US.UTF-8")
        .env("TZ", ":UTC")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdout(log.map_or_else(std::process::Stdio::null, std::process::Stdio::from))
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    Ok(Running { child, seen, started, server })
}

/// One start of `binary` with `env`, given `event`: (to first poll, first invocation, the answer,
/// peak RSS in KiB).
pub async fn start_once(
    binary: &Path,
    env: &[(String, String)],
    event: &Bytes,
) -> anyhow::Result<(Duration, Duration, Bytes, u64)> {
    let mut run = start(binary, env, 128, event, 1, None).await?;
    let rx = &mut run.seen;
    let pid = run.child.id().unwrap_or(0);
    let Some(Seen::Next(polled)) = next_seen(rx).await else {
        anyhow::bail!("{} never polled", binary.display())
    };
    let (answered, answer) = loop {
        match next_seen(rx).await {
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
    let _ = run.child.kill().await;
    Ok((polled - run.started, answered - polled, answer, peak_kib))
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
