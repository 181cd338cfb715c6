//! A narrow, blocking interface to systemd for the commands: start/stop/reload jobs
//! that are waited for, daemon-reload, and unit state read in bulk. Inside, D-Bus
//! calls are pipelined on one connection (async zbus driven by `block_on`), so
//! reading 400 units costs one round trip's latency, not 400.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{stream, StreamExt};
use serde::Serialize;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

use super::dbus::ManagerProxy;
use super::private::{Listed, Private};
use crate::core::systemd_types::JobKind;

/// A finished job and the unit's state afterwards.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub unit: String,
    pub kind: JobKind,
    pub active_state: String,
    /// For a reload, the service's `ReloadResult` (`success`, `exit-code`, …): a failed
    /// reload leaves the unit active, so its state alone cannot tell.
    pub reload_result: Option<String>,
    /// A stop (or a restart's stop) that outlived TimeoutStopSec and was finished by
    /// systemd with SIGKILL: not a clean stop, whatever the unit's state now.
    pub killed: bool,
}

impl JobOutcome {
    /// Whether the unit reached the state the job aimed at.
    pub fn ok(&self) -> bool {
        if self.killed {
            return false;
        }
        let active = self.active_state == "active";
        match self.kind {
            JobKind::Stop => !active,
            JobKind::Reload => active && self.reload_result.as_deref() == Some("success"),
            JobKind::Start | JobKind::Restart => active,
        }
    }

    /// `done` or `failed`, as systemctl words a job's result.
    pub fn result(&self) -> &'static str {
        if self.killed {
            "the stop timed out and systemd finished it with SIGKILL"
        } else if self.ok() {
            "done"
        } else {
            "failed"
        }
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
/// How long jobs may take in all (units' own start and stop timeouts are shorter).
const JOB_DEADLINE: Duration = Duration::from_secs(600);
/// Calls in flight at once: the system bus refuses more than 128 pending replies per
/// connection.
const IN_FLIGHT: usize = 120;

/// How long one D-Bus call may take before systemd counts as stuck. systemctl's own
/// default is 25 s; daemon-reload of a few hundred units takes well under a second.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `CALL_TIMEOUT`, or `HHL_DBUS_TIMEOUT` (seconds) where set: tests shorten it to prove
/// that a stuck systemd is reported.
fn call_timeout() -> Duration {
    std::env::var("HHL_DBUS_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(CALL_TIMEOUT)
}

impl Systemd {
    /// Connect to the system bus; every call on the connection then gives up after
    /// `call_timeout()` with an error naming it.
    pub fn connect() -> Result<Systemd> {
        let timeout = call_timeout();
        let connect = async {
            zbus::connection::Builder::system()?
                .method_timeout(timeout)
                .build()
                .await
        };
        let conn = zbus::block_on(within(timeout, connect))
            .and_then(|r| r.map_err(Into::into))
            .map_err(|e| stuck_or(e, "Hello (connecting to the system bus)", timeout))
            .context(
                "cannot reach systemd on the system bus (is systemd PID 1 here, and /run/dbus/system_bus_socket there?)",
            )?;
        Ok(Systemd { conn })
    }

    fn manager(&self) -> Result<ManagerProxy<'_>> {
        Ok(zbus::block_on(manager_proxy(&self.conn))?)
    }

    /// `systemctl daemon-reload`: re-read unit files and drop-ins.
    pub fn daemon_reload(&self) -> Result<()> {
        zbus::block_on(self.manager()?.reload())
            .map_err(|e| self.explain_call(e, "Reload (daemon-reload)"))
            .context("daemon-reload")
    }

    /// `systemctl reset-failed` on each unit, so a unit that hit its start limit starts
    /// again. Best effort: a unit systemd has not loaded yet has nothing to reset.
    pub fn reset_failed<'u>(&self, units: impl Iterator<Item = &'u str>) {
        if let Ok(manager) = self.manager() {
            for unit in units {
                let _ = zbus::block_on(manager.reset_failed_unit(unit));
            }
        }
    }

