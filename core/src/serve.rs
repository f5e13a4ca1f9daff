//! The HTTP edge: the accept loop with a connection cap and header-read timeout, in place of
//! `axum::serve`, which has neither.
//!
//! Each connection costs a task and its socket, and once it has sent a byte hyper's buffers (at
//! most [`MAX_BUF`] to read, 8 KiB to write); [`EdgeLimits::max_connections`] bounds how many exist, so the memory of
//! idle or slow clients is bounded too. A client that sends no complete request head within
//! [`EdgeLimits::header_read_timeout`] (an idle keep-alive included) is disconnected. A
//! connection past the cap is answered at once with 503 `overloaded` and closed, without a task.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// Largest buffer hyper keeps per connection (request head and body chunks).
pub const MAX_BUF: usize = 16 * 1024;

/// Limits at the edge (`VOUCHER_MAX_CONNECTIONS`, fixed timeouts).
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    /// Open connections served at once.
    pub max_connections: usize,
    /// Time to receive a request's head, counted from when the connection waits for one.
    pub header_read_timeout: Duration,
    /// Time a shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            max_connections: 8192,
            header_read_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

/// The answer to a connection past the cap: written in one non-blocking call, then closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 133\r\n\r\n{\"type\":\"urn:voucher:error:overloaded\",\"title\":\"The server is busy\",\"status\":503,\"detail\":\"too many connections\",\"code\":\"overloaded\"}";

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish
/// for up to `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of descriptors or a connection reset before accept: keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                match Arc::clone(&permits).try_acquire_owned() {
                    Ok(permit) => {
                        let (app, stop) = (app.clone(), stop_rx.clone());
                        tokio::spawn(async move {
                            connection(stream, peer, app, limits, stop).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        let _ = stream.try_write(REFUSED);
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.drain, permits.acquire_many(all)).await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: EdgeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    // Hand the socket to hyper only once the client has sent something: hyper gives every
    // connection its read and write buffers (16 KiB) up front, and thousands of connections
    // that never send a byte should cost no more than their socket and this task.
    match tokio::time::timeout(limits.header_read_timeout, stream.readable()).await {
        Ok(Ok(())) => {}
        _ => return,
    }
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let response = app
                .oneshot(request.map(axum::body::Body::new))
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_BUF);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async move { let _ = stop.wait_for(|stop| *stop).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_problem() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], "overloaded");
    }
}
