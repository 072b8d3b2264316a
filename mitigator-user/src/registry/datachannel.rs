//! The registry's data-channel side (RFC 8783 draft 29): registered DOTS
//! clients with their aliases (§6) and filtering rules (§7), held by the
//! owner thread next to the protections, durable in the store, compiled
//! into `RuleSet::acl` on every apply.
//!
//! A request is answered only after the new state is stored and, for
//! ACLs, in the maps; a failure at either step restores the previous state
//! (stored and enforced), so nothing changes.
//!
//! Lifetimes: "A DOTS server MUST maintain an alias [a filtering rule] for
//! at least 10080 minutes (1 week)" (§§6.1, 7.2), and may track the
//! client's inactivity (§3.5). Here every request of the client on either
//! channel refreshes all its entries; `pending-lifetime` is what is left
//! of `data_channel.lifetime_minutes` since then, and a client silent for
//! that long is removed with everything it installed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dots_proto::data::{
    restconf::ErrorTag, Ace, Acl, Acls, Alias, Aliases, DotsClient, RestconfError, Statistics,
};
use dots_proto::data::yang::U64;
use ipnet::IpNet;
use mitigator_common::Counter;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{now_unix, Owner_};
use crate::{
    compiler::acl::{self as acl_compiler, AceRefusal, ClientAcls, Scope},
    dataplane::AclEntry,
    dots::ClientCtx,
};

/// A registered client as held and stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcClient {
    pub cuid: String,
    /// The client domain (`[[signal.clients]]` name) and its prefixes.
    pub domain: String,
    pub allowed: Vec<IpNet>,
    pub cdid: Option<String>,
    /// Registration order: the order of clients in the compiled ACL.
    pub seq: u64,
    pub last_seen_unix: u64,
    pub aliases: Vec<Alias>,
    pub acls: Vec<Acl>,
}

/// The data-channel state of the owner.
#[derive(Default)]
pub struct DcState {
    pub clients: BTreeMap<String, DcClient>,
    /// Counters of entries while out of the maps (deactivated, or their
    /// ACL waiting for a mitigation), so statistics never go backwards: an
    /// entry's slot is zeroed when it comes back (dataplane/acl.rs).
    stats_base: HashMap<u64, Counter>,
    /// The stat ids in the maps now.
    active: BTreeSet<u64>,
    /// Minutes an entry is kept after the client was last seen.
    pub lifetime_minutes: u32,
}

/// RFC 8040 §4.8.1 `content`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    Config,
    NonConfig,
    All,
}

/// A data-channel operation of one authenticated client on its own data.
#[derive(Debug)]
pub enum DcOp {
    /// POST (create, 409 if registered) or PUT (create or replace) of the
    /// `dots-client` entry (§5.1).
    Register { body: DotsClient, put: bool },
    /// DELETE `dots-client=cuid` (§5.2): everything of the client goes.
    Unregister,
    /// GET of the client's whole entry.
    GetClient { content: Content },
    /// POST of aliases: 409 if any name exists (§6.1).
    CreateAliases(Aliases),
    /// PUT of one alias (`name`) or of the whole list (§6.1).
    PutAliases { name: Option<String>, aliases: Aliases },
    GetAliases { name: Option<String>, content: Content },
    DeleteAliases { name: Option<String> },
    CreateAcls(Acls),
    PutAcls { name: Option<String>, acls: Acls },
    /// GET of all ACLs, one, or one ACE of one (its statistics).
    GetAcls { name: Option<String>, ace: Option<String>, content: Content },
    DeleteAcls { name: Option<String> },
}

/// What a successful operation answers (the HTTP layer picks the status).
#[derive(Debug)]
pub enum DcReply {
    Created,
    Changed,
    Deleted,
    Body(Value),
}

type DcResult = Result<DcReply, RestconfError>;

const NS: &str = "ietf-dots-data-channel";

pub(super) fn restore(store: &crate::store::Store, cfg: &crate::config::Config) -> anyhow::Result<DcState> {
    let mut clients = BTreeMap::new();
    for mut c in store.dc_clients()? {
        // The configured domain wins over what was stored (it may have changed).
        if let Some(d) = cfg.signal.clients.iter().find(|d| d.name == c.domain) {
            c.allowed = d.prefixes.clone();
        }
        clients.insert(c.cuid.clone(), c);
    }
    Ok(DcState { clients, lifetime_minutes: cfg.data_channel.lifetime_minutes, ..DcState::default() })
}

