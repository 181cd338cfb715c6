//! The console's one reader: every instance's health read each `EVERY` while anyone
//! watches (or at once when kicked after an action), shared with every watcher through
//! a watch channel. This host's instances come from `host::overview`; with several
//! hosts, each other host's from `ops::status::of_host` (what `status` across hosts
//! reads too), one task per host, so that a host that does not answer delays only its
//! own rows: they stay as it last said, marked unreachable since then.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Shared;
use crate::core::model::Instance;
use crate::core::peers::Unreachable;
use crate::host::overview::{self, Exit, View};
use crate::ops::status::{HostRows, Row};

/// How often the home page's figures are read while someone watches.
pub const EVERY: Duration = Duration::from_secs(2);
/// Exits are looked up again at least this often (and whenever a unit restarted).
const EXITS_EVERY: Duration = Duration::from_secs(30);
/// A host that usually answers within a fraction of a second and has not for this
/// long is shown as not answering (ssh itself gives up later: a dead kept connection
/// is noticed by its keep-alive, then a new one is tried).
const LATE: Duration = Duration::from_secs(5);
/// Whom the console asks the other hosts as: every instance there, read once for all
/// viewers; each viewer is shown only what `access::may` lets them see.
const READER: &str = "root";

/// The latest reading of every instance, shared by all watchers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Microseconds since the epoch when this host's instances were read.
    pub at: u64,
    /// How long reading them took, ms.
    pub took_ms: u64,
    pub views: Vec<View>,
    /// Why the last reading failed, if it did (the previous views are kept).
    pub error: Option<String>,
    /// With several hosts, each other one, in hhl.yaml's order.
    pub hosts: Vec<HostState>,
}

/// Another host as the console last heard from it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostState {
    pub name: String,
    /// Not asked yet since someone began watching.
    pub pending: bool,
    /// It did not answer: since when, and why.
    pub unreachable: Option<Unreachable>,
    /// How long it took to answer (or not) the last time, ms.
    pub took_ms: Option<u64>,
}

/// What the console heard from another host since someone began watching.
#[derive(Default)]
struct Heard {
    /// Its last answer (`None`: not answered yet), how long it took (ms), and when it
    /// came (s since the epoch).
    last: Option<(HostRows, u64, u64)>,
    /// Asked again since then, not answered yet.
    asking: Option<std::time::Instant>,
}

pub struct Watch {
    pub tx: tokio::sync::watch::Sender<Arc<Snapshot>>,
    /// Read this host again now (after an action).
    pub kick: tokio::sync::Notify,
    /// Ask the other hosts again now (after an action there).
    pub kick_hosts: tokio::sync::Notify,
    /// What each other host last answered, by name.
    remote: Mutex<BTreeMap<String, Heard>>,
}

impl Watch {
    pub fn new() -> Watch {
        Watch {
            tx: tokio::sync::watch::channel(Arc::new(Snapshot::default())).0,
            kick: tokio::sync::Notify::new(),
            kick_hosts: tokio::sync::Notify::new(),
            remote: Mutex::new(BTreeMap::new()),
        }
    }
}

