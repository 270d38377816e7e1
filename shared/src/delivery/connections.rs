//! The sender's connections: HTTP/1.1 on hyper's connection API, each connection driven by the
//! delivery that uses it, in the delivery's own task.
//!
//! hyper-util's pooled client runs every connection in a task of its own: a request goes to it
//! through a channel and its answer comes back through another, so each delivery wakes two tasks
//! and, on a multi-threaded runtime, often another thread. Here the delivery polls its
//! connection itself while it sends and reads, and puts it back idle when the exchange left it
//! reusable. An idle connection is polled by nobody: one the receiver closed is found closed
//! when it is next taken (and dropped), and a request the connection could not start on is sent
//! again, once, on a new one (as hyper-util's client does: nothing that reached the receiver is
//! sent twice).
use std::{
    collections::HashMap,
    future::{poll_fn, Future},
    pin::Pin,
    sync::Mutex,
    task::{Context, Waker},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{
    header::HOST,
    uri::{Authority, Scheme},
    HeaderValue, Request, Uri,
};
use http_body_util::{BodyExt, Full};
use hyper::{
    body::{Body, Incoming},
    client::conn::http1::{self, Connection, SendRequest},
    rt::{Read, Write},
};
use tower_service::Service;

use super::{http::RefusedAddress, Failure};
use crate::https;

/// Idle connections kept per origin at most (a delivery takes one from them, or opens one).
const MAX_IDLE_PER_ORIGIN: usize = 64;

/// Idle connections kept at most, all origins together: each is a file descriptor, and Lambda
/// gives a function 1,024.
const MAX_IDLE: usize = 256;

/// Connections by origin, over `C`'s transport (the guarded TCP and TLS connector).
pub(super) struct Connections<C: Service<Uri>>
where
    C::Response: Read + Write + Unpin + Send,
{
    connector: C,
    idle: Mutex<Pool<C::Response>>,
    idle_timeout: Duration,
}

/// The idle connections, by origin, most recently used last.
struct Pool<T: Read + Write + Unpin + Send> {
    by_origin: HashMap<Origin, Vec<Idle<T>>>,
    count: usize,
    /// When connections idle past the timeout were last closed, all origins over.
    swept: Instant,
}

/// Where a connection goes: a scheme and an authority (its host compared without case).
type Origin = (Scheme, Authority);

/// One HTTP/1.1 connection: its request half and the future that does its I/O.
struct Conn<T: Read + Write + Unpin + Send> {
    send: SendRequest<Full<Bytes>>,
    io: Connection<T, Full<Bytes>>,
}

struct Idle<T: Read + Write + Unpin + Send> {
    conn: Box<Conn<T>>,
    since: Instant,
}

/// What a receiver answered: the response head, the first bytes of its body (at most
/// `excerpt` of them, of at most `limit` read).
pub(super) struct Answer {
    pub(super) head: http::response::Parts,
    pub(super) excerpt: Vec<u8>,
}

/// How an exchange on one connection ended.
enum Exchanged {
    /// Answered; the connection can be used again if `reusable`.
    Answered(Answer, bool),
    /// The connection could not take the request, which was not sent: here it is back.
    NotSent(Request<Full<Bytes>>),
    Failed(Failure),
}

impl<C> Connections<C>
where
    C: Service<Uri> + Clone,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    C::Response: Read + Write + Unpin + Send + 'static,
{
    pub(super) fn new(connector: C, idle_timeout: Duration) -> Self {
        let idle = Pool { by_origin: HashMap::new(), count: 0, swept: Instant::now() };
        Self { connector, idle: Mutex::new(idle), idle_timeout }
    }

    /// Sends `request` (an absolute URL) and reads at most `limit` bytes of the answer's body,
    /// keeping the first `excerpt` of them.
    pub(super) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
        limit: usize,
        excerpt: usize,
    ) -> Result<Answer, Failure> {
        let uri = request.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
            return Err(Failure::Network);
        };
        let Some(host) = host_header(&uri) else { return Err(Failure::Network) };
        request.headers_mut().entry(HOST).or_insert(host);
        *request.uri_mut() = origin_form(&uri);
        let origin = (scheme, authority);
        let (mut conn, mut reused) = match self.checkout(&origin) {
            Some(conn) => (conn, true),
            None => (self.connect(&uri).await?, false),
        };
        loop {
            match exchange(&mut conn, request, limit, excerpt).await {
                Exchanged::Answered(answer, reusable) => {
                    if reusable {
                        self.put_back(origin, conn);
                    }
                    return Ok(answer);
                }
                Exchanged::NotSent(unsent) if reused => {
                    request = unsent;
                    conn = self.connect(&uri).await?;
                    reused = false;
                }
                Exchanged::NotSent(_) => return Err(Failure::Network),
                Exchanged::Failed(class) => return Err(class),
            }
        }
    }

    /// The origin's most recently used idle connection that is still open, if any.
    fn checkout(&self, origin: &Origin) -> Option<Box<Conn<C::Response>>> {
        loop {
            let Idle { mut conn, since } = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let pool = &mut *idle;
                let list = pool.by_origin.get_mut(origin)?;
                // An origin's list stays when it empties, for the connection put back next
                // (the sweep takes out the lists left empty).
                let candidate = list.pop()?;
                pool.count -= 1;
                candidate
            };
            if since.elapsed() > self.idle_timeout {
                continue;
            }
            // One poll with no one to wake: a connection its receiver closed ends here, and an
            // open one takes in that the exchange it carried is over.
            let mut cx = Context::from_waker(Waker::noop());
            if Pin::new(&mut conn.io).poll(&mut cx).is_pending() && conn.send.is_ready() {
                return Some(conn);
            }
        }
    }

    /// Keeps `conn` for the origin's next delivery, within the limits; and, at most twice per
    /// idle timeout, closes every origin's connections idle past it (an origin no delivery goes
    /// to again would otherwise keep them open).
    fn put_back(&self, origin: Origin, conn: Box<Conn<C::Response>>) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let pool = &mut *idle;
        if now.duration_since(pool.swept) > self.idle_timeout / 2 {
            pool.swept = now;
            let timeout = self.idle_timeout;
            pool.by_origin.retain(|_, list| {
                list.retain(|i| now.duration_since(i.since) <= timeout);
                !list.is_empty()
            });
            pool.count = pool.by_origin.values().map(Vec::len).sum();
        }
        if pool.count >= MAX_IDLE {
            return;
        }
        let list = pool.by_origin.entry(origin).or_default();
        if list.len() < MAX_IDLE_PER_ORIGIN {
            list.push(Idle { conn, since: now });
            pool.count += 1;
        }
    }

    /// A new connection to `uri`'s origin, through the guarded connector (its resolver, connect
    /// timeout and TLS).
    /// Boxed, so that taking it from the idle ones and putting it back moves a pointer rather
    /// than the connection's state.
    async fn connect(&self, uri: &Uri) -> Result<Box<Conn<C::Response>>, Failure> {
        let mut connector = self.connector.clone();
        let connected = async {
            poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(uri.clone()).await
        };
        let io = connected.await.map_err(|e| {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            if https::source::<RefusedAddress>(&*e).is_some() {
                Failure::RefusedAddress
            } else {
                Failure::Connect
            }
        })?;
        let (send, io) = http1::handshake(io).await.map_err(|_| Failure::Connect)?;
        Ok(Box::new(Conn { send, io }))
    }
}

