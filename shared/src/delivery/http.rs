//! The HTTP sender: reqwest on rustls, one client per container, no redirects, bounded time and
//! bounded response reads.
use std::{
    env,
    path::PathBuf,
    time::{Duration, Instant},
};

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER},
    redirect, Client,
};
use url::{Host, Url};

use super::{Attempt, Deliverer, DeliveryRequest, Failure, Outcome};
use crate::urls::is_forbidden_ip;

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

/// Sends deliveries with one reused client (connections and TLS sessions are kept across
/// invocations of a warm container).
#[derive(Clone)]
pub struct HttpDeliverer {
    client: Client,
    max_response_bytes: usize,
    allow_private_targets: bool,
}

/// A target whose address is loopback, private or otherwise internal (see [`is_forbidden_ip`]).
#[derive(Debug, thiserror::Error)]
#[error("the target resolves only to internal addresses")]
pub struct RefusedAddress;

/// Resolves names for deliveries and drops the addresses a delivery must not reach. reqwest
/// connects to the addresses returned here and looks nothing up again, so a name cannot be
/// re-pointed (DNS rebinding) between the check and the connection.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.iter().copied().filter(|a| allow_private || !is_forbidden_ip(a.ip())).collect();
            if allowed.is_empty() && !found.is_empty() {
                return Err(Box::new(RefusedAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The product and version every delivery names itself with.
pub const USER_AGENT: &str = concat!("order-webhooks/", env!("CARGO_PKG_VERSION"));

impl HttpDeliverer {
    /// Builds the client from the settings.
    pub fn new(settings: &DeliverySettings) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let mut builder = Client::builder()
            .redirect(redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(USER_AGENT)
            .pool_idle_timeout(Duration::from_secs(60))
            // A proxy from the environment would resolve and reach the target itself, past the
            // address guard below: deliveries connect directly, always.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_private: settings.allow_private_targets }));
        if let Some(file) = &settings.extra_ca_file {
            let pem = std::fs::read(file).map_err(|e| format!("EXTRA_CA_FILE {}: {e}", file.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Self {
            client: builder.build()?,
            max_response_bytes: settings.max_response_bytes,
            allow_private_targets: settings.allow_private_targets,
        })
    }
}

impl Deliverer for HttpDeliverer {
    async fn deliver(&self, req: &DeliveryRequest<'_>) -> Attempt {
        let started = Instant::now();
        // Literal addresses never reach the resolver: check them here, before any connection.
        if !self.allow_private_targets {
            let literal = Url::parse(req.url).ok().and_then(|u| match u.host() {
                Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            });
            if literal.is_some_and(is_forbidden_ip) {
                return failed(Failure::RefusedAddress, started);
            }
        }
        let mut request = self
            .client
            .post(req.url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", req.event_id)
            .header("webhook-timestamp", req.timestamp.to_string())
            .header("webhook-signature", req.signature)
            .body(req.body.to_vec());
        if let Some(auth) = req.authentication {
            match HeaderValue::from_str(auth) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    request = request.header(AUTHORIZATION, v);
                }
                Err(_) => return failed(Failure::BadAuthentication, started),
            }
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return failed(error_class(&e), started),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| super::parse_retry_after(v, crate::clock::now()));
        // Read at most the limit; a receiver that streams forever is cut off, not waited for.
        let mut excerpt = Vec::new();
        let mut read = 0usize;
        while read < self.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    let room = 1024usize.saturating_sub(excerpt.len());
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
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

fn failed(class: Failure, started: Instant) -> Attempt {
    Attempt {
        outcome: Outcome::Failed { class },
        duration: started.elapsed(),
        response_excerpt: String::new(),
    }
}

fn error_class(e: &reqwest::Error) -> Failure {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<RefusedAddress>() {
            return Failure::RefusedAddress;
        }
        source = s.source();
    }
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_connect() {
        Failure::Connect
    } else if e.is_redirect() {
        Failure::Redirect
    } else if e.is_body() || e.is_decode() {
        Failure::Response
    } else {
        Failure::Network
    }
}
