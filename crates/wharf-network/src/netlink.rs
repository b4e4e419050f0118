//! A small synchronous rtnetlink client: links (bridge, veth, macvlan, dummy), addresses and
//! routes, built from `netlink-packet-route` message types.
//!
//! Why synchronous: a netlink socket belongs to the namespace of the thread that created it, and
//! every request here takes microseconds. The daemon opens a handle for a container's namespace
//! with [`Netlink::open_in`] (one short thread switch) and then drives it from anywhere, usually
//! inside `spawn_blocking`. No `ip` binary is involved.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use wharf_types::{Classify, ErrorKind};

/// Failures of netlink requests. `op` names the request (`add veth vethab12 (peer eth0)`).
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("open netlink socket")]
    Open {
        #[source]
        source: io::Error,
    },
    #[error("open netlink socket in {path}")]
    OpenIn {
        path: std::path::PathBuf,
        #[source]
        source: Box<crate::netns::NetnsError>,
    },
    #[error("netlink: {op}")]
    Request {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("netlink: {op}: malformed reply: {detail}")]
    Decode { op: String, detail: String },
    #[error("netlink: link {name} not found")]
    LinkNotFound { name: String },
}

impl NetlinkError {
    /// The errno of a failed request, if the kernel returned one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl Classify for NetlinkError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetlinkError::LinkNotFound { .. } => ErrorKind::NotFound,
            NetlinkError::Request { source, .. } => match source.raw_os_error() {
                Some(libc::EEXIST) | Some(libc::EADDRINUSE) => ErrorKind::Conflict,
                Some(libc::ENODEV) => ErrorKind::NotFound,
                Some(libc::EINVAL) | Some(libc::ERANGE) => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::Internal,
        }
    }
}

/// A link as seen in a dump: what reconcile and the drivers need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, `macvlan`, `dummy`, … (`None` for physical devices and `lo`).
    pub kind: Option<String>,
    /// Index of the bridge this link is enslaved to.
    pub master: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub up: bool,
}

/// Options of [`Netlink::add_endpoint_veth`].
#[derive(Debug, Clone, Default)]
pub struct VethOptions<'a> {
    pub name: &'a str,
    pub peer: &'a str,
    pub mtu: Option<u32>,
    pub master: Option<u32>,
    pub up: bool,
    pub peer_mac: Option<[u8; 6]>,
    pub peer_netns: Option<RawFd>,
}

