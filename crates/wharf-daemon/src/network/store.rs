//! The network tables of the daemon's database: `networks` (one [`NetworkRecord`] per row),
//! `network_pools` (the IPAM's [`PoolRecord`]s, written through [`DbIpamStore`] before each IPAM
//! call returns) and `network_endpoints` (one [`EndpointRecord`] per running container and
//! network). Every change is one statement, so a crash leaves either the old or the new row.

use std::sync::Arc;

use ipnet::IpNet;
use wharf_network::ipam::StoreError;
use wharf_network::{IpamStore, PoolRecord};
use wharf_store::Db;
use wharf_types::{ContainerId, EngineError, NetworkId};

use super::model::{EndpointRecord, NetworkRecord};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS network_pools (
    network TEXT NOT NULL, subnet TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (network, subnet)) STRICT;
CREATE TABLE IF NOT EXISTS network_endpoints (
    network TEXT NOT NULL, container TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (network, container)) STRICT;
";

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::internal(e.to_string())
}

/// Typed access to the network tables.
#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
}

impl Store {
    pub fn open(db: Arc<Db>) -> Result<Self, EngineError> {
        db.conn().execute_batch(SCHEMA).map_err(internal)?;
        Ok(Self { db })
    }

    fn docs(&self, sql: &str) -> Result<Vec<String>, EngineError> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare(sql).map_err(internal)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(internal)?;
        Ok(rows.filter_map(Result::ok).collect())
    }

    pub fn networks(&self) -> Result<Vec<NetworkRecord>, EngineError> {
        Ok(self
            .docs("SELECT doc FROM networks")?
            .iter()
            .filter_map(|d| match serde_json::from_str(d) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::error!(error = %e, "skipping an unreadable network record");
                    None
                }
            })
            .collect())
    }

    pub fn put_network(&self, n: &NetworkRecord) -> Result<(), EngineError> {
        let doc = serde_json::to_string(n).map_err(internal)?;
        self.db
            .conn()
            .execute(
                "INSERT INTO networks (id, name, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc",
                (n.id().as_str(), n.name(), &doc),
            )
            .map_err(internal)?;
        Ok(())
    }

    pub fn delete_network(&self, id: &NetworkId) -> Result<(), EngineError> {
        self.db.conn().execute("DELETE FROM networks WHERE id = ?1", [id.as_str()]).map_err(internal)?;
        Ok(())
    }

    pub fn pools(&self) -> Result<Vec<PoolRecord>, EngineError> {
        Ok(self.docs("SELECT doc FROM network_pools")?.iter().filter_map(|d| serde_json::from_str(d).ok()).collect())
    }

    pub fn endpoints(&self) -> Result<Vec<EndpointRecord>, EngineError> {
        Ok(self
            .docs("SELECT doc FROM network_endpoints")?
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect())
    }

    pub fn put_endpoint(&self, e: &EndpointRecord) -> Result<(), EngineError> {
        let doc = serde_json::to_string(e).map_err(internal)?;
        self.db
            .conn()
            .execute(
                "INSERT INTO network_endpoints (network, container, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT(network, container) DO UPDATE SET doc = excluded.doc",
                (e.state.network.as_str(), e.state.container.as_str(), &doc),
            )
            .map_err(internal)?;
        Ok(())
    }

    pub fn delete_endpoint(&self, network: &NetworkId, container: &ContainerId) -> Result<(), EngineError> {
        self.db
            .conn()
            .execute(
                "DELETE FROM network_endpoints WHERE network = ?1 AND container = ?2",
                [network.as_str(), container.as_str()],
            )
            .map_err(internal)?;
        Ok(())
    }

    /// The IPAM's persistence, over the same database.
    pub fn ipam_store(&self) -> Arc<dyn IpamStore> {
        Arc::new(DbIpamStore { db: self.db.clone() })
    }
}

/// [`IpamStore`] over the `network_pools` table.
pub struct DbIpamStore {
    db: Arc<Db>,
}

impl IpamStore for DbIpamStore {
    fn save_pool(&self, pool: &PoolRecord) -> Result<(), StoreError> {
        let doc = serde_json::to_string(pool)?;
        self.db.conn().execute(
            "INSERT INTO network_pools (network, subnet, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT(network, subnet) DO UPDATE SET doc = excluded.doc",
            (pool.network.as_str(), pool.subnet.to_string(), &doc),
        )?;
        Ok(())
    }

    fn remove_pool(&self, network: &NetworkId, subnet: &IpNet) -> Result<(), StoreError> {
        self.db.conn().execute(
            "DELETE FROM network_pools WHERE network = ?1 AND subnet = ?2",
            (network.as_str(), subnet.to_string()),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_round_trip_through_the_ipam_store() {
        let db = Arc::new(Db::open_in_memory().unwrap());
        let store = Store::open(db).unwrap();
        let ipam = store.ipam_store();
        let net = NetworkId::random();
        let mut pool = PoolRecord {
            network: net.clone(),
            subnet: "10.9.0.0/24".parse().unwrap(),
            ip_range: None,
            gateway: Some("10.9.0.1".parse().unwrap()),
            user_subnet: true,
            allocated: Default::default(),
        };
        ipam.save_pool(&pool).unwrap();
        pool.allocated.insert("10.9.0.2".parse().unwrap());
        ipam.save_pool(&pool).unwrap();
        assert_eq!(store.pools().unwrap(), vec![pool.clone()]);
        ipam.remove_pool(&net, &pool.subnet).unwrap();
        ipam.remove_pool(&net, &pool.subnet).unwrap();
        assert!(store.pools().unwrap().is_empty());
    }
}
