//! The durable store: an embedded redb database holding every protection and
//! the accept/drop lists. The registry writes here, and waits for the commit,
//! before it changes the data plane or acknowledges anything, so that no
//! acknowledged state is lost across a crash or restart.
//!
//! Group commit (see `registry::batch`): while the registry defers a flip,
//! writes are committed with `Durability::None` (no fsync; redb persists
//! them with the next durable commit, and a crash before it leaves the last
//! durable state), and `sync` makes them all durable with one fsync before
//! the flip and before any of them is acknowledged.

use std::{cell::Cell, path::Path};

use anyhow::Context;
use ipnet::IpNet;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;

use crate::{
    dots::{ConfigTable, Mitigation},
    registry::{DcClient, ListKind, Protection},
};

/// Protection id → JSON of [`Protection`].
const PROTECTIONS: TableDefinition<u32, &[u8]> = TableDefinition::new("protections");
/// List name → JSON of `Vec<IpNet>`.
const LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("lists");
/// "cuid/mid" → JSON of a DOTS [`Mitigation`] (cuids are base64url: no '/').
const DOTS_MITIGATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("dots-mitigations");
/// Name → JSON blob (the DOTS session configurations, …).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DOTS_CONFIGS: &str = "dots-configs";
/// cuid → JSON of a data-channel [`DcClient`] (RFC 8783: registration,
/// aliases, ACLs, last contact).
const DC_CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("dc-clients");

pub struct Store {
    db: Database,
    /// Commit without fsync until the next `sync` (`set_lazy`).
    lazy: Cell<bool>,
    /// Some commit since the last durable one was not durable.
    unsynced: Cell<bool>,
}

impl Store {
    /// Opens (or creates) `dir/state.redb`.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create state directory {}", dir.display()))?;
        let path = dir.join("state.redb");
        let db = Database::create(&path)
            .with_context(|| format!("cannot open state database {} (is another daemon using it?)", path.display()))?;
        let tx = db.begin_write()?;
        tx.open_table(PROTECTIONS)?;
        tx.open_table(LISTS)?;
        tx.open_table(DOTS_MITIGATIONS)?;
        tx.open_table(META)?;
        tx.open_table(DC_CLIENTS)?;
        tx.commit()?;
        Ok(Store { db, lazy: Cell::new(false), unsynced: Cell::new(false) })
    }

    /// From now on, commit without fsync (`true`) until `sync`, or durably.
    pub fn set_lazy(&self, lazy: bool) {
        self.lazy.set(lazy);
    }

    /// Whether some write is not durable yet.
    pub fn unsynced(&self) -> bool {
        self.unsynced.get()
    }

    /// Makes every earlier write durable (one fsync), if one is not.
    pub fn sync(&self) -> anyhow::Result<()> {
        if self.unsynced.get() {
            // An empty durable commit persists the non-durable ones before it.
            self.db.begin_write()?.commit().context("syncing the state database")?;
            self.unsynced.set(false);
        }
        Ok(())
    }

    fn write(&self) -> anyhow::Result<WriteTransaction> {
        let mut tx = self.db.begin_write()?;
        if self.lazy.get() {
            tx.set_durability(Durability::None)?;
            self.unsynced.set(true);
        }
        Ok(tx)
    }

    pub fn protections(&self) -> anyhow::Result<Vec<Protection>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(PROTECTIONS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (id, bytes) = row?;
            out.push(decode(bytes.value()).with_context(|| format!("stored protection {}", id.value()))?);
        }
        Ok(out)
    }

    pub fn list(&self, kind: ListKind) -> anyhow::Result<Vec<IpNet>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(LISTS)?;
        match table.get(kind.name())? {
            Some(bytes) => decode(bytes.value()),
            None => Ok(Vec::new()),
        }
    }

    /// Durably inserts or replaces a protection.
    pub fn put_protection(&self, p: &Protection) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(p)?;
        let tx = self.write()?;
        tx.open_table(PROTECTIONS)?.insert(p.id, bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove_protection(&self, id: u32) -> anyhow::Result<()> {
        let tx = self.write()?;
        tx.open_table(PROTECTIONS)?.remove(id)?;
        tx.commit()?;
        Ok(())
    }

    pub fn put_list(&self, kind: ListKind, entries: &[IpNet]) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(entries)?;
        let tx = self.write()?;
        tx.open_table(LISTS)?.insert(kind.name(), bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    }
}

impl Store {
    pub fn dots_mitigations(&self) -> anyhow::Result<Vec<Mitigation>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DOTS_MITIGATIONS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (key, bytes) = row?;
            out.push(decode(bytes.value()).with_context(|| format!("stored DOTS mitigation {}", key.value()))?);
        }
        Ok(out)
    }

    pub fn put_dots_mitigation(&self, m: &Mitigation) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(m)?;
        let tx = self.write()?;
        tx.open_table(DOTS_MITIGATIONS)?.insert(dots_key(&m.cuid, m.mid).as_str(), bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove_dots_mitigation(&self, cuid: &str, mid: u32) -> anyhow::Result<()> {
        let tx = self.write()?;
        tx.open_table(DOTS_MITIGATIONS)?.remove(dots_key(cuid, mid).as_str())?;
        tx.commit()?;
        Ok(())
    }

    pub fn dots_configs(&self) -> anyhow::Result<ConfigTable> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(META)?;
        match table.get(DOTS_CONFIGS)? {
            Some(bytes) => decode(bytes.value()),
            None => Ok(ConfigTable::default()),
        }
    }

    pub fn put_dots_configs(&self, configs: &ConfigTable) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(configs)?;
        let tx = self.write()?;
        tx.open_table(META)?.insert(DOTS_CONFIGS, bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    }
}

impl Store {
    pub fn dc_clients(&self) -> anyhow::Result<Vec<DcClient>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DC_CLIENTS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (key, bytes) = row?;
            out.push(decode(bytes.value()).with_context(|| format!("stored data-channel client {}", key.value()))?);
        }
        Ok(out)
    }

    /// Durably inserts or replaces a data-channel client with everything it holds.
    pub fn put_dc_client(&self, c: &DcClient) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(c)?;
        let tx = self.write()?;
        tx.open_table(DC_CLIENTS)?.insert(c.cuid.as_str(), bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove_dc_client(&self, cuid: &str) -> anyhow::Result<()> {
        let tx = self.write()?;
        tx.open_table(DC_CLIENTS)?.remove(cuid)?;
        tx.commit()?;
        Ok(())
    }
}

fn dots_key(cuid: &str, mid: u32) -> String {
    format!("{cuid}/{mid}")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).context("corrupt record in the state database")
}

