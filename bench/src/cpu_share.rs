//! A function held to the CPU share Lambda gives a memory size: the process runs in a cgroup
//! whose CPU quota is that share of one core (Lambda gives a full vCPU at 1,769 MB, and CPU in
//! proportion to memory below it), and a minimal Runtime API hands it the same event many times,
//! timing each invocation from the event handed over to the answer posted back.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};
use bytes::Bytes;

use crate::cold::{Running, Seen};

/// The memory size at which Lambda gives one full vCPU.
pub const FULL_VCPU_MB: u32 = 1769;

/// The share of one core Lambda gives `mb`, in percent.
pub fn percent_of_a_core(mb: u32) -> f64 {
    100.0 * f64::from(mb.min(FULL_VCPU_MB)) / f64::from(FULL_VCPU_MB)
}

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
/// a time (the cold-start bench's Runtime API); each invocation's time and answer, from the
/// event handed over to the answer posted back.
pub async fn invoke_repeatedly(
    binary: &Path,
    env: &[(String, String)],
    memory_mb: u32,
    share: Option<&CpuShare>,
    event: &Bytes,
    n: usize,
) -> Result<Vec<(Duration, Bytes)>> {
    let mut run = start_in(binary, env, memory_mb, share, event, n, None).await?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        times.push(next_answer(&mut run, binary).await?);
    }
    let _ = run.child.kill().await;
    Ok(times)
}

/// Starts `binary` with `env` in `share` (if any), under the cold-start bench's Runtime API,
/// which hands it `event` for its first `n` polls.
pub async fn start_in(
    binary: &Path,
    env: &[(String, String)],
    memory_mb: u32,
    share: Option<&CpuShare>,
    event: &Bytes,
    n: usize,
    log: Option<std::fs::File>,
) -> Result<Running> {
    let run = crate::cold::start(binary, env, memory_mb, event, n, log).await?;
    if let Some(share) = share {
        share.add(run.child.id().context("the child has no pid")?)?;
    }
    Ok(run)
}

/// The next invocation of `run`: its time, from the event handed over to the answer posted
/// back, and the answer.
pub async fn next_answer(run: &mut Running, binary: &Path) -> Result<(Duration, Bytes)> {
    let mut handed_at = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(120), run.seen.recv()).await {
            Ok(Some(Seen::Next(at))) => handed_at = Some(at),
            Ok(Some(Seen::Answer(at, answer))) => {
                return Ok((at - handed_at.context("an answer before any event")?, answer))
            }
            _ => anyhow::bail!("{} stopped answering", binary.display()),
        }
    }
}

/// The `q` quantile (0..=1) of durations.
pub fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default()
}