    /// Enqueue every job at once, wait until systemd has finished them all, and judge
    /// each by the unit's state afterwards.
    ///
    /// We poll `ListJobs` rather than wait for `JobRemoved` signals: a signal stream that
    /// is not drained while hundreds of jobs are enqueued stalls the connection's reader
    /// (zbus applies back-pressure), which hung `restart --all` on 404 units.
    pub fn run_jobs(&self, jobs: &[(String, JobKind)]) -> Result<Vec<JobOutcome>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let manager = self.manager()?;
        let enqueued_at = now_usec();
        let old_workers = self.nginx_workers(jobs);
        let outcomes = zbus::block_on(async {
            let calls = jobs.iter().map(|(unit, kind)| {
                let manager = &manager;
                async move {
                    let call = match kind {
                        JobKind::Start => manager.start_unit(unit, "replace").await,
                        JobKind::Stop => manager.stop_unit(unit, "replace").await,
                        JobKind::Restart => manager.restart_unit(unit, "replace").await,
                        JobKind::Reload => manager.reload_unit(unit, "replace").await,
                    };
                    call.map_err(|e| self.explain_call(e, &format!("{}Unit {unit}", capitalized(kind.command()))))
                        .with_context(|| format!("asking systemd: {} {unit}", kind.verb()))
                }
            });
            let enqueued: Vec<Result<OwnedObjectPath>> = stream::iter(calls).buffered(IN_FLIGHT).collect().await;
            let enqueued_paths: Vec<OwnedObjectPath> = enqueued.into_iter().collect::<Result<_>>()?;
            let mut pending: HashSet<OwnedObjectPath> = enqueued_paths.iter().cloned().collect();
            let deadline = Instant::now() + JOB_DEADLINE;
            // A push's one reload is polled often, so that the push returns as soon as
            // it is done; hundreds of jobs (apply) less often, not to load the bus.
            // (Each ListJobs of hundreds of jobs is work for PID 1, which is also the one
            // starting them: 100 ms leaves it alone at apply's scale.)
            let poll = Duration::from_millis(match jobs.len() {
                0..=8 => 5,
                9..=64 => 25,
                _ => 100,
            });
            while !pending.is_empty() {
                async_io::Timer::after(poll).await;
                let running: HashSet<OwnedObjectPath> = manager
                    .list_jobs()
                    .await
                    .map_err(|e| self.explain_call(e, &format!("ListJobs (waiting for {} job(s))", pending.len())))?
                    .into_iter()
                    .map(|j| j.4)
                    .collect();
                pending.retain(|p| running.contains(p));
                if Instant::now() > deadline {
                    let waiting: Vec<String> = jobs
                        .iter()
                        .zip(&enqueued_paths)
                        .filter(|(_, p)| pending.contains(*p))
                        .map(|((u, k), _)| format!("{} {u}", k.command()))
                        .take(10)
                        .collect();
                    bail!(
                        "{} systemd job(s) still running after {} s ({}); systemd may be stuck: see `systemctl list-jobs`",
                        pending.len(),
                        JOB_DEADLINE.as_secs(),
                        waiting.join(", ")
                    );
                }
            }
            // One listing gives every unit's active state; only reloads need more.
            let units: Vec<String> = jobs.iter().map(|(u, _)| u.clone()).collect();
            let rows = self.list(&units).await?;
            let reloaded = jobs
                .iter()
                .filter(|(_, k)| *k == JobKind::Reload)
                .filter_map(|(u, _)| rows.get(u));
            let reload_results = self.reload_results(reloaded).await;
            let stopped = jobs
                .iter()
                .filter(|(_, k)| matches!(k, JobKind::Stop | JobKind::Restart))
                .filter_map(|(u, k)| Some((rows.get(u)?, *k)));
            let killed = self.killed(stopped, enqueued_at).await;
            Ok(jobs
                .iter()
                .map(|(unit, kind)| JobOutcome {
                    unit: unit.clone(),
                    kind: *kind,
                    active_state: active_state(&rows, unit),
                    reload_result: reload_results.get(unit).cloned(),
                    killed: killed.contains(unit),
                })
                .collect::<Vec<_>>())
        })?;
        // See `workers`: reloaded nginx instances accept only with new workers from now.
        // (A failed reload keeps its workers: nothing to wait for.)
        let reloaded: Vec<u32> = old_workers
            .into_iter()
            .filter(|(unit, _)| outcomes.iter().any(|o| &o.unit == unit && o.ok()))
            .flat_map(|(_, pids)| pids)
            .collect();
        let left = super::workers::wait_stopped_accepting(&reloaded, Duration::from_secs(5));
        if !left.is_empty() {
            eprintln!("warning: nginx worker(s) {left:?} still accept 5 s after the reload");
        }
        Ok(outcomes)
    }

    /// The current workers of every nginx (openresty@) unit about to be reloaded.
    fn nginx_workers(&self, jobs: &[(String, JobKind)]) -> Vec<(String, Vec<u32>)> {
        let units: Vec<String> = jobs
            .iter()
            .filter(|(u, k)| *k == JobKind::Reload && u.starts_with("openresty@"))
            .map(|(u, _)| u.clone())
            .collect();
        if units.is_empty() {
            return Vec::new();
        }
        let Ok(states) = self.states(&units) else {
            return Vec::new();
        };
        let masters: Vec<u32> = states.values().map(|s| s.main_pid).filter(|p| *p != 0).collect();
        let mut workers = super::workers::children(&masters);
        states
            .into_iter()
            .filter_map(|(unit, s)| Some((unit, workers.remove(&s.main_pid)?)))
            .collect()
    }

    /// The active state of each unit (`inactive` for units systemd does not know).
    pub fn active_states(&self, units: &[String]) -> Result<HashMap<String, String>> {
        let rows = zbus::block_on(self.list(units))?;
        Ok(units.iter().map(|u| (u.clone(), active_state(&rows, u))).collect())
    }

    /// Full state of each unit, read in one pipelined batch.
    pub fn states(&self, units: &[String]) -> Result<HashMap<String, UnitState>> {
        zbus::block_on(self.states_async(units))
    }

    async fn list(&self, units: &[String]) -> Result<HashMap<String, super::dbus::UnitRow>> {
        let manager = manager_proxy(&self.conn).await?;
        let patterns = list_patterns(units);
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let rows = manager
            .list_units_by_patterns(&[], &patterns)
            .await
            .map_err(|e| self.explain_call(e, "ListUnitsByPatterns"))?;
        Ok(rows.into_iter().map(|r| (r.0.clone(), r)).collect())
    }

    /// One listing for the states, then three properties per unit pipelined (see
    /// `assemble`).
    async fn states_async(&self, units: &[String]) -> Result<HashMap<String, UnitState>> {
        let rows = self.list(units).await?;
        let listed: Vec<Listed> = units
            .iter()
            .filter_map(|u| rows.get(u))
            .map(|r| Listed {
                name: r.0.clone(),
                load: r.2.clone(),
                active: r.3.clone(),
                sub: r.4.clone(),
                path: r.6.to_string(),
            })
            .collect();
        let values = self.numbers(&state_props(&listed)).await;
        let (mut out, ask) = assemble(&listed, &values, &memories_of(&listed));
        let memories = self.numbers(&memory_props(&ask)).await;
        finish(&mut out, &ask, memories, units);
        Ok(out)
    }

    /// Numeric properties, pipelined.
    async fn numbers(&self, props: &[(&str, &str, &str)]) -> Vec<Option<u64>> {
        let calls = props.iter().map(|(path, iface, prop)| async move {
            let path = OwnedObjectPath::try_from(*path).ok()?;
            number(self.get(&path, iface, prop).await?)
        });
        stream::iter(calls).buffered(IN_FLIGHT).collect().await
    }

    /// Each listed unit's `ReloadResult`, pipelined. A unit whose result cannot be read
    /// is left out (and its reload judged failed).
    async fn reload_results<'r>(
        &self,
        rows: impl Iterator<Item = &'r super::dbus::UnitRow>,
    ) -> HashMap<String, String> {
        let calls = rows.map(|row| async move {
            let value = self
                .get(&row.6, "org.freedesktop.systemd1.Service", "ReloadResult")
                .await;
            Some((row.0.clone(), String::try_from(value?).ok()?))
        });
        stream::iter(calls)
            .buffered(IN_FLIGHT)
            .filter_map(|r| async move { r })
            .collect()
            .await
    }

    /// Units among `rows` whose stop since `since` (µs, realtime) systemd finished with
    /// SIGKILL. A stop leaves `Result=timeout`; a restart starts again and resets
    /// `Result` (which may then be a start's timeout), but its stop lasted from
    /// ActiveExit to InactiveEnter, and only a stop that was killed lasts TimeoutStopSec.
    async fn killed<'r>(
        &self,
        rows: impl Iterator<Item = (&'r super::dbus::UnitRow, JobKind)>,
        since: u64,
    ) -> HashSet<String> {
        const SVC: &str = "org.freedesktop.systemd1.Service";
        const UNIT: &str = "org.freedesktop.systemd1.Unit";
        let calls = rows.map(|(row, kind)| async move {
            let u64_of = |v: Option<OwnedValue>| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
            let exit = u64_of(self.get(&row.6, UNIT, "ActiveExitTimestamp").await);
            if exit < since {
                return None; // not stopped by this job
            }
            let killed = if kind == JobKind::Stop {
                let result = self.get(&row.6, SVC, "Result").await;
                result.and_then(|v| String::try_from(v).ok()).as_deref() == Some("timeout")
            } else if row.3 != "active" {
                // The start failed, and may have been retried: the timestamps no longer
                // describe the stop, and the restart is reported failed anyway.
                false
            } else {
                let inactive = u64_of(self.get(&row.6, UNIT, "InactiveEnterTimestamp").await);
                let timeout = u64_of(self.get(&row.6, SVC, "TimeoutStopUSec").await);
                timeout > 0 && inactive >= exit && inactive - exit >= timeout
            };
            killed.then(|| row.0.clone())
        });
        stream::iter(calls)
            .buffered(IN_FLIGHT)
            .filter_map(|r| async move { r })
            .collect()
            .await
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

impl Systemd {
    /// `explain`, and a call that timed out named with how long it was waited for.
    /// The connection, for the calls kept in sibling modules (`hup`).
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }

    fn explain_call(&self, e: zbus::Error, call: &str) -> anyhow::Error {
        let timeout = self.conn.method_timeout().unwrap_or(CALL_TIMEOUT);
        stuck_or(e.into(), call, timeout)
    }
}

