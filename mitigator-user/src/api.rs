//! The local control API: HTTP/1.1 + JSON on a Unix socket. The CLI, scripts
//! and (later) a web page use it; it only translates requests into registry
//! commands. Errors are `{"error": "..."}` with a status that says whose
//! fault it was.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | /v1/status | | [`Status`] |
//! | POST | /v1/protections | [`ProtectionSpec`] | 201 [`Protection`] |
//! | DELETE | /v1/protections/{id} | | removed [`Protection`] |
//! | DELETE | /v1/protections?prefix=P | | removed [`Protection`] |
//! | GET | /v1/lists/{accept,drop} | | `[prefix, …]` |
//! | POST | /v1/lists/{accept,drop} | [`ListChange`] | `[prefix, …]` |
//! | POST | /v1/shutdown | [`ShutdownRequest`] | 200 |

use std::{os::unix::fs::PermissionsExt, path::Path};

use anyhow::Context;
use axum::{
    extract::{rejection::JsonRejection, Path as UrlPath, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::{net::UnixListener, sync::watch};

use crate::{
    protection::{Owner, ProtectionSpec},
    registry::{ListKind, Registry, RegistryError, Selector},
};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ListChange {
    #[serde(default)]
    pub add: Vec<IpNet>,
    #[serde(default)]
    pub remove: Vec<IpNet>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ShutdownRequest {
    /// Detach the program and remove the pins (otherwise the data plane
    /// keeps enforcing while the daemon is stopped).
    #[serde(default)]
    pub uninstall: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let code = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(code, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, format!("bad request body: {}", e.body_text()))
    }
}

#[derive(Clone)]
struct Ctx {
    registry: Registry,
    stop: watch::Sender<bool>,
}

pub fn router(registry: Registry, stop: watch::Sender<bool>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/protections", post(protect).delete(unprotect_by_prefix))
        .route("/v1/protections/{id}", delete(unprotect_by_id))
        .route("/v1/lists/{kind}", get(get_list).post(change_list))
        .route("/v1/shutdown", post(shutdown))
        .with_state(Ctx { registry, stop })
}

/// Serves the API on `socket` until `stop` turns true.
pub async fn serve(socket: &Path, registry: Registry, stop: watch::Sender<bool>) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // A socket file left by a killed daemon would make bind fail.
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    // Root only: this socket controls the host's packet filter.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    let mut stopped = stop.subscribe();
    let app = router(registry, stop);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await?;
    let _ = std::fs::remove_file(socket);
    Ok(())
}

async fn status(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    Ok(Json(ctx.registry.status().await?).into_response())
}

async fn protect(State(ctx): State<Ctx>, body: Result<Json<ProtectionSpec>, JsonRejection>) -> Result<Response, ApiError> {
    let Json(spec) = body?;
    let p = ctx.registry.protect(Owner::Local, spec).await?;
    Ok((StatusCode::CREATED, Json(p)).into_response())
}

async fn unprotect_by_id(State(ctx): State<Ctx>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let id: u32 = id
        .parse()
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("protection id `{id}`: expected a number")))?;
    Ok(Json(ctx.registry.unprotect(Selector::Id(id)).await?).into_response())
}

#[derive(Deserialize)]
struct PrefixQuery {
    prefix: Option<String>,
}

async fn unprotect_by_prefix(State(ctx): State<Ctx>, Query(q): Query<PrefixQuery>) -> Result<Response, ApiError> {
    let raw = q
        .prefix
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "give ?prefix=P or DELETE /v1/protections/{id}".into()))?;
    let net = crate::protection::parse_target_prefix(&raw).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(ctx.registry.unprotect(Selector::Prefix(net)).await?).into_response())
}

fn list_kind(kind: &str) -> Result<ListKind, ApiError> {
    match kind {
        "accept" => Ok(ListKind::Accept),
        "drop" => Ok(ListKind::Drop),
        _ => Err(ApiError(StatusCode::NOT_FOUND, format!("list `{kind}`: expected accept or drop"))),
    }
}

async fn get_list(State(ctx): State<Ctx>, UrlPath(kind): UrlPath<String>) -> Result<Response, ApiError> {
    let kind = list_kind(&kind)?;
    let st = ctx.registry.status().await?;
    let list = match kind {
        ListKind::Accept => st.accept_list,
        ListKind::Drop => st.drop_list,
    };
    Ok(Json(list).into_response())
}

async fn change_list(
    State(ctx): State<Ctx>,
    UrlPath(kind): UrlPath<String>,
    body: Result<Json<ListChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let kind = list_kind(&kind)?;
    let Json(change) = body?;
    for n in &change.add {
        crate::protection::parse_list_prefix(&n.to_string()).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    }
    Ok(Json(ctx.registry.change_list(kind, change.add, change.remove).await?).into_response())
}

async fn shutdown(State(ctx): State<Ctx>, body: Result<Json<ShutdownRequest>, JsonRejection>) -> Result<Response, ApiError> {
    let Json(req) = body?;
    ctx.registry.shutdown(req.uninstall).await?;
    let _ = ctx.stop.send(true);
    Ok(StatusCode::OK.into_response())
}