/// A handle on the rtnetlink of one network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a handle in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|source| NetlinkError::Open { source })?;
        socket.bind_auto().map_err(|source| NetlinkError::Open { source })?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|source| NetlinkError::Open { source })?;
        // Ask for strict dump filtering; older kernels ignore it.
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(Self { socket, seq: 1 })
    }

    /// Opens a handle in the namespace bind-mounted at `path`. The socket stays in that namespace.
    pub fn open_in(path: &Path) -> Result<Self, NetlinkError> {
        crate::netns::run_in(path, Self::open)
            .map_err(|e| NetlinkError::OpenIn { path: path.to_owned(), source: Box::new(e) })?
    }

    fn request(
        &mut self,
        op: impl Fn() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        self.seq = self.seq.wrapping_add(1);
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        if let Err(source) = self.socket.send(&buf, 0) {
            return Err(NetlinkError::Request { op: op(), source });
        }
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = match self.socket.recv_from_full() {
                Ok(r) => r,
                Err(source) => return Err(NetlinkError::Request { op: op(), source }),
            };
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| NetlinkError::Decode { op: op(), detail: e.to_string() })?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        if e.code.is_some() {
                            return Err(NetlinkError::Request { op: op(), source: e.to_io() });
                        }
                        return Ok(out);
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if !dump {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn ack(&mut self, op: impl Fn() -> String, msg: RouteNetlinkMessage, extra: u16) -> Result<(), NetlinkError> {
        self.request(op, msg, NLM_F_ACK | extra).map(|_| ())
    }

    // ---- links --------------------------------------------------------------------------

    /// Every link in this namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let msgs =
            self.request(|| "dump links".into(), RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_DUMP)?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(&l)),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, if any.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request(|| format!("get link {name}"), RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(&l)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The index of the link called `name`.
    pub fn link_index(&mut self, name: &str) -> Result<u32, NetlinkError> {
        self.link(name)?.map(|l| l.index).ok_or_else(|| NetlinkError::LinkNotFound { name: name.to_owned() })
    }

    /// Creates a Linux bridge (down; call [`Netlink::set_up`] after addressing it).
    pub fn add_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<u32, NetlinkError> {
        let mut msg = named(name);
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        self.ack(|| format!("add bridge {name}"), RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)?;
        self.link_index(name)
    }

    /// Creates a veth pair. With `peer_netns`, the peer is created directly inside that
    /// namespace (an fd of its nsfs file), which saves a move and a rename when the peer is
    /// created under its final name (`eth0`).
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        mtu: Option<u32>,
        peer_netns: Option<RawFd>,
    ) -> Result<u32, NetlinkError> {
        let mut peer_msg = named(peer);
        if let Some(mtu) = mtu {
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(fd) = peer_netns {
            peer_msg.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        let mut msg = named(name);
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.ack(
            || format!("add veth {name} (peer {peer})"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        self.link_index(name)
    }

    /// Creates a veth pair in one request, the way a container endpoint wants it: the host end
    /// enslaved to `master` and up, the peer born inside `peer_netns` under its final name with
    /// its MAC already set. Saves four round trips over create-then-modify.
    pub fn add_endpoint_veth(&mut self, v: &VethOptions<'_>) -> Result<(), NetlinkError> {
        let mut peer_msg = named(v.peer);
        if let Some(mtu) = v.mtu {
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = v.peer_mac {
            peer_msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(fd) = v.peer_netns {
            peer_msg.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        let mut msg = named(v.name);
        if let Some(mtu) = v.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(m) = v.master {
            msg.attributes.push(LinkAttribute::Controller(m));
        }
        if v.up {
            msg.header.flags |= LinkFlags::Up;
            msg.header.change_mask |= LinkFlags::Up;
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.ack(
            || format!("add veth {} (peer {})", v.name, v.peer),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Creates a macvlan link in bridge mode on `parent`, optionally straight into a namespace.
    pub fn add_macvlan(
        &mut self,
        name: &str,
        parent: u32,
        mtu: Option<u32>,
        netns: Option<RawFd>,
        mac: Option<[u8; 6]>,
    ) -> Result<(), NetlinkError> {
        let mut msg = named(name);
        msg.attributes.push(LinkAttribute::Link(parent));
        if let Some(mac) = mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(fd) = netns {
            msg.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)])),
        ]));
        self.ack(
            || format!("add macvlan {name} on link {parent}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Creates a dummy link (a stand-in parent for macvlan in tests).
    pub fn add_dummy(&mut self, name: &str) -> Result<u32, NetlinkError> {
        let mut msg = named(name);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Dummy)]));
        self.ack(|| format!("add dummy {name}"), RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)?;
        self.link_index(name)
    }

    fn set_link(
        &mut self,
        op: impl Fn() -> String,
        index: u32,
        f: impl FnOnce(&mut LinkMessage),
    ) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        f(&mut msg);
        self.ack(op, RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Sets a link administratively up.
    pub fn set_up(&mut self, index: u32) -> Result<(), NetlinkError> {
        self.set_link(
            || format!("set link {index} up"),
            index,
            |m| {
                m.header.flags |= LinkFlags::Up;
                m.header.change_mask |= LinkFlags::Up;
            },
        )
    }

    /// Enslaves a link to a bridge.
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<(), NetlinkError> {
        self.set_link(
            || format!("set link {index} master {master}"),
            index,
            |m| m.attributes.push(LinkAttribute::Controller(master)),
        )
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        self.set_link(|| format!("set link {index} mtu {mtu}"), index, |m| m.attributes.push(LinkAttribute::Mtu(mtu)))
    }

    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), NetlinkError> {
        self.set_link(
            || format!("set link {index} address {}", crate::mac::format(&mac)),
            index,
            |m| m.attributes.push(LinkAttribute::Address(mac.to_vec())),
        )
    }

    /// Renames a link (it must be down).
    pub fn rename(&mut self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.set_link(
            || format!("rename link {index} to {name}"),
            index,
            |m| m.attributes.push(LinkAttribute::IfName(name.to_owned())),
        )
    }

    /// Moves a link into the namespace whose nsfs file is open as `netns`.
    pub fn move_to_netns(&mut self, index: u32, netns: &impl AsRawFd) -> Result<(), NetlinkError> {
        let fd = netns.as_raw_fd();
        self.set_link(
            || format!("move link {index} to netns"),
            index,
            |m| m.attributes.push(LinkAttribute::NetNsFd(fd)),
        )
    }

    /// Deletes a link (deleting one end of a veth deletes both).
    pub fn del_link(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.ack(|| format!("delete link {index}"), RouteNetlinkMessage::DelLink(msg), 0)
    }

    /// Deletes the link called `name`; a missing link is not an error.
    pub fn del_link_by_name(&mut self, name: &str) -> Result<(), NetlinkError> {
        match self.link(name)? {
            Some(l) => match self.del_link(l.index) {
                Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
                r => r,
            },
            None => Ok(()),
        }
    }

    // ---- addresses and routes -----------------------------------------------------------

    /// Adds `addr` (address and prefix) to a link; IPv4 gets its broadcast like `ip addr add … brd +`.
    pub fn add_address(&mut self, index: u32, addr: IpNet) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = addr.prefix_len();
        match addr {
            IpNet::V4(v4) => {
                msg.header.family = AddressFamily::Inet;
                msg.attributes.push(AddressAttribute::Local(IpAddr::V4(v4.addr())));
                msg.attributes.push(AddressAttribute::Address(IpAddr::V4(v4.addr())));
                if v4.prefix_len() < 31 {
                    msg.attributes.push(AddressAttribute::Broadcast(v4.broadcast()));
                }
            }
            IpNet::V6(v6) => {
                msg.header.family = AddressFamily::Inet6;
                msg.attributes.push(AddressAttribute::Address(IpAddr::V6(v6.addr())));
                // IFA_F_NODAD: a container address must be usable at once, as Docker sets it.
                msg.attributes.push(AddressAttribute::Flags(netlink_packet_route::address::AddressFlags::Nodad));
            }
        }
        self.ack(
            || format!("add address {addr} to link {index}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Adds a route to `dest` via `gateway` (default route when `dest` is `None`).
    pub fn add_route(
        &mut self,
        dest: Option<IpNet>,
        gateway: Option<IpAddr>,
        oif: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let v6 = match (dest, gateway) {
            (Some(d), _) => matches!(d, IpNet::V6(_)),
            (None, Some(g)) => g.is_ipv6(),
            (None, None) => false,
        };
        let mut msg = RouteMessage::default();
        msg.header = route_header(v6);
        if gateway.is_none() {
            msg.header.scope = RouteScope::Link;
        }
        if let Some(d) = dest {
            msg.header.destination_prefix_length = d.prefix_len();
            msg.attributes.push(RouteAttribute::Destination(route_addr(d.network())));
        }
        if let Some(g) = gateway {
            msg.attributes.push(RouteAttribute::Gateway(route_addr(g)));
        }
        if let Some(o) = oif {
            msg.attributes.push(RouteAttribute::Oif(o));
        }
        self.ack(
            || match (dest, gateway) {
                (Some(d), Some(g)) => format!("add route {d} via {g}"),
                (None, Some(g)) => format!("add default route via {g}"),
                (Some(d), None) => format!("add route {d}"),
                (None, None) => "add route".into(),
            },
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Destinations of every route in the main table (both families), for subnet overlap checks.
    /// Default routes are left out: they overlap everything and Docker ignores them too.
    pub fn route_destinations(&mut self) -> Result<Vec<IpNet>, NetlinkError> {
        let mut out = Vec::new();
        for v6 in [false, true] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
            let msgs = self.request(|| "dump routes".into(), RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
            for m in msgs {
                let RouteNetlinkMessage::NewRoute(r) = m else {
                    continue;
                };
                if r.header.table != RouteHeader::RT_TABLE_MAIN || r.header.destination_prefix_length == 0 {
                    continue;
                }
                let dst = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                    _ => None,
                });
                if let Some(d) = dst
                    && let Ok(net) = IpNet::new(d, r.header.destination_prefix_length)
                {
                    // Link-local and multicast routes are present on every v6 host.
                    if let IpNet::V6(n) = net
                        && (n.addr().segments()[0] & 0xffc0 == 0xfe80 || n.addr().segments()[0] >> 8 == 0xff)
                    {
                        continue;
                    }
                    out.push(net.trunc());
                }
            }
        }
        Ok(out)
    }

    /// Addresses of one link (for tests and inspection).
    pub fn addresses(&mut self, index: u32) -> Result<Vec<IpNet>, NetlinkError> {
        let msgs = self.request(
            || "dump addresses".into(),
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Address(ip) => IpNet::new(*ip, a.header.prefix_len).ok(),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }
}

fn named(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
    msg
}

// RouteHeader is non_exhaustive: it can only be built from Default and assigned.
#[allow(clippy::field_reassign_with_default)]
fn route_header(v6: bool) -> RouteHeader {
    let mut h = RouteHeader::default();
    h.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    h.table = RouteHeader::RT_TABLE_MAIN;
    h.protocol = RouteProtocol::Boot;
    h.scope = RouteScope::Universe;
    h.kind = RouteType::Unicast;
    h
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn link_from(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        master: None,
        mac: None,
        mtu: None,
        up: msg.header.flags.contains(LinkFlags::Up),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::Mtu(m) => link.mtu = Some(*m),
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(a);
                link.mac = Some(mac);
            }
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}
