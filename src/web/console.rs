//! The developer's console: the home page's data (live, by server-sent events), the
//! actions (restart, reload, rollback) and the deploys of the signed-in identity's
//! instances, and for admins the last serverctrl apply and `hhlctl plan`. Every action
//! goes through `cmd::act`, the path `hhlctl ssh` takes: one authorization.

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde::{Deserialize, Serialize};

use super::{error, signed_in, sse, Shared};
use crate::core::access::{self, Action};
use crate::core::model::{Instance, Kind, Model};
use crate::core::repos::{self, RepoKind};
use crate::host::overview::{self, Exit, View};
use crate::host::systemd::JobKind;
use crate::ops::act::{self, Refused};

/// How often the home page's figures are read while someone watches.
const EVERY: Duration = Duration::from_secs(2);
/// Exits are looked up again at least this often (and whenever a unit restarted).
const EXITS_EVERY: Duration = Duration::from_secs(30);

/// The latest reading of every instance, shared by all watchers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Microseconds since the epoch when it was read.
    pub at: u64,
    pub views: Vec<View>,
    /// Why the last reading failed, if it did (the previous views are kept).
    pub error: Option<String>,
}

pub struct Watch {
    pub tx: tokio::sync::watch::Sender<Arc<Snapshot>>,
    /// Read again now (after an action).
    pub kick: tokio::sync::Notify,
}

impl Watch {
    pub fn new() -> Watch {
        Watch {
            tx: tokio::sync::watch::channel(Arc::new(Snapshot::default())).0,
            kick: tokio::sync::Notify::new(),
        }
    }
}

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Read every instance each `EVERY` (or when kicked) while anyone watches.
pub(super) async fn poll(app: Shared) {
    let mut exits: HashMap<String, Exit> = HashMap::new();
    let mut exits_at = None::<std::time::Instant>;
    let mut seen: HashMap<String, (u32, u64)> = HashMap::new();
    loop {
        if app.watch.tx.receiver_count() > 0 {
            let a = app.clone();
            let stale = exits_at.is_none_or(|t: std::time::Instant| t.elapsed() > EXITS_EVERY);
            let known = exits.clone();
            let last_seen = seen.clone();
            let read = tokio::task::spawn_blocking(move || {
                let all: Vec<&Instance> = a.model.instances.iter().collect();
                let views = overview::read(&all, &known)?;
                // A unit that restarted (or was restarted) may have a new exit to show.
                let moved = views
                    .iter()
                    .any(|v| last_seen.get(&v.unit) != Some(&(v.restarts, v.since_usec)));
                if stale || moved {
                    let units: Vec<String> = all.iter().map(|i| i.unit()).collect();
                    let fresh = overview::last_exits(&units);
                    let views = views
                        .into_iter()
                        .map(|mut v| {
                            v.last_exit = fresh.get(&v.unit).cloned();
                            v
                        })
                        .collect();
                    return anyhow::Ok((views, Some(fresh)));
                }
                anyhow::Ok((views, None))
            })
            .await;
            let snap = match read {
                Ok(Ok((views, fresh))) => {
                    if let Some(f) = fresh {
                        exits = f;
                        exits_at = Some(std::time::Instant::now());
                    }
                    seen = views
                        .iter()
                        .map(|v: &View| (v.unit.clone(), (v.restarts, v.since_usec)))
                        .collect();
                    Snapshot {
                        at: now_usec(),
                        views,
                        error: None,
                    }
                }
                Ok(Err(e)) => Snapshot {
                    error: Some(format!("{e:#}")),
                    ..(**app.watch.tx.borrow()).clone()
                },
                Err(e) => Snapshot {
                    error: Some(e.to_string()),
                    ..(**app.watch.tx.borrow()).clone()
                },
            };
            app.watch.tx.send_replace(Arc::new(snap));
        }
        let _ = tokio::time::timeout(EVERY, app.watch.kick.notified()).await;
    }
}

/// What `identity` may see of `snap`, grouped by owner (master first, as in hhl.yaml).
#[derive(Debug, Serialize)]
struct Visible<'a> {
    at: u64,
    me: &'a str,
    admin: bool,
    error: Option<&'a str>,
    groups: Vec<Group<'a>>,
}

#[derive(Debug, Serialize)]
struct Group<'a> {
    owner: &'a str,
    instances: Vec<&'a View>,
}

fn visible<'a>(model: &'a Model, identity: &'a str, snap: &'a Snapshot) -> Visible<'a> {
    let mut groups: Vec<Group> = Vec::new();
    for owner in model.owners() {
        if access::may(model, identity, Action::Control { owner }).is_err() {
            continue;
        }
        let instances: Vec<&View> = snap.views.iter().filter(|v| v.owner == owner).collect();
        if !instances.is_empty() {
            groups.push(Group { owner, instances });
        }
    }
    Visible {
        at: snap.at,
        me: identity,
        admin: model.access.is_admin(identity),
        error: snap.error.as_deref(),
        groups,
    }
}

