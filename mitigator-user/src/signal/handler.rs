//! Executes a routed [`Op`] against the registry. The registry answers a
//! mitigation PUT only once it is durable and in the XDP maps (section
//! 4.4.1: 2.01 means the mitigation is in place).
//!
//! Targets: 'target-prefix' is used as is; 'target-fqdn' and the host of a
//! 'target-uri' are resolved with the system resolver (getaddrinfo, through
//! tokio) within `signal.resolve_timeout_ms`, each address becoming a host
//! route. A name that does not resolve in time is refused with 4.00 naming
//! it: mitigating "nothing" while answering 2.01 would mislead the client.
//! 'alias-name' is looked up among the client's own data-channel aliases
//! (RFC 9132 4.4.1.3: "If the aliases were not created by the DOTS client,
//! the DOTS server MUST return 4.00"); their prefixes, FQDNs and URIs are
//! resolved like the request's own, and their ports and protocols are
//! appended to the request's ("the DOTS server appends the parameter
//! values associated with the 'alias-name'", 4.4.1.3).

use std::net::IpAddr;
use std::time::Duration;

use dots_proto::coap::Code;
use dots_proto::signal::Target;
use ipnet::IpNet;
use tracing::debug;

use super::reply::{code_of, Reply};
use super::route::Op;
use super::session::Answer;
use crate::dots::ClientCtx;
use crate::registry::Registry;

#[derive(Clone)]
pub struct Handler {
    pub registry: Registry,
    pub resolve_timeout: Duration,
    /// Gateway mode (`[gateway]`): relays requests for upstream-managed prefixes.
    pub gateway: Option<std::sync::Arc<crate::gateway::Gateway>>,
}

impl Handler {
    pub async fn run(&self, client: &ClientCtx, op: Op) -> Answer {
        let cuid = client.cuid.as_str();
        let r = &self.registry;
        match op {
            Op::MitigatePut { mut req, if_match } => {
                let mut prefixes = match resolve_targets(&req.target, self.resolve_timeout).await {
                    Ok(p) => p,
                    Err(reply) => return Answer::Reply(reply),
                };
                match self.resolve_aliases(cuid, &mut req.target).await {
                    Ok(more) => prefixes.extend(more),
                    Err(reply) => return Answer::Reply(reply),
                }
                debug!(cuid, mid = req.mid, ?prefixes, "mitigation PUT");
                if let Some(gw) = &self.gateway {
                    let mut all: Vec<IpNet> = req.target.target_prefix.iter().map(crate::dots::scope::to_ipnet).collect();
                    all.extend(prefixes.iter().copied());
                    match gw.decide(&all) {
                        crate::gateway::Decision::Reject(why) => return Answer::Reply(Reply::error(Code::BAD_REQUEST, why)),
                        crate::gateway::Decision::Relay(chains) => {
                            if let Err(reply) = gw.relay_put(cuid, &req, chains).await {
                                return Answer::Reply(reply);
                            }
                        }
                        crate::gateway::Decision::Local => {}
                    }
                }
                Answer::Reply(match r.dots_put(client.clone(), req, prefixes, if_match).await {
                    Ok(put) => match (put.code, put.body) {
                        (Some(code), Some(body)) => Reply::cbor(code_of(code), &body),
                        (Some(code), None) => Reply::empty(code_of(code)),
                        // "silently ignored" (4.4.3): no response; a CON still gets its ACK.
                        (None, _) => Reply::empty(Code::EMPTY),
                    },
                    Err(refusal) => Reply::refusal(&refusal),
                })
            }
            Op::MitigateGet { mid, .. } => Answer::Mitigations(match r.dots_get(cuid, mid).await {
                Ok(mut m) => {
                    if let Some(gw) = &self.gateway {
                        gw.overlay(cuid, &mut m.scopes);
                    }
                    Ok(m)
                }
                Err(e) => Err(Reply::refusal(&e)),
            }),
            Op::MitigateDelete { mid } => Answer::Reply(match r.dots_delete(cuid, mid).await {
                Ok(_) => {
                    if let Some(gw) = &self.gateway {
                        gw.relay_delete(cuid, mid).await;
                    }
                    Reply::empty(Code::DELETED)
                }
                Err(e) => Reply::refusal(&e),
            }),
            Op::ConfigPut { sid, body } => Answer::Reply(match r.dots_config_put(cuid, sid, body).await {
                Ok((code, _)) => Reply::empty(code_of(code)),
                Err(e) => Reply::refusal(&e),
            }),
            Op::ConfigGet { sid } => Answer::Reply(match r.dots_config_get(cuid, sid).await {
                Ok(cfg) => Reply::cbor(Code::CONTENT, &cfg),
                Err(e) => Reply::refusal(&e),
            }),
            Op::ConfigDelete => Answer::Reply(match r.dots_config_delete(cuid).await {
                Ok(()) => Reply::empty(Code::DELETED),
                Err(e) => Reply::refusal(&e),
            }),
            // Answered by the session; never routed here.
            Op::Heartbeat { .. } => Answer::Reply(Reply::empty(Code::CHANGED)),
        }
    }
}