fn not_registered(cuid: &str) -> RestconfError {
    RestconfError::new(404, ErrorTag::InvalidValue, format!("dots-client={cuid} is not registered: POST a dots-client first (section 5.1)"))
}

impl Owner_ {
    /// Runs one client operation: touch, change, store, enforce, answer.
    pub(super) fn dc_op(&mut self, client: &ClientCtx, op: DcOp) -> DcResult {
        self.dc_touch(&client.cuid);
        match op {
            DcOp::Register { body, put } => self.dc_register(client, body, put),
            DcOp::Unregister => {
                let old = self.dc.clients.get(&client.cuid).cloned().ok_or_else(|| not_registered(&client.cuid))?;
                self.dc_commit(&client.cuid, Some(old), None)?;
                info!(cuid = %client.cuid, "DOTS data channel client unregistered");
                Ok(DcReply::Deleted)
            }
            DcOp::GetClient { content } => {
                let c = self.dc_client(&client.cuid)?;
                Ok(DcReply::Body(json!({ format!("{NS}:dots-client"): [self.render_client(&c, content)] })))
            }
            DcOp::GetAliases { name, content } => self.dc_get_aliases(&client.cuid, name, content),
            DcOp::GetAcls { name, ace, content } => self.dc_get_acls(&client.cuid, name, ace, content),
            op => self.dc_change(&client.cuid, op),
        }
    }

    fn dc_client(&self, cuid: &str) -> Result<DcClient, RestconfError> {
        self.dc.clients.get(cuid).cloned().ok_or_else(|| not_registered(cuid))
    }

    fn dc_register(&mut self, client: &ClientCtx, body: DotsClient, put: bool) -> DcResult {
        let old = self.dc.clients.get(&client.cuid).cloned();
        if old.is_some() && !put {
            return Err(RestconfError::conflict(format!("dots-client={} is already registered (section 5.1)", client.cuid)));
        }
        let seq = old.as_ref().map(|c| c.seq).unwrap_or_else(|| self.dc.clients.values().map(|c| c.seq + 1).max().unwrap_or(0));
        // PUT replaces the whole entry (RFC 8040 §4.5): nested lists absent = empty.
        let new = DcClient {
            cuid: client.cuid.clone(),
            domain: client.domain.clone(),
            allowed: client.allowed.clone(),
            cdid: body.cdid,
            seq,
            last_seen_unix: now_unix(),
            aliases: body.aliases.map(|a| a.alias).unwrap_or_default(),
            acls: body.acls.map(|a| a.acl).unwrap_or_default(),
        };
        let created = old.is_none();
        self.dc_commit(&client.cuid, old, Some(new))?;
        info!(cuid = %client.cuid, domain = %client.domain, created, "DOTS data channel client registered");
        Ok(if created { DcReply::Created } else { DcReply::Changed })
    }

    /// Alias and ACL changes: computes the new entry, then commits it.
    fn dc_change(&mut self, cuid: &str, op: DcOp) -> DcResult {
        let old = self.dc_client(cuid)?;
        let mut new = old.clone();
        let reply = match op {
            DcOp::CreateAliases(a) => {
                create(&mut new.aliases, a.alias, |x| &x.name, "alias")?;
                DcReply::Created
            }
            DcOp::PutAliases { name, aliases } => put(&mut new.aliases, name, aliases.alias, |x| &x.name, "alias")?,
            DcOp::DeleteAliases { name } => delete(&mut new.aliases, name, |x| &x.name, "alias")?,
            DcOp::CreateAcls(a) => {
                create(&mut new.acls, a.acl, |x| &x.name, "acl")?;
                DcReply::Created
            }
            DcOp::PutAcls { name, acls } => put(&mut new.acls, name, acls.acl, |x| &x.name, "acl")?,
            DcOp::DeleteAcls { name } => delete(&mut new.acls, name, |x| &x.name, "acl")?,
            _ => unreachable!("reads are answered by dc_op"),
        };
        self.dc_commit(cuid, Some(old), Some(new))?;
        Ok(reply)
    }

