//! The durable store: an embedded redb database holding every protection and
//! the accept/drop lists. The registry writes here, and waits for the commit,
//! before it changes the data plane or acknowledges anything, so that no
//! acknowledged state is lost across a crash or restart.

use std::path::Path;

use anyhow::Context;
use ipnet::IpNet;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;

use crate::registry::{ListKind, Protection};

/// Protection id → JSON of [`Protection`].
const PROTECTIONS: TableDefinition<u32, &[u8]> = TableDefinition::new("protections");
/// List name → JSON of `Vec<IpNet>`.
const LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("lists");

pub struct Store {
    db: Database,
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
        tx.commit()?;
        Ok(Store { db })
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
        let tx = self.db.begin_write()?;
        tx.open_table(PROTECTIONS)?.insert(p.id, bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove_protection(&self, id: u32) -> anyhow::Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(PROTECTIONS)?.remove(id)?;
        tx.commit()?;
        Ok(())
    }

    pub fn put_list(&self, kind: ListKind, entries: &[IpNet]) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(entries)?;
        let tx = self.db.begin_write()?;
        tx.open_table(LISTS)?.insert(kind.name(), bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).context("corrupt record in the state database")
}

