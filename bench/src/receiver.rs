//! The minimal receiver every measurement sends to: HTTP/1.1 on 127.0.0.1, reads the body, answers
//! `200 {}`. It runs in a child process, so that its CPU time is not counted as ours.
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves until killed; prints its port on the first line of stdout.
pub async fn serve() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// A receiver child process; killed when dropped.
pub struct Child {
    pub port: u16,
    _process: tokio::process::Child,
}

/// Starts `<this binary> receiver` and waits for its port.
pub async fn spawn() -> anyhow::Result<Child> {
    use tokio::io::AsyncBufReadExt;
    let mut process = tokio::process::Command::new(std::env::current_exe()?)
        .arg("receiver")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = process.stdout.take().expect("piped");
    let mut line = String::new();
    tokio::io::BufReader::new(stdout).read_line(&mut line).await?;
    Ok(Child { port: line.trim().parse()?, _process: process })
}
