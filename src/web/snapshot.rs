//! The console's one reader: every instance's health (`host::overview`) read each
//! `EVERY` while anyone watches (or at once when kicked after an action), shared with
//! every watcher through a watch channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Shared;
use crate::core::model::Instance;
use crate::host::overview::{self, Exit, View};

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
