//! The console's actions: restart, reload and rollback through `ops::act` (the path
//! `ssh <entry> restart` takes: one authorization), and the kept releases. With several
//! hosts, those of another host's instances are authorized here first
//! (`access::may`, as `ops::act` does) and then sent there (`ops::forward::request`,
//! as ssh sends them), which authorizes them again; its answer is shown.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::session::SignedIn;
use super::{error, Shared};
use crate::core::access::{self, Action};
use crate::core::kind::Kind;
use crate::core::model::hosts::HostSpec;
use crate::core::model::Model;
use crate::core::repos::{self, RepoKind};
use crate::core::systemd_types::JobKind;
use crate::host::release_info::ReleaseInfo;
use crate::ops::act::{self, Refused};
use crate::ops::forward::{self, Answer};

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
            if let Some(host) = app
                .model
                .elsewhere(owner)
                .filter(|_| !super::snapshot::others(&app.model).is_empty())
            {
                // Redis (a port for a name) does not reload: "reload all" means the
                // OpenResty ones.
                let names: Vec<&str> = app
                    .model
                    .everywhere
                    .iter()
                    .filter(|(n, o)| o == owner && (kind != JobKind::Reload || !n.bytes().all(|b| b.is_ascii_digit())))
                    .map(|(n, _)| n.as_str())
                    .collect();
                // Never an empty line: there it would mean the caller's own instances.
                if names.is_empty() {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("`{owner}` has no instances to {}", req.verb),
                    );
                }
                let line = format!("{} {}", req.verb, names.join(" "));
                return forwarded(&app, &user, host.clone(), line).await;
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
    match elsewhere(&app.model, &user, &names) {
        Ok(None) => {}
        Ok(Some(host)) => return forwarded(&app, &user, host, format!("{} {}", req.verb, names.join(" "))).await,
        Err((status, why)) => return error(status, why),
    }
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
    match elsewhere(&app.model, &user, std::slice::from_ref(&req.instance)) {
        Ok(None) => {}
        Ok(Some(host)) => {
            // Words of a command line there: a release id is one word of these.
            if let Some(to) = &req.to {
                let word = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
                if to.is_empty() || to.starts_with('-') || !to.bytes().all(word) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("to: `{}` is not a release id", crate::core::error::excerpt(to)),
                    );
                }
            }
            let line = format!("rollback {} {}", req.instance, req.to.as_deref().unwrap_or(""));
            return forwarded(&app, &user, host, line.trim_end().to_string()).await;
        }
        Err((status, why)) => return error(status, why),
    }
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
    match elsewhere(&app.model, &user, std::slice::from_ref(&q.instance)) {
        Ok(None) => {}
        Ok(Some(host)) => return releases_there(&app, &user, host, &q.instance).await,
        Err((status, why)) => return error(status, why),
    }
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

/// The other host the instances `names` run on, once `user` may control each (`None`:
/// this host's, or names this host does not know, which `ops::act` refuses as on one
/// host). A request names one host's instances.
fn elsewhere(model: &Model, user: &str, names: &[String]) -> Result<Option<HostSpec>, (StatusCode, String)> {
    // Only the primary sends requests on; elsewhere a console is its host's alone.
    if super::snapshot::others(model).is_empty() {
        return Ok(None);
    }
    let placed: Vec<(&String, Option<&str>, Option<&HostSpec>)> = names
        .iter()
        .map(|n| {
            let owner = model.owner_of(n);
            (n, owner, owner.and_then(|o| model.elsewhere(o)))
        })
        .collect();
    if placed.iter().all(|(_, _, h)| h.is_none()) {
        return Ok(None);
    }
    let mut hosts: Vec<&str> = Vec::new();
    for (name, owner, host) in &placed {
        let Some(owner) = owner else {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("no instance `{}` in hhl.yaml", crate::core::error::excerpt(name)),
            ));
        };
        if let Err(why) = access::may(model, user, Action::Control { owner }) {
            return Err((StatusCode::FORBIDDEN, format!("refused: {why}")));
        }
        let at = host.map_or(model.here.as_deref().unwrap_or("-"), |h| h.name.as_str());
        if !hosts.contains(&at) {
            hosts.push(at);
        }
    }
    match (hosts.as_slice(), placed[0].2) {
        ([_], Some(h)) => Ok(Some(h.clone())),
        _ => Err((
            StatusCode::BAD_REQUEST,
            format!(
                "these instances run on different hosts ({}): act on one host's at a time",
                hosts.join(", ")
            ),
        )),
    }
}

/// `line`, authorized here, sent to `host` as `user`'s request; its answer as the
/// page shows it (`ok`, `host`, `answer`: what it printed), or why it was not reached.
async fn forwarded(app: &Shared, user: &str, host: HostSpec, line: String) -> Response {
    let (a, u, l) = (app.clone(), user.to_string(), line.clone());
    let done = tokio::task::spawn_blocking(move || forward::request(&a.model, &host, &u, &l, Answer::Captured)).await;
    app.watch.kick_hosts.notify_waiters();
    match done {
        Ok(Ok(f)) => {
            // The console's journal says who did what where.
            eprintln!("{user}: `{line}` sent to host {}: exit {}", f.host, f.code);
            if let Some(why) = f.unreachable {
                return error(StatusCode::SERVICE_UNAVAILABLE, why);
            }
            let answer = format!("{}{}", f.stdout, f.stderr);
            Json(serde_json::json!({ "ok": f.ok(), "host": f.host, "answer": answer.trim_end() })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Another host's kept releases of `instance` (`releases --json` there).
async fn releases_there(app: &Shared, user: &str, host: HostSpec, instance: &str) -> Response {
    let (a, u, l) = (app.clone(), user.to_string(), format!("releases --json {instance}"));
    let done = tokio::task::spawn_blocking(move || forward::request(&a.model, &host, &u, &l, Answer::Captured)).await;
    match done {
        Ok(Ok(f)) if f.unreachable.is_some() => {
            error(StatusCode::SERVICE_UNAVAILABLE, f.unreachable.unwrap_or_default())
        }
        Ok(Ok(f)) if !f.ok() => error(StatusCode::BAD_GATEWAY, format!("host {}: {}", f.host, f.stderr.trim())),
        Ok(Ok(f)) => match serde_json::from_str::<Vec<ReleaseInfo>>(&f.stdout) {
            Ok(list) => Json(list).into_response(),
            Err(e) => error(
                StatusCode::BAD_GATEWAY,
                format!(
                    "host {} answered with no list of releases ({e}): is it on this version of hhlctl?",
                    f.host
                ),
            ),
        },
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
