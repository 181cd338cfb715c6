//! A narrow, blocking interface to systemd for the commands: start/stop/reload jobs
//! that are waited for, daemon-reload, and unit state read in bulk. Inside, D-Bus
//! calls are pipelined on one connection (async zbus driven by `block_on`), so
//! reading 400 units costs one round trip's latency, not 400.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use futures_util::future::join_all;
use futures_util::StreamExt;
use serde::Serialize;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

use super::dbus::ManagerProxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Start,
    Stop,
    Restart,
    Reload,
}

impl JobKind {
    pub fn verb(self) -> &'static str {
        match self {
            JobKind::Start => "starting",
            JobKind::Stop => "stopping",
            JobKind::Restart => "restarting",
            JobKind::Reload => "reloading",
        }
    }
    pub fn past(self) -> &'static str {
        match self {
            JobKind::Start => "started",
            JobKind::Stop => "stopped",
            JobKind::Restart => "restarted",
            JobKind::Reload => "reloaded",
        }
    }
}

/// How a job ended: systemd's job result (`done`, `failed`, `timeout`, …) and the
/// unit's state afterwards.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub unit: String,
    pub kind: JobKind,
    pub result: String,
    pub active_state: String,
}

impl JobOutcome {
    pub fn ok(&self) -> bool {
        let want_active = self.kind != JobKind::Stop;
        self.result == "done" && (self.active_state == "active") == want_active
    }
}

/// What status shows for one unit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnitState {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub main_pid: u32,
    /// Bytes; `None` when systemd does not account memory for the unit.
    pub memory: Option<u64>,
    /// Microseconds since the epoch when the unit last became active; 0 if never.
    pub active_enter_usec: u64,
    pub restarts: u32,
}

pub struct Systemd {
    conn: Connection,
}

const SERVICE: &str = "org.freedesktop.systemd1";

impl Systemd {
    pub fn connect() -> Result<Systemd> {
        let conn = zbus::block_on(Connection::system()).context(
            "cannot reach systemd on the system bus (is systemd PID 1 here, and /run/dbus/system_bus_socket there?)",
        )?;
        Ok(Systemd { conn })
    }