/// A timeout said in words: which call, how long; any other error as it is (through
/// `explain` for zbus errors).
fn stuck_or(e: anyhow::Error, call: &str, timeout: Duration) -> anyhow::Error {
    let timed_out = match e.downcast_ref::<zbus::Error>() {
        Some(zbus::Error::InputOutput(io)) => io.kind() == std::io::ErrorKind::TimedOut,
        _ => e.downcast_ref::<TimedOut>().is_some(),
    };
    if timed_out {
        return anyhow::anyhow!(
            "no answer to {call} within {:.1} s: systemd (or the bus) is stuck or overloaded (`systemctl list-jobs` and `journalctl -b` on the host show what it is doing), so hhlctl stopped waiting",
            timeout.as_secs_f64()
        );
    }
    match e.downcast::<zbus::Error>() {
        Ok(z) => explain(z),
        Err(e) => e,
    }
}

/// `future`, or `TimedOut` after `timeout`.
async fn within<T>(timeout: Duration, future: impl std::future::Future<Output = T>) -> Result<T> {
    use futures_util::future::{select, Either};
    let timer = async_io::Timer::after(timeout);
    match select(std::pin::pin!(future), std::pin::pin!(timer)).await {
        Either::Left((value, _)) => Ok(value),
        Either::Right(_) => Err(TimedOut.into()),
    }
}

