//! One HTTP request → one registry operation → one response (RFC 8783
//! draft 29 §§5-7; status-lines: 201 Created, 204 No Content, 200 with a
//! body; errors as RESTCONF error bodies, RFC 8040 §7.1).
//!
//! Isolation: the cuid in the path must be the one bound to the client's
//! certificate (RFC 9132 4.4.1.1 derivation), else 403 `access-denied`;
//! the registry only ever looks at that cuid's entry, so a client can
//! neither see nor change another's data. Every prefix a client sends is
//! checked against its domain by dots-proto's validation (`client_scope`).

use dots_proto::data::{
    self, restconf::ErrorTag, yang::IpPrefix, DotsClient, Policy, RestconfError, MEDIA_TYPE,
};
use hyper::{body::Bytes, header, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;

use super::route::{self, Query, Resource, ROOT};
use crate::{
    dots::ClientCtx,
    registry::{DcOp, DcReply, Registry},
};

pub type HttpResponse = Response<Full<Bytes>>;

/// What every request needs.
pub struct Ctx {
    pub registry: Registry,
    pub policy: Policy,
}

/// A parsed request.
pub struct Req<'a> {
    pub method: Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: Bytes,
}

pub async fn handle(ctx: &Ctx, client: Option<&ClientCtx>, req: Req<'_>) -> HttpResponse {
    match handle_inner(ctx, client, req).await {
        Ok(r) => r,
        Err(e) => error(&e),
    }
}

async fn handle_inner(ctx: &Ctx, client: Option<&ClientCtx>, req: Req<'_>) -> Result<HttpResponse, RestconfError> {
    let resource = route::resource(req.path)?;
    if resource == Resource::HostMeta {
        return host_meta(&req.method);
    }
    // RFC 9132 section 8 (used by RFC 8783 section 5.1): an authenticated
    // peer outside every client domain is not authorized.
    let client = client.ok_or_else(|| {
        RestconfError::new(403, ErrorTag::AccessDenied, "this certificate belongs to no DOTS client domain ([[signal.clients]])")
    })?;
    if let Some(cuid) = resource.cuid() {
        if cuid != client.cuid {
            return Err(RestconfError::new(
                403,
                ErrorTag::AccessDenied,
                format!("dots-client={cuid} is not the cuid of this client's certificate ({}); a client sees only its own data", client.cuid),
            ));
        }
    }
    if matches!(req.method, Method::POST | Method::PUT) {
        check_content_type(req.content_type)?;
    }
    let q = if req.method == Method::GET {
        route::query(req.query)?
    } else {
        no_query(req.query)?;
        route::query(None)?
    };
    let policy = Policy { client_scope: client.allowed.iter().map(|n| IpPrefix { addr: n.addr(), len: n.prefix_len() }).collect(), ..ctx.policy.clone() };
    let op = operation(&resource, &req, &q, client, &policy)?;
    let op = match op {
        Answer::Now(r) => return Ok(r),
        Answer::Op(op) => op,
    };
    let reply = ctx.registry.data_channel(client.clone(), op).await?;
    Ok(respond(reply, &client.cuid, &q))
}

enum Answer {
    Now(HttpResponse),
    Op(DcOp),
}

/// Method × resource → operation (§5.1 POST/PUT/DELETE registration, §6
/// aliases, §7 ACLs); anything else is 405.
fn operation(r: &Resource, req: &Req, q: &Query, client: &ClientCtx, policy: &Policy) -> Result<Answer, RestconfError> {
    use Method as M;
    let body = &req.body[..];
    let op = match (r, &req.method) {
        (Resource::Capabilities, &M::GET) => {
            let mut v = serde_json::to_value(super::capabilities::capabilities()).unwrap_or(Value::Null);
            if let Some(d) = q.depth {
                route::prune(&mut v, d);
            }
            return Ok(Answer::Now(json_response(StatusCode::OK, &v)));
        }
        (Resource::Root, &M::POST) => register(body, client, policy, false)?,
        (Resource::Root, &M::GET) => DcOp::GetClient { content: q.content },
        (Resource::Client(_), &M::PUT) => register(body, client, policy, true)?,
        (Resource::Client(_), &M::POST) => create_child(body, policy)?,
        (Resource::Client(_), &M::GET) => DcOp::GetClient { content: q.content },
        (Resource::Client(_), &M::DELETE) => DcOp::Unregister,
        (Resource::Aliases(_, None), &M::POST) => DcOp::CreateAliases(data::parse_aliases_request(body, policy)?),
        (Resource::Aliases(_, name), &M::PUT) => DcOp::PutAliases { name: name.clone(), aliases: data::parse_aliases_request(body, policy)? },
        (Resource::Aliases(_, name), &M::GET) => DcOp::GetAliases { name: name.clone(), content: q.content },
        (Resource::Aliases(_, name), &M::DELETE) => DcOp::DeleteAliases { name: name.clone() },
        (Resource::Acls(_, None, None), &M::POST) => DcOp::CreateAcls(data::parse_acls_request(body, policy)?),
        (Resource::Acls(_, name, None), &M::PUT) => DcOp::PutAcls { name: name.clone(), acls: data::parse_acls_request(body, policy)? },
        (Resource::Acls(_, name, ace), &M::GET) => DcOp::GetAcls { name: name.clone(), ace: ace.clone(), content: q.content },
        (Resource::Acls(_, name, None), &M::DELETE) => DcOp::DeleteAcls { name: name.clone() },
        (_, m) => {
            return Err(RestconfError::new(405, ErrorTag::OperationNotSupported, format!("{m} is not supported on {}", req.path)));
        }
    };
    Ok(Answer::Op(op))
}

