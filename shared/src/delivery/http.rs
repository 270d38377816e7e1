//! The HTTP sender: HTTP/1.1 connections of its own ([`super::connections`]) through the
//! address-guarding resolver and rustls ([`crate::https`]), one sender per container, no
//! redirects, no proxy, bounded time and bounded response reads.
use std::{
    env,
    path::PathBuf,
    time::{Duration, Instant},
};

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{
    header::{
        HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT as USER_AGENT_HEADER,
    },
    HeaderMap, Method, Request, Uri,
};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{dns::Name, HttpConnector};

use super::{connections::Connections, Attempt, Deliverer, DeliveryRequest, Failure, Outcome};
use crate::{https, urls::is_forbidden_ip};

/// How deliveries are made; every value has an environment variable.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `DELIVERY_CONNECT_TIMEOUT_MS`, default 5 s.
    pub connect_timeout: Duration,
    /// `DELIVERY_TIMEOUT_MS`, the whole request including the response, default 10 s.
    pub timeout: Duration,
    /// `DELIVERY_MAX_RESPONSE_BYTES`: how much of a response is read, default 64 KiB.
    pub max_response_bytes: usize,
    /// `EXTRA_CA_FILE`: PEM certificates trusted besides the usual roots (local receivers).
    pub extra_ca_file: Option<PathBuf>,
    /// `ALLOW_PRIVATE_TARGETS`: deliveries may reach loopback and private addresses (local only).
    pub allow_private_targets: bool,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
            extra_ca_file: None,
            allow_private_targets: false,
        }
    }
}

/// Sends deliveries over connections it keeps (with their TLS sessions) across invocations of a
/// warm container.
#[derive(Clone)]
pub struct HttpDeliverer {
    connections: Arc<Connections<HttpsConnector<HttpConnector<GuardedResolver>>>>,
    timeout: Duration,
    max_response_bytes: usize,
    allow_private_targets: bool,
}

/// A target whose address is loopback, private or otherwise internal (see [`is_forbidden_ip`]).
#[derive(Debug, thiserror::Error)]
#[error("the target resolves only to internal addresses")]
pub struct RefusedAddress;

/// Resolves names for deliveries and drops the addresses a delivery must not reach. The
/// connector connects to the addresses returned here and looks nothing up again, so a name
/// cannot be re-pointed (DNS rebinding) between the check and the connection.
#[derive(Clone)]
struct GuardedResolver {
    allow_private: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.iter().copied().filter(|a| allow_private || !is_forbidden_ip(a.ip())).collect();
            if allowed.is_empty() && !found.is_empty() {
                return Err(Box::new(RefusedAddress) as BoxError);
            }
            Ok(allowed.into_iter())
        })
    }
}

/// Standard Webhooks' headers, named once rather than parsed on every delivery.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// The headers every delivery carries besides the webhook's own: the three above with
/// `Content-Type`, `User-Agent`, `Authorization`, `Host` and `Content-Length`, and room for one
/// more, which hyper's look for `Transfer-Encoding` reserves.
const FIXED_HEADERS: usize = 9;

/// How much of a response the attempt log keeps.
const EXCERPT_BYTES: usize = 1024;

/// The product and version every delivery names itself with.
pub const USER_AGENT: &str = concat!("order-webhooks/", env!("CARGO_PKG_VERSION"));

impl HttpDeliverer {
    /// Builds the client from the settings.
    pub fn new(settings: &DeliverySettings) -> Result<Self, BoxError> {
        let extra = match &settings.extra_ca_file {
            Some(file) => {
                Some(std::fs::read(file).map_err(|e| format!("EXTRA_CA_FILE {}: {e}", file.display()))?)
            }
            None => None,
        };
        // No proxy: one from the environment would resolve and reach the target itself, past
        // the address guard. No redirects: hyper follows none.
        let mut tcp = HttpConnector::new_with_resolver(GuardedResolver {
            allow_private: settings.allow_private_targets,
        });
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(settings.connect_timeout));
        let tls = https::tls_config(extra.as_deref())?;
        Ok(Self {
            connections: Arc::new(Connections::new(https::connector(tcp, tls), https::POOL_IDLE_TIMEOUT)),
            timeout: settings.timeout,
            max_response_bytes: settings.max_response_bytes,
            allow_private_targets: settings.allow_private_targets,
        })
    }

    /// Sends the request and reads at most the limit of its answer.
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), Failure> {
        let answer = self.connections.send(request, self.max_response_bytes, EXCERPT_BYTES).await?;
        let retry_after = answer
            .head
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| super::parse_retry_after(v, crate::clock::now()));
        Ok((answer.head.status.as_u16(), retry_after, answer.excerpt))
    }
}

