//! The console's actions: restart, reload and rollback through `ops::act` (the path
//! `ssh <entry> restart` takes: one authorization), and the kept releases.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::session::SignedIn;
use super::{error, Shared};
use crate::core::access::{self, Action};
use crate::core::kind::Kind;
use crate::core::repos::{self, RepoKind};
use crate::core::systemd_types::JobKind;
use crate::ops::act::{self, Refused};

#[derive(Deserialize)]
pub(super) struct ActRequest {
    /// `restart` or `reload`.
    verb: String,
    /// Instances by name; with `owner` instead, all of that owner's.
    #[serde(default)]
    instances: Vec<String>,
    owner: Option<String>,
}

fn refused(e: Refused) -> Response {
    match e {
        Refused::NotAllowed(why) => error(StatusCode::FORBIDDEN, format!("refused: {why}")),
        Refused::Invalid(why) => error(StatusCode::BAD_REQUEST, why),
        Refused::CannotReload { ref name, .. } => {
            error(StatusCode::BAD_REQUEST, format!("{e}; restart {name} instead"))
        }
        Refused::Failed(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

/// `POST /api/act`: restart or reload, through `ops::act` (as `ssh … restart`).
pub(super) async fn act(State(app): State<Shared>, SignedIn(user): SignedIn, Json(req): Json<ActRequest>) -> Response {
    let kind = match req.verb.as_str() {
        "restart" => JobKind::Restart,
        "reload" => JobKind::Reload,
        _ => return error(StatusCode::BAD_REQUEST, "verb: restart or reload"),
    };
    let names = match (&req.owner, req.instances.is_empty()) {
        (Some(owner), true) => {
            if let Err(why) = access::may(&app.model, &user, Action::Control { owner }) {
                return error(StatusCode::FORBIDDEN, format!("refused: {why}"));
            }
            // Redis does not reload: "reload all" means the OpenResty ones.
            let names: Vec<String> = app
                .model
                .instances
                .iter()
                .filter(|i| &i.developer == owner && (kind != JobKind::Reload || i.kind == Kind::Openresty))
                .map(|i| i.name.clone())
                .collect();
            if names.is_empty() {
                return error(StatusCode::BAD_REQUEST, format!("`{owner}` has no instances here"));
            }
            names
        }
        (None, false) => req.instances,
        _ => return error(StatusCode::BAD_REQUEST, "say `instances` or `owner`"),
    };
    let a = app.clone();
    let done = tokio::task::spawn_blocking(move || act::jobs(&a.model, &user, &names, kind)).await;
    app.watch.kick.notify_one();
    match done {
        Ok(Ok(done)) => Json(serde_json::json!({ "ok": done.iter().all(|d| d.ok), "done": done })).into_response(),
        Ok(Err(e)) => refused(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
pub(super) struct RollbackRequest {
    instance: String,
    /// A kept release id; default the one before the live one.
    to: Option<String>,
}

/// `POST /api/rollback`: through `ops::act::rollback` (as `ssh … rollback`).
pub(super) async fn rollback(
    State(app): State<Shared>,
    SignedIn(user): SignedIn,
    Json(req): Json<RollbackRequest>,
) -> Response {
    let a = app.clone();
    let done =
        tokio::task::spawn_blocking(move || act::rollback(&a.model, &user, &req.instance, req.to.as_deref())).await;
    app.watch.kick.notify_one();
    match done {
        Ok(Ok(r)) => Json(serde_json::json!({ "ok": r.reload.ok, "rollback": r })).into_response(),
        Ok(Err(e)) => refused(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
pub(super) struct InstanceQuery {
    instance: String,
}

/// `GET /api/releases?instance=`: the kept releases, newest first.
pub(super) async fn releases(
    State(app): State<Shared>,
    SignedIn(user): SignedIn,
    Query(q): Query<InstanceQuery>,
) -> Response {
    let inst = match act::openresty(&app.model, &user, Some(&q.instance)) {
        Ok(i) => i.clone(),
        Err(e) => return refused(e),
    };
    let git_dir = repos::repos(&app.model)
        .into_iter()
        .find(|r| r.kind == RepoKind::Server(inst.server.clone()))
        .map(|r| r.path);
    let listed =
        tokio::task::spawn_blocking(move || crate::host::release_info::releases(&inst.app_dir(), git_dir.as_deref()))
            .await;
    match listed {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
