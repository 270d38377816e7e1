//! The one HTTPS stack of every function: HTTP/1.1 on rustls with ring, trusting the system's
//! roots. The AWS SDK's calls ([`SdkHttpClient`]) go through hyper-util's pooled client; webhook
//! deliveries (`delivery::connections`) through the same connector, on connections each delivery
//! drives itself.
//!
//! Neither needs HTTP/2 (DynamoDB, SQS and SES answer HTTP/1.1; a delivery is one request per
//! connection turn), and the SDK's own client always carries it: leaving it out takes the `h2`
//! crate and hyper's HTTP/2 half out of every binary (docs/performance.md, Sizes).
use std::{
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use aws_smithy_runtime_api::{
    client::{
        http::{
            HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
            SharedHttpConnector,
        },
        orchestrator::{HttpRequest, HttpResponse},
        result::ConnectorError,
        runtime_components::RuntimeComponents,
    },
    shared::IntoShared,
};
use aws_smithy_types::{body::SdkBody, retry::ErrorKind};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector as TcpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use rustls::{pki_types::CertificateDer, ClientConfig, RootCertStore};

/// How long an idle pooled connection is kept (Lambda freezes a container between invocations;
/// a connection older than this is not worth trying again).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The system's trusted roots, read once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(native_certificates());
        if ignored > 0 {
            tracing::warn!(ignored, "system root certificates rustls cannot use were skipped");
        }
        roots
    })
}

/// The system's root certificates where OpenSSL finds them: the bundle file (`SSL_CERT_FILE`,
/// else the platform's, found by openssl-probe), and the directories of `SSL_CERT_DIR`, or the
/// platform's directory when there is no bundle file; each file read once, duplicates dropped.
///
/// `rustls-native-certs` reads the platform's directory besides its bundle, which the distributions
/// build from the same certificates (update-ca-certificates, update-ca-trust): on Debian that is
/// 290 more links to follow and 150 certificates read twice, and its PEM decoder is constant-time
/// (meant for private keys). Together they were 5 of dispatch's 8 ms from exec to its first poll
/// (docs/performance.md, Cold start). OpenSSL itself reads a directory only when a certificate's
/// issuer is not found, by subject hash. A root certificate is public: a plain base64 decoder
/// reads it.
fn native_certificates() -> Vec<CertificateDer<'static>> {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let (file, dirs) = match (env("SSL_CERT_FILE"), env("SSL_CERT_DIR")) {
        (None, None) => {
            let probed = openssl_probe::probe();
            let dirs = if probed.cert_file.is_some() { Vec::new() } else { probed.cert_dir };
            (probed.cert_file, dirs)
        }
        (file, dirs) => (file, dirs.map(|d| std::env::split_paths(&d).collect()).unwrap_or_default()),
    };
    let mut seen = std::collections::HashSet::new();
    // Each certificate's base64, once: a directory holds the bundle's certificates again.
    let mut blocks = std::collections::BTreeSet::new();
    let mut read = |path: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else { return };
        if !meta.is_file() || !seen.insert((meta.dev(), meta.ino())) {
            return;
        }
        match std::fs::read(path) {
            Ok(pem) => match std::str::from_utf8(&pem) {
                Ok(text) => blocks.extend(pem_blocks(text)),
                Err(_) => blocks.extend(pem_blocks(&String::from_utf8_lossy(&pem))),
            },
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "a root certificate file could not be read")
            }
        }
    };
    if let Some(file) = &file {
        read(file);
    }
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            read(&entry.path());
        }
    }
    // Distinct blocks are distinct certificates: the standard engine decodes canonical base64 alone.
    use base64::Engine;
    blocks
        .iter()
        .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(CertificateDer::from)
        .collect()
}

/// The base64 of each `CERTIFICATE` block of a PEM text, without its line breaks (other blocks
/// are skipped).
fn pem_blocks(pem: &str) -> impl Iterator<Item = String> + '_ {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = pem;
    std::iter::from_fn(move || {
        let start = rest.find(BEGIN)? + BEGIN.len();
        let end = start + rest[start..].find(END)?;
        let body = rest[start..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
        rest = &rest[end + END.len()..];
        Some(body)
    })
}

