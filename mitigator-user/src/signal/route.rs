//! From a complete CoAP request to what it asks of the server (an [`Op`]),
//! or to the answer when it can be refused without asking anyone. Pure:
//! the session calls it, the handler executes the op.
//!
//! Order of the checks, first failure answers:
//! 1. the client is authorized (4.01, section 8);
//! 2. the path names a DOTS resource (4.04) with valid parameters (4.00);
//! 3. redirection, when configured (5.03 + 'redirected-signal', 4.6);
//! 4. the method exists on the resource (4.05, section 9);
//! 5. the body is `application/dots+cbor` (4.15: "when the Content-Format
//!    is used but the request is not formatted as application/dots+cbor",
//!    section 9; a body without Content-Format is decoded as dots+cbor,
//!    since that is the only format of these resources, and a body that is
//!    not CBOR is then 4.00);
//! 6. the 'cuid' of the path is the one bound to the credential (4.00:
//!    "a request that violates the DOTS protocol"; the state machine uses
//!    the same code). A client thus only ever reaches its own requests.
//! 7. the body decodes (Table 5, comprehension-required keys) and validates
//!    (sections 4.4.1, 4.5.2): 4.00 / 4.22.

use dots_proto::coap::{Code, Message};
use dots_proto::signal::{
    validate_mitigation_delete, validate_mitigation_put, Content, MitigatePath, MitigationPolicy, MitigationRequest,
    MitigationScope, RedirectedSignal, SignalBody, SignalConfig, SignalPath, CONTENT_FORMAT_DOTS_CBOR,
};
use dots_proto::signal::Heartbeat;

use super::reply::Reply;
use crate::dots::ClientCtx;

/// What a request asks the registry (or the session) to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    MitigatePut { req: MitigationRequest, if_match: bool },
    MitigateGet { mid: Option<u32>, content: Content },
    MitigateDelete { mid: u32 },
    ConfigPut { sid: Option<u32>, body: SignalConfig },
    ConfigGet { sid: Option<u32> },
    ConfigDelete,
    /// A client heartbeat (4.7): answered 2.04 by the session itself.
    Heartbeat { peer_hb_status: bool },
}

/// What the server's policy contributes to routing.
#[derive(Debug, Clone, Default)]
pub struct RoutePolicy {
    pub mitigation: MitigationPolicy,
    /// (body, Max-Age seconds) of the 5.03 redirection, when configured.
    pub redirect: Option<(RedirectedSignal, u32)>,
}

/// Observe option of a GET: register (0) or deregister (1), RFC 7641 §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserveReq {
    Register,
    Deregister,
}

pub fn observe_of(msg: &Message) -> Option<ObserveReq> {
    match msg.observe() {
        Some(0) => Some(ObserveReq::Register),
        Some(1) => Some(ObserveReq::Deregister),
        _ => None,
    }
}

/// Routes a request whose body (`body`, after Block1) is complete.
pub fn route(msg: &Message, body: &[u8], client: Option<&ClientCtx>, policy: &RoutePolicy) -> Result<Op, Reply> {
    let Some(client) = client else {
        return Err(Reply::error(
            Code::UNAUTHORIZED,
            "this credential is not in any DOTS client domain of this server (signal.clients)",
        ));
    };
    let segments = msg.uri_path().ok_or_else(|| Reply::error(Code::BAD_REQUEST, "Uri-Path is not UTF-8"))?;
    let path = SignalPath::parse(&segments).map_err(Reply::from)?;
    if let Some((body, ttl)) = &policy.redirect {
        let mut r = Reply::cbor(Code::SERVICE_UNAVAILABLE, body);
        r.max_age = Some(*ttl);
        return Err(r);
    }
    let method = msg.code;
    match path {
        SignalPath::Mitigate(p) => {
            allowed(method, &[Code::PUT, Code::GET, Code::DELETE], "mitigate")?;
            own_cuid(&p, client)?;
            mitigate(msg, body, p, policy)
        }
        SignalPath::Config { sid } => {
            allowed(method, &[Code::PUT, Code::GET, Code::DELETE], "config")?;
            config(msg, body, sid)
        }
        SignalPath::Heartbeat => {
            allowed(method, &[Code::PUT], "hb")?;
            let hb = Heartbeat::from_cbor(cbor_body(msg, body)?).map_err(Reply::from)?.value;
            Ok(Op::Heartbeat { peer_hb_status: hb.peer_hb_status })
        }
    }
}

