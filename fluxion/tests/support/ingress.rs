//! A stand-in for the Supervisor's ingress proxy: serves `/api/hassio_ingress/<token>/...` on
//! 127.0.0.1, strips the prefix, adds `X-Ingress-Path` and streams the add-on's answer back.

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
    Router,
};
use hyper_util::rt::TokioIo;

pub const PREFIX: &str = "/api/hassio_ingress/Xk3pT0kenF0rTest_-9";

pub struct Ingress {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ingress {
    pub fn start(upstream: SocketAddr) -> Ingress {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new().fallback(forward).with_state(upstream);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Ingress {
            addr: addr_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}{PREFIX}", self.addr)
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Open event streams keep the server alive; do not wait for the thread.
        drop(self.thread.take());
    }
}

async fn forward(State(upstream): State<SocketAddr>, mut req: Request) -> Response {
    let Some(rest) = req.uri().path().strip_prefix(PREFIX) else {
        return (StatusCode::NOT_FOUND, "not an ingress path").into_response();
    };
    let rest = if rest.is_empty() {
        "/".to_string()
    } else {
        rest.to_string()
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    *req.uri_mut() = format!("{rest}{query}").parse::<Uri>().unwrap();
    req.headers_mut()
        .insert("x-ingress-path", PREFIX.parse().unwrap());
    req.headers_mut()
        .insert("host", upstream.to_string().parse().unwrap());
    let stream = match tokio::net::TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    match sender.send_request(req).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
