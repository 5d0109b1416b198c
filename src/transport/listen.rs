//! The accept loop: each TCP connection is admitted under the connection
//! limits (or answered 503 and closed), served by hyper with a header read
//! timeout, and drained on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tower::Service;

use super::limits::{LimitKind, Limits};
use super::throttle::Peer;

pub struct ListenOptions {
    pub header_timeout: Duration,
    pub tcp_send_buffer: Option<usize>,
    /// How long open HTTP connections get to finish on shutdown.
    pub drain: Duration,
}

/// Connections the kernel holds for `accept`: a crowd reconnecting at once
/// (thousands after a restart) must not overflow it, or each connection
/// beyond waits a SYN retransmission (1 s, then 3 s). Capped by the
/// kernel's `somaxconn`.
const BACKLOG: u32 = 4096;

/// Listens on `addr` with a backlog of `BACKLOG`.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits up
/// to `options.drain` for open HTTP connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Arc<Limits>,
    options: ListenOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new()).header_read_timeout(options.header_timeout);
    http.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match limits.admit(peer.ip()) {
            Ok(permit) => Arc::new(permit),
            Err(kind) => {
                tokio::spawn(refuse(stream, kind));
                continue;
            }
        };
        tune(&stream, options.tcp_send_buffer);
        let close = Arc::new(tokio::sync::Notify::new());
        let service = hyper::service::service_fn({
            let router = router.clone();
            let peer = Peer { addr: peer, permit: permit.clone(), close: close.clone() };
            move |request: hyper::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(peer.clone());
                router.clone().call(request)
            }
        });
        let connection =
            graceful.watch(http.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned());
        let limits = limits.clone();
        tokio::spawn(async move {
            tokio::select! {
                served = connection => if let Err(e) = served {
                    note_failure(&limits, peer, e.as_ref());
                },
                () = close.notified() => tracing::debug!(%peer, "connection dropped"),
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.drain, graceful.shutdown()).await.is_err() {
        tracing::info!("some HTTP connections were still open at shutdown");
    }
}

fn tune(stream: &TcpStream, send_buffer: Option<usize>) {
    let _ = stream.set_nodelay(true);
    if let Some(size) = send_buffer {
        let _ = socket2::SockRef::from(stream).set_send_buffer_size(size);
    }
}

/// Counts a connection hyper closed for its header timeout.
fn note_failure(limits: &Limits, peer: SocketAddr, e: &(dyn std::error::Error + 'static)) {
    let timed_out = e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
    if timed_out {
        limits.hit(LimitKind::HeaderTimeout);
        tracing::debug!(%peer, "closed: request headers not complete in time");
    } else {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Answers a connection over a limit with a 503 in the protocol's error
/// shape and closes it, without reading its request.
async fn refuse(mut stream: TcpStream, kind: LimitKind) {
    let why = match kind {
        LimitKind::ConnectionsPerAddress => "too many connections from your address",
        _ => "the server holds as many connections as it may",
    };
    let body = format!(r#"{{"error":{{"code":"unavailable","message":"{why}","retryAfterMs":1000}}}}"#);
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crowd connecting at once is held by the kernel until accepted:
    /// with the default backlog (128) the connections past it would wait
    /// for SYN retransmissions and, never accepted here, not complete.
    #[tokio::test]
    async fn the_listener_holds_a_crowd_of_connections_not_yet_accepted() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let crowd = (0..1000).map(|_| async move {
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await.is_ok_and(|c| c.is_ok())
        });
        let connected = futures::future::join_all(crowd).await.into_iter().filter(|ok| *ok).count();
        assert_eq!(connected, 1000);
        drop(listener);
    }
}
