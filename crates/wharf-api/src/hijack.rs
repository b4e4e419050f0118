//! Hijacked attach streams (compat §3.1–3.2). After the `101` the connection carries raw stdin
//! from the client and, from the server, either raw bytes (TTY) or frames with an 8-byte header
//! (`[stream, 0, 0, 0, len u32 BE]`).
//!
//! Half-close semantics (moby `container/stream/attach.go`): the client's read-EOF means "stdin
//! ended", never "client gone":
//! - stdin not attached: ignore it and keep streaming output until the container exits;
//! - `StdinOnce` without TTY (`docker run -i`): close the container's stdin, keep streaming;
//! - otherwise: end this session (detach); the container keeps running.
//!
//! TTY sessions also watch stdin for the detach key sequence (default ctrl-p ctrl-q).

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::backend::AttachSession;

/// Docker's default detach keys: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// Parses Docker's detach key syntax (`ctrl-p,ctrl-q`, `a`, `ctrl-@`).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let k = key.trim();
        let b = k.as_bytes();
        if b.len() == 1 {
            out.push(b[0]);
            continue;
        }
        let Some(rest) = k.strip_prefix("ctrl-") else {
            return Err(format!("Unknown character: '{k}'"));
        };
        let code = match rest {
            "@" => 0,
            "[" => 27,
            "\\" => 28,
            "]" => 29,
            "^" => 30,
            "_" => 31,
            r if r.len() == 1 && r.as_bytes()[0].is_ascii_lowercase() => r.as_bytes()[0] - b'a' + 1,
            _ => return Err(format!("Unknown character: '{k}'")),
        };
        out.push(code);
    }
    if out.is_empty() {
        return Err("Invalid detach keys".into());
    }
    Ok(out)
}

/// Writes one output record in the session's framing.
pub fn frame(tty: bool, stream: u8, data: &[u8]) -> Bytes {
    if tty {
        return Bytes::copy_from_slice(data);
    }
    let mut v = Vec::with_capacity(8 + data.len());
    let len = (data.len() as u32).to_be_bytes();
    v.extend_from_slice(&[stream, 0, 0, 0, len[0], len[1], len[2], len[3]]);
    v.extend_from_slice(data);
    Bytes::from(v)
}

enum InputEnd {
    /// Keep streaming output until the container's output ends.
    KeepStreaming,
    /// End the session now.
    End,
    /// The client typed the detach keys.
    Detach,
}

/// Finds the detach sequence in a TTY input stream, holding back bytes that may start it.
struct Detector {
    keys: Vec<u8>,
    held: Vec<u8>,
}

impl Detector {
    /// Returns the bytes to forward, and whether the sequence was completed.
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.held.len()] {
                self.held.push(b);
                if self.held.len() == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.append(&mut self.held);
                if b == self.keys[0] {
                    self.held.push(b);
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// Moves bytes between a hijacked connection and an attach session until the session ends.
pub async fn pump<IO>(io: IO, session: AttachSession)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let AttachSession { tty, stdin_once, mut output, stdin, detach_keys, on_detach } = session;
    let out = async move {
        while let Some((stream, data)) = output.next().await {
            if wr.write_all(&frame(tty, stream, &data)).await.is_err() || wr.flush().await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    let inp = async move {
        let mut buf = vec![0u8; 32 * 1024];
        let Some(mut stdin) = stdin else {
            // Not attached to stdin: whatever the client sends (and its EOF) means nothing.
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return InputEnd::KeepStreaming,
                    Ok(_) => {}
                }
            }
        };
        let mut detector = (tty && !detach_keys.is_empty()).then(|| Detector { keys: detach_keys, held: Vec::new() });
        let mut stdin_ok = true;
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    if stdin_once && !tty {
                        let _ = stdin.shutdown().await;
                        return InputEnd::KeepStreaming;
                    }
                    return InputEnd::End;
                }
                Ok(n) => {
                    let (data, detached) = match detector.as_mut() {
                        Some(d) => d.feed(&buf[..n]),
                        None => (buf[..n].to_vec(), false),
                    };
                    if stdin_ok && !data.is_empty() && stdin.write_all(&data).await.is_err() {
                        stdin_ok = false;
                    }
                    if stdin_ok {
                        let _ = stdin.flush().await;
                    }
                    if detached {
                        return InputEnd::Detach;
                    }
                }
            }
        }
    };
    tokio::pin!(out);
    tokio::pin!(inp);
    tokio::select! {
        _ = &mut out => {}
        end = &mut inp => match end {
            InputEnd::KeepStreaming => out.await,
            InputEnd::End => {}
            InputEnd::Detach => {
                if let Some(f) = on_detach {
                    f();
                }
            }
        }
    }
}