    /// Checks, stores and enforces `new` in place of `old`; on any failure
    /// puts `old` back (stored and enforced) and refuses.
    pub(super) fn dc_commit(&mut self, cuid: &str, old: Option<DcClient>, new: Option<DcClient>) -> Result<(), RestconfError> {
        let set = |me: &mut Self, c: &Option<DcClient>| match c {
            Some(c) => me.dc.clients.insert(cuid.to_string(), c.clone()),
            None => me.dc.clients.remove(cuid),
        };
        set(self, &new);
        if let Err(r) = self.dc_check() {
            set(self, &old);
            return Err(ace_refusal(&r));
        }
        let stored = match &new {
            Some(c) => self.store.put_dc_client(c),
            None => self.store.remove_dc_client(cuid),
        };
        let applied = stored.and_then(|_| self.apply_with(true));
        if let Err(e) = applied {
            set(self, &old);
            let restore = match &old {
                Some(c) => self.store.put_dc_client(c),
                None => self.store.remove_dc_client(cuid),
            };
            if let Err(e2) = restore.and_then(|_| self.apply()) {
                warn!(error = %format!("{e2:#}"), "cannot restore the data-channel state after a failure");
            }
            warn!(cuid, error = %format!("{e:#}"), "data-channel change failed");
            return Err(RestconfError::new(500, ErrorTag::OperationFailed, format!("internal error: {e:#}; nothing was changed")));
        }
        self.dc_prune_stats();
        Ok(())
    }

    /// Every client's ACLs must be expressible, active or not (they may
    /// come into force at any mitigation).
    fn dc_check(&self) -> Result<(), AceRefusal> {
        let clients = self.dc_clients_ordered();
        let inputs: Vec<ClientAcls> = clients.iter().map(|c| self.client_acls(c, Scope::All)).collect();
        acl_compiler::check(&inputs)
    }

    fn dc_clients_ordered(&self) -> Vec<&DcClient> {
        let mut v: Vec<&DcClient> = self.dc.clients.values().collect();
        v.sort_by_key(|c| (c.seq, c.cuid.clone()));
        v
    }