/// §5.1: one dots-client whose cuid is the certificate's.
fn register(body: &[u8], client: &ClientCtx, policy: &Policy, put: bool) -> Result<DcOp, RestconfError> {
    let c: DotsClient = data::parse_registration_request(body, policy)?;
    if c.cuid != client.cuid {
        return Err(RestconfError::new(
            403,
            ErrorTag::AccessDenied,
            format!("cuid {:?} is not the cuid of this client's certificate ({})", c.cuid, client.cuid),
        ));
    }
    Ok(DcOp::Register { body: c, put })
}

/// A POST on `dots-client=cuid` creates aliases (§6.1) or ACLs (§7.2),
/// told apart by the body's top-level member.
fn create_child(body: &[u8], policy: &Policy) -> Result<DcOp, RestconfError> {
    let top = serde_json::from_slice::<serde_json::Map<String, Value>>(body).ok().and_then(|m| m.keys().next().cloned());
    match top.as_deref() {
        Some("ietf-dots-data-channel:acls") => Ok(DcOp::CreateAcls(data::parse_acls_request(body, policy)?)),
        // Aliases, or malformed JSON / another member: the alias decoder names the problem.
        _ => Ok(DcOp::CreateAliases(data::parse_aliases_request(body, policy)?)),
    }
}

fn check_content_type(ct: Option<&str>) -> Result<(), RestconfError> {
    let base = ct.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if base.as_deref() == Some(MEDIA_TYPE) {
        return Ok(());
    }
    Err(RestconfError::new(
        415,
        ErrorTag::InvalidValue,
        format!("Content-Type {:?}: request bodies are {MEDIA_TYPE} (RFC 8040 5.2)", ct.unwrap_or("(none)")),
    ))
}

fn no_query(q: Option<&str>) -> Result<(), RestconfError> {
    match q.filter(|q| !q.is_empty()) {
        None => Ok(()),
        Some(q) => Err(RestconfError::new(400, ErrorTag::InvalidValue, format!("query {q:?}: no query parameter is supported on this method"))),
    }
}

fn respond(reply: DcReply, cuid: &str, q: &Query) -> HttpResponse {
    match reply {
        DcReply::Created => {
            let mut resp = empty(StatusCode::CREATED);
            // RFC 8040 4.4.1: a created resource comes with its Location.
            if let Ok(v) = format!("{ROOT}/dots-client={cuid}").parse() {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        DcReply::Changed | DcReply::Deleted => empty(StatusCode::NO_CONTENT),
        DcReply::Body(mut v) => {
            if let Some(d) = q.depth {
                route::prune(&mut v, d);
            }
            json_response(StatusCode::OK, &v)
        }
    }
}

fn host_meta(m: &Method) -> Result<HttpResponse, RestconfError> {
    if m != Method::GET {
        return Err(RestconfError::new(405, ErrorTag::OperationNotSupported, "host-meta is read-only"));
    }
    let xrd = "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  <Link rel='restconf' href='/restconf'/>\n</XRD>\n";
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/xrd+xml")
        .body(Full::new(Bytes::from(xrd)))
        .expect("static response"))
}

fn empty(status: StatusCode) -> HttpResponse {
    Response::builder().status(status).body(Full::new(Bytes::new())).expect("static response")
}

fn json_response(status: StatusCode, v: &Value) -> HttpResponse {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, MEDIA_TYPE)
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("static response")
}

/// A RESTCONF error response.
pub fn error(e: &RestconfError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, MEDIA_TYPE)
        .body(Full::new(Bytes::from(e.to_json())))
        .expect("static response")
}