    fn manager(&self) -> Result<ManagerProxy<'_>> {
        Ok(zbus::block_on(ManagerProxy::new(&self.conn))?)
    }

    /// `systemctl daemon-reload`: re-read unit files and drop-ins.
    pub fn daemon_reload(&self) -> Result<()> {
        zbus::block_on(self.manager()?.reload())
            .map_err(explain)
            .context("daemon-reload")
    }

    /// Enqueue every job at once and wait until systemd reports each one finished.
    pub fn run_jobs(&self, jobs: &[(String, JobKind)]) -> Result<Vec<JobOutcome>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let manager = self.manager()?;
        zbus::block_on(async {
            // Subscribing twice on one connection is an error we can ignore.
            if let Err(e) = manager.subscribe().await {
                if !e.to_string().contains("AlreadySubscribed") {
                    return Err(explain(e));
                }
            }
            // Listen before enqueuing, so a fast job's signal is not missed.
            let mut removed = manager.receive_job_removed().await?;
            let mut pending: HashMap<OwnedObjectPath, (String, JobKind)> = HashMap::new();
            for (unit, kind) in jobs {
                let call = match kind {
                    JobKind::Start => manager.start_unit(unit, "replace").await,
                    JobKind::Stop => manager.stop_unit(unit, "replace").await,
                    JobKind::Restart => manager.restart_unit(unit, "replace").await,
                    JobKind::Reload => manager.reload_unit(unit, "replace").await,
                };
                let job = call
                    .map_err(explain)
                    .with_context(|| format!("asking systemd to {kind:?} {unit}"))?;
                pending.insert(job, (unit.clone(), *kind));
            }
            let mut results: BTreeMap<String, (JobKind, String)> = BTreeMap::new();
            while !pending.is_empty() {
                let Some(signal) = removed.next().await else { break };
                let args = signal.args()?;
                if let Some((unit, kind)) = pending.remove(args.job()) {
                    results.insert(unit, (kind, args.result().to_string()));
                }
            }
            let units: Vec<String> = results.keys().cloned().collect();
            let states = self.states_async(&units).await?;
            Ok(jobs
                .iter()
                .filter_map(|(unit, _)| {
                    let (kind, result) = results.get(unit)?.clone();
                    let active_state = states.get(unit).map(|s| s.active_state.clone()).unwrap_or_default();
                    Some(JobOutcome {
                        unit: unit.clone(),
                        kind,
                        result,
                        active_state,
                    })
                })
                .collect())
        })
    }

    /// The active state of each unit (`inactive` for units systemd does not know).
    pub fn active_states(&self, units: &[String]) -> Result<HashMap<String, String>> {
        let rows = zbus::block_on(self.list(units))?;
        Ok(units
            .iter()
            .map(|u| {
                (
                    u.clone(),
                    rows.get(u).map(|r| r.3.clone()).unwrap_or_else(|| "inactive".into()),
                )
            })
            .collect())
    }

    /// Full state of each unit, read in one pipelined batch.
    pub fn states(&self, units: &[String]) -> Result<HashMap<String, UnitState>> {
        zbus::block_on(self.states_async(units))
    }

    async fn list(&self, units: &[String]) -> Result<HashMap<String, super::dbus::UnitRow>> {
        let manager = ManagerProxy::new(&self.conn).await?;
        let patterns: Vec<&str> = units.iter().map(String::as_str).collect();
        let rows = manager.list_units_by_patterns(&[], &patterns).await.map_err(explain)?;
        Ok(rows.into_iter().map(|r| (r.0.clone(), r)).collect())
    }

    async fn states_async(&self, units: &[String]) -> Result<HashMap<String, UnitState>> {
        let rows = self.list(units).await?;
        const PROPS: [(&str, &str); 4] = [
            ("org.freedesktop.systemd1.Service", "MainPID"),
            ("org.freedesktop.systemd1.Service", "MemoryCurrent"),
            ("org.freedesktop.systemd1.Service", "NRestarts"),
            ("org.freedesktop.systemd1.Unit", "ActiveEnterTimestamp"),
        ];
        let loaded: Vec<&super::dbus::UnitRow> = units.iter().filter_map(|u| rows.get(u)).collect();
        let calls = loaded
            .iter()
            .flat_map(|row| PROPS.iter().map(move |(iface, prop)| self.get(&row.6, iface, prop)));
        let values = join_all(calls).await;
        let mut out = HashMap::new();
        for (row, vals) in loaded.iter().zip(values.chunks(PROPS.len())) {
            let u32_of = |v: &Option<OwnedValue>| v.as_ref().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
            let u64_of = |v: &Option<OwnedValue>| v.as_ref().and_then(|v| u64::try_from(v).ok());
            out.insert(
                row.0.clone(),
                UnitState {
                    load_state: row.2.clone(),
                    active_state: row.3.clone(),
                    sub_state: row.4.clone(),
                    main_pid: u32_of(&vals[0]),
                    memory: u64_of(&vals[1]).filter(|m| *m != u64::MAX),
                    restarts: u32_of(&vals[2]),
                    active_enter_usec: u64_of(&vals[3]).unwrap_or(0),
                },
            );
        }
        for u in units {
            out.entry(u.clone()).or_insert_with(|| UnitState {
                load_state: "not-loaded".into(),
                active_state: "inactive".into(),
                sub_state: "dead".into(),
                ..Default::default()
            });
        }
        Ok(out)
    }

    async fn get(&self, path: &OwnedObjectPath, iface: &str, prop: &str) -> Option<OwnedValue> {
        let reply = self
            .conn
            .call_method(
                Some(SERVICE),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(iface, prop),
            )
            .await
            .ok()?;
        let body = reply.body();
        // Get returns a variant holding the value.
        match body.deserialize::<zbus::zvariant::Value>().ok()? {
            zbus::zvariant::Value::Value(inner) => OwnedValue::try_from(*inner).ok(),
            other => OwnedValue::try_from(other).ok(),
        }
    }
}

/// Turn systemd's access-denied into words a developer can act on.
fn explain(e: zbus::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("AccessDenied")
        || text.contains("InteractiveAuthorizationRequired")
        || text.contains("Interactive authentication required")
    {
        anyhow::anyhow!("not allowed: {text}")
    } else {
        e.into()
    }
}
