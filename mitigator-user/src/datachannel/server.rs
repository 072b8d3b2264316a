//! I/O glue: the HTTPS listeners of `[data_channel]` (the signal channel's
//! rustls server with ALPN http/1.1: TLS 1.2 and 1.3, client certificates
//! chaining to `signal.ca`), one hyper HTTP/1.1 connection per TLS session
//! with keep-alive ("DOTS clients SHOULD re-use the same TLS session",
//! RFC 8783 3.1), the client identified once per connection.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use http_body_util::{BodyExt, Limited};
use hyper::{body::Incoming, header, service::service_fn, Request};
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::handler::{self, Ctx, HttpResponse, Req};
use crate::{
    config::Config,
    dots::ClientCtx,
    registry::Registry,
    signal::identity,
    transport::{TlsOptions, TlsServer},
};

/// The running server; dropping it stops the listeners.
pub struct DataChannelServer {
    pub addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DataChannelServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

struct Shared {
    ctx: Ctx,
    domains: Vec<crate::config::ClientDomain>,
    max_body: usize,
}

/// The data channel's validation policy; also what RFC 9133 filtering
/// control checks a changed ACL against (registry/control.rs).
pub fn policy(cfg: &Config) -> dots_proto::data::Policy {
    let d = &cfg.data_channel;
    dots_proto::data::Policy {
        decode: dots_proto::data::DecodeLimits { max_body_bytes: d.max_body_bytes, ..Default::default() },
        max_aliases: d.max_aliases,
        max_acls: d.max_acls,
        max_aces_per_acl: d.max_aces_per_acl,
        require_destination_for_immediate: d.require_destination_for_immediate,
        ..Default::default()
    }
}

/// Binds every `data_channel.listen` address and starts serving.
pub async fn start(cfg: &Config, registry: Registry) -> anyhow::Result<DataChannelServer> {
    let security = crate::signal::server::security_config(cfg)?;
    let shared = Arc::new(Shared {
        ctx: Ctx { registry, policy: policy(cfg) },
        domains: cfg.signal.clients.clone(),
        max_body: cfg.data_channel.max_body_bytes,
    });
    let mut server = DataChannelServer { addrs: Vec::new(), tasks: Vec::new() };
    for addr in &cfg.data_channel.listen {
        let opts = TlsOptions { alpn: vec![b"http/1.1".to_vec()], ..TlsOptions::default() };
        let tls = TlsServer::bind(*addr, &security, opts)
            .await
            .with_context(|| format!("data_channel.listen: cannot serve HTTPS on tcp {addr}"))?;
        server.addrs.push(tls.local_addr());
        server.tasks.push(tokio::spawn(accept(tls, shared.clone())));
    }
    info!(addrs = ?server.addrs, clients = cfg.signal.clients.len(), "DOTS data channel ready");
    Ok(server)
}

async fn accept(mut tls: TlsServer, shared: Arc<Shared>) {
    while let Ok((peer, stream)) = tls.accept().await {
        let client = identity::client_of(&peer.credential, &shared.domains);
        match &client {
            Some(c) => debug!(addr = %peer.addr, cuid = %c.cuid, domain = %c.domain, "data channel client connected"),
            None => warn!(addr = %peer.addr, credential = ?peer.credential, "data channel peer is in no client domain: its requests get 403"),
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (shared, client) = (shared.clone(), client.clone());
                async move { Ok::<_, Infallible>(serve(&shared, client.as_ref(), req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                debug!(addr = %peer.addr, error = %e, "data channel connection ended");
            }
        });
    }
}

async fn serve(shared: &Shared, client: Option<&ClientCtx>, req: Request<Incoming>) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, shared.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = dots_proto::data::DataError::TooLarge { len: shared.max_body + 1, max: shared.max_body };
            return handler::error(&e.to_restconf());
        }
    };
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let req = Req { method: parts.method.clone(), path: parts.uri.path(), query: parts.uri.query(), content_type, body };
    let (method, path) = (req.method.clone(), req.path.to_string());
    let resp = handler::handle(&shared.ctx, client, req).await;
    info!(cuid = client.map(|c| c.cuid.as_str()).unwrap_or("-"), %method, path, status = resp.status().as_u16(), "data channel request");
    resp
}