#[derive(Debug)]
struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for TimedOut {}

fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn now_usec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Full state of each unit, for `status`: over systemd's private socket where hhlctl
/// may use it (as root), else through the bus. Both read the same properties.
pub fn unit_states(units: &[String]) -> Result<HashMap<String, UnitState>> {
    let timeout = call_timeout();
    let started = Instant::now();
    // A systemd that did not answer here in time would not on the bus either: say so
    // now rather than wait as long again.
    let stuck = |e: anyhow::Error| {
        e.context(format!(
            "no answer from systemd within {:.1} s: systemd is stuck or overloaded (`systemctl list-jobs` and `journalctl -b` on the host show what it is doing)",
            timeout.as_secs_f64()
        ))
    };
    match Private::connect(timeout) {
        Some(Ok(mut private)) => match states_private(&mut private, units) {
            Ok(states) => return Ok(states),
            Err(e) if started.elapsed() >= timeout => return Err(stuck(e)),
            Err(_) => {}
        },
        Some(Err(e)) => return Err(stuck(e)),
        None => {}
    }
    Systemd::connect()?.states(units)
}

fn states_private(p: &mut Private, units: &[String]) -> Result<HashMap<String, UnitState>> {
    let patterns = list_patterns(units);
    let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let mut listed = p.list(&patterns)?;
    let wanted: HashSet<&str> = units.iter().map(String::as_str).collect();
    listed.retain(|l| wanted.contains(l.name.as_str()));
    // The cgroup files do not depend on systemd's answers: read them meanwhile.
    let (values, memories) = std::thread::scope(|scope| {
        let memories = scope.spawn(|| memories_of(&listed));
        let values = p.numbers(&state_props(&listed));
        (values, memories.join().unwrap_or_default())
    });
    let (mut out, ask) = assemble(&listed, &values?, &memories);
    let memories = p.numbers(&memory_props(&ask))?;
    finish(&mut out, &ask, memories, units);
    Ok(out)
}

