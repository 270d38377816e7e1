//! Deliveries never reach internal addresses unless `ALLOW_PRIVATE_TARGETS` says so: literal
//! addresses are refused before any connection, names are resolved once and their internal
//! addresses dropped. Real receivers on loopback, the real sender.
use std::time::Duration;

use shared::delivery::{Deliverer, DeliveryRequest, DeliverySettings, Failure, HttpDeliverer, Outcome};
use tests::receiver::Receiver;

fn request(url: &str) -> DeliveryRequest<'_> {
    DeliveryRequest {
        url,
        authentication: None,
        headers: &[],
        event_id: "evt_ssrf",
        timestamp: 0,
        signature: "v1,x",
        body: b"{}",
    }
}

fn deliverer(allow_private_targets: bool) -> HttpDeliverer {
    HttpDeliverer::new(&DeliverySettings { allow_private_targets, ..DeliverySettings::default() }).unwrap()
}

#[tokio::test]
async fn internal_targets_are_refused_without_a_connection() {
    let receiver = Receiver::ok().await;
    let port = receiver.url.rsplit(':').next().unwrap().trim_end_matches("/hook").to_owned();
    let guarded = deliverer(false);
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://0x7f.0.0.1:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        let attempt = guarded.deliver(&request(&url)).await;
        assert_eq!(attempt.outcome, Outcome::Failed { class: Failure::RefusedAddress }, "{url}");
        assert!(attempt.duration < Duration::from_secs(1), "{url}: refused at once");
    }
    assert!(receiver.received().is_empty(), "nothing reached the receiver");

    // The local stack's setting lifts it.
    let open = deliverer(true);
    let attempt = open.deliver(&request(&format!("http://127.0.0.1:{port}/hook"))).await;
    assert_eq!(attempt.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(receiver.received().len(), 1);
}
