//! The userland proxy: what `docker-proxy` does, as tasks on the daemon's runtime.
//!
//! Traffic from the host to its own addresses (`curl 127.0.0.1:8080`) never crosses PREROUTING,
//! and loopback-sourced packets cannot be DNATed into a bridge without `route_localnet`, so a
//! listener on the host port forwards it: TCP by splicing connections, UDP by keeping one
//! connected upstream socket per client address (dropped after 90 s idle, docker-proxy's
//! conntrack timeout). Traffic from outside is DNATed by the firewall and never reaches these
//! listeners; holding the port bound also reserves it against other programs, as Docker does.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ports::{PortError, PortMapping, Proto};

const UDP_IDLE: Duration = Duration::from_secs(90);

/// A running forwarder for one [`PortMapping`]. Stopping it (or dropping it) closes the
/// listener and every connection it carries.
pub struct Proxy {
    mapping: PortMapping,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    /// A duplicate of the TCP listener: shut down when the proxy is dropped, so the port is free
    /// for a new proxy at once, before the task (on another worker, maybe later) closes its copy.
    listener: Option<OwnedFd>,
}

impl Proxy {
    /// Binds the host side now (so conflicts surface as errors here) and starts forwarding.
    /// Must be called inside a tokio runtime.
    pub fn start(mapping: &PortMapping) -> Result<Proxy, PortError> {
        let host = SocketAddr::new(mapping.host_ip, mapping.host_port);
        let backend = SocketAddr::new(mapping.container_ip, mapping.container_port);
        let (stop, stopped) = watch::channel(false);
        let bind_err = |source: io::Error| {
            let container = SocketAddr::new(mapping.container_ip, mapping.container_port).to_string();
            if source.raw_os_error() == Some(libc::EADDRINUSE) {
                PortError::AddressInUse {
                    ip: mapping.host_ip,
                    port: mapping.host_port,
                    container,
                    proto: mapping.proto,
                }
            } else {
                PortError::Bind {
                    ip: mapping.host_ip,
                    port: mapping.host_port,
                    container,
                    proto: mapping.proto,
                    source,
                }
            }
        };
        let mut dup = None;
        let task = match mapping.proto {
            Proto::Tcp => {
                let listener = bind(host, Type::STREAM, Protocol::TCP).map_err(bind_err)?;
                listener.listen(1024).map_err(bind_err)?;
                dup = Some(OwnedFd::from(listener.try_clone().map_err(bind_err)?));
                let listener = TcpListener::from_std(listener.into()).map_err(bind_err)?;
                tokio::spawn(tcp_loop(listener, backend, stopped))
            }
            Proto::Udp => {
                let sock = bind(host, Type::DGRAM, Protocol::UDP).map_err(bind_err)?;
                let sock = UdpSocket::from_std(sock.into()).map_err(bind_err)?;
                tokio::spawn(udp_loop(Arc::new(sock), backend, stopped))
            }
            Proto::Sctp => return Err(PortError::UnsupportedProto(Proto::Sctp)),
        };
        Ok(Proxy { mapping: mapping.clone(), stop, task: Some(task), listener: dup })
    }

    pub fn mapping(&self) -> &PortMapping {
        &self.mapping
    }

    /// Stops forwarding and waits until the listener is closed.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(fd) = &self.listener {
            // Takes the socket out of LISTEN now: a new SO_REUSEADDR bind of the same port (a
            // restarted container, a reconcile after a crash) no longer conflicts with it.
            // SAFETY: shutdown(2) on a socket descriptor this proxy owns.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}

fn bind(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        // `::` and `0.0.0.0` are bound separately, as Docker does.
        s.set_only_v6(true)?;
    }
    if ty == Type::STREAM {
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

async fn tcp_loop(listener: TcpListener, backend: SocketAddr, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                let mut stop = stopped.clone();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(backend).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                    }
                });
            }
        }
    }
}

async fn udp_loop(sock: Arc<UdpSocket>, backend: SocketAddr, mut stopped: watch::Receiver<bool>) {
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, client) = tokio::select! {
            _ = stopped.changed() => return,
            r = sock.recv_from(&mut buf) => match r { Ok(r) => r, Err(_) => continue },
        };
        let existing = flows.lock().ok().and_then(|f| f.get(&client).cloned());
        let upstream = match existing {
            Some(u) => u,
            None => {
                let local: SocketAddr = if backend.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let Ok(u) = UdpSocket::bind(local).await else {
                    continue;
                };
                if u.connect(backend).await.is_err() {
                    continue;
                }
                let u = Arc::new(u);
                if let Ok(mut f) = flows.lock() {
                    f.insert(client, u.clone());
                }
                tokio::spawn(udp_replies(u.clone(), sock.clone(), client, flows.clone(), stopped.clone()));
                u
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

async fn udp_replies(
    upstream: Arc<UdpSocket>,
    sock: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            r = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)) => match r {
                Ok(Ok(n)) => { let _ = sock.send_to(&buf[..n], client).await; }
                // Idle or the backend refused (ICMP): forget the flow.
                _ => break,
            },
        }
    }
    if let Ok(mut f) = flows.lock() {
        f.remove(&client);
    }
}

#[cfg(test)]
mod drop_tests {
    use super::*;
    use crate::ports::Proto;

    /// On a current-thread runtime the listener task cannot run between the drop and the new
    /// bind: the port must be free without it.
    #[tokio::test]
    async fn a_dropped_proxy_frees_its_port_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let m = PortMapping {
            proto: Proto::Tcp,
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: port,
            container_ip: "127.0.0.1".parse().unwrap(),
            container_port: 9,
        };
        let first = Proxy::start(&m).unwrap();
        assert!(matches!(Proxy::start(&m), Err(PortError::AddressInUse { .. })), "the port is held");
        drop(first);
        let again = Proxy::start(&m).expect("port free once the proxy is dropped");
        again.stop().await;
        drop(Proxy::start(&m).unwrap());
    }
}
