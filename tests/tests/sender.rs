//! The sender's connections (`delivery/connections.rs`), against receivers written at the TCP
//! level, so that each test says how a receiver treats its connections: kept alive, closed
//! with `Connection: close`, closed without a word while idle, a body past the read limit, an
//! answer that never comes. What a vendor would notice: every delivery gets through, the
//! request is the HTTP/1.1 an origin expects, and connections are reused, not piled up.
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use shared::delivery::{
    Attempt, Deliverer, DeliveryRequest, DeliverySettings, Failure, HttpDeliverer, Outcome,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};

/// How the receiver treats a connection after answering.
#[derive(Clone, Copy)]
enum Mode {
    /// Keeps it open for the next request.
    KeepAlive,
    /// Says `Connection: close` and closes it.
    Close,
    /// Keeps it open in its answer, then closes it without a word.
    DropAfter,
    /// Answers with a body of this many bytes.
    Big(usize),
    /// Never answers.
    Hang,
}

struct Raw {
    url: String,
    accepted: Arc<AtomicUsize>,
    /// Each request's head, as received.
    heads: Arc<Mutex<Vec<String>>>,
}

async fn receiver(mode: Mode) -> Raw {
    serving(mode, None).await
}

/// A receiver over TLS, its certificate signed by a throwaway CA in `dir` (`ca.pem`).
async fn tls_receiver(mode: Mode, dir: &std::path::Path) -> Raw {
    devstack::ensure_local_tls(dir).unwrap();
    serving(mode, Some(tests::receiver::tls_acceptor(dir))).await
}

async fn serving(mode: Mode, tls: Option<tokio_rustls::TlsAcceptor>) -> Raw {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{}/hook?x=1", listener.local_addr().unwrap().port());
    let (accepted, heads) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let (count, seen) = (accepted.clone(), heads.clone());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (seen, tls) = (seen.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(socket) = acceptor.accept(socket).await {
                            serve(socket, mode, seen).await
                        }
                    }
                    None => serve(socket, mode, seen).await,
                }
            });
        }
    });
    Raw { url, accepted, heads }
}

/// Answers the connection's requests as `mode` says.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S, mode: Mode, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        // One request: its head, then as many body bytes as it says.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + length);
        heads.lock().unwrap().push(head);
        let answer = match mode {
            Mode::KeepAlive | Mode::DropAfter => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_owned(),
            Mode::Close => "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok".to_owned(),
            Mode::Big(n) => format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n{}", "x".repeat(n)),
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
        };
        if socket.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if matches!(mode, Mode::Close | Mode::DropAfter) {
            return;
        }
    }
}

fn sender(timeout: Duration) -> HttpDeliverer {
    HttpDeliverer::new(&DeliverySettings {
        allow_private_targets: true,
        timeout,
        ..DeliverySettings::default()
    })
    .unwrap()
}

async fn attempt(sender: &HttpDeliverer, url: &str) -> Attempt {
    sender
        .deliver(&DeliveryRequest {
            url,
            authentication: None,
            headers: &[],
            event_id: "evt_sender",
            timestamp: 1_795_510_800,
            signature: "v1,x",
            body: br#"{"orderNo":"1000-1"}"#,
        })
        .await
}

async fn deliver(sender: &HttpDeliverer, url: &str) -> Outcome {
    attempt(sender, url).await.outcome
}

#[tokio::test]
async fn a_receiver_that_keeps_its_connection_open_gets_every_delivery_on_one() {
    let r = receiver(Mode::KeepAlive).await;
    let sender = sender(Duration::from_secs(5));
    for _ in 0..20 {
        assert_eq!(deliver(&sender, &r.url).await, Outcome::Delivered { status: 200 });
    }
    assert_eq!(r.accepted.load(Ordering::SeqCst), 1, "one connection for twenty deliveries");
    let heads = r.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 20);
    let port = r.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    for head in heads {
        let lower = head.to_ascii_lowercase();
        // The origin form of the target, and the Host header, as an origin expects them.
        assert!(head.starts_with("POST /hook?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(lower.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")), "{head}");
        assert!(lower.contains("\r\ncontent-length: 20\r\n"), "{head}");
        assert!(lower.contains("\r\nwebhook-id: evt_sender\r\n"), "{head}");
    }
}

