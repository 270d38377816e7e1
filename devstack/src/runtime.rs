//! A minimal Lambda: the Runtime API on 127.0.0.1, a function binary run as a child process
//! that polls it, and the `Invoke` endpoint of `cargo lambda watch` in front. Unlike
//! `cargo lambda watch`, it starts the process again when it dies, as Lambda does, failing the
//! invocation that was in flight: what the crash tests need.
use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    body::Incoming, server::conn::http1, service::service_fn, Method, Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpListener,
    sync::{oneshot, Notify},
};

type Answer = Result<Bytes, String>;

#[derive(Default)]
struct Inner {
    queue: Mutex<VecDeque<(String, Bytes)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    in_flight: Mutex<Option<String>>,
    arrived: Notify,
    next_id: AtomicU64,
    child_pid: AtomicU32,
    starts: AtomicU32,
}

/// A running local Lambda for one function.
pub struct LocalLambda {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl LocalLambda {
    /// Serves the Runtime API and keeps `binary` running against it with `env`; the function's
    /// output goes where this process's does.
    pub async fn start(function: &str, binary: PathBuf, env: Vec<(String, String)>) -> Result<Self> {
        Self::start_logged(function, binary, env, None).await
    }

    /// Like [`LocalLambda::start`], the function's output appended to `log` if given.
    pub async fn start_logged(
        function: &str,
        binary: PathBuf,
        env: Vec<(String, String)>,
        log: Option<PathBuf>,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::default());
        let served = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let inner = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| route(inner.clone(), req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        let supervised = inner.clone();
        let function = function.to_owned();
        tokio::spawn(async move {
            loop {
                let mut cmd = tokio::process::Command::new(&binary);
                cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
                    .env("AWS_LAMBDA_FUNCTION_NAME", &function)
                    .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                    .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                    .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}"))
                    .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
                    .kill_on_drop(true);
                if let Some(path) = &log {
                    let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
                    if let Ok(file) = file {
                        if let Ok(copy) = file.try_clone() {
                            cmd.stdout(copy).stderr(file);
                        }
                    }
                }
                let Ok(mut child) = cmd.spawn() else { return };
                supervised.starts.fetch_add(1, Ordering::SeqCst);
                supervised.child_pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
                let _ = child.wait().await;
                // Lambda fails the invocation a crashed process was running.
                if let Some(id) = supervised.in_flight.lock().unwrap().take() {
                    if let Some(tx) = supervised.waiting.lock().unwrap().remove(&id) {
                        let _ = tx.send(Err("the function process exited".into()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Self { addr, inner })
    }

    /// The URL `Invoke` requests go to, as `cargo lambda watch` serves it.
    pub fn invoke_url(&self, function: &str) -> String {
        format!("http://{}/2015-03-31/functions/{function}/invocations", self.addr)
    }

    /// Kills the function's process (it is started again).
    pub fn kill(&self) {
        let pid = self.inner.child_pid.load(Ordering::SeqCst);
        if pid != 0 {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.inner.starts.load(Ordering::SeqCst)
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

async fn route(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    Ok(match (method, parts.as_slice()) {
        (Method::POST, ["2015-03-31", "functions", _, "invocations"]) => {
            let id = format!("local-{}", inner.next_id.fetch_add(1, Ordering::SeqCst));
            let (tx, rx) = oneshot::channel();
            inner.waiting.lock().unwrap().insert(id.clone(), tx);
            inner.queue.lock().unwrap().push_back((id, body));
            inner.arrived.notify_one();
            match tokio::time::timeout(Duration::from_secs(300), rx).await {
                Ok(Ok(Ok(answer))) => reply(StatusCode::OK, answer),
                Ok(Ok(Err(error))) => reply(StatusCode::BAD_GATEWAY, Bytes::from(error)),
                _ => reply(StatusCode::GATEWAY_TIMEOUT, Bytes::from_static(b"no answer")),
            }
        }
        (Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => loop {
            let next = inner.queue.lock().unwrap().pop_front();
            if let Some((id, event)) = next {
                *inner.in_flight.lock().unwrap() = Some(id.clone());
                let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 30_000;
                let mut r = reply(StatusCode::OK, event);
                let h = r.headers_mut();
                h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
                h.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
                h.insert(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:local".parse().unwrap(),
                );
                h.insert(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000".parse().unwrap(),
                );
                break r;
            }
            inner.arrived.notified().await;
        },
        (Method::POST, ["2018-06-01", "runtime", "invocation", id, kind @ ("response" | "error")]) => {
            inner.in_flight.lock().unwrap().take();
            if let Some(tx) = inner.waiting.lock().unwrap().remove(*id) {
                let _ = tx.send(if *kind == "response" {
                    Ok(body)
                } else {
                    Err(String::from_utf8_lossy(&body).into_owned())
                });
            }
            reply(StatusCode::ACCEPTED, Bytes::new())
        }
        (Method::POST, ["2018-06-01", "runtime", "init", "error"]) => {
            eprintln!("local lambda: init error: {}", String::from_utf8_lossy(&body));
            reply(StatusCode::ACCEPTED, Bytes::new())
        }
        _ => reply(StatusCode::NOT_FOUND, Bytes::new()),
    })
}