/// Moves bytes between a websocket (`GET /containers/{id}/attach/ws`) and an attach session.
/// As moby: output is raw (never multiplexed), in binary messages from API 1.28 on and text
/// messages before; every message from the client is stdin; its close is stdin's EOF, with the
/// same meaning as a hijacked connection's half-close.
pub async fn pump_ws(socket: axum::extract::ws::WebSocket, session: AttachSession, binary: bool) {
    use axum::extract::ws::Message;
    use futures_util::SinkExt;

    let (mut tx, mut rx) = socket.split();
    let AttachSession { tty, stdin_once, mut output, stdin, detach_keys, on_detach } = session;
    let out = async move {
        while let Some((_, data)) = output.next().await {
            let msg = if binary {
                Message::Binary(data)
            } else {
                Message::Text(String::from_utf8_lossy(&data).into_owned().into())
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Message::Close(None)).await;
        let _ = tx.close().await;
    };
    let inp = async move {
        let mut detector = (tty && !detach_keys.is_empty()).then(|| Detector { keys: detach_keys, held: Vec::new() });
        let mut stdin = stdin;
        loop {
            let data = match rx.next().await {
                Some(Ok(Message::Binary(b))) => b.to_vec(),
                Some(Ok(Message::Text(t))) => t.as_str().as_bytes().to_vec(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    return match stdin.as_mut() {
                        None => InputEnd::KeepStreaming,
                        Some(s) if stdin_once && !tty => {
                            let _ = s.shutdown().await;
                            InputEnd::KeepStreaming
                        }
                        Some(_) => InputEnd::End,
                    };
                }
            };
            let Some(s) = stdin.as_mut() else { continue };
            let (data, detached) = match detector.as_mut() {
                Some(d) => d.feed(&data),
                None => (data, false),
            };
            if !data.is_empty() && s.write_all(&data).await.is_ok() {
                let _ = s.flush().await;
            }
            if detached {
                return InputEnd::Detach;
            }
        }
    };
    tokio::pin!(out);
    tokio::pin!(inp);
    tokio::select! {
        _ = &mut out => {}
        end = &mut inp => match end {
            InputEnd::KeepStreaming => out.await,
            InputEnd::End => {}
            InputEnd::Detach => {
                if let Some(f) = on_detach {
                    f();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_key_syntax() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![0x10, 0x11]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("meta-x").is_err());
    }

    #[test]
    fn detector_holds_partial_sequences() {
        let mut d = Detector { keys: vec![0x10, 0x11], held: Vec::new() };
        assert_eq!(d.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(d.feed(b"x"), (b"\x10x".to_vec(), false), "a broken sequence is forwarded");
        assert_eq!(d.feed(b"\x10"), (vec![], false));
        assert_eq!(d.feed(b"\x11rest"), (vec![], true));
    }

    #[test]
    fn frames() {
        assert_eq!(&frame(false, 2, b"err\n")[..], b"\x02\0\0\0\0\0\0\x04err\n");
        assert_eq!(&frame(true, 1, b"raw")[..], b"raw");
    }

    #[tokio::test]
    async fn stdin_once_half_close_keeps_output_flowing() {
        let (client, server) = tokio::io::duplex(1024);
        let (stdin_w, mut stdin_r) = tokio::io::duplex(1024);
        let (out_tx, out_rx) = tokio::sync::mpsc::channel::<(u8, Bytes)>(4);
        let session = AttachSession {
            tty: false,
            stdin_once: true,
            output: tokio_stream::wrappers::ReceiverStream::new(out_rx).boxed(),
            stdin: Some(Box::pin(stdin_w)),
            detach_keys: DEFAULT_DETACH_KEYS.to_vec(),
            on_detach: None,
        };
        let pumping = tokio::spawn(pump(server, session));
        let (mut crd, mut cwr) = tokio::io::split(client);
        cwr.write_all(b"hi\n").await.unwrap();
        cwr.shutdown().await.unwrap();
        let mut got = Vec::new();
        stdin_r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hi\n", "the container's stdin was closed after the data");
        out_tx.send((1, Bytes::from_static(b"hi\n"))).await.unwrap();
        drop(out_tx);
        let mut resp = Vec::new();
        crd.read_to_end(&mut resp).await.unwrap();
        assert_eq!(resp, b"\x01\0\0\0\0\0\0\x03hi\n");
        pumping.await.unwrap();
    }
}
