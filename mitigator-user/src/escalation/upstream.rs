//! Sessions with every upstream server, kept from the start: "DOTS sessions
//! MUST be established and MUST be maintained with each of the DOTS servers
//! because the mitigation scope of each of these servers is restricted"
//! (RFC 9284 5.1). Each server gets its domain's credential, source address
//! and interface. A server unreachable at start is retried with backoff;
//! once a session was up, the client's driver keeps it (heartbeats,
//! reconnection, RFC 9132 4.7).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::report::UpstreamReport;
use crate::client_dots::{ClientConfig, ClientError, DotsClient, Preferences, SessionState, StateFile};
use crate::config::{Config, UpstreamConfig};
use crate::transport::{ClientCredential, ClientSecurity, LocalBind};

struct Upstream {
    server: String,
    client: watch::Receiver<Option<Arc<DotsClient>>>,
    last_error: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

/// Every configured upstream, by name.
pub struct Upstreams {
    map: BTreeMap<String, Upstream>,
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        self.map.values().for_each(|u| u.task.abort());
    }
}

/// The client configuration of one upstream; errors name the upstream and
/// the field (unreadable credential files).
pub fn client_config(u: &UpstreamConfig, cfg: &Config) -> anyhow::Result<ClientConfig> {
    let name = u.name.get_ref();
    let read = |p: &Path, field: &str| {
        std::fs::read(p).with_context(|| format!("upstream \"{name}\": {field}: cannot read {}", p.display()))
    };
    let security = match (&u.psk_identity, &u.psk_key, &u.cert, &u.key) {
        (Some(id), Some(key), _, _) => ClientSecurity {
            credential: ClientCredential::Psk {
                identity: id.as_bytes().to_vec(),
                key: crate::signal::identity::decode_hex(key).map_err(|e| anyhow::anyhow!("upstream \"{name}\": psk_key: {e}"))?,
            },
            ca_pem: None,
        },
        (_, _, Some(cert), Some(key)) => ClientSecurity {
            credential: ClientCredential::Certificate { cert_pem: read(cert, "cert")?, key_pem: read(key, "key")? },
            ca_pem: Some(read(u.ca.as_deref().context("ca")?, "ca")?),
        },
        _ => anyhow::bail!("upstream \"{name}\": no credential"),
    };
    security.cuid().map_err(|e| anyhow::anyhow!("upstream \"{name}\": cert: {e}"))?;
    let e = &cfg.escalation;
    let mut c = ClientConfig::new(u.server.clone(), security);
    c.transport = u.transport;
    c.state = StateFile::new(cfg.daemon.state_dir.join(format!("upstream-{name}.json")));
    c.preferences = Preferences { heartbeat_interval: e.heartbeat_interval_s, ..Preferences::default() };
    c.handshake_timeout = Duration::from_secs(5);
    c.reconnect_min = Duration::from_millis(e.retry_min_ms);
    c.reconnect_max = Duration::from_millis(e.retry_max_ms);
    c.bind = LocalBind { source: u.source, interface: u.interface.clone() };
    Ok(c)
}

impl Upstreams {
    /// Checks every upstream's credentials and starts connecting to all.
    pub fn start(cfg: &Config) -> anyhow::Result<Upstreams> {
        let mut map = BTreeMap::new();
        for u in &cfg.upstream {
            let cc = client_config(u, cfg)?;
            let (tx, rx) = watch::channel(None);
            let last_error = Arc::new(Mutex::new(None));
            let name = u.name.get_ref().clone();
            let retry = (Duration::from_millis(cfg.escalation.retry_min_ms), Duration::from_millis(cfg.escalation.retry_max_ms));
            let task = tokio::spawn(keep_connected(name.clone(), cc, tx, last_error.clone(), retry));
            map.insert(name, Upstream { server: u.server.to_string(), client: rx, last_error, task });
        }
        Ok(Upstreams { map })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// The session with `name`, if one is up (else why not, as Unreachable).
    pub fn client(&self, name: &str) -> Result<Arc<DotsClient>, ClientError> {
        let u = self.map.get(name).ok_or_else(|| ClientError::Unreachable(format!("no upstream named {name}")))?;
        let client = u.client.borrow().clone();
        match client {
            Some(c) if matches!(c.state(), SessionState::Up { .. }) => Ok(c),
            Some(c) => Err(ClientError::Unreachable(format!("session with {name} is {}", state_name(&c.state())))),
            None => Err(ClientError::Unreachable(
                u.last_error.lock().unwrap().clone().unwrap_or_else(|| format!("no session with {name} yet")),
            )),
        }
    }

    pub fn report(&self) -> Vec<UpstreamReport> {
        self.map
            .iter()
            .map(|(name, u)| {
                let c = u.client.borrow().clone();
                UpstreamReport {
                    name: name.clone(),
                    server: u.server.clone(),
                    session: c.as_ref().map(|c| state_name(&c.state()).to_string()).unwrap_or_else(|| "connecting".into()),
                    cuid: c.as_ref().map(|c| c.cuid().to_string()),
                    last_error: u.last_error.lock().unwrap().clone(),
                }
            })
            .collect()
    }
}

fn state_name(s: &SessionState) -> &'static str {
    match s {
        SessionState::Connecting => "connecting",
        SessionState::Up { .. } => "up",
        SessionState::Lost { .. } => "lost",
        SessionState::Closed => "closed",
    }
}

/// Connects (retrying with doubling backoff), then watches the session; a
/// client that closed for good is replaced by a new one.
async fn keep_connected(
    name: String,
    cfg: ClientConfig,
    tx: watch::Sender<Option<Arc<DotsClient>>>,
    last_error: Arc<Mutex<Option<String>>>,
    (min, max): (Duration, Duration),
) {
    let mut backoff = min;
    loop {
        match DotsClient::connect(cfg.clone()).await {
            Ok(client) => {
                info!(upstream = %name, server = %cfg.server, cuid = client.cuid(), "upstream DOTS session up");
                *last_error.lock().unwrap() = None;
                backoff = min;
                let client = Arc::new(client);
                let mut states = client.state_changes();
                tx.send_replace(Some(client));
                while states.changed().await.is_ok() {
                    let st = states.borrow().clone();
                    match st {
                        SessionState::Lost { reason } => {
                            warn!(upstream = %name, %reason, "upstream session lost; the client reconnects");
                            *last_error.lock().unwrap() = Some(reason);
                        }
                        SessionState::Closed => break,
                        _ => {}
                    }
                }
                warn!(upstream = %name, "upstream session closed; connecting again");
            }
            Err(e) => {
                warn!(upstream = %name, server = %cfg.server, error = %e, retry_in = ?backoff, "cannot reach upstream DOTS server");
                *last_error.lock().unwrap() = Some(e.to_string());
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max);
    }
}