fn allowed(method: Code, methods: &[Code], resource: &str) -> Result<(), Reply> {
    if methods.contains(&method) {
        return Ok(());
    }
    let names: Vec<&str> = methods.iter().map(|m| method_name(*m)).collect();
    Err(Reply::error(
        Code::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on /{resource}; use {}", method_name(method), names.join(", ")),
    ))
}

fn method_name(c: Code) -> &'static str {
    match c {
        Code::GET => "GET",
        Code::PUT => "PUT",
        Code::POST => "POST",
        Code::DELETE => "DELETE",
        _ => "this method",
    }
}

/// The body of a PUT, after the Content-Format check (4.15).
fn cbor_body<'a>(msg: &Message, body: &'a [u8]) -> Result<&'a [u8], Reply> {
    match msg.content_format() {
        Some(CONTENT_FORMAT_DOTS_CBOR) | None => Ok(body),
        Some(cf) => Err(Reply::error(
            Code::UNSUPPORTED_CONTENT_FORMAT,
            format!("Content-Format {cf} is not application/dots+cbor ({CONTENT_FORMAT_DOTS_CBOR})"),
        )),
    }
}

fn own_cuid(p: &MitigatePath, client: &ClientCtx) -> Result<(), Reply> {
    if p.cuid != client.cuid {
        return Err(Reply::error(
            Code::BAD_REQUEST,
            format!("Uri-Path cuid {} is not the cuid bound to this session's credential ({})", p.cuid, client.cuid),
        ));
    }
    if p.cdid.is_some() {
        return Err(Reply::error(Code::BAD_REQUEST, "'cdid' is inserted by server-domain DOTS gateways only (4.4.1.2); this server has none"));
    }
    Ok(())
}

fn mitigate(msg: &Message, body: &[u8], p: MitigatePath, policy: &RoutePolicy) -> Result<Op, Reply> {
    match msg.code {
        Code::PUT => {
            let scope = MitigationScope::from_cbor(cbor_body(msg, body)?).map_err(Reply::from)?.value;
            let req = validate_mitigation_put(&p, &scope, &policy.mitigation).map_err(Reply::from)?;
            // 'alias-name' is resolved by the handler, through the registry
            // (the client's own data-channel aliases, 4.4.1.3).
            // "If-Match Option with an empty value" marks an efficacy update (4.4.3).
            let if_match = msg.if_match().any(|v| v.is_empty());
            Ok(Op::MitigatePut { req, if_match })
        }
        Code::GET => {
            let queries = msg.uri_query().ok_or_else(|| Reply::error(Code::BAD_REQUEST, "Uri-Query is not UTF-8"))?;
            let content = Content::from_queries(&queries).map_err(Reply::from)?;
            Ok(Op::MitigateGet { mid: p.mid, content })
        }
        _ => Ok(Op::MitigateDelete { mid: validate_mitigation_delete(&p).map_err(Reply::from)? }),
    }
}

fn config(msg: &Message, body: &[u8], sid: Option<u32>) -> Result<Op, Reply> {
    match msg.code {
        Code::PUT => {
            let cfg = SignalConfig::from_cbor(cbor_body(msg, body)?).map_err(Reply::from)?.value;
            Ok(Op::ConfigPut { sid, body: cfg })
        }
        Code::GET => Ok(Op::ConfigGet { sid }),
        _ => Ok(Op::ConfigDelete),
    }
}

