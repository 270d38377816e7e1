//! Webhook receivers for the tests: real HTTP servers on 127.0.0.1 that answer as scripted and
//! record what they got.
use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, header::HeaderMap, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How a receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// Waits, then answers.
    Slow(Duration, u16),
    /// A 302 to the location.
    Redirect(String),
    /// A status with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// `500` to this share of requests (0.0 to 1.0), chosen at random, `200` to the others.
    Flaky(f64),
    /// The status until the instant, `200` after it.
    FailUntil(Instant, u16),
    /// The status to the first `usize` requests carrying this `webhook-id` (with `Retry-After:
    /// <u64>` unless it is 0), `200` to the rest.
    FailEvent(String, usize, u16, u64),
}

/// A request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The status it answered.
    pub status: u16,
}

impl Received {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct State {
    script: VecDeque<Reply>,
    then: Reply,
    got: Vec<Received>,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Answers with `script` in order, then with `then` for ever.
    pub async fn start(script: Vec<Reply>, then: Reply) -> Self {
        Self::serve(script, then, None).await
    }

    /// Like [`Receiver::start`], over https with the local stack's certificate (`RECEIVER_TLS_DIR`,
    /// signed by the throwaway CA that dispatch trusts): for Ventiapp, whose addresses must be https.
    pub async fn start_tls(script: Vec<Reply>, then: Reply) -> Self {
        let dir = std::path::PathBuf::from(crate::stack_var("RECEIVER_TLS_DIR"));
        Self::serve(script, then, Some(tls_acceptor(&dir))).await
    }

    /// Listens on a free loopback port and answers, over TLS if given an acceptor.
    async fn serve(script: Vec<Reply>, then: Reply, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/hook", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State { script: script.into(), then, got: Vec::new() }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors, most likely (the soak): wait for some to close.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (state, tls) = (shared.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(state.clone(), req));
                    match tls {
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            let _ =
                                http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                        }
                        None => {
                            let _ =
                                http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        Self { url, state }
    }

    /// Answers 200 to everything.
    pub async fn ok() -> Self {
        Self::start(Vec::new(), Reply::Status(200)).await
    }

    /// What it got so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().got.clone()
    }

    /// Waits until it got at least `n` requests (or `timeout` passed); returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let reply = {
        let mut s = state.lock().unwrap();
        let then = s.then.clone();
        let reply = match s.script.pop_front().unwrap_or(then) {
            Reply::Flaky(share) => Reply::Status(if rand::random::<f64>() < share { 500 } else { 200 }),
            Reply::FailUntil(until, code) => Reply::Status(if Instant::now() < until { code } else { 200 }),
            Reply::FailEvent(id, times, code, retry_after) => {
                let id = Some(id.as_str());
                let seen = s.got.iter().filter(|g| g.header("webhook-id") == id).count();
                let this = parts.headers.get("webhook-id").and_then(|v| v.to_str().ok()) == id;
                match (this && seen < times, retry_after) {
                    (false, _) => Reply::Status(200),
                    (true, 0) => Reply::Status(code),
                    (true, secs) => Reply::RetryAfter(code, secs),
                }
            }
            other => other,
        };
        let status = match &reply {
            Reply::Status(c) | Reply::Slow(_, c) | Reply::RetryAfter(c, _) => *c,
            Reply::Redirect(_) => 302,
            Reply::Flaky(_) | Reply::FailUntil(..) | Reply::FailEvent(..) => unreachable!("resolved above"),
        };
        s.got.push(Received {
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body,
            at: Instant::now(),
            status,
        });
        reply
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"received\": true}")));
    match reply {
        Reply::Status(code) => *response.status_mut() = code.try_into().unwrap(),
        Reply::Flaky(_) | Reply::FailUntil(..) | Reply::FailEvent(..) => unreachable!("resolved above"),
        Reply::Slow(wait, code) => {
            tokio::time::sleep(wait).await;
            *response.status_mut() = code.try_into().unwrap();
        }
        Reply::Redirect(to) => {
            *response.status_mut() = 302u16.try_into().unwrap();
            response.headers_mut().insert("location", to.parse().unwrap());
        }
        Reply::RetryAfter(code, secs) => {
            *response.status_mut() = code.try_into().unwrap();
            response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
        }
    }
    Ok(response)
}

/// A TLS acceptor with the certificate and key of `dir` (`cert.pem`, `key.pem`, as
/// `devstack::ensure_local_tls` makes them).
pub fn tls_acceptor(dir: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let certs =
        CertificateDer::pem_file_iter(dir.join("cert.pem")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
