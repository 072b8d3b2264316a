//! The client's durable state per server: the last 'mid' and 'sid' it used, so that they
//! keep increasing across restarts. 'mid' values "MUST increase monotonically" (4.4.1.1)
//! and so must 'sid' (4.5.2); a client that restarted at 1 would see its new requests
//! refused or, worse, overridden by its own older ones.
//!
//! A small JSON file (default `~/.local/state/mitigator/client-<host>_<port>.json`),
//! keyed by cuid (a different credential is a different client). Each allocation
//! is written and fsynced *before* the request is sent, under an flock on
//! `<file>.lock`, so concurrent CLI invocations never hand out the same value.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{ClientError, Result};

/// "If the 'mid' value has reached 3/4 of (2^(32) - 1) ... the DOTS client MUST reset
/// 'mid' to 0" (4.4.1.1).
pub const MID_ROLLOVER: u32 = 3_221_225_471;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientIds {
    #[serde(default)]
    pub last_mid: Option<u32>,
    #[serde(default)]
    pub last_sid: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateDoc {
    #[serde(default)]
    clients: BTreeMap<String, ClientIds>,
}

#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    /// `$XDG_STATE_HOME/mitigator/client-<server>.json`, else `~/.local/state/...`,
    /// else `/var/lib/mitigator/...` (root without HOME, e.g. under systemd).
    pub fn default_for(server: &str) -> Self {
        let safe: String =
            server.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("/var/lib"));
        StateFile::new(base.join("mitigator").join(format!("client-{safe}.json")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is stored for `cuid`.
    pub fn load(&self, cuid: &str) -> Result<ClientIds> {
        let _lock = self.lock()?;
        Ok(self.read()?.clients.remove(cuid).unwrap_or_default())
    }

    /// The next 'mid' for `cuid`, durably recorded before it is returned.
    pub fn next_mid(&self, cuid: &str) -> Result<u32> {
        self.update(cuid, |ids| {
            let next = match ids.last_mid {
                None => 1,
                Some(m) if m >= MID_ROLLOVER => 0,
                Some(m) => m + 1,
            };
            ids.last_mid = Some(next);
            next
        })
    }

    /// The next 'sid' for `cuid`, durably recorded before it is returned.
    pub fn next_sid(&self, cuid: &str) -> Result<u32> {
        self.update(cuid, |ids| {
            let next = ids.last_sid.map_or(1, |s| s.saturating_add(1));
            ids.last_sid = Some(next);
            next
        })
    }

    fn update(&self, cuid: &str, f: impl FnOnce(&mut ClientIds) -> u32) -> Result<u32> {
        let _lock = self.lock()?;
        let mut doc = self.read()?;
        let v = f(doc.clients.entry(cuid.to_string()).or_default());
        self.write(&doc)?;
        Ok(v)
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> ClientError {
        ClientError::State(format!("{what} {}: {e}", self.path.display()))
    }

    fn lock(&self) -> Result<File> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| self.err("creating the directory of", e))?;
        }
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.err("locking", e))?;
        // Released when the File is dropped.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(self.err("locking", std::io::Error::last_os_error()));
        }
        Ok(f)
    }

    fn read(&self) -> Result<StateDoc> {
        match fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| self.err("parsing", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateDoc::default()),
            Err(e) => Err(self.err("reading", e)),
        }
    }

    /// Write to a temporary file, fsync, rename: a crash leaves the old or the new file.
    fn write(&self, doc: &StateDoc) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(doc).expect("state serializes");
        let mut f = File::create(&tmp).map_err(|e| self.err("writing", e))?;
        f.write_all(&body).and_then(|_| f.sync_all()).map_err(|e| self.err("writing", e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.err("renaming", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mids_and_sids_increase_per_cuid_across_instances_and_roll_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/client.json");
        assert_eq!(StateFile::new(&path).next_mid("a").unwrap(), 1);
        assert_eq!(StateFile::new(&path).next_mid("a").unwrap(), 2);
        assert_eq!(StateFile::new(&path).next_mid("b").unwrap(), 1);
        assert_eq!(StateFile::new(&path).next_sid("a").unwrap(), 1);
        assert_eq!(StateFile::new(&path).load("a").unwrap(), ClientIds { last_mid: Some(2), last_sid: Some(1) });
        let s = StateFile::new(&path);
        s.update("a", |ids| {
            ids.last_mid = Some(MID_ROLLOVER);
            0
        })
        .unwrap();
        assert_eq!(s.next_mid("a").unwrap(), 0);
    }

    #[test]
    fn concurrent_allocations_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || {
                    (0..25).map(|_| StateFile::new(&p).next_mid("x").unwrap()).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u32> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort();
        assert_eq!(all, (1..=100).collect::<Vec<_>>());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        fs::write(&path, "{not json").unwrap();
        let e = StateFile::new(&path).next_mid("x").unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
    }
}