/// Sends `request` on `conn` and reads its answer, polling the connection all along.
async fn exchange<T: Read + Write + Unpin + Send + 'static>(
    conn: &mut Conn<T>,
    request: Request<Full<Bytes>>,
    limit: usize,
    excerpt: usize,
) -> Exchanged {
    let Conn { send, io } = conn;
    let mut ended = false;
    let answered = async {
        let response = match send.try_send_request(request).await {
            Ok(response) => response,
            Err(mut e) => {
                return match e.take_message() {
                    Some(request) => Exchanged::NotSent(request),
                    None => Exchanged::Failed(failure(&e.into_error())),
                }
            }
        };
        let (head, body) = response.into_parts();
        let (excerpt, drained) = read(body, limit, excerpt).await;
        Exchanged::Answered(Answer { head, excerpt }, drained)
    };
    let mut answered = std::pin::pin!(answered);
    let exchanged = poll_fn(|cx| {
        if !ended && Pin::new(&mut *io).poll(cx).is_ready() {
            ended = true;
        }
        answered.as_mut().poll(cx)
    })
    .await;
    match exchanged {
        Exchanged::Answered(answer, drained) => Exchanged::Answered(answer, drained && !ended),
        other => other,
    }
}

/// Reads at most `limit` bytes of `body`, keeping the first `keep`; whether it was read to its
/// end (a receiver that streams forever is cut off, not waited for, and its connection dropped).
async fn read(mut body: Incoming, limit: usize, keep: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut read = 0usize;
    while read < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(chunk) = frame.into_data() else { continue };
                read += chunk.len();
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            None => return (kept, true),
            Some(Err(_)) => return (kept, false),
        }
    }
    (kept, body.is_end_stream())
}

