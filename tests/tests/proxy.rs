//! Deliveries never go through a proxy named in the environment: a proxy would resolve the
//! target itself, past the address guard. This file is a process of its own, so setting the
//! proxy variables here touches no other test.
use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use shared::delivery::{Deliverer, DeliveryRequest, DeliverySettings, HttpDeliverer, Outcome};
use tests::receiver::Receiver;

#[tokio::test]
async fn proxy_variables_are_ignored() {
    // A "proxy" that counts the connections it gets and closes them.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = proxy.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        std::env::set_var(name, &proxy_url);
    }
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");

    let receiver = Receiver::ok().await;
    let deliverer =
        HttpDeliverer::new(&DeliverySettings { allow_private_targets: true, ..DeliverySettings::default() })
            .unwrap();
    let attempt = deliverer
        .deliver(&DeliveryRequest {
            url: &receiver.url,
            authentication: None,
            headers: &[],
            event_id: "evt_proxy",
            timestamp: 0,
            signature: "v1,x",
            body: b"{}",
        })
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(receiver.received().len(), 1, "straight to the receiver");
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the proxy saw nothing");
}