    fn client_acls<'a>(&self, c: &'a DcClient, _scope: Scope) -> ClientAcls<'a> {
        ClientAcls { cuid: &c.cuid, domain: &c.allowed, acls: &c.acls, mitigating: self.dots.mitigations.is_mitigating(&c.cuid) }
    }

    /// The entries in force now, for `apply`.
    pub(super) fn dc_entries(&self) -> anyhow::Result<Vec<AclEntry>> {
        let clients = self.dc_clients_ordered();
        let inputs: Vec<ClientAcls> = clients.iter().map(|c| self.client_acls(c, Scope::InForce)).collect();
        acl_compiler::compile(&inputs, Scope::InForce).map(|(e, _)| e).map_err(|r| anyhow::anyhow!("{r}"))
    }

    /// Before an apply: entries about to leave the maps keep their counts
    /// in `stats_base`. Returned, to be committed once the apply succeeded.
    pub(super) fn dc_leaving(&mut self, next: &[AclEntry]) -> (HashMap<u64, Counter>, BTreeSet<u64>) {
        let next_ids: BTreeSet<u64> = next.iter().map(|e| e.stat_id).collect();
        let mut base = self.dc.stats_base.clone();
        let leaving: Vec<u64> = self.dc.active.difference(&next_ids).copied().collect();
        for id in leaving {
            if let Ok(c) = self.dp().acl_stats_by_id(id) {
                let b = base.entry(id).or_default();
                b.packets += c.packets;
                b.bytes += c.bytes;
            }
        }
        (base, next_ids)
    }

    pub(super) fn dc_applied(&mut self, base: HashMap<u64, Counter>, active: BTreeSet<u64>) {
        self.dc.stats_base = base;
        self.dc.active = active;
    }

    /// Forgets the counters of ACEs that no longer exist.
    fn dc_prune_stats(&mut self) {
        let clients = self.dc_clients_ordered();
        let inputs: Vec<ClientAcls> = clients.iter().map(|c| self.client_acls(c, Scope::All)).collect();
        let ids: BTreeSet<u64> = acl_compiler::compile(&inputs, Scope::All)
            .map(|(e, _)| e.iter().map(|e| e.stat_id).collect())
            .unwrap_or_default();
        self.dc.stats_base.retain(|id, _| ids.contains(id));
    }

    /// matched-packets/octets of one ACE: the sum over its entries (one
    /// per domain prefix when it names no destination), live plus base.
    fn ace_stats(&self, c: &DcClient, acl: &Acl, ace: &Ace) -> Statistics {
        let n = c.allowed.len().max(1);
        let mut total = Counter::default();
        for i in 0..n {
            let id = acl_compiler::stat_id(&c.cuid, &acl.name, &ace.name, i);
            if let Some(b) = self.dc.stats_base.get(&id) {
                total.packets += b.packets;
                total.bytes += b.bytes;
            }
            if self.dc.active.contains(&id) {
                if let Some(dp) = self.dataplane.as_ref() {
                    if let Ok(l) = dp.acl_stats_by_id(id) {
                        total.packets += l.packets;
                        total.bytes += l.bytes;
                    }
                }
            }
        }
        Statistics { matched_packets: Some(U64(total.packets)), matched_octets: Some(U64(total.bytes)) }
    }

    /// Minutes left before the client's entries expire.
    fn pending_minutes(&self, c: &DcClient) -> i32 {
        pending_minutes(c, self.dc.lifetime_minutes, now_unix())
    }

    fn render_alias(&self, c: &DcClient, a: &Alias, content: Content) -> Value {
        let pending = self.pending_minutes(c);
        let v = match content {
            Content::Config => serde_json::to_value(a),
            Content::All => serde_json::to_value(Alias { pending_lifetime: Some(pending), ..a.clone() }),
            Content::NonConfig => Ok(json!({ "name": a.name, "pending-lifetime": pending })),
        };
        v.unwrap_or(Value::Null)
    }

    fn render_acl(&self, c: &DcClient, acl: &Acl, content: Content, only_ace: Option<&str>) -> Value {
        let aces = acl.ace_list().iter().filter(|e| only_ace.is_none_or(|n| e.name == n));
        let rendered: Vec<Value> = aces
            .map(|e| match content {
                Content::Config => serde_json::to_value(e).unwrap_or(Value::Null),
                Content::All => serde_json::to_value(Ace { statistics: Some(self.ace_stats(c, acl, e)), ..e.clone() }).unwrap_or(Value::Null),
                Content::NonConfig => json!({ "name": e.name, "statistics": self.ace_stats(c, acl, e) }),
            })
            .collect();
        let mut v = match content {
            Content::NonConfig => json!({ "name": acl.name, "pending-lifetime": self.pending_minutes(c) }),
            Content::Config => serde_json::to_value(Acl { aces: None, ..acl.clone() }).unwrap_or(Value::Null),
            Content::All => serde_json::to_value(Acl { aces: None, pending_lifetime: Some(self.pending_minutes(c)), ..acl.clone() }).unwrap_or(Value::Null),
        };
        v["aces"] = json!({ "ace": rendered });
        v
    }

    fn render_client(&self, c: &DcClient, content: Content) -> Value {
        let mut v = json!({ "cuid": c.cuid });
        if let (Some(cdid), true) = (&c.cdid, content != Content::NonConfig) {
            v["cdid"] = json!(cdid);
        }
        v["aliases"] = json!({ "alias": c.aliases.iter().map(|a| self.render_alias(c, a, content)).collect::<Vec<_>>() });
        v["acls"] = json!({ "acl": c.acls.iter().map(|a| self.render_acl(c, a, content, None)).collect::<Vec<_>>() });
        v
    }

    fn dc_get_aliases(&self, cuid: &str, name: Option<String>, content: Content) -> DcResult {
        let c = self.dc_client(cuid)?;
        let list: Vec<&Alias> = c.aliases.iter().filter(|a| name.as_ref().is_none_or(|n| &a.name == n)).collect();
        if let (Some(n), true) = (&name, list.is_empty()) {
            return Err(RestconfError::not_found("alias", n));
        }
        let alias: Vec<Value> = list.iter().map(|a| self.render_alias(&c, a, content)).collect();
        Ok(DcReply::Body(match name {
            // A list entry is returned as a one-element list (RFC 8040 §3.5.3 / RFC 7951).
            Some(_) => json!({ format!("{NS}:alias"): alias }),
            None => json!({ format!("{NS}:aliases"): { "alias": alias } }),
        }))
    }

    fn dc_get_acls(&self, cuid: &str, name: Option<String>, ace: Option<String>, content: Content) -> DcResult {
        let c = self.dc_client(cuid)?;
        let list: Vec<&Acl> = c.acls.iter().filter(|a| name.as_ref().is_none_or(|n| &a.name == n)).collect();
        if let (Some(n), true) = (&name, list.is_empty()) {
            return Err(RestconfError::not_found("acl", n));
        }
        if let Some(e) = &ace {
            let acl = list[0];
            if !acl.ace_list().iter().any(|x| &x.name == e) {
                return Err(RestconfError::not_found("ace", e));
            }
            let v = self.render_acl(&c, acl, content, Some(e));
            return Ok(DcReply::Body(json!({ format!("{NS}:ace"): v["aces"]["ace"] })));
        }
        let acl: Vec<Value> = list.iter().map(|a| self.render_acl(&c, a, content, None)).collect();
        Ok(DcReply::Body(match name {
            Some(_) => json!({ format!("{NS}:acl"): acl }),
            None => json!({ format!("{NS}:acls"): { "acl": acl } }),
        }))
    }

    /// Any request of the client on either channel (§3.5).
    pub(super) fn dc_touch(&mut self, cuid: &str) {
        let Some(c) = self.dc.clients.get_mut(cuid) else { return };
        let now = now_unix();
        // Stored at most once a minute: pending-lifetime counts minutes.
        if now >= c.last_seen_unix + 60 {
            c.last_seen_unix = now;
            if let Err(e) = self.store.put_dc_client(c) {
                warn!(cuid, error = %e, "cannot store the data-channel client's last contact");
            }
        } else {
            c.last_seen_unix = now;
        }
    }

    /// Removes clients silent for longer than the lifetime (§§3.5, 6.1, 7.2).
    pub(super) fn dc_expire(&mut self) {
        let now = now_unix();
        let life = self.dc.lifetime_minutes;
        let stale: Vec<DcClient> = self.dc.clients.values().filter(|c| expired(c, life, now)).cloned().collect();
        for c in stale {
            match self.dc_commit(&c.cuid.clone(), Some(c.clone()), None) {
                Ok(()) => info!(cuid = %c.cuid, aliases = c.aliases.len(), acls = c.acls.len(), "DOTS data channel client expired: not seen for data_channel.lifetime_minutes"),
                Err(e) => warn!(cuid = %c.cuid, error = %e, "cannot expire a data-channel client; will retry"),
            }
        }
    }

    /// The aliases `names` of `cuid` (RFC 9132 §4.4.1.3: aliases "not
    /// created by the DOTS client" → 4.00): Err names the first unknown.
    pub(super) fn dc_resolve_aliases(&mut self, cuid: &str, names: &[String]) -> Result<Vec<Alias>, String> {
        let c = self.dc.clients.get(cuid).ok_or_else(|| names.first().cloned().unwrap_or_default())?;
        names.iter().map(|n| c.aliases.iter().find(|a| &a.name == n).cloned().ok_or_else(|| n.clone())).collect()
    }
}

