//! Attach sessions. A session can start before the container does (`docker run` attaches,
//! then starts): it waits for the next start, connects to the shim between the runtime's
//! `create` and `start`, and so sees every byte of output. stdin goes through an in-process
//! pipe so the API layer can write to it before the shim exists.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use wharf_api::backend::{AttachOptions, AttachSession};
use wharf_api::hijack::{DEFAULT_DETACH_KEYS, parse_detach_keys};
use wharf_runtime::logs::StreamKind;
use wharf_runtime::shim::ShimClient;
use wharf_types::{EngineError, Event, EventType};

use super::model::Status;
use super::{ContainerService, Handle};

/// A waiting session: receives the created shim and answers when it has connected.
pub type Pending = oneshot::Sender<(ShimClient, oneshot::Sender<()>)>;

fn stream_no(k: StreamKind) -> u8 {
    match k {
        StreamKind::Stdout => 1,
        StreamKind::Stderr => 2,
    }
}

pub async fn attach(svc: &ContainerService, h: Arc<Handle>, opts: AttachOptions) -> Result<AttachSession, EngineError> {
    let r = h.record();
    match r.state.status {
        Status::Paused => {
            return Err(EngineError::conflict("You cannot attach to a paused container, unpause it first"));
        }
        Status::Restarting => {
            return Err(EngineError::conflict("You cannot attach to a restarting container, wait until it is running"));
        }
        _ => {}
    }
    let detach_keys = match &opts.detach_keys {
        Some(k) => parse_detach_keys(k).map_err(EngineError::invalid)?,
        None => DEFAULT_DETACH_KEYS.to_vec(),
    };
    let tty = r.tty();
    let want_stdin = opts.stdin && r.config.open_stdin.unwrap_or(false);
    let (out_tx, out_rx) = mpsc::channel::<(u8, bytes::Bytes)>(64);
    let (app_stdin, shim_side) = if want_stdin {
        let (a, b) = tokio::io::duplex(64 * 1024);
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let source = if !opts.stream {
        None
    } else if r.state.status.is_running() {
        h.shim().map(Source::Now)
    } else {
        let (tx, rx) = oneshot::channel();
        h.pending_attach.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        Some(Source::Later(rx))
    };
    if opts.logs && !r.log_path.is_empty() {
        // Replay what was logged so far, before live output.
        let mut logs = super::api::read_container_logs(
            &r,
            wharf_api::backend::LogsOptions { stdout: opts.stdout, stderr: opts.stderr, ..Default::default() },
        );
        while let Some(Ok(entry)) = logs.next().await {
            let _ = out_tx.send((stream_no(entry.stream), entry.bytes)).await;
        }
    }
    let (stdout, stderr) = (opts.stdout, opts.stderr);
    tokio::spawn(async move {
        let (client, ready) = match source {
            None => return,
            Some(Source::Now(c)) => (c, None),
            Some(Source::Later(rx)) => match rx.await {
                Ok((c, ready)) => (c, Some(ready)),
                Err(_) => return,
            },
        };
        let attached = client.attach(wharf_runtime::shim::AttachOptions { stdin: want_stdin, stdout, stderr }).await;
        if let Some(ready) = ready {
            let _ = ready.send(());
        }
        let Ok(stream) = attached else { return };
        if let (Some(mut shim_stdin), Some(mut from_app)) = (stream.stdin, shim_side) {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_app, &mut shim_stdin).await;
                let _ = shim_stdin.shutdown().await;
            });
        }
        let mut output = stream.output;
        while let Some(Ok((kind, data))) = output.next().await {
            if out_tx.send((stream_no(kind), data)).await.is_err() {
                break;
            }
        }
    });
    let events = svc.ctx.events.clone();
    let attrs = r.event_attributes();
    let id = r.id.to_string();
    events.publish(Event::now(EventType::Container, "attach", id.clone(), attrs.clone()));
    Ok(AttachSession {
        tty,
        stdin_once: r.config.stdin_once.unwrap_or(false),
        output: tokio_stream::wrappers::ReceiverStream::new(out_rx).boxed(),
        stdin: app_stdin.map(|a| Box::pin(a) as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>),
        detach_keys,
        on_detach: Some(Box::new(move || events.publish(Event::now(EventType::Container, "detach", id, attrs)))),
    })
}

enum Source {
    Now(ShimClient),
    Later(oneshot::Receiver<(ShimClient, oneshot::Sender<()>)>),
}
