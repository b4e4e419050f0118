//! Accept loops. Every connection speaks HTTP/1.1 with keep-alive and upgrades (hijacked
//! attach/exec streams); half-closed connections are allowed because Docker clients half-close
//! stdin. Shutdown stops accepting, lets in-flight requests finish for a grace period, then
//! returns.

use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::router::App;

/// A socket the daemon serves the API on.
pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// How long in-flight requests get after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` on every listener until `shutdown` is cancelled.
pub async fn serve(listeners: Vec<Listener>, app: App, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let mut loops = tokio::task::JoinSet::new();
    for listener in listeners {
        let app = app.clone();
        let shutdown = shutdown.clone();
        let tracker = tracker.clone();
        loops.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    a = accept(&listener) => a,
                };
                match accepted {
                    Ok(Conn::Unix(s)) => {
                        tracker.spawn(serve_connection(TokioIo::new(s), app.clone(), shutdown.clone()));
                    }
                    Ok(Conn::Tcp(s)) => {
                        tracker.spawn(serve_connection(TokioIo::new(s), app.clone(), shutdown.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    while loops.join_next().await.is_some() {}
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        tracing::info!("shutdown grace period over; closing remaining connections");
    }
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Conn> {
    Ok(match listener {
        Listener::Unix(l) => Conn::Unix(l.accept().await?.0),
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Conn::Tcp(s)
        }
    })
}

/// Serves one connection; on shutdown, finishes the request in flight and closes.
async fn serve_connection<I>(io: I, app: App, shutdown: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(app.handle(req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.half_close(true).keep_alive(true);
    let conn = builder.serve_connection(io, svc).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
