//! The developer's console home page: what the signed-in identity may see of the
//! latest reading (`snapshot`), now and live by server-sent events. The actions are in
//! `actions`, the admin views in `admin`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde::Serialize;

use super::session::SignedIn;
use super::snapshot::{HostState, Snapshot};
use super::{error, snapshot, sse, Shared};
use crate::core::access::{self, Action};
use crate::core::model::Model;
use crate::host::overview::View;

/// What `identity` may see of `snap`, grouped by owner (master first, as in hhl.yaml).
#[derive(Debug, Serialize)]
struct Visible<'a> {
    at: u64,
    /// How long reading this host's instances took, ms.
    took_ms: u64,
    me: &'a str,
    admin: bool,
    error: Option<&'a str>,
    /// With several hosts: this one (each instance names its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    here: Option<&'a str>,
    /// With several hosts: the others where anything of this identity's runs (an
    /// admin: all), whether they answered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hosts: Vec<&'a HostState>,
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
    let mine = |host: &str| {
        model.owners().any(|owner| {
            model.hosts.as_ref().is_some_and(|h| h.host_of(owner) == host)
                && access::may(model, identity, Action::Control { owner }).is_ok()
        })
    };
    Visible {
        at: snap.at,
        took_ms: snap.took_ms,
        me: identity,
        admin: model.access.is_admin(identity),
        error: snap.error.as_deref(),
        here: model.here.as_deref(),
        hosts: snap.hosts.iter().filter(|h| mine(&h.name)).collect(),
        groups,
    }
}

/// `GET /api/overview`: the newest reading; read now (every host asked, within its
/// deadline) if nobody watched.
pub(super) async fn overview(State(app): State<Shared>, SignedIn(user): SignedIn) -> Response {
    let mut rx = app.watch.tx.subscribe();
    let fresh = |s: &Arc<Snapshot>| {
        s.at != 0
            && s.hosts.iter().all(|h| !h.pending)
            && snapshot::now_usec().saturating_sub(s.at) < 2 * snapshot::EVERY.as_micros() as u64
    };
    if !fresh(&rx.borrow_and_update()) {
        app.watch.kick.notify_one();
        app.watch.kick_hosts.notify_waiters();
        // The next reading will do (a failed one included: it says why), once every
        // other host has answered or been marked. Bounded: above `peer::ASK`.
        let next = async {
            while rx.changed().await.is_ok() {
                if rx.borrow_and_update().hosts.iter().all(|h| !h.pending) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), next).await;
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
                host: None,
                unreachable: None,
            })
            .collect();
        Snapshot {
            at: 1,
            took_ms: 0,
            views,
            error: None,
            hosts: Vec::new(),
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

    #[test]
    fn with_hosts_each_view_names_its_host_and_each_identity_sees_the_hosts_of_its_own() {
        const KEY1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        const KEY2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3tAiQRWbVwJs7Ch/kZ3tC9NP1RZDG0R4flYXaHk9Nb";
        let text = format!(
            "developers: [dev1, dev2]\nservers:\n  socketserver:\n    template: builtin:socketserver\n    values:\n      master: {{port: 9000}}\n      dev1: {{port: 9001}}\n      dev2: {{port: 9002}}\n\
             users: {{admins: [lead]}}\nhosts:\n  - name: hhl1\n    address: 10.0.0.1\n    host_key: {KEY1}\n    primary: true\n    peer_key: {KEY2}\n\
             \x20 - name: hhl2\n    address: 10.0.0.2\n    host_key: {KEY2}\nplacement:\n  dev2: hhl2\n"
        );
        let path = PathBuf::from("/etc/hhl/hhl.yaml");
        let raw = crate::core::config::parse(&path, &text).unwrap();
        let src = crate::core::config::Source { path, text };
        let full = crate::core::model::build(&raw, &src, crate::core::model::Flavor::Debian).unwrap();
        let m = full.on_host("hhl1");
        assert!(m.instances.iter().all(|i| i.developer != "dev2"));
        // This host's views (as the reader names them), and hhl2's row as it last said it.
        let mut snap = snapshot(&m);
        for v in &mut snap.views {
            v.host = Some("hhl1".into());
        }
        let gone = crate::core::peers::Unreachable {
            since: 1_700_000_000,
            error: "unreachable: ssh: connect to host 10.0.0.2 port 22: Connection timed out".into(),
        };
        let row: crate::ops::status::Row = serde_json::from_value(serde_json::json!({
            "host": "hhl2", "unreachable": gone, "instance": "socketserver-dev2",
            "unit": "openresty@socketserver-dev2.service", "developer": "dev2", "server": "socketserver",
            "port": 9002, "load_state": "loaded", "active_state": "active", "sub_state": "running",
            "main_pid": 42, "memory": null, "active_enter_usec": 7, "restarts": 0,
            "uptime_secs": 3, "port_answers": true, "healthy": false
        }))
        .unwrap();
        snap.views.push(super::snapshot::view_of(&row));
        snap.hosts.push(HostState {
            name: "hhl2".into(),
            pending: false,
            unreachable: Some(gone.clone()),
            took_ms: Some(5000),
        });
        let lead = visible(&m, "lead", &snap);
        assert_eq!(lead.here, Some("hhl1"));
        assert_eq!(lead.hosts.len(), 1);
        let dev2 = &lead.groups.iter().find(|g| g.owner == "dev2").unwrap().instances[0];
        assert_eq!(dev2.host.as_deref(), Some("hhl2"));
        assert_eq!(dev2.unreachable.as_ref(), Some(&gone));
        assert_eq!(
            (dev2.label.as_str(), dev2.kind, dev2.since_usec),
            ("socketserver-dev2", "openresty", 7)
        );
        // dev1 sees neither dev2's instance nor the host it runs on; dev2 sees both.
        let dev1 = visible(&m, "dev1", &snap);
        assert!(dev1.hosts.is_empty());
        assert_eq!(dev1.groups.iter().map(|g| g.owner).collect::<Vec<_>>(), ["dev1"]);
        let own = visible(&m, "dev2", &snap);
        assert_eq!(own.hosts.len(), 1);
        assert_eq!(own.groups.iter().map(|g| g.owner).collect::<Vec<_>>(), ["dev2"]);
        let json = serde_json::to_value(&own).unwrap();
        assert_eq!(json["groups"][0]["instances"][0]["host"], "hhl2");
        assert_eq!(json["hosts"][0]["unreachable"]["since"], 1_700_000_000);
    }
}