fn failure(e: &hyper::Error) -> Failure {
    if e.is_parse() || e.is_incomplete_message() {
        Failure::Response
    } else {
        Failure::Network
    }
}

/// The `Host` header of a request to `uri`: its host, and its port unless the scheme's own (as
/// hyper-util's client writes it).
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default = if uri.scheme() == Some(&Scheme::HTTPS) { 443 } else { 80 };
    match uri.port_u16() {
        Some(port) if port != default => HeaderValue::from_str(&format!("{host}:{port}")).ok(),
        _ => HeaderValue::from_str(host).ok(),
    }
}

/// The request target an HTTP/1.1 request to an origin carries: the path and query.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(path) if path.as_str() != "/" => {
            let mut parts = http::uri::Parts::default();
            parts.path_and_query = Some(path.clone());
            Uri::from_parts(parts).unwrap_or_default()
        }
        _ => Uri::default(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use hyper_util::client::legacy::connect::HttpConnector;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A receiver that keeps connections alive, answering `200` to each request, and counts the
    /// connections its clients closed.
    async fn receiver() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let closed = Arc::new(AtomicUsize::new(0));
        let count = closed.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = socket.read(&mut buf).await {
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if socket.write_all(ok).await.is_err() {
                                break;
                            }
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (url, closed)
    }

    fn post(url: &str) -> Request<Full<Bytes>> {
        Request::post(url).body(Full::new(Bytes::new())).unwrap()
    }

    #[tokio::test]
    async fn connections_idle_past_the_timeout_are_closed_though_no_delivery_goes_to_their_origin_again() {
        let connections = Connections::new(HttpConnector::new(), Duration::from_millis(100));
        let ((a, a_closed), (b, b_closed)) = (receiver().await, receiver().await);
        assert_eq!(connections.send(post(&a), 1024, 0).await.unwrap().head.status, 200);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(a_closed.load(Ordering::SeqCst), 0, "nothing closes an idle connection by itself");
        // Keeping b's connection sweeps a's, idle past the timeout.
        assert_eq!(connections.send(post(&b), 1024, 0).await.unwrap().head.status, 200);
        for _ in 0..100 {
            if a_closed.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(a_closed.load(Ordering::SeqCst), 1);
        assert_eq!(b_closed.load(Ordering::SeqCst), 0, "b's connection is kept");
        assert_eq!(connections.idle.lock().unwrap().count, 1);
    }

    #[test]
    fn the_host_header_and_the_target_are_written_as_an_origin_expects() {
        let host = |u: &str| host_header(&u.parse().unwrap()).unwrap();
        assert_eq!(host("https://hooks.example.com/a"), "hooks.example.com");
        assert_eq!(host("https://hooks.example.com:443/a"), "hooks.example.com");
        assert_eq!(host("https://hooks.example.com:8443/a"), "hooks.example.com:8443");
        assert_eq!(host("http://127.0.0.1:80/a"), "127.0.0.1");
        assert_eq!(host("http://[::1]:8080/a"), "[::1]:8080");
        let target = |u: &str| origin_form(&u.parse().unwrap()).to_string();
        assert_eq!(target("https://hooks.example.com/a/b?c=1&d"), "/a/b?c=1&d");
        assert_eq!(target("https://hooks.example.com"), "/");
        assert_eq!(target("https://hooks.example.com/"), "/");
    }
}
