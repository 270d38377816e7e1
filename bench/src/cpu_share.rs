//! A function held to the CPU share Lambda gives a memory size: the process runs in a cgroup
//! whose CPU quota is that share of one core (Lambda gives a full vCPU at 1,769 MB, and CPU in
//! proportion to memory below it), and a minimal Runtime API hands it the same event many times,
//! timing each invocation from the event handed over to the answer posted back.
use std::{
    convert::Infallible,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::mpsc};

/// The memory size at which Lambda gives one full vCPU.
pub const FULL_VCPU_MB: u32 = 1769;

/// A CPU cgroup limited to `mb`'s share of one core (cgroup v2 `cpu.max`, or v1's CFS quota),
/// removed when dropped.
pub struct CpuShare {
    dir: PathBuf,
    procs: PathBuf,
}

impl CpuShare {
    /// Creates the cgroup; needs root and a writable cgroup filesystem.
    pub fn new(mb: u32) -> Result<Self> {
        const PERIOD_US: u64 = 100_000;
        let quota = PERIOD_US * u64::from(mb.min(FULL_VCPU_MB)) / u64::from(FULL_VCPU_MB);
        let name = format!("webhooks-bench-{}-{mb}", std::process::id());
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let dir = if v2 {
            Path::new("/sys/fs/cgroup").join(&name)
        } else {
            Path::new("/sys/fs/cgroup/cpu").join(&name)
        };
        std::fs::create_dir(&dir).with_context(|| {
            format!("creating {} (the CPU share needs root and a cgroup filesystem)", dir.display())
        })?;
        if v2 {
            std::fs::write(dir.join("cpu.max"), format!("{quota} {PERIOD_US}"))?;
        } else {
            std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
        }
        Ok(Self { procs: dir.join("cgroup.procs"), dir })
    }

    /// Moves a process (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) -> Result<()> {
        std::fs::write(&self.procs, pid.to_string()).with_context(|| format!("moving {pid} into the cgroup"))
    }
}

impl Drop for CpuShare {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Starts `binary` with `env` in `share` (if any) and invokes it `n` times with `event`, one at
/// a time; each invocation's time and answer.
pub async fn invoke_repeatedly(
    binary: &Path,
    env: &[(String, String)],
    memory_mb: u32,
    share: Option<&CpuShare>,
    event: &Bytes,
    n: usize,
) -> Result<Vec<(Duration, Bytes)>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Option<Bytes>)>();
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
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        if path.ends_with("/invocation/next") {
                            let given = {
                                let mut h = handed.lock().unwrap();
                                *h += 1;
                                *h
                            };
                            if given > n {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap()
                                .as_millis();
                            let _ = tx.send((Instant::now(), None));
                            let r = Response::builder()
                                .header("lambda-runtime-aws-request-id", format!("bench-{given}"))
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
                        let _ = tx.send((Instant::now(), Some(body)));
                        Ok(Response::builder().status(202).body(Full::new(Bytes::new())).unwrap())
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    let mut child = tokio::process::Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    if let Some(share) = share {
        share.add(child.id().context("the child has no pid")?)?;
    }
    let mut times = Vec::with_capacity(n);
    let mut handed_at = None;
    while times.len() < n {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some((at, None))) => handed_at = Some(at),
            Ok(Some((at, Some(answer)))) => {
                let since = handed_at.take().context("an answer before any event")?;
                times.push((at - since, answer));
            }
            _ => anyhow::bail!("{} stopped answering", binary.display()),
        }
    }
    let _ = child.kill().await;
    server.abort();
    Ok(times)
}

/// The `q` quantile (0..=1) of durations.
pub fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default()
}