/// Whether the client was last seen `lifetime` minutes ago or more.
fn expired(c: &DcClient, lifetime: u32, now: u64) -> bool {
    c.last_seen_unix + u64::from(lifetime) * 60 <= now
}

/// `pending-lifetime`: whole minutes left, rounded up (a just-refreshed
/// entry shows the full lifetime).
fn pending_minutes(c: &DcClient, lifetime: u32, now: u64) -> i32 {
    let end = c.last_seen_unix + u64::from(lifetime) * 60;
    (end.saturating_sub(now).div_ceil(60)).min(i32::MAX as u64) as i32
}

/// 400 naming the ACE and field the data plane cannot express.
fn ace_refusal(r: &AceRefusal) -> RestconfError {
    RestconfError::new(400, ErrorTag::InvalidValue, format!("{r}; nothing was changed"))
        .with_path(format!("{NS}:acls/acl={}/aces/ace={}/{}", r.acl, r.ace, r.field))
}

/// POST: adds `items`, refusing a name that exists (409, §§6.1, 7.2).
fn create<T>(list: &mut Vec<T>, items: Vec<T>, name: impl Fn(&T) -> &String, what: &str) -> Result<(), RestconfError> {
    for item in items {
        if list.iter().any(|x| name(x) == name(&item)) {
            return Err(RestconfError::conflict(format!("{what} {:?} already exists; PUT replaces it", name(&item))));
        }
        list.push(item);
    }
    Ok(())
}