/// `GET /api/overview`: the newest reading (read now if nobody watched).
pub(super) async fn overview(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let Some(user) = signed_in(&app, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
    let mut rx = app.watch.tx.subscribe();
    if rx.borrow().at == 0 {
        app.watch.kick.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.changed()).await;
    }
    let snap = rx.borrow().clone();
    Json(visible(&app.model, &user, &snap)).into_response()
}

/// `GET /api/events`: the overview again each time it is read, while the session
/// lasts. Counts as one of the session's live streams (`MAX_TAILS`).
pub(super) async fn events(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let Some(user) = signed_in(&app, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
    let session = super::token(&headers).unwrap_or_default();
    let Some(slot) = super::TailSlot::take(&app, session.clone()) else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "at most {} live views per session: close one (another tab) first",
                super::MAX_TAILS
            ),
        );
    };
    let mut rx = app.watch.tx.subscribe();
    rx.mark_changed();
    app.watch.kick.notify_one();
    let state = (rx, app, user, session, slot);
    let events = stream::unfold(state, |(mut rx, app, user, session, slot)| async move {
        loop {
            rx.changed().await.ok()?;
            // Signed out (or expired): the stream ends with the session.
            let still = app
                .sessions
                .lock()
                .ok()
                .and_then(|s| s.user(&session).map(|u| u == user));
            if still != Some(true) {
                return None;
            }
            let snap = rx.borrow_and_update().clone();
            if snap.at == 0 {
                continue;
            }
            let data = serde_json::to_string(&visible(&app.model, &user, &snap)).unwrap_or_default();
            let event = Ok::<Event, Infallible>(Event::default().data(data));
            return Some((event, (rx, app, user, session, slot)));
        }
    });
    sse(events).into_response()
}

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
        Refused::Failed(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

/// `POST /api/act`: restart or reload, through `cmd::act` (as `ssh … restart`).
pub(super) async fn act(State(app): State<Shared>, headers: HeaderMap, Json(req): Json<ActRequest>) -> Response {
    let Some(user) = signed_in(&app, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
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

/// `POST /api/rollback`: through `cmd::act::rollback` (as `ssh … rollback`).
pub(super) async fn rollback(
    State(app): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<RollbackRequest>,
) -> Response {
    let Some(user) = signed_in(&app, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
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
    headers: HeaderMap,
    Query(q): Query<InstanceQuery>,
) -> Response {
    let Some(user) = signed_in(&app, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
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

/// The journal lines around an instance's last exit: 60 s before it to 5 s after.
#[derive(Deserialize)]
pub(super) struct AroundQuery {
    instance: String,
    /// Microseconds since the epoch.
    at: u64,
}

/// `GET /api/around?instance=&at=`: the journal lines around a moment (a crash).
pub(super) async fn around(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<AroundQuery>) -> Response {
    let Some(user) = signed_in(&app, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
    let Some(inst) = app
        .model
        .instances
        .iter()
        .find(|i| i.name == q.instance || crate::core::units::syslog_identifier(i) == q.instance)
    else {
        return error(StatusCode::BAD_REQUEST, "no such instance");
    };
    if let Err(why) = access::may(&app.model, &user, Action::ReadLogs { owner: &inst.developer }) {
        return error(StatusCode::FORBIDDEN, format!("refused: {why}"));
    }
    let secs = q.at / 1_000_000;
    let out = tokio::process::Command::new("journalctl")
        .args(["--no-pager", "-q", "-o", "json", "-n", "40", "-u", &inst.unit()])
        .arg(format!("--since=@{}", secs.saturating_sub(60)))
        .arg(format!("--until=@{}", secs + 5))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) => {
            let lines: Vec<super::entry::Entry> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(super::entry::parse)
                .collect();
            Json(lines).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("journalctl: {e}")),
    }
}

/// Output kept from the apply log, at most (the newest part).
const APPLY_OUTPUT_MAX: usize = 64 * 1024;

#[derive(Serialize)]
struct LastApply {
    commit: Option<String>,
    subject: Option<String>,
    /// `succeeded`, `failed`, `running` or `never`.
    result: String,
    /// Seconds since the epoch of the output's last write.
    when: Option<u64>,
    output: String,
}

/// `GET /api/admin/apply`: the last serverctrl apply (hhl-apply.service).
pub(super) async fn last_apply(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let Some(user) = signed_in(&app, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
    if let Err(why) = access::may(&app.model, &user, Action::Admin) {
        return error(StatusCode::FORBIDDEN, format!("refused: {why}"));
    }
    let a = app.clone();
    let read = tokio::task::spawn_blocking(move || {
        let model = &a.model;
        let log = std::path::Path::new(crate::core::package::APPLY_LOG);
        let mut output = std::fs::read_to_string(log).unwrap_or_default();
        if output.len() > APPLY_OUTPUT_MAX {
            let mut cut = output.len() - APPLY_OUTPUT_MAX;
            while !output.is_char_boundary(cut) {
                cut += 1;
            }
            output = output[cut..].to_string();
        }
        let when = std::fs::metadata(log)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let commit = std::fs::read_to_string(model.paths.state_dir.join(crate::core::package::APPLIED_COMMIT))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let subject = commit.as_ref().and_then(|c| {
            let repo = repos::repos(model)
                .into_iter()
                .find(|r| r.kind == RepoKind::Serverctrl)?;
            crate::host::git::run(crate::host::git::at(&repo.path), &["log", "-1", "--format=%s", c, "--"]).ok()
        });
        let state = crate::host::systemd::Systemd::connect()
            .and_then(|s| s.states(&[crate::core::package::APPLY_UNIT.to_string()]))
            .ok()
            .and_then(|mut m| m.remove(crate::core::package::APPLY_UNIT))
            .map(|s| s.active_state)
            .unwrap_or_default();
        let result = match state.as_str() {
            "failed" => "failed",
            "activating" | "active" => "running",
            _ if when.is_none() => "never",
            _ => "succeeded",
        };
        LastApply {
            commit,
            subject,
            result: result.into(),
            when,
            output,
        }
    })
    .await;
    match read {
        Ok(a) => Json(a).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

use crate::core::package::PLAN_LOG;

/// `GET /api/admin/plan`: what `hhlctl plan` prints now (read-only), run as root by
/// hhl-plan.service (the entry account may not read every file plan compares).
pub(super) async fn plan(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let Some(user) = signed_in(&app, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
    if let Err(why) = access::may(&app.model, &user, Action::Admin) {
        return error(StatusCode::FORBIDDEN, format!("refused: {why}"));
    }
    let ran = tokio::task::spawn_blocking(|| {
        let systemd = crate::host::systemd::Systemd::connect()?;
        let outcome = systemd.run_jobs(&[(crate::core::package::PLAN_UNIT.to_string(), JobKind::Start)])?;
        let ok = outcome.iter().all(|o| o.active_state != "failed");
        let output = std::fs::read_to_string(PLAN_LOG).map_err(|e| anyhow::anyhow!("reading {PLAN_LOG}: {e}"))?;
        anyhow::Ok((ok, output))
    })
    .await;
    match ran {
        Ok(Ok((ok, output))) => Json(serde_json::json!({ "ok": ok, "output": output })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn model() -> Model {
        let text = "developers: [dev1, dev2]\nservers:\n  socketserver:\n    template: builtin:socketserver\n    values:\n      master: {port: 9000}\n      dev1: {port: 9001}\n      dev2: {port: 9002}\nusers: {admins: [lead]}\n".to_string();
        let path = PathBuf::from("/etc/hhl/hhl.yaml");
        let raw = crate::core::config::parse(&path, &text).unwrap();
        let src = crate::core::config::Source { path, text };
        crate::core::model::build(&raw, &src, crate::core::model::Flavor::Debian).unwrap()
    }

    fn snapshot(m: &Model) -> Snapshot {
        let all: Vec<&Instance> = m.instances.iter().collect();
        let views = all
            .iter()
            .map(|i| View {
                instance: i.name.clone(),
                label: crate::core::units::syslog_identifier(i),
                unit: i.unit(),
                owner: i.developer.clone(),
                server: i.server.clone(),
                kind: "openresty",
                port: i.port,
                active_state: "active".into(),
                sub_state: "running".into(),
                main_pid: 1,
                since_usec: 1,
                restarts: 0,
                memory: None,
                cpu_usec: None,
                port_answers: true,
                healthy: true,
                last_exit: None,
            })
            .collect();
        Snapshot {
            at: 1,
            views,
            error: None,
        }
    }

    #[test]
    fn each_identity_sees_its_own_and_admins_every_owner_grouped() {
        let m = model();
        let snap = snapshot(&m);
        let owners = |who: &str| -> Vec<String> {
            visible(&m, who, &snap)
                .groups
                .iter()
                .map(|g| {
                    assert!(g.instances.iter().all(|v| v.owner == g.owner));
                    g.owner.to_string()
                })
                .collect()
        };
        assert_eq!(owners("dev1"), ["dev1"]);
        assert_eq!(owners("dev2"), ["dev2"]);
        assert_eq!(owners("lead"), ["master", "dev1", "dev2"]);
        assert!(owners("mallory").is_empty());
        assert!(visible(&m, "lead", &snap).admin && !visible(&m, "dev1", &snap).admin);
    }
}
