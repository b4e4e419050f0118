pub mod files;
pub mod firewall;
pub mod ipam;
pub mod mac;
pub mod netlink;
pub mod netns;
pub mod ports;
pub mod proxy;