/// The patterns to list `units` by: one `template@*` per template the units are
/// instances of, the name itself for any other unit. systemd matches every loaded unit
/// against every pattern, so 404 names cost it 404 times what two globs do; the
/// caller keeps only the units it asked for. (Unit names cannot hold `*`, `?` or `[`:
/// a name is its own pattern.)
pub fn list_patterns(units: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for u in units {
        let p = match u.split_once('@') {
            Some((template, _)) => format!("{template}@*"),
            None => u.clone(),
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// What status reads of each unit besides the listing: the only per-unit reads left,
/// since memory comes from the unit's cgroup file.
const STATE_PROPS: [(&str, &str); 3] = [
    ("org.freedesktop.systemd1.Service", "MainPID"),
    ("org.freedesktop.systemd1.Service", "NRestarts"),
    ("org.freedesktop.systemd1.Unit", "ActiveEnterTimestamp"),
];

fn state_props(listed: &[Listed]) -> Vec<(&str, &'static str, &'static str)> {
    listed
        .iter()
        .flat_map(|l| {
            STATE_PROPS
                .iter()
                .map(move |(iface, prop)| (l.path.as_str(), *iface, *prop))
        })
        .collect()
}

fn memory_props(ask: &[Listed]) -> Vec<(&str, &'static str, &'static str)> {
    ask.iter()
        .map(|l| (l.path.as_str(), "org.freedesktop.systemd1.Service", "MemoryCurrent"))
        .collect()
}

/// Each listed unit's memory from its cgroup file (what systemd reads for
/// `MemoryCurrent`), `None` where there is none to read here.
fn memories_of(listed: &[Listed]) -> Vec<Option<u64>> {
    let groups = super::cgroup::MemoryGroups::read();
    listed.iter().map(|l| groups.memory(&l.name)).collect()
}

/// Each listed unit's state from its `STATE_PROPS` values (in order) and its memory
/// (`memories_of`). Also returns the units whose memory systemd must be asked for.
fn assemble(
    listed: &[Listed],
    values: &[Option<u64>],
    memories: &[Option<u64>],
) -> (HashMap<String, UnitState>, Vec<Listed>) {
    let mut out = HashMap::new();
    let mut ask = Vec::new();
    for (i, (l, vals)) in listed.iter().zip(values.chunks(STATE_PROPS.len())).enumerate() {
        let at = |i: usize| vals.get(i).copied().flatten().unwrap_or(0);
        let main_pid = u32::try_from(at(0)).unwrap_or(0);
        let memory = memories.get(i).copied().flatten();
        if memory.is_none() {
            ask.push(l.clone());
        }
        out.insert(
            l.name.clone(),
            UnitState {
                load_state: l.load.clone(),
                active_state: l.active.clone(),
                sub_state: l.sub.clone(),
                main_pid,
                memory,
                restarts: u32::try_from(at(1)).unwrap_or(0),
                active_enter_usec: at(2),
            },
        );
    }
    (out, ask)
}

/// Memory systemd reported for `ask` (`u64::MAX`: not accounted), and a row for every
/// unit systemd does not know.
fn finish(out: &mut HashMap<String, UnitState>, ask: &[Listed], memories: Vec<Option<u64>>, units: &[String]) {
    for (l, memory) in ask.iter().zip(memories) {
        if let Some(state) = out.get_mut(&l.name) {
            state.memory = memory.filter(|m| *m != u64::MAX);
        }
    }
    for u in units {
        out.entry(u.clone()).or_insert_with(|| UnitState {
            load_state: "not-loaded".into(),
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            ..Default::default()
        });
    }
}

/// A numeric property value (`u`, `t` or `i`).
fn number(v: OwnedValue) -> Option<u64> {
    if let Ok(n) = u32::try_from(&v) {
        return Some(n.into());
    }
    if let Ok(n) = u64::try_from(&v) {
        return Some(n);
    }
    i32::try_from(&v).ok().and_then(|n| u64::try_from(n).ok())
}

/// A listed unit's active state; `inactive` for units systemd does not know.
fn active_state(rows: &HashMap<String, super::dbus::UnitRow>, unit: &str) -> String {
    rows.get(unit).map(|r| r.3.clone()).unwrap_or_else(|| "inactive".into())
}

/// A Manager proxy that asks the bus nothing when it is made (no property cache, so
/// no GetAll round trip per proxy).
pub(super) async fn manager_proxy(conn: &Connection) -> zbus::Result<ManagerProxy<'_>> {
    ManagerProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}

/// Turn systemd's access-denied into words a developer can act on.
fn explain(e: zbus::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("AccessDenied")
        || text.contains("InteractiveAuthorizationRequired")
        || text.contains("Interactive authentication required")
    {
        if !crate::host::optional::polkit_installed() {
            return anyhow::anyhow!(
                "systemd refused ({text}): {}\n  hint: ask an admin to `apt-get install polkitd`; until then, only root can do this",
                crate::host::optional::NO_POLKIT
            );
        }
        anyhow::anyhow!(
            "systemd refused: you may control only your own instances ({text})\n  \
             hint: `hhlctl status` lists the instances and their owners; admins are listed under `users.admins` in hhl.yaml"
        )
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(kind: JobKind, active_state: &str, reload_result: Option<&str>) -> JobOutcome {
        JobOutcome {
            unit: "openresty@socketserver-dev1.service".into(),
            kind,
            active_state: active_state.into(),
            reload_result: reload_result.map(Into::into),
            killed: false,
        }
    }

    #[test]
    fn a_job_is_judged_by_what_it_aimed_at() {
        assert!(outcome(JobKind::Start, "active", None).ok());
        assert!(!outcome(JobKind::Restart, "failed", None).ok());
        assert!(outcome(JobKind::Stop, "inactive", None).ok());
        assert!(!outcome(JobKind::Stop, "active", None).ok());
        assert!(outcome(JobKind::Reload, "active", Some("success")).ok());
        // A failed reload leaves the old master running: active, yet failed.
        let failed = outcome(JobKind::Reload, "active", Some("exit-code"));
        assert!(!failed.ok());
        assert_eq!(failed.result(), "failed");
        assert!(!outcome(JobKind::Reload, "active", None).ok());
        // A restart whose stop systemd finished with SIGKILL is back up, yet failed.
        let killed = JobOutcome {
            killed: true,
            ..outcome(JobKind::Restart, "active", None)
        };
        assert!(!killed.ok());
        assert_eq!(
            killed.result(),
            "the stop timed out and systemd finished it with SIGKILL"
        );
    }

    #[test]
    fn units_are_listed_by_one_glob_per_template() {
        let units: Vec<String> = [
            "openresty@socketserver-dev1.service",
            "redis@6380.service",
            "openresty@dtserver-dev2.service",
            "hhl-web.service",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(list_patterns(&units), ["openresty@*", "redis@*", "hhl-web.service"]);
        assert!(list_patterns(&[]).is_empty());
    }
}