impl Deliverer for HttpDeliverer {
    async fn deliver(&self, req: &DeliveryRequest<'_>) -> Attempt {
        let started = Instant::now();
        let Ok(uri) = req.url.parse::<Uri>() else {
            // Registration accepts only URLs that make a request; this guards older records.
            return failed(Failure::Network, started);
        };
        // Literal addresses never reach the resolver: check them here, before any connection.
        if !self.allow_private_targets && literal_address(&uri).is_some_and(is_forbidden_ip) {
            return failed(Failure::RefusedAddress, started);
        }
        // Room for every header the request will carry, `Host` and `Content-Length` included:
        // a map that grows on the way rehashes and moves what it holds.
        let mut headers = HeaderMap::with_capacity(req.headers.len() + FIXED_HEADERS);
        for (name, value) in req.headers {
            match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(true);
                    headers.append(name, value);
                }
                _ => return failed(Failure::BadHeader, started),
            }
        }
        let (Ok(event_id), Ok(signature)) =
            (HeaderValue::from_str(req.event_id), HeaderValue::from_str(req.signature))
        else {
            // Both are checked where they are made (publishing, signing); this guards older records.
            return failed(Failure::Network, started);
        };
        headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.append(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT));
        headers.append(WEBHOOK_ID, event_id);
        headers.append(WEBHOOK_TIMESTAMP, HeaderValue::from(req.timestamp));
        headers.append(WEBHOOK_SIGNATURE, signature);
        if let Some(auth) = req.authentication {
            match HeaderValue::from_str(auth) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    headers.append(AUTHORIZATION, v);
                }
                Err(_) => return failed(Failure::BadAuthentication, started),
            }
        }
        let mut request = Request::new(Full::new(Bytes::copy_from_slice(req.body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let (status, retry_after, excerpt) =
            match tokio::time::timeout(self.timeout, self.exchange(request)).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(class)) => return failed(class, started),
                Err(_) => return failed(Failure::Timeout, started),
            };
        let outcome = if (200..300).contains(&status) {
            Outcome::Delivered { status }
        } else {
            Outcome::Rejected { status, retry_after }
        };
        Attempt {
            outcome,
            duration: started.elapsed(),
            response_excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
        }
    }
}

/// The address a URL names literally, as the connector reads it: a dotted IPv4 address or a
/// bracketed IPv6 one connects without the resolver. (Stored URLs were normalised by
/// registration's `url` parse; any other spelling of an address is a name, which the resolver
/// guards.) Read from the request's own URI, rather than `url`'s parse, which does far more than
/// this needs on every delivery.
fn literal_address(uri: &Uri) -> Option<IpAddr> {
    let host = uri.host()?;
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

fn failed(class: Failure, started: Instant) -> Attempt {
    Attempt {
        outcome: Outcome::Failed { class },
        duration: started.elapsed(),
        response_excerpt: String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_literal_address_is_read_as_the_connector_reads_it() {
        let literal_address = |url: &str| super::literal_address(&url.parse().ok()?);
        assert_eq!(literal_address("https://10.0.0.7/hook"), Some([10, 0, 0, 7].into()));
        assert_eq!(literal_address("http://127.0.0.1:8080/x?y=1"), Some([127, 0, 0, 1].into()));
        assert_eq!(literal_address("https://[::1]:8443/hook"), Some(std::net::Ipv6Addr::LOCALHOST.into()));
        assert_eq!(literal_address("https://hooks.example.com/a"), None);
        // Not an address to the connector either: a name, which the resolver guards.
        assert_eq!(literal_address("http://0x7f000001/"), None);
        assert_eq!(literal_address("not a url"), None);
    }
}