impl Handler {
    /// The prefixes of the request's aliases; their ports and protocols
    /// are appended to `target`'s.
    async fn resolve_aliases(&self, cuid: &str, target: &mut Target) -> Result<Vec<IpNet>, Reply> {
        if target.alias_name.is_empty() {
            return Ok(Vec::new());
        }
        let aliases = self.registry.resolve_aliases(cuid, target.alias_name.clone()).await.map_err(|name| {
            Reply::error(Code::BAD_REQUEST, format!("alias-name '{name}': this client created no such alias on the data channel (4.4.1.3)"))
        })?;
        let mut out = Vec::new();
        for a in &aliases {
            let t = Target {
                target_prefix: a.target_prefix.iter().filter_map(|p| dots_proto::signal::IpPrefix::new(p.addr, p.len)).collect(),
                target_fqdn: a.target_fqdn.clone(),
                target_uri: a.target_uri.clone(),
                ..Target::default()
            };
            out.extend(t.target_prefix.iter().map(crate::dots::scope::to_ipnet));
            out.extend(resolve_targets(&t, self.resolve_timeout).await?);
            for r in &a.target_port_range {
                let r = dots_proto::signal::PortRange { lower_port: r.lower_port, upper_port: r.upper_port };
                if !target.target_port_range.contains(&r) {
                    target.target_port_range.push(r);
                }
            }
            for p in &a.target_protocol {
                if !target.target_protocol.contains(p) {
                    target.target_protocol.push(*p);
                }
            }
        }
        debug!(cuid, aliases = ?target.alias_name, prefixes = ?out, "aliases resolved");
        Ok(out)
    }
}

/// Host routes for every 'target-fqdn' and 'target-uri' host.
pub async fn resolve_targets(t: &Target, timeout: Duration) -> Result<Vec<IpNet>, Reply> {
    let mut out = Vec::new();
    let names = t.target_fqdn.iter().map(|f| ("target-fqdn", f.clone()));
    let hosts = t.target_uri.iter().map(|u| ("target-uri", uri_host(u).unwrap_or_default()));
    for (field, name) in names.chain(hosts) {
        if name.is_empty() {
            return Err(Reply::error(Code::BAD_REQUEST, format!("{field}: no host to mitigate in it")));
        }
        out.extend(resolve(field, &name, timeout).await?.into_iter().map(IpNet::from));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

async fn resolve(field: &str, name: &str, timeout: Duration) -> Result<Vec<IpAddr>, Reply> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let refuse = |why: String| Reply::error(Code::BAD_REQUEST, format!("{field} '{name}' cannot be resolved: {why}"));
    let lookup = tokio::net::lookup_host((name.trim_end_matches('.'), 0));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Err(refuse(format!("no answer within {} ms", timeout.as_millis()))),
        Ok(Err(e)) => Err(refuse(e.to_string())),
        Ok(Ok(addrs)) => {
            let mut v: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            v.dedup();
            if v.is_empty() {
                return Err(refuse("no address".into()));
            }
            Ok(v)
        }
    }
}

/// The host of a URI: after "scheme://" and any userinfo, before the
/// port, path, query or fragment; brackets of an IPv6 literal removed.
pub fn uri_host(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_uris() {
        assert_eq!(uri_host("https://www.example.com/x").as_deref(), Some("www.example.com"));
        assert_eq!(uri_host("http://u:p@203.0.113.5:8080/?q").as_deref(), Some("203.0.113.5"));
        assert_eq!(uri_host("coap://[2001:db8::1]:5683/a").as_deref(), Some("2001:db8::1"));
        assert_eq!(uri_host("mailto:x"), None);
    }

    #[tokio::test]
    async fn literal_and_localhost_resolve_unknown_names_are_refused() {
        let t = Target { target_uri: vec!["https://203.0.113.5/".into()], target_fqdn: vec!["localhost".into()], ..Target::default() };
        let p = resolve_targets(&t, Duration::from_secs(2)).await.unwrap();
        assert!(p.contains(&"203.0.113.5/32".parse().unwrap()), "{p:?}");
        let t = Target { target_fqdn: vec!["no-such-host.invalid".into()], ..Target::default() };
        let e = resolve_targets(&t, Duration::from_secs(2)).await.unwrap_err();
        assert_eq!(e.code, Code::BAD_REQUEST);
        assert!(String::from_utf8(e.payload).unwrap().contains("no-such-host.invalid"));
    }
}
