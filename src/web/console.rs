//! The developer's console home page: what the signed-in identity may see of the
//! latest reading (`snapshot`), now and live by server-sent events. The actions are in
//! `actions`, the admin views in `admin`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde::Serialize;

use super::session::SignedIn;
use super::snapshot::Snapshot;
use super::{error, sse, Shared};
use crate::core::access::{self, Action};
use crate::core::model::Model;
use crate::host::overview::View;

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
pub(super) async fn overview(State(app): State<Shared>, SignedIn(user): SignedIn) -> Response {
    let mut rx = app.watch.tx.subscribe();
    if rx.borrow().at == 0 {
        app.watch.kick.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.changed()).await;
    }
    let snap = rx.borrow().clone();
    Json(visible(&app.model, &user, &snap)).into_response()
}

/// `GET /api/events`: the overview again each time it is read, while the session
/// lasts. Counts as one of the identity's live streams (`limits::STREAMS_PER_IDENTITY`).
pub(super) async fn events(State(app): State<Shared>, SignedIn(user): SignedIn, headers: HeaderMap) -> Response {
    let session = super::session::token(&headers).unwrap_or_default();
    let slot = match super::live_stream(&app, &user) {
        Ok(s) => s,
        Err((status, why)) => return error(status, why),
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::core::model::Instance;

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
                label: i.syslog_identifier(),
                unit: i.unit(),
                owner: i.developer.clone(),
                server: i.server.clone(),
                kind: "openresty",
                port: i.port,
                active_state: crate::core::systemd_types::ActiveState::Active,
                sub_state: "running".into(),
                main_pid: 1,
                since_usec: 1,
                restarts: 0,
                memory: None,
                cpu_usec: None,
                port_answers: true,
                healthy: true,
                last_exit: None,
                code: None,
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