/// PUT of one entry (`target` = its key, which the body must carry, RFC
/// 8040 §4.5) or of the whole list.
fn put<T>(list: &mut Vec<T>, target: Option<String>, items: Vec<T>, name: impl Fn(&T) -> &String, what: &str) -> DcResult {
    let Some(target) = target else {
        let created = list.is_empty();
        *list = items;
        return Ok(if created { DcReply::Created } else { DcReply::Changed });
    };
    let [item] = <[T; 1]>::try_from(items).map_err(|v| {
        RestconfError::new(400, ErrorTag::InvalidValue, format!("PUT of {what}={target} carries {} {what} entries; exactly one is expected", v.len()))
    })?;
    if name(&item) != &target {
        return Err(RestconfError::new(400, ErrorTag::InvalidValue, format!("{what} name {:?} in the body differs from {what}={target} in the URI", name(&item))));
    }
    match list.iter().position(|x| name(x) == &target) {
        Some(i) => {
            list[i] = item;
            Ok(DcReply::Changed)
        }
        None => {
            list.push(item);
            Ok(DcReply::Created)
        }
    }
}

/// DELETE of one entry (404 if absent, §§6.3, 7.4) or of the whole list.
fn delete<T>(list: &mut Vec<T>, target: Option<String>, name: impl Fn(&T) -> &String, what: &str) -> DcResult {
    match target {
        None => list.clear(),
        Some(t) => {
            let i = list.iter().position(|x| name(x) == &t).ok_or_else(|| RestconfError::not_found(what, &t))?;
            list.remove(i);
        }
    }
    Ok(DcReply::Deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last_seen_unix: u64) -> DcClient {
        DcClient {
            cuid: "c".into(),
            domain: "d".into(),
            allowed: vec![],
            cdid: None,
            seq: 0,
            last_seen_unix,
            aliases: vec![],
            acls: vec![],
        }
    }

    #[test]
    fn entries_live_a_week_after_the_last_contact() {
        let c = client(1_000_000);
        assert_eq!(pending_minutes(&c, 10_080, 1_000_000), 10_080);
        assert_eq!(pending_minutes(&c, 10_080, 1_000_000 + 61), 10_079);
        assert!(!expired(&c, 10_080, 1_000_000 + 10_080 * 60 - 1));
        assert!(expired(&c, 10_080, 1_000_000 + 10_080 * 60));
        assert_eq!(pending_minutes(&c, 10_080, 2_000_000), 0);
    }

    fn alias(name: &str, proto: u8) -> Alias {
        Alias { name: name.into(), target_protocol: vec![proto], ..Alias::default() }
    }

    #[test]
    fn create_put_delete_follow_restconf() {
        fn name(x: &Alias) -> &String {
            &x.name
        }
        let mut list = vec![alias("a", 6)];
        assert_eq!(create(&mut list, vec![alias("a", 17)], name, "alias").unwrap_err().status, 409);
        assert!(matches!(put(&mut list, Some("a".into()), vec![alias("a", 17)], name, "alias"), Ok(DcReply::Changed)));
        assert_eq!(list[0].target_protocol, vec![17]);
        assert!(matches!(put(&mut list, Some("b".into()), vec![alias("b", 1)], name, "alias"), Ok(DcReply::Created)));
        assert_eq!(put(&mut list, Some("c".into()), vec![alias("d", 1)], name, "alias").unwrap_err().status, 400);
        assert_eq!(put(&mut list, Some("c".into()), vec![], name, "alias").unwrap_err().status, 400);
        assert_eq!(delete(&mut list, Some("zz".into()), name, "alias").unwrap_err().status, 404);
        assert!(matches!(delete(&mut list, Some("a".into()), name, "alias"), Ok(DcReply::Deleted)));
        assert_eq!(list.len(), 1);
        assert!(matches!(put(&mut list, None, vec![], name, "alias"), Ok(DcReply::Changed)));
        assert!(list.is_empty());
    }
}