#[tokio::test]
async fn over_tls_one_connection_carries_every_delivery() {
    let dir = std::env::temp_dir().join(format!("sender-tls-{}", std::process::id()));
    let r = tls_receiver(Mode::KeepAlive, &dir).await;
    let trusting = HttpDeliverer::new(&DeliverySettings {
        allow_private_targets: true,
        extra_ca_file: Some(dir.join("ca.pem")),
        ..DeliverySettings::default()
    })
    .unwrap();
    for _ in 0..10 {
        assert_eq!(deliver(&trusting, &r.url).await, Outcome::Delivered { status: 200 });
    }
    assert_eq!(r.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(r.heads.lock().unwrap().len(), 10);
    // Without the CA, the same receiver is not trusted: no request reaches it.
    assert_eq!(
        deliver(&sender(Duration::from_secs(5)), &r.url).await,
        Outcome::Failed { class: Failure::Connect }
    );
    assert_eq!(r.heads.lock().unwrap().len(), 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn concurrent_deliveries_each_get_a_connection_and_leave_them_for_the_next() {
    let r = receiver(Mode::KeepAlive).await;
    let sender = sender(Duration::from_secs(5));
    let first = futures_util::future::join_all((0..8).map(|_| deliver(&sender, &r.url))).await;
    assert!(first.iter().all(|o| *o == Outcome::Delivered { status: 200 }), "{first:?}");
    let opened = r.accepted.load(Ordering::SeqCst);
    assert!((1..=8).contains(&opened), "{opened} connections for 8 deliveries at once");
    let again = futures_util::future::join_all((0..8).map(|_| deliver(&sender, &r.url))).await;
    assert!(again.iter().all(|o| *o == Outcome::Delivered { status: 200 }), "{again:?}");
    assert_eq!(r.accepted.load(Ordering::SeqCst), opened, "the idle connections were used again");
    assert_eq!(r.heads.lock().unwrap().len(), 16);
}

#[tokio::test]
async fn a_receiver_that_closes_its_connections_gets_every_delivery_on_a_new_one() {
    for mode in [Mode::Close, Mode::DropAfter] {
        let r = receiver(mode).await;
        let sender = sender(Duration::from_secs(5));
        for _ in 0..5 {
            assert_eq!(deliver(&sender, &r.url).await, Outcome::Delivered { status: 200 });
            // Long enough for the close to arrive before the next delivery takes the connection.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(r.accepted.load(Ordering::SeqCst), 5);
        assert_eq!(r.heads.lock().unwrap().len(), 5, "each delivery sent once");
    }
}

#[tokio::test]
async fn an_answer_past_the_read_limit_is_cut_off_and_its_connection_not_used_again() {
    let r = receiver(Mode::Big(200 * 1024)).await;
    let sender = sender(Duration::from_secs(5));
    let attempt = attempt(&sender, &r.url).await;
    assert_eq!(attempt.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(attempt.response_excerpt, "x".repeat(1024));
    assert_eq!(deliver(&sender, &r.url).await, Outcome::Delivered { status: 200 });
    assert_eq!(r.accepted.load(Ordering::SeqCst), 2, "the unread rest was not taken for an answer");
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_and_the_next_delivery_starts_afresh() {
    let hanging = receiver(Mode::Hang).await;
    let sender = sender(Duration::from_millis(300));
    assert_eq!(deliver(&sender, &hanging.url).await, Outcome::Failed { class: Failure::Timeout });
    assert_eq!(deliver(&sender, &hanging.url).await, Outcome::Failed { class: Failure::Timeout });
    assert_eq!(hanging.accepted.load(Ordering::SeqCst), 2, "a timed-out connection is not reused");
    let answering = receiver(Mode::KeepAlive).await;
    assert_eq!(deliver(&sender, &answering.url).await, Outcome::Delivered { status: 200 });
}