/// A TLS client configuration on ring, trusting the system's roots and the PEM certificates of
/// `extra_pem` (a local receiver's own CA).
pub fn tls_config(
    extra_pem: Option<&[u8]>,
) -> Result<ClientConfig, Box<dyn std::error::Error + Send + Sync>> {
    let mut roots = system_roots().clone();
    if let Some(pem) = extra_pem {
        use rustls::pki_types::pem::PemObject;
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots.add(cert.map_err(|e| format!("a PEM certificate: {e}"))?)?;
        }
    }
    Ok(with_roots(roots))
}

fn with_roots(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        // Fails only for a provider without TLS 1.2 and 1.3; ring has both.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The HTTPS (and, for local endpoints, HTTP) connector over `tcp`.
pub fn connector<R>(tcp: TcpConnector<R>, tls: ClientConfig) -> HttpsConnector<TcpConnector<R>> {
    HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(tcp)
}

/// A pooled HTTP/1.1 client over `connector`.
pub fn client<C, B>(connector: C) -> Client<C, B>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// The AWS SDK's HTTP client: connections per connect and read timeout (every client of a
/// function has the same ones, so there is one).
#[derive(Debug, Default)]
pub struct SdkHttpClient {
    connectors: RwLock<Vec<(Timeouts, SharedHttpConnector)>>,
}

/// A connect timeout and a read timeout.
type Timeouts = (Option<Duration>, Option<Duration>);

impl SdkHttpClient {
    /// The client, shared by the SDK's clients of one configuration.
    pub fn shared() -> SharedHttpClient {
        SdkHttpClient::default().into_shared()
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        if let Some((_, c)) =
            self.connectors.read().unwrap_or_else(|e| e.into_inner()).iter().find(|(k, _)| *k == key)
        {
            return c.clone();
        }
        let mut connectors = self.connectors.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = connectors.iter().find(|(k, _)| *k == key) {
            return c.clone();
        }
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(key.0);
        let tls = with_roots(system_roots().clone());
        let connector = SharedHttpConnector::new(SdkConnector {
            client: client(connector(tcp, tls)),
            read_timeout: key.1,
        });
        connectors.push((key, connector.clone()));
        connector
    }
}

/// One connection pool for the SDK's requests.
#[derive(Debug, Clone)]
struct SdkConnector {
    client: Client<HttpsConnector<TcpConnector>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let answered = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, sent)
                    .await
                    .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?,
                None => sent.await,
            };
            match answered {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(sdk_error(e)),
            }
        })
    }
}

/// Classifies a failed request as the SDK's retry policy expects (as its own hyper client does):
/// a connection that failed, closed or broke off is retried as I/O.
fn sdk_error(e: hyper_util::client::legacy::Error) -> ConnectorError {
    let hyper = source::<hyper::Error>(&e);
    if hyper.is_some_and(|h| h.is_timeout()) {
        return ConnectorError::timeout(e.into());
    }
    if hyper.is_some_and(|h| h.is_user()) {
        return ConnectorError::user(e.into());
    }
    if hyper.is_some_and(|h| h.is_incomplete_message()) {
        return ConnectorError::other(e.into(), Some(ErrorKind::TransientError));
    }
    if e.is_connect()
        || hyper.is_some_and(|h| h.is_closed() || h.is_canceled())
        || source::<std::io::Error>(&e).is_some()
    {
        return ConnectorError::io(e.into());
    }
    ConnectorError::other(e.into(), None)
}

/// The first error of type `E` in `e`'s chain.
pub fn source<'a, E: std::error::Error + 'static>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a E> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_system_roots_are_the_ones_rustls_native_certs_reads() {
        let mut theirs: Vec<Vec<u8>> =
            rustls_native_certs::load_native_certs().certs.iter().map(|c| c.to_vec()).collect();
        theirs.sort_unstable();
        theirs.dedup();
        let mut ours: Vec<Vec<u8>> = super::native_certificates().iter().map(|c| c.to_vec()).collect();
        ours.sort_unstable();
        assert!(!ours.is_empty(), "this machine has root certificates");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn only_certificate_blocks_of_a_pem_text_are_read() {
        let text = "# a comment\n-----BEGIN TRUSTED CERTIFICATE-----\nAAAA\n-----END TRUSTED CERTIFICATE-----\n\
                    -----BEGIN CERTIFICATE-----\nTUlJ\r\nQg==\n-----END CERTIFICATE-----\n\
                    -----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBAU=";
        let got: Vec<String> = super::pem_blocks(text).collect();
        assert_eq!(got, ["TUlJQg==", "AQID"]);
    }
}
