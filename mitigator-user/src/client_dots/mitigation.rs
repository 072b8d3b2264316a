//! Mitigation requests as a client builds them (4.4.1.1, 4.4.3) and reads the answers
//! (4.4.1.3, 4.4.2).

use dots_proto::coap::{Code, Message};
use dots_proto::signal::{
    AttackStatus, ControlAcl, IpPrefix, Lifetime, MitigatePath, MitigationScope, PortRange, Scope, SignalBody, SignalPath, Target,
};

use super::error::{ClientError, Result};
use super::session::Request;

/// What to protect. At least one of prefixes, FQDNs, URIs or aliases (4.4.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationSpec {
    pub target: Target,
    /// "DOTS clients MUST include this parameter" (4.4.1.1); 3600 s is RECOMMENDED.
    pub lifetime: Lifetime,
    /// None means true (the default): mitigate now.
    pub trigger_mitigation: Option<bool>,
    /// RFC 9133 filtering control: new activation types for ACLs this
    /// client installed over the data channel. Only for a new 'mid' while
    /// another mitigation of the client is active.
    pub acl_list: Vec<ControlAcl>,
}

impl MitigationSpec {
    pub fn prefixes(prefixes: Vec<IpPrefix>) -> Self {
        MitigationSpec {
            target: Target { target_prefix: prefixes, ..Target::default() },
            lifetime: Lifetime::RECOMMENDED,
            trigger_mitigation: None,
            acl_list: Vec::new(),
        }
    }
    pub fn with_ports(mut self, ports: Vec<PortRange>) -> Self {
        self.target.target_port_range = ports;
        self
    }
    pub fn with_protocols(mut self, protocols: Vec<u8>) -> Self {
        self.target.target_protocol = protocols;
        self
    }
    pub fn with_lifetime(mut self, lifetime: Lifetime) -> Self {
        self.lifetime = lifetime;
        self
    }
    pub fn with_acls(mut self, acls: Vec<ControlAcl>) -> Self {
        self.acl_list = acls;
        self
    }
    /// The spec a refresh or efficacy update repeats: an 'acl-list' is for
    /// the first request of a 'mid' only (RFC 9133).
    pub fn without_acls(mut self) -> Self {
        self.acl_list.clear();
        self
    }

    fn check(&self) -> Result<()> {
        let t = &self.target;
        if t.target_prefix.is_empty() && t.target_fqdn.is_empty() && t.target_uri.is_empty() && t.alias_name.is_empty()
        {
            return Err(ClientError::Protocol("a mitigation request needs a target prefix, FQDN, URI or alias".into()));
        }
        if self.lifetime == Lifetime::Seconds(0) {
            return Err(ClientError::Protocol("a lifetime of 0 is invalid (4.4.1.1)".into()));
        }
        Ok(())
    }

    /// The body: one scope (never several, 4.4.1.1), no cuid/mid (they are in the URI).
    /// An efficacy update repeats everything but may change the lifetime (4.4.3).
    pub fn body(&self, attack_status: Option<AttackStatus>) -> Vec<u8> {
        let scope = Scope {
            target: self.target.clone(),
            lifetime: Some(self.lifetime),
            trigger_mitigation: self.trigger_mitigation,
            attack_status,
            acl_list: self.acl_list.clone(),
            ..Scope::default()
        };
        MitigationScope { scopes: vec![scope] }.to_cbor()
    }
}

pub fn path(cuid: &str, mid: Option<u32>) -> SignalPath {
    SignalPath::Mitigate(MitigatePath { cdid: None, cuid: cuid.to_string(), mid })
}

/// PUT /mitigate/cuid/mid: Non-confirmable (4.4).
pub fn put(cuid: &str, mid: u32, spec: &MitigationSpec, attack_status: Option<AttackStatus>) -> Result<Request> {
    spec.check()?;
    let mut r = Request::new(Code::PUT, path(cuid, Some(mid)));
    r.body = Some(spec.body(attack_status));
    r.confirmable = false;
    // Efficacy updates are conditional on the mitigation still existing (4.4.3).
    r.if_match_empty = attack_status.is_some();
    Ok(r)
}

pub fn delete(cuid: &str, mid: u32) -> Request {
    let mut r = Request::new(Code::DELETE, path(cuid, Some(mid)));
    r.confirmable = false;
    r
}

/// GET of one mitigation or all of this client's; `observe` registers (4.4.2.1).
pub fn get(cuid: &str, mid: Option<u32>, observe: bool) -> Request {
    let mut r = Request::new(Code::GET, path(cuid, mid));
    r.confirmable = false;
    r.observe = observe.then_some(0);
    r
}

/// 2.xx or [`ClientError::Refused`] with the code and the server's diagnostic.
pub fn expect_success(resp: &Message) -> Result<()> {
    if resp.code.is_success() {
        return Ok(());
    }
    Err(ClientError::Refused { code: resp.code, diagnostic: diagnostic(resp), max_age: resp.max_age() })
}

/// A diagnostic payload (RFC 7252 5.5.2: UTF-8 text) or, for a DOTS body (a 4.09's
/// conflict information, 4.4.1.3), its JSON rendering.
pub fn diagnostic(resp: &Message) -> String {
    if resp.payload.is_empty() {
        return String::new();
    }
    if let Ok(d) = MitigationScope::from_cbor(&resp.payload) {
        return d.value.to_json().to_string();
    }
    String::from_utf8_lossy(&resp.payload).into_owned()
}

/// The scopes of a 2.xx mitigation body (response or notification).
pub fn scopes(resp: &Message) -> Result<Vec<Scope>> {
    if resp.payload.is_empty() {
        return Ok(Vec::new());
    }
    MitigationScope::from_cbor(&resp.payload)
        .map(|d| d.value.scopes)
        .map_err(|e| ClientError::Protocol(format!("mitigation body from the server: {e}")))
}

/// The granted lifetime in a PUT response (4.4.1.3: "MUST always indicate the actual
/// lifetime in the response").
pub fn granted_lifetime(resp: &Message) -> Option<Lifetime> {
    scopes(resp).ok()?.first()?.lifetime
}