pub fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A row another host gave, as the console shows one (it has no CPU time and no last
/// exit: `status` does not read them).
pub fn view_of(r: &Row) -> View {
    let redis = r.unit.starts_with("redis@");
    View {
        instance: r.instance.clone(),
        label: format!("{}-{}", r.server, r.developer),
        unit: r.unit.clone(),
        owner: r.developer.clone(),
        server: r.server.clone(),
        kind: if redis { "redis" } else { "openresty" },
        port: r.port,
        active_state: r.state.active_state.clone(),
        sub_state: r.state.sub_state.clone(),
        main_pid: r.state.main_pid,
        since_usec: if r.state.active_state.is_active() {
            r.state.active_enter_usec
        } else {
            0
        },
        restarts: r.state.restarts,
        memory: r.state.memory,
        cpu_usec: None,
        port_answers: r.port_answers,
        healthy: r.healthy,
        last_exit: None,
        code: r.code.clone(),
        host: r.host.clone(),
        unreachable: r.unreachable.clone(),
    }
}

/// With several hosts, the others this console asks: only the primary holds the peer
/// key (a console elsewhere shows its own host's instances, as ssh there serves them).
pub fn others(model: &crate::core::model::Model) -> Vec<&crate::core::model::hosts::HostSpec> {
    match (&model.hosts, model.here.as_deref()) {
        (Some(hosts), Some(here)) if hosts.primary().name == here => hosts.others(here).collect(),
        _ => Vec::new(),
    }
}

/// This host's `views`, then each other host's last answer, in hhl.yaml's order.
fn merged(app: &Shared, mut views: Vec<View>) -> (Vec<View>, Vec<HostState>) {
    let Some(here) = app.model.here.as_deref() else {
        return (views, Vec::new());
    };
    for v in &mut views {
        v.host = Some(here.to_string());
    }
    let remote = app.watch.remote.lock().unwrap_or_else(|e| e.into_inner());
    let mut states = Vec::new();
    for h in others(&app.model) {
        let heard = remote.get(&h.name);
        let last = heard.and_then(|h| h.last.as_ref());
        // Answering as usual but silent for `LATE`: not answering, as far as a
        // viewer can tell, whatever ssh's own deadlines say later.
        let late = heard.and_then(|h| h.asking).map(|t| t.elapsed()).filter(|t| *t > LATE);
        let mut unreachable = last.and_then(|(g, _, _)| g.unreachable.clone());
        if let (Some((_, _, at)), Some(t), None) = (last, late, &unreachable) {
            unreachable = Some(Unreachable {
                since: *at,
                error: format!("no answer for {} s (still asking)", t.as_secs()),
            });
        }
        if let Some((got, _, _)) = last {
            views.extend(got.rows.iter().map(|r| {
                let mut v = view_of(r);
                if v.unreachable.is_none() && unreachable.is_some() {
                    v.unreachable = unreachable.clone();
                    v.healthy = false;
                }
                v
            }));
        }
        states.push(HostState {
            name: h.name.clone(),
            pending: last.is_none(),
            unreachable,
            took_ms: last.map(|(_, ms, _)| *ms),
        });
    }
    (views, states)
}

/// Read every instance of this host each `EVERY` (or when kicked) while anyone
/// watches, with the other hosts' latest answers; start a reader for each other host.
pub(super) async fn poll(app: Shared) {
    for h in others(&app.model) {
        tokio::spawn(poll_host(app.clone(), h.name.clone()));
    }
    let mut exits: HashMap<String, Exit> = HashMap::new();
    let mut exits_at = None::<std::time::Instant>;
    let mut seen: HashMap<String, (u32, u64)> = HashMap::new();
    loop {
        if app.watch.tx.receiver_count() > 0 {
            let a = app.clone();
            let stale = exits_at.is_none_or(|t: std::time::Instant| t.elapsed() > EXITS_EVERY);
            let known = exits.clone();
            let last_seen = seen.clone();
            let t0 = std::time::Instant::now();
            let read = tokio::task::spawn_blocking(move || {
                let all: Vec<&Instance> = a.model.instances.iter().collect();
                let mut views = overview::read(&all, &known)?;
                // Live and pushed commits: one read of each repository's branches.
                for (v, code) in views
                    .iter_mut()
                    .zip(crate::host::release_info::deployments(&a.model, &all))
                {
                    v.code = code;
                }
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
                    let (views, hosts) = merged(&app, views);
                    Snapshot {
                        at: now_usec(),
                        took_ms: t0.elapsed().as_millis() as u64,
                        views,
                        error: None,
                        hosts,
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

/// Ask host `name` for its rows each `EVERY` (or when kicked) while anyone watches,
/// each time within `peer::ASK`, over the kept connection. Its first answer, and each
/// change between answering and not, are shown at once (the reader is kicked); the
/// rest with the next reading. Nobody watching, its rows are forgotten: the next
/// watcher waits for fresh ones rather than see old ones as live.
async fn poll_host(app: Shared, name: String) {
    let mut answered: Option<bool> = None;
    loop {
        if app.watch.tx.receiver_count() > 0 {
            let (a, n) = (app.clone(), name.clone());
            let t0 = std::time::Instant::now();
            remember(&app, &name, |h| h.asking = Some(t0));
            let got = tokio::task::spawn_blocking(move || {
                let host = a.model.hosts.as_ref().and_then(|h| h.get(&n))?;
                Some(crate::ops::status::of_host(&a.model, host, READER, &[]))
            })
            .await;
            if let Ok(Some(got)) = got {
                let now = got.unreachable.is_none();
                let changed = answered != Some(now);
                answered = Some(now);
                let took = t0.elapsed().as_millis() as u64;
                let at = if now {
                    now_usec() / 1_000_000
                } else {
                    got.unreachable.as_ref().map_or(0, |u| u.since)
                };
                remember(&app, &name, |h| {
                    h.last = Some((got, took, at));
                    h.asking = None;
                });
                if changed {
                    app.watch.kick.notify_one();
                }
            }
        } else if answered.take().is_some() {
            app.watch.remote.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);
        }
        let _ = tokio::time::timeout(EVERY, app.watch.kick_hosts.notified()).await;
    }
}

fn remember(app: &Shared, host: &str, f: impl FnOnce(&mut Heard)) {
    let mut remote = app.watch.remote.lock().unwrap_or_else(|e| e.into_inner());
    f(remote.entry(host.to_string()).or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_hosts_row_is_a_view_named_as_this_hosts_are() {
        let row: Row = serde_json::from_value(serde_json::json!({
            "host": "hhl3", "instance": "6383", "unit": "redis@6383.service", "developer": "dev3",
            "server": "redis", "port": 6383, "load_state": "loaded", "active_state": "failed",
            "sub_state": "failed", "main_pid": 0, "memory": null, "active_enter_usec": 99,
            "restarts": 2, "uptime_secs": null, "port_answers": false, "healthy": false
        }))
        .unwrap();
        let v = view_of(&row);
        assert_eq!(
            (v.instance.as_str(), v.label.as_str(), v.kind),
            ("6383", "redis-dev3", "redis")
        );
        assert_eq!((v.owner.as_str(), v.host.as_deref()), ("dev3", Some("hhl3")));
        // Not active: no uptime; nothing read that status does not read.
        assert_eq!((v.since_usec, v.restarts, v.cpu_usec, v.last_exit), (0, 2, None, None));
        assert!(v.unreachable.is_none() && !v.healthy);
    }
}
