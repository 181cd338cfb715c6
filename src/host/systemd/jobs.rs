//! Jobs: enqueue start, stop, restart and reload jobs at once, wait until systemd has
//! finished them, and judge each by the unit's state afterwards.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{stream, StreamExt};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::client::{capitalized, Systemd, IN_FLIGHT};
use super::states::active_state;
use crate::core::kind::Kind;
use crate::core::systemd_types::{ActiveState, JobKind, JobOutcome, UnitName};

/// How long jobs may take in all (units' own start and stop timeouts are shorter:
/// openresty@ and redis@ start within 90 s and stop within 30 s, and hundreds of jobs
/// run side by side).
pub const JOB_DEADLINE: Duration = Duration::from_secs(600);

/// What a oneshot (hhl-apply, hhl-plan) may take, as systemd enforces it: its
/// `TimeoutStartSec`, then its `TimeoutStopSec` for the kill that ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneshotLimits {
    pub start: Duration,
    pub stop: Duration,
}

/// A waiter's margin over the unit's own limits: systemd ends a hung oneshot first
/// (and says so in the unit's `Result`); the waiter's own limit only catches a
/// systemd that does not.
pub const WAIT_MARGIN: Duration = Duration::from_secs(15);

impl Systemd {
    /// The start and stop timeouts of `unit` (loaded, so that its drop-ins count);
    /// `None` when systemd does not say or sets none (infinity).
    pub fn oneshot_limits(&self, unit: &str) -> Result<Option<OneshotLimits>> {
        const SVC: &str = "org.freedesktop.systemd1.Service";
        zbus::block_on(async {
            let path = super::client::manager_proxy(self.connection())
                .await?
                .load_unit(unit)
                .await
                .map_err(|e| self.explain_call(e, &format!("LoadUnit {unit}")))?;
            let usec = |v: Option<OwnedValue>| {
                v.and_then(|v| u64::try_from(v).ok())
                    .filter(|u| *u != 0 && *u != u64::MAX)
                    .map(Duration::from_micros)
            };
            let start = usec(self.get(&path, SVC, "TimeoutStartUSec").await);
            let stop = usec(self.get(&path, SVC, "TimeoutStopUSec").await);
            Ok(start.map(|start| OneshotLimits {
                start,
                stop: stop.unwrap_or_default(),
            }))
        })
    }

    /// The service's `Result` (`success`, `timeout`, `exit-code`, ...).
    pub fn service_result(&self, unit: &str) -> Option<String> {
        zbus::block_on(async {
            let manager = super::client::manager_proxy(self.connection()).await.ok()?;
            let path = manager.load_unit(unit).await.ok()?;
            let v = self.get(&path, "org.freedesktop.systemd1.Service", "Result").await?;
            String::try_from(v).ok()
        })
    }

    /// Enqueue every job at once, wait until systemd has finished them all, and judge
    /// each by the unit's state afterwards.
    ///
    /// We poll `ListJobs` rather than wait for `JobRemoved` signals: a signal stream that
    /// is not drained while hundreds of jobs are enqueued stalls the connection's reader
    /// (zbus applies back-pressure), which hung `restart --all` on 404 units.
    pub fn run_jobs(&self, jobs: &[(String, JobKind)]) -> Result<Vec<JobOutcome>> {
        self.run_jobs_within(jobs, JOB_DEADLINE)
    }

    /// `run_jobs`, giving up on jobs still running after `limit`.
    pub fn run_jobs_within(&self, jobs: &[(String, JobKind)], limit: Duration) -> Result<Vec<JobOutcome>> {
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
            let deadline = Instant::now() + limit;
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
                tokio::time::sleep(poll).await;
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
                        "{} systemd job(s) still running after {} s ({}), so hhlctl stopped waiting; systemd may be stuck: see `systemctl list-jobs`, and `journalctl -u <unit>` for the units named",
                        pending.len(),
                        limit.as_secs(),
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
                    reload_ok: reload_results.get(unit).map(|r| r == "success"),
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
            .filter(|(u, k)| *k == JobKind::Reload && UnitName::parse(u).kind() == Some(Kind::Openresty))
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

    /// Each listed unit's `ReloadResult`, pipelined. A unit whose result cannot be read
    /// is left out (and its reload judged failed).
    async fn reload_results<'r>(
        &self,
        rows: impl Iterator<Item = &'r super::dbus::UnitRow>,
    ) -> HashMap<String, String> {
        let calls = rows.map(|row| async move {
            let value = self
                .get(&row.path, "org.freedesktop.systemd1.Service", "ReloadResult")
                .await;
            Some((row.name.clone(), String::try_from(value?).ok()?))
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
            let exit = u64_of(self.get(&row.path, UNIT, "ActiveExitTimestamp").await);
            if exit < since {
                return None; // not stopped by this job
            }
            let killed = if kind == JobKind::Stop {
                let result = self.get(&row.path, SVC, "Result").await;
                result.and_then(|v| String::try_from(v).ok()).as_deref() == Some("timeout")
            } else if !ActiveState::parse(&row.active_state).is_active() {
                // The start failed, and may have been retried: the timestamps no longer
                // describe the stop, and the restart is reported failed anyway.
                false
            } else {
                let inactive = u64_of(self.get(&row.path, UNIT, "InactiveEnterTimestamp").await);
                let timeout = u64_of(self.get(&row.path, SVC, "TimeoutStopUSec").await);
                timeout > 0 && inactive >= exit && inactive - exit >= timeout
            };
            killed.then(|| row.name.clone())
        });
        stream::iter(calls)
            .buffered(IN_FLIGHT)
            .filter_map(|r| async move { r })
            .collect()
            .await
    }
}

fn now_usec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