/// Keeps the members of a GET response that the 'c' query asks for
/// (Table 2): configuration (what the client sent), non-configuration
/// (status, counters), or all.
pub fn filter_content(scope: &mut MitigationScope, content: Content) {
    for s in &mut scope.scopes {
        match content {
            Content::All => {}
            Content::Config => {
                s.mitigation_start = None;
                s.status = None;
                s.conflict_information = None;
                s.bytes_dropped = None;
                s.bps_dropped = None;
                s.pkts_dropped = None;
                s.pps_dropped = None;
            }
            Content::NonConfig => {
                s.target = Default::default();
                s.trigger_mitigation = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dots_proto::coap::{MessageType, Token};
    use dots_proto::signal::{IpPrefix, Lifetime, Scope, Target};

    fn client() -> ClientCtx {
        ClientCtx { cuid: "me".into(), domain: "d".into(), allowed: vec!["203.0.113.0/24".parse().unwrap()] }
    }

    fn put(path: &str, body: Vec<u8>, cf: Option<u16>) -> (Message, Vec<u8>) {
        let mut m = Message::request(Code::PUT, MessageType::Con, 1, Token::new(&[1]).unwrap());
        m.set_uri_path(path);
        if let Some(cf) = cf {
            m.set_content_format(cf);
        }
        (m, body)
    }

    fn scope_body() -> Vec<u8> {
        MitigationScope {
            scopes: vec![Scope {
                target: Target { target_prefix: vec![IpPrefix::new("203.0.113.10".parse().unwrap(), 32).unwrap()], ..Target::default() },
                lifetime: Some(Lifetime::Seconds(60)),
                ..Scope::default()
            }],
        }
        .to_cbor()
    }

    fn code(r: Result<Op, Reply>) -> Code {
        r.map(|_| Code::CONTENT).unwrap_or_else(|e| e.code)
    }

    #[test]
    fn codes_of_the_checks() {
        let p = RoutePolicy::default();
        let c = client();
        let (m, b) = put("/.well-known/dots/mitigate/cuid=me/mid=1", scope_body(), Some(271));
        assert!(matches!(route(&m, &b, Some(&c), &p), Ok(Op::MitigatePut { if_match: false, .. })));
        assert_eq!(code(route(&m, &b, None, &p)), Code::UNAUTHORIZED);
        let (m2, b2) = put("/.well-known/dots/mitigate/cuid=me/mid=1", scope_body(), Some(50));
        assert_eq!(code(route(&m2, &b2, Some(&c), &p)), Code::UNSUPPORTED_CONTENT_FORMAT);
        let (m3, b3) = put("/.well-known/dots/mitigate/cuid=other/mid=1", scope_body(), Some(271));
        assert_eq!(code(route(&m3, &b3, Some(&c), &p)), Code::BAD_REQUEST);
        let (m4, b4) = put("/.well-known/dots/nothing", vec![], None);
        assert_eq!(code(route(&m4, &b4, Some(&c), &p)), Code::NOT_FOUND);
        let (mut m5, b5) = put("/.well-known/dots/hb", vec![], None);
        m5.code = Code::GET;
        assert_eq!(code(route(&m5, &b5, Some(&c), &p)), Code::METHOD_NOT_ALLOWED);
        let (m6, _) = put("/.well-known/dots/mitigate/cuid=me/mid=1", vec![], Some(271));
        assert_eq!(code(route(&m6, &[0xa1, 0x19, 0x99], Some(&c), &p)), Code::BAD_REQUEST);
        let (mut m7, b7) = put("/.well-known/dots/mitigate/cuid=me/mid=1", scope_body(), None);
        m7.add_if_match(b"");
        assert!(matches!(route(&m7, &b7, Some(&c), &p), Ok(Op::MitigatePut { if_match: true, .. })));
        // Every error carries a text diagnostic.
        let e = route(&m3, &b3, Some(&c), &p).unwrap_err();
        assert!(String::from_utf8(e.payload).unwrap().contains("cuid other"));
    }

    #[test]
    fn redirect_answers_503_with_the_body_and_max_age() {
        let p = RoutePolicy {
            redirect: Some((RedirectedSignal { alt_server: "alt.example".into(), alt_server_record: vec![] }, 600)),
            ..RoutePolicy::default()
        };
        let (m, b) = put("/.well-known/dots/mitigate/cuid=me/mid=1", scope_body(), Some(271));
        let r = route(&m, &b, Some(&client()), &p).unwrap_err();
        assert_eq!((r.code, r.max_age), (Code::SERVICE_UNAVAILABLE, Some(600)));
        assert_eq!(RedirectedSignal::from_cbor(&r.payload).unwrap().value.alt_server, "alt.example");
    }
}
